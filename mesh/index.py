"""A pattern index: which subscriptions a key matches, without trying every pattern.

A trie by level: each node of the trie has children for literal levels, one
child for ``+``, and the owners of the patterns that end there (``a/b``) or end
there with ``#`` (``a/b/#``). Looking a key up walks at most two branches per
level (the literal and ``+``), so it costs about the key's levels times the
wildcards on the way, plus the matching subscriptions, whatever the number of
patterns held. Adding or removing one subscription costs its pattern's levels.

The index keeps :func:`mesh.topics.matches` exactly, ``$`` rule included: a
wildcard at the topic's first level (level 1) never stands for a level that
starts with ``$``. No I/O, no asyncio: plain data, tested against ``matches``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

__all__ = ["PatternIndex"]

Owner = TypeVar("Owner", bound=Hashable)


class _Level(Generic[Owner]):
    """One node of the trie: the patterns that end here, and the levels below."""

    __slots__ = ("children", "ends", "plus", "rest")

    def __init__(self) -> None:
        self.children: dict[str, _Level[Owner]] | None = None  # literal levels
        self.plus: _Level[Owner] | None = None  # the '+' level
        self.ends: dict[Owner, str] | None = None  # owner -> pattern ending here
        self.rest: dict[Owner, str] | None = None  # owner -> pattern ending here with '#'

    def empty(self) -> bool:
        return not (self.children or self.plus or self.ends or self.rest)


class PatternIndex(Generic[Owner]):
    """Subscriptions as (pattern, owner) pairs, looked up by key.

    Patterns must be valid (:func:`mesh.topics.check_pattern`); an owner holds
    a pattern once. ``len()`` is the number of pairs held.
    """

    def __init__(self) -> None:
        self._root: _Level[Owner] = _Level()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, pattern: str, owner: Owner) -> bool:
        """Hold ``pattern`` for ``owner``; False if it already held it."""
        level = self._root
        levels = pattern.split("/")
        last = levels[-1]
        if last == "#":
            levels.pop()
        for name in levels:
            if name == "+":
                if level.plus is None:
                    level.plus = _Level()
                level = level.plus
            else:
                if level.children is None:
                    level.children = {}
                child = level.children.get(name)
                if child is None:
                    child = level.children[name] = _Level()
                level = child
        if last == "#":
            if level.rest is None:
                level.rest = {}
            held = level.rest
        else:
            if level.ends is None:
                level.ends = {}
            held = level.ends
        if owner in held:
            return False
        held[owner] = pattern
        self._count += 1
        return True

    def remove(self, pattern: str, owner: Owner) -> bool:
        """Drop ``pattern`` for ``owner``, and the trie's levels left empty; False if it was not held."""
        levels = pattern.split("/")
        last = levels[-1]
        if last == "#":
            levels.pop()
        path: list[tuple[_Level[Owner], str]] = []
        level: _Level[Owner] | None = self._root
        for name in levels:
            assert level is not None
            path.append((level, name))
            level = level.plus if name == "+" else (level.children or {}).get(name)
            if level is None:
                return False
        assert level is not None
        held = level.rest if last == "#" else level.ends
        if not held or owner not in held:
            return False
        del held[owner]
        self._count -= 1
        # Prune the levels this pattern alone kept, from the bottom up.
        while path and level.empty():
            parent, name = path.pop()
            if name == "+":
                parent.plus = None
            else:
                assert parent.children is not None
                del parent.children[name]
                if not parent.children:
                    parent.children = None
            level = parent
        return True

    def match(self, key: str) -> Iterator[tuple[str, Owner]]:
        """Every (pattern, owner) held whose pattern matches ``key`` (as :func:`mesh.topics.matches` says)."""
        levels = key.split("/")
        depth = len(levels)
        system = depth > 1 and levels[1].startswith("$")
        stack: list[tuple[_Level[Owner], int]] = [(self._root, 0)]
        while stack:
            level, index = stack.pop()
            # '#' standing at ``index``: the rest of the key, zero or more levels, unless it
            # would stand for the topic's '$' level.
            if level.rest and (index > 1 or not system):
                yield from ((pattern, owner) for owner, pattern in level.rest.items())
            if index == depth:
                if level.ends:
                    yield from ((pattern, owner) for owner, pattern in level.ends.items())
                continue
            if level.plus is not None and not (index == 1 and system):
                stack.append((level.plus, index + 1))
            if level.children:
                child = level.children.get(levels[index])
                if child is not None:
                    stack.append((child, index + 1))

    def owners(self, key: str) -> dict[Owner, str]:
        """The owners with a pattern that matches ``key``, each once, with the first such pattern found."""
        found: dict[Owner, str] = {}
        for pattern, owner in self.match(key):
            found.setdefault(owner, pattern)
        return found


#: Keys whose route (what the index said) a publisher or a subscriber remembers; keys longer than
#: ROUTE_KEY are never kept (a peer's key may be long): the index is asked again for those.
ROUTES = 1024
ROUTE_KEY = 256

T = TypeVar("T")


def remembered(routes: dict[str, T], key: str, route: T) -> T:
    """``route``, kept in ``routes`` as ``key``'s (at most ROUTES keys: all forgotten past that; no overlong key)."""
    if len(key) <= ROUTE_KEY:
        if len(routes) >= ROUTES:
            routes.clear()
        routes[key] = route
    return route
