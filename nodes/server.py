"""Serving: one websockets server per node, plain and mesh on one port.

A client that negotiates the ``arduino-mesh.1`` subprotocol gets a mesh
session (JSON frames, see :mod:`mesh.protocol`); any other client gets the
plain protocol that ``@reactive`` provides: one text frame in, one back.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import json
import logging
import socket
import ssl
import time
import weakref
from collections.abc import Awaitable, Sequence
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidHeader, InvalidMessage
from websockets.headers import parse_subprotocol
from websockets.http11 import Request, Response
from websockets.protocol import CONNECTING
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from mesh import auth, protocol
from mesh.connection import (
    CLOSE_TIMEOUT,
    OPEN_TIMEOUT,
    SEND_TIMEOUT,
    SERVER_PING_INTERVAL,
    SERVER_PING_TIMEOUT,
    WRONG_TOKEN,
    forget_headers,
    freeze_transport,
    send_or_abort,
    write_now,
)
from mesh.errors import ListenError, ProtocolError, SubscriptionLimit, TopicError
from mesh.keepalive import KeptAlive
from mesh.throttle import Throttle, escape
from mesh.topics import check_pattern

from .delivery import Session, Sessions
from .pubsub import Hub

__all__ = ["NodeServer", "Served"]

#: Connections the kernel queues before the node accepts them (asyncio's default of 100
#: makes the 101st of a burst wait a second for TCP to retry).
BACKLOG = 1024
#: Sub and unsub frames a connection has answered before the server yields to the others.
YIELD_EVERY = 64
#: The mesh subprotocol, as websockets types a subprotocol name.
MESH_SUBPROTOCOL = Subprotocol(protocol.SUBPROTOCOL)
#: The write buffer (websockets' write_limit, its default) past which a send waits for the peer.
WRITE_LIMIT = 2**15
#: Incoming frames a connection queues before the server stops reading from its socket
#: (websockets' max_queue, its default): with max_size, it bounds what one peer holds in the
#: node. Not lower: a pong queued behind a peer's frames is not read while reading is paused,
#: so a busy but healthy link would fail its keepalive.
MAX_QUEUE = 16
#: Seconds a batch's frames may hold the event loop before the server lets other work run.
SLICE = 0.002
#: A reply to one websocket frame holds at most REPLY_FACTOR times its bytes plus REPLY_SLACK
#: (acks of messages aside: they are owed); past it, one error stands for the rest.
REPLY_FACTOR = 4
REPLY_SLACK = 4096
#: Seconds a mesh client that proves the token (instead of sending it) has to send its hello.
HELLO_TIMEOUT = OPEN_TIMEOUT
#: Seconds a client has to complete its TLS handshake (a grid with tls), before the HTTP one starts.
TLS_HANDSHAKE_TIMEOUT = OPEN_TIMEOUT
#: Headers the node reads in a handshake: each may come once (a duplicate gets a 400, not a guess).
SINGLE_HEADERS = ("Host", "Upgrade", "Authorization", "Sec-WebSocket-Key", "Sec-WebSocket-Version", auth.NONCE_HEADER)
#: What a 400 says after what was wrong: how to talk to a node.
HTTP_HELP = "This port speaks HTTP/1.1: GET a page, or open a websocket (try: websocat ws://HOST:PORT/).\n"
#: Characters of a peer's bad request quoted back in a 400 at most.
QUOTED = 200


class AnsweringServerProtocol(ServerProtocol):
    """websockets' server protocol, except that a request it cannot parse gets a 400 with a line of help.

    websockets 17.4 closes the connection without a word when ``Request.parse`` fails
    (a garbage request line, POST, no HTTP version): its ``parse()`` sets
    ``handshake_exc`` to an InvalidMessage caused by the parser's error, then calls
    :meth:`send_eof`. That call is the one place to add the reply before the EOF;
    everything else (parsing, limits, the close) stays the library's own.
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

    ``serve()`` builds the ServerProtocol itself and hands it to ``create_connection``:
    the one hook that sees it. The protocol's subclass adds a method and no state, so
    changing the instance's class is all it takes. Its keepalive is the loop's sweeper
    (:mod:`mesh.keepalive`): a link pings this end, so only clients that ping nobody are pinged.
    """

    def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
        protocol.__class__ = AnsweringServerProtocol
        super().__init__(protocol, *args, **kwargs)


def _offers_mesh(request: Request) -> bool:
    """Whether the handshake asks for the mesh subprotocol."""
    try:
        offered = [
            name for value in request.headers.get_all("Sec-WebSocket-Protocol") for name in parse_subprotocol(value)
        ]
    except InvalidHeader:
        return False
    return MESH_SUBPROTOCOL in offered


def token_matches(request: Request, token: str) -> bool:
    """Whether the request presents ``token``: ``Authorization: Bearer`` or, for browsers, ``?token=``.

    Compared in constant time; the token is never logged.
    """
    supplied = ""
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        supplied = authorization[len("Bearer ") :].strip()
    else:
        supplied = parse_qs(urlsplit(request.path).query).get("token", [""])[0]
    return hmac.compare_digest(supplied.encode(), token.encode())


class Served(Protocol):
    """What the server needs of a node: who it is, how it answers, what it reports."""

    name: str
    log: logging.Logger
    token: str | None
    hub: Hub
    sessions: Sessions

    @property
    def address(self) -> str | None: ...

    def describe(self) -> str:
        """One line for a plain HTTP visitor: what this node is."""
        ...

    def handle(self, channel: str, message: str) -> Awaitable[tuple[bool, str]]:
        """``loop()`` on one message: ``(True, ack)`` or ``(False, why)``; never raises."""
        ...

    async def serve_plain(self, websocket: ServerConnection) -> None:
        """A websocket client without the mesh subprotocol."""
        ...

    def http(self, path: str) -> tuple[int, str, bytes] | None:
        """A plain HTTP request: ``(status, content type, body)``, or None."""
        ...

    def is_public(self, path: str) -> bool:
        """Whether ``path`` is served without the mesh's token."""
        ...

    def status(self) -> dict[str, Any]:
        """The status report (docs/protocol.md)."""
        ...


