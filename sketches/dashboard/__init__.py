"""Dashboard: the circuit, alive, in a browser.

A node like any other (in the grid and the Procfile). Its websocket server
also answers plain HTTP (no web framework: the ``http()`` hook of
``FactoryLoop`` behind the server's ``process_request``) with one page and its
assets from ``static/``, and ``/circuit.json``, the grid as the page draws it.
The page opens a websocket on ``/feed``; every ``period`` seconds the
dashboard pushes it one snapshot of what it has heard on the topics the
grid subscribes it to (``subscribe: ["#"]`` for everything): exact counts per key, the last value of
each key, the newest messages (at most 50 per snapshot, so a burst of 1,000
messages a second costs the browser the same as a trickle), the rate, and
whether each node is up — which it knows from its own links to them.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from importlib import resources
from typing import Any

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed

from nodes import FactoryLoop, every, hears, reactive

#: Messages a snapshot carries at most; the counts are exact whatever the rate.
RECENT = 50
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
PAGES = {"/": "index.html", "/index.html": "index.html", "/app.js": "app.js", "/style.css": "style.css"}


class Dashboard(FactoryLoop):
    """Serves the page and feeds it snapshots of the circuit's topics."""

    # The page and its assets hold nothing secret; /circuit.json and /feed need the token.
    public_paths = frozenset(PAGES) | {"/favicon.ico"}

    def setup(self, period: float = 0.1) -> None:
        """``period``: seconds between snapshots."""
        if period <= 0:
            raise ValueError(f"period must be above 0 seconds, not {period}")
        self.period = period
        if not self.grid.node(self.name).subscribe:
            self.log.warning("subscribes to nothing, so it will show nothing: add subscribe: ['#'] to it in the grid")
        self.counts: Counter[str] = Counter()
        self.last: dict[str, str] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.feeds: set[ServerConnection] = set()
        self.history: deque[tuple[float, int]] = deque(maxlen=64)  # (time, total) for the rate
        static = resources.files(__package__) / "static"
        self.files = {
            path: (TYPES[name[name.rindex(".") :]], (static / name).read_bytes()) for path, name in PAGES.items()
        }

    @hears
    async def count(self, key: str, data: str) -> None:
        """One message on the topics: counted exactly, kept for the next snapshot."""
        self.counts[key] += 1
        self.last[key] = data
        self.recent.append({"key": key, "data": data, "t": round(time.time(), 3)})

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        """The dashboard takes no messages; it says where to look."""
        return f"the dashboard is at http://{self.address}/"

    def http(self, path: str) -> tuple[int, str, bytes] | None:
        if path == "/circuit.json":
            return 200, "application/json", json.dumps(self.circuit()).encode()
        if path in self.files:
            content_type, body = self.files[path]
            return 200, content_type, body
        if path == "/favicon.ico":
            return 204, "image/x-icon", b""
        return 404, "text/plain; charset=utf-8", f"{path}: not found on this dashboard\n".encode()

    async def serve_plain(self, websocket: ServerConnection) -> None:
        path = websocket.request.path.split("?", 1)[0] if websocket.request else "/"
        if path != "/feed":
            await super().serve_plain(websocket)
            return
        self.feeds.add(websocket)
        try:
            await websocket.send(self.snapshot())
            await websocket.wait_closed()
        except ConnectionClosed:
            pass
        finally:
            self.feeds.discard(websocket)

    @every("period")
    def push(self) -> None:
        """One snapshot to every open page; a page that cannot keep up is skipped, not waited for."""
        total = sum(self.counts.values())
        self.history.append((time.monotonic(), total))
        if self.feeds:
            broadcast(self.feeds, self.snapshot())
        self.recent.clear()

    def snapshot(self) -> str:
        now = time.monotonic()
        window = [(t, n) for t, n in self.history if now - t <= 1.0]
        rate = (
            (window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
            if len(window) > 1 and window[-1][0] > window[0][0]
            else 0.0
        )
        return json.dumps(
            {
                "type": "snapshot",
                "t": round(time.time(), 3),
                "nodes": self.states(),
                "counts": self.counts,
                "last": self.last,
                "recent": list(self.recent),
                "rate": round(rate, 1),
            },
            separators=(",", ":"),
        )

    def states(self) -> dict[str, str]:
        """Each node: up, down, connecting, or no port — as this dashboard's links see them."""
        seen = {"up": "up", "retrying": "down", "down": "down", "no port": "no port"}
        peers = self.peers()
        return {name: "up" if name == self.name else seen.get(peers[name], "connecting") for name in self.grid.nodes}

    def circuit(self) -> dict[str, Any]:
        """The grid as the page draws it."""
        return {
            "name": self.name,
            "nodes": [{"name": n, "sketch": s.sketch, "address": s.address} for n, s in self.grid.nodes.items()],
            "wires": [{"source": w.source, "target": w.target} for w in self.grid.wires],
        }
