"""Redis requests out of a byte stream, pure: what a Redis client sends, read as Redis 7.0 reads it. No I/O.

A Redis client sends either

- a *multibulk* request: ``*<n>\\r\\n`` then ``n`` bulk strings ``$<len>\\r\\n<bytes>\\r\\n``
  (what redis-py, redis-cli and every library send), or
- an *inline* request: one line of words separated by blanks, ``\\r\\n`` or ``\\n`` ended, with
  Redis's quoting (``"a b"``, ``'a b'``, ``"\\x41\\n"``): what a person types in telnet or nc.

The first byte of each request decides, as in Redis (``processInputBuffer`` in
``src/networking.c``): ``*`` is multibulk, anything else inline.

:class:`RequestParser` is incremental (``feed()`` bytes as they come, ``next()`` a command at a
time) and reproduces Redis 7.0's rules and its exact error wording, quirks included (each is a
case in ``tests/mesh/resp/test_parse.py``):

- ``*0`` and ``*-1`` are empty requests, silently skipped; so is an empty inline line;
- the two bytes after a header line's ``\\r`` and after a bulk's payload are skipped unread
  (Redis does not check they are ``\\r\\n``);
- a header or inline line is searched up to its first NUL byte only (Redis uses ``strchr`` on
  a C string), and an inline line ends at its first NUL;
- numbers follow Redis's ``string2ll``: no ``+``, no leading zero, no blank, at most 20 chars;
- a request may not nest: an array inside the request is ``expected '$', got '*'``.

Every error is a :class:`~mesh.errors.RespError` whose ``reply`` is what Redis answers before it
closes the connection (``ERR Protocol error: ...``); ``reply`` is None for the one limit Redis
enforces by closing without a word (the query buffer limit, ours: ``Limits.request_max``).

Why ours and not hiredis's ``Reader`` (redis-py's parser), as docs/redis.md says with the
figures: hiredis parses *replies*. It reads a multibulk request (an array of bulks is a reply
shape) but not an inline one, and as a server's parser it takes what Redis refuses (nested
arrays, integers, null bulks), waits for any announced length, cannot change its limits after
AUTH mid-pipeline, and words its errors its own way. It is faster per command, but a request is
parsed once and delivered to every subscriber: the parser is a few per cent of a fan-out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mesh.errors import RespError

__all__ = ["REDIS_INLINE_MAX", "Limits", "RequestParser", "parse_int", "split_inline"]

# -- limits ---------------------------------------------------------------------------------------------

#: Redis's PROTO_INLINE_MAX_SIZE (src/server.h): an inline line, or a header line still without its \r.
REDIS_INLINE_MAX: Final = 64 * 1024
#: Redis's proto-max-bulk-len default: 512 MB.
REDIS_BULK_MAX: Final = 512 * 1024 * 1024
#: Redis 7's bound on a multibulk count: INT_MAX (Redis up to 6.2: 1024*1024).
REDIS_MULTIBULK_MAX: Final = 2**31 - 1
#: Redis's string2ll refuses a number of LONG_STR_SIZE (21) characters or more.
_LONG_STR_SIZE: Final = 21


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what a client may send. Redis's own values are in the module's REDIS_* constants."""

    #: An inline request line (without its line end), and a header line not yet ended: Redis 64 KiB.
    inline_max: int = REDIS_INLINE_MAX
    #: One bulk string (an argument): Redis's proto-max-bulk-len is 512 MB; a mesh message is far smaller.
    bulk_max: int = 1024 * 1024
    #: Arguments of a multibulk request: Redis 7 allows INT_MAX (6.2: 1M); SUBSCRIBE of 1,000 channels fits.
    multibulk_max: int = 1024
    #: Before AUTH (when a password is set), Redis refuses more than 10 arguments...
    unauth_multibulk_max: int = 10
    #: ...and a bulk longer than 16 KiB ("unauthenticated bulk length").
    unauth_bulk_max: int = 16384
    #: All of one request (its arguments plus what is buffered): over it the connection is closed without a
    #: reply, as Redis does past client-query-buffer-limit (1 GB).
    request_max: int = 4 * 1024 * 1024


