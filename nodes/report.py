"""What a node reports about itself: the status that ``./arduino.py status`` shows (``docs/protocol.md``).

:func:`status` gathers each part's counters (the reactor's, the links', the hub's, the
inbox's, the Redis clients') and the sketch's own ``@reports`` section (:func:`sketch_report`: bounded, and an
exception or a wrong type is an error entry, never a failed status). :func:`report_json` is
what a ``status`` frame is answered with, built at most once per :data:`REPORT_FRESH`
seconds, so that a flood of status requests costs one report per interval.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import traceback
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mesh.throttle import escape

from .reactive import reported_by

if TYPE_CHECKING:
    from .node import Node

__all__ = [
    "REPORT_FRESH",
    "REPORT_MAX",
    "STATUS_PATTERNS",
    "STATUS_SUBSCRIBERS",
    "report_json",
    "sketch_report",
    "status",
]

#: The status report lists at most this many subscribers (``subscribers_total`` counts them all)...
STATUS_SUBSCRIBERS = 20
#: ...and at most this many patterns of each (``patterns_total`` counts them all).
STATUS_PATTERNS = 10
#: Bytes of JSON a sketch's ``@reports`` section may take in the status report; past it, an error entry.
REPORT_MAX = 4096
#: Seconds a node's status report is reused for.
REPORT_FRESH = 0.05


def status(node: Node) -> dict[str, Any]:
    """What ``./arduino.py status`` shows of ``node``: counters, links, subscribers (see docs/protocol.md)."""
    loop = asyncio.get_running_loop()
    links = node.sender.links
    hub, inbox = node.hub, node.inbox
    return {
        "node": node.name,
        "sketch": node.spec.sketch,
        "address": node.address,
        "pid": os.getpid(),
        "uptime": round(loop.time() - node.started, 3) if node.started is not None else 0.0,
        "messages_in": node.reactor.messages_in,
        "messages_out": node.sender.messages_out,
        "published": node.sender.published,
        "connections_in": 0 if node.server is None else node.server.connections,
        "pending": sum(link.pending for link in links.values()),
        "duplicates": node.sessions.duplicates,
        "durable": node.spec.durable,
        "links": {
            peer: {
                "state": link.state,
                "pending": link.pending,
                "acked": link.acked,
                "connections": link.connections,
                "lost": link.lost,
                "unknown_acks": link.unknown_acks,
                "forged": link.forged,
                "presence": link.presence,
                "presence_for": round(loop.time() - link.presence_since, 3) if link.presence else None,
            }
            for peer, link in links.items()
        },
        "subscribers": [
            {
                "name": sub.name,
                "patterns": list(itertools.islice(sub.patterns, STATUS_PATTERNS)),
                "patterns_total": len(sub.patterns),
                "queued": len(sub.queue),
                "sent": sub.sent,
                "lost": sub.lost,
            }
            for sub in itertools.islice(hub.subscribers.values(), STATUS_SUBSCRIBERS)
        ],
        "subscribers_total": len(hub.subscribers),
        "subscriptions": list(inbox.handlers),
        "received": inbox.received,
        "lost": inbox.lost,
        **({} if node.redis is None else {"redis": node.redis.report()}),
        **_sketch_section(node),
    }


def _sketch_section(node: Node) -> dict[str, Any]:
    """``{"report": ...}``: the sketch's ``@reports`` section, if it has one."""
    name = reported_by(type(node.sketch))
    if name is None:
        return {}
    return {"report": sketch_report(node.hook(name), node.watch.time)}


def sketch_report(method: Callable[[], object], timed: Callable[..., object] | None = None) -> dict[str, Any]:
    """What the ``@reports`` ``method`` returns, if it is a dict whose JSON fits :data:`REPORT_MAX`; else ``{"error": ...}``.

    Sketch code is untrusted: whatever it raises or returns, the status report is still
    made. ``timed(what, function)`` runs it (the node's watch, which reports a block).
    """
    try:
        result = timed("@reports", method) if timed is not None else method()
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return {"error": escape(f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})")}
    if not isinstance(result, dict):
        return {"error": f"@reports returned {type(result).__name__}, not a dict"}
    try:
        text = json.dumps(result, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        return {"error": escape(f"@reports returned what JSON cannot carry: {exc}")}
    if len(text.encode()) > REPORT_MAX:
        return {"error": f"@reports returned {len(text.encode())} bytes of JSON; at most {REPORT_MAX} are shown"}
    return result


_reports: weakref.WeakKeyDictionary[Any, tuple[float, str]] = weakref.WeakKeyDictionary()


def report_json(node: Any) -> str:
    """The node's status report as JSON, built at most once per REPORT_FRESH seconds of the loop's clock
    (a simulation's reports are the same run after run)."""
    now = asyncio.get_running_loop().time()
    cached = _reports.get(node)
    if cached is None or now - cached[0] >= REPORT_FRESH:
        cached = _reports[node] = (now, json.dumps(node.status(), separators=(",", ":"), ensure_ascii=False))
    return cached[1]
