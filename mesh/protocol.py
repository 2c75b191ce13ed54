"""The mesh protocol: the frames that nodes exchange, as plain data.

No I/O here: :func:`encode` turns a frame into the text of one websocket
frame and :func:`decode` turns text back into a frame, or raises
:class:`~mesh.errors.ProtocolError` saying what is wrong with it.

Nodes speak this protocol only on connections that negotiated the
``arduino-mesh.1`` subprotocol; a client that offers no subprotocol gets the
plain protocol (one text frame in, one text frame back). ``docs/protocol.md``
shows an example of every frame.

One job that reads best whole, though it runs past 400 lines: every frame, the checks each
field gets, and the quick paths that read and write the common frames without building them
must agree field by field, and they are easiest to keep agreeing side by side.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import BatchRefused, ProtocolError

__all__ = [
    "BATCH",
    "BATCH_BYTES",
    "NAME_MAX",
    "NO_ACK",
    "SUBPROTOCOL",
    "UTF8_MAX",
    "Ack",
    "Error",
    "Frame",
    "Hello",
    "Message",
    "Publish",
    "Report",
    "Status",
    "Subscribe",
    "Unsubscribe",
    "ack_text",
    "ack_text_of",
    "batch",
    "batch_sizes",
    "batches",
    "decode",
    "decode_all",
    "encode",
    "encode_pub",
    "message_text",
    "to_text",
    "utf8_bound",
]

SUBPROTOCOL = "arduino-mesh.1"
#: A batch (see :func:`batch`) holds at most this many frames, and this many bytes
#: (or the receiver's max_size, if smaller); a longer batch is refused whole, with one error.
BATCH = 256
BATCH_BYTES = 256 * 1024
#: The most bytes one character takes in UTF-8: a text's length times this bounds its size unencoded.
UTF8_MAX = 4
#: The longest name a frame may carry, in characters: hello's node, session and proof, a message's
#: channel. (A pattern's length is the publisher's to bound, nodes.hub.MAX_PATTERN_LENGTH;
#: a key is the publisher's own, bounded by the frame.) All of them, keys and patterns too,
#: must be printable: no control character, no newline.
NAME_MAX = 256
#: The ack of a message whose ``loop()`` returned nothing.
NO_ACK = "n/a"
#: Ids are whole numbers in this range (a signed 64-bit integer, as SQLite stores them).
ID_RANGE = (-(2**63), 2**63 - 1)
_ID_MIN, _ID_MAX = ID_RANGE
# A batch's text: BATCH_BYTES of frames, and the brackets and commas around them (senders count frames).
_BATCH_TEXT = BATCH_BYTES + BATCH + 1
#: How much of a peer's value an error message shows, in characters.
SHOWN = 40

# The fields of each frame that are names (printable; the first ones at most NAME_MAX characters).
_SHORT = {"node", "session", "proof", "channel", "to"}
_NAMES = {
    "hello": ("node", "session", "proof", "to"),
    "msg": ("channel",),
    "pub": ("key",),
    "sub": ("pattern",),
    "unsub": ("pattern",),
}

#: A JSON string literal, exactly as json.dumps(..., ensure_ascii=False) writes it (in C).
_string = json.encoder.encode_basestring
_new = object.__new__
#: json.loads without its wrappers (type checks, two whitespace matches): the scanner itself, for a
#: frame that is exactly one JSON value. Anything else (whitespace around it, bad JSON) goes on to
#: json.loads, which reads it or says what is wrong, word for word as before.
_scan = json.decoder.JSONDecoder().scan_once  # type: ignore[attr-defined]  # set in __init__, untyped


@dataclass(frozen=True, kw_only=True)
class Hello:
    """First frame each way: who is speaking.

    A link also names its ``session``: the receiver remembers, per session,
    which message ids it has handled, so that a message re-sent after a
    reconnect reaches ``loop()`` only once; and ``to``, the node it dialled: a
    node refuses a hello meant for another (a stale address, a relay). On a grid
    with a token, ``proof`` shows that the speaker knows it without sending it,
    for this conversation only (see :mod:`mesh.auth`).
    """

    node: str
    session: str = ""
    proof: str = ""
    to: str = ""


@dataclass(frozen=True, kw_only=True)
class Message:
    """One message for the receiver's ``loop(channel, data)``."""

    id: int
    channel: str
    data: str


@dataclass(frozen=True, kw_only=True)
class Ack:
    """What the receiver's ``loop()`` returned for message ``id``."""

    id: int
    data: str


@dataclass(frozen=True, kw_only=True)
class Error:
    """The receiver could not handle message ``id`` (``None``: no id could be read)."""

    id: int | None
    error: str


