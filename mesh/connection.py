"""Connections to a peer: the persistent one a link keeps, and one-shot ones for the CLI.

:class:`Connection` is the reconnect policy of one link, built on what the
``websockets`` client already does: ``async for ws in connect(...)`` reconnects
with our backoff (``reconnect_delays``), its ``process_exception`` tells a
transient failure (refused, reset, timed out, HTTP 5xx) from a fatal one, and
keepalive pings (``ping_interval``, ``ping_timeout``) close a connection to a
frozen peer. On top of that it keeps the link's patience (``wait``), its state
and its log lines. What happens on each connection is the caller's ``session``.

:func:`request`, :func:`send_once` and :func:`query_status` open a connection,
ask one thing and close it.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.client import process_exception
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from . import protocol
from .constants import MAX_SIZE_RANGE
from .errors import NotAnswering, PeerUnavailable, RemoteError

__all__ = [
    "CLIENT",
    "CLOSE_TIMEOUT",
    "DEFAULT_WAIT",
    "OPEN_TIMEOUT",
    "PING_INTERVAL",
    "PING_TIMEOUT",
    "WAITING_LOG_INTERVAL",
    "Connection",
    "auth_headers",
    "backoff",
    "describe_close",
    "describe_error",
    "query_status",
    "request",
    "send_once",
]

#: Seconds a link keeps trying to reach a peer before giving up (0: forever).
DEFAULT_WAIT = 60.0
#: Seconds to open a connection or close it.
OPEN_TIMEOUT = 5.0
CLOSE_TIMEOUT = 0.25
#: Keepalive: a ping every PING_INTERVAL seconds, unanswered for PING_TIMEOUT, closes
#: the connection, so a frozen peer (SIGSTOP) is noticed within about 3 s.
PING_INTERVAL = 1.0
PING_TIMEOUT = 2.0
#: How every mesh client connects: the mesh subprotocol; no compression (on small frames it
#: costs a quarter to a third of the throughput and saves nothing); what comes back (acks,
#: reports) is at most the largest max_size a node may have (a link: its own node's max_size).
CLIENT: dict[str, Any] = {
    "subprotocols": [protocol.SUBPROTOCOL],
    "compression": None,
    "close_timeout": CLOSE_TIMEOUT,
    "max_size": MAX_SIZE_RANGE[1],
    "proxy": None,
}
#: The reason websockets gives when it closes a connection whose peer stopped answering pings.
KEEPALIVE_TIMEOUT = "keepalive ping timeout"
#: Seconds between two "waiting for PEER" log lines while a peer stays away.
WAITING_LOG_INTERVAL = 10.0


def auth_headers(token: str | None) -> dict[str, str]:
    """The handshake headers that present the mesh's token (none without one)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def backoff(initial: float = 0.05, factor: float = 2.0, maximum: float = 2.0) -> Generator[float, None, None]:
    """Delays between attempts to reach a peer: short at first, capped at ``maximum``."""
    delay = initial
    while True:
        yield delay
        delay = min(delay * factor, maximum)


def describe_error(exc: BaseException) -> str:
    """Why a connection failed, in a few lower-case words."""
    if isinstance(exc, PeerUnavailable):
        return exc.reason
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timed out"
    if isinstance(exc, InvalidStatus):
        if exc.response.status_code == 401:
            return "refused the handshake with HTTP 401: wrong or missing token"
        return f"refused the handshake with HTTP {exc.response.status_code}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    if isinstance(exc, ConnectionClosed):
        return "connection closed"
    return str(exc) or type(exc).__name__


def describe_close(ws: ClientConnection) -> str:
    """How a connection ended, for a log line."""
    if ws.close_code is None:
        return "connection lost"
    sent = ws.protocol.close_sent
    if ws.protocol.close_rcvd is None and sent is not None and sent.reason == KEEPALIVE_TIMEOUT:
        # websockets gave up on a peer that stopped answering pings: alive but stuck, or frozen.
        return f"it stopped answering pings for {PING_TIMEOUT:g} s: busy or frozen?"
    return f"closed with {ws.close_code}" + (f": {ws.close_reason}" if ws.close_reason else "")


