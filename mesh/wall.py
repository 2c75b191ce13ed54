"""The wall: every use of websockets (and asyncio) beyond its documented API lives here, and nothing else does.

The rest of the project sees websockets' documented API (``serve``, ``connect``, ``recv``,
``send``, ``close``, ``ping``, ``state``, ``request``, ``process_request``, ``broadcast``...)
or the names below. Each name here is a *hook*: it says what it relies on inside websockets
(the version range in ``pyproject.toml`` is the one CI tests) and why we reach past the
documented API. ``tests/mesh/test_wall.py`` holds a contract test per hook, named after it,
so that a release that changes one fails that test, not a user's circuit. It runs past 400 lines
and stays one module on purpose: its one job is to be the only place that knows websockets'
insides, and the hooks read best side by side.

The hooks:

- ``write_now``, ``writable``: a text frame written in the caller's turn, as ``broadcast()``
  does (``protocol.send_text`` + ``send_data``): ``send()`` costs a coroutine and a context
  manager per message on the hottest path.
- ``room_for``: whether a write goes straight to the transport under its limit (``paused``,
  ``transport.get_write_buffer_size()``): a node answers in the reading task's turn when it can.
- ``abort``, ``send_or_abort``, ``drained``: cut a connection at once (``transport.abort()``): a
  peer that does not read, a killed node, a keepalive that gave up; ``drained`` waits on
  ``drain()`` (the write limit), so that a publisher builds its next batch only once it fits.
- ``KeptAlive``, ``Sweeper``: keepalive from one timer per event loop, set when a connection may
  be due, instead of a task per connection (``process_event``, ``data_received``, ``start_keepalive`` and
  ``connection_made`` overridden; ``protocol.send_ping``/``fail``, ``send_data``; the
  transport's read size). A connection is heard when a whole frame arrives, not a byte: a
  frame trickled in keeps nothing alive.
- ``FrameBudget``, ``cap_frames``: the bytes of frames in progress (``protocol.reader.buffer``),
  bounded across all the connections of a node (the oldest slow peer cut first), and capped
  on one connection until its peer has proved who it is.
- ``closed_by_keepalive``: whether our keepalive closed a connection (``protocol.close_sent``).
- ``MeshClientConnection``: a client connection whose opening handshake ends with a greeting
  (``handshake`` overridden) and which hands whole text messages over in the turn that reads
  them (``process_event`` overridden).
- ``forget_headers``: a greeted connection's handshake headers dropped (nothing reads them again).
- ``freeze``, ``thaw``: stop reading a connection whatever the flow control says
  (``transport.pause_reading``, ``recv_messages.resume`` replaced): a simulated SIGSTOP.
- ``NodeConnection``: a server connection whose protocol answers a request it cannot parse with
  a 400 and a line of help (``send_eof`` overridden, the protocol's class swapped in
  ``create_connection``, the one hook that sees it).
- ``SniffingConnection``, ``sniffing``: a node's connection that reads its first bytes before
  websockets hears of it, and hands the transport to another protocol (a Redis client) when they
  say so (``connection_made`` held back; the instance's class swapped back to
  :class:`NodeConnection` once decided, so a websocket pays nothing more per message).
- ``stop_listening``: close a server's listening socket and keep its connections
  (``Server.server``, the asyncio server underneath).
- ``set_socket_buffers``: the kernel's buffers of a served connection (``transport``).
- ``route``, ``unroute``: a simulation's network under ``serve()`` and ``connect()``: they open
  servers and connections through the running loop's ``create_server`` and ``create_connection``
  (their documented way), which ``route`` replaces on one loop instance (asyncio's, beyond its
  documented API: a loop's methods are looked up on the instance, which has no ``__slots__``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import weakref
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from typing import Any, Protocol, cast

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.connection import Connection
from websockets.asyncio.server import Server, ServerConnection
from websockets.client import ClientProtocol
from websockets.datastructures import Headers, HeadersLike
from websockets.exceptions import InvalidMessage
from websockets.frames import DATA_OPCODES, CloseCode, Opcode
from websockets.http11 import USER_AGENT
from websockets.protocol import CONNECTING, OPEN, Event, State
from websockets.server import ServerProtocol

from .throttle import escape

__all__ = [
    "FIRST_BYTES_TIMEOUT",
    "IDLE_LOOK",
    "KEEPALIVE_TIMEOUT",
    "READ_SIZE",
    "SWEEP",
    "FrameBudget",
    "Greeter",
    "KeptAlive",
    "MeshClientConnection",
    "NodeConnection",
    "SniffingConnection",
    "Sweeper",
    "abort",
    "cap_frames",
    "closed_by_keepalive",
    "drained",
    "forget_headers",
    "freeze",
    "mesh_client",
    "node_connection",
    "owe",
    "room_for",
    "route",
    "send_or_abort",
    "set_socket_buffers",
    "sniffing",
    "stop_listening",
    "sweeper",
    "thaw",
    "unroute",
    "writable",
    "write_now",
]

#: The reason a connection is closed with when its peer stopped answering (websockets' own words).
KEEPALIVE_TIMEOUT = "keepalive ping timeout"
#: Seconds between two looks at the kept-alive connections, at least (a quarter of the shortest
#: interval or timeout, if less): how late a ping or a failure may come past its due time.
SWEEP = 0.25
#: Seconds between two looks at most, when no connection is due sooner.
IDLE_LOOK = 2.0
#: Bytes asked of the kernel per read. asyncio asks 256 KiB, above glibc's threshold for mapping
#: memory: each read then mapped a fresh buffer and unmapped it once shrunk to the few bytes a
#: frame holds (bench/NOTES.md has the figures).
READ_SIZE = 64 * 1024
#: What a keepalive ping carries: websockets ignores a pong it did not ask for, which this one is to it.
_PAYLOAD = b""


# -- hook: write_now, writable, room_for ----------------------------------------------------


def writable(ws: Connection) -> bool:
    """Whether :func:`write_now` writes to ``ws`` now: open, no fragmented message going out, below its write limit."""
    return ws.protocol.state is OPEN and ws.send_in_progress is None and not ws.paused


def write_now(ws: Connection, text: str | bytes) -> bool:
    """Write one text message on ``ws`` at once, as ``websockets.broadcast()`` does; False: await ``ws.send()``.

    The same frame through the same protocol object as ``send()``, for a connection that
    is open, sends no fragmented message and whose write buffer is under its limit (so
    ``send()`` would not wait either). Otherwise nothing is written. A write that fails
    aborts the connection, as ``send()`` would; the caller learns it from its reader.
    ``text`` may be UTF-8 already (bytes): a publisher encodes a batch once for many subscribers.
    """
    if not writable(ws):
        return False
    ws.protocol.send_text(text.encode() if isinstance(text, str) else text)
    try:
        ws.send_data()
    except Exception as exc:
        ws.set_connection_exc(exc)
        ws.transport.abort()
    return True


def room_for(ws: Connection, size: int, limit: int) -> bool:
    """Whether ``size`` more bytes go straight to ``ws``'s transport and keep its buffer within ``limit``."""
    return not ws.paused and ws.transport.get_write_buffer_size() + size <= limit


