"""``@reactive`` and ``@hears``: how a sketch says which methods answer messages and topics.

``loop(self, channel, message)`` is written as a plain ``async`` method that
returns the acknowledgement, decorated with ``@reactive``. ``await self.loop(channel,
message)`` still calls it and always gives text back (``None`` becomes ``"n/a"``,
anything else not text becomes JSON).

A sketch that wants the grid's ``subscribe:`` topics apart from its messages marks one
method ``@hears``: it gets ``(key, data)``; without one, topics arrive at ``loop(key, data)``.

A sketch that has something of its own to say in ``./arduino.py status`` (the MQTT bridge:
its broker's state) marks one method ``@reports``: ``(self) -> dict``, whose result the
node's status report carries under ``"report"`` (:func:`sketch_report`: bounded, and an
exception or a wrong type is an error entry, never a failed status).

The runtime side is :class:`Reactor`: it calls a sketch's ``loop`` for serving (never
raising: a failing ``loop()`` is logged once and answered with an error; one that runs
past the grid's ``timeout:`` is cancelled and answered with an error too; every step of
it is timed by the node's :class:`~nodes.watch.Watch`), keeps the count
of messages and of calls still running, and serves plain websocket clients. It finds the
sketch's methods through the class, by their marks, never by instance attribute: a
sketch may name its own attributes anything.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from mesh.errors import LoopTimeout, MeshError
from mesh.protocol import to_text
from mesh.throttle import escape

from .watch import Watch

__all__ = [
    "REPORT_MAX",
    "Reactor",
    "channel_of",
    "heard_by",
    "hears",
    "reactive",
    "reported_by",
    "reports",
    "sketch_report",
]

LoopFunction = Callable[[Any, str, str], Coroutine[Any, Any, object]]
NO_ACK = "n/a"
_HEARS = "__hears__"
_REPORTS = "__reports__"
#: Bytes of JSON a sketch's ``@reports`` section may take in the status report; past it, an error entry.
REPORT_MAX = 4096


class reactive:  # lower case: used as a decorator, reads like a function
    """Mark ``async def loop(self, channel, message)`` as the sketch's message handler."""

    def __init__(self, function: LoopFunction) -> None:
        if not inspect.iscoroutinefunction(function):
            raise TypeError(f"@reactive needs an async def, not {function!r}")
        self.function = function
        functools.update_wrapper(self, function)  # type: ignore[arg-type]

    def __get__(self, sketch: object, owner: type | None = None) -> Any:
        if sketch is None:
            return self
        return functools.partial(call_loop, self.function, sketch)


async def call_loop(function: LoopFunction, sketch: object, channel: str, message: str) -> str:
    """``loop(channel, message)``, its answer as text."""
    return _answer(await function(sketch, channel, message))


def _answer(ack: object) -> str:
    """What ``loop()`` returned, as the text of its ack (``n/a`` for None)."""
    return NO_ACK if ack is None else to_text(ack)


def hears(method: Callable[[Any, str, str], Any]) -> Callable[[Any, str, str], Any]:
    """Mark ``(async) def method(self, key, data)`` as where the grid's ``subscribe:`` topics arrive."""
    setattr(method, _HEARS, True)
    return method


def heard_by(cls: type) -> str | None:
    """The name of the ``@hears`` method of ``cls``, if it has one."""
    for name in dir(cls):
        if getattr(inspect.getattr_static(cls, name, None), _HEARS, False):
            return name
    return None


