"""Reading ``grid.yaml``: YAML text to plain data and its line map; no rules of the grid.

The text is composed with PyYAML's *safe* loader into a node tree that this
module walks itself, so that every value keeps its line and so that the traps of
YAML are refused instead of silently accepted: duplicate keys, merge keys
(``<<``), ``yes``/``no``/``on``/``off`` read as booleans, tags other than the
plain ones, an alias inside itself. What comes out is plain data (dicts, lists,
scalars; an alias is the same object again) and :class:`~mesh.grid.marks.Marks`;
what the grid may hold is :mod:`mesh.grid.rules`' business. Every problem is a
:class:`~mesh.errors.GridError` naming the file and the line, the first in file order;
PyYAML's own errors (a line indented wrong, a tab, a bracket never closed) are put in
plain words at the line to fix by :mod:`mesh.grid.yaml_errors`, which also refuses a
list item indented so deep that YAML folds it into the item above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from mesh.errors import GridError

from .marks import Marks, Path
from .yaml_errors import explain, folded_item, unmarked_key

__all__ = ["ComplexKey", "load_yaml"]

_TAG = "tag:yaml.org,2002:"
_MAP_TAG = _TAG + "map"
_SEQ_TAG = _TAG + "seq"
_BOOL_TAG = _TAG + "bool"
_MERGE_TAG = _TAG + "merge"


@dataclass(frozen=True, eq=False)
class ComplexKey:
    """A mapping key that YAML allows and plain data cannot hold: a list or a mapping.

    Equal only to itself; the rules refuse it as they refuse any key that is not text.
    """

    value: Any


def load_yaml(text: str, path: str = "grid.yaml") -> tuple[Any, Marks]:
    """The plain data of a YAML document and its marks; GridError (naming ``path``) for bad YAML.

    An empty document (nothing but comments, say) is None.
    """
    deep = too_deep(text)
    if deep is not None:
        raise GridError(path, deep, f"nested deeper than {MAX_DEPTH} levels here: a grid is a few levels deep")
    try:
        root = _compose(text)
    except yaml.MarkedYAMLError as exc:
        line, message = explain(exc, text)
        raise GridError(path, line, message) from exc
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1 if isinstance(text, str) else None
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        message = f"invalid YAML: unacceptable character #x{char:04x}: {exc.reason}"
        raise GridError(path, line, message) from exc
    except yaml.YAMLError as exc:
        raise GridError(path, None, f"invalid YAML: {exc}") from exc
    if root is None:
        return None, Marks()
    walker = _Walker(path, text)
    data = walker.value(root, ())
    return data, Marks(values=walker.values, keys=walker.keys, written=walker.written, aliases=walker.aliases)


#: Levels of nesting (brackets, braces, or indentation) a document may have: a grid has four or five.
MAX_DEPTH = 64


def too_deep(text: str) -> int | None:
    """The line where ``text`` nests deeper than :data:`MAX_DEPTH`, found in one quick pass before YAML reads it
    (whose composer recurses per level: a pathological edit would take seconds); None if it does not.

    Counts unclosed ``[``/``{`` and indentation, ignoring what is quoted: a rough count, generous on purpose.
    """
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip(" ")
        if (len(line) - len(stripped)) // 2 > MAX_DEPTH:
            return number
        if "[" in line or "{" in line or depth:
            quote = ""
            for char in line:
                if quote:
                    if char == quote:
                        quote = ""
                elif char in "'\"":
                    quote = char
                elif char == "#":
                    break
                elif char in "[{":
                    depth += 1
                    if depth > MAX_DEPTH:
                        return number
                elif char in "]}":
                    depth -= 1
    return None


def _compose(text: str) -> Node | None:
    """The document's node tree: by libyaml's parser where PyYAML has it (ten times quicker on a grid of
    thousands of nodes), else PyYAML's own; a document libyaml refuses is composed again by PyYAML's,
    whose errors are the ones put in plain words (mesh.grid.yaml_errors). (libyaml marks a plain scalar's
    style ``''``, PyYAML ``None``: both are falsy, which is how the walker asks.)"""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None and "\t" not in text:  # libyaml takes a tab after a key, which PyYAML refuses
        try:
            return yaml.compose(text, Loader=fast)
        except yaml.YAMLError:
            pass
    return yaml.compose(text, Loader=yaml.SafeLoader)


class _Walker:
    """Walks a composed node tree into plain data, recording where each value was written."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.constructor = yaml.constructor.SafeConstructor()
        self.values: dict[Path, int] = {}
        self.keys: dict[Path, int] = {}
        self.written: dict[Path, str] = {}
        self.aliases: dict[Path, Path] = {}
        self.converted: dict[int, tuple[Any, Path | None]] = {}  # id(node) -> (value, first path): aliases read once
        self.converting: set[int] = set()  # to catch an alias inside itself

    def fail(self, line: int | None, message: str) -> NoReturn:
        raise GridError(self.path, line, message)

    def value(self, node: Node, path: Path | None) -> Any:
        """The plain value of ``node``, found at ``path`` (None: a key, whose parts need no marks)."""
        if path is not None:
            self.values[path] = _line(node)
        if isinstance(node, ScalarNode):
            if path is not None and not node.style:
                self.written[path] = str(node.value)
                if node.end_mark.line > node.start_mark.line:
                    folded = folded_item(self.text, node.start_mark.line, node.end_mark.line)
                    if folded is not None:
                        self.fail(*folded)
            return self.scalar(node)
        key = id(node)
        if key in self.converted:
            value, first = self.converted[key]
            if path is not None and first is not None:
                self.aliases[path] = first
            return value
        if key in self.converting:
            self.fail(_line(node), "a value contains itself (through an alias)")
        self.converting.add(key)
        try:
            if isinstance(node, MappingNode):
                result: Any = self.mapping(node, path)
            else:
                self.check_tag(node, _SEQ_TAG)
                result = [
                    self.value(item, None if path is None else (*path, index)) for index, item in enumerate(node.value)
                ]
        finally:
            self.converting.discard(key)
        self.converted[key] = (result, path)
        return result

    def mapping(self, node: MappingNode, path: Path | None) -> dict[Any, Any]:
        """A mapping, its keys in file order; a key written twice is refused (text) or kept once (other keys)."""
        self.check_tag(node, _MAP_TAG)
        result: dict[Any, Any] = {}
        first: dict[Any, int] = {}
        for key_node, value_node in node.value:
            line = _line(key_node)
            if key_node.tag == _MERGE_TAG:
                self.fail(line, "merge keys ('<<') are not supported; write the keys out")
            key = self.scalar(key_node) if isinstance(key_node, ScalarNode) else ComplexKey(self.value(key_node, None))
            if isinstance(key, str) and not key_node.style and (unmarked := unmarked_key(key)) is not None:
                self.fail(line, unmarked)
            if key in first:
                if isinstance(key, str):
                    self.fail(line, _duplicate(path, key, first[key]))
                continue  # not text: the rules refuse it at its first line
            first[key] = line
            child = None if path is None else (*path, key)
            if child is not None:
                self.keys[child] = line
            result[key] = self.value(value_node, child)
        return result

    def scalar(self, node: ScalarNode) -> Any:
        line = _line(node)
        if node.tag == _BOOL_TAG and not node.style and node.value.lower() not in ("true", "false"):
            self.fail(
                line,
                f'{node.value!r} is read by YAML as a boolean; write true or false, or quote it ("{node.value}")',
            )
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            self.fail(mark.line + 1 if mark is not None else line, f"invalid YAML: {exc.problem}")
        except Exception:  # the safe constructor cannot read the text, e.g. "!!int abc"
            self.fail(line, f"invalid YAML: cannot read {node.value!r} as {node.tag}")

    def check_tag(self, node: Node, tag: str) -> None:
        if node.tag != tag:
            self.fail(_line(node), f"invalid YAML: unsupported tag {node.tag!r}")


def _duplicate(path: Path | None, key: str, first: int) -> str:
    """What to say of a key written twice: in ``nodes``, that is a node defined twice."""
    if path == ("nodes",):
        return f"node {key!r} is defined twice (first on line {first})"
    return f"duplicate key {key!r} (first on line {first})"


def _line(node: Node) -> int:
    """The 1-based line where a node starts."""
    return node.start_mark.line + 1
