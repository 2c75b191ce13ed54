"""Sketch code that blocks the event loop is named in the log, and a grid's ``timeout:`` bounds one ``loop()``.

Real nodes on port 0 in this test's event loop, sketches with Arduino habits
(``time.sleep()`` in ``loop()``). A block that must last until the watchdog has
spoken is held by a threading.Event that a log handler sets when the line comes:
the test waits for the line, not for a time.
"""

# ruff: noqa: ASYNC251 -- time.sleep() in async code is the very habit under test

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from mesh.errors import RemoteError
from mesh.grid import build_grid
from mesh.requests import send_once
from nodes import FactoryLoop, every, reactive
from nodes.runtime import Node
from nodes.watch import STALL, THRESHOLD, Watch, _code
from tests.helpers import DEADLINE, MS, until

#: Long enough to be a block (THRESHOLD is 0.1 s) on any machine, short enough for a unit test.
BLOCK = 200 * MS
#: A stall time for the tests that wait for the watchdog: past BLOCK, shorter than STALL (0.5 s).
SHORT_STALL = 300 * MS
WATCHDOG = "arduino-mesh watchdog"


class Released(logging.Handler):
    """Sets ``released`` when a line matching ``pattern`` is logged (from any thread)."""

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)
        self.released = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.pattern.search(record.getMessage()):
            self.released.set()


@contextlib.contextmanager
def released_by(name: str, pattern: str) -> Iterator[threading.Event]:
    """An event set when node ``name`` logs a line matching ``pattern``."""
    handler = Released(pattern)
    logger = logging.getLogger(f"mesh.{name}")
    logger.addHandler(handler)
    try:
        yield handler.released
    finally:
        logger.removeHandler(handler)


class Sleepy(FactoryLoop):
    """An Arduino habit: delay() written as time.sleep() in loop()."""

    release: threading.Event | None = None

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        if message == "nap":
            time.sleep(BLOCK)
        elif message == "until released":
            deadline = time.monotonic() + DEADLINE
            while not Sleepy.release.is_set() and time.monotonic() < deadline:  # type: ignore[union-attr]
                time.sleep(10 * MS)
        elif message == "await":
            await asyncio.sleep(BLOCK)  # waiting the right way: no block
        elif message == "forever":
            await asyncio.Event().wait()
        elif message == "own timeout":
            await asyncio.wait_for(asyncio.Event().wait(), MS)
        return "awake"


def line_of(code: str) -> int:
    """The number of the first line of this file holding ``code``."""
    lines = Path(__file__).read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if code in line)


def grid_of(**spec: object):
    return build_grid({"sleepy": {"sketch": "sleepy", "port": 0, **spec}})


@pytest.fixture
async def sleepy():
    node = Node(Sleepy, "sleepy", grid_of())
    await node.open()
    try:
        yield node
    finally:
        await node.stop()


async def send(node: Node, text: str) -> str:
    return await send_once("sleepy", f"ws://{node.address}", "", text, within=DEADLINE)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name == "mesh.sleepy"]


def watchdogs() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == WATCHDOG]


async def test_a_time_sleep_in_loop_is_named_with_its_time_and_the_fix(sleepy, caplog):
    """loop() that sleeps 0.2 s: one warning naming loop(), the time, the line and the fix; the ack still comes."""
    assert await send(sleepy, "nap") == "awake"
    [line] = warnings(caplog)
    seconds = float(re.match(r"loop\(\) blocked the event loop for (\d+\.\d\d) s", line)[1])
    assert seconds >= BLOCK - MS
    assert line.endswith(
        f", at tests/nodes/test_watch.py:{line_of('time.sleep(BLOCK)')}: time.sleep(BLOCK): "
        "use 'await asyncio.sleep()', not 'time.sleep()'"
    )


async def test_awaiting_is_not_blocking(sleepy, caplog):
    """loop() that awaits asyncio.sleep() as long: not a word."""
    assert await send(sleepy, "await") == "awake"
    assert warnings(caplog) == []


async def test_a_long_block_is_reported_while_it_lasts(sleepy, caplog):
    """A loop() still blocking after its stall time is named by the watchdog at once, then its whole time once it ends."""
    sleepy.watch.stall = SHORT_STALL
    with released_by("sleepy", "so far") as said:
        Sleepy.release = said  # loop() blocks until the watchdog has spoken
        assert await send(sleepy, "until released") == "awake"
    assert said.is_set(), "the watchdog said nothing while loop() blocked"
    first, last = warnings(caplog)
    match = re.fullmatch(
        rf"loop\(\) has been blocking the event loop for (\d+\.\d) s so far, "
        rf"at tests/nodes/test_watch\.py:{line_of('time.sleep(10 * MS)')}: time\.sleep\(10 \* MS\): "
        r"use 'await asyncio\.sleep\(\)', not 'time\.sleep\(\)'",
        first,
    )
    assert match is not None, first
    assert float(match[1]) >= SHORT_STALL
    assert re.fullmatch(r"loop\(\) blocked the event loop for \d+\.\d\d s in all", last)


