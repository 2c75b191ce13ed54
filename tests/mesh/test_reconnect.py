"""A link's connection and its reconnect policy (mesh.reconnect), against real websockets servers on port 0 in the test's loop."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Generator

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from mesh.errors import PeerUnavailable
from mesh.reconnect import Connection
from mesh.wall import READ_SIZE
from tests.helpers import DEADLINE, MS, until

LOG = logging.getLogger("mesh.test")


def quick() -> Generator[float, None, None]:
    while True:
        yield MS


def closed_port() -> int:
    """A port nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
async def peer() -> AsyncIterator[tuple[Server, list[ServerConnection]]]:
    """A websockets server on port 0 that keeps every connection open and lists them."""
    connections: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        yield server, connections


def uri_of(server: Server) -> str:
    return f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"


async def test_it_runs_the_session_on_each_connection_and_reconnects(peer, caplog):
    """A session per connection; when the peer closes one, it is logged down and a new one opens."""
    caplog.set_level(logging.INFO)
    server, connections = peer
    seen: list[object] = []
    conn = Connection(peer="echo", uri=uri_of(server), logger=LOG, reconnect_delays=quick)

    async def session(ws) -> None:
        seen.append(ws)
        conn.up()
        await ws.wait_closed()
        await conn.down(ws)

    running = asyncio.create_task(conn.run(session))
    try:
        await until(lambda: len(connections) == 1 and conn.state == "up", "the first connection")
        await connections[0].close(1012)
        await until(lambda: len(connections) == 2 and conn.state == "up", "the second connection")
        assert conn.connections == 2 and seen[0] is not seen[1]
        assert "link to echo up (ws://127.0.0.1:" in caplog.text
        assert "link to echo down (closed with 1012); reconnecting" in caplog.text
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_stopping_closes_with_1001_and_ends(peer):
    """Once the node is stopping, the session's end closes with 1001 (going away) and run() returns."""
    server, connections = peer
    conn = Connection(peer="echo", uri=uri_of(server), logger=LOG)
    release = asyncio.Event()

    async def session(ws) -> None:
        await release.wait()
        await conn.down(ws)

    running = asyncio.create_task(conn.run(session))
    await until(lambda: connections, "a connection")
    conn.stop_reconnecting()
    release.set()
    await asyncio.wait_for(running, 1000 * MS)
    await connections[0].wait_closed()
    assert connections[0].close_code == 1001 and conn.connections == 1


async def test_it_gives_up_after_its_patience(virtual_time, caplog):
    """Nobody listening: it retries with backoff, logs the first wait, and gives up after ``wait``.

    In virtual time: 30 ms of patience are 30 tries of 1 ms whatever the machine's load (on a loaded
    one, in wall time, a single try once took them all: 1 retry, not 2)."""
    caplog.set_level(logging.INFO)
    uri = f"ws://127.0.0.1:{closed_port()}/"
    retries = []
    conn = Connection(
        peer="iopin", uri=uri, logger=LOG, wait=30 * MS, reconnect_delays=quick, on_retry=lambda: retries.append(1)
    )
    with pytest.raises(PeerUnavailable) as caught:
        await conn.run(lambda ws: asyncio.sleep(0))
    assert str(caught.value).startswith(f"cannot reach iopin at {uri}: connection refused (gave up after ")
    assert conn.state == "down" and conn.connections == 0 and len(retries) >= 2
    assert f"waiting for iopin at {uri} (connection refused); retrying in " in caplog.text


async def test_something_to_keep_keeps_it_trying(virtual_time):
    """With keep_trying() true, running out of patience is only reported, and it goes on trying (in virtual time)."""
    uri = f"ws://127.0.0.1:{closed_port()}/"
    reported: list[PeerUnavailable] = []
    conn = Connection(
        peer="iopin",
        uri=uri,
        logger=LOG,
        wait=10 * MS,
        reconnect_delays=quick,
        keep_trying=lambda: True,
        on_patience_out=reported.append,
    )
    running = asyncio.create_task(conn.run(lambda ws: asyncio.sleep(0)))
    try:
        await until(lambda: len(reported) >= 2, "patience to run out twice")
        assert not running.done() and conn.state == "retrying"
        assert "(gave up after " in str(reported[0])
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_refused_handshake_is_fatal_at_once():
    """The library's verdict: an HTTP 403 cannot be mended by retrying; it gives up at the first try."""

    def refuse(ws: ServerConnection, request: object) -> Response:
        return Response(403, "Forbidden", Headers(), b"no\n")

    async with serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0, process_request=refuse) as server:
        conn = Connection(peer="echo", uri=uri_of(server), logger=LOG, wait=0, reconnect_delays=quick)
        with pytest.raises(PeerUnavailable, match=r"refused the handshake with HTTP 403$"):
            await conn.run(lambda ws: asyncio.sleep(0))
    assert conn.connections == 0


