"""One connection to a node, server side: who the peer is, and the answer to each frame, written back in batches.

Every connection that completes its handshake comes to :func:`serve_connection`. A client that negotiated the ``arduino-mesh.1`` subprotocol gets a mesh session
(:func:`mesh_session`): hello, then frames answered in order. A websocket frame may carry a
batch of frames (a JSON array); they are handled in order and answered with batches that
the peer's link accepts (:func:`mesh.protocol.batches`). Bounded: a batch lets other
connections run every :data:`SLICE` seconds of the loop's clock; the replies to one frame stay within
:data:`REPLY_FACTOR` times its size (acks aside: they are owed); a send the peer does not
read within ``SEND_TIMEOUT`` drops it. A message goes to ``loop()`` through its session
(:class:`nodes.delivery.Session`: once, in order) and the node's reactor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from mesh import auth, protocol
from mesh.constants import OPEN_TIMEOUT, SEND_TIMEOUT
from mesh.errors import ProtocolError, SubscriptionLimit, TopicError
from mesh.handshake import WRONG_NODE, WRONG_TOKEN, wrong_node
from mesh.throttle import Throttle, escape
from mesh.topics import check_pattern
from mesh.wall import cap_frames, forget_headers, freeze, owe, room_for, send_or_abort, write_now

from .delivery import Session
from .http import Challenge, peer_host, peer_name
from .plain import PlainClient
from .report import report_json

if TYPE_CHECKING:
    from .server import NodeServer, Served

__all__ = [
    "HELLO_TIMEOUT",
    "REPLY_FACTOR",
    "REPLY_SLACK",
    "SLICE",
    "WRITE_LIMIT",
    "Conversation",
    "mesh_session",
    "serve_connection",
]

#: Sub and unsub frames a connection has answered before the server yields to the others.
YIELD_EVERY = 64
#: The write buffer (websockets' write_limit, its default) past which a send waits for the peer.
WRITE_LIMIT = 2**15
#: Seconds a batch's frames may hold the event loop before the server lets other work run.
SLICE = 0.002
#: A reply to one websocket frame holds at most REPLY_FACTOR times its bytes plus REPLY_SLACK
#: (acks of messages aside: they are owed); past it, one error stands for the rest.
REPLY_FACTOR = 4
REPLY_SLACK = 4096
#: Seconds a mesh client that proves the token (instead of sending it) has to send its hello.
HELLO_TIMEOUT = OPEN_TIMEOUT


async def _handled(node: Served, peer: str, frame: protocol.Message) -> tuple[bool, str]:
    """``loop()`` for a message of a session, then a debug line saying it was handled."""
    outcome = await node.reactor.handle(frame.channel, frame.data)
    node.log.debug("handled message %d from %s on %r: %r", frame.id, escape(peer), frame.channel, frame.data)
    return outcome


async def serve_connection(server: NodeServer, websocket: ServerConnection) -> None:
    """A connection to the node, once its handshake is done: a mesh session, or the sketch's plain protocol."""
    server.connections += 1
    task = asyncio.current_task()
    assert task is not None
    server.handlers.add(task)
    node = server.node
    challenge = server.entrance.challenges.pop(websocket, None)
    if node.frozen:  # accepted while a simulation holds the node frozen
        freeze(websocket)
    try:
        if websocket.subprotocol == protocol.SUBPROTOCOL:
            forget_headers(websocket)  # a mesh session reads nothing of the handshake past this point
            await mesh_session(node, websocket, challenge, server.entrance.throttle)
        elif challenge is not None:  # admitted to prove the token in a hello: mesh only
            await websocket.close(1008, WRONG_TOKEN)
        else:
            await node.serve_plain(PlainClient(websocket))
    finally:
        server.handlers.discard(task)


async def proven(node: Served, websocket: ServerConnection, conversation: Conversation, challenge: Challenge) -> bool:
    """The auth gate of a client that proves the token: its first frame, a hello with the proof, or nothing.

    Answered with the node's hello and its own proof; anything else (no hello within
    HELLO_TIMEOUT, a hello meant for another node, a wrong proof, any other frame) gets an
    error frame and close 1008, and nothing of it is handled. Both proofs are bound to this
    node's name, the address the client dialled and the hello's claims (mesh.auth.Binding).
    """
    assert node.token is not None
    hello: protocol.Frame | None = None
    try:
        raw = await asyncio.wait_for(websocket.recv(), HELLO_TIMEOUT)
        if isinstance(raw, str):
            hello = protocol.decode(raw)
    except (ProtocolError, TimeoutError):
        pass
    if isinstance(hello, protocol.Hello) and hello.to and hello.to != node.name:
        await conversation.refuse_wrong_node(hello.to)
        return False
    binding = auth.Binding(
        node.name,
        challenge.address,
        hello.node if isinstance(hello, protocol.Hello) else "",
        getattr(hello, "session", ""),
    )
    expected = auth.client_proof(node.token, challenge.client_nonce, challenge.server_nonce, binding)
    if not isinstance(hello, protocol.Hello) or not auth.proves(expected, hello.proof):
        conversation.throttle.warn(
            ("token", peer_host(websocket)), "refused a connection from %s: %s", peer_name(websocket), WRONG_TOKEN
        )
        await websocket.send(protocol.encode(protocol.Error(id=None, error=WRONG_TOKEN)))
        await websocket.close(1008, WRONG_TOKEN)
        return False
    cap_frames(websocket, None)  # proved: its frames may be as large as the node takes
    await conversation.answer(protocol.Hello(node=hello.node, session=hello.session))  # who it is, its session
    proof = auth.server_proof(node.token, challenge.client_nonce, challenge.server_nonce, binding)
    await websocket.send(protocol.encode(protocol.Hello(node=node.name, proof=proof)))
    return True


