"""Publish/subscribe: the publisher's side (a hub) and the subscriber's side.

No broker: the first level of a key names its publisher, so a subscriber
connects to the publishers its pattern can match (over the same persistent
links as streams) and tells each one its patterns. Each publisher keeps a
:class:`Hub` of the connections subscribed to it.

Slow subscribers never stall anyone: each has its own queue at the publisher,
bounded (:data:`QUEUE_BOUND` by default); when it is full the oldest message
is dropped, counted, logged, and reported to the subscriber with the next
message it does get (``lost`` in the ``pub`` frame). A subscriber that takes
nothing for :data:`SEND_TIMEOUT` seconds is dropped (its connection aborted).

A publisher keeps the last *retained* value of each of its keys (``publish(...,
retain=True)``; an empty value clears the key), at most :data:`MAX_RETAINED` keys
of at most :data:`MAX_RETAINED_SIZE` bytes each. A new subscription gets, at once and
before anything published after it, the retained value of every key its pattern
matches, in ``pub`` frames marked ``retained``: MQTT's retained messages.

Both sides find who wants a key through a :class:`mesh.index.PatternIndex`:
a publication costs about the key's levels and the matching subscriptions, not
the number of patterns held, and each subscription added or removed costs its
pattern's levels. What one connection and one node may hold is capped
(:data:`MAX_PATTERNS_PER_CONNECTION`, :data:`MAX_SUBSCRIPTIONS`,
:data:`MAX_PATTERN_LENGTH`, :data:`MAX_PATTERN_LEVELS`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from mesh import protocol
from mesh.connection import SEND_TIMEOUT, send_or_abort, writable, write_now
from mesh.constants import DEFAULT_MAX_SIZE
from mesh.errors import RetainLimit, SubscriptionLimit
from mesh.index import PatternIndex
from mesh.throttle import Throttle, escape
from mesh.topics import matches

from .watch import Watch

__all__ = [
    "MAX_PATTERNS_PER_CONNECTION",
    "MAX_PATTERN_LENGTH",
    "MAX_PATTERN_LEVELS",
    "MAX_RETAINED",
    "MAX_RETAINED_SIZE",
    "MAX_SUBSCRIPTIONS",
    "PUB_FRAME_LIMIT",
    "QUEUE_BOUND",
    "SEND_TIMEOUT",
    "Handler",
    "Hub",
    "Inbox",
    "Publication",
    "RemoteSubscriber",
]

#: Messages queued for one subscriber at its publisher before the oldest is dropped.
QUEUE_BOUND = 1000
#: Patterns one connection may hold at a node: past it, a sub gets an error frame.
MAX_PATTERNS_PER_CONNECTION = 1000
#: Subscriptions (patterns of all connections) one node holds at most: past it, a sub gets an error frame.
MAX_SUBSCRIPTIONS = 20_000
#: Characters in one pattern a node holds at most (MQTT allows more; keys here are short).
MAX_PATTERN_LENGTH = 256
#: Levels in one pattern a node holds at most (each is a level of the pattern index).
MAX_PATTERN_LEVELS = 16
#: Bytes of the largest pub frame a publisher sends: what a websockets client takes by default
#: (and a node, unless its max_size says more). A larger publication is dropped and counted lost.
PUB_FRAME_LIMIT = DEFAULT_MAX_SIZE
#: Keys one node keeps a retained value for at most: past it, publish(..., retain=True) on a new key raises.
MAX_RETAINED = 1000
#: Bytes (UTF-8) of one retained value at most: past it, publish(..., retain=True) raises.
MAX_RETAINED_SIZE = 16 * 1024
#: Seconds between two "dropping messages" warnings about the same subscriber.
WARN_EVERY = 5.0
#: Keys a publisher remembers the subscribers of, and a subscriber the handlers of; keys longer than
#: MAX_PATTERN_LENGTH are never kept (a peer's key may be long): the index is asked again for those.
ROUTES = 1024

Handler = Callable[[str, str], Any]  # (key, data) -> None or an awaitable


T = TypeVar("T")


def _remembered(routes: dict[str, T], key: str, route: T) -> T:
    """``route``, kept in ``routes`` as ``key``'s (at most ROUTES keys: all forgotten past that; no overlong key)."""
    if len(key) <= MAX_PATTERN_LENGTH:
        if len(routes) >= ROUTES:
            routes.clear()
        routes[key] = route
    return route


