"""``./arduino.py echo``: it says once that a publisher is down and once that it is back, and shows no system topic."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from cli.echo import Presence
from tests.helpers import arduino, shipped_grid_on_free_ports


@pytest.mark.parametrize(
    ("states", "said"),
    [
        pytest.param([{"a": "up"}], [[("a", "up")]], id="up-at-once"),
        pytest.param([{"a": "connecting"}, {"a": "up"}], [[], [("a", "up")]], id="connecting-then-up"),
        pytest.param(
            [{"a": "retrying"}, {"a": "retrying"}, {"a": "connecting"}, {"a": "retrying"}, {"a": "up"}],
            [[("a", "down")], [], [], [], [("a", "came")]],
            id="away-from-the-start-said-once",
        ),
        pytest.param(
            [{"a": "up"}, {"a": "connecting"}, {"a": "retrying"}, {"a": "up"}, {"a": "up"}],
            [[("a", "up")], [("a", "down")], [], [("a", "back")], []],
            id="down-and-back",
        ),
        pytest.param([{}, {"a": "idle"}], [[], []], id="not-talked-to-yet"),
        pytest.param(
            [{"a": "up", "b": "retrying"}, {"a": "retrying", "b": "retrying"}],
            [[("a", "up"), ("b", "down")], [("a", "down")]],
            id="each-node-its-own",
        ),
    ],
)
def test_presence_says_each_change_once(states: list[dict[str, str]], said: list[list[tuple[str, str]]]) -> None:
    """Presence.changes() reports a publisher's change of state once, however long it stays so."""
    presence = Presence(("a", "b"))
    assert [presence.changes(peers) for peers in states] == said


@pytest.mark.e2e
def test_echo_says_once_that_a_node_is_down_and_once_that_it_is_back(tmp_path: Path) -> None:
    """The shipped grid without its dashboard, the buzzer restarted: one line for each change, no link chatter,
    no $subscribers key, and messages all along."""
    grid = shipped_grid_on_free_ports(tmp_path)
    nodes = {name: arduino("--grid", grid, name) for name in ("buzzer", "iopin")}
    nodes["clock"] = arduino("--grid", grid, "clock", "--tacks", "0")
    for node in nodes.values():
        node.expect("serving on")
    echo = arduino("--grid", grid, "echo", "#")
    echo.expect(r"^\[ echo-\d+ \] dashboard is down \(nothing answers at ws://127\.0\.0\.1:\d+\); listening for it")
    echo.expect(r"^buzzer/sound ")
    nodes["buzzer"].signal(signal.SIGTERM)
    assert nodes["buzzer"].wait() == 0
    echo.expect(r"^\[ echo-\d+ \] buzzer is down \(nothing answers at ws://127\.0\.0\.1:\d+\)")
    nodes["buzzer"] = arduino("--grid", grid, "buzzer")
    echo.expect(r"^\[ echo-\d+ \] buzzer is back up \(ws://127\.0\.0\.1:\d+\)$")
    echo.expect(r"^buzzer/sound ")
    nodes["dashboard"] = arduino("--grid", grid, "dashboard")
    echo.expect(r"^\[ echo-\d+ \] dashboard is up \(ws://127\.0\.0\.1:\d+\)$")
    echo.expect(r"^clock/tick \d+$")  # still printing after all that
    echo.signal(signal.SIGINT)
    assert echo.wait() == 0
    lines = echo.output().splitlines()
    status = [line for line in lines if line.startswith("[ ")]
    assert [re.sub(r"^\[ echo-\d+ \] (\w+ is [\w ]+?) \(.*$", r"\1", line) for line in status] == [
        "dashboard is down",
        "buzzer is down",
        "buzzer is back up",
        "dashboard is up",
    ], status
    data = [line for line in lines if not line.startswith("[ ")]
    assert data and all(
        re.fullmatch(r"(clock/tick \d+|iopin/pin [01]|buzzer/sound (buzz buzz buzz|\.\.\.))", line) for line in data
    ), data
