"""Publish/subscribe: the publisher's side (a hub) and the subscriber's side.

No broker: the first level of a key names its publisher, so a subscriber
connects to the publishers its pattern can match (over the same persistent
links as streams) and tells each one its patterns. Each publisher keeps a
:class:`Hub` of the connections subscribed to it.

Slow subscribers never stall anyone: each has its own queue at the publisher,
bounded (:data:`QUEUE_BOUND` by default); when it is full the oldest message
is dropped, counted, logged, and reported to the subscriber with the next
message it does get (``lost`` in the ``pub`` frame).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from mesh import protocol
from mesh.throttle import Throttle, escape
from mesh.topics import matches

from .watch import Watch

__all__ = ["QUEUE_BOUND", "Handler", "Hub", "Inbox", "RemoteSubscriber"]

#: Messages queued for one subscriber at its publisher before the oldest is dropped.
QUEUE_BOUND = 1000
#: Seconds between two "dropping messages" warnings about the same subscriber.
WARN_EVERY = 5.0

Handler = Callable[[str, str], Any]  # (key, data) -> None or an awaitable


class RemoteSubscriber:
    """One connection subscribed to this node: its patterns and its own bounded queue."""

    def __init__(
        self,
        name: str,
        websocket: ServerConnection,
        log: logging.Logger,
        bound: int = QUEUE_BOUND,
        throttle: Throttle | None = None,
    ) -> None:
        self.name = name
        self.websocket = websocket
        self.log = log
        self.throttle = throttle if throttle is not None else Throttle(log, WARN_EVERY)
        self.bound = bound
        self.patterns: dict[str, None] = {}
        self.queue: deque[tuple[str, str]] = deque()
        self.sent = 0
        self.lost = 0
        self._unreported = 0
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._pump(), name=f"pub to {name}")

    def wants(self, key: str) -> bool:
        return any(matches(pattern, key) for pattern in self.patterns)

    def offer(self, key: str, data: str) -> None:
        """Queue a message without waiting; drop the oldest if the queue is full."""
        if len(self.queue) >= self.bound:
            self.queue.popleft()
            self.lost += 1
            self._unreported += 1
            self.throttle.warn(
                ("behind", self.name),
                "subscriber %s falls behind: %d message(s) dropped so far",
                escape(self.name),
                self.lost,
            )
        self.queue.append((key, data))
        self._wake.set()

    async def _pump(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self.queue:  # what piled up goes as one batch
                    frames: list[str] = []
                    while self.queue and len(frames) < protocol.BATCH:
                        key, data = self.queue.popleft()
                        lost, self._unreported = self._unreported, 0
                        frames.append(protocol.encode(protocol.Publish(key=key, data=data, lost=lost)))
                    await self.websocket.send(protocol.batch(frames))
                    self.sent += len(frames)
        except ConnectionClosed:
            pass

    def close(self) -> None:
        self._task.cancel()


class Hub:
    """The publisher's side: who is subscribed to this node, and handing them messages."""

    def __init__(
        self, node: str, log: logging.Logger, announce: Callable[[str, str], object], bound: int = QUEUE_BOUND
    ) -> None:
        self.node = node
        self.log = log
        self.announce = announce
        self.bound = bound
        self.subscribers: dict[ServerConnection, RemoteSubscriber] = {}
        #: "falls behind" warnings, one line per subscriber name every WARN_EVERY seconds at most, then a count.
        self.throttle = Throttle(log, WARN_EVERY)

    @property
    def count(self) -> int:
        """Subscriptions held: each pattern of each subscriber counts once."""
        return sum(len(sub.patterns) for sub in self.subscribers.values())

    def publish(self, key: str, data: str) -> int:
        """Hand ``data`` to every subscriber whose patterns match ``key``; how many."""
        handed = 0
        for subscriber in self.subscribers.values():
            if subscriber.wants(key):
                subscriber.offer(key, data)
                handed += 1
        return handed

    def add(self, websocket: ServerConnection, name: str, pattern: str) -> None:
        subscriber = self.subscribers.get(websocket)
        if subscriber is None:
            subscriber = self.subscribers[websocket] = RemoteSubscriber(
                name, websocket, self.log, self.bound, self.throttle
            )
        if pattern in subscriber.patterns:
            return
        subscriber.patterns[pattern] = None
        self.log.info("%s subscribed to %s", escape(name), escape(pattern))
        self._event("added", pattern, name)

    def remove(self, websocket: ServerConnection, pattern: str) -> None:
        subscriber = self.subscribers.get(websocket)
        if subscriber is None or subscriber.patterns.pop(pattern, False) is not None:
            return
        self.log.info("%s unsubscribed from %s", escape(subscriber.name), escape(pattern))
        self._event("removed", pattern, subscriber.name)

    def forget(self, websocket: ServerConnection) -> None:
        """The connection closed: drop its subscriptions, announcing each."""
        subscriber = self.subscribers.get(websocket)
        if subscriber is None:
            return
        subscriber.close()
        for pattern in list(subscriber.patterns):
            self.log.info("%s went away; forgetting its subscription to %s", escape(subscriber.name), escape(pattern))
            subscriber.patterns.pop(pattern)
            self._event("removed", pattern, subscriber.name)
        del self.subscribers[websocket]

    def _event(self, what: str, pattern: str, name: str) -> None:
        data = json.dumps({"pattern": pattern, "subscriber": name, "count": self.count}, separators=(",", ":"))
        self.announce(f"$subscribers/{what}", data)


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

    def __init__(self, log: logging.Logger, bound: int = QUEUE_BOUND, watch: Watch | None = None) -> None:
        self.log = log
        self.bound = bound
        #: Times the handlers' code (sketch code): see :mod:`nodes.watch`.
        self.watch = watch if watch is not None else Watch(log)
        self.handlers: dict[str, Handler] = {}
        #: Messages handed to at least one handler.
        self.received = 0
        #: Messages lost: dropped for us by publishers, and dropped here when a handler fell behind.
        self.lost = 0
        self._lanes: dict[Handler, _Lane] = {}
        self._throttle = Throttle(log, WARN_EVERY)

    def wants(self, key: str) -> bool:
        return any(matches(pattern, key) for pattern in self.handlers)

    def deliver(self, key: str, data: str, lost: int = 0) -> bool:
        """Hand a message to the lane of every handler whose pattern matches ``key``, without waiting.

        ``lost``: messages the publisher dropped for us before this one. False
        if no handler wants it (left over from a pattern unsubscribed a moment ago).
        """
        self.lost += lost
        handed: list[Handler] = []
        for pattern, handler in self.handlers.items():
            if handler in handed or not matches(pattern, key):
                continue  # each handler once per message, however many of its patterns match
            handed.append(handler)
            lane = self._lanes.get(handler)
            if lane is None:
                lane = self._lanes[handler] = _Lane(self, handler)
            lane.offer(pattern, key, data)
        if handed:
            self.received += 1
        return bool(handed)

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
        return handler in self.handlers.values()

    async def close(self) -> None:
        lanes, self._lanes = list(self._lanes.values()), {}
        for lane in lanes:
            lane.task.cancel()
        await asyncio.gather(*(lane.task for lane in lanes), return_exceptions=True)


