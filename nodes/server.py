"""Serving: one websockets server per node, plain and mesh on one port.

A client that negotiates the ``arduino-mesh.1`` subprotocol gets a mesh
session (JSON frames, see :mod:`mesh.protocol`); any other client gets the
plain protocol that ``@reactive`` provides: one text frame in, one back.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import logging
import time
from collections.abc import Awaitable, Sequence
from functools import partial
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from mesh import protocol
from mesh.connection import CLOSE_TIMEOUT, PING_INTERVAL, PING_TIMEOUT
from mesh.errors import MeshError, ProtocolError
from mesh.topics import TopicError, check_pattern

from .delivery import Session, Sessions
from .pubsub import Hub

__all__ = ["ListenError", "NodeServer", "Served"]

#: Connections the kernel queues before the node accepts them (asyncio's default of 100
#: makes the 101st of a burst wait a second for TCP to retry).
BACKLOG = 1024
#: The mesh subprotocol, as websockets types a subprotocol name.
MESH_SUBPROTOCOL = Subprotocol(protocol.SUBPROTOCOL)
#: Seconds one send to a peer may wait for it to read (a full send buffer) before the
#: connection is aborted: the keepalive's own promise, since its ping waits behind that buffer.
SEND_TIMEOUT = PING_INTERVAL + PING_TIMEOUT
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


class ListenError(MeshError):
    """A node cannot listen on its address."""

    def __init__(self, node: str, address: str, reason: str) -> None:
        super().__init__(node, address, reason)
        self.node = node
        self.address = address
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.node}: cannot listen on {self.address}: {self.reason}"


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
    node.log.debug("handled message %d from %s on %r: %r", frame.id, peer, frame.channel, frame.data)
    return outcome


def _peer(connection: ServerConnection) -> str:
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if address else "a client"


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

    @property
    def address(self) -> str | None:
        """``host:port`` actually bound (the real port when 0 was asked)."""
        if self.server is None:
            return None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    @property
    def port(self) -> int | None:
        return None if self.server is None else self.server.sockets[0].getsockname()[1]

    async def handler(self, websocket: ServerConnection) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            if websocket.subprotocol == protocol.SUBPROTOCOL:
                await mesh_session(self.node, websocket)
            else:
                await self.node.serve_plain(websocket)
        finally:
            self.handlers.discard(task)

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Before the handshake: check the token, and answer plain HTTP with a line of help."""
        node = self.node
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        path = urlsplit(request.path).path
        public = not upgrade and node.is_public(path)
        if node.token is not None and not public and not token_matches(request, node.token):
            node.log.warning("refused a connection from %s: wrong or missing token", _peer(connection))
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
                f"Try: websocat ws://{node.address}/   or   ./arduino.py send {node.name} MESSAGE\n"
            )
            response = connection.respond(HTTPStatus.UPGRADE_REQUIRED, text)
            response.headers["Upgrade"] = "websocket"  # a 426 says what to upgrade to (RFC 9110)
            return response
        return None

    async def listen(self, host: str, port: int) -> None:
        """Bind ``host:port`` (port 0: any free port) and start serving."""
        try:
            self.server = await serve(
                self.handler,
                host,
                port,
                subprotocols=[MESH_SUBPROTOCOL],
                select_subprotocol=_select_subprotocol,
                process_request=self.process_request,
                compression=None,
                close_timeout=CLOSE_TIMEOUT,
                ping_interval=PING_INTERVAL,
                ping_timeout=PING_TIMEOUT,
                max_size=self.max_size,
                max_queue=MAX_QUEUE,
                write_limit=WRITE_LIMIT,
                backlog=BACKLOG,
            )
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


