"""Publish/subscribe across nodes in this test's event loop, on port 0."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from mesh import protocol
from mesh.constants import SEND_TIMEOUT
from mesh.errors import TopicError
from mesh.grid import Grid, build_grid
from nodes import FactoryLoop, reactive, subscriber
from nodes.hub import MAX_PATTERNS_PER_CONNECTION
from nodes.runtime import Node, open_together
from nodes.subscriber import Publication
from tests.helpers import DEADLINE, MS, fast_backoff, until

T = TypeVar("T")


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
        assert await pub.sender.publish("pin", 1) == 0
        got_a, on_a = collector()
        got_b, on_b = collector()
        assert await a.subscribe("pub/pin", on_a) == 1
        assert await b.subscribe("+/pin", on_b) == 1
        assert await b.subscribe("pub/+", on_b) == 1  # two patterns, one subscriber
        assert await pub.sender.publish("pin", 1) == 2
        assert await pub.sender.publish("other", "x") == 1
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
        assert await nodes["lonely"].sender.publish("pin", 1) == 0
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
        assert await iopin.sender.publish("pin", 1) == 1
        assert await buzzer.sender.publish("sound", "beep") == 1
        assert await buzzer.sender.publish("pin", 0) == 1
        assert await buzzer.sender.publish("other", 0) == 0
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
        assert await pub.sender.publish("a", "1") == 1
        assert await pub.sender.publish("b", "2") == 1
        await until(lambda: got_sync and got_async, "both handlers")
        assert (got_sync, got_async) == ([("pub/a", "1")], [("pub/b", "2")])
        await sub.unsubscribe("pub/a")
        await until(lambda: pub.hub.count == 1, "unsubscribed at the publisher")
        assert await pub.sender.publish("a", "3") == 0
        assert await pub.sender.publish("b", "4") == 1
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
            await nodes["pub"].sender.publish("pin/+", 1)
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


@pytest.mark.parametrize("subscribers", [20, pytest.param(100, marks=pytest.mark.slow)])
async def test_fan_out_to_many_subscribers_in_order(subscribers: int):
    """One publisher, 20 (or 100) subscribers: every message reaches each one, in order."""
    names = [f"s{i}" for i in range(subscribers)]
    grid = build_grid({"pub": {"sketch": "quiet", "port": 0}, **{name: {"sketch": "quiet"} for name in names}})
    nodes = await start(grid)
    try:
        got: dict[str, list[str]] = {name: [] for name in names}
        await asyncio.gather(
            *(nodes[name].subscribe("pub/n", lambda key, data, box=got[name]: box.append(data)) for name in names)
        )
        counts = [await nodes["pub"].sender.publish("n", i) for i in range(200)]
        assert counts == [subscribers] * 200
        await until(lambda: all(len(box) == 200 for box in got.values()), "all delivered")
        assert all(box == [str(i) for i in range(200)] for box in got.values())
    finally:
        await stop(nodes)


@pytest.mark.parametrize("total", [2_000, pytest.param(10_000, marks=pytest.mark.slow)])
async def test_a_slow_subscriber_loses_the_oldest_and_stalls_nobody(total: int):
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
        payload = "x" * 2000  # 4 MB in all (20 MB slow): more than the sockets' buffers can hide
        deepest = 0
        for i in range(total):
            await pub.sender.publish("n", f"{i} {payload}")
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
        await until(lambda: slow.sender.links["pub"].lost == stuck_sub.lost, "the subscriber learns what it lost")
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
    assert await pub.sender.publish("n", 1) == 1
    await pub.stop()
    again = Node(Quiet, "pub", sub.grid, reconnect_delays=fast_backoff)
    await again.open()
    again.begin()
    try:
        await until(lambda: again.hub.count == 1, "re-subscribed")
        assert await again.sender.publish("n", 2) == 1
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
            assert await pub.sender.publish("n", i) == 1
            if i % 5 == 4:  # the other handler keeps up with what arrives
                await until(lambda n=i + 1: len(others) == n, "the other handler to get every message so far")
        assert stuck == ["0"]
        for round_ in range(3):  # on the link that carried the publications
            acks = await asyncio.wait_for(sub.sketch.stream("pub", [f"{round_}.a", f"{round_}.b"]), 200 * MS)
            assert acks == ["n/a", "n/a"]  # what loop() returning None acks
        assert [message for _, message in pub.sketch.heard] == ["0.a", "0.b", "1.a", "1.b", "2.a", "2.b"]
        assert sub.sender.links["pub"].connections == 1
        assert sub.inbox.lost == total - 1 - sub.inbox.bound  # one in the handler, ten queued, the oldest dropped
        release.set()
        await until(lambda: len(stuck) == 1 + sub.inbox.bound, "the stuck handler to catch up")
        assert stuck[1:] == [str(i) for i in range(total - sub.inbox.bound, total)]
    finally:
        release.set()
        await stop(nodes)


# -- bounded work and memory: a pattern index, caps per connection, a send timeout ---------------


def _mesh_client(node: Node, **kwargs: object):
    return connect(f"ws://{node.address}/", subprotocols=[protocol.SUBPROTOCOL], **kwargs)


def _sub_batches(name: str, patterns: list[str]) -> list[str]:
    """A hello and one sub frame per pattern, as batches of at most protocol.BATCH frames."""
    frames = [protocol.encode(protocol.Hello(node=name))]
    frames += [protocol.encode(protocol.Subscribe(id=i + 1, pattern=p)) for i, p in enumerate(patterns)]
    return [protocol.batch(frames[k : k + protocol.BATCH]) for k in range(0, len(frames), protocol.BATCH)]


async def _status_times(node: Node, stop: asyncio.Event) -> list[float]:
    """Ask the node its status every 10 MS until ``stop``; how long each answer took."""
    loop = asyncio.get_running_loop()
    times: list[float] = []
    async with _mesh_client(node) as ws:
        await ws.send(protocol.encode(protocol.Hello(node="probe")))
        await ws.recv()
        while not stop.is_set():
            asked = loop.time()
            await ws.send(protocol.encode(protocol.Status(id=len(times) + 1)))
            await ws.recv()
            times.append(loop.time() - asked)
            await asyncio.sleep(10 * MS)
    return times


async def _under_probe(node: Node, attack: Awaitable[T]) -> tuple[T, list[float]]:
    stop = asyncio.Event()
    probe = asyncio.create_task(_status_times(node, stop))
    try:
        return await attack, await _stopped(probe, stop)
    finally:
        stop.set()
        await asyncio.gather(probe, return_exceptions=True)


async def _stopped(probe: asyncio.Task[list[float]], stop: asyncio.Event) -> list[float]:
    await asyncio.sleep(20 * MS)  # at least one answer after the attack too
    stop.set()
    return await probe


def _replies(texts: list[str]) -> list[dict]:
    out: list[dict] = []
    for text in texts:
        decoded = json.loads(text)
        out += decoded if isinstance(decoded, list) else [decoded]
    return out


@pytest.mark.parametrize("subs", [2_000, pytest.param(18_000, marks=pytest.mark.slow)])
async def test_subscriptions_in_a_row_past_the_cap_get_the_caps_error_and_status_stays_quick(subs: int):
    """2,000 (or 18,000) subs on one connection: the first MAX_PATTERNS_PER_CONNECTION held, each one past it an error
    naming the cap and what is held; a status on another connection is answered within 100 MS meanwhile."""
    grid = build_grid({"pub": {"sketch": "quiet", "port": 0}})
    nodes = await start(grid)
    pub = nodes["pub"]
    batches = _sub_batches("evil", [f"pub/x{i}/+" for i in range(subs)])
    try:
        async with _mesh_client(pub, max_size=None) as ws:

            async def attack() -> list[str]:
                for text in batches:
                    await ws.send(text)
                return [await ws.recv() for _ in batches]  # type: ignore[misc]

            texts, times = await _under_probe(pub, attack())
            replies = _replies(texts)[1:]  # after the hello
            assert [r["type"] for r in replies] == ["ack"] * MAX_PATTERNS_PER_CONNECTION + ["error"] * (
                subs - MAX_PATTERNS_PER_CONNECTION
            )
            assert replies[-1] == {
                "type": "error",
                "id": subs,
                "error": f"too many subscriptions: this connection already holds {MAX_PATTERNS_PER_CONNECTION}"
                f" patterns, the most a node takes from one connection ({MAX_PATTERNS_PER_CONNECTION});"
                " unsubscribe from some, or use a wildcard",
            }
            assert pub.hub.count == MAX_PATTERNS_PER_CONNECTION
            assert max(times) < 100 * MS, f"status took {max(times) / MS:.0f} MS at worst"
        await until(lambda: pub.hub.count == 0 and not pub.hub.subscribers, "the connection forgotten")
    finally:
        await stop(nodes)


@pytest.mark.parametrize("connections", [20, pytest.param(100, marks=pytest.mark.slow)])
async def test_clients_of_50_patterns_each_are_held_and_each_publication_finds_its_own(connections: int):
    """20 (or 100) connections x 50 patterns: all held, a key reaches only its subscriber, status stays answered,
    and closing them all leaves nothing held."""
    grid = build_grid({"pub": {"sketch": "quiet", "port": 0}})
    nodes = await start(grid)
    pub = nodes["pub"]
    clients = [await _mesh_client(pub).__aenter__() for _ in range(connections)]
    try:

        async def attack() -> list[list[dict]]:
            async def one(c: int) -> list[dict]:
                (text,) = _sub_batches(f"c{c}", [f"pub/c{c}/p{j}" for j in range(50)])
                await clients[c].send(text)
                return _replies([await clients[c].recv()])  # type: ignore[list-item]

            return await asyncio.gather(*(one(c) for c in range(connections)))

        answers, times = await _under_probe(pub, attack())
        assert all([r["type"] for r in replies] == ["hello"] + ["ack"] * 50 for replies in answers)
        assert pub.hub.count == connections * 50
        assert max(times) < 100 * MS, f"status took {max(times) / MS:.0f} MS at worst"
        assert await pub.sender.publish("c17/p7", "x") == 1
        assert _replies([await clients[17].recv()]) == [{"type": "pub", "key": "pub/c17/p7", "data": "x"}]
    finally:
        for ws in clients:
            await ws.close()
        await until(lambda: pub.hub.count == 0 and not pub.hub.subscribers, "every connection forgotten")
        await stop(nodes)


async def test_forgetting_a_connection_with_the_caps_worth_of_patterns_announces_each_once(caplog):
    """A connection holding MAX_PATTERNS_PER_CONNECTION patterns goes away: one log line, one removed event per
    pattern with the count going down to what is left."""
    grid = build_grid({"pub": {"sketch": "quiet", "port": 0}, "watch": {"sketch": "quiet"}})
    nodes = await start(grid)
    pub, watch = nodes["pub"], nodes["watch"]
    events, on_event = collector()
    caplog.set_level(logging.INFO, logger="mesh.pub")
    try:
        await watch.subscribe("pub/$subscribers/removed", on_event)
        patterns = [f"pub/x{i}/#" for i in range(MAX_PATTERNS_PER_CONNECTION)]
        async with _mesh_client(pub, max_size=None) as ws:
            batches = _sub_batches("many", patterns)
            for text in batches:
                await ws.send(text)
            for _ in batches:
                await ws.recv()
            assert pub.hub.count == MAX_PATTERNS_PER_CONNECTION + 1
        await until(lambda: len(events) == MAX_PATTERNS_PER_CONNECTION, "a removed event per pattern")
        got = [json.loads(data) for _, data in events]
        assert [e["pattern"] for e in got] == patterns
        assert [e["count"] for e in got] == list(range(MAX_PATTERNS_PER_CONNECTION, 0, -1))
        assert pub.hub.count == 1
        lines = [r.getMessage() for r in caplog.records if "went away" in r.getMessage()]
        assert lines == [
            f"many went away; forgetting its {MAX_PATTERNS_PER_CONNECTION} subscription(s):"
            " pub/x0/#, pub/x1/#, pub/x2/#, ..."
        ]
    finally:
        await stop(nodes)


@pytest.mark.parametrize(
    ("pattern", "error"),
    [
        ("a/" * 40 + "b", "pattern too deep: 41 levels, a node takes at most 16"),
        (
            "pub/" + "x" * 2000,
            "invalid pattern 'pub/" + "x" * 36 + "'...: 2004 characters; the mesh carries at most 256",
        ),
    ],
)
async def test_a_pattern_too_long_or_too_deep_gets_an_error(pattern, error):
    """A node refuses to hold a pattern past MAX_PATTERN_LENGTH or MAX_PATTERN_LEVELS, saying which."""
    grid = build_grid({"pub": {"sketch": "quiet", "port": 0}})
    nodes = await start(grid)
    try:
        async with _mesh_client(nodes["pub"]) as ws:
            (text,) = _sub_batches("x", [pattern])
            await ws.send(text)
            assert _replies([await ws.recv()])[1] == {"type": "error", "id": 1, "error": error}  # type: ignore[list-item]
        assert nodes["pub"].hub.count == 0
    finally:
        await stop(nodes)


async def test_the_node_wide_cap_refuses_past_it():
    """Past MAX_SUBSCRIPTIONS (here lowered to 3) held by the node, a sub gets an error saying the node is full."""
    grid = build_grid({"pub": {"sketch": "quiet", "port": 0}})
    nodes = await start(grid)
    nodes["pub"].hub.most = 3
    try:
        async with _mesh_client(nodes["pub"]) as ws:
            (text,) = _sub_batches("x", ["a", "b", "c", "d"])
            await ws.send(text)
            replies = _replies([await ws.recv()])  # type: ignore[list-item]
        assert [r["type"] for r in replies] == ["hello", "ack", "ack", "ack", "error"]
        assert (
            replies[-1]["error"]
            == "too many subscriptions: this node already holds 3, the most it takes (3); try again later"
        )
    finally:
        await stop(nodes)


async def test_pub_batches_are_bounded_in_bytes_and_a_publication_too_big_is_lost(monkeypatch):
    """What piles up goes in batches of at most BATCH_BYTES; one pub frame over PUB_FRAME_LIMIT is dropped and
    reported as lost with the next one."""
    monkeypatch.setattr(subscriber, "PUB_FRAME_LIMIT", 200_000)
    grid = build_grid({"pub": {"sketch": "quiet", "port": 0}})
    nodes = await start(grid)
    pub = nodes["pub"]
    try:
        async with _mesh_client(pub, max_size=None) as ws:
            (text,) = _sub_batches("x", ["pub/big"])
            await ws.send(text)
            await ws.recv()
            chunk = "x" * 100_000
            for _ in range(10):
                await pub.sender.publish("big", chunk)
            await pub.sender.publish("big", "y" * 300_000)  # over the limit
            await pub.sender.publish("big", "last")
            frames: list[dict] = []
            while not frames or frames[-1]["data"] != "last":
                message = await asyncio.wait_for(ws.recv(), DEADLINE)
                assert len(message) <= protocol.BATCH_BYTES
                frames += _replies([message])  # type: ignore[list-item]
            assert [len(f["data"]) for f in frames] == [100_000] * 10 + [4]
            assert frames[-1]["lost"] == 1
            assert pub.hub.subscribers[next(iter(pub.hub.subscribers))].lost == 1
    finally:
        await stop(nodes)


@pytest.mark.parametrize("retained", [False, True])
@pytest.mark.parametrize("lost", [0, 1, 1000])
@pytest.mark.parametrize("data", ["", "1", 'é ♪\n"}'])
def test_a_publication_is_encoded_once_and_its_lost_variant_is_the_frame_encode_writes(data, lost, retained):
    """The shared frame, and the frame of a subscriber with losses to report, are what protocol.encode writes."""
    publication = Publication("pub/n", data, retained)
    frame = protocol.Publish(key="pub/n", data=data, lost=lost, retained=retained)
    assert publication.frame_for(lost) == protocol.encode(frame).encode()
    assert protocol.decode(publication.frame_for(lost).decode()) == frame
    assert publication.size == len(publication.frame)


async def test_what_a_turn_publishes_reaches_each_subscriber_as_one_batch_and_only_losses_differ():
    """Publications made in one turn go to each subscriber as one batch, in order; subscribers that get the
    same ones get the same text, and only a subscriber whose queue overflowed sees a lost count."""
    grid = build_grid({"pub": {"sketch": "quiet", "port": 0}})
    nodes = await start(grid)
    pub = nodes["pub"]
    pub.hub.bound = 3
    try:
        async with _mesh_client(pub) as one, _mesh_client(pub) as two, _mesh_client(pub) as every:
            for ws, name, pattern in ((one, "one", "pub/a"), (two, "two", "pub/a"), (every, "every", "pub/#")):
                (text,) = _sub_batches(name, [pattern])
                await ws.send(text)
                await ws.recv()
            for i, key in enumerate("ababa"):  # publish() never yields: one turn
                await pub.sender.publish(key, str(i))
            texts = [await asyncio.wait_for(ws.recv(), DEADLINE) for ws in (one, two, every)]
            assert texts[0] == texts[1]  # the same publications: the same frame
            assert _replies([texts[0]]) == [{"type": "pub", "key": "pub/a", "data": str(i)} for i in (0, 2, 4)]
            assert _replies([texts[2]]) == [  # five for a queue of three: the oldest two dropped, and said so
                {"type": "pub", "key": "pub/a", "data": "2", "lost": 2},
                {"type": "pub", "key": "pub/b", "data": "3"},
                {"type": "pub", "key": "pub/a", "data": "4"},
            ]
    finally:
        await stop(nodes)


async def test_a_subscriber_that_does_not_read_is_dropped_within_the_liveness_promise(virtual_time, caplog):
    """A subscriber whose socket takes nothing: the publisher aborts it after SEND_TIMEOUT, with one line,
    forgets its subscriptions, and goes on publishing to the others.

    In virtual time: the SEND_TIMEOUT (3 s) the publisher waits takes none."""
    grid = build_grid({"pub": {"sketch": "quiet", "port": 0}, "ok": {"sketch": "quiet"}})
    nodes = await start(grid)
    pub = nodes["pub"]
    got, on_got = collector()
    try:
        await nodes["ok"].subscribe("pub/big", on_got)
        async with _mesh_client(pub, max_size=None, max_queue=1) as ws:
            (text,) = _sub_batches("sloth", ["pub/big"])
            await ws.send(text)
            await ws.recv()
            loop = asyncio.get_running_loop()
            began = loop.time()
            chunk = "x" * 100_000
            while len(pub.hub.subscribers) == 2 and loop.time() - began < SEND_TIMEOUT + DEADLINE:
                await pub.sender.publish("big", chunk)
                await asyncio.sleep(10 * MS)  # 100 kB each 10 ms: the sloth's buffers are full within the first second
            assert len(pub.hub.subscribers) == 1, "the sloth is still subscribed"
            lines = [r.getMessage() for r in caplog.records if "took nothing" in r.getMessage()]
            assert lines == [f"subscriber sloth took nothing for {SEND_TIMEOUT:g} s: dropping its connection"]
            with pytest.raises(ConnectionClosed):  # once it reads again, it finds its connection gone
                async with asyncio.timeout(DEADLINE):
                    async for _ in ws:
                        pass
        await pub.sender.publish("big", "after")
        await until(lambda: got and got[-1][1] == "after", "the other subscriber still served")
    finally:
        await stop(nodes)
