"""nodes.sessions: each grid peer's sessions and the guests' pool, bounded, kept across reload; who a hello may be."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mesh.grid import build_grid
from nodes import delivery
from nodes import sessions as sessions_module
from nodes.sessions import GUEST_SESSIONS, KEEP_PER_PEER, Sessions, could_be
from tests.nodes.test_delivery import hello, pair, started, three


async def test_each_grid_peer_keeps_its_own_sessions_and_guests_share_a_small_pool():
    """Per grid peer its last KEEP_PER_PEER sessions (unused ones out first); guests: LRU of GUEST_SESSIONS."""
    grid = three()
    sessions = Sessions(grid=lambda: grid, own="rx")
    ok = (True, "ok")

    async def run() -> tuple[bool, str]:
        return ok

    ty = sessions.get("ty", "old")
    await ty.handle(1, run)
    tx = [sessions.get("tx", f"s{n}") for n in range(KEEP_PER_PEER)]
    await tx[0].handle(1, run)  # the only one of tx's that handled a message
    for n in range(1000):
        sessions.get(f"echo-{n}", "x")
        sessions.get("rx", f"itself-{n}")  # a hello naming the receiver itself is a guest's
    assert sessions.get("ty", "old") is ty and sessions.get("tx", "s0") is tx[0]
    newer = sessions.get("tx", "new")  # one too many for tx: its least recently used that never handled one goes
    assert len(sessions) == GUEST_SESSIONS + 1 + KEEP_PER_PEER
    assert sessions.get("tx", "s0") is tx[0] and sessions.get("tx", "new") is newer
    assert sessions.get("tx", "s1") is not tx[1]  # forgotten, made again
    assert sessions.get("ty", "old") is ty
    assert sessions.get("echo-0", "x") is not sessions.get("echo-999", "x")
    # What a guest claims costs a slot no more than KEY_CHARS characters, and stays its own.
    long = sessions.get("g" * 100_000, "s" * 100_000)
    assert sessions.get("g" * 100_000, "s" * 100_000) is long
    assert sessions.get("g" * 100_000, "s" * 99_999 + "t") is not long
    assert len(long.name) <= 2 * (len("sha256:") + 64) + 1


async def test_a_grid_peers_session_in_use_is_never_forgotten_even_before_its_first_message():
    """Hellos of fresh sessions naming tx (anyone can) do not push out the session tx's link uses now."""
    grid = three()
    sessions = Sessions(grid=lambda: grid, own="rx")
    live = sessions.get("tx", "link")
    live.connections += 1  # what a connection that greeted with it does
    for n in range(10 * KEEP_PER_PEER):
        sessions.get("tx", f"liar-{n}")
    assert sessions.get("tx", "link") is live
    live.connections -= 1  # its connection is gone: it may go now, after those that handled nothing
    for n in range(10 * KEEP_PER_PEER):
        sessions.get("tx", f"other-{n}")
    assert sessions.get("tx", "link") is not live


async def test_hellos_claiming_a_peers_name_do_not_push_out_its_newest_session_while_its_wire_is_cut():
    """The peer's link handled messages, then lost its connection (a cut wire); meanwhile more connections than
    KEEP_PER_PEER greet with fresh sessions in its name. Its session stays: the re-sent message is a duplicate."""
    grid = three()
    sessions = Sessions(grid=lambda: grid, own="rx")
    ran: list[int] = []

    async def run(n: int) -> tuple[bool, str]:
        ran.append(n)
        return True, "ok"

    link = sessions.get("tx", "link")
    link.connections += 1
    for n in (1, 2):
        await link.handle(n, lambda n=n: run(n))
    link.connections -= 1  # the wire is cut before tick 2's ack left
    for n in range(10 * KEEP_PER_PEER):
        sessions.get("tx", f"liar-{n}").connections += 1  # each still connected
    again = sessions.get("tx", "link")  # the link is back, with its session
    assert again is link
    assert await again.handle(2, lambda: run(2)) == (True, "ok") and ran == [1, 2]
    # A newer session that handled messages (the peer restarted, not durable) takes the pin over.
    restarted = sessions.get("tx", "restarted")
    await restarted.handle(1, lambda: run(1))
    for n in range(10 * KEEP_PER_PEER):
        sessions.get("tx", f"other-{n}")
    assert sessions.get("tx", "restarted") is restarted and sessions.get("tx", "link") is not link


