"""Tests for nodes.scenario: scenarios played against the real nodes of a grid, in virtual time.

Each test runs a Simulation on the virtual loop (``run_virtual``, as ``arduino-mesh simulate``
does): the nodes are real, on the simulated network, and a minute of the circuit takes a
fraction of a second. The simulation is deterministic, so counts and times are exact.
"""

from __future__ import annotations

import logging
from pathlib import Path
from textwrap import dedent

import pytest

from mesh.errors import ScenarioError
from mesh.grid import read_grid
from nodes.scenario import ScenarioFailure, check, play, read_scenario
from nodes.simulation import Simulation, run_virtual
from tests.helpers import ROOT

SCENARIOS = ROOT / "scenarios"
SHIPPED = sorted(SCENARIOS.glob("*.yaml"))


def run(path: Path | str, grid: Path | str | None = None, seed: int | None = None) -> ScenarioFailure | None:
    """Read, check and play the scenario at ``path`` as the command does; its failure or None."""
    return played(path, grid, seed)[0]


def played(
    path: Path | str, grid: Path | str | None = None, seed: int | None = None
) -> tuple[ScenarioFailure | None, Simulation]:
    """:func:`run`, and the simulation it ran (stopped)."""

    async def main() -> tuple[ScenarioFailure | None, Simulation]:
        scenario = read_scenario(path)
        loaded = read_grid(scenario.grid or grid or ROOT / "grid.yaml")
        names = check(scenario, loaded)
        chosen = scenario.seed or 0 if seed is None else seed
        async with Simulation(loaded, only=names, params=scenario.params, seed=chosen, wires=scenario.wires) as sim:
            return await play(scenario, sim), sim

    return run_virtual(main())


def write(tmp_path: Path, text: str) -> Path:
    """A scenario against the repository's grid, written in ``tmp_path``: ``grid:`` and ``nodes:`` set."""
    path = tmp_path / "scenario.yaml"
    head = f"grid: {ROOT / 'grid.yaml'}\nseed: 1\nnodes: [clock, iopin, buzzer]\nparams: {{clock: {{tacks: 0}}}}\n"
    path.write_text(head + dedent(text))
    return path


def test_scenarios_are_shipped() -> None:
    """The four of the first issue, the firmware buzzer's (issue 28) and one per fault of the network are there."""
    assert [path.name for path in SHIPPED] == [
        "buzzer_restart.yaml",
        "durable_clock.yaml",
        "firmware_buzzer.yaml",
        "flaky.yaml",
        "latency.yaml",
        "partition.yaml",
        "ticks_and_buzzes.yaml",
        "unplugged_wire.yaml",
    ]


@pytest.mark.parametrize(
    "path",
    # the firmware's builds it and runs an MCU for 4.5 simulated seconds: an end-to-end test
    [pytest.param(path, marks=[pytest.mark.e2e] if path.stem.startswith("firmware") else []) for path in SHIPPED],
    ids=[path.stem for path in SHIPPED],
)
def test_shipped_scenario_passes(path: Path) -> None:
    """Every shipped scenario passes against the repository's grid (or the grid it names)."""
    assert run(path) is None


def test_the_network_scenarios_break_the_network_as_they_say() -> None:
    """flaky resets the clock's connection again and again, the partition refuses it while it lasts, latency reaches
    every connection: each still ends with every tick once (the scenarios' own counts)."""
    flaky, sim = played(SCENARIOS / "flaky.yaml")
    assert flaky is None and sim.network.resets >= 10
    partition, sim = played(SCENARIOS / "partition.yaml")
    assert (
        partition is None and sim.network.resets == 1 and sim.network.refused >= 3
    )  # the clock's link, cut then refused
    latency, sim = played(SCENARIOS / "latency.yaml", seed=5)
    assert latency is None


