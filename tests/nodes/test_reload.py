"""A running node follows the edits of its grid.yaml: wires, peers, subscriptions, params; bad edits are one line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from mesh.grid import build_grid
from nodes import FactoryLoop, hears, reactive
from nodes.reload import GridSource, GridWatch
from nodes.runtime import Node, open_together
from tests.helpers import DEADLINE, MS, arduino, fast_backoff, free_ports, shipped_grid_on_free_ports, until, write_grid

#: How often the nodes of these tests look at their grid file.
POLL = 20 * MS


class Pin(FactoryLoop):
    """Streams each message it gets to every node it is wired to."""

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        for target in self.targets:
            await self.stream(target, message)
        return "sent"


class Lamp(FactoryLoop):
    """Keeps what it is sent, and what it hears; takes new params while it runs."""

    def setup(self, color: str = "red") -> None:
        self.color = color
        self.got: list[str] = []
        self.heard: list[tuple[str, str]] = []
        self.reconfigured: list[dict[str, Any]] = []

    def reconfigure(self, color: str = "red") -> None:
        if color == "black":
            raise ValueError("a lamp cannot be black")
        self.color = color
        self.reconfigured.append({"color": color})

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        self.got.append(message)
        return f"{self.color} {message}"

    @hears
    def hear(self, key: str, data: str) -> None:
        self.heard.append((key, data))


class Fixed(FactoryLoop):
    """A sketch with params and no reconfigure()."""

    def setup(self, level: int = 1) -> None:
        self.level = level

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        return "ok"


SKETCHES: dict[str, type[FactoryLoop]] = {"pin": Pin, "lamp": Lamp, "fixed": Fixed}


#: The grid watcher's own lines (a file that cannot be read): one for all the nodes.
WATCH_LOG = logging.getLogger("mesh.grid")


def grid_text(nodes: Mapping[str, Mapping[str, Any]], wires: Iterable[str]) -> str:
    """A grid.yaml, one node a line (as JSON, which YAML reads as a flow mapping)."""
    lines = ["nodes:", *(f"  {name}: {json.dumps(dict(spec))}" for name, spec in nodes.items())]
    wires = list(wires)
    lines += ["wires:", *(f"  - {wire}" for wire in wires)] if wires else []
    return "\n".join(lines) + "\n"


class Bench:
    """Nodes running in this event loop on port 0, each following the same grid file."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "grid.yaml"
        self.nodes: dict[str, Node] = {}
        self.layout: dict[str, dict[str, Any]] = {}  # what the file says, ports as bound
        self.wires: list[str] = []
        self.watching: asyncio.Task[None] | None = None

    async def start(self, layout: Mapping[str, Mapping[str, Any]], wires: Iterable[str] = ()) -> None:
        """Open every node of ``layout`` (port 0 if it has a port), write the file with the ports bound, begin."""
        self.wires = list(wires)
        grid = build_grid({name: dict(spec) for name, spec in layout.items()}, self.wires)
        self.nodes = {
            name: Node(
                SKETCHES[spec.sketch],
                name,
                grid,
                reconnect_delays=fast_backoff,
            )
            for name, spec in grid.nodes.items()
        }
        grid = await open_together(self.nodes)
        self.layout = {name: {**layout[name], "port": spec.port} for name, spec in grid.nodes.items()}
        for spec in self.layout.values():
            if spec["port"] is None:
                del spec["port"]
        self.write()
        for node in self.nodes.values():
            node.begin()
        source = GridSource(self.path, every=POLL)  # made once the file is written: edits from now on are followed
        self.watching = asyncio.create_task(GridWatch(source, list(self.nodes.values()), WATCH_LOG).run())

    async def add(self, name: str, sketch: str, **fields: Any) -> Node:
        """Start one more node on its own (port 0), not in the file yet: the test's edit adds it."""
        node = Node(SKETCHES[sketch], name, build_grid({name: {"sketch": sketch, "port": 0}}))
        await node.start()
        self.nodes[name] = node
        self.layout[name] = {"sketch": sketch, "port": node.port, **fields}
        return node

    def write(self, text: str | None = None) -> None:
        """Write the file (the layout and wires, or ``text``) in one step, as an editor saving by rename does."""
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(grid_text(self.layout, self.wires) if text is None else text)
        os.replace(temporary, self.path)

    async def stop(self) -> None:
        if self.watching is not None:
            self.watching.cancel()
            await asyncio.gather(self.watching, return_exceptions=True)
        for node in sorted(self.nodes.values(), key=lambda n: n.server is not None):
            await node.stop()


