"""A hostile or clumsy peer, as a process of its own: ``python tests/adversarial/attacker.py ATTACK URI``.

Each attack repeats until the process is stopped, so that it overlaps whatever the test
measures meanwhile. It prints ``attacking`` once its first round is under way, and a line
per round saying what it saw (what the node answered), so that a test can read both.
Nothing here is part of the product: it is the other side of ``tests/adversarial``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

SUBPROTOCOL = "arduino-mesh.1"
CLIENT = {"subprotocols": [SUBPROTOCOL], "compression": None, "max_size": None, "open_timeout": 30, "proxy": None}

Attack = Callable[..., Awaitable[None]]
ATTACKS: dict[str, Attack] = {}


def attack(name: str) -> Callable[[Attack], Attack]:
    def register(function: Attack) -> Attack:
        ATTACKS[name] = function
        return function

    return register


def say(*words: object) -> None:
    print(*words, flush=True)


_said_attacking = False


def attacking() -> None:
    global _said_attacking
    if not _said_attacking:
        _said_attacking = True
        say("attacking")


async def hello(ws: ClientConnection, name: str = "attacker", session: str = "") -> None:
    frame = {"type": "hello", "node": name}
    if session:
        frame["session"] = session
    await ws.send(json.dumps(frame))
    await ws.recv()


async def drain_replies(ws: ClientConnection, seconds: float) -> int:
    """Read what comes back for ``seconds``; how many bytes."""
    got = 0
    try:
        async with asyncio.timeout(seconds):
            async for reply in ws:
                got += len(reply)
    except (TimeoutError, ConnectionClosed):
        pass
    return got


def sub_batch(count: int, prefix: str) -> str:
    return json.dumps([{"type": "sub", "id": n, "pattern": f"{prefix}/{n}"} for n in range(1, count + 1)])


async def one_frame_per_connection(uri: str, frame: str, listen: float) -> None:
    """Send ``frame`` on a fresh connection, read what comes back for ``listen`` seconds, again and again."""
    round_ = 0
    while True:
        round_ += 1
        try:
            async with connect(uri, **CLIENT) as ws:
                await hello(ws)
                await ws.send(frame)
                attacking()
                got = await drain_replies(ws, listen)
                say(f"round {round_}: {len(frame)} bytes sent, {got} bytes back")
        except (OSError, ConnectionClosed, InvalidHandshake) as exc:
            say(f"round {round_}: {exc!r}")
            await asyncio.sleep(0.1)


@attack("subs-one-frame")
async def subs_one_frame(uri: str) -> None:
    """18,000 subscriptions in one frame (896 KB froze a buzzer 89 s), again on a new connection each round."""
    node = urlsplit(uri).path.strip("/") or "tally"
    frame = sub_batch(18_000, f"{node}/x")
    await one_frame_per_connection(uri, frame, 1.0)


@attack("subs-many-clients")
async def subs_many_clients(uri: str) -> None:
    """200 clients x 50 patterns each (100 x 50 made a node unavailable for 8.8 s), held a moment, dropped, again."""
    round_ = 0

    async def client(n: int) -> None:
        try:
            async with connect(uri, **CLIENT) as ws:
                await hello(ws, f"client-{n}")
                for p in range(50):
                    await ws.send(json.dumps({"type": "sub", "id": p + 1, "pattern": f"tally/c{n}/p{p}"}))
                attacking()
                await drain_replies(ws, 1.0)
        except (OSError, ConnectionClosed, InvalidHandshake):
            pass

    while True:
        round_ += 1
        await asyncio.gather(*(client(n) for n in range(200)))
        say(f"round {round_}: 200 clients x 50 patterns")


@attack("tiny-batch")
async def tiny_batch(uri: str) -> None:
    """A 1 MiB batch of 524,287 tiny frames (froze a node 12-20 s, drew a 43.5 MB reply)."""
    frame = "[" + ",".join(["1"] * 524_287) + "]"
    await one_frame_per_connection(uri, frame, 0.5)


@attack("status-batch")
async def status_batch(uri: str) -> None:
    """10 KB of batched status frames (drew a 369 MB reply, 1.8 GB peak RSS)."""
    frame = json.dumps([{"type": "status", "id": n} for n in range(1, 400)])
    await one_frame_per_connection(uri, frame, 0.5)


def _client_frame(text: str, opcode: int = 0x81) -> bytes:
    """A masked frame (text, unless ``opcode`` says), as a client must send it."""
    payload = text.encode()
    mask = os.urandom(4)
    head = bytes([opcode])
    length = len(payload)
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if length < 4096 else _mask_fast(payload, mask)
    return head + mask + masked


def _mask_fast(payload: bytes, mask: bytes) -> bytes:
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


async def raw_connect(uri: str, extra: str = "") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A websocket handshake by hand; the reader is then left alone (a peer that never reads)."""
    parts = urlsplit(uri)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET / HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n"
            f"{extra}\r\n"
        ).encode()
    )
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    return reader, writer


