"""Bad input against one real node in this test's event loop, on port 0: it answers or closes, then goes on serving."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

from mesh.errors import UnknownNodeError
from mesh.grid import build_grid
from nodes import FactoryLoop, reactive
from nodes.runtime import Node
from tests.helpers import DEADLINE, MS, fast_backoff, until

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


@pytest.fixture
async def node_in_virtual_time(virtual_time, node):
    """The same node, started with the loop already in virtual time: its timeouts take no wall time."""
    return node


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
        assert "buzer" not in caller.sender.links
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
        assert f"arduino-mesh send {node.name} MESSAGE (./arduino.py send in a checkout)" in body  # the command's name
        assert await asyncio.wait_for(reader.read(), DEADLINE) == b""  # Connection: close
    finally:
        await close_raw(writer)
    assert node.server.connections == 0  # never reached a handler
    await assert_still_serving(node)


@pytest.mark.parametrize("clients", [50, pytest.param(200, marks=pytest.mark.slow)])
async def test_concurrent_plain_clients_are_all_answered(node, clients: int):
    """50 (or 200) plain clients connecting and sending at once each get their own answer."""

    async def client(i: int) -> str:
        async with connect(f"ws://{node.address}/c{i}", open_timeout=DEADLINE) as ws:
            await ws.send(f"m{i}")
            return await ws.recv()

    answers = await asyncio.wait_for(asyncio.gather(*(client(i) for i in range(clients))), DEADLINE)
    assert answers == [f"c{i}|m{i}" for i in range(clients)]
    assert node.server.connections == clients
    assert node.reactor.messages_in == clients
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
        assert caller.sender.links["echo"].connections == 1
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


# -- hostile frames: each gets an error frame, the connection stays open and answers a status --

TYPES = "ack, error, hello, msg, pub, report, status, sub, unsub"


async def assert_answers_status(ws) -> None:
    """The same connection still answers a status request."""
    await ws.send('{"type":"status","id":99}')
    report = await recv_json(ws)
    assert report["type"] == "report" and report["id"] == 99 and report["data"]["node"] == "echo"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[" * 100_000 + "]" * 100_000, "frame is not JSON the mesh can read: nested too deeply"),
        ('{"a":' * 100_000 + "1" + "}" * 100_000, "frame is not JSON the mesh can read: nested too deeply"),
        ('{"type":[]}', f"unknown frame type a list; expected one of: {TYPES}"),
        ("{}", f"frame has no 'type' field; expected one of: {TYPES}"),
        ('{"type":{}}', f"unknown frame type an object; expected one of: {TYPES}"),
        (
            '{"type":"sub","id":4,"pattern":"a/\\ud800"}',
            "'sub' frame: 'pattern' is not valid Unicode (a lone surrogate)",
        ),
        (
            '{"type":"unsub","id":4,"pattern":"a/\\ud800"}',
            "'unsub' frame: 'pattern' is not valid Unicode (a lone surrogate)",
        ),
        (
            '{"type":"msg","id":4,"channel":"c","data":"\\udc00"}',
            "'msg' frame: 'data' is not valid Unicode (a lone surrogate)",
        ),
        ('{"type":"hello","node":"evil\\ud800"}', "'hello' frame: 'node' is not valid Unicode (a lone surrogate)"),
        (
            '{"type":"hello","node":"x\\n[ buzzer ] signal 1: buzz"}',
            "'hello' frame: 'node' holds a control character (a newline?): 'x\\n[ buzzer ] signal 1: buzz'",
        ),
        (
            '{"type":"hello","node":"' + "a" * 300 + '"}',
            "'hello' frame: 'node' is longer than 256 characters (300); use a shorter one",
        ),
        (
            "[" + ",".join(['{"type":"status","id":1}'] * 257) + "]",
            "a batch holds at most 256 frames, not 257; send fewer at once",
        ),
        ("[" + ",".join(["{}"] * 100_000) + "]", "a batch holds at most 262144 bytes; send fewer frames at once"),
    ],
    ids=[
        "deep-array",
        "deep-object",
        "list-type",
        "no-type",
        "object-type",
        "surrogate-pattern",
        "surrogate-unsub",
        "surrogate-data",
        "surrogate-hello",
        "newline-hello",
        "long-name",
        "batch-frames",
        "batch-bytes",
    ],
)
async def test_a_hostile_frame_gets_an_error_frame_and_the_connection_answers_after(node, text, error):
    """Each malformed input of issue 12: one error frame saying what is wrong, then the same connection works."""
    async with connect(f"ws://{node.address}/", subprotocols=MESH, open_timeout=DEADLINE) as ws:
        await ws.send(text)
        reply = await recv_json(ws)
        assert reply["type"] == "error" and reply["error"] == error
        await assert_answers_status(ws)
    assert node.reactor.messages_in == 0
    assert not node.hub.subscribers
    await assert_still_serving(node)


async def test_hostile_frames_inside_a_batch_get_errors_in_their_place(node):
    """{"type": []}, {} and a lone surrogate inside a batch: an error each, the messages beside them acked."""
    async with connect(f"ws://{node.address}/", subprotocols=MESH, open_timeout=DEADLINE) as ws:
        await ws.send(
            '[{"type":"msg","id":1,"channel":"c","data":"x"},{"type":[]},{},'
            '{"type":"sub","id":2,"pattern":"\\ud800"},{"type":"msg","id":3,"channel":"c","data":"y"}]'
        )
        first, listed, empty, surrogate, last = await recv_json(ws)
        assert (first, last) == ({"type": "ack", "id": 1, "data": "c|x"}, {"type": "ack", "id": 3, "data": "c|y"})
        assert listed["error"].startswith("unknown frame type a list")
        assert empty["error"].startswith("frame has no 'type' field")
        assert surrogate == {
            "type": "error",
            "id": 2,
            "error": "'sub' frame: 'pattern' is not valid Unicode (a lone surrogate)",
        }
        await assert_answers_status(ws)


async def test_a_batch_of_status_frames_draws_a_bounded_reply(node):
    """Replies other than acks stay within REPLY_FACTOR x the request + REPLY_SLACK; one error says the rest."""
    from nodes.conversation import REPLY_FACTOR, REPLY_SLACK

    request = "[" + ",".join(f'{{"type":"status","id":{i}}}' for i in range(256)) + "]"
    async with connect(f"ws://{node.address}/", subprotocols=MESH, open_timeout=DEADLINE) as ws:
        await ws.send(request)
        raw = await asyncio.wait_for(ws.recv(), DEADLINE)
        reply = json.loads(raw)
        reports = [frame for frame in reply if frame["type"] == "report"]
        (error,) = [frame for frame in reply if frame["type"] == "error"]
        assert 0 < len(reports) < 256
        assert error == {
            "type": "error",
            "id": None,
            "error": f"reply cap reached ({REPLY_FACTOR}x the request + {REPLY_SLACK} bytes): "
            f"{256 - len(reports)} frame(s) not answered; send fewer at once",
        }
        # The budget may be passed by the last report it let through, by at most one report.
        assert len(raw) <= REPLY_FACTOR * len(request) + REPLY_SLACK + 2 * len(json.dumps(reports[0])) + len(
            json.dumps(error)
        )
        await assert_answers_status(ws)


async def test_a_batch_of_messages_is_all_acked_whatever_the_replies_weigh(node):
    """Acks are owed: a full batch of messages whose acks outweigh the request is acked, in link-sized batches."""
    request = (
        "[" + ",".join(f'{{"type":"msg","id":{i},"channel":"{"c" * 200}","data":"x"}}' for i in range(1, 257)) + "]"
    )
    async with connect(f"ws://{node.address}/", subprotocols=MESH, open_timeout=DEADLINE) as ws:
        await ws.send(request)
        reply = await recv_json(ws)
        assert [frame["id"] for frame in reply] == list(range(1, 257))
        assert all(frame["type"] == "ack" for frame in reply)
    assert node.reactor.messages_in == 256


async def test_the_status_report_lists_a_bounded_number_of_subscribers(node):
    """Past STATUS_SUBSCRIBERS subscribers, the report lists that many and says how many in all."""
    from nodes.report import STATUS_PATTERNS, STATUS_SUBSCRIBERS

    clients = []
    try:
        for i in range(STATUS_SUBSCRIBERS + 3):
            ws = await connect(f"ws://{node.address}/", subprotocols=MESH, open_timeout=DEADLINE)
            clients.append(ws)
            await ws.send(f'{{"type":"hello","node":"sub{i}"}}')
            await recv_json(ws)
            patterns = [f"echo/p{j}" for j in range(STATUS_PATTERNS + 2)] if i == 0 else ["echo/#"]
            await ws.send(
                "[" + ",".join(f'{{"type":"sub","id":{j},"pattern":"{p}"}}' for j, p in enumerate(patterns)) + "]"
            )
            await recv_json(ws)
        report = node.status()
        assert report["subscribers_total"] == STATUS_SUBSCRIBERS + 3
        assert len(report["subscribers"]) == STATUS_SUBSCRIBERS
        first = next(sub for sub in report["subscribers"] if sub["name"] == "sub0")
        assert len(first["patterns"]) == STATUS_PATTERNS and first["patterns_total"] == STATUS_PATTERNS + 2
    finally:
        for ws in clients:
            await ws.close()


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS:")).split()[1]) * 1024


def masked(payload: bytes, mask: bytes = b"\x11\x22\x33\x44") -> bytes:
    """One final, masked client text frame of any length."""
    size = len(payload)
    if size < 126:
        head = bytes([0x81, 0x80 | size])
    elif size < 2**16:
        head = bytes([0x81, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big")
    return head + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


async def test_a_peer_that_sends_and_never_reads_is_dropped_and_memory_stays_bounded(node_in_virtual_time, caplog):
    """A mesh client that floods status requests and reads nothing is aborted within SEND_TIMEOUT of its
    replies backing up; the node's RSS stays bounded and other clients are answered meanwhile.

    In virtual time: the SEND_TIMEOUT (3 s) the node waits takes none, and the times are the loop's own."""
    node = node_in_virtual_time
    import socket

    from mesh.constants import SEND_TIMEOUT

    host, port = node.address.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the node's buffer fills soon
    sock.setblocking(False)
    await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, int(port))), DEADLINE)
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(
        f"GET / HTTP/1.1\r\nHost: {node.address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: arduino-mesh.1\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    request = masked(b'{"type":"status","id":1}') * 64
    before = rss_bytes()
    peak = before
    loop = asyncio.get_running_loop()
    started = loop.time()
    caplog.set_level("INFO", logger=node.log.name)

    async def flood() -> None:
        nonlocal peak
        try:
            while True:  # never reads
                writer.write(request)
                await writer.drain()
                peak = max(peak, rss_bytes())
        except ConnectionError:
            pass

    flooding = asyncio.create_task(flood())
    try:
        while node.server.handlers and loop.time() - started < SEND_TIMEOUT + DEADLINE:
            async with connect(f"ws://{node.address}/", subprotocols=MESH, open_timeout=DEADLINE) as ws:
                await assert_answers_status(ws)  # another client is answered meanwhile
            await asyncio.sleep(100 * MS)
        await until(lambda: len(node.server.handlers) == 0, "the flooding client to be dropped")
        elapsed = loop.time() - started
        await asyncio.wait_for(flooding, DEADLINE)
    finally:
        flooding.cancel()
        writer.close()
    assert f"dropped an unnamed peer: it read nothing for {SEND_TIMEOUT:g} s (replies waiting)" in caplog.messages
    assert elapsed < SEND_TIMEOUT + DEADLINE
    assert peak - before < 64 * 2**20, f"RSS grew by {(peak - before) / 2**20:.1f} MiB"
    await assert_still_serving(node)


class Busy(FactoryLoop):
    """Each loop() holds the event loop for a moment (sketch code doing sums); the first one says so."""

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        self.started.set()
        end = time.perf_counter() + MS
        while time.perf_counter() < end:  # sums, not a sleep: the loop is held
            pass
        return "done"

    def setup(self) -> None:
        self.started = asyncio.Event()


async def test_a_long_batch_lets_other_connections_be_answered_while_it_runs():
    """A batch whose frames each hold the loop a little yields every SLICE: another client's status is answered first."""
    busy = Node(Busy, "busy", build_grid({"busy": {"sketch": "busy", "port": 0}}))
    await busy.open()
    try:
        async with (
            connect(f"ws://{busy.address}/", subprotocols=MESH, open_timeout=DEADLINE) as heavy,
            connect(f"ws://{busy.address}/", subprotocols=MESH, open_timeout=DEADLINE) as other,
        ):
            arrived: list[str] = []

            async def read(ws, name: str) -> None:
                await recv_json(ws)
                arrived.append(name)

            readers = [asyncio.create_task(read(heavy, "batch")), asyncio.create_task(read(other, "status"))]
            await heavy.send(
                "[" + ",".join(f'{{"type":"msg","id":{i},"channel":"","data":"x"}}' for i in range(256)) + "]"
            )
            await asyncio.wait_for(busy.sketch.started.wait(), DEADLINE)  # the batch is being handled
            await other.send('{"type":"status","id":1}')
            await asyncio.wait_for(asyncio.gather(*readers), DEADLINE)
            assert arrived == ["status", "batch"]
    finally:
        await busy.stop()


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


async def raw_reply(node: FactoryLoop | Node, request_bytes: bytes) -> tuple[str, dict[str, str], bytes]:
    """A raw socket writes ``request_bytes`` and reads to the EOF: the status line, the headers (lower-cased), the body."""
    host, port = str(node.address).rsplit(":", 1)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), DEADLINE)
    try:
        writer.write(request_bytes)
        reply = await asyncio.wait_for(reader.read(), DEADLINE)  # to the EOF: the node closes after it
    finally:
        writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    return status, {name.lower(): value for name, value in (line.split(": ", 1) for line in lines)}, body