def reports(method: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    """Mark ``def method(self) -> dict`` as the sketch's own section of its status report (``"report"``)."""
    setattr(method, _REPORTS, True)
    return method


def reported_by(cls: type) -> str | None:
    """The name of the ``@reports`` method of ``cls``, if it has one."""
    for name in dir(cls):
        if getattr(inspect.getattr_static(cls, name, None), _REPORTS, False):
            return name
    return None


def sketch_report(method: Callable[[], object], timed: Callable[..., object] | None = None) -> dict[str, Any]:
    """What the ``@reports`` ``method`` returns, if it is a dict whose JSON fits :data:`REPORT_MAX`; else ``{"error": ...}``.

    Sketch code is untrusted: whatever it raises or returns, the status report is still
    made. ``timed(what, function)`` runs it (the node's watch, which reports a block).
    """
    try:
        result = timed("@reports", method) if timed is not None else method()
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return {"error": escape(f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})")}
    if not isinstance(result, dict):
        return {"error": f"@reports returned {type(result).__name__}, not a dict"}
    try:
        text = json.dumps(result, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        return {"error": escape(f"@reports returned what JSON cannot carry: {exc}")}
    if len(text.encode()) > REPORT_MAX:
        return {"error": f"@reports returned {len(text.encode())} bytes of JSON; at most {REPORT_MAX} are shown"}
    return result


class Reactor:
    """Calls a sketch's ``loop()`` for the server and the links; counts what it handled.

    ``messages_in`` counts the messages handed to ``loop()``; ``inflight`` those still
    running; ``await idle()`` returns once none is.
    """

    def __init__(
        self, sketch: object, log: logging.Logger, watch: Watch | None = None, timeout: float | None = None
    ) -> None:
        marked = inspect.getattr_static(type(sketch), "loop", None)
        if not isinstance(marked, reactive):
            raise TypeError(f"{type(sketch).__name__}.loop must be an async method decorated with @reactive")
        self.function = marked.function
        self.sketch = sketch
        self.log = log
        self.watch = watch if watch is not None else Watch(log)
        #: Seconds one ``loop()`` call may take before it is cancelled and its sender told (None: no bound).
        self.timeout = timeout
        self.messages_in = 0
        self.inflight = 0
        self._idle: asyncio.Future[None] | None = None  # made by idle() only: no event to set per message

    async def handle(self, channel: str, message: str) -> tuple[bool, str]:
        """Call ``loop`` for serving: ``(True, ack)``, or ``(False, why)`` if it raised."""
        self.messages_in += 1
        self.inflight += 1
        try:
            if self.timeout is None:
                ack = await self.watch.run(self.function(self.sketch, channel, message), "loop()")
            else:
                ack = await self._bounded(channel, message, self.timeout)
            return True, _answer(ack)
        except LoopTimeout as exc:  # one line; the sender gets the same words
            self.log.warning("loop() on %r: %s", message, exc)
            return False, str(exc)
        except MeshError as exc:  # expected (a peer away, say): one line, no traceback
            self.log.error("loop() on %r: %s", message, exc)
            return False, f"loop() failed: {exc}"
        except Exception as exc:
            self.log.exception("loop() failed on %r (channel %r)", message, channel)
            return False, f"loop() failed: {type(exc).__name__}: {exc}"
        finally:
            self.inflight -= 1
            if not self.inflight and self._idle is not None:
                if not self._idle.done():
                    self._idle.set_result(None)
                self._idle = None

    async def idle(self) -> None:
        """Return once no ``loop()`` call is running."""
        if self.inflight:
            if self._idle is None or self._idle.done():  # done: cancelled by a waiter that gave up
                self._idle = asyncio.get_running_loop().create_future()
            await self._idle

    async def _bounded(self, channel: str, message: str, seconds: float) -> object:
        """``loop()`` cancelled after ``seconds`` (the grid's ``timeout:``); LoopTimeout then.

        A deadline can cancel a ``loop()`` that awaits, not one that blocks: ``time.sleep()``
        runs to its end whatever the deadline, and the watch reports it.
        """
        bound = asyncio.timeout(seconds)
        try:
            async with bound:
                return await self.watch.run(self.function(self.sketch, channel, message), "loop()")
        except TimeoutError:
            if not bound.expired():
                raise  # loop()'s own TimeoutError, not ours
            raise LoopTimeout(seconds) from None

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
