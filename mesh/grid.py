"""The grid: which nodes make up the circuit, where they listen, and how they are wired.

``grid.yaml`` names every node (its sketch, where it listens, the sketch's params,
the topic patterns it subscribes to) and the wires between them::

    nodes:
      clock:  {sketch: clock, params: {tacks: 5, delay: 1}}
      iopin:  {sketch: iopin, host: 127.0.0.1, port: 8765, params: {chance: 0.6}}
      buzzer: {sketch: buzzer, port: 8766, params: {sound: buzz buzz buzz}}
      meter:  {sketch: meter, subscribe: ["iopin/pin", "+/sound"]}
    wires:
      - clock -> iopin
      - iopin -> buzzer

A node may also set how its links behave: ``outbox`` (how many unacked messages
a link holds before ``stream()`` waits; 1000 by default), ``max_size`` (the
largest frame it accepts, in bytes; 1 MiB by default) and ``durable`` (true to
keep its unacked outbox in a local SQLite file, so that it survives the node
being killed). At the top level, ``auth: {token_env: MESH_TOKEN}`` names the
environment variable that holds the token every connection must present: the
grid never holds the token itself, and loading it never reads the environment.

Loading is a pure function from text to a frozen, validated :class:`Grid`
(:func:`load_grid`; :func:`read_grid` reads the file first, :func:`build_grid`
takes plain Python data). The text is parsed with PyYAML's *safe* loader into a
node tree that this module walks itself, so that every value keeps its line and
so that the traps of YAML 1.1 are caught instead of silently accepted: duplicate
keys, ``yes``/``no``/``on``/``off`` read as booleans, numbers with a leading zero
read as octal. Every problem is one :class:`~mesh.errors.GridError` that names
the file, the line and what is wrong; the first one in file order wins
(nodes, then wires, then auth, then the checks across nodes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import os
import re
import reprlib
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NoReturn

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from mesh.errors import GridError, UnknownNodeError
from mesh.topics import TopicError, check_pattern

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_OUTBOX",
    "Grid",
    "NodeSpec",
    "Wire",
    "build_grid",
    "load_grid",
    "read_grid",
]

DEFAULT_HOST = "127.0.0.1"
#: How many unacked messages a link holds before stream() waits, unless the node says.
DEFAULT_OUTBOX = 1000
#: The largest frame a node accepts, in bytes, unless the node says (1 MiB).
DEFAULT_MAX_SIZE = 2**20

#: The keys a node may have, sorted (as listed in error messages).
NODE_KEYS: tuple[str, ...] = (
    "durable",
    "host",
    "max_size",
    "outbox",
    "params",
    "port",
    "sketch",
    "subscribe",
)
#: The keys the grid may have at the top level, sorted.
TOP_KEYS: tuple[str, ...] = ("auth", "nodes", "wires")
#: The keys of the top-level ``auth`` mapping.
AUTH_KEYS: tuple[str, ...] = ("token_env",)

_OUTBOX_RANGE = (1, 1_000_000)
_MAX_SIZE_RANGE = (1024, 64 * 2**20)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_WIRE = re.compile(rf"\s*({_NAME.pattern})\s*->\s*({_NAME.pattern})\s*")
_LEADING_ZERO = re.compile(r"[-+]?0[0-9_]+")
_DECIMAL = re.compile(r"[-+]?[0-9]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_TAG = "tag:yaml.org,2002:"
_MAP_TAG = _TAG + "map"
_SEQ_TAG = _TAG + "seq"
_BOOL_TAG = _TAG + "bool"
_INT_TAG = _TAG + "int"
_MERGE_TAG = _TAG + "merge"

_NAME_RULE = "use letters, digits, '_' and '-', starting with a letter or '_'"
_WIRE_FORM = "'SOURCE -> TARGET'"
_AUTH_FORM = "{token_env: MESH_TOKEN}"


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, kw_only=True)
class NodeSpec:
    """One node of the grid: its sketch, where it listens, the sketch's params, its subscriptions.

    ``subscribe`` holds topic patterns (see :mod:`mesh.topics`) in file order; a
    subscriber connects out to the publishers, so it needs no port of its own.
    ``outbox``, ``max_size`` and ``durable`` say how the node's links behave.
    """

    name: str
    sketch: str
    host: str = DEFAULT_HOST
    port: int | None = None  # None: the node serves nothing (client only)
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    subscribe: tuple[str, ...] = ()  # topic patterns, e.g. ("iopin/pin", "+/sound")
    outbox: int = DEFAULT_OUTBOX  # unacked messages a link holds before stream() waits
    max_size: int = DEFAULT_MAX_SIZE  # the largest frame the node accepts, in bytes
    durable: bool = False  # keep the unacked outbox in a local SQLite file
    line: int = 0  # line of the node's definition in the file; 0 when built in memory

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _freeze(self.params))
        subscribe: object = self.subscribe  # a spec built in memory may be given None or a list
        if subscribe is None:
            object.__setattr__(self, "subscribe", ())
        elif isinstance(subscribe, list):
            object.__setattr__(self, "subscribe", tuple(subscribe))

    @property
    def address(self) -> str | None:
        """``host:port`` (an IPv6 host in brackets), or None when the node has no port."""
        if self.port is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def uri(self) -> str | None:
        """``ws://host:port`` to reach the node, or None when it has no port."""
        address = self.address
        return None if address is None else f"ws://{address}"


