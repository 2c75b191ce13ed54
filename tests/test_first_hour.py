"""A beginner's mistakes, made in a project of `arduino-mesh new` as a user makes them, seen through the command line.

Each is one line naming the file and line (or the command) and the fix, with no traceback (issue 26). The
project is made once per module and copied per test, its ports made free ones.
"""

from __future__ import annotations

import re
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import arduino, free_ports, run_arduino

pytestmark = pytest.mark.e2e

LOOP_FIX = "'@reactive async def loop(self, channel, message)'"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`arduino-mesh new demo`, once."""
    folder = tmp_path_factory.mktemp("made")
    assert run_arduino("new", "demo", cwd=folder).returncode == 0
    return folder / "demo"


@pytest.fixture
def project(made: Path, tmp_path: Path) -> Path:
    """A copy of the new project, every port a free one."""
    copy = tmp_path / "demo"
    shutil.copytree(made, copy)
    grid = copy / "grid.yaml"
    text = grid.read_text()
    old = re.findall(r"port: (\d+)", text)
    for before, after in zip(old, free_ports(len(old)), strict=True):
        text = text.replace(f"port: {before}", f"port: {after}")
    grid.write_text(text)
    return copy


def edit(path: Path, old: str, new: str) -> int:
    """Replace ``old`` in the file by ``new``; the line they start on."""
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return text[: text.index(old)].count("\n") + 1


def in_setup(line: str) -> Callable[[Path], int]:
    """A mistake in the sketch's setup(): ``line`` added as its last; the line it is on."""

    def make(sketch: Path) -> int:
        return edit(sketch, "        self.lit = False\n", f"        self.lit = False\n        {line}\n") + 1

    return make


def sync_loop(sketch: Path) -> int:
    edit(sketch, "        await self.publish(", "        # await self.publish(")
    return edit(sketch, "    async def loop(", "    def loop(")


def imports_nothing(sketch: Path) -> int:
    return edit(sketch, "from nodes import", "import numpyy\nfrom nodes import")


@pytest.mark.parametrize(
    ("mistake", "error"),
    [
        pytest.param(in_setup('self.pins = {}; self.pins["led"] += 1'), "KeyError: 'led'", id="key-error"),
        pytest.param(
            in_setup('self.name = "led " + color'),
            "name is the node's name, read-only: use another attribute, e.g. self.label",
            id="self-name",
        ),
        pytest.param(sync_loop, "loop() must be async: write 'async def loop(self, channel, message)'", id="sync-loop"),
        pytest.param(imports_nothing, "ModuleNotFoundError: No module named 'numpyy'", id="import"),
    ],
)
@pytest.mark.parametrize("command", [["demo"], ["up"]], ids=["node", "up"])
def test_a_sketchs_mistake_is_one_line_with_its_file_and_line(project: Path, mistake, error: str, command: list[str]):
    """`arduino-mesh demo` (and `up`): exit 1, `Error: grid.yaml:9: node 'demo': sketches/demo.py:LINE: ...`."""
    line = mistake(project / "sketches" / "demo.py")
    done = run_arduino(*command, cwd=project)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == f"Error: grid.yaml:9: node 'demo': sketches/demo.py:{line}: {error}"
    if command == ["demo"]:
        assert done.stderr.count("\n") == 1


NO_LOOP = '''\
"""Demo: hears the iopin's pins, has no loop()."""

from __future__ import annotations

from nodes import FactoryLoop, hears


class Demo(FactoryLoop):
    def setup(self, color: str = "green") -> None:
        self.color = color

    @hears
    def heard(self, key: str, data: str) -> None:
        self.out(f"{key} = {data}")
'''


def test_a_node_sent_to_without_loop(project: Path):
    """check warns; the node says it once at start and keeps serving; `send` exits 1 with the error, not `n/a`."""
    (project / "sketches" / "demo.py").write_text(NO_LOOP)
    edit(project / "grid.yaml", "params: {color: green}}", 'params: {color: green}, subscribe: ["iopin/pin"]}')
    checked = run_arduino("check", cwd=project)
    assert (
        f"grid.yaml:9: warning: node 'demo' has no loop(): what 'iopin' sends gets an error; give it an {LOOP_FIX}"
        in checked.stdout.splitlines()
    )
    node = arduino("demo", cwd=project)
    node.expect("serving on")
    node.expect(
        re.escape(
            f"warning: sketches/demo.py:8: Demo has no loop(): what 'iopin' sends gets an error; give it an {LOOP_FIX}"
        )
    )
    error = f"sketches/demo.py:8: node 'demo' has no loop(), so it takes no messages: give Demo an {LOOP_FIX}"
    for _ in range(2):
        sent = run_arduino("send", "demo", "1", cwd=project)
        assert (sent.returncode, sent.stdout, sent.stderr) == (1, "", f"Error: demo answered with an error: {error}\n")
    node.signal(signal.SIGINT)
    assert node.wait() == 0
    assert "has no loop()" not in node.output().split("Demo has no loop()", 1)[1]  # said once
    assert "Traceback" not in node.output()


@pytest.mark.parametrize(
    ("change", "line"),
    [
        pytest.param(
            lambda grid: grid.write_text(grid.read_text() + "heater: {sketch: buzzer}\n"),
            "grid.yaml:15: error: unknown key 'heater' at the top level (expected one of: auth, nodes, tls, wires); "
            "a node goes under 'nodes:' on line 5, indented like the other nodes",
            id="node-at-the-top-level",
        ),
        pytest.param(
            lambda grid: grid.write_text(grid.read_text() + "  heater: {sketch: buzzer}\n"),
            "grid.yaml:15: error: bad indentation: the key 'heater' is indented like the list item "
            "'- iopin -> demo' on line 14, and a list cannot hold keys; a node belongs under 'nodes:' on line 5: "
            "move it up there, with the other nodes",
            id="node-after-wires",
        ),
        pytest.param(
            lambda grid: edit(grid, 'subscribe: ["#"]', 'subscribe: ["#", "iopn/pin"]'),
            "grid.yaml:10: warning: node 'dashboard' subscribes to 'iopn/pin', which no node of the grid with a port "
            "can publish; did you mean 'iopin/pin'?",
            id="misspelt-subscription",
        ),
    ],
)
def test_grid_keys_in_the_wrong_place_say_where_they_belong(project: Path, change, line: str):
    """`arduino-mesh check`: the line, what is wrong, where it belongs (or what was meant)."""
    change(project / "grid.yaml")
    checked = run_arduino("check", cwd=project)
    assert line in checked.stdout.splitlines(), checked.stdout
