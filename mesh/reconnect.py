"""The reconnect policy of a link: its one connection to a peer, opened, kept alive, reopened.

:class:`Connection` is built on what the ``websockets`` client already does: ``async for ws
in connect(...)`` reconnects with our backoff (``reconnect_delays``), its
``process_exception`` tells a transient failure (refused, reset, timed out, HTTP 5xx) from a
fatal one (:func:`mesh.failures.is_fatal`), and the keepalive (:class:`mesh.wall.Sweeper`: a
ping only after ``PING_INTERVAL`` of silence) closes a connection to a frozen peer. On top of
that it keeps the link's patience (``wait``), its state and its log lines. What happens on
each connection is the caller's ``session``.

Every connection is a :class:`mesh.wall.MeshClientConnection` whose handshake ends with the
mesh's greeting (:mod:`mesh.handshake`). On a grid with ``tls``, every connection is
``wss://`` with the client context of :mod:`mesh.tls`: a TLS failure is warned of once
(then at most every TLS_WARN_EVERY seconds) and tried again every TLS_RETRY seconds at the
most often, since a certificate may be replaced while the link waits.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from . import protocol
from .constants import CLOSE_TIMEOUT, DEFAULT_WAIT, MAX_SIZE_RANGE, OPEN_TIMEOUT, PING_INTERVAL, PING_TIMEOUT
from .errors import PeerUnavailable
from .failures import describe_close, describe_error, is_fatal
from .handshake import NOT_PROVEN, greeting
from .throttle import Throttle
from .tls import describe_tls_error
from .wall import mesh_client

__all__ = ["CLIENT", "TLS_RETRY", "TLS_WARN_EVERY", "WAITING_LOG_INTERVAL", "Connection", "backoff", "tls_options"]

#: How every mesh client connects: the mesh subprotocol; no compression (on small frames it
#: costs more throughput than it saves); what comes back (acks, reports) is at most the largest
#: max_size a node may have (a link: its own node's max_size).
CLIENT: dict[str, Any] = {
    "subprotocols": [protocol.SUBPROTOCOL],
    "compression": None,
    "close_timeout": CLOSE_TIMEOUT,
    "max_size": MAX_SIZE_RANGE[1],
    "proxy": None,
}
#: Seconds between two "waiting for PEER" log lines while a peer stays away.
WAITING_LOG_INTERVAL = 10.0
#: Seconds a link waits at least between two tries while the peer's certificate is refused
#: (a certificate is replaced by a person, not in milliseconds)...
TLS_RETRY = 5.0
#: ...and between two warnings of the same TLS failure (the "waiting for" lines carry it between).
TLS_WARN_EVERY = 60.0


def tls_options(context: ssl.SSLContext | None) -> dict[str, Any]:
    """``connect()``'s TLS argument: none for ``ws://`` (websockets refuses ``ssl`` with a ws:// URI)."""
    return {} if context is None else {"ssl": context}


def backoff(initial: float = 0.05, factor: float = 2.0, maximum: float = 2.0) -> Generator[float, None, None]:
    """Delays between attempts to reach a peer: short at first, capped at ``maximum``."""
    delay = initial
    while True:
        yield delay
        delay = min(delay * factor, maximum)


def _never() -> bool:
    return False


def _nothing() -> None:
    pass


def _ignore(error: PeerUnavailable) -> None:
    pass