async def test_a_reload_moves_a_guest_into_the_grid_and_forgets_nodes_that_left():
    """The grid is read as it is now: a name it gains is a peer, one it loses is a guest again."""
    grids = [pair()]
    sessions = Sessions(grid=lambda: grids[-1], own="rx")
    early = sessions.get("ty", "s")  # not in the grid yet
    await early.handle(1, lambda: asyncio.sleep(0, (True, "ok")))
    await early.handle(1, lambda: asyncio.sleep(0, (True, "again")))
    grids.append(three())
    assert sessions.is_peer("ty") and sessions.get("ty", "s") is early and early.window == delivery.WINDOW
    grids.append(pair())  # ty left the grid again
    assert sessions.get("tx", "t") is not None  # a new peer pool: the former peers are forgotten
    assert sessions.get("ty", "s") is not early
    assert sessions.duplicates == 1  # the forgotten session's duplicate still counts


@pytest.mark.parametrize(
    ("host", "remote", "local", "could"),
    [
        ("127.0.0.1", "127.0.0.1", "127.0.0.1", True),
        ("localhost", "127.0.0.5", "127.0.0.1", True),  # any loopback is loopback
        ("127.0.0.1", "::1", "::1", True),
        ("::1", "127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "::ffff:127.0.0.1", "::ffff:127.0.0.1", True),
        ("0.0.0.0", "203.0.113.9", "10.0.0.1", True),  # a wildcard could be anywhere
        ("::", "203.0.113.9", "10.0.0.1", True),
        ("pi.local", "203.0.113.9", "10.0.0.1", True),  # a name: no DNS lookup to tell
        ("203.0.113.9", "203.0.113.9", "10.0.0.1", True),
        ("203.0.113.9", "::ffff:203.0.113.9", "10.0.0.1", True),
        ("203.0.113.9", "203.0.113.10", "10.0.0.1", False),
        ("127.0.0.1", "203.0.113.10", "10.0.0.1", False),  # from another machine: not a loopback node
        ("127.0.0.1", "10.0.0.1", "10.0.0.1", True),  # from this machine's own address
        ("192.0.2.7", "127.0.0.1", "127.0.0.1", False),  # this machine, which has no 192.0.2.7
        ("10.0.0.1", "127.0.0.1", "127.0.0.1", True),  # ... but has 10.0.0.1 (is_local below)
    ],
)
def test_could_be(host, remote, local, could):
    """Whether a connection from `remote` can come from a node the grid puts at `host`."""
    assert could_be(host, remote, local, lambda h: h == "10.0.0.1") is could


async def test_a_hello_naming_a_grid_node_from_an_address_that_cannot_be_it_is_logged(caplog):
    """One warning line (then rate-limited), the peer's name escaped; the hello is still answered."""
    caplog.set_level(logging.WARNING)
    grid = build_grid(
        {
            "rx": {"sketch": "recorder", "port": 0},
            "tx": {"sketch": "recorder", "host": "192.0.2.7", "port": 9},  # TEST-NET: not this machine
            "ty": {"sketch": "recorder", "port": 10},
        },
        ["tx -> rx", "ty -> rx"],
    )
    rx = await started("rx", grid)
    try:
        for _ in range(3):
            assert await hello(rx.address, "tx", "s", "one") == [
                '{"type":"hello","node":"rx"}',
                '{"type":"ack","id":1,"data":"got one"}',
            ]
        await hello(rx.address, "ty", "s")  # at 127.0.0.1 in the grid: nothing to say
        await hello(rx.address, "echo-1", "s")  # not a grid name: nothing to check
        lines = [r.getMessage() for r in caplog.records if r.name == "mesh.rx"]
        assert lines == ["a hello from 127.0.0.1 says it is 'tx', which the grid puts at 192.0.2.7"]
        assert rx.sketch.seen == ["one"]
        rx.sessions._mismatch_logged = -sessions_module.MISMATCH_EVERY  # as if the quiet time had passed
        await hello(rx.address, "tx", "s")
        assert [r.getMessage() for r in caplog.records if r.name == "mesh.rx"][1:] == [
            "a hello from 127.0.0.1 says it is 'tx', which the grid puts at 192.0.2.7 "
            "(2 more such hello(s) since the last line)"
        ]
    finally:
        await rx.stop()
