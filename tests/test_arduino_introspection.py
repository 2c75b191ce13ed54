"""status, check and graph as real subprocesses: against a running circuit and against broken grids."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import MS, ROOT, arduino, free_ports, run_arduino, serving, write_grid

pytestmark = pytest.mark.e2e

CIRCUIT = """\
nodes:
  clock:  {{sketch: clock, port: {clock}, params: {{tacks: 0, delay: 0.02}}}}
  iopin:  {{sketch: iopin, port: {iopin}, params: {{sequence: 3}}}}
  buzzer: {{sketch: buzzer, port: {buzzer}}}
  meter:  {{sketch: buzzer, subscribe: ["+/pin"]}}
wires:
  - clock -> iopin
  - iopin -> buzzer
"""


@pytest.fixture
def running(tmp_path: Path):
    """The circuit running as real processes (the port-less meter too)."""
    clock, iopin, buzzer = free_ports(3)
    grid = write_grid(tmp_path, CIRCUIT.format(clock=clock, iopin=iopin, buzzer=buzzer))
    processes = serving(grid, "buzzer", "iopin")  # at once: neither needs the other
    processes.update(serving(grid, "clock"))
    processes["meter"] = arduino("--grid", grid, "meter")
    processes["clock"].expect(r"iopin acked tick 3:")
    yield grid, processes


def test_status_tells_up_and_down_and_no_port(running):
    """status: a row per node with its counters and links; a killed node is down at once; exit 1 then."""
    grid, processes = running
    done = run_arduino("--grid", grid, "status")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
    assert done.stdout.splitlines()[0].split() == [
        "NODE",
        "STATE",
        "ADDRESS",
        "SKETCH",
        "UPTIME",
        "IN",
        "OUT",
        "PUB",
        "PENDING",
        "SUBSCRIBERS",
        "PRESENCE",
        "LINKS",
    ]
    assert rows["clock"].split()[1] == "up" and rows["clock"].endswith("iopin:up")
    assert rows["iopin"].endswith("buzzer:up")
    assert re.search(r" buzzer:online \d+s ", rows["iopin"])  # as the iopin last saw it, and since when
    assert rows["meter"].split()[1:3] == ["no", "port"]
    reports = {r["node"]: r for r in json.loads(run_arduino("--grid", grid, "status", "--json").stdout)}
    assert reports["iopin"]["messages_in"] >= 3 and reports["iopin"]["links"]["buzzer"]["state"] == "up"
    assert reports["iopin"]["subscribers"][0]["name"] == "meter"
    assert reports["iopin"]["subscribers"][0]["patterns"] == ["+/pin"]
    assert reports["meter"] == {"node": "meter", "sketch": "buzzer", "address": None, "state": "no port"}
    processes["buzzer"].popen.kill()
    processes["buzzer"].wait()
    began = time.monotonic()
    done = run_arduino("--grid", grid, "status")
    took = time.monotonic() - began
    assert done.returncode == 1
    row = next(line for line in done.stdout.splitlines() if line.startswith("buzzer"))
    assert row.split()[1] == "down" and row.endswith("connection refused")
    # Refused is answered at once, never retried: well inside a second for the query, the rest is Python starting
    # (seconds on a loaded machine); a retry or the 10 s open timeout would take longer than this bound.
    assert took < 8000 * MS


def test_status_reports_a_frozen_node_not_answering_within_the_timeout(running):
    """A node that accepts TCP but never answers (SIGSTOP) is 'not answering' after --timeout, not after a long wait."""
    grid, processes = running
    processes["buzzer"].signal(signal.SIGSTOP)
    try:
        began = time.monotonic()
        done = run_arduino("--grid", grid, "status", "--timeout", str(500 * MS))
        assert time.monotonic() - began < 8000 * MS  # not websockets' 10 s open timeout; Python's start is the rest
        assert done.returncode == 1
        row = next(line for line in done.stdout.splitlines() if line.startswith("buzzer"))
        assert row.split()[1:3] == ["not", "answering"]  # there, but silent: not 'down'
        assert row.endswith(f"busy? it took the connection but no handshake came within {500 * MS:g} s")
    finally:
        processes["buzzer"].signal(signal.SIGCONT)


def test_check_passes_the_shipped_grid_and_procfile():
    """check on the shipped circuit: no problems, exit 0."""
    done = run_arduino("check", cwd=ROOT)
    assert (done.returncode, done.stdout) == (0, "grid.yaml: 4 nodes, 2 wires: no problems found\n")


@pytest.mark.parametrize(
    ("grid", "procfile", "code", "lines"),
    [
        (
            "nodes:\n  a: {sketch: clock}\n  b: {sketch: buzzer, port: 1}\n  c: {sketch: buzzer, port: 2}\n"
            "wires:\n  - b -> c\n  - c -> b\n",
            None,
            0,
            [
                "grid.yaml:2: warning: node 'a' is connected to nothing: no wire in or out, no subscription",
                "grid.yaml:7: warning: wires form a loop: b -> c -> b",
                "grid.yaml: 3 nodes, 2 wires: 2 warnings",
            ],
        ),
        (
            "nodes:\n  a: {sketch: clock}\n  b: {sketch: buzzer, port: 1}\nwires:\n  - a -> b\n",
            "a: exec ./arduino.py a\nc: exec ./arduino.py c\n",
            1,
            [
                "Procfile:2: error: starts node 'c', which grid.yaml does not have; known nodes: a, b",
                "grid.yaml:3: warning: the Procfile does not start node 'b'",
                "grid.yaml: 2 nodes, 1 wire: 1 error, 1 warning",
            ],
        ),
        (
            "nodes:\n  a: {sketch: clock, params: {tick: 3}}\n  b: {sketch: buzzer, port: 1, subscribe: [nobody/x]}\n"
            "wires:\n  - a -> b\n",
            None,
            1,
            [
                "grid.yaml:3: warning: node 'b' subscribes to 'nobody/x', which no node of the grid with a port can publish",
                "grid.yaml:2: error: node 'a' (sketch clock) takes no parameter 'tick'; its parameters: tacks, delay",
                "grid.yaml: 2 nodes, 1 wire: 1 error, 1 warning",
            ],
        ),
        (
            "nodes:\n  a: {sketch: clock}\n  b: {sketch: buzzer}\nwires:\n  - a -> b\n",
            None,
            1,
            ["grid.yaml:3: error: node 'b' receives a wire (line 5) but has no port to receive on"],
        ),
    ],
    ids=["isolated-and-loop", "procfile", "subscription-and-params", "wire-into-no-port"],
)
def test_check_catches_a_miswired_grid(tmp_path: Path, grid: str, procfile: str | None, code: int, lines: list[str]):
    """check: one line per finding with file and line, a summary, exit 1 only for errors."""
    write_grid(tmp_path, grid)
    if procfile is not None:
        (tmp_path / "Procfile").write_text(procfile)
    done = run_arduino("check", cwd=tmp_path)
    assert (done.returncode, done.stdout.splitlines()) == (code, lines), done.stderr


def test_graph_draws_the_running_circuit(running):
    """graph: text, mermaid and dot forms of the grid."""
    grid, _ = running
    text = run_arduino("--grid", grid, "graph").stdout
    assert "wires\n  clock -> iopin\n  iopin -> buzzer\n" in text
    assert re.search(r"meter <~ \+/pin  \(from buzzer, clock, iopin\)", text)
    mermaid = run_arduino("--grid", grid, "graph", "--format", "mermaid").stdout
    assert (
        mermaid.startswith("flowchart LR\n") and "  clock --> iopin\n" in mermaid and '-. "+/pin" .-> meter' in mermaid
    )
    dot = run_arduino("--grid", grid, "graph", "--format", "dot").stdout
    assert dot.startswith("digraph circuit {") and '"iopin" -> "buzzer";' in dot and dot.endswith("}\n")
    assert run_arduino("--grid", grid, "graph", "--format", "svg").returncode == 2
