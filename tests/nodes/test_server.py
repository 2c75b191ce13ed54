"""Bad input against one real node in this test's event loop, on port 0: it answers or closes, then goes on serving."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

from mesh.errors import UnknownNodeError
from mesh.grid import build_grid
from nodes import FactoryLoop, Node, reactive
from tests.helpers import DEADLINE, fast_backoff, until

MESH = ["arduino-mesh.1"]
#: The example key of RFC 6455 and the accept value it must get back.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


class Echo(FactoryLoop):
    """Answers with the channel and the message it got; fails on 'boom'."""

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        if message == "boom":
            raise RuntimeError("boom")
        return f"{channel}|{message}"


@pytest.fixture
async def node():
    echo = Node(Echo, "echo", build_grid({"echo": {"sketch": "echo", "port": 0}}))
    await echo.open()
    try:
        yield echo
    finally:
        await echo.stop()


async def assert_still_serving(node: Echo) -> None:
    """A fresh plain client gets its answer."""
    async with connect(f"ws://{node.address}/", open_timeout=DEADLINE) as ws:
        await ws.send("ping")
        assert await asyncio.wait_for(ws.recv(), DEADLINE) == "|ping"


async def recv_json(ws) -> object:
    return json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))


async def open_raw(node: Echo) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A bare TCP connection to the node."""
    host, port = node.address.rsplit(":", 1)
    return await asyncio.wait_for(asyncio.open_connection(host, int(port)), DEADLINE)


async def raw_handshake(node: Echo) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection upgraded to a websocket by hand (no subprotocol: plain)."""
    reader, writer = await open_raw(node)
    writer.write(
        f"GET / HTTP/1.1\r\nHost: {node.address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert f"\r\nSec-WebSocket-Accept: {ACCEPT}\r\n".encode() in head
    return reader, writer


def client_frame(opcode: int, payload: bytes, *, mask: bytes = b"\x11\x22\x33\x44") -> bytes:
    """One final, masked client frame with a short payload."""
    assert len(payload) < 126
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


async def read_close(reader: asyncio.StreamReader) -> tuple[int, str]:
    """The server's close frame (unmasked, short): its code and reason."""
    header = await asyncio.wait_for(reader.readexactly(2), DEADLINE)
    assert header[0] == 0x88, header
    payload = await asyncio.wait_for(reader.readexactly(header[1] & 0x7F), DEADLINE)
    return int.from_bytes(payload[:2], "big"), payload[2:].decode()


async def close_raw(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), DEADLINE)
    except ConnectionError:
        pass


@pytest.mark.parametrize(
    ("text", "frame_id", "error"),
    [
        ("not json", None, "frame is not JSON: Expecting value: line 1 column 1 (char 0)"),
        ('"text"', None, "frame must be a JSON object, not the text 'text'"),
        ('{"type":"msg","id":7,"data":"x"}', 7, "'msg' frame has no 'channel' field"),
        (
            '{"type":"msg","id":"1","channel":"c","data":"x"}',
            None,
            "'msg' frame: 'id' must be a whole number, not the text '1'",
        ),
        (
            '{"type":"msg","id":true,"channel":"c","data":"x"}',
            None,
            "'msg' frame: 'id' must be a whole number, not a boolean",
        ),
        (
            '{"type":"nope"}',
            None,
            "unknown frame type 'nope'; expected one of: ack, error, hello, msg, pub, report, status, sub, unsub",
        ),
    ],
    ids=["not-json", "not-an-object", "missing-field", "mistyped-id", "boolean-id", "unknown-type"],
)
async def test_a_bad_mesh_frame_gets_an_error_frame_and_the_connection_goes_on(node, text, frame_id, error):
    """A mesh frame that cannot be read gets an error frame (with its id when that could be read); the connection then works."""
    async with connect(f"ws://{node.address}/", subprotocols=MESH, open_timeout=DEADLINE) as ws:
        assert ws.subprotocol == "arduino-mesh.1"
        await ws.send(text)
        assert await recv_json(ws) == {"type": "error", "id": frame_id, "error": error}
        await ws.send('{"type":"msg","id":1,"channel":"c","data":"x"}')
        assert await recv_json(ws) == {"type": "ack", "id": 1, "data": "c|x"}
    assert node.reactor.messages_in == 1  # the bad frame never reached loop()
    await assert_still_serving(node)