async def test_blocks_do_not_flood_the_log(sleepy, caplog):
    """Three blocks in a row: one warning, then, when the node stops, one line counting the other two."""
    for _ in range(3):
        assert await send(sleepy, "nap") == "awake"
    assert len(warnings(caplog)) == 1
    assert sleepy.watch.blocked == 3
    await sleepy.stop()
    _, summary = warnings(caplog)
    assert re.fullmatch(
        r"sketch code blocked the event loop 2 more time\(s\) since the last warning, the longest \d\.\d\d s \(loop\(\)\): "
        r"use 'await asyncio\.sleep\(\)', not 'time\.sleep\(\)'; run a blocking call with 'await asyncio\.to_thread\(\.\.\.\)'",
        summary,
    )


def test_after_a_quiet_spell_the_next_block_is_told_with_the_count():
    """Past the quiet spell, the next block warns again and says how many were only counted."""
    log = logging.getLogger("mesh.quiet")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    log.addHandler(handler)
    try:
        watch = Watch(log, threshold=MS, quiet=50 * MS)
        for _ in range(3):
            watch.time("loop()", time.sleep, 2 * MS)
        time.sleep(50 * MS)  # the quiet spell itself, not a wait for something
        watch.time("loop()", time.sleep, 2 * MS)
    finally:
        log.removeHandler(handler)
    assert len(records) == 2
    assert records[1].startswith("loop() blocked the event loop for 0.0")
    assert re.search(r"\(2 more since the last warning, the longest 0\.\d\d s\)$", records[1])


def test_a_watched_loop_leaves_nothing_for_the_garbage_collector():
    """Every step of a watched ``loop()`` is freed as it ends: a cycle per step (the finished step's exception held
    by the frame its traceback holds) would leave a dozen objects a message for the collector to find."""
    watch = Watch(logging.getLogger("mesh.cycles"))

    async def loop() -> str:
        await asyncio.sleep(0)  # one step out and back: a bare yield, no event loop needed
        return "ok"

    gc.collect()
    gc.disable()
    try:
        for _ in range(10):
            steps = watch.run(loop(), "loop()")
            try:
                while True:
                    steps.send(None)
            except StopIteration as stop:
                assert stop.value == "ok"
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        cyclic = [thing for thing in gc.garbage if isinstance(thing, FrameType) and thing.f_code is Watch.run.__code__]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert cyclic == []


def test_blocks_only_counted_are_told_by_the_watchdog_once_the_quiet_spell_is_over():
    """Three blocks, one warning: the watchdog tells the other two when the quiet spell ends, without a fourth."""
    log = logging.getLogger("mesh.counted")
    handler = Released("more time")
    log.addHandler(handler)
    watch = Watch(log, threshold=MS, quiet=50 * MS)
    watch.start()
    try:
        for _ in range(3):
            watch.time("loop()", time.sleep, 2 * MS)
        assert handler.released.wait(DEADLINE), "the watchdog did not tell the counted blocks"
    finally:
        watch.stop()
        log.removeHandler(handler)
    assert watch.blocked == 3


async def test_of_many_nodes_on_one_loop_the_one_that_blocks_is_named(caplog):
    """Ten nodes share the event loop (and the watchdog's one look at it): the node whose loop() blocks is named, no other."""
    others = [Node(Sleepy, f"other{i}", build_grid({f"other{i}": {"sketch": "sleepy"}})) for i in range(10)]
    node = Node(Sleepy, "sleepy", grid_of())
    node.watch.stall = SHORT_STALL
    for each in [*others, node]:
        await each.open()
    try:
        with released_by("sleepy", "so far") as said:
            Sleepy.release = said
            assert await send(node, "until released") == "awake"
        assert said.is_set()
        assert [r.name for r in caplog.records if r.levelno == logging.WARNING] == ["mesh.sleepy"] * 2
    finally:
        for each in [node, *others]:
            await each.stop()