@dataclass(frozen=True, kw_only=True)
class Subscribe:
    """Client to publisher: send me what you publish on keys that ``pattern`` matches."""

    id: int
    pattern: str


@dataclass(frozen=True, kw_only=True)
class Unsubscribe:
    """Client to publisher: stop sending what ``pattern`` matches."""

    id: int
    pattern: str


@dataclass(frozen=True, kw_only=True)
class Publish:
    """Publisher to subscriber: ``data`` was published on ``key``.

    ``lost`` counts the messages for this subscriber that the publisher dropped
    (its queue was full) since the previous ``pub`` frame it sent it.
    ``retained``: the publisher's retained value of ``key``, sent because a new
    subscription matches it, not a publication happening now (left out when false;
    a peer that does not know the field ignores it).
    """

    key: str
    data: str
    lost: int = 0
    retained: bool = False


@dataclass(frozen=True, kw_only=True)
class Status:
    """Client to node: how are you? Answered with a :class:`Report`."""

    id: int


@dataclass(frozen=True, kw_only=True)
class Report:
    """Node to client: the node's status (see ``docs/protocol.md``)."""

    id: int
    data: dict


Frame = Hello | Message | Ack | Error | Subscribe | Unsubscribe | Publish | Status | Report

# type name -> (class, {field: (type, description)})
_FIELDS: dict[str, tuple[type, dict[str, tuple[type | tuple[type, ...], str]]]] = {
    "hello": (Hello, {"node": (str, "text"), "session": (str, "text"), "proof": (str, "text"), "to": (str, "text")}),
    "msg": (Message, {"id": (int, "a whole number"), "channel": (str, "text"), "data": (str, "text")}),
    "ack": (Ack, {"id": (int, "a whole number"), "data": (str, "text")}),
    "error": (Error, {"id": ((int, type(None)), "a whole number or null"), "error": (str, "text")}),
    "sub": (Subscribe, {"id": (int, "a whole number"), "pattern": (str, "text")}),
    "unsub": (Unsubscribe, {"id": (int, "a whole number"), "pattern": (str, "text")}),
    "pub": (
        Publish,
        {
            "key": (str, "text"),
            "data": (str, "text"),
            "lost": (int, "a whole number"),
            "retained": (bool, "true or false"),
        },
    ),
    "status": (Status, {"id": (int, "a whole number")}),
    "report": (Report, {"id": (int, "a whole number"), "data": (dict, "an object")}),
}
#: Fields that may be left out, with the value they then have.
_OPTIONAL: dict[str, object] = {"lost": 0, "session": "", "proof": "", "retained": False, "to": ""}
_TYPE_OF = {cls: name for name, (cls, _) in _FIELDS.items()}


def message_text(msg_id: int, channel: str, data: str) -> str:
    """``encode(Message(id=msg_id, channel=channel, data=data))``, without building the frame: every message's way."""
    return f'{{"type":"msg","id":{msg_id},"channel":{_string(channel)},"data":{_string(data)}}}'


def ack_text(msg_id: int, data: str) -> str:
    """``encode(Ack(id=msg_id, data=data))``, without building the frame: every ack's way."""
    return f'{{"type":"ack","id":{msg_id},"data":{_string(data)}}}'


def encode(frame: Frame) -> str:
    """The text of one websocket frame carrying ``frame``."""
    # The frames of every message take the short way (the same text json.dumps writes).
    if type(frame) is Message:
        return message_text(frame.id, frame.channel, frame.data)
    if type(frame) is Ack:
        return ack_text(frame.id, frame.data)
    body: dict[str, Any] = {"type": _TYPE_OF[type(frame)]}
    body.update((k, v) for k, v in vars(frame).items() if k not in _OPTIONAL or v != _OPTIONAL[k])
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def encode_pub(key: str, data: str, lost: int = 0, retained: bool = False) -> str:
    """The text of a ``pub`` frame, as :func:`encode` writes it, without building a :class:`Publish` first."""
    text = f'{{"type":"pub","key":{_string(key)},"data":{_string(data)}'
    if lost:
        text += f',"lost":{lost}'
    return text + (',"retained":true}' if retained else "}")


def decode(text: str) -> Frame:
    """The one frame carried by ``text``; :class:`ProtocolError` says what is wrong."""
    frames = decode_all(text)
    if len(frames) != 1:
        raise ProtocolError(f"expected one frame, not a batch of {len(frames)}")
    if isinstance(frames[0], ProtocolError):
        raise frames[0]
    return frames[0]


