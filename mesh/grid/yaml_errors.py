"""PyYAML's errors in plain words, at the line the user must fix.

PyYAML reports what its parser expected (``expected <block end>, but found
'<block mapping start>'``) at the token where it gave up: its *problem mark*. Its
*context mark* is where the construct it was reading began. Which one is the line
to fix depends on the mistake:

* a line indented wrong (``expected <block end>, ...``, ``mapping values are not
  allowed here`` on a line deeper than the one above it): the problem mark's line;
  the context mark is the enclosing mapping, often far above;
* a ``{`` or ``[`` never closed, a quote never closed, a key with no ``:``: the
  context mark's line, where it was opened; the problem mark is wherever the
  parser noticed, lines later or at the end of the file;
* a tab: the problem mark's line.

:func:`explain` turns an error into ``(line, message)``; :func:`folded_item` finds a
list item indented so deep that YAML read it as more text of the item above,
which is valid YAML and so no error of PyYAML's. Pure functions of the text.
"""

from __future__ import annotations

import re

import yaml

__all__ = ["explain", "folded_item", "unmarked_key"]

_CLOSING = {"{": "}", "[": "]"}
#: ``clock {sketch: clock}``: a key and its value with no ':' between them.
_UNMARKED_KEY = re.compile(r"^\s*([\w-]+)\s+[{\[]")
_KEY = re.compile(r"""^([^\s#'"{[\]}:,-][^:#]*?|"[^"]*"|'[^']*'):(\s|$)""")


def explain(exc: yaml.MarkedYAMLError, text: str) -> tuple[int | None, str]:
    """The line to fix (1-based, None if unknown) and one plain sentence for ``exc``."""
    problem = exc.problem or ""
    context = exc.context or ""
    at = exc.problem_mark
    opened = exc.context_mark
    lines = text.splitlines()
    if at is None:
        return None, f"invalid YAML: {_yaml_problem(exc)}"
    line = at.line + 1
    if "'\\t'" in problem or "\t" in problem:
        return line, _tab(lines, at.line, at.column)
    if problem.startswith("expected <block end>") and _starts_line(lines, at.line, at.column):
        return line, _indentation(lines, at.line) or f"invalid YAML: {_yaml_problem(exc)}"
    if problem.startswith("expected '<document start>'") and _starts_line(lines, at.line, at.column):
        top = next((n for n in range(len(lines)) if _meaningful(lines[n])), None)
        if top is not None and top < at.line and _indent(lines[top]) > at.column:
            return top + 1, (
                f"bad indentation: {_describe(lines[top])} is indented {_spaces(lines[top])}, but "
                f"{_describe(lines[at.line])} on line {line} is indented {_spaces(lines[at.line])}: "
                "the keys at the top of the file must line up, best with none"
            )
    if problem == "mapping values are not allowed here":
        return _colon(lines, at.line, at.column)
    if context.startswith(("while parsing a flow mapping", "while parsing a flow sequence")) and (
        opened is not None and opened.line == at.line
    ):
        got = problem.rpartition("but got ")[2]
        bracket = _line(lines, opened.line)[opened.column : opened.column + 1]
        if got == "':'":
            return line, f"a ':' that YAML cannot read here (column {at.column + 1}): quote a value that holds ': '"
        if got in ("'}'", "']'") and got != f"'{_CLOSING.get(bracket)}'":
            return line, (
                f"the {bracket!r} at column {opened.column + 1} is closed by {got} at column {at.column + 1}; "
                f"close it with {_CLOSING.get(bracket)!r}"
            )
    if opened is not None and opened.line != at.line:
        if context.startswith(("while parsing a flow mapping", "while parsing a flow sequence")):
            bracket = "{" if "mapping" in context else "["
            closing = "}" if bracket == "{" else "]"
            found = f"line {line}" if line <= len(lines) else "the end of the file"
            return opened.line + 1, (
                f"the {bracket!r} at column {opened.column + 1} is never closed: "
                f"YAML read on to {found} looking for {closing!r}"
            )
        if context.startswith("while scanning a quoted scalar") and "end of stream" in problem:
            return opened.line + 1, f"the quote at column {opened.column + 1} is never closed"
        if context.startswith("while scanning a simple key"):
            return opened.line + 1, f"{_describe(_line(lines, opened.line))} needs a ':' after it"
    return line, f"invalid YAML: {_yaml_problem(exc)}"


