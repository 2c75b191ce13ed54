"""@every: periodic calls on the loop's clock, without drift, started after setup, cancelled on stop."""

from __future__ import annotations

import asyncio

import pytest

from mesh.grid import build_grid
from nodes import FactoryLoop, every, reactive
from nodes.delivery import run_every
from nodes.runtime import Node
from tests.helpers import DEADLINE, MS, until


async def test_a_thousand_periods_of_1_ms_end_at_one_second(virtual_time):
    """Calls at start + k * period: 1,000 periods of 1 ms end at 1 s, however long each call takes.

    In virtual time (looptime): the loop's clock moves only when every task waits, so the
    figures are exact, not at the mercy of a busy machine.
    """
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def call() -> None:
        times.append(loop.time())
        await asyncio.sleep(0.0004)  # each call takes 0.4 ms: a schedule that drifts would end at 1.4 s

    made = await run_every(call, 0.001, 1001, on_error=print)
    assert made == 1001
    assert times[-1] - times[0] == pytest.approx(1.0, abs=1e-9)
    assert all(t == pytest.approx(times[0] + k * 0.001, abs=1e-9) for k, t in enumerate(times))


async def test_a_failing_call_does_not_end_the_schedule():
    """An exception in one call is reported and the next calls still happen."""
    calls: list[int] = []
    errors: list[BaseException] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("second call fails")

    assert await run_every(flaky, MS, 4, on_error=errors.append) == 4
    assert len(calls) == 4 and [str(e) for e in errors] == ["second call fails"]


async def test_a_long_stall_skips_slots_instead_of_bursting(virtual_time):
    """A call that overruns by more than a period is not followed by a burst of catch-up calls."""
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def slow_first() -> None:
        times.append(loop.time())
        if len(times) == 1:
            await asyncio.sleep(0.25)  # 5 periods late

    await run_every(slow_first, 0.05, 3, on_error=print)
    start = times[0]
    assert [round(t - start, 9) for t in times] == [0, 0.25, 0.3]  # the missed slots are skipped, none bursts


async def test_a_little_lateness_is_caught_up(virtual_time):
    """A call that ends less than a period late is followed at once by the next, which keeps the schedule."""
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def late_first() -> None:
        times.append(loop.time())
        if len(times) == 1:
            await asyncio.sleep(0.07)  # 1.4 periods of 50 ms: within CATCH_UP (0.1 s)

    await run_every(late_first, 0.05, 4, on_error=print)
    start = times[0]
    assert [round(t - start, 9) for t in times] == [0, 0.07, 0.1, 0.15]


class Ticker(FactoryLoop):
    """Counts its own ticks."""

    def setup(self, period: float = 0.001, times: int = 0) -> None:
        self.period = period
        self.times = times
        self.ticks = 0

    @every("period", times="times")
    def tick(self) -> None:
        self.ticks += 1

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        return str(self.ticks)


async def test_every_starts_after_setup_and_stops_with_the_node():
    """@every reads its period and count from attributes set in setup(); stop() cancels it."""
    forever = Node(Ticker, "t", build_grid({"t": {"sketch": "ticker", "port": 0}}))
    await forever.start()
    assert forever.sketch.period == 0.001
    await until(lambda: forever.sketch.ticks >= 5, "five ticks")
    await forever.stop()
    stopped_at = forever.sketch.ticks
    await asyncio.sleep(10 * MS)
    assert stopped_at >= 5 and forever.sketch.ticks == stopped_at

    counted = Node(Ticker, "t", build_grid({"t": {"sketch": "ticker", "params": {"times": 3}}}))
    await asyncio.wait_for(counted.run(), DEADLINE)  # no port: done when its 3 ticks are done
    assert counted.sketch.ticks == 3


def test_bad_periods_are_refused():
    """A period that is not a positive number is one clear error."""
    node = Node(Ticker, "t", build_grid({"t": {"sketch": "ticker", "params": {"period": 0}}}))
    node.sketch.setup(period=0)
    from nodes.reactive import periodic_methods

    with pytest.raises(ValueError, match=r"@every on tick\(\): the period must be a number of seconds above 0, not 0"):
        periodic_methods(node.sketch)
