"""``@every``: periodic sources for sketch methods.

``@every(seconds, times=0)`` marks a method to be called every ``seconds``,
``times`` times (0: forever), from the end of ``setup()`` until the node
stops. Either argument may be the name of an attribute that ``setup()`` sets,
so a sketch can take its period from its parameters::

    @every("delay", times="tacks")
    async def tick(self): ...

Calls are scheduled against the event loop's clock at ``start + k * period``,
so the period does not drift however long each call takes: ten thousand
periods of 1 ms end within a few ms of 10 s. A call that ends a little late
(the loop was busy) is followed at once by the next, which catches up; after a
long stall (more than one period, and more than :data:`CATCH_UP` seconds; a
clock waiting for its peer, say) the missed slots are skipped rather than
fired in a burst. One call never overlaps the next.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Callable
from typing import Any

__all__ = ["every", "periodic_methods", "run_every"]

_MARK = "__every__"
#: Seconds of lateness that are made up by calling at once; a longer stall skips slots.
CATCH_UP = 0.1


def every(seconds: float | str, *, times: int | str = 0) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Call the decorated method every ``seconds``, ``times`` times (0: forever)."""

    def mark(method: Callable[..., Any]) -> Callable[..., Any]:
        setattr(method, _MARK, (seconds, times))
        return method

    return mark


def periodic_methods(node: object) -> list[tuple[str, float, int]]:
    """``(name, seconds, times)`` for each ``@every`` method of ``node``, resolved after setup."""
    found = []
    for name in dir(type(node)):
        spec = getattr(getattr(type(node), name, None), _MARK, None)
        if spec is None:
            continue
        seconds, times = (getattr(node, value) if isinstance(value, str) else value for value in spec)
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0:
            raise ValueError(f"@every on {name}(): the period must be a number of seconds above 0, not {seconds!r}")
        if not isinstance(times, int) or isinstance(times, bool) or times < 0:
            raise ValueError(f"@every on {name}(): times must be a whole number, 0 or more, not {times!r}")
        found.append((name, float(seconds), times))
    return found


async def run_every(
    call: Callable[[], Any], seconds: float, times: int = 0, *, on_error: Callable[[BaseException], None]
) -> int:
    """Call ``call()`` at ``start + k * seconds``; return how many calls were made."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    slot = 0
    made = 0
    while not times or made < times:
        try:
            result = call()
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failing call must not end the schedule
            on_error(exc)
        made += 1
        if times and made >= times:
            break
        slot += 1
        now = loop.time()
        if now - (start + slot * seconds) > max(seconds, CATCH_UP):
            slot = math.ceil((now - start) / seconds)  # a long stall: skip the missed slots
        await asyncio.sleep(max(0.0, start + slot * seconds - now))
    return made