# -- hook: abort -------------------------------------------------------------------------------


def abort(ws: Connection) -> None:
    """Cut ``ws`` at once, as a killed process would: no close frame, the peer sees a reset."""
    ws.transport.abort()


async def drained(ws: Connection, within: float) -> bool:
    """Wait until ``ws``'s transport is below its write limit (``drain()``), at most ``within`` seconds; past it,
    abort the connection: False. What is written next is then built only once there is room for it."""
    try:
        async with asyncio.timeout(within):
            await ws.drain()
    except TimeoutError:
        abort(ws)
        return False
    return True


async def send_or_abort(ws: Connection, text: str, within: float) -> bool:
    """Send ``text`` on ``ws``, waiting at most ``within`` seconds for the peer to read; past it, abort: False."""
    try:
        async with asyncio.timeout(within):
            await ws.send(text)
    except TimeoutError:
        abort(ws)
        return False
    return True


# -- hook: KeptAlive, Sweeper, closed_by_keepalive -----------------------------------------------


class KeptAlive(Connection):
    """A websockets connection whose keepalive is its loop's :class:`Sweeper`, not a task of its own.

    websockets' own keepalive pings every interval whatever the traffic, from a task per
    connection, at both ends of a link. Here each connection stamps when it last heard a whole
    frame (a pong included), and one sweeper per loop pings only a connection gone silent: a
    frame in progress for longer than the keepalive's interval and timeout fails it, so a peer
    that trickles a frame a byte at a time holds its bytes that long at most.

    With a :class:`FrameBudget`, the bytes of its frame in progress count against its node's.
    """

    #: The loop's time when something last came in (any whole frame, a pong included).
    last_heard = 0.0
    #: The loop's time of the last keepalive ping (0: none yet).
    pinged = 0.0
    #: Bytes of a frame in progress held for this connection now, and of replies owed to its peer (FrameBudget).
    held = 0
    owed = 0
    counted = 0
    #: Bytes a frame in progress may hold before its peer proved who it is (None: no cap).
    cap: int | None = None
    #: The node's budget over frames in progress (server side), or None.
    budget: FrameBudget | None = None

    def __init__(self, *args: Any, budget: FrameBudget | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Set here, in the same order for every connection, so that instances share their dict's
        # keys: first set in data_received, they cost a dict of their own per connection.
        self.last_heard = 0.0
        self.pinged = 0.0
        self.held = self.owed = self.counted = 0
        self.cap = None
        self.budget = budget

    def process_event(self, event: Event) -> None:
        self.last_heard = self.loop.time()
        super().process_event(event)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # asyncio's socket transport reads max_size at a time; TLS's reads into a buffer of its own.
        if getattr(transport, "max_size", 0) > READ_SIZE:
            transport.max_size = READ_SIZE  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        held = len(self.protocol.reader.buffer)  # the bytes of a frame not yet whole
        if held != self.held:
            if self.cap is not None and held > self.cap:
                self.protocol.fail(CloseCode.POLICY_VIOLATION, "frame too large before the hello")
                self.send_data()
                abort(self)
                held = 0
            if self.budget is not None:
                self.budget.hold(self, frame=held)
            else:
                self.held = held

    def start_keepalive(self) -> None:
        if self.ping_interval is not None:
            self.last_heard = self.loop.time()
            sweeper(self.loop).add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        sweeper(self.loop).discard(self)
        if self.budget is not None:
            self.budget.hold(self, frame=0, owed=0)
        super().connection_lost(exc)


class Sweeper:
    """Every kept-alive connection of one event loop, looked at when one of them may be due, at most every :data:`SWEEP` seconds.

    - silent for ``ping_interval``: one ping (its pong, like anything else heard, ends the silence);
    - nothing heard within ``ping_timeout`` of that ping: the connection fails as websockets'
      keepalive fails it (close code 1011, reason :data:`KEEPALIVE_TIMEOUT`). Counted from the
      ping, not from the silence's start: a loop that was held up past both (a blocking sketch,
      a loaded machine) pings first, and its peers get their whole timeout to answer.

    Each look finds when the next connection may be due (the earliest end of a silence, as
    heard so far) and sets its timer there, but no sooner than a period away: connections that
    hear something every second are looked at about once a second, not four times. Anything
    heard meanwhile only moves a connection's due time later, so the timer is never late; a new
    connection brings the timer forward if it must. Its timer is the loop's clock: in a
    simulation the keepalive runs in virtual time.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        #: In the order they came (a dict, not a set: a simulation pings in the same order every run).
        self.connections: dict[KeptAlive, None] = {}
        self.period = SWEEP
        self.timer: asyncio.TimerHandle | None = None
        #: Pings sent and connections failed, over the loop's life (for tests and benchmarks).
        self.pings = 0
        self.failed = 0

    def add(self, ws: KeptAlive) -> None:
        self.connections[ws] = None
        shortest = min(ws.ping_interval or SWEEP, ws.ping_timeout or SWEEP)
        self.period = min(self.period, shortest / 4)
        due = self.loop.time() + (ws.ping_interval or SWEEP)
        if self.timer is None or self.timer.when() > due:
            self._look_at(due)

    def discard(self, ws: KeptAlive) -> None:
        self.connections.pop(ws, None)

    def _look_at(self, when: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_at(when, self.sweep)

    def sweep(self) -> None:
        """Ping each connection silent for its interval (once per silence); fail each not heard within timeout of it."""
        self.timer = None
        now = self.loop.time()
        due = now + IDLE_LOOK
        for ws in list(self.connections):
            heard = ws.last_heard
            interval = ws.ping_interval
            if interval is None:
                continue
            if now - heard < interval:  # the common case first: heard lately
                due = min(due, heard + interval)
                continue
            if ws.protocol.state is not State.OPEN or ws.transport.is_closing():
                continue
            timeout = ws.ping_timeout
            if ws.pinged <= heard:  # no ping yet in this silence: one now, with its whole timeout to be answered
                ws.pinged = now
                self.pings += 1
                ws.protocol.send_ping(_PAYLOAD)
                ws.send_data()
            elif timeout is not None and now - ws.pinged >= timeout:  # pinged, and nothing heard since, in time
                self._fail(ws)
                continue
            if timeout is not None:
                due = min(due, ws.pinged + timeout)
        if self.connections:
            self._look_at(max(due, now + self.period))

    def _fail(self, ws: KeptAlive) -> None:
        """Close ``ws`` as websockets' keepalive does, then cut it if the peer does not answer the close in time."""
        self.failed += 1
        self.discard(ws)
        ws.protocol.fail(CloseCode.INTERNAL_ERROR, KEEPALIVE_TIMEOUT)
        ws.send_data()
        self.loop.call_later(ws.close_timeout or 0, _abort_unclosed, ws)


def _abort_unclosed(ws: Connection) -> None:
    if ws.protocol.state is not State.CLOSED:
        abort(ws)


class FrameBudget:
    """The bytes one node holds for its slow peers, across all its connections, at most.

    Each served connection reports what it holds for its peer (:meth:`hold`): the bytes of a
    frame in progress, or of replies waiting for a peer that does not read them. Past the
    budget, the connection that has been holding longest is cut, then the next: the oldest
    slow peer first, so that a flood of trickled frames or of peers that never read cannot
    hold a node's memory, while a legitimate frame, whole in a moment, always finds room.
    """

    def __init__(self, limit: int, log: logging.Logger | None = None) -> None:
        self.limit = limit
        self.log = log or logging.getLogger("mesh")
        #: Bytes held now, and by whom, oldest frame first.
        self.held = 0
        self.holders: dict[KeptAlive, None] = {}
        #: Connections cut to keep to the budget, over the node's life.
        self.cut = 0

    def hold(self, ws: KeptAlive, *, frame: int | None = None, owed: int | None = None) -> None:
        """What ``ws`` holds for its peer now: the bytes of its ``frame`` in progress, of the replies it ``owed``."""
        if frame is not None:
            ws.held = frame
        if owed is not None:
            ws.owed = owed
        total = ws.held + ws.owed
        self.held += total - ws.counted
        if total and not ws.counted:
            self.holders[ws] = None  # it begins to hold: the newest holder
        elif not total:
            self.holders.pop(ws, None)
        ws.counted = total
        while self.held > self.limit and self.holders:
            oldest = next(iter(self.holders))
            self.holders.pop(oldest)
            self.held -= oldest.counted
            self.log.debug("cut a peer holding %d bytes: the node's budget is full", oldest.counted)
            oldest.held = oldest.owed = oldest.counted = 0
            self.cut += 1
            abort(oldest)


def owe(ws: Connection, owed: int) -> None:
    """``ws`` holds ``owed`` bytes of replies for a peer that does not read them yet (0: none): they count
    against its node's budget, as a frame in progress does."""
    if isinstance(ws, KeptAlive) and ws.budget is not None:
        ws.budget.hold(ws, owed=owed)


def cap_frames(ws: Connection, cap: int | None) -> None:
    """Cap the bytes a frame in progress may hold on ``ws`` (None: lift the cap): before its peer proved who it is."""
    if isinstance(ws, KeptAlive):
        ws.cap = cap


_SWEEPERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Sweeper] = weakref.WeakKeyDictionary()


