"""A sketch's mistakes are one line naming the grid's line, the sketch's file and line, and the fix (nodes.blame).

Each case is a real sketch file in a project folder (the working directory, as a user's is), loaded
as the grid's ``sketch:`` loads it and opened as a node: what the user reads is ``str()`` of the error.
"""

from __future__ import annotations

import logging
from pathlib import Path
from textwrap import dedent, indent

import pytest
from websockets.asyncio.client import connect

from mesh.errors import GridError, SketchError
from mesh.grid import build_grid
from nodes.blame import class_at, defined_at, described, shorten
from nodes.runtime import Node
from nodes.sketchbook import load
from tests.helpers import DEADLINE

HEAD = """\
from __future__ import annotations

from nodes import FactoryLoop, hears, reactive


class Lamp(FactoryLoop):
"""

LOOP = """
    @reactive
    async def loop(self, channel: str, message: str) -> str:
        return message
"""


def sketch(project: Path, body: str, *, head: str = HEAD, loop: str = LOOP) -> tuple[type, str]:
    """``sketches/lamp.py`` written in ``project`` and loaded; and where its ``# here`` line is (``file:line``)."""
    text = head + indent(dedent(body), "    ") + loop
    (project / "sketches").mkdir(exist_ok=True)
    (project / "sketches" / "lamp.py").write_text(text)
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if row.rstrip().endswith("# here"))
    return load("lamp", project / "grid.yaml"), f"sketches/lamp.py:{line}"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's project folder, the working directory (paths are shown relative to it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def opened(cls: type) -> str:
    """What opening a node of ``cls`` says: the GridError's one line."""
    node = Node(cls, "lamp", build_grid({"lamp": {"sketch": "lamp"}}))
    with pytest.raises(GridError) as caught:
        await node.open()
    return str(caught.value)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        pytest.param(
            """
            def setup(self) -> None:
                pins = {}
                pins["led"] += 1  # here
            """,
            "KeyError: 'led'",
            id="key-error",
        ),
        pytest.param(
            """
            async def setup(self) -> None:
                self.level = 1 / 0  # here
            """,
            "ZeroDivisionError: division by zero",
            id="async-setup",
        ),
        pytest.param(
            """
            def setup(self, color: str = "green") -> None:
                self.color = int(color)  # here
            """,
            "invalid literal for int() with base 10: 'green'",
            id="value-error-reads-as-it-is",
        ),
        pytest.param(
            """
            def setup(self) -> None:
                self.name = "led"  # here
            """,
            "name is the node's name, read-only: use another attribute, e.g. self.label",
            id="self-name",
        ),
        pytest.param(
            """
            def setup(self) -> None:
                self.targets = ["x"]  # here
            """,
            "targets is the nodes it is wired to, read-only: use another attribute, e.g. self.my_targets",
            id="self-targets",
        ),
        pytest.param(
            """
            def setup(self) -> None:
                self.address = "x"  # here
            """,
            "address is the node's address, read-only: use another attribute, e.g. self.my_address",
            id="self-address",
        ),
        pytest.param(
            """
            async def setup(self) -> None:
                await self.publish("a/#", "x")  # here
            """,
            "invalid topic 'a/#': '+' and '#' are for patterns, not for publishing",
            id="through-the-surface",
        ),
    ],
)
async def test_an_exception_in_setup_names_the_sketchs_line(project: Path, body: str, error: str):
    """Any exception in setup(): ``<grid>: node 'lamp': sketches/lamp.py:LINE: what``, the line the sketch's."""
    cls, where = sketch(project, body)
    assert await opened(cls) == f"<memory>: node 'lamp': {where}: {error}"


async def test_a_builtin_sketchs_refusal_names_the_grid_only():
    """A built-in sketch refusing its params: the grid's line is where to fix it, no file of ours."""
    cls = load("iopin")
    node = Node(cls, "n", build_grid({"n": {"sketch": "iopin", "params": {"chance": 2}}}))
    with pytest.raises(GridError) as caught:
        await node.open()
    assert str(caught.value) == "<memory>: node 'n': chance must be between 0 and 1, not 2"