def _protocol_error(what: str) -> RespError:
    return RespError(b"ERR Protocol error: " + what.encode(), f"protocol error: {what}")


# -- numbers --------------------------------------------------------------------------------------------


def parse_int(text: bytes | bytearray | memoryview) -> int | None:
    """An integer written the way Redis's ``string2ll`` accepts it (``src/util.c``), else None.

    ``0``, ``-12``, ``42``; not ``+1``, ``01``, ``-0``, `` 1``, ``1 ``, ``""``, nor anything of 21
    characters or more, nor outside a signed 64-bit integer.
    """
    n = len(text)
    if n == 0 or n >= _LONG_STR_SIZE:
        return None
    digits = bytes(text[1:]) if text[0] == 45 else bytes(text)  # '-'
    # isdigit() on bytes is ASCII 0-9 only; the first digit is 1-9 unless the whole number is "0"
    if not digits.isdigit() or (digits[0] == 48 and (len(digits) > 1 or n > 1)):
        return None
    value = int(bytes(text))
    if not -(2**63) <= value <= 2**63 - 1:
        return None
    return value


# -- inline requests ------------------------------------------------------------------------------------

#: What C's isspace() says is a blank, in the C locale: skipped between words.
_BLANKS: Final = frozenset(b" \t\n\v\f\r")
#: What ends an unquoted word (Redis's sdssplitargs: \v and \f do not; NUL ends the line anyway).
_WORD_ENDS: Final = frozenset(b" \n\r\t")
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES: Final = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}


def split_inline(line: bytes) -> list[bytes] | None:
    """The words of an inline request line, with Redis's quoting rules; None if its quotes are unbalanced.

    As Redis's ``sdssplitargs`` (``src/sds.c``) decides:

    - words are separated by blanks (space, tab, CR, LF; VT and FF only between words);
    - in double quotes: ``\\xHH`` (two hex digits) is a byte, ``\\n \\r \\t \\b \\a`` their control
      characters, a backslash before anything else is that thing;
    - in single quotes: only ``\\'`` is an escape;
    - a quote may open in the middle of a word (``a"b c"`` is ``ab c``) but a closing quote must be
      followed by a blank or the end: ``"a"b`` is unbalanced;
    - the line ends at its first NUL byte (a C string).
    """
    nul = line.find(b"\0")
    if nul >= 0:
        line = line[:nul]
    n = len(line)
    words: list[bytes] = []
    i = 0
    while True:
        while i < n and line[i] in _BLANKS:
            i += 1
        if i == n:
            return words
        word = bytearray()
        quote = 0  # 0, or the quote character we are inside
        while True:
            if quote == 34:  # "..."
                if i == n:
                    return None  # unterminated
                c = line[i]
                if c == 92 and i + 3 < n and line[i + 1] == 120 and line[i + 2] in _HEX and line[i + 3] in _HEX:
                    word.append(int(line[i + 2 : i + 4], 16))  # \xHH
                    i += 4
                elif c == 92 and i + 1 < n:
                    nxt = line[i + 1]
                    word.append(_ESCAPES.get(nxt, nxt))
                    i += 2
                elif c == 34:
                    if i + 1 < n and line[i + 1] not in _BLANKS:
                        return None  # a closing quote glued to what follows
                    i += 1
                    break
                else:
                    word.append(c)
                    i += 1
            elif quote == 39:  # '...'
                if i == n:
                    return None
                c = line[i]
                if c == 92 and i + 1 < n and line[i + 1] == 39:
                    word.append(39)
                    i += 2
                elif c == 39:
                    if i + 1 < n and line[i + 1] not in _BLANKS:
                        return None
                    i += 1
                    break
                else:
                    word.append(c)
                    i += 1
            else:
                if i == n:
                    break
                c = line[i]
                if c in _WORD_ENDS:
                    i += 1
                    break
                if c == 34 or c == 39:
                    quote = c
                else:
                    word.append(c)
                i += 1
        words.append(bytes(word))


