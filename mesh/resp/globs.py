"""Redis's glob patterns (PSUBSCRIBE, PUBSUB CHANNELS), pure: what Redis's ``stringmatchlen`` matches. No I/O.

The syntax (``src/util.c``, nocase off as pub/sub uses it):

- ``*`` any run of bytes, ``?`` any one byte, ``\\x`` the byte ``x`` itself;
- ``[abc]`` one of, ``[^abc]`` none of, ``[a-z]`` a range (ends in either order: ``[z-a]`` is ``[a-z]``),
  ``\\`` escapes inside a class too.

And Redis's edge cases, each in the table of ``tests/mesh/resp/test_globs.py`` and checked there
against a real redis-server:

- the empty string is matched by the empty pattern only: ``*`` does not match ``""``;
- an unterminated class ends with the pattern: ``[abc`` is ``[abc]``; ``[`` matches nothing, ``[^``
  any byte; ``[]`` is an empty class (matches nothing; ``[^]`` any byte), so ``[]a]`` is ``[]``
  followed by ``a]``;
- ``-`` is a range only with a byte on each side inside the class: ``[a-]`` is the range from ``a``
  to ``]`` (``]`` is 0x5D, so: ``] ^ _ ` a``), and the class then runs to the end of the pattern;
- range ends compare as C's signed ``char``: a byte of 0x80 or more is *below* ``0``, so
  ``[a-\\xff]`` is every byte up to ``a`` plus 0xFF, not ``a`` to 0xFF;
- a backslash at the very end of a pattern is a literal backslash;
- patterns with more than 1000 ``*`` groups that are not last never match (CVE-2024-31228: Redis
  stops matching 1000 recursions deep; Debian's 7.0.15 has the fix).

How it is matched here, differently from Redis's recursion (same answers):
the pattern is compiled once into *segments*, the runs between ``*`` groups, each of fixed length
(every token but ``*`` matches one byte). A string matches when the first segment matches at its
start, the last at its end, and each middle one somewhere in between, in order: taking each
middle segment at its leftmost place is always right, since a ``*`` can absorb whatever lies
between. A literal segment is found with ``bytes.find``/``startswith``, a segment with ``?`` or
a class with a compiled regex without any ``*`` (so no backtracking across stars). The work is
O(len(pattern) x len(string)) in C at worst, never exponential (Redis itself was exponential before
CVE-2022-36021 and bounds its recursion since CVE-2024-31228).
"""

from __future__ import annotations

import functools
import re
from typing import Final

__all__ = ["MAX_NESTING", "Glob", "compile_glob", "stringmatch"]

#: Redis's recursion limit in stringmatchlen (src/util.c, CVE-2024-31228): a match that needs to go
#: past the 1000th ``*`` fails.
MAX_NESTING: Final = 1000

_STAR: Final = -1
_ALL: Final = frozenset(range(256))


def _signed(byte: int) -> int:
    """A byte as x86's signed ``char``: 0x80-0xFF are -128..-1."""
    return byte - 256 if byte >= 128 else byte


def _tokens(pattern: bytes) -> list[int | frozenset[int]]:
    """The pattern as tokens: ``_STAR`` (consecutive ``*`` folded), a byte (a literal), or a set of bytes."""
    out: list[int | frozenset[int]] = []
    n = len(pattern)
    i = 0
    while i < n:
        c = pattern[i]
        if c == 42:  # '*'
            if not out or out[-1] != _STAR:
                out.append(_STAR)
            i += 1
        elif c == 63:  # '?'
            out.append(_ALL)
            i += 1
        elif c == 92:  # '\\': the next byte as itself; alone at the end, a backslash
            if i + 1 < n:
                out.append(pattern[i + 1])
                i += 2
            else:
                out.append(92)
                i += 1
        elif c == 91:  # '['
            i += 1
            negate = i < n and pattern[i] == 94  # '^'
            if negate:
                i += 1
            members: set[int] = set()
            while True:
                if i >= n:
                    break  # unterminated: the class ends with the pattern
                c = pattern[i]
                if c == 92 and n - i >= 2:  # an escaped byte
                    members.add(pattern[i + 1])
                    i += 2
                elif c == 93:  # ']'
                    i += 1
                    break
                elif n - i >= 3 and pattern[i + 1] == 45:  # 'x-y', whatever y is (even ']')
                    low, high = _signed(c), _signed(pattern[i + 2])
                    if low > high:
                        low, high = high, low
                    members.update(b for b in range(256) if low <= _signed(b) <= high)
                    i += 3
                else:
                    members.add(c)
                    i += 1
            out.append(_ALL - members if negate else frozenset(members))
        else:
            out.append(c)
            i += 1
    return out


