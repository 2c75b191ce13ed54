"""Tests for mesh.topics: checking keys and patterns, and how patterns match keys.

Plain functions only: no sockets and no event loop. The tables pin the rules
down case by case; the property tests compare :func:`matches` with a small
reference matcher written here from the rules in the module's docstring.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.errors import MeshError, TopicError
from mesh.topics import check_pattern, check_topic, is_system, matches, publishers

MATCHES = [
    # ---- exact
    ("iopin/pin", "iopin/pin", True, "exact"),
    ("iopin/pin", "iopin/pins", False, "exact-other-level"),
    ("iopin", "iopin", True, "exact-one-level"),
    ("iopin/pin", "buzzer/pin", False, "exact-other-publisher"),
    # ---- + is exactly one level
    ("+/pin", "iopin/pin", True, "plus-first-level"),
    ("iopin/+", "iopin/pin", True, "plus-last-level"),
    ("iopin/+", "iopin", False, "plus-not-zero-levels"),
    ("iopin/+", "iopin/pin/2", False, "plus-not-two-levels"),
    ("+/pin", "iopin/pin/2", False, "plus-then-key-longer"),
    ("+", "iopin", True, "plus-alone-one-level"),
    ("+", "iopin/pin", False, "plus-alone-not-two-levels"),
    # ---- # alone matches everything
    ("#", "iopin", True, "hash-alone-one-level"),
    ("#", "iopin/pin", True, "hash-alone-two-levels"),
    # ---- a/# is a and everything under it
    ("iopin/#", "iopin", True, "hash-zero-levels"),
    ("iopin/#", "iopin/pin", True, "hash-one-level"),
    ("iopin/#", "iopin/pin/2", True, "hash-two-levels"),
    ("iopin/#", "buzzer/pin", False, "hash-other-publisher"),
    ("iopin/#", "iopins", False, "hash-not-a-prefix-of-text"),
    ("iopin/pin/#", "iopin", False, "hash-needs-the-levels-before-it"),
    # ---- +/#
    ("+/#", "iopin", True, "plus-hash-one-level"),
    ("+/#", "iopin/pin", True, "plus-hash-two-levels"),
    ("+/#", "iopin/pin/2", True, "plus-hash-three-levels"),
    # ---- +/+ against 1, 2 and 3 levels
    ("+/+", "iopin", False, "plus-plus-one-level"),
    ("+/+", "iopin/pin", True, "plus-plus-two-levels"),
    ("+/+", "iopin/pin/2", False, "plus-plus-three-levels"),
    # ---- system topics: a wildcard never stands for the topic's first level when it starts with $
    ("#", "iopin/$subscribers/added", False, "dollar-not-under-hash-alone"),
    ("#", "iopin/$subscribers", False, "dollar-alone-not-under-hash-alone"),
    ("iopin/#", "iopin/$subscribers/added", False, "dollar-not-under-publisher-hash"),
    ("+/#", "iopin/$subscribers/added", False, "dollar-not-under-plus-hash"),
    ("+/+/+", "iopin/$subscribers/added", False, "dollar-not-matched-by-plus"),
    ("iopin/+", "iopin/$subscribers", False, "dollar-not-matched-by-last-plus"),
    ("iopin/+/added", "iopin/$subscribers/added", False, "dollar-not-matched-by-middle-plus"),
    ("iopin/$subscribers/#", "iopin/$subscribers/added", True, "dollar-named-then-hash"),
    ("iopin/$subscribers/+", "iopin/$subscribers/added", True, "dollar-named-then-plus"),
    ("+/$subscribers/+", "iopin/$subscribers/added", True, "dollar-named-under-plus-publisher"),
    ("+/$subscribers/#", "iopin/$subscribers/added", True, "dollar-named-under-plus-publisher-hash"),
    ("+/$subscribers/#", "iopin/$subscribers", True, "dollar-named-hash-zero-levels"),
    ("+/$subscribers/+", "iopin/$subscribers", False, "dollar-missing-last-level"),
    ("iopin/$subscribers/added", "iopin/$subscribers/added", True, "dollar-exact"),
    ("iopin/$subscribers/added", "iopin/$subscribers/removed", False, "dollar-exact-other"),
    ("+/$state", "iopin/$subscribers", False, "dollar-other-name"),
    # ---- $ deeper than the topic's first level is an ordinary level, as in MQTT
    ("iopin/#", "iopin/pin/$x", True, "deep-dollar-under-hash"),
    ("#", "iopin/pin/$x", True, "deep-dollar-under-hash-alone"),
    ("+/pin/+", "iopin/pin/$x", True, "deep-dollar-matched-by-plus"),
    ("iopin/pin/#", "iopin/pin/$x/y", True, "deep-dollar-under-named-hash"),
    # ---- a $ inside a level, not at its start, is nothing special
    ("#", "iopin/pin$", True, "dollar-not-first-character"),
    # ---- case matters
    ("iopin/pin", "iopin/Pin", False, "case-level"),
    ("IOPIN/#", "iopin/pin", False, "case-publisher"),
    ("+/PIN", "iopin/PIN", True, "case-same"),
    # ---- lengths differ
    ("iopin/pin/2", "iopin/pin", False, "pattern-longer-than-key"),
    ("iopin/+/2", "iopin/pin", False, "pattern-with-plus-longer-than-key"),
    ("iopin", "iopin/pin", False, "key-longer-than-pattern"),
    ("iopin/pin", "iopin/pin/2", False, "key-one-level-longer"),
]


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [pytest.param(pattern, key, expected, id=case) for pattern, key, expected, case in MATCHES],
)
def test_matches_table(pattern: str, key: str, expected: bool) -> None:
    """matches() follows MQTT: '+' is one level, '#' the rest including none, and no wildcard stands for a '$' topic."""
    check_pattern(pattern)
    check_topic(key)
    assert matches(pattern, key) is expected


INVALID_PATTERNS = [
    ("a/#/b", "invalid pattern 'a/#/b': '#' may only stand last"),
    ("#/a", "invalid pattern '#/a': '#' may only stand last"),
    ("a+/b", "invalid pattern 'a+/b': '+' and '#' must stand alone in their level, not in 'a+'"),
    ("a/b#", "invalid pattern 'a/b#': '+' and '#' must stand alone in their level, not in 'b#'"),
    ("", "invalid pattern '': it is empty"),
    ("a//b", "invalid pattern 'a//b': a level is empty (no '//', nor '/' at either end)"),
    ("/a", "invalid pattern '/a': a level is empty (no '//', nor '/' at either end)"),
    ("a/", "invalid pattern 'a/': a level is empty (no '//', nor '/' at either end)"),
]


@pytest.mark.parametrize(("pattern", "message"), INVALID_PATTERNS, ids=repr)
def test_invalid_pattern_says_why(pattern: str, message: str) -> None:
    """check_pattern() rejects a bad pattern with one TopicError saying exactly what is wrong."""
    with pytest.raises(TopicError) as caught:
        check_pattern(pattern)
    assert str(caught.value) == message
    assert isinstance(caught.value, MeshError) and isinstance(caught.value, ValueError)
    assert caught.value.text == pattern


@pytest.mark.parametrize("pattern", ["#", "+", "+/+/#", "iopin/pin", "iopin/$subscribers/+"])
def test_valid_pattern_is_returned(pattern: str) -> None:
    """check_pattern() returns a valid pattern unchanged."""
    assert check_pattern(pattern) == pattern


@pytest.mark.parametrize("topic", ["pin", "pin/2", "$subscribers/added"])
def test_valid_topic_is_returned(topic: str) -> None:
    """check_topic() returns a valid topic unchanged."""
    assert check_topic(topic) == topic


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        ("pin/+", "invalid topic 'pin/+': '+' and '#' are for patterns, not for publishing"),
        ("#", "invalid topic '#': '+' and '#' are for patterns, not for publishing"),
        ("a//b", "invalid topic 'a//b': a level is empty (no '//', nor '/' at either end)"),
        ("", "invalid topic '': it is empty"),
    ],
    ids=repr,
)
def test_invalid_topic_says_why(topic: str, message: str) -> None:
    """check_topic() rejects wildcards and empty levels with an exact message."""
    with pytest.raises(TopicError) as caught:
        check_topic(topic)
    assert str(caught.value) == message


NODES = ["clock", "iopin", "buzzer"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("iopin/#", ["iopin"]),
        ("iopin/pin", ["iopin"]),
        ("iopin", ["iopin"]),
        ("+/pin", NODES),
        ("#", NODES),
        ("+/$subscribers/#", NODES),
        ("iopin/$subscribers/+", ["iopin"]),
        ("nobody/x", []),
    ],
    ids=repr,
)
def test_publishers_table(pattern: str, expected: list[str]) -> None:
    """publishers() keeps the nodes, in their order, that the pattern's first level can name."""
    assert publishers(pattern, NODES) == expected


