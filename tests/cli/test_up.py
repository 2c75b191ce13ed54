"""End to end: ./arduino.py up, the whole circuit (or the nodes named) in one process, as a real subprocess."""

from __future__ import annotations

import re
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.helpers import MS, arduino, run_arduino, shipped_grid_on_free_ports, write_grid

pytestmark = pytest.mark.e2e

#: What each line of `up` starts with: honcho's time and name, the names in one column.
STAMP = r"\d\d:\d\d:\d\d"


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    """The shipped grid on free ports, with a quick clock."""
    return shipped_grid_on_free_ports(tmp_path)


def port_of(grid: Path, name: str) -> int:
    match = re.search(rf"^  {name}:.*port: (\d+)", grid.read_text(), re.MULTILINE)
    assert match is not None
    return int(match[1])


def test_up_runs_the_whole_grid_and_one_ctrl_c_stops_it(grid: Path):
    """up: every node serves in one process, ticks reach the buzzer, every line prefixed; Ctrl-C exits 0 at once."""
    up = arduino("--grid", grid, "up")
    for name in ("clock", "iopin", "buzzer", "dashboard"):
        up.expect(rf"^{STAMP} {name:<9} \| serving on 127\.0\.0\.1:{port_of(grid, name)}$", anywhere=True)
    up.expect(rf"^{STAMP} clock     \| iopin acked tick 2: acknowledged$", anywhere=True)
    up.expect(rf"^{STAMP} buzzer    \| signal [01]: (buzz buzz buzz|\.\.\.)$", anywhere=True)
    began = time.monotonic()
    up.signal(signal.SIGINT)
    assert up.wait() == 0, up.output()
    assert time.monotonic() - began < 2000 * MS
    out = up.output()
    for name in ("clock", "iopin", "buzzer", "dashboard"):
        assert f"{name:<9} | stopping (SIGINT)" in out
    assert [
        line for line in out.splitlines() if not re.match(rf"{STAMP} (clock|iopin|buzzer|dashboard) *\| ", line)
    ] == []
    assert "Traceback" not in out
    assert "error:" not in out


def test_up_runs_only_the_nodes_named(grid: Path):
    """up clock iopin: those two, the names' column as wide as theirs; the buzzer is waited for, not run."""
    up = arduino("--grid", grid, "up", "clock", "iopin")
    up.expect(rf"^{STAMP} clock \| serving on ", anywhere=True)
    up.expect(rf"^{STAMP} iopin \| serving on ", anywhere=True)
    up.expect(rf"^{STAMP} iopin \| waiting for buzzer at ws://127\.0\.0\.1:{port_of(grid, 'buzzer')} ")
    up.signal(signal.SIGTERM)
    assert up.wait() == 0, up.output()
    assert not re.search(rf"^{STAMP} (buzzer|dashboard)", up.output(), re.MULTILINE)


def test_up_with_an_unknown_node_exits_2_and_lists_the_known_ones(grid: Path):
    """up clock buzer: exit 2 before anything starts, naming the known nodes."""
    done = run_arduino("--grid", grid, "up", "clock", "buzer")
    assert done.returncode == 2
    assert done.stderr == (
        f"Error: unknown node 'buzer'; known nodes: buzzer, clock, dashboard, iopin (in {grid}); did you mean 'buzzer'?\n"
    )


def test_up_with_a_port_taken_is_one_line_and_stops_the_others(grid: Path):
    """A node that cannot listen: one line naming it, the nodes already up stopped, exit 1."""
    port = port_of(grid, "buzzer")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = run_arduino("--grid", grid, "up")
    assert done.returncode == 1, done.stderr
    assert done.stderr.endswith(
        f"Error: buzzer: cannot listen on 127.0.0.1:{port}: address already in use (is your own `arduino-mesh up`"
        " or `honcho start` still running? `arduino-mesh status` shows which nodes of the grid answer)\n"
    )
    assert done.stderr.count("Error") == 1
    assert "Traceback" not in done.stderr


def test_up_follows_edits_of_the_grid_with_the_ports_it_bound(tmp_path: Path):
    """An edit reaches every node of up; nodes asked for port 0 keep the port they bound (nothing 'moved', nothing to restart)."""
    grid = write_grid(
        tmp_path,
        "nodes:\n  iopin: {sketch: iopin, port: 0}\n  buzzer: {sketch: buzzer, port: 0, params: {sound: beep}}\n"
        "wires:\n  - iopin -> buzzer\n",
    )
    up = arduino("--grid", grid, "up")
    up.expect(rf"^{STAMP} buzzer \| serving on ", anywhere=True)
    up.expect(rf"^{STAMP} iopin  \| serving on ", anywhere=True)
    grid.write_text(grid.read_text().replace("sound: beep", "sound: boop"))
    up.expect(rf"^{STAMP} iopin  \| {re.escape(str(grid))} reloaded: node buzzer: params changed$", anywhere=True)
    up.expect(rf"^{STAMP} buzzer \| {re.escape(str(grid))} reloaded: node buzzer: params changed$", anywhere=True)
    up.signal(signal.SIGINT)
    assert up.wait() == 0, up.output()
    assert "cannot change while running" not in up.output()
    assert "moved" not in up.output()
