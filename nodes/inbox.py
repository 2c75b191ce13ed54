"""The subscriber's side of publish/subscribe: its patterns, their handlers, and a lane per handler.

A publication that arrives on a link is handed over at once, never awaited: the link's
reader calls :meth:`Inbox.deliver` and goes on reading acks. Each handler has its own bounded
queue and task (a lane), which calls it with its messages in arrival order, so a slow handler
delays only its own deliveries. Each queue is bounded in bytes (``QUEUE_BYTES``: a burst of
thousands of small publications is held); when a handler's queue is full, the oldest message in it is
dropped and counted in ``lost`` (with a warning every ``WARN_EVERY`` seconds at most), as a
publisher does for a subscriber that falls behind.

The runtime's own handlers (the node's Redis clients: ``nodes.redis``) are *inline*: bounded
code of ours, never a sketch's, called in the turn a publication arrives, without a lane. They
sit in a table of their own (:attr:`Inbox.inline`), so a pattern may have a sketch's handler
and an inline one at once, each called once per publication.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from inspect import isawaitable
from typing import Any

from mesh.constants import QUEUE_BOUND, QUEUE_BYTES, WARN_EVERY
from mesh.index import PatternIndex, remembered
from mesh.throttle import Throttle, escape

from .watch import Watch

__all__ = ["Handler", "Inbox"]

Handler = Callable[[str, str], Any]  # (key, data) -> None or an awaitable
#: What one queued message costs besides its key and payload (a tuple and its place in the queue).
ENTRY_BYTES = 100


class Inbox:
    """The subscriber's side: its patterns, their handlers, and a lane per handler.

    A message that arrives is handed over at once, never awaited: a link's
    reader calls :meth:`deliver` and goes on reading acks. Each handler has its
    own bounded queue and task, which calls it with its messages in arrival
    order, so a slow handler delays only its own deliveries. When a handler's
    queue is full, the oldest message in it is dropped and counted in ``lost``
    (with a warning every :data:`WARN_EVERY` seconds at most), as a publisher
    does for a subscriber that falls behind.
    """

    def __init__(
        self, log: logging.Logger, bound: int = QUEUE_BOUND, watch: Watch | None = None, budget: int = QUEUE_BYTES
    ) -> None:
        self.log = log
        self.bound = bound
        #: Bytes each handler's queue holds at most (its keys and payloads, and ENTRY_BYTES each).
        self.budget = budget
        #: Times the handlers' code (sketch code): see :mod:`nodes.watch`.
        self.watch = watch if watch is not None else Watch(log)
        #: pattern -> its handler; change it with :meth:`add` and :meth:`remove`, which keep the index.
        self.handlers: dict[str, Handler] = {}
        #: pattern -> its inline handler (the runtime's own): :meth:`add_inline`, :meth:`remove_inline`.
        self.inline: dict[str, Handler] = {}
        self._index: PatternIndex[str] = PatternIndex()  # each pattern is its own owner
        self._held: dict[Handler, int] = {}  # handler -> how many patterns it handles
        #: Messages handed to at least one handler.
        self.received = 0
        #: Messages lost: dropped for us by publishers, and dropped here when a handler fell behind.
        self.lost = 0
        self._lanes: dict[Handler, _Lane | _Inline] = {}
        self._throttle = Throttle(log, WARN_EVERY)
        #: key -> the (pattern, handler) pairs it goes to, each handler once: what the index said,
        #: kept for the next message on the key (most keys repeat); at most ROUTES keys, emptied
        #: whenever a pattern comes or goes.
        self._routes: dict[str, list[tuple[str, Handler]]] = {}

    def add(self, pattern: str, handler: Handler) -> None:
        """Call ``handler`` for what ``pattern`` matches (in place of the pattern's previous handler, if any)."""
        self.remove(pattern)
        self._hold(self.handlers, pattern, handler)

    def remove(self, pattern: str) -> None:
        """Stop handling ``pattern``."""
        self._drop(self.handlers, pattern)

    def add_inline(self, pattern: str, handler: Handler) -> None:
        """Call ``handler(key, data)`` in the turn a publication ``pattern`` matches arrives: the runtime's own code only."""
        self.remove_inline(pattern)
        self._lanes[handler] = _Inline(self, handler)
        self._hold(self.inline, pattern, handler)

    def remove_inline(self, pattern: str) -> None:
        handler = self._drop(self.inline, pattern)
        if handler is not None and handler not in self._held:
            self._lanes.pop(handler, None)

    def _hold(self, table: dict[str, Handler], pattern: str, handler: Handler) -> None:
        table[pattern] = handler
        if pattern not in (self.inline if table is self.handlers else self.handlers):
            self._index.add(pattern, pattern)
        self._routes.clear()
        self._held[handler] = self._held.get(handler, 0) + 1

    def _drop(self, table: dict[str, Handler], pattern: str) -> Handler | None:
        handler = table.pop(pattern, None)
        if handler is None:
            return None
        if pattern not in (self.inline if table is self.handlers else self.handlers):
            self._index.remove(pattern, pattern)
        self._routes.clear()
        self._held[handler] -= 1
        if not self._held[handler]:
            del self._held[handler]
        return handler

    def sketch_wants(self, key: str) -> bool:
        """Whether a handler of the sketch's (not an inline one) wants ``key``."""
        return any(self.handlers.get(pattern) is handler for pattern, handler in self.route(key))

    def wants(self, key: str) -> bool:
        return bool(self.route(key))

    def route(self, key: str) -> list[tuple[str, Handler]]:
        """The (pattern, handler) pairs ``key`` goes to, each handler once, with its first matching pattern."""
        route = self._routes.get(key)
        if route is None:
            route = []
            handed: set[Handler] = set()
            for pattern, _ in self._index.match(key):
                for table in (self.handlers, self.inline):
                    handler = table.get(pattern)
                    if handler is not None and handler not in handed:  # each handler once per message
                        handed.add(handler)
                        route.append((pattern, handler))
            remembered(self._routes, key, route)
        return route

    def deliver(self, key: str, data: str, lost: int = 0) -> bool:
        """Hand a message to the lane of every handler whose pattern matches ``key``, without waiting.

        ``lost``: messages the publisher dropped for us before this one. False
        if no handler wants it (left over from a pattern unsubscribed a moment ago).
        """
        self.lost += lost
        route = self._routes.get(key)
        if route is None:
            route = self.route(key)
        lanes = self._lanes
        for pattern, handler in route:
            lane = lanes.get(handler)
            if lane is None:
                lane = lanes[handler] = _Lane(self, handler)
            lane.offer(pattern, key, data)
        if route:
            self.received += 1
        return bool(route)

    def deliver_to(self, pattern: str, key: str, data: str) -> bool:
        """Hand a message to the handler of ``pattern`` only (a retained value for a new subscription)."""
        handler = self.handlers.get(pattern)
        if handler is None:
            return False
        lane = self._lanes.get(handler)
        if lane is None:
            lane = self._lanes[handler] = _Lane(self, handler)
        lane.offer(pattern, key, data)
        self.received += 1
        return True

    def deliver_nowait(self, key: str, data: str) -> bool:
        """Hand over a message published by this very node (the same as :meth:`deliver`)."""
        return self.deliver(key, data)

    def dropped(self, handler: Handler, pattern: str) -> None:
        """A lane dropped its oldest message: count it, and warn now and then."""
        self.lost += 1
        self._throttle.warn(
            pattern, "handler for %s falls behind: %d message(s) lost so far", escape(pattern), self.lost
        )

    def subscribed(self, handler: Handler) -> bool:
        """Whether ``handler`` still handles a pattern."""
        return handler in self._held

    async def close(self) -> None:
        lanes = [lane for lane in self._lanes.values() if isinstance(lane, _Lane)]
        self._lanes = {}
        for lane in lanes:
            lane.task.cancel()
        await asyncio.gather(*(lane.task for lane in lanes), return_exceptions=True)


class _Inline:
    """An inline handler's stand-in for a lane: the handler is called at once, its failure logged."""

    def __init__(self, inbox: Inbox, handler: Handler) -> None:
        self.inbox = inbox
        self.handler = handler

    def offer(self, pattern: str, key: str, data: str) -> None:
        if self.inbox.subscribed(self.handler):
            try:
                self.handler(key, data)
            except Exception:  # a bug of ours: said, and the publication goes on to the other handlers
                self.inbox.log.exception("inline handler for %s failed on %s", escape(pattern), escape(key))


class _Lane:
    """One handler's bounded queue of messages, and the task that calls the handler with them."""

    def __init__(self, inbox: Inbox, handler: Handler) -> None:
        self.inbox = inbox
        self.handler = handler
        self.queue: deque[tuple[str, str, str]] = deque()  # (pattern, key, data)
        self.queued_bytes = 0
        self._wake = asyncio.Event()
        self.what = f"{getattr(handler, '__name__', 'handler')}() (topic handler)"
        self.task = asyncio.create_task(self._run(), name=f"handler {getattr(handler, '__qualname__', handler)}")

    def offer(self, pattern: str, key: str, data: str) -> None:
        cost = len(key) + len(data) + ENTRY_BYTES
        queue, inbox = self.queue, self.inbox
        while queue and (len(queue) >= inbox.bound or self.queued_bytes + cost > inbox.budget):
            dropped = queue.popleft()
            self.queued_bytes -= len(dropped[1]) + len(dropped[2]) + ENTRY_BYTES
            inbox.dropped(self.handler, dropped[0])
        queue.append((pattern, key, data))
        self.queued_bytes += cost
        self._wake.set()

    async def _run(self) -> None:
        inbox, handler, queue, what = self.inbox, self.handler, self.queue, self.what
        step = inbox.watch.step
        while True:
            await self._wake.wait()
            self._wake.clear()
            while queue:
                pattern, key, data = queue.popleft()
                self.queued_bytes -= len(key) + len(data) + ENTRY_BYTES
                if not inbox.subscribed(handler):
                    continue  # unsubscribed since it arrived
                try:
                    result = step(what, handler, key, data)
                    if result is not None and isawaitable(result):
                        await result
                except Exception:
                    inbox.log.exception("handler for %s failed on %s", escape(pattern), escape(key))
