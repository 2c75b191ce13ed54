"""Tests for mesh.grid.loader: YAML text to plain data and its line map, with no rules of the grid."""

from __future__ import annotations

from textwrap import dedent

import pytest

from mesh.errors import GridError
from mesh.grid import load_yaml

TEXT = dedent(
    """\
    nodes:
      clock: {sketch: clock, params: {tacks: 5}}
      iopin:
        sketch: iopin
        port: 017
        subscribe: &subs
          - a/b
          - "+/c"
      meter: {sketch: meter, subscribe: *subs}
    wires:
      - clock -> iopin
    """
)

#: (path, line of the value, line of its key, plain text as written).
MARKS = [
    ((), 1, None, None),
    (("nodes",), 2, 1, None),
    (("nodes", "clock"), 2, 2, None),
    (("nodes", "clock", "params", "tacks"), 2, 2, "5"),
    (("nodes", "iopin"), 4, 3, None),
    (("nodes", "iopin", "port"), 5, 5, "017"),
    (("nodes", "iopin", "subscribe"), 6, 6, None),  # the anchor starts the value
    (("nodes", "iopin", "subscribe", 1), 8, 6, None),  # quoted: no plain text; a list item has no key
    (("nodes", "meter", "subscribe"), 6, 9, None),  # an alias: the value is where the anchor's is
    (("nodes", "meter", "subscribe", 0), 7, 9, "a/b"),  # inside an alias: the anchor's lines and text
    (("wires", 0), 11, 10, "clock -> iopin"),
    (("nodes", "ghost"), 2, 1, None),  # no such value: the nearest enclosing one
]


@pytest.mark.parametrize(("path", "line", "key", "text"), [pytest.param(*row, id=repr(row[0])) for row in MARKS])
def test_marks_table(path: tuple, line: int, key: int | None, text: str | None) -> None:
    """Each path has the line of its value, of its key (or the nearest enclosing one), and its plain text."""
    _, marks = load_yaml(TEXT)
    assert (marks.line(path), marks.key(path), marks.text(path)) == (line, key, text)


def test_plain_data() -> None:
    """The data is plain dicts, lists and scalars; an alias is the same object again; no rule is applied."""
    data, _ = load_yaml(TEXT)
    assert data["nodes"]["iopin"] == {"sketch": "iopin", "port": 15, "subscribe": ["a/b", "+/c"]}
    assert data["nodes"]["meter"]["subscribe"] is data["nodes"]["iopin"]["subscribe"]
    assert data["wires"] == ["clock -> iopin"]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("nodes: {clock: {prot: 1}}\n", id="unknown-key"),
        pytest.param("colour: red\n", id="no-nodes"),
        pytest.param("nodes: {5: {sketch: clock}}\n", id="key-not-text"),
        pytest.param("nodes: {a: {port: 70000}}\nwires: [a b]\n", id="bad-values"),
    ],
)
def test_rules_are_not_the_loaders_business(text: str) -> None:
    """The loader returns what the rules will refuse."""
    data, _ = load_yaml(text)
    assert isinstance(data, dict)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("a: 1\na: 2\n", "grid.yaml:2: duplicate key 'a' (first on line 1)", id="duplicate"),
        pytest.param(
            "nodes:\n  a: 1\n  a: 2\n", "grid.yaml:3: node 'a' is defined twice (first on line 2)", id="node-twice"
        ),
        pytest.param(
            "a: &x {b: 1}\nc: {<<: *x}\n",
            "grid.yaml:2: merge keys ('<<') are not supported; write the keys out",
            id="merge",
        ),
        pytest.param(
            "a: [no]\n",
            "grid.yaml:1: 'no' is read by YAML as a boolean; write true or false, or quote it (\"no\")",
            id="bool",
        ),
        pytest.param("a: !!set {b}\n", "grid.yaml:1: invalid YAML: unsupported tag 'tag:yaml.org,2002:set'", id="tag"),
        pytest.param("a: &x [*x]\n", "grid.yaml:1: a value contains itself (through an alias)", id="alias-in-itself"),
    ],
)
def test_yaml_traps_are_refused_by_the_loader(text: str, message: str) -> None:
    """The traps of YAML are the loader's: refused wherever they stand, with the file and line."""
    with pytest.raises(GridError) as caught:
        load_yaml(text, "grid.yaml")
    assert str(caught.value) == message


def test_empty_document_is_none() -> None:
    """A document of nothing but comments is None, with no marks."""
    data, marks = load_yaml("# nothing yet\n")
    assert data is None and marks.line(()) is None


