"""The README's headline table, derived from docs/benchmarks.md: one source for every figure.

``python -m bench`` writes docs/benchmarks.md from its runs, then the README's table between
``<!-- headline -->`` and ``<!-- /headline -->`` from that page; tests/test_readme.py checks that
the README holds what :func:`headline` derives from the page as it is. A figure the page does not
hold (a kind of run never made) leaves its row out rather than inventing it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

__all__ = ["BEGIN", "END", "block", "headline", "rewrite"]

BEGIN, END = "<!-- headline -->", "<!-- /headline -->"


def _rows(page: str) -> list[list[str]]:
    """Every row of every table of ``page``, as its cells."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in page.splitlines()
        if line.startswith("| ") and not line.startswith("| ---")
    ]


def _find(rows: list[list[str]], first: str, *, contains: str = "") -> list[str] | None:
    """The first row whose first cell is ``first`` (and that has a cell containing ``contains``)."""
    for row in rows:
        if row[0] == first and (not contains or any(contains in cell for cell in row[1:])):
            return row
    return None


def headline(page: str) -> str:
    """The README's table, from the text of docs/benchmarks.md."""
    rows = _rows(page)
    body: list[tuple[str, str, str]] = []

    def add(what: str, figure: Callable[[], str | None], peer: Callable[[], str | None] = lambda: "") -> None:
        try:
            mine, theirs = figure(), peer()
        except (TypeError, IndexError):  # a row the page does not have
            return
        if mine is not None and theirs is not None:
            body.append((what, mine, theirs))

    def ratio(first: str, contains: str = "") -> str:
        return _find(rows, first, contains=contains)[4]  # type: ignore[index]

    add(
        "stream 20,000 messages over a wire, delivery guarantee on, vs raw websockets pipelined",
        lambda: ratio("stream, one hop (delivery guarantee)", "raw pipelined"),
    )
    add(
        "tick → iopin → buzzer latency p50 / p99, vs a raw two-hop relay",
        lambda: f"{ratio('tick to buzz latency p50')} / {ratio('tick to buzz latency p99')}",
    )
    add("fan-out to 100 subscribers in one process, vs `broadcast()`", lambda: ratio("fan-out to 100"))
    add(
        "a persistent link vs a connection per message",
        lambda: f"{ratio('link, stream() of many vs a connection per message')}x",
    )

    def peers(name: str, columns: tuple[int, int] = (3, 4)) -> str:
        row = _find(rows, name)
        return "; ".join(row[i] for i in columns)  # type: ignore[index]

    add(
        "clock → iopin → buzzer as 3 processes, 5,000 sequential ticks: ticks/s; CPU per tick",
        lambda: peers("raw websockets"),
        lambda: " · ".join(
            f"{name}: {peers(name)}" for name in ("Mosquitto + paho QoS 0", "Mosquitto + paho QoS 1", "Redis pub/sub")
        ),
    )
    add(
        "1 publisher → 100 subscribers in 4 processes: deliveries/s; CPU per delivery",
        lambda: "",
        lambda: " · ".join(
            f"{name}: {peers(name, (4, 5))}"
            for name in ("Mosquitto QoS 0", "Redis, each PUBLISH awaited", "Redis, pipelined PUBLISH")
        ),
    )

    def up(first: str, column: int) -> str:
        return _find(rows, first)[column]  # type: ignore[index]

    add(
        "`arduino-mesh up`: 10,000 nodes start",
        lambda: up("10,000 buzzers started by arduino-mesh up", 1).split(" (")[0],
    )
    add(
        "`arduino-mesh up`: 1,000 nodes, each subscribed to the next, idle",
        lambda: up("1,000 subscribed nodes idle under arduino-mesh up", 2),
    )
    lines = ["| | mesh/raw | mesh/peer |", "|---|---|---|"]
    lines += [f"| {what} | {mine} | {theirs} |" for what, mine, theirs in body]
    return "\n".join(lines)


def rewrite(readme: Path, page: str) -> None:
    """Put :func:`headline` of ``page`` between the README's markers."""
    text = readme.read_text()
    begin, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    readme.write_text(text[:begin] + "\n" + headline(page) + "\n" + text[end:])


def block(readme: str) -> str:
    """What stands between the README's markers now."""
    match = re.search(re.escape(BEGIN) + r"\n(.*?)\n?" + re.escape(END), readme, re.S)
    return match[1].strip() if match else ""
