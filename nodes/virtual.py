"""Virtual time: an event loop whose clock jumps to its next timer whenever nothing is ready to run.

:func:`run_virtual` runs a coroutine on a :class:`VirtualLoop` from t = 0: a simulation's hour
passes in the wall time its messages take, not in an hour. The nodes are the real ones,
unchanged: everything that waits in them (``@every``, timeouts, keepalive, backoff) waits on
the loop's clock (``loop.time()``), and their connections are in memory
(:mod:`mesh.network`), so nothing outside the loop can make work appear while it jumps.

How the clock moves: asyncio asks its selector to wait until the loop's next timer
(``select(timeout)``) only when no callback is ready. The virtual loop's selector waits for
nothing: it moves the clock by ``timeout`` and returns, so the next turn runs that timer.
The clock counts whole microseconds (as looptime does), so that sums of steps never drift
in floating point.

What still comes from outside, and how it is heard:

- **signals** (Ctrl-C) and other threads' ``call_soon_threadsafe`` wake the loop through its
  self-pipe, a real file descriptor: looked at every :data:`LOOK_EVERY` turns (a system call
  each time would cost more than a jump), so a signal is heard within a millisecond or so;
- **threads** started by ``run_in_executor`` (``asyncio.to_thread``, a DNS lookup): the clock
  stands still until they are done, so what they return comes at the same simulated instant
  whatever the machine's load;
- **real sockets** a sketch opens itself (anything :mod:`mesh.network` does not simulate):
  the loop gives them :data:`NOOP_CYCLES` idle turns before each jump, as looptime does. Their
  timing is the real world's: a run that uses them is not reproducible.

The pytest plugin's ``circuit`` fixture runs in pytest-asyncio's loop instead, made virtual by
looptime (:mod:`nodes.pytest_plugin`), with the same network.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import selectors
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

__all__ = ["LOOK_EVERY", "NOOP_CYCLES", "VirtualLoop", "run_virtual"]

T = TypeVar("T")

#: Idle turns before the clock jumps while real sockets are open (looptime's default: 42); the
#: circuit fixture's looptime loop waits as many.
NOOP_CYCLES = 3
#: Turns between two looks at the real world (the self-pipe) when there is nothing else real.
LOOK_EVERY = 64
#: Clock ticks per second: the clock counts microseconds.
TICKS = 1_000_000


class _Clock(selectors.BaseSelector):
    """The virtual loop's selector: a real one for what is real, and the clock, moved where asyncio would wait."""

    def __init__(self) -> None:
        self.real = selectors.DefaultSelector()
        self.ticks = 0
        self.now = 0.0
        self.jumps = 0  # how many times the clock moved (for the benchmark)
        self.turns = 0
        self.idle = 0
        self.threads: set[asyncio.Future[Any]] = set()  # run_in_executor's futures not done
        self.registered = 0  # file descriptors registered: the loop's self-pipe, and what is real

    # the selector's interface: what is real is the real selector's
    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = self.real.register(fileobj, events, data)
        self.registered += 1
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        key = self.real.unregister(fileobj)
        self.registered -= 1
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self.real.modify(fileobj, events, data)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self.real.get_map()

    def close(self) -> None:
        self.real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """``timeout`` 0: callbacks are ready; else the time to the next timer (None: there is none)."""
        self.turns += 1
        real = self.registered > 1  # more than the loop's self-pipe
        if real or self.threads or not self.turns % LOOK_EVERY:
            ready = self.real.select(0)
            if ready:
                self.idle = 0
                return ready
        if timeout == 0:
            return []
        if self.threads:  # the clock stands still while a thread works: wait for it in real time
            return self.real.select(None if timeout is None else max(timeout, 0.001))
        if real and self.idle < NOOP_CYCLES:
            self.idle += 1
            return []
        self.idle = 0
        if timeout is None:  # nothing scheduled at all: only a signal or a thread can go on
            return self.real.select(None)
        self.ticks += round(timeout * TICKS) or 1
        self.now = self.ticks / TICKS
        self.jumps += 1
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock (``time()``) starts at 0 and jumps to the next timer whenever nothing is ready."""

    def __init__(self) -> None:
        self.clock = _Clock()
        super().__init__(self.clock)

    def time(self) -> float:
        return self.clock.now

    def run_in_executor(  # type: ignore[override]  # (typeshed's TypeVarTuple says the same)
        self, executor: concurrent.futures.Executor | None, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self.clock.threads.add(future)
        future.add_done_callback(self.clock.threads.discard)
        return future


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on a new :class:`VirtualLoop` (virtual time, from t = 0); close the loop after."""
    loop = VirtualLoop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
