"""The watch: a node notices, and says, when sketch code blocks its event loop.

An Arduino sketch waits with ``delay()``; a sketch here that waits with
``time.sleep()`` (or spins, or calls a blocking library) stops the whole node:
no ack, no keepalive pong, no status, and nothing in the log, since the loop that
would log is the one that is stuck. A :class:`Watch` times every *step* of
sketch code (the stretch a coroutine runs between two awaits, or a plain call)
and warns:

- after a step longer than :data:`THRESHOLD` (0.1 s), on the event loop:
  ``loop() blocked the event loop for 0.50 s: use 'await asyncio.sleep()', not 'time.sleep()'``;
- while a step is still running past :data:`STALL` (0.5 s), from a watchdog
  thread, because the loop itself cannot: ``loop() has been blocking the event
  loop for 0.5 s so far, at sketches/sleepy.py:12: time.sleep(5): ...``. The
  thread reads the loop thread's stack to name the line that blocks.

Warnings do not flood: after one, further blocks are counted for :data:`QUIET`
seconds and then told in one line (how many, the longest). Each line is marked as measured
in wall-clock time (:data:`WALL_CLOCK`): a simulation shows them apart from its log, whose
time is virtual and whose bytes must not depend on how busy the machine was.

A step is timed by driving the sketch's coroutine by hand (:meth:`Watch.run`,
``send``/``throw`` on its ``__await__``, as ``await`` does), so the cost on the
message path is two ``perf_counter()`` calls and a tuple per step, no task and
no thread hop. Steps nest: when watched code awaits watched code (``subscribe:``
handing topics to ``loop()``), the innermost step is the one named and its time
is counted once.

One watchdog thread per process serves every started watch (``Node.open`` starts
its node's, ``Node.stop`` stops it); it ends when the last watch stops.

It runs past 400 lines and stays one module: the step timing on the loop and the watchdog
thread read and write the same slots, and their agreement reads best whole.
"""

from __future__ import annotations

import inspect
import io
import linecache
import logging
import sys
import threading
import tokenize
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from time import perf_counter
from typing import Any, TypeVar

from .blame import LIBRARY_DIRS, shorten

__all__ = ["POLL", "POLL_BUSY", "QUIET", "STALL", "THRESHOLD", "WALL_CLOCK", "Watch"]

T = TypeVar("T")

#: Seconds one step of sketch code may run before it is reported as blocking.
THRESHOLD = 0.1
#: Seconds a step may run before the watchdog reports it, while it still runs.
STALL = 0.5
#: Seconds after a warning during which further blocks are only counted.
QUIET = 10.0
#: Seconds between two looks of the watchdog thread while no sketch code is running at a look.
POLL = 0.1
#: Seconds between two looks while some is: a block is sampled (its line named) soon past THRESHOLD.
POLL_BUSY = 0.025
#: What every line of the watch carries (``record.wall_clock``): it measures wall-clock time, so a
#: simulation, whose log is in virtual time, shows these lines apart (cli/simulate.py).
WALL_CLOCK = {"wall_clock": True}

_SLEEP_FIX = "use 'await asyncio.sleep()', not 'time.sleep()'"
_GENERAL_FIX = (
    "use 'await asyncio.sleep()', not 'time.sleep()'; run a blocking call with 'await asyncio.to_thread(...)'"
)
_BLOCKING_FIX = "run a blocking call with 'await asyncio.to_thread(...)', and split long computations"
Step = tuple[str, float, "Watch"]  # (what runs, when it started (perf_counter), whose watch)


class _Slot:
    """The step of sketch code running now on one thread (the innermost), or None.

    Every started watch of a thread writes its steps here, so the watchdog looks at one
    slot per thread, not at every node: its cost does not grow with the nodes of a process
    (bench/NOTES.md). One thread runs one step at a time, so steps of several watches nest
    as a watch's own do. Written by the loop, read by the watchdog.
    """

    __slots__ = ("step",)

    def __init__(self) -> None:
        self.step: Step | None = None


