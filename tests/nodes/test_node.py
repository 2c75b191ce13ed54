"""The runtime apart from the sketch: whatever a sketch names its own things, its node serves, reports and hears."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.asyncio.client import connect

from mesh.grid import build_grid
from mesh.requests import query_status
from nodes import FactoryLoop, hears, reactive
from nodes.runtime import Node, open_together
from tests.helpers import DEADLINE, MS, fast_backoff, until


class Quiet(FactoryLoop):
    """Publishes when the test says so."""

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        return "ok"


def _public(names: Any) -> set[str]:
    return {name for name in names if not name.startswith("_")}


#: What a sketch may use (README, "What a sketch can use"): its own to override, at its own risk.
SURFACE = _public(dir(FactoryLoop))
#: Every public name of the runtime, methods and attributes; and "hear", which a sketch once could not use.
RUNTIME = sorted(
    (_public(dir(Node)) | _public(vars(Node(Quiet, "n", build_grid({"n": {"sketch": "quiet"}})))) | {"hear"}) - SURFACE
)


def test_the_surface_is_what_the_package_exports_for_sketches():
    """The sketch surface is small, and the runtime's machinery is not part of it."""
    assert SURFACE == {
        "setup", "loop", "reconfigure", "http", "serve_plain", "public_paths",
        "name", "grid", "log", "address", "targets", "random",
        "out", "stream", "stream_all", "post", "publish", "subscribe", "unsubscribe", "peers",
    }  # fmt: skip
    assert {"status", "sender", "hub", "run", "stop", "server", "sessions", "reload"} <= set(RUNTIME)


def own_sketch(name: str, kind: str, got: list[tuple[str, str]]) -> type[FactoryLoop]:
    """A sketch that uses ``name`` for its own attribute (set in setup) or method."""

    async def loop(self: FactoryLoop, channel: str, message: str) -> str:
        got.append((channel, message))
        return f"{channel}|{message}"

    namespace: dict[str, Any] = {"loop": reactive(loop)}
    if kind == "method":
        namespace[name] = lambda self, *args, **kwargs: "the sketch's own"
    else:
        namespace["setup"] = lambda self: setattr(self, name, "the sketch's own")
    return type("Own", (FactoryLoop,), namespace)


@pytest.mark.parametrize("kind", ["attribute", "method"])
@pytest.mark.parametrize("name", RUNTIME)
async def test_a_sketch_may_name_its_own_things_after_any_runtime_member(name: str, kind: str):
    """The node of a sketch with its own `status`, `links`, `run`, `hear`... still serves, reports status and hears."""
    got: list[tuple[str, str]] = []
    grid = build_grid(
        {"pub": {"sketch": "quiet", "port": 0}, "own": {"sketch": "own", "port": 0, "subscribe": ["pub/n"]}}
    )
    nodes = {
        "pub": Node(Quiet, "pub", grid, reconnect_delays=fast_backoff),
        "own": Node(own_sketch(name, kind, got), "own", grid, reconnect_delays=fast_backoff),
    }
    await open_together(nodes)
    for node in nodes.values():
        node.begin()
    pub, own = nodes["pub"], nodes["own"]
    try:
        async with connect(f"ws://{own.address}/pin", open_timeout=DEADLINE) as ws:
            await ws.send("1")
            assert await ws.recv() == "pin|1"
        report = await query_status("own", f"ws://{own.address}", open_timeout=DEADLINE)
        assert (report["node"], report["messages_in"]) == ("own", 1)
        await until(lambda: pub.hub.count == 1, "the subscription at the publisher")
        assert await pub.sketch.publish("n", "x") == 1
        await until(lambda: ("pub/n", "x") in got, "the publication at loop()")
    finally:
        for node in (own, pub):
            await node.stop()


async def test_hears_keeps_topics_apart_from_messages():
    """A sketch with a @hears method gets the grid's topics there, not at loop()."""
    heard: list[tuple[str, str]] = []
    looped: list[str] = []

    class Listener(FactoryLoop):
        @hears
        def topic(self, key: str, data: str) -> None:
            heard.append((key, data))

        @reactive
        async def loop(self, channel: str, message: str) -> str:
            looped.append(message)
            return "ok"

    grid = build_grid({"pub": {"sketch": "quiet", "port": 0}, "sub": {"sketch": "listener", "subscribe": ["pub/#"]}})
    nodes = {"pub": Node(Quiet, "pub", grid), "sub": Node(Listener, "sub", grid, reconnect_delays=fast_backoff)}
    await open_together(nodes)
    for node in nodes.values():
        node.begin()
    try:
        await until(lambda: nodes["pub"].hub.count == 1, "the subscription at the publisher")
        await nodes["pub"].sketch.publish("a/b", 1)
        await until(lambda: ("pub/a/b", "1") in heard, "the topic at the @hears method")
        assert looped == []
    finally:
        for node in (nodes["sub"], nodes["pub"]):
            await node.stop()


class Held(FactoryLoop):
    """Each loop() waits until the test lets it go."""

    go: asyncio.Event

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        await self.go.wait()
        return "done"


async def test_idle_returns_once_no_loop_runs_even_after_a_waiter_gave_up():
    """reactor.idle() (what a stop waits for, within its grace) returns at once when no loop() runs, and once the
    last one has finished otherwise; a waiter that gives up (the grace ran out) leaves it working for the next."""
    node = Node(Held, "held", build_grid({"held": {"sketch": "held"}}))
    node.sketch.go = asyncio.Event()
    reactor = node.reactor
    await asyncio.wait_for(reactor.idle(), DEADLINE)
    calls = [asyncio.create_task(reactor.handle("", str(i))) for i in range(2)]
    await until(lambda: reactor.inflight == 2, "both messages in loop()")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reactor.idle(), MS)
    waiting = asyncio.create_task(reactor.idle())
    node.sketch.go.set()
    await asyncio.wait_for(waiting, DEADLINE)
    assert [await call for call in calls] == [(True, "done")] * 2 and reactor.inflight == 0