def decode_all(text: str) -> list[Frame | ProtocolError]:
    """The frames carried by one websocket frame: a JSON object, or a JSON array of them (a batch).

    A frame of a batch that cannot be read is a :class:`ProtocolError` in its
    place, so that the others are still handled. A batch over :data:`BATCH` frames
    or :data:`BATCH_BYTES` bytes is one :class:`ProtocolError`, none of it read.
    Never raises: whatever the text, the answer is frames and errors.
    """
    if text[:1] == "[" or (text[:1].isspace() and text.lstrip()[:1] == "["):
        # A batch's length is checked before parsing it: no more than the cap's worth of work.
        if len(text) > _BATCH_TEXT or (len(text) > _BATCH_TEXT // UTF8_MAX and _utf8_length(text) > _BATCH_TEXT):
            return [BatchRefused(f"a batch holds at most {BATCH_BYTES} bytes; send fewer frames at once")]
    try:
        body, end = _scan(text, 0)
    except (StopIteration, ValueError, RecursionError):
        end = -1
    try:
        if end != len(text):
            body = json.loads(text)
    except RecursionError:
        return [ProtocolError("frame is not JSON the mesh can read: nested too deeply")]
    except ValueError as exc:
        return [ProtocolError(f"frame is not JSON: {_shown(str(exc), 2 * SHOWN)}")]
    if type(body) is list:
        if not body:
            return [ProtocolError("a batch must hold at least one frame")]
        if len(body) > BATCH:
            return [BatchRefused(f"a batch holds at most {BATCH} frames, not {len(body)}; send fewer at once")]
        items = body
    else:
        items = [body]
    frames: list[Frame | ProtocolError] = []
    for item in items:
        # Acks and messages, nearly every frame, are checked here and made without a call to
        # their class (a frozen dataclass's __init__ sets each field through object.__setattr__):
        # the same checks as _build's, which takes every other frame and says what is wrong.
        if type(item) is dict:
            kind = item.get("type")
            if kind == "ack" and len(item) == 3:
                frame_id, data = item.get("id"), item.get("data")
                if type(frame_id) is int and type(data) is str and data.isascii() and _ID_MIN <= frame_id <= _ID_MAX:
                    ack = _new(Ack)
                    fields = ack.__dict__
                    fields["id"], fields["data"] = frame_id, data
                    frames.append(ack)
                    continue
            elif kind == "msg" and len(item) == 4:
                frame_id, channel, data = item.get("id"), item.get("channel"), item.get("data")
                message = _quick_message(frame_id, channel, data)
                if message is not None:
                    frames.append(message)
                    continue
            elif kind == "pub" and len(item) == 3:  # a fan-out's every delivery
                key, data = item.get("key"), item.get("data")
                if type(key) is str and type(data) is str and key.isascii() and key.isprintable() and data.isascii():
                    publication = _new(Publish)
                    fields = publication.__dict__
                    fields["key"], fields["data"], fields["lost"], fields["retained"] = key, data, 0, False
                    frames.append(publication)
                    continue
        frames.append(_checked(item))
    return frames


def batch(frames: Sequence[str]) -> str:
    """Several encoded frames as the text of one websocket frame (one frame stays as it is)."""
    return frames[0] if len(frames) == 1 else "[" + ",".join(frames) + "]"


def utf8_bound(text: str) -> int:
    """At most how many bytes ``text`` takes in UTF-8 (:data:`UTF8_MAX` a character), without encoding it."""
    return UTF8_MAX * len(text)


def batch_sizes(sizes: Iterable[int], limit: int = BATCH_BYTES) -> Iterator[int]:
    """How many frames go in each batch, in order, given each frame's size in bytes.

    A batch holds at most :data:`BATCH` frames and ``limit`` bytes, and at least one frame
    (a frame larger than ``limit`` goes alone: the receiver refuses it, and says so).
    The one rule every sender batches by: links, the server's replies, a publisher's queues.
    """
    count = total = 0
    for size in sizes:
        if count and (count >= BATCH or total + size > limit):
            yield count
            count = total = 0
        count += 1
        total += size
    if count:
        yield count


def batches(frames: Sequence[str], limit: int = BATCH_BYTES) -> Iterator[tuple[int, str]]:
    """``frames`` cut by :func:`batch_sizes` (each counted by :func:`utf8_bound`): each batch's frame count and text."""
    start = 0
    for count in batch_sizes(map(utf8_bound, frames), limit):
        yield count, batch(frames[start : start + count])
        start += count


def _checked(body: Any) -> Frame | ProtocolError:
    try:
        return _build(body)
    except ProtocolError as exc:
        return exc


def _utf8_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _valid_unicode(kind: str, name: str, value: object, frame_id: int | None) -> None:
    """Refuse a value holding a lone surrogate (json.loads makes one of a ``\\ud800`` escape): it is not Unicode."""
    try:
        (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)).encode("utf-8")
    except (UnicodeEncodeError, ValueError, RecursionError):
        raise ProtocolError(f"{kind!r} frame: {name!r} is not valid Unicode (a lone surrogate)", frame_id) from None


