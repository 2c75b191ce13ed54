"""An electrical-rules check of a grid, and optionally of the Procfile that runs it.

A grid that loads (see :mod:`mesh.grid`) is valid; it may still be wrong. This
module looks for what is legal but suspicious, like an ERC does for a schematic:

1. a node connected to nothing: no wire in or out, no subscription of its own,
   and no other node's subscription can hear it;
2. wires that form a loop (including a node wired to itself);
3. a subscription that can never hear anything, because no node can publish a
   key the pattern matches: neither another node with a port, nor the
   subscriber itself (a node's own publications reach its own subscriptions,
   as they do at run time; see :meth:`Grid.hears <mesh.grid.Grid.hears>`);
   with the pattern a node could publish on, when one is close (``senser/temp``:
   did you mean ``sensor/temp``?);
4. a node others must reach (wired to, or heard by another node's subscription) whose
   ``host`` is a wildcard (``0.0.0.0``, ``::``): it listens everywhere, but its peers
   would connect to the wildcard, which is their own machine (docs/hosts.md);
5. a node named like a command (``echo``): ``arduino-mesh echo`` runs the command;
6. a node whose sketch has no ``loop()`` (the caller, who loads sketches, says which) that the grid
   sends messages: a wire to it (each message is answered with an error), or subscriptions without
   a ``@hears`` method (its topics go nowhere);
7. with a Procfile: lines that are not ``NAME: COMMAND``, lines that run ``arduino`` (the
   Arduino IDE's command, not ours), ``arduino.py`` lines
   that start an unknown node or start a node a second time, and nodes of the
   grid that no line starts. A line runs the grid its ``--grid`` (or
   ``ARDUINO_GRID=``) names, or else the default grid; lines that run another
   grid are not about this one, and a Procfile none of whose lines runs this
   grid is another grid's (one warning, or nothing when it was only found
   beside the grid rather than asked for).

Every problem is a :class:`Finding` that names the file and the line.
:func:`check_grid` is pure: callers read the files and pass their text. Past 400 lines, it stays
one module: one job (what ``check`` says of a grid and its Procfile), its checks in the order a
reader meets the problems.
"""

from __future__ import annotations

import os.path
import re
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from mesh.grid import Grid, Wire
from mesh.grid.shown import suggest
from mesh.grid.values import host_ip

__all__ = ["COMMANDS", "ERROR", "MAX_LOOPS", "WARNING", "Finding", "check_grid", "summary"]

ERROR = "error"
WARNING = "warning"

#: The CLI's subcommands (``arduino-mesh COMMAND``): a node named so runs only as ``run NAME``, so ``check``
#: warns of one. (tests/cli/test_cli.py keeps this the CLI's own list.)
COMMANDS: frozenset[str] = frozenset({"run", "up", "simulate", "send", "echo", "status", "check", "graph", "new"})
#: The command, installed (``arduino-mesh``) or in a checkout (``./arduino.py``).
_ARDUINO = ("arduino-mesh", "arduino.py")

#: At most this many loops are listed; past it, one more warning says there are more.
MAX_LOOPS = 100

