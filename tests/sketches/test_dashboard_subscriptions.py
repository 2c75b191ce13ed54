"""The subscriptions the dashboard's graph draws: the announcements it takes, the graph it matches, the feed's message.

Tables of cases for :class:`sketches.dashboard.subscriptions.Subscriptions` (no socket), then
real nodes on port 0 in this event loop, in virtual time (the graph is matched at most once a
second): a subscription in the grid and one made at run time reach a page, and go when they go.
What the page draws of it is in test_dashboard_graph.py (a real browser).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from mesh.grid import build_grid
from nodes import FactoryLoop, reactive
from nodes.circuit import start_together, stop_together
from nodes.runtime import Node
from sketches.dashboard import GRAPH_RESEND, Dashboard
from sketches.dashboard.subscriptions import EDGES, HELD, REPORTED, SUBSCRIPTIONS, Subscriptions
from tests.helpers import DEADLINE, MS, ROOT, fast_backoff, free_ports, until

NODES = ("clock", "iopin", "meter", "dashboard")


def added(pattern: object, subscriber: object = "meter") -> str:
    return json.dumps({"pattern": pattern, "subscriber": subscriber, "count": 1})


@pytest.mark.parametrize(
    ("key", "data", "taken"),
    [
        ("iopin/$subscribers/added", added("+/pin"), True),
        ("iopin/$subscribers/added", added("#", "dashboard"), True),
        ("iopin/$subscribers/removed", added("+/pin"), False),  # never added: nothing to remove
        ("iopin/$subscribers/added", added("+/pin", "echo-1234"), False),  # not a node of the grid: not drawn
        ("stranger/$subscribers/added", added("+/pin"), False),  # a publisher not in the grid
        ("iopin/$subscribers/changed", added("+/pin"), False),
        ("iopin/$subscribers/added", added("+/$state", "dashboard"), False),  # bookkeeping, not the circuit
        ("iopin/$subscribers/added", added("iopin/$subscribers/+", "dashboard"), False),
        ("iopin/$subscribers/added", added("a/#/b"), False),  # not a pattern the mesh takes
        ("iopin/$subscribers/added", added("x" * 300), False),
        ("iopin/$subscribers/added", added(7), False),
        ("iopin/$subscribers/added", added("+/pin", ["meter"]), False),
        ("iopin/$subscribers/added", "not json", False),
        ("iopin/$subscribers/added", "[1, 2]", False),
        ("iopin/$subscribers/added", "NaN", False),
        ("iopin/$subscribers/added", '{"pattern": "+/pin"}', False),
    ],
    ids=repr,
)
def test_an_announcement_is_taken_only_if_it_is_well_formed_and_about_the_grid(key: str, data: str, taken: bool):
    """A publisher's $subscribers/added names a node of the grid and a valid pattern; anything else is ignored."""
    subscriptions = Subscriptions()
    assert subscriptions.heard(key, data, NODES) is taken
    assert subscriptions.version == int(taken)
    assert bool(subscriptions.held) is taken


def test_a_subscription_lasts_while_a_publisher_holds_it():
    """Held at two publishers, it stays until both removed it or went offline; a repeat changes nothing."""
    subscriptions = Subscriptions()
    for publisher in ("clock", "iopin"):
        assert subscriptions.heard(f"{publisher}/$subscribers/added", added("+/pin"), NODES)
    assert not subscriptions.heard("iopin/$subscribers/added", added("+/pin"), NODES)
    assert subscriptions.held == {("meter", "+/pin"): {"clock", "iopin"}} and subscriptions.version == 2
    assert subscriptions.heard("clock/$subscribers/removed", added("+/pin"), NODES)
    assert subscriptions.held == {("meter", "+/pin"): {"iopin"}}
    subscriptions.lost("clock")  # holds nothing: nothing changes
    assert subscriptions.version == 3
    subscriptions.lost("iopin")
    assert subscriptions.held == {} and subscriptions.version == 4


