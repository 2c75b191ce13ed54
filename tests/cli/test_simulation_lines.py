"""A simulation's lines: at their simulated time, written in blocks, the wall-clock ones set apart."""

from __future__ import annotations

import io
import logging

from cli.logs import ClockFormatter, SimulationHandler
from nodes.watch import WALL_CLOCK


def line(name: str, text: str, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, text, (), None)
    record.__dict__.update(extra)
    return record


def test_lines_read_at_their_simulated_time_and_are_written_in_blocks() -> None:
    now = [0.0]
    stream = io.StringIO()
    handler = SimulationHandler(stream, ClockFormatter(["clock", "iopin"], lambda: now[0]))
    handler.handle(line("mesh.clock", "tick 1"))
    now[0] = 723.25
    handler.handle(line("mesh.iopin", "a\nb", logging.WARNING))
    handler.handle(line("mesh.iopin", "again"))
    assert stream.getvalue() == ""  # within the block's time: not yet written
    handler.flush()
    assert stream.getvalue() == (
        "t=00:00:00.000 clock | tick 1\n"
        "t=00:12:03.250 iopin | warning: a\n"
        "t=00:12:03.250 iopin | b\n"
        "t=00:12:03.250 iopin | again\n"
    )


def test_lines_measured_in_wall_clock_time_are_kept_apart() -> None:
    stream = io.StringIO()
    handler = SimulationHandler(stream, ClockFormatter(["sleepy"], lambda: 1.0))
    handler.handle(line("mesh.sleepy", "nap() blocked the event loop for 0.30 s", logging.WARNING, **WALL_CLOCK))
    handler.close()
    assert stream.getvalue() == ""
    assert handler.aside == ["t=00:00:01.000 sleepy | warning: nap() blocked the event loop for 0.30 s"]


def test_a_reader_gone_away_is_no_error() -> None:
    stream = io.StringIO()
    handler = SimulationHandler(stream, ClockFormatter(["clock"], lambda: 0.0))
    stream.close()
    handler.handle(line("mesh.clock", "tick 1"))
    handler.flush()
