"""Publish/subscribe across nodes in this test's event loop, on port 0."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from mesh.grid import Grid, build_grid
from mesh.topics import TopicError
from nodes import FactoryLoop, Node, open_together, reactive
from tests.helpers import MS, fast_backoff, until


class Quiet(FactoryLoop):
    """Publishes when asked; records what reaches its loop()."""

    def setup(self) -> None:
        self.heard: list[tuple[str, str]] = []

    @reactive
    async def loop(self, channel: str, message: str) -> None:
        self.heard.append((channel, message))


async def start(grid: Grid, *names: str) -> dict[str, Quiet]:
    """Start the named nodes (all by default): ports bound first and filled into the grid."""
    names = names or tuple(grid.nodes)
    nodes = {name: Node(Quiet, name, grid, reconnect_delays=fast_backoff) for name in names}
    await open_together(nodes)
    for node in nodes.values():
        node.begin()
    return nodes


async def stop(nodes) -> None:
    for node in nodes.values():
        await node.stop()


def collector() -> tuple[list[tuple[str, str]], Callable[[str, str], None]]:
    got: list[tuple[str, str]] = []
    return got, lambda key, data: got.append((key, data))


async def test_publish_returns_the_number_of_subscribers():
    """publish() counts the subscribers it handed the message to; none is 0, not an error."""
    grid = build_grid({"pub": {"sketch": "quiet", "port": 0}, "a": {"sketch": "quiet"}, "b": {"sketch": "quiet"}})
    nodes = await start(grid)
    try:
        pub, a, b = nodes["pub"], nodes["a"], nodes["b"]
        assert await pub.publish("pin", 1) == 0
        got_a, on_a = collector()
        got_b, on_b = collector()
        assert await a.subscribe("pub/pin", on_a) == 1
        assert await b.subscribe("+/pin", on_b) == 1
        assert await b.subscribe("pub/+", on_b) == 1  # two patterns, one subscriber
        assert await pub.publish("pin", 1) == 2
        assert await pub.publish("other", "x") == 1
        await until(lambda: len(got_b) == 2 and len(got_a) == 1, "deliveries")
        assert got_a == [("pub/pin", "1")]
        assert got_b == [("pub/pin", "1"), ("pub/other", "x")]  # once each, though two patterns match pub/pin
    finally:
        await stop(nodes)


async def test_a_node_without_a_port_publishes_to_nobody():
    """Nothing can reach a port-less node, so its publish() returns 0."""
    grid = build_grid({"lonely": {"sketch": "quiet"}, "ear": {"sketch": "quiet", "port": 0, "subscribe": ["#"]}})
    nodes = await start(grid)
    try:
        assert await nodes["lonely"].publish("pin", 1) == 0
    finally:
        await stop(nodes)


async def test_grid_subscriptions_arrive_at_loop_with_the_key_as_channel():
    """subscribe: in the grid delivers to loop(key, data), from every publisher a wildcard can match."""
    grid = build_grid(
        {
            "iopin": {"sketch": "quiet", "port": 0},
            "buzzer": {"sketch": "quiet", "port": 0},
            "meter": {"sketch": "quiet", "subscribe": ["+/pin", "buzzer/sound"]},
        }
    )
    nodes = await start(grid)
    try:
        iopin, buzzer, meter = nodes["iopin"], nodes["buzzer"], nodes["meter"]
        await until(lambda: iopin.hub.count == 1 and buzzer.hub.count == 2, "subscriptions in place")
        assert await iopin.publish("pin", 1) == 1
        assert await buzzer.publish("sound", "beep") == 1
        assert await buzzer.publish("pin", 0) == 1
        assert await buzzer.publish("other", 0) == 0
        await until(lambda: len(meter.sketch.heard) == 3, "three messages")
        assert sorted(meter.sketch.heard) == [("buzzer/pin", "0"), ("buzzer/sound", "beep"), ("iopin/pin", "1")]
    finally:
        await stop(nodes)


async def test_runtime_subscribe_with_sync_and_async_handlers_and_unsubscribe():
    """subscribe() takes sync or async handlers; unsubscribe() stops the flow at the publisher."""
    grid = build_grid({"pub": {"sketch": "quiet", "port": 0}, "sub": {"sketch": "quiet"}})
    nodes = await start(grid)
    try:
        pub, sub = nodes["pub"], nodes["sub"]
        got_sync, on_sync = collector()
        got_async: list[tuple[str, str]] = []

        async def on_async(key: str, data: str) -> None:
            await asyncio.sleep(0)
            got_async.append((key, data))

        await sub.subscribe("pub/a", on_sync)
        await sub.subscribe("pub/b", on_async)
        assert await pub.publish("a", "1") == 1
        assert await pub.publish("b", "2") == 1
        await until(lambda: got_sync and got_async, "both handlers")
        assert (got_sync, got_async) == ([("pub/a", "1")], [("pub/b", "2")])
        await sub.unsubscribe("pub/a")
        await until(lambda: pub.hub.count == 1, "unsubscribed at the publisher")
        assert await pub.publish("a", "3") == 0
        assert await pub.publish("b", "4") == 1
        await until(lambda: len(got_async) == 2, "b again")
        assert got_sync == [("pub/a", "1")]
    finally:
        await stop(nodes)


@pytest.mark.parametrize("pattern", ["a/#/b", "a+/b", "a//b", ""])
async def test_invalid_patterns_are_refused(pattern):
    """A pattern that breaks the wildcard rules raises TopicError before anything is sent."""
    grid = build_grid({"pub": {"sketch": "quiet", "port": 0}, "sub": {"sketch": "quiet"}})
    nodes = await start(grid)
    try:
        with pytest.raises(TopicError, match=r"^invalid pattern"):
            await nodes["sub"].subscribe(pattern, print)
        with pytest.raises(TopicError, match=r"^invalid topic"):
            await nodes["pub"].publish("pin/+", 1)
    finally:
        await stop(nodes)


async def test_subscriber_events_carry_pattern_name_and_count():
    """Each publisher announces $subscribers/added and /removed with the pattern, the subscriber and the count."""
    grid = build_grid({"pub": {"sketch": "quiet", "port": 0}, "watch": {"sketch": "quiet"}, "sub": {"sketch": "quiet"}})
    nodes = await start(grid)
    try:
        events, on_event = collector()
        await nodes["watch"].subscribe("pub/$subscribers/+", on_event)
        await nodes["sub"].subscribe("pub/pin", print)
        await nodes["sub"].subscribe("pub/sound", print)
        await nodes["sub"].stop()  # going away forgets both
        await until(lambda: len(events) == 5, "five events")
        assert [(key, json.loads(data)) for key, data in events] == [
            ("pub/$subscribers/added", {"pattern": "pub/$subscribers/+", "subscriber": "watch", "count": 1}),
            ("pub/$subscribers/added", {"pattern": "pub/pin", "subscriber": "sub", "count": 2}),
            ("pub/$subscribers/added", {"pattern": "pub/sound", "subscriber": "sub", "count": 3}),
            ("pub/$subscribers/removed", {"pattern": "pub/pin", "subscriber": "sub", "count": 2}),
            ("pub/$subscribers/removed", {"pattern": "pub/sound", "subscriber": "sub", "count": 1}),
        ]
    finally:
        await stop(nodes)


async def test_fan_out_to_100_subscribers_in_order():
    """One publisher, 100 subscribers: every message reaches each one, in order."""
    names = [f"s{i}" for i in range(100)]
    grid = build_grid({"pub": {"sketch": "quiet", "port": 0}, **{name: {"sketch": "quiet"} for name in names}})
    nodes = await start(grid)
    try:
        got: dict[str, list[str]] = {name: [] for name in names}
        await asyncio.gather(
            *(nodes[name].subscribe("pub/n", lambda key, data, box=got[name]: box.append(data)) for name in names)
        )
        counts = [await nodes["pub"].publish("n", i) for i in range(200)]
        assert counts == [100] * 200
        await until(lambda: all(len(box) == 200 for box in got.values()), "all delivered")
        assert all(box == [str(i) for i in range(200)] for box in got.values())
    finally:
        await stop(nodes)


async def test_a_slow_subscriber_loses_the_oldest_and_stalls_nobody():
    """A stuck subscriber next to a fast one: the fast one gets everything; the slow one's queue stays bounded."""
    grid = build_grid({"pub": {"sketch": "quiet", "port": 0}, "fast": {"sketch": "quiet"}, "slow": {"sketch": "quiet"}})
    nodes = await start(grid)
    pub, fast, slow = nodes["pub"], nodes["fast"], nodes["slow"]
    bound = 100
    pub.hub.bound = bound
    slow.inbox.bound = bound
    release = asyncio.Event()
    fast_got: list[str] = []
    slow_got: list[str] = []

    async def stuck(key: str, data: str) -> None:
        slow_got.append(data)
        await release.wait()

    try:
        await fast.subscribe("pub/n", lambda key, data: fast_got.append(data))
        await slow.subscribe("pub/n", stuck)
        payload = "x" * 2000  # 20 MB in all: more than the sockets' buffers can hide
        total = 10_000
        deepest = 0
        for i in range(total):
            await pub.publish("n", f"{i} {payload}")
            deepest = max(deepest, *(len(s.queue) for s in pub.hub.subscribers.values()))
            await asyncio.sleep(0)  # let the pumps run, as a real publisher's loop would
        await until(lambda: len(fast_got) == total, "the fast subscriber gets everything")
        assert [int(m.split()[0]) for m in fast_got] == list(range(total))
        assert deepest <= bound
        stuck_sub = next(s for s in pub.hub.subscribers.values() if s.name == "slow")
        # Its link keeps reading (acks must flow), so the oldest are dropped at its own inbox, or at the publisher.
        assert slow.inbox.lost > 0
        release.set()
        await until(lambda: int(slow_got[-1].split()[0]) == total - 1, "the slow one catches up with the newest")
        numbers = [int(m.split()[0]) for m in slow_got]
        assert numbers == sorted(numbers) and len(numbers) < total  # in order, with the oldest dropped
        await until(lambda: slow.links["pub"].lost == stuck_sub.lost, "the subscriber learns what it lost")
        assert len(slow_got) + slow.inbox.lost == total  # every message either handled or counted lost
    finally:
        release.set()
        await stop(nodes)


