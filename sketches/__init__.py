"""Sketches: the behaviours a node can run.

Each module in this package holds one :class:`~nodes.FactoryLoop` subclass;
the grid names it by the module's name (``sketch: buzzer`` is
``sketches/buzzer.py``). Drop a module here to add your own.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from mesh.errors import MeshError
from nodes import FactoryLoop

__all__ = ["SketchError", "available", "load"]


class SketchError(MeshError):
    """A sketch module that cannot be used, with a one-line reason."""


def available() -> list[str]:
    """The names of the sketch modules in this package, sorted."""
    return sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_"))


def load(name: str) -> type[FactoryLoop]:
    """The :class:`FactoryLoop` subclass defined in ``sketches/<name>.py``."""
    if name not in available():
        raise SketchError(f"no sketch named {name!r}; sketches: {', '.join(available())}")
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except Exception as exc:
        raise SketchError(f"sketch {name!r} failed to import: {type(exc).__name__}: {exc}") from exc
    found = [
        value
        for value in vars(module).values()
        if inspect.isclass(value) and issubclass(value, FactoryLoop) and value.__module__ == module.__name__
    ]
    if len(found) != 1:
        names = ", ".join(cls.__name__ for cls in found) or "none"
        raise SketchError(f"sketches/{name}.py must define exactly one FactoryLoop subclass; found: {names}")
    return found[0]
