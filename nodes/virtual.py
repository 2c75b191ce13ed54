"""Virtual time: an event loop whose clock jumps ahead whenever every task waits (looptime's).

:func:`run_virtual` runs a coroutine on such a loop from t = 0: a simulation's hour passes in
the wall time its messages take, not in an hour. The nodes are the real ones, unchanged:
everything that waits in them (``@every``, timeouts, keepalive, backoff) waits on the loop's
clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import looptime

__all__ = ["NOOP_CYCLES", "run_virtual"]

T = TypeVar("T")

#: Turns of the loop with nothing to do that looptime waits before it moves the clock (its default: 42).
#: Bytes written to a loopback socket are readable before send() returns, so a turn's I/O shows in the
#: next poll; a few turns are margin enough, and each jump of the clock costs that many polls.
NOOP_CYCLES = 3


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on a new event loop in virtual time (looptime's), from t = 0; close the loop after."""
    loop = looptime.new_event_loop(start=0.0, noop_cycles=NOOP_CYCLES)
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