async def test_stopping_ends_the_retries(caplog):
    """A node that is stopping does not go on waiting for a peer that is away."""
    conn = Connection(peer="iopin", uri=f"ws://127.0.0.1:{closed_port()}/", logger=LOG, wait=0, reconnect_delays=quick)
    running = asyncio.create_task(conn.run(lambda ws: asyncio.sleep(0)))
    await until(lambda: conn.state == "retrying", "a retry")
    conn.stop_reconnecting()
    with pytest.raises(PeerUnavailable, match=r"connection refused$"):
        await asyncio.wait_for(running, 1000 * MS)


async def test_a_frozen_peer_is_noticed_by_keepalive(virtual_time, peer, caplog):
    """A peer that stops answering pings is dropped after ping_interval + ping_timeout, then reconnected
    (in virtual time: the peer runs in the test's loop)."""
    server, connections = peer
    conn = Connection(
        peer="buzzer",
        uri=uri_of(server),
        logger=LOG,
        reconnect_delays=quick,
        ping_interval=20 * MS,
        ping_timeout=40 * MS,
    )

    async def session(ws) -> None:
        conn.up()
        await ws.wait_closed()
        await conn.down(ws)

    running = asyncio.create_task(conn.run(session))
    try:
        await until(lambda: connections, "a connection")
        connections[0].transport.pause_reading()  # frozen: reads nothing, answers no ping
        await until(lambda: conn.connections == 2, "a new connection")
        # websockets closed it (no close frame came back, so 1006): the line says why, and what it may mean.
        said = (
            f"link to buzzer down (it sent nothing for {60 * MS:g} s, not even a pong: busy or frozen?); reconnecting"
        )
        assert said in caplog.text
    finally:
        connections[0].transport.abort()  # the server would wait for the frozen peer's close frame
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_a_link_reads_in_small_buffers_and_a_larger_message_still_comes_whole():
    """asyncio asks the kernel for 256 KiB a read (a fresh mapping each time); a link asks READ_SIZE, and a
    message of 300 KiB still arrives whole."""
    big = "x" * (300 * 1024)

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, max_size=None) as server:
        conn = Connection(peer="echo", uri=uri_of(server), logger=LOG, reconnect_delays=quick)
        echoed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def session(ws) -> None:
            assert ws.transport.max_size == READ_SIZE < 128 * 1024
            await ws.send(big)
            echoed.set_result(await ws.recv())
            conn.stop_reconnecting()
            await conn.down(ws)

        await asyncio.wait_for(conn.run(session), DEADLINE)
    assert echoed.result() == big


async def test_a_handler_of_incoming_text_that_fails_drops_the_connection_with_one_line(peer, caplog):
    """``on_text`` must not raise; if a bug makes it, that is logged once and the connection is dropped (and
    reopened), never left to asyncio's 'fatal error' inside the transport."""
    server, connections = peer
    conn = Connection(peer="echo", uri=uri_of(server), logger=LOG, reconnect_delays=quick)
    seen: list[object] = []

    def broken(text: str) -> None:
        raise RuntimeError(f"bug on {text!r}")

    async def session(ws) -> None:
        seen.append(ws)
        ws.on_text = broken
        conn.up()
        await ws.wait_closed()
        await conn.down(ws)

    running = asyncio.create_task(conn.run(session))
    try:
        await until(lambda: len(connections) == 1 and conn.state == "up", "the first connection")
        await connections[0].send("hello")
        await until(lambda: len(connections) == 2 and conn.state == "up", "a new connection after the failure")
        failures = [r for r in caplog.records if "could not be handled" in r.getMessage()]
        assert len(failures) == 1 and "bug on 'hello'" in caplog.text
        assert "Fatal error" not in caplog.text
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
