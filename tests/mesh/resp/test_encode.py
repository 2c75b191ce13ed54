"""Redis replies (mesh.resp.encode): a table of values and their bytes in RESP2 and RESP3, read back by hiredis."""

from __future__ import annotations

import hiredis
import pytest

from mesh.resp.encode import Error, Push, Reply, Simple, encode, error, message_body, pmessage_body, push_header

# -- replies --------------------------------------------------------------------------------------------

REPLIES: list[tuple[Reply, bytes, bytes]] = [
    (Simple(b"OK"), b"+OK\r\n", b"+OK\r\n"),
    (error("x"), b"-ERR x\r\n", b"-ERR x\r\n"),
    (error("-NOAUTH Authentication required."), b"-NOAUTH Authentication required.\r\n", b"-NOAUTH Authentication required.\r\n"),
    (error("a\r\nb"), b"-ERR a  b\r\n", b"-ERR a  b\r\n"),  # one line, always
    (Error(b"WRONGTYPE x"), b"-WRONGTYPE x\r\n", b"-WRONGTYPE x\r\n"),
    (42, b":42\r\n", b":42\r\n"),
    (-1, b":-1\r\n", b":-1\r\n"),
    (b"abc", b"$3\r\nabc\r\n", b"$3\r\nabc\r\n"),
    (b"", b"$0\r\n\r\n", b"$0\r\n\r\n"),
    ("é", b"$2\r\n\xc3\xa9\r\n", b"$2\r\n\xc3\xa9\r\n"),
    (None, b"$-1\r\n", b"_\r\n"),
    ([], b"*0\r\n", b"*0\r\n"),
    ([b"a", 1, None], b"*3\r\n$1\r\na\r\n:1\r\n$-1\r\n", b"*3\r\n$1\r\na\r\n:1\r\n_\r\n"),
    ([[b"a"], []], b"*2\r\n*1\r\n$1\r\na\r\n*0\r\n", b"*2\r\n*1\r\n$1\r\na\r\n*0\r\n"),
    ({b"k": b"v", b"n": 1}, b"*4\r\n$1\r\nk\r\n$1\r\nv\r\n$1\r\nn\r\n:1\r\n", b"%2\r\n$1\r\nk\r\n$1\r\nv\r\n$1\r\nn\r\n:1\r\n"),
    ({}, b"*0\r\n", b"%0\r\n"),
    (Push([b"message", b"c", b"d"]), b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nd\r\n", b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nd\r\n"),
    (Push([b"unsubscribe", None, 0]), b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n", b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"),
]  # fmt: skip


@pytest.mark.parametrize(("reply", "resp2", "resp3"), REPLIES)
def test_encode(reply: Reply, resp2: bytes, resp3: bytes) -> None:
    assert encode(reply, 2) == resp2
    assert encode(reply, 3) == resp3


def test_encode_refuses_what_is_not_resp() -> None:
    with pytest.raises(TypeError):
        encode(True)
    with pytest.raises(TypeError):
        encode(1.5)  # type: ignore[arg-type]


def test_message_frames_are_encoded_pushes() -> None:
    for proto in (2, 3):
        assert push_header(3, proto) + message_body(b"ch", b"data") == encode(Push([b"message", b"ch", b"data"]), proto)
        assert push_header(4, proto) + pmessage_body(b"c*", b"ch", b"") == encode(
            Push([b"pmessage", b"c*", b"ch", b""]), proto
        )


def test_replies_read_back_by_hiredis() -> None:
    """What we encode, hiredis (redis-py's parser) reads back, in both protocols."""
    for reply, _, _ in REPLIES:
        for proto in (2, 3):
            reader = hiredis.Reader()
            reader.feed(encode(reply, proto))
            assert reader.gets() is not False
