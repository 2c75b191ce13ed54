"""Whether a connection to a node is a Redis client or HTTP (a websocket, a page), from its first bytes. No I/O.

A node serves websockets and Redis clients on one port: :func:`sniff` reads the first bytes of
a connection (after TLS, when the grid has ``tls:``) and says which, once; from then on every
byte goes to one protocol and nothing looks at them again.

A Redis client is told by what it sends first: ``*`` (a multibulk request: every Redis library
and redis-cli), or an *inline* command that the node serves (``PING``, ``SUBSCRIBE k``, typed
in nc or telnet), whatever its case, but HELLO. Everything else is HTTP's, exactly as before
the node spoke RESP: websockets reads it, and a request it cannot parse gets the node's 400 and
its line of help (``GARBAGE``, ``GET key``: GET is an HTTP method before it is a Redis command).
HELLO is left to HTTP as a first word because ``HELLO THERE`` is what a person greets a port
with, and has always had the node's 400; a Redis client sends its HELLO as an array.
"""

from __future__ import annotations

from typing import Final, Literal

from .commands import COMMANDS

__all__ = ["INLINE_WORDS", "sniff"]

#: The words an inline Redis command may start a connection with: the commands served but HELLO, lower case.
INLINE_WORDS: Final = frozenset(COMMANDS) - {b"hello"}
_PREFIXES: Final = frozenset(word[:k] for word in INLINE_WORDS for k in range(1, len(word) + 1))
_LONGEST: Final = max(len(word) for word in INLINE_WORDS)
_BLANKS: Final = frozenset(b" \t\r\n")


def sniff(head: bytes) -> Literal["resp", "http"] | None:
    """``"resp"`` or ``"http"`` for the first bytes of a connection, or None while they could still be either."""
    if not head:
        return None
    if head[0] == 42:  # '*'
        return "resp"
    for end, byte in enumerate(head[: _LONGEST + 1]):
        if byte in _BLANKS:
            return "resp" if head[:end].lower() in INLINE_WORDS else "http"
    if len(head) <= _LONGEST and head.lower() in _PREFIXES:
        return None  # "SUBSCR": more to come
    return "http"
