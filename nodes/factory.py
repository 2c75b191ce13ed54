"""``FactoryLoop``: the base class of every sketch.

A sketch is a subclass with two methods, as on an Arduino::

    class Buzzer(FactoryLoop):
        def setup(self, sound: str = "buzz") -> None:   # once, with the grid's params
            self.sound = sound

        @reactive
        async def loop(self, channel: str, message: str) -> str:   # once per message
            return self.sound if message == "1" else "..."

and a few things to call: ``self.out(text)`` to log a line as the node,
``await self.stream(target, data)`` to send to another node of the grid over
one persistent link, ``self.targets`` for the nodes this one is wired to.

Life of a node: :meth:`open` (``setup(**params)``, bind, log ``serving on``),
:meth:`begin` (start the ``@every`` methods), :meth:`wait` (until stopped, or
until a node with no port has nothing left to do), :meth:`stop`.
:meth:`run` does all four.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import types
import typing
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection

from mesh.errors import GridError, MeshError, UnknownNodeError
from mesh.grid import Grid, NodeSpec
from mesh.links import DEFAULT_WAIT, Link, acks, auth_headers, backoff
from mesh.outbox import DurableOutbox, MemoryOutbox
from mesh.protocol import to_text
from mesh.topics import check_pattern, check_topic, publishers

from .delivery import Sessions
from .periodic import periodic_methods, run_every
from .pubsub import Handler, Hub, Inbox
from .reactive import reactive
from .server import start_server

__all__ = ["FactoryLoop", "NodeStats", "check_params"]

#: Seconds that in-flight ``loop()`` calls get to finish when a node stops.
GRACE = 0.5
#: Where durable outboxes live, relative to the working directory.
DEFAULT_STATE_DIR = ".state"


@dataclass
class NodeStats:
    """Counters of one node's life."""

    messages_in: int = 0
    messages_out: int = 0
    connections_in: int = 0
    published: int = 0


