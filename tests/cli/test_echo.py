"""``./arduino.py echo``: it says once that a publisher is down and once that it is back, and shows no system topic;
``--vcd FILE`` writes what it heard as a trace."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
from vcd.reader import TokenKind, tokenize

from cli.echo import Presence
from tests.helpers import arduino, run_arduino, shipped_grid_on_free_ports


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
    # The watch's lines measure wall time: on a loaded machine printing may "block" for 0.1 s.
    status = [line for line in lines if line.startswith("[ ") and "blocked the event loop" not in line]
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


def collapsed(values: list[int]) -> list[int]:
    """What a VCD keeps of a sequence of values: each change, repeats left out."""
    return [value for index, value in enumerate(values) if index == 0 or values[index - 1] != value]


def pin_changes(path: Path) -> tuple[str, list[tuple[int, str]]]:
    """The header's date and every change of ``iopin.pin`` (time in us, value) in the VCD at ``path``, read with pyvcd."""
    ident, date, scope, now = "", "", [], 0
    found: list[tuple[int, str]] = []
    with path.open("rb") as stream:
        for token in tokenize(stream):
            if token.kind is TokenKind.DATE:
                date = token.date
            elif token.kind is TokenKind.SCOPE:
                scope.append(token.scope.ident)
            elif token.kind is TokenKind.UPSCOPE:
                scope.pop()
            elif token.kind is TokenKind.VAR and [*scope, token.var.reference] == ["iopin", "pin"]:
                assert (token.var.type_.value, token.var.size) == ("wire", 1)
                ident = token.var.id_code
            elif token.kind is TokenKind.CHANGE_TIME:
                now = token.time_change
            elif token.kind is TokenKind.CHANGE_SCALAR and token.scalar_change.id_code == ident:
                found.append((now, token.scalar_change.value))
    return date, found


@pytest.mark.e2e
def test_echo_vcd_records_the_pins_transitions_as_the_iopin_logged_them(tmp_path: Path) -> None:
    """echo iopin/pin --vcd, stopped by Ctrl-C after 12 bits: the trace's pin is the iopin's logged bits, repeats
    collapsed, over the ticks echo heard; it says where the trace went."""
    grid = shipped_grid_on_free_ports(tmp_path)
    nodes = {name: arduino("--grid", grid, name) for name in ("buzzer", "iopin")}
    nodes["clock"] = arduino("--grid", grid, "clock", "--tacks", "0")
    for node in nodes.values():
        node.expect("serving on")
    out = tmp_path / "out.vcd"
    echo = arduino("--grid", grid, "echo", "iopin/pin", "--vcd", out)
    heard = [int(echo.expect(r"^iopin/pin ([01])$").group(1)) for _ in range(12)]
    echo.signal(signal.SIGINT)
    assert echo.wait() == 0
    nodes["iopin"].signal(signal.SIGTERM)  # every line it logged, up to the bits echo heard and past them
    assert nodes["iopin"].wait() == 0
    printed = [int(line.split()[1]) for line in echo.output().splitlines() if line.startswith("iopin/pin ")]
    assert printed[:12] == heard
    logged = [
        int(bit)
        for match in re.finditer(r"toggling pin state: \[([01](?:, [01])*)\]", nodes["iopin"].output())
        for bit in match.group(1).split(", ")
    ]
    assert any(logged[at : at + len(printed)] == printed for at in range(len(logged))), (printed, logged)
    date, changes = pin_changes(out)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [-+]\d{4}", date), date
    assert changes[0] == (0, "x")  # nothing known before the first bit echo heard
    assert [int(value) for _, value in changes[1:]] == collapsed(printed)
    times = [at for at, _ in changes]
    assert times == sorted(set(times)) and times[-1] < 60_000_000  # microseconds since echo started, in order
    summary = re.search(r"^\[ echo-\d+ \] trace written to (.+): (\d+) changes of 1 signals$", echo.output(), re.M)
    assert summary is not None, echo.output()
    assert (summary.group(1), int(summary.group(2))) == (str(out), len(collapsed(printed)))


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("where", "said"),
    [
        pytest.param("missing/out.vcd", "cannot write the trace to {path}: No such file or directory", id="no-folder"),
        pytest.param(".", "Invalid value for '--vcd': File '{path}' is a directory.", id="a-folder"),
    ],
)
def test_echo_vcd_to_a_file_that_cannot_be_written_fails_before_connecting(
    tmp_path: Path, where: str, said: str
) -> None:
    """A --vcd FILE that cannot be written is one line and exit 2, at once: no node of the grid is running."""
    grid = shipped_grid_on_free_ports(tmp_path)
    path = tmp_path / where
    result = run_arduino("--grid", grid, "echo", "#", "--vcd", path)
    assert (result.returncode, result.stdout) == (2, ""), result
    assert result.stderr.splitlines()[-1] == "Error: " + said.format(path=path), result.stderr
