"""The wall's contracts: one test per hook into websockets' internals, named after it.

Each test pins what :mod:`mesh.wall` relies on inside websockets, against real connections
on port 0, and nothing more. A websockets release that changes one of these fails the test
named after the hook, before any user's circuit does (CI also runs these against the newest
websockets release: ``.ci/run``).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.frames import CloseCode
from websockets.protocol import State

from mesh import wall
from tests.helpers import DEADLINE, MS, until


@dataclass
class Served:
    """A running server, the connections it took and the texts it heard."""

    server: Server
    connections: list[ServerConnection]
    texts: list[str]

    @property
    def uri(self) -> str:
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/"


@pytest.fixture
async def server() -> AsyncIterator[Served]:
    """A websockets server on port 0 with the wall's NodeConnection: keeps each connection, records each text."""
    connections: list[ServerConnection] = []
    texts: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        try:
            async for text in ws:
                texts.append(text if isinstance(text, str) else text.decode())
        except ConnectionClosed:
            pass

    async with serve(
        handler, "127.0.0.1", 0, create_connection=wall.NodeConnection, ping_interval=None, compression=None
    ) as running:
        yield Served(running, connections, texts)


class Greets:
    """A greeter that adds a header and says whether it greeted (what mesh.handshake.Greeting does)."""

    def __init__(self, greet: bool = True) -> None:
        self.greet_result = greet
        self.greeted: list[ClientConnection] = []

    def request_headers(self) -> dict[str, str]:
        return {"X-Greeting": "hello"}

    async def greet(self, ws: ClientConnection) -> bool:
        self.greeted.append(ws)
        return self.greet_result


def client(greeter: Callable[[], Any] = Greets) -> dict[str, Any]:
    return {"create_connection": wall.mesh_client(greeter), "ping_interval": None, "close_timeout": 100 * MS}


async def test_hook_write_now_writes_a_text_frame_in_the_callers_turn(server):
    """write_now: protocol.send_text + send_data put a whole text frame on the wire, no coroutine; writable() says when."""
    async with connect(server.uri, **client()) as ws:
        assert wall.writable(ws)
        assert wall.write_now(ws, "hello") and wall.write_now(ws, b"bytes are UTF-8 already")
        await until(lambda: server.texts == ["hello", "bytes are UTF-8 already"], "both frames at the server")
    assert not wall.writable(ws) and not wall.write_now(ws, "after close")  # state is not OPEN


async def test_hook_writable_is_false_while_a_fragmented_message_goes_out(server):
    """writable: send_in_progress is set while send() streams a fragmented message."""
    async with connect(server.uri, **client()) as ws:
        release = asyncio.Event()

        async def fragments() -> AsyncIterator[str]:
            yield "a"
            await release.wait()
            yield "b"

        sending = asyncio.create_task(ws.send(fragments()))
        await until(lambda: ws.send_in_progress is not None, "a fragmented send under way")
        assert not wall.writable(ws)
        release.set()
        await sending
        assert wall.writable(ws)
        await until(lambda: server.texts == ["ab"], "the fragmented message whole")


async def test_hook_room_for_reads_the_transports_buffer_and_the_pause(server):
    """room_for: paused (set by pause_writing) and transport.get_write_buffer_size()."""
    async with connect(server.uri, **client()) as ws:
        assert wall.room_for(ws, 100, 1000)
        assert not wall.room_for(ws, 1001, 1000)
        ws.pause_writing()  # as the transport calls it past its high-water mark
        assert ws.paused and not wall.room_for(ws, 1, 1000)
        ws.resume_writing()
        assert wall.room_for(ws, 1, 1000)


async def test_hook_abort_drops_the_connection_without_a_close_frame(server):
    """abort: transport.abort(); the peer sees the connection end without a close frame (1006)."""
    async with connect(server.uri, **client()) as ws:
        await until(lambda: server.connections, "the server's side")
        wall.abort(server.connections[0])
        with pytest.raises(ConnectionClosedError) as closed:
            await asyncio.wait_for(ws.recv(), DEADLINE)
        assert closed.value.rcvd is None  # no close frame came


async def test_hook_keptalive_stamps_reads_lowers_the_read_size_and_joins_the_sweeper(server):
    """KeptAlive: connection_made sees the transport (its max_size), data_received each read, start_keepalive
    once open with ping_interval set, connection_lost at the end."""
    async with connect(server.uri, create_connection=wall.mesh_client(Greets), ping_interval=60) as ws:
        assert isinstance(ws, wall.KeptAlive)
        assert ws.transport.max_size == wall.READ_SIZE  # type: ignore[attr-defined]
        sweeper = wall.sweeper(asyncio.get_running_loop())
        assert ws in sweeper.connections and ws.keepalive_task is None  # no task of websockets' own
        heard = ws.last_heard
        await until(lambda: server.connections, "the server's side")
        await asyncio.sleep(MS)  # the loop's clock moves on before the next read
        await server.connections[0].send("news")
        await ws.recv()
        assert ws.last_heard > heard
    assert ws not in sweeper.connections


