"""The pub/sub registry a node's Redis clients share, pure: who listens to which channel and pattern. No I/O.

One :class:`Registry` per node, as a Redis server has one for all its clients: exact channels
in a dict from channel to its subscribers (in subscription order, as Redis's lists), patterns
indexed by their literal prefix (``buzzer/*`` is only tried on channels that start with
``buzzer/``), and the patterns that match a channel remembered per channel until the patterns
change: a mesh publishes on few keys, many times.

Every channel and pattern has a *cover* (:mod:`mesh.resp.keys`): the MQTT pattern under which
the mesh carries what it can match. The registry tells its :class:`Mesh` when a cover is first
needed and when it is no longer (``interest``), and when a subscription joins a cover
(``joined``: the mesh sends it what a new subscription gets at once, retained values). The mesh hands
each publication in with the cover it came by (:meth:`Registry.deliver`), and the registry
delivers it to the subscriptions of that cover whose channel or glob matches: each subscription
has one cover, so it gets each publication once, however many covers match the key.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from .encode import Error, message_body, pmessage_body
from .globs import Glob, compile_glob
from .keys import cover, key_of
from .parse import Limits

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Config", "Mesh", "Registry"]

_MESSAGE: Final = (b"*3\r\n", b">3\r\n")  # a message's header, RESP2 and RESP3
_PMESSAGE: Final = (b"*4\r\n", b">4\r\n")
#: Channels whose matching patterns are remembered (the set is forgotten whenever the patterns change).
_CACHE_MAX: Final = 4096


@dataclass(frozen=True, slots=True)
class Config:
    """What a node's Redis side allows. Redis's own value is in each comment; ours is smaller where a mesh needs less."""

    #: requirepass (the grid's token): None lets every client in (Redis's default user, "nopass").
    password: bytes | None = None
    #: What HELLO says: Redis-compatible servers say "redis" and the version whose behaviour they follow.
    server: bytes = b"redis"
    version: bytes = b"7.0.15"
    #: Channels plus patterns one client may hold (Redis: no limit).
    max_subscriptions: int = 1000
    #: Bytes of a channel in SUBSCRIBE (Redis: proto-max-bulk-len). A mesh key is 256 characters at most.
    max_channel_len: int = 1024
    #: Bytes of a pattern in PSUBSCRIBE and PUBSUB CHANNELS: bounds the matching work per publication.
    max_pattern_len: int = 256
    #: Covers (mesh subscriptions) all the node's Redis clients may need at once: a publisher holds
    #: 1,000 patterns per connection (nodes.hub.MAX_PATTERNS_PER_CONNECTION).
    max_covers: int = 1000
    #: A subscriber's output buffer, as Redis's "client-output-buffer-limit pubsub 32mb 8mb 60": past the
    #: hard limit the client is closed at once; over the soft one for longer than soft_seconds, too. 0: none.
    output_hard_limit: int = 1024 * 1024
    output_soft_limit: int = 256 * 1024
    output_soft_seconds: float = 10.0
    #: Bounds on requests (the parser's).
    limits: Limits = field(default_factory=Limits)


class Mesh(Protocol):
    """What the registry tells the mesh, and asks of it. Called in the event loop's thread."""

    def publish(self, channel: bytes, data: bytes) -> int | Error:
        """A Redis client's PUBLISH: carry it to every receiver (this registry's through :meth:`Registry.deliver`);
        how many received it, or the error that refuses it."""
        ...

    def interest(self, cover: str, active: bool) -> None:
        """The first channel or pattern with this cover came (``active``), or the last one left."""
        ...

    def joined(self, session: Session, name: bytes, pattern: bool, cover: str) -> None:
        """``session`` subscribed to ``name``, carried under ``cover``: send it what a new subscription gets at once."""
        ...


