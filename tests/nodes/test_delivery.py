"""Delivery on wires, in this test's event loop: de-duplication, outbox bounds, durable outboxes, tokens, limits.

The sessions' own rules (how many are kept, for whom) are tests/nodes/test_sessions.py's."""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
import sys
import tracemalloc
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from mesh.errors import GridError, PeerUnavailable
from mesh.grid import build_grid
from mesh.outbox import DurableOutbox
from nodes import FactoryLoop, delivery, reactive
from nodes.delivery import WINDOW_BYTES, Session
from nodes.runtime import Node
from nodes.sessions import GUEST_SESSIONS
from tests.helpers import DEADLINE, Proxy, fast_backoff, until


class Recorder(FactoryLoop):
    """Remembers every message its loop() handled, in order; can be made to hold on."""

    def setup(self) -> None:
        self.seen: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        await self.gate.wait()
        self.seen.append(message)
        return f"got {message}"


def pair(**receiver: object):
    return build_grid({"rx": {"sketch": "recorder", "port": 0, **receiver}, "tx": {"sketch": "recorder"}}, ["tx -> rx"])


async def started(name: str, grid, **options: object) -> Recorder:
    node = Node(Recorder, name, grid, reconnect_delays=fast_backoff, **options)
    await node.open()
    node.begin()
    return node


@pytest.mark.parametrize(
    ("arrivals", "handled", "answers"),
    [
        ([1, 2, 3], [1, 2, 3], ["ok 1", "ok 2", "ok 3"]),
        ([1, 2, 2, 3], [1, 2, 3], ["ok 1", "ok 2", "ok 2", "ok 3"]),  # a re-sent message: its first answer again
        ([1, 2, 3, 1, 2, 3, 4], [1, 2, 3, 4], ["ok 1", "ok 2", "ok 3", "ok 1", "ok 2", "ok 3", "ok 4"]),
        ([5, 7, 6], [5, 7], ["ok 5", "ok 7", "duplicate"]),  # older than the newest and never seen: not run again
    ],
)
async def test_a_session_hands_each_message_to_loop_once(arrivals, handled, answers):
    """A receiver's session runs each message id once and answers a re-sent one with the answer it gave."""
    session = Session("tx/abc")
    ran: list[int] = []

    async def run(msg_id: int) -> tuple[bool, str]:
        ran.append(msg_id)
        return True, f"ok {msg_id}"

    got = [(await session.handle(msg_id, lambda m=msg_id: run(m)))[1] for msg_id in arrivals]
    assert (ran, got) == (handled, answers)
    assert session.duplicates == len(arrivals) - len(handled)


async def test_a_message_resent_on_a_new_connection_while_the_first_is_in_loop_runs_once():
    """The same session on two connections at once: the re-sent copy waits for the first and is not run again."""
    grid = pair()
    rx = await started("rx", grid)
    try:
        rx.sketch.gate.clear()
        frames = [
            '{"type":"hello","node":"tx","session":"s1"}',
            '{"type":"msg","id":1,"channel":"","data":"a"}',
        ]
        async with (
            connect(f"ws://{rx.address}/", subprotocols=["arduino-mesh.1"]) as first,
            connect(f"ws://{rx.address}/", subprotocols=["arduino-mesh.1"]) as second,
        ):
            for ws in (first, second):
                for frame in frames:
                    await ws.send(frame)
                await ws.recv()  # hello back
            await until(lambda: rx.reactor.inflight == 1, "the first copy in loop()")
            rx.sketch.gate.set()
            answers = [await asyncio.wait_for(ws.recv(), DEADLINE) for ws in (first, second)]
        assert answers == ['{"type":"ack","id":1,"data":"got a"}'] * 2
        assert rx.sketch.seen == ["a"]
        assert rx.sessions.duplicates == 1
    finally:
        await rx.stop()


