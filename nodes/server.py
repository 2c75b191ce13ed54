"""Listening: one websockets server per node, plain, mesh and Redis on one port.

:class:`NodeServer` binds the node's address (port 0: any free port); a connection whose first
bytes are a Redis client's goes to the node's Redis side (``other``, :mod:`nodes.redis`:
``mesh.wall.SniffingConnection`` hands it over, ``mesh.resp.sniff`` decides), and websockets
never hears of it. Of the others it hands every request
to the node's :class:`~nodes.http.Entrance` first, then each websocket to its conversation:
a client that negotiated the ``arduino-mesh.1`` subprotocol gets a mesh session
(:mod:`nodes.conversation`); any other client gets the plain protocol, or whatever the
sketch's ``serve_plain()`` makes of it (:mod:`nodes.plain`). It counts its connections,
and closes them all with 1001 when the node stops.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.typing import Subprotocol

from mesh import protocol
from mesh.constants import CLOSE_TIMEOUT, OPEN_TIMEOUT, SERVER_PING_INTERVAL, SERVER_PING_TIMEOUT
from mesh.errors import ListenError
from mesh.resp import sniff
from mesh.wall import FrameBudget, abort, node_connection, sniffing, stop_listening

from .conversation import WRITE_LIMIT, serve_connection
from .delivery import Reactor
from .http import Entrance, Host
from .hub import Hub
from .plain import PlainClient
from .sessions import Sessions

__all__ = ["IN_USE", "NodeServer", "Served"]

#: Connections the kernel queues before the node accepts them (asyncio's default of 100
#: makes the 101st of a burst wait a second for TCP to retry).
BACKLOG = 1024
#: What most often holds a node's port: the same node, still running from an earlier start.
IN_USE = (
    "is your own `arduino-mesh up` or `honcho start` still running? "
    "`arduino-mesh status` shows which nodes of the grid answer"
)
#: The mesh subprotocol, as websockets types a subprotocol name.
MESH_SUBPROTOCOL = Subprotocol(protocol.SUBPROTOCOL)
#: Incoming frames a connection queues before the server stops reading from its socket
#: (websockets' max_queue, its default): with max_size, it bounds what one peer holds in the
#: node. Not lower: a pong queued behind a peer's frames is not read while reading is paused,
#: so a busy but healthy link would fail its keepalive.
MAX_QUEUE = 16
#: Seconds a client has to complete its TLS handshake (a grid with tls), before the HTTP one starts.
TLS_HANDSHAKE_TIMEOUT = OPEN_TIMEOUT
#: Bytes of frames in progress a node holds across all its clients (or twice its max_size, if more):
#: past it, the client whose frame has been in progress longest is cut (mesh.wall.FrameBudget).
FRAME_BUDGET = 32 * 2**20


class Served(Host, Protocol):
    """What the server and its conversations need of a node: who it is, whom it hands messages, what it reports."""

    log: logging.Logger
    hub: Hub
    sessions: Sessions
    reactor: Reactor

    @property
    def frozen(self) -> bool: ...

    async def serve_plain(self, client: PlainClient) -> None:
        """A websocket client without the mesh subprotocol."""
        ...

    def status(self) -> dict[str, Any]:
        """The status report (docs/protocol.md)."""
        ...


def _is_redis(head: bytes) -> bool | None:
    """Whether a connection's first bytes are a Redis client's (True), HTTP's (False), or not yet known (None)."""
    kind = sniff(head)
    return None if kind is None else kind == "resp"


def _select_subprotocol(connection: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """Mesh peers ask for the mesh subprotocol; everyone else gets plain text."""
    return MESH_SUBPROTOCOL if MESH_SUBPROTOCOL in offered else None


class NodeServer:
    """One node's websockets server, plain and mesh on one port; it counts its own connections.

    ``connections`` counts every connection that reached a handler; ``handlers`` holds the
    tasks of those still open (cancelled when a stop's grace runs out). Each connection is
    served by :func:`nodes.conversation.serve_connection`.
    """

    def __init__(self, node: Served, max_size: int | None, other: Callable[[], asyncio.Protocol] | None = None) -> None:
        self.node = node
        #: What serves a connection whose first bytes are a Redis client's (``nodes.redis``); None: websockets only.
        self.other = other
        self.max_size = max_size
        self.connections = 0
        self.handlers: set[asyncio.Task[None]] = set()
        self.server: Server | None = None
        self.entrance = Entrance(node)
        #: The bytes of frames in progress, across every client of the node.
        self.budget = FrameBudget(max(FRAME_BUDGET, 2 * (max_size or 0)), node.log)

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

    def open_connections(self) -> list[ServerConnection]:
        """Every connection open now."""
        return [] if self.server is None else list(self.server.connections)

    async def listen(self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None) -> None:
        """Bind ``host:port`` (port 0: any free port) and start serving; ``wss://`` with an ``ssl_context``.

        The TLS handshake of each connection is bounded by TLS_HANDSHAKE_TIMEOUT (asyncio's
        own default is 60 s), and runs beside the others: a client that opens TCP and says
        nothing, or garbage, holds one socket for that long and stalls nobody.
        """
        tls: dict[str, Any] = {}
        if ssl_context is not None:
            tls = {"ssl": ssl_context, "ssl_handshake_timeout": TLS_HANDSHAKE_TIMEOUT}
            self.entrance.scheme = "wss"
        try:
            self.server = await serve(
                partial(serve_connection, self),
                host,
                port,
                subprotocols=[MESH_SUBPROTOCOL],
                select_subprotocol=_select_subprotocol,
                process_request=self.entrance.process_request,
                process_response=self.entrance.process_response,
                create_connection=(
                    node_connection(self.budget)
                    if self.other is None
                    else sniffing(_is_redis, self.other, budget=self.budget)
                ),
                compression=None,
                close_timeout=CLOSE_TIMEOUT,
                ping_interval=SERVER_PING_INTERVAL,
                ping_timeout=SERVER_PING_TIMEOUT,
                max_size=self.max_size,
                max_queue=MAX_QUEUE,
                write_limit=WRITE_LIMIT,
                backlog=BACKLOG,
                # SO_REUSEADDR lets a port be bound again past TIME_WAIT. Set before bind() on
                # port 0, Linux's search for a free port slows with every port bound: there it
                # is set just after.
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
                raise ListenError(self.node.name, f"{host}:{port}", "address already in use", IN_USE) from None
            why = exc.strerror[0].lower() + exc.strerror[1:] if exc.strerror else str(exc)
            raise ListenError(self.node.name, f"{host}:{port}", why) from None

    def stop_accepting(self) -> None:
        """Close the listening socket; open connections go on for now."""
        if self.server is not None:
            stop_listening(self.server)

    def cancel_handlers(self) -> None:
        for task in list(self.handlers):
            task.cancel()

    def abort(self) -> None:
        """Stop at once, as a killed process would: refuse connecting, reset every connection, cancel every handler."""
        self.stop_accepting()
        for connection in self.open_connections():
            abort(connection)
        self.cancel_handlers()

    async def close(self) -> None:
        """Close every connection with 1001 (going away) and wait until they are gone."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