@attack("non-reading")
async def non_reading(uri: str) -> None:
    """20 clients that ask for status reports and never read (held 890 MB, never dropped)."""
    request = _client_frame(json.dumps([{"type": "status", "id": n} for n in range(1, 200)]))
    dropped = 0

    async def client(n: int) -> None:
        nonlocal dropped
        while True:
            try:
                _, writer = await raw_connect(uri)
                writer.write(_client_frame(json.dumps({"type": "hello", "node": f"sink-{n}"})))
                while True:
                    writer.write(request)
                    attacking()
                    await asyncio.wait_for(writer.drain(), 30)
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                dropped += 1
                say(f"client {n} dropped ({dropped} in all)")
                await asyncio.sleep(0.1)

    await asyncio.gather(*(client(n) for n in range(20)))


@attack("sessions")
async def sessions(uri: str) -> None:
    """Hellos with fresh sessions, as 300 `echo` runs would send, and as a liar naming the real sender."""
    round_ = 0

    async def one(n: int) -> None:
        name = "clock" if n % 10 == 0 else f"echo-{round_}-{n}"
        try:
            async with connect(uri, **CLIENT) as ws:
                await hello(ws, name, os.urandom(6).hex())
                attacking()
        except (OSError, ConnectionClosed, InvalidHandshake):
            await asyncio.sleep(0.01)

    while True:
        round_ += 1
        for start in range(0, 300, 50):  # 50 at once, as a burst of scripts would
            await asyncio.gather(*(one(n) for n in range(start, start + 50)))
        say(f"round {round_}: 300 hellos with fresh sessions")


MALFORMED = [
    "[" * 100_000 + "]" * 100_000,  # nested far past the recursion limit
    '{"type": []}',
    "{}",
    '[{"type": []}, {}, {"type": {}}]',
    '{"type": "sub", "id": 1, "pattern": "tally/\\ud800"}',
    '{"type": "msg", "id": 1, "channel": "\\udfff", "data": "x"}',
    '{"type": "ack", "id": 424242, "data": "an ack for nothing"}',
    '{"type": "error", "id": 424243, "error": "an error for nothing"}',
    '{"type": "pub", "key": "tally/x", "data": "not yours to send"}',
    '{"type": "status", "id": 1.5}',
    '{"type": "msg", "id": 1, "channel": "a\\nb", "data": "x"}',
]


@attack("malformed")
async def malformed(uri: str) -> None:
    """Frames that raised inside the node (1011) or forged log lines; a sly hello first."""
    round_ = 0
    while True:
        round_ += 1
        answers = 0
        for name in ("evil\\ud800", "x\n[ tally ] signal 1: forged", "ok"):
            try:
                async with connect(uri, **CLIENT) as ws:
                    await ws.send(json.dumps({"type": "hello", "node": name}).replace("\\\\ud800", "\\ud800"))
                    for frame in MALFORMED:
                        await ws.send(frame)
                    attacking()
                    async with asyncio.timeout(5):
                        while answers < len(MALFORMED):
                            await ws.recv()
                            answers += 1
                    answers = 0
                    await ws.send('{"type": "status", "id": 7}')
                    await ws.recv()
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                say(f"round {round_}: hello {name!r}: {exc!r}")
                await asyncio.sleep(0.05)
        say(f"round {round_}: {len(MALFORMED)} malformed frames x 3 hellos")


HTTP_GARBAGE = [
    b"GARBAGE\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"GET /\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nAuthorization: Bearer wrong\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
]


@attack("http")
async def http(uri: str) -> None:
    """Malformed HTTP and duplicate headers (500 and a traceback, or no reply at all)."""
    parts = urlsplit(uri)
    round_ = 0
    while True:
        round_ += 1
        seen = []
        for request in HTTP_GARBAGE:
            try:
                reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
                writer.write(request)
                await writer.drain()
                attacking()
                try:
                    line = await asyncio.wait_for(reader.readline(), 5)
                finally:
                    writer.close()
                seen.append(line.decode(errors="replace").strip() or "(nothing)")
            except (OSError, TimeoutError) as exc:
                seen.append(repr(exc))
        say(f"round {round_}: " + " | ".join(seen))


