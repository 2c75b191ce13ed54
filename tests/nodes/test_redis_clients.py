"""Real Redis clients against nodes in this test's event loop: redis-cli (a process of its own) and redis-py.

What the issue asks of them: PING, SUBSCRIBE, PSUBSCRIBE, PUBLISH, AUTH and --tls with redis-cli;
redis-py's asyncio PubSub on RESP2 and RESP3 (and its default, which says HELLO 3 and CLIENT
SETINFO on connect); a subscriber that does not read, cut at its output limit while the node
serves on. The whole circuit through ``./arduino.py up`` is ``tests/test_redis_cli.py``.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ResponseError

from mesh.grid import build_grid, read_grid
from nodes import FactoryLoop, reactive
from nodes.runtime import Node, open_together
from tests.certs import TLS_YAML, write_certs
from tests.helpers import DEADLINE, fast_backoff, until, write_grid
from tests.redis_servers import Cli, needs_redis, redis_cli

pytestmark = pytest.mark.e2e


class Quiet(FactoryLoop):
    @reactive
    async def loop(self, channel: str, message: str) -> str:
        return f"heard {message}"


@pytest.fixture
async def circuit() -> AsyncIterator[dict[str, Node]]:
    needs_redis()
    grid = build_grid({"buzzer": {"sketch": "quiet", "port": 0}, "iopin": {"sketch": "quiet", "port": 0}})
    nodes = {name: Node(Quiet, name, grid, reconnect_delays=fast_backoff) for name in grid.nodes}
    await open_together(nodes)
    for node in nodes.values():
        node.begin()
    try:
        yield nodes
    finally:
        for node in nodes.values():
            await node.stop()


async def test_redis_cli_ping_echo_and_an_unknown_command(circuit):
    port = circuit["buzzer"].port
    assert await redis_cli("PING", port=port) == "PONG\n"
    assert await redis_cli("ECHO", "hi there", port=port) == "hi there\n"
    assert await redis_cli("GET", "key", port=port) == "ERR unknown command 'GET', with args beginning with: 'key' \n\n"


async def test_redis_cli_subscribe_psubscribe_and_publish(circuit):
    buzzer, iopin = circuit["buzzer"], circuit["iopin"]
    channel = await Cli.start(buzzer.port, "SUBSCRIBE", "buzzer/alarm")
    pattern = await Cli.start(buzzer.port, "PSUBSCRIBE", "iopin/*", "*/alarm")
    try:
        await channel.expect(rb"subscribe\nbuzzer/alarm\n1\n")
        await pattern.expect(rb"psubscribe\n\*/alarm\n2\n")
        assert await redis_cli("PUBLISH", "buzzer/alarm", "on", port=buzzer.port) == "2\n"
        await channel.expect(rb"message\nbuzzer/alarm\non\n")
        await pattern.expect(rb"pmessage\n\*/alarm\nbuzzer/alarm\non\n")
        await until(lambda: len(iopin.hub.index) == 2, "the buzzer's covers at the iopin")
        await iopin.sender.publish("pin", 1)
        await pattern.expect(rb"pmessage\niopin/\*\niopin/pin\n1\n")
        assert await redis_cli("PUBSUB", "NUMPAT", port=buzzer.port) == "2\n"
        assert await redis_cli("PUBLISH", "iopin/pin", "1", port=buzzer.port) == (
            "ERR 'iopin/pin' is node 'iopin''s key: a Redis client publishes under the node it is connected to,"
            " buzzer/<topic> here; publish on 'iopin''s port\n\n"
        )
    finally:
        await channel.aclose()
        await pattern.aclose()


async def test_redis_cli_resp3_subscriber(circuit):
    port = circuit["buzzer"].port
    subscriber = await Cli.start(port, "-3", "SUBSCRIBE", "buzzer/x")
    try:
        await subscriber.expect(rb"subscribe\nbuzzer/x\n1\n")
        assert await redis_cli("PUBLISH", "buzzer/x", "v", port=port) == "1\n"
        await subscriber.expect(rb"message\nbuzzer/x\nv\n")
    finally:
        await subscriber.aclose()


async def test_redis_cli_auth_with_the_grids_token():
    needs_redis()
    grid = build_grid({"buzzer": {"sketch": "quiet", "port": 0}}, auth_token_env="MESH_TOKEN")
    node = Node(Quiet, "buzzer", grid, token="sekret")
    await node.start()
    try:
        port = node.port
        assert port is not None
        assert await redis_cli("PING", port=port) == "NOAUTH Authentication required.\n\n"
        assert await redis_cli("-a", "sekret", "--no-auth-warning", "PING", port=port) == "PONG\n"
        assert await redis_cli("-3", "-a", "sekret", "--no-auth-warning", "PING", port=port) == "PONG\n"
        wrong = await redis_cli("-a", "nope", "--no-auth-warning", "PING", port=port)
        assert "WRONGPASS invalid username-password pair or user is disabled." in wrong
        for protocol in (2, 3):
            client = aredis.Redis(port=port, password="sekret", protocol=protocol)
            assert await client.ping() is True
            await client.aclose()
            wrong_client = aredis.Redis(port=port, password="nope", protocol=protocol, retry=Retry(NoBackoff(), 0))
            with pytest.raises((AuthenticationError, ResponseError)):
                await wrong_client.ping()
            await wrong_client.aclose()
    finally:
        await node.stop()


async def test_redis_cli_over_the_grids_tls(tmp_path: Path):
    """A grid with tls: redis-cli --tls --cacert on the node's port, a websocket over wss:// beside it."""
    needs_redis()
    write_certs(tmp_path)
    grid = read_grid(write_grid(tmp_path, TLS_YAML + "nodes:\n  buzzer: {sketch: buzzer, port: 0}\n"))
    from sketches.buzzer import Buzzer

    node = Node(Buzzer, "buzzer", grid)
    await node.start()
    tls = ["--tls", "--cacert", str(tmp_path / "ca.pem"), "-h", "localhost"]
    try:
        port = node.port
        assert port is not None
        assert await redis_cli(*tls, "PING", port=port) == "PONG\n"
        subscriber = await Cli.start(port, *tls, "SUBSCRIBE", "buzzer/sound")
        try:
            await subscriber.expect(rb"subscribe\nbuzzer/sound\n1\n")
            client = aredis.Redis(host="localhost", port=port, ssl=True, ssl_ca_certs=str(tmp_path / "ca.pem"))
            assert await client.publish("buzzer/sound", "psst") == 1
            await client.aclose()
            await subscriber.expect(rb"message\nbuzzer/sound\npsst\n")
        finally:
            await subscriber.aclose()
        assert "PONG" not in await redis_cli("PING", port=port)  # plain RESP on a TLS port: nothing served
    finally:
        await node.stop()


