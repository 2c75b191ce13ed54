"""Several nodes of one grid in one process: open them together, ports filled in; run and stop them together."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from mesh.grid import Grid

from .node import Node

__all__ = [
    "building",
    "on_free_ports",
    "open_together",
    "run_together",
    "start_together",
    "stop_layers",
    "stop_order",
    "stop_together",
]


@contextlib.contextmanager
def building() -> Iterator[None]:
    """Pause the cyclic garbage collector while many long-lived objects are made (a grid's nodes, opened).

    Every full collection walks every object alive, and start-up makes objects that all
    live on: each collection meanwhile walks a heap that only grows, for nothing to free
    (bench/NOTES.md has what it cost). Garbage made meanwhile waits for the next collection
    after; the collector is left as it was found (off if someone else turned it off).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def on_free_ports(
    grid: Grid, names: Iterable[str], params: Mapping[str, Mapping[str, Any]] | None = None, **where: Any
) -> Grid:
    """``grid`` with each of ``names`` that has a port on port 0 (and ``where``, say ``host=``), and
    ``params`` merged into theirs (``{"clock": {"delay": 0.01}}``): a circuit to run beside any other."""
    changed: dict[str, dict[str, Any]] = {}
    for name in names:
        spec = grid.node(name)  # UnknownNodeError names the known ones
        changes: dict[str, Any] = {**where, "port": 0} if spec.port is not None else {}
        if params and name in params:
            changes["params"] = {**spec.params, **params[name]}
        if changes:
            changed[name] = changes
    return grid.with_nodes(changed)


async def open_together(nodes: Mapping[str, Node]) -> Grid:
    """Open ``nodes`` (of one grid): those with a port first, then the rest.

    A node asked for port 0 binds any free port; the grid every node gets
    afterwards holds the ports actually bound, so that the nodes find each
    other. Returns that grid. Nothing is started yet: call ``begin()``.
    """
    grid = next(iter(nodes.values())).grid
    with building():
        bound: dict[str, dict[str, int | None]] = {}
        for name, node in nodes.items():
            if node.spec.port is not None:
                await node.open()
                bound[name] = {"port": node.port}
        grid = grid.with_nodes(bound)  # once for all: a grid rebuilt per node made start-up quadratic
        for node in nodes.values():
            node.set_grid(grid)  # the grid and the spec agree: the port actually bound
            if node.spec.port is None:
                await node.open()
    return grid


async def start_together(nodes: Sequence[Node]) -> Grid:
    """Open ``nodes`` together (see :func:`open_together`), then begin each; the grid with the ports bound."""
    grid = await open_together({node.name: node for node in nodes})
    for node in nodes:
        node.begin()
    return grid


async def run_together(nodes: Sequence[Node]) -> None:
    """The life of several nodes of one grid in one process, as :meth:`Node.run` is one node's.

    Open them together, begin each, wait until every one is done (a node with a port is
    done when asked to stop), then stop them together. When one fails to open (its port
    taken, say), those already open are stopped and the error goes on up.
    """
    try:
        await start_together(nodes)
        await asyncio.gather(*(node.wait() for node in nodes))
    finally:
        await stop_together(nodes)


async def stop_together(nodes: Sequence[Node]) -> None:
    """Stop nodes of one grid: first none starts new work or reconnects, then each stops after those that stream to it.

    The order lets a message in flight finish: the clock stops its ticks, then the iopin
    finishes the tick it holds, streaming to a buzzer that still listens, then the buzzer stops.
    The nodes of one layer (none wired to another) stop at once, together: ten thousand
    nodes without wires stop in the time of one.
    """
    for node in nodes:
        node.request_stop()
    for layer in stop_layers(nodes):
        await asyncio.gather(*(node.stop() for node in layer))


def stop_layers(nodes: Sequence[Node]) -> list[list[Node]]:
    """``nodes`` in layers, each node in a layer after every node among them wired to it (Kahn's order).

    A loop of wires is broken where the given order says: its first node left stops first.
    """
    given = {node.name: index for index, node in enumerate(nodes)}
    by_name = {node.name: node for node in nodes}
    waits: dict[str, int] = {}
    feeds: dict[str, list[str]] = {name: [] for name in by_name}
    for name, node in by_name.items():
        sources = [source for source in set(node.grid.sources(name)) if source in by_name and source != name]
        waits[name] = len(sources)
        for source in sources:
            feeds[source].append(name)
    layers: list[list[Node]] = []
    done: set[str] = set()
    ready = [name for name in by_name if not waits[name]]
    while len(done) < len(by_name):
        if not ready:  # a loop of wires: break it where the given order says
            ready = [next(name for name in by_name if name not in done)]
        layers.append([by_name[name] for name in ready])
        done.update(ready)
        freed = set()
        for name in ready:
            for target in feeds[name]:
                waits[target] -= 1
                if waits[target] <= 0 and target not in done:
                    freed.add(target)
        ready = sorted(freed, key=given.__getitem__)
    return layers


def stop_order(nodes: Sequence[Node]) -> list[Node]:
    """``nodes`` in an order where each comes after every node among them wired to it (a loop: the given order)."""
    return [node for layer in stop_layers(nodes) for node in layer]