async def test_the_outbox_is_bounded_and_stream_waits_for_room():
    """With the peer down, a link takes `outbox` messages; the next stream() waits until the peer is back."""
    grid = pair()
    rx = await started("rx", grid)
    port = rx.port
    await rx.stop()
    grid = grid.with_node("rx", port=port).with_node("tx", outbox=3)
    tx = await started("tx", grid)
    try:
        futures = await tx.sender.post("rx", ["1", "2", "3"])
        fourth = asyncio.ensure_future(tx.sender.post("rx", "4"))
        await until(lambda: tx.sender.links["rx"].state == "retrying", "the link to retry")
        assert not fourth.done() and tx.sender.links["rx"].pending == 3
        rx = await started("rx", grid)
        (last,) = await asyncio.wait_for(fourth, DEADLINE)
        assert await asyncio.wait_for(asyncio.gather(*futures, last), DEADLINE) == ["got 1", "got 2", "got 3", "got 4"]
        assert rx.sketch.seen == ["1", "2", "3", "4"]
    finally:
        await tx.stop()
        await rx.stop()


async def test_a_durable_outbox_survives_its_node(tmp_path: Path):
    """durable: a node stopped with unacked messages re-sends them, same session and ids, when it starts again."""
    grid = pair()
    rx = await started("rx", grid)
    port = rx.port
    await rx.stop()
    grid = grid.with_node("rx", port=port).with_node("tx", durable=True)
    tx = await started("tx", grid, state_dir=tmp_path)
    await tx.sender.post("rx", ["a", "b", "c"])
    session = tx.sender.links["rx"].session
    await tx.stop()  # as good as killed: nothing was acked
    with sqlite3.connect(tmp_path / "tx.outbox.sqlite") as db:
        assert db.execute("SELECT id, data FROM messages ORDER BY id").fetchall() == [(1, "a"), (2, "b"), (3, "c")]
    again = await started("tx", grid, state_dir=tmp_path)
    try:
        assert again.sender.links["rx"].session == session and again.sender.links["rx"].resumed == 3
        rx = await started("rx", grid)
        assert await again.sketch.stream("rx", "d") == ["got d"]
        assert rx.sketch.seen == ["a", "b", "c", "d"]
        assert DurableOutbox(tmp_path, "tx").pending("rx") == []
    finally:
        await again.stop()
        await rx.stop()


async def test_a_grid_with_a_token_refuses_who_lacks_it(caplog, monkeypatch):
    """auth: no token, 401 and nothing reaches loop(); a Bearer header or ?token= gets in; the token is never logged."""
    caplog.set_level(logging.DEBUG)
    grid = build_grid(
        {"rx": {"sketch": "recorder", "port": 0}, "tx": {"sketch": "recorder"}},
        ["tx -> rx"],
        auth_token_env="TEST_MESH_TOKEN",
    )
    monkeypatch.setenv("TEST_MESH_TOKEN", "sesame-42")
    rx = await started("rx", grid)
    grid = grid.with_node("rx", port=rx.port)
    tx = await started("tx", grid)
    try:
        for uri, headers in [
            (f"ws://{rx.address}/", {}),
            (f"ws://{rx.address}/?token=nope", {}),
            (f"ws://{rx.address}/", {"Authorization": "Bearer nope"}),
        ]:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(uri, additional_headers=headers):
                    pass
            assert refused.value.response.status_code == 401
        async with connect(f"ws://{rx.address}/?token=sesame-42") as ws:
            await ws.send("by query")
            assert await ws.recv() == "got by query"
        async with connect(f"ws://{rx.address}/", additional_headers={"Authorization": "Bearer sesame-42"}) as ws:
            await ws.send("by header")
            assert await ws.recv() == "got by header"
        assert await tx.sketch.stream("rx", "by link") == ["got by link"]
        assert rx.sketch.seen == ["by query", "by header", "by link"]
        assert [r.getMessage() for r in caplog.records if "wrong or missing token" in r.getMessage()][:1]
        # Our loggers never say it (the CLI also redacts the library's own debug lines: see test_arduino).
        assert not any("sesame-42" in r.getMessage() for r in caplog.records if r.name.startswith("mesh"))
        monkeypatch.delenv("TEST_MESH_TOKEN")
        with pytest.raises(
            GridError, match="the grid requires a token, but the environment variable TEST_MESH_TOKEN is not set"
        ):
            await Node(Recorder, "tx", grid).open()
    finally:
        await tx.stop()
        await rx.stop()


