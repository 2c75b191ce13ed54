"""Tests for the queries of mesh.grid's Grid: wires in and out, reachable nodes, publishers, who hears whom."""

from __future__ import annotations

from textwrap import dedent
from typing import Any

import pytest

from mesh.errors import UnknownNodeError
from mesh.grid import Grid, load_grid

TEXT = dedent(
    """\
    nodes:
      clock: {sketch: clock}
      iopin: {sketch: iopin, port: 8765, subscribe: ["iopin/#"]}
      buzzer: {sketch: buzzer, port: 8766}
      meter: {sketch: meter, subscribe: ["+/pin", "clock/tick"]}
    wires:
      - clock -> iopin
      - iopin -> buzzer
      - clock -> buzzer
    """
)

#: (query, arguments, answer).
QUERIES: list[tuple[str, tuple[Any, ...], Any]] = [
    ("targets", ("clock",), ("iopin", "buzzer")),
    ("sources", ("buzzer",), ("iopin", "clock")),
    ("sources", ("clock",), ()),
    ("reachable", (), ("iopin", "buzzer")),
    ("reachable", ("iopin",), ("buzzer",)),
    ("publishers", ("+/pin",), ("iopin", "buzzer")),
    ("publishers", ("+/pin", "iopin"), ("buzzer",)),
    ("publishers", ("clock/tick",), ()),  # clock has no port: nothing links to it
    ("publishers", ("#", "buzzer"), ("iopin",)),
    ("hears", ("meter", "+/pin"), ("iopin", "buzzer", "meter")),  # its own keys too, without a port
    ("hears", ("meter", "clock/tick"), ()),
    ("hears", ("iopin", "iopin/#"), ("iopin",)),
    ("hears", ("clock", "clock/x"), ("clock",)),
    ("hears", ("clock", "ghost/x"), ()),
    ("heard_by", ("iopin",), ("iopin", "meter")),
    ("heard_by", ("buzzer",), ("meter",)),
    ("heard_by", ("clock",), ()),
    ("heard_by", ("meter",), ("meter",)),
]


@pytest.fixture
def grid() -> Grid:
    return load_grid(TEXT)


@pytest.mark.parametrize(("query", "args", "answer"), [pytest.param(*row, id=f"{row[0]}{row[1]}") for row in QUERIES])
def test_query_table(grid: Grid, query: str, args: tuple[Any, ...], answer: Any) -> None:
    """Each query answers in file (or wire) order."""
    assert getattr(grid, query)(*args) == answer


def test_wires_out_and_in_keep_their_lines(grid: Grid) -> None:
    """wires_out() and wires_in() give the Wires themselves, lines included."""
    assert [(str(wire), wire.line) for wire in grid.wires_out("clock")] == [
        ("clock -> iopin", 7),
        ("clock -> buzzer", 9),
    ]
    assert [str(wire) for wire in grid.wires_in("buzzer")] == ["iopin -> buzzer", "clock -> buzzer"]


@pytest.mark.parametrize("query", ["wires_out", "wires_in", "heard_by"])
def test_unknown_node(grid: Grid, query: str) -> None:
    """A query about a node the grid does not have raises UnknownNodeError."""
    with pytest.raises(UnknownNodeError):
        getattr(grid, query)("ghost")
    with pytest.raises(UnknownNodeError):
        grid.hears("ghost", "#")


def test_queries_follow_with_node(grid: Grid) -> None:
    """A grid changed by with_node() answers for its new wiring."""
    moved = grid.with_node("clock", port=8764)
    assert moved.reachable() == ("clock", "iopin", "buzzer")
    assert moved.publishers("clock/tick") == ("clock",)
    assert grid.publishers("clock/tick") == ()
