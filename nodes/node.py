"""``Node``: one sketch's runtime, put together from its parts, and its life.

A sketch (a :class:`~nodes.factory.FactoryLoop` subclass) holds its node but does not
inherit from it: whatever a sketch names its own attributes, the node's machinery stays
out of reach. The node calls the sketch only through the sketch's class (``setup``, the
``@reactive`` loop, the ``@hears``, ``@every`` and ``@reports`` methods, and the hooks
``http``, ``serve_plain`` and ``public_paths``), never through an instance attribute.

The parts, each in its module: the :class:`~nodes.sending.Sender` (links and
publications out), the :class:`~nodes.hub.Hub` (who subscribed here, retained values), the
:class:`~nodes.inbox.Inbox` (this node's own subscriptions), the
:class:`~nodes.delivery.Reactor` (``loop()``), the :class:`~nodes.sessions.Sessions`
(each message once), the :class:`~nodes.server.NodeServer` and the :class:`~nodes.watch.Watch`.

Life of a node: :meth:`open` (``setup(**params)``, bind, log ``serving on``), :meth:`begin`
(subscribe to the grid's patterns, start the ``@every`` methods), :meth:`wait` (until
stopped, or until a node with no port has nothing left to do), :meth:`stop`. :meth:`run`
does all four. While it runs, :meth:`reload` puts an edited grid into it (one watcher per
process reads the file: :mod:`nodes.reload`).

It runs past 400 lines and stays one module: its one job is a node's life and the state
that life changes (what it holds, in what order it opens, reloads and stops); every other
job (sending, serving, the hub, the watch, status, faults) is a module of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import random
import ssl
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mesh.constants import DEFAULT_WAIT, OFFLINE, ONLINE, STATE_TOPIC
from mesh.errors import GridError, MeshError
from mesh.grid import Grid, NodeSpec
from mesh.outbox import DurableOutbox, MemoryOutbox
from mesh.reconnect import backoff
from mesh.tls import client_context, server_context, verify_own
from mesh.topics import check_pattern

from .blame import class_at, in_sketch
from .delivery import Reactor, start_every
from .hub import Hub
from .inbox import Handler, Inbox
from .params import check_params
from .plain import PlainClient
from .reactive import has_loop, has_reconfigure, heard_by
from .redis import RedisClients
from .report import status
from .sending import Sender
from .server import NodeServer
from .sessions import Sessions
from .watch import Watch

if TYPE_CHECKING:
    from .factory import FactoryLoop

__all__ = ["DEFAULT_STATE_DIR", "FIXED", "GRACE", "Node"]

#: Seconds that in-flight ``loop()`` calls get to finish when a node stops.
GRACE = 0.5
#: Where durable outboxes live, relative to the working directory.
DEFAULT_STATE_DIR = ".state"
#: Seconds a stopping node gives its subscribers to take its last publications (its ``$state`` = ``offline``).
FLUSH_TIMEOUT = 0.5
#: A node's own fields that cannot change while it runs: the server, the sketch and the links are built from them.
FIXED = ("host", "port", "sketch", "outbox", "max_size", "durable", "serial", "baud")


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
        seed: int | str | None = None,
    ) -> None:
        self.name = name
        self.log = logging.getLogger(f"mesh.{name}")
        self.set_grid(grid)
        self.patience = wait  # seconds a link keeps trying to reach a peer that is not up (0: forever)
        self.grace = grace
        self.reconnect_delays = reconnect_delays
        self.state_dir = Path(state_dir)
        self.token = token
        self.sender = Sender(self)
        self.hub = Hub(name, self.log, announce=self.sender.publish_now)
        self.sessions = Sessions(self.log, grid=lambda: self.grid, own=name)  # the grid as reloaded
        self.watch = Watch(self.log)  # times the sketch's code; warns when it blocks the event loop
        self.inbox = Inbox(self.log, watch=self.watch)
        self.store: MemoryOutbox = MemoryOutbox()
        self.server: NodeServer | None = None
        #: The node's Redis clients (RESP on its port): a node with a port has them.
        self.redis: RedisClients | None = None
        self.started: float | None = None
        self.background: list[asyncio.Task[Any]] = []  # subscribing, retiring links: cancelled at stop
        self._every: list[asyncio.Task[int]] = []  # the @every methods
        self._stopping = asyncio.Event()
        self._client_ssl: ssl.SSLContext | None = None  # the grid's tls, made a client context on first use
        self.seed = seed  # a run's seed (a simulation's), or None: see random
        #: Set while a simulation holds the node frozen (see :meth:`freeze`): what ``@every`` calls wait for.
        self.thawed: asyncio.Event | None = None
        self.sketch = sketch(self)
        self.reactor = Reactor(self.sketch, self.log, self.watch, self.spec.timeout)

    def set_grid(self, grid: Grid) -> None:
        """Run in ``grid`` from now on: the node's spec, and its ``targets``, are read from it."""
        self.grid = grid
        self.spec: NodeSpec = grid.node(self.name)
        #: The nodes this node is wired to, in the grid's order.
        self.targets: tuple[str, ...] = grid.targets(self.name)

    # -- what the sketch's surface calls (the rest goes straight to the parts) ---------------

    async def subscribe(self, pattern: str, handler: Handler) -> int:
        """Call ``handler(key, data)`` for every publication ``pattern`` matches; how many publishers confirmed."""
        check_pattern(pattern)
        self.inbox.add(pattern, handler)
        for key, data in self.hub.retained_for(pattern):  # this node's own retained values, at once
            self.inbox.deliver_to(pattern, key, data)
        return await self._subscribe_at_publishers(pattern)

    async def unsubscribe(self, pattern: str) -> None:
        """Stop the subscription to ``pattern`` here and at every publisher."""
        self.inbox.remove(pattern)
        if pattern not in self.inbox.inline:  # the node's Redis clients still need it
            await self._unsubscribe_at_publishers(pattern)

    async def subscribe_inline(self, pattern: str, handler: Handler) -> int:
        """The runtime's own subscription (the node's Redis clients): ``handler`` is called in the turn a
        publication arrives (:meth:`Inbox.add_inline`), never sketch code; this node's retained values are the
        handler's to send. How many publishers confirmed."""
        check_pattern(pattern)
        self.inbox.add_inline(pattern, handler)
        return await self._subscribe_at_publishers(pattern)

    async def unsubscribe_inline(self, pattern: str) -> None:
        self.inbox.remove_inline(pattern)
        if pattern not in self.inbox.handlers:  # the sketch still holds it
            await self._unsubscribe_at_publishers(pattern)

    async def _subscribe_at_publishers(self, pattern: str) -> int:
        links = [self.sender.link(name) for name in self.grid.publishers(pattern, but=self.name)]
        return sum(await asyncio.gather(*(link.subscribe(pattern) for link in links)))

    async def _unsubscribe_at_publishers(self, pattern: str) -> None:
        links = self.sender.links.values()
        await asyncio.gather(*(link.unsubscribe(pattern) for link in links if pattern in link.patterns))

    def peers(self) -> dict[str, str]:
        """Every other node of the grid: ``no port``, or the state of this node's link to it (``idle``: none yet)."""
        return self.sender.peers(self.grid)

    @functools.cached_property
    def random(self) -> random.Random:
        """The sketch's ``self.random``: seeded from the run's seed and the node's name when a run has one (a
        simulation), so that two runs draw the same; from the system's entropy otherwise. Made on first use."""
        return random.Random(None if self.seed is None else f"{self.seed}:{self.name}")

    # -- what the server calls (nodes.server.Served) ----------------------------------------

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

    async def serve_plain(self, client: PlainClient) -> None:
        await self.hook("serve_plain")(client)

    def http(self, path: str) -> tuple[int, str, bytes] | None:
        page: tuple[int, str, bytes] | None = self.hook("http")(path)
        return page

    def is_public(self, path: str) -> bool:
        return path in type(self.sketch).public_paths

    def hook(self, name: str) -> Callable[..., Any]:
        """The sketch's method ``name``, from its class: an instance attribute of that name changes nothing."""
        bound: Callable[..., Any] = getattr(type(self.sketch), name).__get__(self.sketch)
        return bound

    def status(self) -> dict[str, Any]:
        """What ``./arduino.py status`` shows: counters, links, subscribers (see docs/protocol.md)."""
        return status(self)

    # -- life --------------------------------------------------------------------------------

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
            await self.watch.call("setup()", self.hook("setup"), **self.spec.params)
        except Exception as exc:  # whatever setup() raised: one line, the grid's then the sketch's (nodes.blame)
            raise GridError(self.grid.path, self.spec.line, f"node {self.name!r}: {in_sketch(exc)}") from exc
        self.token = self._find_token()
        self.client_ssl()
        if self.spec.port is not None:
            self.redis = RedisClients(self)  # after the token: AUTH takes it
            self.server = NodeServer(self, self.spec.max_size, other=self.redis.connection)
            tls = None if self.grid.tls is None else server_context(self.grid.tls)
            await self.server.listen(self.spec.host, self.spec.port, ssl_context=tls)
            refused = None if self.grid.tls is None else verify_own(self.grid.tls)
            if self.grid.tls is not None and refused is not None:
                self.log.warning("%s: %s: every client will refuse this node", self.grid.tls.shown("cert"), refused)
            self.log.info("serving on %s", self.address)
            self.sender.publish_now(STATE_TOPIC, ONLINE, retain=True)  # presence: every later subscriber hears it
        if self.spec.durable:
            self.store = DurableOutbox(self.state_dir, self.name)
            for peer in self.store.peers():
                if peer not in self.grid.nodes:
                    self.log.warning("%s keeps messages for %r, which the grid no longer has", self.store.path, peer)
                    continue
                link = self.sender.link(peer)
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

    def client_ssl(self) -> ssl.SSLContext | None:
        """What the node's links verify their peers with when the grid has tls (mesh.tls); None without."""
        if self.grid.tls is not None and self._client_ssl is None:
            self._client_ssl = client_context(self.grid.tls)  # GridError at the tls line if its files are wrong
        return self._client_ssl

    def hearer(self) -> Handler:
        """Where the grid's ``subscribe:`` topics arrive: the sketch's ``@hears`` method, else ``loop()``."""
        heard = heard_by(type(self.sketch))
        return self.hook(heard) if heard is not None else self.reactor.handle

    def begin(self) -> None:
        """Subscribe to the grid's patterns (in the background), start the ``@every`` methods."""
        self._tell_no_loop()
        hear = self.hearer()
        for pattern in self.spec.subscribe:
            self.in_background(self.subscribe(pattern, hear), f"{self.name} subscribes {pattern}")
        try:
            self._every = start_every(self)
        except ValueError as exc:
            raise GridError(self.grid.path, self.spec.line, f"node {self.name!r}: {exc}") from None

    def _tell_no_loop(self) -> None:
        """One line, when the grid sends this node messages (a wire, or topics without @hears) and its sketch has
        no ``loop()`` to take them (each sender is answered with the error: :class:`mesh.errors.NoLoop`)."""
        cls = type(self.sketch)
        if has_loop(cls):
            return
        sources = self.grid.sources(self.name)
        lost = []
        if sources:
            names = ", ".join(map(repr, sources))
            lost.append(f"what {names} send{'s' if len(sources) == 1 else ''} gets an error")
        if self.spec.subscribe and heard_by(cls) is None:
            lost.append(f"the topics of {', '.join(self.spec.subscribe)} go nowhere")
        if lost:
            self.reactor.told_no_loop = True
            where = class_at(cls)
            self.log.warning(
                "%s%s has no loop(): %s; give it an '@reactive async def loop(self, channel, message)'",
                f"{where}: " if where else "",
                cls.__name__,
                "; ".join(lost),
            )

    def in_background(self, work: Coroutine[Any, Any, Any], name: str) -> None:
        """Run ``work`` as one of the node's background tasks (cancelled when it stops); forget those done."""
        self.background[:] = [task for task in self.background if not task.done()]
        self.background.append(asyncio.create_task(work, name=name))

    async def start(self) -> None:
        """:meth:`open` then :meth:`begin`."""
        await self.open()
        self.begin()

    def request_stop(self) -> None:
        """Ask :meth:`wait` to return (safe from a signal handler)."""
        self._stopping.set()
        self.sender.stop_reconnecting()

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
        if self._every:
            await asyncio.wait(self._every)

    async def stop(self) -> None:
        """Stop periodic tasks, let in-flight ``loop()`` calls finish (bounded), close everything with 1001."""
        self.request_stop()
        for task in self._every + self.background:
            task.cancel()
        await asyncio.gather(*self._every, *self.background, return_exceptions=True)
        if self.server is not None:
            self.server.stop_accepting()
            try:
                await asyncio.wait_for(self.reactor.idle(), self.grace)
            except TimeoutError:
                self.log.warning("stopping with %d message(s) still in loop()", self.reactor.inflight)
                self.server.cancel_handlers()
            # Presence: a clean stop says so, and its subscribers get it before their connections close.
            self.sender.publish_now(STATE_TOPIC, OFFLINE, retain=True)
            await self.hub.flush(FLUSH_TIMEOUT)
            if self.redis is not None:
                self.redis.close()  # after what they were sent; websockets' close() does not know them
            await self.server.close()  # 1001 going away
        await self.sender.close()
        await self.inbox.close()
        self.store.close()  # a durable outbox keeps what is still unacked, for the next run
        self.watch.stop()

    async def run(self) -> None:
        """The whole life: start, wait, stop."""
        await self.start()
        try:
            await self.wait()
        finally:
            await self.stop()

    # -- faults, for simulations (nodes.simulation) ---------------------------------------------

    def kill(self) -> None:
        """Stop at once, as SIGKILL would: no ``offline``, no flush, no close frame; a durable outbox keeps its file.

        Connections are aborted (their peers see a reset), the port is closed, every task of the
        node is cancelled. What the sketch awaits is never answered; the node is not to be used again.
        """
        self._stopping.set()
        for task in self._every + self.background:
            task.cancel()
        if self.server is not None:
            self.server.abort()
        if self.redis is not None:
            self.redis.abort()
        self.sender.abort()
        self.store.close()
        self.watch.stop()

    @property
    def frozen(self) -> bool:
        """Whether a simulation holds the node frozen (:func:`nodes.faults.freeze`)."""
        return self.thawed is not None

    # -- following the grid file -------------------------------------------------------------------

    async def reload(self, new: Grid) -> list[str] | None:
        """Put the valid grid ``new`` into the running node; the summary of what changed (also logged).

        What the server, the sketch or the links were built from (:data:`FIXED`, the grid's
        auth and tls) stays as started, with one line asking for a restart. A grid in which
        the node cannot run at all (its params refused by its sketch, the node gone) is
        refused as a whole, in one line, and the running grid is kept: None.
        """
        old, name, running = self.grid, self.name, self.spec
        try:
            spec = new.node(name)
        except MeshError as exc:
            self.log.error("%s: %s; keeping the running grid", new.path, exc)
            return None
        fixed = [key for key in FIXED if getattr(spec, key) != getattr(running, key)]
        if "port" in fixed and running.port == 0 and spec.port == self.port:
            fixed.remove("port")  # the grid now names the port the node bound for 0
        try:
            kept = new
            if fixed or new.auth_token_env != old.auth_token_env or new.tls != old.tls:
                keep = {key: getattr(running, key) for key in fixed}
                kept = dataclasses.replace(
                    new.with_node(name, **keep) if keep else new, auth_token_env=old.auth_token_env, tls=old.tls
                )
            if spec.params != running.params:
                check_params(type(self.sketch), spec, new.path)
        except GridError as exc:
            self.log.error("%s; keeping the running grid", exc)
            return None
        for what, changed in (("auth", new.auth_token_env != old.auth_token_env), ("tls", new.tls != old.tls)):
            if changed:
                self.log.warning("%s: %s cannot change while running: restart the node", new.path, what)
        if fixed:
            where = f"{new.path}:{spec.line}" if spec.line else new.path
            self.log.warning(
                "%s: node %r: %s cannot change while running: restart the node", where, name, ", ".join(fixed)
            )
        diff = old.diff(kept)
        self.set_grid(kept)  # even unchanged: its lines are the file's now, for the next line an error names
        self.reactor.timeout = self.spec.timeout  # the grid's bound on one loop() holds from the next message
        if not diff:
            return []
        subscribed = {peer for peer, link in self.sender.links.items() if link.patterns}
        await self._follow_subscriptions(old, kept)
        await self.sender.follow(old, kept, subscribed)
        if "params" in diff.changed(name):
            await self._reconfigure(kept)
        summary = diff.summary()
        self.log.info("%s reloaded: %s", new.path, ", ".join(summary))
        return summary

    async def _follow_subscriptions(self, old: Grid, new: Grid) -> None:
        """Drop the patterns removed, subscribe to those added, and follow each pattern's publishers.

        What stops is done here (a frame each); what starts runs in the background, as at
        start: a publisher that is down gets the subscription when it is up.
        """
        before, after = old.node(self.name).subscribe, new.node(self.name).subscribe
        added = [pattern for pattern in after if pattern not in before]
        for pattern in before:
            if pattern not in after:
                await self.unsubscribe(pattern)
        hear = self.hearer()
        starts = [self.subscribe(pattern, hear) for pattern in added]
        kept = dict.fromkeys([*self.inbox.handlers, *self.inbox.inline])  # the sketch's, and its Redis clients'
        for pattern in [p for p in kept if p not in added]:  # held before this edit
            publishers = new.publishers(pattern, but=self.name)
            for peer, link in list(self.sender.links.items()):
                if pattern in link.patterns and peer not in publishers:
                    await link.unsubscribe(pattern)
            for publisher in publishers:
                held = self.sender.links.get(publisher)
                if held is None or pattern not in held.patterns:
                    starts.append(self.sender.link(publisher).subscribe(pattern))
        for start in starts:
            self.in_background(start, f"{self.name} follows the grid's subscriptions")

    async def _reconfigure(self, grid: Grid) -> None:
        """The sketch's ``reconfigure(**params)`` if it defines one; otherwise one line: they apply at the next start."""
        spec = grid.node(self.name)
        where = f"{grid.path}:{spec.line}" if spec.line else grid.path
        if not has_reconfigure(type(self.sketch)):
            self.log.warning(
                "%s: node %r: params changed; its sketch has no reconfigure(), so they apply when the node restarts",
                where,
                self.name,
            )
            return
        try:
            await self.watch.call("reconfigure()", self.hook("reconfigure"), **spec.params)
        except (TypeError, ValueError) as exc:
            self.log.error("%s: node %r: reconfigure: %s", where, self.name, exc)
        except Exception as exc:
            self.log.error("reconfigure() failed", exc_info=exc)
