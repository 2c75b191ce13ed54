"""Following the grid file: one watcher per process reads each edit once and hands it to every node it runs.

:class:`GridWatch` looks at the grid file from a thread of its own (a hash of its bytes, once
a second) and, when it has changed and holds still, reads it there through the very function
that read it at start (``GridSource.read``: the same validation, the command line's overrides
applied again): no node's event loop waits for the disk or the YAML parser, however large
the edit, and nothing of the watcher runs on the loop until there is an edit to take. Each node then takes the new grid
(:meth:`nodes.node.Node.reload`): wires, links, subscriptions, params, and one line for what
needs a restart. An edit that does not validate is one line, ``grid.yaml:LINE: ...``, once;
the running grid is kept until the next valid edit. A file that vanishes for a moment (an
editor saving by rename) keeps the running grid too.

One watcher per process, not one per node: ``arduino-mesh up`` runs thousands of nodes of one grid,
and N watchers would each hash and parse a file that grows with N.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mesh.errors import GridError, MeshError
from mesh.grid import Grid, read_grid

if TYPE_CHECKING:
    from .node import Node

__all__ = ["POLL", "SETTLE", "GridSource", "GridWatch"]

#: Seconds between two looks at the grid file: a hash of its bytes, nothing to notice.
POLL = 1.0
#: Seconds a changed file must hold still before it is read (a write in progress is not read half-done).
SETTLE = 0.05


@dataclass(frozen=True)
class GridSource:
    """Where a grid comes from: the file to watch and how to read it into a grid.

    ``read`` is what read the grid at start (the CLI's: known sketches checked, the command
    line's overrides applied); by default :func:`~mesh.grid.read_grid` of ``path``. It raises
    :class:`~mesh.errors.MeshError` for an edit that cannot be used. Make the source when the
    grid is read: an edit from then on is one the nodes follow.
    """

    path: Path
    read: Callable[[], Grid] | None = None
    every: float = POLL
    #: A hash of the file as it was when the source was made (None: not there).
    digest: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", digest_of(self.path))

    def load(self) -> Grid:
        return self.read() if self.read is not None else read_grid(self.path)


def digest_of(path: Path) -> str | None:
    """A hash of the file's bytes; None while it is not there (an editor saving by rename)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class GridWatch:
    """The one watcher of ``source`` for ``nodes`` (all of one grid, in this process).

    A thread of its own looks at the file and reads each edit; the event loop only takes
    the grids it hands over (in order) and gives each to every node.
    """

    def __init__(self, source: GridSource, nodes: Sequence[Node], log: logging.Logger) -> None:
        self.source = source
        self.nodes = list(nodes)
        self.log = log
        #: Edits read and handed to the nodes, over the watcher's life.
        self.reads = 0

    async def run(self) -> None:
        """Hand each valid edit to every node, until cancelled."""
        loop = asyncio.get_running_loop()
        edits: asyncio.Queue[Grid | None] = asyncio.Queue()  # None: an edit refused as it was read
        stop = threading.Event()
        thread = threading.Thread(
            target=self._look, args=(stop, loop, edits), name="arduino-mesh grid watch", daemon=True
        )
        thread.start()
        refused = False
        try:
            while True:
                grid = await edits.get()
                self.reads += 1
                if grid is None:
                    refused = True
                    continue
                outcomes = []
                for node in self.nodes:
                    try:  # timed by the node's watch: an edit that takes long to apply is said, as sketch code is
                        outcomes.append(await node.watch.run(node.reload(grid), "grid reload"))
                    except Exception as exc:
                        node.log.error("applying %s failed", self.source.path, exc_info=exc)
                        outcomes.append(None)
                was_refused, refused = refused, any(outcome is None for outcome in outcomes)
                if was_refused and outcomes and all(outcome == [] for outcome in outcomes):
                    self.log.info("%s is valid again; nothing to change", self.source.path)
        finally:
            stop.set()  # the thread ends at its next look

    def _look(self, stop: threading.Event, loop: asyncio.AbstractEventLoop, edits: asyncio.Queue[Grid | None]) -> None:
        """In the watcher's thread: look every ``source.every`` seconds, read each edit once it holds still.

        A look hashes the file's bytes: a hash misses no edit, where size and mtime do (an
        edit of the same length within the file system's timestamp granularity).
        """
        source = self.source
        digest = source.digest  # what the nodes run, or the last edit refused
        while not stop.wait(source.every):
            fresh = digest_of(source.path)
            if fresh is None or fresh == digest:
                continue  # unchanged, or gone for a moment: the running grid stays
            if stop.wait(SETTLE):
                return
            if digest_of(source.path) != fresh:
                continue  # still being written: look again next time
            digest = fresh
            try:  # None too: the next valid edit is then said to be valid again
                loop.call_soon_threadsafe(edits.put_nowait, self._read())
            except RuntimeError:  # the loop has closed: nobody to hand it to
                return

    def _read(self) -> Grid | None:
        """The edit, read as at start; None (and one line) if it cannot be used."""
        path = self.source.path
        try:
            return self.source.load()
        except GridError as exc:
            self.log.error("%s; keeping the running grid", exc)
        except MeshError as exc:
            self.log.error("%s: %s; keeping the running grid", path, exc)
        except Exception as exc:  # whatever a sketch module on the way raises: the nodes go on
            self.log.error("reading %s failed; keeping the running grid", path, exc_info=exc)
        return None