class Watch:
    """Times one node's sketch code on its event loop; warns, once in a while, when it blocks."""

    def __init__(
        self, log: logging.Logger, *, threshold: float = THRESHOLD, stall: float = STALL, quiet: float = QUIET
    ) -> None:
        self.log = log
        self.threshold = threshold
        self.stall = stall
        self.quiet = quiet
        #: Where this watch's steps are written: its own until it starts, then its thread's (see :class:`_Slot`).
        self._slot = _Slot()
        #: Steps that blocked longer than ``threshold``, and the longest, over the watch's life.
        self.blocked = 0
        self.longest = 0.0
        self._lock = threading.Lock()  # the warning state below, shared with the watchdog thread
        self._warned: float | None = None  # perf_counter of the last warning
        self._unsaid = 0  # blocks counted since then, not yet told
        self._unsaid_longest = 0.0
        self._unsaid_what = ""
        self._stalled: float | None = None  # start of the step the watchdog reported
        self._sampled: tuple[float, str] | None = None  # (start of a step, where it blocked)
        self._thread_id: int | None = None

    # -- on the event loop ----------------------------------------------------------

    @types.coroutine
    def run(self, coroutine: Coroutine[Any, Any, T] | Generator[Any, Any, T], what: str) -> Generator[Any, Any, T]:
        """``await watch.run(coroutine, "loop()")``: await it, timing each of its steps."""
        send, throw = coroutine.send, coroutine.throw
        value: Any = None
        error: BaseException | None = None
        threshold = self.threshold
        while True:
            slot = self._slot
            outer = slot.step
            start = perf_counter()
            slot.step = (what, start, self)
            finished = False
            try:
                future = send(value) if error is None else throw(error)
            except StopIteration as stop:
                # Only its value is kept: a local holding the exception would be a cycle (its traceback
                # holds this frame), freed by the garbage collector only, a dozen objects per step.
                finished, future = True, stop.value
            except BaseException:
                self._end(slot, outer, perf_counter())
                raise
            end = perf_counter()
            if outer is not None or end - start > threshold:
                self._end(slot, outer, end)
            else:
                slot.step = None  # the common case, kept cheap: nothing to tell
            if finished:
                return future
            try:
                value, error = (yield future), None
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:  # a cancellation, say: it goes to the sketch's code
                value, error = None, exc

    def time(self, what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``function(*args, **kwargs)``, timed as one step."""
        slot = self._slot
        outer = slot.step
        slot.step = (what, perf_counter(), self)
        try:
            return function(*args, **kwargs)
        finally:
            self._end(slot, outer, perf_counter())

    def step(self, what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call sketch code that may be sync or async: its value if it is plain, else an awaitable of it,
        every step timed. No coroutine of ours for a plain method (a topic handler, a sync ``@every``)."""
        result = self.time(what, function, *args, **kwargs)
        if result is not None and inspect.isawaitable(result):  # (None first: an ABC check costs more)
            return self.run(_steps(result), what)
        return result

    async def call(self, what: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call sketch code that may be sync or async; every step of it timed."""
        result = self.step(what, function, *args, **kwargs)
        if result is not None and inspect.isawaitable(result):
            result = await result
        return result

    def _end(self, slot: _Slot, outer: Step | None, end: float) -> None:
        step = slot.step
        # The outer step goes on from now: the inner one's time is not counted twice.
        slot.step = None if outer is None else (outer[0], end, outer[2])
        if step is not None and end - step[1] > self.threshold:
            step[2]._blocked(step[0], step[1], end - step[1])

    def _blocked(self, what: str, start: float, seconds: float) -> None:
        """A step took ``seconds``: warn, or count it for the next warning."""
        now = perf_counter()
        with self._lock:
            self.blocked += 1
            self.longest = max(self.longest, seconds)
            where = self._sampled[1] if self._sampled is not None and self._sampled[0] == start else None
            if self._stalled == start:  # the watchdog told it while it ran: tell how long it lasted
                self._warned = now
                line: tuple[Any, ...] = ("%s blocked the event loop for %.2f s in all", what, seconds)
            elif self._warned is None or now - self._warned >= self.quiet:
                self._warned = now
                line = (
                    "%s blocked the event loop for %.2f s%s: %s%s",
                    what,
                    seconds,
                    f", at {where}" if where else "",
                    _fix(where),
                    self._unsaid_note(),
                )
            else:
                self._count(what, seconds)
                return
        self.log.warning(*line, extra=WALL_CLOCK)

    # -- the watchdog's side ----------------------------------------------------------

    def start(self) -> None:
        """Have the watchdog thread look at this watch (call it from the event loop's thread).

        From here on the watch writes its steps to its thread's slot, where the watchdog looks.
        """
        self._thread_id = threading.get_ident()
        self._slot = _thread_slot()
        _WATCHDOG.add(self)

    def stop(self) -> None:
        """No more looking; blocks counted but not yet told are told now."""
        _WATCHDOG.discard(self)
        with self._lock:
            if not self._unsaid:
                return
            line = self._summary()
        self.log.warning(*line, extra=WALL_CLOCK)

    def look(self, now: float, step: Step | None) -> None:
        """From the watchdog thread: report ``step`` (this watch's, running now) if it blocks for long,
        or blocks counted for long."""
        line: tuple[Any, ...] | None = None
        with self._lock:
            if step is not None and now - step[1] > self.threshold:
                what, start, _ = step
                if self._sampled is None or self._sampled[0] != start:
                    self._sampled = (start, self._where() or "")
                if now - start >= self.stall and self._stalled != start:
                    if self._warned is None or now - self._warned >= self.quiet:
                        self._stalled, self._warned = start, now
                        where = self._sampled[1]
                        line = (
                            "%s has been blocking the event loop for %.1f s so far%s: %s",
                            what,
                            now - start,
                            f", at {where}" if where else "",
                            _fix(where),
                        )
            if line is None and self._unsaid and self._warned is not None and now - self._warned >= self.quiet:
                line = self._summary()
        if line is not None:
            self.log.warning(*line, extra=WALL_CLOCK)

    def _where(self) -> str | None:
        """``file:line: source`` of the innermost frame of the loop's thread outside Python's own modules."""
        if self._thread_id is None:
            return None
        frame = sys._current_frames().get(self._thread_id)
        while frame is not None:
            filename = frame.f_code.co_filename
            if not filename.startswith(LIBRARY_DIRS) and not filename.startswith("<") and filename != __file__:
                source = _code(linecache.getline(filename, frame.f_lineno).strip())
                return f"{shorten(filename)}:{frame.f_lineno}" + (f": {source}" if source else "")
            frame = frame.f_back
        return None

    # -- counting ------------------------------------------------------------------

    def _count(self, what: str, seconds: float) -> None:
        if not self._unsaid:
            _WATCHDOG.tell_later(self)
        self._unsaid += 1
        if seconds >= self._unsaid_longest:
            self._unsaid_longest, self._unsaid_what = seconds, what

    def _unsaid_note(self) -> str:
        if not self._unsaid:
            return ""
        note = f" ({self._unsaid} more since the last warning, the longest {self._unsaid_longest:.2f} s)"
        self._unsaid = 0
        self._unsaid_longest = 0.0
        return note

    def _summary(self) -> tuple[Any, ...]:
        line = (
            "sketch code blocked the event loop %d more time(s) since the last warning, the longest %.2f s (%s): %s",
            self._unsaid,
            self._unsaid_longest,
            self._unsaid_what,
            _GENERAL_FIX,
        )
        self._warned = perf_counter()
        self._unsaid = 0
        self._unsaid_longest = 0.0
        return line


def _fix(where: str | None) -> str:
    """What to do instead, as far as the line that blocked tells."""
    if where is None or "sleep(" in where:
        return _SLEEP_FIX if where else _GENERAL_FIX
    return _BLOCKING_FIX


def _steps(awaitable: Awaitable[T]) -> Generator[Any, Any, T]:
    """The iterator behind ``await awaitable`` (a coroutine is its own)."""
    if inspect.iscoroutine(awaitable):
        return awaitable  # type: ignore[return-value]
    return awaitable.__await__()


_THREAD = threading.local()


def _thread_slot() -> _Slot:
    """This thread's slot, shared by every watch started on it."""
    slot: _Slot | None = getattr(_THREAD, "slot", None)
    if slot is None:
        slot = _THREAD.slot = _Slot()
    return slot


class _Watchdog:
    """The one thread of a process that looks, every :data:`POLL` seconds, at the slot of each thread
    with a started watch, and at the watches with blocks not yet told (every :data:`POLL_BUSY` while a
    step of sketch code was running at the last look: idle nodes cost few looks, a block is sampled in time).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watches: set[Watch] = set()
        self._slots: dict[_Slot, int] = {}  # each looked-at slot: how many started watches write to it
        self._unsaid: set[Watch] = set()  # started watches that counted blocks not yet told
        self._looked: tuple[tuple[_Slot, ...], tuple[Watch, ...]] = ((), ())  # copied again only after a change
        self._changed = False
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def add(self, watch: Watch) -> None:
        with self._lock:
            if watch in self._watches:
                return
            self._watches.add(watch)
            self._slots[watch._slot] = self._slots.get(watch._slot, 0) + 1
            self._changed = True
            if self._thread is None:
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._stop,), name="arduino-mesh watchdog", daemon=True
                )
                self._thread.start()

    def discard(self, watch: Watch) -> None:
        with self._lock:
            if watch not in self._watches:
                return
            self._watches.discard(watch)
            self._unsaid.discard(watch)
            left = self._slots.pop(watch._slot, 1) - 1
            if left:
                self._slots[watch._slot] = left
            self._changed = True
            if self._watches or self._thread is None:
                return
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not threading.current_thread():
            thread.join()

    def tell_later(self, watch: Watch) -> None:
        """``watch`` counted a block it did not tell: look at it until it has."""
        with self._lock:
            if watch in self._watches:
                self._unsaid.add(watch)
                self._changed = True

    def _run(self, stop: threading.Event) -> None:
        busy = False
        while not stop.wait(POLL_BUSY if busy else POLL):
            now = perf_counter()
            busy = False
            if self._changed:  # a copy per look, not per change: 10,000 nodes start without 10,000 copies
                with self._lock:
                    self._looked, self._changed = (tuple(self._slots), tuple(self._unsaid)), False
            slots, unsaid = self._looked
            for slot in slots:
                step = slot.step
                if step is not None:
                    busy = True
                    self._look(step[2], now, step)
            for watch in unsaid:
                if watch._unsaid:
                    self._look(watch, now, None)
                else:
                    with watch._lock:  # as _count holds it: a block counted meanwhile keeps the watch looked at
                        if not watch._unsaid:
                            with self._lock:
                                self._unsaid.discard(watch)
                                self._changed = True

    @staticmethod
    def _look(watch: Watch, now: float, step: Step | None) -> None:
        try:
            watch.look(now, step)
        except Exception:  # a watchdog that dies would hide every block after
            logging.getLogger("mesh").exception("the watchdog failed")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


_WATCHDOG = _Watchdog()


def _code(line: str) -> str:
    """One source line without its comment: ``time.sleep(2)  # delay`` -> ``time.sleep(2)``."""
    try:
        for token in tokenize.generate_tokens(io.StringIO(line).readline):
            if token.type == tokenize.COMMENT:
                return line[: token.start[1]].rstrip()
    except (tokenize.TokenError, SyntaxError):  # a line of a longer statement: shown as it is
        pass
    return line
