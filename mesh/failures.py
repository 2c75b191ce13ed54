"""Why a connection failed, or how it ended, in a few lower-case words for one log line.

Every failure a link or a one-shot request meets reads the same way here: ``connection
refused``, ``timed out``, ``refused the handshake with HTTP 401: wrong or missing token``,
a TLS failure in plain words (:func:`mesh.tls.describe_tls_error`), or a guess where the
failure itself leaves one (a plain client that gets no HTTP answer: does the peer speak TLS?).
:func:`is_fatal` says whether retrying can help.
"""

from __future__ import annotations

import asyncio
import ssl

from websockets.asyncio.connection import Connection
from websockets.client import process_exception
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

from .errors import PeerUnavailable
from .handshake import GreetingFailed
from .throttle import escape
from .tls import describe_tls_error
from .wall import closed_by_keepalive

__all__ = [
    "MAYBE_PLAIN",
    "MAYBE_TLS",
    "SPEAKS_PLAIN",
    "SPEAKS_TLS",
    "describe_close",
    "describe_error",
    "is_fatal",
]

#: What a plain client concludes when a peer closes without any HTTP answer on a grid without tls.
MAYBE_TLS = "it closed the connection without an HTTP answer: does the peer speak TLS? (the grid has no tls)"
#: The same, once a TLS handshake with the peer proved it.
SPEAKS_TLS = "the peer speaks TLS: the grid has no tls"
#: What a TLS client concludes when the peer cuts the connection during the TLS handshake.
MAYBE_PLAIN = "the connection was cut during the TLS handshake: does the peer speak plain ws://? (the grid has tls)"
#: The same, once a plain HTTP request to the peer got an HTTP answer.
SPEAKS_PLAIN = "the peer speaks plain ws://, not TLS"


def describe_error(exc: BaseException, ssl_context: ssl.SSLContext | None = None, *, plain: bool = False) -> str:
    """Why a connection failed, in a few lower-case words.

    ``ssl_context``: the TLS context the connection used (its CA file is named when the
    peer's certificate is not signed by it); ``plain``: the connection was ``ws://``.
    """
    tls = describe_tls_error(exc, ssl_context)
    if tls is not None:
        return tls
    if plain and isinstance(exc, InvalidMessage) and isinstance(exc.__cause__, EOFError):
        return MAYBE_TLS
    if ssl_context is not None and isinstance(exc, (ConnectionResetError, ssl.SSLEOFError)):
        return MAYBE_PLAIN
    if isinstance(exc, PeerUnavailable):
        return exc.reason
    if isinstance(exc, GreetingFailed):
        return exc.reason
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timed out"
    if isinstance(exc, InvalidStatus):
        if exc.response.status_code == 401:
            return "refused the handshake with HTTP 401: wrong or missing token"
        return f"refused the handshake with HTTP {exc.response.status_code}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    if isinstance(exc, ConnectionClosed):
        return "connection closed"
    return str(exc) or type(exc).__name__


def describe_close(ws: Connection) -> str:
    """How a connection ended, for a log line."""
    if ws.close_code is None:
        return "connection lost"
    if closed_by_keepalive(ws):
        # The keepalive gave up on a peer that went silent and did not answer a ping: stuck, or frozen.
        silent = (ws.ping_interval or 0) + (ws.ping_timeout or 0)
        return f"it sent nothing for {silent:g} s, not even a pong: busy or frozen?"
    return f"closed with {ws.close_code}" + (f": {escape(ws.close_reason)}" if ws.close_reason else "")


def is_fatal(exc: Exception) -> bool:
    """True if retrying cannot help: the ``websockets`` client's verdict (a 4xx, a bad handshake), or our token refused.

    A TLS failure is not fatal to a link (the peer's certificate may be replaced while it
    waits); a one-shot request never retries anything.
    """
    if isinstance(exc, GreetingFailed):
        return exc.fatal
    return process_exception(exc) is not None
