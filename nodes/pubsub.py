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
import inspect
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from mesh import protocol
from mesh.topics import matches

__all__ = ["QUEUE_BOUND", "Handler", "Hub", "Inbox", "RemoteSubscriber"]

#: Messages queued for one subscriber at its publisher before the oldest is dropped.
QUEUE_BOUND = 1000
#: Messages a publisher sends one subscriber in one websocket frame, at most.
BATCH = 256
#: Seconds between two "dropping messages" warnings about the same subscriber.
WARN_EVERY = 5.0

Handler = Callable[[str, str], Any]  # (key, data) -> None or an awaitable


class RemoteSubscriber:
    """One connection subscribed to this node: its patterns and its own bounded queue."""

    def __init__(self, name: str, websocket: ServerConnection, log: logging.Logger, bound: int = QUEUE_BOUND) -> None:
        self.name = name
        self.websocket = websocket
        self.log = log
        self.bound = bound
        self.patterns: dict[str, None] = {}
        self.queue: deque[tuple[str, str]] = deque()
        self.sent = 0
        self.lost = 0
        self._unreported = 0
        self._warned = -WARN_EVERY
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
            now = asyncio.get_running_loop().time()
            if now - self._warned >= WARN_EVERY:
                self._warned = now
                self.log.warning("subscriber %s falls behind: %d message(s) dropped so far", self.name, self.lost)
        self.queue.append((key, data))
        self._wake.set()

    async def _pump(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self.queue:  # what piled up goes as one batch
                    frames: list[str] = []
                    while self.queue and len(frames) < BATCH:
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
            subscriber = self.subscribers[websocket] = RemoteSubscriber(name, websocket, self.log, self.bound)
        if pattern in subscriber.patterns:
            return
        subscriber.patterns[pattern] = None
        self.log.info("%s subscribed to %s", name, pattern)
        self._event("added", pattern, name)

    def remove(self, websocket: ServerConnection, pattern: str) -> None:
        subscriber = self.subscribers.get(websocket)
        if subscriber is None or subscriber.patterns.pop(pattern, False) is not None:
            return
        self.log.info("%s unsubscribed from %s", subscriber.name, pattern)
        self._event("removed", pattern, subscriber.name)

    def forget(self, websocket: ServerConnection) -> None:
        """The connection closed: drop its subscriptions, announcing each."""
        subscriber = self.subscribers.get(websocket)
        if subscriber is None:
            return
        subscriber.close()
        for pattern in list(subscriber.patterns):
            self.log.info("%s went away; forgetting its subscription to %s", subscriber.name, pattern)
            subscriber.patterns.pop(pattern)
            self._event("removed", pattern, subscriber.name)
        del self.subscribers[websocket]

    def _event(self, what: str, pattern: str, name: str) -> None:
        data = json.dumps({"pattern": pattern, "subscriber": name, "count": self.count}, separators=(",", ":"))
        self.announce(f"$subscribers/{what}", data)


class Inbox:
    """The subscriber's side: its patterns, their handlers, and one ordered queue of what arrived.

    Messages from every publisher go through one bounded queue and are handed
    to the handlers in arrival order by one task, so a slow handler slows only
    this node (its publishers then drop what it cannot keep up with).
    """

    def __init__(self, log: logging.Logger, bound: int = QUEUE_BOUND) -> None:
        self.log = log
        self.handlers: dict[str, Handler] = {}
        self.received = 0
        self.lost = 0
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue(bound)
        self._task: asyncio.Task[None] | None = None

    def wants(self, key: str) -> bool:
        return any(matches(pattern, key) for pattern in self.handlers)

    async def deliver(self, key: str, data: str, lost: int = 0) -> None:
        """Queue a message that arrived (waits while the queue is full: backpressure)."""
        self.lost += lost
        if not self.wants(key):
            return  # left over from a pattern unsubscribed a moment ago
        if self._task is None:
            self._task = asyncio.create_task(self._dispatch(), name="inbox")
        await self._queue.put((key, data))

    def deliver_nowait(self, key: str, data: str) -> bool:
        """Queue a message published by this very node; False (and counted lost) if the queue is full."""
        if self._task is None:
            self._task = asyncio.create_task(self._dispatch(), name="inbox")
        try:
            self._queue.put_nowait((key, data))
        except asyncio.QueueFull:
            self.lost += 1
            return False
        return True

    async def _dispatch(self) -> None:
        while True:
            key, data = await self._queue.get()
            self.received += 1
            called: list[Handler] = []
            for pattern, handler in list(self.handlers.items()):
                if not matches(pattern, key) or handler in called:
                    continue  # each handler once per message, however many of its patterns match
                called.append(handler)
                try:
                    result = handler(key, data)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    self.log.exception("handler for %s failed on %s", pattern, key)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
