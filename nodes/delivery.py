"""How the runtime calls a sketch: each message into ``loop()`` once, in order, in time; ``@every`` on its schedule.

The receiver's half of delivery is two pieces, in the order a message meets them:

- :class:`Session`: each message of a sender's session reaches ``loop()`` once, in
  order. A link names its session in its hello frame and numbers its messages; after a
  reconnect it re-sends everything it has no ack for, so the receiver may see a message
  again. The session remembers the outcome of the last messages it handled: a message
  seen before is not handed to ``loop()`` again, its remembered ack is sent instead. One
  message of a session at a time is in ``loop()``, the others wait their turn in arrival
  order: a re-sent message that arrives on a new connection while the old one is still
  in ``loop()`` waits for it, then finds it handled. (A turn costs nothing when nobody
  waits for it: no lock is taken, only a flag set, which is the common case.) Each
  session's outcomes are bounded in count and in bytes (``window``, ``budget``): past
  either, the oldest are forgotten; a forgotten message is still known to be a duplicate
  (its id is at or below the highest handled) and is answered ``duplicate``, never
  handed to ``loop()`` again. Who may hold how many sessions is :mod:`nodes.sessions`'.
- :class:`Reactor`: calls the sketch's ``loop()`` (never raising: a failing ``loop()`` is
  logged once and answered with an error; one that runs past the grid's ``timeout:`` is
  cancelled and answered with an error too; every step of it is timed by the node's
  :class:`~nodes.watch.Watch`), and counts what it handled and what still runs.

The memory lives as long as the receiver does: across a crash of the receiver,
delivery is at least once.

And the sketch's ``@every`` methods (:func:`run_every`): calls are scheduled against the event
loop's clock at ``start + k * period``, so the period does not drift however long each call
takes. A call that ends a little late (the loop was busy) is followed at once by the next,
which catches up; after a long stall (more than one period, and more than :data:`CATCH_UP`
seconds; a clock waiting for its peer, say) the missed slots are skipped rather than fired in
a burst. One call never overlaps the next. A frozen node's calls wait until it thaws.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import math
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from functools import partial
from sys import getsizeof
from typing import TYPE_CHECKING, Any, Protocol

from mesh.errors import LoopTimeout, MeshError, NoLoop
from mesh.outbox import wake_first
from mesh.protocol import ack_text_of

from .reactive import periodic_methods, reactive
from .watch import Watch

if TYPE_CHECKING:
    from .node import Node

__all__ = [
    "CATCH_UP",
    "OUTCOME_BYTES",
    "WINDOW",
    "WINDOW_BYTES",
    "Outcome",
    "Reactor",
    "Session",
    "next_use",
    "run_every",
    "start_every",
]

#: Outcomes remembered per session of a grid peer: more than a link's largest outbox by default.
WINDOW = 10_000
#: Bytes of outcomes remembered per session of a grid peer (the newest outcome is kept even if larger).
WINDOW_BYTES = 4 * 2**20
#: Seconds of lateness of an ``@every`` call that are made up by calling at once; a longer stall skips slots.
CATCH_UP = 0.1
#: What one remembered outcome costs besides its ack text: tuple, id, dict slots (a churned table: up to 3 per entry).
OUTCOME_BYTES = 256

Outcome = tuple[bool, str]  # (ok, ack or error)

#: Orders the uses of sessions: the least recently used has the smallest (nodes.sessions evicts by it).
next_use = itertools.count(1).__next__


def _cost(text: str) -> int:
    return OUTCOME_BYTES + getsizeof(text)


class Session:
    """What a receiver remembers of one sender's session: at most ``window`` outcomes and ``budget`` bytes."""

    def __init__(
        self,
        name: str = "",
        window: int = WINDOW,
        log: logging.Logger | None = None,
        budget: int = WINDOW_BYTES,
    ) -> None:
        self.name = name
        self.log = log or logging.getLogger("mesh")
        self.busy = False  # a message of this session is being handled; others wait in _waiters, in order
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.window = window
        self.budget = budget
        self.outcomes: OrderedDict[int, Outcome] = OrderedDict()
        self.bytes = 0  # what the outcomes remembered cost, by OUTCOME_BYTES and their ack texts
        self.highest = 0
        self.duplicates = 0
        self.used = next_use()
        #: Connections that use this session now: a session in use is never forgotten.
        self.connections = 0

    async def handle(self, msg_id: int, call: Callable[..., Awaitable[Outcome]], *args: Any) -> Outcome:
        """``call(*args)`` for a message not handled before; the remembered outcome for one that was.

        One message at a time, in the order they arrive (see the module's docstring).
        """
        self.used = next_use()
        if self.busy:
            await self._wait_turn()
        else:
            self.busy = True
        try:
            if msg_id <= self.highest:
                self.duplicates += 1
                self.log.debug("dropped a duplicate of message %d (session %r)", msg_id, self.name)
                return self.outcomes.get(msg_id, (True, "duplicate"))
            outcome = await call(*args)
            self.highest = msg_id
            # Remembered, inline: the common case costs no call of ours (_cost's sum, written out)
            outcomes = self.outcomes
            outcomes[msg_id] = outcome
            self.bytes += OUTCOME_BYTES + getsizeof(outcome[1])
            if len(outcomes) > self.window or self.bytes > self.budget:
                self._forget_oldest()
            return outcome
        finally:
            if not self._waiters or not wake_first(self._waiters):  # _pass_turn()
                self.busy = False

    async def _wait_turn(self) -> None:
        """Wait until the messages that came before are handled; return holding the turn."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._pass_turn()  # handed the turn, cancelled before taking it: the next one gets it
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def _pass_turn(self) -> None:
        """The message is handled: the next one waiting gets the turn, else nobody holds it."""
        if not wake_first(self._waiters):
            self.busy = False

    def _forget_oldest(self) -> None:
        """Forget the oldest outcomes while past the window or the budget (never the newest)."""
        outcomes = self.outcomes
        while len(outcomes) > 1 and (len(outcomes) > self.window or self.bytes > self.budget):
            _, (_, text) = outcomes.popitem(last=False)
            self.bytes -= _cost(text)


class Reactor:
    """Calls a sketch's ``loop()`` for the server and the links; counts what it handled.

    ``messages_in`` counts the messages handed to ``loop()``; ``inflight`` those still
    running; ``await idle()`` returns once none is.
    """

    def __init__(
        self, sketch: object, log: logging.Logger, watch: Watch | None = None, timeout: float | None = None
    ) -> None:
        marked = inspect.getattr_static(type(sketch), "loop", None)
        if not isinstance(marked, reactive):
            raise TypeError(f"{type(sketch).__name__}.loop must be an async method decorated with @reactive")
        self.function = marked.function
        self.sketch = sketch
        self.log = log
        self.watch = watch if watch is not None else Watch(log)
        #: Seconds one ``loop()`` call may take before it is cancelled and its sender told (None: no bound).
        self.timeout = timeout
        self.messages_in = 0
        self.inflight = 0
        #: Whether the node has said that its sketch has no loop() (at start, or at the first message).
        self.told_no_loop = False
        self._idle: asyncio.Future[None] | None = None  # made by idle() only: no event to set per message

    async def handle(self, channel: str, message: str) -> tuple[bool, str]:
        """Call ``loop`` for serving: ``(True, ack)``, or ``(False, why)`` if it raised."""
        self.messages_in += 1
        self.inflight += 1
        try:
            if self.timeout is None:
                ack = await self.watch.run(self.function(self.sketch, channel, message), "loop()")
            else:
                ack = await self._bounded(channel, message, self.timeout)
            return True, ack_text_of(ack)
        except LoopTimeout as exc:  # one line; the sender gets the same words
            self.log.warning("loop() on %r: %s", message, exc)
            return False, str(exc)
        except NoLoop as exc:  # a sketch without loop(): its senders are told; the node says it once
            if not self.told_no_loop:
                self.told_no_loop = True
                self.log.warning("%s; every message sent here is answered with this error", exc)
            return False, str(exc)
        except MeshError as exc:  # expected (a peer away, say): one line, no traceback
            self.log.error("loop() on %r: %s", message, exc)
            return False, f"loop() failed: {exc}"
        except Exception as exc:
            self.log.exception("loop() failed on %r (channel %r)", message, channel)
            return False, f"loop() failed: {type(exc).__name__}: {exc}"
        finally:
            self.inflight -= 1
            if not self.inflight and self._idle is not None:
                if not self._idle.done():
                    self._idle.set_result(None)
                self._idle = None

    async def idle(self) -> None:
        """Return once no ``loop()`` call is running."""
        if self.inflight:
            if self._idle is None or self._idle.done():  # done: cancelled by a waiter that gave up
                self._idle = asyncio.get_running_loop().create_future()
            await self._idle

    async def _bounded(self, channel: str, message: str, seconds: float) -> object:
        """``loop()`` cancelled after ``seconds`` (the grid's ``timeout:``); LoopTimeout then.

        A deadline can cancel a ``loop()`` that awaits, not one that blocks: ``time.sleep()``
        runs to its end whatever the deadline, and the watch reports it.
        """
        bound = asyncio.timeout(seconds)
        try:
            async with bound:
                return await self.watch.run(self.function(self.sketch, channel, message), "loop()")
        except TimeoutError:
            if not bound.expired():
                raise  # loop()'s own TimeoutError, not ours
            raise LoopTimeout(seconds) from None


class Pausable(Protocol):
    """What holds an ``@every`` schedule still: ``thawed`` is an event to wait for while it is set (a frozen node)."""

    thawed: asyncio.Event | None


def start_every(node: Node) -> list[asyncio.Task[int]]:
    """Start the ``@every`` methods of ``node``'s sketch, each as a task; ValueError if a mark is wrong."""
    tasks = []
    for name, seconds, times in periodic_methods(node.sketch):
        call = partial(node.watch.step, f"{name}() (@every)", node.hook(name))
        task = asyncio.create_task(
            run_every(call, seconds, times, on_error=partial(_failed, node, name), paused=node),
            name=f"{node.name}.{name}",
        )
        tasks.append(task)
    return tasks


def _failed(node: Node, name: str, exc: BaseException) -> None:
    if isinstance(exc, MeshError):
        node.log.error("%s: %s", name, exc)
    else:
        node.log.error("%s() failed", name, exc_info=exc)


async def run_every(
    call: Callable[[], Any],
    seconds: float,
    times: int = 0,
    *,
    on_error: Callable[[BaseException], None],
    paused: Pausable | None = None,
) -> int:
    """Call ``call()`` at ``start + k * seconds``; return how many calls were made.

    A call waits while ``paused.thawed`` is set (a frozen node), then is made.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    slot = 0
    made = 0
    while not times or made < times:
        try:
            while paused is not None and (thawed := paused.thawed) is not None:
                await thawed.wait()
            result = call()
            if result is not None and inspect.isawaitable(result):
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
