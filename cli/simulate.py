"""``./arduino.py simulate``: the circuit in virtual time, with a scenario of faults and a trace of every signal."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Any

import click

from mesh.durations import DurationError, duration, shown
from mesh.errors import GridError, MeshError
from nodes.scenario import Scenario, ScenarioFailure, check, play, read_scenario
from nodes.simulation import Simulation, run_virtual

from .common import Failure, close_trace, find_node, mesh_token, open_trace, read_checked
from .logs import clock_lines
from .run import parse_param

__all__ = ["simulate_command"]

#: How long a simulation runs when neither --for nor a scenario says.
DEFAULT_LENGTH = 60.0

#: looptime's resolution (its default): the step past the end that takes the last instant in whole.
END = 1e-6

log = logging.getLogger("mesh.simulate")


class Duration(click.ParamType):
    """``500ms``, ``10s``, ``2m``, ``1h``, ``1h30m``, or seconds: in seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return duration(value)
        except DurationError as exc:
            self.fail(str(exc), param, ctx)


def parse_node_param(text: str) -> tuple[str, str, Any]:
    """``NODE.KEY=VALUE``: the node, the parameter, the value read as a YAML scalar."""
    name, dot, rest = text.partition(".")
    if not dot or not name:
        raise click.BadParameter(f"{text!r} is not NODE.KEY=VALUE", param_hint="--param")
    key, value = parse_param(rest)
    return name, key, value


@click.command("simulate")
@click.argument("names", nargs=-1, metavar="[NODE]...")
@click.option(
    "--for",
    "length",
    type=Duration(),
    metavar="DURATION",
    help="Simulated time to run (500ms, 10s, 2m, 1h) [default: 1m; with --scenario, until its last step].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds every sketch's self.random.")
@click.option(
    "--scenario",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Steps to play against the circuit: sends, expectations, faults (docs/scenarios.md).",
)
@click.option("--vcd", type=click.Path(dir_okay=False), metavar="FILE", help="Write a trace of every signal (VCD).")
@click.option(
    "--param", "extra", multiple=True, metavar="NODE.KEY=VALUE", help="Change a node's parameter (repeatable)."
)
@click.pass_context
def simulate_command(
    ctx: click.Context,
    names: tuple[str, ...],
    length: float | None,
    seed: int | str,
    scenario: str | None,
    vcd: str | None,
    extra: tuple[str, ...],
) -> None:
    """Run the grid's nodes (or the NODEs named) in virtual time, in one process.

    The event loop's clock jumps ahead whenever every node waits, so an hour of the
    circuit takes seconds. The sketches are the real ones, on real sockets (free ports
    of 127.0.0.1, beside any live circuit). The same grid and --seed give the same log,
    each line at its simulated time (`t=00:00:03.000`), and the same trace, run after
    run; the last line says how fast it went. Exits 1 when a scenario step fails, with
    one line naming the step's file and line.
    """
    played: Scenario | None = None
    if scenario is not None:
        try:
            played = read_scenario(scenario)
        except GridError as exc:  # ScenarioError: FILE:LINE: what
            raise Failure(str(exc)) from None
    try:  # the scenario's own grid, else --grid's
        grid = read_checked(ctx.obj["grid"] if played is None or played.grid is None else str(played.grid))
    except GridError as exc:
        raise Failure(str(exc)) from None
    chosen = list(dict.fromkeys(names)) or list(grid.nodes)
    for name in chosen:
        find_node(grid, name)
    if played is not None:
        try:  # the nodes to run: the scenario's own nodes: first
            chosen = list(check(played, grid, list(dict.fromkeys(names)) or None))
        except (GridError, MeshError) as exc:
            raise Failure(str(exc)) from None
    params: dict[str, dict[str, Any]] = {}
    if played is not None:
        for name, changes in played.params.items():
            params.setdefault(name, {}).update(changes)
    for text in extra:
        name, key, value = parse_node_param(text)
        find_node(grid, name)
        params.setdefault(name, {})[key] = value
    if (
        played is not None
        and played.seed is not None
        and ctx.get_parameter_source("seed") is click.core.ParameterSource.DEFAULT
    ):
        seed = played.seed
    trace = None if vcd is None else open_trace(vcd, comment=f"arduino-mesh simulate --seed {seed}, simulated time")
    wall = time.perf_counter()
    try:
        sim = Simulation(
            grid,
            only=chosen,
            params={name: params[name] for name in chosen if name in params},
            seed=seed,
            token=mesh_token(grid),
            wires=played.wires if played is not None else (),
            trace=trace,
        )
    except MeshError as exc:
        raise Failure(str(exc)) from None
    clock_lines([*chosen, "simulate", "scenario"], clock=sim.now, rewrite=str)  # the grid's own addresses
    try:
        failure, stopped = run_virtual(_simulate(sim, played, length))
    except MeshError as exc:
        raise Failure(str(exc)) from None
    finally:
        if trace is not None:
            close_trace(trace, log)
    elapsed = time.perf_counter() - wall
    simulated = sim.now()
    counts = ", ".join(f"{key} {n}" for key, n in sorted(sim.counts.items()) if "/$" not in key) or "nothing"
    log.info("published: %s", counts)
    log.info(
        "%s: %s simulated in %.2f s of wall time (%s real time)",
        "stopped" if stopped else "done",
        shown(simulated),
        elapsed,
        f"{simulated / elapsed:,.0f}x" if elapsed > 0 else "-",
    )
    if failure is not None:
        raise Failure(str(failure))


async def _simulate(
    sim: Simulation, played: Scenario | None, length: float | None
) -> tuple[ScenarioFailure | None, bool]:
    """Start, play the scenario if any, let the rest of ``length`` pass, stop; (the failure or None, stopped early)."""
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    assert me is not None
    stopped = False

    def interrupt() -> None:
        nonlocal stopped
        stopped = True
        me.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupt)
    failure = None
    try:
        async with sim:
            try:
                if played is not None:
                    failure = await play(played, sim)
                until = DEFAULT_LENGTH if length is None and played is None else length
                if failure is None and until is not None and until > sim.now():
                    # One tick of looptime's clock past the end: what happens at the last instant
                    # (a tick at exactly --for) is always in, whatever order its timers fire in.
                    await sim.advance(until - sim.now() + END)
            except asyncio.CancelledError:
                if not stopped:
                    raise
                me.uncancel()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return failure, stopped
