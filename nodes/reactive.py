"""The marks a sketch puts on its methods: ``@reactive``, ``@every``, ``@hears``, ``@reports``.

``loop(self, channel, message)`` is written as a plain ``async`` method that
returns the acknowledgement, decorated with ``@reactive``. ``await self.loop(channel,
message)`` still calls it and always gives text back (``None`` becomes ``"n/a"``,
anything else not text becomes JSON).

``@every(seconds, times=0)`` marks a method to be called every ``seconds``, ``times`` times
(0: forever), from the end of ``setup()`` until the node stops. Either argument may be the
name of an attribute that ``setup()`` sets, so a sketch can take its period from its
parameters::

    @every("delay", times="tacks")
    async def tick(self): ...

(:func:`nodes.delivery.run_every` keeps the schedule.)

A sketch that wants the grid's ``subscribe:`` topics apart from its messages marks one
method ``@hears``: it gets ``(key, data)``; without one, topics arrive at ``loop(key, data)``.

A sketch that has something of its own to say in ``./arduino.py status`` (the MQTT bridge:
its broker's state) marks one method ``@reports``: ``(self) -> dict``, whose result the
node's status report carries under ``"report"`` (:func:`nodes.report.sketch_report`: bounded, and an
exception or a wrong type is an error entry, never a failed status).

These are the sketch's side: marks on its methods. The runtime finds the methods through
the class, by their marks, never by instance attribute, so a sketch may name its own
attributes anything; it calls ``loop()`` through :class:`nodes.delivery.Reactor`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from mesh.errors import SketchMistake
from mesh.protocol import ack_text_of

from .blame import defined_at

__all__ = [
    "SYNC_LOOP",
    "every",
    "has_loop",
    "has_reconfigure",
    "heard_by",
    "hears",
    "periodic_methods",
    "reactive",
    "reported_by",
    "reports",
]

LoopFunction = Callable[[Any, str, str], Coroutine[Any, Any, object]]
_HEARS = "__hears__"
_EVERY = "__every__"
_REPORTS = "__reports__"
#: What a ``def loop`` without ``async`` is told (after its file and line).
SYNC_LOOP = "loop() must be async: write 'async def loop(self, channel, message)'"
#: Bytes of JSON a sketch's ``@reports`` section may take in the status report; past it, an error entry.
REPORT_MAX = 4096


class reactive:  # lower case: used as a decorator, reads like a function
    """Mark ``async def loop(self, channel, message)`` as the sketch's message handler."""

    def __init__(self, function: LoopFunction) -> None:
        if not inspect.iscoroutinefunction(function):
            raise SketchMistake(defined_at(function), SYNC_LOOP)
        self.function = function
        functools.update_wrapper(self, function)  # type: ignore[arg-type]

    def __get__(self, sketch: object, owner: type | None = None) -> Any:
        if sketch is None:
            return self
        return functools.partial(call_loop, self.function, sketch)


async def call_loop(function: LoopFunction, sketch: object, channel: str, message: str) -> str:
    """``loop(channel, message)``, its answer as text."""
    return ack_text_of(await function(sketch, channel, message))


def hears(method: Callable[[Any, str, str], Any]) -> Callable[[Any, str, str], Any]:
    """Mark ``(async) def method(self, key, data)`` as where the grid's ``subscribe:`` topics arrive."""
    setattr(method, _HEARS, True)
    return method


@functools.cache
def _marked(cls: type) -> dict[str, list[tuple[str, Any]]]:
    """Every mark on the methods of sketch class ``cls``: mark -> ``[(method name, what the mark holds)]``.

    Looked up once per class, from the class (never an instance): a grid of thousands of
    nodes of one sketch asks this thousands of times.
    """
    found: dict[str, list[tuple[str, Any]]] = {_HEARS: [], _REPORTS: [], _EVERY: []}
    for name in dir(cls):
        attribute = inspect.getattr_static(cls, name, None)
        for mark, marked in found.items():
            value = getattr(attribute, mark, None)
            if value is not None and value is not False:
                marked.append((name, value))
    return found


def heard_by(cls: type) -> str | None:
    """The name of the ``@hears`` method of ``cls``, if it has one."""
    marked = _marked(cls)[_HEARS]
    return marked[0][0] if marked else None


def reports(method: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    """Mark ``def method(self) -> dict`` as the sketch's own section of its status report (``"report"``)."""
    setattr(method, _REPORTS, True)
    return method


def reported_by(cls: type) -> str | None:
    """The name of the ``@reports`` method of ``cls``, if it has one."""
    marked = _marked(cls)[_REPORTS]
    return marked[0][0] if marked else None


def has_loop(cls: type) -> bool:
    """Whether the sketch class ``cls`` has a ``loop()`` of its own (FactoryLoop's answers every message with NoLoop)."""
    function = getattr(inspect.getattr_static(cls, "loop", None), "function", None)
    return not getattr(function, "__runtime_default__", False)


def has_reconfigure(cls: type) -> bool:
    """Whether the sketch class ``cls`` defines its own ``reconfigure()`` (params changed while it runs)."""
    return not getattr(getattr(cls, "reconfigure", None), "__runtime_default__", False)


def every(seconds: float | str, *, times: int | str = 0) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Call the decorated method every ``seconds``, ``times`` times (0: forever)."""

    def mark(method: Callable[..., Any]) -> Callable[..., Any]:
        setattr(method, _EVERY, (seconds, times))
        return method

    return mark


def periodic_methods(node: object) -> list[tuple[str, float, int]]:
    """``(name, seconds, times)`` for each ``@every`` method of ``node``, resolved after setup."""
    found = []
    for name, spec in _marked(type(node))[_EVERY]:  # type: ignore[arg-type]  # classes hash by identity
        seconds, times = (getattr(node, value) if isinstance(value, str) else value for value in spec)
        if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds <= 0:
            raise ValueError(f"@every on {name}(): the period must be a number of seconds above 0, not {seconds!r}")
        if not isinstance(times, int) or isinstance(times, bool) or times < 0:
            raise ValueError(f"@every on {name}(): times must be a whole number, 0 or more, not {times!r}")
        found.append((name, float(seconds), times))
    return found
