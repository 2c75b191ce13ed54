"""How the grid's error messages show values, and the suggestions they make."""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["kind", "show", "shown", "suggest"]


class _Repr(reprlib.Repr):
    """repr() for messages: short, with read-only mappings and tuples shown as written."""

    def __init__(self) -> None:
        super().__init__()
        self.maxstring = 80
        self.maxother = 80
        self.maxlevel = 3

    def repr_mappingproxy(self, obj: Mapping[Any, Any], level: int) -> str:
        return self.repr_dict(dict(obj), level)

    def repr_tuple(self, obj: tuple[Any, ...], level: int) -> str:
        return self.repr_list(list(obj), level)

    def repr_ComplexKey(self, obj: Any, level: int) -> str:  # reprlib dispatches on the type's name
        """A YAML key that is a list or a mapping (see :class:`mesh.grid.loader.ComplexKey`): shown as written."""
        return self.repr1(obj.value, level)


#: A value for a message: ``'text'``, ``5``, ``['a', 'b']``, cut short when long.
show = _Repr().repr


def shown(value: Any) -> str:
    """A value for a message, with text marked as such: ``the text '8765'``, ``8.5``."""
    return f"the text {show(value)}" if isinstance(value, str) else show(value)


def kind(value: Any) -> str:
    """How to name what a value is: 'a list', 'a string', 'a number', ..."""
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def suggest(word: str, candidates: Iterable[str]) -> str:
    """``; did you mean 'x'?`` when a candidate is close to ``word``, else ``''``."""
    matches = difflib.get_close_matches(word, list(candidates), n=1)
    return f"; did you mean {matches[0]!r}?" if matches else ""
