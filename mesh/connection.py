"""Connections to a peer: the persistent one a link keeps, and one-shot ones for the CLI.

:class:`Connection` is the reconnect policy of one link, built on what the
``websockets`` client already does: ``async for ws in connect(...)`` reconnects
with our backoff (``reconnect_delays``), its ``process_exception`` tells a
transient failure (refused, reset, timed out, HTTP 5xx) from a fatal one, and
keepalive (:mod:`mesh.keepalive`: a ping only after ``PING_INTERVAL`` of silence, one
timer per event loop) closes a connection to a frozen peer. On top of that it keeps the link's patience (``wait``), its state
and its log lines. What happens on each connection is the caller's ``session``.

:func:`request`, :func:`send_once` and :func:`query_status` open a connection,
ask one thing and close it.

Every mesh client connects through :class:`MeshClientConnection`: its opening
handshake ends with the exchange of hello frames, and on a grid with a token each
side proves it knows the token without sending it (:mod:`mesh.auth`). A peer that
does not prove it is refused before anything is sent to it.

On a grid with ``tls``, every connection is ``wss://`` with the client context of
:mod:`mesh.tls` (``ssl_context``): a certificate the grid's CA did not sign, an expired
one, one for another host, or a peer that does not speak TLS is one line
(:func:`mesh.tls.describe_tls_error`). A one-shot request fails with it at once; a link
says it once (then at most every TLS_WARN_EVERY seconds) and keeps trying, every
TLS_RETRY seconds at the most often, since a certificate may be replaced while it waits.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import weakref
from collections.abc import Awaitable, Callable, Generator, Mapping
from functools import partial
from typing import Any, cast
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol, process_exception
from websockets.datastructures import Headers, HeadersLike
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage, InvalidStatus
from websockets.frames import DATA_OPCODES, Opcode
from websockets.http11 import USER_AGENT
from websockets.protocol import OPEN, Event

from . import auth, protocol
from .constants import MAX_SIZE_RANGE
from .errors import MeshError, NotAnswering, PeerUnavailable, ProtocolError, RemoteError
from .keepalive import KEEPALIVE_TIMEOUT, KeptAlive
from .throttle import Throttle, escape
from .tls import MeshContext, client_context, describe_tls_error, names_mismatch

__all__ = [
    "CLIENT",
    "CLOSE_TIMEOUT",
    "DEFAULT_WAIT",
    "OPEN_TIMEOUT",
    "PING_INTERVAL",
    "PING_TIMEOUT",
    "SEND_TIMEOUT",
    "SERVER_PING_INTERVAL",
    "SERVER_PING_TIMEOUT",
    "TLS_RETRY",
    "TLS_WARN_EVERY",
    "WAITING_LOG_INTERVAL",
    "Connection",
    "GreetingFailed",
    "MeshClientConnection",
    "auth_headers",
    "backoff",
    "describe_close",
    "describe_error",
    "forget_headers",
    "query_status",
    "request",
    "send_once",
    "send_or_abort",
    "writable",
    "write_now",
]

#: Seconds a link keeps trying to reach a peer before giving up (0: forever).
DEFAULT_WAIT = 60.0
#: Seconds to open a connection or close it.
OPEN_TIMEOUT = 5.0
CLOSE_TIMEOUT = 0.25
#: Keepalive (mesh.keepalive): a link silent for PING_INTERVAL seconds sends a ping; silent
#: PING_TIMEOUT seconds more, its connection closes, so a frozen peer (SIGSTOP) is noticed
#: within about 3 s (plus one sweep, a quarter of a second). A busy link is never pinged.
#: An idle one costs a ping and a pong per PING_INTERVAL (plus up to a sweep): at 1,000 idle
#: links in one process, 2 s / 1 s cost about 5 % of a core, 1.5 s / 1.5 s about 8 %
#: (`python -m bench`, "idle links"). The price: a peer must answer within about a second.
PING_INTERVAL = 2.0
PING_TIMEOUT = 1.0
#: The server side of every connection is more patient: a ping after 5 s of silence, closed
#: after 20 s more. A link pings its server every PING_INTERVAL when idle, so the server never
#: pings a link: only a client that pings nobody (a browser). A busy but healthy client on a
#: loaded machine is not cut (at 1 s / 2 s, 2,162 of 5,000 were); a client that stops reading
#: is dropped by the send timeouts, a dead one costs little meanwhile.
SERVER_PING_INTERVAL = 5.0
SERVER_PING_TIMEOUT = 20.0
#: Seconds one send may wait for a peer that does not read (a full send buffer) before its
#: connection is aborted: the liveness promise, since the keepalive's ping waits behind that buffer.
SEND_TIMEOUT = PING_INTERVAL + PING_TIMEOUT
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
#: Seconds between two "waiting for PEER" log lines while a peer stays away.
WAITING_LOG_INTERVAL = 10.0
#: Seconds a link waits at least between two tries while the peer's certificate is refused
#: (a certificate is replaced by a person, not in milliseconds)...
TLS_RETRY = 5.0
#: ...and between two warnings of the same TLS failure (the "waiting for" lines carry it between).
TLS_WARN_EVERY = 60.0
#: What a plain client concludes when a peer closes without any HTTP answer on a grid without tls.
MAYBE_TLS = "it closed the connection without an HTTP answer: does the peer speak TLS? (the grid has no tls)"
#: The same, once a TLS handshake with the peer proved it.
SPEAKS_TLS = "the peer speaks TLS: the grid has no tls"
#: What a TLS client concludes when the peer cuts the connection during the TLS handshake.
MAYBE_PLAIN = "the connection was cut during the TLS handshake: does the peer speak plain ws://? (the grid has tls)"
#: The same, once a plain HTTP request to the peer got an HTTP answer.
SPEAKS_PLAIN = "the peer speaks plain ws://, not TLS"
#: Seconds the one-shot CLI request spends finding out more about a TLS failure (a second handshake).
PROBE_TIMEOUT = 1.0


#: What a node says (error frame, close reason) to a client that does not prove it knows the token.
WRONG_TOKEN = "wrong or missing token"


def forget_headers(ws: Any) -> None:
    """Drop the handshake's headers of a mesh connection once greeted: nothing reads them after, and they
    cost about 1.6 KiB a connection, a third of what a node with one link adds besides its sockets."""
    for message in (ws.request, ws.response):
        if message is not None:
            message.headers = Headers()


def writable(ws: Any) -> bool:
    """Whether :func:`write_now` writes to ``ws`` now: open, no fragmented message going out, below its write limit."""
    return ws.protocol.state is OPEN and ws.send_in_progress is None and not ws.paused


def write_now(ws: Any, text: str | bytes) -> bool:
    """Write one text message on ``ws`` at once, as ``websockets.broadcast()`` does; False: await ``ws.send()``.

    ``ws.send()`` costs a coroutine and an async context manager per message; this is the
    same frame through the same protocol object and ``send_data()``, for a connection
    that is open, sends no fragmented message and whose write buffer is under its limit
    (so ``send()`` would not wait either). Otherwise nothing is written: the caller's
    ``await ws.send(text)`` waits, or raises ConnectionClosed, as it always did. A write
    that fails aborts the connection, as ``send()`` would; the caller learns it from its reader.
    ``text`` may be UTF-8 already (bytes): a publisher encodes a batch once for many subscribers.
    """
    if not writable(ws):
        return False
    ws.protocol.send_text(text.encode() if type(text) is str else text)
    try:
        ws.send_data()
    except Exception as exc:
        ws.set_connection_exc(exc)
        ws.transport.abort()
    return True


async def send_or_abort(ws: Any, text: str) -> bool:
    """Send ``text`` on ``ws``, waiting at most SEND_TIMEOUT for the peer to read; past it, abort: False."""
    try:
        async with asyncio.timeout(SEND_TIMEOUT):
            await ws.send(text)
    except TimeoutError:
        ws.transport.abort()
        return False
    return True


#: The flow control's own resume of each frozen connection, put back by thaw_transport.
_FROZEN: weakref.WeakKeyDictionary[Any, Callable[[], None]] = weakref.WeakKeyDictionary()


def freeze_transport(ws: Any) -> None:
    """Stop reading ``ws``'s socket until :func:`thaw_transport`, whatever websockets' own flow control says.

    Nothing is read, pings included: the peer sees a connection that stopped answering, as
    with a stopped process. What ``ws`` queued before is still there to be taken.
    """
    if ws in _FROZEN:
        return
    ws.transport.pause_reading()
    _FROZEN[ws] = ws.recv_messages.resume
    ws.recv_messages.resume = _nothing  # the queue draining below its low mark must not resume it


def thaw_transport(ws: Any) -> None:
    """Read ``ws``'s socket again, unless websockets' flow control holds it paused (its queue is full)."""
    resume = _FROZEN.pop(ws, None)
    if resume is None:
        return
    ws.recv_messages.resume = resume
    if not ws.recv_messages.paused:
        ws.transport.resume_reading()


def auth_headers(token: str | None) -> dict[str, str]:
    """The handshake headers that present the mesh's token itself (none without one).

    For plain websocket clients and browsers only: mesh clients prove the token
    without sending it (:class:`MeshClientConnection`).
    """
    return {"Authorization": f"Bearer {token}"} if token else {}


class GreetingFailed(InvalidHandshake):
    """The hello frames that end a mesh handshake went wrong.

    ``fatal``: retrying cannot help (the node refused our token); otherwise the link
    retries with its backoff (a peer that does not prove it knows the token may be a
    squatter on the port of a node that will come back).
    """

    def __init__(self, reason: str, *, fatal: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal

    def __str__(self) -> str:
        return self.reason


class MeshClientConnection(KeptAlive, ClientConnection):
    """A mesh client's connection: its opening handshake ends once hello frames are exchanged.

    ``greeting()`` is the hello this client sends; the peer's answer is kept in
    ``peer_hello``. With a ``token``, the request offers a fresh nonce instead of the
    token; the hello carries the proof built on both nonces, and the peer's hello
    must carry its own proof, or :class:`GreetingFailed` is raised before the caller
    sends anything (see :mod:`mesh.auth`). A connection that does not get the mesh
    subprotocol skips the hellos: the caller says the peer does not speak it.

    Once the owner sets :attr:`on_text`, each whole text message from the peer is handed
    to it in the very turn that reads it from the socket: no reader task and no queue in
    between, so an ack settles its future one event-loop turn after it arrives, and the
    sender runs the next. ``on_text`` must not block or raise. What it cannot take in that
    turn (a fragmented or binary message, text that is not UTF-8) turns it off for the
    rest of the connection: from then on everything queues for ``recv()`` as usual, still
    in order, and websockets closes with 1007 on bad UTF-8 as it always does.
    """

    #: Where whole text messages go as they arrive (see above); None: they queue for recv().
    on_text: Callable[[str], None] | None = None

    def __init__(
        self, sans_io: ClientProtocol, *, greeting: Callable[[], protocol.Hello], token: str | None, **kwargs: Any
    ) -> None:
        super().__init__(sans_io, **kwargs)
        self.greeting = greeting
        self.token = token
        self.peer_hello: protocol.Hello | None = None

    async def handshake(
        self, additional_headers: HeadersLike | None = None, user_agent_header: str | None = USER_AGENT
    ) -> None:
        headers = Headers(additional_headers or {})
        client_nonce = auth.nonce()
        if self.token:
            headers[auth.NONCE_HEADER] = client_nonce
        await super().handshake(headers, user_agent_header)
        if self.subprotocol != protocol.SUBPROTOCOL:
            return
        hello = self.greeting()
        server_nonce = ""
        if self.token:
            assert self.response is not None
            nonces = self.response.headers.get_all(auth.NONCE_HEADER)
            server_nonce = nonces[0] if len(nonces) == 1 and auth.is_nonce(nonces[0]) else ""
            if not server_nonce:  # not a node of this mesh: it gets no proof to work on
                raise GreetingFailed(NOT_PROVEN)
            proof = auth.client_proof(self.token, client_nonce, server_nonce)
            hello = protocol.Hello(node=hello.node, session=hello.session, proof=proof)
        try:
            await self.send(protocol.encode(hello))
            raw = await self.recv()
            answer = protocol.decode(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
        except ConnectionClosed as exc:
            if self.token and exc.rcvd is not None and exc.rcvd.code == 1008:
                raise GreetingFailed(REFUSED, fatal=True) from None
            raise GreetingFailed(f"the connection closed before its hello ({describe_error(exc)})") from None
        except ProtocolError as exc:
            raise GreetingFailed(f"it answered the hello with a bad frame: {exc}") from None
        if isinstance(answer, protocol.Error) and self.token:
            raise GreetingFailed(REFUSED, fatal=True)
        if not isinstance(answer, protocol.Hello):
            raise GreetingFailed(f"it answered the hello with a {type(answer).__name__.lower()} frame, not a hello")
        if self.token and not auth.proves(auth.server_proof(self.token, client_nonce, server_nonce), answer.proof):
            raise GreetingFailed(NOT_PROVEN)
        self.peer_hello = answer
        forget_headers(self)

    def process_event(self, event: Event) -> None:
        on_text = self.on_text
        if on_text is not None and getattr(event, "opcode", None) in DATA_OPCODES:
            if event.opcode is Opcode.TEXT and event.fin:  # type: ignore[union-attr]
                try:
                    text = str(event.data, "utf-8")  # type: ignore[union-attr]
                except UnicodeDecodeError:
                    pass  # recv() says it, as websockets does: close 1007
                else:
                    try:
                        on_text(text)
                    except Exception:  # a bug of ours: said once, the connection dropped; never asyncio's "fatal error"
                        logging.getLogger("mesh").exception("a message from the peer could not be handled")
                        self.transport.abort()
                    return
            self.on_text = None  # in order from here on: everything through recv()
        super().process_event(event)


#: Why a mesh client refuses a peer, and why a node refused us.
NOT_PROVEN = "it does not prove it knows the mesh's token: not sending to it"
REFUSED = f"refused the handshake: {WRONG_TOKEN}"


def mesh_client(greeting: Callable[[], protocol.Hello], token: str | None) -> type[ClientConnection]:
    """What ``connect(create_connection=...)`` takes to open a :class:`MeshClientConnection`."""
    return cast("type[ClientConnection]", partial(MeshClientConnection, greeting=greeting, token=token))


def _ssl(context: ssl.SSLContext | None) -> dict[str, Any]:
    """``connect()``'s TLS argument: none for ``ws://`` (websockets refuses ``ssl`` with a ws:// URI)."""
    return {} if context is None else {"ssl": context}


