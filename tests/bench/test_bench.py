"""The benchmarks are not tests, but they must not rot: a quick run with tiny counts, as a real subprocess."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import MS, ROOT, run

pytestmark = pytest.mark.e2e


def test_bench_quick_runs_and_reports_every_scenario(tmp_path: Path):
    """python -m bench --quick prints the table and writes every figure as JSON (and touches no docs)."""
    figures = tmp_path / "figures.json"
    before = (ROOT / "docs" / "benchmarks.md").read_text() if (ROOT / "docs" / "benchmarks.md").exists() else None
    done = run([sys.executable, "-m", "bench", "--quick", "--json", figures], timeout=120_000 * MS)
    assert done.returncode == 0, done.stderr
    for scenario in (
        "stream, one hop",
        "tick to buzz latency p50",
        "three-process circuit, CPU per tick",
        "fan-out to 100",
        "connection per message",
        "nodes in one process",
        "nodes as processes",
        "simulate --for 2m, the shipped circuit",
        "simulate --for 1m, 12 nodes (3 chains)",
    ):
        assert scenario in done.stdout
    report = json.loads(figures.read_text())
    (simulated,) = [row["simulate"] for row in report["results"] if "simulate" in row]
    assert [run["length"] for run in simulated] == ["2m", "1m"]
    assert all(run["speedup"] > 1 and run["messages_per_s"] > 0 and run["messages"] > 0 for run in simulated)
    assert report["quick"] is True and report["environment"]["python"]
    ratios = [row["ratio"] for row in report["results"] if "ratio" in row]
    assert len(ratios) >= 8 and all(ratio > 0 for ratio in ratios)
    after = (ROOT / "docs" / "benchmarks.md").read_text() if (ROOT / "docs" / "benchmarks.md").exists() else None
    assert before == after


def test_bench_scale_quick_compares_the_mesh_with_mosquitto_and_the_bridge(tmp_path: Path):
    """python -m bench --scale --quick measures 1 -> N through the mesh, Mosquitto and the bridge, and the bridge's
    throughput both ways; without Mosquitto it measures the mesh alone and says why in one line."""
    from bench.scale import FAN_OUT, QUICK, THROUGH, missing, paced, skip_lines

    figures = tmp_path / "scale.json"
    before = (ROOT / "docs" / "benchmarks.md").read_text()
    done = run([sys.executable, "-m", "bench", "--scale", "--quick", "--json", figures], timeout=60_000 * MS)
    assert done.returncode == 0, done.stderr
    report = json.loads(figures.read_text())["scale"]
    assert (ROOT / "docs" / "benchmarks.md").read_text() == before
    measured = {row["system"]: row for row in report["fan_out"] + report["through"]}
    assert measured["mesh"]["deliveries_per_s"]["median"] > 0 and measured["mesh"]["lost"]["median"] == 0
    assert "mesh" in done.stdout
    skipped = missing()
    assert report["skipped"] == skipped
    for line in skip_lines(skipped):
        assert line in done.stderr
    if "mqtt" in skipped:
        pytest.skip(skipped["mqtt"])
    wanted = [s.name for s in FAN_OUT + paced(QUICK["pace"]) + THROUGH if not s.bridge or "bridge" not in skipped]
    assert sorted(measured) == sorted(wanted)
    for name in wanted:
        row = measured[name]
        assert row["deliveries_per_s"]["median"] > 0, name
        assert row["lost"]["median"] == 0 or "QoS 0" in name, name  # QoS 0 may drop; it must not at QoS 1
        assert row["subscribers_kib"]["median"] > 0 and row["publisher_kib"]["median"] > 0, name
    burst = [row["system"] for row in report["fan_out"] if "msg/s" not in row["system"]]
    rates = [r for r in report["ratios"] if r["what"].startswith(("deliveries/s", "messages/s"))]
    assert [r["what"] for r in rates][: len(burst) - 1] == [f"deliveries/s: mesh / {name}" for name in burst[1:]]
    assert all(r["ratio"] > 0 for r in rates)
    assert "deliveries/s: mesh / Mosquitto QoS 0" in done.stdout
    if "bridge" in skipped:
        pytest.skip(skipped["bridge"])
