"""The rules of a grid: plain data (and its line map, if any) to a frozen, validated :class:`Grid`.

This is the one validator. :func:`~mesh.grid.load_grid` gives it the data and
marks of a YAML file (see :mod:`mesh.grid.loader`), :func:`build_grid` Python
data without marks, and :meth:`Grid.with_node` (:meth:`Grid.with_nodes`) the data of the
node(s) it changes, marked with each node's line (the other nodes are valid already). Every problem is one
:class:`~mesh.errors.GridError` naming the path and, when the marks know it, the
line. The first one found wins: the top-level keys, then nodes, wires, auth, and
the checks across nodes.

One job that reads best whole, though it runs past 400 lines: the order of the checks is
the order of the errors a user meets, and it reads in one place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os.path
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, NoReturn

from mesh.errors import GridError

from . import values as check
from .marks import Marks, Path
from .model import TLS_KEYS, Grid, NodeSpec, TLSFiles, Wire
from .shown import kind, show, suggest

__all__ = ["AUTH_KEYS", "NODE_KEYS", "TLS_KEYS", "TOP_KEYS", "build_grid", "change_node", "change_nodes", "validate"]

#: The keys a node may have, sorted (as listed in error messages).
NODE_KEYS: tuple[str, ...] = (
    "baud",
    "durable",
    "host",
    "max_size",
    "outbox",
    "params",
    "port",
    "serial",
    "sketch",
    "subscribe",
    "timeout",
)
#: The keys the grid may have at the top level, sorted.
TOP_KEYS: tuple[str, ...] = ("auth", "nodes", "tls", "wires")
#: The keys of the top-level ``auth`` mapping.
AUTH_KEYS: tuple[str, ...] = ("token_env",)

#: What a grid's sketches are checked against: the known names, or a function naming the problem with one.
Sketches = Collection[str] | Callable[[str], "str | None"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_WIRE = re.compile(rf"\s*({_NAME.pattern})\s*->\s*({_NAME.pattern})\s*")
_NAME_RULE = "use letters, digits, '_' and '-', starting with a letter or '_'"
_WIRE_FORM = "'SOURCE -> TARGET'"
_AUTH_FORM = "{token_env: MESH_TOKEN}"
_TLS_FORM = "{cert: node.pem, key: node-key.pem, ca: ca.pem}"


def validate(
    data: Any,
    *,
    path: str = "<memory>",
    marks: Marks | None = None,
    sketches: Sketches | None = None,
) -> Grid:
    """The grid that plain ``data`` describes; GridError naming ``path`` (and a line from ``marks``) if invalid.

    ``sketches``, when given, are the known sketch names, or a function that
    says what is wrong with a ``sketch:`` value (None when it is found): how
    the sketches beside a grid file are looked for stays out of the rules.
    """
    return _Rules(path, marks or Marks(), sketches).grid(data)


def build_grid(
    nodes: Mapping[str, Mapping[str, Any]],
    wires: Iterable[str | Wire] | None = (),
    *,
    path: str = "<memory>",
    sketches: Sketches | None = None,
    auth_token_env: str | None = None,
    tls: Mapping[str, str] | None = None,
) -> Grid:
    """Build a grid from plain Python data, with the same checks as :func:`~mesh.grid.load_grid`.

    ``nodes`` maps node names to ``{"sketch": ..., "host": ..., "port": ...,
    "params": {...}, "subscribe": [...], "outbox": ..., "max_size": ...,
    "durable": ...}``; ``wires`` are ``"SOURCE -> TARGET"`` strings (or Wires);
    ``auth_token_env`` is what ``auth: {token_env: ...}`` says in a file, ``tls`` what
    ``tls: {cert: ..., key: ..., ca: ...}`` says (paths relative to ``path``'s folder).
    Errors name ``path`` and carry no line.
    """
    if wires is not None and not isinstance(wires, (str, bytes, Mapping)):
        wires = [str(wire) if isinstance(wire, Wire) else wire for wire in wires]
    data: dict[str, Any] = {"nodes": nodes, "wires": wires}
    if auth_token_env is not None:
        data["auth"] = {"token_env": auth_token_env}
    if tls is not None:
        data["tls"] = tls
    try:
        return validate(data, path=path, sketches=sketches)
    except RecursionError:
        raise GridError(path, None, "the grid is nested too deeply") from None


def change_node(grid: Grid, name: str, changes: Mapping[str, Any]) -> Grid:
    """``grid`` with the fields ``changes`` of node ``name`` changed (see :meth:`Grid.with_node`).

    The changed node goes through the same rules as a node of a file, its
    errors at its line; then the checks across nodes, of it against the others.
    """
    return change_nodes(grid, {name: changes})


def change_nodes(grid: Grid, changes: Mapping[str, Mapping[str, Any]]) -> Grid:
    """``grid`` with the fields of several nodes changed at once (see :meth:`Grid.with_nodes`).

    Each changed node goes through the same rules as a node of a file, in the order
    given, its errors at its line; then the checks across nodes, once, of each changed
    node against the others: the cost grows with the grid once, not once per node.
    """
    specs = dict(grid.nodes)
    for name, fields in changes.items():
        specs[name] = _changed_spec(grid, name, fields)
    changed = dataclasses.replace(grid, nodes=specs)
    _check_across(changed, only=tuple(changes))
    return changed


def _changed_spec(grid: Grid, name: str, changes: Mapping[str, Any]) -> NodeSpec:
    """Node ``name`` of ``grid`` with ``changes``, checked by the rules at its line."""
    old = grid.node(name)
    if "name" in changes:
        raise TypeError("with_node() cannot rename a node")
    for key in changes:
        if key != "line" and key not in NODE_KEYS:
            raise TypeError(f"NodeSpec.__init__() got an unexpected keyword argument {key!r}")
    line = changes.get("line", old.line)
    if "params" in changes and changes["params"] is None:
        # A NodeSpec's params is a mapping; only a file (or build_grid) may leave it empty with null.
        raise GridError(grid.path, line or None, check.params_not_a_mapping(name))
    # Only the fields changed are checked (the others are valid already), in the order the rules check them in.
    data = {key: changes[key] for key in _CHECK_ORDER if key in changes}
    lines = {("nodes", name): line} if line else {}
    rules = _Rules(grid.path, Marks(values=lines, keys=lines), None)
    fields = rules.fields(name, data)
    merged = {key: fields.get(key, getattr(old, key)) for key in ("sketch", "serial", "baud")}
    if any(key in fields for key in merged):
        rules.board(name, merged)
    return dataclasses.replace(old, line=line, **fields)


#: The order in which the rules check a node's fields.
_CHECK_ORDER = (
    "sketch",
    "host",
    "port",
    "outbox",
    "max_size",
    "durable",
    "timeout",
    "serial",
    "baud",
    "params",
    "subscribe",
)


def _known(names: list[str]) -> Callable[[str], str | None]:
    """The problem with a sketch name when the known sketches are a list of names."""

    def check(value: str) -> str | None:
        if value in names:
            return None
        return f"unknown sketch {value!r}; known sketches: {', '.join(names) or 'none'}{suggest(value, names)}"

    return check


class _Rules:
    """Walks the plain data of a grid into a Grid, checking each value as it goes."""

    def __init__(self, path: str, marks: Marks, sketches: Sketches | None) -> None:
        self.path = path
        self.marks = marks
        self.sketches: Callable[[str], str | None] | None = (
            sketches if sketches is None or callable(sketches) else _known(sorted(set(sketches)))
        )
        self.frozen: dict[int, Any] = {}  # id(value) -> its frozen copy: a value shared is read once
        self.inside: set[int] = set()  # the values being read, to catch one inside itself

    def fail(self, line: int | None, message: str) -> NoReturn:
        raise GridError(self.path, line, message)

    @contextlib.contextmanager
    def at(self, line: int | None) -> Iterator[None]:
        """Report a failed value check at ``line``."""
        try:
            yield
        except check.Invalid as exc:
            raise GridError(self.path, line, str(exc)) from None

    # ---- the grid

    def grid(self, data: Any) -> Grid:
        if data is None:
            self.fail(None, "the grid is empty; it needs a 'nodes' mapping")
        if not isinstance(data, Mapping):
            self.fail(self.marks.line(()), f"the grid must be a mapping with 'nodes' and 'wires', not {kind(data)}")
        for key in data:
            self.text_key((), key)
            if key not in TOP_KEYS:
                value = data[key]
                if isinstance(value, Mapping) and "sketch" in value:  # a node, written at the wrong level
                    line = self.marks.key(("nodes",)) if "nodes" in data else None
                    where = f" on line {line}" if line else ""
                    fix = f"; a node goes under 'nodes:'{where}, indented like the other nodes"
                else:
                    fix = suggest(key, TOP_KEYS)
                self.fail(
                    self.marks.key((key,)),
                    f"unknown key {key!r} at the top level (expected one of: {', '.join(TOP_KEYS)}){fix}",
                )
        if "nodes" not in data:
            self.fail(None, "the grid has no 'nodes'")
        specs = self.nodes(data["nodes"])
        wires = self.wires(specs, data.get("wires"))
        token_env = self.auth(data["auth"]) if "auth" in data else None
        tls = self.tls(data["tls"]) if "tls" in data else None
        grid = Grid(nodes=specs, wires=wires, path=self.path, auth_token_env=token_env, tls=tls)
        _check_across(grid)
        return grid

    # ---- auth

    def auth(self, value: Any) -> str:
        """The top-level ``auth``: the name of the environment variable holding the token."""
        if not isinstance(value, Mapping) or not value:
            self.fail(self.marks.line(("auth",)), f"'auth' must be a mapping like {_AUTH_FORM}")
        token_env = ""
        for key, item in value.items():
            where = ("auth", key)
            self.text_key(("auth",), key)
            if key not in AUTH_KEYS:
                self.fail(
                    self.marks.key(where),
                    f"unknown key {key!r} in 'auth' (expected one of: {', '.join(AUTH_KEYS)}){suggest(key, AUTH_KEYS)}",
                )
            item = self.value(where, item)
            with self.at(self.marks.line(where)):
                token_env = check.check_token_env(item)
        return token_env

    # ---- tls

    def tls(self, value: Any) -> TLSFiles:
        """The top-level ``tls``: three PEM files, their paths relative to the grid file's folder.

        Only their names are checked here (no I/O in the rules); what the files hold is
        read by :func:`mesh.tls.check` where the grid is used, as the token's variable is.
        """
        if not isinstance(value, Mapping) or not value:
            self.fail(self.marks.line(("tls",)), f"'tls' must be a mapping like {_TLS_FORM}")
        written: dict[str, str] = {}
        lines: dict[str, int] = {}
        for key, item in value.items():
            where = ("tls", key)
            self.text_key(("tls",), key)
            if key not in TLS_KEYS:
                self.fail(
                    self.marks.key(where),
                    f"unknown key {key!r} in 'tls' (expected: {', '.join(TLS_KEYS)}){suggest(key, TLS_KEYS)}",
                )
            item = self.value(where, item)
            with self.at(self.marks.line(where)):
                written[key] = check.check_tls_file(key, item)
            lines[key] = self.marks.line(where) or 0
        missing = [key for key in TLS_KEYS if key not in written]
        if missing:
            self.fail(
                self.marks.key(("tls",)),
                f"'tls' has no {' and no '.join(map(repr, missing))}: it needs cert, key and ca, like {_TLS_FORM}",
            )
        folder = os.path.dirname(self.path)  # string work only: the files are read where the grid is used
        resolved = {key: os.path.join(folder, path) for key, path in written.items()}
        return TLSFiles(
            cert=resolved["cert"],
            key=resolved["key"],
            ca=resolved["ca"],
            written=written,
            lines=lines,
            line=self.marks.key(("tls",)) or 0,
            path=self.path,
        )

    # ---- nodes

    def nodes(self, value: Any) -> dict[str, NodeSpec]:
        if not isinstance(value, Mapping) or not value:
            self.fail(self.marks.line(("nodes",)), "'nodes' must be a mapping of node names to nodes")
        specs: dict[str, NodeSpec] = {}
        for name, node in value.items():
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                self.fail(self.marks.key(("nodes", name)), f"invalid node name {show(name)}: {_NAME_RULE}")
            specs[name] = self.node(name, node)
        return specs

    def node(self, name: str, value: Any) -> NodeSpec:
        where = ("nodes", name)
        if not isinstance(value, Mapping):
            self.fail(self.marks.line(where), f"node {name!r} must be a mapping with at least a 'sketch'")
        fields = self.fields(name, value)
        if "sketch" not in fields:
            self.fail(self.marks.key(where), f"node {name!r} has no 'sketch'")
        self.board(name, fields)
        return NodeSpec(name=name, line=self.marks.key(where) or 0, **fields)

    def board(self, name: str, fields: Mapping[str, Any]) -> None:
        """``serial`` only for a firmware (``sketch: NAME.ino``), ``baud`` only with ``serial``: at the key's line."""
        where = ("nodes", name)
        with self.at(self.marks.key((*where, "serial")) or self.marks.key(where)):
            check.check_board(name, fields.get("sketch"), fields.get("serial"), fields.get("baud"), "serial")
        with self.at(self.marks.key((*where, "baud")) or self.marks.key(where)):
            check.check_board(name, fields.get("sketch"), fields.get("serial"), fields.get("baud"), "baud")

    def fields(self, name: str, value: Mapping[Any, Any]) -> dict[str, Any]:
        """The fields of node ``name`` that ``value`` gives, each checked."""
        where = ("nodes", name)
        fields: dict[str, Any] = {}
        for key, item in value.items():
            self.text_key(where, key)
            at = (*where, key)
            if key not in NODE_KEYS:
                self.fail(
                    self.marks.key(at),
                    f"unknown key {key!r} in node {name!r} "
                    f"(expected one of: {', '.join(NODE_KEYS)}){suggest(key, NODE_KEYS)}",
                )
            if key == "params":
                fields[key] = self.params(name, at, item)
            elif key == "subscribe":
                fields[key] = self.subscriptions(name, at, item)
            else:
                fields[key] = self.setting(name, at, key, self.value(at, item))
        return fields

    def setting(self, name: str, at: Path, key: str, value: Any) -> Any:
        """The value of a node's ``sketch``, ``host``, ``port``, ``outbox``, ``max_size``, ``durable``, ``timeout``,
        ``serial`` or ``baud``."""
        line = self.marks.line(at)
        with self.at(line):
            if key == "sketch":
                check.check_sketch(name, value)
            elif key == "host":
                check.check_host(name, value)
            elif key == "port":
                check.check_port(name, value, self.marks.text(at))
            elif key == "outbox":
                check.check_outbox(name, value, self.marks.text(at))
            elif key == "max_size":
                check.check_max_size(name, value, self.marks.text(at))
            elif key == "timeout":
                value = check.check_timeout(name, value, self.marks.text(at))
            elif key == "serial":
                check.check_serial(name, value)
            elif key == "baud":
                check.check_baud(name, value, self.marks.text(at))
            else:
                check.check_durable(name, value)
        if key == "sketch" and self.sketches is not None:
            wrong = self.sketches(value)
            if wrong is not None:
                self.fail(line, f"node {name!r}: {wrong}")
        return value

    def params(self, name: str, at: Path, value: Any) -> Mapping[str, Any]:
        if value is None:
            return MappingProxyType({})
        if not isinstance(value, Mapping):
            self.fail(self.marks.line(at), check.params_not_a_mapping(name))
        params: dict[str, Any] = {}
        for key, item in value.items():
            self.text_key(at, key)
            with self.at(self.marks.key((*at, key))):
                check.check_param_name(name, key)
            params[key] = self.value((*at, key), item)
        return MappingProxyType(params)

    def subscriptions(self, name: str, at: Path, value: Any) -> tuple[str, ...]:
        """A node's ``subscribe``: a list of distinct topic patterns; null means none."""
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)):
            self.fail(self.marks.line(at), check.not_a_subscription_list(name))
        patterns: list[str] = []
        for index, item in enumerate(value):
            where = (*at, index)
            item = self.value(where, item)
            with self.at(self.marks.line(where)):
                patterns.append(check.check_subscription(name, item, patterns))
        return tuple(patterns)

    # ---- wires

    def wires(self, nodes: Mapping[str, NodeSpec], value: Any) -> tuple[Wire, ...]:
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)):
            self.fail(self.marks.line(("wires",)), f"'wires' must be a list of {_WIRE_FORM}")
        wires: list[Wire] = []
        first: dict[tuple[str, str], int | None] = {}
        for index, item in enumerate(value):
            line = self.marks.line(("wires", index))
            text = self.value(("wires", index), item)
            match = _WIRE.fullmatch(text) if isinstance(text, str) else None
            if match is None:
                self.fail(line, f"malformed wire {show(text)}; expected {_WIRE_FORM}")
            wire = Wire(source=match[1], target=match[2], line=line or 0)
            for end in (wire.source, wire.target):
                if end not in nodes:
                    self.fail(
                        line,
                        f"wire {str(wire)!r} names unknown node {end!r}; "
                        f"known nodes: {', '.join(sorted(nodes))}{suggest(end, nodes)}",
                    )
            pair = (wire.source, wire.target)
            if pair in first:
                where = f" (first on line {first[pair]})" if first[pair] else ""
                self.fail(line, f"wire {str(wire)!r} is listed twice{where}")
            first[pair] = line
            wires.append(wire)
        return tuple(wires)

    # ---- values

    def text_key(self, parent: Path, key: Any) -> None:
        if not isinstance(key, str):
            self.fail(self.marks.key((*parent, key)), f"keys must be text, not {show(key)}")

    def value(self, where: Path, value: Any) -> Any:
        """A deeply read-only copy of ``value`` (mappings read-only, lists as tuples), its keys checked."""
        if not isinstance(value, (Mapping, list, tuple)):
            return frozenset(value) if isinstance(value, (set, frozenset)) else value
        key = id(value)
        if key in self.frozen:
            return self.frozen[key]
        if key in self.inside:
            self.fail(self.marks.line(where), "a value contains itself")
        self.inside.add(key)
        try:
            if isinstance(value, Mapping):
                items: dict[Any, Any] = {}
                for name, item in value.items():
                    self.text_key(where, name)
                    items[name] = self.value((*where, name), item)
                result: Any = MappingProxyType(items)
            else:
                result = tuple(self.value((*where, index), item) for index, item in enumerate(value))
        finally:
            self.inside.discard(key)
        self.frozen[key] = result
        return result


