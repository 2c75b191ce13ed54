"""Redis replies, pure: plain values encoded for a client speaking RESP2 or RESP3. No I/O.

A reply is built from plain values and three markers, then encoded for the client's protocol
by :func:`encode`:

==================  ==============================  =================================
value               RESP2                           RESP3
==================  ==============================  =================================
``Simple(b"OK")``   ``+OK``                         ``+OK``
``Error(b"ERR x")`` ``-ERR x``                      ``-ERR x``
``int``             ``:1``                          ``:1``
``bytes``           ``$3 abc``                      ``$3 abc``
``None``            ``$-1``                         ``_``
``list``            ``*n ...``                      ``*n ...``
``dict``            ``*2n k v ...``                 ``%n k v ...``
``Push([...])``     ``*n ...``                      ``>n ...``
==================  ==============================  =================================

The hot path of pub/sub (a ``message`` to every subscriber) does not go through
:func:`encode`: :func:`message_body` and :func:`push_header` build a frame once per
publication, and every subscriber of the same protocol gets the same bytes.
"""

from __future__ import annotations

from typing import Final, TypeAlias

__all__ = ["Error", "Push", "Reply", "Simple", "encode", "error", "message_body", "pmessage_body", "push_header"]


class Simple(bytes):
    """A simple string reply: ``+OK``."""

    __slots__ = ()


class Error(bytes):
    """An error reply, code included: ``Error(b"ERR unknown command ...")`` is ``-ERR unknown command ...``."""

    __slots__ = ()


class Push(list["Reply"]):
    """An out-of-band message (pub/sub): ``>n`` in RESP3, a plain array ``*n`` in RESP2."""

    __slots__ = ()


#: What a command replies. Simple and Error are bytes with a meaning; Push is a list; None is the null.
Reply: TypeAlias = "Simple | Error | int | bytes | str | list[Reply] | tuple[Reply, ...] | dict[bytes, Reply] | None"


def error(text: bytes | str) -> Error:
    """An error reply from a message, as Redis's addReplyError: ``ERR `` is prefixed unless it starts with ``-``.

    ``error("syntax error")`` is ``-ERR syntax error``; ``error("-NOAUTH Authentication required.")`` is
    ``-NOAUTH Authentication required.`` CR and LF become blanks: an error is one line.
    """
    raw = text.encode() if isinstance(text, str) else bytes(text)
    raw = raw.replace(b"\r", b" ").replace(b"\n", b" ")
    if raw.startswith(b"-"):
        return Error(raw[1:])
    return Error(b"ERR " + raw)


_CRLF: Final = b"\r\n"
_NULL2: Final = b"$-1\r\n"
_NULL3: Final = b"_\r\n"


def _encode_into(out: list[bytes], reply: Reply, proto: int) -> None:
    # The order of the checks matters: Simple and Error are bytes, bool is int.
    if isinstance(reply, Simple):
        out.append(b"+" + reply.replace(b"\r", b" ").replace(b"\n", b" ") + _CRLF)
    elif isinstance(reply, Error):
        out.append(b"-" + reply.replace(b"\r", b" ").replace(b"\n", b" ") + _CRLF)
    elif isinstance(reply, bytes | bytearray | memoryview):
        data = bytes(reply)
        out.append(b"$%d\r\n" % len(data))
        out.append(data)
        out.append(_CRLF)
    elif isinstance(reply, str):
        _encode_into(out, reply.encode(), proto)
    elif isinstance(reply, bool):
        raise TypeError("a RESP reply cannot be a bool here: say 1 or 0")
    elif isinstance(reply, int):
        out.append(b":%d\r\n" % reply)
    elif reply is None:
        out.append(_NULL3 if proto == 3 else _NULL2)
    elif isinstance(reply, Push):
        out.append(b"%c%d\r\n" % (62 if proto == 3 else 42, len(reply)))  # '>' or '*'
        for item in reply:
            _encode_into(out, item, proto)
    elif isinstance(reply, list | tuple):
        out.append(b"*%d\r\n" % len(reply))
        for item in reply:
            _encode_into(out, item, proto)
    elif isinstance(reply, dict):
        out.append(b"%%%d\r\n" % len(reply) if proto == 3 else b"*%d\r\n" % (2 * len(reply)))
        for key, value in reply.items():
            _encode_into(out, key, proto)
            _encode_into(out, value, proto)
    else:
        raise TypeError(f"not a RESP reply: {reply!r}")


def encode(reply: Reply, proto: int = 2) -> bytes:
    """The bytes of ``reply`` for a client speaking RESP ``proto`` (2 or 3)."""
    out: list[bytes] = []
    _encode_into(out, reply, proto)
    return b"".join(out)


def push_header(count: int, proto: int) -> bytes:
    """The header of a pub/sub frame of ``count`` elements: ``*3\\r\\n`` (RESP2) or ``>3\\r\\n`` (RESP3)."""
    return b"%c%d\r\n" % (62 if proto == 3 else 42, count)


def message_body(channel: bytes, data: bytes) -> bytes:
    """A ``message`` frame without its header: the same bytes for RESP2 and RESP3."""
    return b"$7\r\nmessage\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(channel), channel, len(data), data)


def pmessage_body(pattern: bytes, channel: bytes, data: bytes) -> bytes:
    """A ``pmessage`` frame without its header."""
    return b"$8\r\npmessage\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n" % (
        len(pattern),
        pattern,
        len(channel),
        channel,
        len(data),
        data,
    )