@pytest.fixture
async def bench(tmp_path: Path):
    bench = Bench(tmp_path)
    yield bench
    await bench.stop()


def lines(caplog: pytest.LogCaptureFixture, node: str) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == f"mesh.{node}"]


async def test_a_new_wire_to_a_new_node_carries_the_next_message_without_a_restart(bench: Bench, caplog):
    """Adding a node and the wire pin -> led to grid.yaml: the running pin streams to it, and says so in one line."""
    caplog.set_level(logging.INFO)
    await bench.start({"pin": {"sketch": "pin", "port": 0}, "bell": {"sketch": "lamp", "port": 0}}, ["pin -> bell"])
    pin = bench.nodes["pin"]
    led = await bench.add("led", "lamp", params={"color": "green"})
    bench.wires.append("pin -> led")
    bench.write()
    await until(lambda: pin.targets == ("bell", "led"), "the new wire at the pin")
    assert await pin.reactor.handle("", "1") == (True, "sent")
    assert led.sketch.got == ["1"]
    assert bench.nodes["bell"].sketch.got == ["1"]
    assert f"{bench.path} reloaded: node led added, wire pin -> led added" in lines(caplog, "pin")
    assert f"{bench.path} reloaded: node led added, wire pin -> led added" in lines(caplog, "bell")


async def test_an_edit_that_does_not_validate_is_one_line_and_the_running_grid_stays(bench: Bench, caplog):
    """A bad edit: `grid.yaml:LINE: ...` once, the node streams on as before; the next valid edit is applied."""
    await bench.start(
        {
            "pin": {"sketch": "pin", "port": 0},
            "bell": {"sketch": "lamp", "port": 0},
            "led": {"sketch": "lamp", "port": 0},
        },
        ["pin -> bell"],
    )
    pin = bench.nodes["pin"]
    good = grid_text(bench.layout, bench.wires)
    bench.write(good + "  - pin -> ledd\n")
    error = f"{bench.path}:7: wire 'pin -> ledd' names unknown node 'ledd'"
    await until(lambda: any(line.startswith(error) for line in lines(caplog, "grid")), "the error line")
    assert await pin.reactor.handle("", "a") == (True, "sent")
    assert bench.nodes["bell"].sketch.got == ["a"]
    # Further looks at the same bad file say nothing more; a good edit is applied.
    bench.wires.append("pin -> led")
    bench.write()
    await until(lambda: pin.targets == ("bell", "led"), "the good edit at the pin")
    refused = [line for line in lines(caplog, "grid") if line.startswith(error)]
    assert len(refused) == 1
    assert refused[0].endswith("did you mean 'led'?; keeping the running grid")
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_refused_edit_put_back_as_it_was_is_said_valid_again(bench: Bench, caplog):
    """A user who fixes a bad edit by undoing it reads that the grid is valid again: nothing changes, nothing is lost."""
    caplog.set_level(logging.INFO)
    await bench.start({"pin": {"sketch": "pin", "port": 0}, "bell": {"sketch": "lamp", "port": 0}}, ["pin -> bell"])
    good = grid_text(bench.layout, bench.wires)
    bench.write(good + "  - pin -> bel\n")
    await until(lambda: any("names unknown node 'bel'" in line for line in lines(caplog, "grid")), "the error line")
    bench.write(good)
    await until(lambda: any("is valid again; nothing to change" in line for line in lines(caplog, "grid")), "the fix")
    assert bench.nodes["pin"].targets == ("bell",)


async def test_a_file_gone_for_a_moment_keeps_the_running_grid(bench: Bench, caplog):
    """grid.yaml removed (an editor's rename, a checkout) changes nothing; written back with an edit, it is applied."""
    await bench.start({"pin": {"sketch": "pin", "port": 0}, "bell": {"sketch": "lamp", "port": 0}}, ["pin -> bell"])
    pin = bench.nodes["pin"]
    bench.path.unlink()
    await asyncio.sleep(5 * POLL)  # the fault's own length: the file stays away for five looks
    assert await pin.reactor.handle("", "1") == (True, "sent")
    bench.wires.clear()
    bench.write()
    await until(lambda: pin.targets == (), "the wire removed")
    assert not [line for line in lines(caplog, "grid") if "keeping" in line]