async def test_a_link_with_a_wrong_token_gives_up_at_once():
    """A refused token is not worth retrying: stream() fails with a clear reason."""
    grid = build_grid(
        {"rx": {"sketch": "recorder", "port": 0}, "tx": {"sketch": "recorder"}},
        ["tx -> rx"],
        auth_token_env="TEST_MESH_TOKEN",
    )
    rx = await started("rx", grid, token="right")
    tx = await started("tx", grid.with_node("rx", port=rx.port), token="wrong")
    try:
        with pytest.raises(PeerUnavailable, match=r"refused the handshake: wrong or missing token"):
            await asyncio.wait_for(tx.sketch.stream("rx", "x"), DEADLINE)
    finally:
        await tx.stop()
        await rx.stop()


async def test_the_size_limit_is_configurable():
    """max_size in the grid: a frame over it closes that connection with 1009; the node goes on."""
    rx = await started("rx", pair(max_size=2048))
    try:
        async with connect(f"ws://{rx.address}/") as ws:
            await ws.send("x" * 2048)
            assert await ws.recv() == "got " + "x" * 2048
            await ws.send("x" * 2049)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), DEADLINE)
            assert ws.close_code == 1009
        async with connect(f"ws://{rx.address}/") as ws:
            await ws.send("small")
            assert await ws.recv() == "got small"
    finally:
        await rx.stop()


async def test_stop_lets_loop_finish_then_closes_with_1001():
    """stop(): a loop() in progress finishes and its ack is sent, then connections close with 1001."""
    rx = await started("rx", pair())
    rx.sketch.gate.clear()
    async with connect(f"ws://{rx.address}/") as ws:
        await ws.send("slow")
        await until(lambda: rx.reactor.inflight == 1, "the message in loop()")
        stopping = asyncio.ensure_future(rx.stop())
        await until(lambda: not rx.server.server.is_serving(), "the stop to be under way")
        rx.sketch.gate.set()
        assert await asyncio.wait_for(ws.recv(), DEADLINE) == "got slow"
        await asyncio.wait_for(stopping, DEADLINE)
        await ws.wait_closed()
        assert ws.close_code == 1001


MESH = ["arduino-mesh.1"]


async def hello(address: str, name: str, session: str, *messages: str) -> list[str]:
    """One mesh connection: a hello naming ``name`` and ``session``, then ``messages`` (ids 1, 2, ...); the replies."""
    async with connect(f"ws://{address}/", subprotocols=MESH) as ws:
        await ws.send(f'{{"type":"hello","node":"{name}","session":"{session}"}}')
        replies = [await asyncio.wait_for(ws.recv(), DEADLINE)]
        for msg_id, data in enumerate(messages, 1):
            await ws.send(f'{{"type":"msg","id":{msg_id},"channel":"","data":"{data}"}}')
            replies.append(await asyncio.wait_for(ws.recv(), DEADLINE))
    return [str(reply) for reply in replies]


@pytest.mark.parametrize("clients", [100, pytest.param(300, marks=pytest.mark.slow)])
async def test_echo_clients_between_a_message_and_its_resend_do_not_make_it_run_twice(clients: int):
    """A link's message whose ack was cut, 100 (or 300) hellos (more than GUEST_SESSIONS) of fresh sessions, the re-send: loop() ran once."""
    grid = pair()
    rx = await started("rx", grid)
    proxy = Proxy(rx.port)
    tx = await started("tx", grid.with_node("rx", port=proxy.port))
    try:
        rx.sketch.gate.clear()
        (future,) = await tx.sender.post("rx", "a")
        await until(lambda: rx.reactor.inflight == 1, "the message in loop()")
        proxy.cut()  # the ack will have no wire to go back on
        proxy.close()  # and the link no way back in: it retries until it is moved below
        await until(lambda: tx.sender.links["rx"].state == "retrying", "the link to notice the cut")
        rx.sketch.gate.set()
        await until(lambda: rx.reactor.inflight == 0, "loop() to finish")
        assert rx.sketch.seen == ["a"] and not future.done()
        for n in range(clients):  # `echo` runs, each a node not in the grid whose link has a fresh session
            assert await hello(rx.address, f"echo-{n}", f"fresh-{n}") == ['{"type":"hello","node":"rx"}']
        await tx.sender.links["rx"].retarget(f"ws://{rx.address}")  # the wire is back: the link re-sends message 1
        assert await asyncio.wait_for(future, DEADLINE) == "got a"
        assert rx.sketch.seen == ["a"]
        assert rx.sessions.duplicates == 1
        assert len(rx.sessions) == 1 + GUEST_SESSIONS
    finally:
        await tx.stop()
        await rx.stop()


