"""The logic-analyzer strip's data: each key's recent publications, bounded, and the kind of signal it is.

What the dashboard's strip draws is what a VCD trace holds: each key and its payloads over time,
each key of one kind, from every payload it carried (:func:`kind_of`): a key whose payloads are all
``0`` or ``1`` is a 1-bit wire (drawn as a square waveform), any other key a row of marks.

:class:`History` keeps, per key, the publications of the last ``window`` seconds and the newest
one before them (the level a waveform starts the window at), each numbered with the message's
number, so that a snapshot can carry only the points a page has not had. It is bounded whatever
the publishers do: at most :data:`POINTS` points a key, and :data:`STRIP_POINTS` over all keys
(each key's share, ``STRIP_POINTS // keys``, once there are more than five); values are cut to
:data:`STRIP_TEXT` characters. The number of keys is the dashboard's own bound (``KEYS``): a key
it lets go, :meth:`History.forget` drops. Times are the dashboard's event-loop clock
(monotonic, virtual in a simulation), and go to the page as seconds before the snapshot's
``now``, so the page needs no clock agreement.

Plain code, no I/O and no event loop: the dashboard passes the time in.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from typing import Any

#: Seconds of history the strip shows (the dashboard's ``window`` param, by default).
WINDOW = 20.0
#: Points a key keeps at most (its publications within the window, and the one before).
POINTS = 2_000
#: Points all keys keep at most together: past five keys, each keeps its share.
STRIP_POINTS = 10_000
#: Characters of a value the strip keeps (and sends a page): a mark's title, not the full value (that is in the log).
STRIP_TEXT = 32

#: The kinds of a signal, narrowest first: each payload widens its key's kind, never narrows it.
KINDS = ("bit", "integer", "real", "string")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_REAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def kind_of_value(value: str) -> str:
    """The narrowest kind one payload fits: ``0``/``1`` a bit; ASCII digits (and a sign) an integer; a decimal
    number (``1.5``, ``-2e3``; not ``nan``, ``inf`` or ``1_000``) a real; anything else a string."""
    if value in ("0", "1"):
        return "bit"
    if _INTEGER.fullmatch(value):
        return "integer"
    if _REAL.fullmatch(value):
        return "real"
    return "string"


def widen(kind: str, value: str) -> str:
    """The kind of a key that was ``kind`` once it also carried ``value``."""
    other = kind_of_value(value)
    return kind if KINDS.index(kind) >= KINDS.index(other) else other


def kind_of(values: Iterable[str]) -> str:
    """The kind of a signal from every payload it carried: "bit" | "integer" | "real" | "string".

    The rule ``nodes.trace.kind_of`` applies to a VCD's variables (the page's ``kindOf`` in
    ``static/app.js`` is the same): every payload ``0`` or ``1``, a 1-bit wire; every one an
    integer, an integer; every one a number, a real; otherwise a string.
    """
    kind = "bit"
    for value in values:
        kind = widen(kind, value)
    return kind


def cut(text: str, limit: int = STRIP_TEXT) -> str:
    """``text``, cut to ``limit`` characters (an ellipsis says it was)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class History:
    """Each key's recent publications ``(number, time, value)``, bounded per key and over all keys."""

    def __init__(self, window: float = WINDOW, points: int = POINTS, total: int = STRIP_POINTS) -> None:
        if window <= 0:
            raise ValueError(f"window must be above 0 seconds, not {window}")
        self.window = window
        self.points = points
        self.total = total
        self.keys: dict[str, deque[tuple[int, float, str]]] = {}
        self.kinds: dict[str, str] = {}
        #: Points a key keeps at the moment: ``points``, or its share of ``total`` once there are many keys.
        self.limit = points

    def add(self, number: int, now: float, key: str, value: str) -> None:
        """Message ``number``, ``value`` on ``key`` at ``now``; what left the window (or the bounds) is let go."""
        points = self.keys.get(key)
        if points is None:
            self.keys[key] = deque(maxlen=self.limit)
            self._share()
            points = self.keys[key]
        points.append((number, now, cut(value)))
        self.kinds[key] = widen(self.kinds.get(key, "bit"), value)
        self._trim(points, now)

    def forget(self, key: str) -> None:
        """Let ``key`` go, with its points and kind (the dashboard let it go)."""
        self.keys.pop(key, None)
        self.kinds.pop(key, None)

    def prune(self, now: float) -> None:
        """Let go of every point that left the window (keeping each key's newest one before it)."""
        for points in self.keys.values():
            self._trim(points, now)

    def rows(self, now: float, since: int = 0) -> dict[str, dict[str, Any]]:
        """Each key with a point numbered above ``since``: its kind, and those points as ``[number, ago, value]``,
        oldest first, ``ago`` in seconds before ``now`` (rounded to the millisecond)."""
        self.prune(now)
        rows: dict[str, dict[str, Any]] = {}
        for key, points in self.keys.items():
            fresh: list[list[Any]] = []
            for number, t, value in reversed(points):
                if number <= since:
                    break
                fresh.append([number, round(now - t, 3), value])
            if fresh:
                fresh.reverse()
                rows[key] = {"kind": self.kinds[key], "points": fresh}
        return rows

    def __len__(self) -> int:
        """Points kept, over all keys."""
        return sum(len(points) for points in self.keys.values())

    def _trim(self, points: deque[tuple[int, float, str]], now: float) -> None:
        start = now - self.window
        while len(points) > 1 and points[1][1] <= start:
            points.popleft()

    def _share(self) -> None:
        """Each key's bound for the number of keys now: a new key shrinks the others' (their oldest points go)."""
        limit = max(1, min(self.points, self.total // len(self.keys)))
        if limit != self.limit:
            self.limit = limit
            for key, points in self.keys.items():
                self.keys[key] = deque(points, maxlen=limit)
