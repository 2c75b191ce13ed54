"""End to end: Arduino firmware in the circuit through the user's commands (./arduino.py up, send, echo, status, simulate).

Real processes, real firmware built by the real toolchain, run on simavr: what issue #28 is done
when, as a person would try it.
"""

from __future__ import annotations

import re
import shutil
import signal
from pathlib import Path

import pytest

from tests.helpers import DEADLINE, ROOT, arduino, free_ports, run_arduino, write_grid

pytestmark = pytest.mark.e2e

FIRMWARE = ROOT / "firmware"


@pytest.fixture
def lamp(tmp_path: Path) -> Path:
    """A grid with the shipped lamp.ino beside it, on a free port."""
    shutil.copy(FIRMWARE / "lamp.ino", tmp_path / "lamp.ino")
    (port,) = free_ports(1)
    return write_grid(tmp_path, f"nodes:\n  lamp: {{sketch: lamp.ino, port: {port}}}\n")


def test_send_answers_with_the_firmwares_line_and_echo_shows_its_pin_and_serial(lamp: Path, firmware_cache):
    up = arduino("--grid", lamp, "up")
    up.expect(
        r"lamp \| lamp\.ino: (built in [0-9.]+ s|cached) \([0-9,]+ bytes of flash, [0-9,]+ of RAM\), running on a simulated ATmega328P at 16 MHz"
    )
    up.expect(r"lamp \| serving on ")
    echo = arduino("--grid", lamp, "echo", "lamp/#", "--count", "3")
    up.expect(r"lamp \| echo-\d+ subscribed to lamp/#")
    sent = run_arduino("--grid", lamp, "send", "lamp", "1")
    assert (sent.returncode, sent.stdout, sent.stderr) == (0, "lamp on\n", "")
    assert echo.wait() == 0
    assert echo.output().splitlines() == ["lamp/pin/13 0", "lamp/pin/13 1", "lamp/serial lamp on"]  # 0: retained
    status = run_arduino("--grid", lamp, "status")
    assert re.search(
        r"^lamp: firmware=lamp\.ino mcu=ATmega328P clock=16 MHz cycles=\d+ pins=D13=out:1 state=running lag=[0-9.]+ flash=\d+ ram=\d+$",
        status.stdout,
        re.MULTILINE,
    ), status.stdout
    up.signal(signal.SIGINT)
    assert up.wait() == 0
    assert "Traceback" not in up.output()


def test_a_compile_error_is_one_line_per_error_at_the_sketchs_line(lamp: Path, firmware_cache):
    (lamp.parent / "lamp.ino").write_text(
        "void setup() {\n  pinMode(13, OUTPUT);\n}\nvoid loop() { digitalWrite(13, levle); }\n"
    )
    ran = run_arduino("--grid", lamp, "lamp", timeout=DEADLINE * 6)
    assert ran.returncode == 1
    assert ran.stderr == (
        f"Error: {lamp}:2: node 'lamp': lamp.ino does not build (1 error):\n"
        "lamp.ino:4:32: error: 'levle' was not declared in this scope\n"
    )


def test_two_simulations_write_the_same_trace_with_pin_13_in_it(tmp_path: Path, firmware_cache):
    """simulate --vcd, twice: the same bytes, pin 13 a 1-bit wire. The firmware blinks on its own, so that nothing
    but the MCU's lockstep with the virtual clock decides the trace (the lamp's answers to sends: test_sketch.py)."""
    shutil.copy(ROOT / "tests" / "nodes" / "firmware" / "sketches" / "blink.ino", tmp_path / "blink.ino")
    grid = write_grid(tmp_path, "nodes:\n  blink: {sketch: blink.ino, port: 8767}\n")
    traces = []
    for run in (1, 2):
        ran = run_arduino(
            "--grid", grid, "simulate", "--for", "1s", "--vcd", tmp_path / f"{run}.vcd", timeout=DEADLINE * 6
        )
        assert ran.returncode == 0, ran.stderr
        traces.append((tmp_path / f"{run}.vcd").read_bytes())
    assert traces[0] == traces[1]
    assert re.search(
        rb"\$scope module blink \$end\n.*\$scope module pin \$end\n\$var wire 1 (\S+) _13 \$end", traces[0], re.S
    )
    assert traces[0].count(b"\n#") > 10  # its changes: on and off every 100 ms


def test_the_shipped_firmware_scenario_runs(tmp_path: Path, firmware_cache):
    ran = run_arduino(
        "simulate",
        "--scenario",
        ROOT / "scenarios" / "firmware_buzzer.yaml",
        "--vcd",
        tmp_path / "buzzer.vcd",
        timeout=DEADLINE * 6,
    )
    assert ran.returncode == 0, ran.stderr
    assert "published: buzzer/pin/8 " in ran.stderr and "buzzer/serial 17, clock/tick 5, iopin/pin 15" in ran.stderr
    assert b" _8 $end" in (tmp_path / "buzzer.vcd").read_bytes()
