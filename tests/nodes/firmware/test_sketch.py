"""nodes.firmware.sketch: an .ino as a node, its Serial the node's messages, its pins the node's topics.

Real firmware on the real simulator, real nodes on real sockets: in virtual time (the
simulation) where exact times and counts are asserted, live where the clock is the wall's.
"""

from __future__ import annotations

import asyncio
import shutil
import textwrap
from pathlib import Path

import pytest

from mesh.errors import GridError
from nodes.simulation import Simulation, run_virtual
from nodes.testing import circuit
from nodes.trace import Trace
from tests.helpers import until
from tests.nodes.firmware.common import sketch

pytestmark = pytest.mark.e2e


def project(folder: Path, grid: str, *sketches: str) -> Path:
    """A project in ``folder``: the sketches named copied beside ``grid.yaml``."""
    for name in sketches:
        shutil.copy(sketch(name), folder / f"{name}.ino")
    path = folder / "grid.yaml"
    path.write_text(textwrap.dedent(grid))
    return path


def simulate(grid: Path, main, **options):
    async def run():
        async with Simulation(grid, **options) as sim:
            return await main(sim)

    return run_virtual(run())


def test_a_message_is_a_line_on_its_serial_and_the_line_it_prints_next_is_the_ack(tmp_path, firmware_cache):
    grid = project(tmp_path, "nodes:\n  lamp: {sketch: lamp.ino, port: 8767}\n", "lamp")

    async def main(sim):
        await sim.advance("100ms")
        answers = [await sim.send("lamp", "1"), await sim.send("lamp", "0"), await sim.send("lamp", "hello")]
        await sim.advance("10ms")
        return answers, [(p.key, p.data) for p in sim.published("lamp/+") + sim.published("lamp/pin/+")]

    answers, published = simulate(grid, main)
    assert answers == ["lamp on", "lamp off", "lamp? hello"]
    assert [data for key, data in published if key == "lamp/serial"] == [
        "lamp ready",
        "lamp on",
        "lamp off",
        "lamp? hello",
    ]
    assert [data for key, data in published if key == "lamp/pin/13"] == ["0", "1", "0"]


def test_pins_and_serial_are_published_at_the_time_they_happen(tmp_path, firmware_cache):
    grid = project(tmp_path, "nodes:\n  blink: {sketch: blink.ino}\n", "blink")

    async def main(sim):
        await sim.advance("350ms")
        return [(round(p.t, 3), p.data) for p in sim.published("blink/pin/13")], sim.count("blink/serial")

    pins, lines = simulate(grid, main)
    # pinMode's first level, then on/off every 100 ms from setup() (a few microseconds in), seen within the 1 ms slice
    assert pins == [(0.001, "0"), (0.001, "1"), (0.101, "0"), (0.201, "1"), (0.301, "0")]
    assert lines == 4


def test_two_runs_write_the_same_trace_with_the_pins_as_bits(tmp_path, firmware_cache):
    grid = project(tmp_path, "nodes:\n  blink: {sketch: blink.ino, port: 8767}\n", "blink")

    def traced(path: Path) -> bytes:
        with Trace(path) as trace:
            simulate(grid, lambda sim: sim.advance("1s"), trace=trace)
        return path.read_bytes()

    first, second = traced(tmp_path / "1.vcd"), traced(tmp_path / "2.vcd")
    assert first == second
    assert b"$var wire 1 " in first and b" _13 $end" in first  # blink/pin/13: a 1-bit signal in the scope blink.pin


def test_input_pins_follow_messages_on_pin_channels_and_the_nodes_subscriptions(tmp_path, firmware_cache):
    (tmp_path / "presser.py").write_text(
        textwrap.dedent(
            """
            from nodes import FactoryLoop, every, reactive

            class Presser(FactoryLoop):
                def setup(self):
                    self.levels = iter(["1", "0", "1"])  # the first, at t=0, may come before the subscription

                @every(0.05, times=3)
                async def press(self):
                    await self.publish("pin/2", next(self.levels))

                @reactive
                async def loop(self, channel, message):
                    return "ok"
            """
        )
    )
    grid = project(
        tmp_path,
        """\
        nodes:
          presser: {sketch: ./presser.py, port: 8768}
          button: {sketch: button.ino, port: 8767, subscribe: ["presser/pin/2"]}
        """,
        "button",
    )

    async def main(sim):
        await sim.advance("120ms")
        by_subscription = [p.data for p in sim.published("button/serial")]
        answers = [await sim.send("button", "0", channel="pin/2")]
        await sim.advance("10ms")
        answers.append(await sim.send("button", "z", channel="pin/2"))
        await sim.advance("10ms")
        return by_subscription, answers, [p.data for p in sim.published("button/serial")][3:], sim.count("button/pin/7")

    by_subscription, answers, by_message, toggles = simulate(grid, main)
    assert by_subscription == ["up", "pressed", "released"]
    assert answers == ["pin/2 0", "pin/2 z"]
    assert by_message == ["pressed", "released"]  # let go: it reads its pull-up again
    assert 100 < toggles < 200  # pin 7 toggles thousands of times a second: published once a slice, its last level


