"""``arduino-mesh new NAME``: a project folder of one's own, with the circuit, a sketch, its test, a Procfile."""

from __future__ import annotations

import importlib.util
import keyword
import re
from importlib import resources
from pathlib import Path
from string import Template

import click

from nodes.sketchbook import builtins

from .common import UsageFailure

__all__ = ["new_command"]

#: Template files (in cli/project/) and where each goes; ``sketch`` in a name is the sketch's name.
FILES = {
    "grid.yaml.tmpl": "grid.yaml",
    "Procfile.tmpl": "Procfile",
    "README.md.tmpl": "README.md",
    "gitignore.tmpl": ".gitignore",
    "pytest.ini.tmpl": "pytest.ini",
    "sketches/sketch.py.tmpl": "sketches/{sketch}.py",
    "tests/test_sketch.py.tmpl": "tests/test_{sketch}.py",
}


def sketch_name(text: str) -> str:
    """A module, node and test name from a project's name: ``My Blinky-2`` -> ``my_blinky_2``."""
    name = re.sub(r"\W+", "_", text.strip().lower()).strip("_")
    if name[:1].isdigit():
        name = f"led_{name}"
    return name


@click.command("new")
@click.argument("name")
@click.option("--sketch", "sketch", default=None, help="The name of your sketch [default: from NAME].")
def new_command(name: str, sketch: str | None) -> None:
    """Make a project folder NAME: the circuit plus a sketch of your own.

    NAME/grid.yaml (clock -> iopin -> buzzer, and your sketch wired from the
    iopin), Procfile, sketches/SKETCH.py, tests/test_SKETCH.py (a passing test)
    and a README. Then: `cd NAME && pytest && honcho start`.
    """
    folder = Path(name)
    sketch = sketch_name(sketch or folder.name)
    if not sketch or not sketch.isidentifier():
        raise UsageFailure(f"cannot make a sketch name out of {name!r}: give one with --sketch NAME")
    if keyword.iskeyword(sketch):
        raise UsageFailure(f"{sketch!r} is a Python keyword: give your sketch another name with --sketch NAME")
    if sketch in builtins():
        raise UsageFailure(f"{sketch!r} is a built-in sketch's name: give yours another with --sketch NAME")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageFailure(f"{folder} already exists and is not empty: choose another NAME")
    values = {
        "name": folder.name,
        "sketch": sketch,
        "Sketch": "".join(part.capitalize() for part in sketch.split("_")),
        "key": f"{sketch}:".ljust(10),
    }
    templates = resources.files(__package__).joinpath("project")
    made = []
    for source, target in FILES.items():
        text = Template(templates.joinpath(source).read_text(encoding="utf-8")).substitute(values)
        path = folder / target.format(sketch=sketch)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        made.append(target.format(sketch=sketch))
    click.echo(f"made {folder}/: {', '.join(made)}")
    click.echo("next:")
    for line, why in (
        (f"cd {folder}", ""),
        ("pytest", f"{sketch}'s tests"),
        ("honcho start", "the circuit, one process per node; the dashboard: http://127.0.0.1:8000/"),
    ):
        click.echo(f"  {line:<14}{'  # ' + why if why else ''}".rstrip())
    missing = [tool for tool in ("pytest", "honcho") if importlib.util.find_spec(tool) is None]
    if missing:
        click.echo(f"({' and '.join(missing)} not installed here: pip install 'arduino-mesh[project]')")
