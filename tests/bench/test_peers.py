"""python -m bench --peers must not rot: a quick run with tiny counts, as a real subprocess."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import MS, ROOT, run

pytestmark = pytest.mark.e2e


def test_bench_peers_quick_measures_every_peer_present_and_names_each_missing_one(tmp_path: Path):
    """Every system of the circuit and of the fan-out across processes gives a figure and a ratio to the mesh;
    a peer this machine lacks (no broker, no client library) is left out with one line."""
    from bench.peers import FAN_OUT, circuits, missing, skip_lines

    figures = tmp_path / "peers.json"
    before = (ROOT / "docs" / "benchmarks.md").read_text()
    done = run([sys.executable, "-m", "bench", "--peers", "--quick", "--json", figures], timeout=50_000 * MS)
    assert done.returncode == 0, done.stderr
    assert (ROOT / "docs" / "benchmarks.md").read_text() == before
    report = json.loads(figures.read_text())["peers"]
    skipped = missing()
    skipped.pop("uvloop", None)  # only asked for with --uvloop
    assert report["skipped"] == skipped
    lines = skip_lines(skipped)
    assert len(lines) == len(skipped)
    for line in lines:
        assert done.stderr.count(line) == 1
    wanted = [c.name for c in circuits(peers=True, why=skipped)]
    assert [row["system"] for row in report["circuit"]] == wanted
    assert wanted[:2] == ["mesh", "raw websockets"]
    for row in report["circuit"]:
        assert row["ticks_per_s"]["median"] > 0 and row["cpu_us_per_tick"]["median"] >= 0, row["system"]
    fan_out = [s.name for s in FAN_OUT if not (s.broker and "mqtt" in skipped) and not (s.redis and "redis" in skipped)]
    assert [row["system"] for row in report["fan_out"]] == fan_out
    for row in report["fan_out"]:
        assert row["deliveries_per_s"]["median"] > 0, row["system"]
        assert row["lost"]["median"] == 0 or "QoS 0" in row["system"], row["system"]
    for name in wanted + fan_out:  # each beside its ratios to the mesh
        assert any(line.startswith(name + " ") for line in done.stdout.splitlines()), name
    assert "ticks/s: mesh/this" in done.stdout and "deliveries/s: mesh/this" in done.stdout