def test_a_subscribers_report_names_what_it_subscribed_to_before_the_dashboard_listened():
    """A report replaces the subscriber's previous one (valid, non-system patterns only); a 'removed' takes a pattern
    from it too; a subscriber that goes offline has none."""
    subscriptions = Subscriptions()
    subscriptions.reported("meter", ["+/pin", "iopin/#", "+/$state", "a/#/b", 7, "x" * 300], NODES)
    assert subscriptions.held == {("meter", "+/pin"): {REPORTED}, ("meter", "iopin/#"): {REPORTED}}
    subscriptions.reported("meter", ["+/pin", "clock/tick"], NODES)
    assert subscriptions.held == {("meter", "+/pin"): {REPORTED}, ("meter", "clock/tick"): {REPORTED}}
    subscriptions.reported("meter", "not a list", NODES)
    subscriptions.reported("ghost", ["#"], NODES)  # not a node of the grid
    assert subscriptions.held == {}
    subscriptions.reported("meter", ["+/pin", "clock/tick"], NODES)
    assert subscriptions.heard("iopin/$subscribers/added", added("+/pin"), NODES)
    assert subscriptions.heard("clock/$subscribers/removed", added("clock/tick"), NODES)  # unsubscribed
    assert subscriptions.held == {("meter", "+/pin"): {REPORTED, "iopin"}}
    subscriptions.lost("meter")  # offline: it subscribes to nothing
    assert subscriptions.held == {}


def test_announcements_past_the_bound_are_not_kept():
    """HELD subscriptions at most, whatever a subscriber asks; the overflow is counted (the dashboard says it once)."""
    subscriptions = Subscriptions()
    for n in range(HELD + 5):
        subscriptions.heard("iopin/$subscribers/added", added(f"p/{n}"), NODES)
    assert len(subscriptions.held) == HELD and subscriptions.overflow == 5


KEYS = ["clock/tick", "iopin/pin", "iopin/$state", "buzzer/sound", "stranger/pin"]


@pytest.mark.parametrize(
    ("grid", "announced", "edges", "dangling"),
    [
        # The meter of docs/topics.md: +/pin matches iopin's pin (a stranger's is not drawn: not in the grid).
        ([("meter", "+/pin")], [], [("iopin", "meter", "+/pin", "grid")], []),
        # '#' matches every node that published, never a system key; the dashboard's own is drawn too.
        (
            [("dashboard", "#")],
            [],
            [("clock", "dashboard", "#", "grid"), ("iopin", "dashboard", "#", "grid")],
            [],
        ),
        # A pattern no key heard matches yet dangles on its subscriber.
        ([("meter", "senser/temp")], [], [], [("meter", "senser/temp", "grid")]),
        # Announced only: made at run time.
        ([], [("iopin", "meter", "iopin/#")], [("iopin", "meter", "iopin/#", "run time")], []),
        # In the grid and announced: the grid's.
        ([("meter", "+/pin")], [("iopin", "meter", "+/pin")], [("iopin", "meter", "+/pin", "grid")], []),
        # A node subscribed to its own keys.
        ([("clock", "clock/tick")], [], [("clock", "clock", "clock/tick", "grid")], []),
        # System patterns in the grid are bookkeeping: not drawn.
        ([("meter", "+/$state")], [], [], []),
        # A subscriber that is not a node of the grid: not drawn.
        ([("ghost", "#")], [], [], []),
    ],
    ids=repr,
)
def test_graph_table(
    grid: list[tuple[str, str]],
    announced: list[tuple[str, str, str]],
    edges: list[tuple[str, str, str, str]],
    dangling: list[tuple[str, str, str]],
):
    """Each subscription matched against the keys heard: an edge from each publisher of a matching key, else dangling."""
    subscriptions = Subscriptions()
    for publisher, subscriber, pattern in announced:
        assert subscriptions.heard(f"{publisher}/$subscribers/added", added(pattern, subscriber), NODES)
    graph = subscriptions.graph(grid, KEYS, NODES)
    assert [(e["publisher"], e["subscriber"], e["pattern"], e["source"]) for e in graph["edges"]] == edges
    assert [(d["subscriber"], d["pattern"], d["source"]) for d in graph["dangling"]] == dangling


