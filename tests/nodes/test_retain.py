"""Retained values and presence (``<node>/$state``), in this test's event loop, on real sockets."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from websockets.asyncio.client import connect

from mesh import protocol
from mesh.constants import LOST_AFTER
from mesh.errors import RetainLimit, TopicError
from mesh.grid import Grid, build_grid
from nodes import FactoryLoop, reactive
from nodes.hub import MAX_RETAINED, MAX_RETAINED_SIZE
from nodes.runtime import Node, open_together
from nodes.status import status_table
from tests.helpers import DEADLINE, MS, fast_backoff, free_ports, until


class Quiet(FactoryLoop):
    """Publishes when asked."""

    @reactive
    async def loop(self, channel: str, message: str) -> None:
        return None


class Moody(FactoryLoop):
    """Retains its mode as it starts (as a sketch restores what it shows)."""

    async def setup(self, mode: str = "auto") -> None:
        await self.publish("mode", mode, retain=True)

    @reactive
    async def loop(self, channel: str, message: str) -> None:
        return None


async def start(grid: Grid, *names: str, sketch: type[FactoryLoop] = Quiet) -> dict[str, Node]:
    nodes = {name: Node(sketch, name, grid, reconnect_delays=fast_backoff) for name in names or tuple(grid.nodes)}
    await open_together(nodes)
    for node in nodes.values():
        node.begin()
    return nodes


async def stop(nodes: dict[str, Node]) -> None:
    for node in nodes.values():
        await node.stop()


def collector() -> tuple[list[tuple[str, str]], Callable[[str, str], None]]:
    got: list[tuple[str, str]] = []
    return got, lambda key, data: got.append((key, data))


TWO = {"pub": {"sketch": "quiet", "port": 0}, "sub": {"sketch": "quiet", "port": 0}}


async def test_a_late_subscriber_gets_the_last_retained_value_at_once_then_what_follows():
    """Retained 1 then 2; a subscriber that comes later gets 2 (not 1), then the next publication."""
    nodes = await start(build_grid(TWO))
    try:
        pub, sub = nodes["pub"], nodes["sub"]
        await pub.sender.publish("pin", 1, retain=True)
        await pub.sender.publish("pin", 2, retain=True)
        await pub.sender.publish("noise", "not retained")
        got, on = collector()
        assert await sub.subscribe("pub/+", on) == 1
        await until(lambda: got, "the retained value")
        await pub.sender.publish("pin", 3)
        await until(lambda: len(got) == 2, "the next publication")
        assert got == [("pub/pin", "2"), ("pub/pin", "3")]
    finally:
        await stop(nodes)


async def test_the_retained_value_is_marked_retained_in_its_frame():
    """On the wire: the value a new sub gets carries "retained": true; a live publication does not."""
    nodes = await start(build_grid({"pub": {"sketch": "quiet", "port": 0}}))
    try:
        pub = nodes["pub"]
        await pub.sender.publish("pin", "1", retain=True)
        async with connect(f"ws://{pub.address}/", subprotocols=[protocol.SUBPROTOCOL]) as ws:
            await ws.send(protocol.encode(protocol.Hello(node="raw")))
            await ws.recv()  # hello
            await ws.send(protocol.encode(protocol.Subscribe(id=1, pattern="pub/pin")))
            frames = []
            while len(frames) < 2:
                frames.append(json.loads(await ws.recv()))
            assert {"type": "pub", "key": "pub/pin", "data": "1", "retained": True} in frames
            await pub.sender.publish("pin", "2", retain=True)
            assert json.loads(await ws.recv()) == {"type": "pub", "key": "pub/pin", "data": "2"}
    finally:
        await stop(nodes)


async def test_an_empty_retained_value_clears_the_key():
    """publish(topic, "", retain=True) forgets the key: a later subscriber gets only the keys still retained."""
    nodes = await start(build_grid(TWO))
    try:
        pub, sub = nodes["pub"], nodes["sub"]
        await pub.sender.publish("pin", "1", retain=True)
        await pub.sender.publish("mode", "auto", retain=True)
        await pub.sender.publish("pin", "", retain=True)
        got, on = collector()
        await sub.subscribe("pub/#", on)
        await pub.sender.publish("marker", "after")
        await until(lambda: ("pub/marker", "after") in got, "the marker")
        assert got == [("pub/mode", "auto"), ("pub/marker", "after")]
    finally:
        await stop(nodes)


async def test_a_nodes_own_subscription_gets_its_own_retained_values():
    """A node that subscribes to its own keys gets its retained values too, at once, to that handler only."""
    nodes = await start(build_grid({"pub": {"sketch": "quiet", "port": 0}}))
    try:
        pub = nodes["pub"]
        await pub.sender.publish("pin", "1", retain=True)
        first, on_first = collector()
        await pub.subscribe("pub/+", on_first)
        await until(lambda: first, "the first handler's retained value")
        second, on_second = collector()
        await pub.subscribe("pub/pin", on_second)
        await until(lambda: second, "the second handler's retained value")
        await pub.sender.publish("pin", "2")
        await until(lambda: len(second) == 2, "the live publication")
        assert first == [("pub/pin", "1"), ("pub/pin", "2")]  # not the retained value again
        assert second == [("pub/pin", "1"), ("pub/pin", "2")]
    finally:
        await stop(nodes)


async def test_retained_values_come_again_after_the_publisher_restarts():
    """The publisher restarts (its sketch retains its mode in setup): the subscriber re-subscribes and gets it."""
    (port,) = free_ports(1)
    grid = build_grid({"pub": {"sketch": "moody", "port": port}, "sub": {"sketch": "quiet"}})
    pub = Node(Moody, "pub", grid, reconnect_delays=fast_backoff)
    sub = Node(Quiet, "sub", grid, reconnect_delays=fast_backoff)
    await pub.start()
    await sub.start()
    try:
        got, on = collector()
        await sub.subscribe("pub/mode", on)
        await until(lambda: got == [("pub/mode", "auto")], "the retained mode")
        await pub.stop()
        pub = Node(Moody, "pub", grid, reconnect_delays=fast_backoff)
        await pub.start()
        await until(lambda: len(got) == 2, "the retained mode again")
        assert got == [("pub/mode", "auto")] * 2
    finally:
        await sub.stop()
        await pub.stop()


async def test_every_node_with_a_port_says_it_is_online():
    """+/$state: each node with a port has retained 'online' since it began serving; its own too."""
    grid = build_grid({**TWO, "third": {"sketch": "quiet", "port": 0}, "portless": {"sketch": "quiet"}})
    nodes = await start(grid)
    try:
        got, on = collector()
        await nodes["sub"].subscribe("+/$state", on)
        await until(lambda: len(got) == 3, "three states")
        assert sorted(got) == [("pub/$state", "online"), ("sub/$state", "online"), ("third/$state", "online")]
        others, on_other = collector()
        await nodes["sub"].subscribe("#", on_other)  # '#' does not stand for the '$' level (mesh.topics)
        await nodes["pub"].sender.publish("pin", "1")
        await until(lambda: others, "the publication")
        assert others == [("pub/pin", "1")]
        assert nodes["sub"].sender.links["pub"].presence == "online"
    finally:
        await stop(nodes)


async def test_a_clean_stop_says_offline_once_before_the_connection_closes():
    """A publisher that stops publishes 'offline' (retained) and flushes it; the subscriber hears it once."""
    nodes = await start(build_grid(TWO))
    pub, sub = nodes["pub"], nodes["sub"]
    try:
        got, on = collector()
        await sub.subscribe("pub/$state", on)
        await until(lambda: got == [("pub/$state", "online")], "online")
        await pub.stop()
        await until(lambda: len(got) == 2, "offline")
        assert got[1] == ("pub/$state", "offline")
        link = sub.sender.links["pub"]
        await until(lambda: link.state == "retrying", "the link to retry")  # it tried, and was refused
        received = sub.inbox.received
        assert link.presence == "offline" and got == [("pub/$state", "online"), ("pub/$state", "offline")]
        assert sub.inbox.received == received  # no synthetic 'offline' on top of the publisher's own
    finally:
        await sub.stop()


async def test_a_publisher_lost_without_a_word_is_offline_for_its_subscribers():
    """The publisher's connections cut and its port closed (no clean stop): the subscriber's handlers hear
    'offline' from the link itself, once, within LOST_AFTER; back up, the retained 'online' arrives."""
    (port,) = free_ports(1)
    grid = build_grid({"pub": {"sketch": "quiet", "port": port}, "sub": {"sketch": "quiet"}})
    pub = Node(Quiet, "pub", grid, reconnect_delays=fast_backoff)
    sub = Node(Quiet, "sub", grid, reconnect_delays=fast_backoff)
    await pub.start()
    await sub.start()
    try:
        got, on = collector()
        await sub.subscribe("pub/$state", on)
        await until(lambda: got == [("pub/$state", "online")], "online")
        # As SIGKILL does: no offline published; the listening socket closes, the connections are cut.
        assert pub.server is not None and pub.server.server is not None
        pub.server.stop_accepting()
        for connection in list(pub.server.server.connections):
            connection.transport.abort()
        await until(lambda: len(got) == 2, "offline")
        assert got[1] == ("pub/$state", "offline")
        assert sub.sender.links["pub"].presence == "offline"
        await pub.stop()
        pub = Node(Quiet, "pub", grid, reconnect_delays=fast_backoff)
        await pub.start()
        await until(lambda: len(got) == 3, "online again")
        assert got == [("pub/$state", s) for s in ("online", "offline", "online")]
    finally:
        await sub.stop()
        await pub.stop()
    assert LOST_AFTER * 1000 * MS <= DEADLINE  # the wait above covers the link's grace


async def test_status_shows_each_peers_presence_and_since_when():
    """status(): each link's presence as this node last saw it, and for how long; the table's PRESENCE column."""
    nodes = await start(build_grid(TWO))
    try:
        await nodes["sub"].subscribe("pub/pin", lambda key, data: None)
        link = nodes["sub"].status()["links"]["pub"]
        assert link["presence"] == "online" and 0 <= link["presence_for"] < DEADLINE
        report = {**nodes["sub"].status(), "state": "up"}
        table = status_table([report]).splitlines()
        assert table[0].split()[-2:] == ["PRESENCE", "LINKS"]
        assert "pub:online " in table[1] and table[1].endswith("pub:up")
    finally:
        await stop(nodes)


async def test_retained_values_are_bounded_with_a_clear_error():
    """Past MAX_RETAINED keys or MAX_RETAINED_SIZE bytes, publish(..., retain=True) raises and publishes nothing."""
    nodes = await start(build_grid({"pub": {"sketch": "quiet", "port": 0}}))
    try:
        pub = nodes["pub"]
        with pytest.raises(RetainLimit, match=f"a retained value holds at most {MAX_RETAINED_SIZE} bytes"):
            await pub.sender.publish("big", "x" * (MAX_RETAINED_SIZE + 1), retain=True)
        await pub.sender.publish("big", "x" * MAX_RETAINED_SIZE, retain=True)
        for i in range(MAX_RETAINED - 2):  # pub/$state is one
            await pub.sender.publish(f"k{i}", "v", retain=True)
        published = pub.sender.published
        with pytest.raises(RetainLimit, match=f"already retains {MAX_RETAINED} keys, the most it keeps"):
            await pub.sender.publish("one/more", "v", retain=True)
        assert pub.sender.published == published and "pub/one/more" not in pub.hub.retained
        await pub.sender.publish("k0", "", retain=True)  # an empty value clears a key: room for one
        await pub.sender.publish("one/more", "v", retain=True)
        await pub.sender.publish("k1", "replaced", retain=True)  # a key already retained takes a new value
    finally:
        await stop(nodes)


@pytest.mark.parametrize("topic", ["$state", "$subscribers/added", "$anything/else"])
async def test_a_sketch_cannot_publish_on_a_dollar_topic(topic: str):
    """Topics starting with '$' are the runtime's: a sketch's publish() raises a clear error."""
    nodes = await start(build_grid({"pub": {"sketch": "quiet", "port": 0}}))
    try:
        with pytest.raises(TopicError, match=r"topics starting with '\$' are the runtime's"):
            await nodes["pub"].sketch.publish(topic, "online", retain=True)
        await nodes["pub"].sketch.publish("pin/$x", "1")  # '$' deeper in a topic is an ordinary level
    finally:
        await stop(nodes)


async def test_subs_that_match_many_retained_values_count_against_the_reply_budget():
    """A batch of subs each matching 200 KB of retained values: the first is served, the rest get the reply cap."""
    nodes = await start(build_grid({"pub": {"sketch": "quiet", "port": 0}}))
    try:
        pub = nodes["pub"]
        for i in range(200):
            await pub.sender.publish(f"k{i}", "v" * 1000, retain=True)
        patterns = ["pub/#", "pub/+", "+/+", "+/#", "#"]
        frames = [protocol.encode(protocol.Hello(node="greedy"))]
        frames += [protocol.encode(protocol.Subscribe(id=i + 1, pattern=p)) for i, p in enumerate(patterns)]
        async with connect(f"ws://{pub.address}/", subprotocols=[protocol.SUBPROTOCOL], max_size=None) as ws:
            await ws.send(protocol.batch(frames))
            replies: list[dict] = []
            while not any(r.get("type") == "error" for r in replies):
                text = await ws.recv()
                body = json.loads(text)
                replies += [r for r in (body if isinstance(body, list) else [body]) if r.get("type") != "pub"]
            errors = [r["error"] for r in replies if r["type"] == "error"]
            assert errors == [
                "reply cap reached (4x the request + 4096 bytes): 4 frame(s) not answered; send fewer at once"
            ]
        assert len(pub.status()["subscribers"]) <= 1
    finally:
        await stop(nodes)