def backoff(initial: float = 0.05, factor: float = 2.0, maximum: float = 2.0) -> Generator[float, None, None]:
    """Delays between attempts to reach a peer: short at first, capped at ``maximum``."""
    delay = initial
    while True:
        yield delay
        delay = min(delay * factor, maximum)


def describe_error(exc: BaseException, ssl_context: ssl.SSLContext | None = None, *, plain: bool = False) -> str:
    """Why a connection failed, in a few lower-case words.

    ``ssl_context``: the TLS context the connection used (its CA file is named when the
    peer's certificate is not signed by it); ``plain``: the connection was ``ws://``.
    """
    tls = describe_tls_error(exc, ssl_context)
    if tls is not None:
        return tls
    if plain and isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, EOFError):
        return MAYBE_TLS
    if ssl_context is not None and isinstance(exc, (ConnectionResetError, ssl.SSLEOFError)):
        return MAYBE_PLAIN
    if isinstance(exc, PeerUnavailable):
        return exc.reason
    if isinstance(exc, GreetingFailed):
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
        # The keepalive gave up on a peer that went silent and did not answer a ping: stuck, or frozen.
        return f"it sent nothing for {PING_INTERVAL + PING_TIMEOUT:g} s, not even a pong: busy or frozen?"
    return f"closed with {ws.close_code}" + (f": {escape(ws.close_reason)}" if ws.close_reason else "")