def test_the_graph_is_bounded_whatever_the_grid_and_the_publishers_say():
    """SUBSCRIPTIONS drawn at most, with EDGES edges at most; the total says how many there were."""
    nodes = [f"n{i:03d}" for i in range(EDGES)]
    keys = [f"{node}/x" for node in nodes]
    graph = Subscriptions().graph([(node, "#") for node in nodes], keys, nodes)
    assert len(graph["edges"]) == EDGES and graph["total"] == EDGES
    graph = Subscriptions().graph([("n000", f"n000/{i}") for i in range(SUBSCRIPTIONS + 10)], keys, nodes)
    assert len(graph["dangling"]) == SUBSCRIPTIONS and graph["total"] == SUBSCRIPTIONS + 10


class Quiet(FactoryLoop):
    """Publishes and subscribes only when the test asks (through its node)."""

    @reactive
    async def loop(self, channel: str, message: str) -> None:
        return None


async def next_graph(ws: ClientConnection, wanted: Any, within: float = DEADLINE) -> dict[str, Any]:
    """The next graph message the feed sends for which ``wanted(graph)`` holds (snapshots are skipped)."""
    async with asyncio.timeout(within):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == "graph" and wanted(message):
                return message


def pairs(graph: dict[str, Any]) -> set[tuple[str, ...]]:
    return {(e["publisher"], e["subscriber"], e["pattern"], e["source"]) for e in graph["edges"]} | {
        ("", d["subscriber"], d["pattern"], d["source"]) for d in graph["dangling"]
    }


async def test_the_feed_sends_the_graph_and_follows_a_subscription_made_at_run_time(virtual_time):
    """A page gets the grid's subscriptions (the meter's +/pin from pub, its misspelt one dangling, the dashboard's
    '#'), then one the watcher makes at run time: dangling until its key is published, an edge once it is, gone
    once the watcher unsubscribes."""
    grid = build_grid(
        {
            "pub": {"sketch": "quiet", "port": 0},
            "meter": {"sketch": "quiet", "port": 0, "subscribe": ["+/pin", "senser/temp"]},
            "watcher": {"sketch": "quiet", "port": 0},
            "dashboard": {"sketch": "dashboard", "port": 0, "subscribe": ["#"]},
        }
    )
    nodes = {name: Node(Quiet, name, grid, reconnect_delays=fast_backoff) for name in ("pub", "meter", "watcher")}
    nodes["dashboard"] = Node(Dashboard, "dashboard", grid, reconnect_delays=fast_backoff)
    await start_together(list(nodes.values()))
    try:
        pub, watcher, dashboard = nodes["pub"], nodes["watcher"], nodes["dashboard"].sketch
        # The dashboard's '#', '+/$state' and '+/$subscribers/+', and the meter's '+/pin'.
        await until(lambda: pub.hub.count == 4, "the dashboard and the meter to subscribe to pub")
        await pub.sender.publish("pin", 1)
        await until(lambda: "pub/pin" in dashboard.last, "pub/pin at the dashboard")
        async with connect(f"ws://{nodes['dashboard'].address}/feed", open_timeout=DEADLINE) as ws:
            graph = await next_graph(ws, lambda g: ("pub", "meter", "+/pin", "grid") in pairs(g))
            assert pairs(graph) == {
                ("pub", "meter", "+/pin", "grid"),
                ("", "meter", "senser/temp", "grid"),
                ("pub", "dashboard", "#", "grid"),
            }
            began = asyncio.get_running_loop().time()
            await watcher.subscribe("pub/temp", lambda key, data: None)
            graph = await next_graph(ws, lambda g: ("", "watcher", "pub/temp", "run time") in pairs(g))
            assert asyncio.get_running_loop().time() - began < GRAPH_RESEND  # sent as it changed, not resent later
            await pub.sender.publish("temp", "21.5")
            await next_graph(ws, lambda g: ("pub", "watcher", "pub/temp", "run time") in pairs(g))
            await watcher.unsubscribe("pub/temp")
            graph = await next_graph(ws, lambda g: not any(e["subscriber"] == "watcher" for e in g["edges"]))
            assert pairs(graph) == {
                ("pub", "meter", "+/pin", "grid"),
                ("", "meter", "senser/temp", "grid"),
                ("pub", "dashboard", "#", "grid"),
            }
    finally:
        await stop_together(list(nodes.values()))


