"""Scenarios played against a simulated circuit: read a file, check it, play its steps in virtual time.

::

    from mesh.grid import read_grid
    from nodes.scenario import check, play, read_scenario
    from nodes.simulation import Simulation, run_virtual

    async def main():
        scenario = read_scenario("scenarios/unplugged_wire.yaml")
        grid = read_grid(scenario.grid or "grid.yaml")
        names = check(scenario, grid)                       # before any time passes
        async with Simulation(grid, only=names, params=scenario.params, seed=scenario.seed or 0,
                              wires=scenario.wires) as sim:
            return await play(scenario, sim)               # None: every step passed

    failure = run_virtual(main())

Parsing and the checks of the steps against the grid are the core's
(:mod:`mesh.scenario`); this module reads the file, checks the params against the
sketches (:func:`check`) and plays the steps. Each step is logged at INFO on
``mesh.scenario`` as ``FILE:LINE: what`` when it starts; the first step that fails
ends the scenario with a :class:`ScenarioFailure`, one line naming the file, the
step's line, what was expected, what was seen and the simulated time.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Collection
from dataclasses import dataclass

from mesh.durations import shown
from mesh.errors import GridError, MeshError, ScenarioError
from mesh.grid import Grid, read_text
from mesh.scenario import check as check_steps
from mesh.scenario import load_scenario
from mesh.steps import (
    Delay,
    ExpectCount,
    ExpectTopic,
    Flaky,
    Freeze,
    Heal,
    Kill,
    Latency,
    Partition,
    Plug,
    Restart,
    Scenario,
    Send,
    Step,
    Unplug,
)

from .params import check_params
from .simulation import Simulation
from .sketchbook import load

__all__ = ["Scenario", "ScenarioFailure", "check", "play", "read_scenario"]

log = logging.getLogger("mesh.scenario")


@dataclass(frozen=True, slots=True)
class ScenarioFailure:
    """The step that failed: ``path:line: what (t=00:00:07.000)``."""

    path: str
    line: int
    message: str
    t: float

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message} (t={shown(self.t)})"


def read_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read the scenario file at ``path`` (UTF-8) and parse it; ScenarioError, ``FILE:LINE: what``, if it cannot be used."""
    name, text = read_text(path, "the scenario", ScenarioError)
    return load_scenario(text, name)


def check(scenario: Scenario, grid: Grid, nodes: Collection[str] | None = None) -> tuple[str, ...]:
    """Check ``scenario`` against ``grid`` before any time passes; the names of the nodes to run.

    What :func:`mesh.scenario.check` checks (nodes and wires the steps name, kills and
    restarts in order), and the ``params`` it changes against each sketch's ``setup()``,
    at the scenario's line: ``s.yaml:3: node 'clock' (sketch clock) takes no parameter 'tacs'``.
    """
    names = check_steps(scenario, grid, nodes)
    for name, params in scenario.params.items():
        spec = grid.node(name)
        try:
            changed = grid.with_node(name, params={**spec.params, **params}).node(name)
            check_params(load(spec.sketch, grid.path), changed, scenario.path, complete=False)
        except GridError as exc:
            line = scenario.params_lines.get(name) or scenario.lines.get("params") or None
            raise ScenarioError(scenario.path, line, exc.message) from None
    return names


async def play(scenario: Scenario, sim: Simulation) -> ScenarioFailure | None:
    """Play the steps of ``scenario`` in order against the started ``sim``; the first failure, or None.

    A step's spans (``delay: 1s..10s``) are drawn as it comes, from the run's seed: the same seed
    draws the same, step after step.
    """
    rng = random.Random(f"{sim.seed}:scenario")
    for written in scenario.steps:
        step = written.drawn(rng)
        log.info("%s:%d: %s", scenario.path, step.line, step.describe())
        problem = await _step(step, sim)
        if problem is not None:
            return ScenarioFailure(scenario.path, step.line, problem, sim.now())
    return None


async def _step(step: Step, sim: Simulation) -> str | None:
    """Play one step; what went wrong, or None."""
    try:
        if isinstance(step, Delay):
            assert isinstance(step.seconds, float)  # drawn
            await sim.advance(step.seconds)
        elif isinstance(step, Send):
            return await _send(step, sim)
        elif isinstance(step, ExpectTopic):
            if await sim.wait_for(step.key, step.value, within=step.within) is None:
                return f"{step.name} {step.expected()} not seen within {step.within_written}"
        elif isinstance(step, ExpectCount):
            return await _count(step, sim)
        elif isinstance(step, Unplug):
            await sim.unplug(step.source, step.target)
        elif isinstance(step, Plug):
            await sim.plug(step.source, step.target)
        elif isinstance(step, Kill):
            await sim.kill(step.node)
        elif isinstance(step, Restart):
            await sim.restart(step.node)
        elif isinstance(step, Freeze):
            assert isinstance(step.seconds, float)
            sim.freeze(step.node, step.seconds)
        elif isinstance(step, Latency):
            assert isinstance(step.delay, float) and isinstance(step.jitter, float)
            sim.latency(step.delay, step.jitter, wire=step.wire)
        elif isinstance(step, Partition):
            sim.partition(*step.groups)
        elif isinstance(step, Heal):
            sim.heal()
        elif isinstance(step, Flaky):
            assert step.every is None or isinstance(step.every, float)
            sim.flaky(step.every, wire=step.wire)
        else:  # pragma: no cover - every step the parser makes is above
            raise TypeError(f"unknown step {step!r}")
    except (MeshError, OSError) as exc:  # a fault the simulation refused; a port taken again on a restart
        return f"{step.describe()}: {exc}"
    return None


async def _send(step: Send, sim: Simulation) -> str | None:
    try:
        ack = await sim.send(step.node, step.message, step.channel)
    except MeshError as exc:
        return f"send {step.message!r} to {step.node} failed: {exc}"
    if step.expect is not None and ack != step.expect:
        return f"send {step.message!r} to {step.node}: acknowledged {ack!r}, expected {step.expect!r}"
    return None


async def _count(step: ExpectCount, sim: Simulation) -> str | None:
    """Holds now, or (with ``within``) once the publications that come make it hold; counts only grow."""
    count = sim.count(step.key)
    waited = False  # to the end of 'within'
    if step.within is not None:
        deadline = sim.now() + step.within
        while not step.holds(count) and not step.hopeless(count):
            left = deadline - sim.now()
            if left <= 0 or await sim.wait_for(step.key, within=left) is None:
                waited = True
                break
            count = sim.count(step.key)
    if step.holds(count):
        return None
    after = f" after {step.within_written}" if waited else ""
    return f"{step.name} {step.key}: {count}{after}, expected {step.expected()}"
