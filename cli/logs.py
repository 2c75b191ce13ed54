"""How the command line shows what nodes log: one line per event, ``[ iopin ] message``, with secrets kept out.

Libraries log, applications configure: the nodes only log to ``mesh.<name>``; this module,
the command line's, chooses the format (one node's ``[ name ]``, ``up``'s honcho-like
prefix, ``simulate``'s simulated clock), the level, and what never reaches the terminal
(the mesh's token: :data:`REDACT`).

What a peer can make a node say goes through :func:`mesh.throttle.escape` (one printable
line) and, for warnings a peer can repeat at will, a :class:`~mesh.throttle.Throttle`.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from mesh.durations import shown

__all__ = [
    "REDACT",
    "ClockFormatter",
    "NodeFormatter",
    "PrefixFormatter",
    "Redact",
    "SimulationHandler",
    "SlimRecord",
    "configure_logging",
    "prefix_lines",
    "simulation_lines",
]

#: ANSI colours for the prefixes of ``up``, one per node in turn (as honcho's).
COLOURS = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")


def speaker(record: logging.LogRecord) -> str:
    """Who says the line: the node (``mesh.iopin`` is ``iopin``), or the library's logger."""
    return record.name[5:] if record.name.startswith("mesh.") else record.name


def said(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    """What the line says: ``warning: ``/``error: `` first where it is one, the traceback after."""
    level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
    text = f"{level}{record.getMessage()}"
    if record.exc_info:
        text += "\n" + formatter.formatException(record.exc_info)
    return text


class NodeFormatter(logging.Formatter):
    """``[ iopin ] message``; warnings and errors say so."""

    def format(self, record: logging.LogRecord) -> str:
        return f"[ {speaker(record)} ] {said(self, record)}"


class PrefixFormatter(logging.Formatter):
    """``16:20:01 iopin  | message``, as honcho prints each of its processes: one column of names, every line prefixed.

    Several nodes in one process (``arduino.py up``) read as they would under honcho. With
    ``colour``, each name of ``names`` has its colour, in turn.
    """

    def __init__(self, names: Sequence[str], *, colour: bool = False) -> None:
        super().__init__()
        self.width = max((len(name) for name in names), default=0)
        self.colours = {name: COLOURS[i % len(COLOURS)] for i, name in enumerate(names)} if colour else {}
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        who = speaker(record)
        prefix = f"{time.strftime('%H:%M:%S', self.converter(record.created))} {who:<{self.width}} |"
        if self.colour:
            prefix = f"\033[{self.colours.get(who, '0')}m{prefix}\033[0m"
        return "\n".join(f"{prefix} {line}" for line in said(self, record).split("\n"))


class ClockFormatter(PrefixFormatter):
    """``t=00:12:03.250 iopin  | message``: each line at the time ``clock()`` says (a simulation's).

    A simulated run logs the same bytes run after run: its time is virtual, and its nodes
    keep the addresses the grid gives them. The prefix of an instant and a node is made once:
    a simulation logs thousands of lines per second of wall time, most of them sharing one.
    """

    def __init__(self, names: Sequence[str], clock: Callable[[], float]) -> None:
        super().__init__(names)
        self.clock = clock
        self._now = -1.0
        self._shown = ""
        self._prefixes: dict[str, str] = {}

    def format(self, record: logging.LogRecord) -> str:
        now = self.clock()
        if now != self._now:
            self._now, self._shown, self._prefixes = now, shown(now), {}
        who = record.name
        prefix = self._prefixes.get(who)
        if prefix is None:
            prefix = self._prefixes[who] = f"t={self._shown} {speaker(record):<{self.width}} |"
        text = said(self, record)
        if "\n" not in text:
            return f"{prefix} {text}"
        return "\n".join(f"{prefix} {line}" for line in text.split("\n"))


class SimulationHandler(logging.Handler):
    """A simulation's lines to ``stream``, written in blocks; the lines measured in wall-clock time kept apart.

    A simulated hour logs tens of thousands of lines in seconds: each is formatted at once (its
    time is the simulation's now) and written with others, at most :data:`FLUSH_EVERY` seconds
    of wall time later (at once on :meth:`flush`). Lines marked ``wall_clock`` (the watch's: how
    long sketch code held the event loop, which depends on how busy the machine was) are kept in
    :attr:`aside`, for the command to show after the log, whose bytes they would otherwise change.
    ``before_write`` is called, under the handler's lock, before each block (a progress line erases
    itself there).
    """

    #: Seconds of wall time a line may wait before it is written.
    FLUSH_EVERY = 0.1

    def __init__(self, stream: TextIO, formatter: logging.Formatter) -> None:
        super().__init__()
        self.stream = stream
        self.setFormatter(formatter)
        self.aside: list[str] = []
        self.before_write: Callable[[], None] | None = None
        self._lines: list[str] = []
        self._written = time.perf_counter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        if getattr(record, "wall_clock", False):
            self.aside.append(line)
            return
        self._lines.append(line)
        if time.perf_counter() - self._written >= self.FLUSH_EVERY:
            self._write()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write()

    def _write(self) -> None:
        self._written = time.perf_counter()
        if not self._lines:
            return
        if self.before_write is not None:
            self.before_write()
        self._lines.append("")
        text, self._lines = "\n".join(self._lines), []
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # the reader went away (a pipe closed): nothing more to show
            pass

    def close(self) -> None:
        self.flush()
        super().close()


class Redact(logging.Filter):
    """Keep secrets out of every log line (the mesh's token, in a header or a query)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            for secret in self.secrets:
                text = text.replace(secret, "***")
            record.msg, record.args = text, None
        return True


REDACT = Redact()


class Unheeded(logging.Filter):
    """asyncio's "SSL connection is closed": writes on a TLS connection the peer has closed, before
    websockets hears of it. What they carried (acks, pubs) is re-sent or reported by the link; the
    line says nothing a user can act on, and a reconnect after an outage logs it dozens of times."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "SSL connection is closed"


UNHEEDED = Unheeded()


def configure_logging(level: str) -> None:
    """Log lines to stderr, one per event, as they happen."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(NodeFormatter())
    handler.addFilter(REDACT)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # The library's own chatter (retries, handshakes, every frame) is ours to say; with
    # --log-level debug it says its handshakes, not each frame.
    logging.getLogger("websockets").setLevel(logging.INFO if level == "debug" else logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.INFO)
    if UNHEEDED not in logging.getLogger("asyncio").filters:
        logging.getLogger("asyncio").addFilter(UNHEEDED)


class SlimRecord(logging.LogRecord):
    """A record of what a simulation's lines show, made without what they do not: the wall-clock time,
    the caller's file, the thread, the process (``logging.setLogRecordFactory``'s documented use)."""

    def __init__(
        self,
        name: str,
        level: int,
        pathname: str,
        lineno: int,
        msg: object,
        args: Any,
        exc_info: Any,
        func: str | None = None,
        sinfo: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.name = name
        self.msg = msg
        if args and len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
            args = args[0]
        self.args = args
        self.levelname = logging.getLevelName(level)
        self.levelno = level
        self.pathname = self.filename = pathname
        self.module = ""
        self.exc_info = exc_info
        self.exc_text = None
        self.stack_info = sinfo
        self.lineno = lineno
        self.funcName = func or ""
        self.created = self.msecs = self.relativeCreated = 0.0
        self.thread = self.process = None
        self.threadName = self.processName = self.taskName = None


def simulation_lines(names: Sequence[str], clock: Callable[[], float]) -> SimulationHandler:
    """From now on, log a simulation's lines (:class:`ClockFormatter`, :class:`SimulationHandler`) to stderr.

    What the lines carry costs nothing to gather: no wall-clock time, no caller's file and line,
    thread or process (:class:`SlimRecord`: the format shows none of them).
    """
    root = logging.getLogger()
    handler = SimulationHandler(sys.stderr, ClockFormatter(names, clock))
    handler.addFilter(REDACT)
    for old in list(root.handlers):
        if isinstance(old.formatter, NodeFormatter):
            root.removeHandler(old)
    root.addHandler(handler)
    logging._srcfile = None  # (the logging HOWTO's own way to skip findCaller)
    logging.setLogRecordFactory(SlimRecord)
    return handler


def prefix_lines(names: Sequence[str]) -> None:
    """From now on, log as :class:`PrefixFormatter` does, for ``names``; in colour on a terminal (unless ``NO_COLOR``)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, NodeFormatter):
            stream = getattr(handler, "stream", None)
            colour = stream is not None and stream.isatty() and not os.environ.get("NO_COLOR")
            handler.setFormatter(PrefixFormatter(names, colour=colour))
