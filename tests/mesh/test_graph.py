"""Tests for mesh.graph: the circuit of a grid as text, Mermaid or Graphviz dot.

The heart of this file is CASES, a table of (id, grid.yaml text, format, the
exact output). Grids are loaded from text; nothing is read or written.
"""

from __future__ import annotations

from textwrap import dedent

import pytest

from mesh.graph import FORMATS, render
from mesh.grid import load_grid

#: The circuit that ships (as README.md shows it).
SHIPPED = """\
nodes:
  clock:  {sketch: clock, host: 127.0.0.1, port: 8764, params: {tacks: 5, delay: 1}}
  iopin:  {sketch: iopin, host: 127.0.0.1, port: 8765, params: {chance: 0.6, sequence: 3}}
  buzzer: {sketch: buzzer, host: 127.0.0.1, port: 8766, params: {sound: buzz buzz buzz}}
wires:
  - clock -> iopin
  - iopin -> buzzer
"""

#: The shipped circuit plus README.md's meter, which hears every pin.
WITH_METER = SHIPPED.replace("wires:", '  meter: {sketch: meter, subscribe: ["+/pin"]}\nwires:')

#: Odd corners: a port-less node, patterns that hear nothing, quotes and brackets, IPv6, port 0, a keyword.
ODD = """\
nodes:
  clock: {sketch: clock}
  a-very-long-name: {sketch: kit.led, host: "::1", port: 9000, subscribe: ["iopin/#", "ghost/x"]}
  end: {sketch: led, host: 'odd"host<1>', port: 0, subscribe: ['+/say"hi']}
"""

