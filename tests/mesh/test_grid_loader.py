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