def _class_regex(members: frozenset[int]) -> bytes:
    """A regex character class for a set of bytes, as ranges of ``\\xHH``."""
    if members == _ALL:
        return b"."  # compiled with DOTALL: any byte
    if not members:
        return b"(?!)"  # an empty class: nothing (the pattern is marked as never matching anyway)
    parts: list[bytes] = []
    ordered = sorted(members)
    start = prev = ordered[0]
    for b in [*ordered[1:], None]:
        if b is not None and b == prev + 1:
            prev = b
            continue
        parts.append(b"\\x%02x" % start if start == prev else b"\\x%02x-\\x%02x" % (start, prev))
        if b is not None:
            start = prev = b
    return b"[" + b"".join(parts) + b"]"


class _Segment:
    """A run of one-byte tokens between two ``*``: a literal, or a star-free regex of fixed length."""

    __slots__ = ("length", "literal", "regex")

    def __init__(self, tokens: list[int | frozenset[int]]) -> None:
        self.length = len(tokens)
        if all(isinstance(t, int) for t in tokens):
            self.literal: bytes | None = bytes(t for t in tokens if isinstance(t, int))
            self.regex: re.Pattern[bytes] | None = None
        else:
            self.literal = None
            source = b"".join(re.escape(bytes([t])) if isinstance(t, int) else _class_regex(t) for t in tokens)
            self.regex = re.compile(source, re.DOTALL)

    def at(self, string: bytes, pos: int) -> bool:
        """Whether the segment matches ``string`` at ``pos`` (which leaves room for it)."""
        if self.literal is not None:
            return string.startswith(self.literal, pos)
        assert self.regex is not None
        return self.regex.match(string, pos) is not None

    def find(self, string: bytes, start: int, end: int) -> int:
        """The leftmost place in ``string[start:end]`` where the segment matches whole, or -1."""
        if self.literal is not None:
            return string.find(self.literal, start, end)
        assert self.regex is not None
        found = self.regex.search(string, start, end)
        return -1 if found is None else found.start()


class Glob:
    """A compiled pattern: ``Glob(b"buzzer/*").match(b"buzzer/sound")``. Immutable, hashable by its pattern.

    ``prefix`` is the literal bytes every matched string starts with (up to the first ``*``, ``?``
    or ``[``): a registry can skip the patterns whose prefix a channel lacks. ``exact`` is the one
    string the pattern matches when it has no wildcard at all, else None.
    """

    __slots__ = ("_first", "_last", "_middle", "_min_len", "_never", "_single", "exact", "pattern", "prefix")

    def __init__(self, pattern: bytes) -> None:
        self.pattern = bytes(pattern)
        tokens = _tokens(self.pattern)
        # Split into segments at the stars.
        segments: list[list[int | frozenset[int]]] = [[]]
        for tok in tokens:
            if tok == _STAR:
                segments.append([])
            else:
                segments[-1].append(tok)
        stars = len(segments) - 1
        last_is_star = bool(tokens) and tokens[-1] == _STAR
        # A class with no member never matches, and neither does a path past the 1000th star.
        self._never = any(isinstance(t, frozenset) and not t for t in tokens) or (
            stars - (1 if last_is_star else 0) > MAX_NESTING
        )
        compiled = [_Segment(seg) for seg in segments]
        self._single = stars == 0
        self._first = compiled[0]
        self._last = compiled[-1]
        self._middle = tuple(compiled[1:-1])
        self._min_len = sum(s.length for s in compiled)
        prefix = bytearray()
        for tok in segments[0]:
            if not isinstance(tok, int):
                break
            prefix.append(tok)
        self.prefix = bytes(prefix)
        self.exact: bytes | None = self.prefix if self._single and len(self.prefix) == len(segments[0]) else None

    def match(self, string: bytes) -> bool:
        """Whether Redis would say ``string`` matches the pattern."""
        if not string:
            return not self.pattern  # Redis: only the empty pattern matches the empty string
        if self._never:
            return False
        n = len(string)
        if self._single:
            return n == self._first.length and self._first.at(string, 0)
        if n < self._min_len:
            return False
        first, last = self._first, self._last
        if first.length and not first.at(string, 0):
            return False
        end = n - last.length
        if last.length and not last.at(string, end):
            return False
        pos = first.length
        for segment in self._middle:
            if segment.length == 0:
                continue
            found = segment.find(string, pos, end)
            if found < 0:
                return False
            pos = found + segment.length
        return True

    def __repr__(self) -> str:
        return f"Glob({self.pattern!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Glob) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)


@functools.lru_cache(maxsize=4096)
def compile_glob(pattern: bytes) -> Glob:
    """``Glob(pattern)``, cached: the same pattern is compiled once."""
    return Glob(pattern)


def stringmatch(pattern: bytes, string: bytes) -> bool:
    """Whether ``string`` matches the glob ``pattern`` as Redis's ``stringmatchlen(..., nocase=0)`` says."""
    return compile_glob(bytes(pattern)).match(bytes(string))
