"""The grid as frozen data: :class:`NodeSpec`, :class:`Wire`, :class:`Grid`, and what follows from them.

Every fact derived from a grid has one place here: the wires in and out of a
node, the nodes that can be reached (those with a port), the publishers a
subscription links to, and who hears whom. A node hears the keys a subscription
of its own matches, from the nodes with a port it links to *and from itself*:
its own publications reach its own subscriptions without a link.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from types import MappingProxyType
from typing import Any

from mesh.constants import DEFAULT_HOST, DEFAULT_MAX_SIZE, DEFAULT_OUTBOX
from mesh.errors import UnknownNodeError
from mesh.topics import publishers

__all__ = ["NODE_FIELDS", "TLS_KEYS", "Grid", "GridDiff", "NodeSpec", "TLSFiles", "Wire", "freeze"]

#: The keys of the grid's ``tls`` mapping, all three required: each names a PEM file.
TLS_KEYS: tuple[str, ...] = ("ca", "cert", "key")


@dataclass(frozen=True, kw_only=True)
class NodeSpec:
    """One node of the grid: its sketch, where it listens, the sketch's params, its subscriptions.

    ``subscribe`` holds topic patterns (see :mod:`mesh.topics`) in file order; a
    subscriber connects out to the publishers, so it needs no port of its own.
    ``outbox``, ``max_size`` and ``durable`` say how the node's links behave; ``timeout``
    how long one ``loop()`` call may take before its sender gets an error. A firmware node
    (``sketch: lamp.ino``) runs on a simulated MCU, or, with ``serial`` (and ``baud``), is a real
    board on that serial port (see docs/firmware.md).
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
    timeout: float | None = None  # seconds one loop() call may take before it is cancelled; None: no bound
    serial: str | None = None  # a firmware node's real board: its serial port (/dev/ttyACM0); None: simulated
    baud: int | None = None  # the board's serial speed (None: the default, 115200)
    line: int = 0  # line of the node's definition in the file; 0 when built in memory
    tls: bool = False  # the grid has tls: the node serves wss:// (set by the Grid, not a key of a node)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", freeze(self.params))
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
        """``ws://host:port`` (``wss://`` when the grid has tls) to reach the node, or None when it has no port."""
        address = self.address
        return None if address is None else f"{'wss' if self.tls else 'ws'}://{address}"


#: The fields of a node that :meth:`Grid.diff` compares: all but its name and its line (read from
#: NodeSpec itself, so that a field added to a node is compared too).
NODE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(NodeSpec) if f.name not in ("name", "line", "tls"))


@dataclass(frozen=True, kw_only=True)
class TLSFiles:
    """The grid's ``tls``: the PEM files every node serves and verifies with.

    ``cert`` (the node's certificate chain), ``key`` (its private key) and ``ca`` (the
    certificate of the CA that signed every node's) are paths resolved against the
    grid file's folder; ``written`` keeps each as the file says it, ``lines`` the line
    of each key, for messages. Two TLSFiles are equal when they name the same files;
    what the files hold is read by :mod:`mesh.tls`, not here.
    """

    cert: str
    key: str
    ca: str
    written: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), compare=False, hash=False)
    lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}), compare=False, hash=False)
    line: int = field(default=0, compare=False)  # line of the ``tls`` key; 0 when built in memory
    path: str = field(default="<grid>", compare=False)  # the grid file, for the errors that name it

    def __post_init__(self) -> None:
        object.__setattr__(self, "written", MappingProxyType(dict(self.written)))
        object.__setattr__(self, "lines", MappingProxyType(dict(self.lines)))

    def shown(self, key: str) -> str:
        """``tls.ca: ca.pem``: a key and its file as the grid writes it, for a message."""
        return f"tls.{key}: {self.written.get(key, getattr(self, key))}"

    def line_of(self, key: str) -> int | None:
        """The line of ``key`` in the grid (of ``tls`` when unknown), or None when built in memory."""
        return self.lines.get(key) or self.line or None


@dataclass(frozen=True, kw_only=True)
class Wire:
    """A wire from the node ``source`` to the node ``target``."""

    source: str
    target: str
    line: int = 0  # line of the wire in the file; 0 when built in memory

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}"