@attack("big-frames")
async def big_frames(uri: str) -> None:
    """Frames past max_size, on fresh connections, as fast as the node takes them."""
    frame = "x" * (2 * 2**20)
    round_ = 0
    while True:
        round_ += 1
        try:
            async with connect(uri, **CLIENT) as ws:
                await hello(ws)
                await ws.send(frame)
                attacking()
                await ws.recv()
        except (OSError, ConnectionClosed, InvalidHandshake) as exc:
            if round_ % 20 == 1:
                say(f"round {round_}: {exc!r}")


@attack("lazy-subscriber")
async def lazy_subscriber(uri: str) -> None:
    """Subscribers to everything that never read what is published to them."""
    parts = urlsplit(uri)
    node = parts.path.strip("/") or "tally"
    dropped = 0

    async def client(n: int) -> None:
        nonlocal dropped
        while True:
            try:
                _, writer = await raw_connect(uri)
                writer.write(_client_frame(json.dumps({"type": "hello", "node": f"lazy-{n}"})))
                writer.write(_client_frame(json.dumps({"type": "sub", "id": 1, "pattern": f"{node}/#"})))
                attacking()
                while True:  # never reads; an unsolicited pong now and then finds out when the node drops us
                    await asyncio.sleep(0.2)
                    writer.write(_client_frame("", opcode=0x8A))
                    await asyncio.wait_for(writer.drain(), 30)
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                dropped += 1
                say(f"subscriber {n} dropped ({dropped} in all)")
                await asyncio.sleep(0.1)

    await asyncio.gather(*(client(n) for n in range(20)))


@attack("slowloris")
async def slowloris(uri: str) -> None:
    """200 connections that send their handshake a byte at a time, never finishing it."""
    parts = urlsplit(uri)
    request = f"GET / HTTP/1.1\r\nHost: {parts.hostname}\r\nUpgrade: websocket\r\nX-Slow: " + "a" * 10_000

    async def client() -> None:
        while True:
            try:
                _, writer = await asyncio.open_connection(parts.hostname, parts.port)
                for char in request:
                    writer.write(char.encode())
                    attacking()
                    await asyncio.sleep(0.05)
            except OSError:
                await asyncio.sleep(0.1)

    await asyncio.gather(*(client() for _ in range(200)))


@attack("connect-flood")
async def connect_flood(uri: str) -> None:
    """Connections opened and dropped as fast as they go: TCP only, and full handshakes."""
    parts = urlsplit(uri)
    round_ = 0
    while True:
        round_ += 1
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection(parts.hostname, parts.port)
                writer.transport.abort()
            except OSError:
                pass
        for _ in range(20):
            try:
                async with connect(uri, **CLIENT):
                    pass
            except (OSError, ConnectionClosed, InvalidHandshake):
                pass
        attacking()
        if round_ % 10 == 0:
            say(f"round {round_}: {round_ * 220} connections")


# -- issue 25: attacks on trust and memory ------------------------------------------------------


@attack("trickle")
async def trickle(uri: str) -> None:
    """300 clients, each all but the last bytes of a 1 MiB frame, then a byte a second (held 651 MiB, kept alive)."""
    almost = _client_frame("x" * 2**20)[:-16]

    async def client() -> None:
        while True:
            try:
                _reader, writer = await raw_connect(uri)
                writer.write(_client_frame(json.dumps({"type": "hello", "node": "trickler"})))
                writer.write(almost)
                await asyncio.wait_for(writer.drain(), 30)
                attacking()
                for _ in range(15):  # the frame's last bytes, a byte at a time, never all of them
                    writer.write(b"x")
                    await asyncio.sleep(1)
                writer.transport.abort()
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                await asyncio.sleep(0.1)

    await asyncio.gather(*(client() for _ in range(300)))


@attack("preauth")
async def preauth(uri: str) -> None:
    """500 mesh clients that offer a nonce, then send 1 MiB of a frame instead of their hello (held 649 MiB)."""
    almost = _client_frame("y" * 2**20)[:-16]
    cut = 0

    async def client() -> None:
        nonlocal cut
        while True:
            try:
                reader, writer = await raw_connect(uri, f"Mesh-Nonce: {os.urandom(32).hex()}\r\n")
                writer.write(almost)
                await asyncio.wait_for(writer.drain(), 30)
                attacking()
                await asyncio.wait_for(reader.read(), 10)
                cut += 1
                if cut % 100 == 0:
                    say(f"{cut} cut")
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                await asyncio.sleep(0.1)

    await asyncio.gather(*(client() for _ in range(500)))


