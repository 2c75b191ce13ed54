"""Tests for mesh.grid.model: the Grid's queries (wires in and out, reachable nodes, publishers, who hears whom)
and Grid.diff (what changed from one grid to the next), in tables of cases."""

from __future__ import annotations

from textwrap import dedent
from typing import Any

import pytest

from mesh.errors import UnknownNodeError
from mesh.grid import Grid, load_grid
from mesh.grid.model import GridDiff

BASE = dedent(
    """\
    nodes:
      clock: {sketch: clock, port: 8764}
      iopin: {sketch: iopin, port: 8765, params: {chance: 0.6}}
      buzzer: {sketch: buzzer, port: 8766}
    wires:
      - clock -> iopin
      - iopin -> buzzer
    """
)

#: (id, the edit as (old text, new text) replacements of BASE, the summary of the diff).
CASES: list[tuple[str, list[tuple[str, str]], list[str]]] = [
    ("nothing", [], []),
    ("a comment", [("nodes:\n", "# hello\nnodes:\n")], []),
    (
        "a node and its wire",
        [
            (
                "  buzzer: {sketch: buzzer, port: 8766}\n",
                "  buzzer: {sketch: buzzer, port: 8766}\n  led: {sketch: led, port: 8767}\n",
            ),
            ("  - iopin -> buzzer\n", "  - iopin -> buzzer\n  - iopin -> led\n"),
        ],
        ["node led added", "wire iopin -> led added"],
    ),
    ("a wire removed", [("  - iopin -> buzzer\n", "")], ["wire iopin -> buzzer removed"]),
    (
        "a node removed with its wire",
        [("  buzzer: {sketch: buzzer, port: 8766}\n", ""), ("  - iopin -> buzzer\n", "")],
        ["node buzzer removed", "wire iopin -> buzzer removed"],
    ),
    (
        "wires reordered",
        [("  - clock -> iopin\n  - iopin -> buzzer\n", "  - iopin -> buzzer\n  - clock -> iopin\n")],
        [],
    ),
    ("params", [("chance: 0.6", "chance: 0.7")], ["node iopin: params changed"]),
    ("a param added", [("chance: 0.6}", "chance: 0.6, sequence: 2}")], ["node iopin: params changed"]),
    ("a port", [("port: 8766", "port: 8799")], ["node buzzer: port changed"]),
    (
        "several fields of one node",
        [("{sketch: iopin, port: 8765, ", "{sketch: buzzer, host: 0.0.0.0, port: 8765, durable: true, ")],
        ["node iopin: sketch, host, durable changed"],
    ),
    (
        "subscriptions",
        [("{sketch: clock, port: 8764}", '{sketch: clock, port: 8764, subscribe: ["+/pin"]}')],
        ["node clock: subscribe changed"],
    ),
    (
        "limits",
        [("{sketch: clock, port: 8764}", "{sketch: clock, port: 8764, outbox: 5, max_size: 2048}")],
        ["node clock: outbox, max_size changed"],
    ),
    ("auth", [("nodes:\n", "auth: {token_env: MESH_TOKEN}\nnodes:\n")], ["auth changed"]),
    ("tls", [("nodes:\n", "tls: {cert: n.pem, key: k.pem, ca: ca.pem}\nnodes:\n")], ["tls changed"]),
]


@pytest.mark.parametrize(("edits", "summary"), [pytest.param(e, s, id=i) for i, e, s in CASES])
def test_diff_table(edits: list[tuple[str, str]], summary: list[str]) -> None:
    """Each edit is summed up as the nodes, fields and wires it changes, nothing else."""
    text = BASE
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    diff = load_grid(BASE).diff(load_grid(text))
    assert diff.summary() == summary
    assert bool(diff) is bool(summary)


def test_diff_names_the_fields_of_each_node_and_the_wires_themselves() -> None:
    """changed() answers per node; the wires added and removed are the new and old grids' own, with their lines."""
    old = load_grid(BASE)
    new = load_grid(BASE.replace("port: 8765", "port: 8775").replace("iopin -> buzzer", "clock -> buzzer"))
    diff = old.diff(new)
    assert diff.changed("iopin") == ("port",)
    assert diff.changed("buzzer") == ()
    assert diff.changed("ghost") == ()
    assert [(str(w), w.line) for w in diff.wires_added] == [("clock -> buzzer", 7)]
    assert [(str(w), w.line) for w in diff.wires_removed] == [("iopin -> buzzer", 7)]
    assert new.diff(old).wires_added == diff.wires_removed


def test_an_empty_diff_is_false() -> None:
    """GridDiff() is no change at all."""
    assert not GridDiff()
    assert GridDiff().summary() == []


# The queries.
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
