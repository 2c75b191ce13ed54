"""cli.simulate's own lines, in process: the one that says a run went quiet (a clock that stopped ticking)."""

from __future__ import annotations

from typing import Any

from cli.simulate import quiet_line, replay
from nodes.simulation import Simulation, run_virtual
from tests.helpers import ROOT

GRID = ROOT / "grid.yaml"


def ran(span: str, only: list[str], params: dict[str, dict[str, Any]] | None = None) -> Simulation:
    """The shipped grid's ``only`` nodes after ``span`` of simulated time, stopped."""

    async def main() -> Simulation:
        async with Simulation(GRID, only=only, params=params) as sim:
            await sim.advance(span)
        return sim

    return run_virtual(main())


def test_a_clock_that_stops_is_said_at_the_end_with_how_to_keep_it_ticking():
    """The shipped grid's clock ticks 5 times (tacks: 5), at t = 0..4: the rest of the minute is quiet."""
    sim = ran("1m", ["clock", "iopin", "buzzer"])
    assert sim.went_quiet() == 4.0
    assert quiet_line(sim) == (
        "the circuit went quiet at 00:00:04.000: nothing was published for 56 s after it; "
        "clock stops after 5 ticks (tacks: 5): --param clock.tacks=0 ticks forever"
    )


def test_a_long_quiet_is_shown_as_a_time():
    assert quiet_line(ran("2h", ["clock"])) == (
        "the circuit went quiet at 00:00:04.000: nothing was published for 01:59:56.000 after it; "
        "clock stops after 5 ticks (tacks: 5): --param clock.tacks=0 ticks forever"
    )


def test_a_circuit_that_keeps_going_is_not_called_quiet():
    sim = ran("1m", ["clock", "iopin"], {"clock": {"tacks": 0}})
    assert sim.went_quiet() is None
    assert quiet_line(sim) is None


def test_a_pause_no_longer_than_the_circuits_own_is_not_quiet():
    """A clock every 20 s, run for 50 s: ticks at 0, 20, 40; 10 s since the last is less than its pauses."""
    assert quiet_line(ran("50s", ["clock"], {"clock": {"tacks": 0, "delay": 20}})) is None


def test_a_circuit_that_published_nothing_says_so():
    assert quiet_line(ran("1m", ["iopin"])) == "the circuit published nothing in its 00:01:00.000 of simulated time"


def test_a_failing_seeds_replay_is_this_command_with_seed_in_place_of_seeds(monkeypatch):
    monkeypatch.setattr(
        "sys.argv", ["arduino.py", "--grid", "g.yaml", "simulate", "--seeds", "1-3", "--scenario", "s y.yaml"]
    )
    assert replay(7) == "./arduino.py --grid g.yaml simulate --seed 7 --scenario 's y.yaml'"


def test_the_installed_commands_replay_names_it_as_typed_when_it_is_on_the_path(monkeypatch, tmp_path):
    command = tmp_path / "bin" / "arduino-mesh"
    command.parent.mkdir()
    command.write_text("#!/bin/sh\n")
    command.chmod(0o755)
    monkeypatch.setenv("PATH", str(command.parent))
    monkeypatch.setattr("sys.argv", [str(command), "simulate", "--seeds=1-3", "--scenario", "s.yaml"])
    assert replay(7) == "arduino-mesh simulate --seed 7 --scenario s.yaml"
    monkeypatch.setenv("PATH", "/nowhere")  # not on the path: as it was run
    assert replay(7) == f"{command} simulate --seed 7 --scenario s.yaml"
