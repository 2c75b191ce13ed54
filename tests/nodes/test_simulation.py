"""The circuit in virtual time: nodes.simulation (in-process, on the simulated network) and ``./arduino.py simulate``.

Virtual time makes these tests exact: the same seed gives the same publications at the
same simulated instants, so counts are asserted exactly, and a fault held for 10 s of
simulated time costs milliseconds.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
import textwrap
from pathlib import Path

import pytest

from mesh.durations import DurationError, duration, shown
from mesh.errors import SimulationError
from nodes.simulation import Simulation, run_virtual
from tests.helpers import DEADLINE, ROOT, Process, run, run_arduino, write_grid

GRID = ROOT / "grid.yaml"
CIRCUIT = ["clock", "iopin", "buzzer"]
FOREVER = {"clock": {"tacks": 0}}


def simulate(main, **options):
    """Run ``main(sim)`` in virtual time against the shipped circuit (clock ticking forever); its result."""

    async def run():
        async with Simulation(GRID, only=CIRCUIT, params=FOREVER, **options) as sim:
            return await main(sim)

    return run_virtual(run())


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("10s", 10.0), ("2m", 120.0), ("1h", 3600.0), ("1h30m", 5400.0), ("2", 2.0), (1.5, 1.5)],
)
def test_durations(text, seconds):
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "-1s", "s", "1h 2", "nan", True])
def test_bad_durations(text):
    with pytest.raises(DurationError, match="is not a duration"):
        duration(text)


def test_shown():
    assert shown(0) == "00:00:00.000"
    assert shown(723.25) == "00:12:03.250"


def counts_after(span: str):
    """Simulated time, ticks, pins and sounds once ``span`` of the shipped circuit has passed."""

    async def main(sim):
        await sim.advance(span)
        return sim.now(), sim.count("clock/tick"), sim.count("iopin/pin"), sim.count("buzzer/sound")

    return simulate(main)


@pytest.mark.slow  # 3,600 ticks through three nodes: 3 s (11 s under coverage); five minutes of it below
def test_an_hour_passes_and_every_tick_reaches_the_buzzer():
    now, ticks, pins, sounds = counts_after("1h")
    assert now == 3600.0
    # t = 0, 1, ..., 3599, and maybe the one at t = 3600, the instant time is up: either way, every
    # tick made went all the way through (a tick's messages take no virtual time)
    assert ticks in (3600, 3601)
    assert pins == sounds == 3 * ticks


def test_five_minutes_pass_and_every_tick_reaches_the_buzzer():
    """The hour above, over five minutes: the fast set's share of it."""
    now, ticks, pins, sounds = counts_after("5m")
    assert now == 300.0
    assert ticks in (300, 301)
    assert pins == sounds == 3 * ticks


def test_the_same_seed_draws_the_same_and_another_differs():
    async def main(sim):
        await sim.advance("30s")
        return [p.data for p in sim.published("iopin/pin")]

    first, again, other = simulate(main, seed=1), simulate(main, seed=1), simulate(main, seed=2)
    assert first == again
    assert first != other


def test_publications_carry_their_simulated_time():
    async def main(sim):
        await sim.advance("3500ms")
        return [(p.t, p.data) for p in sim.published("clock/tick")]

    assert simulate(main) == [(0.0, "1"), (1.0, "2"), (2.0, "3"), (3.0, "4")]


def test_wait_for_a_publication_or_give_up_after_within():
    async def main(sim):
        seen = await sim.wait_for("clock/tick", "5", within="10s")
        missed = await sim.wait_for("clock/tick", "never", within="2s")
        return seen, missed, sim.now()

    seen, missed, now = simulate(main)
    assert (seen.t, seen.key, seen.data) == (4.0, "clock/tick", "5")
    assert missed is None
    assert now == 6.0


def test_send_is_answered_as_by_arduino_send():
    async def main(sim):
        await sim.advance("500ms")
        return await sim.send("clock", "press")

    assert simulate(main) == "tick 2"


def test_an_unplugged_wire_loses_no_tick():
    async def main(sim):
        await sim.advance("5s")
        await sim.unplug("iopin", "buzzer")
        held = sim.count("buzzer/sound")
        await sim.advance("10s")
        during = sim.count("buzzer/sound")
        await sim.plug("iopin", "buzzer")
        await sim.advance("10500ms")  # ends between two ticks: the last one made has gone through
        return held, during, sim.count("clock/tick"), sim.count("iopin/pin"), sim.count("buzzer/sound")

    held, during, ticks, pins, sounds = simulate(main, wires=[("iopin", "buzzer")])
    assert during == held  # nothing reached the buzzer while unplugged
    assert ticks >= 25
    assert pins == sounds == 3 * ticks  # every tick went through, those held by the unplugged wire too