@dataclass(frozen=True, kw_only=True)
class Wire:
    """A wire from the node ``source`` to the node ``target``."""

    source: str
    target: str
    line: int = 0  # line of the wire in the file; 0 when built in memory

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}"


@dataclass(frozen=True, kw_only=True)
class Grid:
    """The whole circuit: nodes in file order and the wires between them.

    ``auth_token_env`` is the *name* of the environment variable that holds the
    token every connection must present (None: no token); never the token itself.
    """

    nodes: Mapping[str, NodeSpec] = field(hash=False)
    wires: tuple[Wire, ...] = ()
    path: str = "<grid>"
    auth_token_env: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes", MappingProxyType(dict(self.nodes)))
        object.__setattr__(self, "wires", tuple(self.wires))

    def node(self, name: str) -> NodeSpec:
        """The node called ``name``; UnknownNodeError if the grid has none."""
        try:
            return self.nodes[name]
        except KeyError:
            raise UnknownNodeError(name, self.nodes) from None

    def targets(self, name: str) -> tuple[str, ...]:
        """The nodes that ``name`` wires to, in wire order."""
        self.node(name)
        return tuple(wire.target for wire in self.wires if wire.source == name)

    def sources(self, name: str) -> tuple[str, ...]:
        """The nodes wired to ``name``, in wire order."""
        self.node(name)
        return tuple(wire.source for wire in self.wires if wire.target == name)

    def with_node(self, name: str, **changes: Any) -> Grid:
        """A new grid with the node ``name`` changed (e.g. ``port=8800``), checked again.

        Raises UnknownNodeError for an unknown name, TypeError for a field that
        NodeSpec does not have (or ``name``), and GridError (naming this grid's
        path and the node's line) when the changed node no longer fits the grid.
        """
        old = self.node(name)
        if "name" in changes:
            raise TypeError("with_node() cannot rename a node")
        spec = dataclasses.replace(old, **changes)
        try:
            _check_spec(spec)
        except _Invalid as exc:
            raise GridError(self.path, spec.line or None, str(exc)) from None
        nodes = dict(self.nodes)
        nodes[name] = spec
        grid = dataclasses.replace(self, nodes=nodes)
        _check_across(grid, only=name)
        return grid


# --------------------------------------------------------------------------- entry points


def load_grid(text: str, path: str = "grid.yaml", *, sketches: Collection[str] | None = None) -> Grid:
    """Parse and validate the text of a grid; ``path`` only names it in errors.

    ``sketches``, when given, are the known sketch names: a node naming another
    one is an error. Raises GridError for the first problem found.
    """
    try:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            line = mark.line + 1 if mark is not None else None
            raise GridError(path, line, f"invalid YAML: {_yaml_problem(exc)}") from exc
        except yaml.reader.ReaderError as exc:
            line = text.count("\n", 0, exc.position) + 1 if isinstance(text, str) else None
            char = exc.character if isinstance(exc.character, int) else ord(exc.character)
            message = f"invalid YAML: unacceptable character #x{char:04x}: {exc.reason}"
            raise GridError(path, line, message) from exc
        except yaml.YAMLError as exc:
            raise GridError(path, None, f"invalid YAML: {exc}") from exc
        if root is None:
            raise GridError(path, None, "the grid is empty; it needs a 'nodes' mapping")
        return _Reader(path, sketches).grid(root)
    except RecursionError:
        raise GridError(path, None, "the grid is nested too deeply") from None