async def test_a_link_no_longer_wired_is_closed_once_what_it_carries_is_delivered(bench: Bench, caplog):
    """Removing pin -> bell: the pin's link to the bell closes, and the bell gets nothing more."""
    caplog.set_level(logging.INFO)
    await bench.start({"pin": {"sketch": "pin", "port": 0}, "bell": {"sketch": "lamp", "port": 0}}, ["pin -> bell"])
    pin, bell = bench.nodes["pin"], bench.nodes["bell"]
    assert await pin.reactor.handle("", "1") == (True, "sent")
    bench.wires.clear()
    bench.write()
    await until(lambda: "link to bell closed: no longer needed" in lines(caplog, "pin"), "the link to the bell closed")
    assert "bell" not in pin.sender.links
    assert f"{bench.path} reloaded: wire pin -> bell removed" in lines(caplog, "pin")
    assert await pin.reactor.handle("", "2") == (True, "sent")
    assert bell.sketch.got == ["1"]


async def test_a_peer_that_moves_is_followed_to_its_new_address(bench: Bench, caplog):
    """The bell restarted on another port and the grid saying so: the pin's link takes what waits there, once."""
    caplog.set_level(logging.INFO)
    await bench.start({"pin": {"sketch": "pin", "port": 0}, "bell": {"sketch": "lamp", "port": 0}}, ["pin -> bell"])
    pin = bench.nodes["pin"]
    assert await pin.reactor.handle("", "1") == (True, "sent")
    await bench.nodes.pop("bell").stop()
    waiting = asyncio.create_task(pin.reactor.handle("", "2"))  # unacked while the bell is away
    await until(lambda: pin.sender.links["bell"].pending == 1, "the message waiting in the pin's outbox")
    moved = await bench.add("bell", "lamp")
    bench.write()
    assert await asyncio.wait_for(waiting, DEADLINE) == (True, "sent")
    assert await pin.reactor.handle("", "3") == (True, "sent")
    assert moved.sketch.got == ["2", "3"]
    assert pin.sender.links["bell"].uri == f"ws://127.0.0.1:{moved.port}"
    assert f"bell moved to ws://127.0.0.1:{moved.port}" in lines(caplog, "pin")


async def test_subscriptions_follow_the_grid_and_their_publishers(bench: Bench, caplog):
    """A `subscribe:` added hears at once, a new publisher is subscribed at, a removed pattern stops."""
    await bench.start({"pin": {"sketch": "pin", "port": 0}, "ear": {"sketch": "lamp"}})
    pin, ear = bench.nodes["pin"], bench.nodes["ear"]
    bench.layout["ear"]["subscribe"] = ["+/level"]
    bench.write()
    await until(lambda: len(pin.hub.subscribers) == 1, "the ear subscribed at the pin")
    await pin.sender.publish("level", 1)
    await until(lambda: ear.sketch.heard == [("pin/level", "1")], "the pin's level at the ear")
    other = await bench.add("other", "pin")
    bench.write()
    await until(lambda: len(other.hub.subscribers) == 1, "the ear subscribed at the new publisher")
    await other.sender.publish("level", 2)
    await until(lambda: ("other/level", "2") in ear.sketch.heard, "the new publisher's level at the ear")
    del bench.layout["ear"]["subscribe"]
    bench.write()
    await until(lambda: not pin.hub.count and not other.hub.count, "the ear unsubscribed everywhere")
    assert ear.inbox.handlers == {}
    await until(lambda: not ear.sender.links, "the ear's links closed")


async def test_params_go_to_reconfigure_or_are_said_to_need_a_restart(bench: Bench, caplog):
    """reconfigure() gets the new params; a sketch without it is told in one line; bad params keep the grid."""
    await bench.start({"lamp": {"sketch": "lamp", "port": 0}, "fixed": {"sketch": "fixed", "port": 0}})
    lamp, fixed = bench.nodes["lamp"], bench.nodes["fixed"]
    bench.layout["lamp"]["params"] = {"color": "blue"}
    bench.layout["fixed"]["params"] = {"level": 3}
    bench.write()
    await until(lambda: lamp.sketch.reconfigured == [{"color": "blue"}], "the lamp reconfigured")
    await until(lambda: fixed.spec.params == {"level": 3}, "the new params at the fixed node")
    assert fixed.sketch.level == 1
    assert (
        f"{bench.path}:3: node 'fixed': params changed; its sketch has no reconfigure(), "
        "so they apply when the node restarts" in lines(caplog, "fixed")
    )
    bench.layout["lamp"]["params"] = {"colour": "blue"}  # setup() takes no such parameter: refused as a whole
    bench.layout["fixed"]["params"] = {"level": 4}
    bench.write()
    await until(lambda: fixed.spec.params == {"level": 4}, "the next edit at the fixed node")
    await until(lambda: any("colour" in line for line in lines(caplog, "lamp")), "the lamp's error")
    assert lamp.spec.params == {"color": "blue"}
    assert [line for line in lines(caplog, "lamp") if "colour" in line] == [
        f"{bench.path}:2: node 'lamp' (sketch lamp) takes no parameter 'colour'; its parameters: color; "
        "keeping the running grid"
    ]
    bench.layout["lamp"]["params"] = {"color": "black"}  # reconfigure() refuses it: one line
    bench.write()
    await until(lambda: any("black" in line for line in lines(caplog, "lamp")), "the lamp's refusal")
    assert f"{bench.path}:2: node 'lamp': reconfigure: a lamp cannot be black" in lines(caplog, "lamp")
    assert lamp.sketch.color == "blue"