class Connection:
    """The one connection a link keeps to ``peer`` at ``uri``: opened, kept alive, reopened.

    ``wait`` bounds how long it tries to reach a peer that is not there (0:
    forever). When it runs out, :meth:`run` gives up with :class:`PeerUnavailable`,
    unless ``keep_trying()`` says otherwise: then ``on_patience_out(error)`` is
    told and it goes on trying. ``on_retry()`` is called after every failed try.
    ``greeting()`` is the hello sent on each connection; with a ``token``, the peer
    must prove it knows it (:class:`MeshClientConnection`). With an ``ssl_context``
    (``wss://``), a TLS failure is warned of once a minute at most and tried again
    every TLS_RETRY seconds at the most often, however short the backoff.
    """

    def __init__(
        self,
        *,
        peer: str,
        uri: str,
        logger: logging.Logger | logging.LoggerAdapter,
        wait: float = DEFAULT_WAIT,
        reconnect_delays: Callable[[], Generator[float, None, None]] = backoff,
        headers: Mapping[str, str] | None = None,
        keep_trying: Callable[[], bool] = _never,
        on_retry: Callable[[], None] = _nothing,
        on_patience_out: Callable[[PeerUnavailable], None] = _ignore,
        greeting: Callable[[], protocol.Hello] | None = None,
        token: str | None = None,
        max_size: int | None = CLIENT["max_size"],
        ssl_context: ssl.SSLContext | None = None,
        ping_interval: float = PING_INTERVAL,
        ping_timeout: float = PING_TIMEOUT,
    ) -> None:
        self.peer = peer
        #: The keepalive of each connection (mesh.wall.Sweeper): a ping after this much silence, then this long for a pong.
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        #: The grid's TLS client context (mesh.tls); None: plain ws://.
        self.ssl_context = ssl_context
        #: A TLS failure is said once a minute at most: the "waiting for" lines carry it between.
        self.tls_warnings = Throttle(logger, TLS_WARN_EVERY)
        self.tls_failing = False
        self.greeting = greeting or (lambda: protocol.Hello(node="a link"))
        self.token = token
        #: The largest frame taken from the peer, in bytes (websockets closes with 1009 past it).
        self.max_size = max_size
        self.uri = uri
        self.log = logger
        self.wait = wait
        self.reconnect_delays = reconnect_delays
        self.headers = dict(headers or {})
        self.keep_trying = keep_trying
        self.on_retry = on_retry
        self.on_patience_out = on_patience_out
        #: idle, connecting, retrying, up, down (gave up) or closed.
        self.state = "idle"
        #: Connections opened over the link's life: 1 while the peer stays up.
        self.connections = 0
        #: The node is stopping: no more reconnecting.
        self.stopping = False
        self.last_error = "not reached yet"
        self._down_since = 0.0

    def stop_reconnecting(self) -> None:
        """The node is stopping: do not reconnect. The open connection, if any, stays for now."""
        self.stopping = True

    async def run(self, session: Callable[[ClientConnection], Awaitable[None]]) -> None:
        """Connect and run ``session(ws)`` on each connection, reconnecting, until stopping.

        Raises :class:`PeerUnavailable` when it gives up: out of patience, or a
        failure that retrying cannot mend.
        """
        loop = asyncio.get_running_loop()
        self._down_since = loop.time()
        self.state = "connecting"
        self.log.info("connecting to %s at %s", self.peer, self.uri)
        try:
            async for ws in connect(
                self.uri,
                **{**CLIENT, "max_size": self.max_size},
                open_timeout=OPEN_TIMEOUT,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                additional_headers=self.headers,
                create_connection=mesh_client(greeting(self.greeting, self.token, self.peer)),
                process_exception=self._retry_or_give_up,
                reconnect_delays=self._delays,
                **tls_options(self.ssl_context),
            ):
                self.connections += 1
                await session(ws)
                if self.stopping:
                    return
                self._down_since = loop.time()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.state = "down"
            if isinstance(exc, PeerUnavailable):
                raise
            raise PeerUnavailable(self.peer, self.uri, self._describe(exc)) from exc

    def up(self) -> None:
        """The session is established."""
        self.state = "up"
        self.last_error = "not reached yet"  # a squatter met after this outage is worth a warning again
        self.log.info("link to %s up (%s)", self.peer, self.uri)

    async def down(self, ws: ClientConnection) -> None:
        """The session on ``ws`` is over: say so and reconnect, or close with 1001 if the node is stopping."""
        if self.stopping:
            await ws.close(1001)
        else:
            self.state = "connecting"
            self.log.warning("link to %s down (%s); reconnecting", self.peer, describe_close(ws))

    def _retry_or_give_up(self, exc: Exception) -> Exception | None:
        """``process_exception``: None to retry while there is patience left; the error to raise after."""
        if self.stopping:
            return exc
        # The library knows which failures are transient: refused, reset, timed out, a
        # handshake cut short by a peer that is starting or stopping, HTTP 5xx.
        tls = describe_tls_error(exc, self.ssl_context)
        self.tls_failing = tls is not None
        if tls is not None:  # not fatal: a certificate may be replaced while the link waits
            self.tls_warnings.warn(("tls", tls), "%s at %s: %s", self.peer, self.uri, tls)
        elif isinstance(exc, PeerUnavailable) or is_fatal(exc):
            return PeerUnavailable(self.peer, self.uri, self._describe(exc))
        why = self._describe(exc)
        if why == NOT_PROVEN and self.last_error != NOT_PROVEN:  # once, then in the "waiting for" lines
            self.log.warning("%s at %s %s", self.peer, self.uri, NOT_PROVEN.removeprefix("it "))
        self.last_error = why
        self.on_retry()
        now = asyncio.get_running_loop().time()
        waited = now - self._down_since
        if self.wait and waited >= self.wait:
            error = PeerUnavailable(self.peer, self.uri, f"{self.last_error} (gave up after {waited:.1f} s)")
            if not self.keep_trying():
                return error
            self.on_patience_out(error)
            self._down_since = now
        return None

    def _describe(self, exc: BaseException) -> str:
        return describe_error(exc, self.ssl_context, plain=self.ssl_context is None)

    def _delays(self) -> Generator[float, None, None]:
        """The backoff delays, with a log line on the first wait and every ``WAITING_LOG_INTERVAL`` seconds after.

        While the peer's certificate is refused, at least TLS_RETRY seconds each.
        """
        loop = asyncio.get_running_loop()
        said = None
        for backoff_delay in self.reconnect_delays():
            delay = max(backoff_delay, TLS_RETRY) if self.tls_failing else backoff_delay
            self.state = "retrying"
            now = loop.time()
            if said is None or now - said >= WAITING_LOG_INTERVAL:
                waited = now - self._down_since
                self.log.info(
                    "waiting for %s at %s (%s%s); retrying in %.2g s",
                    self.peer,
                    self.uri,
                    self.last_error,
                    f", {waited:.0f} s so far" if said is not None else "",
                    delay,
                )
                said = now
            else:
                self.log.debug("retrying %s in %.2g s (%s)", self.peer, delay, self.last_error)
            yield delay