async def mesh_session(node: Served, websocket: ServerConnection) -> None:
    """A peer speaking the mesh protocol: hello, then messages answered with acks, in order.

    A websocket frame may carry a batch of frames (a JSON array); they are
    handled in order and answered with batches of at most BATCH frames and
    BATCH_BYTES bytes. Bounded: a batch lets other connections run every SLICE
    seconds; the replies to one frame stay within REPLY_FACTOR times its size
    (acks aside); a send the peer does not read within SEND_TIMEOUT drops it.
    """
    conversation = Conversation(node, websocket)
    try:
        async for text in websocket:
            replies = [_BINARY] if isinstance(text, bytes) else await conversation.answer_all(text)
            if not await _send(node, websocket, conversation.peer, replies):
                return
    except ConnectionClosed:
        pass
    finally:
        node.hub.forget(websocket)


_BINARY = protocol.encode(protocol.Error(id=None, error="binary frames are not supported; send text"))


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
        if not websocket.paused and websocket.transport.get_write_buffer_size() + 4 * len(text) <= WRITE_LIMIT:
            await websocket.send(text)  # cannot wait: it stays under the write buffer's limit
            start = end
            continue
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await websocket.send(text)
        except TimeoutError:
            node.log.info("dropped %s: it read nothing for %g s (replies waiting)", peer, SEND_TIMEOUT)
            websocket.transport.abort()
            return False
        start = end
    return True


class Conversation:
    """One mesh connection, server side: who the peer is, and the answer to each frame."""

    def __init__(self, node: Served, websocket: ServerConnection) -> None:
        self.node = node
        self.websocket = websocket
        self.peer = "an unnamed peer"
        self.session: Session | None = None
        self.bad_frames = 0

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
            if spent > budget and not isinstance(frame, protocol.Message):  # messages are owed their ack
                if not unanswered:
                    capped_at = len(replies)
                unanswered += 1
                continue
            reply = await self.answer(frame)
            if not isinstance(frame, protocol.Message):
                spent += len(reply)
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

    async def answer(self, frame: protocol.Frame | ProtocolError) -> str:
        """The encoded reply to one frame."""
        node = self.node
        if isinstance(frame, ProtocolError):
            self.bad_frames += 1  # the first one is worth a warning; a flood of them is not
            node.log.log(
                logging.WARNING if self.bad_frames == 1 else logging.DEBUG, "bad frame from %s: %s", self.peer, frame
            )
            return protocol.encode(protocol.Error(id=frame.id, error=str(frame)))
        if isinstance(frame, protocol.Message):
            if self.session is None:
                ok, ack = await node.handle(frame.channel, frame.data)
            else:
                ok, ack = await self.session.handle(frame.id, partial(_handled, node, self.peer, frame))
            return protocol.encode(
                protocol.Ack(id=frame.id, data=ack) if ok else protocol.Error(id=frame.id, error=ack)
            )
        if isinstance(frame, protocol.Hello):
            self.peer = frame.node
            self.session = node.sessions.get(self.peer, frame.session) if frame.session else None
            node.log.debug("mesh connection from %s (session %s)", self.peer, frame.session or "none")
            return protocol.encode(protocol.Hello(node=node.name))
        if isinstance(frame, protocol.Status):
            return protocol.encode(protocol.Report(id=frame.id, data=node.status()))
        if isinstance(frame, (protocol.Subscribe, protocol.Unsubscribe)):
            try:
                check_pattern(frame.pattern)
            except TopicError as exc:
                return protocol.encode(protocol.Error(id=frame.id, error=str(exc)))
            if isinstance(frame, protocol.Subscribe):
                node.hub.add(self.websocket, self.peer, frame.pattern)
                return protocol.encode(protocol.Ack(id=frame.id, data=f"subscribed to {frame.pattern}"))
            node.hub.remove(self.websocket, frame.pattern)
            return protocol.encode(protocol.Ack(id=frame.id, data=f"unsubscribed from {frame.pattern}"))
        error = f"a node does not take {type(frame).__name__.lower()} frames from its clients"
        return protocol.encode(protocol.Error(id=getattr(frame, "id", None), error=error))