def test_a_python_circuit_drives_the_firmware_buzzer_through_a_wire(firmware_cache):
    async def main(sim):
        await sim.advance("2500ms")
        return (
            sim.count("clock/tick"),
            sim.count("iopin/pin"),
            sim.published("buzzer/serial"),
            sim.count("buzzer/pin/8"),
        )

    ticks, bits, lines, edges = simulate(
        sketch("buzzer").parent / "grid.yaml", main, only=["clock", "iopin", "buzzer"], seed=1
    )
    assert (ticks, bits, len(lines)) == (3, 9, 9)
    assert {line.data for line in lines} <= {"buzz buzz buzz", "..."}
    assert edges > 80  # tone(8, 440, 100) for each 1


def test_the_status_shows_the_mcu_its_clock_cycles_and_pins(tmp_path, firmware_cache):
    grid = project(tmp_path, "nodes:\n  lamp: {sketch: lamp.ino, port: 0}\n", "lamp")

    async def main():
        async with circuit(grid) as running:
            assert await running.send("lamp", "1") == "lamp on"
            return running.nodes["lamp"].status()

    status = asyncio.run(main())
    report = status["report"]
    assert status["sketch"] == "lamp.ino"
    assert (report["firmware"], report["mcu"], report["clock"], report["state"]) == (
        "lamp.ino",
        "ATmega328P",
        "16 MHz",
        "running",
    )
    assert report["cycles"] > 0 and report["pins"] == "D13=out:1" and report["flash"] > 0


@pytest.mark.parametrize(
    ("channel", "message", "error"),
    [
        ("", "1\n0", "loop() failed: one line of at most 1024 bytes per message to lamp.ino"),
        ("", "x" * 1025, "loop() failed: one line of at most 1024 bytes per message to lamp.ino"),
        (
            "led",
            "1",
            "loop() failed: lamp.ino takes lines on its Serial (no channel) and levels on pin/N, not channel 'led'",
        ),
        ("pin/2", "high", "loop() failed: pin/2: a level is 0, 1 or z (let go), not 'high'"),
        ("pin/20", "1", "loop() failed: pin/20: the Uno's pins are 0-19 (A0-A5 are 14-19)"),
    ],
)
def test_what_the_firmware_cannot_take_is_an_error_ack(tmp_path, firmware_cache, channel, message, error):
    grid = project(tmp_path, "nodes:\n  lamp: {sketch: lamp.ino, port: 8767}\n", "lamp")

    async def main(sim):
        from mesh.errors import RemoteError

        await sim.advance("100ms")  # booted ("lamp ready" printed): the next line is the answer
        with pytest.raises(RemoteError) as caught:
            await sim.send("lamp", message, channel=channel)
        return caught.value.message, await sim.send("lamp", "1")

    assert simulate(grid, main) == (error, "lamp on")  # and it keeps serving


def test_a_firmware_that_prints_nothing_is_an_error_ack_after_the_timeout(tmp_path, firmware_cache):
    grid = project(
        tmp_path,
        "nodes:\n  quiet: {sketch: silent.ino, port: 8767}\n  timed: {sketch: silent.ino, port: 8768, timeout: 0.25}\n",
        "silent",
    )

    async def main(sim):
        from mesh.errors import RemoteError

        errors = []
        for name in ("quiet", "timed"):
            started = sim.now()
            with pytest.raises(RemoteError) as caught:
                await sim.send(name, "hello")
            errors.append((caught.value.message, round(sim.now() - started, 3)))
        return errors

    # one second of the MCU's own time, and the grid's 0.25 s of the clock's (within a slice: a send's
    # connection on the simulation's sockets may take one, on a busy machine)
    (silent, waited), (timed, bounded) = simulate(grid, main)
    assert silent == "loop() failed: silent.ino printed no line within 1 s (set the node's timeout: to wait longer)"
    assert timed == "loop() did not finish within 0.25 s (the node's timeout in the grid) and was cancelled"
    assert waited == pytest.approx(1.0, abs=0.0015) and bounded == pytest.approx(0.25, abs=0.0015)


def test_a_firmware_that_does_not_build_stops_its_node_with_one_line_per_error(tmp_path, firmware_cache):
    grid = project(tmp_path, "nodes:\n  lamp: {sketch: broken.ino, port: 8767}\n", "broken")
    with pytest.raises(GridError) as caught:
        simulate(grid, lambda sim: sim.advance("1s"))
    assert str(caught.value) == (
        f"{grid}:2: node 'lamp': broken.ino does not build (1 error):\n"
        "broken.ino:3:32: error: 'levle' was not declared in this scope"
    )


