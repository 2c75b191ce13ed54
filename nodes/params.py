"""Checking a node's parameters against its sketch's ``setup()`` signature, before ``setup()`` runs."""

from __future__ import annotations

import functools
import inspect
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from mesh.errors import GridError
from mesh.grid import NodeSpec

__all__ = ["SketchParameter", "check_params", "sketch_parameters"]


def check_params(cls: type[Any], spec: NodeSpec, path: str, *, complete: bool = True) -> None:
    """Raise :class:`GridError` if ``setup()`` of ``cls`` cannot take ``spec.params``.

    ``complete=False`` checks only the names and types of what ``spec.params`` gives, not
    that it gives every required parameter: for the command line's overrides, which the
    grid's params complete.
    """
    takes_any, names, hints = _setup_of(cls)  # type: ignore[arg-type]  # classes hash by identity
    if takes_any:
        return
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
    if missing and complete:
        name = missing[0]
        raise GridError(
            path,
            spec.line or None,
            f"node {spec.name!r} needs param {name!r} (setup() has no default); "
            f"add it to params: or pass --{name.replace('_', '-')}",
        )


@functools.cache
def _setup_of(cls: type[Any]) -> tuple[bool, dict[str, inspect.Parameter], dict[str, Any]]:
    """What ``cls.setup`` takes, once per class: any keyword (``**params``), its named parameters, their hints."""
    parameters = [p for p in inspect.signature(cls.setup).parameters.values() if p.name != "self"]
    names = {p.name: p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    try:
        hints = typing.get_type_hints(cls.setup)
    except Exception:
        hints = {}
    return any(p.kind is p.VAR_KEYWORD for p in parameters), names, hints


def _fits(value: object, expected: type) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _describe(expected: type) -> str:
    return {int: "a whole number", float: "a number", str: "text", bool: "true or false"}[expected]


@dataclass(frozen=True)
class SketchParameter:
    """One parameter of a sketch's ``setup()``: what a command line can offer as an option."""

    name: str
    kind: type | None  # int, float, str or bool; None: anything (given as YAML)
    default: Any  # inspect.Parameter.empty: required
    help: str


def sketch_parameters(cls: type[Any]) -> list[SketchParameter]:
    """The named parameters of ``cls.setup``, with their types, defaults and the docstring's words for them.

    A docstring describes a parameter as ````name``: what it is`` (up to ``;`` or the line's end).
    """
    signature = inspect.signature(cls.setup)
    try:
        hints = typing.get_type_hints(cls.setup)
    except Exception:
        hints = {}
    described = dict(re.findall(r"``(\w+)``: ([^;\n]+)", inspect.getdoc(cls.setup) or ""))
    found = []
    for parameter in signature.parameters.values():
        if parameter.name == "self" or parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            continue
        kind = hints.get(parameter.name)
        if typing.get_origin(kind) in (typing.Union, types.UnionType):
            rest = [arg for arg in typing.get_args(kind) if arg is not type(None)]
            kind = rest[0] if len(rest) == 1 else None
        found.append(
            SketchParameter(
                name=parameter.name,
                kind=kind if kind in (int, float, str, bool) else None,
                default=parameter.default,
                help=described.get(parameter.name, "").strip().rstrip("."),
            )
        )
    return found
