"""Scenarios: a YAML file of steps to play against a simulated circuit, parsed and checked like the grid.

::

    grid: ../grid.yaml              # relative to the scenario's folder; absent: the command's --grid
    seed: 1                         # absent: the command's --seed
    nodes: [clock, iopin, buzzer]   # which nodes run; absent: all of the grid (or the command's NODE...)
    params: {clock: {tacks: 0}}     # params changed for this scenario
    steps:
      - delay: 500ms
      - send: {node: clock, message: press, channel: "", expect: tick 1}
      - expect-topic: {key: iopin/pin, value: 1, within: 2s}
      - expect-count: {key: buzzer/sound, at-least: 3, within: 5s}
      - unplug: iopin -> buzzer
      - plug: iopin -> buzzer
      - kill: buzzer
      - restart: buzzer
      - freeze: {node: iopin, for: 5s}
      - latency: {wire: iopin -> buzzer, delay: 50ms, jitter: 10ms}   # no wire: every connection
      - latency: {}                                                    # every connection back to none
      - partition: [[clock], [iopin, buzzer]]
      - heal: {}
      - flaky: {wire: clock -> iopin, every: 2s}                      # flaky: {} ends it
      - delay: 1s..10s                                                 # any duration of a step: a span

This module is the core: text to a frozen :class:`~mesh.steps.Scenario` (:func:`load_scenario`), and
the checks against a grid (:func:`check`), with no I/O and no event loop. The YAML is read
by the grid's own reader (:func:`mesh.grid.load_yaml`: every value keeps its line, YAML's
traps refused), and every problem is one :class:`ScenarioError`, ``FILE:LINE: what``, at
the line of the field that is wrong (else of its step). Playing the steps is
:mod:`nodes.scenario`'s job. Past 400 lines, it is still one job, the reader of one file
format, and reads best whole: every step's fields and checks next to the others'.
"""

from __future__ import annotations

import os.path
import re
from collections.abc import Collection, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NoReturn

from mesh.durations import DurationError, duration
from mesh.errors import GridError, ScenarioError, TopicError
from mesh.grid import Grid, Marks, load_yaml
from mesh.grid.shown import kind, show, suggest
from mesh.topics import check_pattern

from .steps import (
    STEPS,
    Delay,
    ExpectCount,
    ExpectTopic,
    Flaky,
    Freeze,
    Heal,
    Kill,
    Latency,
    Partition,
    Plug,
    Restart,
    Scenario,
    Seconds,
    Send,
    Span,
    Step,
    Unplug,
)

__all__ = ["TOP_KEYS", "check", "load_scenario"]

#: The keys a scenario may have at the top level, sorted.
TOP_KEYS: tuple[str, ...] = ("grid", "nodes", "params", "seed", "steps")

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_WIRE = re.compile(rf"\s*({_NAME.pattern})\s*->\s*({_NAME.pattern})\s*")


# --------------------------------------------------------------------------- reading


def load_scenario(text: str, path: str = "scenario.yaml") -> Scenario:
    """Parse the text of a scenario; ``path`` names it in errors and places its ``grid:``. ScenarioError if malformed."""
    try:
        data, marks = load_yaml(text, path)
    except ScenarioError:
        raise
    except GridError as exc:
        raise ScenarioError(exc.path, exc.line, exc.message) from None
    try:
        return _Reader(path, marks).scenario(data)
    except RecursionError:
        raise ScenarioError(path, None, "the scenario is nested too deeply") from None


