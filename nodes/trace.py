"""Traces: every publication and every wire's messages in flight, as a Value Change Dump (VCD).

A :class:`Trace` records calls as they happen and writes the file, with pyvcd's
``VCDWriter``, when it is closed: a VCD declares its variables before the first change,
and which kind a variable is depends on every value it carried.

What the file holds (it opens in GTKWave, ``gtkwave out.vcd``, and in Surfer):

- **One variable per topic key**, in one scope per level before the last: ``iopin/pin`` is
  the variable ``pin`` in the scope ``iopin``, ``bridge/room/temp`` is ``temp`` in
  ``bridge.room``. Its kind comes from all the payloads the key carried
  (:func:`kind_of`): only ``0`` and ``1`` make a 1-bit ``wire`` (the iopin's pin), only
  integers an ``integer`` (64 bits), only numbers a ``real``, anything else a ``string``.
- **One integer variable per wire**, in the scope ``wires``: how many messages are in
  flight on it (``clock->iopin`` is ``wires.clock_to_iopin``).

Names: a scope or variable name keeps ASCII letters, digits and ``_``; any other
character becomes ``_``, and a name that would start with a digit (or be empty) gets
a leading ``_`` (``iopin/$state`` is ``iopin._state``), so that every name is a plain
VCD identifier that every viewer reads alike. Two keys that come out the same in one
scope are told apart by ``_2``, ``_3``... in the order of their keys.

Time: the timescale is 1 us and times are counted from the start of the run. Changes
that share an instant (in virtual time the iopin's three bits are published at the
same instant: I/O takes no virtual time) are spread 1 us apart in the order they
happened, so that each shows and their order is kept: delta cycles made visible. A
change is never placed before the one recorded before it.

String values: spaces survive (pyvcd writes them ``\\x20``, which GTKWave and Surfer show as
spaces); a backslash, a control character or a character beyond ASCII is written
as Python writes it in a string literal (``\\\\``, ``\\n``, ``\\x07``, ``\\u00e9``), and a
payload longer than :data:`LONGEST` characters is cut there and ends with ``...``.
Nothing a payload or a key holds can break the file's syntax.

Deterministic: the same calls give the same bytes. No wall-clock date is written
unless one is given; variables are declared in the order of their keys (wires after,
in the order of their ends) and get their identifiers in that order.

Bounded: at most :data:`LIMIT` changes are kept; past that they are counted, not kept
(:attr:`Trace.dropped`), and the file's header says how many were dropped. Whoever
records the trace logs one warning when the first is dropped.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from types import TracebackType
from typing import IO, Any, Final, Literal

from vcd import VCDWriter

__all__ = ["LIMIT", "LONGEST", "Kind", "Trace", "kind_of", "safe_name"]

Kind = Literal["bit", "integer", "real", "string"]

#: The most changes a trace keeps; past it, changes are counted and dropped.
LIMIT: Final = 1_000_000
#: The longest string value written, in characters of the payload; a longer one is cut.
LONGEST: Final = 256
#: Ticks (of the 1 us timescale) per second.
TICKS: Final = 1_000_000

#: Kinds from the narrowest to the widest: a key's kind is the widest of its payloads'.
_ORDER: Final[tuple[Kind, ...]] = ("bit", "integer", "real", "string")
_INTEGER = re.compile(r"-?[0-9]+")
_REAL = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_INT64 = range(-(2**63), 2**63)
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_VERSION = "arduino-mesh trace"


def _kind_of_one(value: str) -> Kind:
    """The narrowest kind that holds ``value``."""
    if value in ("0", "1"):
        return "bit"
    if len(value) > LONGEST:  # cut when written: only text may be cut
        return "string"
    if len(value) <= 20 and _INTEGER.fullmatch(value) and int(value) in _INT64:
        return "integer"
    if _REAL.fullmatch(value) and math.isfinite(float(value)):
        return "real"
    return "string"


def _wider(a: Kind, b: Kind) -> Kind:
    return a if _ORDER.index(a) >= _ORDER.index(b) else b


def kind_of(values: Iterable[str]) -> Kind:
    """Which kind of variable a signal is, from all the payloads it carried (text, as published).

    Every payload ``0`` or ``1``: ``"bit"``; every payload an integer (``-?[0-9]+``, within
    64 bits): ``"integer"``; every payload a finite number (``-1.5``, ``2e3``; not ``nan``,
    ``inf`` nor ``+1``): ``"real"``; otherwise ``"string"``. A payload longer than
    :data:`LONGEST` characters is text (it is cut when written). No payload at all:
    ``"string"`` (nothing says it is a bit).
    """
    kind: Kind | None = None
    for value in values:
        one = _kind_of_one(value)
        kind = one if kind is None else _wider(kind, one)
        if kind == "string":
            break
    return kind or "string"


def safe_name(text: str) -> str:
    """``text`` as a plain VCD identifier: ASCII letters, digits and ``_``, not starting with a digit."""
    name = _UNSAFE.sub("_", text)
    return name if name[:1].isalpha() or name[:1] == "_" else f"_{name}"


def _printable(value: str) -> str:
    """A payload as a string value: cut at LONGEST, escaped to printable ASCII (the space is kept)."""
    cut = value[:LONGEST] + ("..." if len(value) > LONGEST else "")
    return cut.encode("unicode_escape").decode("ascii")


def _comment(text: str) -> str:
    """Free text made safe inside ``$comment ... $end``: printable ASCII, lines kept, no ``$end``."""
    lines = [line.encode("unicode_escape").decode("ascii") for line in text.splitlines()]
    return "\n".join(lines).replace("$end", "$ end")


class _Signal:
    """One variable to declare: its scope, its name, and the widest kind of what it carried."""

    __slots__ = ("kind", "name", "number", "scope")

    def __init__(self, number: int, scope: tuple[str, ...], name: str, kind: Kind) -> None:
        self.number = number
        self.scope = scope
        self.name = name
        self.kind: Kind = kind


class Trace:
    """Records publications and wires' messages in flight; :meth:`close` writes them as a VCD file.

    The file is opened (created, or emptied) at once, so a path that cannot be written
    fails here with :class:`OSError`, before anything runs. ``date`` is written in the
    header as it is (``None``: no date, so that two runs give the same bytes); ``comment``
    too. Usable as a context manager, which closes it.
    """

    def __init__(self, path: str | os.PathLike[str], *, date: str | None = None, comment: str | None = None) -> None:
        self.path = os.fspath(path)
        self.date = date
        self.comment = comment
        #: Changes recorded, in the order they happened: (tick, signal's number, value).
        self.recorded: list[tuple[int, int, str | int]] = []
        #: Changes past :data:`LIMIT`, counted and not kept.
        self.dropped = 0
        #: Changes written to the file (a value equal to the one before is no change), once closed.
        self.changes = 0
        self.closed = False
        self._signals: dict[tuple[str, ...], _Signal] = {}  # in the order first seen: its number is its place
        self._tick = -1
        self._file: IO[str] | None = open(self.path, "w", encoding="ascii", newline="\n")

    def __enter__(self) -> Trace:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    @property
    def signals(self) -> int:
        """How many variables the trace holds so far."""
        return len(self._signals)

    def _record(self, t: float, signal: _Signal, value: str | int) -> None:
        tick = round(t * TICKS) if math.isfinite(t) else self._tick + 1
        self._tick = max(tick, self._tick + 1)  # same instant (or earlier): 1 us after the change before
        self.recorded.append((self._tick, signal.number, value))

    def _full(self) -> bool:
        if self.closed:
            raise ValueError(f"trace {self.path} is closed")
        if len(self.recorded) >= LIMIT:
            self.dropped += 1
            return True
        return False

    def publication(self, t: float, key: str, data: str) -> None:
        """``key`` published ``data`` at ``t`` seconds since the start."""
        if self._full():
            return
        key, data = str(key), str(data)
        kind = _kind_of_one(data)
        signal = self._signals.get(("key", key))
        if signal is None:
            *scope, name = key.split("/")
            levels = tuple(safe_name(level) for level in scope) or ("_",)  # a key of one level: in the scope _
            signal = self._signals[("key", key)] = _Signal(len(self._signals), levels, safe_name(name), kind)
        else:
            signal.kind = _wider(signal.kind, kind)
        self._record(t, signal, data[: LONGEST + 1])  # kept: one more than written, to know it was cut

    def wire(self, t: float, source: str, target: str, inflight: int) -> None:
        """``inflight`` messages are on the wire ``source -> target`` at ``t`` seconds since the start."""
        if self._full():
            return
        signal = self._signals.get(("wire", source, target))
        if signal is None:
            name = safe_name(f"{source}_to_{target}")
            signal = self._signals[("wire", source, target)] = _Signal(len(self._signals), ("wires",), name, "integer")
        self._record(t, signal, int(inflight))

    def close(self) -> None:
        """Write the file and close it; a second call does nothing."""
        if self.closed:
            return
        self.closed = True
        assert self._file is not None
        with self._file:
            self._write(self._file)
        self._file = None

    def _write(self, out: IO[str]) -> None:
        notes = [self.comment] if self.comment else []
        if self.dropped:
            notes.append(f"{self.dropped} changes dropped: a trace keeps at most {LIMIT}")
        writer = VCDWriter(
            out,
            timescale="1 us",
            date=self.date or "",
            comment=_comment("\n".join(notes)),
            version=_VERSION,
        )
        ordered = sorted(self._signals, key=lambda signal: (signal[0] == "wire", signal[1:]))
        signals = list(self._signals.values())  # by number
        variables: list[Any] = [None] * len(signals)
        taken: set[tuple[str, ...]] = set()
        for key in ordered:
            spec = self._signals[key]
            name, suffix = spec.name, 1
            while (*spec.scope, name) in taken:
                suffix += 1
                name = f"{spec.name}_{suffix}"
            taken.add((*spec.scope, name))
            variables[spec.number] = _register(writer, spec.scope, name, spec.kind)
        last: list[object] = [_NOTHING] * len(signals)
        for tick, number, value in self.recorded:
            converted = _convert(signals[number].kind, value)
            if last[number] != converted:
                last[number] = converted
                self.changes += 1
            writer.change(variables[number], tick, converted)
        writer.close(self._tick + 1 if self.recorded else None)


_NOTHING = object()


def _register(writer: VCDWriter, scope: tuple[str, ...], name: str, kind: Kind) -> Any:
    if kind == "bit":
        return writer.register_var(scope, name, "wire", size=1)
    if kind == "integer":
        return writer.register_var(scope, name, "integer", size=64)
    if kind == "real":
        return writer.register_var(scope, name, "real")
    return writer.register_var(scope, name, "string")


def _convert(kind: Kind, value: str | int) -> str | int | float:
    if kind in ("bit", "integer"):
        return int(value)
    if kind == "real":
        return float(value)
    return _printable(str(value))