async def test_a_new_timeout_bounds_the_next_loop(bench: Bench, caplog):
    """The grid's timeout: for a node, edited while it runs, is the bound its next loop() gets, and is said."""
    caplog.set_level(logging.INFO)
    await bench.start({"lamp": {"sketch": "lamp", "port": 0}})
    lamp = bench.nodes["lamp"]
    assert lamp.reactor.timeout is None
    bench.layout["lamp"]["timeout"] = 0.5
    bench.write()
    await until(lambda: lamp.reactor.timeout == 0.5, "the new timeout at the lamp's reactor")
    assert f"{bench.path} reloaded: node lamp: timeout changed" in lines(caplog, "lamp")
    bench.layout["lamp"].pop("timeout")
    bench.write()
    await until(lambda: lamp.reactor.timeout is None, "no timeout again")


async def test_what_cannot_change_while_running_is_said_in_one_line(bench: Bench, caplog):
    """A node's own port or sketch, or the grid's auth or tls, edited: one line each, restart; the rest is applied."""
    await bench.start({"pin": {"sketch": "pin", "port": 0}, "bell": {"sketch": "lamp", "port": 0}})
    pin = bench.nodes["pin"]
    port = pin.port
    bench.layout["pin"] = {"sketch": "lamp", "port": 1 if port != 1 else 2}
    bench.wires.append("pin -> bell")
    tls = "tls: {cert: node.pem, key: node-key.pem, ca: ca.pem}\n"
    bench.write("auth: {token_env: MESH_TEST_TOKEN}\n" + tls + grid_text(bench.layout, bench.wires))
    await until(lambda: pin.targets == ("bell",), "the wire at the pin")
    assert lines(caplog, "pin") == [
        f"{bench.path}: auth cannot change while running: restart the node",
        f"{bench.path}: tls cannot change while running: restart the node",
        f"{bench.path}:4: node 'pin': port, sketch cannot change while running: restart the node",
    ]
    assert (pin.spec.port, pin.spec.sketch, pin.port, pin.grid.auth_token_env) == (port, "pin", port, None)
    assert (pin.grid.tls, pin.grid.node("bell").uri) == (None, f"ws://127.0.0.1:{bench.nodes['bell'].port}")
    assert await pin.reactor.handle("", "1") == (True, "sent")


@pytest.mark.e2e
def test_a_wire_added_to_a_running_circuit_reaches_the_new_node_without_a_restart(tmp_path: Path):
    """The shipped circuit from a grid file: grid.yaml gains a led and iopin -> led; the same iopin streams to it."""
    path = shipped_grid_on_free_ports(tmp_path)
    text = path.read_text()
    grid = ["--grid", str(path)]
    buzzer = arduino(*grid, "buzzer", "--sound", "beep")  # an override the reload keeps: no params change
    buzzer.expect("serving on")
    iopin = arduino(*grid, "iopin")
    iopin.expect("serving on")
    clock = arduino(*grid, "clock", "--tacks", "0")
    iopin.expect("link to buzzer up")
    (led_port,) = free_ports(1)
    text = text.replace("nodes:\n", f"nodes:\n  led: {{sketch: buzzer, port: {led_port}, params: {{sound: lit}}}}\n")
    write_grid(tmp_path, text.replace("  - iopin -> buzzer\n", "  - iopin -> buzzer\n  - iopin -> led\n"))
    iopin.expect(r"reloaded: node led added, wire iopin -> led added")
    clock.expect(r"reloaded: node led added, wire iopin -> led added")
    buzzer.expect(r"reloaded: node led added, wire iopin -> led added$")
    led = arduino(*grid, "led")
    led.expect("serving on")
    led.expect(r"signal [01]: (lit|\.\.\.)")
    iopin.expect("link to led up")
    assert iopin.popen.poll() is None  # the same process: never restarted
    assert "cannot change while running" not in iopin.output()
    buzzer.expect("signal 1: beep")
    assert "params changed" not in buzzer.output()