class FactoryLoop:
    """Base class of every sketch: ``setup()`` once, ``loop()`` on every message."""

    def __init__(
        self,
        name: str,
        grid: Grid,
        *,
        wait: float = DEFAULT_WAIT,
        grace: float = GRACE,
        reconnect_delays: Any = backoff,
        state_dir: str | os.PathLike[str] = DEFAULT_STATE_DIR,
        token: str | None = None,
    ) -> None:
        self.name = name
        self.grid = grid
        self.spec: NodeSpec = grid.node(name)
        self.log = logging.getLogger(f"mesh.{name}")
        self.wait_limit = wait
        self.grace = grace
        self.reconnect_delays = reconnect_delays
        self.links: dict[str, Link] = {}
        self.server: Server | None = None
        self.stats = NodeStats()
        self.inflight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.handlers: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[int]] = []  # the @every methods
        self._background: list[asyncio.Task[Any]] = []
        self._stopping = asyncio.Event()
        self.hub = Hub(name, self.log, announce=self._publish_now)
        self.sessions = Sessions(self.log)
        self.state_dir = Path(state_dir)
        self.token = token
        self.store: MemoryOutbox = MemoryOutbox()
        self.started: float | None = None
        self._topics: set[str] = set()
        self.inbox = Inbox(self.log)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(inspect.getattr_static(cls, "loop"), reactive):
            raise TypeError(f"{cls.__name__}.loop must be an async method decorated with @reactive")

    # -- what a sketch writes ------------------------------------------------

    # ``*args: Any, **params: Any`` is the signature type checkers take as "any arguments":
    # a sketch overrides it with its own parameters (``def setup(self, sound: str = "buzz")``)
    # and still type-checks. It may return an awaitable: ``async def setup`` is awaited.
    def setup(self, *args: Any, **params: Any) -> Awaitable[None] | None:
        """Called once with the node's parameters from the grid; override it."""
        unexpected = [*map(repr, args), *params]
        if unexpected:
            raise TypeError(f"unexpected parameters: {', '.join(unexpected)}")
        return None

    @reactive
    async def loop(self, channel: str, message: str) -> object:
        """Called once per incoming message; return the acknowledgement."""
        return None

    # -- what a sketch calls -------------------------------------------------

    def out(self, text: str) -> None:
        """Log one line as this node: ``[ iopin ] text``."""
        self.log.info("%s", text)

    @property
    def targets(self) -> tuple[str, ...]:
        """The nodes this node is wired to, in the grid's order."""
        return self.grid.targets(self.name)

    async def stream(self, target: str, data: object, channel: str = "") -> list[str]:
        """Send each item of ``data`` to node ``target``; return their acks, in order.

        Text (or any single value) is one message; a list, tuple or generator
        is one message per item. Items that are not text travel as JSON.
        Everything goes over the one persistent link to ``target``.
        """
        return await acks(await self.post(target, data, channel))

    async def post(self, target: str, data: object, channel: str = "") -> list[asyncio.Future[str]]:
        """Like :meth:`stream`, but return as soon as the link has taken the messages.

        Returns one future per message, resolved with its ack (or an error).
        Waits only while the link's outbox is full: that is the backpressure
        of a peer that is down or slow.
        """
        items = [data] if isinstance(data, (str, bytes, int, float, dict)) or data is None else list(data)  # type: ignore[call-overload]
        futures = await self.link(target).post_many(channel, [to_text(item) for item in items])
        self.stats.messages_out += len(futures)
        return futures

    async def publish(self, topic: str, data: object) -> int:
        """Publish ``data`` on ``<node>/<topic>``; return how many subscribers it was handed to.

        No subscribers is 0, not an error. A node without a port cannot be
        reached, so only its own subscriptions can hear it.
        """
        if topic not in self._topics:  # checked once per topic
            check_topic(topic)
            if len(self._topics) < 4096:
                self._topics.add(topic)
        if not self.hub.subscribers and not self.inbox.handlers:  # nobody can hear it: nothing to build
            self.stats.published += 1
            return 0
        return self._publish_now(topic, to_text(data))

    def _publish_now(self, topic: str, text: str) -> int:
        key = f"{self.name}/{topic}"
        handed = self.hub.publish(key, text)
        if self.inbox.wants(key) and self.inbox.deliver_nowait(key, text):
            handed += 1
        self.stats.published += 1
        return handed

    async def subscribe(self, pattern: str, handler: Handler) -> int:
        """Call ``handler(key, data)`` (sync or async) for every message published on a key ``pattern`` matches.

        Tells every publisher the pattern can match, over the same links as
        streams, now and whenever they come back after a restart. Returns how
        many publishers confirmed it now; those that are down get it when they
        are up again.
        """
        check_pattern(pattern)
        self.inbox.handlers[pattern] = handler
        reachable = [name for name, spec in self.grid.nodes.items() if spec.port is not None and name != self.name]
        confirmed = await asyncio.gather(
            *(self.link(name).subscribe(pattern) for name in publishers(pattern, reachable))
        )
        return sum(confirmed)

    async def unsubscribe(self, pattern: str) -> None:
        """Stop the subscription to ``pattern`` here and at every publisher."""
        self.inbox.handlers.pop(pattern, None)
        await asyncio.gather(*(link.unsubscribe(pattern) for link in self.links.values() if pattern in link.patterns))

    async def hear(self, key: str, data: str) -> None:
        """What the grid's ``subscribe:`` patterns match arrives here.

        By default at ``loop()``, the key as the channel (its answer goes
        nowhere); a sketch may override this to keep topics apart from messages.
        """
        await self.loop.handle(key, data)

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
                wait=0 if self.spec.durable else self.wait_limit,
                reconnect_delays=self.reconnect_delays,
                on_publish=self.inbox.deliver,
                outbox=self.spec.outbox,
                store=self.store,
                headers=auth_headers(self.token),
                max_size=spec.max_size,
            )
            self.links[target] = link
        return link

    # -- what a sketch may override to serve more than messages ------------------

    #: HTTP paths served without the mesh's token (a page's own assets: a browser cannot add it to them).
    public_paths: frozenset[str] = frozenset()

    def http(self, path: str) -> tuple[int, str, bytes] | None:
        """Answer a plain HTTP request for ``path`` with ``(status, content type, body)``; None: not served."""
        return None

    async def serve_plain(self, websocket: ServerConnection) -> None:
        """A websocket client without the mesh subprotocol: by default, messages to ``loop()``."""
        await self.loop.serve(websocket)

    def status(self) -> dict[str, Any]:
        """What ``./arduino.py status`` shows: counters, links, subscribers (see docs/protocol.md)."""
        loop = asyncio.get_running_loop()
        return {
            "node": self.name,
            "sketch": self.spec.sketch,
            "address": self.address,
            "pid": os.getpid(),
            "uptime": round(loop.time() - self.started, 3) if self.started is not None else 0.0,
            "messages_in": self.stats.messages_in,
            "messages_out": self.stats.messages_out,
            "published": self.stats.published,
            "connections_in": self.stats.connections_in,
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
                }
                for peer, link in self.links.items()
            },
            "subscribers": [
                {
                    "name": sub.name,
                    "patterns": list(sub.patterns),
                    "queued": len(sub.queue),
                    "sent": sub.sent,
                    "lost": sub.lost,
                }
                for sub in self.hub.subscribers.values()
            ],
            "subscriptions": list(self.inbox.handlers),
            "received": self.inbox.received,
            "lost": self.inbox.lost,
        }

    # -- life ------------------------------------------------------------------

    @property
    def address(self) -> str | None:
        """``host:port`` the node actually listens on (the real port when 0 was asked)."""
        if self.server is None:
            return None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    @property
    def port(self) -> int | None:
        """The port the node actually listens on."""
        return None if self.server is None else self.server.sockets[0].getsockname()[1]

    async def open(self) -> None:
        """``setup(**params)``, then bind the port if the node has one and log ``serving on``."""
        check_params(type(self), self.spec, self.grid.path)
        self.started = asyncio.get_running_loop().time()
        try:
            result = self.setup(**self.spec.params)
            if inspect.isawaitable(result):
                await result
        except (TypeError, ValueError) as exc:
            raise GridError(self.grid.path, self.spec.line, f"node {self.name!r}: {exc}") from exc
        self.token = self._find_token()
        if self.spec.port is not None:
            self.server = await start_server(self, self.spec.host, self.spec.port)
            self.log.info("serving on %s", self.address)
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

    def begin(self) -> None:
        """Subscribe to the grid's patterns (in the background) and start the ``@every`` methods."""
        for pattern in self.spec.subscribe:
            self._background.append(
                asyncio.create_task(self.subscribe(pattern, self.hear), name=f"{self.name} subscribes {pattern}")
            )
        try:
            methods = periodic_methods(self)
        except ValueError as exc:
            raise GridError(self.grid.path, self.spec.line, f"node {self.name!r}: {exc}") from None
        for name, seconds, times in methods:

            def on_error(exc: BaseException, name: str = name) -> None:
                if isinstance(exc, MeshError):
                    self.log.error("%s: %s", name, exc)
                else:
                    self.log.error("%s() failed", name, exc_info=exc)

            task = asyncio.create_task(
                run_every(getattr(self, name), seconds, times, on_error=on_error), name=f"{self.name}.{name}"
            )
            self._tasks.append(task)

    async def start(self) -> None:
        """:meth:`open` then :meth:`begin`."""
        await self.open()
        self.begin()

    def request_stop(self) -> None:
        """Ask :meth:`wait` to return (safe from a signal handler)."""
        self._stopping.set()
        for link in self.links.values():
            link.drain()

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
            self.server.server.close()  # stop accepting; open connections go on for now
            try:
                await asyncio.wait_for(self.idle.wait(), self.grace)
            except TimeoutError:
                self.log.warning("stopping with %d message(s) still in loop()", self.inflight)
                for task in list(self.handlers):
                    task.cancel()
            self.server.close()  # 1001 going away
            await self.server.wait_closed()
        await asyncio.gather(*(link.close() for link in self.links.values()))
        await self.inbox.close()
        self.store.close()  # a durable outbox keeps what is still unacked, for the next run

    async def run(self) -> None:
        """The whole life: start, wait, stop."""
        await self.start()
        try:
            await self.wait()
        finally:
            await self.stop()


