"""Tests for mesh.grid.rules: one validator for a file, for Python data (build_grid) and for with_node.

Every rule case of test_grid's tables is checked again here without YAML: the
file's plain data, validated without lines (only the text of plain scalars, for
the octal and hex traps), fails with the same message, only without the line;
build_grid() does too, but for those traps, which only YAML text can set.
"""

from __future__ import annotations

import re
from textwrap import dedent
from typing import Any

import pytest

from mesh.errors import GridError
from mesh.grid import Marks, build_grid, load_yaml, validate
from tests.mesh.grid.test_grid import INVALID, TRAPS

#: The messages that name lines of the file besides their own: without lines, they say so otherwise.
WITHOUT_LINES = {
    "wire-twice": "grid.yaml: wire 'clock -> iopin' is listed twice",
    "wired-node-without-port": "grid.yaml: node 'iopin' receives a wire ('clock -> iopin') but has no port to receive on",
    "address-taken": "grid.yaml: node 'buzzer' listens on 127.0.0.1:8765, already taken by node 'iopin'",
    "node-at-the-top-level": "grid.yaml: unknown key 'heater' at the top level (expected one of: auth, nodes, tls, "
    "wires); a node goes under 'nodes:', indented like the other nodes",
}


def _rule_cases() -> list[Any]:
    """(plain data, its marks without lines, message without its line) for each case that is valid YAML."""
    cases = []
    for case, text, message in TRAPS + INVALID:
        try:
            data, marks = load_yaml(dedent(text), "grid.yaml")
        except GridError:
            continue  # a YAML problem: the loader's, tested through load_grid
        expected = WITHOUT_LINES.get(case, re.sub(r"^grid\.yaml:\d+: ", "grid.yaml: ", message))
        written = Marks(written=marks.written, aliases=marks.aliases)
        cases.append(pytest.param(data, written, expected, id=case))
    return cases


RULE_CASES = _rule_cases()


def test_rule_cases_cover_the_tables() -> None:
    """Most cases of test_grid's tables are the rules' (the rest are YAML problems)."""
    assert len(RULE_CASES) > 100


@pytest.mark.parametrize(("data", "marks", "message"), RULE_CASES)
def test_validator_without_lines_says_the_same(data: Any, marks: Marks, message: str) -> None:
    """The validator on plain data with no lines gives the file's message, without the line."""
    with pytest.raises(GridError) as caught:
        validate(data, path="grid.yaml", marks=marks)
    assert caught.value.line is None
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("data", "marks", "message"),
    [
        param
        for param in RULE_CASES
        if isinstance(param.values[0], dict)
        and "nodes" in param.values[0]
        and set(param.values[0]) <= {"nodes", "wires"}
        and not re.search("leading zero|plain decimal", str(param.values[2]))
    ],
)
def test_build_grid_says_the_same(data: dict[str, Any], marks: Marks, message: str) -> None:
    """build_grid() on the same nodes and wires gives the same message, naming its own path."""
    with pytest.raises(GridError) as caught:
        build_grid(data["nodes"], data.get("wires", ()), path="grid.yaml")
    assert str(caught.value) == message


def one_clock():
    """A grid of one clock, read from grid.yaml with its lines: what with_node() changes in the tests below."""
    return validate(
        {"nodes": {"clock": {"sketch": "clock"}}},
        path="grid.yaml",
        marks=load_yaml("nodes:\n  clock: {sketch: clock}\n")[1],
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param(
            {"port": "017"}, "grid.yaml:2: node 'clock': 'port' must be a whole number, not the text '017'", id="text"
        ),
        pytest.param({"params": {"1x": 1}}, "grid.yaml:2: node 'clock': invalid parameter name '1x'", id="param-name"),
        pytest.param({"params": {"a": {5: 1}}}, "grid.yaml:2: keys must be text, not 5", id="deep-key"),
        pytest.param({"params": None}, "grid.yaml:2: node 'clock': 'params' must be a mapping", id="params-none"),
        pytest.param(
            {"sketch": "a b"},
            "grid.yaml:2: node 'clock': 'sketch' must be a sketch's name (blinker), a path to a .py file (./sketches/blinker.py), module:Class (mypackage.blinker:Blinker) or Arduino firmware (lamp.ino)",
            id="sketch",
        ),
    ],
)
def test_with_node_uses_the_rules_at_the_node_line(changes: dict[str, Any], message: str) -> None:
    """with_node() checks the changed node with the same rules, at the node's line."""
    grid = one_clock()
    with pytest.raises(GridError) as caught:
        grid.with_node("clock", **changes)
    assert str(caught.value) == message


