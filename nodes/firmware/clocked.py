"""An MCU tied to the running event loop's clock: the same rule live (wall time) and in virtual time.

The rule: at loop time ``t`` the MCU has run ``(t - t0) * freq`` cycles, ``t0`` being the loop
time at :meth:`ClockedMCU.start`. Targets are absolute, so the MCU never runs ahead of the clock
and never drifts from it: a slice that was late (a loaded machine) is caught up by the next one,
and :attr:`ClockedMCU.lag` says by how much it was behind.

Whoever owns it calls :meth:`ClockedMCU.advance` every slice (the firmware node does it from an
``@every`` method, so that the node's own schedule, freeze and stop apply to it):

- **live** (an ordinary loop): the MCU runs in a worker thread of its own (the helper releases
  the GIL), so the loop keeps serving while it runs; inputs (:meth:`write`, :meth:`set_pin`) are
  queued with the cycle of the loop's now and applied at that cycle by the next slice;
- **virtual** (the simulation's :class:`~nodes.virtual.VirtualLoop`, or looptime's loop with
  ``loop.looptime_on``, the circuit fixture's): everything runs inline. The loop's clock
  is whole microseconds and cycles follow from it by integer arithmetic, so the same inputs at
  the same loop times give the same outputs at the same cycles, run after run. Inputs are
  applied at once, at the exact cycle of the loop's now. (A worker thread would make looptime
  move its clock by wall time while it waits, and the virtual loop hold its clock still: runs
  would differ.)

This depends on nothing but the loop's clock: not on how the nodes around it talk.

Outputs reach the listeners in the loop's thread, in the order the MCU made them, at the end
of the slice they happened in (a slice late at most), each with its exact cycle:
:meth:`seconds` turns a cycle into the loop time it happened at.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
from collections.abc import Callable

from ..virtual import VirtualLoop
from .mcu import MCU, MCUState
from .pins import PinChange, PwmChange

__all__ = ["ClockedMCU", "Line", "is_virtual"]

#: Microseconds in a second: the loop's clock is read in whole microseconds (looptime's resolution).
_US = 1_000_000


class Line(tuple[int, str]):
    """A line the firmware printed: ``(cycle, text)``."""

    __slots__ = ()


def is_virtual(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` runs in virtual time (a simulation's own loop, or looptime's switched on)."""
    return isinstance(loop, VirtualLoop) or bool(getattr(loop, "looptime_on", False))