def sweeper(loop: asyncio.AbstractEventLoop) -> Sweeper:
    """The one sweeper of ``loop``."""
    found = _SWEEPERS.get(loop)
    if found is None:
        found = _SWEEPERS[loop] = Sweeper(loop)
    return found


def closed_by_keepalive(ws: Connection) -> bool:
    """Whether ``ws`` was closed by our keepalive, giving up on a peer that went silent (not by the peer)."""
    sent = ws.protocol.close_sent
    return ws.protocol.close_rcvd is None and sent is not None and sent.reason == KEEPALIVE_TIMEOUT


# -- hook: MeshClientConnection, forget_headers --------------------------------------------------


class Greeter(Protocol):
    """What ends a mesh client's opening handshake (:mod:`mesh.handshake` makes one per connection)."""

    def request_headers(self) -> dict[str, str]:
        """Headers to add to the handshake request."""
        ...

    async def greet(self, ws: ClientConnection) -> bool:
        """After the HTTP handshake: exchange hellos (True), or not for this peer (False); an ``InvalidHandshake``
        if it went wrong (``connect()`` retries it or gives up, as on any failed handshake)."""
        ...


class MeshClientConnection(KeptAlive, ClientConnection):
    """A mesh client's connection: its opening handshake ends with a greeting; text arrives in the turn it is read.

    ``greeter()`` makes this connection's :class:`Greeter`. Overriding ``handshake`` puts
    the greeting inside ``connect()``'s opening, so that a failed greeting is retried or
    given up on as any failed handshake is (``process_exception``).

    Once the owner sets :attr:`on_text`, each whole text message from the peer is handed
    to it in the very turn that reads it from the socket: no reader task and no queue in
    between. ``on_text`` must not block or raise. What it cannot take in that turn (a
    fragmented or binary message, text that is not UTF-8) turns it off for the rest of the
    connection: from then on everything queues for ``recv()`` as usual, still in order, and
    websockets closes with 1007 on bad UTF-8 as it always does.
    """

    #: Where whole text messages go as they arrive (see above); None: they queue for recv().
    on_text: Callable[[str], None] | None = None

    def __init__(self, sans_io: ClientProtocol, *, greeter: Callable[[], Greeter], **kwargs: Any) -> None:
        super().__init__(sans_io, **kwargs)
        self.greeter = greeter()

    async def handshake(
        self, additional_headers: HeadersLike | None = None, user_agent_header: str | None = USER_AGENT
    ) -> None:
        headers = Headers(additional_headers or {})
        headers.update(self.greeter.request_headers())
        await super().handshake(headers, user_agent_header)
        if await self.greeter.greet(self):
            forget_headers(self)  # a greeted connection reads nothing of its handshake again

    def process_event(self, event: Event) -> None:
        on_text = self.on_text
        if on_text is not None and getattr(event, "opcode", None) in DATA_OPCODES:
            if event.opcode is Opcode.TEXT and event.fin:  # type: ignore[union-attr]
                try:
                    text = str(event.data, "utf-8")  # type: ignore[union-attr]
                except UnicodeDecodeError:
                    pass  # recv() says it, as websockets does: close 1007
                else:
                    self.last_heard = self.loop.time()  # heard, as KeptAlive.process_event would say
                    try:
                        on_text(text)
                    except Exception:  # a bug of ours: said once, the connection dropped; never asyncio's "fatal error"
                        logging.getLogger("mesh").exception("a message from the peer could not be handled")
                        abort(self)
                    return
            self.on_text = None  # in order from here on: everything through recv()
        super().process_event(event)  # KeptAlive's: heard


