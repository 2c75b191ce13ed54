"""Redis clients on a node's own port (nodes.redis): nodes in this test's event loop on port 0, raw sockets.

The clients here are raw sockets speaking RESP, so that each byte is the test's; redis-cli and
redis-py against the same nodes are in ``test_redis_clients.py`` (e2e).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect

from mesh.grid import Grid, build_grid
from nodes import FactoryLoop, reactive
from nodes.runtime import Node, open_together
from tests.helpers import DEADLINE, fast_backoff, until
from tests.redis_servers import read_all


class Quiet(FactoryLoop):
    """Publishes when asked; answers each message with what it heard."""

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        return f"heard {message}"


async def start(grid: Grid) -> dict[str, Node]:
    nodes = {name: Node(Quiet, name, grid, reconnect_delays=fast_backoff) for name in grid.nodes}
    await open_together(nodes)
    for node in nodes.values():
        node.begin()
    return nodes


@pytest.fixture
async def circuit() -> AsyncIterator[dict[str, Node]]:
    """Two nodes with a port, ``buzzer`` and ``iopin``, and a port-less ``watcher``."""
    grid = build_grid(
        {
            "buzzer": {"sketch": "quiet", "port": 0},
            "iopin": {"sketch": "quiet", "port": 0},
            "watcher": {"sketch": "quiet"},
        }
    )
    nodes = await start(grid)
    try:
        yield nodes
    finally:
        for node in nodes.values():
            await node.stop()


class Client:
    """A Redis client on a raw socket: requests as bytes, replies read up to what the test expects."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def to(cls, node: Node) -> Client:
        assert node.port is not None
        return cls(*await asyncio.open_connection("127.0.0.1", node.port))

    async def say(self, data: bytes, expect: bytes) -> None:
        """Send ``data``; read exactly ``expect`` back."""
        self.writer.write(data)
        assert await asyncio.wait_for(self.reader.readexactly(len(expect)), DEADLINE) == expect

    async def expect(self, data: bytes) -> None:
        assert await asyncio.wait_for(self.reader.readexactly(len(data)), DEADLINE) == data

    async def expect_each(self, *frames: bytes) -> None:
        """Each of ``frames``, in the order of their covers (a publication reaches each cover's subscriptions in turn)."""
        got = await asyncio.wait_for(self.reader.readexactly(sum(map(len, frames))), DEADLINE)
        assert sorted(got.split(b"*")) == sorted(b"".join(frames).split(b"*"))

    def close(self) -> None:
        self.writer.close()


def message(channel: str, data: str) -> bytes:
    c, d = channel.encode(), data.encode()
    return b"*3\r\n$7\r\nmessage\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(c), c, len(d), d)


def pmessage(pattern: str, channel: str, data: str) -> bytes:
    p, c, d = pattern.encode(), channel.encode(), data.encode()
    return b"*4\r\n$8\r\npmessage\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(p), p, len(c), c, len(d), d)


def subscribed(kind: str, name: str, count: int) -> bytes:
    n = name.encode()
    return b"*3\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n:%d\r\n" % (len(kind), kind.encode(), len(n), n, count)


