"""A connection's first bytes (mesh.resp.sniff): a Redis client, HTTP, or not yet known."""

from __future__ import annotations

import pytest

from mesh.resp.sniff import INLINE_WORDS, sniff

SNIFF: list[tuple[bytes, str | None]] = [
    (b"", None),
    (b"*", "resp"),
    (b"*1\r\n$4\r\nPING\r\n", "resp"),  # every library, redis-cli
    (b"P", None),  # PING? PUBLISH? (POST is HTTP's, but "P" may still be a command)
    (b"PI", None),
    (b"PING", None),  # PING, or PINGX?
    (b"PING\r\n", "resp"),
    (b"ping\n", "resp"),
    (b"SUBSCRIBE buzzer/sound\r\n", "resp"),
    (b"psubscribe *\r\n", "resp"),
    (b"HELLO 3\r\n", "http"),  # a person's greeting, HTTP's 400 as ever; clients send HELLO as an array
    (b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n", "resp"),
    (b"AUTH token\r\n", "resp"),
    (b"PINGX\r\n", "http"),  # not a command served: HTTP's 400 says what this port speaks
    (b"GET / HTTP/1.1\r\n", "http"),
    (b"G", "http"),  # no command served starts with G: GET is HTTP's
    (b"GET key\r\n", "http"),
    (b"POST / HTTP/1.1\r\n", "http"),
    (b"PO", "http"),
    (b"GARBAGE\r\n\r\n", "http"),
    (b"\r\n", "http"),
    (b"\x16\x03\x01\x02\x00", "http"),  # a TLS ClientHello on a plain port: websockets' 400, as before
    (b"\x00\xff\x16\x03\x01 garbage\r\n\r\n", "http"),
    (b"PUNSUBSCRIBEX", "http"),  # longer than any command
]


@pytest.mark.parametrize(("head", "kind"), SNIFF)
def test_sniff(head: bytes, kind: str | None) -> None:
    assert sniff(head) == kind


def test_a_decision_never_changes_as_more_bytes_come() -> None:
    """Each prefix of each case is undecided, or says what the whole says."""
    for head, kind in SNIFF:
        for cut in range(len(head)):
            early = sniff(head[:cut])
            assert early is None or early == kind, (head[:cut], early, kind)


def test_every_command_served_may_start_a_connection_inline() -> None:
    for word in INLINE_WORDS:
        assert sniff(word.upper() + b"\r\n") == "resp"
