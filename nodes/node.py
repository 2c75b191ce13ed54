"""``Node``: the runtime that runs one sketch — server, links, hub, sessions, counters, life cycle.

A sketch (a :class:`~nodes.factory.FactoryLoop` subclass) holds its node but does not
inherit from it: whatever a sketch names its own attributes, the node's machinery stays
out of reach. The node calls the sketch only through the sketch's class — ``setup``, the
``@reactive`` loop, the ``@hears`` method, the ``@every`` methods, and the hooks
``http``, ``serve_plain`` and ``public_paths`` — never through an instance attribute.

Life of a node: :meth:`open` (``setup(**params)``, bind, log ``serving on``),
:meth:`begin` (subscribe to the grid's patterns, start the ``@every`` methods, and, given a
``grid_source``, follow the edits of the grid file: :mod:`nodes.reload`),
:meth:`wait` (until stopped, or until a node with no port has nothing left to do),
:meth:`stop`. :meth:`run` does all four.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import random
import ssl
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection

from mesh.connection import freeze_transport, thaw_transport
from mesh.errors import GridError, MeshError, TopicError, UnknownNodeError
from mesh.grid import Grid, NodeSpec
from mesh.links import DEFAULT_WAIT, OFFLINE, ONLINE, STATE_TOPIC, Link, acks, acks_by_target, backoff
from mesh.outbox import DurableOutbox, MemoryOutbox
from mesh.protocol import to_text
from mesh.tls import client_context, server_context, verify_own
from mesh.topics import check_key, check_pattern, check_topic

from .delivery import Sessions
from .params import check_params
from .periodic import periodic_methods, run_every
from .pubsub import Handler, Hub, Inbox
from .reactive import Reactor, heard_by, reported_by, sketch_report
from .reload import GridSource, watch
from .server import NodeServer
from .watch import Watch

if TYPE_CHECKING:
    from .factory import FactoryLoop

__all__ = ["DEFAULT_STATE_DIR", "GRACE", "Node"]

#: Seconds that in-flight ``loop()`` calls get to finish when a node stops.
GRACE = 0.5
#: Where durable outboxes live, relative to the working directory.
DEFAULT_STATE_DIR = ".state"
#: Topics a node remembers as already checked.
KNOWN_TOPICS = 4096
#: The status report lists at most this many subscribers (``subscribers_total`` counts them all)...
STATUS_SUBSCRIBERS = 20
#: ...and at most this many patterns of each (``patterns_total`` counts them all).
STATUS_PATTERNS = 10
#: Seconds a stopping node gives its subscribers to take its last publications (its ``$state`` = ``offline``).
FLUSH_TIMEOUT = 0.5


def _texts(data: object) -> list[str]:
    """``data`` as the texts of its messages: one for text or a single value, one per item of anything else."""
    items = [data] if isinstance(data, (str, bytes, int, float, dict)) or data is None else list(data)  # type: ignore[call-overload]
    return [to_text(item) for item in items]


def _failed(error: Exception) -> asyncio.Future[str]:
    """A future that already failed with ``error``: a target whose messages could not be taken."""
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    future.set_exception(error)
    return future


class Node:
    """One node of a grid running one sketch."""

    def __init__(
        self,
        sketch: type[FactoryLoop],
        name: str,
        grid: Grid,
        *,
        wait: float = DEFAULT_WAIT,
        grace: float = GRACE,
        reconnect_delays: Any = backoff,
        state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
        token: str | None = None,
        grid_source: GridSource | None = None,
        seed: int | str | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.name = name
        self.reuse_port = reuse_port  # SO_REUSEPORT: for a simulation, which holds the port of a killed node
        self.grid = grid
        self.spec: NodeSpec = grid.node(name)
        self.log = logging.getLogger(f"mesh.{name}")
        self.patience = wait  # seconds a link keeps trying to reach a peer that is not up (0: forever)
        self.grace = grace
        self.reconnect_delays = reconnect_delays
        self.state_dir = Path(state_dir)
        self.token = token
        #: The grid file this node follows while it runs (nodes.reload); None: the grid it was given, for good.
        self.grid_source = grid_source
        self.links: dict[str, Link] = {}
        self.hub = Hub(name, self.log, announce=self._publish_now)
        self.sessions = Sessions(self.log, grid=lambda: self.grid, own=name)  # the grid as reloaded
        self.watch = Watch(self.log)  # times the sketch's code; warns when it blocks the event loop
        self.inbox = Inbox(self.log, watch=self.watch)
        self.store: MemoryOutbox = MemoryOutbox()
        self.server: NodeServer | None = None
        self.started: float | None = None
        self.messages_out = 0
        self.published = 0
        self._topics: set[str] = set()
        self._tasks: list[asyncio.Task[int]] = []  # the @every methods
        self._background: list[asyncio.Task[Any]] = []
        self._stopping = asyncio.Event()
        self._client_ssl: ssl.SSLContext | None = None  # the grid's tls, made a client context on first use
        self.seed = seed  # a run's seed (a simulation's), or None: see random
        #: Who else sees each publication as it is made, ``tap(key, text)``: a simulation's record of the circuit.
        self.taps: list[Callable[[str, str], None]] = []
        self._thawed: asyncio.Event | None = None  # set while a simulation holds the node frozen (see freeze)
        self.sketch = sketch(self)
        self.reactor = Reactor(self.sketch, self.log, self.watch, self.spec.timeout)

    # -- what the sketch's surface calls --------------------------------------

    @property
    def targets(self) -> tuple[str, ...]:
        """The nodes this node is wired to, in the grid's order."""
        return self.grid.targets(self.name)

    async def post(self, target: str, data: object, channel: str = "") -> list[asyncio.Future[str]]:
        """Hand ``data`` (one message, or one per item) to the link to ``target``; one future per message."""
        texts = _texts(data)
        link = self.link(target)
        futures = link.post_now(channel, texts)  # written in this turn when nothing needs waiting for
        if futures is None:
            futures = await link.post_many(channel, texts)
        self.messages_out += len(futures)
        return futures

    async def stream(self, target: str, data: object, channel: str = "") -> list[str]:
        """``data`` to ``target`` (one message, or one per item); its acks, in order."""
        return await acks(await self.post(target, data, channel))

    async def stream_all(self, targets: Iterable[str], data: object, channel: str = "") -> dict[str, list[str]]:
        """``data`` to every one of ``targets`` at once; their acks, each target's in order, once all have answered.

        Every link takes the messages and writes them before any ack is awaited, so the
        targets work on them together. A link whose outbox is full is handed its share
        once the others have theirs, so a target that is down or slow holds up no other.
        Once every target has answered or failed, the first failure (in the order of
        ``targets``) is raised, as :meth:`FactoryLoop.stream` raises it for one target.
        """
        texts = _texts(data)
        links = {target: self.link(target) for target in targets}  # UnknownNodeError before anything is sent
        posted: dict[str, list[asyncio.Future[str]]] = {}
        full = []
        for target, link in links.items():
            if link.has_room(len(texts)):  # taken at once: no task to make
                try:
                    posted[target] = await self.post(target, texts, channel)  # through post(): a simulation counts it
                except MeshError as exc:  # this target's failure, raised once the others are delivered
                    posted[target] = [_failed(exc)]
            else:
                full.append(target)
        if full:
            taken = await asyncio.gather(
                *(self.post(target, texts, channel) for target in full), return_exceptions=True
            )
            for target, outcome in zip(full, taken, strict=True):
                if isinstance(outcome, asyncio.CancelledError) or not isinstance(outcome, Exception):
                    if isinstance(outcome, BaseException):
                        raise outcome
                    posted[target] = outcome
                else:
                    posted[target] = [_failed(outcome)]
        answers = await acks_by_target([posted[target] for target in links])
        return dict(zip(links, answers, strict=True))

    async def publish(self, topic: str, data: object, *, retain: bool = False) -> int:
        """Publish ``data`` on ``<node>/<topic>`` (kept for later subscribers if ``retain``); how many it was handed to."""
        if topic not in self._topics:  # checked once per topic
            check_topic(topic)
            if topic.startswith("$"):
                raise TopicError(
                    topic,
                    f"topic {topic!r}: topics starting with '$' are the runtime's"
                    f" ({self.name}/$state, {self.name}/$subscribers/...); publish on another name",
                )
            check_key(f"{self.name}/{topic}")
            if len(self._topics) < KNOWN_TOPICS:
                self._topics.add(topic)
        if retain:
            return self._publish_now(topic, to_text(data), retain=True)
        if not self.hub.subscribers and not self.inbox.handlers and not self.taps:  # nobody hears it: nothing to build
            self.published += 1
            return 0
        return self._publish_now(topic, to_text(data))

    def _publish_now(self, topic: str, text: str, retain: bool = False) -> int:
        key = f"{self.name}/{topic}"
        for tap in self.taps:
            tap(key, text)
        if retain:
            self.hub.retain(key, text)  # RetainLimit past a limit: nothing published
        handed = self.hub.publish(key, text)
        if self.inbox.wants(key) and self.inbox.deliver_nowait(key, text):
            handed += 1
        self.published += 1
        return handed

    async def subscribe(self, pattern: str, handler: Handler) -> int:
        """Call ``handler(key, data)`` for every publication ``pattern`` matches; how many publishers confirmed."""
        check_pattern(pattern)
        self.inbox.add(pattern, handler)
        for key, data in self.hub.retained_for(pattern):  # this node's own retained values, at once
            self.inbox.deliver_to(pattern, key, data)
        confirmed = await asyncio.gather(
            *(self.link(name).subscribe(pattern) for name in self.grid.publishers(pattern, but=self.name))
        )
        return sum(confirmed)

    async def unsubscribe(self, pattern: str) -> None:
        """Stop the subscription to ``pattern`` here and at every publisher."""
        self.inbox.remove(pattern)
        await asyncio.gather(*(link.unsubscribe(pattern) for link in self.links.values() if pattern in link.patterns))

    def link(self, target: str) -> Link:
        """The persistent link to ``target``, made on first use."""
        link = self.links.get(target)
        if link is None:
            spec = self.grid.nodes.get(target)
            if spec is None:
                raise UnknownNodeError(target, self.grid.nodes)
            if spec.uri is None:
                raise MeshError(f"node {target!r} has no port: nothing can stream to it")
            link = Link(
                node=self.name,
                peer=target,
                uri=spec.uri,
                logger=self.log,
                # A durable outbox is store-and-forward: it keeps trying until the peer takes it all.
                wait=0 if self.spec.durable else self.patience,
                reconnect_delays=self.reconnect_delays,
                on_publish=self.inbox.deliver,
                outbox=self.spec.outbox,
                store=self.store,
                token=self.token,
                max_size=spec.max_size,
                recv_max_size=self.spec.max_size,  # what the peer sends back: no more than we accept
                on_lost=partial(self._lost, target),
                ssl_context=self.client_ssl(),
            )
            self.links[target] = link
        return link

    def client_ssl(self) -> ssl.SSLContext | None:
        """What the node's links verify their peers with when the grid has tls (mesh.tls); None without."""
        if self.grid.tls is not None and self._client_ssl is None:
            self._client_ssl = client_context(self.grid.tls)  # GridError at the tls line if its files are wrong
        return self._client_ssl

    def _lost(self, peer: str) -> None:
        """The link to ``peer`` lost it (not a clean stop): its ``$state`` = ``offline`` to our own handlers."""
        key = f"{peer}/{STATE_TOPIC}"
        if self.inbox.wants(key):
            self.inbox.deliver(key, OFFLINE)

    def peers(self) -> dict[str, str]:
        """Every other node of the grid: ``no port``, or the state of this node's link to it (``idle``: none yet)."""
        states = {}
        for name, spec in self.grid.nodes.items():
            if name == self.name:
                continue
            link = self.links.get(name)
            states[name] = "no port" if spec.port is None else link.state if link is not None else "idle"
        return states

    # -- what the server calls (nodes.server.Served) ----------------------------

    @property
    def address(self) -> str | None:
        """``host:port`` the node actually listens on (the real port when 0 was asked)."""
        return None if self.server is None else self.server.address

    @property
    def port(self) -> int | None:
        """The port the node actually listens on."""
        return None if self.server is None else self.server.port

    def describe(self) -> str:
        return f"{self.name} is a node of arduino-mesh (sketch {self.spec.sketch})"

    def handle(self, channel: str, message: str) -> Awaitable[tuple[bool, str]]:
        return self.reactor.handle(channel, message)  # the reactor's own coroutine: no extra frame per message

    async def serve_plain(self, websocket: ServerConnection) -> None:
        await self._hook("serve_plain")(websocket)

    def http(self, path: str) -> tuple[int, str, bytes] | None:
        page: tuple[int, str, bytes] | None = self._hook("http")(path)
        return page

    def is_public(self, path: str) -> bool:
        return path in type(self.sketch).public_paths

    def _hook(self, name: str) -> Callable[..., Any]:
        """The sketch's method ``name``, from its class: an instance attribute of that name changes nothing."""
        bound: Callable[..., Any] = getattr(type(self.sketch), name).__get__(self.sketch)
        return bound

    def status(self) -> dict[str, Any]:
        """What ``./arduino.py status`` shows: counters, links, subscribers (see docs/protocol.md)."""
        loop = asyncio.get_running_loop()
        return {
            "node": self.name,
            "sketch": self.spec.sketch,
            "address": self.address,
            "pid": os.getpid(),
            "uptime": round(loop.time() - self.started, 3) if self.started is not None else 0.0,
            "messages_in": self.reactor.messages_in,
            "messages_out": self.messages_out,
            "published": self.published,
            "connections_in": 0 if self.server is None else self.server.connections,
            "pending": sum(link.pending for link in self.links.values()),
            "duplicates": self.sessions.duplicates,
            "durable": self.spec.durable,
            "links": {
                peer: {
                    "state": link.state,
                    "pending": link.pending,
                    "acked": link.acked,
                    "connections": link.connections,
                    "lost": link.lost,
                    "unknown_acks": link.unknown_acks,
                    "presence": link.presence,
                    "presence_for": round(loop.time() - link.presence_since, 3) if link.presence else None,
                }
                for peer, link in self.links.items()
            },
            "subscribers": [
                {
                    "name": sub.name,
                    "patterns": list(itertools.islice(sub.patterns, STATUS_PATTERNS)),
                    "patterns_total": len(sub.patterns),
                    "queued": len(sub.queue),
                    "sent": sub.sent,
                    "lost": sub.lost,
                }
                for sub in itertools.islice(self.hub.subscribers.values(), STATUS_SUBSCRIBERS)
            ],
            "subscribers_total": len(self.hub.subscribers),
            "subscriptions": list(self.inbox.handlers),
            "received": self.inbox.received,
            "lost": self.inbox.lost,
            **self._report(),
        }

    def _report(self) -> dict[str, Any]:
        """``{"report": ...}``: the sketch's ``@reports`` section, if it has one (nodes.reactive.sketch_report)."""
        name = reported_by(type(self.sketch))
        if name is None:
            return {}
        return {"report": sketch_report(self._hook(name), self.watch.time)}

    # -- life ------------------------------------------------------------------

    async def open(self) -> None:
        """``setup(**params)``, then bind the port if the node has one and log ``serving on``."""
        self.watch.start()  # from here on, sketch code that blocks the event loop is reported
        try:
            await self._open()
        except BaseException:
            self.watch.stop()
            raise

    async def _open(self) -> None:
        check_params(type(self.sketch), self.spec, self.grid.path)
        self.started = asyncio.get_running_loop().time()
        try:
            await self.watch.call("setup()", self._hook("setup"), **self.spec.params)
        except (TypeError, ValueError) as exc:
            raise GridError(self.grid.path, self.spec.line, f"node {self.name!r}: {exc}") from exc
        self.token = self._find_token()
        self.client_ssl()
        if self.spec.port is not None:
            self.server = NodeServer(self, self.spec.max_size)
            tls = None if self.grid.tls is None else server_context(self.grid.tls)
            await self.server.listen(self.spec.host, self.spec.port, ssl_context=tls, reuse_port=self.reuse_port)
            refused = None if self.grid.tls is None else verify_own(self.grid.tls)
            if self.grid.tls is not None and refused is not None:
                self.log.warning("%s: %s: every client will refuse this node", self.grid.tls.shown("cert"), refused)
            self.log.info("serving on %s", self.address)
            self._publish_now(STATE_TOPIC, ONLINE, retain=True)  # presence: every later subscriber hears it
        if self.spec.durable:
            self.store = DurableOutbox(self.state_dir, self.name)
            for peer in self.store.peers():
                if peer not in self.grid.nodes:
                    self.log.warning("%s keeps messages for %r, which the grid no longer has", self.store.path, peer)
                    continue
                link = self.link(peer)
                self.log.info("resuming %d unacked message(s) to %s from %s", link.resumed, peer, self.store.path)
                link.resume()

    def _find_token(self) -> str | None:
        """The mesh's shared token, when the grid asks for one: given, or from its environment variable."""
        variable = self.grid.auth_token_env
        if variable is None:
            return None
        token = self.token if self.token is not None else os.environ.get(variable)
        if not token:
            raise GridError(
                self.grid.path, None, f"the grid requires a token, but the environment variable {variable} is not set"
            )
        return token

    def hearer(self) -> Handler:
        """Where the grid's ``subscribe:`` topics arrive: the sketch's ``@hears`` method, else ``loop()``."""
        heard = heard_by(type(self.sketch))
        return self._hook(heard) if heard is not None else self.reactor.handle

    def begin(self) -> None:
        """Subscribe to the grid's patterns (in the background), start the ``@every`` methods, follow the grid file."""
        hear = self.hearer()
        for pattern in self.spec.subscribe:
            self._background.append(
                asyncio.create_task(self.subscribe(pattern, hear), name=f"{self.name} subscribes {pattern}")
            )
        try:
            methods = periodic_methods(self.sketch)
        except ValueError as exc:
            raise GridError(self.grid.path, self.spec.line, f"node {self.name!r}: {exc}") from None
        for name, seconds, times in methods:

            def on_error(exc: BaseException, name: str = name) -> None:
                if isinstance(exc, MeshError):
                    self.log.error("%s: %s", name, exc)
                else:
                    self.log.error("%s() failed", name, exc_info=exc)

            task = asyncio.create_task(
                run_every(
                    partial(self._periodic_call, f"{name}() (@every)", self._hook(name)),
                    seconds,
                    times,
                    on_error=on_error,
                ),
                name=f"{self.name}.{name}",
            )
            self._tasks.append(task)
        if self.grid_source is not None:
            self._background.append(
                asyncio.create_task(watch(self, self.grid_source), name=f"{self.name} watches the grid")
            )

    async def _periodic_call(self, what: str, method: Callable[[], Any]) -> Any:
        """One call of an ``@every`` method, once the node is not frozen (see :meth:`freeze`)."""
        while self._thawed is not None:
            await self._thawed.wait()
        return await self.watch.call(what, method)

    async def start(self) -> None:
        """:meth:`open` then :meth:`begin`."""
        await self.open()
        self.begin()

    def request_stop(self) -> None:
        """Ask :meth:`wait` to return (safe from a signal handler)."""
        self._stopping.set()
        for link in self.links.values():
            link.stop_reconnecting()

    async def wait(self) -> None:
        """Until :meth:`request_stop`, or, for a node with no port that subscribes to nothing, until its periodic work is done."""
        waits: set[asyncio.Future[Any]] = {asyncio.create_task(self._stopping.wait())}
        listening = self.server is not None or self.spec.subscribe or self.inbox.handlers
        if not listening:
            waits.add(asyncio.create_task(self._periodic_done()))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiting in waits:
            waiting.cancel()
        if not listening and not self._stopping.is_set():
            self.log.info("done")

    async def _periodic_done(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks)

    async def stop(self) -> None:
        """Stop periodic tasks, let in-flight ``loop()`` calls finish (bounded), close everything with 1001."""
        self.request_stop()
        for task in self._tasks + self._background:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
        if self.server is not None:
            self.server.stop_accepting()
            try:
                await asyncio.wait_for(self.reactor.idle(), self.grace)
            except TimeoutError:
                self.log.warning("stopping with %d message(s) still in loop()", self.reactor.inflight)
                for task in list(self.server.handlers):
                    task.cancel()
            # Presence: a clean stop says so, and its subscribers get it before their connections close.
            self._publish_now(STATE_TOPIC, OFFLINE, retain=True)
            await self.hub.flush(FLUSH_TIMEOUT)
            await self.server.close()  # 1001 going away
        await asyncio.gather(*(link.close() for link in self.links.values()))
        await self.inbox.close()
        self.store.close()  # a durable outbox keeps what is still unacked, for the next run
        self.watch.stop()

    # -- faults, for simulations (nodes.simulation) -------------------------------

    def kill(self) -> None:
        """Stop at once, as SIGKILL would: no ``offline``, no flush, no close frame; a durable outbox keeps its file.

        Connections are aborted (their peers see a reset), the port is closed, every task of the
        node is cancelled. What the sketch awaits is never answered; the node is not to be used again.
        """
        self._stopping.set()
        for task in self._tasks + self._background:
            task.cancel()
        if self.server is not None and self.server.server is not None:
            self.server.server.server.close()  # the listening socket: connecting is refused from now on
            for connection in list(self.server.server.connections):
                connection.transport.abort()
            for handler in list(self.server.handlers):
                handler.cancel()
        for link in self.links.values():
            link.abort()
        self.store.close()
        self.watch.stop()

    def freeze(self) -> None:
        """Stop reading every connection and calling the sketch's ``@every`` methods, as SIGSTOP would, until :meth:`thaw`.

        Peers see a node that stopped answering: their pings go unanswered, what they send waits
        in their outboxes. Unlike a stopped process, the node's own timers still run (the
        keepalive of its links), so it may give up on its links while frozen; they reconnect
        when it thaws.
        """
        if self._thawed is None:
            self._thawed = asyncio.Event()
        for ws in self._connections():
            freeze_transport(ws)

    def thaw(self) -> None:
        """Undo :meth:`freeze`: read again, and the ``@every`` methods go on."""
        thawed, self._thawed = self._thawed, None
        if thawed is not None:
            thawed.set()
        for ws in self._connections():
            thaw_transport(ws)

    @property
    def frozen(self) -> bool:
        return self._thawed is not None

    @functools.cached_property
    def random(self) -> random.Random:
        """The sketch's ``self.random``: seeded from the run's seed and the node's name when a run has one (a
        simulation), so that two runs draw the same; from the system's entropy otherwise. Made on first use:
        its state is 2.5 KiB, and most sketches draw nothing."""
        return random.Random(None if self.seed is None else f"{self.seed}:{self.name}")

    def _connections(self) -> list[Any]:
        """Every open websocket connection of the node: those it serves, and its links'."""
        found: list[Any] = []
        if self.server is not None and self.server.server is not None:
            found += self.server.server.connections
        found += [link.websocket for link in self.links.values() if link.websocket is not None]
        return found

    async def run(self) -> None:
        """The whole life: start, wait, stop."""
        await self.start()
        try:
            await self.wait()
        finally:
            await self.stop()