async def test_hook_sweeper_pings_a_silent_connection_and_fails_it_with_1011(server):
    """Sweeper: protocol.send_ping + send_data after a silence; protocol.fail(1011, reason) after the timeout."""
    async with connect(
        server.uri,
        create_connection=wall.mesh_client(Greets),
        ping_interval=20 * MS,
        ping_timeout=40 * MS,
        close_timeout=100 * MS,  # the frozen peer never answers the close: cut after this
    ) as ws:
        sweeper = wall.sweeper(asyncio.get_running_loop())
        pings = sweeper.pings
        await until(lambda: sweeper.pings > pings, "a keepalive ping")
        await until(lambda: server.connections, "the server's side")
        server.connections[0].transport.pause_reading()  # the peer freezes: no pong from now on
        await asyncio.wait_for(ws.wait_closed(), DEADLINE)
        assert ws.protocol.close_sent is not None and ws.protocol.close_sent.code == CloseCode.INTERNAL_ERROR
        assert wall.closed_by_keepalive(ws)
        server.connections[0].transport.abort()


async def test_hook_sweeper_pings_first_when_its_loop_was_held_up_past_interval_and_timeout(server):
    """Sweeper: a loop held up longer than ping_interval + ping_timeout (a blocking sketch, a loaded machine) pings
    first, and the peer's pong keeps the connection: the timeout counts from the ping, not the silence's start."""
    async with connect(
        server.uri, create_connection=wall.mesh_client(Greets), ping_interval=20 * MS, ping_timeout=40 * MS
    ) as ws:
        sweeper = wall.sweeper(asyncio.get_running_loop())
        await until(lambda: server.connections, "the server's side")
        pings, failed, heard = sweeper.pings, sweeper.failed, ws.last_heard
        time.sleep(80 * MS)  # the loop held up: 80 ms of silence, past 20 + 40  # noqa: ASYNC251
        await until(lambda: ws.last_heard > heard and sweeper.pings > pings, "a ping, and its pong")
        assert sweeper.failed == failed and ws.protocol.state is State.OPEN


async def test_hook_closed_by_keepalive_reads_the_close_frames_sent_and_received(server):
    """closed_by_keepalive: protocol.close_sent and close_rcvd; a close by the peer is not the keepalive's."""
    async with connect(server.uri, **client()) as ws:
        await until(lambda: server.connections, "the server's side")
        await server.connections[0].close(1001)
        await ws.wait_closed()
        assert ws.protocol.close_rcvd is not None and not wall.closed_by_keepalive(ws)


async def test_hook_mesh_client_extends_the_handshake_and_hands_text_over_in_the_turn(server):
    """MeshClientConnection: create_connection gets the sans-I/O protocol first; handshake(additional_headers, ...)
    is what connect() awaits (our headers go out, then the greeting); process_event sees each frame."""
    greeters: list[Greets] = []

    def greeter() -> Greets:
        greeters.append(Greets())
        return greeters[-1]

    async with connect(server.uri, additional_headers={"X-Other": "1"}, **client(greeter)) as ws:
        assert isinstance(ws, wall.MeshClientConnection) and greeters[0].greeted == [ws]
        assert ws.request is not None and ws.request.headers.get("X-Greeting") is None  # forgotten once greeted
        await until(lambda: server.connections, "the server's side")
        assert server.connections[0].request is not None
        assert server.connections[0].request.headers["X-Greeting"] == "hello"
        assert server.connections[0].request.headers["X-Other"] == "1"
        got: list[str] = []
        ws.on_text = got.append
        await server.connections[0].send("one")
        await until(lambda: got == ["one"], "the text handed over by process_event")
        await server.connections[0].send(b"binary")  # not text: handed to recv(), in order, from here on
        assert await asyncio.wait_for(ws.recv(), DEADLINE) == b"binary"
        assert ws.on_text is None
        await server.connections[0].send("two")
        assert await asyncio.wait_for(ws.recv(), DEADLINE) == "two"


async def test_hook_mesh_client_keeps_the_headers_of_a_connection_not_greeted(server):
    """forget_headers: request and response headers are plain attributes that can be replaced."""
    async with connect(server.uri, **client(lambda: Greets(greet=False))) as ws:
        assert ws.request is not None and ws.request.headers["X-Greeting"] == "hello"
        wall.forget_headers(ws)
        assert ws.request is not None and not list(ws.request.headers.raw_items())
        assert ws.response is not None and not list(ws.response.headers.raw_items())


