"""mesh.failures: why a connection failed, in a few words."""

from __future__ import annotations

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Response

from mesh.errors import PeerUnavailable
from mesh.failures import describe_error


def test_failures_are_described_in_a_few_words():
    """describe_error() says why a connection failed, as a log line or an error message shows it."""
    response = Response(401, "Unauthorized", Headers(), b"")
    cases = [
        (PeerUnavailable("a", "ws://x", "it does not speak arduino-mesh.1"), "it does not speak arduino-mesh.1"),
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (TimeoutError(), "timed out"),
        (InvalidStatus(response), "refused the handshake with HTTP 401: wrong or missing token"),
        (InvalidStatus(Response(503, "Unavailable", Headers(), b"")), "refused the handshake with HTTP 503"),
        (OSError(113, "No route to host"), "no route to host"),
        (ConnectionClosed(None, None), "connection closed"),
        (RuntimeError("odd"), "odd"),
        (RuntimeError(), "RuntimeError"),
    ]
    assert [describe_error(exc) for exc, _ in cases] == [words for _, words in cases]