def _id(body: dict) -> int | None:
    """The frame's id, if it has a usable one (for the error that answers it)."""
    value = body.get("id")
    return value if type(value) is int and _ID_MIN <= value <= _ID_MAX else None


def _quick_message(frame_id: Any, channel: Any, data: Any) -> Message | None:
    """The ``msg`` frame of these fields when they are what ``_build`` accepts without a word (built without
    the dataclass's ``__init__``); None: let ``_build`` read them the long way, and say what is wrong."""
    if not (
        type(frame_id) is int
        and type(channel) is str
        and type(data) is str
        and _ID_MIN <= frame_id <= _ID_MAX
        and len(channel) <= NAME_MAX
        and channel.isascii()
        and channel.isprintable()
        and data.isascii()
    ):
        return None
    message: Message = _new(Message)
    fields = message.__dict__
    fields["id"], fields["channel"], fields["data"] = frame_id, channel, data
    return message


def _build(body: Any) -> Frame:
    # Acks and messages that pass the quick checks never come here: decode_all made them.
    if type(body) is dict and len(body) == 2 and body.get("type") == "status":  # cheap to ask: cheap to read
        frame_id = body.get("id")
        if type(frame_id) is int and _ID_MIN <= frame_id <= _ID_MAX:
            return Status(id=frame_id)
    if type(body) is not dict:
        raise ProtocolError(f"frame must be a JSON object, not {_kind(body)}")
    kind = body.get("type")
    if type(kind) is not str or kind not in _FIELDS:
        expected = ", ".join(sorted(_FIELDS))
        if "type" not in body:
            raise ProtocolError(f"frame has no 'type' field; expected one of: {expected}", _id(body))
        shown = repr(_shown(kind)) if type(kind) is str else _kind(kind)
        raise ProtocolError(f"unknown frame type {shown}; expected one of: {expected}", _id(body))
    cls, fields = _FIELDS[kind]
    frame_id = _id(body)
    values: dict[str, Any] = {}
    for name, (types, description) in fields.items():
        if name not in body:
            if name in _OPTIONAL:
                continue
            raise ProtocolError(f"{kind!r} frame has no {name!r} field", frame_id)
        value: Any = body[name]
        if not isinstance(value, types) or ((value is True or value is False) and types is not bool):
            raise ProtocolError(f"{kind!r} frame: {name!r} must be {description}, not {_kind(value)}", frame_id)
        if type(value) is str:
            if not value.isascii():  # ASCII, most text, holds no surrogate: O(1) to know
                _valid_unicode(kind, name, value, frame_id)
        elif type(value) is int:
            if not _ID_MIN <= value <= _ID_MAX or (name == "lost" and value < 0):
                raise ProtocolError(f"{kind!r} frame: {name!r} is out of range", frame_id)
        elif type(value) is dict:
            _valid_unicode(kind, name, value, frame_id)
        values[name] = value
    for name in _NAMES.get(kind, ()):
        value = str(values.get(name, ""))
        if len(value) > NAME_MAX and name in _SHORT:
            raise ProtocolError(
                f"{kind!r} frame: {name!r} is longer than {NAME_MAX} characters ({len(value)}); use a shorter one",
                frame_id,
            )
        if not value.isprintable():
            raise ProtocolError(
                f"{kind!r} frame: {name!r} holds a control character (a newline?): {_shown(value)!a}", frame_id
            )
    return cls(**values)


def ack_text_of(value: object) -> str:
    """What ``loop()`` returned, as the text of its ack: :data:`NO_ACK` for None, else :func:`to_text`."""
    return NO_ACK if value is None else to_text(value)


def to_text(item: object) -> str:
    """A message or an ack as text: text stays as it is, anything else becomes JSON."""
    if isinstance(item, str):
        return item
    try:
        if type(item) is int:  # a bit, a count: what json.dumps writes, without its encoder
            return int.__repr__(item)
        return json.dumps(item, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return str(item)


def _kind(value: object) -> str:
    """How a JSON value reads in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return f"the number {value}" if -(10**SHOWN) < value < 10**SHOWN else "a number too large"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {_shown(value)!r}"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _shown(text: str, width: int = SHOWN) -> str:
    """At most ``width`` characters of a peer's text, for an error message."""
    return text if len(text) <= width else text[: width - 3] + "..."
