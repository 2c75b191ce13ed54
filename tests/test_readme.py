"""The README stays true: its sketch example runs, its commands are the ones CI runs."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import sketches
from mesh.grid import build_grid
from tests.helpers import DEADLINE, ROOT, start_circuit, stop_circuit, until

README = (ROOT / "README.md").read_text()


def test_the_test_command_is_what_ci_runs():
    """.ci/run ends with the README's test command."""
    assert "\n```sh\npytest --cov\n```" in README
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("\npytest --cov")


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
    """The README's Meter sketch, subscribed to +/pin in the grid only, counts the iopin's high pins."""
    code = re.search(r"`sketches/meter\.py`:\n\n```python\n(.*?)```", README, re.S)[1]
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


def test_the_sketch_surface_table_is_the_whole_surface():
    """README's "What a sketch can use" names exactly FactoryLoop's public names and the decorators nodes exports."""
    import nodes
    from nodes import FactoryLoop

    table = README[README.index("What a sketch can use") : README.index("Anything else is yours")]
    rows = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| `")]
    named = set()
    for row in rows:
        named |= set(re.findall(r"self\.(\w+)", row)) | set(re.findall(r"@(\w+)", row))
        named |= set(re.findall(r"(?:`|def )(\w+)\(self", row)) | set(re.findall(r"`(\w+)`", row))
    surface = {name for name in dir(FactoryLoop) if not name.startswith("_")}
    assert named == surface | {"reactive", "every", "hears", "reports"}
    assert {"FactoryLoop", "reactive", "every", "hears", "reports"} <= set(nodes.__all__)
