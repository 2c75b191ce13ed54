"""nodes.trace: kinds, names, same-instant spreading, byte-identical output, the bound, read back with pyvcd's reader."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from vcd.reader import TokenKind, tokenize

from nodes import trace
from nodes.trace import LIMIT, LONGEST, Trace, kind_of, safe_name


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        pytest.param(["1", "0", "1"], "bit", id="bits"),
        pytest.param(["1"], "bit", id="one-bit"),
        pytest.param(["1", "0", "2"], "integer", id="a-two"),
        pytest.param(["-3", "007", "9223372036854775807"], "integer", id="integers-within-64-bits"),
        pytest.param(["9223372036854775808"], "real", id="past-64-bits"),
        pytest.param(["-9223372036854775808"], "integer", id="most-negative"),
        pytest.param(["1", "2.5"], "real", id="a-fraction"),
        pytest.param(["1e3", "-.5", "3."], "real", id="reals"),
        pytest.param(["1e999"], "string", id="infinite"),
        pytest.param(["nan"], "string", id="nan"),
        pytest.param(["inf"], "string", id="inf"),
        pytest.param(["+1"], "string", id="plus"),
        pytest.param([" 1"], "string", id="space"),
        pytest.param(["1_000"], "string", id="underscore"),
        pytest.param(["\u0661"], "string", id="arabic-digit"),
        pytest.param(["1", "buzz buzz buzz"], "string", id="text"),
        pytest.param([""], "string", id="empty-payload"),
        pytest.param([], "string", id="nothing"),
        pytest.param(["1" * (LONGEST + 1)], "string", id="too-long-to-be-a-number"),
    ],
)
def test_kind_of(values: list[str], kind: str) -> None:
    """kind_of: 0/1 a bit, integers within 64 bits an integer, finite numbers a real, anything else a string."""
    assert kind_of(values) == kind
    assert kind_of(iter(values)) == kind  # any iterable, once


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("pin", "pin"),
        ("$state", "_state"),
        ("clock->iopin", "clock__iopin"),
        ("a b\tc", "a_b_c"),
        ("température", "temp_rature"),
        ("1st", "_1st"),
        ("$end", "_end"),
        ("x[3]", "x_3_"),
        ("a.b", "a_b"),
        ("", "_"),
    ],
)
def test_safe_name(text: str, name: str) -> None:
    """A scope or variable name keeps ASCII letters, digits and _, and never starts with a digit."""
    assert safe_name(text) == name


def read(path: Path) -> tuple[dict[str, tuple[str, str]], dict[str, list[tuple[int, object]]], list[str]]:
    """The file read back with pyvcd's reader: {full name: (id, type)}, {id: [(time, value)]}, comments."""
    names: dict[str, tuple[str, str]] = {}
    changes: dict[str, list[tuple[int, object]]] = {}
    comments: list[str] = []
    scope: list[str] = []
    now = 0
    with path.open("rb") as stream:
        for token in tokenize(stream):
            if token.kind is TokenKind.SCOPE:
                scope.append(token.scope.ident)
            elif token.kind is TokenKind.UPSCOPE:
                scope.pop()
            elif token.kind is TokenKind.VAR:
                var = token.var
                names[".".join([*scope, var.reference])] = (var.id_code, var.type_.value)
            elif token.kind is TokenKind.COMMENT:
                comments.append(token.comment)
            elif token.kind is TokenKind.CHANGE_TIME:
                now = token.time_change
            elif token.kind in (
                TokenKind.CHANGE_SCALAR,
                TokenKind.CHANGE_VECTOR,
                TokenKind.CHANGE_REAL,
                TokenKind.CHANGE_STRING,
            ):
                change = token.data
                changes.setdefault(change.id_code, []).append((now, change.value))
    return names, changes, comments


def history(path: Path, name: str) -> list[tuple[int, object]]:
    names, changes, _ = read(path)
    return changes.get(names[name][0], [])


def test_one_tick_in_virtual_time_is_spread_a_microsecond_apart(tmp_path: Path) -> None:
    """Three bits at one instant land at t, t+1 us, t+2 us, in order; the next instant is where it says."""
    path = tmp_path / "out.vcd"
    with Trace(path) as recorded:
        recorded.publication(1.0, "clock/tick", "1")
        for bit in ("1", "0", "1"):
            recorded.publication(1.0, "iopin/pin", bit)
        recorded.publication(2.0, "iopin/pin", "0")
    assert history(path, "iopin.pin") == [
        (0, "x"),
        (1_000_001, "1"),
        (1_000_002, "0"),
        (1_000_003, "1"),
        (2_000_000, "0"),
    ]
    assert history(path, "clock.tick") == [(0, "x"), (1_000_000, "1")]


def test_a_change_is_never_placed_before_the_one_before_it(tmp_path: Path) -> None:
    """Crowded instants push later ones along, and a time that goes back is taken as the next microsecond."""
    path = tmp_path / "out.vcd"
    with Trace(path) as recorded:
        for t, value in [(0.0, 1), (0.0, 2), (0.000001, 3), (0.5, 4), (0.25, 5), (-1.0, 6)]:
            recorded.wire(t, "clock", "iopin", value)
    assert history(path, "wires.clock_to_iopin") == [
        (0, 1),
        (1, 2),
        (2, 3),
        (500_000, 4),
        (500_001, 5),
        (500_002, 6),
    ]


