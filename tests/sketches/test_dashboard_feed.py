"""The dashboard's feed, without a browser: what a page is sent, from real nodes on port 0 in this event loop.

The browser tests (test_dashboard.py) show what the page draws of it; these pin the
snapshot down: each node's latest value, the history a page opens with, no system key
on a card, and a rate that holds between ticks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from mesh.errors import GridError
from mesh.grid import build_grid
from nodes import FactoryLoop, reactive
from nodes.circuit import start_together, stop_together
from nodes.runtime import Node
from sketches.dashboard import KEYS, RECENT, SNAPSHOT_BYTES, TEXT, Dashboard, Rate
from sketches.dashboard.strip import POINTS, STRIP_POINTS, STRIP_TEXT, History, kind_of
from tests.helpers import DEADLINE, MS, fast_backoff, start_circuit, stop_circuit, until


def circuit(**dashboard: Any) -> dict[str, Any]:
    """The shipped circuit, ticking quickly and for ever, every node on port 0, and a dashboard."""
    return {
        "clock": {"sketch": "clock", "port": 0, "params": {"tacks": 0, "delay": 20 * MS}},
        "iopin": {"sketch": "iopin", "port": 0, "params": {"chance": 0.6, "sequence": 3}},
        "buzzer": {"sketch": "buzzer", "port": 0},
        "dashboard": {"sketch": "dashboard", "port": 0, "subscribe": ["#"], "params": {"period": 10 * MS}, **dashboard},
    }


WIRES = ["clock -> iopin", "iopin -> buzzer"]


async def next_snapshot(ws: ClientConnection) -> dict[str, Any]:
    """The next snapshot the feed sends (its graph messages are test_dashboard_subscriptions.py's)."""
    while True:
        message = json.loads(await ws.recv())
        if message["type"] == "snapshot":
            return message


async def test_a_page_opens_with_the_recent_history_then_gets_only_what_is_new():
    """The first snapshot is full (the last 50 messages, numbered); later ones carry only newer numbers."""
    nodes = await start_circuit(build_grid(circuit(), WIRES))
    try:
        dashboard = nodes["dashboard"].sketch
        await until(lambda: dashboard.heard > RECENT + 10, "more messages than the history keeps")
        async with connect(f"ws://{nodes['dashboard'].address}/feed", open_timeout=DEADLINE) as ws:
            first = await next_snapshot(ws)
            assert first["type"] == "snapshot" and first["full"] is True
            numbers = [m["n"] for m in first["recent"]]
            assert len(numbers) == RECENT
            assert numbers == list(range(numbers[0], numbers[0] + RECENT))  # the newest 50, in order
            assert {m["key"] for m in first["recent"]} <= {"clock/tick", "iopin/pin", "buzzer/sound"}
            seen = numbers[-1]
            fresh: list[int] = []
            while len(fresh) < 20:
                snapshot = await next_snapshot(ws)
                assert snapshot["full"] is False
                fresh += [m["n"] for m in snapshot["recent"]]
            assert fresh == sorted(fresh) and len(set(fresh)) == len(fresh)
            # A message heard between the full snapshot and the next push may come twice; the page drops it by number.
            assert fresh[0] >= numbers[0] and fresh[-1] > seen
    finally:
        await stop_circuit(nodes)


async def test_each_card_gets_its_nodes_latest_value_and_hash_brings_no_system_key():
    """'latest' names each node's last key: the tick, the pin, the sound; '#' brings no $subscribers key."""
    nodes = await start_circuit(build_grid(circuit(), WIRES))
    try:
        dashboard = nodes["dashboard"].sketch
        await until(lambda: len(dashboard.latest) == 3, "a publication from each of the three nodes")
        async with connect(f"ws://{nodes['dashboard'].address}/feed", open_timeout=DEADLINE) as ws:
            snapshot = await next_snapshot(ws)
        assert snapshot["latest"] == {"clock": "clock/tick", "iopin": "iopin/pin", "buzzer": "buzzer/sound"}
        assert snapshot["last"]["clock/tick"].isdigit()
        assert snapshot["last"]["iopin/pin"] in ("0", "1")
        assert snapshot["last"]["buzzer/sound"] in ("buzz buzz buzz", "...")
        assert not [key for key in snapshot["counts"] if "$" in key]
    finally:
        await stop_circuit(nodes)


async def test_system_keys_named_in_the_grid_are_counted_and_logged_but_never_on_a_card():
    """Subscribed to '+/$subscribers/+' as well, the dashboard hears the announcements; cards still show values."""
    nodes = await start_circuit(build_grid(circuit(subscribe=["#", "+/$subscribers/+"]), WIRES))
    try:
        dashboard = nodes["dashboard"].sketch
        await until(lambda: len(dashboard.latest) == 3, "a publication from each of the three nodes")
        await until(lambda: any(key.endswith("/$subscribers/added") for key in dashboard.counts), "a $subscribers key")
        assert all(not key.split("/")[1].startswith("$") for key in dashboard.latest.values())
    finally:
        await stop_circuit(nodes)


def bursts(seconds: int, per_tick: int = 7, period: float = 0.1) -> list[tuple[float, int]]:
    """Samples every ``period`` of the messages counted so far, when ``per_tick`` arrive half-way through each second."""
    samples, total = [], 0
    for step in range(round(seconds / period) + 1):
        now = round(step * period, 6)
        if step % round(1 / period) == round(0.5 / period):
            total += per_tick
        samples.append((now, total))
    return samples


def test_the_rate_is_a_moving_average_that_holds_between_one_hertz_ticks():
    """At 7 messages a tick, one tick a second, the rate never reads 0 between ticks and settles near 7."""
    rate = Rate(window=10.0)
    values = []
    for now, total in bursts(30):
        rate.add(now, total)
        values.append(rate.value())
    first = next(index for index, value in enumerate(values) if value)
    assert first == 5 and values[:first] == [0.0] * first  # nothing heard before the first tick
    assert min(values[first:]) > 0
    assert all(6.0 <= value <= 7.0 for value in values[-100:])  # the last 10 s: a steady figure
    assert len(rate.samples) <= 102  # only the window's samples are kept


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([], 0.0),
        ([(0.0, 0)], 0.0),
        ([(0.0, 0), (0.1, 7)], 7.0),  # less than a second sampled: counted over one second
        ([(0.0, 0), (2.0, 10)], 5.0),
        ([(0.0, 0), (5.0, 50), (15.0, 150)], 10.0),  # the sample before the window starts it
        ([(0.0, 0), (5.0, 50), (25.0, 50)], 0.0),  # nothing for longer than the window: 0
    ],
    ids=repr,
)
def test_rate_table(samples: list[tuple[float, int]], expected: float) -> None:
    """Rate.value() is the count over the window's span (at least one second)."""
    rate = Rate(window=10.0)
    for now, total in samples:
        rate.add(now, total)
    assert rate.value() == pytest.approx(expected)


