"""Where the grid's ``sketch:`` finds the behaviour a node runs, and loading it.

A grid's ``sketch:`` is one of (see docs/grid.md, "Where `sketch:` finds a sketch"):

- a name, ``blinker``: ``sketches/blinker.py`` (or ``sketches/blinker/``) in the
  folder of the grid file, searched first; then the built-in sketch of that name
  (the modules of the ``sketches`` package: ``clock``, ``iopin``, ``buzzer``, ``dashboard``);
- a path ending in ``.py``, relative to the grid file: ``./lab/blinker.py``;
- Arduino firmware, a path ending in ``.ino``, relative to the grid file: ``lamp.ino``. Its
  node runs :class:`nodes.firmware.Firmware`, which builds it and runs it on a simulated
  ATmega328P (or talks to a real board running it, with the node's ``serial:``);
- an importable module and class, ``package.module:Class`` (the grid's folder
  is importable too, as a project's own root is).

A module names its class only when it holds several :class:`~nodes.FactoryLoop`
subclasses (``./lab/two.py:Fast``); otherwise it defines exactly one.

The built-ins are found by the package's name, not imported here: the runtime
does not depend on the behaviours it runs.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from mesh.errors import SketchError
from mesh.grid.shown import suggest

from .blame import described, users_line
from .factory import FactoryLoop

__all__ = ["BUILTIN", "FOLDER", "available", "builtins", "is_firmware", "load", "locate", "problem"]

#: The package of the built-in sketches.
BUILTIN = "sketches"

#: The folder beside the grid file searched for sketches by name, before the built-ins.
FOLDER = "sketches"


@functools.cache
def builtins() -> tuple[str, ...]:
    """The names of the built-in sketch modules (the ``sketches`` package's), sorted (looked up once per process)."""
    package = importlib.import_module(BUILTIN)
    return tuple(sorted(info.name for info in pkgutil.iter_modules(package.__path__) if not info.name.startswith("_")))


def _project(grid_path: str | os.PathLike[str] | None) -> Path | None:
    """The folder of the grid file, or None for a grid that has no file (``<memory>``)."""
    if grid_path is None or str(grid_path).startswith("<"):
        return None
    return Path(grid_path).resolve().parent


def _own(folder: Path | None) -> list[str]:
    """The sketch names found in ``sketches/`` beside the grid: ``NAME.py`` files and ``NAME/`` packages."""
    if folder is None or not (folder / FOLDER).is_dir():
        return []
    return sorted(info.name for info in pkgutil.iter_modules([str(folder / FOLDER)]) if not info.name.startswith("_"))


def available(grid_path: str | os.PathLike[str] | None = None) -> list[str]:
    """Every sketch a grid at ``grid_path`` can name: its own ``sketches/`` folder's, then the built-ins."""
    return sorted({*_own(_project(grid_path)), *builtins()})


@dataclass(frozen=True)
class Located:
    """Where a ``sketch:`` value leads: a file to load, or a module to import; and the class, if named."""

    file: Path | None
    module: str | None
    cls: str | None


def _split_class(value: str) -> tuple[str, str | None]:
    """``'x.py:Cls'`` -> ``('x.py', 'Cls')``; a value without ``:Identifier`` at its end keeps it."""
    head, sep, tail = value.rpartition(":")
    if sep and head and tail.isidentifier():
        return head, tail
    return value, None


def _is_path(value: str) -> bool:
    return value.endswith((".py", ".ino")) or "/" in value or value.startswith(".")


def is_firmware(value: str) -> bool:
    """Whether the grid's ``sketch: value`` is Arduino firmware (``lamp.ino``) rather than Python."""
    return value.endswith(".ino")


def locate(value: str, grid_path: str | os.PathLike[str] | None = None) -> Located:
    """Where the grid's ``sketch: value`` is, without importing it; SketchError saying what was tried."""
    folder = _project(grid_path)
    where, cls = (value, None) if is_firmware(value) else _split_class(value)
    if _is_path(where):
        file = Path(where).expanduser()
        if not file.is_absolute():
            file = (folder or Path.cwd()) / file
        if file.is_dir():
            file = file / "__init__.py"
        if not file.is_file():
            raise SketchError(f"no sketch file {where!r}: tried {file}")
        return Located(file=file, module=None, cls=cls)
    if cls is not None:  # package.module:Class
        if not all(part.isidentifier() for part in where.split(".")):
            raise SketchError(f"sketch {value!r}: {where!r} is not a module name")
        _importable(folder)
        try:
            found = importlib.util.find_spec(where)
        except (ImportError, ValueError):
            found = None
        if found is None:
            raise SketchError(f"no module {where!r} for sketch {value!r}: not importable (sys.path, {folder or '.'})")
        return Located(file=None, module=where, cls=cls)
    own = _own(folder)
    if where in own:
        assert folder is not None
        file = folder / FOLDER / f"{where}.py"
        return Located(file=file if file.is_file() else folder / FOLDER / where / "__init__.py", module=None, cls=None)
    if where in builtins():
        return Located(file=None, module=f"{BUILTIN}.{where}", cls=None)
    tried = [f"{FOLDER}/{where}.py beside the grid" if folder is not None else None, "the built-in sketches"]
    known = available(grid_path)
    raise SketchError(
        f"unknown sketch {value!r}; tried {', '.join(t for t in tried if t)}; "
        f"known sketches: {', '.join(known)}{suggest(where, known)}"
    )


def problem(grid_path: str | os.PathLike[str] | None = None) -> Callable[[str], str | None]:
    """For the grid's rules: a function telling what is wrong with a ``sketch:`` value (None if found).

    Each value is looked for once per function (a grid of thousands of nodes names a few sketches).
    """
    found: dict[str, str | None] = {}

    def check(value: str) -> str | None:
        if value not in found:
            try:
                locate(value, grid_path)
            except SketchError as exc:
                found[value] = str(exc)
            else:
                found[value] = None
        return found[value]

    return check


def _importable(folder: Path | None) -> None:
    """Let ``package.module:Class`` find modules in the grid's folder, as a project's root."""
    if folder is not None and str(folder) not in sys.path:
        sys.path.append(str(folder))


_loaded: dict[Path, ModuleType] = {}


def _load_file(file: Path) -> ModuleType:
    """The module of a sketch file, executed once per process whatever the number of nodes running it."""
    file = file.resolve()
    if file in _loaded:
        return _loaded[file]
    stem = file.parent.name if file.name == "__init__.py" else file.stem
    name = f"_sketch_{stem}_{hashlib.sha1(str(file).encode()).hexdigest()[:8]}"
    package = [str(file.parent)] if file.name == "__init__.py" else None  # a sketch package: its own imports work
    spec = importlib.util.spec_from_file_location(name, file, submodule_search_locations=package)
    if spec is None or spec.loader is None:
        raise SketchError(f"cannot load {file} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: dataclasses and typing look their module up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    _loaded[file] = module
    return module


def load(value: str, grid_path: str | os.PathLike[str] | None = None) -> type[FactoryLoop]:
    """The :class:`FactoryLoop` subclass the grid's ``sketch: value`` names (see the module's doc)."""
    found = locate(value, grid_path)
    if is_firmware(value):
        from .firmware import Firmware  # only a grid with firmware pays for it

        return Firmware
    shown = str(found.file) if found.file is not None else found.module
    try:
        if found.file is not None:
            module = _load_file(found.file)
        else:
            assert found.module is not None
            module = importlib.import_module(found.module)
    except SketchError:
        raise
    except Exception as exc:
        where = users_line(exc)  # the user's line that failed: sketches/lamp.py:3
        if where:
            raise SketchError(f"{where}: {described(exc)}") from exc
        raise SketchError(f"sketch {value!r} ({shown}) failed to import: {described(exc)}") from exc
    if found.cls is not None:
        cls = getattr(module, found.cls, None)
        if not (inspect.isclass(cls) and issubclass(cls, FactoryLoop)):
            raise SketchError(f"sketch {value!r}: {shown} has no FactoryLoop subclass named {found.cls!r}")
        return cls
    classes = [
        item
        for item in vars(module).values()
        if inspect.isclass(item)
        and issubclass(item, FactoryLoop)
        and (item.__module__ == module.__name__ or item.__module__.startswith(f"{module.__name__}."))
    ]
    if len(classes) == 1:
        return classes[0]
    names = ", ".join(cls.__name__ for cls in classes) or "none"
    hint = ""
    if classes and found.file is not None:
        where = value if _is_path(value) else f"./{found.file.relative_to(Path(grid_path or '.').resolve().parent)}"
        hint = f"; or name one: sketch: {where}:{classes[0].__name__}"
    raise SketchError(f"sketch {value!r}: {shown} must define exactly one FactoryLoop subclass (found: {names}){hint}")