# --------------------------------------------------------------------------- properties


def reference(pattern: str, key: str) -> bool:
    """A plain reference matcher: the pattern as a regular expression over the key, then MQTT's '$' rule.

    The rule, as the module states it: when the key's topic begins with a '$' level (the
    key's second level), only a pattern whose second level is that very name matches.
    """
    key_levels, pattern_levels = key.split("/"), pattern.split("/")
    if len(key_levels) > 1 and key_levels[1].startswith("$"):
        if len(pattern_levels) < 2 or pattern_levels[1] != key_levels[1]:
            return False
    return regex_match(pattern, key)


def regex_match(pattern: str, key: str) -> bool:
    """MQTT's wildcards alone, as a regular expression over the key."""
    if pattern == "#":
        return True
    levels = pattern.split("/")
    tail = ""
    if levels[-1] == "#":
        levels = levels[:-1]
        tail = "(/.*)?"
    body = "/".join("[^/]+" if level == "+" else re.escape(level) for level in levels)
    return re.fullmatch(body + tail, key) is not None


PUBLISHER = st.sampled_from(["a", "b", "pin"])  # node names never start with '$'
LEVEL = st.sampled_from(["a", "b", "pin", "$s", "$t"])
KEYS = st.builds(lambda first, rest: "/".join([first, *rest]), PUBLISHER, st.lists(LEVEL, min_size=0, max_size=4))
PATTERNS = st.builds(
    lambda levels, hash_last: "/".join([*levels, "#"] if hash_last else levels),
    st.lists(st.one_of(LEVEL, st.just("+")), min_size=0, max_size=5),
    st.booleans(),
).filter(bool)


@settings(max_examples=500, deadline=None)
@given(pattern=PATTERNS, key=KEYS)
def test_matches_agrees_with_reference(pattern: str, key: str) -> None:
    """matches() agrees with the regular-expression reference for generated patterns and keys."""
    assert matches(pattern, key) == reference(pattern, key)


@settings(max_examples=500, deadline=None)
@given(pattern=PATTERNS)
def test_generated_patterns_are_valid(pattern: str) -> None:
    """check_pattern() accepts every generated pattern."""
    assert check_pattern(pattern) == pattern


@settings(max_examples=500, deadline=None)
@given(key=KEYS)
def test_a_key_matches_itself_and_hash(key: str) -> None:
    """Every generated key is a valid topic that matches itself; '#' and its publisher's '/#' unless it is a system key."""
    assert check_topic(key) == key
    assert matches(key, key)
    assert matches("#", key) is not is_system(key)
    assert matches(key.split("/")[0] + "/#", key) is not is_system(key)
    assert is_system(key) is (len(key.split("/")) > 1 and key.split("/")[1].startswith("$"))