def mesh_client(greeter: Callable[[], Greeter]) -> type[ClientConnection]:
    """What ``connect(create_connection=...)`` takes to open a :class:`MeshClientConnection`."""
    return cast("type[ClientConnection]", partial(MeshClientConnection, greeter=greeter))


def forget_headers(ws: Connection) -> None:
    """Drop the handshake's headers of a mesh connection once greeted: nothing reads them after."""
    for message in (getattr(ws, "request", None), getattr(ws, "response", None)):
        if message is not None:
            message.headers = Headers()


# -- hook: freeze, thaw -----------------------------------------------------------------------------

#: The flow control's own resume of each frozen connection, put back by thaw().
_FROZEN: weakref.WeakKeyDictionary[Connection, Callable[[], None]] = weakref.WeakKeyDictionary()


def _nothing() -> None:
    pass


def freeze(ws: Connection) -> None:
    """Stop reading ``ws``'s socket until :func:`thaw`, whatever websockets' own flow control says.

    Nothing is read, pings included: the peer sees a connection that stopped answering, as
    with a stopped process. What ``ws`` queued before is still there to be taken.
    """
    if ws in _FROZEN:
        return
    ws.transport.pause_reading()
    _FROZEN[ws] = ws.recv_messages.resume
    ws.recv_messages.resume = _nothing  # the queue draining below its low mark must not resume it