CASES: list[tuple[str, str, str, str]] = [
    (
        "shipped-text",
        SHIPPED,
        "text",
        """\
        nodes
          clock   clock   127.0.0.1:8764
          iopin   iopin   127.0.0.1:8765
          buzzer  buzzer  127.0.0.1:8766
        wires
          clock -> iopin
          iopin -> buzzer
        """,
    ),
    (
        "shipped-mermaid",
        SHIPPED,
        "mermaid",
        """\
        flowchart LR
          clock["clock<br/>clock · 127.0.0.1:8764"]
          iopin["iopin<br/>iopin · 127.0.0.1:8765"]
          buzzer["buzzer<br/>buzzer · 127.0.0.1:8766"]
          clock --> iopin
          iopin --> buzzer
        """,
    ),
    (
        "shipped-dot",
        SHIPPED,
        "dot",
        """\
        digraph circuit {
          rankdir=LR;
          node [shape=box, style=rounded];
          "clock" [label="clock\\nclock · 127.0.0.1:8764"];
          "iopin" [label="iopin\\niopin · 127.0.0.1:8765"];
          "buzzer" [label="buzzer\\nbuzzer · 127.0.0.1:8766"];
          "clock" -> "iopin";
          "iopin" -> "buzzer";
        }
        """,
    ),
    (
        "meter-text",
        WITH_METER,
        "text",
        """\
        nodes
          clock   clock   127.0.0.1:8764
          iopin   iopin   127.0.0.1:8765
          buzzer  buzzer  127.0.0.1:8766
          meter   meter   no port
        wires
          clock -> iopin
          iopin -> buzzer
        subscriptions
          meter <~ +/pin  (from buzzer, clock, iopin)
        """,
    ),
    (
        "meter-mermaid",
        WITH_METER,
        "mermaid",
        """\
        flowchart LR
          clock["clock<br/>clock · 127.0.0.1:8764"]
          iopin["iopin<br/>iopin · 127.0.0.1:8765"]
          buzzer["buzzer<br/>buzzer · 127.0.0.1:8766"]
          meter["meter<br/>meter · no port"]
          clock --> iopin
          iopin --> buzzer
          buzzer -. "+/pin" .-> meter
          clock -. "+/pin" .-> meter
          iopin -. "+/pin" .-> meter
        """,
    ),
    (
        "meter-dot",
        WITH_METER,
        "dot",
        """\
        digraph circuit {
          rankdir=LR;
          node [shape=box, style=rounded];
          "clock" [label="clock\\nclock · 127.0.0.1:8764"];
          "iopin" [label="iopin\\niopin · 127.0.0.1:8765"];
          "buzzer" [label="buzzer\\nbuzzer · 127.0.0.1:8766"];
          "meter" [label="meter\\nmeter · no port"];
          "clock" -> "iopin";
          "iopin" -> "buzzer";
          "buzzer" -> "meter" [style=dashed, label="+/pin"];
          "clock" -> "meter" [style=dashed, label="+/pin"];
          "iopin" -> "meter" [style=dashed, label="+/pin"];
        }
        """,
    ),
    (
        "odd-text",
        ODD,
        "text",
        """\
        nodes
          clock             clock    no port
          a-very-long-name  kit.led  [::1]:9000
          end               led      odd"host<1>:0
        subscriptions
          a-very-long-name <~ iopin/#  (nothing matches)
          a-very-long-name <~ ghost/x  (nothing matches)
          end <~ +/say"hi  (from a-very-long-name)
        """,
    ),
    (
        "odd-mermaid",
        ODD,
        "mermaid",
        """\
        flowchart LR
          clock["clock<br/>clock · no port"]
          a-very-long-name["a-very-long-name<br/>kit.led · [::1]:9000"]
          end_node["end<br/>led · odd#quot;host#lt;1#gt;:0"]
          a-very-long-name -. "+/say#quot;hi" .-> end_node
        """,
    ),
    (
        "odd-dot",
        ODD,
        "dot",
        """\
        digraph circuit {
          rankdir=LR;
          node [shape=box, style=rounded];
          "clock" [label="clock\\nclock · no port"];
          "a-very-long-name" [label="a-very-long-name\\nkit.led · [::1]:9000"];
          "end" [label="end\\nled · odd\\"host<1>:0"];
          "a-very-long-name" -> "end" [style=dashed, label="+/say\\"hi"];
        }
        """,
    ),
    (
        "self-and-keyword-mermaid",
        """\
        nodes:
          end: {sketch: iopin, port: 8765, subscribe: ["end/x", "#"]}
          end_node: {sketch: buzzer, port: 8766}
          meter: {sketch: meter, subscribe: ["end/#"]}
        wires:
          - end -> end_node
        """,
        "mermaid",
        """\
        flowchart LR
          end_node_["end<br/>iopin · 127.0.0.1:8765"]
          end_node["end_node<br/>buzzer · 127.0.0.1:8766"]
          meter["meter<br/>meter · no port"]
          end_node_ --> end_node
          end_node -. "#" .-> end_node_
          end_node_ -. "end/#" .-> meter
        """,
    ),
    (
        "self-and-keyword-text",
        """\
        nodes:
          end: {sketch: iopin, port: 8765, subscribe: ["end/x", "#"]}
          end_node: {sketch: buzzer, port: 8766}
          meter: {sketch: meter, subscribe: ["end/#"]}
        wires:
          - end -> end_node
        """,
        "text",
        """\
        nodes
          end       iopin   127.0.0.1:8765
          end_node  buzzer  127.0.0.1:8766
          meter     meter   no port
        wires
          end -> end_node
        subscriptions
          end <~ end/x  (nothing matches)
          end <~ #  (from end_node)
          meter <~ end/#  (from end)
        """,
    ),
]


@pytest.mark.parametrize(
    ("grid_text", "fmt", "expected"),
    [pytest.param(text, fmt, expected, id=name) for name, text, fmt, expected in CASES],
)
def test_render_table(grid_text: str, fmt: str, expected: str) -> None:
    """render() draws exactly this circuit in this format."""
    grid = load_grid(dedent(grid_text), "grid.yaml")
    assert render(grid, fmt) == dedent(expected)


def test_render_defaults_to_text() -> None:
    """render() without a format draws the text form."""
    grid = load_grid(SHIPPED, "grid.yaml")
    assert render(grid) == render(grid, "text")


@pytest.mark.parametrize("fmt", ["svg", "Text", "", "png"])
def test_render_unknown_format(fmt: str) -> None:
    """render() refuses a format it does not know, naming the ones it does."""
    grid = load_grid(SHIPPED, "grid.yaml")
    with pytest.raises(ValueError) as caught:
        render(grid, fmt)
    assert str(caught.value) == f"unknown format {fmt!r}; expected one of: text, mermaid, dot"


@pytest.mark.parametrize("fmt", FORMATS)
def test_render_ends_with_one_newline(fmt: str) -> None:
    """Every format ends with exactly one newline and has no trailing spaces."""
    output = render(load_grid(WITH_METER, "grid.yaml"), fmt)
    assert output.endswith("\n") and not output.endswith("\n\n")
    assert all(line == line.rstrip() for line in output.splitlines())
