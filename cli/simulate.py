"""``./arduino.py simulate``: the circuit in virtual time, with a scenario of faults and a trace of every signal."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
import signal
import sys
import time
from functools import partial
from typing import Any

import click

from mesh.durations import DurationError, duration, shown
from mesh.errors import GridError, MeshError
from nodes.scenario import Scenario, ScenarioFailure, check, play, read_scenario
from nodes.simulation import Simulation, run_virtual
from nodes.swarm import Job, Outcome, parse_seeds, swarm

from .common import Failure, UsageFailure, close_trace, find_node, mesh_token, open_trace, read_checked
from .logs import simulation_lines
from .progress import Progress
from .run import parse_param

__all__ = ["quiet_line", "simulate_command"]

#: How long a simulation runs when neither --for nor a scenario says.
DEFAULT_LENGTH = 60.0

#: The virtual clock's resolution: the step past the end that takes the last instant in whole.
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
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seeds every sketch's self.random and the network's draws."
)
@click.option(
    "--seeds",
    metavar="SEEDS",
    help="Play --scenario once per seed (1-200, 1,5,10-20), in worker processes; list the seeds that fail.",
)
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
    seeds: str | None,
    scenario: str | None,
    vcd: str | None,
    extra: tuple[str, ...],
) -> None:
    """Run the grid's nodes (or the NODEs named) in virtual time, in one process, on a simulated network.

    The event loop's clock jumps ahead whenever every node waits, so an hour of the
    circuit takes seconds. The sketches are the real ones, and so is the protocol; their
    bytes go through memory, not the kernel, each node at the address the grid gives it. The
    same grid and --seed give the same log, each line at its simulated time
    (`t=00:00:03.000`), and the same trace, on an idle or a busy machine; the last line says
    how fast it went. Exits 1 when a scenario step fails, with one line naming the step's file
    and line. With --seeds, plays the scenario once per seed and lists the seeds that fail,
    each with the command that replays it.
    """
    played: Scenario | None = None
    if scenario is not None:
        try:
            played = read_scenario(scenario)
        except GridError as exc:  # ScenarioError: FILE:LINE: what
            raise Failure(str(exc)) from None
    grid_path = ctx.obj["grid"] if played is None or played.grid is None else str(played.grid)
    try:  # the scenario's own grid, else --grid's
        grid = read_checked(grid_path)
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
    command_params: dict[str, dict[str, Any]] = {}
    if played is not None:
        for name, changes in played.params.items():
            params.setdefault(name, {}).update(changes)
    for text in extra:
        name, key, value = parse_node_param(text)
        find_node(grid, name)
        params.setdefault(name, {})[key] = value
        command_params.setdefault(name, {})[key] = value
    if seeds is not None:
        _swarm(ctx, seeds, played, grid_path, names, command_params, length, vcd, mesh_token(grid))
        return
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
    lines = simulation_lines([*chosen, "simulate", "scenario"], clock=sim.now)
    progress = Progress(sys.stderr, partial(_progress, sim), lines.lock)
    lines.before_write = progress.erase
    try:
        with progress:
            failure, stopped = run_virtual(_simulate(sim, played, length))
    except MeshError as exc:
        raise Failure(str(exc)) from None
    finally:
        if trace is not None:
            close_trace(trace, log)
    elapsed = time.perf_counter() - wall
    simulated = sim.now()
    lines.flush()
    for line in lines.aside:  # measured in wall-clock time: after the log, whose bytes they would change
        lines.stream.write(f"{line}\n")
    quiet = None if stopped or failure is not None or played is not None else quiet_line(sim)
    if quiet is not None:
        log.info("%s", quiet)
    counts = ", ".join(f"{key} {n}" for key, n in sorted(sim.counts.items()) if "/$" not in key) or "nothing"
    log.info("published: %s", counts)
    messages = sim.messages()
    log.info(
        "%s: %s simulated in %.2f s of wall time (%s real time); %s messages, %s per wall second",
        "stopped" if stopped else "done",
        shown(simulated),
        elapsed,
        f"{simulated / elapsed:,.0f}x" if elapsed > 0 else "-",
        f"{messages:,}",
        f"{messages / elapsed:,.0f}" if elapsed > 0 else "-",
    )
    lines.flush()
    if failure is not None:
        raise Failure(str(failure))


def quiet_line(sim: Simulation) -> str | None:
    """The line that says a run went quiet long before its end (a clock that stopped), and how to keep it going."""
    since = sim.went_quiet()
    if since is None:
        return None
    quiet = sim.now() - since
    span = f"{quiet:.3g} s" if quiet < 60 else shown(quiet)
    if sim.last_news is None:
        said = f"the circuit published nothing in its {span} of simulated time"
    else:
        said = f"the circuit went quiet at {shown(since)}: nothing was published for {span} after it"
    counted = [
        (name, tacks)
        for name in sim.names
        if type(tacks := sim.grid.node(name).params.get("tacks")) is int and tacks > 0
    ]
    if len(counted) == 1:
        ((name, tacks),) = counted
        said += f"; {name} stops after {tacks} tick{'s' if tacks > 1 else ''} (tacks: {tacks}): --param {name}.tacks=0 ticks forever"
    elif counted:
        said += (
            f"; {len(counted)} nodes stop after their tacks ({', '.join(f'{n}: {t}' for n, t in counted)}):"
            " --param NODE.tacks=0 ticks forever"
        )
    return said


def _progress(sim: Simulation) -> str:
    """The progress line of a long run: how far, how fast."""
    return f"simulated {shown(sim.now())}, {sim.speed():,.0f}x real time"


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
                    # One tick of the virtual clock past the end: what happens at the last instant
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


def _swarm(
    ctx: click.Context,
    text: str,
    played: Scenario | None,
    grid: str,
    names: tuple[str, ...],
    params: dict[str, dict[str, Any]],
    length: float | None,
    vcd: str | None,
    token: str | None,
) -> None:
    """``--seeds``: the scenario once per seed, in worker processes; a summary, a line per failing seed, exit 1 if any."""
    if played is None:
        raise UsageFailure("--seeds needs --scenario: the steps each seed is checked against")
    if vcd is not None:
        raise UsageFailure("--seeds writes no trace: replay one seed with --vcd")
    if ctx.get_parameter_source("seed") is not click.core.ParameterSource.DEFAULT:
        raise UsageFailure("--seed and --seeds go apart: --seeds plays each of its seeds")
    try:
        seeds = parse_seeds(text)
    except ValueError as exc:
        raise UsageFailure(f"--seeds: {exc}") from None
    job = Job(
        scenario=str(played.path),
        grid=grid,
        names=tuple(dict.fromkeys(names)) or None,
        params=params,
        token=token,
        length=length,
    )
    failed: list[Outcome] = []
    finished: list[Outcome] = []
    wall = time.perf_counter()

    def describe() -> str:
        return (
            f"seeds: {len(finished)} of {len(seeds)} played, {len(failed)} failed, {time.perf_counter() - wall:.1f} s"
        )

    def done(outcome: Outcome) -> None:
        finished.append(outcome)
        if outcome.failure is not None:
            failed.append(outcome)

    workers = min(os.cpu_count() or 1, len(seeds))
    with Progress(sys.stderr, describe):
        outcomes = swarm(job, seeds, workers=workers, done=done)
    elapsed = time.perf_counter() - wall
    slowest = max(outcomes, key=lambda outcome: outcome.wall)
    click.echo(
        f"{played.path}: {len(seeds)} seed(s) in {elapsed:.1f} s on {workers} worker(s): "
        f"{len(outcomes) - len(failed)} passed, {len(failed)} failed; "
        f"slowest: seed {slowest.seed} ({slowest.wall:.2f} s for {shown(slowest.simulated)} simulated)",
        err=True,
    )
    for outcome in sorted(failed, key=lambda outcome: outcome.seed):
        click.echo(f"seed {outcome.seed}: {outcome.failure}; replay: {replay(outcome.seed)}", err=True)
    if failed:
        raise SystemExit(1)


def replay(seed: int) -> str:
    """The command that replays one seed of this swarm: this very command, ``--seed N`` in place of ``--seeds``."""
    args = sys.argv[1:]
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--seeds":
            skip = True
        elif not arg.startswith("--seeds="):
            kept.append(arg)
    at = kept.index("simulate") + 1 if "simulate" in kept else len(kept)
    program = sys.argv[0]
    if "/" not in program and program.endswith(".py"):  # python arduino.py: ./arduino.py runs the same
        program = f"./{program}"
    name = os.path.basename(program)
    found = shutil.which(name) if not name.endswith(".py") else None
    if found is not None and _same(found, program):  # the installed command, found on PATH: by its name
        program = name
    return shlex.join([program, *kept[:at], "--seed", str(seed), *kept[at:]])


def _same(one: str, other: str) -> bool:
    try:
        return os.path.samefile(one, other)
    except OSError:
        return False
