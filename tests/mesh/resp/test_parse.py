"""Redis requests (mesh.resp.parse): tables of requests with Redis's rules and errors, inline quoting, and hiredis.

The e2e tests put the same inputs to a real redis-server: its answers are the reference. The
hiredis tests are the evidence for parsing requests ourselves (docs/redis.md): what its Reader
takes that a server must refuse, and what it cannot read at all.
"""

from __future__ import annotations

import socket
from pathlib import Path

import hiredis
import pytest

from mesh.errors import RespError
from mesh.resp.parse import Limits, RequestParser, parse_int, split_inline
from tests.redis_servers import RedisServer, needs_redis, raw_connection, recv_until, recv_until_closed

# -- numbers --------------------------------------------------------------------------------------------

INTS: list[tuple[bytes, int | None]] = [
    (b"0", 0),
    (b"1", 1),
    (b"-1", -1),
    (b"42", 42),
    (b"9223372036854775807", 2**63 - 1),
    (b"-9223372036854775808", -(2**63)),
    (b"9223372036854775808", None),
    (b"-9223372036854775809", None),
    (b"-0", None),
    (b"01", None),
    (b"+1", None),
    (b" 1", None),
    (b"1 ", None),
    (b"", None),
    (b"-", None),
    (b"1_0", None),  # Python's int() takes it; Redis does not
    (b"\xd9\xa1", None),  # an Arabic-Indic digit: Python's isdigit on str takes it, on bytes not
    (b"1\x00", None),
    (b"000000000000000000001", None),
]


@pytest.mark.parametrize(("text", "value"), INTS)
def test_parse_int(text: bytes, value: int | None) -> None:
    assert parse_int(text) == value


# -- inline words ---------------------------------------------------------------------------------------

INLINE: list[tuple[bytes, list[bytes] | None]] = [
    (b"PING", [b"PING"]),
    (b"  ping   a  b ", [b"ping", b"a", b"b"]),
    (b"a\tb", [b"a", b"b"]),
    (b"a\x0bb", [b"a\x0bb"]),  # VT does not end a word...
    (b"\x0b\x0ca", [b"a"]),  # ...but is skipped between words
    (b'"a b"', [b"a b"]),
    (b"'a b'", [b"a b"]),
    (b'""', [b""]),
    (b"'' x", [b"", b"x"]),
    (b'"\\x41\\x4a"', [b"AJ"]),
    (b'"\\x4g"', [b"x4g"]),  # not two hex digits: \x is x
    (b'"a\\nb"', [b"a\nb"]),
    (b'"\\t\\r\\b\\a\\z"', [b"\t\r\b\x07z"]),
    (b"'it\\'s'", [b"it's"]),
    (b"'a\\nb'", [b"a\\nb"]),  # no escapes but \' in single quotes
    (b'a"b c"', [b"ab c"]),  # a quote may open mid-word
    (b'"a"\x0bb', [b"a", b"b"]),  # a closing quote may be followed by any blank
    (b"x\\y", [b"x\\y"]),  # backslashes are plain outside quotes
    (b'"a"b', None),  # a closing quote glued to a byte
    (b"'a'b", None),
    (b'"a', None),
    (b"'a", None),
    (b'"\\"', None),
    (b'"a\\', None),
    (b"a\x00b c", [b"a"]),  # the line ends at its first NUL
    (b"", []),
    (b"   ", []),
]


@pytest.mark.parametrize(("line", "words"), INLINE)
def test_split_inline(line: bytes, words: list[bytes] | None) -> None:
    assert split_inline(line) == words


@pytest.mark.e2e
def test_split_inline_against_redis(redis_server: RedisServer) -> None:
    """Each line after ``PUBSUB NUMSUB``: Redis replies with every word it read (or the quotes error)."""
    cases = [(line, words) for line, words in INLINE if b"\x00" not in line]
    for line, words in cases:
        with raw_connection(redis_server.port) as sock:
            sock.sendall(b"PUBSUB NUMSUB " + line + b"\r\n")
            reply = recv_until_closed(sock) if words is None else recv_until(sock, b"\r\n")
            if words is None:
                assert reply == b"-ERR Protocol error: unbalanced quotes in request\r\n"
                continue
            reader = hiredis.Reader()
            reader.feed(recv_until_complete(sock, reply))
            assert reader.gets() == [x for word in words for x in (word, 0)], line