async def test_hook_a_failed_greeting_fails_the_opening_as_a_handshake_does(server):
    """handshake: an InvalidHandshake raised by the greeting ends connect() with it, for process_exception to judge."""
    from mesh.handshake import GreetingFailed

    class Refuses(Greets):
        async def greet(self, ws: ClientConnection) -> bool:
            raise GreetingFailed("no", fatal=True)

    with pytest.raises(GreetingFailed, match=r"^no$"):
        async with connect(server.uri, **client(Refuses)):
            pass


async def test_hook_freeze_stops_reading_whatever_the_flow_control_does(server):
    """freeze/thaw: transport.pause_reading, and the assembler's resume (recv_messages.resume) held back."""
    async with connect(server.uri, **client()) as ws:
        await until(lambda: server.connections, "the server's side")
        far = server.connections[0]
        wall.freeze(ws)
        assert ws.recv_messages.resume is not None
        await far.send("while frozen")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 50 * MS)  # nothing read from the socket
        ws.recv_messages.resume()  # what the assembler calls when its queue drains: held back
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 50 * MS)
        wall.thaw(ws)
        assert await asyncio.wait_for(ws.recv(), DEADLINE) == "while frozen"


async def test_hook_node_connection_answers_an_unparsable_request_with_a_400(server):
    """NodeConnection: serve() hands create_connection its ServerProtocol; send_eof() follows a parse failure
    (handshake_exc caused by the parser's error); reject() and writes make the reply."""
    port = server.server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"NONSENSE\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), DEADLINE)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert wall.HTTP_HELP.encode() in answer


async def test_hook_stop_listening_closes_the_socket_and_keeps_the_connections(server):
    """stop_listening: Server.server is the asyncio server; closing it refuses new connections, keeps open ones."""
    address = server.uri
    async with connect(address, **client()) as ws:
        await until(lambda: server.connections, "the server's side")
        assert isinstance(server.server.server, asyncio.Server)
        wall.stop_listening(server.server)
        with pytest.raises(OSError):
            async with connect(address, open_timeout=DEADLINE, **client()):
                pass
        await server.connections[0].send("still here")
        assert await asyncio.wait_for(ws.recv(), DEADLINE) == "still here"


async def test_hook_set_socket_buffers_reaches_the_served_socket(server):
    """set_socket_buffers: the served connection's transport gives its socket."""
    async with connect(server.uri, **client()):
        await until(lambda: server.connections, "the server's side")
        wall.set_socket_buffers(server.connections[0], 64 * 1024)
        sock = server.connections[0].transport.get_extra_info("socket")
        assert sock is not None and sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 64 * 1024


async def test_hook_set_socket_buffers_leaves_a_closed_connection_alone(server):
    """set_socket_buffers: a connection whose socket the transport already closed (a peer that reset right after
    its request, before process_request ran) is left alone, not an EBADF in the handshake."""
    async with connect(server.uri, **client()):
        await until(lambda: server.connections, "the server's side")
    far = server.connections[0]
    await asyncio.wait_for(far.wait_closed(), DEADLINE)
    await until(lambda: far.transport.get_extra_info("socket").fileno() < 0, "the socket closed")
    wall.set_socket_buffers(far, 64 * 1024)  # no OSError


async def test_hook_send_or_abort_gives_up_on_a_peer_that_does_not_read(server):
    """send_or_abort: send() waits on a full buffer (drain); past the bound the connection is cut."""
    async with connect(server.uri, **client()) as ws:
        await until(lambda: server.connections, "the server's side")
        far = server.connections[0]
        wall.set_socket_buffers(far, 64 * 1024)
        ws.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        ws.transport.pause_reading()  # our client stops reading: the server's sends pile up
        big = "x" * 2**18
        for _ in range(256):  # 64 MiB at most: far more than the buffers hold
            if not await wall.send_or_abort(far, big, 200 * MS):
                break
        else:
            raise AssertionError("every send went through to a peer that reads nothing")
        await asyncio.wait_for(far.wait_closed(), DEADLINE)
        assert far.state is State.CLOSED


def _masked_frame_header(length: int) -> bytes:
    """The header of a client's text frame of ``length`` bytes (masked with zeros: the payload reads as sent)."""
    return b"\x81\xff" + length.to_bytes(8, "big") + b"\0\0\0\0"


async def _raw_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await reader.readuntil(b"\r\n\r\n")
    return reader, writer


