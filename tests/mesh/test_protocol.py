"""The mesh protocol's frames: encode and decode as tables of cases, no sockets."""

from __future__ import annotations

import pytest

from mesh.errors import ProtocolError
from mesh.protocol import Ack, Error, Hello, Message, decode, encode, to_text


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
    ("text", "message"),
    [
        ("tick", "frame is not JSON: Expecting value: line 1 column 1 (char 0)"),
        ("[1, 2]", "expected one frame, not a batch of 2"),
        ("[]", "a batch must hold at least one frame"),
        ("42", "frame must be a JSON object, not the number 42"),
        (
            '{"id": 1}',
            "unknown frame type None; expected one of: ack, error, hello, msg, pub, report, status, sub, unsub",
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
