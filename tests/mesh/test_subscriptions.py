"""A link's subscriptions: patterns kept across reconnects and the waiters for their confirmation, no sockets."""

from __future__ import annotations

import json

from mesh.subscriptions import Subscriptions


async def test_a_confirmed_pattern_settles_its_waiters_only():
    """An ack of a subscribe frame tells the callers for that pattern True; the others wait on."""
    subs = Subscriptions()
    pin, also_pin, temp = subs.add("iopin/pin"), subs.add("iopin/pin"), subs.add("meter/temp")
    assert json.loads(subs.subscribe_frame(7, "iopin/pin")) == {"type": "sub", "id": 7, "pattern": "iopin/pin"}
    assert subs.answered(7, True) == "iopin/pin"
    assert pin.result() is True and also_pin.result() is True and not temp.done()
    assert subs.answered(7, True) is None  # answered once


async def test_a_refused_pattern_is_kept_for_the_next_connection():
    """An error answer tells the waiters False; the pattern stays, to be asked again after a reconnect."""
    subs = Subscriptions()
    waiter = subs.add("iopin/#")
    subs.subscribe_frame(3, "iopin/#")
    assert subs.answered(3, False) == "iopin/#"
    assert waiter.result() is False and "iopin/#" in subs and list(subs.patterns) == ["iopin/#"]


async def test_an_unreachable_peer_settles_every_waiter():
    """settle(None, False): nobody waits for a peer that cannot be reached now."""
    subs = Subscriptions()
    waiters = [subs.add("a/#"), subs.add("b/#")]
    subs.settle(None, False)
    assert [w.result() for w in waiters] == [False, False] and bool(subs)


async def test_answers_from_an_old_connection_are_not_taken():
    """After a new connection, an answer to a frame sent on the old one matches nothing."""
    subs = Subscriptions()
    waiter = subs.add("a/#")
    subs.subscribe_frame(1, "a/#")
    subs.connected()
    assert subs.answered(1, True) is None and not waiter.done()


def test_patterns_come_and_go_in_order():
    """remove() says whether the pattern was kept; the rest keep the order they were asked in."""
    subs = Subscriptions()
    subs.patterns.update(dict.fromkeys(["c/#", "a/#", "b/#"]))
    assert subs.remove("a/#") is True and subs.remove("a/#") is False
    assert list(subs.patterns) == ["c/#", "b/#"]
    assert json.loads(subs.unsubscribe_frame(9, "c/#")) == {"type": "unsub", "id": 9, "pattern": "c/#"}
    assert subs.answered(9, True) == "c/#"
    assert not Subscriptions()
