"""Where each value of a grid was written: the line map that goes with its plain data.

A *path* names a value inside the plain data of a grid, from the top: the keys
of mappings and the indexes of lists, e.g. ``("nodes", "clock", "port")`` or
``("wires", 0)``. :class:`Marks` maps paths to the lines where their values (and
keys) start, and keeps the text of plain YAML scalars as written, which is all
the rules need of the file once it is plain data. Data built in Python has no
marks; a grid changed by :meth:`Grid.with_node` has the lines of its nodes and
wires only, and a value reports the line of the nearest enclosing value that has one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Marks", "Path"]

#: Where a value is: mapping keys and list indexes from the top of the grid.
Path = tuple[Any, ...]


@dataclass(frozen=True, kw_only=True)
class Marks:
    """Lines and written text of a grid's values, by path (all empty for data built in Python)."""

    values: Mapping[Path, int] = field(default_factory=dict)  # where the value at a path starts
    keys: Mapping[Path, int] = field(default_factory=dict)  # where the key leading to a path is
    written: Mapping[Path, str] = field(default_factory=dict)  # plain (unquoted) scalars as written
    aliases: Mapping[Path, Path] = field(default_factory=dict)  # a YAML alias: the path it first stood at

    def line(self, path: Path) -> int | None:
        """The line of the value at ``path``, or of the nearest enclosing value with a line; None if none."""
        return self._nearest(self.values, path)

    def key(self, path: Path) -> int | None:
        """The line of the key that leads to ``path`` (or of the nearest enclosing one); None if none."""
        return self._nearest(self.keys, path)

    def text(self, path: Path) -> str | None:
        """The text of the plain scalar at ``path`` as written, or None (quoted, not a scalar, or not YAML)."""
        return self._find(self.written, path)

    def _nearest(self, table: Mapping[Path, Any], path: Path) -> Any:
        for end in range(len(path), -1, -1):
            found = self._find(table, path[:end])
            if found is not None:
                return found
        return None

    def _find(self, table: Mapping[Path, Any], path: Path) -> Any:
        """The entry for ``path``, looking inside an alias at the value it repeats."""
        while path not in table:
            for end in range(len(path) - 1, 0, -1):
                first = self.aliases.get(path[:end])
                if first is not None:
                    path = first + path[end:]
                    break
            else:
                return None
        return table[path]
