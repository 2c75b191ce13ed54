"""The steps of a scenario, as plain frozen data: what :mod:`mesh.scenario` reads and :mod:`nodes.scenario` plays.

Each step keeps the line it starts on, so a failure names it; :class:`Scenario` is the
whole file, checked in itself (its steps against a grid: :func:`mesh.scenario.check`).
A duration of a step may be a :class:`Span` (``delay: 1s..10s``): :meth:`Step.drawn` makes
the step with each span drawn from a generator (the run's seed), as it is played.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "STEPS",
    "Delay",
    "ExpectCount",
    "ExpectTopic",
    "Flaky",
    "Freeze",
    "Heal",
    "Kill",
    "Latency",
    "Partition",
    "Plug",
    "Restart",
    "Scenario",
    "Seconds",
    "Send",
    "Span",
    "Step",
    "Unplug",
]


@dataclass(frozen=True)
class Span:
    """A duration drawn when played, uniformly between ``low`` and ``high`` seconds (``1s..10s``)."""

    low: float
    high: float
    written: str = ""

    def draw(self, rng: random.Random) -> float:
        """Whole milliseconds between low and high, so that the log shows the very value drawn."""
        return round(rng.uniform(self.low, self.high), 3)

    def __str__(self) -> str:
        return self.written or f"{self.low:g}s..{self.high:g}s"


#: A step's duration: seconds, or a span drawn as the step is played.
Seconds = float | Span


@dataclass(frozen=True, kw_only=True)
class Step:
    """One step and the line it starts on."""

    line: int = 0

    @property
    def name(self) -> str:
        """The step's name as written in a file (``expect-topic``)."""
        return _NAMES[type(self)]

    def describe(self) -> str:
        """The step in words for the log: ``unplug iopin -> buzzer``."""
        raise NotImplementedError

    def drawn(self, rng: random.Random) -> Step:
        """This step with each of its spans drawn from ``rng``, in the order of its fields (itself if it has none)."""
        changes: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, Span):
                changes[item.name] = value.draw(rng)
                written = "written" if item.name == "seconds" else f"{item.name}_written"  # delay's, freeze's
                changes[written] = f"{changes[item.name]:g}s (of {value})"
        return dataclasses.replace(self, **changes) if changes else self


@dataclass(frozen=True, kw_only=True)
class Delay(Step):
    """Let ``seconds`` of simulated time pass."""

    seconds: Seconds
    written: str = ""

    def describe(self) -> str:
        return f"delay {self.written or self.seconds}"


@dataclass(frozen=True, kw_only=True)
class Send(Step):
    """Send ``message`` to ``node`` (on ``channel``) as ``arduino-mesh send`` does; its ack must be ``expect`` if given."""

    node: str
    message: str
    channel: str = ""
    expect: str | None = None
    node_line: int = 0

    def describe(self) -> str:
        on = f" on channel {self.channel!r}" if self.channel else ""
        expect = "" if self.expect is None else f", expecting {self.expect!r}"
        return f"send {self.message!r} to {self.node}{on}{expect}"


@dataclass(frozen=True, kw_only=True)
class ExpectTopic(Step):
    """Wait for a publication whose key ``key`` matches (carrying ``value``, as text, if given), for ``within`` at most."""

    key: str
    value: str | None = None
    within: float
    within_written: str = ""

    def expected(self) -> str:
        return self.key if self.value is None else f"{self.key} = {self.value}"

    def describe(self) -> str:
        return f"expect-topic {self.expected()} within {self.within_written}"


@dataclass(frozen=True, kw_only=True)
class ExpectCount(Step):
    """How many publications ``key`` has matched since the start: at least, exactly, at most; waiting up to ``within``."""

    key: str
    at_least: int | None = None
    exactly: int | None = None
    at_most: int | None = None
    within: float | None = None
    within_written: str = ""

    def holds(self, count: int) -> bool:
        if self.exactly is not None and count != self.exactly:
            return False
        if self.at_least is not None and count < self.at_least:
            return False
        return self.at_most is None or count <= self.at_most

    def hopeless(self, count: int) -> bool:
        """True when no later publication can make it hold (counts only grow)."""
        limit = self.exactly if self.exactly is not None else self.at_most
        return limit is not None and count > limit

    def expected(self) -> str:
        if self.exactly is not None:
            return f"exactly {self.exactly}"
        parts = []
        if self.at_least is not None:
            parts.append(f"at least {self.at_least}")
        if self.at_most is not None:
            parts.append(f"at most {self.at_most}")
        return " and ".join(parts)

    def describe(self) -> str:
        within = "" if self.within is None else f" within {self.within_written}"
        return f"expect-count {self.key} {self.expected()}{within}"


