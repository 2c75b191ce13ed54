"""The simulated network: a simulation's nodes connect in memory, under websockets' own protocol objects.

::

    network = Network(seed=1)
    network.assign(("127.0.0.1", 8765), "iopin")    # the simulated addresses, and whose they are
    network.attach(loop)                             # serve() and connect() on this loop now reach it
    with network.acting_as("clock"):
        ...                                          # what opens connections here, opens them as clock

websockets is sans-I/O underneath: its handshake, framing, keepalive and close run unchanged
over a :class:`MemoryTransport`, an ``asyncio.Transport`` whose bytes go to its peer by the
event loop alone (``call_soon``, ``call_at``), never by the kernel. So a run's order of events is
the loop's: the same on an idle or a loaded machine. :meth:`Network.attach` has ``serve()``
and ``connect()`` reach it through the loop's ``create_server`` and ``create_connection``
(:func:`mesh.wall.route`); the addresses the network names go to memory, any other to the
real network.

The model, all of it settable while the simulation runs, every draw from the network's seed:

- **latency** (and jitter) between two nodes, or on every connection: bytes arrive that much
  later, never before the bytes written before them;
- **partitions**: groups of nodes that cannot reach each other; crossing connections are
  reset, new ones refused, until :meth:`Network.heal`;
- **unplugged wires** (one way: the connections a node opens to another) and **killed nodes**:
  reset, and refused;
- **flaky** connections between two nodes (or all): each is reset after a time drawn from an
  exponential distribution of the given mean, and so is each new one, until turned off.

What it does not model: bandwidth (only a window of unread bytes per direction, as the
kernel's buffers, so that a peer that does not read makes its writer wait), loss (TCP hides
it), TLS (a ``wss://`` grid's connections carry plain bytes in memory). Writes to a peer
happen in the loop's turns, as on loopback, so a zero latency still means "in the next turn".
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .memory import Address, MemoryServer, MemoryTransport, Pipe
from .wall import route, unroute

__all__ = ["Network", "network_of"]

#: The first port a listener asking for port 0 gets, and the first port of each host's clients.
FREE_PORTS = 20_000
CLIENT_PORTS = 49_152

#: The node the code running now acts as: its connections are that node's (see Network.acting_as).
_ACTING_AS: contextvars.ContextVar[str | None] = contextvars.ContextVar("acting_as", default=None)


class Network:
    """Listeners and connections in memory, and the model of what happens to their bytes (see the module)."""

    def __init__(self, seed: int | str = 0) -> None:
        self.seed = seed
        self.listeners: dict[Address, MemoryServer] = {}
        self.pipes: dict[int, Pipe] = {}  # open connections, in the order they were made
        self.serial = 0  # connections made over the network's life
        self.refused = 0  # connections refused over its life
        self.resets = 0  # connections the network cut (partitions, unplugged wires, flaky, killed nodes)
        self._names: dict[Address, str] = {}  # simulated addresses: whose they are
        self._client_ports: dict[str, int] = {}
        self._latency: dict[tuple[str, str] | None, tuple[float, float]] = {}  # None: every connection
        self._groups: dict[str, int] | None = None  # a partition: node -> its group
        self._unplugged: set[tuple[str, str]] = set()
        self._flaky: dict[tuple[str, str] | None, float] = {}
        self._randoms: dict[str, random.Random] = {}

    # -- addresses and names -----------------------------------------------------------------

    def assign(self, address: Address, node: str) -> None:
        """``address`` (as the grid names it) is node ``node``'s, simulated here: nobody else can take it."""
        self._names[address] = node

    def simulates(self, address: Address) -> bool:
        """Whether ``address`` is simulated here (a node's, or a listener's)."""
        return address in self._names or address in self.listeners

    @contextlib.contextmanager
    def acting_as(self, node: str) -> Iterator[None]:
        """What runs inside (and the tasks it starts, and its listeners' connections) acts as ``node``."""
        token = _ACTING_AS.set(node)
        try:
            yield
        finally:
            _ACTING_AS.reset(token)

    def random(self, what: str) -> random.Random:
        """A generator of the network's seed for ``what``: one thing's draws never shift another's."""
        found = self._randoms.get(what)
        if found is None:
            found = self._randoms[what] = random.Random(f"{self.seed}:network:{what}")
        return found

    # -- the loop's side ---------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """From now on ``loop.create_server``/``create_connection`` reach this network for its addresses."""
        real_server, real_connection = loop.create_server, loop.create_connection

        async def create_server(factory: Callable[[], Any], host: Any = None, port: Any = None, **kwargs: Any) -> Any:
            if (
                isinstance(host, str)
                and port is not None
                and (self.simulates((host, port)) or (not port and _ACTING_AS.get() is not None))
            ):
                return self.listen(loop, factory, host, port)
            return await real_server(factory, host, port, **kwargs)

        async def create_connection(
            factory: Callable[[], Any], host: Any = None, port: Any = None, **kwargs: Any
        ) -> tuple[asyncio.Transport, Any]:
            if kwargs.get("sock") is None and self.simulates((host, port)):
                return await self.connect(loop, factory, host, port)
            return await real_connection(factory, host, port, **kwargs)

        route(loop, create_server, create_connection)
        _NETWORKS[loop] = self

    def detach(self, loop: asyncio.AbstractEventLoop) -> None:
        """``loop`` uses the real network only again."""
        unroute(loop)
        _NETWORKS.pop(loop, None)

    def listen(self, loop: asyncio.AbstractEventLoop, factory: Callable[[], Any], host: str, port: int) -> MemoryServer:
        if not port:
            port = FREE_PORTS
            while self.simulates((host, port)):
                port += 1
        address = (host, port)
        if address in self.listeners:
            raise OSError(errno.EADDRINUSE, f"[Errno {errno.EADDRINUSE}] address already in use")
        server = self.listeners[address] = MemoryServer(self, loop, factory, address)
        source = _ACTING_AS.get()
        if source is not None:
            self._names.setdefault(address, source)
        return server

    async def connect(
        self, loop: asyncio.AbstractEventLoop, factory: Callable[[], Any], host: str, port: int
    ) -> tuple[MemoryTransport, Any]:
        """A connection from the node acting now to ``host:port``: refused, or both ends made."""
        source = _ACTING_AS.get() or "simulate"
        address = (host, port)
        target = self._names.get(address, f"{host}:{port}")
        delay = self._latency_of(source, target)[0]
        await asyncio.sleep(2 * delay)  # the connection's first round trip (a turn, at zero latency)
        listener = self.listeners.get(address)
        if listener is None or not self._reaches(source, target):
            self.refused += 1
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"Connect call failed {address}")
        self.serial += 1
        pipe = Pipe(self, loop, self.serial, source, target)
        ephemeral = self._client_ports.get(host, CLIENT_PORTS)
        self._client_ports[host] = ephemeral + 1 if ephemeral < 65_535 else CLIENT_PORTS
        source_host = next((h for (h, _), n in self._names.items() if n == source), host)
        client_address = (source_host, ephemeral)
        pipe.client = MemoryTransport(pipe, client_address, address, contextvars.copy_context())
        pipe.server = MemoryTransport(pipe, address, client_address, listener.context)
        pipe.client.peer, pipe.server.peer = pipe.server, pipe.client
        self._model(pipe)
        self.pipes[pipe.serial] = pipe
        loop.call_soon(listener.accept, pipe.server, context=listener.context)
        protocol = factory()
        pipe.client.start(protocol)
        return pipe.client, protocol

    # -- the model -----------------------------------------------------------------------------

    def _reaches(self, source: str, target: str) -> bool:
        if (source, target) in self._unplugged:
            return False
        groups = self._groups
        if groups is None:
            return True
        a, b = groups.get(source), groups.get(target)
        return a is None or b is None or a == b

    def _latency_of(self, a: str, b: str) -> tuple[float, float]:
        latency = self._latency
        if not latency:
            return (0.0, 0.0)
        return latency.get((a, b)) or latency.get((b, a)) or latency.get(None) or (0.0, 0.0)

    def _model(self, pipe: Pipe) -> None:
        """Give a connection the model as it is now: its latency, and its reset if it is flaky."""
        delay, jitter = self._latency_of(pipe.source, pipe.target)
        for end in (pipe.client, pipe.server):
            end.delay, end.jitter = delay, jitter
        mean = self._flaky.get((pipe.source, pipe.target)) or self._flaky.get((pipe.target, pipe.source))
        mean = mean or self._flaky.get(None)
        if pipe.flake is not None:
            pipe.flake.cancel()
            pipe.flake = None
        if mean:
            after = self.random(f"flaky:{pipe.serial}").expovariate(1 / mean)
            pipe.flake = pipe.loop.call_later(after, self._flake, pipe)

    def _flake(self, pipe: Pipe) -> None:
        pipe.flake = None
        self._cut([pipe])

    def _cut(self, pipes: Iterable[Pipe]) -> int:
        cut = 0
        for pipe in list(pipes):
            pipe.reset()
            cut += 1
        self.resets += cut
        return cut

    def set_latency(self, delay: float, jitter: float = 0.0, between: tuple[str, str] | None = None) -> None:
        """Bytes between the nodes ``between`` (each way) take ``delay`` seconds, give or take up to ``jitter``
        (uniform). ``between`` None: every connection without a latency of its own; 0 and 0 there: every
        connection back to none. Connections open now follow at once (what is in the air keeps its arrival)."""
        if delay or jitter:
            self._latency[between] = (delay, jitter)
        elif between is None:
            self._latency.clear()
        else:
            self._latency.pop(between, None)
        for pipe in self.pipes.values():
            delay_now, jitter_now = self._latency_of(pipe.source, pipe.target)
            for end in (pipe.client, pipe.server):
                end.delay, end.jitter = delay_now, jitter_now

    def partition(self, groups: Iterable[Iterable[str]]) -> int:
        """Split the nodes into ``groups`` that cannot reach each other (nodes in none reach all); how many
        connections were cut."""
        self._groups = {node: index for index, group in enumerate(groups) for node in group}
        return self._cut(pipe for pipe in self.pipes.values() if not self._reaches(pipe.source, pipe.target))

    def heal(self) -> None:
        """The partition is over: new connections go through (those cut reconnect by themselves)."""
        self._groups = None

    def unplug(self, source: str, target: str) -> int:
        """Cut the connections ``source`` opened to ``target`` and refuse new ones until :meth:`plug`."""
        self._unplugged.add((source, target))
        return self._cut(p for p in self.pipes.values() if (p.source, p.target) == (source, target))

    def plug(self, source: str, target: str) -> None:
        self._unplugged.discard((source, target))

    def cut(self, node: str) -> int:
        """Reset every connection of ``node`` (a killed node's, as the kernel does for a dead process)."""
        return self._cut(p for p in self.pipes.values() if node in (p.source, p.target))

    def set_flaky(self, every: float | None, between: tuple[str, str] | None = None) -> None:
        """Reset each connection between the nodes ``between`` (None: every connection) after an exponential
        draw of mean ``every`` seconds, and each new one, until called with ``every`` None."""
        if every:
            self._flaky[between] = every
        elif between is None:
            self._flaky.clear()
        else:
            self._flaky.pop(between, None)
        for pipe in self.pipes.values():
            if between is None or pipe.between(*between):
                self._model(pipe)


#: The network each attached loop reaches (requests look it up: see network_of).
_NETWORKS: dict[asyncio.AbstractEventLoop, Network] = {}


def network_of(loop: asyncio.AbstractEventLoop) -> Network | None:
    """The simulated network ``loop`` is attached to, if any."""
    return _NETWORKS.get(loop)