async def mesh_session(
    node: Served,
    websocket: ServerConnection,
    challenge: Challenge | None = None,
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
            if conversation.wrong_node:
                await websocket.close(1008, WRONG_NODE)
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
    if not replies:
        return True
    if len(replies) > protocol.BATCH:
        return False
    text = protocol.batch(replies)
    size = protocol.utf8_bound(text)
    if size > protocol.BATCH_BYTES and len(replies) > 1:  # more than one batch: _send cuts it
        return False
    return room_for(websocket, size, WRITE_LIMIT) and write_now(websocket, text)


async def _send(node: Served, websocket: ServerConnection, peer: str, replies: list[str]) -> bool:
    """Send replies in batches the peer's link accepts, each within SEND_TIMEOUT; False: the peer was dropped."""
    owed = sum(map(len, replies))  # what waits for this peer: it counts against the node's budget meanwhile
    try:
        for _, text in protocol.batches(replies):
            if room_for(websocket, protocol.utf8_bound(text), WRITE_LIMIT):
                if not write_now(websocket, text):  # straight to the transport: it stays under the buffer's limit
                    await websocket.send(text)  # cannot wait either
            else:
                owe(websocket, owed)
                if not await send_or_abort(websocket, text, SEND_TIMEOUT):
                    node.log.info("dropped %s: it read nothing for %g s (replies waiting)", escape(peer), SEND_TIMEOUT)
                    return False
            owed -= len(text)
        return True
    finally:
        owe(websocket, 0)


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
        #: The peer's hello was meant for another node: answered, then the connection closes.
        self.wrong_node = False
        #: The loop's clock, which SLICE is measured on: in a simulation it is virtual, so where a batch
        #: yields cannot depend on how fast the machine ran it. (A loop on the monotonic clock: read it
        #: straight, without the loop's method in between.)
        loop = asyncio.get_running_loop()
        self.clock = time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time

    def _said_wrong_node(self, target: str) -> None:
        self.throttle.warn(
            ("wrong node", peer_host(self.websocket)),
            "refused a hello from %s meant for %s (a stale address, or a relay)",
            peer_name(self.websocket),
            escape(target),
        )

    async def refuse_wrong_node(self, target: str) -> None:
        """Answer a hello meant for ``target``, another node, and close with 1008 (:data:`WRONG_NODE`)."""
        self.wrong_node = True
        self._said_wrong_node(target)
        await self.websocket.send(protocol.encode(protocol.Error(id=None, error=wrong_node(self.node.name, target))))
        await self.websocket.close(1008, WRONG_NODE)

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
        clock = self.clock
        started = clock()
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
            if clock() - started > SLICE:  # one batch does not hold the loop from the others
                await asyncio.sleep(0)
                started = clock()
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
            return node.reactor.handle(frame.channel, frame.data)
        if node.log.isEnabledFor(logging.DEBUG):  # a line per message handed to loop() (tests/nodes/test_faults.py)
            return session.handle(frame.id, _handled, node, self.peer, frame)
        return session.handle(frame.id, node.reactor.handle, frame.channel, frame.data)

    async def answer(self, frame: protocol.Frame | ProtocolError) -> str:
        """The encoded reply to one frame."""
        node = self.node
        if isinstance(frame, ProtocolError):
            self.bad_frames += 1  # the first one is worth a warning; a flood of them is not
            key = ("bad frame", peer_host(self.websocket))
            self.throttle.warn(key, "bad frame from %s: %s", escape(self.peer), escape(frame))
            return protocol.encode(protocol.Error(id=frame.id, error=str(frame)))
        if isinstance(frame, protocol.Message):
            return await self.message(frame)
        if isinstance(frame, protocol.Hello):
            if frame.to and frame.to != node.name:  # meant for another node: a stale address, or a relay
                self.wrong_node = True
                self._said_wrong_node(frame.to)
                return protocol.encode(protocol.Error(id=None, error=wrong_node(node.name, frame.to)))
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
            return f'{{"type":"report","id":{frame.id},"data":{report_json(node)}}}'  # as encode() writes it
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
