"""decode_all under fuzzing (hypothesis): whatever text a peer sends, frames or errors, never an exception."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesh.errors import ProtocolError
from mesh.protocol import BATCH, Report, decode, decode_all, encode

#: A few seconds in all, in CI: examples per property, no per-example deadline (a loaded machine).
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TYPES = ["hello", "msg", "ack", "error", "sub", "unsub", "pub", "status", "report", "nope"]
FIELDS = ["type", "id", "node", "session", "channel", "data", "error", "pattern", "key", "lost"]

# Text with everything a peer can send: control characters, lone surrogates, any script.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4), max_leaves=20
)
# Objects near the frame shapes: a known type (or not), the fields frames have, values of any kind.
near_frames = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES) | json_values},
    optional={name: json_values | st.integers(-(2**64), 2**64) | any_text for name in FIELDS[1:]},
)
near_batches = st.lists(near_frames | json_values, max_size=8) | st.lists(
    st.just({"type": "status", "id": 1}), min_size=BATCH - 1, max_size=BATCH + 1
)


def check(text: str) -> None:
    """decode_all answers a non-empty list of errors and frames; every frame encodes and decodes back to itself."""
    items = decode_all(text)
    assert items
    for item in items:
        if isinstance(item, ProtocolError):
            assert isinstance(str(item), str)
            continue
        encoded = encode(item)
        encoded.encode("utf-8")  # valid Unicode: it can go back on the wire
        again = decode(encoded)
        if isinstance(item, Report):  # floats such as NaN do not compare equal to themselves
            assert type(again) is Report and again.id == item.id
        else:
            assert again == item


@FUZZ
@given(any_text | st.text(max_size=400))
def test_any_text_is_frames_or_errors(text):
    """Arbitrary text: never an exception."""
    check(text)


@FUZZ
@given(json_values)
def test_any_json_value_is_frames_or_errors(value):
    """Arbitrary JSON values, ASCII-escaped or not: never an exception."""
    check(json.dumps(value))
    check(json.dumps(value, ensure_ascii=False))


@FUZZ
@given(near_frames)
def test_objects_near_frames_are_frames_or_errors(body):
    """Objects shaped like frames, with any field of any type: never an exception."""
    check(json.dumps(body))
    check(json.dumps(body, ensure_ascii=False))


@settings(FUZZ, max_examples=120)
@given(near_batches)
def test_batches_near_frames_are_frames_or_errors(items):
    """Batches of frame-shaped objects and arbitrary values, up to past the cap: never an exception."""
    check(json.dumps(items))


@FUZZ
@given(st.integers(1, 3000), st.sampled_from(["[", '{"a":', '{"type":"msg","data":[']))
def test_deep_nesting_is_an_error(depth, opening):
    """JSON nested to any depth: an error frame, never a RecursionError."""
    check(opening * depth)
    check(opening * depth + "1" + ("]" if opening.endswith("[") else "}") * depth)
