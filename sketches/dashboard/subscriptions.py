"""The subscriptions the dashboard's graph draws: who subscribes to what, and whose keys each pattern matches.

A subscription is a node of the grid and a pattern: ``(meter, "+/pin")``. The dashboard knows
them from three places:

- the grid: each node's ``subscribe:`` (followed as ``grid.yaml`` is edited);
- the publishers: each node announces on ``<node>/$subscribers/added`` and ``.../removed`` who
  subscribes to it with what (see docs/topics.md), which the dashboard hears from the moment it
  listens, so a subscription a sketch makes at run time (``await self.subscribe(...)``) comes and
  goes on the page too (:meth:`Subscriptions.heard`);
- each subscriber's status report (its ``subscriptions``), which the dashboard asks for when it
  begins listening at a publisher, for what was subscribed before it listened
  (:meth:`Subscriptions.reported`).

A subscription is drawn while a publisher holds it or its subscriber's last report names it. A
``removed`` announcement takes it from both (the subscriber dropped it, or its link to that
publisher: it subscribes again, announced, once back); a publisher that goes offline holds nothing
any more, and a subscriber that goes offline subscribes to nothing (:meth:`Subscriptions.lost`).

:meth:`Subscriptions.graph` matches each subscription's pattern against the keys the dashboard
has heard (through a :class:`mesh.index.PatternIndex`, which keeps the mesh's own rule,
:func:`mesh.topics.matches`, exactly): an *edge* from each node that
published a key it matches to the subscriber, or, when it matches none, a *dangling* pattern on
the subscriber (nothing it hears has been published yet, or a misspelt topic).

Not drawn: patterns that name a system level (``+/$state``, ``+/$subscribers/+``: presence and
bookkeeping, the dashboard's own among them), and subscribers that are not nodes of the grid
(an ``arduino-mesh echo``). Everything is bounded whatever the publishers announce: at most
:data:`HELD` announced subscriptions are kept, at most :data:`SUBSCRIPTIONS` drawn, with at most
:data:`EDGES` edges; each pattern is a valid one (at most 256 characters), each name a node's.

Plain code, no I/O and no event loop, as :mod:`.strip` is; the dashboard decides when to call
:meth:`Subscriptions.graph` (not on a message's path: at most once per ``GRAPH_EVERY``).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from typing import Any

from mesh.errors import TopicError
from mesh.index import PatternIndex
from mesh.topics import check_pattern, is_system

__all__ = ["EDGES", "HELD", "SUBSCRIPTIONS", "Subscriptions"]

#: Announced subscriptions (a subscriber and a pattern) kept at most; past it, new ones are not drawn.
HELD = 1000
#: Subscriptions the graph draws at most (the grid's first, then those announced, each in name order):
#: past a hundred dashed edges a graph says nothing more, and matching each against every key heard costs.
SUBSCRIPTIONS = 100
#: Edges the graph draws at most (a ``#`` of each node of a large grid makes one per publisher).
EDGES = 300

Subscription = tuple[str, str]
#: The holder of a subscription that its subscriber's own report names (a node's name is never empty).
REPORTED = ""


class Subscriptions:
    """What the publishers announced, and the graph of it with the grid's own subscriptions."""

    def __init__(self) -> None:
        #: Each subscription heard of: the publishers that said they hold it, and REPORTED if its subscriber's report
        #: names it.
        self.held: dict[Subscription, set[str]] = {}
        #: Announcements ignored because HELD were kept already (the dashboard logs the first).
        self.overflow = 0
        #: Bumped at every change of ``held``, so the dashboard knows when to draw again.
        self.version = 0

    def heard(self, key: str, data: str, nodes: Collection[str]) -> bool:
        """``<publisher>/$subscribers/added|removed`` = ``{"pattern": ..., "subscriber": ...}``, from a node of
        ``nodes``; whether it was taken (anything malformed, or about a subscriber not in the grid, is not)."""
        publisher, _, what = key.partition("/$subscribers/")
        if publisher not in nodes or what not in ("added", "removed"):
            return False
        try:
            event = json.loads(data)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
            return False
        if not isinstance(event, dict):
            return False
        subscriber, pattern = event.get("subscriber"), event.get("pattern")
        if not isinstance(subscriber, str) or subscriber not in nodes or not isinstance(pattern, str):
            return False
        try:
            check_pattern(pattern)
        except TopicError:
            return False
        if is_system(pattern):  # it names a system level (+/$state): bookkeeping, not the circuit
            return False
        sub = (subscriber, pattern)
        if what == "removed":
            return self._drop(sub, publisher, REPORTED)
        return self._hold(sub, publisher)

    def reported(self, subscriber: str, patterns: object, nodes: Collection[str]) -> None:
        """``subscriber``'s status report says it subscribes to ``patterns`` (a list of them; anything else, or any
        invalid one, is left out): these replace what its previous report said."""
        if subscriber not in nodes:
            return
        named: set[str] = set()
        for pattern in patterns if isinstance(patterns, list) else []:
            if not isinstance(pattern, str) or len(named) >= HELD:
                continue
            try:
                check_pattern(pattern)
            except TopicError:
                continue
            if not is_system(pattern):
                named.add(pattern)
        for sub in [sub for sub, holders in self.held.items() if sub[0] == subscriber and REPORTED in holders]:
            if sub[1] not in named:
                self._drop(sub, REPORTED)
        for pattern in sorted(named):
            self._hold((subscriber, pattern), REPORTED)

    def lost(self, node: str) -> None:
        """``node`` went offline: it holds no subscription any more (its subscribers renew them when it is back),
        and has none of its own."""
        for sub in [sub for sub, holders in self.held.items() if node in holders or sub[0] == node]:
            self._drop(sub, *(self.held[sub] if sub[0] == node else (node,)))

    def _hold(self, sub: Subscription, holder: str) -> bool:
        holders = self.held.get(sub)
        if holders is None:
            if len(self.held) >= HELD:
                self.overflow += 1
                return False
            holders = self.held[sub] = set()
        if holder in holders:
            return False
        holders.add(holder)
        self.version += 1
        return True

    def _drop(self, sub: Subscription, *holders: str) -> bool:
        held = self.held.get(sub)
        if held is None or held.isdisjoint(holders):
            return False
        held.difference_update(holders)
        if not held:
            del self.held[sub]
        self.version += 1
        return True

    def graph(self, grid: Iterable[Subscription], keys: Iterable[str], nodes: Collection[str]) -> dict[str, Any]:
        """The edges and dangling patterns to draw, from the grid's subscriptions ``grid``, those announced, and the
        ``keys`` heard, between the ``nodes`` of the grid.

        ``{"edges": [{"publisher", "subscriber", "pattern", "source"}], "dangling": [{"subscriber", "pattern",
        "source"}], "total": n}``, where ``source`` is ``grid`` (in the grid's ``subscribe:``) or ``run time``
        (announced only), and ``total`` counts the subscriptions before the :data:`SUBSCRIPTIONS` bound.
        """
        subs: dict[Subscription, str] = {}
        for sub in sorted(set(grid)):
            if sub[0] in nodes and not is_system(sub[1]):
                subs[sub] = "grid"
        for sub in sorted(self.held):
            if sub[0] in nodes:
                subs.setdefault(sub, "run time")
        # Each key heard, looked up in an index of the patterns drawn (the hub's own: about a key's levels per key,
        # whatever the number of patterns), gives the publishers each pattern matched.
        chosen = list(subs.items())[:SUBSCRIPTIONS]
        index: PatternIndex[Subscription] = PatternIndex()
        for sub, _ in chosen:
            index.add(sub[1], sub)
        sources: dict[Subscription, set[str]] = {sub: set() for sub, _ in chosen}
        for key in keys:
            owner = key.split("/", 1)[0]
            if owner in nodes and not is_system(key):
                for _, sub in index.match(key):
                    sources[sub].add(owner)
        rank = {node: n for n, node in enumerate(nodes)}
        edges: list[dict[str, str]] = []
        dangling: list[dict[str, str]] = []
        for (subscriber, pattern), source in chosen:
            found = sorted(sources[(subscriber, pattern)], key=rank.__getitem__)  # in the grid's order
            for publisher in found[: EDGES - len(edges)]:
                edges.append({"publisher": publisher, "subscriber": subscriber, "pattern": pattern, "source": source})
            if not found:
                dangling.append({"subscriber": subscriber, "pattern": pattern, "source": source})
        return {"edges": edges, "dangling": dangling, "total": len(subs)}