def folded_item(text: str, start: int, end: int) -> tuple[int, str] | None:
    """A list item folded into the plain scalar on lines ``start``..``end`` (0-based), as ``(line, message)``.

    ``- a -> b`` followed by ``   - b -> c`` one space deeper is one item, the text
    ``a -> b - b -> c``: valid YAML, and never what was meant.
    """
    lines = text.splitlines()
    for number in range(start + 1, min(end, len(lines) - 1) + 1):
        if _is_item(lines[number].strip()):
            above = _previous(lines, number)
            if above is None:
                return None
            return number + 1, (
                f"bad indentation: {_describe(lines[number])} is indented {_spaces(lines[number])}, "
                f"more than {_describe(lines[above])} on line {above + 1} ({_spaces(lines[above])}), "
                "so YAML reads it as more text of that item; items of one list must line up"
            )
    return None


def unmarked_key(key: str) -> str | None:
    """``'clock' needs a ':' after it`` for the key ``clock {sketch`` that YAML reads from ``clock {sketch: clock}``."""
    match = _UNMARKED_KEY.match(key)
    return None if match is None else f"{match[1]!r} needs a ':' after it"


def _tab(lines: list[str], row: int, column: int) -> str:
    before = _line(lines, row)[:column]
    if not before.strip():
        return "a tab in the indentation: YAML indents with spaces only"
    return f"a tab at column {column + 1}: YAML allows only spaces here"


def _indentation(lines: list[str], row: int) -> str | None:
    """Why the line ``row`` (0-based) is indented wrong, naming the line above it that it should line up with."""
    here = lines[row]
    indent = _indent(here)
    above = _previous(lines, row)
    if above is None:
        return None
    if _is_item(here.strip()):
        item = next((n for n in _enclosing(lines, row) if _is_item(lines[n].strip())), None)
        if item is not None and _indent(lines[item]) != indent and _indent(lines[item]) >= indent:
            return (
                f"bad indentation: {_describe(here)} is indented {_spaces(here)}, but "
                f"{_describe(lines[item])} on line {item + 1} has {_indent(lines[item])}; items of one list must line up"
            )
    if indent > _indent(lines[above]):
        return _deeper(lines, row, above)
    levels = {_indent(lines[n]): n for n in reversed(_enclosing(lines, row))}
    if indent not in levels:
        outer = [n for level, n in levels.items() if level < indent]
        inner = [n for level, n in levels.items() if level > indent]
        around = [f"{_describe(lines[n])} on line {n + 1} has {_indent(lines[n])}" for n in (inner[:1] + outer[-1:])]
        return (
            f"bad indentation: {_describe(here)} is indented {_spaces(here)}, which lines up with nothing above it "
            f"({' and '.join(around)}); indent it like the one it belongs with"
        )
    same = levels[indent]
    if _is_item(here.strip()) != _is_item(lines[same].strip()):
        if _is_item(here.strip()):
            return (
                f"bad indentation: {_describe(here)} is indented like the key {_describe(lines[same])} "
                f"on line {same + 1}, and a mapping cannot hold list items"
            )
        return (
            f"bad indentation: the key {_describe(here)} is indented like {_describe(lines[same])} "
            f"on line {same + 1}, and a list cannot hold keys{_under_nodes(lines, row)}"
        )
    return None


def _under_nodes(lines: list[str], row: int) -> str:
    """Where a key that landed in the ``wires:`` list belongs: under ``nodes:``, with the other nodes (or ``''``)."""
    top = next((n for n in _enclosing(lines, row) if _indent(lines[n]) == 0), None)
    if top is None or not lines[top].startswith("wires:"):
        return ""
    nodes = next((n for n, line in enumerate(lines) if line.startswith("nodes:")), None)
    if nodes is None:
        return ""
    return f"; a node belongs under 'nodes:' on line {nodes + 1}: move it up there, with the other nodes"