#: honcho's rule for a Procfile line.
_PROCFILE_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")
#: ``NAME=value`` before a command.
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*", re.DOTALL)
#: A Python interpreter, by its file name: python, python3, python3.12.
_PYTHON = re.compile(r"python[0-9.]*")
#: arduino.py's group options, each taking a value: ``--grid X`` or ``--grid=X``.
_GROUP_OPTIONS = ("--grid", "--log-level", "--state-dir")
#: The environment variable arduino.py reads its grid from.
_GRID_ENV = "ARDUINO_GRID"


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One problem: the file and line it is about, how bad it is, what is wrong."""

    path: str
    line: int | None
    level: str  # ERROR or WARNING
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.level}: {self.message}"


def check_grid(
    grid: Grid,
    *,
    procfile: str | None = None,
    procfile_path: str = "Procfile",
    default_grid: str | None = None,
    found: bool = False,
    no_loop: Mapping[str, bool] | None = None,
) -> list[Finding]:
    """Every finding about ``grid`` (and the text of its Procfile, when given), in report order.

    The order is by kind (unconnected nodes, loops, deaf subscriptions, the
    Procfile), and by file order within each kind. ``default_grid`` is the grid
    that a Procfile line with neither ``--grid`` nor ``ARDUINO_GRID=`` runs (None:
    ``grid`` itself). ``found``: the Procfile was only found beside the grid, not
    asked for; if no line of it runs ``grid``, it says nothing about it. ``no_loop``: the nodes whose
    sketch has no ``loop()``, each with whether it has a ``@hears`` method (this module loads no sketch).
    """
    findings = _unconnected(grid) + _loops(grid) + _deaf_subscriptions(grid) + _wildcard_hosts(grid) + _shadowed(grid)
    findings += _without_loop(grid, no_loop or {})
    if procfile is not None:
        findings += _check_procfile(grid, procfile, procfile_path, default_grid, found=found)
    return findings


def summary(findings: Sequence[Finding], grid: Grid) -> str:
    """One line: ``grid.yaml: 3 nodes, 2 wires: 1 error, 2 warnings`` (or ``no problems found``)."""
    errors = sum(1 for finding in findings if finding.level == ERROR)
    warnings = len(findings) - errors
    counts = [_count(errors, "error"), _count(warnings, "warning")]
    verdict = ", ".join(count for count in counts if count) or "no problems found"
    return f"{grid.path}: {_count(len(grid.nodes), 'node')}, {_count(len(grid.wires), 'wire')}: {verdict}"


# --------------------------------------------------------------------------- the grid


def _warn(grid: Grid, line: int, message: str) -> Finding:
    return Finding(path=grid.path, line=line or None, level=WARNING, message=message)


def _unconnected(grid: Grid) -> list[Finding]:
    """Nodes with no wire in or out, no subscription, and that no subscription can hear."""
    return [
        _warn(
            grid,
            spec.line,
            f"node {spec.name!r} is connected to nothing: no wire in or out, no subscription",
        )
        for spec in grid.nodes.values()
        if not spec.subscribe
        and not grid.wires_out(spec.name)
        and not grid.wires_in(spec.name)
        and not grid.heard_by(spec.name)
    ]


def _loops(grid: Grid) -> list[Finding]:
    """One warning per elementary cycle of wires, at the wire that closes it."""
    order = {name: index for index, name in enumerate(grid.nodes)}
    out = {name: grid.wires_out(name) for name in grid.nodes}
    cycles = _cycles(order, out, MAX_LOOPS + 1)
    found = [
        (
            cycle[-1].line,
            _warn(
                grid,
                cycle[-1].line,
                "wires form a loop: " + " -> ".join([wire.source for wire in cycle] + [cycle[0].source]),
            ),
        )
        for cycle in cycles[:MAX_LOOPS]
    ]
    found.sort(key=lambda item: item[0])  # stable: discovery order within a line
    findings = [finding for _, finding in found]
    if len(cycles) > MAX_LOOPS:
        findings.append(
            Finding(
                path=grid.path,
                line=None,
                level=WARNING,
                message=f"more wires form loops; only the first {MAX_LOOPS} loops are listed",
            )
        )
    return findings


def _cycles(order: dict[str, int], out: Mapping[str, Sequence[Wire]], limit: int) -> list[list[Wire]]:
    """Up to ``limit`` elementary cycles, each as its wires from its first node in ``order``.

    Johnson's algorithm, restricted at each start node to the nodes after it in
    file order, so each cycle is found once, from its first node; wires are
    followed in file order.
    """
    cycles: list[list[Wire]] = []
    names = sorted(order, key=order.__getitem__)
    for start in names:
        rank = order[start]
        allowed = _component(start, out, {name for name in names if order[name] >= rank})
        if start not in allowed:
            continue
        _cycles_from(start, out, allowed, cycles, limit)
        if len(cycles) >= limit:
            break
    return cycles


def _cycles_from(
    start: str, out: Mapping[str, Sequence[Wire]], allowed: set[str], cycles: list[list[Wire]], limit: int
) -> None:
    """Append to ``cycles`` the elementary cycles through ``start`` within ``allowed``, until there are ``limit``.

    One start node's search of Johnson's algorithm; its state (blocked nodes,
    the path so far) belongs to this call alone.
    """
    blocked: set[str] = set()
    blocks: dict[str, set[str]] = {name: set() for name in allowed}
    path: list[Wire] = []

    def unblock(name: str) -> None:
        stack = [name]
        while stack:
            node = stack.pop()
            if node in blocked:
                blocked.discard(node)
                stack.extend(blocks[node])
                blocks[node].clear()

    def circuit(node: str) -> bool:
        closed = False
        blocked.add(node)
        for wire in out[node]:
            if len(cycles) >= limit:
                return True
            if wire.target not in allowed:
                continue
            if wire.target == start:
                cycles.append([*path, wire])
                closed = True
            elif wire.target not in blocked:
                path.append(wire)
                if circuit(wire.target):
                    closed = True
                path.pop()
        if closed:
            unblock(node)
        else:
            for wire in out[node]:
                if wire.target in allowed:
                    blocks[wire.target].add(node)
        return closed

    circuit(start)


def _component(start: str, out: Mapping[str, Sequence[Wire]], allowed: set[str]) -> set[str]:
    """The nodes of ``allowed`` on a cycle through ``start`` (empty when there is none)."""
    forward = _reach(start, lambda name: (w.target for w in out[name]), allowed)
    back_edges: dict[str, list[str]] = {name: [] for name in allowed}
    for name in allowed:
        for wire in out[name]:
            if wire.target in allowed:
                back_edges[wire.target].append(name)
    backward = _reach(start, lambda name: back_edges[name], allowed)
    return forward & backward


def _reach(start: str, step: Callable[[str], Iterable[str]], allowed: set[str]) -> set[str]:
    """The nodes of ``allowed`` reachable from ``start`` in one step or more."""
    seen: set[str] = set()
    stack = [start]
    while stack:
        for nxt in step(stack.pop()):
            if nxt in allowed and nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _deaf_subscriptions(grid: Grid) -> list[Finding]:
    """Subscription patterns that can hear no node: no other node with a port, nor the subscriber itself."""
    findings: list[Finding] = []
    for spec in grid.nodes.values():
        for pattern in spec.subscribe:
            if grid.hears(spec.name, pattern):
                continue
            said = f"node {spec.name!r} subscribes to {pattern!r}, which"
            named = pattern.split("/", 1)[0]  # a wildcard would match the subscriber's own keys
            if named in grid.nodes:
                why = f"only {named!r} could publish, and it has no port"
            else:
                why = "no node of the grid with a port can publish"
                why += _did_you_mean(grid, spec.name, pattern)
            findings.append(_warn(grid, spec.line, f"{said} {why}"))
    return findings


def _did_you_mean(grid: Grid, subscriber: str, pattern: str) -> str:
    """``; did you mean 'sensor/temp'?`` for ``senser/temp``: the pattern with its first level (its publisher)
    a node it could hear, when one is close; else ``''``."""
    _, slash, rest = pattern.partition("/")
    heard = [name for name in grid.nodes if name == subscriber or grid.node(name).port is not None]
    return suggest(pattern, [f"{name}{slash}{rest}" for name in heard])


def _is_wildcard(host: str) -> bool:
    address = host_ip(host)
    return address is not None and address.is_unspecified


def _wildcard_hosts(grid: Grid) -> list[Finding]:
    """Nodes that others reach, at a wildcard host: the others would connect to their own machine."""
    findings: list[Finding] = []
    for spec in grid.nodes.values():
        if spec.port is None or not _is_wildcard(spec.host):
            continue
        reached_by = [*grid.sources(spec.name), *(name for name in grid.heard_by(spec.name) if name != spec.name)]
        if not reached_by:
            continue
        findings.append(
            _warn(
                grid,
                spec.line,
                f"node {spec.name!r} has host {spec.host!r}: {reached_by[0]!r} would connect to {spec.host}, "
                "which is its own machine; give the address the others reach it at, and start the node "
                "with --socket 0.0.0.0 to listen on every address (docs/hosts.md)",
            )
        )
    return findings


def _shadowed(grid: Grid) -> list[Finding]:
    """Nodes named like a command: ``arduino-mesh echo`` runs the command, not the node."""
    return [
        _warn(
            grid,
            spec.line,
            f"node {spec.name!r} is named like the command 'arduino-mesh {spec.name}', which runs instead of it:"
            f" start it with 'arduino-mesh run {spec.name}', or rename it",
        )
        for spec in grid.nodes.values()
        if spec.name in COMMANDS
    ]


def _without_loop(grid: Grid, no_loop: Mapping[str, bool]) -> list[Finding]:
    """Nodes sent messages (a wire in, topics without @hears) whose sketch has no loop() to take them."""
    findings = []
    for name, hears in no_loop.items():
        spec = grid.node(name)
        lost = []
        if sources := grid.sources(name):
            lost.append(f"what {', '.join(map(repr, sources))} send{'s' if len(sources) == 1 else ''} gets an error")
        if spec.subscribe and not hears:
            lost.append(f"the topics of {', '.join(spec.subscribe)} go nowhere")
        if lost:
            fix = "give it an '@reactive async def loop(self, channel, message)'"
            findings.append(_warn(grid, spec.line, f"node {name!r} has no loop(): {'; '.join(lost)}; {fix}"))
    return findings


# --------------------------------------------------------------------------- the Procfile


def _check_procfile(grid: Grid, text: str, path: str, default_grid: str | None, *, found: bool) -> list[Finding]:
    """Findings about the Procfile's lines (by line), then about the nodes it does not start."""
    findings: list[Finding] = []
    processes: dict[str, int] = {}
    started: dict[str, int] = {}
    ours = others = 0  # lines that run a node of this grid, of another grid

    def error(line: int, message: str) -> None:
        findings.append(Finding(path=path, line=line, level=ERROR, message=message))

    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        match = _PROCFILE_LINE.match(raw)
        if match is None:
            error(number, "malformed line; expected 'NAME: COMMAND'")
            continue
        process, command = match[1], match[2]
        if process in processes:
            error(number, f"process {process!r} is listed again (first on line {processes[process]})")
            continue
        processes[process] = number
        try:
            words = shlex.split(command, comments=True)
        except ValueError as exc:
            error(number, f"cannot read the command: {str(exc).lower()}")
            continue
        if any(os.path.basename(word) == "arduino" for word in words):
            error(number, "runs 'arduino', the Arduino IDE's command: this project's is 'arduino-mesh'")
            continue
        target = _started_node(words)
        if target is None:
            continue
        node, grid_file = target
        grid_file = grid_file if grid_file is not None else default_grid
        if grid_file is not None and not _same_file(grid_file, grid.path):
            others += 1
            continue
        ours += 1
        if node not in grid.nodes:
            known = ", ".join(sorted(grid.nodes))
            error(number, f"starts node {node!r}, which {grid.path} does not have; known nodes: {known}")
        elif node in started:
            error(number, f"starts node {node!r} again (first on line {started[node]})")
        else:
            started[node] = number
    if others and not ours:
        if found:
            return []
        findings.append(
            Finding(
                path=path,
                line=None,
                level=WARNING,
                message=f"starts no node of {grid.path}; its lines run another grid",
            )
        )
        return findings
    for spec in grid.nodes.values():
        if spec.name not in started:
            findings.append(_warn(grid, spec.line, f"the Procfile does not start node {spec.name!r}"))
    return findings


