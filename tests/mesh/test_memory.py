"""Connections in memory behave as loopback sockets do, where a protocol can tell: each case runs on both, the same.

Every case is a raw asyncio protocol on each end, recording its callbacks; it runs once on
real sockets of 127.0.0.1 (port 0) and once through :mod:`mesh.network` on this same loop,
and the two records must be equal (bytes compared whole: TCP may cut them anywhere).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mesh.memory import WINDOW, MemoryTransport
from mesh.network import Network
from tests.helpers import DEADLINE, until

#: The address the memory cases listen on (any: nothing binds it).
ADDRESS = ("127.0.0.1", 7)


class Recorder(asyncio.Protocol):
    """Records what asyncio tells a protocol, bytes joined; ``on_data`` may answer."""

    def __init__(self, on_data: Callable[[Recorder, bytes], None] | None = None, keep_open: bool = False) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.data = b""
        self.transport: Any = None
        self.on_data = on_data
        self.keep_open = keep_open
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append(("made",))

    def data_received(self, data: bytes) -> None:
        self.data += data
        if self.on_data is not None:
            self.on_data(self, data)

    def eof_received(self) -> bool:
        self.events.append(("eof", self.data))
        return self.keep_open

    def pause_writing(self) -> None:
        self.events.append(("pause",))

    def resume_writing(self) -> None:
        self.events.append(("resume",))

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(("lost", self.data, type(exc).__name__ if exc else None))
        if not self.lost.done():
            self.lost.set_result(None)


Case = Callable[[Callable[..., Awaitable[tuple[Recorder, Recorder]]]], Awaitable[Any]]


async def both(case: Case) -> None:
    """Run ``case`` on loopback sockets and in memory; what it returns must be equal."""
    loop = asyncio.get_running_loop()
    results = []
    for memory in (False, True):
        network = Network()
        if memory:
            network.assign(ADDRESS, "server")
            network.attach(loop)
        servers: list[Recorder] = []

        async def pair(
            server: Callable[[], Recorder] = Recorder,
            client: Callable[[], Recorder] = Recorder,
            servers: list[Recorder] = servers,
            memory: bool = memory,
        ) -> tuple[Recorder, Recorder]:
            def made() -> Recorder:
                servers.append(server())
                return servers[-1]

            host, port = ADDRESS if memory else ("127.0.0.1", 0)
            listener = await loop.create_server(made, host, port)
            port = listener.sockets[0].getsockname()[1]
            _, near = await loop.create_connection(client, host, port)
            await until(lambda: servers, "the server's end")
            listener.close()
            return servers[0], near

        try:
            results.append(await asyncio.wait_for(case(pair), DEADLINE))
        finally:
            network.detach(loop)
    assert results[0] == results[1]


async def test_what_one_end_writes_the_other_reads_then_the_eof_then_both_are_lost():
    async def case(pair):
        far, near = await pair(lambda: Recorder(lambda me, data: me.transport.write(data.upper())))
        near.transport.write(b"hello ")
        near.transport.write(b"world")
        await until(lambda: near.data == b"HELLO WORLD", "the echo")
        near.transport.write_eof()  # half-close: the far end gets EOF, answers by closing (eof_received: False)
        await near.lost
        await far.lost
        return far.events, near.events

    await both(case)


async def test_close_flushes_what_was_written_first():
    async def case(pair):
        far, near = await pair()
        near.transport.write(b"x" * 100_000)
        near.transport.close()
        await far.lost
        return len(far.data), far.events[-1][2], near.events

    await both(case)


async def test_closing_with_bytes_unread_resets_the_peer():
    async def case(pair):
        far, near = await pair()
        near.transport.write(b"unread")
        await asyncio.sleep(0.05)  # it arrived at the far end, which does not read it
        far.transport.pause_reading()
        near.transport.write(b"more")
        await asyncio.sleep(0.05)
        far.transport.close()  # with bytes unread: a reset, as Linux sends
        await near.lost
        return near.events[-1][2]

    await both(case)


async def test_a_writer_pauses_when_its_reader_does_not_read_and_resumes_when_it_does():
    async def case(pair):
        far, near = await pair()
        far.transport.pause_reading()
        for _ in range(4 * 1024):
            near.transport.write(b"y" * 1024)
            if ("pause",) in near.events:
                break
        paused = ("pause",) in near.events
        far.transport.resume_reading()
        await until(lambda: ("resume",) in near.events, "the writer resumed")
        near.transport.close()
        await far.lost
        return paused, near.events[-2:]

    await both(case)


async def test_a_connection_to_nothing_is_refused():
    loop = asyncio.get_running_loop()
    network = Network()
    network.assign(ADDRESS, "nobody")
    network.attach(loop)
    try:
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(Recorder, *ADDRESS)
    finally:
        network.detach(loop)
    assert network.refused == 1


async def test_writes_past_the_window_wait_in_the_writers_buffer():
    loop = asyncio.get_running_loop()
    network = Network()
    network.assign(ADDRESS, "server")
    network.attach(loop)
    try:
        servers: list[Recorder] = []
        listener = await loop.create_server(lambda: servers.append(Recorder()) or servers[-1], *ADDRESS)
        transport, _ = await loop.create_connection(Recorder, *ADDRESS)
        await until(lambda: servers, "the server's end")
        servers[0].transport.pause_reading()
        transport.write(b"z" * (WINDOW + 1000))
        assert isinstance(transport, MemoryTransport)
        assert transport.get_write_buffer_size() == 1000  # the window holds the rest, as the kernel's buffers
        servers[0].transport.resume_reading()
        await until(lambda: len(servers[0].data) == WINDOW + 1000, "everything read")
        assert transport.get_write_buffer_size() == 0
        listener.close()
        transport.close()
    finally:
        network.detach(loop)


async def test_the_rest_of_a_transports_interface():
    """Limits, writelines, write_eof then write, extra info, a listener's life; a protocol that fails is cut."""
    loop = asyncio.get_running_loop()
    network = Network()
    network.assign(ADDRESS, "server")
    network.attach(loop)
    try:
        servers: list[Recorder] = []
        listener = await loop.create_server(lambda: servers.append(Recorder()) or servers[-1], *ADDRESS)
        assert listener.is_serving() and listener.get_loop() is loop
        await listener.start_serving()
        serving = asyncio.ensure_future(listener.serve_forever())
        transport, near = await loop.create_connection(Recorder, *ADDRESS)
        await until(lambda: servers, "the server's end")
        assert transport.get_extra_info("peername") == ADDRESS and transport.get_extra_info("socket") is None
        assert transport.get_protocol() is near and transport.can_write_eof() and "open" in repr(transport)
        transport.set_write_buffer_limits(low=100)
        assert transport.get_write_buffer_limits() == (100, 400)
        with pytest.raises(ValueError, match="must be >="):
            transport.set_write_buffer_limits(high=1, low=2)
        transport.writelines([b"a", bytearray(b"b"), memoryview(b"c")])
        transport.write_eof()
        with pytest.raises(RuntimeError, match="after write_eof"):
            transport.write(b"late")
        await until(lambda: ("eof", b"abc") in servers[0].events, "the EOF after the bytes")
        listener.close()
        await asyncio.wait_for(serving, 1)
        await listener.wait_closed()
        assert not listener.sockets and not listener.is_serving()

        def fail(me: Recorder, data: bytes) -> None:
            raise ValueError("a protocol that fails on what it reads")

        failures: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _, context: failures.append(context))
        servers.clear()
        listener = await loop.create_server(lambda: servers.append(Recorder(fail)) or servers[-1], *ADDRESS)
        transport, near = await loop.create_connection(Recorder, *ADDRESS)
        await until(lambda: servers, "the server's end")
        transport.write(b"boom")
        await near.lost
        assert failures and "data_received" in failures[0]["message"]
        listener.close()
    finally:
        loop.set_exception_handler(None)
        network.detach(loop)
