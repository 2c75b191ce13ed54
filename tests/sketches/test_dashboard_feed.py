"""The dashboard's feed, without a browser: what a page is sent, from real nodes on port 0 in this event loop.

The browser tests (test_dashboard.py) show what the page draws of it; these pin the
snapshot down: each node's latest value, the history a page opens with, no system key
on a card, and a rate that holds between ticks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.asyncio.client import connect

from mesh.grid import build_grid
from nodes import FactoryLoop, Node, reactive
from nodes.circuit import start_together, stop_together
from sketches.dashboard import KEYS, RECENT, SNAPSHOT_BYTES, TEXT, Dashboard, Rate
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


async def test_a_page_opens_with_the_recent_history_then_gets_only_what_is_new():
    """The first snapshot is full (the last 50 messages, numbered); later ones carry only newer numbers."""
    nodes = await start_circuit(build_grid(circuit(), WIRES))
    try:
        dashboard = nodes["dashboard"].sketch
        await until(lambda: dashboard.heard > RECENT + 10, "more messages than the history keeps")
        async with connect(f"ws://{nodes['dashboard'].address}/feed", open_timeout=DEADLINE) as ws:
            first = json.loads(await ws.recv())
            assert first["type"] == "snapshot" and first["full"] is True
            numbers = [m["n"] for m in first["recent"]]
            assert len(numbers) == RECENT
            assert numbers == list(range(numbers[0], numbers[0] + RECENT))  # the newest 50, in order
            assert {m["key"] for m in first["recent"]} <= {"clock/tick", "iopin/pin", "buzzer/sound"}
            seen = numbers[-1]
            fresh: list[int] = []
            while len(fresh) < 20:
                snapshot = json.loads(await ws.recv())
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
            snapshot = json.loads(await ws.recv())
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
        await until(lambda: pub.hub.count == 2, "the dashboard to subscribe to pub (# and, by itself, +/$state)")
        sent = 0
        for chunk in range(12):  # in chunks, so that no message is dropped for falling behind
            for n in range(chunk * 100, chunk * 100 + 100):
                await pub.publish(f"k{n:04d}", n)
            sent += 100
            await until(lambda sent=sent: dashboard.heard == sent, f"{sent} messages at the dashboard")
        await pub.publish("long" + "x" * 246, "y" * 100_000)
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
    """More than KEYS keys, each key and value longer than TEXT and escaped by JSON (6 bytes a character): under SNAPSHOT_BYTES."""
    grid = build_grid({"dashboard": {"sketch": "dashboard", "port": 0, "subscribe": ["#"]}})
    node = Node(Dashboard, "dashboard", grid)
    await node.open()
    try:
        dashboard = node.sketch
        for n in range(KEYS + 100):
            await dashboard.count(f"pub/{n:05d}" + "\x01" * (TEXT * 2), "\x02" * (TEXT * 10))
        text = dashboard.snapshot(full=True)
        assert len(dashboard.counts) == KEYS and len(json.loads(text)["recent"]) == RECENT
        assert SNAPSHOT_BYTES * 0.8 < len(text) < SNAPSHOT_BYTES
    finally:
        await node.stop()