def check_params(cls: type[FactoryLoop], spec: NodeSpec, path: str) -> None:
    """Raise :class:`GridError` if ``setup()`` of ``cls`` cannot take ``spec.params``."""
    signature = inspect.signature(cls.setup)
    parameters = [p for p in signature.parameters.values() if p.name != "self"]
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return
    names = {p.name: p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    try:
        hints = typing.get_type_hints(cls.setup)
    except Exception:
        hints = {}
    where = f"node {spec.name!r} (sketch {spec.sketch})"
    for key, value in spec.params.items():
        if key not in names:
            takes = ", ".join(names) or "none"
            raise GridError(path, spec.line, f"{where} takes no parameter {key!r}; its parameters: {takes}")
        expected = hints.get(key)
        optional = typing.get_origin(expected) in (typing.Union, types.UnionType) and type(None) in typing.get_args(
            expected
        )
        if optional:
            rest = [arg for arg in typing.get_args(expected) if arg is not type(None)]
            expected = rest[0] if len(rest) == 1 else None
            if value is None:
                continue
        if expected in (int, float, str, bool) and not _fits(value, expected):
            raise GridError(path, spec.line, f"{where}: parameter {key!r} must be {_describe(expected)}, not {value!r}")
    missing = [n for n, p in names.items() if p.default is p.empty and n not in spec.params]
    if missing:
        raise GridError(path, spec.line, f"{where} needs parameter {missing[0]!r}")


def _fits(value: object, expected: type) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _describe(expected: type) -> str:
    return {int: "a whole number", float: "a number", str: "text", bool: "true or false"}[expected]
