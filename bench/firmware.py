"""What a firmware node costs, measured through the user's commands: the build, and cycles per wall second.

::

    python -m bench.firmware            # each figure once, a table on stdout, JSON with --json

- **build, cold and cached**: ``./arduino.py --grid GRID lamp`` with an empty cache (the
  Arduino core, the sketch and the simavr helper compiled), then again (all cached): the
  ``built in`` / ``cached`` line the node logs, and the time from the process's start to
  its ``serving on`` line;
- **live**: ``./arduino.py up lamp``, ``status`` twice 5 s apart: the MCU's cycles per wall
  second (16 million when it keeps real time), its lag, the process's CPU;
- **virtual**: ``./arduino.py simulate --scenario scenarios/firmware_buzzer.yaml``, whose last
  line says how much simulated time took how much wall time: cycles per wall second, and the
  process's CPU per simulated second.

Each runs in a temporary cache (``ARDUINO_MESH_CACHE``), never the user's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ARDUINO = [sys.executable, str(ROOT / "arduino.py")]
FREQ = 16_000_000


def _start(grid: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*ARDUINO, "--grid", str(grid), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen[str]) -> None:
    """SIGINT to its group, as Ctrl-C; SIGKILL if it has not ended within 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def _until(process: subprocess.Popen[str], pattern: str) -> tuple[str, float]:
    """The first output line matching ``pattern``, and when it came (perf_counter)."""
    assert process.stdout is not None
    for line in process.stdout:
        if re.search(pattern, line):
            return line.strip(), time.perf_counter()
    raise RuntimeError(f"no line matching {pattern!r}")


def build(folder: Path, env: dict[str, str]) -> dict[str, Any]:
    """The lamp started twice: cold (empty cache) and cached."""
    shutil.copy(ROOT / "firmware" / "lamp.ino", folder / "lamp.ino")
    grid = folder / "grid.yaml"
    with socket.socket() as probe:  # a port of its own, which status can ask (port 0 it could not)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    grid.write_text(f"nodes:\n  lamp: {{sketch: lamp.ino, port: {port}}}\n")
    figures: dict[str, Any] = {}
    for run in ("cold", "cached"):
        began = time.perf_counter()
        process = _start(grid, env, "lamp")
        try:
            line, _ = _until(process, r"lamp\.ino: (built in|cached)")
            _, served = _until(process, r"serving on")
        finally:
            _stop(process)
        built = re.search(r"built in ([0-9.]+) s", line)
        figures[run] = {"build_s": float(built[1]) if built else 0.0, "start_to_serving_s": round(served - began, 3)}
    return figures


def _status(grid: Path, env: dict[str, str]) -> tuple[int, float]:
    out = subprocess.run(
        [*ARDUINO, "--grid", str(grid), "status"], capture_output=True, text=True, env=env, check=True
    ).stdout
    found = re.search(r"cycles=(\d+) .*lag=([0-9.]+)", out)
    assert found is not None, out
    return int(found[1]), float(found[2])


def live(folder: Path, env: dict[str, str], seconds: float = 5.0) -> dict[str, Any]:
    """``up lamp`` for ``seconds``: cycles per wall second from two status reports, lag, CPU."""
    grid = folder / "grid.yaml"
    process = _start(grid, env, "up")
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    try:  # stopped whatever happens: a measuring run must leave nothing running
        _until(process, r"serving on")
        time.sleep(0.5)
        cycles0, _ = _status(grid, env)
        wall0, cpu0 = time.perf_counter(), cpu()
        time.sleep(seconds)
        cycles1, lag = _status(grid, env)
        wall1, cpu1 = time.perf_counter(), cpu()
    finally:
        _stop(process)
    wall = wall1 - wall0
    return {
        "mcycles_per_wall_s": round((cycles1 - cycles0) / wall / 1e6, 2),
        "lag_s": lag,
        "cpu_of_a_core": round((cpu1 - cpu0) / wall, 3),
    }


def virtual(env: dict[str, str]) -> dict[str, Any]:
    """The shipped firmware scenario: simulated seconds per wall second, cycles per wall second, CPU."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [*ARDUINO, "simulate", "--scenario", str(ROOT / "scenarios" / "firmware_buzzer.yaml")],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    found = re.search(r"(\d\d):(\d\d):([0-9.]+) simulated in ([0-9.]+) s of wall time", done.stderr)
    assert found is not None, done.stderr
    simulated = int(found[1]) * 3600 + int(found[2]) * 60 + float(found[3])
    wall = float(found[4])
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "simulated_s": simulated,
        "wall_s": wall,
        "mcycles_per_wall_s": round(simulated * FREQ / wall / 1e6, 2),
        "cpu_s_per_simulated_s": round(cpu / simulated, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.firmware", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="arduino-bench-firmware-") as name:
        folder = Path(name)
        env = {**os.environ, "ARDUINO_MESH_CACHE": str(folder / "cache")}
        figures = {"build": build(folder, env), "live": live(folder, env), "virtual": virtual(env)}
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    cold, cached = figures["build"]["cold"], figures["build"]["cached"]
    print(
        f"build, cold (core, sketch, helper)  {cold['build_s']:.2f} s build, {cold['start_to_serving_s']:.2f} s to serving"
    )
    print(
        f"build, cached                       {cached['build_s']:.4f} s build, {cached['start_to_serving_s']:.2f} s to serving"
    )
    print(
        f"live (up lamp)                      {figures['live']['mcycles_per_wall_s']:.2f} Mcycles per wall s, "
        f"lag {figures['live']['lag_s']:.4f} s, {figures['live']['cpu_of_a_core']:.0%} of a core"
    )
    print(
        f"virtual (firmware_buzzer scenario)  {figures['virtual']['mcycles_per_wall_s']:.2f} Mcycles per wall s, "
        f"{figures['virtual']['cpu_s_per_simulated_s']:.2f} CPU s per simulated s "
        f"({figures['virtual']['simulated_s']:.1f} s in {figures['virtual']['wall_s']:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