def is_fatal(exc: Exception) -> bool:
    """True if retrying cannot help: the ``websockets`` client's verdict (a 4xx, a bad handshake), or our token refused.

    A TLS failure is not fatal to a link (the peer's certificate may be replaced while it
    waits: see :class:`Connection`); a one-shot request never retries anything.
    """
    if isinstance(exc, GreetingFailed):
        return exc.fatal
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
    ) -> None:
        self.peer = peer
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
                ping_interval=PING_INTERVAL,
                ping_timeout=PING_TIMEOUT,
                additional_headers=self.headers,
                create_connection=mesh_client(self.greeting, self.token),
                process_exception=self._retry_or_give_up,
                reconnect_delays=self._delays,
                **_ssl(self.ssl_context),
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


async def request(
    peer: str,
    uri: str,
    frame: protocol.Frame,
    *,
    sender: str = "cli",
    open_timeout: float = OPEN_TIMEOUT,
    within: float | None = None,
    headers: Mapping[str, str] | None = None,
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> protocol.Frame:
    """Open a connection, send one frame, return the answer with the same id, close: for the CLI.

    ``open_timeout`` bounds opening the connection; ``within``, if given, the whole call.
    Refused, unreachable, or a TCP connection that times out: :class:`PeerUnavailable`.
    A peer whose TCP connection opens (the kernel accepts it for a live process) but
    that does not complete the handshake or answer in time: :class:`NotAnswering`,
    busy (a sketch blocking its event loop) or stopped, but there. With a ``token``,
    the peer must prove it knows it before the frame is sent (:class:`MeshClientConnection`).
    With an ``ssl_context`` (``wss://``), the peer's certificate is verified; a TLS failure
    is one line (:func:`mesh.tls.describe_tls_error`), no retry.
    """
    frame_id = getattr(frame, "id", None)
    phase = "connecting"
    try:
        async with asyncio.timeout(within):
            sock = await _open_socket(uri)
            phase = "handshake"
            greeting = partial(protocol.Hello, node=sender)
            async with connect(
                uri,
                **CLIENT,
                sock=sock,
                open_timeout=open_timeout,
                additional_headers=headers,
                create_connection=mesh_client(greeting, token),
                **_ssl(ssl_context),
            ) as ws:
                phase = "answer"
                if ws.subprotocol != protocol.SUBPROTOCOL:
                    raise PeerUnavailable(peer, uri, f"it does not speak {protocol.SUBPROTOCOL}")
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
        why = describe_error(exc, ssl_context, plain=ssl_context is None)
        raise PeerUnavailable(peer, uri, await _probed(why, exc, uri, ssl_context)) from None


async def _probed(why: str, exc: BaseException, uri: str, ssl_context: ssl.SSLContext | None) -> str:
    """``why`` made exact by a second, short TLS handshake, where a TLS failure leaves a doubt (CLI only).

    A plain client that got no HTTP answer learns whether the peer speaks TLS, a TLS
    client cut during its handshake whether the peer speaks plain HTTP; a certificate
    for another host says which names it holds.
    """
    parts = urlsplit(uri)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            if why == MAYBE_PLAIN:
                reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
                writer.write(f"GET / HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
                answer = await reader.read(5)
                writer.close()
                return SPEAKS_PLAIN if answer == b"HTTP/" else why
            if why == MAYBE_TLS:
                probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                probe.check_hostname = False
                probe.verify_mode = ssl.CERT_NONE  # only: does it speak TLS at all? Nothing is sent.
                _, writer = await asyncio.open_connection(parts.hostname, parts.port, ssl=probe)
                writer.close()
                return SPEAKS_TLS
            if (
                isinstance(exc, ssl.SSLCertVerificationError)
                and exc.verify_code in (62, 64)
                and isinstance(ssl_context, MeshContext)
                and ssl_context.tls is not None
            ):
                names = client_context(ssl_context.tls, check_hostname=False)  # still signed by the grid's CA
                _, writer = await asyncio.open_connection(parts.hostname, parts.port, ssl=names)
                cert = writer.get_extra_info("peercert") or {}
                writer.close()
                found = [str(value) for kind, value in cert.get("subjectAltName", ()) if kind in ("DNS", "IP Address")]
                return names_mismatch(str(parts.hostname), found)
    except (OSError, TimeoutError, MeshError):
        pass
    return why


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
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
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
        token=token,
        ssl_context=ssl_context,
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
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> dict[str, object]:
    """A node's status report (see docs/protocol.md)."""
    answer = await request(
        peer,
        uri,
        protocol.Status(id=1),
        open_timeout=open_timeout,
        within=within,
        headers=headers,
        token=token,
        ssl_context=ssl_context,
    )
    assert isinstance(answer, protocol.Report)
    return answer.data