@dataclass(frozen=True, kw_only=True)
class GridDiff:
    """What changed from one grid to another (:meth:`Grid.diff`): nodes and wires in and out, fields changed.

    Nodes added or changed are in the new grid's order, nodes removed in the old one's;
    wires likewise. A wire is its two ends: moving it to another line changes nothing.
    """

    nodes_added: tuple[str, ...] = ()
    nodes_removed: tuple[str, ...] = ()
    #: node name -> the fields of :data:`NODE_FIELDS` that changed, in that order
    nodes_changed: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    wires_added: tuple[Wire, ...] = ()
    wires_removed: tuple[Wire, ...] = ()
    auth_changed: bool = False
    tls_changed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "nodes_changed", MappingProxyType(dict(self.nodes_changed)))

    def __bool__(self) -> bool:
        return bool(
            self.nodes_added
            or self.nodes_removed
            or self.nodes_changed
            or self.wires_added
            or self.wires_removed
            or self.auth_changed
            or self.tls_changed
        )

    def changed(self, name: str) -> tuple[str, ...]:
        """The fields of node ``name`` that changed (none for a node added, removed or unknown)."""
        return self.nodes_changed.get(name, ())

    def summary(self) -> list[str]:
        """One short phrase per change: ``node led added``, ``wire iopin -> led added``, ``node iopin: params changed``."""
        return [
            *(f"node {name} added" for name in self.nodes_added),
            *(f"node {name} removed" for name in self.nodes_removed),
            *(f"node {name}: {', '.join(keys)} changed" for name, keys in self.nodes_changed.items()),
            *(f"wire {wire} added" for wire in self.wires_added),
            *(f"wire {wire} removed" for wire in self.wires_removed),
            *(["auth changed"] if self.auth_changed else []),
            *(["tls changed"] if self.tls_changed else []),
        ]


