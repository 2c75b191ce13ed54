"""``@reports``: a sketch's own section of its status report, bounded, and never a failed status."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mesh.grid import build_grid
from mesh.requests import query_status
from nodes import FactoryLoop, reactive, report, reports
from nodes.report import REPORT_MAX, sketch_report
from nodes.runtime import Node
from nodes.status import REPORT_LINE, status_table
from tests.helpers import DEADLINE


class Meter(FactoryLoop):
    """Counts what it gets, and says so in its status."""

    def setup(self) -> None:
        self.count = 0

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        self.count += 1
        return "ok"

    @reports
    def how(self) -> dict[str, Any]:
        return {"counted": self.count, "state": "fine"}


async def test_the_report_travels_in_the_node_status_under_report():
    """The @reports method's dict is in the status report a client asks for over the socket."""
    grid = build_grid({"meter": {"sketch": "meter", "port": 0}})
    node = Node(Meter, "meter", grid)
    await node.start()
    try:
        report = await query_status("meter", f"ws://{node.address}", open_timeout=DEADLINE)
        assert report["report"] == {"counted": 0, "state": "fine"}
    finally:
        await node.stop()


def test_a_sketch_without_reports_has_no_report_key():
    """Only a sketch that marks a method has a report: the status of the others is as it was."""

    class Plain(FactoryLoop):
        @reactive
        async def loop(self, channel: str, message: str) -> str:
            return "ok"

    node = Node(Plain, "plain", build_grid({"plain": {"sketch": "plain"}}))
    assert "report" not in report._sketch_section(node)


def _raises() -> dict[str, Any]:
    raise RuntimeError("the broker\nis gone")


@pytest.mark.parametrize(
    ("method", "error"),
    [
        (_raises, r"^RuntimeError: the broker\\x0ais gone \(at test_report.py:\d+\)$"),
        (lambda: ["not", "a", "dict"], r"^@reports returned list, not a dict$"),
        (lambda: {"x": object()}, r"^@reports returned what JSON cannot carry: Object of type object"),
        (lambda: {"x": "y" * REPORT_MAX}, rf"^@reports returned \d+ bytes of JSON; at most {REPORT_MAX} are shown$"),
    ],
    ids=["raises", "not a dict", "not JSON", "too big"],
)
def test_a_failing_or_wrong_report_is_one_error_entry(method: Any, error: str):
    """Whatever the sketch's method raises or returns, the report is made: {"error": one line}."""
    result = sketch_report(method)
    assert list(result) == ["error"]
    assert "\n" not in result["error"]
    assert re.search(error, result["error"]), result["error"]


def test_the_status_table_shows_each_report_on_a_line_under_it():
    """`./arduino.py status` shows a node's report briefly, one line under the table, cut to REPORT_LINE."""
    base = {"address": "127.0.0.1:1", "sketch": "mqtt", "uptime": 3, "messages_in": 0, "messages_out": 0}
    up = {**base, "published": 0, "pending": 0, "state": "up"}
    table = status_table(
        [
            {**up, "node": "bridge", "report": {"state": "connected", "sent": 3}},
            {**up, "node": "long", "report": {"text": "z" * 500}},
            {**up, "node": "quiet"},
        ]
    )
    lines = table.splitlines()
    assert lines[-2] == "bridge: state=connected sent=3"
    assert lines[-1].startswith("long: text=zzz") and len(lines[-1]) < REPORT_LINE + 40
    assert len(lines) == 6


def test_the_status_table_shows_a_nodes_redis_clients_on_a_line_under_it():
    """A node with Redis clients: how many, their subscriptions, channels and patterns; none: no line."""
    base = {"address": "127.0.0.1:1", "sketch": "buzzer", "uptime": 3, "messages_in": 0, "messages_out": 0}
    up = {**base, "published": 0, "pending": 0, "state": "up"}
    redis = {"clients": 2, "subscriptions": 3, "channels": ["buzzer/sound"], "patterns": ["*", "iopin/*"]}
    table = status_table(
        [
            {**up, "node": "buzzer", "redis": redis},
            {**up, "node": "iopin", "redis": {**redis, "clients": 0}},
        ]
    )
    lines = table.splitlines()
    assert lines[-1] == "buzzer: redis clients=2 subscriptions=3 channels=buzzer/sound patterns=*,iopin/*"
    assert len(lines) == 4