class Publisher(FactoryLoop):
    """Publishes only when the test asks (through its node)."""

    @reactive
    async def loop(self, channel: str, message: str) -> None:
        return None


async def test_the_dashboard_keeps_a_bounded_number_of_keys_and_says_so_once(caplog):
    """1,200 distinct keys, one 250 characters long, one value of 100,000: 500 kept, the newest; the snapshot stays small."""
    grid = build_grid(
        {
            "pub": {"sketch": "publisher", "port": 0},
            "dashboard": {"sketch": "dashboard", "port": 0, "subscribe": ["#"], "params": {"period": 10 * MS}},
        }
    )
    nodes = {"pub": Node(Publisher, "pub", grid, reconnect_delays=fast_backoff)}
    nodes["dashboard"] = Node(Dashboard, "dashboard", grid, reconnect_delays=fast_backoff)
    await start_together(list(nodes.values()))
    try:
        pub, dashboard = nodes["pub"], nodes["dashboard"].sketch
        await until(
            lambda: pub.hub.count == 3,
            "the dashboard to subscribe to pub (# and, by itself, +/$state and +/$subscribers/+)",
        )
        sent = 0
        for chunk in range(12):  # in chunks, so that no message is dropped for falling behind
            for n in range(chunk * 100, chunk * 100 + 100):
                await pub.sender.publish(f"k{n:04d}", n)
            sent += 100
            await until(lambda sent=sent: dashboard.heard == sent, f"{sent} messages at the dashboard")
        await pub.sender.publish("long" + "x" * 246, "y" * 100_000)
        await until(lambda: dashboard.heard == 1201, "the long one")
        assert len(dashboard.last) == len(dashboard.counts) == KEYS
        assert dashboard.dropped == 1201 - KEYS
        assert "pub/k0700" not in dashboard.counts and dashboard.counts["pub/k1199"] == 1  # the newest are kept
        warnings = [
            r.getMessage() for r in caplog.records if r.name == "mesh.dashboard" and "distinct keys" in r.getMessage()
        ]
        assert warnings == [
            f"heard more than {KEYS} distinct keys: keeping the {KEYS} updated most recently (counts of the others are let go)"
        ]
        async with connect(f"ws://{nodes['dashboard'].address}/feed", open_timeout=DEADLINE, max_size=None) as ws:
            raw = await ws.recv()
        assert len(raw) < SNAPSHOT_BYTES
        snapshot = json.loads(raw)
        assert snapshot["heard"] == 1201 and snapshot["dropped"] == 1201 - KEYS and snapshot["keys"] == KEYS
        assert len(snapshot["counts"]) == KEYS and sum(snapshot["counts"].values()) == KEYS
        (long_key,) = [key for key in snapshot["last"] if key.startswith("pub/long")]
        assert len(long_key) == len(snapshot["last"][long_key]) == TEXT and long_key.endswith("…")
        assert snapshot["latest"] == {"pub": long_key}
    finally:
        await stop_together(list(nodes.values()))


