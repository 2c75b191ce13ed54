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
        "fan-out to 100",
        "connection per message",
        "nodes in one process",
        "nodes as processes",
    ):
        assert scenario in done.stdout
    report = json.loads(figures.read_text())
    assert report["quick"] is True and report["environment"]["python"]
    ratios = [row["ratio"] for row in report["results"] if "ratio" in row]
    assert len(ratios) >= 8 and all(ratio > 0 for ratio in ratios)
    after = (ROOT / "docs" / "benchmarks.md").read_text() if (ROOT / "docs" / "benchmarks.md").exists() else None
    assert before == after
