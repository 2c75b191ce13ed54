"""Several nodes of one grid in one process: open them together, ports filled in."""

from __future__ import annotations

from collections.abc import Mapping

from mesh.grid import Grid

from .node import Node

__all__ = ["open_together"]


async def open_together(nodes: Mapping[str, Node]) -> Grid:
    """Open ``nodes`` (of one grid): those with a port first, then the rest.

    A node asked for port 0 binds any free port; the grid every node gets
    afterwards holds the ports actually bound, so that the nodes find each
    other. Returns that grid. Nothing is started yet: call ``begin()``.
    """
    grid = next(iter(nodes.values())).grid
    for name, node in nodes.items():
        if node.spec.port is not None:
            await node.open()
            grid = grid.with_node(name, port=node.port)
    for node in nodes.values():
        node.grid = grid
        node.spec = grid.node(node.name)  # the grid and the spec agree: the port actually bound
        if node.spec.port is None:
            await node.open()
    return grid
