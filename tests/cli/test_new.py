"""``arduino-mesh new``: a project of one's own, outside this repository, from the package as a user installs it."""

from __future__ import annotations

import re
import shutil
import signal
import sys
import venv
from pathlib import Path

import pytest

from tests.helpers import DEADLINE, ROOT, Process, environment, free_ports, run, run_arduino

pytestmark = pytest.mark.e2e


def test_new_makes_a_project_that_checks_clean(tmp_path: Path):
    """The folder holds the circuit, the sketch, its test, a Procfile; `check` finds nothing wrong in it."""
    made = run_arduino("new", "My Blinky", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "My Blinky"
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()) == [
        ".gitignore",
        "Procfile",
        "README.md",
        "grid.yaml",
        "pytest.ini",
        "sketches/my_blinky.py",
        "tests/test_my_blinky.py",
    ]
    assert "cd My Blinky" in made.stdout
    checked = run_arduino("check", cwd=project)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.splitlines()[-1] == "grid.yaml: 5 nodes, 3 wires: no problems found"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["clock"], "'clock' is a built-in sketch's name: give yours another with --sketch NAME"),
        (["x", "--sketch", "class"], "'class' is a Python keyword: give your sketch another name with --sketch NAME"),
        (["++"], "cannot make a sketch name out of '++': give one with --sketch NAME"),
        (["existing"], "existing already exists and is not empty: choose another NAME"),
    ],
)
def test_new_refuses_what_it_cannot_make(tmp_path: Path, args: list[str], error: str):
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "grid.yaml").write_text("")
    made = run_arduino("new", *args, cwd=tmp_path)
    assert made.returncode == 2
    assert made.stderr == f"Error: {error}\n"


def free_grid(project: Path) -> list[int]:
    """The project's grid with every port replaced by a free one (other suites may run at once); the new ports."""
    grid = project / "grid.yaml"
    text = grid.read_text()
    old = re.findall(r"port: (\d+)", text)
    new = free_ports(len(old))
    for before, after in zip(old, new, strict=True):
        text = text.replace(f"port: {before}", f"port: {after}")
    grid.write_text(text)
    return new


def test_a_new_user_from_a_wheel(tmp_path: Path):
    """The issue's walk-through, in a fresh venv with the wheel installed (not editable), outside the checkout.

    `arduino-mesh new blinky && cd blinky && pytest && honcho start`: the tests pass at once, and the
    circuit runs the user's own sketch, which publishes where the dashboard and `echo` see it.
    """
    source = tmp_path / "source"  # built from a copy: building in the checkout would leave build/ in it
    files = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", source],
        timeout=30 * DEADLINE,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("arduino_mesh-*.whl")
    venv.create(tmp_path / "venv", with_pip=True)
    bin_ = tmp_path / "venv" / "bin"
    installed = run([bin_ / "python", "-m", "pip", "install", "-q", f"{wheel}[project]"], timeout=30 * DEADLINE)
    assert installed.returncode == 0, installed.stderr
    # The user's shell: the venv's bin first on PATH, nothing of this checkout importable.
    env = environment(PATH=f"{bin_}:{environment()['PATH']}", PYTHONPATH=None, VIRTUAL_ENV=str(tmp_path / "venv"))
    home = tmp_path / "home"
    home.mkdir()

    made = run(["arduino-mesh", "new", "blinky"], cwd=home, env=env)
    assert made.returncode == 0, made.stderr
    project = home / "blinky"
    tested = run(["pytest", "-q", "-p", "no:cacheprovider"], cwd=project, env=env, timeout=6 * DEADLINE)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert re.search(r"\b2 passed\b", tested.stdout), tested.stdout
    helped = run(["arduino-mesh", "--help"], cwd=project, env=env)
    assert helped.stdout.startswith("Usage: arduino-mesh [OPTIONS]"), helped.stdout
    assert "blinky" in helped.stdout  # the project's own nodes are listed

    ports = free_grid(project)
    # honcho unbuffered: see test_honcho_runs_the_shipped_procfile for why.
    honcho = Process([bin_ / "python", "-u", "-m", "honcho", "start"], cwd=project, env=env)
    honcho.expect(rf"blinky.*\| \[ blinky \] serving on 127\.0\.0\.1:{ports[3]}")
    honcho.expect(r"\| \[ blinky \] green led (on|off)")
    echo = Process(["arduino-mesh", "echo", "blinky/#"], cwd=project, env=env)
    echo.expect(r"^blinky/led (on|off)$")
    echo.signal(signal.SIGINT)
    assert echo.wait() == 0
    honcho.signal(signal.SIGINT)
    assert honcho.wait() == 130, honcho.output()  # honcho's code for "stopped by SIGINT"
    for name in ("clock", "iopin", "buzzer", "blinky", "dashboard"):
        assert re.search(rf"system\s+\| {name}\.1 stopped \(rc=0\)", honcho.output())
    # The whole circuit in one process, as the README's first path runs it.
    up = Process(["arduino-mesh", "up"], cwd=project, env=env)
    up.expect(r"^\S+ blinky +\| green led (on|off)$")
    up.signal(signal.SIGINT)
    assert up.wait() == 0, up.output()
    assert not (bin_ / "arduino").exists()  # the Arduino IDE's command (Debian's arduino package) is not ours


def test_new_project_tests_pass_against_this_checkout(tmp_path: Path):
    """The generated test file runs green with the package from this checkout too (what CI's Pythons import)."""
    assert run_arduino("new", "lamp", cwd=tmp_path).returncode == 0
    project = tmp_path / "lamp"
    result = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=environment(PYTHONPATH=str(ROOT)),
        timeout=6 * DEADLINE,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_new_project_says_which_plugin_is_missing(tmp_path: Path):
    """Without the plugin (here disabled, as in a Python without arduino-mesh), pytest names it, not a fixture.

    `required_plugins` in the project's pytest.ini: "Missing required plugins: arduino-mesh" rather than
    "fixture 'circuit' not found"; and no warning of pytest-asyncio's loop scope when it is there.
    """
    assert run_arduino("new", "lamp", cwd=tmp_path).returncode == 0
    project = tmp_path / "lamp"
    pytest_ = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    missing = run([*pytest_, "-p", "no:arduino_mesh"], cwd=project, env=environment(PYTHONPATH=str(ROOT)))
    assert missing.returncode != 0
    assert "Missing required plugins: arduino-mesh" in missing.stdout + missing.stderr
    assert "fixture 'circuit' not found" not in missing.stdout
    warned = run(
        [*pytest_, "-W", "error::pytest.PytestDeprecationWarning", "--collect-only"],
        cwd=project,
        env=environment(PYTHONPATH=str(ROOT)),
    )
    assert warned.returncode == 0, warned.stdout + warned.stderr
