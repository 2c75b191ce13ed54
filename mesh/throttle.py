"""What a log line may say about a peer: its text escaped, and the same warning not too often.

A peer chooses what it sends (its name in a hello, patterns, error texts, close
reasons) and how often it sends it (a wrong token 10,000 times a second). Two
helpers keep its say in our logs to one honest line:

- :func:`escape` turns peer text into one printable line, cut to :data:`TEXT_LIMIT`
  characters: a newline cannot forge a line of our own (``x\\n[ buzzer ] signal 1``).
- :class:`Throttle` logs the first warning of a kind at once, counts the ones that
  follow within ``every`` seconds, and says the count with the next line after
  that: ``... (and 412 more like this in the last 10 s)``.

Pure (no I/O, no imports of ``nodes``): both :mod:`mesh.links` and the node's
server use it; :mod:`cli.logs` re-exports it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["EVERY", "KEYS", "TEXT_LIMIT", "Throttle", "escape"]

#: Seconds between two lines of the same kind of warning; the ones between are counted.
EVERY = 10.0
#: Kinds of warning (keys) a throttle tracks at once; past it, new keys share one line and count.
KEYS = 1000
#: Characters of peer text a log line carries at most (the rest is cut, and says how much).
TEXT_LIMIT = 200


def escape(text: object, limit: int = TEXT_LIMIT, *, ascii_only: bool = False) -> str:
    """``text`` as one printable line: control characters, lone surrogates and the like escaped, cut to ``limit``.

    Printable text comes back as it is, so ordinary names read as before; with
    ``ascii_only`` (an HTTP reply), every character beyond ASCII is escaped too.
    """
    text = str(text)
    cut = len(text) - limit
    if cut > 0:
        text = text[:limit]
    if not text.isprintable() or (ascii_only and not text.isascii()):
        text = "".join(
            char if char.isprintable() and (char.isascii() or not ascii_only) else _escaped(char) for char in text
        )
    return f"{text}... ({cut} more characters)" if cut > 0 else text


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _now() -> float:
    """The event loop's clock when one runs (virtual time included), else the monotonic clock."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


@dataclass
class _Seen:
    logged: float  # when the last line of this key was written
    more: int = 0  # occurrences since, not written


#: The key that keys past :data:`KEYS` share (so that fresh keys cannot buy a line each).
OVERFLOW = object()


class Throttle:
    """Warnings of one kind (a key) at most once every ``every`` seconds, then a count.

    ``warn(key, msg, *args)``: the first occurrence of ``key`` is logged at once; those
    within ``every`` seconds of it are counted, not logged; the next one after that is
    logged with ``(and N more like this in the last T s)``. A count is said only with
    the next line of its key: a flood that stops leaves its count unsaid.

    Memory is bounded: at most ``keys`` keys are tracked (those quiet for ``every``
    seconds are forgotten first); past it, new keys share one key, so a peer that
    makes up a fresh key each time still gets one line every ``every`` seconds.
    """

    def __init__(
        self,
        log: logging.Logger | logging.LoggerAdapter,
        every: float = EVERY,
        *,
        keys: int = KEYS,
        clock: Callable[[], float] = _now,
    ) -> None:
        self.log = log
        self.every = every
        self.keys = keys
        self.clock = clock
        self._seen: OrderedDict[Hashable, _Seen] = OrderedDict()  # oldest line first
        self._overflow: _Seen | None = None
        #: Lines not written, in all.
        self.suppressed = 0

    def __len__(self) -> int:
        return len(self._seen)

    def warn(self, key: Hashable, msg: str, *args: object) -> bool:
        """Log a warning unless one of ``key`` was logged less than ``every`` seconds ago; whether it was logged."""
        return self.log_as(logging.WARNING, key, msg, *args)

    def log_as(self, level: int, key: Hashable, msg: str, *args: object) -> bool:
        """:meth:`warn` at another level."""
        now = self.clock()
        seen = self._find(key, now)
        if seen is None:  # a fresh key: said at once
            self.log.log(level, msg, *args)
            return True
        if now - seen.logged < self.every:
            seen.more += 1
            self.suppressed += 1
            return False
        if seen.more:
            msg = f"{msg} (and %d more like this in the last %.0f s)"
            args = (*args, seen.more, now - seen.logged)
        seen.logged, seen.more = now, 0
        if key in self._seen:
            self._seen.move_to_end(key)
        self.log.log(level, msg, *args)
        return True

    def _find(self, key: Hashable, now: float) -> _Seen | None:
        """The record of ``key`` (or of the shared overflow key); None if it is new (and now recorded)."""
        seen = self._seen.get(key)
        if seen is not None:
            return seen
        while self._seen:  # forget keys quiet for a whole interval, oldest first
            oldest = next(iter(self._seen.values()))
            if now - oldest.logged < self.every or (len(self._seen) < self.keys and oldest.more):
                break
            self._seen.popitem(last=False)
        if len(self._seen) < self.keys:
            self._seen[key] = _Seen(now)
            return None
        if self._overflow is None:
            self._overflow = _Seen(now)
            return None
        return self._overflow
