"""The command group (cli/__init__.py): its commands are the ones `check` knows, and the installed name is ours."""

from __future__ import annotations

import tomllib

from cli import cli
from mesh.check import COMMANDS
from tests.helpers import ROOT


def test_check_knows_every_command():
    """A node named like a command is shadowed by it: check warns of exactly the CLI's commands."""
    assert set(cli.commands) == COMMANDS


def test_the_installed_command_is_arduino_mesh_not_the_arduino_ides():
    """Debian's `arduino` package installs /usr/bin/arduino (the IDE): we install `arduino-mesh` and nothing else."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    assert scripts == {"arduino-mesh": "arduino:main"}
