"""The README stays true: its sketch example runs, its commands are the ones CI runs, its figures are the docs'.

Every figure the README quotes has one source in docs/: the benchmark rows are derived from
docs/benchmarks.md (bench/headline.py), the suite's times are docs/testing.md's, the
simulation's speed is docs/simulate.md's. A figure measured again is changed there, and here
the README is held to it.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import sketches
from bench.headline import block, headline
from mesh.grid import build_grid
from tests.helpers import DEADLINE, ROOT, start_circuit, stop_circuit, until

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"


def test_the_test_command_is_what_ci_runs():
    """.ci/run ends with the README's test command."""
    assert "\n```sh\npytest --cov\n```" in README
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("\ntime pytest --cov")  # bash's time: CPU seconds


async def test_the_write_your_own_sketch_example_works(tmp_path: Path):
    """The README's Led sketch, dropped into the sketches folder and wired from the iopin, lights up on 1."""
    code = re.search(r"`sketches/led\.py`:\n\n```python\n(.*?)```", README, re.S)[1]
    (tmp_path / "sketches").mkdir()
    (tmp_path / "sketches" / "led.py").write_text(code)  # beside the grid file, as the README says
    assert "led" in sketches.available(tmp_path / "grid.yaml")
    grid = build_grid(
        {
            "clock": {"sketch": "clock", "params": {"tacks": 2, "delay": 0.001}},
            "iopin": {"sketch": "iopin", "port": 0, "params": {"chance": 1.0, "sequence": 2}},
            "led": {"sketch": "led", "port": 0, "params": {"color": "green"}},
        },
        ["clock -> iopin", "iopin -> led"],
        path=str(tmp_path / "grid.yaml"),
    )
    nodes = await start_circuit(grid)
    try:
        await asyncio.wait_for(nodes["clock"].wait(), DEADLINE)
        assert nodes["led"].sketch.lit is True
        assert nodes["led"].reactor.messages_in == 4
    finally:
        await stop_circuit(nodes)


async def test_the_led_example_shows_on_off_on_the_dashboard(tmp_path: Path):
    """The README's Led publishes its state on led/lit, so the dashboard's card for it shows 'lit on'."""
    code = re.search(r"`sketches/led\.py`:\n\n```python\n(.*?)```", README, re.S)[1]
    (tmp_path / "sketches").mkdir()
    (tmp_path / "sketches" / "led.py").write_text(code)
    grid = build_grid(
        {
            "clock": {"sketch": "clock", "port": 0, "params": {"tacks": 0, "delay": 0.005}},
            "iopin": {"sketch": "iopin", "port": 0, "params": {"chance": 1.0, "sequence": 1}},
            "led": {"sketch": "led", "port": 0},
            "dashboard": {"sketch": "dashboard", "port": 0, "subscribe": ["#"]},
        },
        ["clock -> iopin", "iopin -> led"],
        path=str(tmp_path / "grid.yaml"),
    )
    nodes = await start_circuit(grid)
    try:
        dashboard = nodes["dashboard"].sketch
        await until(lambda: dashboard.latest.get("led") == "led/lit", "the led's publication at the dashboard")
        assert dashboard.last["led/lit"] == "on"
    finally:
        await stop_circuit(nodes)


async def test_the_topics_example_hears_every_pin_from_the_grid_alone(tmp_path: Path):
    """docs/topics.md's Meter sketch, subscribed to +/pin in the grid only, counts the iopin's high pins."""
    topics = (DOCS / "topics.md").read_text()
    code = re.search(r"`sketches/meter\.py`:\n\n```python\n(.*?)```", topics, re.S)[1]
    (tmp_path / "sketches").mkdir()
    (tmp_path / "sketches" / "meter.py").write_text(code)
    grid = build_grid(
        {
            "clock": {"sketch": "clock", "port": 0, "params": {"tacks": 0, "delay": 0.005}},
            "iopin": {"sketch": "iopin", "port": 0, "params": {"chance": 1.0, "sequence": 3}},
            "buzzer": {"sketch": "buzzer", "port": 0},
            "meter": {"sketch": "meter", "subscribe": ["+/pin"]},
        },
        ["clock -> iopin", "iopin -> buzzer"],
        path=str(tmp_path / "grid.yaml"),
    )
    nodes = await start_circuit(grid)
    try:
        await until(lambda: nodes["meter"].sketch.highs >= 9, "nine high pins at the meter")
    finally:
        await stop_circuit(nodes)


def surface_named(page: str) -> set[str]:
    """The names a page's table "What a sketch can use" lists, up to "Anything else is yours" or its end."""
    start = page.index("What a sketch can use")
    end = page.find("Anything else is yours", start)
    table = page[start : end if end >= 0 else None]
    table = table[: table.find("\n\n", table.index("\n| "))]  # the table only
    rows = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| `")]
    named: set[str] = set()
    for row in rows:
        named |= set(re.findall(r"self\.(\w+)", row)) | set(re.findall(r"@(\w+)", row))
        named |= set(re.findall(r"(?:`|def )(\w+)\(self", row)) | set(re.findall(r"`(\w+)`", row))
    return named


def test_the_sketch_surface_table_is_the_whole_surface():
    """README's "What a sketch can use" names exactly FactoryLoop's public names and the decorators nodes exports;
    docs/sketches.md's longer table names the same."""
    import nodes
    from nodes import FactoryLoop

    surface = {name for name in dir(FactoryLoop) if not name.startswith("_")}
    assert surface_named(README) == surface | {"reactive", "every", "hears", "reports"}
    assert surface_named((DOCS / "sketches.md").read_text()) == surface_named(README)
    assert {"FactoryLoop", "reactive", "every", "hears", "reports"} <= set(nodes.__all__)


def test_the_benchmark_rows_are_the_benchmark_pages():
    """The README's headline table is what bench/headline.py derives from docs/benchmarks.md (python -m bench
    writes both): no row of its own."""
    assert block(README) == headline((DOCS / "benchmarks.md").read_text())


def figures(text: str, pattern: str) -> list[str]:
    found = re.findall(pattern, text)
    assert found, f"no {pattern!r}"
    return found


def test_the_suites_times_are_the_ones_measured():
    """The README's times of the whole suite and of the fast set are docs/testing.md's measured ones."""
    testing = (DOCS / "testing.md").read_text()
    whole, fast = r"whole suite[^.]*?about (\d+ minutes)", r"not e2e\"`[^.]*?about (\d+ s)\b"
    assert set(figures(README, whole)) == set(figures(testing, whole))
    assert set(figures(README, fast)) == set(figures(testing, fast))


def test_the_simulations_speed_is_the_one_measured():
    """ "An hour in about N s" in the README is docs/simulate.md's figure."""
    pattern = r"an hour in about (\d+ s)"
    assert set(figures(README, pattern)) <= set(figures((DOCS / "simulate.md").read_text(), pattern))
