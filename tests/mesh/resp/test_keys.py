"""Channels as the mesh's keys and globs as their covers (mesh.resp.keys): tables, and the cover's promise checked."""

from __future__ import annotations

import random

import pytest

from mesh.resp.globs import Glob
from mesh.resp.keys import COVER_LEVELS, cover, key_of
from mesh.topics import check_pattern, matches

KEYS: list[tuple[bytes, str | None]] = [
    (b"buzzer/sound", "buzzer/sound"),
    (b"buzzer/$state", "buzzer/$state"),
    (b"iopin/pin/2", "iopin/pin/2"),
    ("caf\u00e9/x".encode(), "caf\u00e9/x"),
    (b"buzzer", None),  # a key is <node>/<topic>
    (b"", None),
    (b"a//b", None),  # an empty level
    (b"a/", None),
    (b"a/+", None),  # a wildcard is no key
    (b"a/#", None),
    (b"a/\xff", None),  # not UTF-8
    (b"a/b\nc", None),  # a control character
    (b"a/" + b"x" * 300, None),  # longer than the mesh carries
]


@pytest.mark.parametrize(("channel", "key"), KEYS)
def test_key_of(channel: bytes, key: str | None) -> None:
    assert key_of(channel) == key


COVERS: list[tuple[bytes, str | None]] = [
    (b"buzzer/sound", "buzzer/sound"),  # no wildcard: the key itself
    (b"buzzer/*", "buzzer/#"),
    (b"buzzer/s?und", "buzzer/#"),
    (b"buzzer/[st]ound", "buzzer/#"),
    (b"buzzer*", "#"),
    (b"*", "#"),
    (b"*/sound", "#"),
    (b"[ab]*", "#"),
    (b"?uzzer/sound", "#"),
    (b"a/b/c/*", "a/b/c/#"),
    (b"buzzer/\\*", "buzzer/*"),  # the escaped '*' is a plain byte: the key buzzer/* (a topic may be '*')
    (b"\\*", None),
    (b"buzzer\\/x/*", "buzzer/x/#"),  # an escaped '/' is a '/'
    (b"a//*", None),  # an empty level: no key has one
    (b"a+/*", None),  # a '+' in a level: no key has one
    (b"\xff/*", None),
    (b"buzzer/$state", "buzzer/$state"),  # names the '$' level: sees presence
    (b"buzzer/$subscribers/*", "buzzer/$subscribers/#"),
    (b"buzzer/$*", "buzzer/#"),  # a wildcard in the '$' level: MQTT's rule, no presence
    (b"/".join([b"l"] * 20) + b"/*", "/".join(["l"] * (COVER_LEVELS - 1) + ["#"])),  # at most 16 levels
]


@pytest.mark.parametrize(("glob", "expected"), COVERS)
def test_cover(glob: bytes, expected: str | None) -> None:
    found = cover(glob)
    assert found == expected
    if found is not None:
        check_pattern(found)  # a pattern the mesh takes


def test_a_cover_matches_every_key_its_glob_matches_but_the_dollar_ones() -> None:
    """Random globs against random keys: whenever the glob matches a key the mesh may carry, so does the cover,
    unless the key's topic starts with '$' and the glob's wildcard stands for that level (MQTT's rule)."""
    rng = random.Random(29)
    levels = ["a", "ab", "b", "$s", "x"]
    keys = {"/".join(rng.choice(levels) for _ in range(rng.randint(2, 4))) for _ in range(100)}
    keys = {key for key in keys if not key.startswith("$")}
    for _ in range(200):
        glob = "".join(rng.choice(["a", "b", "/", "*", "?", "[ab]", "$s", "x"]) for _ in range(rng.randint(1, 6)))
        found = cover(glob.encode())
        for key in keys:
            if Glob(glob.encode()).match(key.encode()):
                if found is None:
                    raise AssertionError(f"{glob!r} matches {key!r} but has no cover")
                assert matches(found, key) or key.split("/")[1].startswith("$"), (glob, found, key)
