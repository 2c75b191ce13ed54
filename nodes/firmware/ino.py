"""An Arduino sketch as C++: the ``.ino`` made a ``.cpp`` as the Arduino IDE makes it, and gcc's errors made the sketch's.

Plain text functions, no I/O (:mod:`nodes.firmware.build` runs the compiler):

- :func:`preprocess`: ``#include <Arduino.h>``, then the sketch under ``#line 1 "lamp.ino"`` so
  that the compiler names the sketch and its own lines, with prototypes of its top-level
  functions inserted before the first definition (each followed by a ``#line`` that puts the
  numbering back), so that a function can be called above its definition, as in the IDE;
- :func:`parse_errors`: gcc's and ld's output as one line per error,
  ``lamp.ino:LINE:COL: error: message``, naming no generated file (link errors name LTO
  temporaries: their sketch line is kept, the temporary dropped).

Prototypes are made for top-level ``type name(params) {`` definitions, except what the
IDE's generator also leaves alone or gets wrong: methods (``A::f``), templates, operators,
functions with default arguments, macros such as ``ISR(vector) {``, and names already declared.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable

__all__ = ["included", "parse_errors", "preprocess"]

_CONTROL_WORDS = frozenset(
    {"if", "else", "for", "while", "do", "switch", "return", "sizeof", "case", "new", "delete", "catch"}
)
# A top-level function definition's head, on the text with comments, strings and preprocessor lines
# blanked: return type words (with * & and template arguments), a name, a parameter list, then "{".
_FUNCTION_HEAD = re.compile(
    r"""(?P<head>
        (?:[A-Za-z_][\w:<>,\s\*&]*?[\s\*&])   # return type, qualifiers (static, inline, unsigned...)
        (?P<name>[A-Za-z_]\w*)\s*
        \((?P<params>[^()]*)\)\s*
    )\{""",
    re.VERBOSE,
)


def _blank_noncode(text: str) -> str:
    """The text with comments, string and char literals, and preprocessor lines turned into spaces.

    Newlines are kept, so offsets and line numbers stay those of the original.
    """
    out = list(text)
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if c == "\n":
            at_line_start = True
            i += 1
            continue
        if at_line_start and c in " \t":
            i += 1
            continue
        if at_line_start and c == "#":  # a preprocessor line, with its continuations
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    out[i] = " "
                    i += 2
                    continue
                out[i] = " "
                i += 1
            continue
        at_line_start = False
        if text.startswith("//", i):
            while i < n and text[i] != "\n":
                out[i] = " "
                i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            for j in range(i, end):
                if text[j] != "\n":
                    out[j] = " "
            i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            for k in range(i, min(j + 1, n)):
                if text[k] != "\n":
                    out[k] = " "
            i = j + 1
        else:
            i += 1
    return "".join(out)


def _top_level(code: str) -> str:
    """The blanked code with everything inside braces blanked too (newlines kept), braces kept."""
    out = list(code)
    depth = 0
    for i, c in enumerate(code):
        if c == "{":
            depth += 1
            if depth > 1:
                out[i] = " "
        elif c == "}":
            depth -= 1
            if depth > 0:
                out[i] = " "
        elif depth > 0 and c != "\n":
            out[i] = " "
    return "".join(out)


@dataclasses.dataclass(frozen=True)
class _Function:
    line: int  # 1-based line of the definition's first word
    offset: int  # offset of that first word
    prototype: str  # e.g. "void blink(int times);"


def _find_functions(text: str) -> list[_Function]:
    """Top-level function definitions for which a prototype is simply doable.

    Left out (no prototype, exactly as if the IDE's generator had failed on them): methods
    (``A::f``), templates, functions with default arguments (a prototype would repeat them), and
    names that already have a declaration.
    """
    code = _top_level(_blank_noncode(text))
    # Names already declared (a prototype written by hand) need none.
    declared = {m.group(1) for m in re.finditer(r"([A-Za-z_]\w*)\s*\([^()]*\)\s*;", code)}
    functions: list[_Function] = []
    for match in _FUNCTION_HEAD.finditer(code):
        name = match.group("name")
        head = " ".join(match.group("head").split())  # one line, single spaces
        words = head.split("(")[0].split()
        if (
            name in _CONTROL_WORDS
            or name in declared
            or len(words) < 2  # a macro such as ISR(vector) {, or a constructor-like call
            or words[0] in _CONTROL_WORDS
            or "::" in head
            or "template" in head
            or "operator" in head
            or "=" in match.group("params")
        ):
            continue
        start = match.start()
        functions.append(_Function(line=text.count("\n", 0, start) + 1, offset=start, prototype=head + ";"))
    return functions


_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*[<"]([\w./-]+\.h)[>"]', re.MULTILINE)


def included(source: str) -> list[str]:
    """The headers the sketch includes (``#include <Wire.h>``: ``Wire.h``), in order, once each.

    Commented-out includes are not counted: the text is read with comments blanked, but not
    its preprocessor lines (those are what is read here).
    """
    found: list[str] = []
    for match in _INCLUDE.finditer(_blank_comments(source)):
        if match[1] not in found:
            found.append(match[1])
    return found


def _blank_comments(text: str) -> str:
    """``text`` with its comments made spaces (newlines kept), strings and preprocessor lines as they are."""
    return re.sub(
        r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"',
        lambda m: m[0] if m[0].startswith('"') else re.sub(r"[^\n]", " ", m[0]),
        text,
        flags=re.S,
    )


def preprocess(source: str, name: str) -> str:
    """The ``.cpp`` the Arduino IDE would make of the sketch ``source`` named ``name`` (``lamp.ino``).

    ``#include <Arduino.h>`` first, then the sketch under ``#line 1 "lamp.ino"``, with prototypes of
    its top-level functions before the first function definition; every inserted line is followed
    by a ``#line`` directive so diagnostics keep naming the sketch's own lines.
    """
    functions = _find_functions(source)
    header = f'#include <Arduino.h>\n#line 1 "{name}"\n'
    if not functions:
        return header + source
    first = min(functions, key=lambda f: f.offset)
    # Insert at the start of the first definition's line, so what precedes on that line stays put.
    insert_at = source.rfind("\n", 0, first.offset) + 1
    protos = "".join(f'#line {f.line} "{name}"\n{f.prototype}\n' for f in functions)
    return header + source[:insert_at] + protos + f'#line {first.line} "{name}"\n' + source[insert_at:]


_DIAGNOSTIC = re.compile(r"^(?P<loc>[^\s:][^:]*:\d+(?::\d+)?): (?P<kind>fatal error|error): (?P<msg>.*)$")
_REGION = re.compile(r"section [`'](?P<section>[.\w]+)' (?:is not within|will not fit in) region [`'](?P<region>\w+)'")
_LINK_UNDEFINED = re.compile(r"^(?P<loc>[^\s:][^:]*:\d+):? undefined reference to [`'](?P<sym>[^'`]+)'")


def parse_errors(output: str, name: str, shown: str | None = None, generated: Iterable[str] = ()) -> list[str]:
    """One line per error, ``lamp.ino:LINE:COL: error: message``, from gcc's and ld's ``output``.

    ``name`` is the sketch's file name as the ``#line`` directives give it (``lamp.ino``);
    ``shown`` is how the errors name it (the path as the grid writes it, ``firmware/lamp.ino``);
    ``generated`` are the paths of generated files (the ``.cpp``), named as the sketch too. Notes,
    warnings and "In function" lines are dropped; an error seen twice is one line.
    """
    shown = shown or name
    made = (name, *generated)

    def place(where: str) -> str:
        path, _, rest = where.partition(":")
        sketch = path in made or os.path.basename(path) == name
        return f"{shown}:{rest}" if sketch else where

    errors: list[str] = []
    for raw in output.splitlines():
        line = raw.strip()
        diagnostic = _DIAGNOSTIC.match(line)
        undefined = None if diagnostic else _LINK_UNDEFINED.search(line)
        if diagnostic:
            entry = f"{place(diagnostic['loc'])}: error: {diagnostic['msg']}"
        elif undefined:
            entry = f"{place(undefined['loc'])}: error: undefined reference to '{undefined['sym']}'"
        elif _REGION.search(line):  # the linker's way of saying it does not fit
            region = _REGION.search(line)
            assert region is not None
            memory = (
                "RAM" if region["region"] == "data" else "flash" if region["region"] == "text" else region["region"]
            )
            entry = f"{shown}: error: too big: its {region['section']} does not fit in the MCU's {memory}"
        elif "undefined reference to" in line:  # no line known: the sketch as a whole
            symbol = line.split("undefined reference to", 1)[1].strip().strip("`'")
            entry = f"{shown}: error: undefined reference to '{symbol}'"
        else:
            continue
        if entry not in errors:
            errors.append(entry)
    return errors