@dataclass(frozen=True, kw_only=True)
class Unplug(Step):
    """Cut the wire ``source -> target`` and refuse its connections until plugged."""

    source: str
    target: str

    def describe(self) -> str:
        return f"unplug {self.source} -> {self.target}"


@dataclass(frozen=True, kw_only=True)
class Plug(Step):
    """Put the wire ``source -> target`` back."""

    source: str
    target: str

    def describe(self) -> str:
        return f"plug {self.source} -> {self.target}"


@dataclass(frozen=True, kw_only=True)
class Kill(Step):
    """Kill ``node`` as SIGKILL would."""

    node: str

    def describe(self) -> str:
        return f"kill {self.node}"


@dataclass(frozen=True, kw_only=True)
class Restart(Step):
    """Start the killed ``node`` again."""

    node: str

    def describe(self) -> str:
        return f"restart {self.node}"


@dataclass(frozen=True, kw_only=True)
class Freeze(Step):
    """Freeze ``node`` for ``seconds`` (as SIGSTOP would), and go on at once: it thaws by itself."""

    node: str
    seconds: Seconds
    written: str = ""
    node_line: int = 0

    def describe(self) -> str:
        return f"freeze {self.node} for {self.written or self.seconds}"


@dataclass(frozen=True, kw_only=True)
class Latency(Step):
    """Bytes between the ends of ``wire`` (None: every connection) take ``delay``, give or take ``jitter``.

    ``latency: {}`` (no wire, no delay): every connection back to none.
    """

    wire: tuple[str, str] | None = None
    delay: Seconds = 0.0
    delay_written: str = ""
    jitter: Seconds = 0.0
    jitter_written: str = ""

    def describe(self) -> str:
        where = "every connection" if self.wire is None else f"{self.wire[0]} -> {self.wire[1]}"
        if not self.delay and not self.jitter:
            return f"latency of {where} back to none"
        jitter = f" +- {self.jitter_written or self.jitter}" if self.jitter else ""
        return f"latency of {where}: {self.delay_written or self.delay}{jitter}"


@dataclass(frozen=True, kw_only=True)
class Partition(Step):
    """Split the nodes into ``groups`` that cannot reach each other (nodes in none reach all) until :class:`Heal`."""

    groups: tuple[tuple[str, ...], ...]

    def describe(self) -> str:
        return "partition " + " | ".join(", ".join(group) for group in self.groups)


@dataclass(frozen=True, kw_only=True)
class Heal(Step):
    """End the partition."""

    def describe(self) -> str:
        return "heal"


@dataclass(frozen=True, kw_only=True)
class Flaky(Step):
    """Reset the connections between the ends of ``wire`` (None: all) every ``every`` on average; None: no more."""

    wire: tuple[str, str] | None = None
    every: Seconds | None = None
    every_written: str = ""

    def describe(self) -> str:
        where = "every connection" if self.wire is None else f"{self.wire[0]} -> {self.wire[1]}"
        if self.every is None:
            return f"flaky {where}: no more"
        return f"flaky {where}: reset every {self.every_written or self.every} on average"


_NAMES: dict[type[Step], str] = {
    Delay: "delay",
    Send: "send",
    ExpectTopic: "expect-topic",
    ExpectCount: "expect-count",
    Unplug: "unplug",
    Plug: "plug",
    Kill: "kill",
    Restart: "restart",
    Freeze: "freeze",
    Latency: "latency",
    Partition: "partition",
    Heal: "heal",
    Flaky: "flaky",
}
#: The steps a scenario may have, in the order the reference lists them.
STEPS: tuple[str, ...] = tuple(_NAMES.values())


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A scenario, checked in itself (:func:`check` checks it against a grid).

    ``path`` is the file as the user named it (errors and failures name it so); ``grid``
    the grid file it names, joined to the scenario's folder, or None (the command's).
    """

    path: str
    steps: tuple[Step, ...]
    grid: str | None = None
    seed: int | str | None = None
    nodes: tuple[str, ...] | None = None
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # top-level key -> its line
    params_lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # node -> its line in params

    @property
    def wires(self) -> tuple[tuple[str, str], ...]:
        """The wires the steps unplug or plug, in order (a simulation must make them unpluggable)."""
        found = [(step.source, step.target) for step in self.steps if isinstance(step, (Unplug, Plug))]
        return tuple(dict.fromkeys(found))