async def test_a_subscription_made_before_the_dashboard_began_is_drawn_from_its_subscribers_report(virtual_time):
    """The watcher subscribes at run time, then the dashboard begins: it never heard the announcement, and asks each
    node what it subscribes to: the pattern dangles, an edge once its key is published, gone once unsubscribed."""
    pub_port, watcher_port, dashboard_port = free_ports(3)
    grid = build_grid(
        {
            "pub": {"sketch": "quiet", "port": pub_port},
            "watcher": {"sketch": "quiet", "port": watcher_port},
            "dashboard": {"sketch": "dashboard", "port": dashboard_port, "subscribe": ["#"]},
        }
    )
    early = [Node(Quiet, name, grid, reconnect_delays=fast_backoff) for name in ("pub", "watcher")]
    dashboard = Node(Dashboard, "dashboard", grid, reconnect_delays=fast_backoff)
    await start_together(early)
    try:
        pub, watcher = early
        assert await watcher.subscribe("pub/temp", lambda key, data: None) == 1
        await start_together([dashboard])
        async with connect(f"ws://{dashboard.address}/feed", open_timeout=DEADLINE) as ws:
            await next_graph(ws, lambda g: ("", "watcher", "pub/temp", "run time") in pairs(g))  # nothing on it yet
            await pub.sender.publish("temp", "21.5")
            await next_graph(ws, lambda g: ("pub", "watcher", "pub/temp", "run time") in pairs(g))
            await watcher.unsubscribe("pub/temp")
            await next_graph(ws, lambda g: not any(e["subscriber"] == "watcher" for e in g["edges"]))
    finally:
        await stop_together([*early, dashboard])


async def test_an_unchanged_graph_is_matched_once_and_sent_again_now_and_then(virtual_time):
    """While nothing changes, the dashboard matches nothing again, and sends the same graph every GRAPH_RESEND."""
    grid = build_grid(
        {"dashboard": {"sketch": "dashboard", "port": 0, "subscribe": ["#"], "params": {"period": 100 * MS}}}
    )
    node = Node(Dashboard, "dashboard", grid)
    await node.open()
    node.begin()
    try:
        dashboard = node.sketch
        async with connect(f"ws://{node.address}/feed", open_timeout=DEADLINE) as ws:
            first = await next_graph(ws, lambda g: True)
            matched = dashboard.graph_at
            began = asyncio.get_running_loop().time()
            again = await next_graph(ws, lambda g: True, within=GRAPH_RESEND + DEADLINE)
            assert again == first and dashboard.graph_at == matched
            assert GRAPH_RESEND - 0.5 <= asyncio.get_running_loop().time() - began <= GRAPH_RESEND + 1
    finally:
        await node.stop()


def test_the_dashboards_page_states_the_bounds_the_code_keeps():
    """docs/dashboard.md's figures are the constants of the dashboard and of its page (static/app.js)."""
    page = " ".join((ROOT / "docs" / "dashboard.md").read_text().split())  # as one line: wrapped anywhere
    script = (ROOT / "sketches" / "dashboard" / "static" / "app.js").read_text()
    assert f"at most {HELD:,} subscriptions kept, {SUBSCRIPTIONS} drawn, {EDGES} edges" in page
    figures = {name: int(value) for name, value in re.findall(r"\b([A-Z_]+) = (\d+)\b", script)}
    assert figures["SUB_EDGES"] == EDGES
    assert (
        f"at most {figures['STRIP_POINTS']:,} points a key and {figures['STRIP_ROWS']} rows, and redraws at "
        f"most {figures['FRAME_POINTS']:,} points an animation frame" in page
    )


async def test_the_dashboard_says_once_that_it_heard_of_more_subscriptions_than_it_keeps(caplog):
    """Past HELD announced subscriptions, one warning line, however many more come."""
    grid = build_grid(
        {"meter": {"sketch": "quiet"}, "dashboard": {"sketch": "dashboard", "port": 0, "subscribe": ["#"]}}
    )
    node = Node(Dashboard, "dashboard", grid)
    await node.open()
    try:
        for n in range(HELD + 10):
            await node.sketch.announced("dashboard/$subscribers/added", added(f"p/{n}"))
        assert len(node.sketch.subscriptions.held) == HELD
        warnings = [r.getMessage() for r in caplog.records if "subscriptions" in r.getMessage()]
        assert warnings == [f"heard of more than {HELD} subscriptions: drawing those heard first"]
    finally:
        await node.stop()