def is_fatal(exc: Exception) -> bool:
    """The ``websockets`` client's verdict: True if retrying cannot help (a 4xx, a bad handshake)."""
    return process_exception(exc) is not None


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
        max_size: int | None = CLIENT["max_size"],
    ) -> None:
        self.peer = peer
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
                ping_interval=PING_INTERVAL,
                ping_timeout=PING_TIMEOUT,
                additional_headers=self.headers,
                process_exception=self._retry_or_give_up,
                reconnect_delays=self._delays,
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
            raise PeerUnavailable(self.peer, self.uri, describe_error(exc)) from exc

    def up(self) -> None:
        """The session is established."""
        self.state = "up"
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
        if isinstance(exc, PeerUnavailable) or is_fatal(exc):
            return PeerUnavailable(self.peer, self.uri, describe_error(exc))
        self.last_error = describe_error(exc)
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

    def _delays(self) -> Generator[float, None, None]:
        """The backoff delays, with a log line on the first wait and every ``WAITING_LOG_INTERVAL`` seconds after."""
        loop = asyncio.get_running_loop()
        said = None
        for delay in self.reconnect_delays():
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


async def request(
    peer: str,
    uri: str,
    frame: protocol.Frame,
    *,
    sender: str = "cli",
    open_timeout: float = OPEN_TIMEOUT,
    within: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> protocol.Frame:
    """Open a connection, send one frame, return the answer with the same id, close: for the CLI.

    ``open_timeout`` bounds opening the connection; ``within``, if given, the whole call.
    Refused, unreachable, or a TCP connection that times out: :class:`PeerUnavailable`.
    A peer whose TCP connection opens (the kernel accepts it for a live process) but
    that does not complete the handshake or answer in time: :class:`NotAnswering`,
    busy (a sketch blocking its event loop) or stopped, but there.
    """
    frame_id = getattr(frame, "id", None)
    phase = "connecting"
    try:
        async with asyncio.timeout(within):
            sock = await _open_socket(uri)
            phase = "handshake"
            async with connect(uri, **CLIENT, sock=sock, open_timeout=open_timeout, additional_headers=headers) as ws:
                phase = "answer"
                if ws.subprotocol != protocol.SUBPROTOCOL:
                    raise PeerUnavailable(peer, uri, f"it does not speak {protocol.SUBPROTOCOL}")
                await ws.send(protocol.encode(protocol.Hello(node=sender)))
                await ws.send(protocol.encode(frame))
                async for raw in ws:
                    answer = protocol.decode(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
                    if isinstance(answer, protocol.Error) and answer.id in (frame_id, None):
                        raise RemoteError(peer, answer.error)
                    if getattr(answer, "id", None) == frame_id and not isinstance(answer, protocol.Hello):
                        return answer
                raise PeerUnavailable(peer, uri, "the connection closed before the answer came")
    except TimeoutError:
        if phase == "handshake":
            waited = open_timeout if within is None else min(within, open_timeout)
            raise NotAnswering(peer, uri, f"it took the connection but no handshake came within {waited:g} s") from None
        if phase == "answer":
            raise NotAnswering(peer, uri, f"no answer within {within:g} s") from None
        raise PeerUnavailable(peer, uri, "timed out connecting") from None
    except (OSError, InvalidHandshake, ConnectionClosed) as exc:
        raise PeerUnavailable(peer, uri, describe_error(exc)) from None


async def _open_socket(uri: str) -> socket.socket:
    """A TCP connection to the host and port of ``uri`` (OSError if none opens).

    Opened apart from the websocket handshake, so that a caller can tell a peer that is
    not there (refused) from one that is there but does not answer (no handshake).
    """
    parts = urlsplit(uri)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    loop = asyncio.get_running_loop()
    error: OSError = OSError(f"cannot resolve {parts.hostname}")
    for family, kind, proto, _, address in await loop.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise error


async def send_once(
    peer: str,
    uri: str,
    channel: str,
    text: str,
    *,
    sender: str = "cli",
    open_timeout: float = OPEN_TIMEOUT,
    within: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> str:
    """Open a connection, send one message, return its ack, close: for the CLI's ``send``."""
    answer = await request(
        peer,
        uri,
        protocol.Message(id=1, channel=channel, data=text),
        sender=sender,
        open_timeout=open_timeout,
        within=within,
        headers=headers,
    )
    assert isinstance(answer, protocol.Ack)
    return answer.data


async def query_status(
    peer: str,
    uri: str,
    *,
    open_timeout: float = 1.0,
    within: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """A node's status report (see docs/protocol.md)."""
    answer = await request(peer, uri, protocol.Status(id=1), open_timeout=open_timeout, within=within, headers=headers)
    assert isinstance(answer, protocol.Report)
    return answer.data
