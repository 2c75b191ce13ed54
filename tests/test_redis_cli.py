"""The issue's "done when", as a person runs it: ``./arduino.py up`` of clock -> iopin -> buzzer, redis-cli on its ports.

Every process is real and in a process group of its own (tests.helpers.Process): the circuit,
each redis-cli, ``send`` and ``echo``. Nothing waits with a sleep: each step waits for a line.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import DEADLINE, MS, Process, arduino, free_ports, run, run_arduino, write_grid
from tests.redis_servers import REDIS_CLI, needs_redis

pytestmark = pytest.mark.e2e

GRID = """\
nodes:
  clock:  {{sketch: clock, port: {clock}, params: {{tacks: 1, delay: 3600}}}}
  iopin:  {{sketch: iopin, port: {iopin}, params: {{chance: 1.0, sequence: 1}}}}
  buzzer: {{sketch: buzzer, port: {buzzer}}}
wires:
  - clock -> iopin
  - iopin -> buzzer
"""


def cli(port: int, *args: str) -> Process:
    assert REDIS_CLI is not None
    return Process([REDIS_CLI, "-p", str(port), *args])


def cli_once(port: int, *args: str) -> str:
    assert REDIS_CLI is not None
    done = run([REDIS_CLI, "-p", str(port), *args])
    assert done.returncode == 0, done.stderr
    return done.stdout


def lines(process: Process, *expected: str, timeout: float = DEADLINE) -> None:
    """The next lines of ``process`` are ``expected``, in order (each a whole line)."""
    for line in expected:
        process.expect(f"^{line}$", timeout)


def heard(process: Process, *expected: str) -> None:
    """The lines ``expected`` come, in any order among others (publishers of several nodes interleave)."""
    wanted = set(expected)
    while wanted:
        wanted.discard(process.expect("^.*$").group(0))


def test_redis_cli_on_a_running_circuit(tmp_path: Path):
    """SUBSCRIBE buzzer/sound on the buzzer hears `send buzzer 1`; PSUBSCRIBE '*' on the iopin shows ticks, pins and
    sounds; PUBLISH buzzer/alarm on the buzzer returns its receivers and `echo buzzer/alarm` sees it."""
    needs_redis()
    ports = dict(zip(("clock", "iopin", "buzzer"), free_ports(3), strict=True))
    grid = write_grid(tmp_path, GRID.format(**ports))
    up = arduino("--grid", grid, "up")
    for name in ports:
        up.expect(rf"{name}\s+\| serving on")

    sounds = cli(ports["buzzer"], "SUBSCRIBE", "buzzer/sound")
    lines(sounds, "subscribe", "buzzer/sound", "1")
    done = run_arduino("--grid", grid, "send", "buzzer", "1")
    assert (done.returncode, done.stdout) == (0, "buzz buzz buzz\n"), done.stderr
    lines(sounds, "message", "buzzer/sound", "buzz buzz buzz")

    circuit = cli(ports["iopin"], "PSUBSCRIBE", "*")
    lines(circuit, "psubscribe", r"\*", "1")
    # The iopin subscribes to '#' at the clock and the buzzer on the client's behalf: press the clock's
    # button until a tick shows (the first press may come before the clock holds the subscription).
    deadline = time.monotonic() + DEADLINE
    while True:
        assert run_arduino("--grid", grid, "send", "clock", "press").returncode == 0
        try:
            circuit.expect(r"^clock/tick$", 500 * MS)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "no tick reached the PSUBSCRIBE client"
    assert run_arduino("--grid", grid, "send", "clock", "press").returncode == 0
    heard(circuit, "clock/tick", "iopin/pin", "buzzer/sound", "buzz buzz buzz")

    echo = arduino("--grid", grid, "echo", "buzzer/alarm")
    deadline = time.monotonic() + DEADLINE
    # Receivers: the iopin's '#' for its Redis client, the buzzer's own SUBSCRIBE client does not match, and echo's
    # subscription once it is held: publish until echo is counted.
    while (receivers := int(cli_once(ports["buzzer"], "PUBLISH", "buzzer/alarm", "on"))) < 2:
        assert time.monotonic() < deadline, f"echo never counted: {receivers} receivers"
    assert receivers == 2
    echo.expect("^buzzer/alarm on$")
    heard(circuit, "buzzer/alarm")
    assert cli_once(ports["buzzer"], "PING") == "PONG\n"

    status = run_arduino("--grid", grid, "status")
    assert "iopin: redis clients=" in status.stdout and "patterns=*" in status.stdout, status.stdout
    for process in (sounds, circuit, echo):
        process.kill()
    up.signal_group(subprocess.signal.SIGINT)  # type: ignore[attr-defined]
    assert up.wait() == 0