#: (id, grid text, the one line reported). Each is a mistake people make; the line is the one to fix.
YAML_MISTAKES = [
    (
        "node-key-one-space-too-far",
        """\
        nodes:
          clock: {sketch: clock}
           iopin: {sketch: iopin}
        """,
        "grid.yaml:3: bad indentation: 'iopin' is indented 3 spaces, more than 'clock' on line 2 (2 spaces), "
        "which has its value already; line it up with 'clock'",
    ),
    (
        "node-key-one-space-too-little",
        """\
        nodes:
          clock: {sketch: clock}
         iopin: {sketch: iopin}
        """,
        "grid.yaml:3: bad indentation: 'iopin' is indented 1 space, which lines up with nothing above it "
        "('clock' on line 2 has 2 and 'nodes' on line 1 has 0); indent it like the one it belongs with",
    ),
    (
        "first-node-too-far-blames-the-second",  # either may be the one to fix: both are named
        """\
        nodes:
            clock: {sketch: clock}
          iopin: {sketch: iopin}
        """,
        "grid.yaml:3: bad indentation: 'iopin' is indented 2 spaces, which lines up with nothing above it "
        "('clock' on line 2 has 4 and 'nodes' on line 1 has 0); indent it like the one it belongs with",
    ),
    (
        "block-key-one-space-too-far",  # PyYAML: "mapping values are not allowed here"
        """\
        nodes:
          clock:
            sketch: clock
             port: 8764
        """,
        "grid.yaml:4: bad indentation: 'port' is indented 5 spaces, more than 'sketch' on line 3 (4 spaces), "
        "which has its value already; line it up with 'sketch'",
    ),
    (
        "block-key-one-space-too-little",
        """\
        nodes:
          clock:
            sketch: clock
           port: 8764
        """,
        "grid.yaml:4: bad indentation: 'port' is indented 3 spaces, which lines up with nothing above it "
        "('sketch' on line 3 has 4 and 'clock' on line 2 has 2); indent it like the one it belongs with",
    ),
    (
        "param-between-two-levels-after-a-comment",
        """\
        nodes:
          buzzer:
            sketch: buzzer
            params:
              sound: beep
              # louder?

             port: 8766
        """,
        "grid.yaml:8: bad indentation: 'port' is indented 5 spaces, which lines up with nothing above it "
        "('sound' on line 5 has 6 and 'params' on line 4 has 4); indent it like the one it belongs with",
    ),
    (
        "wire-item-one-space-too-far",  # valid YAML: one item, "a -> b - b -> c"; the line is the second
        """\
        nodes: {a: {sketch: clock}}
        wires:
          - a -> b
           - b -> c
        """,
        "grid.yaml:4: bad indentation: the list item '- b -> c' is indented 3 spaces, more than the list item "
        "'- a -> b' on line 3 (2 spaces), so YAML reads it as more text of that item; items of one list must line up",
    ),
    (
        "wire-item-one-space-too-little",
        """\
        nodes: {a: {sketch: clock}}
        wires:
          - a -> b
         - b -> c
        """,
        "grid.yaml:4: bad indentation: the list item '- b -> c' is indented 1 space, but the list item "
        "'- a -> b' on line 3 has 2; items of one list must line up",
    ),
    (
        "wire-item-back-at-zero",
        """\
        nodes: {a: {sketch: clock}}
        wires:
          - a -> b
        - b -> c
        """,
        "grid.yaml:4: bad indentation: the list item '- b -> c' is indented 0 spaces, but the list item "
        "'- a -> b' on line 3 has 2; items of one list must line up",
    ),
    (
        "list-item-among-nodes",
        """\
        nodes:
          clock: {sketch: clock}
          - iopin
        """,
        "grid.yaml:3: bad indentation: the list item '- iopin' is indented like the key 'clock' on line 2, "
        "and a mapping cannot hold list items",
    ),
    (
        "key-among-wires",
        """\
        wires:
          - a -> b
          nodes: {}
        """,
        "grid.yaml:3: bad indentation: the key 'nodes' is indented like the list item '- a -> b' on line 2, "
        "and a list cannot hold keys",
    ),
    (
        "node-after-wires",
        """\
        nodes:
          clock: {sketch: clock}
        wires:
          - clock -> clock
          heater: {sketch: buzzer}
        """,
        "grid.yaml:5: bad indentation: the key 'heater' is indented like the list item '- clock -> clock' on line 4, "
        "and a list cannot hold keys; a node belongs under 'nodes:' on line 1: move it up there, with the other nodes",
    ),
    (
        "tab-indent",
        "nodes:\n\tclock: {sketch: clock}\n",
        "grid.yaml:2: a tab in the indentation: YAML indents with spaces only",
    ),
    (
        "tab-after-spaces",
        "nodes:\n  clock: {sketch: clock}\n \t iopin: {sketch: iopin}\n",
        "grid.yaml:3: a tab in the indentation: YAML indents with spaces only",
    ),
    (
        "tab-after-a-key",
        "nodes:\n  clock:\t{sketch: clock}\n",
        "grid.yaml:2: a tab at column 9: YAML allows only spaces here",
    ),
    (
        "key-without-colon",  # PyYAML blames the next line
        """\
        nodes:
          clock
          iopin: {sketch: iopin}
        """,
        "grid.yaml:2: 'clock' needs a ':' after it",
    ),
    (
        "last-key-without-colon",  # PyYAML: "could not find expected ':'" on the line after
        """\
        nodes:
          clock: {sketch: clock}
          iopin
        """,
        "grid.yaml:3: 'iopin' needs a ':' after it",
    ),
    (
        "key-without-colon-before-its-flow-value",  # valid YAML: the key 'clock {sketch', the value 'clock}'
        """\
        nodes:
          clock {sketch: clock}
        """,
        "grid.yaml:2: 'clock' needs a ':' after it",
    ),
    (
        "key-without-colon-before-a-flow-value-with-more-colons",
        """\
        nodes:
          buzzer {sketch: buzzer, port: 8766}
        """,
        "grid.yaml:2: 'buzzer' needs a ':' after it",
    ),
    (
        "first-top-level-key-indented",  # PyYAML blames the next top-level key
        """\
        # the circuit
         nodes:
          clock: {sketch: clock}
        wires: []
        """,
        "grid.yaml:2: bad indentation: 'nodes' is indented 1 space, but 'wires' on line 4 is indented 0 spaces: "
        "the keys at the top of the file must line up, best with none",
    ),
    (
        "colon-in-a-value",
        """\
        nodes:
          buzzer:
            params:
              sound: buzz: loud
        """,
        "grid.yaml:4: a second ': ' on this line (column 18): quote a value that holds ': '",
    ),
    (
        "colon-in-a-flow-value",
        "nodes:\n  buzzer: {sketch: buzzer, params: {sound: buzz: loud}}\n",
        "grid.yaml:2: a ':' that YAML cannot read here (column 48): quote a value that holds ': '",
    ),
    (
        "brace-never-closed",  # PyYAML blames the next line, where it gave up
        """\
        nodes:
          clock: {sketch: clock
          iopin: {sketch: iopin}
        """,
        "grid.yaml:2: the '{' at column 10 is never closed: YAML read on to line 3 looking for '}'",
    ),
    (
        "bracket-closed-by-a-brace",
        'nodes:\n  dashboard: {sketch: dashboard, subscribe: ["#"}\n',
        "grid.yaml:2: the '[' at column 45 is closed by '}' at column 49; close it with ']'",
    ),
    (
        "quote-never-closed",  # PyYAML blames the end of the file
        """\
        nodes:
          buzzer: {sketch: buzzer, params: {sound: "buzz}}
          clock: {sketch: clock}
        """,
        "grid.yaml:2: the quote at column 44 is never closed",
    ),
    (
        "anything-else-keeps-yamls-words",
        'nodes:\n  a: "x\\q"\n',
        "grid.yaml:2: invalid YAML: found unknown escape character 'q'",
    ),
]


