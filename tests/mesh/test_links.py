"""A link as the composition of its parts, against a scripted mesh peer on port 0 in the test's loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from mesh import protocol
from mesh.errors import PeerUnavailable, RemoteError
from mesh.links import Link
from tests.helpers import MS, fast_backoff, until

LOG = logging.getLogger("mesh.test")


class Peer:
    """A mesh peer that greets, records every frame, and answers as the test says."""

    def __init__(self) -> None:
        self.hellos: list[protocol.Hello] = []
        self.messages: list[protocol.Message] = []
        self.websocket_frames = 0
        self.connections: list[ServerConnection] = []
        self.acking = True
        self.refused: set[str] = set()  # patterns answered with an error
        self.uri = ""

    async def handler(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        hello = protocol.decode(str(await ws.recv()))
        assert isinstance(hello, protocol.Hello)
        self.hellos.append(hello)
        await ws.send(protocol.encode(protocol.Hello(node="echo")))
        async for text in ws:
            self.websocket_frames += 1
            answers = []
            for frame in protocol.decode_all(str(text)):
                if isinstance(frame, protocol.Message):
                    self.messages.append(frame)
                    if self.acking and frame.data.startswith("fail"):
                        answers.append(protocol.encode(protocol.Error(id=frame.id, error="loop() failed")))
                    elif self.acking:
                        answers.append(protocol.encode(protocol.Ack(id=frame.id, data=f"got {frame.data}")))
                elif isinstance(frame, protocol.Subscribe) and frame.pattern in self.refused:
                    answers.append(protocol.encode(protocol.Error(id=frame.id, error="no such topic")))
                elif isinstance(frame, (protocol.Subscribe, protocol.Unsubscribe)):
                    answers.append(protocol.encode(protocol.Ack(id=frame.id, data="ok")))
            if answers:
                await ws.send(protocol.batch(answers))

    async def publish(self, key: str, data: str, lost: int = 0) -> None:
        await self.connections[-1].send(protocol.encode(protocol.Publish(key=key, data=data, lost=lost)))


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    scripted = Peer()
    async with serve(scripted.handler, "127.0.0.1", 0, subprotocols=[protocol.SUBPROTOCOL]) as server:
        scripted.uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        yield scripted


@pytest.fixture
async def link(peer: Peer) -> AsyncIterator[Link]:
    made = Link(node="clock", peer="echo", uri=peer.uri, logger=LOG, reconnect_delays=fast_backoff)
    yield made
    await made.close()


async def test_messages_go_out_batched_and_acks_come_back_in_order(peer, link):
    """post_many() writes what it took as one websocket frame; the acks resolve the futures in order."""
    futures = await link.post_many("pin", ["a", "b", "c"])
    assert [await future for future in futures] == ["got a", "got b", "got c"]
    assert [m.id for m in peer.messages] == [1, 2, 3] and peer.websocket_frames == 1
    assert (link.state, link.connections, link.pending, link.acked, link.sent) == ("up", 1, 0, 3, 3)
    assert peer.hellos == [protocol.Hello(node="clock", session=link.session, to="echo")]


async def test_a_post_while_another_write_waits_for_its_turn_goes_out_after_it(peer, link):
    """post_now() writes in the caller's turn only when no other write is under way or waiting for the write
    lock, even in the moment the lock is handed to the next writer (``Lock.locked()`` is False then): a later
    post never overtakes an earlier one, and the peer gets every message in the order of the posts."""
    taken = link.post_now("", ["first"])
    assert taken is None  # not up yet: post_many() connects and writes when it is
    posted = await link.post_many("", ["first"])
    await until(lambda: link.acked == 1, "the link to be up")
    posted += link.post_now("", ["quiet"]) or []  # up, writable, nobody writing: taken and written at once
    assert await asyncio.gather(*posted) == ["got first", "got quiet"]
    lock = link._write_lock  # what a write on the slow way (a full buffer, a reconnect's re-send) holds
    await lock.acquire()
    waiting = asyncio.create_task(link.post_many("", ["waits"]))
    await until(lambda: link.pending == 1, "the message to be taken, its write waiting")
    assert link.post_now("", ["later"]) is None  # a write waits for its turn
    lock.release()  # handed to the waiting write, which has not run yet
    assert not lock.locked() and link.post_now("", ["later"]) is None
    posted += await waiting + await link.post_many("", ["later"])
    assert await asyncio.gather(*posted[2:]) == ["got waits", "got later"]
    assert [m.data for m in peer.messages] == ["first", "quiet", "waits", "later"]
    assert [m.id for m in peer.messages] == [1, 2, 3, 4]


async def test_an_error_answer_fails_only_its_message(peer, link):
    """An error frame for a message fails its future with RemoteError; the link goes on."""
    futures = await link.post_many("", ["ok", "fail", "ok too"])
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert results[0] == "got ok" and results[2] == "got ok too"
    assert isinstance(results[1], RemoteError) and link.acked == 2 and link.pending == 0


async def test_what_is_unacked_is_resent_in_order_after_a_reconnect(peer, link, caplog):
    """The peer goes away with messages unacked: the next connection re-sends them, same session, in order."""
    peer.acking = False
    futures = await link.post_many("", ["1", "2", "3"])
    await until(lambda: len(peer.messages) == 3, "the messages to arrive")
    peer.acking = True
    await peer.connections[0].close(1012)
    assert [await future for future in futures] == ["got 1", "got 2", "got 3"]
    assert [m.id for m in peer.messages] == [1, 2, 3, 1, 2, 3]
    assert link.connections == 2 and peer.hellos[0] == peer.hellos[1]
    assert "link to echo down (closed with 1012); reconnecting" in caplog.text


async def test_a_publication_is_handed_over_without_waiting(peer):
    """on_publish is called from the reader and not awaited; what the publisher dropped is counted and logged."""
    heard: list[tuple[str, str, int]] = []
    link = Link(
        node="meter",
        peer="echo",
        uri=peer.uri,
        logger=LOG,
        reconnect_delays=fast_backoff,
        on_publish=lambda key, data, lost: heard.append((key, data, lost)),
    )
    try:
        assert await link.subscribe("echo/#") is True
        await peer.publish("echo/pin", "1")
        await peer.publish("echo/pin", "0", lost=4)
        await until(lambda: len(heard) == 2, "both publications")
        assert heard == [("echo/pin", "1", 0), ("echo/pin", "0", 4)] and link.lost == 4
    finally:
        await link.close()


async def test_subscribe_says_whether_the_peer_took_the_pattern(peer, link, caplog):
    """True once the peer acks the pattern; False, and an error logged, when it refuses it."""
    peer.refused.add("echo/bad")
    assert await link.subscribe("echo/#") is True
    assert await link.subscribe("echo/bad") is False
    assert "echo refused the subscription 'echo/bad': no such topic" in caplog.text
    assert list(link.patterns) == ["echo/#", "echo/bad"]
    await link.unsubscribe("echo/#")
    assert list(link.patterns) == ["echo/bad"]


async def test_a_stopping_link_does_not_reconnect(peer, link):
    """After stop_reconnecting() a lost connection stays lost, and post() says the node is stopping."""
    assert await link.send("", ["a"]) == ["got a"]
    link.stop_reconnecting()
    await peer.connections[0].close(1001)
    await until(lambda: link._task is not None and link._task.done(), "the link to end")
    with pytest.raises(PeerUnavailable, match="the node is stopping"):
        await link.post("", "b")
    assert link.connections == 1


async def test_closing_fails_what_is_pending(peer, link):
    """close() fails every pending future with PeerUnavailable and says the link is closed."""
    peer.acking = False
    futures = await link.post_many("", ["a", "b"])
    await until(lambda: len(peer.messages) == 2, "the messages to arrive")
    await asyncio.wait_for(link.close(), 1000 * MS)
    for future in futures:
        with pytest.raises(PeerUnavailable, match="the link was closed"):
            future.result()
    assert link.state == "closed" and link.pending == 0


# -- a hostile peer: what it sends back never kills the link nor fails what it waits for --

HOSTILE = [
    "[" * 100_000 + "]" * 100_000,
    '{"a":' * 100_000 + "1" + "}" * 100_000,
    '{"type":[]}',
    "{}",
    '{"type":{}}',
    '[{"type":[]},{}]',
    '{"type":"pub","key":"echo/\\ud800","data":"x"}',
    '{"type":"pub","key":"echo/x\\n[ clock ] forged","data":"x"}',
    '{"type":"ack","id":1,"data":"\\ud800"}',
    '{"type":"error","id":1,"error":"\\udfff"}',
    "not json",
    b"\x00\x01",
    '{"type":"error","id":null,"error":"x\\n[ clock ] link to echo up (forged)"}',
]


async def test_hostile_frames_from_the_peer_neither_kill_the_link_nor_fail_its_pending_send(caplog):
    """A 'node' that answers a link's hello, then sends every nasty frame: the link stays up, the message is acked."""
    seen: list[protocol.Message] = []
    release = asyncio.Event()

    async def hostile(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(protocol.encode(protocol.Hello(node="echo")))
        message = protocol.decode(str(await ws.recv()))
        assert isinstance(message, protocol.Message)
        seen.append(message)
        for text in HOSTILE:
            await ws.send(text)
        await ws.send(protocol.encode(protocol.Publish(key="echo/done", data="all sent")))
        await release.wait()
        await ws.send(protocol.encode(protocol.Ack(id=message.id, data="at last")))
        await ws.wait_closed()

    async with serve(hostile, "127.0.0.1", 0, subprotocols=[protocol.SUBPROTOCOL]) as server:
        uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        published: list[tuple[str, str, int]] = []
        link = Link(
            node="clock",
            peer="echo",
            uri=uri,
            logger=LOG,
            reconnect_delays=fast_backoff,
            on_publish=lambda *args: published.append(args),
        )
        try:
            future = await link.post("", "tick 1")
            await until(lambda: published, "every hostile frame to be read, then the last publication")
            assert published == [("echo/done", "all sent", 0)]  # nothing hostile got through
            assert not future.done() and link.state == "up" and link.pending == 1
            release.set()
            assert await asyncio.wait_for(future, 10_000 * MS) == "at last"
            assert (link.state, link.connections, link.acked) == ("up", 1, 1)
            assert any("forged" in r.getMessage() for r in caplog.records)
            assert not [r for r in caplog.records if "\n" in r.getMessage()]  # no peer text forges a log line
        finally:
            await link.close()


async def test_a_batch_past_the_limits_makes_the_link_reconnect_and_resend():
    """Acks hidden in a batch of 300 frames (past the 256 a batch may hold) are refused whole: the link reconnects at
    once, re-sends what is unacked, and the ack that comes on the new connection settles it (no wait for --wait)."""
    connections = 0

    async def bloated(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await ws.recv()
        await ws.send(protocol.encode(protocol.Hello(node="echo")))
        message = protocol.decode(str(await ws.recv()))
        assert isinstance(message, protocol.Message)
        ack = protocol.encode(protocol.Ack(id=message.id, data=f"ack {connections}"))
        await ws.send("[" + ",".join([ack] * 300) + "]" if connections == 1 else ack)
        await ws.wait_closed()

    async with serve(bloated, "127.0.0.1", 0, subprotocols=[protocol.SUBPROTOCOL]) as server:
        uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        link = Link(node="clock", peer="echo", uri=uri, logger=LOG, reconnect_delays=fast_backoff)
        try:
            future = await link.post("", "tick 1")
            assert await asyncio.wait_for(future, 10_000 * MS) == "ack 2"
            assert (link.connections, link.acked) == (2, 1)
        finally:
            await link.close()


async def test_acks_for_ids_the_link_never_sent_are_counted_not_believed(caplog):
    """Acks and errors for ids never written (a later id, an id already settled) are refused and counted, warned once."""
    release = asyncio.Event()

    async def lying(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(protocol.encode(protocol.Hello(node="echo")))
        first = protocol.decode(str(await ws.recv()))
        assert isinstance(first, protocol.Message)
        await ws.send(protocol.encode(protocol.Ack(id=first.id, data="one")))
        await ws.send(protocol.encode(protocol.Ack(id=first.id, data="again")))  # settled already
        await ws.send(protocol.encode(protocol.Ack(id=first.id + 1, data="not sent yet")))
        await ws.send(protocol.encode(protocol.Error(id=first.id + 1, error="not sent yet")))
        await release.wait()
        second = protocol.decode(str(await ws.recv()))
        assert isinstance(second, protocol.Message)
        await ws.send(protocol.encode(protocol.Ack(id=second.id, data="two")))
        await ws.wait_closed()

    async with serve(lying, "127.0.0.1", 0, subprotocols=[protocol.SUBPROTOCOL]) as server:
        uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        link = Link(node="clock", peer="echo", uri=uri, logger=LOG, reconnect_delays=fast_backoff)
        try:
            with caplog.at_level(logging.WARNING, logger=LOG.name):
                assert await asyncio.wait_for(await link.post("", "1"), 10_000 * MS) == "one"
                await until(lambda: link.unknown_acks == 3, "the three unknown answers to be counted")
                release.set()
                assert await asyncio.wait_for(await link.post("", "2"), 10_000 * MS) == "two"
            assert link.unknown_acks == 3 and link.acked == 2
            warnings = [r.getMessage() for r in caplog.records if "never sent" in r.getMessage()]
            assert warnings == ["echo answered id 1, which this link never sent or already settled: ignored (1 so far)"]
        finally:
            await link.close()


async def test_a_link_refuses_frames_over_its_own_max_size():
    """A peer's frame over the link's recv_max_size closes that connection (1009); the link reconnects."""
    connections = []

    async def big(ws: ServerConnection) -> None:
        connections.append(ws)
        await ws.recv()
        await ws.send(protocol.encode(protocol.Hello(node="echo")))
        message = protocol.decode(str(await ws.recv()))
        assert isinstance(message, protocol.Message)
        if len(connections) == 1:
            await ws.send(protocol.encode(protocol.Ack(id=message.id, data="x" * 4096)))
        else:
            await ws.send(protocol.encode(protocol.Ack(id=message.id, data="small")))
        await ws.wait_closed()

    async with serve(big, "127.0.0.1", 0, subprotocols=[protocol.SUBPROTOCOL], max_size=None) as server:
        uri = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        link = Link(node="clock", peer="echo", uri=uri, logger=LOG, reconnect_delays=fast_backoff, recv_max_size=2048)
        try:
            assert await asyncio.wait_for(await link.post("", "1"), 10_000 * MS) == "small"
            assert connections[0].close_code == 1009 and link.connections == 2
        finally:
            await link.close()