async def test_subscribers_resume_when_the_publisher_restarts():
    """A publisher restarted on the same port is re-subscribed by its subscribers without being told."""
    grid = build_grid({"pub": {"sketch": "quiet", "port": 0}, "sub": {"sketch": "quiet"}})
    nodes = await start(grid)
    pub, sub = nodes["pub"], nodes["sub"]
    got, on_message = collector()
    await sub.subscribe("pub/+", on_message)
    assert await pub.publish("n", 1) == 1
    await pub.stop()
    again = Node(Quiet, "pub", sub.grid, reconnect_delays=fast_backoff)
    await again.open()
    again.begin()
    try:
        await until(lambda: again.hub.count == 1, "re-subscribed")
        assert await again.publish("n", 2) == 1
        await until(lambda: len(got) == 2, "both messages")
        assert got == [("pub/n", "1"), ("pub/n", "2")]
    finally:
        await sub.stop()
        await again.stop()


async def test_a_blocked_topic_handler_never_delays_the_acks_on_its_link():
    """A node whose topic handler is stuck keeps getting the acks of its streams on that same link, promptly."""
    grid = build_grid({"pub": {"sketch": "quiet", "port": 0}, "sub": {"sketch": "quiet"}})
    nodes = await start(grid)
    pub, sub = nodes["pub"], nodes["sub"]
    sub.inbox.bound = 10
    release = asyncio.Event()
    stuck: list[str] = []
    others, on_other = collector()

    async def blocked(key: str, data: str) -> None:
        stuck.append(data)
        await release.wait()

    try:
        await sub.subscribe("pub/n", blocked)
        await sub.subscribe("pub/+", on_other)
        total = 100  # ten times what the stuck handler's queue holds
        for i in range(total):
            assert await pub.publish("n", i) == 1
            if i % 5 == 4:  # the other handler keeps up with what arrives
                await until(lambda n=i + 1: len(others) == n, "the other handler to get every message so far")
        assert stuck == ["0"]
        for round_ in range(3):  # on the link that carried the publications
            acks = await asyncio.wait_for(sub.sketch.stream("pub", [f"{round_}.a", f"{round_}.b"]), 200 * MS)
            assert acks == ["n/a", "n/a"]  # what loop() returning None acks
        assert [message for _, message in pub.sketch.heard] == ["0.a", "0.b", "1.a", "1.b", "2.a", "2.b"]
        assert sub.links["pub"].connections == 1
        assert sub.inbox.lost == total - 1 - sub.inbox.bound  # one in the handler, ten queued, the oldest dropped
        release.set()
        await until(lambda: len(stuck) == 1 + sub.inbox.bound, "the stuck handler to catch up")
        assert stuck[1:] == [str(i) for i in range(total - sub.inbox.bound, total)]
    finally:
        release.set()
        await stop(nodes)