@pytest.mark.parametrize(
    ("text", "message"), [pytest.param(text, message, id=id) for id, text, message in YAML_MISTAKES]
)
def test_yaml_mistakes_are_one_plain_line_at_the_line_to_fix(text: str, message: str) -> None:
    """Indentation, tabs, a missing ':' or an unclosed bracket: one plain sentence naming the line to fix."""
    with pytest.raises(GridError) as caught:
        load_yaml(dedent(text), "grid.yaml")
    assert str(caught.value) == message


def test_a_value_folded_over_lines_on_purpose_is_kept() -> None:
    """A plain value continued on a deeper line is valid and meant; only a folded list item is refused."""
    data, _ = load_yaml("nodes:\n  a: {params: {sound: buzz\n    buzz}}\nwires:\n  - a ->\n    b\n")
    assert data == {"nodes": {"a": {"params": {"sound": "buzz buzz"}}}, "wires": ["a -> b"]}


def test_a_grid_nested_past_the_bound_is_one_line_at_once():
    """A pathological edit (brackets 50,000 deep) is refused in one quick pass, at its line, before YAML reads it."""
    from mesh.grid.loader import MAX_DEPTH, too_deep

    text = "nodes:\n  a: {sketch: buzzer, port: 0, params: {x: " + "[" * 50_000 + "]" * 50_000 + "}}\n"
    with pytest.raises(GridError, match=rf"^grid\.yaml:2: nested deeper than {MAX_DEPTH} levels here"):
        load_yaml(text)
    assert too_deep("nodes:\n" + " " * 2 * (MAX_DEPTH + 1) + "x: 1\n") == 2
    assert too_deep("nodes: {a: {sketch: '[[[[[[', port: 1}}\n") is None  # quoted: not nesting


def test_a_file_larger_than_any_grid_is_refused_unread(tmp_path):
    """16 MiB and more: one line, and the file is not parsed."""
    from mesh.grid import MAX_FILE_BYTES, read_grid

    big = tmp_path / "grid.yaml"
    big.write_text("#" * (MAX_FILE_BYTES + 10))
    with pytest.raises(GridError, match=r"cannot read the grid: it is larger than 16 MiB"):
        read_grid(big)
