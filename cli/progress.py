"""A line at the bottom of a terminal that says how far a long run has come, redrawn as it goes; nothing when piped.

The line is redrawn from a thread of its own every :data:`EVERY` seconds of wall time (the
event loop of a simulation runs in virtual time: a timer there would fire at simulated
instants), under the log handler's lock: the handler erases it before it writes a block of
lines (:attr:`cli.logs.SimulationHandler.before_write`), and the next redraw puts it back
below them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TextIO

__all__ = ["EVERY", "Progress"]

#: Seconds of wall time between two redraws.
EVERY = 0.25
_ERASE = "\r\033[K"


class Progress:
    """``describe()`` shown on the last line of ``stream`` while running, if it is a terminal; ``with`` it.

    ``lock`` is shared with whatever else writes to ``stream`` (a logging handler's), so that a
    line is never drawn in the middle of another.
    """

    def __init__(self, stream: TextIO, describe: Callable[[], str], lock: threading.RLock | None = None) -> None:
        self.stream = stream
        self.describe = describe
        self.lock = lock or threading.RLock()
        self.shown = False
        self.enabled = _is_terminal(stream)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Progress:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="arduino-mesh progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self.lock:
            self.erase()

    def erase(self) -> None:
        """Take the line away (call it holding :attr:`lock`, before writing anything else)."""
        if self.shown:
            self.shown = False
            self._write(_ERASE)

    def draw(self) -> None:
        """Draw the line now, in place of the last one."""
        try:
            text = self.describe()
        except Exception:  # the run ended meanwhile, say: the next look tells
            return
        with self.lock:
            self.shown = True
            self._write(f"{_ERASE}{text}")

    def _run(self) -> None:
        while not self._stop.wait(EVERY):
            self.draw()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
