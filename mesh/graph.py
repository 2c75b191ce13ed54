"""The circuit of a grid as a picture: plain text, Mermaid or Graphviz dot.

Each form shows the nodes (name, sketch, and address or ``no port``; ``wss://`` before
the address when the grid has tls), the wires
(solid arrows, source to target) and the subscriptions (dashed arrows from each
node a pattern can hear from to the subscriber, labelled with the pattern).
The arrows of a pattern come from the publishers its subscription links to:
the nodes with a port other than the subscriber whose keys the pattern can
match (see :meth:`Grid.publishers <mesh.grid.Grid.publishers>`). The subscriber
hears its own keys too, but that takes no link and draws no arrow; a pattern
that links to no publisher is shown only in the text form, as ``(nothing matches)``.

:func:`render` is pure: it returns the text and writes nothing.
"""

from __future__ import annotations

import re

from mesh.grid import Grid, NodeSpec

__all__ = ["FORMATS", "render"]

#: The forms :func:`render` knows.
FORMATS: tuple[str, ...] = ("text", "mermaid", "dot")

#: A ``#`` that Mermaid would read as the start of an entity code such as ``#quot;``.
_ENTITY_START = re.compile(r"#(?=[A-Za-z0-9]+;)")

#: Words Mermaid reads as keywords where a node id stands (compared in lower case).
_MERMAID_KEYWORDS = frozenset(
    {
        "end",
        "graph",
        "flowchart",
        "subgraph",
        "direction",
        "style",
        "classdef",
        "class",
        "click",
        "linkstyle",
        "default",
        "call",
        "href",
    }
)


def render(grid: Grid, fmt: str = "text") -> str:
    """The circuit of ``grid`` in the form ``fmt`` (one of :data:`FORMATS`), ending with a newline.

    Raises ValueError for an unknown form.
    """
    if fmt == "text":
        return _text(grid)
    if fmt == "mermaid":
        return _mermaid(grid)
    if fmt == "dot":
        return _dot(grid)
    raise ValueError(f"unknown format {fmt!r}; expected one of: {', '.join(FORMATS)}")


def _where(spec: NodeSpec) -> str:
    """Where a node listens (``wss://`` first when the grid has tls), or ``no port``."""
    if spec.address is None:
        return "no port"
    return f"wss://{spec.address}" if spec.tls else spec.address


def _subscriptions(grid: Grid) -> list[tuple[str, str, list[str]]]:
    """(subscriber, pattern, sorted publishers it can hear from), in file order."""
    return [
        (spec.name, pattern, sorted(grid.publishers(pattern, but=spec.name)))
        for spec in grid.nodes.values()
        for pattern in spec.subscribe
    ]


# --------------------------------------------------------------------------- text


def _text(grid: Grid) -> str:
    specs = list(grid.nodes.values())
    name_width = max(len(spec.name) for spec in specs)
    sketch_width = max(len(spec.sketch) for spec in specs)
    lines = ["nodes"]
    lines += [f"  {spec.name:<{name_width}}  {spec.sketch:<{sketch_width}}  {_where(spec)}" for spec in specs]
    if grid.wires:
        lines.append("wires")
        lines += [f"  {wire.source} -> {wire.target}" for wire in grid.wires]
    subscriptions = _subscriptions(grid)
    if subscriptions:
        lines.append("subscriptions")
        for subscriber, pattern, sources in subscriptions:
            heard = f"(from {', '.join(sources)})" if sources else "(nothing matches)"
            lines.append(f"  {subscriber} <~ {pattern}  {heard}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- mermaid


def _mermaid(grid: Grid) -> str:
    ids = _mermaid_ids(grid)
    lines = ["flowchart LR"]
    for spec in grid.nodes.values():
        label = _mermaid_text(f"{spec.name}<br/>{spec.sketch} · {_where(spec)}", keep_br=True)
        lines.append(f'  {ids[spec.name]}["{label}"]')
    lines += [f"  {ids[wire.source]} --> {ids[wire.target]}" for wire in grid.wires]
    for subscriber, pattern, sources in _subscriptions(grid):
        label = _mermaid_text(pattern)
        lines += [f'  {ids[source]} -. "{label}" .-> {ids[subscriber]}' for source in sources]
    return "\n".join(lines) + "\n"


def _mermaid_ids(grid: Grid) -> dict[str, str]:
    """A Mermaid id per node: its name, unless Mermaid would read the name as a keyword."""
    taken = set(grid.nodes)
    ids: dict[str, str] = {}
    for name in grid.nodes:
        ident = name
        if name.lower() in _MERMAID_KEYWORDS:
            ident = f"{name}_node"
            while ident in taken:
                ident += "_"
            taken.add(ident)
        ids[name] = ident
    return ids


def _mermaid_text(text: str, *, keep_br: bool = False) -> str:
    """Text for a quoted Mermaid label: quotes, angle brackets and entity-like ``#`` as entity codes.

    With ``keep_br``, ``<br/>`` stays a line break.
    """
    parts = text.split("<br/>") if keep_br else [text]
    escaped = [
        _ENTITY_START.sub("#35;", part).replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
        for part in parts
    ]
    return "<br/>".join(escaped)


# --------------------------------------------------------------------------- dot


def _dot(grid: Grid) -> str:
    lines = ["digraph circuit {", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
    for spec in grid.nodes.values():
        label = f"{_dot_text(spec.name)}\\n{_dot_text(spec.sketch)} · {_dot_text(_where(spec))}"
        lines.append(f'  "{_dot_text(spec.name)}" [label="{label}"];')
    lines += [f'  "{wire.source}" -> "{wire.target}";' for wire in grid.wires]
    for subscriber, pattern, sources in _subscriptions(grid):
        lines += [f'  "{source}" -> "{subscriber}" [style=dashed, label="{_dot_text(pattern)}"];' for source in sources]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    """Text for a double-quoted dot string: backslashes and quotes escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"')
