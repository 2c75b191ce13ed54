"""The circuit in virtual time: the grid's nodes in one process, on an event loop whose clock jumps ahead.

::

    from nodes.simulation import Simulation, run_virtual

    async def main():
        async with Simulation("grid.yaml", seed=1) as sim:
            await sim.advance(3600)                    # an hour of the circuit, in seconds of wall time
            print(sim.count("iopin/pin"))

    run_virtual(main())

The loop is virtual (:mod:`nodes.virtual`): whenever nothing is ready to run, its clock
moves at once to the next timer. The nodes are the real ones, unchanged, and so is
websockets under them: real handshakes, frames, acks, keepalive and reconnects. Only their
bytes go through memory (:mod:`mesh.network`), not the kernel: every node keeps the address
the grid gives it, and the loop alone orders what happens, so a run is the same on an idle
or a loaded machine. Bytes take the virtual time the network's model says (none, unless
latency is set). What runs (``loop()``, ``setup()``) takes no virtual time: a sketch that
blocks the event loop stalls the whole simulation, and the node's watch reports it in
wall-clock terms (its lines are marked so: see :data:`nodes.watch.WALL_CLOCK`).

What a simulation adds to the nodes:

- a record of every publication, ``(t, key, data)``, with exact counts per key, and
  :meth:`Simulation.wait_for` to wait for one (the scenarios' ``expect-topic``);
- faults: :meth:`~Simulation.unplug` / :meth:`~Simulation.plug` a wire (its connection is
  cut, and new ones refused while unplugged), :meth:`~Simulation.kill` /
  :meth:`~Simulation.restart` a node (as SIGKILL would: a durable node keeps its outbox's
  file), :meth:`~Simulation.freeze` a node for a while (as SIGSTOP would, see
  :meth:`Node.freeze`); and the network's (:attr:`Simulation.network`): latency and jitter,
  partitions, flaky connections;
- each node's ``self.random`` seeded from the run's seed and its name, so that two runs
  with the same seed draw the same;
- a trace (:class:`nodes.trace.Trace`) of every publication and of each wire's
  messages in flight, when one is given.

Durable nodes keep their outboxes in a state folder of the simulation's own (a
temporary one unless given), never in a live circuit's. Past 400 lines, this module is one
job, what a test or a scenario does to a simulated circuit, and reads best whole.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from mesh.durations import duration, shown
from mesh.errors import SimulationError, UnknownNodeError
from mesh.grid import Grid, read_grid
from mesh.network import Network
from mesh.requests import send_once
from mesh.tls import client_context
from mesh.topics import matches

from . import faults
from .circuit import stop_order
from .node import Node
from .sketchbook import load
from .virtual import run_virtual

if TYPE_CHECKING:
    from .trace import Trace  # type: ignore[import-not-found,unused-ignore]  # (nodes.trace: the VCD writer)

__all__ = ["Publication", "Simulation", "run_virtual"]

#: Publications a simulation keeps to look at (the counts per key stay exact past it).
KEEP = 1_000_000

log = logging.getLogger("mesh.simulate")


class Publication(NamedTuple):
    """One publication the circuit made: when (simulated seconds since the start), its key, its payload.

    A named tuple: a simulated day keeps hundreds of thousands, each made in the publisher's turn.
    """

    t: float
    key: str
    data: str


class Simulation:
    """The nodes of ``grid`` (all, or ``only``) in this event loop, which should run in virtual time (:func:`run_virtual`).

    ``params`` changes some params of some nodes (``{"clock": {"tacks": 0}}``);
    ``seed`` seeds every sketch's ``self.random`` and the network's draws; ``wires`` names
    the wires that may be unplugged (``[("iopin", "buzzer")]``, or ``"all"``): a scenario
    names those it unplugs, so that a mistyped wire is an error before time passes.
    ``options`` go to every :class:`Node`.
    """

    def __init__(
        self,
        grid: Grid | str | os.PathLike[str] = "grid.yaml",
        *,
        only: Iterable[str] | None = None,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        seed: int | str = 0,
        token: str | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        wires: Iterable[tuple[str, str]] | str = (),
        trace: Trace | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(grid, Grid):
            grid = read_grid(grid)
        self.names = list(grid.nodes) if only is None else list(dict.fromkeys(only))
        for name in self.names:
            grid.node(name)  # UnknownNodeError names the known ones
        for name in params or {}:
            if name not in self.names:
                raise UnknownNodeError(name, {name: None for name in self.names})
        changed = {name: {"params": {**grid.node(name).params, **changes}} for name, changes in (params or {}).items()}
        self.grid = grid.with_nodes(changed) if changed else grid  # with the ports bound for port 0, once started
        self.seed = seed
        self.token = token
        self.options = options
        self.trace = trace
        #: The simulated network the nodes connect through: its model can change while the simulation runs.
        self.network = Network(seed)
        for name in self.names:
            spec = self.grid.node(name)
            if spec.port:
                self.network.assign((spec.host, spec.port), name)
        self._own_state: tempfile.TemporaryDirectory[str] | None = None
        if state_dir is None:
            self._own_state = tempfile.TemporaryDirectory(prefix="arduino-simulate-")
            state_dir = self._own_state.name
        self.state_dir = Path(state_dir)
        chosen = [(w.source, w.target) for w in grid.wires if w.source in self.names and w.target in self.names]
        if wires == "all":
            wanted = chosen
        else:
            wanted = list(dict.fromkeys(wires))  # type: ignore[arg-type]  # (not "all": pairs)
            for source, target in wanted:
                if (source, target) not in chosen:
                    raise SimulationError(f"no wire {source} -> {target} among the nodes simulated")
        self.wires = set(wanted)
        self.nodes: dict[str, Node] = {}
        self.killed: set[str] = set()
        self.publications: list[Publication] = []
        self.counts: Counter[str] = Counter()
        self.dropped = 0
        #: When the circuit last published (not on the runtime's ``$`` topics), and its longest pause before.
        self.last_news: float | None = None
        self.longest_pause = 0.0
        self.origin = 0.0
        self.ended = 0.0
        self.started_wall = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gone = 0  # messages counted by node instances killed since (see messages())
        self._waiters: list[tuple[str, str | None, asyncio.Future[Publication]]] = []
        self._thaws: dict[str, asyncio.TimerHandle] = {}
        self._inflight: dict[tuple[str, str], int] = {}

    # -- life ------------------------------------------------------------------------

    async def __aenter__(self) -> Simulation:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Put the network under this loop, then open every node (those with a port first), then begin each."""
        loop = self._loop = asyncio.get_running_loop()
        self.origin = loop.time()
        self.started_wall = time.perf_counter()
        self.network.attach(loop)
        try:
            for name in self.names:
                self.nodes[name] = self._make(name, self.grid)
            ports: dict[str, dict[str, Any]] = {}
            for name, node in self.nodes.items():
                if node.spec.port is not None:
                    with self.network.acting_as(name):
                        await node.open()
                    ports[name] = {"port": node.port}
            self.grid = self.grid.with_nodes(ports)
            for name, node in self.nodes.items():
                node.set_grid(self.grid)
                if node.spec.port is None:
                    with self.network.acting_as(name):
                        await node.open()
            for name, node in self.nodes.items():
                with self.network.acting_as(name):
                    node.begin()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop the nodes still running (each after those that stream to it), then take the network away."""
        self.ended = self.now()
        for handle in self._thaws.values():
            handle.cancel()
        running = [node for name, node in self.nodes.items() if name not in self.killed]
        for node in running:
            if node.frozen:
                faults.thaw(node)
            node.request_stop()
        for node in stop_order(running):
            await node.stop()
        self.network.set_flaky(None)
        if self._loop is not None:
            self.network.detach(self._loop)
        for _, _, future in self._waiters:
            future.cancel()
        self._waiters.clear()
        if self._own_state is not None:
            self._own_state.cleanup()
            self._own_state = None

    def _make(self, name: str, grid: Grid) -> Node:
        node = Node(
            load(grid.node(name).sketch, grid.path),
            name,
            grid,
            token=self.token,
            state_dir=self.state_dir,
            seed=self.seed,
            **self.options,
        )
        node.sender.taps.append(self._heard)
        if self.trace is not None:  # each message's future watched until it settles: only for the trace's wires
            node.sender.posted = partial(self._posted, name)
        return node

    # -- what happened ------------------------------------------------------------------

    def now(self) -> float:
        """Simulated seconds since the start (after the run: when it stopped)."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return self.ended
        return loop.time() - self.origin

    def _heard(self, key: str, text: str) -> None:
        t = self.now()
        self.counts[key] += 1
        if "$" not in key:
            pause = t - (self.last_news or 0.0)
            if pause > self.longest_pause:
                self.longest_pause = pause
            self.last_news = t
        publication = Publication(t, key, text)
        if len(self.publications) < KEEP:
            self.publications.append(publication)
        else:
            self.dropped += 1
        if self.trace is not None:
            self.trace.publication(t, key, text)
        if self._waiters:
            left = []
            for pattern, value, future in self._waiters:
                if future.done():
                    continue
                if matches(pattern, key) and (value is None or value == text):
                    future.set_result(publication)
                else:
                    left.append((pattern, value, future))
            self._waiters = left

    def _posted(self, source: str, target: str, futures: list[asyncio.Future[str]]) -> None:
        """Messages handed to the link ``source -> target``: in flight until each settles (the trace's wires)."""
        self._flight(source, target)
        for future in futures:
            future.add_done_callback(partial(self._settled, source, target))

    def _settled(self, source: str, target: str, _: object) -> None:
        self._flight(source, target)

    def _flight(self, source: str, target: str) -> None:
        node = self.nodes.get(source)
        link = None if node is None else node.sender.links.get(target)
        if link is None:
            return
        count = link.pending
        if self._inflight.get((source, target)) != count and self.trace is not None:
            self._inflight[source, target] = count
            self.trace.wire(self.now(), source, target, count)

    def published(self, pattern: str = "#", *, since: float = 0.0) -> list[Publication]:
        """The publications kept whose key ``pattern`` matches (MQTT wildcards), made at ``since`` or later."""
        return [p for p in self.publications if p.t >= since and matches(pattern, p.key)]

    def count(self, pattern: str = "#") -> int:
        """How many publications ``pattern`` matched, exactly (whatever was kept)."""
        return sum(n for key, n in self.counts.items() if matches(pattern, key))

    def went_quiet(self) -> float | None:
        """When the circuit went quiet, if it did: the time of its last publication (0 if none), when nothing
        was published after it for much longer than any pause before it (twice the longest, and a second at
        least) up to now; otherwise None. A clock that stopped ticking (``tacks: 5``) leaves a run so."""
        last = self.last_news or 0.0
        quiet = self.now() - last
        return last if quiet >= 1.0 and quiet > 2 * self.longest_pause else None

    def sketch(self, name: str) -> Any:
        """The running sketch of node ``name`` (its attributes are what its setup()/loop() set)."""
        return self._node(name).sketch

    # -- time ----------------------------------------------------------------------------

    async def advance(self, seconds: float | str) -> None:
        """Let ``seconds`` (or ``"10s"``, ``"1h"``) of simulated time pass."""
        await asyncio.sleep(duration(seconds))

    async def wait_for(self, pattern: str, value: str | None = None, *, within: float | str) -> Publication | None:
        """The next publication ``pattern`` matches (and carrying ``value``, if given), or None once ``within`` has passed."""
        future: asyncio.Future[Publication] = asyncio.get_running_loop().create_future()
        self._waiters.append((pattern, value, future))
        try:
            return await asyncio.wait_for(future, duration(within))
        except TimeoutError:
            return None

    async def until(self, condition: Callable[[], bool], *, within: float | str, step: float = 0.01) -> bool:
        """Wait until ``condition()`` holds, looking every ``step`` simulated seconds; False once ``within`` passed."""
        deadline = self.now() + duration(within)
        while not condition():
            if self.now() >= deadline:
                return False
            await asyncio.sleep(step)
        return True

    # -- talking to the circuit ------------------------------------------------------------

    async def send(self, name: str, message: str, channel: str = "") -> str:
        """Send one message to node ``name``, as ``arduino-mesh send`` does; its acknowledgement."""
        self._node(name)  # UnknownNodeError for a node not simulated
        uri = self.grid.node(name).uri
        if name in self.killed:
            raise SimulationError(f"node {name!r} is killed: nothing answers until it is restarted")
        if uri is None:
            raise SimulationError(f"node {name!r} has no port: nothing can be sent to it")
        context = None if self.grid.tls is None else client_context(self.grid.tls)
        return await send_once(name, uri, channel, message, sender="simulate", token=self.token, ssl_context=context)

    # -- faults ----------------------------------------------------------------------------------

    def _wire(self, source: str, target: str) -> None:
        if (source, target) not in self.wires:
            if any((w.source, w.target) == (source, target) for w in self.grid.wires):
                raise SimulationError(f"the wire {source} -> {target} was not made unpluggable (wires=...)")
            raise SimulationError(f"no wire {source} -> {target} in the grid")

    async def unplug(self, source: str, target: str) -> None:
        """Pull the wire ``source -> target`` out: its connection is cut, and refused until :meth:`plug`."""
        self._wire(source, target)
        self.network.unplug(source, target)
        log.info("wire %s -> %s unplugged", source, target)

    async def plug(self, source: str, target: str) -> None:
        """Put the wire back: the source's link reconnects (at its next try) and sends what it holds."""
        self._wire(source, target)
        self.network.plug(source, target)
        log.info("wire %s -> %s plugged back", source, target)

    def _pair(self, wire: tuple[str, str] | None) -> tuple[str, str] | None:
        if wire is not None:
            for name in wire:
                self._node(name)
        return wire

    def latency(
        self, delay: float | str = 0.0, jitter: float | str = 0.0, *, wire: tuple[str, str] | None = None
    ) -> None:
        """Bytes between the two ends of ``wire`` (both ways; None: every connection) take ``delay``, give or take
        ``jitter`` (uniform, drawn from the run's seed). ``latency()``: every connection back to none."""
        seconds, spread = duration(delay), duration(jitter)
        self.network.set_latency(seconds, spread, between=self._pair(wire))
        where = "every connection" if wire is None else f"{wire[0]} -> {wire[1]}"
        if seconds or spread:
            log.info("latency of %s: %s +- %s", where, shown_short(seconds), shown_short(spread))
        else:
            log.info("latency of %s back to none", where)

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the nodes into ``groups`` that cannot reach each other: the connections between them are cut,
        new ones refused, until :meth:`heal`. Nodes in no group reach every node."""
        sets = [list(group) for group in groups]
        for group in sets:
            for name in group:
                self._node(name)
        cut = self.network.partition(sets)
        log.info("partition %s: %d connection(s) cut", " | ".join(", ".join(group) for group in sets), cut)

    def heal(self) -> None:
        """End the partition: the links cut reconnect at their next try."""
        self.network.heal()
        log.info("partition healed")

    def flaky(self, every: float | str | None, *, wire: tuple[str, str] | None = None) -> None:
        """Reset the connections between the ends of ``wire`` (None: every connection) at random, ``every`` seconds
        on average (an exponential draw per connection, from the run's seed); ``flaky(None)``: no more."""
        seconds = None if every is None else duration(every)
        if seconds is not None and seconds <= 0:
            raise SimulationError(f"flaky: every must be above 0 seconds, not {every!r}")
        self.network.set_flaky(seconds, between=self._pair(wire))
        where = "every connection" if wire is None else f"{wire[0]} -> {wire[1]}"
        if seconds is None:
            log.info("flaky %s: no more", where)
        else:
            log.info("flaky %s: a reset every %s on average", where, shown_short(seconds))

    def _node(self, name: str) -> Node:
        node = self.nodes.get(name)
        if node is None:
            raise UnknownNodeError(name, {name: None for name in self.names})
        return node

    async def kill(self, name: str) -> None:
        """Kill node ``name`` as SIGKILL would: nothing said, nothing flushed; its address refuses until :meth:`restart`."""
        node = self._node(name)
        if name in self.killed:
            raise SimulationError(f"node {name!r} is already killed")
        handle = self._thaws.pop(name, None)
        if handle is not None:
            handle.cancel()
        node.kill()
        self.network.cut(name)  # what the node's own aborts left (a connection still in its handshake)
        self.killed.add(name)
        self._gone += _messages(node)
        log.info("%s killed", name)
        await asyncio.sleep(0)

    async def restart(self, name: str) -> None:
        """Start node ``name`` again, at the same address, from its sketch's ``setup()`` (a durable node resumes its outbox)."""
        if name not in self.killed:
            raise SimulationError(f"node {name!r} is running: kill it first")
        node = self._make(name, self.grid)
        self.nodes[name] = node
        with self.network.acting_as(name):
            await node.open()
            self.killed.discard(name)
            node.begin()
        log.info("%s restarted", name)

    def freeze(self, name: str, seconds: float | str | None = None) -> None:
        """Freeze node ``name`` (as SIGSTOP would, see :meth:`Node.freeze`), for ``seconds`` if given, else until :meth:`thaw`."""
        node = self._node(name)
        if name in self.killed:
            raise SimulationError(f"node {name!r} is killed: nothing to freeze")
        faults.freeze(node)
        log.info("%s frozen%s", name, "" if seconds is None else f" for {shown(duration(seconds))}")
        if seconds is not None:
            old = self._thaws.pop(name, None)
            if old is not None:
                old.cancel()
            self._thaws[name] = asyncio.get_running_loop().call_later(duration(seconds), self.thaw, name)

    def thaw(self, name: str) -> None:
        node = self._node(name)
        self._thaws.pop(name, None)
        if node.frozen and name not in self.killed:
            faults.thaw(node)
            log.info("%s thawed", name)

    # -- helpers for tests and the command ------------------------------------------------------

    def speed(self) -> float:
        """Simulated seconds per wall-clock second so far."""
        wall = time.perf_counter() - self.started_wall
        return self.now() / wall if wall > 0 else float("inf")

    def messages(self) -> int:
        """Messages the circuit carried so far: those handed to a ``loop()``, and publications heard by subscribers."""
        return self._gone + sum(_messages(node) for name, node in self.nodes.items() if name not in self.killed)


def shown_short(seconds: float) -> str:
    """``0.05`` as ``50ms``, ``2`` as ``2s``: a duration as the scenarios write it."""
    return f"{seconds * 1000:g}ms" if seconds < 1 else f"{seconds:g}s"


def _messages(node: Node) -> int:
    return node.reactor.messages_in + node.inbox.received