async def test_a_binary_frame_from_a_plain_client_gets_an_error_text(node):
    """A plain client's binary frame is answered with an error text; the connection goes on."""
    async with connect(f"ws://{node.address}/", open_timeout=DEADLINE) as ws:
        await ws.send(b"\x00\x01")
        assert await asyncio.wait_for(ws.recv(), DEADLINE) == "error: binary frames are not supported; send text"
        await ws.send("x")
        assert await asyncio.wait_for(ws.recv(), DEADLINE) == "|x"
    assert node.reactor.messages_in == 1
    await assert_still_serving(node)


async def test_a_binary_frame_from_a_mesh_client_gets_an_error_frame(node):
    """A mesh client's binary frame is answered with an error frame (id null); the connection goes on."""
    async with connect(f"ws://{node.address}/", subprotocols=MESH, open_timeout=DEADLINE) as ws:
        await ws.send(b"\x00\x01")
        assert await recv_json(ws) == {
            "type": "error",
            "id": None,
            "error": "binary frames are not supported; send text",
        }
        await ws.send('{"type":"msg","id":1,"channel":"c","data":"x"}')
        assert await recv_json(ws) == {"type": "ack", "id": 1, "data": "c|x"}
    await assert_still_serving(node)


async def test_invalid_utf8_in_a_text_frame_closes_with_1007(node):
    """A text frame that is not UTF-8 closes that connection with 1007 (invalid data); loop() never sees it."""
    reader, writer = await raw_handshake(node)
    try:
        writer.write(client_frame(0x1, b"\xff\xfe"))
        code, reason = await read_close(reader)
        assert (code, reason) == (1007, "invalid start byte at position 0")
    finally:
        await close_raw(writer)
    assert node.reactor.messages_in == 0
    await until(lambda: not node.server.handlers, "the closed connection's handler to end")
    await assert_still_serving(node)


async def test_a_frame_over_the_size_limit_closes_with_1009(node):
    """A frame over 1 MiB closes that connection with 1009 (message too big); loop() never sees it."""
    async with connect(f"ws://{node.address}/", open_timeout=DEADLINE) as ws:
        await ws.send("x" * (2**20 + 1))
        with pytest.raises(ConnectionClosedError) as closed:
            await asyncio.wait_for(ws.recv(), DEADLINE)
        await asyncio.wait_for(ws.wait_closed(), DEADLINE)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
        1009,
        "frame with 1048577 bytes exceeds limit of 1048576 bytes",
    )
    assert ws.close_code == 1009
    assert node.reactor.messages_in == 0
    await assert_still_serving(node)


async def test_a_frame_exactly_at_the_size_limit_is_served(node):
    """A frame of exactly 1 MiB is still a message: loop() gets it and answers."""
    async with connect(f"ws://{node.address}/", open_timeout=DEADLINE, max_size=2**21) as ws:
        await ws.send("x" * 2**20)
        assert await asyncio.wait_for(ws.recv(), DEADLINE) == "|" + "x" * 2**20


async def test_a_failing_loop_answers_errors_and_other_connections_go_on(node, caplog):
    """loop() raising: one traceback logged per failure, plain and mesh senders get errors, other connections go on."""
    async with connect(f"ws://{node.address}/other", open_timeout=DEADLINE) as bystander:
        await bystander.send("before")
        assert await asyncio.wait_for(bystander.recv(), DEADLINE) == "other|before"

        async with connect(f"ws://{node.address}/", open_timeout=DEADLINE) as ws:
            await ws.send("boom")
            assert await asyncio.wait_for(ws.recv(), DEADLINE) == "error: loop() failed: RuntimeError: boom"
            failures = [r for r in caplog.records if r.name == "mesh.echo" and r.exc_info]
            assert len(failures) == 1
            assert failures[0].getMessage() == "loop() failed on 'boom' (channel '')"
            assert failures[0].exc_info[0] is RuntimeError
            await ws.send("ok")
            assert await asyncio.wait_for(ws.recv(), DEADLINE) == "|ok"

        caplog.clear()
        async with connect(f"ws://{node.address}/", subprotocols=MESH, open_timeout=DEADLINE) as ws:
            await ws.send('{"type":"msg","id":1,"channel":"c","data":"boom"}')
            assert await recv_json(ws) == {"type": "error", "id": 1, "error": "loop() failed: RuntimeError: boom"}
            assert len([r for r in caplog.records if r.name == "mesh.echo" and r.exc_info]) == 1
            await ws.send('{"type":"msg","id":2,"channel":"c","data":"ok"}')
            assert await recv_json(ws) == {"type": "ack", "id": 2, "data": "c|ok"}

        await bystander.send("after")
        assert await asyncio.wait_for(bystander.recv(), DEADLINE) == "other|after"
    await assert_still_serving(node)


