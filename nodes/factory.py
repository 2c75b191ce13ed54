"""``FactoryLoop``: the base class of every sketch, and the whole of what a sketch sees.

A sketch is a subclass with two methods, as on an Arduino::

    class Buzzer(FactoryLoop):
        def setup(self, sound: str = "buzz") -> None:   # once, with the grid's params
            self.sound = sound

        @reactive
        async def loop(self, channel: str, message: str) -> str:   # once per message
            return self.sound if message == "1" else "..."

and a few things to call (the table in README.md, "What a sketch can use"):
``self.out(text)`` to log a line as the node, ``await self.stream(target, data)`` to
send to another node over one persistent link (or ``await self.stream(self.targets,
data)`` to several at once), ``self.post`` to hand messages over
without waiting for their acks, ``self.publish`` and ``self.subscribe`` for topics,
``self.targets`` for the nodes this one is wired to.

The node that runs the sketch (:class:`nodes.node.Node`: server, links, hub, sessions,
counters, life cycle) is held here, not inherited: a sketch may name its own attributes
and methods anything — ``status``, ``links``, ``run``, ``hear`` — without touching it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import random
from collections.abc import Awaitable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, overload

from websockets.asyncio.server import ServerConnection

from mesh.grid import Grid

from .pubsub import Handler
from .reactive import reactive

if TYPE_CHECKING:
    from .node import Node

__all__ = ["FactoryLoop"]


class FactoryLoop:
    """Base class of every sketch: ``setup()`` once, ``loop()`` on every message."""

    def __init__(self, node: Node) -> None:
        # Name-mangled (_FactoryLoop__node): no sketch attribute can take its place.
        self.__node = node

    @functools.cached_property
    def random(self) -> random.Random:
        """The sketch's randomness: seeded from the run's ``--seed`` in a simulation, so that two runs draw
        the same. The node never reads it; a sketch may replace it (``self.random = random.Random(7)``)."""
        return self.__node.random

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not isinstance(inspect.getattr_static(cls, "loop", None), reactive):
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

    # Not called unless a sketch overrides it: the node then says the new params apply at the next start.
    def reconfigure(self, *args: Any, **params: Any) -> Awaitable[None] | None:
        """Called with all of the node's params (checked like setup()'s) when grid.yaml changes them while it runs."""
        return None

    # -- what a sketch may override to serve more than messages ------------------

    #: HTTP paths served without the mesh's token (a page's own assets: a browser cannot add it to them).
    public_paths: frozenset[str] = frozenset()

    def http(self, path: str) -> tuple[int, str, bytes] | None:
        """Answer a plain HTTP request for ``path`` with ``(status, content type, body)``; None: not served."""
        return None

    async def serve_plain(self, websocket: ServerConnection) -> None:
        """A websocket client without the mesh subprotocol: by default, messages to ``loop()``."""
        await self.__node.reactor.serve(websocket)

    # -- what a sketch uses --------------------------------------------------

    @property
    def name(self) -> str:
        """This node's name in the grid."""
        return self.__node.name

    @property
    def grid(self) -> Grid:
        """The grid this node runs in (frozen: read it, do not change it); the new one after an edit of grid.yaml."""
        return self.__node.grid

    @property
    def log(self) -> logging.Logger:
        """This node's logger (``mesh.<name>``): lines read ``[ name ] ...``."""
        return self.__node.log

    @property
    def address(self) -> str | None:
        """``host:port`` this node listens on (the real port when 0 was asked); None without a port."""
        return self.__node.address

    @property
    def targets(self) -> tuple[str, ...]:
        """The nodes this node is wired to, in the grid's order."""
        return self.__node.targets

    def out(self, text: str) -> None:
        """Log one line as this node: ``[ iopin ] text``."""
        self.__node.log.info("%s", text)

    # stream(), post() and publish() hand back the node's own coroutine, to be awaited as
    # theirs would be: no coroutine of their own per call (a tick makes seven of them).

    @overload
    def stream(self, target: str, data: object, channel: str = "") -> Coroutine[Any, Any, list[str]]: ...  # type: ignore[overload-overlap]

    @overload
    def stream(
        self, target: Iterable[str], data: object, channel: str = ""
    ) -> Coroutine[Any, Any, dict[str, list[str]]]: ...

    def stream(
        self, target: str | Iterable[str], data: object, channel: str = ""
    ) -> Coroutine[Any, Any, list[str] | dict[str, list[str]]]:
        """Send each item of ``data`` to node ``target``; return their acks, in order.

        Text (or any single value) is one message; a list, tuple or generator
        is one message per item. Items that are not text travel as JSON.
        Everything goes over the one persistent link to ``target``.

        ``target`` may also be several nodes (a list or tuple of names, such as
        ``self.targets``): every one gets all of ``data`` at once, each over its own
        link, and the answer is ``{target: [acks, in order]}`` once all have
        answered. If one of them fails (down past the link's patience, or its
        ``loop()`` raised), the first failure in the order given is raised, as for
        one target, once the others have answered: they got everything all the same.
        """
        if isinstance(target, str):
            return self.__node.stream(target, data, channel)
        return self.__node.stream_all(target, data, channel)

    def post(self, target: str, data: object, channel: str = "") -> Coroutine[Any, Any, list[asyncio.Future[str]]]:
        """Like :meth:`stream`, but return as soon as the link has taken the messages.

        Returns one future per message, resolved with its ack (or an error).
        Waits only while the link's outbox is full: that is the backpressure
        of a peer that is down or slow.
        """
        return self.__node.post(target, data, channel)

    def publish(self, topic: str, data: object, *, retain: bool = False) -> Coroutine[Any, Any, int]:
        """Publish ``data`` on ``<node>/<topic>``; return how many subscribers it was handed to.

        No subscribers is 0, not an error. A node without a port cannot be
        reached, so only its own subscriptions can hear it. With ``retain=True``
        the node keeps the value as the key's last, and every later subscription
        that matches it gets it at once (an empty ``data`` clears it). Topics
        starting with ``$`` are the runtime's (``$state``): refused.
        """
        return self.__node.publish(topic, data, retain=retain)

    async def subscribe(self, pattern: str, handler: Handler) -> int:
        """Call ``handler(key, data)`` (sync or async) for every message published on a key ``pattern`` matches.

        Tells every publisher the pattern can match, over the same links as
        streams, now and whenever they come back after a restart. Returns how
        many publishers confirmed it now; those that are down get it when they
        are up again.
        """
        return await self.__node.subscribe(pattern, handler)

    async def unsubscribe(self, pattern: str) -> None:
        """Stop the subscription to ``pattern`` here and at every publisher."""
        await self.__node.unsubscribe(pattern)

    def peers(self) -> dict[str, str]:
        """Every other node of the grid and how this node sees it: ``up``, ``connecting``, ``retrying``,
        ``down``, ``closed``, ``idle`` (not talked to yet) or ``no port``."""
        return self.__node.peers()