def test_spans_draw_from_the_seed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The same seed draws the same span, another seed another: the log of the step says what was drawn."""
    path = write(tmp_path, "steps:\n  - delay: 1s..10s\n")

    def drawn(seed: int) -> str:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="mesh.scenario"):
            assert run(path, seed=seed) is None
        return next(r.getMessage() for r in caplog.records if "delay" in r.getMessage())

    first = drawn(1)
    assert first.startswith(f"{path}:6: delay ") and first.endswith("s (of 1s..10s)")
    assert drawn(1) == first
    assert drawn(2) != first


def test_wrong_expectation_fails_with_its_line_and_the_time(tmp_path: Path) -> None:
    """A count that does not hold ends the scenario: its file, its line, what was seen and expected, the time."""
    path = write(
        tmp_path,
        """\
        steps:
          - delay: 10.5s
          - expect-count: {key: buzzer/sound, exactly: 33}
          - expect-count: {key: buzzer/sound, at-least: 60}
          - delay: 1s
        """,
    )
    failure = run(path)
    assert failure is not None
    assert str(failure) == f"{path}:8: expect-count buzzer/sound: 33, expected at least 60 (t=00:00:10.500)"
    assert (failure.path, failure.line, failure.t) == (str(path), 8, 10.5)


def test_expect_topic_not_seen_fails_once_within_has_passed(tmp_path: Path) -> None:
    """expect-topic waits for a matching publication; none within its time is a failure at that time."""
    path = write(
        tmp_path,
        """\
        steps:
          - delay: 0.5s
          - expect-topic: {key: clock/tick, value: 3, within: 3s}
          - expect-topic: {key: iopin/pin, value: 7, within: 2s}
        """,
    )
    failure = run(path)
    assert str(failure) == f"{path}:8: expect-topic iopin/pin = 7 not seen within 2s (t=00:00:04.000)"


def test_expect_count_within_waits_for_publications(tmp_path: Path) -> None:
    """expect-count with 'within' holds as soon as enough publications came; past them, it fails at once."""
    path = write(
        tmp_path,
        """\
        steps:
          - expect-count: {key: +/tick, at-least: 4, within: 10s}
          - expect-count: {key: clock/tick, at-most: 4, within: 10s}
          - expect-count: {key: clock/tick, exactly: 3, within: 10s}
        """,
    )
    failure = run(path)
    assert str(failure) == f"{path}:8: expect-count clock/tick: 4, expected exactly 3 (t=00:00:03.000)"


def test_expect_count_within_fails_once_within_has_passed(tmp_path: Path) -> None:
    """expect-count with 'within' that never holds fails at the end of it, saying how long it waited."""
    path = write(
        tmp_path,
        """\
        steps:
          - delay: 0.5s
          - kill: clock
          - expect-count: {key: iopin/pin, at-least: 4, within: 2s}
        """,
    )
    failure = run(path)
    assert str(failure) == f"{path}:8: expect-count iopin/pin: 3 after 2s, expected at least 4 (t=00:00:02.500)"


def test_send_with_the_wrong_ack_fails(tmp_path: Path) -> None:
    """A send whose acknowledgement is not the one expected fails, saying both."""
    path = write(
        tmp_path,
        """\
        steps:
          - send: {node: buzzer, message: 1, expect: buzz buzz buzz}
          - send: {node: buzzer, message: 0, expect: buzz buzz buzz}
        """,
    )
    failure = run(path)
    assert (
        str(failure) == f"{path}:7: send '0' to buzzer: acknowledged '...', expected 'buzz buzz buzz' (t=00:00:00.000)"
    )


def test_send_to_a_killed_node_fails(tmp_path: Path) -> None:
    """A send that cannot be delivered (its node killed) is a failure, with the reason."""
    path = write(
        tmp_path,
        """\
        steps:
          - delay: 1.5s
          - kill: buzzer
          - send: {node: buzzer, message: 1}
        """,
    )
    failure = run(path)
    assert str(failure) == (
        f"{path}:8: send '1' to buzzer failed: node 'buzzer' is killed: nothing answers until it is restarted (t=00:00:01.500)"
    )


def test_frozen_node_goes_on_after_for(tmp_path: Path) -> None:
    """freeze holds a node for its time and the scenario goes on at once; the node catches up after."""
    path = write(
        tmp_path,
        """\
        steps:
          - delay: 2.5s
          - freeze: {node: iopin, for: 5s}
          - delay: 4s
          - expect-count: {key: iopin/pin, exactly: 9}
          - delay: 10s
          - expect-count: {key: iopin/pin, exactly: 51}
        """,
    )
    assert run(path) is None


def test_each_step_logged_with_its_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Each step is one INFO line on mesh.scenario, FILE:LINE: what, as it starts."""
    path = write(
        tmp_path,
        """\
        steps:
          - delay: 1.5s
          - unplug: iopin -> buzzer
          - plug: iopin -> buzzer
        """,
    )
    with caplog.at_level(logging.INFO, logger="mesh.scenario"):
        assert run(path) is None
    assert [r.getMessage() for r in caplog.records if r.name == "mesh.scenario"] == [
        f"{path}:6: delay 1.5s",
        f"{path}:7: unplug iopin -> buzzer",
        f"{path}:8: plug iopin -> buzzer",
    ]


def test_read_scenario_names_the_file(tmp_path: Path) -> None:
    """A file that cannot be read, or is not UTF-8, is one line naming it."""
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ScenarioError) as caught:
        read_scenario(missing)
    assert str(caught.value) == f"{missing}: cannot read the scenario: No such file or directory"
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"steps: [{delay: 1}]\n# caf\xe9\n")
    with pytest.raises(ScenarioError) as caught:
        read_scenario(latin)
    assert str(caught.value) == f"{latin}: cannot read the scenario: it is not UTF-8 text (byte 25)"


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ("clock: {tacs: 0}", "node 'clock' (sketch clock) takes no parameter 'tacs'; its parameters: tacks, delay"),
        ("iopin: {chance: high}", "node 'iopin' (sketch iopin): parameter 'chance' must be a number, not 'high'"),
    ],
    ids=["unknown-param", "param-of-the-wrong-type"],
)
def test_params_checked_against_the_sketch_at_the_scenario_line(tmp_path: Path, params: str, error: str) -> None:
    """A param the sketch's setup() cannot take is an error at the scenario's line, not the grid's."""
    path = tmp_path / "scenario.yaml"
    path.write_text(f"grid: {ROOT / 'grid.yaml'}\nparams:\n  {params}\nsteps: [{{delay: 1}}]\n")
    scenario = read_scenario(path)
    with pytest.raises(ScenarioError) as caught:
        check(scenario, read_grid(ROOT / "grid.yaml"))
    assert str(caught.value) == f"{path}:3: {error}"
