"""Where a sketch's mistake is: its file and line, for the one line that says what went wrong.

An exception from a sketch's import or its ``setup()`` is one line that names the grid's line,
then the sketch's own file and line, then what went wrong::

    grid.yaml:9: node 'lamp': sketches/lamp.py:16: KeyError: 'led'

The sketch's own line is the innermost frame of the traceback that is the user's code: outside
Python's libraries (the standard library, site-packages) and outside this project's packages
(``mesh``, ``nodes``, the built-in ``sketches``, ``cli``), so that a mistake made through the
surface (``self.publish(...)`` with a bad topic) names the sketch's call, not our code. A
built-in sketch's refusal of its params (``tacks must be 0 (forever) or more``) has no such
frame: the grid's line is where to fix it.
"""

from __future__ import annotations

import linecache
import os
import re
import sys
import sysconfig
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from mesh.errors import MeshError, SketchMistake

__all__ = ["LIBRARY_DIRS", "class_at", "defined_at", "described", "frame_line", "in_sketch", "shorten", "users_line"]

#: Where Python's own modules and installed packages live: a frame there is not the user's code.
LIBRARY_DIRS = tuple(
    {
        os.path.join(path, "")
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if (path := sysconfig.get_path(key))
    }
)
#: This project's packages: a frame of theirs is the runtime's (or a built-in sketch's), not the user's.
_OURS = ("mesh", "nodes", "sketches", "cli", "arduino")
_DEF = ("def ", "async def ")


def shorten(filename: str) -> str:
    """A path relative to the working directory when it is below it."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if relative.startswith("..") else relative


def _is_users(filename: str, module: object) -> bool:
    """Whether code of ``filename`` (in module ``module``) is the user's own."""
    if filename.startswith("<") or filename.startswith(LIBRARY_DIRS):
        return False
    return not (isinstance(module, str) and module.partition(".")[0] in _OURS)


def frame_line(frame: FrameType | None) -> str:
    """``sketches/lamp.py:12`` for ``frame`` if it is the user's code, else ``''``."""
    if frame is None or not _is_users(frame.f_code.co_filename, frame.f_globals.get("__name__")):
        return ""
    return f"{shorten(frame.f_code.co_filename)}:{frame.f_lineno}"


def users_line(exc: BaseException) -> str:
    """``sketches/lamp.py:16``: the innermost line of the user's code in ``exc``'s traceback (``''``: none).

    A SyntaxError names its own file and line, when the file is the user's.
    """
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno and _is_users(exc.filename, None):
        return f"{shorten(exc.filename)}:{exc.lineno}"
    found = ""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        found = frame_line(tb.tb_frame) or found
        tb = tb.tb_next
    return found


def described(exc: BaseException) -> str:
    """What went wrong, in words: our errors, ValueError and TypeError (a sketch refusing its params, or
    Python's own words for a wrong value or type, which say what they are) as they read; any other
    exception with its type, as Python shows it (``KeyError: 'led'``)."""
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__}: {exc.msg}"
    if isinstance(exc, (MeshError, ValueError, TypeError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def in_sketch(exc: BaseException) -> str:
    """``sketches/lamp.py:16: KeyError: 'led'``: where in the user's code, then what (just what, if not theirs)."""
    where = "" if isinstance(exc, SketchMistake) else users_line(exc)  # a SketchMistake says where itself
    return f"{where}: {described(exc)}" if where else described(exc)


def defined_at(function: Callable[..., Any]) -> str:
    """``sketches/lamp.py:17``: the line of ``def`` of ``function`` (past its decorators), or ``''``."""
    code = getattr(function, "__code__", None)
    if code is None:
        return ""
    lines = linecache.getlines(code.co_filename)
    first = code.co_firstlineno  # a decorated function's first decorator
    line = next(
        (n for n in range(first, min(first + 20, len(lines)) + 1) if lines[n - 1].lstrip().startswith(_DEF)), first
    )
    return f"{shorten(code.co_filename)}:{line}"


def class_at(cls: type) -> str:
    """``sketches/lamp.py:8``: where ``class`` of ``cls`` is written, or ``''`` (a class of ours, or no source)."""
    module = sys.modules.get(cls.__module__)
    filename = getattr(module, "__file__", None)
    if not filename or not _is_users(filename, cls.__module__):
        return ""
    statement = re.compile(rf"\s*class\s+{re.escape(cls.__name__)}\b")
    line = next((n for n, text in enumerate(linecache.getlines(filename), start=1) if statement.match(text)), None)
    return f"{shorten(filename)}:{line}" if line else shorten(filename)