async def test_the_snapshot_is_bounded_in_bytes_whatever_the_keys_carry():
    """More than KEYS keys, each key and value longer than TEXT and escaped by JSON (6 bytes a character), the strip
    full: under SNAPSHOT_BYTES."""
    grid = build_grid({"dashboard": {"sketch": "dashboard", "port": 0, "subscribe": ["#"]}})
    node = Node(Dashboard, "dashboard", grid)
    await node.open()
    try:
        dashboard = node.sketch
        for n in range(KEYS + 100):
            dashboard.count(f"pub/{n:05d}" + "\x01" * (TEXT * 2), "\x02" * (TEXT * 10))
        for _ in range(STRIP_POINTS // KEYS):  # the KEYS kept, again and again: the strip's every point used
            for n in range(100, KEYS + 100):
                dashboard.count(f"pub/{n:05d}" + "\x01" * (TEXT * 2), "\x02" * (TEXT * 10))
        text = dashboard.snapshot(full=True)
        assert len(dashboard.counts) == KEYS and len(json.loads(text)["recent"]) == RECENT
        assert len(dashboard.history) == STRIP_POINTS
        assert SNAPSHOT_BYTES * 0.8 < len(text) < SNAPSHOT_BYTES
    finally:
        await node.stop()


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (["0", "1", "1"], "bit"),
        (["1"], "bit"),
        (["0", "2"], "integer"),
        (["-3", "+4", "17"], "integer"),
        (["1", "1.5"], "real"),
        (["1e3", ".5", "5.", "-2.5E-3"], "real"),
        (["1", "x"], "string"),
        (["nan"], "string"),  # a number for float(), not for a trace
        (["inf"], "string"),
        (["1_000"], "string"),
        ([" 1"], "string"),
        ([""], "string"),
        (["\uff11"], "string"),  # a full-width digit: not ASCII
        (["buzz buzz buzz", "..."], "string"),
    ],
    ids=repr,
)
def test_kind_of_table(values: list[str], kind: str) -> None:
    """A signal's kind from all its payloads: 0/1 a bit, integers, numbers a real, anything else a string."""
    assert kind_of(values) == kind


def test_the_history_keeps_the_window_and_the_level_before_it():
    """Points older than the window go, but the newest before it stays (the level the waveform starts at)."""
    history = History(window=10.0)
    for n, (t, value) in enumerate([(0.0, "1"), (4.0, "0"), (8.0, "1"), (15.0, "0")], start=1):
        history.add(n, t, "iopin/pin", value)
    assert history.rows(now=16.0) == {
        "iopin/pin": {"kind": "bit", "points": [[2, 12.0, "0"], [3, 8.0, "1"], [4, 1.0, "0"]]}
    }
    assert history.rows(now=30.0) == {"iopin/pin": {"kind": "bit", "points": [[4, 15.0, "0"]]}}
    assert history.rows(now=30.0, since=4) == {}


def test_the_history_sends_only_what_is_new_and_widens_kinds_from_every_payload():
    """rows(since=n) carries the points numbered above n, with each key's kind from all it carried, aged out too."""
    history = History(window=1.0)
    history.add(1, 0.0, "clock/tick", "x1")
    for n in range(2, 6):
        history.add(n, float(n), "clock/tick", str(n))
    history.add(6, 5.5, "iopin/pin", "1")
    assert history.rows(now=6.0, since=4) == {
        "clock/tick": {"kind": "string", "points": [[5, 1.0, "5"]]},  # 'x1' left the window, not the kind
        "iopin/pin": {"kind": "bit", "points": [[6, 0.5, "1"]]},
    }
    history.forget("clock/tick")
    assert list(history.rows(now=6.0)) == ["iopin/pin"] and "clock/tick" not in history.kinds


