"""Reloading the grid: a running node follows the edits of its ``grid.yaml``.

:func:`watch` looks at the grid file on the event loop's clock (a hash of its bytes)
and, when it has changed and holds still, reads it through
the very function that read it at start (``GridSource.read``: the same validation, the
command line's overrides applied again). An edit that does not validate is one line,
``grid.yaml:LINE: ...``, once; the running grid is kept until the next valid edit. A file
that vanishes for a moment (an editor saving by rename) keeps the running grid too.

:func:`apply` puts a valid new grid into a running node:

- the node's own wires: ``self.targets`` reads the new grid, so a new wire carries the
  next ``stream()``; a link to a node it is no longer wired to (or that left the grid) is
  closed once its outbox is empty: what was in flight is delivered first, or fails after
  the node's ``--wait`` like any message to a peer that stays away;
- its subscriptions: patterns added and removed, and each pattern's publishers again
  (a new node with a port is subscribed at, one that left is unsubscribed from);
- peers' addresses: a link to a peer that moved reconnects to its new address, and
  re-sends what is unacked there;
- its own ``timeout:``: from the next message on;
- its own params: the sketch's ``reconfigure(**params)`` when it defines one; otherwise
  one line saying that they apply at the next start;
- what cannot change while the node runs (its host, port, sketch, outbox, max_size,
  durable, the grid's auth and tls): one line, "cannot change while running: restart the node";
  the node keeps running as it was started for those.

Then one line sums up what changed: ``grid.yaml reloaded: node led added, wire iopin -> led added``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mesh.errors import GridError, MeshError
from mesh.grid import Grid, read_grid
from mesh.links import Link

from .factory import FactoryLoop
from .params import check_params

if TYPE_CHECKING:
    from .node import Node

__all__ = ["FIXED", "POLL", "SETTLE", "GridSource", "apply", "watch"]

#: Seconds between two looks at the grid file: a hash of a few hundred bytes, nothing to notice.
POLL = 1.0
#: Seconds a changed file must hold still before it is read (a write in progress is not read half-done).
SETTLE = 0.05
#: Seconds between two looks at a retired link's outbox, until it is empty.
DRAIN_POLL = 0.05
#: A node's own fields that cannot change while it runs: the server, the sketch and the links are built from them.
FIXED = ("host", "port", "sketch", "outbox", "max_size", "durable")


@dataclass(frozen=True)
class GridSource:
    """Where a node's grid comes from: the file to watch and how to read it into a grid.

    ``read`` is what read the grid at start (the CLI's: known sketches checked, the
    command line's overrides applied); by default :func:`~mesh.grid.read_grid` of ``path``.
    It raises :class:`~mesh.errors.MeshError` for an edit that cannot be used. Make the
    source when the grid is read: an edit from then on is one the node follows.
    """

    path: Path
    read: Callable[[], Grid] | None = None
    every: float = POLL
    #: A hash of the file as it was when the source was made (None: not there).
    digest: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", _digest(self.path))

    def load(self) -> Grid:
        return self.read() if self.read is not None else read_grid(self.path)


def _digest(path: Path) -> str | None:
    """A hash of the file's bytes; None while it is not there (an editor saving by rename)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


async def watch(node: Node, source: GridSource) -> None:
    """Look at ``source`` every ``source.every`` seconds and apply each valid edit to ``node``, until cancelled.

    A look hashes the file's bytes: a grid is a few hundred bytes, and a hash misses no
    edit, where size and mtime do (an edit of the same length within the file system's
    timestamp granularity). A changed file is read once it holds still for ``SETTLE``.
    """
    path = source.path
    digest = source.digest  # what the node runs, or the last edit refused
    refused = False
    while True:
        await asyncio.sleep(source.every)
        fresh = _digest(path)
        if fresh is None or fresh == digest:
            continue  # unchanged, or gone for a moment: the running grid stays
        await asyncio.sleep(SETTLE)
        if _digest(path) != fresh:
            continue  # still being written: look again next time
        digest = fresh
        refused, was_refused = True, refused
        try:
            grid = source.load()
        except GridError as exc:
            node.log.error("%s; keeping the running grid", exc)
            continue
        except MeshError as exc:
            node.log.error("%s: %s; keeping the running grid", path, exc)
            continue
        except Exception as exc:  # whatever a sketch module on the way raises: the node goes on
            node.log.error("reading %s failed; keeping the running grid", path, exc_info=exc)
            continue
        try:
            summary = await apply(node, grid)
            refused = summary is None
            if summary == [] and was_refused:
                node.log.info("%s is valid again; nothing to change", path)
        except Exception as exc:
            node.log.error("applying %s failed", path, exc_info=exc)


async def apply(node: Node, new: Grid) -> list[str] | None:
    """Put the valid grid ``new`` into the running ``node``; the summary of what changed (also logged).

    A grid in which the node cannot run at all (its params refused by its sketch, the
    node gone) is refused as a whole, in one line, and the running grid is kept: None.
    """
    old = node.grid
    name = node.name
    try:
        spec = new.node(name)
    except MeshError as exc:
        node.log.error("%s: %s; keeping the running grid", new.path, exc)
        return None
    running = node.spec
    fixed = [key for key in FIXED if getattr(spec, key) != getattr(running, key)]
    if "port" in fixed and running.port == 0 and spec.port == node.port:
        fixed.remove("port")  # the grid now names the port the node bound for 0
    try:
        if fixed or new.auth_token_env != old.auth_token_env or new.tls != old.tls:
            keep = {key: getattr(running, key) for key in fixed}
            kept = dataclasses.replace(
                new.with_node(name, **keep) if keep else new, auth_token_env=old.auth_token_env, tls=old.tls
            )
        else:
            kept = new
        if spec.params != running.params:
            check_params(type(node.sketch), spec, new.path)
    except GridError as exc:
        node.log.error("%s; keeping the running grid", exc)
        return None
    diff = old.diff(kept)
    if new.auth_token_env != old.auth_token_env:
        node.log.warning("%s: auth cannot change while running: restart the node", new.path)
    if new.tls != old.tls:
        node.log.warning("%s: tls cannot change while running: restart the node", new.path)
    if fixed:
        where = f"{new.path}:{spec.line}" if spec.line else new.path
        node.log.warning("%s: node %r: %s cannot change while running: restart the node", where, name, ", ".join(fixed))
    node.grid = kept  # even unchanged: its lines are the file's now, for the next line an error names
    node.spec = kept.node(name)
    node.reactor.timeout = node.spec.timeout  # the grid's bound on one loop() holds from the next message
    if not diff:
        return []
    subscribed = {peer for peer, link in node.links.items() if link.patterns}
    await _subscriptions(node, old, kept)
    await _links(node, old, kept, subscribed)
    if "params" in diff.changed(name):
        await _params(node, kept)
    summary = diff.summary()
    node.log.info("%s reloaded: %s", new.path, ", ".join(summary))
    return summary


async def _links(node: Node, old: Grid, new: Grid, subscribed: set[str]) -> None:
    """Links follow their peers' addresses; links no longer wired or subscribed through (or to a node gone) retire.

    ``subscribed``: the peers whose links held subscriptions before the edit.
    """
    for peer, link in list(node.links.items()):
        spec = new.nodes.get(peer)
        if spec is not None and spec.uri is not None:
            if spec.uri != link.uri:
                node.log.info("%s moved to %s", peer, spec.uri)
            await link.retarget(spec.uri, spec.max_size)
    unwired = (set(old.targets(node.name)) | subscribed) - set(new.targets(node.name))
    for peer, link in list(node.links.items()):
        if peer in unwired or new.nodes.get(peer) is None or new.nodes[peer].uri is None:
            _in_background(node, _retire(node, peer, link), f"{node.name} retires {peer}")


def _in_background(node: Node, work: Coroutine[Any, Any, Any], name: str) -> None:
    """Run ``work`` as one of the node's background tasks (cancelled when it stops); forget those done."""
    node._background[:] = [task for task in node._background if not task.done()]
    node._background.append(asyncio.create_task(work, name=name))


def _retirable(node: Node, peer: str, link: Link) -> bool:
    """The link is still ours, its peer is not wired to, and no subscription needs it."""
    return node.links.get(peer) is link and peer not in node.targets and not link.patterns


async def _retire(node: Node, peer: str, link: Link) -> None:
    """Close the link to ``peer`` once its outbox is empty (what is in flight is delivered or fails first)."""
    # The outbox has no "empty" event to wait on; a look every DRAIN_POLL on the loop's clock is cheap.
    while _retirable(node, peer, link) and link.pending:  # noqa: ASYNC110
        await asyncio.sleep(DRAIN_POLL)
    if _retirable(node, peer, link):
        del node.links[peer]  # a later stream() to the peer opens a new link
        await link.close()
        node.log.info(
            "link to %s closed: %s", peer, "no longer needed" if peer in node.grid.nodes else "gone from the grid"
        )


async def _subscriptions(node: Node, old: Grid, new: Grid) -> None:
    """Drop the patterns removed, subscribe to those added, and follow each pattern's publishers.

    What stops is done here (a frame each); what starts runs in the background, as at
    start: a publisher that is down gets the subscription when it is up.
    """
    name = node.name
    before, after = old.node(name).subscribe, new.node(name).subscribe
    removed = [pattern for pattern in before if pattern not in after]
    added = [pattern for pattern in after if pattern not in before]
    for pattern in removed:
        await node.unsubscribe(pattern)
    hear = node.hearer()
    starts = [node.subscribe(pattern, hear) for pattern in added]
    for pattern in [p for p in node.inbox.handlers if p not in added]:  # held before this edit, the sketch's too
        publishers = new.publishers(pattern, but=name)
        for peer, link in list(node.links.items()):
            if pattern in link.patterns and peer not in publishers:
                await link.unsubscribe(pattern)
        for publisher in publishers:
            held = node.links.get(publisher)
            if held is None or pattern not in held.patterns:
                starts.append(node.link(publisher).subscribe(pattern))
    for start in starts:
        _in_background(node, start, f"{name} follows the grid's subscriptions")


async def _params(node: Node, grid: Grid) -> None:
    """The sketch's ``reconfigure(**params)`` if it defines one; otherwise one line: they apply at the next start."""
    spec = grid.node(node.name)
    where = f"{grid.path}:{spec.line}" if spec.line else grid.path
    if type(node.sketch).reconfigure is FactoryLoop.reconfigure:
        node.log.warning(
            "%s: node %r: params changed; its sketch has no reconfigure(), so they apply when the node restarts",
            where,
            node.name,
        )
        return
    try:
        await node.watch.call("reconfigure()", node._hook("reconfigure"), **spec.params)
    except (TypeError, ValueError) as exc:
        node.log.error("%s: node %r: reconfigure: %s", where, node.name, exc)
    except Exception as exc:
        node.log.error("reconfigure() failed", exc_info=exc)
