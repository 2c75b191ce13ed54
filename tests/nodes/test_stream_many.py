"""stream() to several targets at once: each gets everything, in order; one failing target fails the call, not the others."""

from __future__ import annotations

import pytest

from mesh.errors import PeerUnavailable, RemoteError
from mesh.grid import build_grid
from nodes import FactoryLoop, reactive
from nodes.runtime import Node, open_together
from tests.helpers import MS, fast_backoff, free_ports

received: dict[str, list[str]] = {}


class Recorder(FactoryLoop):
    """Keeps what it was sent, in order; answers with its name and the message (fails on "boom" if `fail`)."""

    def setup(self, fail: bool = False) -> None:
        self.fail = fail

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        received.setdefault(self.name, []).append(message)
        if self.fail:
            raise RuntimeError("boom")
        return f"{self.name}:{message}"


class Sender(FactoryLoop):
    @reactive
    async def loop(self, channel: str, message: str) -> str:
        return "ok"


async def started(targets: dict[str, dict], down: tuple[str, ...] = ()) -> dict[str, Node]:
    """The sender and its targets, each on port 0 (the ``down`` ones at a port where nothing listens)."""
    received.clear()
    ports = dict(zip(down, free_ports(len(down)), strict=True))
    nodes_spec = {
        "tx": {"sketch": "sender"},
        **{name: {"sketch": "recorder", "port": 0, "params": params} for name, params in targets.items()},
        **{name: {"sketch": "recorder", "port": port} for name, port in ports.items()},
    }
    grid = build_grid(nodes_spec, [f"tx -> {name}" for name in [*targets, *down]])
    nodes = {name: Node(Recorder, name, grid) for name in targets}
    nodes["tx"] = Node(Sender, "tx", grid, wait=300 * MS, reconnect_delays=fast_backoff)
    await open_together(nodes)
    return nodes


async def stopped(nodes: dict[str, Node]) -> None:
    await nodes["tx"].stop()
    for name, node in nodes.items():
        if name != "tx":
            await node.stop()


async def test_stream_to_several_targets_gives_each_all_of_it_in_order():
    """Every target gets every message, in order, and the answer is each target's acks, in order, by target."""
    nodes = await started({"a": {}, "b": {}, "c": {}})
    try:
        tx = nodes["tx"].sketch
        first = await tx.stream_all(("c", "a", "b"), [str(i) for i in range(50)])
        second = await tx.stream_all(tx.targets, "last")
        assert list(first) == ["c", "a", "b"]
        assert first == {name: [f"{name}:{i}" for i in range(50)] for name in ("c", "a", "b")}
        assert second == {name: [f"{name}:last"] for name in ("a", "b", "c")}
        assert received == {name: [*map(str, range(50)), "last"] for name in ("a", "b", "c")}
        assert await tx.stream_all([], "nothing") == {}
    finally:
        await stopped(nodes)


async def test_a_target_whose_loop_fails_fails_the_call_once_the_others_have_everything():
    """One target's loop() raises: the call raises its error, as for one target; the others got and acked all."""
    nodes = await started({"a": {}, "bad": {"fail": True}, "c": {}})
    try:
        tx = nodes["tx"].sketch
        with pytest.raises(RemoteError, match=r"bad answered with an error: loop\(\) failed: RuntimeError: boom"):
            await tx.stream_all(tx.targets, ["1", "2", "3"])
        assert received == {"a": ["1", "2", "3"], "bad": ["1", "2", "3"], "c": ["1", "2", "3"]}
        assert {name: nodes["tx"].sender.links[name].pending for name in ("a", "bad", "c")} == {
            "a": 0,
            "bad": 0,
            "c": 0,
        }
        assert await tx.stream_all(["a", "c"], "next") == {"a": ["a:next"], "c": ["c:next"]}  # the links go on
    finally:
        await stopped(nodes)


async def test_a_target_that_is_down_does_not_hold_the_others_back():
    """A target nobody listens for fails the call once the link's patience runs out; the others got everything."""
    nodes = await started({"a": {}, "c": {}}, down=("gone",))
    try:
        tx = nodes["tx"].sketch
        with pytest.raises(PeerUnavailable, match="gone"):
            await tx.stream_all(["a", "gone", "c"], ["1", "2"])
        assert received == {"a": ["1", "2"], "c": ["1", "2"]}
    finally:
        await stopped(nodes)


async def test_the_first_failure_in_the_order_given_is_raised():
    """Two targets fail: the error raised is the first one's in the order of the call, whichever answered first."""
    nodes = await started({"x": {"fail": True}, "y": {"fail": True}})
    try:
        tx = nodes["tx"].sketch
        with pytest.raises(RemoteError, match=r"^y answered"):
            await tx.stream_all(["y", "x"], "1")
        with pytest.raises(RemoteError, match=r"^x answered"):
            await tx.stream_all(["x", "y"], "2")
    finally:
        await stopped(nodes)
