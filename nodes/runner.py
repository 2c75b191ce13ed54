"""Running nodes as a program: signals in, a clean stop out.

From the moment a run begins (:func:`run_until_signalled`) until the process ends
(:func:`finish`), SIGINT and SIGTERM have one answer:

- the first asks every node of the run to stop (periodic tasks, then in-flight
  ``loop()`` calls, then connections closed with 1001), and the program exits 0;
- under a wrapper that passes signals on to its process group (``timeout``), the same
  signal again within :data:`PASSED_ON` seconds is that one signal passed on, and counts
  once. ``timeout(1)`` sends its signal to the process and then to its whole group, and
  passes a signal it receives on twice the same way: a signal sent to a group holding
  ``timeout`` reached the node three times, up to 20 ms apart on a loaded machine;
- any other signal after the first exits at once with 1 and one line saying so, wherever
  the process is: stopping, tearing down the event loop, or about to exit.

A wrapper is recognised by being our parent and in our process group: a shell with job
control gives each job a group of its own, honcho a session to each node, and a test its
own session to each process, so there a second signal always counts, however soon. No
time window alone could tell: a script that sends a second signal as soon as it reads
``stopping`` is quicker than ``timeout``'s copies can be. (``sigwaitinfo`` would name the
sender, but needs the signals blocked in every thread, and a mask is inherited across
``exec``: every program a sketch started would be deaf to Ctrl-C.)

Why not ``loop.add_signal_handler``: its handlers go when the loop closes
(``remove_signal_handler`` puts back ``SIG_DFL``), and interpreter shutdown resets every
Python handler to ``SIG_DFL`` about 40 ms before the process is gone (module teardown). A
signal in either window killed the node by that signal, with no word. The handler here is
installed once and never removed, and :func:`finish` ends the process itself once the
command is done (exit handlers run, output flushed, ``os._exit``).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import NoReturn

from .circuit import run_together
from .node import Node
from .reload import GridSource, GridWatch

__all__ = ["PASSED_ON", "SIGNALS", "finish", "run_until_signalled"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
#: Seconds within which a wrapper's copies of the first signal arrive (at most ~20 ms seen).
PASSED_ON = 0.1


class _Signals:
    """The process's one answer to SIGINT and SIGTERM (signals belong to the process, not to a node)."""

    def __init__(self) -> None:
        self.installed = False
        self.first: signal.Signals | None = None
        self.first_at = 0.0
        self.log = logging.getLogger("mesh")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_first: Callable[[signal.Signals], None] | None = None

    def attach(
        self, loop: asyncio.AbstractEventLoop, on_first: Callable[[signal.Signals], None], log: logging.Logger
    ) -> None:
        """Hand the first signal to ``on_first``, in ``loop``, from now until :meth:`detach`."""
        self._loop, self._on_first, self.log = loop, on_first, log
        if not self.installed:  # for the life of the process: never removed
            for sig in SIGNALS:
                signal.signal(sig, self._handle)  # asyncio.run's own SIGINT handler goes with it
            self.installed = True
        if self.first is not None:  # already asked to stop: stop this run too
            loop.call_soon(self._dispatch, on_first, self.first)

    def detach(self) -> None:
        """The run is over: a first signal from now on has nothing left to stop."""
        self._loop = self._on_first = None

    def _handle(self, signum: int, frame: object) -> None:
        self.arrived(signal.Signals(signum))

    def arrived(self, sig: signal.Signals) -> None:
        """What ``sig`` means now (in the main thread, between two bytecodes of whatever it interrupted)."""
        now = time.monotonic()
        if self.first is None:
            self.first, self.first_at = sig, now
            if self._loop is not None and self._on_first is not None:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the run is over
                    self._loop.call_soon_threadsafe(self._dispatch, self._on_first, sig)
            return
        if sig == self.first and now - self.first_at < PASSED_ON and under_a_wrapper():
            return  # the first one, passed on by timeout or the like
        self.exit_now(sig)

    def _dispatch(self, on_first: Callable[[signal.Signals], None], sig: signal.Signals) -> None:
        if on_first is self._on_first:  # still the run it was meant for
            on_first(sig)

    def exit_now(self, sig: signal.Signals) -> NoReturn:
        say_now(self.log, logging.WARNING, f"{sig.name} again: exiting now")
        os._exit(1)


def under_a_wrapper() -> bool:
    """Whether our parent is in our process group: a wrapper such as ``timeout``, which passes signals on to it."""
    try:
        return os.getpgid(os.getppid()) == os.getpgrp()
    except OSError:  # the parent is gone
        return False


_signals = _Signals()


def say_now(log: logging.Logger, level: int, text: str) -> None:
    """Log one line straight to the handlers' file descriptors, bypassing their buffers and locks.

    Safe in a signal handler: the code it interrupted may be halfway through writing to
    the same stream, and a buffered writer entered twice raises instead of writing.
    """
    if not log.isEnabledFor(level):
        return
    record = log.makeRecord(log.name, level, __file__, 0, text, (), None)
    written = False
    for handler in logging.getLogger().handlers:
        stream = getattr(handler, "stream", None)
        try:
            fd = stream.fileno() if stream is not None else None
        except (OSError, ValueError):
            fd = None
        if fd is None or record.levelno < handler.level:
            continue
        written = _write_soon(fd, handler.format(record)) or written
    if not written:
        _write_soon(2, f"{log.name}: {text}")


def _write_soon(fd: int, line: str) -> bool:
    """Write ``line`` to ``fd`` unless it cannot take it within a tenth of a second (a full pipe nobody reads)."""
    with contextlib.suppress(OSError, ValueError):
        if select.select([], [fd], [], 0.1)[1]:
            os.write(fd, (line + "\n").encode(errors="replace"))
            return True
    return False


async def run_until_signalled(
    *nodes: Node, log: logging.Logger | None = None, source: GridSource | None = None
) -> None:
    """Run ``nodes`` (of one grid) until they are done or SIGINT/SIGTERM arrives; a second signal exits at once.

    One node runs as :meth:`Node.run` does; several open together and stop together
    (:func:`nodes.circuit.run_together`). Given a ``source``, one watcher follows the grid
    file's edits for all of them (:class:`nodes.reload.GridWatch`). The second-signal rule
    holds until the process ends, not only while the event loop runs: a program that runs
    nodes ends with :func:`finish`. ``log`` says the "exiting now" line and the watcher's
    (the node's own logger for one node).
    """
    if not nodes:
        raise ValueError("no node to run")
    loop = asyncio.get_running_loop()
    log = log or nodes[0].log

    def on_first(sig: signal.Signals) -> None:
        for node in nodes:
            node.log.info("stopping (%s)", sig.name)
            node.request_stop()

    _signals.attach(loop, on_first, log)
    watching = None if source is None else asyncio.create_task(GridWatch(source, nodes, log).run(), name="grid watch")
    try:
        if len(nodes) == 1:
            await nodes[0].run()
        else:
            await run_together(nodes)
    finally:
        _signals.detach()
        if watching is not None:
            watching.cancel()


def finish(code: int | str | None) -> NoReturn:
    """End the process with ``code`` (as ``sys.exit`` takes it), answering SIGINT/SIGTERM to the very end.

    Where no node ran, this is ``sys.exit(code)``. After a run, the process ends itself
    rather than through interpreter shutdown, which puts ``SIG_DFL`` back well before it is
    done: exit handlers run (coverage's, logging's), stdout and stderr are flushed, and
    ``os._exit`` ends it, the handler answering until then.
    """
    if not _signals.installed:
        raise SystemExit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        print(code, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(status)