def test_with_node_unknown_field() -> None:
    """with_node() refuses a field NodeSpec does not have, as NodeSpec() would."""
    grid = build_grid({"clock": {"sketch": "clock"}})
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        grid.with_node("clock", colour="red")


def test_with_nodes_changes_several_at_once_as_with_node_would() -> None:
    """with_nodes() gives the grid that with_node() once per node would, the other nodes untouched."""
    grid = build_grid(
        {"a": {"sketch": "clock", "port": 0}, "b": {"sketch": "clock", "port": 0}, "c": {"sketch": "clock"}},
        ["c -> a"],
    )
    at_once = grid.with_nodes({"a": {"port": 8801}, "b": {"port": 8802, "params": {"x": 1}}})
    one_by_one = grid.with_node("a", port=8801).with_node("b", port=8802, params={"x": 1})
    assert at_once == one_by_one
    assert at_once.node("c") is grid.node("c")
    assert grid.with_nodes({}) == grid


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param(
            {"a": {"port": 8801}, "b": {"port": 8801}},
            "<memory>: node 'a' listens on 127.0.0.1:8801, already taken by node 'b'",
            id="two-changed-share-an-address",
        ),
        pytest.param(
            {"b": {"port": "x"}, "a": {"port": "y"}},
            "<memory>: node 'b': 'port' must be a whole number, not the text 'x'",
            id="first-given-first-reported",
        ),
        pytest.param(
            {"a": {"port": None}},
            "<memory>: node 'a' receives a wire ('c -> a') but has no port to receive on",
            id="wired-node-loses-its-port",
        ),
    ],
)
def test_with_nodes_reports_as_with_node(changes: dict[str, dict[str, Any]], message: str) -> None:
    """with_nodes() checks each changed node with the same rules, in the order given, then across nodes once."""
    grid = build_grid(
        {"a": {"sketch": "clock", "port": 0}, "b": {"sketch": "clock", "port": 0}, "c": {"sketch": "clock"}},
        ["c -> a"],
    )
    with pytest.raises(GridError) as caught:
        grid.with_nodes(changes)
    assert str(caught.value) == message


def test_a_firmware_node_and_a_board_over_serial() -> None:
    """``sketch: NAME.ino`` is firmware; ``serial`` and ``baud`` make it a board; each stays as written."""
    grid = build_grid(
        {
            "lamp": {"sketch": "firmware/lamp.ino", "port": 8767},
            "board": {"sketch": "lamp.ino", "port": 8768, "serial": "/dev/ttyACM0", "baud": 9600},
        }
    )
    assert (grid.node("lamp").sketch, grid.node("lamp").serial, grid.node("lamp").baud) == (
        "firmware/lamp.ino",
        None,
        None,
    )
    assert (grid.node("board").serial, grid.node("board").baud) == ("/dev/ttyACM0", 9600)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param(
            {"serial": "/dev/ttyACM0"},
            "grid.yaml:2: node 'clock': 'serial' is for a node whose sketch is Arduino firmware running on a real "
            "board (sketch: lamp.ino), not 'clock'; remove 'serial', or name the board's .ino",
            id="serial-on-python",
        ),
        pytest.param(
            {"sketch": "lamp.ino", "baud": 9600},
            "grid.yaml:2: node 'clock': 'baud' goes with 'serial' (the board's port, /dev/ttyACM0): "
            "a simulated firmware's Serial runs at the speed its sketch sets; remove 'baud'",
            id="baud-without-serial",
        ),
    ],
)
def test_with_node_checks_serial_and_baud_against_the_node(changes: dict[str, Any], message: str) -> None:
    """with_node() checks serial and baud against the node as changed, at its line."""
    grid = one_clock()
    with pytest.raises(GridError) as caught:
        grid.with_node("clock", **changes)
    assert str(caught.value) == message
    board = grid.with_node("clock", sketch="lamp.ino", serial="/dev/ttyACM0", baud=9600)
    assert board.node("clock").baud == 9600