def _deeper(lines: list[str], row: int, above: int) -> str:
    return (
        f"bad indentation: {_describe(lines[row])} is indented {_spaces(lines[row])}, "
        f"more than {_describe(lines[above])} on line {above + 1} ({_spaces(lines[above])}), "
        f"which has its value already; line it up with {_describe(lines[above], short=True)}"
    )


def _colon(lines: list[str], row: int, column: int) -> tuple[int, str]:
    """``mapping values are not allowed here``: a key indented too deep, a key above with no ':', or a value
    holding ': '."""
    here = _line(lines, row)
    above = _previous(lines, row)
    if above is not None and _starts_line(lines, row, _indent(here)) and _indent(here) >= _indent(lines[above]):
        upper = lines[above].strip()
        if _indent(here) > _indent(lines[above]) and _has_value(lines[above]):
            return row + 1, _deeper(lines, row, above)
        if not _is_item(upper) and _KEY.match(upper) is None:
            return above + 1, f"{_describe(lines[above])} needs a ':' after it"
    unmarked = _UNMARKED_KEY.match(here)
    if unmarked is not None:
        return row + 1, f"{unmarked[1]!r} needs a ':' after it"
    if ": " in here[:column] or here[:column].rstrip().endswith(":"):
        return row + 1, f"a second ': ' on this line (column {column + 1}): quote a value that holds ': '"
    return row + 1, f"a ':' that YAML cannot read here (column {column + 1}): quote a value that holds ': '"


def _line(lines: list[str], row: int) -> str:
    return lines[row] if 0 <= row < len(lines) else ""


def _starts_line(lines: list[str], row: int, column: int) -> bool:
    """Whether the token at ``row``, ``column`` is the first thing on its line."""
    text = _line(lines, row)
    return bool(text.strip()) and _indent(text) == column


def _spaces(line: str) -> str:
    """``1 space``, ``3 spaces``: how far a line is indented."""
    indent = _indent(line)
    return f"{indent} space{'' if indent == 1 else 's'}"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _meaningful(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _previous(lines: list[str], row: int) -> int | None:
    """The nearest line above ``row`` that holds something (not blank, not only a comment)."""
    return next((n for n in range(row - 1, -1, -1) if _meaningful(lines[n])), None)


def _enclosing(lines: list[str], row: int) -> list[int]:
    """The lines above ``row`` that may be its siblings or parents: each less indented than the one below it."""
    found: list[int] = []
    smallest: int | None = None
    for n in range(row - 1, -1, -1):
        if not _meaningful(lines[n]):
            continue
        indent = _indent(lines[n])
        if smallest is None or indent < smallest:
            found.append(n)
            smallest = indent
    return found


def _is_item(stripped: str) -> bool:
    return stripped == "-" or stripped.startswith("- ")


def _has_value(line: str) -> bool:
    """Whether a line is a list item or a key with its value on the same line."""
    stripped = line.strip()
    if _is_item(stripped):
        return True
    match = _KEY.match(stripped)
    return match is not None and bool(stripped[match.end() :].split("#", 1)[0].strip())


def _describe(line: str, *, short: bool = False) -> str:
    """How to name a line in a message: ``'clock'`` for a key, ``the list item '- a -> b'``."""
    stripped = line.strip()
    if _is_item(stripped):
        shown = stripped if len(stripped) <= 40 else stripped[:37] + "..."
        return repr(shown) if short else f"the list item {shown!r}"
    match = _KEY.match(stripped)
    if match is not None:
        return repr(match[1].strip("'\""))
    shown = stripped if len(stripped) <= 40 else stripped[:37] + "..."
    return repr(shown)


def _yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    """The problem of a YAML error, with its context when the problem needs it.

    ("found character '\\t' that cannot start any token" stands alone; "but found
    another document" needs "expected a single document in the stream".)
    """
    problem = exc.problem or ""
    context = exc.context or ""
    first = exc.context_mark
    if context.endswith("; first occurrence") and first is not None:
        return f"{context.removesuffix('; first occurrence')} (first on line {first.line + 1})"
    if context and not context.startswith("while "):
        return f"{context}, {problem}" if problem else context
    return problem or context or "cannot parse"