def thaw(ws: Connection) -> None:
    """Read ``ws``'s socket again, unless websockets' flow control holds it paused (its queue is full)."""
    resume = _FROZEN.pop(ws, None)
    if resume is None:
        return
    ws.recv_messages.resume = resume
    if not ws.recv_messages.paused:
        ws.transport.resume_reading()


# -- hook: NodeConnection (the 400 of a request websockets cannot parse) -------------------------------

#: What a 400 says after what was wrong: how to talk to a node.
HTTP_HELP = "This port speaks HTTP/1.1: GET a page, or open a websocket (try: websocat ws://HOST:PORT/).\n"
#: Characters of a peer's bad request quoted back in a 400 at most.
QUOTED = 200


class AnsweringServerProtocol(ServerProtocol):
    """websockets' server protocol, except that a request it cannot parse gets a 400 with a line of help.

    websockets closes the connection without a word when ``Request.parse`` fails (a garbage
    request line, no HTTP version): its ``parse()`` sets ``handshake_exc`` to an
    InvalidMessage caused by the parser's error, then calls :meth:`send_eof`. That call is
    the one place to add the reply before the EOF; everything else (parsing, limits, the
    close) stays the library's own.
    """

    answered = False

    def send_eof(self) -> None:
        exc = self.handshake_exc
        cause = exc.__cause__ if isinstance(exc, InvalidMessage) else None
        # EOFError: the client went away mid-request: there is nobody to answer.
        if self.state is CONNECTING and not self.answered and cause is not None and not isinstance(cause, EOFError):
            self.answered = True
            why = escape(cause, QUOTED, ascii_only=True) or "not an HTTP request"
            self.writes.append(self.reject(HTTPStatus.BAD_REQUEST, f"400 Bad Request: {why}\n{HTTP_HELP}").serialize())
        super().send_eof()