@pytest.fixture
async def budgeted() -> AsyncIterator[tuple[Server, wall.FrameBudget, list[ServerConnection]]]:
    """A server whose connections hold their frames in progress within a budget of 100 KiB."""
    budget = wall.FrameBudget(100 * 1024)
    connections: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        await ws.wait_closed()

    async with serve(
        handler, "127.0.0.1", 0, create_connection=wall.node_connection(budget), ping_interval=None, max_size=2**20
    ) as running:
        yield running, budget, connections


async def test_hook_keptalive_hears_a_whole_frame_not_a_byte(budgeted):
    """process_event: stamped for each whole frame (event); bytes of a frame in progress are not heard."""
    running, budget, connections = budgeted
    _reader, writer = await _raw_client(running.sockets[0].getsockname()[1])
    await until(lambda: connections, "the server's side")
    ws = connections[0]
    assert isinstance(ws, wall.KeptAlive)
    heard = ws.last_heard
    writer.write(_masked_frame_header(1000) + b"x" * 10)  # a frame begun, not whole
    await until(lambda: ws.held > 0, "the frame's first bytes held")
    assert ws.last_heard == heard and budget.held == ws.held
    await asyncio.sleep(MS)
    writer.write(b"x" * 990)  # whole now
    await until(lambda: ws.last_heard > heard, "the whole frame heard")
    assert ws.held == 0 and budget.held == 0
    writer.close()


async def test_hook_frame_budget_cuts_the_oldest_frame_in_progress_first(budgeted):
    """FrameBudget: protocol.reader.buffer is the bytes of a frame not yet whole; past the budget the connection whose
    frame began first is cut."""
    running, budget, connections = budgeted
    port = running.sockets[0].getsockname()[1]
    first_reader, first = await _raw_client(port)
    _second_reader, second = await _raw_client(port)
    await until(lambda: len(connections) == 2, "both connections")
    first.write(_masked_frame_header(2**19) + b"a" * 60 * 1024)
    await until(lambda: budget.held >= 60 * 1024, "the first frame held")
    second.write(_masked_frame_header(2**19) + b"b" * 60 * 1024)  # 120 KiB in all: past the budget
    assert await asyncio.wait_for(first_reader.read(), DEADLINE) == b""  # cut: the oldest
    await until(lambda: budget.cut == 1 and budget.held <= budget.limit, "the budget kept")
    assert connections[1].state is State.OPEN
    first.close()
    second.close()


async def test_hook_cap_frames_closes_a_connection_whose_frame_outgrows_the_cap(budgeted):
    """cap_frames: before its peer proved who it is, a connection may not hold a large frame (1008)."""
    running, budget, connections = budgeted
    reader, writer = await _raw_client(running.sockets[0].getsockname()[1])
    await until(lambda: connections, "the server's side")
    wall.cap_frames(connections[0], 4096)
    writer.write(_masked_frame_header(2**19) + b"x" * 10_000)
    closing = await asyncio.wait_for(reader.read(), DEADLINE)
    assert closing.startswith(b"\x88") and b"frame too large before the hello" in closing
    assert budget.held == 0
    writer.close()


class Shouting(asyncio.Protocol):
    """The other protocol of the sniffing tests: it answers what it reads, upper case, and counts its connections."""

    made: ClassVar[list[Shouting]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        Shouting.made.append(self)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data.upper())


@pytest.fixture
async def sniffed() -> AsyncIterator[Served]:
    """A websockets server whose connections are SniffingConnections: a first byte '!' goes to Shouting."""
    connections: list[ServerConnection] = []
    texts: list[str] = []
    Shouting.made = []

    async def handler(ws: ServerConnection) -> None:
        connections.append(ws)
        async for text in ws:
            texts.append(str(text))
            await ws.send(text)

    def decide(head: bytes) -> bool | None:
        return None if head == b"" else head.startswith(b"!")

    async with serve(
        handler, "127.0.0.1", 0, create_connection=wall.sniffing(decide, Shouting), ping_interval=None
    ) as running:
        yield Served(running, connections, texts)


async def test_hook_sniffing_hands_a_connection_to_websockets_or_to_another_protocol(sniffed):
    """SniffingConnection: connection_made held back until decide() says; HTTP goes on as a NodeConnection (its
    class swapped back: nothing more per message), anything else is handed over with set_protocol() and the bytes
    read so far, and websockets never hears of it."""
    async with connect(sniffed.uri, **client()) as ws:
        await ws.send("hello")
        assert await asyncio.wait_for(ws.recv(), DEADLINE) == "hello"
        assert type(sniffed.connections[0]) is wall.NodeConnection
    port = sniffed.server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for piece in (b"!", b"shout ", b"this"):  # the first piece decides; the rest is the other protocol's
        writer.write(piece)
        await writer.drain()
    assert await asyncio.wait_for(reader.readexactly(11), DEADLINE) == b"!SHOUT THIS"
    writer.close()
    assert len(Shouting.made) == 1 and len(sniffed.connections) == 1  # websockets took only the websocket


