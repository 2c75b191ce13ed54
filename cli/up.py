"""``./arduino.py up [NODE...]``: the whole circuit, or the nodes named, in one process until stopped."""

from __future__ import annotations

import asyncio
import logging

import click

from mesh.errors import MeshError
from nodes.logs import prefix_lines
from nodes.node import Node
from nodes.runner import run_until_signalled

from .common import Failure, find_node, load_grid, load_sketch, mesh_token

__all__ = ["up_command"]


@click.command("up")
@click.argument("names", nargs=-1, metavar="[NODE]...")
@click.pass_context
def up_command(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Run every node of the grid (or the NODEs named) in one process, until Ctrl-C.

    Each line says which node it comes from, as under honcho
    (`12:00:01 clock  | tick 1`); each node takes its parameters from the grid.
    One Ctrl-C (or SIGTERM) stops them all and exits 0; a node that cannot start
    (its port taken, say) stops the others and exits 1. `honcho start` runs the
    same nodes as separate processes.
    """
    grid = load_grid(ctx)
    chosen = list(dict.fromkeys(names)) if names else list(grid.nodes)
    for name in chosen:
        find_node(grid, name)  # exit 2, listing the known nodes
    token = mesh_token(grid)
    try:
        nodes = [
            Node(load_sketch(grid, grid.node(name)), name, grid, state_dir=ctx.obj["state_dir"], token=token)
            for name in chosen
        ]
        prefix_lines([*chosen, "up"])
        asyncio.run(run_until_signalled(*nodes, log=logging.getLogger("mesh.up")))
    except MeshError as exc:
        raise Failure(str(exc)) from None