async def _handled(node: Served, peer: str, frame: protocol.Message) -> tuple[bool, str]:
    """``loop()`` for a message of a session, then a debug line saying it was handled."""
    outcome = await node.handle(frame.channel, frame.data)
    node.log.debug("handled message %d from %s on %r: %r", frame.id, escape(peer), frame.channel, frame.data)
    return outcome


def _peer(connection: ServerConnection) -> str:
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if address else "a client"


def _host(connection: ServerConnection) -> str:
    """The client's host, without its port: what repeated warnings are counted by."""
    address = connection.remote_address
    return str(address[0]) if address else ""


def _select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """Mesh peers ask for the mesh subprotocol; everyone else gets plain text."""
    return MESH_SUBPROTOCOL if MESH_SUBPROTOCOL in offered else None


class NodeServer:
    """One node's websockets server, plain and mesh on one port; it counts its own connections.

    ``connections`` counts every connection that reached a handler; ``handlers`` holds the
    tasks of those still open (cancelled when a stop's grace runs out).
    """

    def __init__(self, node: Served, max_size: int | None) -> None:
        self.node = node
        self.max_size = max_size
        self.connections = 0
        self.handlers: set[asyncio.Task[None]] = set()
        self.server: Server | None = None
        #: (client nonce, node nonce) of mesh clients that are to prove the token in their hello.
        self.challenges: weakref.WeakKeyDictionary[ServerConnection, tuple[str, str]] = weakref.WeakKeyDictionary()
        #: Warnings a client can repeat at will (a wrong token): one line, then a count.
        self.throttle = Throttle(node.log)
        #: ``ws`` or ``wss`` (the grid has tls): what the node's help text tells a visitor to use.
        self.scheme = "ws"

    @property
    def address(self) -> str | None:
        """``host:port`` actually bound (the real port when 0 was asked)."""
        if self.server is None or not self.server.sockets:  # not yet listening, or closed
            return None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    @property
    def port(self) -> int | None:
        if self.server is None or not self.server.sockets:
            return None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def handler(self, websocket: ServerConnection) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        challenge = self.challenges.pop(websocket, None)
        if getattr(self.node, "frozen", False):  # accepted while a simulation holds the node frozen
            freeze_transport(websocket)
        try:
            if websocket.subprotocol == protocol.SUBPROTOCOL:
                forget_headers(websocket)  # a mesh session reads nothing of the handshake past this point
                await mesh_session(self.node, websocket, challenge, self.throttle)
            elif challenge is not None:  # admitted to prove the token in a hello: mesh only
                await websocket.close(1008, WRONG_TOKEN)
            else:
                await self.node.serve_plain(websocket)
        finally:
            self.handlers.discard(task)

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Before the handshake: check the token, and answer plain HTTP with a line of help.

        A mesh client that offers a nonce (``Mesh-Nonce``) instead of the token gets in
        here and proves the token in its hello (:func:`mesh_session`).
        """
        sock = connection.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        node = self.node
        if request.method != "GET":  # websockets parses any method; a node serves GET only
            text = f"400 Bad Request: unsupported HTTP method; expected GET; got {escape(request.method, QUOTED, ascii_only=True)}\n{HTTP_HELP}"
            return connection.respond(HTTPStatus.BAD_REQUEST, text)
        for name in SINGLE_HEADERS:
            count = len(request.headers.get_all(name))
            if count > 1:
                node.log.debug("bad request from %s: %d %s headers", _peer(connection), count, name)
                text = f"400 Bad Request: the {name} header came {count} times; send it once.\n{HTTP_HELP}"
                return connection.respond(HTTPStatus.BAD_REQUEST, text)
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        path = urlsplit(request.path).path
        public = not upgrade and node.is_public(path)
        if node.token is not None and not public and not token_matches(request, node.token):
            client_nonce = request.headers.get(auth.NONCE_HEADER)
            if upgrade and _offers_mesh(request) and auth.is_nonce(client_nonce):
                assert client_nonce is not None
                self.challenges[connection] = (client_nonce, auth.nonce())
                return None
            self.throttle.warn(
                ("token", _host(connection)), "refused a connection from %s: wrong or missing token", _peer(connection)
            )
            return connection.respond(HTTPStatus.UNAUTHORIZED, "401 Unauthorized: this mesh needs its token\n")
        if not upgrade:
            page = node.http(path)
            if page is not None:
                status, content_type, body = page
                headers = Headers(
                    [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-cache")]
                )
                return Response(status, HTTPStatus(status).phrase, headers, body)
            text = (
                f"{node.describe()}; it speaks websockets.\n"
                f"Try: websocat {self.scheme}://{node.address}/   or   ./arduino.py send {node.name} MESSAGE\n"
            )
            response = connection.respond(HTTPStatus.UPGRADE_REQUIRED, text)
            response.headers["Upgrade"] = "websocket"  # a 426 says what to upgrade to (RFC 9110)
            return response
        return None

    def process_response(self, connection: ServerConnection, request: Request, response: Response) -> None:
        """After the handshake: a mesh client that is to prove the token gets the node's nonce with its 101."""
        challenge = self.challenges.get(connection)
        if challenge is None:
            return
        if (
            response.status_code == HTTPStatus.SWITCHING_PROTOCOLS
            and connection.protocol.subprotocol == MESH_SUBPROTOCOL
        ):
            response.headers[auth.NONCE_HEADER] = challenge[1]
        else:
            del self.challenges[connection]

    async def listen(
        self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None, reuse_port: bool = False
    ) -> None:
        """Bind ``host:port`` (port 0: any free port) and start serving; ``wss://`` with an ``ssl_context``.

        ``reuse_port`` (SO_REUSEPORT): a simulation holds a killed node's port with a socket
        of its own, so that nothing else takes it before the node restarts there.

        The TLS handshake of each connection is bounded by TLS_HANDSHAKE_TIMEOUT (asyncio's
        own default is 60 s), and runs beside the others: a client that opens TCP and says
        nothing, or garbage, holds one socket for that long and stalls nobody.
        """
        tls: dict[str, Any] = {}
        if ssl_context is not None:
            tls = {"ssl": ssl_context, "ssl_handshake_timeout": TLS_HANDSHAKE_TIMEOUT}
            self.scheme = "wss"
        try:
            self.server = await serve(
                self.handler,
                host,
                port,
                subprotocols=[MESH_SUBPROTOCOL],
                select_subprotocol=_select_subprotocol,
                process_request=self.process_request,
                process_response=self.process_response,
                create_connection=NodeConnection,
                compression=None,
                close_timeout=CLOSE_TIMEOUT,
                ping_interval=SERVER_PING_INTERVAL,
                ping_timeout=SERVER_PING_TIMEOUT,
                max_size=self.max_size,
                max_queue=MAX_QUEUE,
                write_limit=WRITE_LIMIT,
                backlog=BACKLOG,
                reuse_port=reuse_port or None,
                # SO_REUSEADDR lets a port be bound again past TIME_WAIT. Set before bind() on
                # port 0, Linux's search for a free port grows with every port bound (10,000
                # nodes: 8.8 s in bind() alone, 0.1 s without): there it is set just after.
                reuse_address=None if port else False,
                **tls,
            )
            if not port:
                # The connections it accepts inherit it: their TIME_WAIT then does not keep
                # a node restarted on the port it was given (a restart, a simulation) from it.
                for sock in self.server.sockets:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                why = "address already in use"
            elif exc.strerror:
                why = exc.strerror[0].lower() + exc.strerror[1:]
            else:
                why = str(exc)
            raise ListenError(self.node.name, f"{host}:{port}", why) from None

    def stop_accepting(self) -> None:
        """Close the listening socket; open connections go on for now."""
        if self.server is not None:
            self.server.server.close()

    async def close(self) -> None:
        """Close every connection with 1001 (going away) and wait until they are gone."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def proven(
    node: Served, websocket: ServerConnection, conversation: Conversation, challenge: tuple[str, str]
) -> bool:
    """The auth gate of a client that proves the token: its first frame, a hello with the proof, or nothing.

    Answered with the node's hello and its own proof; anything else (no hello within
    HELLO_TIMEOUT, a wrong proof, any other frame) gets an error frame and close 1008,
    and nothing of it is handled.
    """
    assert node.token is not None
    client_nonce, server_nonce = challenge
    hello: protocol.Frame | None = None
    try:
        raw = await asyncio.wait_for(websocket.recv(), HELLO_TIMEOUT)
        if isinstance(raw, str):
            hello = protocol.decode(raw)
    except (ProtocolError, TimeoutError):
        pass
    expected = auth.client_proof(node.token, client_nonce, server_nonce)
    if not isinstance(hello, protocol.Hello) or not auth.proves(expected, hello.proof):
        conversation.throttle.warn(
            ("token", _host(websocket)), "refused a connection from %s: %s", _peer(websocket), WRONG_TOKEN
        )
        await websocket.send(protocol.encode(protocol.Error(id=None, error=WRONG_TOKEN)))
        await websocket.close(1008, WRONG_TOKEN)
        return False
    await conversation.answer(protocol.Hello(node=hello.node, session=hello.session))  # who it is, its session
    proof = auth.server_proof(node.token, client_nonce, server_nonce)
    await websocket.send(protocol.encode(protocol.Hello(node=node.name, proof=proof)))
    return True


async def mesh_session(
    node: Served,
    websocket: ServerConnection,
    challenge: tuple[str, str] | None = None,
    throttle: Throttle | None = None,
) -> None:
    """A peer speaking the mesh protocol: hello, then messages answered with acks, in order.

    A websocket frame may carry a batch of frames (a JSON array); they are
    handled in order and answered with batches of at most BATCH frames and
    BATCH_BYTES bytes. Bounded: a batch lets other connections run every SLICE
    seconds; the replies to one frame stay within REPLY_FACTOR times its size
    (acks aside); a send the peer does not read within SEND_TIMEOUT drops it.
    A ``challenge`` (the client nonce and the node's) means the client proves
    the token in its hello first.
    """
    conversation = Conversation(node, websocket, throttle)
    try:
        if challenge is not None and not await proven(node, websocket, conversation, challenge):
            return
        async for text in websocket:
            replies = [_BINARY] if isinstance(text, bytes) else await conversation.answer_all(text)
            if not _sent_now(websocket, replies) and not await _send(node, websocket, conversation.peer, replies):
                return
    except ConnectionClosed:
        pass
    finally:
        conversation.close()
        node.hub.forget(websocket)


_BINARY = protocol.encode(protocol.Error(id=None, error="binary frames are not supported; send text"))


def _sent_now(websocket: ServerConnection, replies: list[str]) -> bool:
    """:func:`_send`'s common case, in this turn: the replies make one batch and the connection's buffer has
    room for it (or there is none to send). False: nothing was written (await :func:`_send`)."""
    if not replies or len(replies) > protocol.BATCH:
        return not replies
    text = protocol.batch(replies)
    if 4 * len(text) > protocol.BATCH_BYTES and len(replies) > 1:  # at most 4 bytes a character, as a link counts
        return False
    return _room_for(websocket, text) and write_now(websocket, text)


def _room_for(websocket: ServerConnection, text: str) -> bool:
    """Whether ``text`` goes straight to the transport and keeps it under the buffer's limit."""
    return not websocket.paused and websocket.transport.get_write_buffer_size() + 4 * len(text) <= WRITE_LIMIT


async def _send(node: Served, websocket: ServerConnection, peer: str, replies: list[str]) -> bool:
    """Send replies in batches the peer's link accepts, each within SEND_TIMEOUT; False: the peer was dropped."""
    start = 0
    while start < len(replies):
        end, size = start, 0
        while end < len(replies) and end - start < protocol.BATCH:
            size += len(replies[end]) * 4  # at most 4 bytes a character, as a link counts
            if end > start and size > protocol.BATCH_BYTES:
                break
            end += 1
        text = protocol.batch(replies[start:end])
        if _room_for(websocket, text):
            if not write_now(websocket, text):  # straight to the transport: it stays under the buffer's limit
                await websocket.send(text)  # cannot wait either
            start = end
            continue
        if not await send_or_abort(websocket, text):
            node.log.info("dropped %s: it read nothing for %g s (replies waiting)", escape(peer), SEND_TIMEOUT)
            return False
        start = end
    return True


#: The kernel's buffers per client socket, each way (autotuning would let a peer that does not
#: read, or floods, hold up to tcp_rmem's/tcp_wmem's maximum: megabytes each).
SOCKET_BUFFER = 256 * 1024
#: Seconds a node's status report is reused for: a flood of status requests costs one report per interval.
REPORT_FRESH = 0.05
_reports: weakref.WeakKeyDictionary[Served, tuple[float, str]] = weakref.WeakKeyDictionary()


def _report(node: Served) -> str:
    """The node's status report as JSON, built at most once per REPORT_FRESH seconds."""
    now = time.monotonic()
    cached = _reports.get(node)
    if cached is None or now - cached[0] >= REPORT_FRESH:
        cached = _reports[node] = (now, json.dumps(node.status(), separators=(",", ":"), ensure_ascii=False))
    return cached[1]


def _reply(frame: protocol.Message, outcome: tuple[bool, str]) -> str:
    """The encoded reply to a message handled with ``outcome``: its ack, or the error ``loop()`` met."""
    ok, ack = outcome
    return protocol.ack_text(frame.id, ack) if ok else protocol.encode(protocol.Error(id=frame.id, error=ack))


class Conversation:
    """One mesh connection, server side: who the peer is, and the answer to each frame."""

    def __init__(self, node: Served, websocket: ServerConnection, throttle: Throttle | None = None) -> None:
        self.node = node
        self.websocket = websocket
        self.throttle = throttle if throttle is not None else Throttle(node.log)
        self.peer = "an unnamed peer"
        self.session: Session | None = None
        self.bad_frames = 0
        self.subscriptions = 0  # sub and unsub frames answered
        #: Bytes of retained values a sub frame queued for the peer: they count against the reply budget.
        self.retained_sent = 0

    def close(self) -> None:
        """The connection is over (or greets again): its session is no longer in use by it."""
        if self.session is not None:
            self.session.connections -= 1
            self.session = None

    async def answer_all(self, text: str) -> list[str]:
        """The encoded replies to the frames of one websocket frame, within the reply budget."""
        frames = protocol.decode_all(text)
        budget = REPLY_FACTOR * len(text) + REPLY_SLACK
        replies: list[str] = []
        spent = 0
        unanswered = 0
        capped_at = 0
        started = time.perf_counter()
        for frame in frames:
            if type(frame) is protocol.Message:  # the common frame, answered here: no coroutine of ours per message
                replies.append(_reply(frame, await self._handling(frame)))
            elif spent > budget:  # messages are owed their ack; the rest is capped
                if not unanswered:
                    capped_at = len(replies)
                unanswered += 1
                continue
            else:
                reply = await self.answer(frame)
                spent += len(reply) + self.retained_sent
                self.retained_sent = 0
                replies.append(reply)
            if time.perf_counter() - started > SLICE:  # one batch does not hold the loop from the others
                await asyncio.sleep(0)
                started = time.perf_counter()
        if unanswered:
            error = (
                f"reply cap reached ({REPLY_FACTOR}x the request + {REPLY_SLACK} bytes): "
                f"{unanswered} frame(s) not answered; send fewer at once"
            )
            replies.insert(capped_at, protocol.encode(protocol.Error(id=None, error=error)))
        return replies

    async def message(self, frame: protocol.Message) -> str:
        """The encoded reply to a message: its ack, or the error ``loop()`` met; once per message of a session."""
        return _reply(frame, await self._handling(frame))

    def _handling(self, frame: protocol.Message) -> Awaitable[tuple[bool, str]]:
        """What handles a message: ``loop()`` through the session (once per message of it), or straight."""
        node = self.node
        session = self.session
        if session is None:
            return node.handle(frame.channel, frame.data)
        if node.log.isEnabledFor(logging.DEBUG):  # a line per message handed to loop() (tests/nodes/test_faults.py)
            return session.handle(frame.id, _handled, node, self.peer, frame)
        return session.handle(frame.id, node.handle, frame.channel, frame.data)

    async def answer(self, frame: protocol.Frame | ProtocolError) -> str:
        """The encoded reply to one frame."""
        node = self.node
        if isinstance(frame, ProtocolError):
            self.bad_frames += 1  # the first one is worth a warning; a flood of them is not
            key = ("bad frame", _host(self.websocket))
            self.throttle.warn(key, "bad frame from %s: %s", escape(self.peer), escape(frame))
            return protocol.encode(protocol.Error(id=frame.id, error=str(frame)))
        if isinstance(frame, protocol.Message):
            return await self.message(frame)
        if isinstance(frame, protocol.Hello):
            self.peer = frame.node
            remote, local = self.websocket.remote_address, self.websocket.local_address
            node.sessions.check_address(self.peer, remote[0] if remote else None, local[0] if local else None)
            self.close()
            self.session = node.sessions.get(self.peer, frame.session) if frame.session else None
            if self.session is not None:
                self.session.connections += 1
            node.log.debug("mesh connection from %s (session %s)", escape(self.peer), escape(frame.session or "none"))
            return protocol.encode(protocol.Hello(node=node.name))
        if isinstance(frame, protocol.Status):
            return f'{{"type":"report","id":{frame.id},"data":{_report(node)}}}'  # as encode() writes it
        if isinstance(frame, (protocol.Subscribe, protocol.Unsubscribe)):
            self.subscriptions += 1
            if not self.subscriptions % YIELD_EVERY:  # a batch of thousands of subs: let others in between
                await asyncio.sleep(0)
            try:
                check_pattern(frame.pattern)
            except TopicError as exc:
                return protocol.encode(protocol.Error(id=frame.id, error=str(exc)))
            if isinstance(frame, protocol.Subscribe):
                try:
                    self.retained_sent = node.hub.add(self.websocket, self.peer, frame.pattern)
                except SubscriptionLimit as exc:
                    return protocol.encode(protocol.Error(id=frame.id, error=str(exc)))
                return protocol.encode(protocol.Ack(id=frame.id, data=f"subscribed to {frame.pattern}"))
            node.hub.remove(self.websocket, frame.pattern)
            return protocol.encode(protocol.Ack(id=frame.id, data=f"unsubscribed from {frame.pattern}"))
        error = f"a node does not take {type(frame).__name__.lower()} frames from its clients"
        return protocol.encode(protocol.Error(id=getattr(frame, "id", None), error=error))
