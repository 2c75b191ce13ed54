"""``./arduino.py NODE`` and ``./arduino.py run NODE``: run one node of the grid until stopped."""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

from mesh.constants import DEFAULT_WAIT
from mesh.errors import MeshError
from mesh.grid import Grid, NodeSpec, read_grid
from nodes.node import GRACE
from nodes.params import sketch_parameters
from nodes.reload import GridSource
from nodes.runner import run_until_signalled
from nodes.runtime import Node, check_params

from .common import Failure, find_node, load_grid, load_sketch, mesh_token, read_checked

__all__ = ["node_command", "run_command"]


def parse_param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``, the value read as a YAML scalar (``3`` is a number, ``buzz`` is text)."""
    key, sep, raw = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="--param")
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        value = raw
    if isinstance(value, (list, dict)) or value is None:
        value = raw
    return key, value


def node_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options every node command takes, whatever its sketch."""
    for decorator in reversed(
        [
            click.option("-s", "--socket", "host", metavar="HOST", help="Listen on HOST instead of the grid's."),
            click.option(
                "-p",
                "--port",
                type=click.IntRange(0, 65535),
                help="Listen on PORT instead of the grid's (0: any free port).",
            ),
            click.option(
                "--param", "extra", multiple=True, metavar="KEY=VALUE", help="Any sketch parameter (repeatable)."
            ),
            click.option(
                "--wait",
                type=click.FloatRange(0),
                default=DEFAULT_WAIT,
                show_default=True,
                help="Seconds to keep trying to reach a peer that is not up (0: forever).",
            ),
            click.option(
                "--grace",
                type=click.FloatRange(0),
                default=GRACE,
                show_default=True,
                help="Seconds that loop() calls still running get to finish when the node stops.",
            ),
        ]
    ):
        function = decorator(function)
    return function


#: Names the options every node command takes already use (flags and destinations).
COMMON = frozenset({"socket", "host", "port", "param", "extra", "wait", "grace", "help"})


def sketch_options(grid: Grid, spec: NodeSpec) -> list[click.Option]:
    """One option per parameter of the node's sketch's ``setup()``: its type, and the default the grid gives it."""
    options = []
    for parameter in sketch_parameters(load_sketch(grid, spec)):
        if parameter.name in COMMON:  # --port, --wait... mean the node's own; --param NAME=VALUE still reaches it
            continue
        default = spec.params.get(parameter.name, parameter.default)
        shown = "required" if default is inspect.Parameter.empty else f"{default!r}"
        source = "grid" if parameter.name in spec.params else "sketch"
        words = f"{parameter.help[:1].upper()}{parameter.help[1:]}" if parameter.help else parameter.name
        flag = f"--{parameter.name.replace('_', '-')}"
        options.append(
            click.Option(
                [f"{flag}/--no-{flag[2:]}" if parameter.kind is bool else flag, parameter.name],
                type=parameter.kind,
                default=None,
                help=f"{words} [{source}: {shown}]",
            )
        )
    return options


def node_command(ctx: click.Context, name: str) -> click.Command:
    """``./arduino.py NAME [options]``: run the node NAME of the grid, with its sketch's parameters as options."""

    @click.command(name=name, help=f"Run the node {name!r} of the grid.")
    @node_options
    @click.pass_context
    def command(ctx: click.Context, **options: Any) -> None:
        run_node(ctx, name, **options)

    try:  # without a grid that names the node, the command still runs, to say what is wrong
        grid = read_grid(ctx.params.get("grid") or "grid.yaml")
        spec = grid.node(name)
        command.params[0:0] = sketch_options(grid, spec)  # the sketch's own first
        command.help = f"Run the node {name!r} of the grid (sketch {spec.sketch}, {spec.address or 'no port'})."
    except MeshError:
        pass
    return command


@click.command(
    "run", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False
)
@click.argument("node")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run_command(ctx: click.Context, node: str, args: tuple[str, ...]) -> None:
    """Run the node NODE of the grid (same as `./arduino.py NODE [OPTIONS]`; `run NODE --help` lists them)."""
    assert ctx.parent is not None
    if node in ("-h", "--help"):
        click.echo(ctx.get_help())
        ctx.exit(0)
    command = node_command(ctx.parent, node)
    with command.make_context(node, list(args), parent=ctx.parent) as node_ctx:
        command.invoke(node_ctx)


def run_node(
    ctx: click.Context,
    name: str,
    *,
    host: str | None,
    port: int | None,
    extra: tuple[str, ...],
    wait: float,
    grace: float,
    **params: Any,
) -> None:
    """Load the grid, apply the command line's overrides, run the node until stopped."""
    grid = load_grid(ctx)
    spec = find_node(grid, name)
    overrides = {key: value for key, value in params.items() if value is not None}
    overrides.update(parse_param(text) for text in extra)
    try:
        cls = load_sketch(grid, spec)
        check_params(cls, NodeSpec(name=name, sketch=spec.sketch, params=overrides), "command line", complete=False)
        fixed: dict[str, Any] = {"host": host, "port": port}
        fixed = {key: value for key, value in fixed.items() if value is not None}

        def with_overrides(grid: Grid) -> Grid:
            """The grid as this node runs it: the command line's params, host and port over the file's."""
            return grid.with_node(name, params={**grid.node(name).params, **overrides}, **fixed)

        def reread() -> Grid:
            """An edit of the grid file, read and checked as at start (nodes.reload)."""
            return with_overrides(read_checked(ctx.obj["grid"]))

        grid = with_overrides(grid)
        node = Node(cls, name, grid, wait=wait, grace=grace, state_dir=ctx.obj["state_dir"], token=mesh_token(grid))
        asyncio.run(run_until_signalled(node, source=GridSource(Path(ctx.obj["grid"]), reread)))
    except MeshError as exc:
        raise Failure(str(exc)) from None
