"""Your circuit in your tests: the nodes of a grid in the test's own event loop, each on a free port.

::

    import asyncio
    from nodes.testing import circuit

    def test_blinky_answers():
        async def main():
            async with circuit("grid.yaml", params={"clock": {"delay": 0.01}}) as running:
                assert await running.send("blinky", "1") == "on"
                assert running.sketch("blinky").lit

        asyncio.run(main())

Every node of the grid (or those named) runs with its sketch found as the grid
says (see :mod:`nodes.sketchbook`), on port 0 so that tests never fight over a
port, and the nodes find each other at the ports actually bound. When the
``async with`` ends, pass or fail, every node is stopped.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from mesh.grid import Grid, read_grid
from mesh.requests import send_once
from mesh.tls import client_context

from .circuit import on_free_ports, start_together, stop_together
from .factory import FactoryLoop
from .node import Node
from .sketchbook import load

__all__ = ["Circuit", "circuit"]


class Circuit:
    """The nodes :func:`circuit` runs: send them messages, look at their sketches."""

    def __init__(self, grid: Grid, nodes: Mapping[str, Node], token: str | None) -> None:
        self.grid = grid
        self.nodes = dict(nodes)
        self.token = token

    def sketch(self, name: str) -> FactoryLoop:
        """The running sketch of node ``name``: its attributes are what its ``setup()``/``loop()`` set."""
        return self.nodes[name].sketch

    def address(self, name: str) -> str:
        """``host:port`` where node ``name`` listens (the port actually bound)."""
        address = self.grid.node(name).address
        if address is None:
            raise ValueError(f"node {name!r} has no port")
        return address

    async def send(self, name: str, message: str, channel: str = "") -> str:
        """Send one message to node ``name``, as ``arduino-mesh send`` does, and return its acknowledgement."""
        uri = self.grid.node(name).uri
        if uri is None:
            raise ValueError(f"node {name!r} has no port: nothing can be sent to it")
        context = None if self.grid.tls is None else client_context(self.grid.tls)  # wss://: verified as by send
        return await send_once(name, uri, channel, message, sender="test", token=self.token, ssl_context=context)


@asynccontextmanager
async def circuit(
    grid: Grid | str | os.PathLike[str] = "grid.yaml",
    *,
    only: Iterable[str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    token: str | None = None,
    **options: Any,
) -> AsyncIterator[Circuit]:
    """Run the nodes of ``grid`` (a path or a :class:`Grid`) in this event loop, on free ports.

    ``only`` names the nodes to run (the default: all); ``params`` changes some
    params of some nodes (``{"clock": {"delay": 0.01}}``); ``token`` is the
    mesh's token, if the grid asks for one; ``options`` go to every
    :class:`Node` (``wait``, ``grace``, ``state_dir``...).
    """
    if not isinstance(grid, Grid):
        grid = read_grid(grid)
    names = list(grid.nodes) if only is None else list(only)
    grid = on_free_ports(grid, names, params)
    nodes = {name: Node(load(grid.node(name).sketch, grid.path), name, grid, token=token, **options) for name in names}
    try:
        grid = await start_together(list(nodes.values()))
        yield Circuit(grid, nodes, token)
    finally:
        await stop_together(list(nodes.values()))  # each after the nodes that stream to it
