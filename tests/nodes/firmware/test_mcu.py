"""nodes.firmware.mcu: real firmware on simavr through our helper, no fake of the MCU."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from mesh.errors import FirmwareError
from nodes.firmware.build import build
from nodes.firmware.mcu import MCU, MCUState
from nodes.firmware.pins import square_wave
from tests.nodes.firmware.common import MS, OWN, Recorded

pytestmark = pytest.mark.e2e


def booted(result, seconds: float = 0.05) -> Recorded:
    recorded = Recorded(result.elf)
    recorded.mcu.run_for(seconds)
    return recorded


def test_serial_both_ways_and_pin_13(firmware):
    with booted(firmware("lamp")) as lamp:
        assert lamp.texts() == ["lamp ready"]
        assert lamp.mcu.pin_mode(13) == "output" and lamp.mcu.pin_level(13) == 0
        lamp.mcu.uart_write(b"1\n")
        lamp.mcu.run_for(0.01)
        assert lamp.texts() == ["lamp on"] and lamp.mcu.pin_level(13) == 1
        lamp.mcu.uart_write(b"0\n")
        lamp.mcu.run_for(0.01)
        assert lamp.texts() == ["lamp off"]
        assert [(c.pin, c.value) for c in lamp.pins] == [(13, 0), (13, 1), (13, 0)]
        assert 50 * MS < lamp.pins[1].cycle < lamp.pins[2].cycle < 80 * MS


def test_the_buzzer_sounds_440_hz_for_100_ms(firmware):
    with booted(firmware("buzzer")) as buzzer:
        buzzer.mcu.uart_write(b"1\n")
        buzzer.mcu.run_for(0.2)
        buzzer.mcu.uart_write(b"0\nx\n")
        buzzer.mcu.run_for(0.01)
        assert buzzer.texts() == ["buzz buzz buzz", "...", "..."]
        edges = [c for c in buzzer.pins if c.pin == 8][1:]  # after pinMode's first level
        assert 0.097 < (edges[-1].cycle - edges[0].cycle) / 16e6 < 0.101 and 86 <= len(edges) <= 90
        wave = square_wave(buzzer.pins, 8)
        assert wave is not None and abs(wave.frequency - 440) < 1 and abs(wave.duty - 0.5) < 0.01


def test_serial_input_is_never_dropped_and_comes_at_the_baud_rate(firmware):
    data = bytes(range(32, 127)) * 11  # 1045 bytes at once: far more than simavr's 64-byte buffer
    with booted(firmware("echo")) as echo:
        cycles: list[int] = []
        echo.mcu.on_byte = lambda cycle, byte: (cycles.append(cycle), echo.output.append(byte))
        echo.mcu.uart_write(data)
        assert echo.mcu.uart_pending > 0
        echo.mcu.run_for(0.2)
        assert bytes(echo.output) == data and echo.mcu.uart_pending == 0
        # 115200 baud with U2X: 136 cycles a bit, and simavr 1.6 counts 11 bits a byte (a parity bit always)
        gaps = sorted(b - a for a, b in itertools.pairwise(cycles))
        assert 1490 <= gaps[len(gaps) // 2] <= 1500


def test_bytes_sent_before_serial_begin_wait_for_it(firmware):
    with Recorded(firmware("lamp").elf) as lamp:
        lamp.mcu.uart_write(b"1\n")  # at cycle 0: the receiver is not on yet
        lamp.mcu.run_for(0.05)
        assert lamp.texts() == ["lamp ready", "lamp on"]


def test_a_button_with_its_pull_up(firmware):
    with booted(firmware("button"), 0.01) as button:
        assert button.texts() == ["up"] and button.mcu.pin_mode(2) == "input_pullup"
        button.mcu.set_pin(2, 0)  # pressed, to ground
        button.mcu.run_for(0.01)  # pin 7 toggles all along: PORTD writes must not undo the press
        assert button.texts() == ["pressed"] and button.mcu.pin_level(13) == 1
        button.mcu.set_pin(2, None)  # let go: the pull-up again
        button.mcu.run_for(0.01)
        assert button.texts() == ["released"] and button.mcu.pin_level(13) == 0
        assert len([c for c in button.pins if c.pin == 7]) > 100


def test_pwm_comes_from_the_timer_registers_and_its_edges_are_not_pin_changes(firmware):
    with booted(firmware("pwm"), 0.3) as pwm:
        first = {c.pin: c for c in pwm.pwm if c.cycle < 100 * MS}
        assert round(first[5].frequency, 2) == 976.56 and round(first[5].duty, 3) == 0.254  # fast PWM
        assert round(first[9].frequency, 2) == 490.2 and round(first[9].duty, 3) == 0.251  # phase-correct
        later = [(c.pin, round(c.duty, 3), c.frequency > 0) for c in pwm.pwm if c.cycle >= 100 * MS]
        assert later == [(9, 0.749, True), (5, 0.0, False), (9, 0.0, False)]
        assert [(c.pin, c.value) for c in pwm.pins if c.pin in (5, 9)] == [(5, 0), (9, 0), (5, 0), (9, 0), (9, 1)]
        assert pwm.mcu.pwm(5) is None and pwm.mcu.pin_level(9) == 1


def _scripted(elf, steps: list[int]) -> tuple[list, bytes]:
    """The lamp with the same inputs at the same cycles, its run cut into calls at ``steps``."""
    inputs = {20 * MS: b"1\n", 35 * MS: b"0\n1\n", 60 * MS: b"0\n"}
    with Recorded(elf) as lamp:
        for target in steps:
            lamp.mcu.run_until(target)
            if target in inputs:
                lamp.mcu.uart_write(inputs[target])
        return list(lamp.pins), bytes(lamp.output)


def test_deterministic_however_its_runs_are_cut(firmware):
    elf = firmware("lamp").elf
    coarse = [20 * MS, 35 * MS, 60 * MS, 100 * MS]
    fine = sorted(set(range(0, 100 * MS + 1, 7_777)) | set(coarse))
    assert _scripted(elf, coarse) == _scripted(elf, coarse) == _scripted(elf, fine)
    assert [c.value for c in _scripted(elf, coarse)[0]] == [0, 1, 0, 1, 0]


def test_several_mcus_in_parallel_threads_each_as_alone(firmware):
    elf = firmware("lamp").elf
    alone = _scripted(elf, [20 * MS, 35 * MS, 60 * MS, 1000 * MS])
    outcomes = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(_scripted(elf, [20 * MS, 35 * MS, 60 * MS, 1000 * MS])))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [alone] * 3


@pytest.mark.parametrize(
    ("mode", "state", "survived"),
    [
        (1, MCUState.CRASHED, False),  # a jump past the end of flash
        (2, MCUState.CRASHED, False),  # a write to 0xFFFF
        (3, MCUState.RUNNING, False),  # a busy loop with interrupts off: it runs, only what it is given
        (4, MCUState.DONE, False),  # asleep with interrupts off
        (5, MCUState.RUNNING, True),  # ELPM reading flash[0xFFFFFF] (the stock simavr command segfaults)
        (6, MCUState.CRASHED, False),  # unbounded recursion
    ],
)
def test_misbehaving_firmware_never_takes_the_host_down(tmp_path, firmware_cache, mode, state, survived):
    path = tmp_path / "crash.ino"
    path.write_text(f"#define MODE {mode}\n" + (OWN / "crash.ino").read_text())
    with Recorded(build(path).elf) as crash:
        started = time.perf_counter()
        assert crash.mcu.run_for(0.5) == state
        assert time.perf_counter() - started < 5
        assert crash.texts() == (["start", "survived"] if survived else ["start"])
        if state is MCUState.RUNNING:
            assert 8_000_000 <= crash.mcu.cycle < 8_000_010  # what it was given, an instruction over at most
        else:
            stuck = crash.mcu.cycle
            assert crash.mcu.run_for(0.1) == state and crash.mcu.cycle == stuck  # dead: time stops for it
        if state is MCUState.CRASHED:
            assert "avr_sadly_crashed" in crash.mcu.log


def test_the_watchdog_resets_it(firmware):
    with Recorded(firmware("watchdog").elf) as dog:
        dog.mcu.run_for(0.1)  # boots, then the 60 ms watchdog bites once
        dog.mcu.set_pin(2, 0)  # held low across the next resets
        dog.mcu.run_for(0.1)
        dog.mcu.set_pin(2, None)
        dog.mcu.run_for(0.07)
        assert dog.texts() == [
            "boot power 1",
            "boot watchdog 1",
            "boot watchdog 0",
            "boot watchdog 0",
            "boot watchdog 1",
        ]
        assert len(dog.resets) == 4 and dog.mcu.state is MCUState.RUNNING
        assert [c.value for c in dog.pins if c.pin == 13] == [0, 1] * 5  # an input after each reset, then HIGH


def test_a_sleeping_firmware_is_fast_forwarded_the_same_however_cut(firmware):
    elf = firmware("sleepy").elf
    with Recorded(elf) as whole:
        started = time.thread_time()
        whole.mcu.run_for(2.01)
        assert time.thread_time() - started < 0.5  # asleep between timer0's ticks: far faster than real time
        reference = list(whole.pins)
    assert [(c.cycle // MS, c.value) for c in reference] == [(0, 0), (500, 1), (1000, 0), (1500, 1), (2000, 0)]
    with Recorded(elf) as cut:
        target, end = 0, int(2.01 * 16_000_000)
        while target < end:
            target = min(target + 3_331, end)
            cut.mcu.run_until(target)
            assert cut.mcu.cycle - target < 8  # sleeps are clipped at the target
        assert cut.pins == reference


def test_what_cannot_be_loaded_is_one_line(tmp_path, firmware_cache):
    with pytest.raises(FirmwareError, match="no such file"):
        MCU(tmp_path / "missing.elf")
    junk = tmp_path / "junk.elf"
    junk.write_text("not an ELF file")
    with pytest.raises(FirmwareError, match=r"cannot read the ELF file|no code in the ELF file"):
        MCU(junk)
    mcu = MCU(build(OWN / "echo.ino").elf)
    mcu.close()
    mcu.close()
    with pytest.raises(ValueError, match="closed"):
        mcu.run_for(0.001)