def check_limits(pattern: str) -> None:
    """:class:`SubscriptionLimit` if ``pattern`` is longer or deeper than a node holds."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise SubscriptionLimit(
            f"pattern too long: {len(pattern)} characters, a node takes at most {MAX_PATTERN_LENGTH}"
        )
    levels = pattern.count("/") + 1
    if levels > MAX_PATTERN_LEVELS:
        raise SubscriptionLimit(f"pattern too deep: {levels} levels, a node takes at most {MAX_PATTERN_LEVELS}")


class Publication:
    """One message on its way to subscribers, encoded once for all of them.

    ``frame`` is its ``pub`` frame with no ``lost`` count, the frame nearly every
    subscriber gets; a subscriber that has losses to report gets a frame of its
    own (:meth:`frame_for`), spliced from it. ``size`` is the frame's length in
    UTF-8 bytes. Only the frame is kept, not the data beside it: a queue of
    large publications costs their frames' size once, whatever the subscribers.
    """

    __slots__ = ("frame", "key", "retained", "size")

    def __init__(self, key: str, data: str, retained: bool = False) -> None:
        self.key = key
        self.retained = retained
        self.frame = protocol.encode_pub(key, data, retained=retained)
        self.size = len(self.frame) if self.frame.isascii() else len(self.frame.encode("utf-8", "surrogatepass"))

    def frame_for(self, lost: int) -> str:
        """The frame for a subscriber that lost ``lost`` messages since its previous one."""
        if not lost:
            return self.frame
        # encode_pub writes lost after data and before retained, the frame's last field if there.
        tail = _RETAINED_TAIL if self.retained else "}"
        return f'{self.frame[: -len(tail)]},"lost":{lost}{tail}'


_RETAINED_TAIL = ',"retained":true}'


class RemoteSubscriber:
    """One connection subscribed to this node: its patterns and its own bounded queue.

    A publication is queued, and written at the end of the event loop's turn
    straight to the connection's transport, with whatever else the turn
    published, while the connection takes it without waiting (see
    :meth:`Hub.write_due`). A connection past its write limit gets its queue
    from a task of its own, which waits for it to drain, at most
    :data:`SEND_TIMEOUT` seconds, and drops it past that.
    """

    def __init__(
        self,
        name: str,
        websocket: ServerConnection,
        log: logging.Logger,
        bound: int = QUEUE_BOUND,
        throttle: Throttle | None = None,
        hub: Hub | None = None,
    ) -> None:
        self.name = name
        self.websocket = websocket
        self.log = log
        self.throttle = throttle if throttle is not None else Throttle(log, WARN_EVERY)
        self.bound = bound
        self.hub = hub
        self.patterns: dict[str, None] = {}
        self.queue: deque[Publication] = deque()
        self.sent = 0
        self.lost = 0
        #: Subscriptions this connection asked for past MAX_PATTERNS_PER_CONNECTION.
        self.refused = 0
        self._unreported = 0
        self._wake = asyncio.Event()
        self.closed = False
        #: Set while nothing is queued or being written: what a stopping node waits for (Hub.flush).
        self.idle = asyncio.Event()
        self.idle.set()
        self._task = asyncio.create_task(self._pump(), name=f"pub to {name}")

    def offer(self, key: str, data: str, retained: bool = False) -> None:
        """Queue a message without waiting; drop the oldest if the queue is full."""
        self.offer_publication(Publication(key, data, retained))

    def offer_publication(self, publication: Publication) -> None:
        """Queue a publication (shared with other subscribers) without waiting; drop the oldest if full."""
        queue = self.queue
        if len(queue) >= self.bound:
            queue.popleft()
            self._drop("falls behind")
        queue.append(publication)
        if self.idle.is_set():  # the first since the queue emptied: written at the end of this turn
            self.idle.clear()
            if self.hub is not None:
                self.hub.due(self)
            else:
                self._wake.set()

    def _drop(self, why: str) -> None:
        """One message for this subscriber is lost: count it, report it with the next pub, warn now and then."""
        self.lost += 1
        self._unreported += 1
        self.throttle.warn(
            ("lost", self.name), "subscriber %s %s: %d message(s) dropped so far", escape(self.name), why, self.lost
        )

    def _batch(self) -> tuple[str, int]:
        """Pub frames from the head of the queue, at most BATCH frames and BATCH_BYTES: (text, frames)."""
        frames: list[str] = []
        size = 0
        queue = self.queue
        while queue and len(frames) < protocol.BATCH:
            publication = queue[0]
            if self._unreported:
                frame = publication.frame_for(self._unreported)
                length = len(frame) if frame.isascii() else len(frame.encode())
            else:
                frame, length = publication.frame, publication.size
            if length > PUB_FRAME_LIMIT:  # more than the subscriber can take: lost, not sent
                queue.popleft()
                self._drop(
                    f"cannot take a publication of {length} bytes on {publication.key} (at most {PUB_FRAME_LIMIT})"
                )
                continue
            if frames and size + length > protocol.BATCH_BYTES:
                break
            queue.popleft()
            self._unreported = 0
            frames.append(frame)
            size += length + 1
        return protocol.batch(frames) if frames else "", len(frames)

    def write_due(self, shared: dict[tuple[Publication, ...], bytes]) -> None:
        """End of the turn: write the queue straight to the transport, or hand it to the task if it must wait.

        ``shared``: the bytes of the batches already built this turn for other
        subscribers, by the publications they hold: a batch is built once for all
        the subscribers that get the same publications (no losses to report).
        """
        websocket, queue = self.websocket, self.queue
        if self.closed:
            queue.clear()
            self.idle.set()
            return
        try:
            while queue:
                if not writable(websocket):
                    if websocket.protocol.state is not State.OPEN:
                        queue.clear()  # closing: the server forgets this subscriber when its handler ends
                        break
                    self._wake.set()  # past its write limit: the task waits for it, bounded
                    return
                whole = None
                if not self._unreported and len(queue) <= protocol.BATCH:
                    whole = tuple(queue)
                    data = shared.get(whole)
                    if data is not None:
                        queue.clear()
                        write_now(websocket, data)
                        self.sent += len(whole)
                        continue
                text, count = self._batch()
                if not count:
                    continue
                data = text.encode()
                if whole is not None and not queue and count == len(whole):
                    shared[whole] = data  # all of it, as is: the next subscriber with the same queue reuses it
                write_now(websocket, data)
                self.sent += count
        except Exception as exc:  # what broadcast() shrugs off: the connection is going, its handler cleans up
            queue.clear()
            self.log.debug("could not write to subscriber %s: %s", escape(self.name), escape(str(exc)))
        self.idle.set()

    async def _pump(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self.queue:  # what piled up goes in batches
                    text, count = self._batch()
                    if not count:
                        continue
                    if not await send_or_abort(self.websocket, text):
                        self.log.warning(
                            "subscriber %s took nothing for %g s: dropping its connection",
                            escape(self.name),
                            SEND_TIMEOUT,
                        )
                        return
                    self.sent += count
                self.idle.set()
        except ConnectionClosed:
            pass
        finally:
            self.idle.set()  # nothing more will be written: nobody waits for it

    def close(self) -> None:
        self.closed = True
        self._task.cancel()


class Hub:
    """The publisher's side: who is subscribed to this node, and handing them messages.

    ``index`` finds the subscribers a key matches; ``count`` (the subscriptions
    held) is the index's size, kept as they come and go.
    """

    def __init__(
        self, node: str, log: logging.Logger, announce: Callable[[str, str], object], bound: int = QUEUE_BOUND
    ) -> None:
        self.node = node
        self.log = log
        self.announce = announce
        self.bound = bound
        self.per_connection = MAX_PATTERNS_PER_CONNECTION
        self.most = MAX_SUBSCRIPTIONS
        self.subscribers: dict[ServerConnection, RemoteSubscriber] = {}
        #: "falls behind" warnings, one line per subscriber name every WARN_EVERY seconds at most, then a count.
        self.throttle = Throttle(log, WARN_EVERY)
        self.index: PatternIndex[RemoteSubscriber] = PatternIndex()
        #: key -> its last retained value (publish(..., retain=True)), oldest first.
        self.retained: dict[str, str] = {}
        self.most_retained = MAX_RETAINED
        self.retained_size = MAX_RETAINED_SIZE
        #: Subscribers with publications to write at the end of this turn (see write_due), in order.
        self._due: list[RemoteSubscriber] = []
        #: key -> the subscribers it goes to, as the index said: at most ROUTES keys, emptied whenever
        #: a subscription comes or goes.
        self._routes: dict[str, list[RemoteSubscriber]] = {}

    @property
    def count(self) -> int:
        """Subscriptions held: each pattern of each subscriber counts once."""
        return len(self.index)

    def publish(self, key: str, data: str) -> int:
        """Hand ``data`` to every subscriber whose patterns match ``key``; how many. Encoded once for all."""
        if not self.index:
            return 0
        route = self._routes.get(key)
        if route is None:
            route = _remembered(self._routes, key, list(self.index.owners(key)))
        if route:
            publication = Publication(key, data)
            for subscriber in route:
                subscriber.offer_publication(publication)
        return len(route)

    def due(self, subscriber: RemoteSubscriber) -> None:
        """``subscriber``'s queue was empty and has a publication: write it at the end of this turn."""
        if not self._due:
            asyncio.get_running_loop().call_soon(self.write_due)
        self._due.append(subscriber)

    def write_due(self) -> None:
        """Write what this turn published straight to each subscriber's transport, as broadcast() does.

        One websocket frame per subscriber per turn, holding everything the turn
        gave it, built once for every subscriber that gets the same publications.
        """
        due, self._due = self._due, []
        shared: dict[tuple[Publication, ...], bytes] = {}
        for subscriber in due:
            subscriber.write_due(shared)

    def retain(self, key: str, data: str) -> None:
        """Keep ``data`` as ``key``'s retained value (empty: forget it); :class:`RetainLimit` past a limit."""
        if not data:
            self.retained.pop(key, None)
            return
        size = len(data) if data.isascii() else len(data.encode("utf-8", "surrogatepass"))
        if size > self.retained_size:
            raise RetainLimit(
                f"cannot retain {size} bytes on {key}: a retained value holds at most {self.retained_size} bytes"
            )
        if key not in self.retained and len(self.retained) >= self.most_retained:
            raise RetainLimit(
                f"cannot retain a value on {key}: this node already retains {len(self.retained)} keys,"
                f" the most it keeps ({self.most_retained}); clear one with an empty value"
            )
        self.retained[key] = data

    def retained_for(self, pattern: str) -> list[tuple[str, str]]:
        """The retained ``(key, value)`` pairs ``pattern`` matches: a lookup for a plain key, else one pass."""
        if "+" not in pattern and "#" not in pattern:
            data = self.retained.get(pattern)
            return [] if data is None else [(pattern, data)]
        return [(key, data) for key, data in self.retained.items() if matches(pattern, key)]

    async def flush(self, within: float) -> None:
        """Wait (at most ``within`` seconds) until every subscriber has been written all that was queued for it."""
        self.write_due()
        waiting = [sub.idle.wait() for sub in self.subscribers.values() if not sub.idle.is_set()]
        if waiting:
            try:
                async with asyncio.timeout(within):
                    await asyncio.gather(*waiting)
            except TimeoutError:
                self.log.info("not every subscriber took the last publications within %g s", within)

    def add(self, websocket: ServerConnection, name: str, pattern: str) -> int:
        """Hold ``pattern`` for this connection and announce it; :class:`SubscriptionLimit` past a limit.

        The retained values ``pattern`` matches are queued for the connection at once,
        before anything published later; returns their size in bytes (what the server
        counts against the frame's reply budget).
        """
        subscriber = self.subscribers.get(websocket)
        if subscriber is not None and pattern in subscriber.patterns:
            return 0
        check_limits(pattern)
        if subscriber is not None and len(subscriber.patterns) >= self.per_connection:
            subscriber.refused += 1
            if subscriber.refused == 1:
                self.log.warning(
                    "%s holds %d patterns, the most one connection may: refusing more",
                    escape(name),
                    self.per_connection,
                )
            raise SubscriptionLimit(
                f"too many subscriptions: this connection already holds {len(subscriber.patterns)} patterns,"
                f" the most a node takes from one connection ({self.per_connection});"
                " unsubscribe from some, or use a wildcard"
            )
        if len(self.index) >= self.most:
            self.throttle.warn(("most",), "holds %d subscriptions, the most it takes: refusing more", self.most)
            raise SubscriptionLimit(
                f"too many subscriptions: this node already holds {len(self.index)},"
                f" the most it takes ({self.most}); try again later"
            )
        if subscriber is None:
            subscriber = self.subscribers[websocket] = RemoteSubscriber(
                name, websocket, self.log, self.bound, self.throttle, self
            )
        subscriber.patterns[pattern] = None
        self.index.add(pattern, subscriber)
        self._routes.clear()
        self.log.info("%s subscribed to %s", escape(name), escape(pattern))
        self._event("added", pattern, name)
        size = 0
        if self.retained:
            for key, data in self.retained_for(pattern):
                subscriber.offer(key, data, retained=True)
                size += len(key) + len(data)
        return size

    def remove(self, websocket: ServerConnection, pattern: str) -> None:
        subscriber = self.subscribers.get(websocket)
        if subscriber is None or subscriber.patterns.pop(pattern, False) is not None:
            return
        self.index.remove(pattern, subscriber)
        self._routes.clear()
        self.log.info("%s unsubscribed from %s", escape(subscriber.name), escape(pattern))
        self._event("removed", pattern, subscriber.name)

    def forget(self, websocket: ServerConnection) -> None:
        """The connection closed: drop its subscriptions, announcing each (one index lookup each)."""
        subscriber = self.subscribers.pop(websocket, None)
        if subscriber is None:
            return
        subscriber.close()
        patterns, subscriber.patterns = list(subscriber.patterns), {}
        if patterns:
            self.log.info(
                "%s went away; forgetting its %d subscription(s): %s%s",
                escape(subscriber.name),
                len(patterns),
                escape(", ".join(patterns[:3])),
                ", ..." if len(patterns) > 3 else "",
            )
        for pattern in patterns:
            self.index.remove(pattern, subscriber)
            self._routes.clear()  # before the event: publishing it routes by the index as it is now
            self._event("removed", pattern, subscriber.name)

    def _event(self, what: str, pattern: str, name: str) -> None:
        data = json.dumps({"pattern": pattern, "subscriber": name, "count": len(self.index)}, separators=(",", ":"))
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
        #: pattern -> its handler; change it with :meth:`add` and :meth:`remove`, which keep the index.
        self.handlers: dict[str, Handler] = {}
        self._index: PatternIndex[str] = PatternIndex()  # each pattern is its own owner
        self._held: dict[Handler, int] = {}  # handler -> how many patterns it handles
        #: Messages handed to at least one handler.
        self.received = 0
        #: Messages lost: dropped for us by publishers, and dropped here when a handler fell behind.
        self.lost = 0
        self._lanes: dict[Handler, _Lane] = {}
        self._throttle = Throttle(log, WARN_EVERY)
        #: key -> the (pattern, handler) pairs it goes to, each handler once: what the index said,
        #: kept for the next message on the key (most keys repeat); at most ROUTES keys, emptied
        #: whenever a pattern comes or goes.
        self._routes: dict[str, list[tuple[str, Handler]]] = {}

    def add(self, pattern: str, handler: Handler) -> None:
        """Call ``handler`` for what ``pattern`` matches (in place of the pattern's previous handler, if any)."""
        self.remove(pattern)
        self.handlers[pattern] = handler
        self._index.add(pattern, pattern)
        self._routes.clear()
        self._held[handler] = self._held.get(handler, 0) + 1

    def remove(self, pattern: str) -> None:
        """Stop handling ``pattern``."""
        handler = self.handlers.pop(pattern, None)
        if handler is None:
            return
        self._index.remove(pattern, pattern)
        self._routes.clear()
        self._held[handler] -= 1
        if not self._held[handler]:
            del self._held[handler]

    def wants(self, key: str) -> bool:
        return bool(self._route(key))

    def _route(self, key: str) -> list[tuple[str, Handler]]:
        """The (pattern, handler) pairs ``key`` goes to, each handler once, with its first matching pattern."""
        route = self._routes.get(key)
        if route is None:
            route = []
            handed: set[Handler] = set()
            for pattern, _ in self._index.match(key):
                handler = self.handlers[pattern]
                if handler not in handed:  # each handler once per message, however many of its patterns match
                    handed.add(handler)
                    route.append((pattern, handler))
            _remembered(self._routes, key, route)
        return route

    def deliver(self, key: str, data: str, lost: int = 0) -> bool:
        """Hand a message to the lane of every handler whose pattern matches ``key``, without waiting.

        ``lost``: messages the publisher dropped for us before this one. False
        if no handler wants it (left over from a pattern unsubscribed a moment ago).
        """
        self.lost += lost
        route = self._routes.get(key)
        if route is None:
            route = self._route(key)
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
