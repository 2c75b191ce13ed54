"""python -m bench.rooms [--seconds S] [--json]: the runtime modules a tick enters, measured through ``arduino-mesh up``.

Runs the shipped circuit's ticking path (``up clock iopin buzzer``, the shipped grid with the
clock ticking forever, every node on a free port) as a real subprocess of the installed
command's code, profiles ``S`` seconds of it once it ticks, and lists every module of
``mesh/`` and ``nodes/`` that was entered, with the calls between them. A pair of modules that
call each other both ways is a room too many, and is listed as such.

``docs/architecture.md`` prints this list; ``tests/docs/test_architecture.py`` runs this and
compares, so that the page and the code cannot drift.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
#: The folders whose modules are the runtime's rooms.
RUNTIME = ("mesh", "nodes")

#: What runs in the subprocess: the CLI itself, with a profiler that SIGUSR1 switches on, then off and out.
BOOTSTRAP = """
import cProfile, json, signal, sys
profile, out = cProfile.Profile(), sys.argv.pop(1)
state = {"on": False}
def toggle(signum, frame):
    if not state["on"]:
        state["on"] = True
        profile.enable()
        return
    profile.disable()
    profile.create_stats()
    edges = [[callee[0], caller[0]] for callee, (_, _, _, _, callers) in profile.stats.items() for caller in callers]
    entered = sorted({callee[0] for callee in profile.stats})
    with open(out + ".tmp", "w") as f:
        json.dump({"entered": entered, "edges": edges}, f)
    import os; os.replace(out + ".tmp", out)
signal.signal(signal.SIGUSR1, toggle)
sys.argv[0] = "arduino-mesh"
from cli import main
main()
"""


def _module(path: str) -> str | None:
    """``mesh/links.py`` for a file of the runtime, else None."""
    try:
        relative = Path(path).resolve().relative_to(ROOT)
    except ValueError:
        return None
    return relative.as_posix() if relative.parts[0] in RUNTIME else None


def measure(seconds: float = 2.0) -> dict[str, Any]:
    """Profile ``seconds`` of the ticking circuit under ``up``: the modules entered and the pairs calling both ways."""
    shipped = yaml.safe_load((ROOT / "grid.yaml").read_text())
    nodes = {name: dict(shipped["nodes"][name], port=0) for name in ("clock", "iopin", "buzzer")}
    nodes["clock"]["params"] = {**nodes["clock"].get("params", {}), "tacks": 0}  # ticking for as long as it runs
    with tempfile.TemporaryDirectory(prefix="arduino-rooms-") as folder:
        grid = Path(folder) / "grid.yaml"
        grid.write_text(yaml.safe_dump({"nodes": nodes, "wires": shipped["wires"]}))
        out = Path(folder) / "profile.json"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-c", BOOTSTRAP, str(out), "--grid", str(grid), "up", *nodes]
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            assert process.stdout is not None
            ticks = 0
            for line in process.stdout:  # until the buzzer has answered two ticks: the whole path is warm
                if "buzzer" in line and "signal" in line:
                    ticks += 1
                    if ticks >= 2:
                        break
            else:
                raise RuntimeError(f"the circuit never ticked (exit {process.wait()})")
            process.send_signal(signal.SIGUSR1)
            time.sleep(seconds)  # the measurement's own window, not a wait for a server
            process.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 30
            while not out.exists():
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the profile was not written")
                time.sleep(0.05)
            profile = json.loads(out.read_text())
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    modules = sorted({module for path in profile["entered"] if (module := _module(path)) is not None})
    calls = {
        (caller, callee)
        for callee_path, caller_path in profile["edges"]
        if (callee := _module(callee_path)) and (caller := _module(caller_path)) and caller != callee
    }
    both_ways = sorted({tuple(sorted(pair)) for pair in calls if (pair[1], pair[0]) in calls})
    return {
        "seconds": seconds,
        "modules": modules,
        "calls": sorted([list(pair) for pair in calls]),
        "both_ways": [list(pair) for pair in both_ways],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rooms", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="how long to profile the ticking circuit")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    result = measure(args.seconds)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{len(result['modules'])} runtime modules entered in {args.seconds:g} s of the circuit ticking under up:")
    for module in result["modules"]:
        print(f"  {module}")
    print("calling each other both ways:", ", ".join(" <-> ".join(pair) for pair in result["both_ways"]) or "none")


if __name__ == "__main__":
    main()
