"""The raw-websockets twins: written as simply and as fast as the plain library allows."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve

OPTIONS = {"compression": None}  # as the mesh: permessage-deflate costs a third on small frames


async def echo_server(reply: Callable[[str], str] = lambda m: m, compression: str | None = None) -> Server:
    """A server that answers every text frame with one frame."""

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(reply(message))  # type: ignore[arg-type]

    return await serve(handler, "127.0.0.1", 0, compression=compression)


def port(server: Server) -> int:
    return server.sockets[0].getsockname()[1]


async def request_reply(count: int) -> float:
    """One persistent connection: send, await the reply, then the next. Messages per second."""
    server = await echo_server()
    try:
        async with connect(f"ws://127.0.0.1:{port(server)}/", **OPTIONS) as ws:
            began = time.perf_counter()
            for i in range(count):
                await ws.send(str(i))
                await ws.recv()
            return count / (time.perf_counter() - began)
    finally:
        server.close()
        await server.wait_closed()


async def pipelined(count: int, compression: str | None = None) -> float:
    """One persistent connection: send everything while reading the replies. Messages per second."""
    server = await echo_server(compression=compression)
    try:
        async with connect(f"ws://127.0.0.1:{port(server)}/", compression=compression) as ws:
            began = time.perf_counter()

            async def write() -> None:
                for i in range(count):
                    await ws.send(str(i))

            async def read() -> None:
                for _ in range(count):
                    await ws.recv()

            await asyncio.gather(write(), read())
            return count / (time.perf_counter() - began)
    finally:
        server.close()
        await server.wait_closed()


def relay(onward: str, fan: int) -> Callable[[ServerConnection], Awaitable[None]]:
    """The raw twin of the iopin: a handler that sends each frame ``fan`` times on to ``onward`` (one
    persistent connection) and answers once they have all been answered."""

    async def handler(ws: ServerConnection) -> None:
        async with connect(onward, **OPTIONS) as out:
            async for message in ws:
                for _ in range(fan):
                    await out.send(message)  # type: ignore[arg-type]
                for _ in range(fan):
                    await out.recv()
                await ws.send("acknowledged")

    return handler


@contextlib.asynccontextmanager
async def relaying(fan: int) -> AsyncIterator[Callable[[str], Awaitable]]:
    """client -> relay -> sink on persistent connections, open: yields ``tick(text)``, which sends a frame
    to the relay and awaits its answer; the relay sends ``fan`` frames on and answers once the sink has
    answered them all."""
    sink = await echo_server(lambda m: "ok")
    relay_server = await serve(relay(f"ws://127.0.0.1:{port(sink)}/", fan), "127.0.0.1", 0, **OPTIONS)
    try:
        async with connect(f"ws://127.0.0.1:{port(relay_server)}/", **OPTIONS) as ws:

            async def tick(text: str) -> None:
                await ws.send(text)
                await ws.recv()

            await tick("warm up")
            yield tick
    finally:
        for server in (relay_server, sink):
            server.close()
            await server.wait_closed()


async def broadcast_rate(subscribers: int, count: int) -> float:
    """websockets.broadcast() to ``subscribers`` connections. Deliveries per second."""
    clients: set[ServerConnection] = set()
    ready = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        clients.add(ws)
        if len(clients) == subscribers:
            ready.set()
        await ws.wait_closed()

    server = await serve(handler, "127.0.0.1", 0, **OPTIONS)
    try:
        sockets = [
            await connect(f"ws://127.0.0.1:{port(server)}/", max_queue=None, **OPTIONS) for _ in range(subscribers)
        ]
        await ready.wait()

        async def drain(ws) -> None:
            for _ in range(count):
                await ws.recv()

        readers = [asyncio.ensure_future(drain(ws)) for ws in sockets]
        began = time.perf_counter()
        for i in range(count):
            broadcast(clients, str(i))
            if i % 100 == 0:
                await asyncio.sleep(0)
        await asyncio.gather(*readers)
        elapsed = time.perf_counter() - began
        await asyncio.gather(*(ws.close() for ws in sockets))
        return subscribers * count / elapsed
    finally:
        server.close()
        await server.wait_closed()


async def connection_per_message(count: int) -> float:
    """The naive pattern: open a connection, send, await the reply, close. Messages per second."""
    server = await echo_server()
    try:
        began = time.perf_counter()
        for i in range(count):
            async with connect(f"ws://127.0.0.1:{port(server)}/", **OPTIONS) as ws:
                await ws.send(str(i))
                await ws.recv()
        return count / (time.perf_counter() - began)
    finally:
        server.close()
        await server.wait_closed()


Measure = Callable[[], Awaitable[float]]