# -- the request parser ---------------------------------------------------------------------------------


class RequestParser:
    """Client requests out of a byte stream, one command (a list of bytes) at a time, as Redis parses them.

    ``feed(data)`` appends what was read; ``next(auth_required=...)`` returns the next complete
    command, None if more bytes are needed, or raises :class:`~mesh.errors.RespError` (the parser is then
    dead: the connection must be closed after the error's reply). ``auth_required`` is asked per
    command because an AUTH earlier in the same read changes it for the commands after.

    The buffer never holds much more than a limit: a line is refused past ``inline_max``, a bulk
    past ``bulk_max``, a whole request past ``request_max``.
    """

    __slots__ = ("_args", "_args_size", "_buf", "_bulklen", "_dead", "_multibulk", "_pos", "limits")

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._buf: bytes | bytearray = b""
        self._pos = 0  # what is before it was parsed
        self._multibulk = 0  # arguments still to read of the current multibulk request
        self._bulklen = -1  # length of the bulk being read, -1 before its header
        self._args: list[bytes] = []
        self._args_size = 0
        self._dead = False

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes read from the connection."""
        buf = self._buf
        if self._pos >= len(buf):
            # All parsed (the usual case: reads end between commands): the new bytes become the buffer,
            # uncopied, and slicing an argument out of bytes makes one copy, not two.
            self._buf = bytes(data)
        elif isinstance(buf, bytearray):
            del buf[: self._pos]  # what was parsed is dropped before the buffer grows
            buf += data
        else:
            grown = bytearray(buf[self._pos :])
            grown += data
            self._buf = grown
        self._pos = 0

    def buffered(self) -> int:
        """Bytes held: read and not yet returned as a command."""
        return len(self._buf) - self._pos + self._args_size

    def next(self, *, auth_required: bool = False) -> list[bytes] | None:
        """The next whole command (never empty), or None until more bytes are fed."""
        if self._dead:
            raise RespError(None, "the parser already failed")
        try:
            while self._pos < len(self._buf):
                if self._multibulk == 0 and self._buf[self._pos] == 42 and not auth_required:
                    argv = self._whole_multibulk()
                    if argv is not None:
                        return argv
                    # not all here, or something the careful path below must judge
                if self._multibulk == 0 and self._buf[self._pos] != 42:  # not '*': inline
                    argv = self._inline()
                else:
                    argv = self._multibulk_request(auth_required)
                if argv is None:
                    self._check_size()
                    return None
                if argv:
                    return argv
                # an empty request (*0, *-1, a blank line): Redis skips it without a reply
            return None
        except RespError:
            self._dead = True
            raise

    def _whole_multibulk(self) -> list[bytes] | None:
        """The fast path: a multibulk request that is all in the buffer and plainly valid, else None.

        It decides nothing on its own: anything unusual (a number that is not plain digits, a
        NUL, a limit, a request cut short) returns None without moving, and the careful path
        (:meth:`_multibulk_request`) takes it from the start with Redis's rules and errors.
        """
        buf = self._buf
        limits = self.limits
        pos = self._pos
        cr = buf.find(b"\r", pos)
        if cr < 0:
            return None
        digits = buf[pos + 1 : cr]
        if not digits.isdigit() or len(digits) > 18 or (digits[0] == 48 and len(digits) > 1):
            return None
        count = int(digits)
        if count == 0 or count > limits.multibulk_max:
            return None
        pos = cr + 2
        size = len(buf)
        argv: list[bytes] = []
        total = 0
        for _ in range(count):
            if pos >= size or buf[pos] != 36:  # '$'
                return None
            cr = buf.find(b"\r", pos)
            if cr < 0:
                return None
            digits = buf[pos + 1 : cr]
            if not digits.isdigit() or len(digits) > 18 or (digits[0] == 48 and len(digits) > 1):
                return None
            length = int(digits)
            start = cr + 2
            end = start + length
            if length > limits.bulk_max or end + 2 > size:
                return None
            argv.append(bytes(buf[start:end]))
            total += length
            pos = end + 2
        if total > limits.request_max:
            return None
        self._pos = pos
        return argv

    def _check_size(self) -> None:
        if self.buffered() > self.limits.request_max:
            raise RespError(None, f"a request over {self.limits.request_max} bytes")

    def _find_line_end(self, char: int) -> int:
        """Index of ``char`` (``\\r`` or ``\\n``) from the parse position, -1 if absent before a NUL (strchr)."""
        buf = self._buf
        at = buf.find(char, self._pos)
        if at < 0:
            return -1
        nul = buf.find(0, self._pos, at)
        return -1 if nul >= 0 else at

    def _inline(self) -> list[bytes] | None:
        buf = self._buf
        newline = self._find_line_end(10)
        if newline < 0:
            if len(buf) - self._pos > self.limits.inline_max:
                raise _protocol_error("too big inline request")
            return None
        end = newline - 1 if newline > self._pos and buf[newline - 1] == 13 else newline
        if end - self._pos > self.limits.inline_max:
            # Redis checks only while the line is still unended; we check the whole line too, so that the
            # bound does not depend on how the bytes were cut into reads (see REPORT.md).
            raise _protocol_error("too big inline request")
        words = split_inline(bytes(buf[self._pos : end]))
        if words is None:
            raise _protocol_error("unbalanced quotes in request")
        self._pos = newline + 1
        return words

    def _header(self, what: str) -> int | None:
        """The number after the one-byte type of a header line (Redis finds its ``\\r`` and skips 2 bytes)."""
        buf = self._buf
        cr = self._find_line_end(13)
        if cr < 0:
            if len(buf) - self._pos > self.limits.inline_max:
                raise _protocol_error(f"too big {what} count string")
            return None
        if cr + 2 > len(buf):
            return None  # the byte after \r (its \n, unchecked) is not here yet
        return cr

    def _multibulk_request(self, auth_required: bool) -> list[bytes] | None:
        buf = self._buf
        limits = self.limits
        if self._multibulk == 0:
            cr = self._header("mbulk")
            if cr is None:
                return None
            count = parse_int(buf[self._pos + 1 : cr])
            if count is None or count > limits.multibulk_max:
                raise _protocol_error("invalid multibulk length")
            if count > limits.unauth_multibulk_max and auth_required:
                raise _protocol_error("unauthenticated multibulk length")
            self._pos = cr + 2
            if count <= 0:
                return []
            self._multibulk = count
        while self._multibulk:
            if self._bulklen < 0:
                cr = self._header("bulk")
                if cr is None:
                    return None
                kind = buf[self._pos]
                if kind != 36:  # '$'
                    shown = b" " if kind in (10, 13) else bytes([kind])  # Redis maps \r and \n of an error to blanks
                    raise RespError(
                        b"ERR Protocol error: expected '$', got '" + shown + b"'", "protocol error: expected '$'"
                    )
                length = parse_int(buf[self._pos + 1 : cr])
                if length is None or length < 0 or length > limits.bulk_max:
                    raise _protocol_error("invalid bulk length")
                if length > limits.unauth_bulk_max and auth_required:
                    raise _protocol_error("unauthenticated bulk length")
                if self._args_size + length > limits.request_max:
                    raise RespError(None, f"a request over {limits.request_max} bytes")
                self._pos = cr + 2
                self._bulklen = length
            end = self._pos + self._bulklen
            if len(buf) < end + 2:
                return None  # the payload and its 2 (unchecked) trailing bytes are not all here
            arg = bytes(buf[self._pos : end])
            self._args.append(arg)
            self._args_size += len(arg)
            self._pos = end + 2
            self._bulklen = -1
            self._multibulk -= 1
            if self._args_size > limits.request_max:
                raise RespError(None, f"a request over {limits.request_max} bytes")
        argv = self._args
        self._args = []
        self._args_size = 0
        return argv