def test_a_burst_of_ten_thousand_changes_a_second_stays_within_the_bounds():
    """10,000 changes in a second on one key keep POINTS (the newest); on many keys, STRIP_POINTS over all."""
    history = History()
    for n in range(10_000):
        history.add(n + 1, n / 10_000, "fast/pin", str(n % 2))
    (row,) = history.rows(now=1.0).values()
    assert len(row["points"]) == POINTS and row["points"][-1][0] == 10_000
    for n in range(10_000):
        history.add(10_001 + n, 1 + n / 10_000, f"many/{n % KEYS}", "x" * 1000)
    assert len(history) <= STRIP_POINTS and history.limit == STRIP_POINTS // (KEYS + 1)
    rows = history.rows(now=2.0)
    assert all(len(value) == STRIP_TEXT for key in rows if key != "fast/pin" for _, _, value in rows[key]["points"])


async def test_a_burst_at_the_dashboard_keeps_the_strip_and_the_snapshots_bounded():
    """10,000 changes in a second on one key: the strip keeps POINTS of them; the full snapshot carries them, the next
    regular one only what came after; every snapshot under SNAPSHOT_BYTES."""
    grid = build_grid({"dashboard": {"sketch": "dashboard", "port": 0, "subscribe": ["#"], "params": {"window": 5}}})
    node = Node(Dashboard, "dashboard", grid)
    await node.open()
    try:
        dashboard = node.sketch
        for n in range(10_000):
            dashboard.count("fast/pin", str(n % 2))
        full = json.loads(text := dashboard.snapshot(full=True))
        assert len(text) < SNAPSHOT_BYTES and full["strip"]["window"] == 5
        (row,) = full["strip"]["rows"].values()
        assert row["kind"] == "bit" and [p[0] for p in row["points"]] == list(range(10_001 - POINTS, 10_001))
        assert all(0 <= ago < 5 for _, ago, _ in row["points"])
        dashboard.push()
        dashboard.count("fast/pin", "2")
        regular = json.loads(dashboard.snapshot())
        assert regular["strip"]["rows"] == {"fast/pin": {"kind": "integer", "points": [[10_001, 0.0, "2"]]}}
    finally:
        await node.stop()


async def test_the_feed_carries_each_keys_history_of_a_running_circuit():
    """The shipped circuit: a page's first snapshot has iopin/pin as a bit, clock/tick an integer, buzzer/sound a
    string; the next ones only newer points, numbered as the messages, seconds before the snapshot."""
    nodes = await start_circuit(build_grid(circuit(), WIRES))
    try:
        dashboard = nodes["dashboard"].sketch
        await until(lambda: len(dashboard.latest) == 3, "a publication from each of the three nodes")
        async with connect(f"ws://{nodes['dashboard'].address}/feed", open_timeout=DEADLINE) as ws:
            first = await next_snapshot(ws)
            rows = first["strip"]["rows"]
            numbers = sorted(n for row in rows.values() for n, _, _ in row["points"])
            later: list[int] = []
            while not later or max(later) <= numbers[-1]:
                later += [n for row in (await next_snapshot(ws))["strip"]["rows"].values() for n, _, _ in row["points"]]
        assert {key: row["kind"] for key, row in rows.items()} == {
            "clock/tick": "integer",
            "iopin/pin": "bit",
            "buzzer/sound": "string",
        }
        assert all(0 <= ago for row in rows.values() for _, ago, _ in row["points"])
        assert numbers[-1] <= first["heard"] and len(set(numbers)) == len(numbers)
        # A point heard between the full snapshot and the next push may come twice; the page drops it by number.
        assert len(set(later)) == len(later) and {n for n in later if n <= numbers[-1]} <= set(numbers)
    finally:
        await stop_circuit(nodes)


async def test_a_window_of_no_time_is_refused_with_one_line():
    """params: {window: 0} stops the dashboard at start with one line naming the node and the param."""
    grid = build_grid({"dashboard": {"sketch": "dashboard", "port": 0, "subscribe": ["#"], "params": {"window": 0}}})
    with pytest.raises(GridError, match=r"node 'dashboard': window must be above 0 seconds, not 0$"):
        await Node(Dashboard, "dashboard", grid).open()
