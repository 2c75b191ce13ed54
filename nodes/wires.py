"""An unpluggable wire of a simulation: a TCP forwarder on a port of its own between a node's link and its peer.

The source's link reaches the target through the wire's port; :meth:`Wire.unplug` cuts every
connection through it and refuses new ones (the port held by :func:`hold`, so that nothing else
takes it) until :meth:`Wire.plug`. What the link holds meanwhile waits in its outbox.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

__all__ = ["CHUNK", "HOST", "Wire", "hold"]

#: Where every node listens in a simulation: all of them run here, whatever hosts the grid names.
HOST = "127.0.0.1"
#: Bytes a wire forwards per read.
CHUNK = 256 * 1024


def hold(port: int) -> socket.socket:
    """A socket bound to ``port`` of 127.0.0.1 that does not listen: connecting is refused, and no one else can bind it.

    Both it and the listener it stands for set SO_REUSEPORT, so the port is never free
    between the listener closing and a new one opening: a port of the ephemeral range, free
    for a moment, could be handed to any outgoing connection.
    """
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((HOST, port))
    return holder


class Wire:
    """The wire ``source -> target`` as a forwarder on a port of its own: ``unplug()`` cuts it and refuses new connections.

    The source's links reach the target through it; what they hold while it is
    unplugged waits in their outboxes and goes when it is plugged back.
    """

    def __init__(self, source: str, target: str, port_of: Callable[[str], int | None]) -> None:
        self.source = source
        self.target = target
        self.port_of = port_of  # the target's port now (a restarted node may come back on the same one)
        self.port = 0
        self.plugged = True
        self._server: asyncio.Server | None = None
        self._holder: socket.socket | None = None
        self._open: set[asyncio.Transport] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}"

    async def listen(self) -> None:
        """Listen (again) on the wire's port: a free one the first time, the same one after."""
        self._server = await asyncio.start_server(self._pipe, HOST, self.port, reuse_address=True, reuse_port=True)
        self.port = self._server.sockets[0].getsockname()[1]
        self.plugged = True
        if self._holder is not None:
            self._holder.close()
            self._holder = None

    def unplug(self) -> None:
        """Cut every connection through the wire (a reset each way) and refuse new ones until :meth:`plug`."""
        self.plugged = False
        if self._server is not None:
            self._holder = hold(self.port)  # refused, and the port stays ours
            self._server.close()
            self._server = None
        self.cut()

    def cut(self) -> None:
        """Reset every connection through the wire, each way (it stays plugged if it was)."""
        for transport in list(self._open):
            transport.abort()
        self._open.clear()

    async def plug(self) -> None:
        if not self.plugged:
            await self.listen()

    async def close(self) -> None:
        self.unplug()
        if self._holder is not None:
            self._holder.close()
            self._holder = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = self.port_of(self.target)
        if port is None:
            writer.transport.abort()
            return
        try:
            far_reader, far_writer = await asyncio.open_connection(HOST, port)
        except OSError:
            writer.transport.abort()  # the target is down: the source sees its connection cut
            return
        if not self.plugged:  # unplugged before or while it connected
            far_writer.transport.abort()
            writer.transport.abort()
            return
        ends: tuple[Any, Any] = (writer.transport, far_writer.transport)
        self._open.update(ends)
        pumps = [
            asyncio.create_task(self._pump(reader, far_writer)),
            asyncio.create_task(self._pump(far_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
                self._tasks.discard(pump)
            for transport in ends:
                self._open.discard(transport)
                transport.abort()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
