"""Serving: one websockets server per node, plain and mesh on one port.

A client that negotiates the ``arduino-mesh.1`` subprotocol gets a mesh
session (JSON frames, see :mod:`mesh.protocol`); any other client gets the
plain protocol that ``@reactive`` provides: one text frame in, one back.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Sequence
from typing import TYPE_CHECKING

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from mesh import protocol
from mesh.errors import MeshError, ProtocolError
from mesh.topics import TopicError, check_pattern

if TYPE_CHECKING:
    from .factory import FactoryLoop

__all__ = ["ListenError", "start_server"]

#: Seconds a closing connection waits for the peer's close frame.
CLOSE_TIMEOUT = 0.25


class ListenError(MeshError):
    """A node cannot listen on its address."""

    def __init__(self, node: str, address: str, reason: str) -> None:
        super().__init__(node, address, reason)
        self.node = node
        self.address = address
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.node}: cannot listen on {self.address}: {self.reason}"


def _select_subprotocol(connection: ServerConnection, offered: Sequence[str]) -> str | None:
    """Mesh peers ask for the mesh subprotocol; everyone else gets plain text."""
    return protocol.SUBPROTOCOL if protocol.SUBPROTOCOL in offered else None


async def start_server(node: FactoryLoop, host: str, port: int) -> Server:
    """Bind ``host:port`` for ``node`` (port 0: any free port) and start serving."""

    async def handler(websocket: ServerConnection) -> None:
        node.stats.connections_in += 1
        task = asyncio.current_task()
        assert task is not None
        node.handlers.add(task)
        try:
            if websocket.subprotocol == protocol.SUBPROTOCOL:
                await mesh_session(node, websocket)
            else:
                await node.loop.serve(websocket)
        finally:
            node.handlers.discard(task)

    try:
        return await serve(
            handler,
            host,
            port,
            subprotocols=[protocol.SUBPROTOCOL],
            select_subprotocol=_select_subprotocol,
            compression=None,
            close_timeout=CLOSE_TIMEOUT,
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            why = "address already in use"
        elif exc.strerror:
            why = exc.strerror[0].lower() + exc.strerror[1:]
        else:
            why = str(exc)
        raise ListenError(node.name, f"{host}:{port}", why) from None


async def mesh_session(node: FactoryLoop, websocket: ServerConnection) -> None:
    """A peer speaking the mesh protocol: hello, then messages answered with acks, in order."""
    peer = "an unnamed peer"
    try:
        async for text in websocket:
            if isinstance(text, bytes):
                await websocket.send(protocol.encode(protocol.Error(id=None, error="binary frames are not supported; send text")))
                continue
            try:
                frame = protocol.decode(text)
            except ProtocolError as exc:
                node.log.warning("bad frame from %s: %s", peer, exc)
                await websocket.send(protocol.encode(protocol.Error(id=None, error=str(exc))))
                continue
            if isinstance(frame, protocol.Hello):
                peer = frame.node
                node.log.debug("mesh connection from %s", peer)
                await websocket.send(protocol.encode(protocol.Hello(node=node.name)))
            elif isinstance(frame, protocol.Message):
                ok, ack = await node.loop.handle(frame.channel, frame.data)
                reply: protocol.Frame = protocol.Ack(id=frame.id, data=ack) if ok else protocol.Error(id=frame.id, error=ack)
                await websocket.send(protocol.encode(reply))
            elif isinstance(frame, (protocol.Subscribe, protocol.Unsubscribe)):
                try:
                    check_pattern(frame.pattern)
                except TopicError as exc:
                    await websocket.send(protocol.encode(protocol.Error(id=frame.id, error=str(exc))))
                    continue
                if isinstance(frame, protocol.Subscribe):
                    node.hub.add(websocket, peer, frame.pattern)
                    answer = f"subscribed to {frame.pattern}"
                else:
                    node.hub.remove(websocket, frame.pattern)
                    answer = f"unsubscribed from {frame.pattern}"
                await websocket.send(protocol.encode(protocol.Ack(id=frame.id, data=answer)))
            else:
                error = f"a node does not take {type(frame).__name__.lower()} frames from its clients"
                await websocket.send(protocol.encode(protocol.Error(id=getattr(frame, "id", None), error=error)))
    except ConnectionClosed:
        pass
    finally:
        node.hub.forget(websocket)