async def test_redis_and_websockets_on_one_port(circuit):
    """PING inline and as an array, a websocket on the same port meanwhile; the websocket path is the node's own."""
    buzzer = circuit["buzzer"]
    redis = await Client.to(buzzer)
    await redis.say(b"PING\r\n", b"+PONG\r\n")
    async with connect(f"ws://{buzzer.address}/") as ws:
        await ws.send("1")
        assert await asyncio.wait_for(ws.recv(), DEADLINE) == "heard 1"
        await redis.say(b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n", b"$2\r\nhi\r\n")
    await redis.say(b"GET key\r\n", b"-ERR unknown command 'GET', with args beginning with: 'key' \r\n")
    redis.close()


async def test_an_http_request_is_still_the_nodes(circuit):
    """What is not a Redis client's first bytes is HTTP's, answered as before (the 426 of a plain GET)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", circuit["buzzer"].port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    reply = await read_all(reader)
    writer.close()
    assert reply.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")


async def test_subscribe_to_another_nodes_key_across_the_grid(circuit):
    """A client of the buzzer subscribes to the iopin's keys: the buzzer subscribes at the iopin on its behalf."""
    redis = await Client.to(circuit["buzzer"])
    await redis.say(b"SUBSCRIBE iopin/pin\r\n", subscribed("subscribe", "iopin/pin", 1))
    await redis.say(b"PSUBSCRIBE i*\r\n", subscribed("psubscribe", "i*", 2))
    await until(lambda: len(circuit["iopin"].hub.index) == 2, "both covers held at the iopin")
    assert await circuit["iopin"].sender.publish("pin", 1) == 1  # one connection: the buzzer's link
    await redis.expect_each(message("iopin/pin", "1"), pmessage("i*", "iopin/pin", "1"))
    await redis.say(
        b"UNSUBSCRIBE\r\nPUNSUBSCRIBE\r\n",
        subscribed("unsubscribe", "iopin/pin", 1) + subscribed("punsubscribe", "i*", 0),
    )
    await until(lambda: not circuit["iopin"].hub.index, "the covers dropped at the iopin")
    redis.close()


async def test_publish_reaches_mesh_subscribers_and_redis_subscribers_and_counts_them(circuit):
    """PUBLISH under the node's own name goes through its publish path: a mesh subscriber and two Redis ones."""
    buzzer, watcher = circuit["buzzer"], circuit["watcher"]
    heard: list[tuple[str, str]] = []
    assert await watcher.subscribe("buzzer/#", lambda key, data: heard.append((key, data))) == 1
    one, two = await Client.to(buzzer), await Client.to(buzzer)
    await one.say(b"SUBSCRIBE buzzer/alarm\r\n", subscribed("subscribe", "buzzer/alarm", 1))
    await two.say(b"PSUBSCRIBE *\r\n", subscribed("psubscribe", "*", 1))
    publisher = await Client.to(buzzer)
    await publisher.say(b"PUBLISH buzzer/alarm on\r\n", b":3\r\n")
    await one.expect(message("buzzer/alarm", "on"))
    await two.expect(pmessage("*", "buzzer/alarm", "on"))
    await until(lambda: heard == [("buzzer/alarm", "on")], "the mesh subscriber's delivery")
    assert await buzzer.sender.publish("sound", "buzz") == 2  # the sketch's own publications reach them too
    await two.expect(pmessage("*", "buzzer/sound", "buzz"))
    for client in (one, two, publisher):
        client.close()


async def test_the_sketchs_publications_reach_a_redis_subscriber_alone(circuit):
    """No mesh subscriber, no subscription of the sketch's: publish() still hands it to the Redis clients."""
    buzzer = circuit["buzzer"]
    redis = await Client.to(buzzer)
    await redis.say(b"SUBSCRIBE buzzer/sound\r\n", subscribed("subscribe", "buzzer/sound", 1))
    await until(lambda: "buzzer/sound" in buzzer.inbox.inline, "the cover held")
    assert await buzzer.sender.publish("sound", "buzz") == 1
    await redis.expect(message("buzzer/sound", "buzz"))
    redis.close()


@pytest.mark.parametrize(
    ("request_bytes", "reply"),
    [
        (
            b"PUBLISH iopin/pin 1\r\n",
            b"-ERR 'iopin/pin' is node 'iopin''s key: a Redis client publishes under the node it is connected to,"
            b" buzzer/<topic> here; publish on 'iopin''s port\r\n",
        ),
        (
            b"PUBLISH buzzer x\r\n",
            b"-ERR 'buzzer' is not a mesh key (a key is <node>/<topic>); this node publishes buzzer/<topic>\r\n",
        ),
        (
            b"PUBLISH buzzer/$state offline\r\n",
            b"-ERR invalid topic '$state': topics starting with '$' are the runtime's (buzzer/$state,"
            b" buzzer/$subscribers/...); publish on another name\r\n",
        ),
        (b'PUBLISH buzzer/x "\\xff"\r\n', b"-ERR the mesh carries text: the message is not UTF-8\r\n"),
    ],
    ids=["another-node", "not-a-key", "dollar", "not-utf-8"],
)
async def test_publish_refused_with_a_clear_error_and_the_connection_kept(circuit, request_bytes, reply):
    redis = await Client.to(circuit["buzzer"])
    await redis.say(request_bytes, reply)
    await redis.say(b"PING\r\n", b"+PONG\r\n")
    redis.close()


async def test_retained_values_come_with_each_new_subscription(circuit):
    """Presence ($state, retained): this node's at once, another node's when its publisher sends them."""
    redis = await Client.to(circuit["buzzer"])
    await redis.say(
        b"SUBSCRIBE buzzer/$state\r\n", subscribed("subscribe", "buzzer/$state", 1) + message("buzzer/$state", "online")
    )
    await redis.say(b"SUBSCRIBE iopin/$state\r\n", subscribed("subscribe", "iopin/$state", 2))
    await redis.expect(message("iopin/$state", "online"))
    second = await Client.to(circuit["buzzer"])  # a second client of a held cover: this node's retained at once
    await second.say(
        b"PSUBSCRIBE buzzer/$state\r\n",
        subscribed("psubscribe", "buzzer/$state", 1) + pmessage("buzzer/$state", "buzzer/$state", "online"),
    )
    redis.close()
    second.close()


async def test_star_does_not_match_dollar_keys(circuit):
    """'*' covers with '#', which no '$' topic matches (MQTT's rule): presence is not in '*'."""
    redis = await Client.to(circuit["buzzer"])
    await redis.say(b"PSUBSCRIBE *\r\n", subscribed("psubscribe", "*", 1))
    await until(lambda: len(circuit["iopin"].hub.index) == 1, "'#' held at the iopin")
    await circuit["iopin"].sender.publish("pin", 0)
    await redis.expect(pmessage("*", "iopin/pin", "0"))  # and no retained $state before it
    redis.close()


@pytest.mark.parametrize(
    ("request_bytes", "reply"),
    [
        (b"*1\r\n$x\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
        (b'PING\r\nECHO "open\r\n', b"+PONG\r\n-ERR Protocol error: unbalanced quotes in request\r\n"),
        (b"*1\r\n*1\r\n", b"-ERR Protocol error: expected '$', got '*'\r\n"),
        (b"*1\r\n$2000000\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),  # ours: 1 MiB
        (b"*2000\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),  # ours: 1,024 arguments
        (b"PING " + b"x" * 70_000, b"-ERR Protocol error: too big inline request\r\n"),
        (b"PING\r\nPOST / x\r\n", b"+PONG\r\n"),  # cross-protocol scripting: closed without a word, as Redis does
    ],
    ids=["bulk-length", "quotes", "nested", "bulk-too-long", "too-many-args", "inline-too-long", "post"],
)
async def test_malformed_requests_get_redis_errors_and_a_close_and_the_node_serves_on(circuit, request_bytes, reply):
    buzzer = circuit["buzzer"]
    reader, writer = await asyncio.open_connection("127.0.0.1", buzzer.port)
    writer.write(request_bytes)
    assert await read_all(reader) == reply
    writer.close()
    redis = await Client.to(buzzer)
    await redis.say(b"PING\r\n", b"+PONG\r\n")
    redis.close()


async def test_auth_with_the_grids_token():
    """Without the token only AUTH, HELLO and QUIT are served (Redis's requirepass); AUTH takes the token."""
    grid = build_grid({"buzzer": {"sketch": "quiet", "port": 0}}, auth_token_env="MESH_TOKEN")
    node = Node(Quiet, "buzzer", grid, token="sekret")
    await node.start()
    try:
        redis = await Client.to(node)
        await redis.say(b"PING\r\n", b"-NOAUTH Authentication required.\r\n")
        await redis.say(b"SUBSCRIBE buzzer/x\r\n", b"-NOAUTH Authentication required.\r\n")
        await redis.say(b"AUTH nope\r\n", b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
        await redis.say(b"AUTH sekret\r\nPING\r\n", b"+OK\r\n+PONG\r\n")
        redis.close()
    finally:
        await node.stop()


async def test_status_shows_the_redis_clients(circuit):
    buzzer = circuit["buzzer"]
    redis = await Client.to(buzzer)
    await redis.say(
        b"SUBSCRIBE buzzer/alarm\r\nPSUBSCRIBE iopin/*\r\n",
        subscribed("subscribe", "buzzer/alarm", 1) + subscribed("psubscribe", "iopin/*", 2),
    )
    report = json.loads(json.dumps(buzzer.status()))["redis"]
    assert report["clients"] == 1 and report["subscribers"] == 1 and report["subscriptions"] == 2
    assert report["channels"] == ["buzzer/alarm"] and report["patterns"] == ["iopin/*"]
    assert sorted(report["covers"]) == ["buzzer/alarm", "iopin/#"]
    assert "redis" not in circuit["watcher"].status()  # no port, no Redis clients
    redis.close()


async def test_stopping_the_node_closes_its_redis_clients():
    grid = build_grid({"buzzer": {"sketch": "quiet", "port": 0}})
    node = Node(Quiet, "buzzer", grid)
    await node.start()
    redis = await Client.to(node)
    await redis.say(b"SUBSCRIBE buzzer/x\r\n", subscribed("subscribe", "buzzer/x", 1))
    await node.stop()
    assert await read_all(redis.reader) == b""
    assert node.redis is not None and not node.redis.registry.sessions
    redis.close()


async def test_a_cover_the_sketch_subscribes_to_as_well_keeps_both(circuit):
    """The sketch's '#' and a Redis client's '*' (cover '#') at once: both hear; the client leaving keeps the sketch's."""
    buzzer, iopin = circuit["buzzer"], circuit["iopin"]
    heard: list[tuple[str, str]] = []
    assert await buzzer.subscribe("#", lambda key, data: heard.append((key, data))) == 1
    redis = await Client.to(buzzer)
    await redis.say(b"PSUBSCRIBE *\r\n", subscribed("psubscribe", "*", 1))
    assert await iopin.sender.publish("pin", 1) == 1  # one link, one subscription of '#'
    await redis.expect(pmessage("*", "iopin/pin", "1"))
    await until(lambda: heard == [("iopin/pin", "1")], "the sketch's delivery")
    await redis.say(b"PUNSUBSCRIBE\r\n", subscribed("punsubscribe", "*", 0))
    await until(lambda: "#" not in buzzer.inbox.inline, "the Redis clients' '#' dropped")
    assert await iopin.sender.publish("pin", 0) == 1  # the sketch's '#' still held at the iopin
    await until(lambda: heard[-1:] == [("iopin/pin", "0")], "the sketch's delivery")
    await buzzer.unsubscribe("#")
    await redis.say(b"PSUBSCRIBE *\r\n", subscribed("psubscribe", "*", 1))
    await until(lambda: len(iopin.hub.index) == 1, "'#' held again, for the Redis client alone")
    redis.close()


async def test_a_long_pipeline_runs_a_budget_of_commands_per_turn_and_all_of_it(circuit, monkeypatch):
    """A read of many commands runs COMMANDS_PER_TURN a turn, reading paused meanwhile; every one is answered."""
    monkeypatch.setattr("nodes.redis.COMMANDS_PER_TURN", 3)
    redis = await Client.to(circuit["buzzer"])
    await redis.say(b"PING\r\n" * 10 + b"ECHO end\r\n", b"+PONG\r\n" * 10 + b"$3\r\nend\r\n")
    await redis.say(b"PING\r\n", b"+PONG\r\n")
    redis.close()