async def test_setup_every_and_topic_handlers_are_named():
    """setup(), an @every method and a topic handler that block are each named as such."""

    class Habits(FactoryLoop):
        def setup(self) -> None:
            time.sleep(BLOCK)

        @every(MS, times=1)
        def blink(self) -> None:
            time.sleep(BLOCK)

        async def on_pin(self, key: str, data: str) -> None:
            time.sleep(BLOCK)

        @reactive
        async def loop(self, channel: str, message: str) -> str:
            await self.subscribe("habits/pin", self.on_pin)
            await self.publish("pin", "1")
            return "ok"

    node = Node(Habits, "habits", build_grid({"habits": {"sketch": "habits", "port": 0}}))
    caught: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: caught.append(record.getMessage())  # type: ignore[method-assign]
    node.watch.quiet = 0  # every block told: this test wants each name
    logging.getLogger("mesh.habits").addHandler(handler)
    try:
        await node.open()
        node.begin()
        assert await send_once("habits", f"ws://{node.address}", "", "go", within=DEADLINE) == "ok"
        await until(lambda: len([c for c in caught if "blocked" in c]) >= 3, "three blocks told")
    finally:
        await node.stop()
        logging.getLogger("mesh.habits").removeHandler(handler)
    named = sorted(line.split(" blocked")[0] for line in caught if "blocked the event loop for" in line)
    assert named == ["blink() (@every)", "on_pin() (topic handler)", "setup()"]


async def test_one_watchdog_thread_for_all_nodes_gone_after_the_last_stops():
    """Two nodes open: one watchdog thread; both stopped: none."""
    assert watchdogs() == []
    first, second = (Node(Sleepy, "sleepy", grid_of()) for _ in range(2))
    await first.open()
    await second.open()
    assert len(watchdogs()) == 1
    await first.stop()
    assert len(watchdogs()) == 1
    await second.stop()
    assert watchdogs() == []


async def test_a_node_that_fails_to_open_leaves_no_watchdog():
    """setup() that raises: the node does not open, and no watchdog thread is left behind."""

    class Broken(FactoryLoop):
        def setup(self) -> None:
            raise ValueError("no")

        @reactive
        async def loop(self, channel: str, message: str) -> str:
            return ""

    node = Node(Broken, "broken", build_grid({"broken": {"sketch": "broken"}}))
    with pytest.raises(Exception, match="no"):
        await node.open()
    assert watchdogs() == []


async def test_the_timeout_cancels_a_loop_that_awaits_too_long(caplog):
    """timeout: 0.2 s and a loop() that never returns: the sender gets an error naming it, the node one line, and it goes on serving."""
    node = Node(Sleepy, "sleepy", grid_of(timeout=BLOCK))
    await node.open()
    try:
        with pytest.raises(RemoteError) as caught:
            await send(node, "forever")
        reason = f"loop() did not finish within {BLOCK:g} s (the node's timeout in the grid) and was cancelled"
        assert caught.value.message == reason
        assert warnings(caplog) == [f"loop() on 'forever': {reason}"]
        assert await send(node, "hello") == "awake"
        assert node.reactor.inflight == 0
    finally:
        await node.stop()


async def test_a_timeout_of_loop_itself_is_its_own_failure():
    """A TimeoutError that loop() raises by itself is a failure of loop(), not the node's timeout."""
    node = Node(Sleepy, "sleepy", grid_of(timeout=DEADLINE))
    await node.open()
    try:
        with pytest.raises(RemoteError, match=r"loop\(\) failed: TimeoutError"):
            await send(node, "own timeout")
    finally:
        await node.stop()


async def test_a_timeout_cannot_cut_a_block_short(caplog):
    """time.sleep() past the timeout runs to its end (nothing can interrupt it): the ack comes, and the watch says why it was late."""
    node = Node(Sleepy, "sleepy", grid_of(timeout=BLOCK / 4))
    await node.open()
    try:
        assert await send(node, "nap") == "awake"
        [line] = warnings(caplog)
        assert line.startswith("loop() blocked the event loop for ")
    finally:
        await node.stop()


def test_the_defaults():
    """Warn after a step of 0.1 s; the watchdog speaks after 0.5 s, well within the second the issue asks."""
    assert (THRESHOLD, STALL) == (0.1, 0.5)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("time.sleep(2)  # Arduino's delay(2000)", "time.sleep(2)"),
        ('print("#1")  # a comment', 'print("#1")'),
        ("call(a,", "call(a,"),  # a line of a longer statement: as it is
        ("plain()", "plain()"),
    ],
)
def test_the_blocking_line_is_shown_without_its_comment(line: str, code: str):
    assert _code(line) == code