class _Reader:
    def __init__(self, path: str, marks: Marks) -> None:
        self.path = path
        self.marks = marks

    def fail(self, line: int | None, message: str) -> NoReturn:
        raise ScenarioError(self.path, line, message)

    def scenario(self, data: Any) -> Scenario:
        if data is None:
            self.fail(None, "the scenario is empty; it needs 'steps'")
        if not isinstance(data, Mapping):
            self.fail(self.marks.line(()), f"a scenario must be a mapping with 'steps', not {kind(data)}")
        for key in data:
            if not isinstance(key, str) or key not in TOP_KEYS:
                self.fail(
                    self.marks.key((key,)),
                    f"unknown key {show(key)} at the top level (expected one of: {', '.join(TOP_KEYS)})"
                    f"{suggest(key, TOP_KEYS) if isinstance(key, str) else ''}",
                )
        if "steps" not in data:
            self.fail(None, "the scenario has no 'steps'")
        lines = {key: self.marks.key((key,)) or 0 for key in data}
        return Scenario(
            path=self.path,
            steps=self.steps(data["steps"]),
            grid=self.grid(data["grid"]) if data.get("grid") is not None else None,
            seed=self.seed(data["seed"]) if data.get("seed") is not None else None,
            nodes=self.nodes(data["nodes"]) if data.get("nodes") is not None else None,
            params=self.params(data["params"]) if data.get("params") is not None else MappingProxyType({}),
            lines=MappingProxyType(lines),
            params_lines=MappingProxyType(
                {name: self.marks.key(("params", name)) or 0 for name in (data.get("params") or {})}
            ),
        )

    # ---- the top level

    def grid(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(self.marks.line(("grid",)), f"'grid' must be the path of a grid file, not {show(value)}")
        return os.path.join(os.path.dirname(self.path), value)  # string work: the CLI reads the file

    def seed(self, value: Any) -> int | str:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            self.fail(self.marks.line(("seed",)), f"'seed' must be a whole number or a word, not {show(value)}")
        return value

    def nodes(self, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            self.fail(self.marks.line(("nodes",)), "'nodes' must be a list of node names, like [clock, iopin]")
        names: list[str] = []
        for index, name in enumerate(value):
            where = self.marks.line(("nodes", index))
            self.check_name(where, name, "in 'nodes'")
            if name in names:
                self.fail(where, f"node {name!r} is listed twice in 'nodes'")
            names.append(name)
        return tuple(names)

    def params(self, value: Any) -> Mapping[str, Mapping[str, Any]]:
        if not isinstance(value, Mapping):
            self.fail(self.marks.line(("params",)), "'params' must map node names to params, like {clock: {tacks: 0}}")
        result: dict[str, Mapping[str, Any]] = {}
        for name, params in value.items():
            self.check_name(self.marks.key(("params", name)), name, "in 'params'")
            if not isinstance(params, Mapping):
                self.fail(self.marks.line(("params", name)), f"the params of {name!r} must be a mapping")
            for key in params:
                if not isinstance(key, str):
                    self.fail(self.marks.key(("params", name, key)), f"param names must be text, not {show(key)}")
            result[name] = MappingProxyType(dict(params))
        return MappingProxyType(result)

    # ---- the steps

    def steps(self, value: Any) -> tuple[Step, ...]:
        if not isinstance(value, list) or not value:
            self.fail(self.marks.line(("steps",)), "'steps' must be a list of steps, like [{delay: 1s}]")
        return tuple(self.step(("steps", index), item) for index, item in enumerate(value))

    def step(self, at: tuple[Any, ...], value: Any) -> Step:
        line = self.marks.line(at) or 0
        if not isinstance(value, Mapping) or len(value) != 1:
            got = f"{len(value)} keys" if isinstance(value, Mapping) else show(value)
            self.fail(line, f"a step is one 'name: what', like 'delay: 500ms' (steps: {', '.join(STEPS)}), not {got}")
        ((name, body),) = value.items()
        if not isinstance(name, str) or name not in STEPS:
            hint = suggest(name, STEPS) if isinstance(name, str) else ""
            self.fail(line, f"unknown step {show(name)} (expected one of: {', '.join(STEPS)}){hint}")
        at = (*at, name)
        here = self.marks.line(at) or line
        if name == "delay":
            seconds, written = self.duration(at, body, "delay", span=True)
            return Delay(line=line, seconds=seconds, written=written)
        if name == "heal":
            if body not in (None, {}):
                self.fail(here, f"heal takes nothing: write 'heal: {{}}', not {show(body)}")
            return Heal(line=line)
        if name == "partition":
            return Partition(line=line, groups=self.groups(at, body))
        if name in ("unplug", "plug"):
            match = _WIRE.fullmatch(body) if isinstance(body, str) else None
            if match is None:
                self.fail(here, f"{name}: expected a wire 'SOURCE -> TARGET', not {show(body)}")
            kind_of_step = Unplug if name == "unplug" else Plug
            return kind_of_step(line=line, source=match[1], target=match[2])
        if name in ("kill", "restart"):
            self.check_name(here, body, f"{name}:")
            return (Kill if name == "kill" else Restart)(line=line, node=body)
        fields = self.fields(at, name, body)
        if name == "send":
            return Send(
                line=line,
                node=self.node_field(at, fields, name),
                node_line=self.marks.line((*at, "node")) or line,
                message=self.text(at, fields, "message", name, required=True) or "",
                channel=self.text(at, fields, "channel", name) or "",
                expect=self.text(at, fields, "expect", name),
            )
        if name == "expect-topic":
            key = self.pattern(at, fields, name)
            if "within" not in fields:
                self.fail(line, f"{name} {key} needs 'within' (how long to wait for it, like 2s)")
            within, written = self.duration((*at, "within"), fields["within"], f"{name} 'within'")
            return ExpectTopic(
                line=line, key=key, value=self.text(at, fields, "value", name), within=within, within_written=written
            )
        if name == "expect-count":
            return self.expect_count(at, line, fields)
        if name == "latency":
            delay, delay_written = self.duration((*at, "delay"), fields.get("delay", 0), "latency 'delay'", span=True)
            jitter, jitter_written = self.duration(
                (*at, "jitter"), fields.get("jitter", 0), "latency 'jitter'", span=True
            )
            if "jitter" in fields and (
                "delay" not in fields or (isinstance(jitter, float) and isinstance(delay, float) and jitter > delay)
            ):
                self.fail(line, "latency: 'jitter' goes around a 'delay' at least as long (delay: 50ms, jitter: 10ms)")
            return Latency(
                line=line,
                wire=self.wire_field(at, fields, name),
                delay=delay,
                delay_written=delay_written if "delay" in fields else "",
                jitter=jitter,
                jitter_written=jitter_written if "jitter" in fields else "",
            )
        if name == "flaky":
            every: Seconds | None = None
            every_written = ""
            if "every" in fields:
                every, every_written = self.duration((*at, "every"), fields["every"], "flaky 'every'", span=True)
                if not every:
                    self.fail(self.marks.line((*at, "every")), "flaky 'every' must be above 0 (flaky: {} ends it)")
            elif "wire" in fields:
                self.fail(line, "flaky needs 'every' (how often on average, like 2s); flaky: {} ends it")
            return Flaky(line=line, wire=self.wire_field(at, fields, name), every=every, every_written=every_written)
        # freeze
        if "for" not in fields:
            self.fail(line, "freeze needs 'for' (how long, like 5s)")
        seconds, written = self.duration((*at, "for"), fields["for"], "freeze 'for'", span=True)
        return Freeze(
            line=line,
            node=self.node_field(at, fields, name),
            node_line=self.marks.line((*at, "node")) or line,
            seconds=seconds,
            written=written,
        )

    def expect_count(self, at: tuple[Any, ...], line: int, fields: Mapping[str, Any]) -> ExpectCount:
        name = "expect-count"
        key = self.pattern(at, fields, name)
        counts: dict[str, int | None] = {}
        for field_name in ("at-least", "exactly", "at-most"):
            value = fields.get(field_name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                self.fail(
                    self.marks.line((*at, field_name)),
                    f"{name} '{field_name}' must be a whole number, 0 or more, not {show(value)}",
                )
            counts[field_name] = value
        if all(value is None for value in counts.values()):
            self.fail(line, f"{name} {key} needs 'at-least', 'exactly' or 'at-most'")
        if counts["exactly"] is not None and (counts["at-least"] is not None or counts["at-most"] is not None):
            self.fail(line, f"{name} {key}: 'exactly' goes alone, without 'at-least' or 'at-most'")
        low, high = counts["at-least"], counts["at-most"]
        if low is not None and high is not None and low > high:
            self.fail(line, f"{name} {key}: at least {low} and at most {high} can never hold")
        within: float | None = None
        written = ""
        if fields.get("within") is not None:
            within, written = self.duration((*at, "within"), fields["within"], f"{name} 'within'")
        return ExpectCount(
            line=line,
            key=key,
            at_least=low,
            exactly=counts["exactly"],
            at_most=high,
            within=within,
            within_written=written,
        )

    # ---- fields

    _FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
        {
            "send": ("channel", "expect", "message", "node"),
            "expect-topic": ("key", "value", "within"),
            "expect-count": ("at-least", "at-most", "exactly", "key", "within"),
            "freeze": ("for", "node"),
            "latency": ("delay", "jitter", "wire"),
            "flaky": ("every", "wire"),
        }
    )

    def fields(self, at: tuple[Any, ...], name: str, body: Any) -> Mapping[str, Any]:
        allowed = self._FIELDS[name]
        if not isinstance(body, Mapping):
            self.fail(
                self.marks.line(at), f"{name} must be a mapping with {', '.join(allowed)}, like {_EXAMPLES[name]}"
            )
        for key in body:
            if not isinstance(key, str) or key not in allowed:
                hint = suggest(key, allowed) if isinstance(key, str) else ""
                self.fail(
                    self.marks.key((*at, key)),
                    f"unknown key {show(key)} in {name} (expected one of: {', '.join(allowed)}){hint}",
                )
        return body

    def wire_field(self, at: tuple[Any, ...], fields: Mapping[str, Any], name: str) -> tuple[str, str] | None:
        """A step's ``wire: SOURCE -> TARGET``, or None when it has none (every connection)."""
        if "wire" not in fields:
            return None
        value = fields["wire"]
        match = _WIRE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            self.fail(self.marks.line((*at, "wire")), f"{name} 'wire': expected 'SOURCE -> TARGET', not {show(value)}")
        return (match[1], match[2])

    def groups(self, at: tuple[Any, ...], value: Any) -> tuple[tuple[str, ...], ...]:
        """A partition's groups: a list of two lists of node names or more, each node in one group."""
        line = self.marks.line(at)
        if not isinstance(value, list) or len(value) < 2 or not all(isinstance(g, list) and g for g in value):
            self.fail(
                line,
                f"partition: expected two groups of nodes or more, like [[clock], [iopin, buzzer]], not {show(value)}",
            )
        seen: set[str] = set()
        for index, group in enumerate(value):
            for place, name in enumerate(group):
                where = self.marks.line((*at, index, place)) or line
                self.check_name(where, name, "partition:")
                if name in seen:
                    self.fail(where, f"partition: node {name!r} is in two groups")
                seen.add(name)
        return tuple(tuple(group) for group in value)

    def node_field(self, at: tuple[Any, ...], fields: Mapping[str, Any], name: str) -> str:
        if "node" not in fields:
            self.fail(self.marks.line(at), f"{name} needs 'node'")
        value = fields["node"]
        self.check_name(self.marks.line((*at, "node")), value, f"{name} 'node':")
        return str(value)

    def text(
        self, at: tuple[Any, ...], fields: Mapping[str, Any], key: str, name: str, *, required: bool = False
    ) -> str | None:
        """A field compared or sent as text: a string, or a number as written (``value: 1`` is ``"1"``)."""
        if key not in fields:
            if required:
                self.fail(self.marks.line(at), f"{name} needs {key!r}")
            return None
        value = fields[key]
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return self.marks.text((*at, key)) or str(value)
        self.fail(self.marks.line((*at, key)), f"{name} {key!r} must be text or a number, not {show(value)}")

    def pattern(self, at: tuple[Any, ...], fields: Mapping[str, Any], name: str) -> str:
        if "key" not in fields:
            self.fail(self.marks.line(at), f"{name} needs 'key' (a topic key or pattern, like iopin/pin)")
        value = fields["key"]
        line = self.marks.line((*at, "key"))
        if not isinstance(value, str):
            self.fail(line, f"{name} 'key' must be a topic key or pattern, not {show(value)}")
        try:
            check_pattern(value)
        except TopicError as exc:
            self.fail(line, f"{name} 'key': {exc}")
        return value

    def duration(self, at: tuple[Any, ...], value: Any, what: str, *, span: bool = False) -> tuple[Any, str]:
        """Seconds (or, where ``span`` allows, a :class:`Span` ``low..high``), and the duration as written."""
        written = value if isinstance(value, str) else f"{self.marks.text(at) or value}s"
        if span and isinstance(value, str) and ".." in value:
            low, _, high = value.partition("..")
            try:
                bounds = duration(low), duration(high)
            except DurationError as exc:
                self.fail(self.marks.line(at), f"{what}: {exc} (a span is written 1s..10s)")
            if bounds[0] > bounds[1]:
                self.fail(self.marks.line(at), f"{what}: the span {value} goes from the shorter to the longer")
            return Span(*bounds, written=value), written
        try:
            seconds = duration(value)
        except DurationError as exc:
            self.fail(self.marks.line(at), f"{what}: {exc}")
        return seconds, written

    def check_name(self, line: int | None, value: Any, where: str) -> None:
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            self.fail(line, f"{where} expected a node name, not {show(value)}")


_EXAMPLES = {
    "send": "{node: buzzer, message: 1, expect: buzz buzz buzz}",
    "expect-topic": "{key: iopin/pin, value: 1, within: 2s}",
    "expect-count": "{key: buzzer/sound, at-least: 3}",
    "freeze": "{node: iopin, for: 5s}",
    "latency": "{wire: iopin -> buzzer, delay: 50ms, jitter: 10ms}",
    "flaky": "{wire: clock -> iopin, every: 2s}",
}


# --------------------------------------------------------------------------- against a grid


def check(scenario: Scenario, grid: Grid, nodes: Collection[str] | None = None) -> tuple[str, ...]:
    """Check ``scenario`` against ``grid`` before any time passes; the names of the nodes to run.

    ``nodes`` are the nodes the command was asked to run (its NODE...), used when the
    scenario names none; else the scenario's ``nodes``, else all of the grid's. Every node
    and wire a step names must be among them, a ``send`` must go to a node with a port,
    and kills and restarts must alternate (a killed node is not frozen or killed again).
    """
    path = scenario.path
    names: Sequence[str] = scenario.nodes or tuple(nodes or grid.nodes)
    known = tuple(grid.nodes)
    where_nodes = scenario.lines.get("nodes") or None
    for name in names:
        if name not in grid.nodes:
            raise ScenarioError(path, where_nodes, _unknown(name, known, grid))
    running = set(names)

    def node(line: int, name: str) -> None:
        if name not in grid.nodes:
            raise ScenarioError(path, line or None, _unknown(name, known, grid))
        if name not in running:
            raise ScenarioError(
                path, line or None, f"node {name!r} is not among the nodes simulated ({', '.join(names)})"
            )

    def wire(step: Step, source: str, target: str) -> None:
        for end in (source, target):
            node(step.line, end)
        if not any((w.source, w.target) == (source, target) for w in grid.wires):
            wires = ", ".join(str(w) for w in grid.wires) or "none"
            message = f"{step.name}: no wire {source} -> {target} in {grid.path} (wires: {wires})"
            raise ScenarioError(path, step.line or None, message)

    for name in scenario.params:
        node(scenario.params_lines.get(name) or scenario.lines.get("params", 0), name)
    killed: set[str] = set()
    for step in scenario.steps:
        if isinstance(step, (Unplug, Plug)):
            wire(step, step.source, step.target)
        elif isinstance(step, Send):
            node(step.node_line, step.node)
            if grid.node(step.node).port is None:
                raise ScenarioError(
                    path, step.node_line or None, f"send: node {step.node!r} has no port: nothing can be sent to it"
                )
        elif isinstance(step, Kill):
            node(step.line, step.node)
            if step.node in killed:
                raise ScenarioError(path, step.line or None, f"kill: {step.node} is already killed (restart it first)")
            killed.add(step.node)
        elif isinstance(step, Restart):
            node(step.line, step.node)
            if step.node not in killed:
                raise ScenarioError(path, step.line or None, f"restart: {step.node} is running (kill it first)")
            killed.discard(step.node)
        elif isinstance(step, Freeze):
            node(step.node_line, step.node)
            if step.node in killed:
                raise ScenarioError(path, step.node_line or None, f"freeze: {step.node} is killed: nothing to freeze")
        elif isinstance(step, (Latency, Flaky)) and step.wire is not None:
            wire(step, *step.wire)
        elif isinstance(step, Partition):
            for group in step.groups:
                for name in group:
                    node(step.line, name)
    return tuple(names)


def _unknown(name: str, known: Sequence[str], grid: Grid) -> str:
    return f"unknown node {name!r} in {grid.path}; known nodes: {', '.join(known)}{suggest(name, known)}"
