"""Topics: keys, patterns and how they match, as plain functions.

A *key* names what a node published: ``<node>/<topic>``, levels separated by
``/``, e.g. ``iopin/pin``. A *pattern* selects keys with MQTT's wildcards:

- ``+`` matches exactly one level: ``+/pin`` matches ``iopin/pin``, not ``iopin/pin/2``;
- ``#`` matches the rest, zero or more levels, and may only stand last:
  ``iopin/#`` matches ``iopin``, ``iopin/pin`` and ``iopin/pin/2``; ``#`` alone
  matches every key.

Wildcards stand for whole levels only (``a+/b`` is invalid), and no level is
empty. The first level of a key is its publisher, which is what routing needs:
:func:`publishers` says which nodes a pattern can hear from.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import MeshError

__all__ = ["TopicError", "check_pattern", "check_topic", "matches", "publishers"]


class TopicError(MeshError, ValueError):
    """A key, topic or pattern that breaks the rules."""

    def __init__(self, text: str, problem: str) -> None:
        super().__init__(text, problem)
        self.text = text
        self.problem = problem

    def __str__(self) -> str:
        return f"invalid {self.problem}"


def _levels(text: str, what: str) -> list[str]:
    if not isinstance(text, str) or not text:
        raise TopicError(str(text), f"{what} {text!r}: it is empty")
    levels = text.split("/")
    if "" in levels:
        raise TopicError(text, f"{what} {text!r}: a level is empty (no '//', nor '/' at either end)")
    return levels


def check_pattern(pattern: str) -> str:
    """``pattern`` if it is a valid subscription pattern, else :class:`TopicError` saying why."""
    levels = _levels(pattern, "pattern")
    for index, level in enumerate(levels):
        if level == "#" and index != len(levels) - 1:
            raise TopicError(pattern, f"pattern {pattern!r}: '#' may only stand last")
        if level not in ("+", "#") and ("+" in level or "#" in level):
            raise TopicError(
                pattern, f"pattern {pattern!r}: '+' and '#' must stand alone in their level, not in {level!r}"
            )
    return pattern


def check_topic(topic: str) -> str:
    """``topic`` (what a node publishes on, without its own name) if valid, else :class:`TopicError`."""
    for level in _levels(topic, "topic"):
        if "+" in level or "#" in level:
            raise TopicError(topic, f"topic {topic!r}: '+' and '#' are for patterns, not for publishing")
    return topic


def matches(pattern: str, key: str) -> bool:
    """Whether the (valid) ``pattern`` selects ``key``."""
    if pattern == "#":
        return True
    wanted = pattern.split("/")
    levels = key.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            return True
        if index >= len(levels) or (level != "+" and level != levels[index]):
            return False
    return len(wanted) == len(levels)


def publishers(pattern: str, nodes: Iterable[str]) -> list[str]:
    """The nodes among ``nodes`` whose keys ``pattern`` can match (the first level names the publisher)."""
    first = pattern.split("/", 1)[0]
    return [node for node in nodes if first in ("+", "#") or first == node]