def read_grid(path: str | os.PathLike[str], *, sketches: Collection[str] | None = None) -> Grid:
    """Read the grid file at ``path`` (UTF-8) and load it; GridError if it cannot be read."""
    name = os.fsdecode(os.fspath(path))
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise GridError(name, None, f"cannot read the grid: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        message = f"cannot read the grid: it is not UTF-8 text (byte {exc.start})"
        raise GridError(name, None, message) from exc
    return load_grid(text, name, sketches=sketches)


def build_grid(
    nodes: Mapping[str, Mapping[str, Any]],
    wires: Iterable[str] = (),
    *,
    path: str = "<memory>",
    sketches: Collection[str] | None = None,
    auth_token_env: str | None = None,
) -> Grid:
    """Build a grid from plain Python data, with the same checks as :func:`load_grid`.

    ``nodes`` maps node names to ``{"sketch": ..., "host": ..., "port": ...,
    "params": {...}, "subscribe": [...], "outbox": ..., "max_size": ...,
    "durable": ...}``; ``wires`` are ``"SOURCE -> TARGET"`` strings (or Wires);
    ``auth_token_env`` is what ``auth: {token_env: ...}`` says in a file. Errors
    name ``path`` and carry no line.
    """
    reader = _Reader(path, sketches)
    if wires is not None and not isinstance(wires, (str, bytes, Mapping)):
        wires = [str(wire) if isinstance(wire, Wire) else wire for wire in wires]
    try:
        auth = None if auth_token_env is None else {"token_env": auth_token_env}
        return reader.finish(
            None,
            reader.from_python(nodes),
            None,
            reader.from_python(wires),
            None,
            None if auth is None else reader.from_python(auth),
        )
    except RecursionError:
        raise GridError(path, None, "the grid is nested too deeply") from None


# --------------------------------------------------------------------------- checks


class _Invalid(Exception):
    """A value check failed; the caller knows the file and line to report."""


def _check_sketch(node: str, value: Any) -> str:
    if not isinstance(value, str) or not value or not all(part.isidentifier() for part in value.split(".")):
        raise _Invalid(f"node {node!r}: 'sketch' must be the name of a sketch module")
    return value


def _check_host(node: str, value: Any) -> str:
    if not isinstance(value, str) or not value or any(char.isspace() or char in "[]/" for char in value):
        raise _Invalid(f"node {node!r}: 'host' must be a host name or address")
    return value


def _check_written(node: str, key: str, value: Any, raw: str | None) -> None:
    """The YAML 1.1 traps in how a whole number was written; ``raw`` is its plain text, if any."""
    if raw is None:
        return
    if _LEADING_ZERO.fullmatch(raw):
        number = int(raw.replace("_", ""), 10)
        raise _Invalid(f"node {node!r}: {key} {raw!r} has a leading zero, which YAML reads as octal; write {number}")
    if _is_whole(value) and not _DECIMAL.fullmatch(raw):
        # YAML 1.1 also reads 0x1F, 0b11, 8_765 and even 1:30 (sexagesimal) as ints.
        raise _Invalid(f"node {node!r}: {key} {raw!r} is not a plain decimal number; write {value}")


def _check_port(node: str, value: Any, raw: str | None = None) -> int | None:
    """A port number, or None for no port. ``raw`` is the plain YAML text, if any."""
    _check_written(node, "port", value, raw)
    if value is None:
        return None
    if not _is_whole(value):
        raise _Invalid(f"node {node!r}: 'port' must be a whole number, not {_shown(value)}")
    if not 0 <= value <= 65535:
        raise _Invalid(f"node {node!r}: port {value} is outside 0-65535")
    return value


def _check_outbox(node: str, value: Any, raw: str | None = None) -> int:
    """How many unacked messages a link holds. ``raw`` is the plain YAML text, if any."""
    _check_written(node, "outbox", value, raw)
    low, high = _OUTBOX_RANGE
    if not _is_whole(value) or not low <= value <= high:
        raise _Invalid(f"node {node!r}: 'outbox' must be a whole number from {low} to {high}, not {_shown(value)}")
    return value


def _check_max_size(node: str, value: Any, raw: str | None = None) -> int:
    """The largest frame in bytes. ``raw`` is the plain YAML text, if any."""
    _check_written(node, "max_size", value, raw)
    low, high = _MAX_SIZE_RANGE
    if not _is_whole(value) or not low <= value <= high:
        raise _Invalid(
            f"node {node!r}: 'max_size' must be a whole number of bytes from {low} to {high}, not {_shown(value)}"
        )
    return value


def _check_durable(node: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"node {node!r}: 'durable' must be true or false, not {_show(value)}")
    return value


def _check_token_env(value: Any) -> str:
    # The message never shows the value: it may be the token itself, written by mistake.
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise _Invalid("'auth': 'token_env' must name an environment variable, like MESH_TOKEN")
    return value


def _check_param_name(node: str, name: Any) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise _Invalid(f"node {node!r}: invalid parameter name {_show(name)}")
    return name


def _check_subscription(node: str, value: Any, seen: Collection[str] = ()) -> str:
    """One topic pattern of a node's ``subscribe``; ``seen`` are the patterns before it."""
    if not isinstance(value, str):
        raise _Invalid(f"node {node!r}: a subscription must be a topic pattern (text), not {_show(value)}")
    try:
        check_pattern(value)
    except TopicError as exc:
        raise _Invalid(f"node {node!r}: {exc}") from None
    if value in seen:
        raise _Invalid(f"node {node!r}: pattern {value!r} is listed twice")
    return value


def _not_a_subscription_list(node: str) -> str:
    return f"node {node!r}: 'subscribe' must be a list of topic patterns"


def _check_spec(spec: NodeSpec) -> None:
    """The checks of one node's values, for a NodeSpec changed after loading."""
    _check_sketch(spec.name, spec.sketch)
    _check_host(spec.name, spec.host)
    _check_port(spec.name, spec.port)
    _check_outbox(spec.name, spec.outbox)
    _check_max_size(spec.name, spec.max_size)
    _check_durable(spec.name, spec.durable)
    if not isinstance(spec.params, Mapping):
        raise _Invalid(f"node {spec.name!r}: 'params' must be a mapping")
    for name in spec.params:
        _check_param_name(spec.name, name)
    if not isinstance(spec.subscribe, tuple):
        raise _Invalid(_not_a_subscription_list(spec.name))
    for index, pattern in enumerate(spec.subscribe):
        _check_subscription(spec.name, pattern, spec.subscribe[:index])


def _check_across(grid: Grid, only: str | None = None) -> None:
    """The checks across nodes: wired nodes have a port, no two share an address.

    With ``only``, check that node against the others, and report it.
    """
    first_wire_in: dict[str, Wire] = {}
    for wire in grid.wires:
        first_wire_in.setdefault(wire.target, wire)
    taken: dict[tuple[str, int], NodeSpec] = {}
    for spec in grid.nodes.values():
        wire_in = first_wire_in.get(spec.name)
        if spec.port is None and wire_in is not None and only in (None, spec.name):
            via = f"(line {wire_in.line})" if wire_in.line else f"({str(wire_in)!r})"
            message = f"node {spec.name!r} receives a wire {via} but has no port to receive on"
            raise GridError(grid.path, spec.line or None, message)
        if only is None:
            other = taken.setdefault(_address_key(spec), spec) if spec.port else spec
            if other is not spec:
                raise GridError(grid.path, spec.line or None, _taken(spec, other))
    if only is not None:
        spec = grid.nodes[only]
        for other in grid.nodes.values():
            if other is not spec and spec.port and _address_key(other) == _address_key(spec):
                raise GridError(grid.path, spec.line or None, _taken(spec, other))


def _address_key(spec: NodeSpec) -> tuple[str, int]:
    return (spec.host.lower(), spec.port or 0)


def _taken(spec: NodeSpec, other: NodeSpec) -> str:
    where = f" (line {other.line})" if other.line else ""
    return f"node {spec.name!r} listens on {spec.address}, already taken by node {other.name!r}{where}"


# --------------------------------------------------------------------------- the walker


class _PythonScalar(ScalarNode):
    """A node holding a Python value as it is (for :func:`build_grid`)."""


class _Reader:
    """Walks a composed YAML node tree (or one built from Python data) into a Grid."""

    def __init__(self, path: str, sketches: Collection[str] | None) -> None:
        self.path = path
        self.sketches = None if sketches is None else sorted(set(sketches))
        self.constructor = yaml.constructor.SafeConstructor()
        self.converted: dict[int, Any] = {}  # id(node) -> value: aliases are read once
        self.converting: set[int] = set()  # to catch an alias inside itself

    def fail(self, line: int | None, message: str) -> NoReturn:
        raise GridError(self.path, line, message)

    @contextlib.contextmanager
    def at(self, line: int | None) -> Iterator[None]:
        """Report a failed value check at ``line``."""
        try:
            yield
        except _Invalid as exc:
            raise GridError(self.path, line, str(exc)) from None

    # ---- the grid

    def grid(self, root: Node) -> Grid:
        if isinstance(root, ScalarNode) and self.value(root) is None:
            self.fail(None, "the grid is empty; it needs a 'nodes' mapping")
        if not isinstance(root, MappingNode):
            self.fail(
                _line(root),
                f"the grid must be a mapping with 'nodes' and 'wires', not {self.kind(root)}",
            )
        top: dict[str, tuple[int | None, Node]] = {}
        for key, line, value in self.entries(root):
            if key not in TOP_KEYS:
                self.fail(
                    line,
                    f"unknown key {key!r} at the top level "
                    f"(expected one of: {', '.join(TOP_KEYS)}){_suggest(key, TOP_KEYS)}",
                )
            top[key] = (line, value)
        if "nodes" not in top:
            self.fail(None, "the grid has no 'nodes'")
        wires_line, wires = top.get("wires", (None, None))
        auth_line, auth = top.get("auth", (None, None))
        return self.finish(*top["nodes"], wires_line, wires, auth_line, auth)

    def finish(
        self,
        nodes_line: int | None,
        nodes: Node,
        wires_line: int | None,
        wires: Node | None,
        auth_line: int | None = None,
        auth: Node | None = None,
    ) -> Grid:
        specs = self.nodes(nodes_line, nodes)
        checked_wires = self.wires(specs, wires_line, wires)
        token_env = None if auth is None else self.auth(auth_line, auth)
        grid = Grid(nodes=specs, wires=checked_wires, path=self.path, auth_token_env=token_env)
        _check_across(grid)
        return grid

    # ---- auth

    def auth(self, key_line: int | None, node: Node) -> str:
        """The top-level ``auth``: the name of the environment variable holding the token."""
        if not isinstance(node, MappingNode) or not node.value:
            self.fail(_line(node) or key_line, f"'auth' must be a mapping like {_AUTH_FORM}")
        token_env = ""
        for key, line, value_node in self.entries(node):
            if key not in AUTH_KEYS:
                self.fail(
                    line,
                    f"unknown key {key!r} in 'auth' "
                    f"(expected one of: {', '.join(AUTH_KEYS)}){_suggest(key, AUTH_KEYS)}",
                )
            with self.at(_line(value_node) or line):
                token_env = _check_token_env(self.value(value_node))
        return token_env

    # ---- nodes

    def nodes(self, key_line: int | None, node: Node) -> dict[str, NodeSpec]:
        if not isinstance(node, MappingNode) or not node.value:
            self.fail(_line(node) or key_line, "'nodes' must be a mapping of node names to nodes")
        return {name: self.node(name, line, value) for name, line, value in self.entries(node, names=True)}

    def node(self, name: str, line: int | None, node: Node) -> NodeSpec:
        if not isinstance(node, MappingNode):
            self.fail(_line(node) or line, f"node {name!r} must be a mapping with at least a 'sketch'")
        fields: dict[str, Any] = {}
        for key, key_line, value_node in self.entries(node):
            if key not in NODE_KEYS:
                self.fail(
                    key_line,
                    f"unknown key {key!r} in node {name!r} "
                    f"(expected one of: {', '.join(NODE_KEYS)}){_suggest(key, NODE_KEYS)}",
                )
            value_line = _line(value_node) or key_line
            if key == "params":
                fields[key] = self.params(name, key_line, value_node)
                continue
            if key == "subscribe":
                fields[key] = self.subscriptions(name, key_line, value_node)
                continue
            value = self.value(value_node)
            with self.at(value_line):
                if key == "sketch":
                    fields[key] = _check_sketch(name, value)
                elif key == "host":
                    fields[key] = _check_host(name, value)
                elif key == "port":
                    fields[key] = _check_port(name, value, _raw(value_node))
                elif key == "outbox":
                    fields[key] = _check_outbox(name, value, _raw(value_node))
                elif key == "max_size":
                    fields[key] = _check_max_size(name, value, _raw(value_node))
                else:
                    fields[key] = _check_durable(name, value)
            if key == "sketch" and self.sketches is not None and value not in self.sketches:
                known = ", ".join(self.sketches) or "none"
                self.fail(
                    value_line,
                    f"unknown sketch {value!r} for node {name!r}; known sketches: {known}"
                    f"{_suggest(value, self.sketches)}",
                )
        if "sketch" not in fields:
            self.fail(line, f"node {name!r} has no 'sketch'")
        return NodeSpec(name=name, line=line or 0, **fields)

    def params(self, name: str, key_line: int | None, node: Node) -> Mapping[str, Any]:
        if isinstance(node, ScalarNode) and self.value(node) is None:
            return MappingProxyType({})
        if not isinstance(node, MappingNode):
            self.fail(_line(node) or key_line, f"node {name!r}: 'params' must be a mapping")
        params: dict[str, Any] = {}
        for key, line, value_node in self.entries(node):
            with self.at(line):
                _check_param_name(name, key)
            params[key] = self.value(value_node)
        return MappingProxyType(params)

    def subscriptions(self, name: str, key_line: int | None, node: Node) -> tuple[str, ...]:
        """A node's ``subscribe``: a list of distinct topic patterns; null means none."""
        if isinstance(node, ScalarNode) and self.value(node) is None:
            return ()
        if not isinstance(node, SequenceNode):
            self.fail(_line(node) or key_line, _not_a_subscription_list(name))
        self.check_tag(node, _SEQ_TAG)
        patterns: list[str] = []
        for item in node.value:
            with self.at(_line(item) or key_line):
                patterns.append(_check_subscription(name, self.value(item), patterns))
        return tuple(patterns)

    # ---- wires

    def wires(self, nodes: Mapping[str, NodeSpec], key_line: int | None, node: Node | None) -> tuple[Wire, ...]:
        if node is None or (isinstance(node, ScalarNode) and self.value(node) is None):
            return ()
        if not isinstance(node, SequenceNode):
            self.fail(_line(node) or key_line, f"'wires' must be a list of {_WIRE_FORM}")
        self.check_tag(node, _SEQ_TAG)
        wires: list[Wire] = []
        first: dict[tuple[str, str], int | None] = {}
        for item in node.value:
            line = _line(item)
            text = self.value(item)
            match = _WIRE.fullmatch(text) if isinstance(text, str) else None
            if match is None:
                self.fail(line, f"malformed wire {_show(text)}; expected {_WIRE_FORM}")
            wire = Wire(source=match[1], target=match[2], line=line or 0)
            for end in (wire.source, wire.target):
                if end not in nodes:
                    self.fail(
                        line,
                        f"wire {str(wire)!r} names unknown node {end!r}; "
                        f"known nodes: {', '.join(sorted(nodes))}{_suggest(end, nodes)}",
                    )
            pair = (wire.source, wire.target)
            if pair in first:
                where = f" (first on line {first[pair]})" if first[pair] else ""
                self.fail(line, f"wire {str(wire)!r} is listed twice{where}")
            first[pair] = line
            wires.append(wire)
        return tuple(wires)

    # ---- values

    def entries(self, node: MappingNode, *, names: bool = False) -> Iterator[tuple[str, int | None, Node]]:
        """(key, key's line, value node) in file order, rejecting bad and duplicate keys.

        With ``names``, the keys are node names.
        """
        self.check_tag(node, _MAP_TAG)
        seen: dict[str, int | None] = {}
        for key_node, value_node in node.value:
            line = _line(key_node)
            if key_node.tag == _MERGE_TAG and not isinstance(key_node, _PythonScalar):
                self.fail(line, "merge keys ('<<') are not supported; write the keys out")
            key = self.value(key_node)
            if names:
                if not isinstance(key, str) or not _NAME.fullmatch(key):
                    self.fail(line, f"invalid node name {_show(key)}: {_NAME_RULE}")
            elif not isinstance(key, str):
                self.fail(line, f"keys must be text, not {_show(key)}")
            if key in seen:
                where = f" (first on line {seen[key]})" if seen[key] else ""
                if names:
                    self.fail(line, f"node {key!r} is defined twice{where}")
                self.fail(line, f"duplicate key {key!r}{where}")
            seen[key] = line
            yield key, line, value_node

    def value(self, node: Node) -> Any:
        """The plain, immutable Python value of a node: mappings read-only, lists as tuples."""
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        key = id(node)
        if key in self.converted:
            return self.converted[key]
        if key in self.converting:
            self.fail(_line(node), "a value contains itself (through an alias)")
        self.converting.add(key)
        try:
            if isinstance(node, MappingNode):
                result: Any = MappingProxyType({name: self.value(item) for name, _, item in self.entries(node)})
            else:
                self.check_tag(node, _SEQ_TAG)
                result = tuple(self.value(item) for item in node.value)
        finally:
            self.converting.discard(key)
        self.converted[key] = result
        return result

    def scalar(self, node: ScalarNode) -> Any:
        if isinstance(node, _PythonScalar):
            return node.value
        line = _line(node)
        if node.tag == _BOOL_TAG and node.style is None and node.value.lower() not in ("true", "false"):
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

    def kind(self, node: Node) -> str:
        """How to name what a node holds: 'a list', 'a string', 'a number', ..."""
        if isinstance(node, SequenceNode):
            return "a list"
        if isinstance(node, MappingNode):
            return "a mapping"
        value = self.value(node)
        if isinstance(value, bool):
            return "a boolean"
        if isinstance(value, (int, float)):
            return "a number"
        if isinstance(value, str):
            return "a string"
        return f"a {type(value).__name__}"

    def from_python(self, value: Any, inside: frozenset[int] = frozenset()) -> Node:
        """A node tree for plain Python data, so that it gets the same checks as YAML."""
        if isinstance(value, (Mapping, list, tuple)):
            if id(value) in inside:
                self.fail(None, "a value contains itself")
            inside = inside | {id(value)}
            if isinstance(value, Mapping):
                pairs = [(self.from_python(key, inside), self.from_python(item, inside)) for key, item in value.items()]
                return MappingNode(_MAP_TAG, pairs)
            return SequenceNode(_SEQ_TAG, [self.from_python(item, inside) for item in value])
        if isinstance(value, (set, frozenset)):
            value = frozenset(value)
        return _PythonScalar("python", value)


# --------------------------------------------------------------------------- helpers


def _line(node: Node) -> int | None:
    """The 1-based line where a node starts, or None for a node built in memory."""
    mark = node.start_mark
    return mark.line + 1 if mark is not None else None


def _raw(node: Node) -> str | None:
    """The text of a plain (unquoted) scalar as written in the file, else None."""
    if isinstance(node, ScalarNode) and not isinstance(node, _PythonScalar) and node.style is None:
        return str(node.value)
    return None


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


def _is_whole(value: Any) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """A value for a message, with text marked as such: ``the text '8765'``, ``8.5``."""
    return f"the text {_show(value)}" if isinstance(value, str) else _show(value)


def _suggest(word: str, candidates: Iterable[str]) -> str:
    """``; did you mean 'x'?`` when a candidate is close to ``word``, else ``''``."""
    matches = difflib.get_close_matches(word, list(candidates), n=1)
    return f"; did you mean {matches[0]!r}?" if matches else ""


def _freeze(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """A deeply read-only copy: mappings as MappingProxyType, lists as tuples."""
    if memo is None:
        memo = {}
    if id(value) in memo:
        return memo[id(value)]
    if isinstance(value, Mapping):
        memo[id(value)] = MappingProxyType({})  # placeholder against cycles
        frozen: Any = MappingProxyType({key: _freeze(item, memo) for key, item in value.items()})
    elif isinstance(value, (list, tuple)):
        frozen = tuple(_freeze(item, memo) for item in value)
    elif isinstance(value, (set, frozenset)):
        frozen = frozenset(value)
    else:
        return value
    memo[id(value)] = frozen
    return frozen


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


_show = _Repr().repr