class ClockedMCU:
    """Runs ``mcu`` against the running loop's clock from :meth:`start`; listeners get what it does."""

    def __init__(
        self,
        mcu: MCU,
        *,
        on_pin: Callable[[PinChange], None] | None = None,
        on_pwm: Callable[[PwmChange], None] | None = None,
        on_line: Callable[[int, str], None] | None = None,
        on_reset: Callable[[int], None] | None = None,
        on_output: Callable[[bytes], None] | None = None,
    ) -> None:
        self.mcu = mcu
        self.on_pin, self.on_pwm, self.on_line, self.on_reset = on_pin, on_pwm, on_line, on_reset
        #: Every byte printed, in the order printed, a slice's at a time (a pty wants them, not lines).
        self.on_output = on_output
        #: Seconds the MCU was behind the clock after the last slice, and the most it ever was.
        self.lag = 0.0
        self.max_lag = 0.0
        self.slices = 0
        self.virtual = False
        self.state = MCUState.RUNNING
        self._t0 = 0.0
        self._cycle0 = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # one runner of the MCU at a time: the loop's thread or the worker
        # inputs waiting for their cycle (live), and what the MCU did, until handed out in the loop's thread
        self._inputs: collections.deque[tuple[int, Callable[[], None]]] = collections.deque()
        self._events: collections.deque[PinChange | PwmChange | Line | bytes | int] = collections.deque()
        mcu.on_pin = mcu.on_pwm = self._events.append
        mcu.on_line = lambda cycle, text: self._events.append(Line((cycle, text)))
        mcu.on_reset = self._events.append
        if on_output is not None:
            mcu.on_byte = lambda cycle, byte: self._events.append(bytes((byte,)))

    # -- the clock ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the clock: the MCU's present cycle is the loop's now."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.virtual = is_virtual(loop)
        self._t0 = loop.time()
        self._cycle0 = self.mcu.cycle
        if not self.virtual:
            self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"mcu {self.mcu.elf.name}")

    def stop(self) -> None:
        """Stop running the MCU (it stays where it is); the worker thread ends once its slice is done."""
        if self._worker is not None:
            self._worker.shutdown(wait=False, cancel_futures=True)
            self._worker = None

    def target(self, t: float | None = None) -> int:
        """The cycle the MCU should be at at loop time ``t`` (default: now)."""
        assert self._loop is not None, "not started"
        now = self._loop.time() if t is None else t
        ticks = max(0, round((now - self._t0) * _US))
        return self._cycle0 + ticks * self.mcu.freq // _US

    def seconds(self, cycle: int) -> float:
        """The loop time at which the MCU was at ``cycle``."""
        return self._t0 + (cycle - self._cycle0) / self.mcu.freq

    @property
    def cycles(self) -> int:
        """Cycles run since :meth:`start`."""
        return self.mcu.cycle - self._cycle0

    # -- running -----------------------------------------------------------------------------------

    async def advance(self) -> None:
        """Bring the MCU up to the loop's now (in the worker, live), then hand out what it did."""
        target = self.target()
        if self._worker is not None:
            self.state = await asyncio.get_running_loop().run_in_executor(self._worker, self._run, target)
        else:
            self.state = self._run(target)
        self.slices += 1
        self.lag = max(0.0, (self.target() - self.mcu.cycle) / self.mcu.freq)
        self.max_lag = max(self.max_lag, self.lag)
        self.dispatch()

    def _run(self, target: int) -> MCUState:
        """The inputs due first, each at its cycle, then on to ``target`` (whoever holds the lock)."""
        with self._lock:
            while self._inputs:
                cycle, apply = self._inputs.popleft()
                self.mcu.run_until(cycle)
                apply()
            return self.mcu.run_until(target)

    def dispatch(self) -> None:
        """Hand what the MCU did to the listeners, in order (the loop's thread)."""
        events = self._events
        while events:
            event = events.popleft()
            if isinstance(event, Line):
                if self.on_line is not None:
                    self.on_line(*event)
            elif isinstance(event, PinChange):
                if self.on_pin is not None:
                    self.on_pin(event)
            elif isinstance(event, PwmChange):
                if self.on_pwm is not None:
                    self.on_pwm(event)
            elif isinstance(event, bytes):
                out = bytearray(event)
                while events and isinstance(events[0], bytes):  # the bytes of a slice in one piece
                    out += events.popleft()  # type: ignore[arg-type]  # (bytes: checked above)
                if self.on_output is not None:
                    self.on_output(bytes(out))
            elif self.on_reset is not None:
                self.on_reset(event)

    # -- inputs ------------------------------------------------------------------------------------

    def write(self, data: bytes) -> int:
        """Bytes for the firmware's ``Serial``, at the cycle of the loop's now; that cycle."""
        return self._input(lambda: self.mcu.uart_write(data))

    def set_pin(self, pin: int, level: int | None) -> int:
        """Drive input ``pin`` (see :meth:`MCU.set_pin`) from the cycle of the loop's now; that cycle."""
        return self._input(lambda: self.mcu.set_pin(pin, level))

    def _input(self, apply: Callable[[], None]) -> int:
        cycle = self.target()
        self._inputs.append((cycle, apply))
        if self._worker is None:  # inline: at once, at its exact cycle
            self.state = self._run(cycle)
            self.dispatch()
        return cycle
