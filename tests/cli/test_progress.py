"""The progress line of a long run: drawn on a terminal and erased before log lines; nothing when piped."""

from __future__ import annotations

import io
import logging
import time

from cli.logs import ClockFormatter, SimulationHandler
from cli.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_nothing_when_piped() -> None:
    stream = io.StringIO()
    with Progress(stream, lambda: "simulated 00:00:01.000") as progress:
        assert not progress.enabled
        time.sleep(0.01)
    assert stream.getvalue() == ""


def test_on_a_terminal_the_line_is_drawn_in_place_and_erased_before_the_log_and_at_the_end() -> None:
    stream = Terminal()
    handler = SimulationHandler(stream, ClockFormatter(["clock"], lambda: 1.0))
    with Progress(stream, lambda: "simulated 00:00:01.000, 400x real time", handler.lock) as progress:
        handler.before_write = progress.erase
        progress.draw()
        handler.handle(logging.LogRecord("mesh.clock", logging.INFO, __file__, 1, "tick 2", (), None))
        handler.flush()
        progress.draw()
    assert stream.getvalue() == (
        "\r\033[Ksimulated 00:00:01.000, 400x real time"
        "\r\033[Kt=00:00:01.000 clock | tick 2\n"
        "\r\033[Ksimulated 00:00:01.000, 400x real time"
        "\r\033[K"
    )