async def test_stream_to_an_unknown_node_lists_the_known_ones(node):
    """stream() from another node to a name the grid lacks raises UnknownNodeError naming the known nodes."""
    grid = build_grid({"echo": {"sketch": "echo", "port": node.port}, "caller": {"sketch": "echo"}}, ["caller -> echo"])
    caller = Node(Echo, "caller", grid, reconnect_delays=fast_backoff)
    await caller.open()
    try:
        with pytest.raises(UnknownNodeError, match=r"^unknown node 'buzer'; known nodes: caller, echo$") as raised:
            await caller.sketch.stream("buzer", "1")
        assert (raised.value.name, raised.value.known) == ("buzer", ("caller", "echo"))
        assert "buzer" not in caller.links
        assert await asyncio.wait_for(caller.sketch.stream("echo", "1"), DEADLINE) == ["|1"]
    finally:
        await caller.stop()
    await assert_still_serving(node)


@pytest.mark.parametrize(
    "sent",
    [
        client_frame(0x1, b"hello")[:1],  # half of the header
        client_frame(0x1, b"hello")[:6],  # the header and mask, no payload
        client_frame(0x1, b"hello")[:8],  # the header and half the payload
    ],
    ids=["half-header", "header-only", "half-payload"],
)
async def test_a_client_vanishing_mid_frame_is_forgotten(node, sent):
    """A client that sends part of a frame and drops the TCP connection: its handler ends, loop() never runs."""
    _, writer = await raw_handshake(node)
    await until(lambda: len(node.server.handlers) == 1, "the raw connection's handler")
    writer.write(sent)
    await writer.drain()
    writer.transport.abort()
    await until(lambda: not node.server.handlers, "the vanished connection's handler to end")
    assert node.reactor.messages_in == 0
    await assert_still_serving(node)


@pytest.mark.parametrize("sent", [b"", b"GET / HT"], ids=["nothing", "half-a-request-line"])
async def test_a_stalled_handshake_does_not_block_other_clients(node, sent):
    """A TCP connection that never finishes its handshake does not keep the node from serving others meanwhile."""
    reader, writer = await open_raw(node)
    try:
        writer.write(sent)
        await writer.drain()
        await assert_still_serving(node)
        await assert_still_serving(node)
        assert not reader.at_eof()  # still open: the node did not have to drop it to serve the others
    finally:
        await close_raw(writer)
    await assert_still_serving(node)


async def test_plain_http_gets_426_upgrade_required(node):
    """An HTTP request without Upgrade (what curl sends) gets 426 with a text body; the node goes on."""
    reader, writer = await open_raw(node)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)).decode("latin-1")
        status, *lines = head[:-4].split("\r\n")
        assert status == "HTTP/1.1 426 Upgrade Required"
        headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines)}
        assert headers["upgrade"] == "websocket"
        assert headers["content-type"].startswith("text/plain")
        length = int(headers["content-length"])
        assert length > 0
        body = (await asyncio.wait_for(reader.readexactly(length), DEADLINE)).decode()
        assert body.strip()
        assert await asyncio.wait_for(reader.read(), DEADLINE) == b""  # Connection: close
    finally:
        await close_raw(writer)
    assert node.server.connections == 0  # never reached a handler
    await assert_still_serving(node)