@dataclass(frozen=True, kw_only=True)
class Grid:
    """The whole circuit: nodes in file order and the wires between them.

    ``auth_token_env`` is the *name* of the environment variable that holds the
    token every connection must present (None: no token); never the token itself.
    ``tls``, when set, makes every node serve ``wss://`` and every client verify it
    against the grid's CA (:mod:`mesh.tls`): each node's ``tls`` (and so its ``uri``)
    follows it.
    """

    nodes: Mapping[str, NodeSpec] = field(hash=False)
    wires: tuple[Wire, ...] = ()
    path: str = "<grid>"
    auth_token_env: str | None = None
    tls: TLSFiles | None = None

    def __post_init__(self) -> None:
        secure = self.tls is not None
        nodes = {name: spec if spec.tls == secure else replace(spec, tls=secure) for name, spec in self.nodes.items()}
        object.__setattr__(self, "nodes", MappingProxyType(nodes))
        object.__setattr__(self, "wires", tuple(self.wires))

    @cached_property
    def _ends(self) -> tuple[dict[str, tuple[Wire, ...]], dict[str, tuple[Wire, ...]]]:
        """The wires out of and into each node, in wire order; built on first use."""
        out: dict[str, list[Wire]] = {}
        into: dict[str, list[Wire]] = {}
        for wire in self.wires:
            out.setdefault(wire.source, []).append(wire)
            into.setdefault(wire.target, []).append(wire)
        return (
            {name: tuple(wires) for name, wires in out.items()},
            {name: tuple(wires) for name, wires in into.items()},
        )

    def node(self, name: str) -> NodeSpec:
        """The node called ``name``; UnknownNodeError if the grid has none."""
        try:
            return self.nodes[name]
        except KeyError:
            raise UnknownNodeError(name, self.nodes) from None

    # ---- wires

    def wires_out(self, name: str) -> tuple[Wire, ...]:
        """The wires from ``name``, in wire order."""
        self.node(name)
        return self._ends[0].get(name, ())

    def wires_in(self, name: str) -> tuple[Wire, ...]:
        """The wires to ``name``, in wire order."""
        self.node(name)
        return self._ends[1].get(name, ())

    def targets(self, name: str) -> tuple[str, ...]:
        """The nodes that ``name`` wires to, in wire order."""
        return tuple(wire.target for wire in self.wires_out(name))

    def sources(self, name: str) -> tuple[str, ...]:
        """The nodes wired to ``name``, in wire order."""
        return tuple(wire.source for wire in self.wires_in(name))

    # ---- topics

    def reachable(self, but: str | None = None) -> tuple[str, ...]:
        """The nodes with a port (which others can link to), in file order, except ``but``."""
        return tuple(name for name, spec in self.nodes.items() if spec.port is not None and name != but)

    def publishers(self, pattern: str, but: str | None = None) -> tuple[str, ...]:
        """The nodes a subscription to ``pattern`` links to: those with a port whose keys it can match.

        In file order, except ``but`` (the subscriber: its own keys reach it without a link).
        """
        return tuple(publishers(pattern, self.reachable(but)))

    def hears(self, subscriber: str, pattern: str) -> tuple[str, ...]:
        """The nodes whose keys reach ``subscriber``'s subscription to ``pattern``, in file order.

        Its publishers (:meth:`publishers`), and ``subscriber`` itself when the
        pattern can match its keys: a node's publications reach its own subscriptions.
        """
        self.node(subscriber)
        candidates = [name for name, spec in self.nodes.items() if name == subscriber or spec.port is not None]
        return tuple(publishers(pattern, candidates))

    def heard_by(self, name: str) -> tuple[str, ...]:
        """The nodes with a subscription that hears ``name`` (itself included), in file order."""
        self.node(name)
        return tuple(
            subscriber
            for subscriber, spec in self.nodes.items()
            if any(name in self.hears(subscriber, pattern) for pattern in spec.subscribe)
        )

    # ---- changes

    def diff(self, new: Grid) -> GridDiff:
        """What changed from this grid to ``new``: nodes added, removed or changed (which fields), wires, auth, tls."""
        changed = {}
        for name, spec in new.nodes.items():
            old = self.nodes.get(name)
            if old is not None:
                keys = tuple(f for f in NODE_FIELDS if getattr(old, f) != getattr(spec, f))
                if keys:
                    changed[name] = keys
        old_wires = {(w.source, w.target) for w in self.wires}
        new_wires = {(w.source, w.target) for w in new.wires}
        return GridDiff(
            nodes_added=tuple(name for name in new.nodes if name not in self.nodes),
            nodes_removed=tuple(name for name in self.nodes if name not in new.nodes),
            nodes_changed=changed,
            wires_added=tuple(w for w in new.wires if (w.source, w.target) not in old_wires),
            wires_removed=tuple(w for w in self.wires if (w.source, w.target) not in new_wires),
            auth_changed=self.auth_token_env != new.auth_token_env,
            tls_changed=self.tls != new.tls,
        )

    def with_node(self, name: str, **changes: Any) -> Grid:
        """A new grid with the node ``name`` changed (e.g. ``port=8800``), checked again.

        Raises UnknownNodeError for an unknown name, TypeError for a field that
        NodeSpec does not have (or ``name``), and GridError (naming this grid's
        path and the node's line) when the changed node no longer fits the grid.
        """
        from .rules import change_node  # the rules build grids: they import this module

        return change_node(self, name, changes)

    def with_nodes(self, changes: Mapping[str, Mapping[str, Any]]) -> Grid:
        """A new grid with several nodes changed at once (``{"iopin": {"port": 8800}, ...}``), checked again.

        The same checks and errors as :meth:`with_node` for each, in the order given, but the
        grid is rebuilt and checked across its nodes once: changing every node of a grid of
        10,000 costs about as much as reading it, where 10,000 ``with_node`` calls cost 10,000 times that.
        """
        from .rules import change_nodes  # the rules build grids: they import this module

        return change_nodes(self, changes)


def freeze(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """A deeply read-only copy: mappings as MappingProxyType, lists as tuples."""
    if memo is None:
        memo = {}
    if id(value) in memo:
        return memo[id(value)]
    if isinstance(value, Mapping):
        memo[id(value)] = MappingProxyType({})  # placeholder against cycles
        frozen: Any = MappingProxyType({key: freeze(item, memo) for key, item in value.items()})
    elif isinstance(value, (list, tuple)):
        frozen = tuple(freeze(item, memo) for item in value)
    elif isinstance(value, (set, frozenset)):
        frozen = frozenset(value)
    else:
        return value
    memo[id(value)] = frozen
    return frozen
