"""nodes.firmware.clocked: the MCU on the event loop's clock, in virtual time (looptime) and live."""

from __future__ import annotations

import asyncio

import pytest

from nodes.firmware.clocked import ClockedMCU
from nodes.firmware.mcu import MCU
from nodes.virtual import run_virtual
from tests.nodes.firmware.common import MS

pytestmark = pytest.mark.e2e


async def lamp_session(elf) -> tuple[list[tuple[int, str]], list[tuple[int, int]], list[float]]:
    """The lamp asked for on/off at fixed loop times: lines, pin 13's changes, and when each answer was seen."""
    loop = asyncio.get_running_loop()
    lines: list[tuple[int, str]] = []
    pins: list[tuple[int, int]] = []
    seen: list[float] = []
    with MCU(elf) as mcu:
        clock = ClockedMCU(
            mcu,
            on_line=lambda cycle, text: (lines.append((cycle, text)), seen.append(loop.time())),
            on_pin=lambda change: pins.append((change.cycle, change.value)),
        )
        clock.start()
        assert clock.virtual

        async def tick() -> None:
            while True:
                await asyncio.sleep(0.001)
                await clock.advance()

        ticking = asyncio.create_task(tick())
        for text, at in (("1", 0.25), ("0", 0.5), ("1", 0.75)):
            await asyncio.sleep(at - loop.time())
            assert clock.write(text.encode() + b"\n") == at * 16_000_000  # the cycle of the loop's now, exactly
        await asyncio.sleep(0.1)
        ticking.cancel()
    return lines, pins, seen


def test_in_virtual_time_the_same_inputs_give_the_same_outputs_at_the_same_cycles(firmware):
    elf = firmware("lamp").elf
    first, second = run_virtual(lamp_session(elf)), run_virtual(lamp_session(elf))
    assert first == second
    lines, pins, seen = first
    assert [text for _, text in lines] == ["lamp ready", "lamp on", "lamp off", "lamp on"]
    assert [value for _, value in pins] == [0, 1, 0, 1]
    assert 4_000_000 < pins[1][0] < 4_000_000 + 16 * MS  # the input at 0.25 s, the LED a little after
    # each answer is seen at the end of the 1 ms slice it was printed in
    assert all(0 < t - at <= 0.003 for t, at in zip(seen[1:], (0.25, 0.5, 0.75), strict=True))


async def test_live_it_is_never_ahead_of_the_clock_and_does_not_drift(firmware):
    loop = asyncio.get_running_loop()
    answers: list[str] = []
    with MCU(firmware("lamp").elf) as mcu:
        clock = ClockedMCU(mcu, on_line=lambda cycle, text: answers.append(text))
        clock.start()
        assert not clock.virtual
        try:
            for _ in range(20):
                await asyncio.sleep(0.01)
                await clock.advance()
                assert mcu.cycle <= clock.target(loop.time()) + 8  # never ahead (one instruction at most)
            # targets are absolute: one slice, however late, puts the MCU at the clock's cycle
            before = clock.target()
            await clock.advance()
            assert before <= mcu.cycle
            clock.write(b"1\n")  # live, queued for the next slice at the cycle of now
            for _ in range(100):
                if "lamp on" in answers:
                    break
                await asyncio.sleep(0.01)
                await clock.advance()
            assert answers == ["lamp ready", "lamp on"]
            assert clock.slices > 20 and clock.cycles > 0
        finally:
            clock.stop()