def test_unplug_needs_the_wire_made_unpluggable():
    async def main(sim):
        with pytest.raises(SimulationError, match="was not made unpluggable"):
            await sim.unplug("iopin", "buzzer")
        with pytest.raises(SimulationError, match="no wire buzzer -> clock"):
            await sim.unplug("buzzer", "clock")

    simulate(main)


def test_a_killed_buzzer_restarted_loses_no_tick():
    async def main(sim):
        await sim.advance("5s")
        await sim.kill("buzzer")
        await sim.advance("5s")
        during = sim.count("buzzer/sound")
        with pytest.raises(SimulationError, match="already killed"):
            await sim.kill("buzzer")
        await sim.restart("buzzer")
        await sim.advance("10500ms")
        return during, sim.count("clock/tick"), sim.count("iopin/pin"), sim.count("buzzer/sound")

    during, ticks, pins, sounds = simulate(main)
    assert during == 15  # the five ticks before the kill
    assert ticks >= 20
    assert pins == sounds == 3 * ticks  # every tick made went through, those sent while it was down too


def test_a_frozen_iopin_holds_the_ticks_and_catches_up():
    async def main(sim):
        await sim.advance("2500ms")
        sim.freeze("iopin", "5s")
        before = sim.count("iopin/pin")
        await sim.advance("4s")
        during = sim.count("iopin/pin"), sim.count("clock/tick")
        await sim.advance("10s")  # ends at t = 16.5, between two ticks
        return before, during, sim.count("clock/tick"), sim.count("iopin/pin"), sim.count("buzzer/sound")

    before, (pins_frozen, ticks_frozen), ticks, pins, sounds = simulate(main)
    assert pins_frozen == before  # the iopin ran nothing while frozen...
    assert ticks_frozen > 3  # ...while the clock went on ticking
    assert pins == sounds == 3 * ticks  # and once thawed, every tick went through


def test_a_durable_clock_killed_with_ticks_in_its_outbox_loses_none(tmp_path):
    grid = write_grid(
        tmp_path,
        textwrap.dedent("""\
            nodes:
              clock:  {sketch: clock, port: 8764, durable: true, params: {tacks: 0, delay: 1}}
              iopin:  {sketch: iopin, port: 8765}
            wires:
              - clock -> iopin
        """),
    )

    async def main():
        async with Simulation(grid, wires="all", state_dir=tmp_path / "state") as sim:
            await sim.advance("2500ms")
            await sim.unplug("clock", "iopin")
            await sim.advance("3s")  # ticks 4, 5, 6 wait in the clock's outbox (and its file)
            held = sim.nodes["clock"].sender.links["iopin"].pending
            await sim.kill("clock")
            await sim.restart("clock")
            await sim.plug("clock", "iopin")
            await sim.advance("1500ms")
            return held, sim.count("iopin/pin")

    held, pins = run_virtual(main())
    assert held == 3
    # 3 ticks before the cable went, the 3 it held, and the restarted clock's first 2 (t = 5.5, 6.5)
    assert pins == 3 * (3 + 3 + 2)


def test_a_blocking_sketch_is_reported(tmp_path, caplog):
    (tmp_path / "sketches").mkdir()
    (tmp_path / "sketches" / "sleepy.py").write_text(
        textwrap.dedent("""\
            import time
            from nodes import FactoryLoop, every, reactive

            class Sleepy(FactoryLoop):
                @every(1.0, times=1)
                def nap(self):
                    time.sleep(0.3)

                @reactive
                async def loop(self, channel, message):
                    return "ok"
        """)
    )
    grid = write_grid(tmp_path, "nodes:\n  sleepy: {sketch: sleepy}\n")

    async def main():
        async with Simulation(grid) as sim:
            await sim.advance("2s")

    run_virtual(main())
    assert re.search(r"nap\(\) \(@every\) blocked the event loop", caplog.text), caplog.text


# -- the command ----------------------------------------------------------------------------
# Each of these runs ./arduino.py simulate as a real subprocess: end to end (docs/testing.md), so not in -m "not e2e".


def simulate_command(*args: str, cwd: Path = ROOT):
    return run_arduino("simulate", *args, timeout=DEADLINE * 6, cwd=cwd)


