"""One link's outbox, in memory and in SQLite: ids, room and storage together, with no socket."""

from __future__ import annotations

import asyncio
import json

import pytest

from mesh.errors import ProtocolError, RemoteError
from mesh.outbox import DurableOutbox, MemoryOutbox, Outbox
from tests.helpers import until


class Flushes:
    """A ``flush`` that records what the outbox handed it."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    async def __call__(self, ids: list[int]) -> None:
        self.calls.append(list(ids))


def datas(outbox: Outbox) -> list[tuple[int, str]]:
    return [(msg_id, json.loads(frame)["data"]) for msg_id, frame in outbox.frames()]


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    """The node's storage: nothing kept, or a SQLite file in a temporary folder."""
    kept = MemoryOutbox() if request.param == "memory" else DurableOutbox(tmp_path, "clock")
    yield kept
    kept.close()


async def test_messages_are_numbered_from_one_and_listed_in_order(store):
    """take() numbers messages 1, 2, 3 and hands them to flush once; frames() lists them in id order."""
    outbox = Outbox("iopin", store=store)
    flush = Flushes()
    futures = await outbox.take("pin", ["a", "b", "c"], flush)
    assert flush.calls == [[1, 2, 3]]
    assert len(outbox) == 3 and 2 in outbox
    assert datas(outbox) == [(1, "a"), (2, "b"), (3, "c")]
    assert json.loads(outbox.frames()[0][1]) == {"type": "msg", "id": 1, "channel": "pin", "data": "a"}
    assert not any(future.done() for future in futures)


async def test_frames_lists_the_unacked_among_ids_above_a_mark(store):
    """frames(ids, after) skips what was acked and what is at or below ``after``."""
    outbox = Outbox("iopin", store=store)
    await outbox.take("", ["a", "b", "c", "d"], Flushes())
    outbox.ack(3, "ok")
    assert [msg_id for msg_id, _ in outbox.frames([1, 2, 3, 4], after=1)] == [2, 4]
    assert [msg_id for msg_id, _ in outbox.frames(after=2)] == [4]


async def test_an_ack_resolves_its_future_and_frees_its_room(store):
    """ack() resolves the message's future with the peer's answer, counts it, and leaves the outbox."""
    outbox = Outbox("iopin", store=store)
    first, second = await outbox.take("", ["a", "b"], Flushes())
    assert outbox.ack(2, "two") is True
    assert second.result() == "two" and not first.done()
    assert outbox.acked == 1 and len(outbox) == 1
    assert outbox.ack(2, "again") is False  # not ours any more
    assert outbox.ack(99, "never sent") is False
    assert outbox.acked == 1


async def test_an_error_answer_fails_only_its_message(store):
    """refuse() fails the message's future with the error; the others wait on."""
    outbox = Outbox("iopin", store=store)
    first, second = await outbox.take("", ["a", "b"], Flushes())
    assert outbox.refuse(1, RemoteError("iopin", "loop() failed")) is True
    with pytest.raises(RemoteError, match="loop\\(\\) failed"):
        first.result()
    assert not second.done() and len(outbox) == 1 and outbox.acked == 0
    assert outbox.refuse(1, RemoteError("iopin", "again")) is False


async def test_take_waits_for_room_after_handing_over_what_it_took(store):
    """A full outbox: take() flushes what it took, then waits until an ack gives room back."""
    outbox = Outbox("iopin", room=2, store=store)
    flush = Flushes()
    taking = asyncio.create_task(outbox.take("", ["a", "b", "c"], flush))
    await until(lambda: flush.calls == [[1, 2]], "the first two to be handed over")
    assert not taking.done() and len(outbox) == 2
    outbox.ack(1, "ok")
    futures = await taking
    assert flush.calls == [[1, 2], [3]]
    assert len(futures) == 3 and [msg_id for msg_id, _ in outbox.frames()] == [2, 3]


async def test_takers_waiting_for_room_get_it_in_turn_and_a_cancelled_one_passes_it_on(store):
    """A full outbox: waiting takers get room in the order they came; one cancelled, even once handed
    room, gives it to the next; has_room() says no while anyone waits."""
    outbox = Outbox("iopin", room=1, store=store)
    await outbox.take("", ["a"], Flushes())
    first = asyncio.create_task(outbox.take("", ["b"], Flushes()))
    second = asyncio.create_task(outbox.take("", ["c"], Flushes()))
    third = asyncio.create_task(outbox.take("", ["d"], Flushes()))
    await until(lambda: len(outbox._waiters) == 3, "three takers waiting")
    assert not outbox.has_room(1)
    outbox.ack(1, "ok")  # the room goes to the first...
    first.cancel()  # ...which is cancelled before it runs: the second gets it
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert [json.loads(frame)["data"] for _, frame in outbox.frames()] == ["c"]
    assert not third.done()
    third.cancel()
    with pytest.raises(asyncio.CancelledError):
        await third
    assert not outbox._waiters and not outbox.has_room(1)
    assert outbox.ack(outbox.frames()[0][0], "ok")
    assert outbox.has_room(1)


