"""A link's connection and its reconnect policy, against real websockets servers on port 0 in the test's loop."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Generator

import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Response

from mesh.errors import NotAnswering, PeerUnavailable
from mesh.failures import describe_error
from mesh.reconnect import Connection
from mesh.requests import query_status, send_once
from mesh.wall import READ_SIZE
from tests.helpers import DEADLINE, MS, SilentPeer, until

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


def test_failures_are_described_in_a_few_words():
    """describe_error() says why a connection failed, as a log line or an error message shows it."""
    response = Response(401, "Unauthorized", Headers(), b"")
    cases = [
        (PeerUnavailable("a", "ws://x", "it does not speak arduino-mesh.1"), "it does not speak arduino-mesh.1"),
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (TimeoutError(), "timed out"),
        (InvalidStatus(response), "refused the handshake with HTTP 401: wrong or missing token"),
        (InvalidStatus(Response(503, "Unavailable", Headers(), b"")), "refused the handshake with HTTP 503"),
        (OSError(113, "No route to host"), "no route to host"),
        (ConnectionClosed(None, None), "connection closed"),
        (RuntimeError("odd"), "odd"),
        (RuntimeError(), "RuntimeError"),
    ]
    assert [describe_error(exc) for exc, _ in cases] == [words for _, words in cases]


async def test_one_shot_requests_tell_refused_from_not_answering():
    """request(): nothing listening is PeerUnavailable (refused); a TCP listener that never speaks is NotAnswering
    (no handshake); a mesh peer that greets but never acks is NotAnswering too (no answer)."""
    with pytest.raises(PeerUnavailable, match=r"connection refused$") as refused:
        await send_once("ghost", f"ws://127.0.0.1:{closed_port()}", "", "x", within=1000 * MS)
    assert not isinstance(refused.value, NotAnswering)

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # takes the connection, says nothing: a blocked event loop looks like this
        writer.close()

    listener = await asyncio.start_server(mute, "127.0.0.1", 0)
    try:
        uri = f"ws://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
        with pytest.raises(NotAnswering) as silent:
            await query_status("sleepy", uri, open_timeout=1000 * MS, within=100 * MS)
        assert str(silent.value) == (
            f"sleepy at {uri} is not answering: it took the connection but no handshake came within {100 * MS:g} s"
        )
    finally:
        listener.close()

    peer = SilentPeer("sleepy")
    try:
        uri = f"ws://127.0.0.1:{peer.port}"
        with pytest.raises(NotAnswering, match=rf"^sleepy at {uri} is not answering: no answer within {100 * MS:g} s$"):
            await send_once("sleepy", uri, "", "x", within=100 * MS)
    finally:
        peer.close()


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


@pytest.mark.parametrize(
    ("host", "family", "address"),
    [("127.0.0.1", socket.AF_INET, ("127.0.0.1", 8765)), ("::1", socket.AF_INET6, ("::1", 8765))],
)
async def test_a_literal_address_is_used_without_the_resolver(host, family, address):
    """A one-shot request to a literal address asks no resolver: no thread, whose wall time would move virtual time."""
    from mesh.requests import _addresses

    loop = asyncio.get_running_loop()
    resolved = []

    async def resolver(*args, **kwargs):
        resolved.append(args)
        return []

    loop.getaddrinfo = resolver  # type: ignore[method-assign]  # (this test's own loop)
    try:
        assert await _addresses(loop, host, 8765) == [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)]
        assert resolved == []
        assert await _addresses(loop, "localhost", 8765) == []
        assert resolved == [("localhost", 8765)]
    finally:
        del loop.getaddrinfo
