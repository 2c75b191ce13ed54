"""A node's Redis clients: RESP on the node's own port, and the seam between their registry and the mesh.

A connection whose first bytes are a Redis client's (``mesh.resp.sniff``) is handed here by
``mesh.wall.SniffingConnection``; websockets never hears of it. Each gets a
:class:`RespConnection` (an asyncio protocol: bytes to its :class:`~mesh.resp.Session`, replies
out once per turn of the loop, a budget of commands per turn), and all share the node's :class:`RedisClients`, which holds the
:class:`~mesh.resp.Registry` and is its :class:`~mesh.resp.Mesh`:

- **Channels are the mesh's keys.** A cover the registry needs (``mesh.resp.keys``) is one
  subscription of the node across the grid, as ``./arduino.py echo`` makes one
  (:meth:`Node.subscribe_inline <nodes.node.Node.subscribe_inline>`: the inbox, and a link to
  each publisher the cover can match). Its handler is inline: bounded code of ours, which hands
  each publication to the registry under that cover in the turn it arrives. The node's own
  publications reach it the same way (the sender hands them to the inbox).
- **Retained values** go to every new subscription: this node's at once (:meth:`RedisClients.joined`),
  other nodes' when the cover's subscription reaches their publishers, as for a mesh subscriber.
- **PUBLISH** publishes under the node's own name through its publish path
  (:meth:`Sender.publish_now <nodes.sending.Sender.publish_now>`: its mesh subscribers, its own
  subscriptions, the Redis clients, the taps); the reply counts the receivers.
- **AUTH** takes the grid's token when the grid has one (Redis's ``requirepass``).

``docs/redis.md`` says what is served and refused, with the reasons.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from mesh.errors import TopicError
from mesh.resp import Config, Error, Registry, Session, error
from mesh.resp.globs import compile_glob
from mesh.resp.keys import key_of
from mesh.throttle import Throttle, escape

from .http import SOCKET_BUFFER

if TYPE_CHECKING:
    from .node import Node

__all__ = ["COMMANDS_PER_TURN", "STATUS_NAMES", "RedisClients", "RespConnection"]

#: The status report lists at most this many channels, patterns and covers (``*_total`` counts them all).
STATUS_NAMES = 10
#: Commands one client's read may run in one turn of the event loop; the rest run in the next turns, its reading
#: paused meanwhile: a pipeline of PUBLISH to many subscribers cannot hold the loop for long.
COMMANDS_PER_TURN = 256


class RespConnection(asyncio.Protocol):
    """One Redis client: bytes in to its session; the session's replies out, all of one loop turn in one write."""

    def __init__(self, clients: RedisClients) -> None:
        self.clients = clients
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.peer = "a Redis client"
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._due = False  # among the clients to write at the end of this turn (RedisClients.due)
        self._more = False  # commands left over a turn's budget: reading paused until they ran
        self._full = False  # the client does not read its replies: reading paused until it does

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:  # bounded as a websocket's (nodes.http.SOCKET_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
        address = transport.get_extra_info("peername")
        if address:
            self.peer = f"{address[0]}:{address[1]}"
        self.clients.connections += 1
        self.session = Session(self.clients.registry, self)

    def data_received(self, data: bytes) -> None:
        assert self.session is not None and self.transport is not None
        if self.session.feed(data, COMMANDS_PER_TURN):
            self._more = True
            self.transport.pause_reading()
            asyncio.get_running_loop().call_soon(self._go_on)

    def _go_on(self) -> None:
        """Run the commands a read left over its turn's budget, a budget a turn; then read again."""
        assert self.session is not None and self.transport is not None
        if self.session.closed or self.transport.is_closing():
            return
        if self.session.feed(b"", COMMANDS_PER_TURN):
            asyncio.get_running_loop().call_soon(self._go_on)
            return
        self._more = False
        if not self._full:
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        return False  # the client closed its side: close ours (Redis frees a client on EOF)

    def connection_lost(self, exc: Exception | None) -> None:
        self._pending.clear()
        self._pending_size = 0
        session = self.session
        if session is not None:
            self.clients.said_goodbye(self.peer, session.close_reason)
            session.disconnected()

    def pause_writing(self) -> None:
        # The client does not read its replies: stop reading its requests until it does, so that a pipeline
        # cannot grow our buffers. A subscriber's messages are bounded by the output buffer limits instead.
        assert self.transport is not None
        self._full = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        assert self.transport is not None
        self._full = False
        if not self._more and not self.transport.is_closing():
            self.transport.resume_reading()

    # -- mesh.resp.Sink

    def send(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_size += len(data)
        if not self._due:
            self._due = True
            self.clients.due(self)

    def buffered(self) -> int:
        assert self.transport is not None
        return self._pending_size + self.transport.get_write_buffer_size()

    def close(self, flush: bool) -> None:
        assert self.transport is not None
        if flush:
            self.flush()
            self.transport.close()  # once what is buffered is written
        else:
            self._pending.clear()
            self._pending_size = 0
            self.transport.abort()  # now, dropping what the client did not read

    def flush(self) -> None:
        """Write what this turn queued, as one write (Redis writes a client's replies once per loop turn too)."""
        self._due = False
        if not self._pending or self.transport is None or self.transport.is_closing():
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        self.transport.write(data)


class RedisClients:
    """A node's Redis clients: the registry they share, and its seam to the mesh (:class:`mesh.resp.Mesh`)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        token = node.token
        self.registry = Registry(Config(password=None if token is None else token.encode()), self)
        #: Connections served, over the node's life.
        self.connections = 0
        #: A PUBLISH message's bytes at most: the JSON of a ``pub`` frame must fit a subscriber's max_size.
        self.message_max = node.spec.max_size // 8
        #: cover -> the inline handler of its subscription across the grid.
        self.handlers: dict[str, Callable[[str, str], None]] = {}
        #: cover -> its latest subscribing (True) or unsubscribing (False) task: each waits for the one before.
        self._changes: dict[str, tuple[asyncio.Task[Any], bool]] = {}
        self.throttle = Throttle(node.log)
        #: Connections to write at the end of this turn: one callback for all of them, as the hub writes its subscribers.
        self._due: list[RespConnection] = []

    def connection(self) -> RespConnection:
        """A new client's protocol (what the node's server hands a Redis client's connection to)."""
        return RespConnection(self)

    def due(self, connection: RespConnection) -> None:
        """``connection`` has replies or messages queued: write it at the end of this turn, with every other."""
        if not self._due:
            asyncio.get_running_loop().call_soon(self._write_due)
        self._due.append(connection)

    def _write_due(self) -> None:
        due, self._due = self._due, []
        for connection in due:
            connection.flush()

    # -- mesh.resp.Mesh

    def publish(self, channel: bytes, data: bytes) -> int | Error:
        node = self.node
        key = key_of(channel)
        own = f"{node.name}/"
        shown = escape(channel.decode("utf-8", "replace"), 80)
        if key is None:
            return error(f"'{shown}' is not a mesh key (a key is <node>/<topic>); this node publishes {own}<topic>")
        if not key.startswith(own):
            publisher = key.split("/", 1)[0]
            return error(
                f"'{shown}' is node {publisher!r}'s key: a Redis client publishes under the node it is connected to,"
                f" {own}<topic> here; publish on {publisher!r}'s port"
            )
        if len(data) > self.message_max:
            return error(f"message too long: {len(data)} bytes, {self.message_max} at most on this node")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return error("the mesh carries text: the message is not UTF-8")
        topic = key[len(own) :]
        try:
            node.sender.check(topic)
        except TopicError as exc:
            return error(str(exc))
        others = node.inbox.sketch_wants(key)
        ours = any(handler is self.handlers.get(pattern) for pattern, handler in node.inbox.route(key))
        before = self.registry.delivered
        handed = node.sender.publish_now(topic, text)
        if ours and not others:
            handed -= 1  # the node's own subscriptions counted one: here they were only its Redis clients'
        return handed + self.registry.delivered - before

    def interest(self, cover: str, active: bool) -> None:
        previous = self._changes.get(cover)
        if active:
            handler = self.handlers[cover] = partial(self._heard, cover)
            work = self._subscribe(cover, handler, previous)
        else:
            del self.handlers[cover]
            work = self._unsubscribe(cover, previous)
        task = asyncio.get_running_loop().create_task(work, name=f"{self.node.name}: Redis clients' {cover}")
        self._changes[cover] = (task, active)
        task.add_done_callback(partial(self._changed, cover))

    def joined(self, session: Session, name: bytes, pattern: bool, cover: str) -> None:
        hub = self.node.hub
        if not hub.retained:
            return
        glob = compile_glob(name) if pattern else None
        for key, data in hub.retained_for(cover):  # this node's own, at once, as a mesh subscriber gets them
            channel = key.encode()
            if glob.match(channel) if glob is not None else channel == name:
                self.registry.replay(session, name, pattern, channel, data.encode("utf-8", "surrogatepass"))

    # -- the covers' subscriptions across the grid

    def _heard(self, cover: str, key: str, data: str) -> None:
        self.registry.deliver(key.encode(), data.encode("utf-8", "surrogatepass"), cover)

    async def _subscribe(
        self, cover: str, handler: Callable[[str, str], None], previous: tuple[asyncio.Task[Any], bool] | None
    ) -> None:
        if previous is not None:
            await asyncio.gather(previous[0], return_exceptions=True)
        await self.node.subscribe_inline(cover, handler)

    async def _unsubscribe(self, cover: str, previous: tuple[asyncio.Task[Any], bool] | None) -> None:
        if previous is not None:
            if previous[1]:
                previous[0].cancel()  # still subscribing: what it started is undone below
            await asyncio.gather(previous[0], return_exceptions=True)
        await self.node.unsubscribe_inline(cover)

    def _changed(self, cover: str, task: asyncio.Task[Any]) -> None:
        if self._changes.get(cover, (None,))[0] is task:
            del self._changes[cover]
        if not task.cancelled() and task.exception() is not None:
            self.node.log.error("Redis clients: %s", cover, exc_info=task.exception())

    # -- the node's life, and what it reports

    def said_goodbye(self, peer: str, reason: str) -> None:
        """A client's connection is gone: a line for what the node did to it (output limits, protocol errors)."""
        if reason.startswith("closed for not reading"):
            self.throttle.warn(("slow", peer.rsplit(":", 1)[0]), "Redis client %s %s", peer, reason)
        elif reason.startswith("protocol error"):
            self.throttle.warn(("protocol", peer.rsplit(":", 1)[0]), "Redis client %s: %s; closed", peer, reason)

    def close(self) -> None:
        """Close every client after what it was sent (the node stops), and cancel the covers' changes."""
        self.registry.close_all("the node stopped")
        for task, _ in list(self._changes.values()):
            task.cancel()

    def abort(self) -> None:
        """Drop every client at once, as a killed process would."""
        for session in list(self.registry.sessions.values()):
            session.close("the node was killed", flush=False)
        for task, _ in list(self._changes.values()):
            task.cancel()

    def report(self) -> dict[str, Any]:
        """The Redis clients in the node's status: how many, what they listen to, what the mesh carries for them."""
        registry = self.registry
        channels, patterns, covers = registry.channels(), registry.patterns(), list(registry.covers)

        def shown(names: list[bytes]) -> list[str]:
            return [name.decode("utf-8", "backslashreplace") for name in names[:STATUS_NAMES]]

        return {
            "clients": len(registry.sessions),
            "subscribers": sum(1 for session in registry.sessions.values() if session.subscriptions),
            "subscriptions": sum(session.subscriptions for session in registry.sessions.values()),
            "channels": shown(channels),
            "channels_total": len(channels),
            "patterns": shown(patterns),
            "patterns_total": len(patterns),
            "covers": covers[:STATUS_NAMES],
            "covers_total": len(covers),
            "delivered": registry.delivered,
            "too_slow": registry.too_slow,
            "connections": self.connections,
        }