async def test_failing_everything_gives_all_the_room_back(store):
    """fail_all() fails every pending future with the error and empties the outbox: take() goes on at once."""
    outbox = Outbox("iopin", room=2, store=store)
    futures = await outbox.take("", ["a", "b"], Flushes())
    error = ConnectionError("gone")
    outbox.fail_all(error)
    assert len(outbox) == 0 and all(future.exception() is error for future in futures)
    assert len(await outbox.take("", ["c", "d"], Flushes())) == 2


async def test_a_message_over_the_peers_limit_is_refused_before_it_is_taken(store):
    """Past ``max_size`` take() raises ProtocolError, hands over what it took before, and keeps no room."""
    outbox = Outbox("echo", room=2, store=store, max_size=100)
    flush = Flushes()
    with pytest.raises(ProtocolError) as caught:
        await outbox.take("", ["small", "x" * 200], flush)
    assert str(caught.value) == "a message of 244 bytes is over echo's limit of 100 bytes (max_size)"
    assert flush.calls == [[1]] and [msg_id for msg_id, _ in outbox.frames()] == [1]
    assert len(await outbox.take("", ["fits"], Flushes())) == 1  # the room of the refused one came back


async def test_take_now_takes_what_fits_at_once_and_nothing_when_it_would_wait(store):
    """take_now() takes messages as take() does (numbered, stored, one future each) when the outbox has room for
    all of them and their frames fit ``limit`` bytes; otherwise it takes none, and uses up no id nor room."""
    outbox = Outbox("iopin", room=3, store=store)
    futures, frames, last = outbox.take_now("pin", ["a", "b"], 1000)
    assert last == 2 and [json.loads(frame)["id"] for frame in frames] == [1, 2]
    assert datas(outbox) == [(1, "a"), (2, "b")] and not any(future.done() for future in futures)
    assert outbox.take_now("", ["c", "d"], 1000) is None  # room for one
    assert outbox.take_now("", ["c"], 10) is None  # over the limit: written by take() in several batches
    assert outbox.take_now("", [], 1000) is None
    waiting = asyncio.create_task(outbox.take("", ["c", "d"], Flushes()))
    await until(lambda: not outbox.has_room(1), "take() to wait for room")
    outbox.ack(1, "ok")
    assert outbox.take_now("", ["e"], 1000) is None  # room came back, but it is the waiting taker's
    outbox.ack(2, "ok")
    await waiting
    assert [msg_id for msg_id, _ in outbox.frames()] == [3, 4]


async def test_ids_of_other_frames_come_from_the_same_counter(store):
    """next_id() gives ids that no message of the link has, so answers can be told apart."""
    outbox = Outbox("iopin", store=store)
    await outbox.take("", ["a"], Flushes())
    assert outbox.next_id() == 2
    await outbox.take("", ["b"], Flushes())
    assert [msg_id for msg_id, _ in outbox.frames()] == [1, 3]


async def test_each_link_of_a_node_has_its_own_session():
    """A memory outbox starts a fresh session every time: nothing is resumed."""
    store = MemoryOutbox()
    one, two = Outbox("iopin", store=store), Outbox("iopin", store=store)
    assert one.session != two.session and len(one.session) == 12
    assert one.resumed == 0 and one.resume() is False


async def test_a_durable_outbox_resumes_after_a_restart(tmp_path):
    """What a killed run left unacked comes back in order, same session, same ids; new ids follow on."""
    store = DurableOutbox(tmp_path, "clock")
    before = Outbox("iopin", store=store)
    await before.take("tick", ["1", "2", "3", "4"], Flushes())
    before.ack(2, "ok")
    store.close()  # killed: nothing else happens

    again = DurableOutbox(tmp_path, "clock")
    try:
        assert again.peers() == ["iopin"]
        after = Outbox("iopin", room=5, store=again)
        assert after.session == before.session and after.resumed == 3
        assert datas(after) == [(1, "1"), (3, "3"), (4, "4")]
        assert after.resume() is True
        futures = await after.take("tick", ["5", "6"], Flushes())  # room 5, 3 resumed: 2 left
        assert [msg_id for msg_id, _ in after.frames()] == [1, 3, 4, 5, 6]
        assert not futures[0].done()
        after.fail_all(ConnectionError("closing"))  # resumed futures nobody awaits: no warning
    finally:
        again.close()


async def test_a_durable_outbox_forgets_what_was_answered(tmp_path):
    """An ack or an error removes the stored copy; failing everything keeps it for the next run."""
    store = DurableOutbox(tmp_path, "clock")
    try:
        outbox = Outbox("iopin", store=store)
        await outbox.take("", ["a", "b", "c"], Flushes())
        outbox.ack(1, "ok")
        outbox.refuse(2, RemoteError("iopin", "no"))
        outbox.fail_all(ConnectionError("closing"))
        assert store.pending("iopin") == [(3, "", "c")]
    finally:
        store.close()