class NodeConnection(KeptAlive, ServerConnection):
    """A connection to a node: the library's, with :class:`AnsweringServerProtocol` for its HTTP.

    ``serve()`` builds the ServerProtocol itself and hands it to ``create_connection``: the
    one hook that sees it. The protocol's subclass adds a method and no state, so changing the
    instance's class is all it takes. Its keepalive is the loop's :class:`Sweeper`.
    """

    def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
        protocol.__class__ = AnsweringServerProtocol
        super().__init__(protocol, *args, **kwargs)


# -- hook: SniffingConnection, sniffing (a connection's first bytes decide who serves it) -----------------

#: Seconds a new connection may stay silent before it is closed (websockets' own open_timeout, which
#: bounds an HTTP handshake, starts only once the first bytes said HTTP).
FIRST_BYTES_TIMEOUT = 10.0


class SniffingConnection(NodeConnection):
    """A node's connection that reads its first bytes before websockets hears of it.

    ``decide(head)`` says what the bytes read so far are: False, HTTP (websockets gets
    ``connection_made`` and the bytes, and everything goes on as for a :class:`NodeConnection`);
    True, another protocol (the transport is handed to ``other()``, which gets
    ``connection_made`` and the bytes: websockets never hears of it, so neither its handshake
    timer nor its handler starts); None, not yet. Either way the instance's class then becomes
    :class:`NodeConnection` (it adds no state), so that a websocket pays nothing more per
    message. With TLS the transport is asyncio's TLS one: the bytes are the plaintext.
    """

    def __init__(
        self,
        protocol: ServerProtocol,
        *args: Any,
        decide: Callable[[bytes], bool | None],
        other: Callable[[], asyncio.Protocol],
        **kwargs: Any,
    ) -> None:
        super().__init__(protocol, *args, **kwargs)
        self._decide = decide
        self._other = other
        self._head = b""
        self._pending: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._pending = transport
        if getattr(transport, "max_size", 0) > READ_SIZE:  # as KeptAlive does, for both ways on
            transport.max_size = READ_SIZE  # type: ignore[attr-defined]
        assert isinstance(transport, asyncio.Transport)
        self._timer = self.loop.call_later(FIRST_BYTES_TIMEOUT, transport.abort)

    def data_received(self, data: bytes) -> None:
        head = self._head + data
        other = self._decide(head)
        if other is None:
            self._head = head
            return
        transport = self._pending
        assert transport is not None and self._timer is not None
        self._timer.cancel()
        self._head, self._pending = b"", None
        self.__class__ = NodeConnection  # type: ignore[assignment]
        if other:
            protocol = self._other()
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            protocol.data_received(head)
        else:
            self.connection_made(transport)
            self.data_received(head)

    def eof_received(self) -> None:
        return None  # closed before saying what it is: the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:  # gone before its first bytes decided anything
            self._timer.cancel()


