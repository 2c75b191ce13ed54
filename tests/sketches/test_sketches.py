"""The built-in sketches' logic, without sockets but for one small circuit: seeded bits, sounds, parameters, subscriptions."""

from __future__ import annotations

import linecache
import logging
from pathlib import Path

import pytest

import sketches
from mesh.errors import GridError, SketchError
from mesh.grid import build_grid
from nodes.runtime import Node
from sketches.buzzer import Buzzer
from sketches.iopin import IOPin
from tests.helpers import start_circuit, stop_circuit, until


def node(cls, **params):
    grid = build_grid({"n": {"sketch": cls.__module__.rsplit(".", 1)[1], "port": 0, "params": params}})
    sketch = Node(cls, "n", grid).sketch
    sketch.setup(**params)
    return sketch


def test_the_shipped_sketches_are_found_by_module_name():
    """sketches.available() lists the modules; load() returns their FactoryLoop subclass."""
    assert {"buzzer", "clock", "dashboard", "iopin", "mqtt"} <= set(sketches.available())
    assert sketches.load("iopin") is IOPin
    with pytest.raises(
        SketchError,
        match=r"unknown sketch 'iopinn'; tried the built-in sketches; known sketches: buzzer, clock, dashboard, iopin, mqtt",
    ):
        sketches.load("iopinn")


@pytest.mark.parametrize(
    ("seed", "chance", "sequence", "bits"),
    [
        (7, 0.5, 3, [[1, 1, 0], [1, 0, 1]]),
        (1, 0.6, 4, [[1, 0, 0, 1], [1, 1, 0, 0]]),
        (3, 0.0, 2, [[0, 0], [0, 0]]),
        (3, 1.0, 2, [[1, 1], [1, 1]]),
    ],
)
def test_a_seeded_iopin_draws_a_known_stream(seed, chance, sequence, bits):
    """The same seed always gives the same bits."""
    pin = node(IOPin, seed=seed, chance=chance, sequence=sequence)
    assert [pin.draw(), pin.draw()] == bits


@pytest.mark.parametrize(
    ("signal", "sound"),
    [("1", "beep"), (" 1\n", "beep"), ("0", "..."), ("11", "..."), ("", "..."), ("true", "...")],
)
async def test_the_buzzer_sounds_only_on_1(signal, sound):
    """A buzzer answers its sound for 1 and '...' for anything else."""
    buzzer = node(Buzzer, sound="beep")
    assert await buzzer.loop("", signal) == sound
    assert list(buzzer.sounds) == [sound]


async def test_a_buzzer_with_subscribe_sounds_what_it_hears(caplog):
    """A buzzer given subscribe: in the grid gets each publication at loop(), without error."""
    caplog.set_level(logging.WARNING, logger="mesh")
    grid = build_grid(
        {
            "iopin": {"sketch": "iopin", "port": 0},  # publishes only when the test says so
            "buzzer": {"sketch": "buzzer", "params": {"sound": "beep"}, "subscribe": ["iopin/pin"]},
        }
    )
    nodes = await start_circuit(grid)
    try:
        iopin, buzzer = nodes["iopin"], nodes["buzzer"].sketch
        assert isinstance(buzzer, Buzzer)
        await until(lambda: iopin.hub.count == 1, "the buzzer's subscription at the iopin")
        assert await iopin.sketch.publish("pin", 1) == 1
        assert await iopin.sketch.publish("pin", 0) == 1
        await until(lambda: len(buzzer.sounds) == 2, "two sounds")
        assert list(buzzer.sounds) == ["beep", "..."]
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    finally:
        await stop_circuit(nodes)


async def test_a_message_to_the_clock_is_one_more_tick_at_once():
    """A button press (any message) ticks the clock once, acked `tick N`, beside its periodic ticks."""
    from websockets.asyncio.client import connect

    grid = build_grid(
        {
            "clock": {"sketch": "clock", "port": 0, "params": {"tacks": 1, "delay": 1}},
            "buzzer": {"sketch": "buzzer", "port": 0},
        },
        wires=["clock -> buzzer"],
    )
    nodes = await start_circuit(grid)
    try:
        clock, buzzer = nodes["clock"].sketch, nodes["buzzer"].sketch
        await until(lambda: len(buzzer.sounds) == 1, "the periodic tick at the buzzer")
        async with connect(f"ws://{nodes['clock'].address}/button") as ws:
            await ws.send("1")
            assert await ws.recv() == "tick 2"
        await until(lambda: len(buzzer.sounds) == 2, "the button's tick at the buzzer")
        await until(lambda: list(clock.acks) == ["...", "..."], "both ticks acked")
        assert (clock.ticks, clock.periodic) == (2, 1)
    finally:
        await stop_circuit(nodes)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"chance": 1.5}, "<memory>: node 'n': chance must be between 0 and 1, not 1.5"),
        ({"sequence": 0}, "<memory>: node 'n': sequence must be 1 or more, not 0"),
        ({"sequence": "3"}, "<memory>: node 'n' (sketch iopin): parameter 'sequence' must be a whole number, not '3'"),
        ({"seed": 1.5}, "<memory>: node 'n' (sketch iopin): parameter 'seed' must be a whole number, not 1.5"),
        (
            {"color": "red"},
            "<memory>: node 'n' (sketch iopin) takes no parameter 'color'; its parameters: chance, sequence, seed",
        ),
    ],
)
async def test_bad_parameters_name_the_node(params, message):
    """Parameters that setup() cannot take are one GridError naming the node."""
    grid = build_grid({"n": {"sketch": "iopin", "port": 0, "params": params}})
    with pytest.raises(GridError) as caught:
        await Node(IOPin, "n", grid).open()
    assert str(caught.value) == message


def test_loop_must_be_reactive():
    """A sketch whose loop() lacks @reactive is refused when the class is defined, at the line of its def."""
    from mesh.errors import SketchMistake
    from nodes import FactoryLoop

    with pytest.raises(SketchMistake) as caught:

        class Forgetful(FactoryLoop):
            async def loop(self, channel: str, message: str) -> str:
                return message

    where, _, message = str(caught.value).partition(": ")
    assert message == "Forgetful.loop must be an async method decorated with @reactive: put @reactive above it"
    path, _, line = where.partition(":")
    assert Path(path).resolve() == Path(__file__).resolve()  # shown relative to the working directory
    assert linecache.getline(path, int(line)).strip().startswith("async def loop(")  # the line of its def