def instants(lines):
    """``{time: sorted lines}``: what was logged at each simulated instant."""
    found = {}
    for line in lines:
        found.setdefault(line[: len("t=00:00:00.000")], []).append(line)
    return {t: sorted(said) for t, said in found.items()}


@pytest.mark.e2e
def test_simulate_logs_the_same_bytes_run_after_run():
    runs = [simulate_command("--for", "2m", "--seed", "1", "--param", "clock.tacks=0") for _ in range(2)]
    for done in runs:
        assert done.returncode == 0, done.stderr
    # All but the last line, which says how fast it went, and the watch's warnings that a step
    # blocked the event loop, which measure wall-clock time (shown after the log, apart).
    logs = [[line for line in done.stderr.splitlines() if "blocked the event loop" not in line] for done in runs]
    assert logs[0][:-1] == logs[1][:-1]
    assert re.fullmatch(
        r"t=00:02:00\.000 simulate +\| done: 00:02:00\.000 simulated in [\d.]+ s of wall time \([\d,]+x real time\); "
        r"[\d,]+ messages, [\d,]+ per wall second",
        logs[0][-1],
    )
    assert "t=00:01:59.000 clock     | tick 120" in logs[0]
    assert not any("went quiet" in line for line in logs[0])  # the clock ticks to the end
    # the addresses the grid names: the simulated network keeps them
    assert "t=00:00:00.000 clock     | serving on 127.0.0.1:8764" in logs[0]
    assert any("link to iopin up (ws://127.0.0.1:8765)" in line for line in logs[0])


@pytest.mark.e2e
def test_simulate_runs_a_minute_of_the_grid_by_default():
    done = simulate_command("clock", "iopin", "buzzer")
    assert done.returncode == 0, done.stderr
    assert "clock/tick 5, iopin/pin 15" in done.stderr  # the grid's tacks: 5
    assert "done: 00:01:00.000 simulated" in done.stderr
    # ... and the rest of the minute idles: said once, with how to keep the clock going
    assert done.stderr.splitlines()[-3] == (
        "t=00:01:00.000 simulate | the circuit went quiet at 00:00:04.000: nothing was published for 56 s after it; "
        "clock stops after 5 ticks (tacks: 5): --param clock.tacks=0 ticks forever"
    )


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--for", "ages"], "Invalid value for '--for': 'ages' is not a duration"),
        (["nosuchnode"], "nosuchnode"),
        (["--param", "clock"], "'clock' is not NODE.KEY=VALUE"),
        (["--param", "clock.tacks=-1"], "tacks must be 0 (forever) or more"),
    ],
)
def test_simulate_refuses_bad_input_in_one_line(args, error):
    done = simulate_command(*args)
    assert done.returncode in (1, 2), done.stderr
    assert error in done.stderr
    assert "Traceback" not in done.stderr


def test_simulate_runs_beside_a_live_circuit_on_the_same_ports(tmp_path):
    """The simulation binds no port (its network is in memory): a live node on the grid's port does not stop it."""
    grid = write_grid(tmp_path, "nodes:\n  clock: {sketch: clock, port: 8764, params: {tacks: 2, delay: 1}}\n")

    async def main():
        taken = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = taken.sockets[0].getsockname()[1]
        try:
            text = grid.read_text().replace("8764", str(port))
            grid.write_text(text)
            async with Simulation(grid) as sim:
                await sim.advance("3s")
                return sim.count("clock/tick")
        finally:
            taken.close()

    assert run_virtual(main()) == 2


def busy() -> list[Process]:
    """Two processes that keep a core busy each, until the test ends (the _processes fixture kills them)."""
    return [Process([sys.executable, "-c", "while True: pass"]) for _ in range(2)]


@pytest.mark.e2e
def test_simulate_writes_the_same_trace_on_an_idle_and_on_a_loaded_machine(tmp_path):
    """The same seed gives the same VCD bytes, and the same log, with and without two busy processes beside it."""
    from vcd.reader import TokenKind, tokenize

    traces, logs = [], []
    for load in (False, True):
        beside = busy() if load else []
        (tmp_path / str(load)).mkdir()
        path = tmp_path / str(load) / "run.vcd"  # the same name: the log says where it went
        done = simulate_command("--for", "5m", "--seed", "1", "--param", "clock.tacks=0", "--vcd", str(path))
        for process in beside:
            process.kill()
        assert done.returncode == 0, done.stderr
        traces.append(path.read_bytes())
        logs.append(
            [
                line.replace(str(tmp_path / str(load)), "FOLDER")
                for line in done.stderr.splitlines()[:-1]
                if "blocked the event loop" not in line
            ]
        )
    assert traces[0] == traces[1]
    compared = run(["cmp", tmp_path / "False" / "run.vcd", tmp_path / "True" / "run.vcd"], timeout=DEADLINE)
    assert compared.returncode == 0, compared.stdout + compared.stderr  # as a user would check it
    assert logs[0] == logs[1]
    with open(tmp_path / "False" / "run.vcd", "rb") as stream:
        names = {token.var.reference for token in tokenize(stream) if token.kind is TokenKind.VAR}
    assert {"pin", "tick", "sound", "clock_to_iopin", "iopin_to_buzzer"} <= names