def sniffing(
    decide: Callable[[bytes], bool | None], other: Callable[[], asyncio.Protocol], budget: FrameBudget | None = None
) -> type[ServerConnection]:
    """What ``serve(create_connection=...)`` takes to make each connection a :class:`SniffingConnection` (its frames
    held within ``budget``, as :func:`node_connection`'s)."""
    return cast("type[ServerConnection]", partial(SniffingConnection, decide=decide, other=other, budget=budget))


# -- hook: stop_listening, set_socket_buffers ------------------------------------------------------------


def node_connection(budget: FrameBudget) -> type[ServerConnection]:
    """What ``serve(create_connection=...)`` takes to open a :class:`NodeConnection` holding frames within ``budget``."""
    return cast("type[ServerConnection]", partial(NodeConnection, budget=budget))


def stop_listening(server: Server) -> None:
    """Close ``server``'s listening socket: connecting is refused from now on; open connections go on."""
    server.server.close()


def set_socket_buffers(ws: ServerConnection, size: int) -> None:
    """Bound the kernel's buffers of ``ws``'s socket, each way (autotuning would let a peer hold megabytes).

    Nothing to do for a connection already closed: websockets runs ``process_request`` turns after
    it parsed the request, and a peer that reset its connection meanwhile has closed the socket.
    """
    sock = ws.transport.get_extra_info("socket")
    if sock is None or ws.transport.is_closing() or sock.fileno() < 0:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


# -- hook: route, unroute ------------------------------------------------------------------------------


def route(
    loop: asyncio.AbstractEventLoop,
    create_server: Callable[..., Any],
    create_connection: Callable[..., Any],
) -> None:
    """Have ``serve()`` and ``connect()`` on ``loop`` open through ``create_server``/``create_connection``.

    websockets opens every server and client connection through the running loop's two methods
    (``serve()`` and ``connect()`` pass their extra keywords on to them); set on the instance, they
    shadow the class's for this loop alone (a simulation's network: :mod:`mesh.network`), whatever
    class the loop is (ours, or pytest-asyncio's as looptime patched it).
    """
    loop.create_server = create_server  # type: ignore[method-assign]
    loop.create_connection = create_connection  # type: ignore[method-assign]


def unroute(loop: asyncio.AbstractEventLoop) -> None:
    """Undo :func:`route`: the loop's own methods again."""
    for name in ("create_server", "create_connection"):
        loop.__dict__.pop(name, None)