@pytest.mark.parametrize(
    ("head", "body", "loop", "error"),
    [
        pytest.param(
            HEAD.replace("from nodes", "import no_such_module  # here\nfrom nodes"),
            "",
            LOOP,
            "ModuleNotFoundError: No module named 'no_such_module'",
            id="import",
        ),
        pytest.param(
            HEAD,
            "level = undefined_name  # here\n",
            LOOP,
            "NameError: name 'undefined_name' is not defined",
            id="class-body",
        ),
        pytest.param(HEAD, "def setup(self)  # here\n    pass\n", LOOP, "SyntaxError: expected ':'", id="syntax"),
        pytest.param(
            HEAD,
            "",
            LOOP.replace("async def loop", "def loop"),
            "loop() must be async: write 'async def loop(self, channel, message)'",
            id="reactive-sync-loop",
        ),
        pytest.param(
            HEAD,
            "",
            LOOP.replace("    @reactive\n", "").replace("async def loop", "def loop"),
            "loop() must be async: write 'async def loop(self, channel, message)'",
            id="sync-loop",
        ),
    ],
)
def test_a_sketch_that_cannot_load_names_its_line(project: Path, head: str, body: str, loop: str, error: str):
    """Its import fails: the sketch's file and line (a loop's: its def), what, and no 'failed to import'."""
    text = head + indent(dedent(body), "    ") + loop
    (project / "sketches").mkdir()
    (project / "sketches" / "lamp.py").write_text(text)
    rows = text.splitlines()
    here = [n for n, row in enumerate(rows, start=1) if row.rstrip().endswith("# here")]
    line = here[0] if here else next(n for n, row in enumerate(rows, start=1) if "def loop(" in row)  # its def
    with pytest.raises(SketchError) as caught:
        load("lamp", project / "grid.yaml")
    assert str(caught.value) == f"sketches/lamp.py:{line}: {error}"


# -- a node that is sent messages but has no loop() --------------------------------------------------------------

NO_LOOP = """\
from __future__ import annotations

from nodes import FactoryLoop, hears


class Lamp(FactoryLoop):
    @hears
    def heard(self, key: str, data: str) -> None:
        pass
"""


async def test_a_node_without_loop_says_so_once_and_its_senders_get_the_error(project: Path, caplog):
    """Wired to, with no loop(): one warning at start naming the sketch's class line; every sender gets an error
    saying so (a plain client here: `error: ...`), not `n/a`; the node goes on serving."""
    (project / "sketches").mkdir()
    (project / "sketches" / "lamp.py").write_text(NO_LOOP)
    cls = load("lamp", project / "grid.yaml")
    grid = build_grid({"pin": {"sketch": "iopin", "port": 0}, "lamp": {"sketch": "lamp", "port": 0}}, ["pin -> lamp"])
    node = Node(cls, "lamp", grid)
    caplog.set_level(logging.INFO, logger="mesh.lamp")
    await node.start()
    try:
        error = (
            "sketches/lamp.py:6: node 'lamp' has no loop(), so it takes no messages: "
            "give Lamp an '@reactive async def loop(self, channel, message)'"
        )
        async with connect(f"ws://{node.address}/", open_timeout=DEADLINE) as ws:
            for message in ("1", "0"):
                await ws.send(message)
                assert await ws.recv() == f"error: {error}"
    finally:
        await node.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        "sketches/lamp.py:6: Lamp has no loop(): what 'pin' sends gets an error; "
        "give it an '@reactive async def loop(self, channel, message)'"
    ]


async def test_a_node_without_loop_that_nobody_is_wired_to_says_so_at_the_first_message(project: Path, caplog):
    """Not wired to (a `send` finds it all the same): the first message's error is logged, once."""
    (project / "sketches").mkdir()
    (project / "sketches" / "lamp.py").write_text(NO_LOOP)
    node = Node(load("lamp", project / "grid.yaml"), "lamp", build_grid({"lamp": {"sketch": "lamp", "port": 0}}))
    await node.start()
    try:
        assert not caplog.records
        for _ in range(3):
            ok, why = await node.reactor.handle("", "1")
            assert not ok and "node 'lamp' has no loop()" in why
    finally:
        await node.stop()
    assert [r.levelno for r in caplog.records if "has no loop()" in r.getMessage()] == [logging.WARNING]


# -- the helpers ---------------------------------------------------------------------------------------------------


def test_our_own_frames_are_not_the_users(project: Path):
    """A class or function of ours has no user's line; a path below the working directory is shown relative."""
    assert class_at(Node) == ""
    assert defined_at(len) == ""
    assert shorten(str(project / "sketches" / "x.py")) == "sketches/x.py"
    assert shorten("/elsewhere/x.py") == "/elsewhere/x.py"
    assert described(KeyError("led")) == "KeyError: 'led'"
    assert described(RuntimeError()) == "RuntimeError"