async def test_a_client_not_in_the_grid_keeps_its_window_across_a_reconnect():
    """A guest's session (a script naming itself "test") still drops a message re-sent on a new connection."""
    rx = await started("rx", pair())
    try:
        first = await hello(rx.address, "test", "mine", "one")
        again = await hello(rx.address, "test", "mine", "one", "two")
        assert first[1:] == ['{"type":"ack","id":1,"data":"got one"}']
        assert again[1:] == ['{"type":"ack","id":1,"data":"got one"}', '{"type":"ack","id":2,"data":"got two"}']
        assert rx.sketch.seen == ["one", "two"]
        assert rx.sessions.duplicates == 1
        # A connection without a session (send, status) takes no slot.
        async with connect(f"ws://{rx.address}/", subprotocols=MESH) as ws:
            await ws.send('{"type":"hello","node":"send"}')
            await ws.recv()
        assert len(rx.sessions) == 1
    finally:
        await rx.stop()


def three(**receiver: object):
    return build_grid(
        {
            "rx": {"sketch": "recorder", "port": 0, **receiver},
            "tx": {"sketch": "recorder"},
            "ty": {"sketch": "recorder"},
        },
        ["tx -> rx", "ty -> rx"],
    )


async def test_a_session_is_bounded_in_bytes_and_a_forgotten_message_is_still_a_duplicate():
    """Big acks: the oldest outcomes go past the byte budget; memory follows; a forgotten id never runs again."""
    budget = 256 * 1024
    session = Session("tx/big", budget=budget)
    ran: list[int] = []

    async def run(msg_id: int) -> tuple[bool, str]:
        ran.append(msg_id)
        return True, f"{msg_id:08d}" + "x" * 10_000  # a fresh ack of 10 KB each time

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for msg_id in range(1, 1001):
            await session.handle(msg_id, lambda m=msg_id: run(m))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert session.bytes <= budget and len(session.outcomes) == budget // (
        delivery.OUTCOME_BYTES + sys.getsizeof("0" * 10_008)
    )
    assert held < budget * 1.25, f"{held} bytes held for a budget of {budget}"
    assert await session.handle(1, lambda: run(-1)) == (True, "duplicate")  # forgotten, still a duplicate
    assert (await session.handle(1000, lambda: run(-1)))[1].startswith("00001000")  # remembered
    assert ran == list(range(1, 1001))
    # One ack bigger than the whole budget is still remembered: the newest outcome is never forgotten.
    huge = Session("tx/huge", budget=1024)
    await huge.handle(1, lambda: asyncio.sleep(0, (True, "y" * 4096)))
    assert huge.outcomes[1][1] == "y" * 4096 and WINDOW_BYTES > 1024


async def test_a_grid_peers_session_of_small_acks_stays_within_its_budget():
    """10,000 small acks in a grid peer's session: within WINDOW_BYTES, as traced by tracemalloc."""
    session = Session("tx/small")
    counter = itertools.count(1)

    async def run() -> tuple[bool, str]:
        return True, f"acknowledged {next(counter)}"

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for msg_id in range(1, delivery.WINDOW + 2_001):  # the window full, and 2,000 more through it
            await session.handle(msg_id, run)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(session.outcomes) == delivery.WINDOW and session.bytes <= WINDOW_BYTES
    assert held <= WINDOW_BYTES, f"{held} bytes held for a budget of {WINDOW_BYTES}"