def test_a_board_over_serial_cannot_run_in_virtual_time_nor_a_simulated_mcu_take_boot(tmp_path, firmware_cache):
    grid = project(tmp_path, "nodes:\n  lamp: {sketch: lamp.ino, serial: /dev/ttyACM0}\n", "lamp")
    with pytest.raises(
        GridError, match=r"grid.yaml:2: node 'lamp': its board at /dev/ttyACM0 cannot run in virtual time"
    ):
        simulate(grid, lambda sim: sim.advance("1s"))
    grid.write_text("nodes:\n  lamp: {sketch: lamp.ino, params: {boot: 1}}\n")
    with pytest.raises(GridError, match=r"node 'lamp': boot is for a board over serial"):
        simulate(grid, lambda sim: sim.advance("1s"))


@pytest.mark.circuit(grid="firmware/grid.yaml", only=["lamp"])
async def test_the_circuit_fixture_runs_firmware_in_lockstep_with_its_virtual_clock(circuit, firmware_cache):
    """A user's test in virtual time: the firmware's MCU has run exactly as long as the clock says."""
    await circuit.advance("250ms")
    assert await circuit.send("lamp", "1") == "lamp on"
    await circuit.advance("10ms")
    assert [p.data for p in circuit.published("lamp/pin/13")] == ["0", "1"]
    report = circuit.sketch("lamp").state()
    # within a 1 ms slice (an instruction over at most), and one more should the send's connection take one
    assert abs(report["cycles"] - circuit.now() * 16_000_000) <= 2 * 16_000 + 8


def test_a_firmware_that_crashes_stops_its_mcu_not_its_node(tmp_path, firmware_cache, caplog):
    """A jump past flash: one line saying why, the state in status; the node still serves (an error ack)."""
    (tmp_path / "crash.ino").write_text("#define MODE 1\n" + sketch("crash").read_text())
    grid = project(tmp_path, "nodes:\n  crash: {sketch: crash.ino, port: 8767}\n")

    async def main(sim):
        from mesh.errors import RemoteError

        await sim.advance("50ms")
        with pytest.raises(RemoteError, match=r"crash.ino: the MCU stopped for good \(crashed\): restart the node"):
            await sim.send("crash", "hello")
        return sim.sketch("crash").state()

    report = simulate(grid, main)
    assert report["state"] == "crashed" and report["cycles"] < 16_000_000
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("crash.ino: the MCU stopped for good:")]
    assert len(said) == 1 and said[0].startswith("crash.ino: the MCU stopped for good: crashed at cycle ")  # once


def test_a_live_mcu_behind_the_clock_says_so(tmp_path, firmware_cache, caplog, monkeypatch):
    """Past LAG seconds behind the wall clock, one warning (throttled): the machine lacks the CPU 16 MHz takes."""
    import nodes.firmware.sketch as module

    monkeypatch.setattr(module, "LAG", -1.0)  # any lag at all: this test cannot make a machine slow on purpose
    grid = project(tmp_path, "nodes:\n  lamp: {sketch: lamp.ino, port: 0}\n", "lamp")

    async def main():
        async with circuit(grid):
            await until(lambda: "behind the clock" in caplog.text, "the lag said")

    asyncio.run(main())
    said = [r.getMessage() for r in caplog.records if "behind the clock" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("lamp.ino: the simulated MCU is ")


def test_a_heard_key_that_is_not_a_pin_is_a_line_on_serial_and_a_bad_level_one_warning(
    tmp_path, firmware_cache, caplog
):
    (tmp_path / "talker.py").write_text(
        textwrap.dedent(
            """
            from nodes import FactoryLoop, every, reactive

            class Talker(FactoryLoop):
                def setup(self):
                    self.said = iter([("say", "1"), ("pin/2", "loud"), ("pin/2", "louder"), ("say", "0")])

                @every(0.05, times=5)
                async def talk(self):
                    topic, data = next(self.said, ("say", "x"))
                    await self.publish(topic, data)

                @reactive
                async def loop(self, channel, message):
                    return "ok"
            """
        )
    )
    grid = project(
        tmp_path,
        """\
        nodes:
          talker: {sketch: ./talker.py, port: 8768}
          lamp: {sketch: lamp.ino, port: 8767, subscribe: ["talker/#"]}
        """,
        "lamp",
    )

    async def main(sim):
        await sim.advance("300ms")
        return [p.data for p in sim.published("lamp/serial")], [p.data for p in sim.published("lamp/pin/13")]

    lines, pins = simulate(grid, main)
    assert lines[0] == "lamp ready" and lines[-2:] == [
        "lamp off",
        "lamp? x",
    ]  # the first "1" may precede the subscription
    assert pins[-1] == "0"
    warned = [r.getMessage() for r in caplog.records if "a level is 0, 1 or z" in r.getMessage()]
    assert warned == [
        "talker/pin/2: pin/2: a level is 0, 1 or z (let go), not 'loud'"
    ]  # the next like it: counted, not said
