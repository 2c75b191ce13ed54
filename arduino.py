#!/usr/bin/env python3
"""arduino.py: run the nodes of a circuit, and talk to them. The commands live in :mod:`cli`.

./arduino.py buzzer            run the node named "buzzer" in grid.yaml
./arduino.py send buzzer 1     send one message to a node, print its ack
./arduino.py echo '#'          print everything the circuit publishes

Before :mod:`cli` is imported, only the standard library is: a Python without the project's
packages (no venv active) gets one line naming what is missing and how to install it.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import sys

__all__ = ["DEPENDENCIES", "main", "missing"]

#: The module each dependency of pyproject.toml is imported as, and its package's name on PyPI
#: (tests/test_arduino.py keeps this the list of pyproject.toml).
DEPENDENCIES = {
    "websockets": "websockets",
    "click": "click",
    "yaml": "pyyaml",
    "looptime": "looptime",
    "vcd": "pyvcd",
    "serialx": "serialx",
}


def missing() -> str | None:
    """One line, when this Python lacks a package the project needs: which, and the command that installs it."""
    absent = [package for module, package in DEPENDENCIES.items() if importlib.util.find_spec(module) is None]
    if not absent:
        return None
    packages = f"the package {absent[0]}" if len(absent) == 1 else f"the packages {', '.join(absent)}"
    here = os.path.dirname(os.path.abspath(__file__))
    if not os.path.isfile(os.path.join(here, "pyproject.toml")):  # installed, not a checkout
        return f"arduino-mesh: {sys.executable} lacks {packages}: install them with: {sys.executable} -m pip install arduino-mesh"
    folder = _shown(here)
    venv = _shown(os.path.join(here, ".venv"))
    again = shlex.join([os.path.join(venv, "bin", "python"), *sys.argv])
    if os.path.isdir(os.path.join(here, ".venv")):
        fix = f"run it with the checkout's venv: {again}"
    else:
        fix = f"install the checkout in a venv: python3 -m venv {venv} && {venv}/bin/pip install -e {folder}, then: {again}"
    return f"{sys.argv[0]}: {sys.executable} lacks {packages}: {fix}"


def _shown(path: str) -> str:
    """``path`` relative to the working directory when it is below it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def main() -> None:
    """Check the dependencies, then run the command line (:func:`cli.main`)."""
    problem = missing()
    if problem is not None:
        print(problem, file=sys.stderr)
        raise SystemExit(1)
    from cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
