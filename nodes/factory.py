"""``FactoryLoop``: the base class of every sketch, and the whole of what a sketch sees.

A sketch is a subclass with two methods, as on an Arduino::

    class Buzzer(FactoryLoop):
        def setup(self, sound: str = "buzz") -> None:   # once, with the grid's params
            self.sound = sound

        @reactive
        async def loop(self, channel: str, message: str) -> str:   # once per message
            return self.sound if message == "1" else "..."

and a few things to call (the table in README.md, "What a sketch can use"):
``self.out(text)`` to log a line as the node, ``await self.stream(target, data)`` to send to
another node over one persistent link, ``await self.stream_all(self.targets, data)`` to
several at once, ``self.post`` to hand messages over without waiting for their acks,
``self.publish`` and ``self.subscribe`` for topics, ``self.targets`` for the nodes this one is
wired to.

The node that runs the sketch (:class:`nodes.node.Node`: server, links, hub, sessions,
counters, life cycle) is held here, not inherited: a sketch may name its own attributes and
methods anything (``status``, ``links``, ``run``, ``hear``) without touching it. What a sketch
calls is a *window* onto the runtime: ``self.stream`` *is* the node's sender's ``stream``,
with no layer of code between (a tick pays for no pass-through). Windows are read-only:
assigning to one (``self.name = ...``) says which name it is and what to use instead.
"""

from __future__ import annotations

import functools
import inspect
import logging
import operator
import random
import sys
from collections.abc import Awaitable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from mesh.errors import NoLoop, SketchMistake
from mesh.grid import Grid

from .blame import class_at, defined_at, frame_line
from .inbox import Handler
from .plain import PlainClient, serve_messages
from .reactive import SYNC_LOOP, reactive

if TYPE_CHECKING:
    import asyncio

    from .node import Node

__all__ = ["FactoryLoop"]


class _Window(property):
    """A read-only attribute of the sketch surface: the runtime's own value, read by C code (``attrgetter``).

    ``what`` names it for the error of a sketch that assigns to it, ``instead`` the attribute to use.
    """

    def __init__(self, path: str, doc: str, what: str, instead: str = "") -> None:
        super().__init__(operator.attrgetter(f"_FactoryLoop__node.{path}"), doc=doc)
        self.what = what
        self.instead = instead

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __set__(self, sketch: object, value: object) -> None:
        instead = self.instead or f"my_{self.name}"
        raise SketchMistake(
            frame_line(sys._getframe(1)),  # the sketch's line that assigns
            f"{self.name} is {self.what}, read-only: use another attribute, e.g. self.{instead}",
        )

    def __delete__(self, sketch: object) -> None:
        self.__set__(sketch, None)


