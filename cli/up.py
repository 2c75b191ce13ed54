"""``./arduino.py up [NODE...]``: the whole circuit, or the nodes named, in one process until stopped."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click

from mesh.errors import MeshError
from mesh.grid import Grid
from nodes import FactoryLoop
from nodes.circuit import building
from nodes.reload import GridSource
from nodes.runner import run_until_signalled
from nodes.runtime import Node

from .common import Failure, find_node, load_grid, load_sketch, mesh_token, read_checked
from .logs import prefix_lines

__all__ = ["up_command"]


@click.command("up")
@click.argument("names", nargs=-1, metavar="[NODE]...")
@click.pass_context
def up_command(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Run every node of the grid (or the NODEs named) in one process, until Ctrl-C.

    Each line says which node it comes from, as under honcho
    (`12:00:01 clock  | tick 1`); each node takes its parameters from the grid,
    and follows its edits as `arduino-mesh NODE` does, one read of the file for all
    (a node added to the grid is not started).
    One Ctrl-C (or SIGTERM) stops them all and exits 0; a node that cannot start
    (its port taken, say) stops the others and exits 1. `honcho start` runs the
    same nodes as separate processes.
    """
    grid = load_grid(ctx)
    chosen = list(dict.fromkeys(names)) if names else list(grid.nodes)
    for name in chosen:
        find_node(grid, name)  # exit 2, listing the known nodes
    token = mesh_token(grid)
    nodes: list[Node] = []

    def reread() -> Grid:
        """An edit of the grid, read as at start, with the ports that nodes here asked as 0 actually bound."""
        fresh = read_checked(ctx.obj["grid"])
        return fresh.with_nodes(
            {
                node.name: {"port": node.port}
                for node in nodes
                if node.name in fresh.nodes and fresh.node(node.name).port == 0 and node.port is not None
            }
        )

    source = GridSource(Path(ctx.obj["grid"]), reread)  # one watcher: every node takes each edit from one read
    try:
        sketches: dict[str, type[FactoryLoop]] = {}  # a grid of thousands of nodes names a few sketches
        with building():  # thousands of long-lived objects: no full collection over them meanwhile
            for name in chosen:
                spec = grid.node(name)
                if spec.sketch not in sketches:
                    sketches[spec.sketch] = load_sketch(grid, spec)
                nodes.append(Node(sketches[spec.sketch], name, grid, state_dir=ctx.obj["state_dir"], token=token))
        prefix_lines([*chosen, "up"])
        asyncio.run(run_until_signalled(*nodes, log=logging.getLogger("mesh.up"), source=source))
    except MeshError as exc:
        raise Failure(str(exc)) from None
