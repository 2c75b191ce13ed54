"""The mesh protocol's frames: encode and decode as tables of cases, no sockets."""

from __future__ import annotations

import pytest

from mesh.errors import ProtocolError
from mesh.protocol import Ack, Error, Hello, Message, Publish, decode, encode, encode_pub, to_text


@pytest.mark.parametrize(
    ("frame", "text"),
    [
        (Hello(node="clock"), '{"type":"hello","node":"clock"}'),
        (Message(id=17, channel="", data="tick 17"), '{"type":"msg","id":17,"channel":"","data":"tick 17"}'),
        (Ack(id=17, data="acknowledged"), '{"type":"ack","id":17,"data":"acknowledged"}'),
        (Error(id=None, error="bad"), '{"type":"error","id":null,"error":"bad"}'),
        (Message(id=1, channel="pin/1", data="é ♪"), '{"type":"msg","id":1,"channel":"pin/1","data":"é ♪"}'),
    ],
)
def test_frames_round_trip(frame, text):
    """Each frame encodes to compact JSON and decodes back to itself."""
    assert encode(frame) == text
    assert decode(text) == frame


@pytest.mark.parametrize(
    ("key", "data", "lost", "retained", "text"),
    [
        ("pin/1", "1", 0, False, '{"type":"pub","key":"pin/1","data":"1"}'),
        ("pin/1", 'é ♪\n"', 0, False, '{"type":"pub","key":"pin/1","data":"é ♪\\n\\""}'),
        ("pin/1", "1", 3, False, '{"type":"pub","key":"pin/1","data":"1","lost":3}'),
        ("pin/1", "1", 0, True, '{"type":"pub","key":"pin/1","data":"1","retained":true}'),
        ("pin/1", "1", 2, True, '{"type":"pub","key":"pin/1","data":"1","lost":2,"retained":true}'),
    ],
)
def test_a_pub_frame_is_written_the_short_way_as_encode_writes_it(key, data, lost, retained, text):
    """encode_pub (the publisher's once-per-publication encoding) writes exactly what encode(Publish) does."""
    frame = Publish(key=key, data=data, lost=lost, retained=retained)
    assert encode_pub(key, data, lost, retained) == encode(frame) == text
    assert decode(text) == frame


TYPES = "ack, error, hello, msg, pub, report, status, sub, unsub"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tick", "frame is not JSON: Expecting value: line 1 column 1 (char 0)"),
        ("[1, 2]", "expected one frame, not a batch of 2"),
        ("[]", "a batch must hold at least one frame"),
        ("42", "frame must be a JSON object, not the number 42"),
        (
            '{"id": 1}',
            "frame has no 'type' field; expected one of: ack, error, hello, msg, pub, report, status, sub, unsub",
        ),
        ("{}", f"frame has no 'type' field; expected one of: {TYPES}"),
        ('{"type": []}', f"unknown frame type a list; expected one of: {TYPES}"),
        ('{"type": {}}', f"unknown frame type an object; expected one of: {TYPES}"),
        ('{"type": null}', f"unknown frame type null; expected one of: {TYPES}"),
        ('{"type": "' + "x" * 1000 + '"}', f"unknown frame type '{'x' * 37}...'; expected one of: {TYPES}"),
        ("[" * 100_000 + "]" * 100_000, "frame is not JSON the mesh can read: nested too deeply"),
        ('{"a":' * 100_000 + "1" + "}" * 100_000, "frame is not JSON the mesh can read: nested too deeply"),
        (
            '{"type": "sub", "id": 3, "pattern": "a/\\ud800"}',
            "'sub' frame: 'pattern' is not valid Unicode (a lone surrogate)",
        ),
        (
            '{"type": "msg", "id": 1, "channel": "", "data": "\\udfff"}',
            "'msg' frame: 'data' is not valid Unicode (a lone surrogate)",
        ),
        (
            '{"type": "ack", "id": 1, "data": "ok\\udc00"}',
            "'ack' frame: 'data' is not valid Unicode (a lone surrogate)",
        ),
        (
            '{"type": "hello", "node": "evil\\ud800"}',
            "'hello' frame: 'node' is not valid Unicode (a lone surrogate)",
        ),
        (
            '{"type": "hello", "node": "x\\n[ buzzer ] signal 1"}',
            "'hello' frame: 'node' holds a control character (a newline?): 'x\\n[ buzzer ] signal 1'",
        ),
        (
            '{"type": "hello", "node": "n", "session": "s\\u0000"}',
            "'hello' frame: 'session' holds a control character (a newline?): 's\\x00'",
        ),
        (
            '{"type": "msg", "id": 1, "channel": "' + "c" * 257 + '", "data": ""}',
            "'msg' frame: 'channel' is longer than 256 characters (257); use a shorter one",
        ),
        (
            '{"type": "pub", "key": "k\\tk", "data": ""}',
            "'pub' frame: 'key' holds a control character (a newline?): 'k\\tk'",
        ),
        ('{"type": "pub", "key": "k", "data": "", "lost": -1}', "'pub' frame: 'lost' is out of range"),
        ('{"type": "ack", "id": 9223372036854775808, "data": ""}', "'ack' frame: 'id' is out of range"),
        (
            '{"type": "msg", "id": 1, "channel": "", "data": "' + "x" * 100 + '"',
            "frame is not JSON: Expecting ',' delimiter: line 1 column 151 (char 150)",
        ),
        (
            '{"type": "publish"}',
            "unknown frame type 'publish'; expected one of: ack, error, hello, msg, pub, report, status, sub, unsub",
        ),
        ('{"type": "msg", "id": 1, "data": "x"}', "'msg' frame has no 'channel' field"),
        (
            '{"type": "msg", "id": "1", "channel": "", "data": "x"}',
            "'msg' frame: 'id' must be a whole number, not the text '1'",
        ),
        (
            '{"type": "msg", "id": true, "channel": "", "data": "x"}',
            "'msg' frame: 'id' must be a whole number, not a boolean",
        ),
        (
            '{"type": "msg", "id": 1.5, "channel": "", "data": "x"}',
            "'msg' frame: 'id' must be a whole number, not the number 1.5",
        ),
        ('{"type": "msg", "id": 1, "channel": "", "data": 1}', "'msg' frame: 'data' must be text, not the number 1"),
        ('{"type": "ack", "id": 1, "data": null}', "'ack' frame: 'data' must be text, not null"),
        ('{"type": "hello", "node": {}}', "'hello' frame: 'node' must be text, not an object"),
    ],
)
def test_bad_frames_say_what_is_wrong(text, message):
    """A frame that breaks the protocol raises ProtocolError with a message a person can act on."""
    with pytest.raises(ProtocolError) as caught:
        decode(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("item", "text"),
    [("1", "1"), (1, "1"), (True, "true"), (None, "null"), (0.5, "0.5"), ([1, 0], "[1,0]"), ({"a": 1}, '{"a":1}')],
)
def test_items_travel_as_text(item, text):
    """Text stays text; anything else becomes its JSON text."""
    assert to_text(item) == text


