"""The three nodes in this test's event loop, on port 0: ticks, acks, sounds, connections."""

from __future__ import annotations

import asyncio
import random

import pytest
from websockets.asyncio.client import connect

import sketches
from mesh.errors import ListenError, UnknownNodeError
from mesh.grid import build_grid
from nodes import FactoryLoop, reactive
from nodes.circuit import run_together, stop_order
from nodes.runtime import Node
from nodes.server import IN_USE
from tests.helpers import DEADLINE, MS, free_ports, start_circuit, stop_circuit, until

SEED = 7


def circuit(tacks: int, *, sequence: int = 3, sound: str = "beep"):
    return build_grid(
        {
            "clock": {"sketch": "clock", "params": {"tacks": tacks, "delay": 5 * MS}},
            "iopin": {"sketch": "iopin", "port": 0, "params": {"chance": 0.5, "sequence": sequence, "seed": SEED}},
            "buzzer": {"sketch": "buzzer", "port": 0, "params": {"sound": sound}},
        },
        ["clock -> iopin", "iopin -> buzzer"],
    )


def expected_sounds(ticks: int, sequence: int, sound: str) -> list[str]:
    rng = random.Random(SEED)
    return [sound if rng.random() < 0.5 else "..." for _ in range(ticks * sequence)]


async def test_ticks_reach_the_buzzer_over_one_connection_per_wire():
    """N ticks give N acks at the clock, the seeded sounds at the buzzer, and one connection per wire."""
    ticks = 20
    nodes = await start_circuit(circuit(ticks))
    try:
        await asyncio.wait_for(nodes["clock"].wait(), DEADLINE)
        assert list(nodes["clock"].sketch.acks) == ["acknowledged"] * ticks
        assert list(nodes["buzzer"].sketch.sounds) == expected_sounds(ticks, 3, "beep")
        assert nodes["iopin"].server.connections == 1
        assert nodes["buzzer"].server.connections == 1
        assert nodes["clock"].sender.links["iopin"].connections == 1
        assert nodes["iopin"].sender.links["buzzer"].connections == 1
        assert nodes["iopin"].reactor.messages_in == ticks
        assert nodes["buzzer"].reactor.messages_in == ticks * 3
    finally:
        await stop_circuit(nodes)


async def test_serving_on_logs_the_bound_port(caplog):
    """A node on port 0 logs exactly one 'serving on HOST:PORT' line with the real port."""
    caplog.set_level("INFO")
    nodes = await start_circuit(circuit(1))
    try:
        buzzer = nodes["buzzer"]
        lines = [r.getMessage() for r in caplog.records if r.name == "mesh.buzzer" and "serving on" in r.getMessage()]
        assert lines == [f"serving on 127.0.0.1:{buzzer.port}"]
        assert buzzer.port != 0
    finally:
        await stop_circuit(nodes)


async def test_a_plain_websocket_client_gets_the_buzzers_answer():
    """Any websocket client, no subprotocol: a text frame in, the ack back."""
    nodes = await start_circuit(circuit(0 + 1))
    try:
        async with connect(f"ws://{nodes['buzzer'].address}/") as ws:
            await ws.send("1")
            assert await ws.recv() == "beep"
            await ws.send("0")
            assert await ws.recv() == "..."
    finally:
        await stop_circuit(nodes)


class Echo(FactoryLoop):
    """Answers with the channel and the message it got."""

    @reactive
    async def loop(self, channel: str, message: str) -> str | None:
        if message == "nothing":
            return None
        if message == "boom":
            raise RuntimeError("boom")
        return f"{channel}|{message}"


async def echo_pair():
    grid = build_grid({"echo": {"sketch": "echo", "port": 0}, "caller": {"sketch": "echo"}}, ["caller -> echo"])
    echo = Node(Echo, "echo", grid)
    await echo.open()
    grid = grid.with_node("echo", port=echo.port)
    caller = Node(Echo, "caller", grid)
    await caller.open()
    return echo, caller


async def test_plain_client_uri_path_is_the_channel():
    """The URI path of a plain client is the channel; None from loop() is acked as 'n/a'."""
    echo, caller = await echo_pair()
    try:
        async with connect(f"ws://{echo.address}/pin/3") as ws:
            await ws.send("hello")
            assert await ws.recv() == "pin/3|hello"
            await ws.send("nothing")
            assert await ws.recv() == "n/a"
    finally:
        await caller.stop()
        await echo.stop()


async def test_stream_reuses_one_link_and_keeps_order():
    """Many stream() calls, one connection; acks come back in the order sent."""
    echo, caller = await echo_pair()
    try:
        acks = await caller.sketch.stream("echo", [f"m{i}" for i in range(100)], channel="c")
        assert acks == [f"c|m{i}" for i in range(100)]
        for i in range(20):
            assert await caller.sketch.stream("echo", i) == [f"|{i}"]
        both = await asyncio.gather(caller.sketch.stream("echo", ["a", "b"]), caller.sketch.stream("echo", "c"))
        assert both == [["|a", "|b"], ["|c"]]
        assert caller.sender.links["echo"].connections == 1
        assert echo.server.connections == 1
    finally:
        await caller.stop()
        await echo.stop()