def test_kinds_become_variables_of_that_type(tmp_path: Path) -> None:
    """A 0/1 key is a 1-bit wire, integers an integer, numbers a real, text a string; a wire an integer."""
    path = tmp_path / "out.vcd"
    with Trace(path) as recorded:
        recorded.publication(0, "iopin/pin", "1")
        recorded.publication(0, "clock/tick", "-12")
        recorded.publication(0, "meter/volts", "3.25")
        recorded.publication(0, "buzzer/sound", "buzz buzz buzz")
        recorded.publication(0, "buzzer/sound", "...")
        recorded.wire(0, "iopin", "buzzer", 3)
    names, _, _ = read(path)
    assert {name: kind for name, (_, kind) in names.items()} == {
        "buzzer.sound": "string",
        "clock.tick": "integer",
        "iopin.pin": "wire",
        "meter.volts": "real",
        "wires.iopin_to_buzzer": "integer",
    }
    assert history(path, "clock.tick")[-1] == (1, 2**64 - 12)  # 64-bit two's complement, as VCD writes it
    assert history(path, "meter.volts") == [(0, 0.0), (2, 3.25)]
    assert history(path, "buzzer.sound") == [(0, ""), (3, r"buzz\x20buzz\x20buzz"), (4, "...")]
    assert history(path, "wires.iopin_to_buzzer") == [(0, "x"), (5, 3)]
    assert recorded.changes == 6


def test_hostile_keys_and_payloads_cannot_break_the_file(tmp_path: Path) -> None:
    """Odd names become plain identifiers (told apart when they collide); payloads are cut and escaped to ASCII."""
    path = tmp_path / "out.vcd"
    nasty = "a\nb $end \\ é\x07\u2028" + "z" * 300
    with Trace(path, comment="run of grid $end.yaml\nsecond line é") as recorded:
        recorded.publication(0, "x/$end", "1")
        recorded.publication(0, "x/_end", "0")
        recorded.publication(0, "x/ end", "1")
        recorded.publication(0, "n1/1 2", nasty)
        recorded.publication(0, "solo", "0")
        recorded.publication(0, "wires/a_to_b", "0")
        recorded.wire(0, "a", "b", 1)
    text = path.read_bytes()
    text.decode("ascii")  # every byte ASCII
    names, changes, comments = read(path)
    assert sorted(names) == ["_.solo", "n1._1_2", "wires.a_to_b", "wires.a_to_b_2", "x._end", "x._end_2", "x._end_3"]
    assert names["wires.a_to_b"][1] == "wire" and names["wires.a_to_b_2"][1] == "integer"  # keys before wires
    [(_, value)] = [change for change in changes[names["n1._1_2"][0]] if change[1]]
    expected = (nasty[:LONGEST] + "...").encode("unicode_escape").decode("ascii")
    assert value == expected.replace("\\", "\\\\").replace(" ", "\\x20")
    assert comments == ["\trun of grid $ end.yaml\n\tsecond line \\xe9"]


def scripted(recorded: Trace) -> None:
    for tick in range(50):
        recorded.publication(tick * 0.1, "clock/tick", str(tick))
        recorded.wire(tick * 0.1, "clock", "iopin", 1)
        for bit in ("1", "0", "1"):
            recorded.publication(tick * 0.1, "iopin/pin", bit)
        recorded.publication(tick * 0.1, "buzzer/sound", "buzz buzz buzz")
        recorded.wire(tick * 0.1 + 0.01, "clock", "iopin", 0)


def test_the_same_calls_give_the_same_bytes(tmp_path: Path) -> None:
    """Two traces of the same calls are byte-identical (no date unless given); a date given is written."""
    digests = []
    for run in ("a", "b"):
        with Trace(tmp_path / f"{run}.vcd") as recorded:
            scripted(recorded)
        digests.append(hashlib.sha256((tmp_path / f"{run}.vcd").read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    assert b"$date" not in (tmp_path / "a.vcd").read_bytes()
    with Trace(tmp_path / "dated.vcd", date="2026-01-02 03:04:05") as recorded:
        scripted(recorded)
    assert b"$date 2026-01-02 03:04:05 $end" in (tmp_path / "dated.vcd").read_bytes()


def test_past_the_limit_changes_are_counted_and_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past LIMIT nothing more is kept (nor declared); the header says how many were dropped."""
    monkeypatch.setattr(trace, "LIMIT", 5)
    path = tmp_path / "out.vcd"
    with Trace(path) as recorded:
        for n in range(8):
            recorded.publication(n, "clock/tick", str(n))
        recorded.publication(9, "late/key", "1")
        recorded.wire(9, "a", "b", 1)
    assert (len(recorded.recorded), recorded.dropped) == (5, 5)
    names, _, comments = read(path)
    assert list(names) == ["clock.tick"]
    assert [value for _, value in history(path, "clock.tick")] == [0, 1, 2, 3, 4]  # the first in $dumpvars, at 0
    assert comments == ["5 changes dropped: a trace keeps at most 5"]
    assert LIMIT == 1_000_000


def test_close_is_idempotent_and_a_closed_trace_takes_nothing(tmp_path: Path) -> None:
    """close() twice writes once; a change after it is refused; an empty trace is still a valid file."""
    path = tmp_path / "out.vcd"
    recorded = Trace(path)
    recorded.close()
    first = path.read_bytes()
    recorded.close()
    assert path.read_bytes() == first
    assert read(path) == ({}, {}, [])
    with pytest.raises(ValueError, match="is closed"):
        recorded.publication(0, "a/b", "1")


@pytest.mark.parametrize(
    "where",
    [
        pytest.param(lambda tmp: tmp / "missing" / "out.vcd", id="no-folder"),
        pytest.param(lambda tmp: tmp, id="a-folder"),
    ],
)
def test_a_path_that_cannot_be_written_fails_at_once(tmp_path: Path, where: Callable[[Path], Path]) -> None:
    """The file is opened when the trace is made: a bad path is an OSError before anything runs."""
    with pytest.raises(OSError):
        Trace(where(tmp_path))