class _Alone:
    """The mesh of a registry on its own, a plain Redis server's: a publication goes to its own subscribers."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def publish(self, channel: bytes, data: bytes) -> int | Error:
        return self.registry.deliver(channel, data)

    def interest(self, cover: str, active: bool) -> None:
        return None

    def joined(self, session: Session, name: bytes, pattern: bool, cover: str) -> None:
        return None


class _Pattern:
    """A pattern some client listens to: compiled once, its cover, its listeners in subscription order."""

    __slots__ = ("cover", "glob", "seq", "subscribers")

    def __init__(self, glob: Glob, seq: int) -> None:
        self.glob = glob
        self.seq = seq  # patterns deliver in the order they were first subscribed
        self.cover = cover(glob.pattern)
        self.subscribers: dict[Session, None] = {}


class Registry:
    """The channels and patterns of every Redis client of one node, and delivery to them."""

    def __init__(self, config: Config | None = None, mesh: Mesh | None = None) -> None:
        self.config = config or Config()
        self.mesh: Mesh = mesh if mesh is not None else _Alone(self)
        self.sessions: dict[int, Session] = {}
        #: Messages handed to a subscriber, over the registry's life (PUBLISH's count reads it around a publication).
        self.delivered = 0
        #: Subscribers closed for not reading their messages (the output buffer limits).
        self.too_slow = 0
        self._ids = itertools.count(1)
        self._channels: dict[bytes, dict[Session, None]] = {}
        self._channel_covers: dict[bytes, str | None] = {}
        self._patterns: dict[bytes, _Pattern] = {}
        self._by_prefix: dict[int, dict[bytes, list[_Pattern]]] = {}
        self._seq = itertools.count()
        self._cache: dict[bytes, tuple[_Pattern, ...]] = {}
        #: Channels and patterns held per cover: the mesh is asked for a cover while it holds any.
        self.covers: dict[str, int] = {}

    # -- publications

    def publish(self, channel: bytes, data: bytes) -> int | Error:
        """PUBLISH from a Redis client: what the mesh says (receivers, or why it refuses)."""
        return self.mesh.publish(channel, data)

    def deliver(self, channel: bytes, data: bytes, cover: str | None = None) -> int:
        """A publication to the subscribers here (``message`` and ``pmessage``); how many got it.

        ``cover``: the mesh pattern it came by: only the subscriptions of that cover get it
        (None: every subscription, a plain Redis server's delivery). Each subscription counts,
        as in Redis: a client on the channel and on a matching pattern gets it twice; the
        channel's subscribers come first, then each matching pattern's.
        """
        receivers = 0
        subscribers = self._channels.get(channel)
        if subscribers and (cover is None or self._channel_covers[channel] == cover):
            body = message_body(channel, data)
            frames = (_MESSAGE[0] + body, _MESSAGE[1] + body)
            for session in list(subscribers):  # a push may close a session, which unsubscribes it
                if session.push(frames[session.proto == 3]):
                    receivers += 1
        if self._patterns:
            for entry in self._matching(channel):
                if cover is not None and entry.cover != cover:
                    continue
                body = pmessage_body(entry.glob.pattern, channel, data)
                frames = (_PMESSAGE[0] + body, _PMESSAGE[1] + body)
                for session in list(entry.subscribers):
                    if session.push(frames[session.proto == 3]):
                        receivers += 1
        self.delivered += receivers
        return receivers

    def replay(self, session: Session, name: bytes, pattern: bool, channel: bytes, data: bytes) -> bool:
        """Send one publication to one subscription of ``session`` (a retained value, for a new subscription)."""
        if pattern:
            frame = _PMESSAGE[session.proto == 3] + pmessage_body(name, channel, data)
        else:
            frame = _MESSAGE[session.proto == 3] + message_body(channel, data)
        sent = session.push(frame)
        self.delivered += sent
        return sent

    def _matching(self, channel: bytes) -> tuple[_Pattern, ...]:
        found = self._cache.get(channel)
        if found is None:
            hits: list[_Pattern] = []
            size = len(channel)
            for length, table in self._by_prefix.items():
                if length <= size:
                    bucket = table.get(channel[:length])
                    if bucket:
                        hits.extend(entry for entry in bucket if entry.glob.match(channel))
            hits.sort(key=lambda entry: entry.seq)
            found = tuple(hits)
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[channel] = found
        return found

    def close_all(self, reason: str) -> None:
        """Close every client, after what it was sent (a node that stops)."""
        for session in list(self.sessions.values()):
            session.close(reason, flush=True)

    # -- what PUBSUB and status show

    def channels(self, pattern: bytes | None = None) -> list[bytes]:
        """Channels with at least one subscriber here, those matching ``pattern`` if given."""
        if pattern is None:
            return list(self._channels)
        glob = compile_glob(pattern)
        return [channel for channel in self._channels if glob.match(channel)]

    def patterns(self) -> list[bytes]:
        """Patterns with at least one subscriber here, in the order they were first subscribed."""
        return list(self._patterns)

    def numsub(self, channel: bytes) -> int:
        """Subscribers of exactly ``channel`` here (patterns not counted, as Redis)."""
        return len(self._channels.get(channel, ()))

    def numpat(self) -> int:
        """Distinct patterns subscribed here (Redis counts patterns, not subscriptions)."""
        return len(self._patterns)

    # -- bookkeeping, for sessions

    def next_id(self) -> int:
        return next(self._ids)

    def new_covers(self, names: list[bytes], pattern: bool) -> int:
        """How many covers the mesh does not carry yet that subscribing to ``names`` would need."""
        wanted = {cover(name) if pattern else key_of(name) for name in names}
        return len({c for c in wanted if c is not None and c not in self.covers})

    def add_channel(self, session: Session, channel: bytes) -> None:
        subscribers = self._channels.get(channel)
        if subscribers is None:
            subscribers = self._channels[channel] = {}
            self._channel_covers[channel] = key = key_of(channel)
            self._hold(key, session, channel, False)
        else:
            self._joined(session, channel, False, self._channel_covers[channel])
        subscribers[session] = None

    def remove_channel(self, session: Session, channel: bytes) -> None:
        subscribers = self._channels[channel]
        del subscribers[session]
        if not subscribers:
            del self._channels[channel]
            self._release(self._channel_covers.pop(channel))

    def add_pattern(self, session: Session, pattern: bytes) -> None:
        entry = self._patterns.get(pattern)
        if entry is None:
            entry = self._patterns[pattern] = _Pattern(compile_glob(pattern), next(self._seq))
            prefix = entry.glob.prefix
            self._by_prefix.setdefault(len(prefix), {}).setdefault(prefix, []).append(entry)
            self._cache.clear()
            self._hold(entry.cover, session, pattern, True)
        else:
            self._joined(session, pattern, True, entry.cover)
        entry.subscribers[session] = None

    def remove_pattern(self, session: Session, pattern: bytes) -> None:
        entry = self._patterns[pattern]
        del entry.subscribers[session]
        if not entry.subscribers:
            del self._patterns[pattern]
            prefix = entry.glob.prefix
            table = self._by_prefix[len(prefix)]
            bucket = table[prefix]
            bucket.remove(entry)
            if not bucket:
                del table[prefix]
                if not table:
                    del self._by_prefix[len(prefix)]
            self._cache.clear()
            self._release(entry.cover)

    def _hold(self, held: str | None, session: Session, name: bytes, pattern: bool) -> None:
        """One more name under ``held``: the mesh is asked for it if it is new; the subscription joined it."""
        if held is None:
            return
        count = self.covers.get(held, 0)
        self.covers[held] = count + 1
        if count == 0:
            self.mesh.interest(held, True)
        self.mesh.joined(session, name, pattern, held)

    def _joined(self, session: Session, name: bytes, pattern: bool, held: str | None) -> None:
        if held is not None:
            self.mesh.joined(session, name, pattern, held)

    def _release(self, held: str | None) -> None:
        if held is None:
            return
        count = self.covers[held] - 1
        if count:
            self.covers[held] = count
        else:
            del self.covers[held]
            self.mesh.interest(held, False)