async def test_a_failing_loop_answers_an_error_and_keeps_serving(caplog):
    """An exception in loop() is logged once with its traceback; the sender gets an error; the node goes on."""
    from mesh.errors import RemoteError

    echo, caller = await echo_pair()
    try:
        with pytest.raises(RemoteError, match=r"echo answered with an error: loop\(\) failed: RuntimeError: boom"):
            await caller.sketch.stream("echo", "boom")
        failures = [r for r in caplog.records if r.name == "mesh.echo" and r.exc_info]
        assert len(failures) == 1
        assert await caller.sketch.stream("echo", "again") == ["|again"]
        async with connect(f"ws://{echo.address}/") as ws:
            await ws.send("boom")
            assert await ws.recv() == "error: loop() failed: RuntimeError: boom"
            await ws.send("ok")
            assert await ws.recv() == "|ok"
    finally:
        await caller.stop()
        await echo.stop()


async def test_stream_to_an_unknown_node_lists_the_known_ones():
    """stream() to a name the grid lacks raises an error naming the known nodes."""
    echo, caller = await echo_pair()
    try:
        with pytest.raises(UnknownNodeError, match=r"unknown node 'buzer'; known nodes: caller, echo"):
            await caller.sketch.stream("buzer", "1")
    finally:
        await caller.stop()
        await echo.stop()


async def test_a_link_waits_for_a_peer_that_starts_late():
    """A stream to a peer that is not listening yet waits for it; nothing is lost."""
    grid = build_grid({"echo": {"sketch": "echo", "port": 0}, "caller": {"sketch": "echo"}}, ["caller -> echo"])
    echo = Node(Echo, "echo", grid)
    await echo.open()
    port = echo.port
    await echo.stop()  # the port is known but nobody listens on it now
    grid = grid.with_node("echo", port=port)
    from tests.helpers import fast_backoff

    caller = Node(Echo, "caller", grid, reconnect_delays=fast_backoff)
    await caller.open()
    sending = asyncio.create_task(caller.sketch.stream("echo", ["1", "2", "3"]))
    await until(
        lambda: "echo" in caller.sender.links and caller.sender.links["echo"].state == "retrying", "the link to retry"
    )
    assert not sending.done()
    late = Node(Echo, "echo", grid)
    await late.open()
    try:
        assert await asyncio.wait_for(sending, DEADLINE) == ["|1", "|2", "|3"]
    finally:
        await caller.stop()
        await late.stop()


async def test_a_mesh_client_gets_error_frames_and_the_node_goes_on():
    """Bad mesh frames are answered with an error frame; the same connection then works."""
    import json

    echo, caller = await echo_pair()
    try:
        async with connect(f"ws://{echo.address}/", subprotocols=["arduino-mesh.1"]) as ws:
            assert ws.subprotocol == "arduino-mesh.1"
            await ws.send("not json")
            assert json.loads(await ws.recv()) == {
                "type": "error",
                "id": None,
                "error": "frame is not JSON: Expecting value: line 1 column 1 (char 0)",
            }
            await ws.send('{"type":"msg","id":1,"data":"x"}')
            assert json.loads(await ws.recv())["error"] == "'msg' frame has no 'channel' field"
            await ws.send(b"\x00\x01")
            assert json.loads(await ws.recv())["error"] == "binary frames are not supported; send text"
            await ws.send('{"type":"hello","node":"tester"}')
            assert json.loads(await ws.recv()) == {"type": "hello", "node": "echo"}
            await ws.send('{"type":"msg","id":2,"channel":"c","data":"x"}')
            assert json.loads(await ws.recv()) == {"type": "ack", "id": 2, "data": "c|x"}
    finally:
        await caller.stop()
        await echo.stop()


async def test_stop_closes_connections_with_1001():
    """A stopping node closes its connections with 1001 (going away)."""
    echo, caller = await echo_pair()
    async with connect(f"ws://{echo.address}/") as ws:
        await ws.send("x")
        await ws.recv()
        await caller.stop()
        await echo.stop()
        await ws.wait_closed()
        assert ws.close_code == 1001


def test_nodes_stop_after_those_wired_to_them():
    """stop_order: a source before its target, whatever order they are given in; a loop is still stopped whole."""
    grid = circuit(1)
    nodes = {name: Node(sketches.load(spec.sketch), name, grid) for name, spec in grid.nodes.items()}
    given = [nodes["buzzer"], nodes["iopin"], nodes["clock"]]
    assert [node.name for node in stop_order(given)] == ["clock", "iopin", "buzzer"]
    ring = build_grid(
        {name: {"sketch": "buzzer", "port": 0} for name in ("a", "b", "c")}, ["a -> b", "b -> c", "c -> a"]
    )
    looped = [Node(sketches.load("buzzer"), name, ring) for name in ("b", "a", "c")]
    assert sorted(node.name for node in stop_order(looped)) == ["a", "b", "c"]


async def test_run_together_stops_the_nodes_already_open_when_one_cannot_listen(caplog):
    """A node whose port is taken: the error goes up, and the nodes that were already serving are stopped."""
    caplog.set_level("INFO")
    blocker = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    taken = blocker.sockets[0].getsockname()[1]
    (free,) = free_ports(1)
    grid = circuit(1).with_node("iopin", port=free).with_node("buzzer", port=taken)  # the iopin opens first
    nodes = [Node(sketches.load(spec.sketch), name, grid) for name, spec in grid.nodes.items()]
    try:
        with pytest.raises(ListenError) as caught:
            await run_together(nodes)
        assert str(caught.value) == f"buzzer: cannot listen on 127.0.0.1:{taken}: address already in use ({IN_USE})"
        assert f"serving on 127.0.0.1:{free}" in caplog.messages
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", free)
    finally:
        blocker.close()
        await blocker.wait_closed()
