"""How nodes' lines read: one node's ``[ name ]``, and ``up``'s honcho-like prefix for several."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import sys
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from cli.logs import NodeFormatter, PrefixFormatter
from mesh.grid import build_grid
from mesh.links import Link
from mesh.throttle import Throttle, escape
from nodes import FactoryLoop, reactive
from nodes.runtime import Node
from tests.helpers import DEADLINE, until

MESH = ["arduino-mesh.1"]


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


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def throttled(**kwargs: Any) -> tuple[Throttle, Clock, list[str]]:
    """A throttle on a logger of its own whose lines are collected, with a hand-moved clock."""
    log = logging.getLogger(f"mesh.throttled{next(COUNTER)}")
    log.propagate = False
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    log.addHandler(Collect())
    clock = Clock()
    return Throttle(log, clock=clock, **kwargs), clock, lines


COUNTER = itertools.count()


def test_a_repeated_warning_is_one_line_then_a_count():
    """The first is said at once, those within 10 s are counted, the next line after says how many."""
    throttle, clock, lines = throttled(every=10.0)
    assert throttle.warn("127.0.0.1", "refused %s", "127.0.0.1:1") is True
    for port in range(2, 502):
        clock.now += 0.01
        assert throttle.warn("127.0.0.1", "refused %s", f"127.0.0.1:{port}") is False
    assert lines == ["refused 127.0.0.1:1"]
    clock.now = 10.0
    assert throttle.warn("127.0.0.1", "refused %s", "127.0.0.1:9") is True
    assert lines[-1] == "refused 127.0.0.1:9 (and 500 more like this in the last 10 s)"
    clock.now = 30.0
    throttle.warn("127.0.0.1", "refused %s", "127.0.0.1:10")
    assert lines[-1] == "refused 127.0.0.1:10"  # nothing in between: no count
    assert throttle.suppressed == 500


def test_each_key_has_its_own_interval():
    """Two hosts: one line each at once, each counted apart."""
    throttle, clock, lines = throttled(every=10.0)
    for _ in range(3):
        throttle.warn("a", "from %s", "a")
        throttle.warn("b", "from %s", "b")
    assert lines == ["from a", "from b"]
    clock.now = 11.0
    throttle.warn("b", "from %s", "b")
    assert lines[-1] == "from b (and 2 more like this in the last 11 s)"


def test_memory_is_bounded_and_fresh_keys_cannot_buy_a_line_each():
    """Past the cap, new keys share one line: 10,000 made-up keys in 1 s write keys + 1 lines."""
    throttle, clock, lines = throttled(every=10.0, keys=100)
    for n in range(10_000):
        clock.now = n / 10_000
        throttle.warn(f"host{n}", "from %s", n)
    assert len(throttle) == 100
    assert len(lines) == 101
    clock.now = 20.0  # all quiet for an interval: forgotten, room again
    throttle.warn("new", "from %s", "new")
    assert lines[-1] == "from new" and len(throttle) <= 100


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("buzzer", "buzzer"),
        ("évier ☃", "évier ☃"),  # printable non-ASCII stays as it is
        ("x\n[ buzzer ] signal 1", "x\\x0a[ buzzer ] signal 1"),
        ("a\rb\tc\x1b[31m", "a\\x0db\\x09c\\x1b[31m"),
        ("evil\ud800", "evil\\ud800"),  # a lone surrogate
        ("\u202egnp.exe", "\\u202egnp.exe"),  # right-to-left override
        ("x" * 250, "x" * 200 + "... (50 more characters)"),
    ],
    ids=repr,
)
def test_escape_table(text: str, expected: str) -> None:
    """escape() gives one printable line, cut at 200 characters."""
    assert escape(text) == expected
    assert escape(text).isprintable()


# -- against real nodes on port 0: what a peer can make them say ----------------------------------


class Echo(FactoryLoop):
    """Answers with the message it got."""

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        return message


async def opened(token: str | None = None) -> Node:
    grid = build_grid({"echo": {"sketch": "echo", "port": 0}}, auth_token_env="TEST_MESH_TOKEN" if token else None)
    node = Node(Echo, "echo", grid, token=token)
    await node.open()
    return node


def said(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("mesh") and text in r.getMessage()]


async def test_a_flood_of_wrong_tokens_is_one_warning_line(caplog):
    """30 connections with a wrong token from one host: 30 refusals (401), one 'refused a connection' line."""
    node = await opened(token="right")
    try:
        for _ in range(30):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(f"ws://{node.address}/", additional_headers={"Authorization": "Bearer nope"}):
                    pass
            assert refused.value.response.status_code == 401
        lines = said(caplog, "refused a connection")
        assert len(lines) == 1 and re.fullmatch(
            r"refused a connection from 127\.0\.0\.1:\d+: wrong or missing token", lines[0]
        )
        assert node.server is not None and node.server.entrance.throttle.suppressed == 29
    finally:
        await node.stop()


async def test_a_hello_name_cannot_forge_a_log_line(caplog):
    """A peer named 'x\\n[ buzzer ] signal 1' that subscribes and sends bad frames: every line it causes is one line."""
    caplog.set_level(logging.DEBUG)
    node = await opened()
    forged = "x\n[ buzzer ] signal 1"
    try:
        async with connect(f"ws://{node.address}/", subprotocols=MESH, open_timeout=DEADLINE) as ws:
            await ws.send(json.dumps({"type": "hello", "node": forged, "session": "s\n[ echo ] forged"}))
            refused = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))  # names are printable (mesh.protocol)
            assert refused["type"] == "error" and "control character" in refused["error"]
            await ws.send(json.dumps({"type": "sub", "id": 1, "pattern": "echo/#"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))["type"] == "ack"
            for _ in range(20):
                await ws.send('{"type": "msg", "id": 2, "channel": "\\n[ echo ] forged"')  # not JSON
                assert json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))["type"] == "error"
        await until(lambda: said(caplog, "went away"), "the node to forget the subscriber")
        lines = [r.getMessage() for r in caplog.records if r.name.startswith("mesh")]
        assert not [line for line in lines if "\n" in line or "\r" in line]
        assert said(caplog, "subscribed to") == ["an unnamed peer subscribed to echo/#"]
        assert len(said(caplog, "bad frame from an unnamed peer: ")) == 1  # the hello's; then counted
    finally:
        await node.stop()


async def test_a_link_says_a_peers_repeated_errors_and_losses_once(caplog):
    """A peer that answers with 200 error frames and 200 pubs with losses: one line of each, escaped."""

    async def flooding(ws: ServerConnection) -> None:
        await ws.recv()  # the link's hello
        await ws.send(json.dumps({"type": "hello", "node": "peer"}))
        async for _ in ws:
            # Two batches: one holds at most protocol.BATCH (256) frames.
            await ws.send(json.dumps([{"type": "error", "id": None, "error": "no\n[ tx ] forged"}] * 200))
            await ws.send(json.dumps([{"type": "pub", "key": "peer/x", "data": "1", "lost": 1}] * 200))

    async with serve(flooding, "127.0.0.1", 0, subprotocols=[Subprotocol(m) for m in MESH]) as server:
        port = server.sockets[0].getsockname()[1]
        heard: list[int] = []
        link = Link(
            node="tx",
            peer="peer",
            uri=f"ws://127.0.0.1:{port}/",
            logger=logging.getLogger("mesh.tx"),
            on_publish=lambda key, data, lost: heard.append(lost),
        )
        try:
            await link.post("", "hi")
            await until(lambda: len(heard) == 200, "the 200 publications")
        finally:
            await link.close()
    assert said(caplog, "reports an error") == ["peer reports an error: no\\x0a[ tx ] forged"]
    assert said(caplog, "fell behind") == ["fell behind peer: it dropped 1 message(s) for us (1 in all)"]
    assert link.lost == 200 and link.replies.throttle.suppressed == 398


def test_asyncio_saying_ssl_connection_is_closed_is_not_passed_on() -> None:
    """Writes on a TLS connection its peer has closed: asyncio's line says nothing a user can act on."""
    from cli.logs import UNHEEDED

    unheeded = logging.LogRecord("asyncio", logging.WARNING, __file__, 1, "SSL connection is closed", None, None)
    heeded = logging.LogRecord(
        "asyncio", logging.WARNING, __file__, 1, "Task was destroyed but it is pending!", None, None
    )
    assert not UNHEEDED.filter(unheeded)
    assert UNHEEDED.filter(heeded)
