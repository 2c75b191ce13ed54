"""arduino.py before the command line: a Python without the project's packages gets one line, not a traceback."""

from __future__ import annotations

import re
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

import arduino
from tests.helpers import ROOT, run


def test_the_list_of_dependencies_is_pyprojects():
    """Every dependency of pyproject.toml is checked before the CLI is imported, under its PyPI name."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        declared = tomllib.load(f)["project"]["dependencies"]
    names = {re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower() for requirement in declared}
    assert set(arduino.DEPENDENCIES.values()) == names


def test_everything_there_says_nothing():
    """In the project's venv, nothing is missing."""
    assert arduino.missing() is None


@pytest.mark.e2e
def test_a_python_without_the_packages_gets_one_line_naming_them_and_the_fix(tmp_path: Path):
    """`python -S ./arduino.py buzzer` (no site-packages, as a Python outside the venv): one line, exit 1.

    The checkout is copied without its venv: the line says how to make one, then the command again.
    """
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("arduino.py", "pyproject.toml"):
        shutil.copy(ROOT / name, checkout / name)
    done = run([sys.executable, "-S", "./arduino.py", "buzzer"], cwd=checkout)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        f"./arduino.py: {sys.executable} lacks the packages websockets, click, pyyaml, looptime, pyvcd, serialx: "
        "install the checkout in a venv: python3 -m venv .venv && .venv/bin/pip install -e ., "
        "then: .venv/bin/python ./arduino.py buzzer\n"
    )
    (checkout / ".venv").mkdir()
    done = run([sys.executable, "-S", "./arduino.py", "send", "buzzer", "1"], cwd=checkout)
    assert done.stderr.endswith(": run it with the checkout's venv: .venv/bin/python ./arduino.py send buzzer 1\n")
