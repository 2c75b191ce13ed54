"""Dashboard: the circuit, alive, in a browser.

A node like any other (in the grid and the Procfile). Its websocket server
also answers plain HTTP (no web framework: the ``http()`` hook of
``FactoryLoop`` behind the server's ``process_request``) with one page and its
assets from ``static/``, and ``/circuit.json``, the grid as the page draws it.
The page opens a websocket on ``/feed``; every ``period`` seconds while a page
is open (and not at all while none is: an unwatched dashboard only counts) the
dashboard pushes it one snapshot of what it has heard on the topics the
grid subscribes it to (``subscribe: ["#"]`` for everything): exact counts per key, the last value of
each key, the key each node published last (what its card shows), the
messages since the last snapshot (at most 50, so a burst of 1,000 messages a
second costs the browser the same as a trickle), the rate, whether each
node is up as its own links to them see it, and each node's presence: the
dashboard subscribes to ``+/$state`` by itself as it begins, so a node is
``online`` from its retained ``<node>/$state`` and ``offline`` when it stops, or
when the dashboard's link loses it (see docs/protocol.md, "Presence").

A page that opens gets a *full* snapshot first: the same, with the last 50
messages the dashboard heard, so its log starts with the recent history.
Each message carries a sequence number, so a page never logs one twice.

``#`` does not match system keys (``iopin/$subscribers/added``, see
:mod:`mesh.topics`), so the dashboard shows them only if the grid subscribes
it to a pattern that names them; even then they are counted and logged, never
shown as a node's value on its card.

What it keeps is bounded, whatever the publishers do: at most :data:`KEYS` keys (the
least recently updated is let go, its count with it; the page and the log say so once),
each key and value cut to :data:`TEXT` characters, so a snapshot is at most about
:data:`SNAPSHOT_BYTES` bytes (200,000 distinct keys used to make 11.6 MB snapshots, ten
a second). The total of messages heard stays exact.

Under the circuit, the page draws a logic-analyzer strip: the last ``window`` seconds of
each key, a 1-bit key (every payload ``0`` or ``1``) as a square waveform and any other as
marks, from :class:`~sketches.dashboard.strip.History` (its own bounds: points per key and
over all keys). A full snapshot carries the whole window, a regular one only the points
since the last; times go as seconds before the snapshot, on the event loop's clock.

Beside the snapshots, the page gets a *graph* message: the subscriptions to draw beside the wires,
from the grid's ``subscribe:`` and from what the publishers announce on ``<node>/$subscribers/+``
(the dashboard subscribes to it by itself too), each pattern matched against the keys heard
(:mod:`~sketches.dashboard.subscriptions`). It is sent when a page opens and when it changes, matched
again at most every :data:`GRAPH_EVERY` seconds and only when a key or a subscription came or went
(never on a message's path), and sent again unchanged every :data:`GRAPH_RESEND` seconds for a page
that missed it.

The rate is a moving average over the last :data:`RATE_WINDOW` seconds (the
time since the first page opened while that is shorter, but never less than one
second), so at one tick a second it reads a steady figure instead of falling to
0 between ticks.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter, OrderedDict, deque
from importlib import resources
from typing import Any

from mesh.tls import client_context
from mesh.topics import is_system
from nodes import FactoryLoop, PlainClient, broadcast, every, hears, reactive
from nodes.status import gather_status

from .strip import STRIP_POINTS, STRIP_TEXT, WINDOW, History
from .subscriptions import HELD, Subscriptions

#: What the dashboard subscribes to by itself to hear of subscriptions (see docs/topics.md).
ANNOUNCEMENTS = "+/$subscribers/+"
#: Messages a snapshot carries at most, and the history a page opens with; the counts are exact whatever the rate.
RECENT = 50
#: Seconds the rate is averaged over.
RATE_WINDOW = 10.0
#: Seconds between two matchings of the subscriptions against the keys heard, at most: the graph follows a new
#: key or subscription within it, and a flood of new keys costs one matching a second, not one a message.
GRAPH_EVERY = 1.0
#: Seconds between two sendings of an unchanged graph: a page that missed one (it could not keep up) has it again.
GRAPH_RESEND = 10.0
#: Seconds between two rounds of asking every node what it subscribes to, at most (a round is asked for when the
#: dashboard begins listening at a node: as it begins, and when the node comes back), and the most a node's answer
#: may take.
ASK_EVERY = 1.0
#: Keys the dashboard keeps (counts, last values), least recently updated let go past it.
KEYS = 500
#: Characters of a key or a value the dashboard keeps (and sends a page) at most.
TEXT = 200
#: What a snapshot weighs at most, in bytes: KEYS keys, counted and with their value, the
#: RECENT messages, the strip (a row per key, STRIP_POINTS points in all, each
#: ``[number,ago,"value"]``), each character at most 6 bytes in JSON (\uXXXX), and room for the rest.
SNAPSHOT_BYTES = (
    (KEYS * (3 * TEXT + 40) + RECENT * (2 * TEXT + 60)) * 6
    + KEYS * (TEXT * 6 + 40)
    + STRIP_POINTS * (STRIP_TEXT * 6 + 40)
    + 64 * 1024
)
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
PAGES = {"/": "index.html", "/index.html": "index.html", "/app.js": "app.js", "/style.css": "style.css"}


class Rate:
    """Messages a second, as a moving average over the last ``window`` seconds of samples ``(time, total)``."""

    def __init__(self, window: float = RATE_WINDOW) -> None:
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, total: int) -> None:
        """A sample: ``total`` messages counted so far at ``now``; samples older than the window are dropped.

        The newest sample at or before ``now - window`` is kept, as the window's start.
        """
        self.samples.append((now, total))
        while len(self.samples) > 2 and self.samples[1][0] <= now - self.window:
            self.samples.popleft()

    def value(self) -> float:
        """The average rate over the window (or the time sampled so far, but at least one second)."""
        if len(self.samples) < 2:
            return 0.0
        (start, first), (end, last) = self.samples[0], self.samples[-1]
        return (last - first) / max(end - start, 1.0)


class Dashboard(FactoryLoop):
    """Serves the page and feeds it snapshots of the circuit's topics."""

    # The page and its assets hold nothing secret; /circuit.json and /feed need the token.
    public_paths = frozenset(PAGES) | {"/favicon.ico"}

    def setup(self, period: float = 0.1, window: float = WINDOW) -> None:
        """``period``: seconds between snapshots; ``window``: seconds of history the strip shows."""
        if period <= 0:
            raise ValueError(f"period must be above 0 seconds, not {period}")
        self.period = period
        #: Each key's recent publications, for the strip (bounded per key and over all keys).
        self.history = History(window)
        if not self.grid.node(self.name).subscribe:
            self.log.warning("subscribes to nothing, so it will show nothing: add subscribe: ['#'] to it in the grid")
        self.counts: Counter[str] = Counter()
        #: The last value of each key, least recently updated first (the first let go past KEYS).
        self.last: OrderedDict[str, str] = OrderedDict()
        #: Keys let go to stay within KEYS.
        self.dropped = 0
        #: Each node's latest key that is not a system key: what its card shows.
        self.latest: dict[str, str] = {}
        #: The newest messages, numbered: a page opens with them, snapshots carry those not yet pushed.
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self.heard = 0
        self.pushed = 0
        self.feeds: set[PlainClient] = set()
        #: Pushes snapshots while a page is open (see watched()); None while none is.
        self.pusher: asyncio.Task[None] | None = None
        self.rate = Rate()
        #: Each node of the grid: "online" or "offline", as its <node>/$state last said (or the link lost it).
        self.presence: dict[str, str] = {}
        #: Who subscribes to what, announced by the publishers; the graph of it with the grid's (see draw_graph).
        self.subscriptions = Subscriptions()
        #: The graph (JSON, a "graph" message), whether it changed since it was last sent, when it was matched
        #: and sent, and what it was matched from: the grid, and counts that change with the keys and subscriptions.
        self.graph = ""
        self.graph_unsent = False
        self.graph_at = self.graph_sent = float("-inf")
        self.graph_grid: object = None
        self.graph_from = (0, 0, 0)
        #: A round of asking the nodes for their subscriptions is due (see ask_subscriptions).
        self.ask = False
        static = resources.files(__package__) / "static"
        self.files = {
            path: (TYPES[name[name.rindex(".") :]], (static / name).read_bytes()) for path, name in PAGES.items()
        }

    @hears
    def count(self, key: str, data: str) -> None:
        """One message on the topics: counted exactly, kept for the next snapshot (at most KEYS keys).

        A plain method, not a coroutine: it awaits nothing, and a coroutine per message is what a
        simulated day of the circuit would pay for nothing.
        """
        whole, key, data = data, cut(key), cut(data)
        if key in self.last:
            self.last.move_to_end(key)
        elif len(self.last) >= KEYS:
            self.let_go()
        self.counts[key] += 1
        self.last[key] = data
        if not is_system(key):
            self.latest[key.split("/", 1)[0]] = key
        elif "/$subscribers/" in key:  # the grid subscribes it to them as well: one handler a pattern
            self.take_announcement(key, whole)
        self.heard += 1
        self.history.add(self.heard, asyncio.get_running_loop().time(), key, data)
        self.recent.append({"n": self.heard, "key": key, "data": data, "t": round(time.time(), 3)})

    def let_go(self) -> None:
        """Forget the least recently updated key (and its count), saying so the first time."""
        old, _ = self.last.popitem(last=False)
        del self.counts[old]
        self.history.forget(old)
        owner = old.split("/", 1)[0]
        if self.latest.get(owner) == old:
            del self.latest[owner]
        if not self.dropped:
            self.log.warning(
                "heard more than %d distinct keys: keeping the %d updated most recently (counts of the others are let go)",
                KEYS,
                KEYS,
            )
        self.dropped += 1

    @every(1.0, times=1)
    async def listen_for_presence(self) -> None:
        """Once, as the node begins: who subscribes to every node, and its presence (``#`` matches neither: they
        are system keys). In that order, at each node on one link: a node's ``$state``, retained, comes once the
        dashboard listens to its ``$subscribers``."""
        await self.subscribe(ANNOUNCEMENTS, self.announced)
        await self.subscribe("+/$state", self.present)

    def present(self, key: str, data: str) -> None:
        """``<node>/$state``: online or offline, for the nodes of the grid (anything else is ignored). Online, the
        dashboard listens to its ``$subscribers`` from now on: a round of asking what was subscribed before is due."""
        node = key.split("/", 1)[0]
        if node in self.grid.nodes and data in ("online", "offline"):
            self.presence[node] = data
            if data == "offline":
                self.subscriptions.lost(node)
            else:
                self.ask = True

    async def announced(self, key: str, data: str) -> None:
        """``<node>/$subscribers/added|removed``: a subscription for the graph (anything malformed is ignored); also
        counted and logged when the grid subscribes the dashboard to them (a pattern has one handler: this one)."""
        if ANNOUNCEMENTS in self.grid.node(self.name).subscribe:
            self.count(key, data)
        else:
            self.take_announcement(key, data)

    def take_announcement(self, key: str, data: str) -> None:
        overflow = self.subscriptions.overflow
        self.subscriptions.heard(key, data, self.grid.nodes)
        if self.subscriptions.overflow and not overflow:
            self.log.warning("heard of more than %d subscriptions: drawing those heard first", HELD)

    @every(ASK_EVERY)
    async def ask_subscriptions(self) -> None:
        """When due, every node's status report, for the subscriptions it names (those made before the dashboard
        listened at their publishers); one round at a time, a node's answer in at most ASK_EVERY seconds."""
        if not self.ask:
            return
        self.ask = False
        grid = self.grid
        try:
            token = None if grid.auth_token_env is None else os.environ.get(grid.auth_token_env)
            tls = None if grid.tls is None else client_context(grid.tls)
            reports = await gather_status(grid, ASK_EVERY, token, tls)
        except Exception as exc:  # its TLS files changed under it, say: the announcements still come
            self.log.debug("cannot ask the nodes what they subscribe to: %s", exc)
            return
        for report in reports:
            if report["state"] == "up":
                self.subscriptions.reported(report["node"], report.get("subscriptions"), grid.nodes)

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

    async def serve_plain(self, client: PlainClient) -> None:
        if client.channel != "feed":
            await super().serve_plain(client)
            return
        first = self.snapshot(full=True)
        if self.pusher is None:  # the first page: the rate counts from here, snapshots go every period
            self.rate.samples.clear()
            self.rate.add(asyncio.get_running_loop().time(), self.heard)
            self.pushed = self.heard  # what the first page has: the next snapshot carries what is newer
            self.pusher = asyncio.create_task(self.watched())
        self.feeds.add(client)
        try:
            await client.send(first)
            now = asyncio.get_running_loop().time()
            self.draw_graph(now)
            if self.graph_unsent:
                self.send_graph(now)  # a new graph: every page's, this one's too
            else:
                await client.send(self.graph)
            await client.wait_closed()
        finally:
            self.feeds.discard(client)
            if not self.feeds and self.pusher is not None:
                self.pusher.cancel()
                self.pusher = None

    async def watched(self) -> None:
        """While a page is open: :meth:`push` every ``period``, on a schedule that keeps its pace.

        Not an ``@every`` method: a dashboard nobody watches (in a simulation, always) would wake
        ten times a second to push to nobody.
        """
        loop = asyncio.get_running_loop()
        start, slot = loop.time(), 0
        while True:
            slot += 1
            await asyncio.sleep(max(0.0, start + slot * self.period - loop.time()))
            try:
                self.push()
            except Exception:
                self.log.exception("push() failed")

    def push(self) -> None:
        """One snapshot to every open page; a page that cannot keep up is skipped, not waited for."""
        now = asyncio.get_running_loop().time()
        self.rate.add(now, self.heard)
        if self.feeds:
            broadcast(self.feeds, self.snapshot())
            self.draw_graph(now)
            if self.graph_unsent or now - self.graph_sent >= GRAPH_RESEND:
                self.send_graph(now)
        self.pushed = self.heard

    def send_graph(self, now: float) -> None:
        """The graph to every open page (one that cannot keep up has it again within GRAPH_RESEND)."""
        broadcast(self.feeds, self.graph)
        self.graph_unsent, self.graph_sent = False, now

    def draw_graph(self, now: float) -> None:
        """Match the subscriptions against the keys heard again (``self.graph``), if the grid, the keys or the
        subscriptions changed and the last matching is GRAPH_EVERY old. Called with a snapshot, not per message:
        the keys changed if their number or the count of those let go did (a key is only added, or let go)."""
        grid = self.grid
        matched_from = (len(self.last), self.dropped, self.subscriptions.version)
        if (grid is self.graph_grid and matched_from == self.graph_from) or now - self.graph_at < GRAPH_EVERY:
            return
        self.graph_grid, self.graph_from, self.graph_at = grid, matched_from, now
        ours = [(name, pattern) for name, spec in grid.nodes.items() for pattern in spec.subscribe]
        graph = self.subscriptions.graph(ours, self.last, grid.nodes)
        text = json.dumps({"type": "graph", **graph}, separators=(",", ":"))
        if text != self.graph:
            self.graph, self.graph_unsent = text, True

    def snapshot(self, full: bool = False) -> str:
        """What the page draws; ``full`` (a page's first) carries the whole recent history, else what is new."""
        recent = list(self.recent) if full else [m for m in self.recent if m["n"] > self.pushed]
        now = asyncio.get_running_loop().time()
        return json.dumps(
            {
                "type": "snapshot",
                "full": full,
                "t": round(time.time(), 3),
                "nodes": self.states(),
                "presence": {name: state for name, state in self.presence.items() if name in self.grid.nodes},
                "counts": self.counts,
                "last": self.last,
                "latest": self.latest,
                "heard": self.heard,
                "dropped": self.dropped,
                "keys": KEYS,
                "recent": recent,
                "rate": round(self.rate.value(), 1),
                "strip": {
                    "window": self.history.window,
                    "points": self.history.limit,
                    "rows": self.history.rows(now, since=0 if full else self.pushed),
                },
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


def cut(text: str) -> str:
    """``text``, cut to :data:`TEXT` characters (an ellipsis says it was)."""
    return text if len(text) <= TEXT else text[: TEXT - 1] + "…"