# --------------------------------------------------------------------------- across nodes


def _check_across(grid: Grid, only: tuple[str, ...] | None = None) -> None:
    """The checks across nodes: wired nodes have a port, no two share an address.

    With ``only``, check those nodes (in that order) against the others, and report them.
    Either way one pass over the grid: the addresses are gathered once.
    """
    taken: dict[tuple[str, int], NodeSpec] = {}
    checked = None if only is None else set(only)
    for spec in grid.nodes.values():
        wires_in = grid.wires_in(spec.name)
        if spec.port is None and wires_in and (checked is None or spec.name in checked):
            wire_in = wires_in[0]
            via = f"(line {wire_in.line})" if wire_in.line else f"({str(wire_in)!r})"
            message = f"node {spec.name!r} receives a wire {via} but has no port to receive on"
            raise GridError(grid.path, spec.line or None, message)
        if checked is None:
            other = taken.setdefault(_address_key(spec), spec) if spec.port else spec
            if other is not spec:
                raise GridError(grid.path, spec.line or None, _taken(spec, other))
    if only is None:
        return
    holders: dict[tuple[str, int], list[NodeSpec]] = {}
    for other in grid.nodes.values():
        holders.setdefault(_address_key(other), []).append(other)
    for name in only:
        spec = grid.nodes[name]
        if not spec.port:
            continue
        for other in holders[_address_key(spec)]:
            if other is not spec:
                raise GridError(grid.path, spec.line or None, _taken(spec, other))


def _address_key(spec: NodeSpec) -> tuple[str, int]:
    return (spec.host.lower(), spec.port or 0)


def _taken(spec: NodeSpec, other: NodeSpec) -> str:
    where = f" (line {other.line})" if other.line else ""
    return f"node {spec.name!r} listens on {spec.address}, already taken by node {other.name!r}{where}"