def _started_node(words: list[str]) -> tuple[str, str | None] | None:
    """The node a Procfile command starts and the grid it names (None: the default), or None when it runs no node.

    The command runs ``arduino-mesh`` or ``arduino.py`` (after ``exec``, ``env``, a Python
    interpreter and its options, ``NAME=value`` assignments); the node is the
    first word after the group options, or the one after ``run``; the grid is
    its ``--grid`` (or ``ARDUINO_GRID=``).
    """
    grid_file: str | None = None
    rest = iter(words)
    word: str | None  # each word in turn; None past the last
    for word in rest:
        if os.path.basename(word) in _ARDUINO:
            break
        if _ASSIGNMENT.fullmatch(word):
            name, _, value = word.partition("=")
            if name == _GRID_ENV:
                grid_file = value
        elif (
            word not in ("exec", "env")
            and not word.startswith("-")  # an option of env or of the interpreter, e.g. -u
            and not _PYTHON.fullmatch(os.path.basename(word))
        ):
            return None
    else:
        return None
    word = next(rest, None)
    while word is not None:
        option, equals, value = word.partition("=")
        if option not in _GROUP_OPTIONS:
            break
        if not equals:
            value = next(rest, None) or ""
        if option == "--grid":
            grid_file = value
        word = next(rest, None)
    if word == "run":
        word = next(rest, None)
    elif word in COMMANDS:
        return None
    if word is None or word.startswith("-"):
        return None
    return word, grid_file


def _same_file(one: str, other: str) -> bool:
    """Whether two paths may name the same file: equal, or one ends with the other."""
    a = os.path.normpath(one).split(os.sep)
    b = os.path.normpath(other).split(os.sep)
    shorter, longer = sorted((a, b), key=len)
    return longer[len(longer) - len(shorter) :] == shorter


def _count(number: int, noun: str) -> str:
    """``1 node``, ``2 nodes``; ``''`` for no errors or no warnings."""
    if number == 0 and noun in (ERROR, WARNING):
        return ""
    return f"{number} {noun}{'' if number == 1 else 's'}"