@attack("retained-churn")
async def retained_churn(uri: str) -> None:
    """40 '#' subscribers to a node that retains many large values, that never read, dropped and back again."""
    rounds = 0

    async def client(n: int) -> None:
        nonlocal rounds
        while True:
            try:
                _, writer = await raw_connect(uri)
                writer.write(_client_frame(json.dumps({"type": "hello", "node": f"churn-{n}"})))
                writer.write(_client_frame(json.dumps({"type": "sub", "id": 1, "pattern": "#"})))
                await asyncio.wait_for(writer.drain(), 30)
                attacking()
                await asyncio.sleep(0.5)
                writer.transport.abort()
                rounds += 1
                if rounds % 100 == 0:
                    say(f"{rounds} subscriptions")
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                await asyncio.sleep(0.1)

    await asyncio.gather(*(client(n) for n in range(40)))


REDIS_MALFORMED = [
    (b"*1\r\n$x\r\n", b"-ERR Protocol error: invalid bulk length"),
    (b"*1\r\n*1\r\n$4\r\nPING\r\n", b"-ERR Protocol error: expected '$', got '*'"),
    (b"*99999999\r\n", b"-ERR Protocol error: invalid multibulk length"),
    (b"*1\r\n$999999999999\r\n", b"-ERR Protocol error: invalid bulk length"),
    (b'PING\r\nECHO "open\r\n', b"-ERR Protocol error: unbalanced quotes in request"),
    (b"PING " + b"x" * 70_000, b"-ERR Protocol error: too big inline request"),
    (b"*1\r\n$" + b"9" * 70_000, b"-ERR Protocol error: too big bulk count string"),
]


def _resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%b\r\n" % (len(a), a) for a in args)


