"""A swarm of seeds: one scenario played once per seed, in worker processes, each run a simulation of its own.

::

    from nodes.swarm import Job, swarm

    job = Job(scenario="scenarios/partition.yaml", grid="grid.yaml")
    outcomes = swarm(job, range(1, 201))          # as many workers as cores
    failed = [o for o in outcomes if o.failure]   # each: its seed, the failing step's line, how long it took

Each seed draws its own: the sketches' ``self.random``, the scenario's ranges
(``delay: 1s..10s``), the network's jitter and flaky resets. A seed that fails fails the
same way when replayed alone (``./arduino.py simulate --scenario S --seed N``): a run depends
on its seed and nothing else (:mod:`nodes.simulation`).

Workers log nothing: a failing seed is told by its failure, one line, and replayed to see more.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from mesh.errors import MeshError
from mesh.grid import Grid, read_grid

from .scenario import Scenario, check, play, read_scenario
from .simulation import Simulation
from .virtual import run_virtual

__all__ = ["Job", "Outcome", "parse_seeds", "play_seed", "swarm"]


@dataclass(frozen=True)
class Job:
    """What each seed plays: the scenario file, the grid file, and what the command changed."""

    scenario: str
    grid: str
    names: tuple[str, ...] | None = None  # the command's NODE...: used when the scenario names none
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # a dict: it goes to the workers by pickle
    token: str | None = None
    length: float | None = None  # --for: simulated time to run past the last step


@dataclass(frozen=True)
class Outcome:
    """How one seed went: its failure (``FILE:LINE: what (t=...)``) or None, and its wall and simulated time."""

    seed: int
    failure: str | None
    wall: float
    simulated: float


def parse_seeds(text: str) -> list[int]:
    """``1-200``, ``7``, ``1,5,10-20``: the seeds, in order, each once; ValueError if it is not that."""
    seeds: dict[int, None] = {}
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high) if dash else int(low)
        except ValueError:
            raise ValueError(f"{text!r} is not a list of seeds, like 1-200 or 1,5,10-20") from None
        if first < 0 or last < first:
            raise ValueError(f"{part.strip()!r}: a range of seeds goes from the lower to the higher, like 1-200")
        seeds.update(dict.fromkeys(range(first, last + 1)))
    return list(seeds)


@cache
def _read(scenario: str, grid: str) -> tuple[Scenario, Grid]:
    return read_scenario(scenario), read_grid(grid)


def play_seed(job: Job, seed: int) -> Outcome:
    """Play ``job``'s scenario once with ``seed`` in a simulation of its own; how it went."""
    wall = time.perf_counter()
    scenario, grid = _read(job.scenario, job.grid)
    names = check(scenario, grid, job.names)
    params = {name: {**scenario.params.get(name, {}), **job.params.get(name, {})} for name in names}
    simulation = Simulation(
        grid,
        only=names,
        params={name: changes for name, changes in params.items() if changes},
        seed=seed,
        token=job.token,
        wires=scenario.wires,
    )

    async def main() -> str | None:
        async with simulation:
            failure = await play(scenario, simulation)
            if failure is None and job.length is not None and job.length > simulation.now():
                await simulation.advance(job.length - simulation.now())
            return None if failure is None else str(failure)

    try:
        failure = run_virtual(main())
    except MeshError as exc:
        failure = str(exc)
    return Outcome(seed, failure, time.perf_counter() - wall, simulation.now())


def _quiet_worker() -> None:
    """A worker says nothing, and leaves Ctrl-C to the command (which stops the swarm)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.disable(logging.CRITICAL)


def swarm(
    job: Job,
    seeds: Iterable[int],
    *,
    workers: int | None = None,
    done: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Play ``job`` once per seed in ``workers`` processes (as many as cores); the outcomes in the order of ``seeds``.

    ``done(outcome)`` is told of each as it comes (a progress line). Interrupted (Ctrl-C, which
    the workers leave to this process), the seeds not yet started are dropped, and those under way
    finish before the interruption goes on.
    """
    seeds = list(seeds)
    workers = max(1, min(workers or os.cpu_count() or 1, len(seeds)))
    found: dict[int, Outcome] = {}
    with concurrent.futures.ProcessPoolExecutor(workers, initializer=_quiet_worker) as pool:
        try:
            futures = [pool.submit(play_seed, job, seed) for seed in seeds]
            for future in concurrent.futures.as_completed(futures):
                outcome = future.result()
                found[outcome.seed] = outcome
                if done is not None:
                    done(outcome)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # the seeds under way finish; no other starts
            raise
    return [found[seed] for seed in seeds]
