"""Tests for Grid.diff: what changed from one grid to the next, in tables of cases."""

from __future__ import annotations

from textwrap import dedent

import pytest

from mesh.grid import load_grid
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