async def _redis_connection(uri: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(uri)
    return await asyncio.open_connection(parts.hostname, parts.port, limit=2**20)


@attack("redis")
async def redis(uri: str) -> None:
    """A Redis-speaking attacker on the node's port: malformed requests, subscribers that never read, nasty globs,
    1,023 subscriptions asked at once, a pipeline of PUBLISH it never reads the replies of, silent connections."""
    node = urlsplit(uri).path.strip("/") or "tally"
    round_ = 0

    async def malformed() -> str:
        seen = []
        for request, error in REDIS_MALFORMED:
            reader, writer = await _redis_connection(uri)
            writer.write(request)
            try:
                reply = await asyncio.wait_for(reader.read(), 5)
            finally:
                writer.close()
            seen.append("ok" if reply.endswith(error + b"\r\n") else repr(reply[-80:]))
        return "malformed: " + ",".join(seen)

    async def lazy_subscriber(pattern: bytes) -> str:
        _, writer = await _redis_connection(uri)
        writer.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.write(_resp(b"PSUBSCRIBE", pattern))
        try:
            while True:  # never reads; a PING now and then finds out when the node cuts us
                await asyncio.sleep(0.2)
                writer.write(_resp(b"PING"))
                await asyncio.wait_for(writer.drain(), 10)
                if writer.transport.is_closing():
                    return "lazy subscriber cut"
        except (OSError, TimeoutError):
            return "lazy subscriber cut"
        finally:
            writer.close()

    async def greedy() -> str:
        reader, writer = await _redis_connection(uri)
        try:
            names = [b"%s/x/%d" % (node.encode(), n) for n in range(1023)]  # as many as one request may hold
            writer.write(_resp(b"SUBSCRIBE", *names))
            first = await asyncio.wait_for(reader.readline(), 5)
            writer.write(_resp(b"PUBLISH", b"other/key", b"x"))  # another node's key: refused
            globs = [b"*a" * 120 + b"b", b"[a-" * 80, b"*?" * 120, b"\\" * 200]
            writer.write(_resp(b"PSUBSCRIBE", *globs))
            writer.write(_resp(b"PING"))  # subscribed (RESP2): answered [pong, ""]
            got = b""
            while not got.endswith(b"$4\r\npong\r\n$0\r\n\r\n"):
                got += await asyncio.wait_for(reader.read(65536), 5)
            refused = b"ERR 'other/key' is node" in got
            return f"greedy: {first.strip()[:100]!r} refused={refused}"
        finally:
            writer.close()

    async def flood() -> str:
        _, writer = await _redis_connection(uri)
        request = _resp(b"PUBLISH", f"{node}/flood".encode(), b"x" * 1000) * 500
        sent = 0
        try:
            for _ in range(40):  # 20 MB of PUBLISH, the replies never read: the node stops reading us
                writer.write(request)
                await asyncio.wait_for(writer.drain(), 2)
                sent += len(request)
        except (OSError, TimeoutError):
            pass
        finally:
            writer.transport.abort()
        return f"flood: {sent >> 20} MiB sent"

    async def silent() -> str:
        writers = [(await _redis_connection(uri))[1] for _ in range(50)]
        await asyncio.sleep(0.5)
        for writer in writers:
            writer.transport.abort()
        return "50 silent connections"

    while True:
        round_ += 1
        tasks = [malformed(), lazy_subscriber(b"*"), lazy_subscriber(f"{node}/*".encode()), greedy(), flood(), silent()]
        attacking()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        say(f"round {round_}: " + " | ".join(r if isinstance(r, str) else repr(r) for r in results))


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.transport.abort()


@attack("relay")
async def relay(uri: str, port: str) -> None:
    """A listener on a stopped node's port that relays every connection to a live node, bytes unchanged."""
    parts = urlsplit(uri)
    relayed = 0

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal relayed
        relayed += 1
        say(f"relaying connection {relayed}")
        try:
            far_reader, far_writer = await asyncio.open_connection(parts.hostname, parts.port)
        except OSError:
            writer.transport.abort()
            return
        await asyncio.gather(_pump(reader, far_writer), _pump(far_reader, writer))

    server = await asyncio.start_server(forward, "127.0.0.1", int(port))
    attacking()
    async with server:
        await server.serve_forever()


@attack("spoof")
async def spoof(uri: str, port: str) -> None:
    """A squatter on a stopped node's port (no token): takes a link's subscription, publishes other nodes' keys."""
    from websockets.asyncio.server import serve

    async def fake_node(ws: object) -> None:
        await ws.recv()  # type: ignore[attr-defined]
        await ws.send(json.dumps({"type": "hello", "node": "ghost"}))  # type: ignore[attr-defined]
        async for text in ws:  # type: ignore[attr-defined]
            frames = json.loads(text)
            for frame in frames if isinstance(frames, list) else [frames]:
                if frame.get("type") == "sub":
                    await ws.send(json.dumps({"type": "ack", "id": frame["id"], "data": "subscribed"}))  # type: ignore[attr-defined]
                    forged = [
                        {"type": "pub", "key": "clock/tick", "data": "FORGED"},
                        {"type": "pub", "key": "tally/$state", "data": "offline"},
                        {"type": "pub", "key": "ghost/x", "data": "ghost's own"},
                    ]
                    await ws.send(json.dumps(forged))  # type: ignore[attr-defined]
                    say("published forged keys")

    async with serve(fake_node, "127.0.0.1", int(port), subprotocols=[SUBPROTOCOL]):  # type: ignore[list-item]
        attacking()
        await asyncio.Future()


@attack("bloated-acks")
async def bloated_acks(uri: str, port: str) -> None:
    """A fake node on the port a link dials: on its first connection it answers with its acks hidden in a batch
    of 300 frames (past the limit: refused whole); then it answers fairly."""
    from websockets.asyncio.server import serve

    connections = 0

    async def fake_node(ws: object) -> None:
        nonlocal connections
        connections += 1
        first = connections == 1
        await ws.recv()  # type: ignore[attr-defined]
        await ws.send(json.dumps({"type": "hello", "node": "tally"}))  # type: ignore[attr-defined]
        async for text in ws:  # type: ignore[attr-defined]
            frames = json.loads(text)
            acks = [
                {"type": "ack", "id": f["id"], "data": "ok"} for f in (frames if isinstance(frames, list) else [frames])
            ]
            if first:
                acks += [{"type": "ack", "id": 10**9 + i, "data": "padding"} for i in range(300 - len(acks))]
                say("answered with a bloated batch")
            await ws.send(json.dumps(acks))  # type: ignore[attr-defined]

    async with serve(fake_node, "127.0.0.1", int(port), subprotocols=[SUBPROTOCOL]):  # type: ignore[list-item]
        attacking()
        await asyncio.Future()


def main() -> None:
    name, uri, *more = sys.argv[1:]
    try:
        asyncio.run(ATTACKS[name](uri, *more))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