def test_a_batch_is_a_json_array_of_frames():
    """One websocket frame may carry a batch; a bad frame in it does not spoil the others."""
    from mesh.protocol import batch, decode_all

    text = batch([encode(Ack(id=1, data="a")), "5", encode(Ack(id=2, data="b"))])
    assert text == '[{"type":"ack","id":1,"data":"a"},5,{"type":"ack","id":2,"data":"b"}]'
    first, bad, last = decode_all(text)
    assert (first, last) == (Ack(id=1, data="a"), Ack(id=2, data="b"))
    assert isinstance(bad, ProtocolError) and str(bad) == "frame must be a JSON object, not the number 5"
    assert batch(['{"type":"ack","id":1,"data":"a"}']) == '{"type":"ack","id":1,"data":"a"}'


def test_patterns_and_keys_are_bounded_by_the_frame_not_by_name_max():
    """A long pattern (the publisher's MAX_PATTERN_LENGTH refuses it, saying so) and a long key are decoded."""
    from mesh.protocol import NAME_MAX, Publish, Subscribe

    long = "a/" + "x" * NAME_MAX
    assert decode(encode(Subscribe(id=1, pattern=long))) == Subscribe(id=1, pattern=long)
    assert decode(encode(Publish(key=long, data=""))) == Publish(key=long, data="")


def test_names_that_are_printable_and_short_enough_pass():
    """A name of NAME_MAX printable characters, any script, is a name; data stays free text."""
    from mesh.protocol import NAME_MAX

    name = "é♪" * (NAME_MAX // 2)
    assert decode(encode(Hello(node=name, session="s-1"))) == Hello(node=name, session="s-1")
    message = Message(id=1, channel="pin/1", data="line 1\nline 2\t\x00 \U0001f600")
    assert decode(encode(message)) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[" + ",".join(['{"type":"status","id":1}'] * 257) + "]",
            "a batch holds at most 256 frames, not 257; send fewer at once",
        ),
        ("[" + " " * (256 * 1024 + 300) + "{}]", "a batch holds at most 262144 bytes; send fewer frames at once"),
        (
            '  [{"type":"msg","id":1,"channel":"","data":"' + "é" * (128 * 1024 + 200) + '"}]',
            "a batch holds at most 262144 bytes; send fewer frames at once",
        ),
        ("[" + ",".join(["[]"] * 100_000) + "]", "a batch holds at most 262144 bytes; send fewer frames at once"),
    ],
    ids=["frames", "bytes", "bytes-not-characters", "many-tiny"],
)
def test_a_batch_over_its_caps_is_one_error_none_of_it_read(text, message):
    """Past BATCH frames or BATCH_BYTES bytes, a batch is one error that says the cap."""
    from mesh.protocol import decode_all

    (error,) = decode_all(text)
    assert isinstance(error, ProtocolError) and str(error) == message


def test_a_batch_at_its_caps_is_read():
    """A batch of exactly BATCH frames within BATCH_BYTES is read, frame by frame."""
    from mesh.protocol import BATCH, Status, decode_all

    frames = decode_all("[" + ",".join(['{"type":"status","id":1}'] * BATCH) + "]")
    assert frames == [Status(id=1)] * BATCH


def test_an_unhashable_type_inside_a_batch_spoils_only_its_own_frame():
    """{"type": []} and {} in a batch are errors in their place; the frames beside them are read."""
    from mesh.protocol import Status, decode_all

    first, bad, empty, last = decode_all('[{"type":"status","id":1},{"type":[]},{},{"type":"status","id":2}]')
    assert (first, last) == (Status(id=1), Status(id=2))
    assert isinstance(bad, ProtocolError) and isinstance(empty, ProtocolError)
