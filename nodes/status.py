"""Asking every node of a grid for its status report, and showing the reports as a table."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from mesh.errors import MeshError, NotAnswering
from mesh.grid import Grid, NodeSpec
from mesh.requests import query_status
from mesh.throttle import escape

__all__ = [
    "DOWN",
    "NOT_ANSWERING",
    "REPORT_LINE",
    "gather_status",
    "presence",
    "report_line",
    "status_table",
    "uptime",
]

#: The states of a node that did not report: nothing there (refused, unreachable), or there but silent.
DOWN = "down"
NOT_ANSWERING = "not answering"
#: Characters of a sketch's own report (``@reports``) that the status table shows under its row.
REPORT_LINE = 160


async def gather_status(
    grid: Grid, per_node: float, token: str | None = None, ssl_context: ssl.SSLContext | None = None
) -> list[dict[str, Any]]:
    """Every node's report, asked all at once: a node that is down costs at most ``per_node`` seconds.

    ``per_node`` bounds each node's answer, not the whole call: a node that does not
    answer in time is reported ``not answering`` (it took the connection: busy?), one
    that cannot be reached ``down``, while the others' reports are kept. ``ssl_context``:
    the grid's TLS client context (:mod:`mesh.tls`), when it has tls.
    """

    async def one(spec: NodeSpec) -> dict[str, Any]:
        base = {"node": spec.name, "sketch": spec.sketch, "address": spec.address}
        if spec.uri is None:
            return {**base, "state": "no port"}
        try:
            report = await query_status(
                spec.name, spec.uri, open_timeout=per_node, within=per_node, token=token, ssl_context=ssl_context
            )
        except NotAnswering as exc:  # there (the connection opened), but silent: busy, blocked or stopped
            return {**base, "state": NOT_ANSWERING, "error": f"busy? {exc.reason}"}
        except MeshError as exc:
            return {**base, "state": DOWN, "error": getattr(exc, "reason", str(exc))}
        return {**base, **report, "state": "up"}

    return list(await asyncio.gather(*(one(spec) for spec in grid.nodes.values())))


def status_table(reports: list[dict[str, Any]]) -> str:
    """The reports as an aligned table, one node a row."""
    header = [
        "NODE",
        "STATE",
        "ADDRESS",
        "SKETCH",
        "UPTIME",
        "IN",
        "OUT",
        "PUB",
        "PENDING",
        "SUBSCRIBERS",
        "PRESENCE",
        "LINKS",
    ]
    rows = [header]
    for report in reports:
        up = report["state"] == "up"
        links = " ".join(f"{peer}:{link['state']}" for peer, link in report.get("links", {}).items())
        rows.append(
            [
                report["node"],
                report["state"],
                report["address"] or "-",
                report["sketch"],
                uptime(report["uptime"]) if up else "-",
                *(str(report[key]) if up else "-" for key in ("messages_in", "messages_out", "published", "pending")),
                str(report.get("subscribers_total", len(report.get("subscribers", [])))) if up else "-",
                (presence(report) or "-") if up else "-",
                (links or "-") if up else report.get("error", ""),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    table = "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    ).rstrip()
    notes = [
        f"{report['node']}: {report_line(report['report'])}"
        for report in reports
        if report["state"] == "up" and isinstance(report.get("report"), dict)
    ]
    notes += [
        f"{report['node']}: {redis_line(report['redis'])}"
        for report in reports
        if report["state"] == "up" and isinstance(report.get("redis"), dict) and report["redis"].get("clients")
    ]
    return "\n".join([table, *notes])


def redis_line(redis: dict[str, Any]) -> str:
    """A node's Redis clients as one short line: ``redis clients=2 subscriptions=3 channels=buzzer/sound patterns=*``."""
    names = {key: ",".join(map(str, redis.get(key) or [])) or "-" for key in ("channels", "patterns")}
    text = (
        f"redis clients={redis.get('clients')} subscriptions={redis.get('subscriptions')}"
        f" channels={names['channels']} patterns={names['patterns']}"
    )
    return escape(text, REPORT_LINE)


def report_line(report: dict[str, Any]) -> str:
    """A sketch's own report (``@reports``) as one short line: ``broker=mqtt://... state=connected sent=12``."""
    text = " ".join(f"{key}={value}" for key, value in report.items())
    return escape(text, REPORT_LINE)


def presence(report: dict[str, Any]) -> str:
    """Each peer as the node last saw it, and for how long: ``iopin:online 41s, buzzer:offline 3s``."""
    seen = []
    for peer, link in report.get("links", {}).items():
        state, since = link.get("presence"), link.get("presence_for")
        if isinstance(state, str) and isinstance(since, (int, float)):
            seen.append(f"{peer}:{state} {uptime(since)}")
    return ", ".join(seen)


def uptime(seconds: float) -> str:
    """12s, 3m04s, 2h05m."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
