"""What ``arduino-mesh simulate`` costs, measured through the command itself: a day of the shipped circuit, an hour of 100 nodes.

``python -m bench`` runs these (its "simulate" section); alone::

    python -m bench.simulate day 24h         # the shipped grid, the clock ticking forever, the dashboard in
    python -m bench.simulate chains 1h 25    # 25 chains clock -> iopin -> 2 buzzers: 100 nodes

Each runs ``./arduino.py simulate --for LENGTH --param clock.tacks=0`` as a real process, as a
user does, its log read to the end as a pipe would (a terminal adds its own cost): the figures
include Python's start, reading the grid, making the nodes and writing every line. Wall time is
from the process's start to its exit, CPU its own (user and system, from ``wait4``); the
speed-up and the messages per wall second are what its last line says (the simulation's own,
without Python's start).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: The last line of ``simulate``: its speed-up and its messages per wall second.
DONE = re.compile(
    r"done: (?P<simulated>\S+) simulated in (?P<inside>[\d.]+) s of wall time \((?P<speedup>[\d,]+)x real time\); "
    r"(?P<messages>[\d,]+) messages, (?P<rate>[\d,]+) per wall second"
)
#: Seconds of wall time the issue allows each run (24 h of the shipped circuit; an hour of 100 nodes).
TARGET_S = 30.0


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def simulate(grid: Path, length: str, what: str) -> dict[str, Any]:
    """``./arduino.py --grid GRID simulate --for LENGTH --param clock.tacks=0``: its figures (see the module)."""
    clocks = [line.split(":")[0].strip() for line in grid.read_text().splitlines() if "sketch: clock" in line]
    params = [arg for name in clocks for arg in ("--param", f"{name}.tacks=0")]
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "arduino.py"), "--grid", str(grid), "simulate", "--for", length, *params],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stderr is not None
    lines = 0
    last = ""
    try:
        for line in process.stderr:  # read to the end, as a pipe's reader would
            lines += 1
            last = line
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:  # interrupted: the run goes with the benchmark
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    wall = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    found = DONE.search(last)
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"simulate {length} failed (exit {process.returncode}): {last.strip()}")
    return {
        "what": what,
        "length": length,
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "max_rss_mib": usage.ru_maxrss / 1024,
        "inside_s": float(found["inside"]),
        "speedup": _number(found["speedup"]),
        "messages": _number(found["messages"]),
        "messages_per_s": _number(found["rate"]),
        "lines": lines,
        "target_s": TARGET_S,
    }


def day(length: str = "24h") -> dict[str, Any]:
    """The shipped grid (clock, iopin, buzzer, the dashboard), the clock ticking every second forever."""
    return simulate(ROOT / "grid.yaml", length, f"simulate --for {length}, the shipped circuit")


def chains_grid(chains: int) -> str:
    """``chains`` of clock -> iopin -> two buzzers, each node at a port of its own: 4 nodes a chain."""
    lines, wires = ["nodes:"], ["wires:"]
    for i in range(chains):
        port = 20_000 + 4 * i
        lines += [
            f"  clock{i}: {{sketch: clock, port: {port}, params: {{tacks: 0, delay: 1}}}}",
            f"  iopin{i}: {{sketch: iopin, port: {port + 1}}}",
            f"  buzzer{i}a: {{sketch: buzzer, port: {port + 2}}}",
            f"  buzzer{i}b: {{sketch: buzzer, port: {port + 3}}}",
        ]
        wires += [f"  - clock{i} -> iopin{i}", f"  - iopin{i} -> buzzer{i}a", f"  - iopin{i} -> buzzer{i}b"]
    return "\n".join(lines + wires) + "\n"


def chains(length: str = "1h", count: int = 25) -> dict[str, Any]:
    """``count`` chains clock -> iopin -> 2 buzzers (4 * ``count`` nodes), every clock ticking every second."""
    with tempfile.TemporaryDirectory(prefix="arduino-bench-simulate-") as folder:
        grid = Path(folder) / "grid.yaml"
        grid.write_text(chains_grid(count))
        return simulate(grid, length, f"simulate --for {length}, {4 * count} nodes ({count} chains)")


def main() -> None:
    command, *args = sys.argv[1:]
    if command == "day":
        print(json.dumps(day(*args)))
    else:
        print(json.dumps(chains(args[0], *map(int, args[1:]))))


if __name__ == "__main__":
    main()