class FactoryLoop:
    """Base class of every sketch: ``setup()`` once, ``loop()`` on every message."""

    def __init__(self, node: Node) -> None:
        # Name-mangled (_FactoryLoop__node): no sketch attribute can take its place.
        self.__node = node

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        marked = inspect.getattr_static(cls, "loop", None)
        if not isinstance(marked, reactive):
            function = getattr(marked, "__func__", marked)
            where = defined_at(function)
            if inspect.isfunction(function) and not inspect.iscoroutinefunction(function):
                raise SketchMistake(where, SYNC_LOOP)
            raise SketchMistake(
                where, f"{cls.__name__}.loop must be an async method decorated with @reactive: put @reactive above it"
            )

    @functools.cached_property
    def random(self) -> random.Random:
        """The sketch's randomness: seeded from the run's ``--seed`` in a simulation, so that two runs draw
        the same. The node never reads it; a sketch may replace it (``self.random = random.Random(7)``)."""
        return self.__node.random

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
        """Called once per incoming message; return the acknowledgement (a sketch without one takes none)."""
        raise NoLoop(class_at(type(self)), self.__node.name, type(self).__name__)

    loop.function.__runtime_default__ = True  # type: ignore[attr-defined]  # nodes.reactive.has_loop

    # Not called unless a sketch overrides it: the node then says the new params apply at the next start.
    def reconfigure(self, *args: Any, **params: Any) -> Awaitable[None] | None:
        """Called with all of the node's params (checked like setup()'s) when grid.yaml changes them while it runs."""
        return None

    reconfigure.__runtime_default__ = True  # type: ignore[attr-defined]

    # -- what a sketch may override to serve more than messages ------------------

    #: HTTP paths served without the mesh's token (a page's own assets: a browser cannot add it to them).
    public_paths: frozenset[str] = frozenset()

    def http(self, path: str) -> tuple[int, str, bytes] | None:
        """Answer a plain HTTP request for ``path`` with ``(status, content type, body)``; None: not served."""
        return None

    async def serve_plain(self, client: PlainClient) -> None:
        """A websocket client without the mesh subprotocol: by default, each text frame to ``loop()``, its answer back."""
        await serve_messages(client, self.__node.reactor.handle)

    # -- what a sketch uses: windows onto its node -------------------------------

    if TYPE_CHECKING:  # what type checkers see; at run time, the windows below

        @property
        def name(self) -> str: ...
        @property
        def grid(self) -> Grid: ...
        @property
        def log(self) -> logging.Logger: ...
        @property
        def targets(self) -> tuple[str, ...]: ...
        def out(self, text: str) -> None: ...
        def stream(self, target: str, data: object, channel: str = "") -> Coroutine[Any, Any, list[str]]: ...
        def stream_all(
            self, targets: Iterable[str], data: object, channel: str = ""
        ) -> Coroutine[Any, Any, dict[str, list[str]]]: ...
        def post(
            self, target: str, data: object, channel: str = ""
        ) -> Coroutine[Any, Any, list[asyncio.Future[str]]]: ...
        def publish(self, topic: str, data: object, *, retain: bool = False) -> Coroutine[Any, Any, int]: ...
        def subscribe(self, pattern: str, handler: Handler) -> Coroutine[Any, Any, int]: ...
        def unsubscribe(self, pattern: str) -> Coroutine[Any, Any, None]: ...
        def peers(self) -> dict[str, str]: ...
        @property
        def address(self) -> str | None: ...

    else:
        name = _Window("name", "This node's name in the grid.", "the node's name", "label")
        grid = _Window(
            "grid",
            "The grid this node runs in (frozen: read it, do not change it); the new one after an edit of grid.yaml.",
            "the grid the node runs in",
            "layout",
        )
        log = _Window(
            "log", "This node's logger (``mesh.<name>``): lines read ``[ name ] ...``.", "the node's logger", "logger"
        )
        targets = _Window(
            "targets", "The nodes this node is wired to, in the grid's order.", "the nodes it is wired to"
        )
        out = _Window(
            "log.info", "Log one line as this node: ``self.out(text)`` reads ``[ iopin ] text``.", "the node's output"
        )
        stream = _Window(
            "sender.stream",
            "Send each item of data to one node; await it for their acks, in order: ``await self.stream(target, data)``.",
            "the node's way to send",
        )
        stream_all = _Window(
            "sender.stream_all",
            "Send all of data to several nodes at once: ``await self.stream_all(self.targets, data)`` is"
            " ``{target: [acks]}``.",
            "the node's way to send to several",
        )
        post = _Window(
            "sender.post",
            "Hand messages to a link and return once taken: ``await self.post(target, data)`` is a future per message.",
            "the node's way to send",
        )
        publish = _Window(
            "sender.publish",
            "Publish data on <node>/<topic>: ``await self.publish(topic, data, retain=False)`` is how many got it.",
            "the node's way to publish",
        )
        subscribe = _Window(
            "subscribe",
            "Call handler(key, data) for every publication a pattern matches: ``await self.subscribe(pattern, handler)``.",
            "the node's way to subscribe",
        )
        unsubscribe = _Window(
            "unsubscribe", "Stop a subscription here and at every publisher.", "the node's way to unsubscribe"
        )
        peers = _Window(
            "peers",
            "Every other node of the grid and how this node sees it: ``self.peers()`` is ``{name: state}``.",
            "the node's view of its peers",
        )
        address = _Window(
            "address",
            "``host:port`` this node listens on (the real port when 0 was asked); None without a port.",
            "the node's address",
        )
