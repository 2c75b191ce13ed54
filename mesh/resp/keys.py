"""How Redis channels and glob patterns map onto the mesh's keys and MQTT patterns, pure. No I/O.

Channels are the mesh's keys: ``SUBSCRIBE buzzer/sound`` is the key ``buzzer/sound``. A channel
that no key can be (not UTF-8, no ``/``, an empty level, a ``+`` or ``#`` in a level) is served
to the node's own Redis clients only: the mesh never carries it.

A Redis glob is not an MQTT pattern: ``*`` crosses ``/`` (``buzzer/*`` matches
``buzzer/a/b``), ``?`` and ``[...]`` stand for one byte, anywhere in a level. So the mesh is
asked for a *cover*, the MQTT pattern that every key the glob can match also matches, and the
glob then filters exactly what arrives (:mod:`mesh.resp.globs`). The cover is the glob's whole
literal levels before its first wildcard, then ``#``:

==================  ==================  =====================================================
glob                cover               why
==================  ==================  =====================================================
``buzzer/sound``    ``buzzer/sound``    no wildcard: the key itself
``buzzer/*``        ``buzzer/#``        one whole level, then a wildcard
``buzzer/s?und``    ``buzzer/#``        a wildcard inside a level: that level is ``#``'s
``*/sound``         ``#``               no whole level before the wildcard
``[ab]*``           ``#``
``\\*``              None                a key has a ``/``: nothing in the mesh is ``*``
==================  ==================  =====================================================

``$`` keys follow the rule they follow for MQTT wildcards (:mod:`mesh.topics`): no wildcard
stands for a topic's first level when it starts with ``$``. ``*`` and ``buzzer/*`` see no
``buzzer/$state``; ``buzzer/$state`` and ``buzzer/$subscribers/*`` name that level and do.
"""

from __future__ import annotations

from typing import Final

from mesh.errors import TopicError
from mesh.topics import check_key

__all__ = ["COVER_LEVELS", "cover", "key_of"]

#: Levels of a cover at most, ``#`` included: a publisher holds patterns of at most 16 levels
#: (nodes.hub.MAX_PATTERN_LEVELS); fewer literal levels cover more keys, never fewer.
COVER_LEVELS: Final = 16
_WILDCARDS: Final = frozenset(b"*?[")


def key_of(channel: bytes) -> str | None:
    """The mesh key that ``channel`` names, or None when no key can be it."""
    try:
        text = channel.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "/" not in text or "+" in text or "#" in text:
        return None
    try:
        check_key(text)
    except TopicError:
        return None
    return text


def cover(glob: bytes) -> str | None:
    """The MQTT pattern that matches every mesh key ``glob`` can match; None when it can match none."""
    literal = bytearray()
    wildcard = False
    i, n = 0, len(glob)
    while i < n:
        byte = glob[i]
        if byte in _WILDCARDS:
            wildcard = True
            break
        if byte == 92 and i + 1 < n:  # '\\': the next byte as itself
            i += 1
            byte = glob[i]
        literal.append(byte)
        i += 1
    if not wildcard:
        return key_of(bytes(literal))
    whole = bytes(literal).split(b"/")[:-1]  # the levels before the wildcard's own
    levels: list[str] = []
    for level in whole[: COVER_LEVELS - 1]:
        try:
            text = level.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if not text or "+" in text or "#" in text or not text.isprintable():
            return None  # no key has such a level
        levels.append(text)
    return "/".join([*levels, "#"])