@pytest.mark.parametrize("protocol", [2, 3, None], ids=["resp2", "resp3", "default"])
async def test_redis_py_pubsub(circuit, protocol):
    """redis-py's asyncio PubSub: HELLO 3 by default, CLIENT SETINFO (and MAINT_NOTIFICATIONS, refused) on connect."""
    buzzer, iopin = circuit["buzzer"], circuit["iopin"]
    options = {} if protocol is None else {"protocol": protocol}
    client = aredis.Redis(port=buzzer.port, **options)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe("buzzer/sound")
        await pubsub.psubscribe("iopin/*")
        first = await pubsub.get_message(timeout=DEADLINE)
        second = await pubsub.get_message(timeout=DEADLINE)
        assert (first["type"], first["data"]) == ("subscribe", 1)
        assert (second["type"], second["data"]) == ("psubscribe", 2)
        assert await client.publish("buzzer/sound", "buzz") == 1
        message = await pubsub.get_message(timeout=DEADLINE)
        assert message == {"type": "message", "pattern": None, "channel": b"buzzer/sound", "data": b"buzz"}
        await until(lambda: len(iopin.hub.index) == 1, "the buzzer's iopin/# at the iopin")
        assert await iopin.sender.publish("pin", 1) == 1
        message = await pubsub.get_message(timeout=DEADLINE)
        assert message == {"type": "pmessage", "pattern": b"iopin/*", "channel": b"iopin/pin", "data": b"1"}
        assert await client.pubsub_numsub("buzzer/sound") == [(b"buzzer/sound", 1)]
        assert await client.pubsub_numpat() == 1
        assert await client.pubsub_channels() == [b"buzzer/sound"]
        await pubsub.ping()  # subscribed: RESP2 answers [pong, ""], RESP3 +PONG
        pong = await pubsub.get_message(timeout=DEADLINE)
        assert pong is not None and pong["type"] == "pong"
        await pubsub.unsubscribe()
        assert (await pubsub.get_message(timeout=DEADLINE))["type"] == "unsubscribe"
        assert buzzer.redis is not None
        session = next(s for s in buzzer.redis.registry.sessions.values() if s.patterns)
        assert session.proto == (protocol or 3)
        assert session.lib_name == b"redis-py"
    finally:
        await pubsub.aclose()
        await client.aclose()


async def test_a_subscriber_that_does_not_read_is_cut_and_the_node_serves_on(circuit):
    """Past its output limit (1 MiB, with the kernel's buffers before it) the subscriber is closed and PUBLISH stops
    counting it; the publisher, the node and another subscriber go on."""
    buzzer = circuit["buzzer"]
    assert buzzer.redis is not None
    slow = socket.create_connection(("127.0.0.1", buzzer.port))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(b"SUBSCRIBE buzzer/firehose\r\n")  # and never reads
    try:
        await until(lambda: buzzer.redis.registry.numsub(b"buzzer/firehose") == 1, "the slow subscriber")
        client = aredis.Redis(port=buzzer.port, protocol=2)
        payload = os.urandom(48 * 1024).hex()[: 64 * 1024]
        counts: list[int] = []
        async with asyncio.timeout(DEADLINE):
            while not counts or counts[-1]:
                counts.append(await client.publish("buzzer/firehose", payload))
        assert counts[0] == 1 and counts[-1] == 0 and len(counts) < 400
        assert buzzer.redis.registry.too_slow == 1
        assert await client.ping() is True
        await client.aclose()
    finally:
        slow.close()