async def test_200_concurrent_plain_clients_are_all_answered(node):
    """200 plain clients connecting and sending at once each get their own answer."""

    async def client(i: int) -> str:
        async with connect(f"ws://{node.address}/c{i}", open_timeout=DEADLINE) as ws:
            await ws.send(f"m{i}")
            return await ws.recv()

    answers = await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(200))), DEADLINE)
    assert answers == [f"c{i}|m{i}" for i in range(200)]
    assert node.server.connections == 200
    assert node.reactor.messages_in == 200
    await assert_still_serving(node)


async def test_a_message_over_the_peers_limit_is_refused_before_it_is_sent(node):
    """stream() of a message larger than the peer's max_size fails at once, instead of reconnecting forever."""
    from mesh.errors import ProtocolError

    caller_grid = build_grid(
        {"echo": {"sketch": "echo", "port": node.port}, "caller": {"sketch": "echo"}}, ["caller -> echo"]
    )
    caller = Node(Echo, "caller", caller_grid)
    await caller.open()
    try:
        with pytest.raises(
            ProtocolError, match=r"^a message of 1048\d\d\d bytes is over echo's limit of 1048576 bytes \(max_size\)$"
        ):
            await caller.sketch.stream("echo", "x" * 2**20)
        assert await caller.sketch.stream("echo", "small") == ["|small"]
        assert caller.links["echo"].connections == 1
    finally:
        await caller.stop()


async def test_a_batch_with_a_bad_frame_gets_a_batch_of_answers(node):
    """A batch (JSON array) is answered with a batch: an ack for each good message, an error for each bad one."""
    async with connect(f"ws://{node.address}/", subprotocols=MESH, open_timeout=DEADLINE) as ws:
        await ws.send(
            '[{"type":"msg","id":1,"channel":"c","data":"x"},[],{"type":"msg","id":2,"channel":"c","data":"y"}]'
        )
        assert await recv_json(ws) == [
            {"type": "ack", "id": 1, "data": "c|x"},
            {"type": "error", "id": None, "error": "frame must be a JSON object, not a list"},
            {"type": "ack", "id": 2, "data": "c|y"},
        ]
    await assert_still_serving(node)


# ---- HTTP edges: a request the node cannot take gets "400 Bad Request" and a line of help, never silence or a 500


def upgrade_request(node: Echo, *extra: str) -> bytes:
    lines = [
        "GET / HTTP/1.1",
        f"Host: {node.address}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Version: 13",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize(
    ("request_bytes", "why"),
    [
        (lambda node: upgrade_request(node, "Upgrade: websocket"), "the Upgrade header came 2 times; send it once."),
        (
            lambda node: upgrade_request(node, "Authorization: Bearer a", "Authorization: Bearer b"),
            "the Authorization header came 2 times; send it once.",
        ),
        (lambda node: b"HELLO THERE\r\n\r\n", "invalid HTTP request line: HELLO THERE"),
        (lambda node: b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", "unsupported HTTP method; expected GET; got POST"),
        (lambda node: b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", "unsupported request body"),
        (lambda node: b"GET /\r\n\r\n", "invalid HTTP request line: GET /"),
        (
            lambda node: b"GET / HTTP/2\r\nHost: x\r\n\r\n",
            "unsupported protocol; expected HTTP/1.1 or HTTP/1.0: GET / HTTP/2",
        ),
        (
            lambda node: b"\x00\xff\x16\x03\x01 garbage\r\n\r\n",
            "invalid HTTP request line: \\x00\\xff\\x16\\x03\\x01 garbage",
        ),
    ],
    ids=[
        "duplicate-upgrade",
        "duplicate-authorization",
        "garbage",
        "post",
        "post-with-a-body",
        "no-http-version",
        "http-2",
        "binary",
    ],
)
async def test_a_malformed_request_gets_400_with_a_line_of_help(node, caplog, request_bytes, why):
    """A raw socket reads the reply: 400, what was wrong, how to talk to a node; no traceback; the node goes on."""
    reader, writer = await open_raw(node)
    try:
        writer.write(request_bytes(node))
        reply = await asyncio.wait_for(reader.read(), DEADLINE)  # to the EOF: the node closes after it
    finally:
        writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), reply
    assert body.decode().splitlines() == [
        f"400 Bad Request: {why}",
        "This port speaks HTTP/1.1: GET a page, or open a websocket (try: websocat ws://HOST:PORT/).",
    ]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    await assert_still_serving(node)
