"""One Redis client's state and the checks before each of its commands, pure: bytes in, replies out. No I/O.

A :class:`Session` per connection: the client's protocol (2 or 3), whether it is authenticated,
its name, its subscriptions. It reads bytes (:meth:`Session.feed`), runs each whole command
(:mod:`mesh.resp.commands`) and writes replies to a :class:`Sink`, which the node implements
over a transport (``nodes.redis``) and a test over a list.

The checks before a command runs are Redis's, in Redis's order (``processCommand`` in
``src/server.c``): ``POST`` or ``Host:`` closes the connection (cross-protocol scripting), then
unknown command or subcommand, wrong number of arguments, ``NOAUTH``, and, for a RESP2 client
with subscriptions, "only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed".

Bounded as any peer: the parser's limits (:class:`~mesh.resp.parse.Limits`), subscriptions per
client, and each subscriber's output buffer (:meth:`Session.push`), as Redis's
``client-output-buffer-limit pubsub``.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from mesh.errors import RespError

from .commands import COMMANDS, SENT, Sent, arity_error, cstr, unknown_command
from .encode import Error, Reply, encode, error
from .parse import RequestParser

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["Session", "Sink"]

_NOAUTH: Final = Error(b"NOAUTH Authentication required.")
_NOT_IN_CONTEXT: Final = (
    "Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
)


class Sink(Protocol):
    """Where a session's bytes go: the node's connection, or a list in a test."""

    def send(self, data: bytes) -> None:
        """Queue bytes for the client, in order."""
        ...

    def buffered(self) -> int:
        """Bytes queued and not yet taken by the client: its output buffer."""
        ...

    def close(self, flush: bool) -> None:
        """Close the connection: after what is queued (QUIT, a protocol error), or at once, dropping it."""
        ...


class Session:
    """One client connection's state and commands. ``feed()`` bytes in; replies go to the :class:`Sink`.

    ``closed`` turns true after QUIT, a protocol error, an output buffer over its limit, or the
    connection's loss (:meth:`disconnected`): input is then ignored, and the session holds no
    subscription. ``close_reason`` says why, for the node's log.
    """

    __slots__ = (
        "_clock",
        "_parser",
        "_soft_since",
        "authenticated",
        "channels",
        "close_reason",
        "closed",
        "id",
        "lib_name",
        "lib_ver",
        "name",
        "patterns",
        "proto",
        "registry",
        "sink",
    )

    def __init__(self, registry: Registry, sink: Sink, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.sink = sink
        self.id = registry.next_id()
        self.proto = 2
        self.authenticated = registry.config.password is None
        self.name: bytes | None = None
        self.lib_name: bytes | None = None
        self.lib_ver: bytes | None = None
        self.channels: dict[bytes, None] = {}  # in subscription order
        self.patterns: dict[bytes, None] = {}
        self.closed = False
        self.close_reason = ""
        self._parser = RequestParser(registry.config.limits)
        self._clock = clock
        self._soft_since: float | None = None
        registry.sessions[self.id] = self

    @property
    def subscriptions(self) -> int:
        """Channels plus patterns: the count in (un)subscribe replies (Redis's clientSubscriptionsCount)."""
        return len(self.channels) + len(self.patterns)

    # -- input

    def feed(self, data: bytes | bytearray | memoryview, budget: int | None = None) -> bool:
        """Bytes read from the client: run its whole commands, in order, ``budget`` of them at most.

        True when whole commands are left over the budget: ``feed(b"")`` runs the next ones.
        """
        parser = self._parser
        ran = 0
        while True:
            if self.closed:  # before (what still comes is dropped), or QUIT, an output buffer over its limit...
                return False
            if data:
                parser.feed(data)
                data = b""
            if budget is not None and ran >= budget:
                return True
            try:
                argv = parser.next(auth_required=not self.authenticated)
            except RespError as exc:
                if exc.reply is not None:
                    self.sink.send(b"-" + exc.reply + b"\r\n")
                self.close(exc.message, flush=True)
                return False
            if argv is None:
                return False
            self.execute(argv)
            ran += 1

    def execute(self, argv: list[bytes]) -> None:
        """Run one command (a non-empty list of arguments) and send its reply."""
        reply = self._run(argv)
        if not isinstance(reply, Sent):
            self.sink.send(encode(reply, self.proto))

    def _run(self, argv: list[bytes]) -> Reply | Sent:
        name = argv[0].lower()
        if cstr(name) in (b"post", b"host:"):
            # Cross-protocol scripting (an HTTP request sent to Redis): closed without a reply, as Redis does.
            self.close("POST or Host: sent as a command", flush=True)
            return SENT
        command = COMMANDS.get(name)
        if command is not None and command.subcommands is not None and len(argv) >= 2:
            sub = command.subcommands.get(argv[1].lower())
            if sub is None:
                return error(
                    b"unknown subcommand '" + cstr(argv[1])[:128] + b"'. Try " + cstr(argv[0]).upper() + b" HELP."
                )
            command = sub
        if command is None:
            return unknown_command(argv)
        if (command.arity > 0 and command.arity != len(argv)) or len(argv) < -command.arity:
            return arity_error(command.name)
        if not self.authenticated and not command.no_auth:
            return _NOAUTH
        if self.proto == 2 and not command.in_subscribed and (self.channels or self.patterns):
            return error(_NOT_IN_CONTEXT.format(command.name))
        assert command.handler is not None
        return command.handler(self, argv)

    # -- output

    def send(self, reply: Reply) -> None:
        """Encode a reply for this client's protocol and send it."""
        self.sink.send(encode(reply, self.proto))

    def push(self, frame: bytes) -> bool:
        """A pub/sub message for this client, already encoded; False if it was not sent (closed, or now closed).

        The output buffer limits are checked here, as Redis checks client-output-buffer-limit when a
        reply is added: over the hard limit, or over the soft one for longer than its seconds, the
        client is closed at once and what it had not read is dropped.
        """
        if self.closed:
            return False
        config = self.registry.config
        used = self.sink.buffered() + len(frame)
        if config.output_hard_limit and used >= config.output_hard_limit:
            self._too_slow(f"its output buffer reached {used} bytes, over the hard limit of {config.output_hard_limit}")
            return False
        if config.output_soft_limit and used >= config.output_soft_limit:
            now = self._clock()
            if self._soft_since is None:
                self._soft_since = now
            elif now - self._soft_since > config.output_soft_seconds:
                self._too_slow(
                    f"its output buffer stayed over the soft limit of {config.output_soft_limit} bytes"
                    f" for more than {config.output_soft_seconds:g} s"
                )
                return False
        else:
            self._soft_since = None
        self.sink.send(frame)
        return True

    def _too_slow(self, why: str) -> None:
        self.registry.too_slow += 1
        self.close(f"closed for not reading its messages: {why}", flush=False)

    # -- the end

    def disconnected(self) -> None:
        """The connection is gone: drop every subscription (the mesh hears of covers nobody holds any more)."""
        if not self.closed:
            self.closed = True
            self.close_reason = "connection lost"
        self.drop_subscriptions()
        self.registry.sessions.pop(self.id, None)

    def close(self, reason: str, *, flush: bool) -> None:
        """Close the client: after what it was sent (``flush``), or at once, dropping what it did not read."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self.drop_subscriptions()
        self.registry.sessions.pop(self.id, None)
        self.sink.close(flush)

    def drop_subscriptions(self) -> None:
        for channel in list(self.channels):
            self.registry.remove_channel(self, channel)
        self.channels.clear()
        for pattern in list(self.patterns):
            self.registry.remove_pattern(self, pattern)
        self.patterns.clear()

    # -- authentication

    def authenticate(self, user: bytes, password: bytes) -> bool:
        """Redis's default user: "nopass" (any password) when none is set, else the one password."""
        expected = self.registry.config.password
        if user != b"default":
            return False
        if expected is None:
            return True
        return hmac.compare_digest(password, expected)