async def test_hook_sniffing_closes_a_connection_that_says_nothing(sniffed, monkeypatch):
    """SniffingConnection: a connection silent for FIRST_BYTES_TIMEOUT is aborted (websockets' own open_timeout
    starts only once the bytes said HTTP); one that closes first leaves no timer behind."""
    monkeypatch.setattr(wall, "FIRST_BYTES_TIMEOUT", 50 * MS)
    port = sniffed.server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(reader.read(), DEADLINE) == b""  # the 50 ms of silence is the fault under test
    writer.close()
    assert not Shouting.made and not sniffed.connections


async def test_hook_route_has_serve_and_connect_open_through_the_loops_own_methods():
    """route/unroute: serve() and connect() call the running loop's create_server/create_connection, looked up
    on the instance, with host and port and our keywords passed on; unroute puts the class's back."""
    loop = asyncio.get_running_loop()
    calls: list[tuple[str, Any, Any, dict[str, Any]]] = []
    real_server, real_connection = loop.create_server, loop.create_connection

    async def create_server(factory: Callable[[], Any], host: Any = None, port: Any = None, **kwargs: Any) -> Any:
        calls.append(("server", host, port, kwargs))
        return await real_server(factory, host, port, **kwargs)

    async def create_connection(factory: Callable[[], Any], host: Any = None, port: Any = None, **kwargs: Any) -> Any:
        calls.append(("connection", host, port, kwargs))
        return await real_connection(factory, host, port, **kwargs)

    wall.route(loop, create_server, create_connection)
    try:
        async with serve(lambda ws: ws.wait_closed(), "127.0.0.1", 0, backlog=7) as running:
            port = running.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/", **client(), local_addr=("127.0.0.1", 0)):
                pass
    finally:
        wall.unroute(loop)
    assert [(kind, host) for kind, host, _, _ in calls] == [("server", "127.0.0.1"), ("connection", "127.0.0.1")]
    assert calls[0][2] == 0 and calls[0][3]["backlog"] == 7
    assert calls[1][2] == port and calls[1][3]["local_addr"] == ("127.0.0.1", 0)
    assert "create_server" not in vars(loop) and loop.create_connection.__func__ is type(loop).create_connection


def test_the_sweeper_looks_when_a_connection_may_be_due_not_four_times_a_second():
    """A connection heard every second is looked at about once a second; a silent one is pinged 2 s after it was
    last heard and failed 1 s later, each within a period (0.25 s) of its due time."""
    from nodes.virtual import run_virtual

    class Quiet:
        """What the sweeper reads of a connection: when it last heard anything, its keepalive, its state."""

        ping_interval, ping_timeout, close_timeout = 2.0, 1.0, 0.0
        last_heard = pinged = 0.0
        protocol = type("P", (), {"state": State.OPEN, "send_ping": lambda self, data: None, "fail": lambda *a: None})()
        transport = type("T", (), {"is_closing": lambda self: False, "abort": lambda self: None})()

        def send_data(self) -> None:
            pass

    async def main() -> tuple[int, float, float]:
        loop = asyncio.get_running_loop()
        sweeper = wall.Sweeper(loop)
        looks = 0
        sweep = sweeper.sweep

        def counted() -> None:
            nonlocal looks
            looks += 1
            sweep()

        sweeper.sweep = counted  # type: ignore[method-assign]
        busy, silent = Quiet(), Quiet()
        sweeper.add(busy)  # type: ignore[arg-type]
        for _ in range(60):  # a minute of hearing something every second
            busy.last_heard = loop.time()
            await asyncio.sleep(1)
        quiet_looks = looks
        silent.last_heard = loop.time()
        sweeper.add(silent)  # type: ignore[arg-type]
        start = loop.time()
        while not silent.pinged:
            busy.last_heard = loop.time()
            await asyncio.sleep(0.05)
        pinged = silent.pinged - start
        while silent in sweeper.connections:
            busy.last_heard = loop.time()
            await asyncio.sleep(0.05)
        return quiet_looks, pinged, loop.time() - start

    looks, pinged, failed = run_virtual(main())
    assert 25 <= looks <= 65  # not 240
    assert 2.0 <= pinged <= 2.25
    assert 3.0 <= failed <= 3.3
