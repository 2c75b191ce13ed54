"""Checking a node's parameters against its sketch's ``setup()`` signature, before ``setup()`` runs."""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from mesh.errors import GridError
from mesh.grid import NodeSpec

__all__ = ["check_params"]


def check_params(cls: type[Any], spec: NodeSpec, path: str) -> None:
    """Raise :class:`GridError` if ``setup()`` of ``cls`` cannot take ``spec.params``."""
    signature = inspect.signature(cls.setup)
    parameters = [p for p in signature.parameters.values() if p.name != "self"]
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return
    names = {p.name: p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    try:
        hints = typing.get_type_hints(cls.setup)
    except Exception:
        hints = {}
    where = f"node {spec.name!r} (sketch {spec.sketch})"
    for key, value in spec.params.items():
        if key not in names:
            takes = ", ".join(names) or "none"
            raise GridError(path, spec.line, f"{where} takes no parameter {key!r}; its parameters: {takes}")
        expected = hints.get(key)
        optional = typing.get_origin(expected) in (typing.Union, types.UnionType) and type(None) in typing.get_args(
            expected
        )
        if optional:
            rest = [arg for arg in typing.get_args(expected) if arg is not type(None)]
            expected = rest[0] if len(rest) == 1 else None
            if value is None:
                continue
        if expected in (int, float, str, bool) and not _fits(value, expected):
            raise GridError(path, spec.line, f"{where}: parameter {key!r} must be {_describe(expected)}, not {value!r}")
    missing = [n for n, p in names.items() if p.default is p.empty and n not in spec.params]
    if missing:
        raise GridError(path, spec.line, f"{where} needs parameter {missing[0]!r}")


def _fits(value: object, expected: type) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _describe(expected: type) -> str:
    return {int: "a whole number", float: "a number", str: "text", bool: "true or false"}[expected]
