"""The publisher's side of publish/subscribe: who is subscribed to this node, and its retained values.

No broker: the first level of a key names its publisher, so a subscriber connects to the
publishers its pattern can match (over the same persistent links as streams) and tells each
one its patterns. Each publisher keeps a :class:`Hub` of the connections subscribed to it,
each with its own queue (:mod:`nodes.subscriber`).

A publisher keeps the last *retained* value of each of its keys (``publish(..., retain=True)``;
an empty value clears the key), at most :data:`MAX_RETAINED` keys of at most
:data:`MAX_RETAINED_SIZE` bytes each. A new subscription gets, at once and before anything
published after it, the retained value of every key its pattern matches, in ``pub`` frames
marked ``retained``: MQTT's retained messages.

The hub finds who wants a key through a :class:`mesh.index.PatternIndex`: a publication costs
about the key's levels and the matching subscriptions, not the number of patterns held, and
each subscription added or removed costs its pattern's levels. What one connection and one node
may hold is capped (:data:`MAX_PATTERNS_PER_CONNECTION`, :data:`MAX_SUBSCRIPTIONS`,
:data:`MAX_PATTERN_LENGTH`, :data:`MAX_PATTERN_LEVELS`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection

from mesh.constants import QUEUE_BOUND, WARN_EVERY
from mesh.errors import RetainLimit, SubscriptionLimit
from mesh.index import PatternIndex, remembered
from mesh.throttle import Throttle, escape
from mesh.topics import matches

from .subscriber import Publication, RemoteSubscriber

__all__ = [
    "MAX_PATTERNS_PER_CONNECTION",
    "MAX_PATTERN_LENGTH",
    "MAX_PATTERN_LEVELS",
    "MAX_RETAINED",
    "MAX_RETAINED_SIZE",
    "MAX_SUBSCRIPTIONS",
    "Hub",
    "check_limits",
]

#: Patterns one connection may hold at a node: past it, a sub gets an error frame.
MAX_PATTERNS_PER_CONNECTION = 1000
#: Subscriptions (patterns of all connections) one node holds at most: past it, a sub gets an error frame.
MAX_SUBSCRIPTIONS = 20_000
#: Characters in one pattern a node holds at most (MQTT allows more; keys here are short).
MAX_PATTERN_LENGTH = 256
#: Levels in one pattern a node holds at most (each is a level of the pattern index).
MAX_PATTERN_LEVELS = 16
#: Keys one node keeps a retained value for at most: past it, publish(..., retain=True) on a new key raises.
MAX_RETAINED = 1000
#: Bytes (UTF-8) of one retained value at most: past it, publish(..., retain=True) raises.
MAX_RETAINED_SIZE = 16 * 1024


def check_limits(pattern: str) -> None:
    """:class:`SubscriptionLimit` if ``pattern`` is longer or deeper than a node holds."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise SubscriptionLimit(
            f"pattern too long: {len(pattern)} characters, a node takes at most {MAX_PATTERN_LENGTH}"
        )
    levels = pattern.count("/") + 1
    if levels > MAX_PATTERN_LEVELS:
        raise SubscriptionLimit(f"pattern too deep: {levels} levels, a node takes at most {MAX_PATTERN_LEVELS}")


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
        #: key -> its retained value as a publication, encoded once and shared by every subscription's queue.
        self._retained_pubs: dict[str, Publication] = {}
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
            route = remembered(self._routes, key, list(self.index.owners(key)))
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
        self._retained_pubs.pop(key, None)
        if not data:
            self.retained.pop(key, None)
            return
        size = len(data) if data.isascii() else len(data.encode("utf-8", "surrogatepass"))
        if size > self.retained_size:
            raise RetainLimit(
                f"cannot retain {size} bytes on {key}: a retained value holds at most {self.retained_size} bytes"
            )
        if (
            key not in self.retained and len(self.retained) >= self.most_retained and "/$" not in key
        ):  # the runtime's own $ keys are not the sketch's to use up
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
                publication = self._retained_pubs.get(key)
                if publication is None:
                    publication = self._retained_pubs[key] = Publication(key, data, retained=True)
                subscriber.offer_publication(publication)
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