class _Lane:
    """One handler's bounded queue of messages, and the task that calls the handler with them."""

    def __init__(self, inbox: Inbox, handler: Handler) -> None:
        self.inbox = inbox
        self.handler = handler
        self.queue: deque[tuple[str, str, str]] = deque()  # (pattern, key, data)
        self._wake = asyncio.Event()
        self.what = f"{getattr(handler, '__name__', 'handler')}() (topic handler)"
        self.task = asyncio.create_task(self._run(), name=f"handler {getattr(handler, '__qualname__', handler)}")

    def offer(self, pattern: str, key: str, data: str) -> None:
        if len(self.queue) >= self.inbox.bound:
            dropped = self.queue.popleft()
            self.inbox.dropped(self.handler, dropped[0])
        self.queue.append((pattern, key, data))
        self._wake.set()

    async def _run(self) -> None:
        inbox, handler, queue, what = self.inbox, self.handler, self.queue, self.what
        call = inbox.watch.call
        while True:
            await self._wake.wait()
            self._wake.clear()
            while queue:
                pattern, key, data = queue.popleft()
                if not inbox.subscribed(handler):
                    continue  # unsubscribed since it arrived
                try:
                    await call(what, handler, key, data)
                except Exception:
                    inbox.log.exception("handler for %s failed on %s", escape(pattern), escape(key))
