"""What ``arduino-mesh up`` costs, measured through the command itself: start-up of many nodes, idle CPU, the stop.

``python -m bench`` runs these (its "scale" section); alone::

    python -m bench.up start 10000       # 10,000 buzzers on port 0: seconds until every one serves
    python -m bench.up idle 1000 10      # 1,000 nodes, each subscribed to the next: CPU while idle, 10 s

Each writes a grid to a temporary folder and runs ``./arduino.py --grid GRID up`` as a real
process, as a user does: the figures include reading and checking the grid, making the nodes,
binding their ports and logging their lines. Start-up runs from the process's start to the
last ``serving on`` line (idle: to the last ``subscribed to`` line, every subscription in
place); CPU and memory are the process's own, from ``/proc``; the stop is SIGINT to exit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Seconds a measured process gets to stop after SIGINT before it is killed and the stop counted failed.
STOP_WITHIN = 60.0


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def grid_text(count: int, subscribed: bool) -> str:
    """``count`` buzzers on port 0; ``subscribed``: each subscribed to the next one's sound (a ring)."""
    lines = ["nodes:"]
    for i in range(count):
        extra = f", subscribe: [b{(i + 1) % count}/sound]" if subscribed else ""
        lines.append(f"  b{i}: {{sketch: buzzer, port: 0{extra}}}")
    return "\n".join(lines) + "\n"


def run_up(count: int, *, subscribed: bool, idle: float = 0.0) -> dict[str, Any]:
    """Run ``up`` on ``count`` nodes until ready, measure ``idle`` seconds of it, stop it; the figures."""
    with tempfile.TemporaryDirectory(prefix="arduino-bench-up-") as folder:
        grid = Path(folder) / "grid.yaml"
        grid.write_text(grid_text(count, subscribed))
        began = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "arduino.py"), "--grid", str(grid), "up"],
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "ARDUINO_STATE_DIR": str(Path(folder) / ".state")},
        )
        ready = threading.Event()
        counts = {"serving on": 0, "subscribed to": 0}
        want = "subscribed to" if subscribed else "serving on"

        def read() -> None:  # every line read, to the end: a process whose output is not read cannot stop
            assert process.stdout is not None
            for line in process.stdout:
                for marker in counts:
                    if marker in line:
                        counts[marker] += 1
                if counts[want] >= count:
                    ready.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            if not ready.wait(600):
                raise RuntimeError(f"up never got {count} '{want}' lines (got {counts[want]})")
            startup = time.perf_counter() - began
            figures: dict[str, Any] = {
                "nodes": count,
                "startup_s": startup,
                "startup_cpu_s": _cpu_s(process.pid),
                "kib_per_node": _rss_kib(process.pid) / count,
            }
            if idle:
                time.sleep(min(idle, 3.0))  # settle: the first keepalive round
                cpu, wall = _cpu_s(process.pid), time.perf_counter()
                time.sleep(idle)
                figures["cpu_percent"] = 100 * (_cpu_s(process.pid) - cpu) / (time.perf_counter() - wall)
            stopping = time.perf_counter()
            os.killpg(process.pid, signal.SIGINT)
            try:
                code = process.wait(STOP_WITHIN)
                figures["stop_s"] = time.perf_counter() - stopping
                figures["exit"] = code
            except subprocess.TimeoutExpired:
                figures["stop_s"] = None  # did not stop
            return figures
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            reader.join(5)


def start(count: int) -> dict[str, Any]:
    """``count`` buzzers started by ``up``, then stopped."""
    return {"what": f"{count:,} buzzers started by arduino-mesh up", **run_up(count, subscribed=False)}


def idle(count: int, seconds: float) -> dict[str, Any]:
    """``count`` nodes under ``up``, each subscribed to the next: CPU while nothing happens for ``seconds``."""
    return {
        "what": f"{count:,} subscribed nodes idle under arduino-mesh up",
        **run_up(count, subscribed=True, idle=seconds),
    }


COMMANDS: dict[str, Callable[..., dict[str, Any]]] = {"start": start, "idle": idle}


def main() -> None:
    command, *args = sys.argv[1:]
    print(json.dumps(COMMANDS[command](int(args[0]), *map(float, args[1:]))))


if __name__ == "__main__":
    main()