async def test_a_websocket_version_other_than_13_gets_400_naming_13(node, caplog):
    """RFC 6455 §4.2.2: a handshake of version 8 gets a 400 with ``Sec-WebSocket-Version: 13``; the node goes on."""
    request = upgrade_request(node).replace(b"Sec-WebSocket-Version: 13", b"Sec-WebSocket-Version: 8")
    status, headers, body = await raw_reply(node, request)
    assert status == "HTTP/1.1 400 Bad Request"
    assert headers["sec-websocket-version"] == "13"
    assert body.decode().splitlines() == [
        "400 Bad Request: this node speaks WebSocket version 13 (RFC 6455), not 8",
        "This port speaks HTTP/1.1: GET a page, or open a websocket (try: websocat ws://HOST:PORT/).",
    ]
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    await assert_still_serving(node)


class Page(FactoryLoop):
    """Serves one page, /hello, besides its messages."""

    def http(self, path: str) -> tuple[int, str, bytes] | None:
        return (200, "text/plain", b"hello\n") if path == "/hello" else None


@pytest.mark.parametrize(
    ("path", "status"), [("/hello", "HTTP/1.1 200 OK"), ("/", "HTTP/1.1 426 Upgrade Required")], ids=["page", "426"]
)
async def test_head_is_answered_like_get_without_the_body(path, status):
    """HEAD gets GET's status and headers (Content-Length the GET's), and no body; the node goes on."""
    node = Node(Page, "page", build_grid({"page": {"sketch": "page", "port": 0}}))
    await node.open()
    try:
        got = await raw_reply(node, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = await raw_reply(node, f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert got[0] == head[0] == status
        assert {**got[1], "date": ""} == {**head[1], "date": ""}  # the same headers, but the second's date
        assert int(head[1]["content-length"]) == len(got[2]) > 0
        assert head[2] == b""
        refused, _, why = await raw_reply(node, upgrade_request(node).replace(b"GET", b"HEAD"))
        assert refused == "HTTP/1.1 400 Bad Request"  # a websocket opens with GET only
        assert b"expected GET; got HEAD" in why
        assert (await raw_reply(node, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()))[0] == status
    finally:
        await node.stop()