def recv_until_complete(sock: socket.socket, head: bytes) -> bytes:
    """Read until hiredis sees one whole reply."""
    data = head
    while True:
        reader = hiredis.Reader()
        reader.feed(data)
        if reader.gets() is not False:
            return data
        data += sock.recv(65536)


# -- requests -------------------------------------------------------------------------------------------


def perr(reply: str) -> tuple[str, bytes]:
    """An expected protocol error: Redis's reply, without its leading '-'."""
    return ("error", b"ERR Protocol error: " + reply.encode())


Expected = list[list[bytes] | tuple[str, bytes | None]]

# (name, input, what comes out: commands, then maybe an error). The same inputs go to redis-server below.
REQUESTS: list[tuple[str, bytes, Expected]] = [
    ("multibulk", b"*1\r\n$4\r\nPING\r\n", [[b"PING"]]),
    ("pipelined", b"*2\r\n$4\r\nECHO\r\n$1\r\na\r\n*1\r\n$4\r\nPING\r\n", [[b"ECHO", b"a"], [b"PING"]]),
    ("binary arg", b"*2\r\n$4\r\nECHO\r\n$4\r\n\r\n\x00\xff\r\n", [[b"ECHO", b"\r\n\x00\xff"]]),
    ("empty arg", b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", [[b"ECHO", b""]]),
    ("inline", b"PING\r\n", [[b"PING"]]),
    ("inline LF only", b"ECHO a\n", [[b"ECHO", b"a"]]),
    ("inline then multibulk", b"ECHO a\r\n*1\r\n$4\r\nPING\r\n", [[b"ECHO", b"a"], [b"PING"]]),
    ("blank lines skipped", b"\r\n\n  \r\nPING\r\n", [[b"PING"]]),
    ("*0 and *-1 skipped", b"*0\r\n*-1\r\n*-7\r\n*1\r\n$4\r\nPING\r\n", [[b"PING"]]),
    ("trailer after bulk unchecked", b"*1\r\n$4\r\nPINGxx", [[b"PING"]]),
    ("byte after header \\r unchecked", b"*1\rX$4\r\nPING\r\n", [[b"PING"]]),
    ("a dollar line is inline", b"$4\r\n", [[b"$4"]]),
    ("bad bulk length", b"*3\r\n$abc\r\n", [perr("invalid bulk length")]),
    ("negative bulk length", b"*1\r\n$-1\r\n", [perr("invalid bulk length")]),
    ("bulk length 01", b"*1\r\n$01\r\n", [perr("invalid bulk length")]),
    ("nested array", b"*1\r\n*1\r\n$4\r\nPING\r\n", [("error", b"ERR Protocol error: expected '$', got '*'")]),
    ("integer element", b"*1\r\n:1\r\n", [("error", b"ERR Protocol error: expected '$', got ':'")]),
    ("blank element", b"*1\r\n\r\n", [("error", b"ERR Protocol error: expected '$', got ' '")]),
    ("count not a number", b"*x\r\n", [perr("invalid multibulk length")]),
    ("count 01", b"*01\r\n", [perr("invalid multibulk length")]),
    ("count +1", b"*+1\r\n", [perr("invalid multibulk length")]),
    ("count empty", b"*\r\n", [perr("invalid multibulk length")]),
    ("commands before an error run", b"PING\r\n*x\r\nPING\r\n", [[b"PING"], perr("invalid multibulk length")]),
    ("unbalanced quotes", b'"a\r\n', [perr("unbalanced quotes in request")]),
    ("quote glued", b'ECHO "a"b\r\n', [perr("unbalanced quotes in request")]),
    ("too big inline", b"a" * 65537, [perr("too big inline request")]),
    ("too big mbulk count", b"*" + b"1" * 65537, [perr("too big mbulk count string")]),
    ("too big bulk count", b"*1\r\n$" + b"1" * 65537, [perr("too big bulk count string")]),
    ("NUL stalls an inline line", b"PI\x00NG\r\n", []),
    ("NUL stall ends as too big", b"PI\x00NG\r\n" + b"x" * 65536, [perr("too big inline request")]),
]


def run_parser(data: bytes, *, chunk: int | None = None, limits: Limits | None = None) -> Expected:
    parser = RequestParser(limits)
    out: Expected = []
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    try:
        for piece in pieces:
            parser.feed(piece)
            while (argv := parser.next()) is not None:
                out.append(argv)
    except RespError as exc:
        out.append(("error", exc.reply))
    return out


@pytest.mark.parametrize(("name", "data", "expected"), REQUESTS, ids=[case[0] for case in REQUESTS])
def test_requests(name: str, data: bytes, expected: Expected) -> None:
    assert run_parser(data) == expected


@pytest.mark.parametrize(("name", "data", "expected"), REQUESTS, ids=[case[0] for case in REQUESTS])
def test_requests_byte_by_byte(name: str, data: bytes, expected: Expected) -> None:
    """However the bytes are cut into reads, the same commands and the same error."""
    if len(data) > 1000:
        assert run_parser(data, chunk=4096) == expected
    else:
        assert run_parser(data, chunk=1) == expected
        assert run_parser(data, chunk=3) == expected


@pytest.mark.e2e
@pytest.mark.parametrize(("name", "data", "expected"), REQUESTS, ids=[case[0] for case in REQUESTS])
def test_requests_against_redis(redis_server: RedisServer, name: str, data: bytes, expected: Expected) -> None:
    """redis-server reads the same: as many replies as commands, then the same error and the connection closed."""
    if name == "NUL stalls an inline line":
        pytest.skip("Redis answers nothing, ever: the next case shows it (one reply: the error, none for 'PI')")
    errors = [item for item in expected if isinstance(item, tuple)]
    commands = [item for item in expected if isinstance(item, list)]
    with raw_connection(redis_server.port) as sock:
        sock.sendall(data)
        if errors:
            received = recv_until_closed(sock)
            (_, reply), *_ = errors
            assert received.endswith(b"-" + (reply or b"") + b"\r\n")
        else:
            # end with a command whose reply names it: everything before it was answered by then
            sock.sendall(b"\r\nECHO the-end\r\n")
            received = recv_until(sock, b"the-end\r\n")
        reader = hiredis.Reader()
        reader.feed(received)
        replies = []
        while (reply := reader.gets()) is not False:
            replies.append(reply)
    assert len(replies) == len(commands) + 1  # the commands', then the error or the-end


def test_limits_are_ours() -> None:
    """Where our bounds are below Redis's: the same error Redis gives past its own bound."""
    limits = Limits(bulk_max=10, multibulk_max=3, request_max=25)
    assert run_parser(b"*1\r\n$11\r\n", limits=limits) == [perr("invalid bulk length")]
    assert run_parser(b"*4\r\n", limits=limits) == [perr("invalid multibulk length")]
    assert run_parser(b"*3\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n$10\r\n", limits=limits) == [
        ("error", None)  # over request_max (announced): closed without a reply, as Redis past client-query-buffer-limit
    ]
    assert run_parser(b"*2\r\n$10\r\n0123456789\r\n" + b"x" * 20, limits=limits) == [("error", None)]  # buffered
    assert run_parser(b"a" * 20 + b"\r\n", limits=Limits(inline_max=10)) == [perr("too big inline request")]


def test_unauthenticated_limits() -> None:
    """Before AUTH (a password is set), Redis allows 10 arguments and 16 KiB per bulk."""
    parser = RequestParser()
    parser.feed(b"*11\r\n")
    with pytest.raises(RespError) as caught:
        parser.next(auth_required=True)
    assert caught.value.reply == b"ERR Protocol error: unauthenticated multibulk length"
    parser = RequestParser()
    parser.feed(b"*1\r\n$16385\r\n")
    with pytest.raises(RespError) as caught:
        parser.next(auth_required=True)
    assert caught.value.reply == b"ERR Protocol error: unauthenticated bulk length"
    parser = RequestParser()
    parser.feed(b"*2\r\n$4\r\nAUTH\r\n$1\r\np\r\n*11\r\n")
    assert parser.next(auth_required=True) == [b"AUTH", b"p"]
    assert parser.next(auth_required=False) is None  # authenticated in between: 11 is fine


@pytest.mark.e2e
def test_unauthenticated_limits_against_redis(tmp_path: Path) -> None:
    needs_redis()
    with RedisServer(tmp_path, "--requirepass", "pw") as server:
        for data, error_text in [
            (b"*11\r\n", b"-ERR Protocol error: unauthenticated multibulk length\r\n"),
            (b"*1\r\n$16385\r\n", b"-ERR Protocol error: unauthenticated bulk length\r\n"),
        ]:
            with raw_connection(server.port) as sock:
                sock.sendall(data)
                assert recv_until_closed(sock) == error_text


def test_dead_parser_stays_dead() -> None:
    parser = RequestParser()
    parser.feed(b"*x\r\nPING\r\n")
    with pytest.raises(RespError):
        parser.next()
    with pytest.raises(RespError):
        parser.next()


def test_buffer_is_bounded() -> None:
    """A bulk being read holds at most its length; nothing waits for more than the limits allow."""
    parser = RequestParser()
    parser.feed(b"*2\r\n$4\r\nECHO\r\n$1000000\r\n")
    for _ in range(10):
        parser.feed(b"x" * 100_000)
        assert parser.next() is None
    parser.feed(b"\r\n")
    assert parser.next() == [b"ECHO", b"x" * 1_000_000]
    assert parser.buffered() == 0


# -- hiredis as a request parser ------------------------------------------------------------------------


def test_hiredis_reads_multibulk_requests_but_not_inline_ones() -> None:
    """hiredis.Reader parses replies: a request's array of bulks is one, an inline command is not RESP."""
    reader = hiredis.Reader()
    reader.feed(b"*2\r\n$4\r\nECHO\r\n$1\r\na\r\n")
    assert reader.gets() == [b"ECHO", b"a"]
    reader = hiredis.Reader()
    reader.feed(b"PING\r\n")
    with pytest.raises(hiredis.ProtocolError):
        reader.gets()


def test_hiredis_takes_what_a_server_must_refuse() -> None:
    """What a request parser must check and hiredis does not (so it could only be a fast path behind ours)."""
    cases: list[tuple[bytes, object]] = [
        (b"*1\r\n*1\r\n$4\r\nPING\r\n", [[b"PING"]]),  # nested: Redis says expected '$', got '*'
        (b"*2\r\n:1\r\n+OK\r\n", [1, b"OK"]),  # not bulks
        (b"*1\r\n$-1\r\n", [None]),  # a null bulk: Redis says invalid bulk length
    ]
    for data, parsed in cases:
        reader = hiredis.Reader()
        reader.feed(data)
        assert reader.gets() == parsed
    reader = hiredis.Reader()
    reader.feed(b"*1\r\n$999999999999\r\n")  # a terabyte announced: hiredis waits for it
    assert reader.gets() is False
    reader = hiredis.Reader()
    reader.feed(b"*1\r\n$abc\r\n")
    with pytest.raises(hiredis.ProtocolError, match="Bad bulk string length"):  # not Redis's words
        reader.gets()


#: Valid requests on which hiredis and Redis part: Redis skips ``*-7`` and does not check the byte after ``\r``.
HIREDIS_DIFFERS = {b"*0\r\n*-1\r\n*-7\r\n*1\r\n$4\r\nPING\r\n", b"*1\rX$4\r\nPING\r\n"}


@pytest.mark.parametrize(
    "data", [data for _, data, out in REQUESTS if data.startswith(b"*") and all(isinstance(x, list) for x in out)]
)
def test_hiredis_on_valid_multibulk(data: bytes) -> None:
    """Ordinary requests: hiredis reads what we read. Redis's quirks: hiredis refuses them (see HIREDIS_DIFFERS)."""
    ours = run_parser(data)
    reader = hiredis.Reader()
    reader.feed(data)
    theirs: list[object] = []
    try:
        while (reply := reader.gets()) is not False:
            if reply:  # hiredis returns [] for *0 and None for *-1: requests Redis skips
                theirs.append(reply)
    except hiredis.ProtocolError as exc:
        theirs.append(str(exc))
    if data in HIREDIS_DIFFERS:
        assert theirs != ours
        assert theirs[-1] in ("Multi-bulk length out of range", "Bad multi-bulk length")
    else:
        assert theirs == ours
