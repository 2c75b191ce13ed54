"""``@reactive``: the decorator that makes a sketch's ``loop()`` a message handler.

``loop(self, channel, message)`` is written as a plain ``async`` method that
returns the acknowledgement. Decorated with ``@reactive`` it becomes, on each
node, a :class:`Reactor`:

- ``await node.loop(channel, message)`` still calls it, and always gives text
  back (``None`` becomes ``"n/a"``, anything else not text becomes JSON);
- ``node.loop.handle(channel, message)`` is the same call guarded for serving:
  it never raises, it logs a failing ``loop()`` once with its traceback and
  returns ``(False, reason)`` so the sender gets an error ack;
- ``node.loop.serve`` is a ``websockets`` connection handler for plain
  clients: it receives a text frame, calls ``loop`` with the URI path as the
  channel, sends the ack back, and ends quietly when the peer closes.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from mesh.errors import MeshError
from mesh.protocol import to_text

if TYPE_CHECKING:
    from .factory import FactoryLoop

__all__ = ["Reactor", "channel_of", "reactive"]

LoopFunction = Callable[[Any, str, str], Awaitable[object]]
NO_ACK = "n/a"


class reactive:  # lower case: used as a decorator, reads like a function
    """Mark ``async def loop(self, channel, message)`` as the node's message handler."""

    def __init__(self, function: LoopFunction) -> None:
        if not inspect.iscoroutinefunction(function):
            raise TypeError(f"@reactive needs an async def, not {function!r}")
        self.function = function
        functools.update_wrapper(self, function)  # type: ignore[arg-type]

    def __get__(self, node: FactoryLoop | None, owner: type | None = None) -> Any:
        if node is None:
            return self
        reactor = Reactor(self.function, node)
        node.__dict__[self.function.__name__] = reactor  # bind once per node
        return reactor


class Reactor:
    """A node's ``loop`` bound to the node (see the module docstring)."""

    def __init__(self, function: LoopFunction, node: FactoryLoop) -> None:
        self.function = function
        self.node = node

    async def __call__(self, channel: str, message: str) -> str:
        ack = await self.function(self.node, channel, message)
        return NO_ACK if ack is None else to_text(ack)

    async def handle(self, channel: str, message: str) -> tuple[bool, str]:
        """Call ``loop`` for serving: ``(True, ack)``, or ``(False, why)`` if it raised."""
        node = self.node
        node.stats.messages_in += 1
        node.inflight += 1
        node.idle.clear()
        try:
            return True, await self(channel, message)
        except MeshError as exc:  # expected (a peer away, say): one line, no traceback
            node.log.error("loop() on %r: %s", message, exc)
            return False, f"loop() failed: {exc}"
        except Exception as exc:
            node.log.exception("loop() failed on %r (channel %r)", message, channel)
            return False, f"loop() failed: {type(exc).__name__}: {exc}"
        finally:
            node.inflight -= 1
            if not node.inflight:
                node.idle.set()

    async def serve(self, websocket: ServerConnection) -> None:
        """Plain clients: one text frame in is one message; one text frame back is its ack."""
        channel = channel_of(websocket.request.path if websocket.request else "/")
        try:
            async for frame in websocket:
                if isinstance(frame, bytes):
                    await websocket.send("error: binary frames are not supported; send text")
                    continue
                ok, ack = await self.handle(channel, frame)
                await websocket.send(ack if ok else f"error: {ack}")
        except ConnectionClosed:
            pass


def channel_of(path: str) -> str:
    """The channel named by a request path: ``/pin?x=1`` -> ``pin``, ``/`` -> ``""``."""
    return path.split("?", 1)[0].lstrip("/")
