"""Where the grid's ``sketch:`` finds a sketch: beside the grid, at a path, in a package, or built in."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mesh.errors import GridError, SketchError
from mesh.grid import read_grid
from nodes import FactoryLoop
from nodes.sketchbook import available, load, locate, problem
from sketches.clock import Clock

SKETCH = """
from nodes import FactoryLoop, reactive

class {name}(FactoryLoop):
    @reactive
    async def loop(self, channel, message):
        return {answer!r}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder of a user's: sketches/ beside the grid, a lab/ folder, a package of their own."""
    (tmp_path / "sketches").mkdir()
    (tmp_path / "sketches" / "blinker.py").write_text(SKETCH.format(name="Blinker", answer="blink"))
    (tmp_path / "sketches" / "clock.py").write_text(SKETCH.format(name="MyClock", answer="my tick"))
    (tmp_path / "sketches" / "pack").mkdir()
    (tmp_path / "sketches" / "pack" / "__init__.py").write_text("from .inner import Packed\n")
    (tmp_path / "sketches" / "pack" / "inner.py").write_text(SKETCH.format(name="Packed", answer="packed"))
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "two.py").write_text(
        SKETCH.format(name="Fast", answer="fast") + SKETCH.format(name="Slow", answer="slow").split("\n", 3)[3]
    )
    (tmp_path / "lab" / "broken.py").write_text("import not_a_module_anywhere\n")
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "mod.py").write_text(SKETCH.format(name="Thing", answer="thing") + "\nclass Other: pass\n")
    (tmp_path / "grid.yaml").write_text("nodes: {}\n")
    monkeypatch.setattr(sys, "path", list(sys.path))  # the grid's folder made importable is undone afterwards
    monkeypatch.chdir("/")  # nothing is found through the working directory
    return tmp_path / "grid.yaml"


def answer_of(cls: type[FactoryLoop]) -> str:
    return cls.__name__


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("blinker", "Blinker"),  # sketches/blinker.py beside the grid
        ("clock", "MyClock"),  # the project's own comes before the built-in of the same name
        ("pack", "Packed"),  # a package in sketches/, with its own relative imports
        ("iopin", "IOPin"),  # a built-in
        ("./sketches/blinker.py", "Blinker"),  # a path relative to the grid
        ("sketches/blinker.py", "Blinker"),
        ("./lab/two.py:Slow", "Slow"),  # a path naming one of several classes
        ("mypkg.mod:Thing", "Thing"),  # an importable module; the grid's folder is importable
        ("sketches.clock:Clock", "Clock"),  # the built-in, by module and class
    ],
)
def test_a_sketch_is_found(project: Path, value: str, found: str):
    cls = load(value, project)
    assert cls.__name__ == found
    assert issubclass(cls, FactoryLoop)


def test_a_file_is_run_once_whatever_the_nodes_naming_it(project: Path):
    assert load("blinker", project) is load("./sketches/blinker.py", project)


def test_without_a_grid_file_only_builtins_and_modules():
    assert load("clock") is Clock
    assert load("sketches.clock:Clock", "<memory>") is Clock
    with pytest.raises(SketchError, match=r"unknown sketch 'blinker'; tried the built-in sketches; known sketches"):
        locate("blinker")


def test_available_lists_the_project_and_the_builtins(project: Path):
    assert available(project) == ["blinker", "buzzer", "clock", "dashboard", "iopin", "mqtt", "pack"]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (
            "blinkr",
            r"unknown sketch 'blinkr'; tried sketches/blinkr\.py beside the grid, the built-in sketches; "
            r"known sketches: blinker, buzzer, clock, dashboard, iopin, mqtt, pack; did you mean 'blinker'\?",
        ),
        ("./lab/none.py", r"no sketch file './lab/none\.py': tried .*/lab/none\.py"),
        ("nopkg.mod:Thing", r"no module 'nopkg\.mod' for sketch 'nopkg\.mod:Thing': not importable"),
    ],
)
def test_what_is_not_found_says_what_was_tried(project: Path, value: str, error: str):
    with pytest.raises(SketchError, match=error):
        load(value, project)
    assert problem(project)(value) is not None


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (
            "./lab/two.py",
            r"sketch '\./lab/two\.py': .*/lab/two\.py must define exactly one FactoryLoop subclass "
            r"\(found: Fast, Slow\); or name one: sketch: \./lab/two\.py:Fast",
        ),
        ("./lab/broken.py", r"^\S*lab/broken\.py:1: ModuleNotFoundError: No module named 'not_a_module_anywhere'$"),
        ("mypkg.mod:Other", r"sketch 'mypkg\.mod:Other': mypkg\.mod has no FactoryLoop subclass named 'Other'"),
        ("mypkg.mod:Nope", r"has no FactoryLoop subclass named 'Nope'"),
    ],
)
def test_what_cannot_be_used_says_why(project: Path, value: str, error: str):
    assert problem(project)(value) is None  # found: the grid loads; loading the sketch fails
    with pytest.raises(SketchError, match=error):
        load(value, project)


def test_the_grid_blames_its_line(project: Path):
    project.write_text("nodes:\n  a: {sketch: clock}\n  b: {sketch: blinkr}\n")
    with pytest.raises(GridError) as caught:
        read_grid(project, sketches=problem(project))
    assert str(caught.value).startswith(f"{project}:3: node 'b': unknown sketch 'blinkr'; tried")


@pytest.mark.parametrize(
    "value",
    ["clock", "a.b", "./x.py", "x.py", "../up/x.py", "/abs/x.py", "./x.py:Cls", "pkg.mod:Cls", "lab/pkg/"],
)
def test_what_a_sketch_value_may_look_like(tmp_path: Path, value: str):
    (tmp_path / "grid.yaml").write_text(f"nodes:\n  a: {{sketch: {value!r}}}\n")
    if value == "lab/pkg/":
        with pytest.raises(GridError, match="'sketch' must be"):
            read_grid(tmp_path / "grid.yaml")
    else:
        assert read_grid(tmp_path / "grid.yaml").node("a").sketch == value


@pytest.mark.parametrize("value", ["", " clock", "pkg.mod:", "pkg mod:Cls", "x.py:1", "a-b", "pkg.mod:Cls:X"])
def test_a_sketch_value_that_cannot_name_one(tmp_path: Path, value: str):
    (tmp_path / "grid.yaml").write_text(f"nodes:\n  a: {{sketch: {value!r}}}\n")
    with pytest.raises(GridError, match=r":2: node 'a': 'sketch' must be a sketch's name \(blinker\), a path"):
        read_grid(tmp_path / "grid.yaml")


def test_arduino_firmware_is_a_path_ending_in_ino(tmp_path: Path):
    """``sketch: lamp.ino`` is a file beside the grid (or at a path from it); its node runs the Firmware sketch."""
    from nodes.firmware import Firmware

    (tmp_path / "fw").mkdir()
    (tmp_path / "fw" / "lamp.ino").write_text("void setup() {}\nvoid loop() {}\n")
    grid = tmp_path / "grid.yaml"
    assert locate("fw/lamp.ino", grid).file == tmp_path / "fw" / "lamp.ino"
    assert load("fw/lamp.ino", grid) is Firmware
    with pytest.raises(SketchError) as caught:
        locate("lamp.ino", grid)
    assert str(caught.value) == f"no sketch file 'lamp.ino': tried {tmp_path / 'lamp.ino'}"
    assert problem(grid)("lamp.ino") == str(caught.value)
