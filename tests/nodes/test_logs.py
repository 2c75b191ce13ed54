"""How nodes' lines read: one node's ``[ name ]``, and ``up``'s honcho-like prefix for several."""

from __future__ import annotations

import logging
import sys
import time

from nodes.logs import NodeFormatter, PrefixFormatter


def record(name: str, level: int, text: str, *, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    made = logging.LogRecord(name, level, __file__, 1, text, (), exc_info)
    made.created = 0.0
    return made


def test_one_node_reads_name_then_text():
    """[ iopin ] text; a warning says so."""
    assert NodeFormatter().format(record("mesh.iopin", logging.INFO, "hello")) == "[ iopin ] hello"
    assert NodeFormatter().format(record("mesh.iopin", logging.WARNING, "careful")) == "[ iopin ] warning: careful"


def test_several_nodes_read_as_under_honcho():
    """Time, the name padded to the longest, a bar; every line of a traceback carries the prefix."""
    formatter = PrefixFormatter(["clock", "dashboard"])
    formatter.converter = time.gmtime
    assert formatter.format(record("mesh.clock", logging.INFO, "tick 1")) == "00:00:00 clock     | tick 1"
    lines = formatter.format(record("mesh.dashboard", logging.ERROR, "loop() failed", exc=True)).split("\n")
    assert lines[0] == "00:00:00 dashboard | error: loop() failed"
    assert lines[-1] == "00:00:00 dashboard | ValueError: boom"
    assert all(line.startswith("00:00:00 dashboard | ") for line in lines)


def test_colours_only_when_asked():
    """With colour, each name has its own colour around the prefix; the text itself is left alone."""
    formatter = PrefixFormatter(["clock", "iopin"], colour=True)
    clock = formatter.format(record("mesh.clock", logging.INFO, "tick"))
    iopin = formatter.format(record("mesh.iopin", logging.INFO, "pin"))
    assert clock.startswith("\033[36m") and clock.endswith("|\033[0m tick")
    assert iopin.startswith("\033[33m")
    assert "\033" not in PrefixFormatter(["clock"]).format(record("mesh.clock", logging.INFO, "tick"))
