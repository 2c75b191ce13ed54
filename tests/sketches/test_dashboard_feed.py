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
from sketches.dashboard import RECENT, Rate
from tests.helpers import DEADLINE, MS, start_circuit, stop_circuit, until


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
