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

*System topics* begin with ``$``: ``iopin/$subscribers/added``. They follow
MQTT's rule (MQTT 5.0, 4.7.2: a filter starting with a wildcard does not match a
topic name starting with ``$``), applied to the topic, the part of the key after
its publisher: a wildcard never stands for the topic's first level when that
level starts with ``$``. Only a pattern that names that level matches it:
``iopin/$subscribers/+`` and ``+/$subscribers/#`` do; ``#``, ``iopin/#``,
``+/#`` and ``+/+/+`` do not. ``$`` deeper in a topic is an ordinary level
(``iopin/pin/$x`` is matched by ``iopin/#``), as in MQTT.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import TopicError

__all__ = ["check_key", "check_pattern", "check_topic", "is_system", "matches", "publishers"]


#: The longest key or pattern the mesh carries, in characters (what a frame may name: protocol.NAME_MAX).
LONGEST = 256


def _levels(text: str, what: str) -> list[str]:
    if not isinstance(text, str) or not text:
        raise TopicError(str(text), f"{what} {text!r}: it is empty")
    if len(text) > LONGEST:
        raise TopicError(text, f"{what} {text[:40]!r}...: {len(text)} characters; the mesh carries at most {LONGEST}")
    if not text.isprintable():
        raise TopicError(text, f"{what} {text!r}: it holds a control character")
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


def check_key(key: str) -> str:
    """``key`` (``<node>/<topic>``) if the mesh can carry it, else :class:`TopicError` (too long, say)."""
    _levels(key, "key")
    return key


def is_system(key: str) -> bool:
    """Whether ``key``'s topic (its levels after the publisher) begins with ``$``: ``iopin/$subscribers/added``."""
    slash = key.find("/")
    return slash >= 0 and key.startswith("$", slash + 1)


def matches(pattern: str, key: str) -> bool:
    """Whether the (valid) ``pattern`` selects ``key``; a system key only if the pattern names its ``$`` level."""
    if pattern == "#":
        return not is_system(key)
    wanted = pattern.split("/")
    levels = key.split("/")
    for index, level in enumerate(wanted):
        if level == "#":
            # At the topic's first level (index 1), '#' would stand for a '$' level.
            return index > 1 or not is_system(key)
        if index >= len(levels) or (level != "+" and level != levels[index]):
            return False
        if level == "+" and index == 1 and levels[1].startswith("$"):
            return False
    return len(wanted) == len(levels)


def publishers(pattern: str, nodes: Iterable[str]) -> list[str]:
    """The nodes among ``nodes`` whose keys ``pattern`` can match (the first level names the publisher)."""
    first = pattern.split("/", 1)[0]
    return [node for node in nodes if first in ("+", "#") or first == node]