@pytest.mark.e2e
def test_every_shipped_scenario_passes_from_the_command_line():
    for scenario in sorted((ROOT / "scenarios").glob("*.yaml")):
        done = simulate_command("--scenario", str(scenario))
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.e2e
def test_a_wrong_expectation_fails_with_its_line_and_time(tmp_path):
    scenario = tmp_path / "wrong.yaml"
    scenario.write_text(
        f"grid: {GRID}\nparams: {{clock: {{tacks: 0}}}}\nsteps:\n"
        "  - delay: 5s\n"
        '  - expect-topic: {key: iopin/pin, value: "7", within: 2s}\n'
    )
    done = simulate_command("--scenario", str(scenario))
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"Error: {scenario}:5: expect-topic iopin/pin = 7 not seen within 2s (t=00:00:07.000)"
    )


#: Fails for the seeds whose delay (drawn between 1 and 10 s) lets more than 6 ticks through (t = 0..6).
SOMETIMES = f"""\
grid: {GRID}
nodes: [clock, iopin, buzzer]
params: {{clock: {{tacks: 0}}}}
steps:
  - delay: 1s..10s
  - expect-count: {{key: clock/tick, at-most: 6}}
"""


@pytest.mark.e2e
def test_a_swarm_of_seeds_passes_a_scenario_that_holds_for_every_seed():
    done = simulate_command("--scenario", str(ROOT / "scenarios" / "partition.yaml"), "--seeds", "1-12")
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(
        r".*partition\.yaml: 12 seed\(s\) in [\d.]+ s on \d worker\(s\): 12 passed, 0 failed; "
        r"slowest: seed \d+ \([\d.]+ s for 00:00:[\d.:]+ simulated\)",
        done.stderr.strip(),
    )


@pytest.mark.e2e
def test_a_swarm_lists_each_failing_seed_with_a_command_that_fails_the_same_way(tmp_path):
    scenario = tmp_path / "sometimes.yaml"
    scenario.write_text(SOMETIMES)
    done = simulate_command("--scenario", str(scenario), "--seeds", "1-10")
    assert done.returncode == 1
    summary, *failing = done.stderr.strip().splitlines()
    assert re.fullmatch(r".*: 10 seed\(s\) in .*: (\d+) passed, (\d+) failed; slowest: .*", summary)
    assert 0 < len(failing) < 10
    for line in failing:
        match = re.fullmatch(r"seed (\d+): (.*); replay: (.*)", line)
        assert match, line
        assert match[2].startswith(f"{scenario}:6: expect-count clock/tick: ")
    seed, failure, command = re.fullmatch(r"seed (\d+): (.*); replay: (.*)", failing[0]).groups()
    args = shlex.split(command)
    assert args[-4:] == ["--seed", seed, "--scenario", str(scenario)] or "--seed" in args
    again = run([sys.executable, *args], timeout=DEADLINE * 6)
    assert again.returncode == 1
    assert again.stderr.splitlines()[-1] == f"Error: {failure}"


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--seeds", "1-3"], "--seeds needs --scenario"),
        (["--scenario", "scenarios/latency.yaml", "--seeds", "3-1"], "--seeds: '3-1': a range of seeds goes"),
        (["--scenario", "scenarios/latency.yaml", "--seeds", "1-3", "--seed", "2"], "--seed and --seeds go apart"),
        (["--scenario", "scenarios/latency.yaml", "--seeds", "1-3", "--vcd", "x.vcd"], "--seeds writes no trace"),
    ],
)
def test_a_swarm_refuses_what_it_cannot_do_in_one_line(args, error):
    done = simulate_command(*args)
    assert done.returncode == 2, done.stderr
    assert error in done.stderr
    assert "Traceback" not in done.stderr
