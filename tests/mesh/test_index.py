"""Tests for mesh.index: the pattern index answers exactly as mesh.topics.matches, and stays small.

Plain data only: no sockets and no event loop. The property tests hold random
sets of patterns (``$`` levels and wildcards included) and compare every lookup
with :func:`mesh.topics.matches` tried pattern by pattern.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.index import PatternIndex
from mesh.topics import check_pattern, matches

LEVEL = st.sampled_from(["a", "b", "$s", "$", "c$"])
KEYS = st.lists(LEVEL, min_size=1, max_size=5).map("/".join)


@st.composite
def patterns(draw: st.DrawFn) -> str:
    levels = draw(st.lists(st.one_of(LEVEL, st.just("+")), min_size=0, max_size=4))
    if draw(st.booleans()) or not levels:
        levels.append("#")
    return check_pattern("/".join(levels))


def brute(held: list[tuple[str, int]], key: str) -> set[tuple[str, int]]:
    return {(pattern, owner) for pattern, owner in held if matches(pattern, key)}


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(patterns(), st.integers(0, 3)), max_size=30, unique=True), st.lists(KEYS, max_size=10))
def test_match_is_matches_tried_pattern_by_pattern(held, keys):
    """Every lookup returns exactly the (pattern, owner) pairs that matches() accepts, each once."""
    index: PatternIndex[int] = PatternIndex()
    for pattern, owner in held:
        assert index.add(pattern, owner)
    assert len(index) == len(held)
    for key in [*keys, "a/$s", "a/$s/b", "$s/a", "a"]:
        found = list(index.match(key))
        assert len(found) == len(set(found))
        assert set(found) == brute(held, key), key


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(patterns(), st.integers(0, 3)), max_size=30, unique=True),
    st.data(),
)
def test_removing_leaves_what_was_not_removed_and_prunes_the_trie(held, data):
    """After removing some pairs, lookups match the rest; removing all leaves an empty trie."""
    index: PatternIndex[int] = PatternIndex()
    for pattern, owner in held:
        index.add(pattern, owner)
    gone = data.draw(st.lists(st.sampled_from(held), unique=True) if held else st.just([]))
    for pattern, owner in gone:
        assert index.remove(pattern, owner)
        assert not index.remove(pattern, owner)
    kept = [pair for pair in held if pair not in gone]
    assert len(index) == len(kept)
    for key in data.draw(st.lists(KEYS, max_size=10)):
        assert set(index.match(key)) == brute(kept, key)
    for pattern, owner in kept:
        index.remove(pattern, owner)
    assert len(index) == 0
    assert index._root.empty()


@pytest.mark.parametrize(
    ("pattern", "key", "expected"),
    [
        ("#", "iopin/$subscribers/added", False),
        ("iopin/#", "iopin/$subscribers/added", False),
        ("+/$subscribers/#", "iopin/$subscribers", True),
        ("+/+/+", "iopin/$subscribers/added", False),
        ("iopin/pin/#", "iopin", False),
        ("iopin/#", "iopin", True),
        ("iopin/pin/$x", "iopin/pin/$x", True),
        ("+/+/#", "iopin/pin/$x", True),
    ],
)
def test_the_dollar_rule_and_hash_edges(pattern, key, expected):
    """The index keeps topics' '$' rule and '#' standing for zero levels, case by case."""
    index: PatternIndex[str] = PatternIndex()
    index.add(pattern, "me")
    assert (list(index.match(key)) == [(pattern, "me")]) is expected
    assert matches(pattern, key) is expected


def test_an_owner_holds_a_pattern_once_and_owners_names_each_once():
    """add() twice is one pair; owners() lists an owner once even when several of its patterns match."""
    index: PatternIndex[str] = PatternIndex()
    assert index.add("a/b", "x")
    assert not index.add("a/b", "x")
    index.add("a/+", "x")
    index.add("#", "y")
    assert len(index) == 3
    assert set(index.owners("a/b")) == {"x", "y"}
    assert index.owners("c") == {"y": "#"}
    assert not index.remove("a/c", "x")
    assert not index.remove("a/b", "y")


def test_a_lookup_does_not_visit_patterns_that_cannot_match():
    """With 10,000 patterns held, a key under none of them yields nothing and visits only its branch."""
    index: PatternIndex[int] = PatternIndex()
    for i in range(10_000):
        index.add(f"node{i}/pin/{i}", i)
    assert list(index.match("other/pin/1")) == []
    assert list(index.match("node7/pin/7")) == [("node7/pin/7", 7)]
    assert len(index._root.children or {}) == 10_000
