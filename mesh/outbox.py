"""Outboxes: where a link keeps the messages its peer has not acknowledged yet, and how a sender awaits their acks.

:class:`Outbox` is one link's outbox, the one object that owns its message ids,
its room (``take()`` waits while it is full) and its storage together: taking a
message in, acking it, listing what is unacked in order for a reconnect, failing
what is pending, and resuming what an earlier run left.

Its storage is the node's: :class:`MemoryOutbox` keeps nothing beyond the
process (the delivery guarantee then holds while the sending node lives);
:class:`DurableOutbox` also writes every message to a SQLite file (stdlib
``sqlite3``, WAL mode), one per node, so that a node killed with SIGKILL and
started again re-sends what was not acknowledged, under the same session and
with the same ids, and the receiver drops what it had already handled.

:func:`acks` (and :func:`acks_by_target`, for several links at once) awaits the futures that
taking messages gave, in order.

A durable write is one small SQLite transaction in WAL mode with
``synchronous=NORMAL``: it survives the process being killed, not the machine
losing power.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path

from . import protocol
from .constants import DEFAULT_OUTBOX
from .errors import ProtocolError

__all__ = ["DurableOutbox", "MemoryOutbox", "Outbox", "Stored", "acks", "acks_by_target", "wake_first"]

Stored = tuple[int, str, str]  # (id, channel, data)


def wake_first(waiters: deque[asyncio.Future[None]]) -> bool:
    """Wake the first of ``waiters`` still waiting (a FIFO of turns); False if none was."""
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)
            return True
    return False


class Outbox:
    """The messages of one link to ``peer`` that the peer has not acked yet, in id order.

    ``room`` bounds how many it holds: :meth:`take` waits while it is full, and
    messages resumed from ``store`` take room too. ``max_size`` is the largest
    frame the peer accepts: a larger message is refused here rather than sent
    (the peer would close the connection with 1009 and it would be re-sent forever).
    Every message leaves by :meth:`ack`, :meth:`refuse` or :meth:`fail_all`,
    which give its room back; its stored copy goes with an ack or a refusal.
    Needs a running event loop.
    """

    def __init__(
        self,
        peer: str,
        *,
        room: int = DEFAULT_OUTBOX,
        store: MemoryOutbox | None = None,
        max_size: int | None = None,
    ) -> None:
        self.peer = peer
        self.store = store or MemoryOutbox()
        self.max_size = max_size
        self._durable = self.store.path is not None
        #: Acks received for messages nobody had given up on.
        self.acked = 0
        kept = self.store.session(peer)
        #: Names the link to the receiver, which drops messages of a session it has handled.
        self.session, first_id = kept if kept is not None else (uuid.uuid4().hex[:12], 1)
        self.store.begin(peer, self.session)
        self._next_id = first_id
        stored = self.store.pending(peer)  # kept from a run that was killed
        # The room: a count, and a FIFO of takers waiting while it is full (an asyncio.Semaphore's
        # fairness without its coroutine per acquire). A waiter is handed the room it waits for.
        self._free = max(0, room - len(stored))
        self._waiters: deque[asyncio.Future[None]] = deque()
        #: Messages resumed from an earlier run.
        self.resumed = len(stored)
        self._loop = loop = asyncio.get_running_loop()
        # id -> (frame text, future of the ack); insertion order is id order.
        self._entries: dict[int, tuple[str, asyncio.Future[str]]] = {
            msg_id: (_frame(msg_id, channel, data), loop.create_future()) for msg_id, channel, data in stored
        }

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, msg_id: int) -> bool:
        return msg_id in self._entries

    def has_room(self, count: int) -> bool:
        """Whether :meth:`take` takes ``count`` messages now, without waiting for room."""
        return self._free >= count and not self._waiters

    def next_id(self) -> int:
        """An id for a frame that is not a message (a subscription): ids are unique on the link."""
        msg_id = self._next_id
        self._next_id += 1
        return msg_id

    async def take(
        self, channel: str, texts: Iterable[str], flush: Callable[[list[int]], Awaitable[None]]
    ) -> list[asyncio.Future[str]]:
        """Take messages in, in order, waiting while the outbox is full; one future of its ack per message.

        ``flush(ids)`` is handed what was taken: before waiting for room (so
        that what is taken can go out and be acked), and at the end.
        """
        loop = self._loop
        futures: list[asyncio.Future[str]] = []
        taken: list[int] = []
        for text in texts:
            if self._free > 0 and not self._waiters:
                self._free -= 1
            else:
                if taken:
                    await flush(taken)
                    taken = []
                await self._wait_for_room()
            msg_id = self.next_id()
            frame = _frame(msg_id, channel, text)
            if (
                self.max_size is not None
                and protocol.utf8_bound(frame) > self.max_size
                and len(frame.encode()) > self.max_size
            ):
                self._release()
                await flush(taken)
                raise ProtocolError(
                    f"a message of {len(frame.encode())} bytes is over {self.peer}'s limit of {self.max_size} bytes (max_size)"
                )
            self.store.add(self.peer, msg_id, channel, text)
            future = loop.create_future()
            self._entries[msg_id] = (frame, future)
            futures.append(future)
            taken.append(msg_id)
        await flush(taken)
        return futures

    def take_now(
        self, channel: str, texts: Sequence[str], limit: int
    ) -> tuple[list[asyncio.Future[str]], list[str], int] | None:
        """:meth:`take`'s work when it need not wait: the outbox has room for every one of ``texts``, and their
        frames come to at most ``limit`` bytes (one batch). Their futures, their frames and the last one's id;
        None: nothing was taken (await :meth:`take`)."""
        count = len(texts)
        if not count or self._free < count or self._waiters or count > protocol.BATCH:
            return None
        first = self._next_id
        frames = [_frame(msg_id, channel, text) for msg_id, text in enumerate(texts, first)]
        if protocol.UTF8_MAX * sum(map(len, frames)) > limit:
            return None
        self._next_id = first + count
        self._free -= count
        loop = self._loop
        entries = self._entries
        store = self.store
        futures = []
        for msg_id, (frame, text) in enumerate(zip(frames, texts, strict=True), first):
            store.add(self.peer, msg_id, channel, text)
            future = loop.create_future()
            entries[msg_id] = (frame, future)
            futures.append(future)
        return futures, frames, first + count - 1

    async def _wait_for_room(self) -> None:
        """Take one room, waiting behind earlier takers while the outbox is full."""
        if self._free > 0 and not self._waiters:  # freed while the caller flushed
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed the room, then cancelled: pass it on
                self._release()
            raise
        finally:
            if not waiter.done() or waiter.cancelled():
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass

    def _release(self) -> None:
        """One room back: to the first taker still waiting, else to the count."""
        if not wake_first(self._waiters):
            self._free += 1

    def frames(self, ids: Iterable[int] | None = None, after: int = 0) -> list[tuple[int, str]]:
        """``(id, frame)`` of the unacked messages among ``ids`` (None: all of them, in order) above ``after``."""
        entries = self._entries
        if ids is None:
            return [(msg_id, entry[0]) for msg_id, entry in entries.items() if msg_id > after]
        return [(msg_id, entries[msg_id][0]) for msg_id in ids if msg_id > after and msg_id in entries]

    def ack(self, msg_id: int, data: str) -> bool:
        """The peer acked message ``msg_id`` with ``data``; False if it is not one of ours."""
        future = self._settle(msg_id)
        if future is None:
            return False
        if not future.done():
            self.acked += 1
            future.set_result(data)
        return True

    def refuse(self, msg_id: int, error: Exception) -> bool:
        """The peer answered message ``msg_id`` with an error; False if it is not one of ours."""
        future = self._settle(msg_id)
        if future is None:
            return False
        if not future.done():
            future.set_exception(error)
        return True

    def _settle(self, msg_id: int) -> asyncio.Future[str] | None:
        """Message ``msg_id`` is answered: out of the outbox, its room given back, its stored copy gone."""
        entry = self._entries.pop(msg_id, None)
        if entry is None:
            return None
        self._release()
        if self._durable:
            self.store.remove(self.peer, msg_id)
        return entry[1]

    def fail_all(self, error: Exception) -> None:
        """Give up on every pending message: its future fails with ``error``; a durable copy stays for the next run."""
        entries, self._entries = self._entries, {}
        for _, future in entries.values():
            self._release()
            if not future.done():
                future.set_exception(error)
                future.exception()  # a caller that went away must not leave a warning

    def resume(self) -> bool:
        """Nobody awaits the messages resumed from an earlier run: keep their outcomes quiet. True if any."""
        for _, future in self._entries.values():
            future.add_done_callback(_quiet)
        return bool(self._entries)


_frame = protocol.message_text


def _quiet(future: asyncio.Future[str]) -> None:
    """Retrieve a future's outcome so asyncio does not warn that nobody did."""
    if not future.cancelled():
        future.exception()


class MemoryOutbox:
    """Nothing kept beyond the process: every method is a no-op."""

    path: Path | None = None

    def session(self, peer: str) -> tuple[str, int] | None:
        return None

    def begin(self, peer: str, session: str) -> None:
        pass

    def add(self, peer: str, msg_id: int, channel: str, data: str) -> None:
        pass

    def remove(self, peer: str, msg_id: int) -> None:
        pass

    def pending(self, peer: str) -> list[Stored]:
        return []

    def peers(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


class DurableOutbox(MemoryOutbox):
    """Unacked messages in ``<state_dir>/<node>.outbox.sqlite``."""

    def __init__(self, state_dir: str | os.PathLike[str], node: str) -> None:
        directory = Path(state_dir)
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{node}.outbox.sqlite"
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS links (peer TEXT PRIMARY KEY, session TEXT NOT NULL, next_id INTEGER NOT NULL)"
        )
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS messages "
            "(peer TEXT NOT NULL, id INTEGER NOT NULL, channel TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (peer, id))"
        )

    def session(self, peer: str) -> tuple[str, int] | None:
        """The session and the next message id of the link to ``peer``, if one was kept."""
        row = self.db.execute("SELECT session, next_id FROM links WHERE peer = ?", (peer,)).fetchone()
        return None if row is None else (row[0], row[1])

    def begin(self, peer: str, session: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO links VALUES (?, ?, 1)", (peer, session))

    def add(self, peer: str, msg_id: int, channel: str, data: str) -> None:
        with self.db:  # one transaction: the message and the id counter go together
            self.db.execute("BEGIN")
            self.db.execute("INSERT INTO messages VALUES (?, ?, ?, ?)", (peer, msg_id, channel, data))
            self.db.execute("UPDATE links SET next_id = ? WHERE peer = ?", (msg_id + 1, peer))

    def remove(self, peer: str, msg_id: int) -> None:
        self.db.execute("DELETE FROM messages WHERE peer = ? AND id = ?", (peer, msg_id))

    def pending(self, peer: str) -> list[Stored]:
        return self.db.execute("SELECT id, channel, data FROM messages WHERE peer = ? ORDER BY id", (peer,)).fetchall()

    def peers(self) -> list[str]:
        """Peers with unacked messages kept from an earlier run."""
        return [row[0] for row in self.db.execute("SELECT DISTINCT peer FROM messages ORDER BY peer")]

    def close(self) -> None:
        self.db.close()


async def acks(futures: list[asyncio.Future[str]]) -> list[str]:
    """The acks of messages posted together, in order; the first error raised once all have settled.

    One waiter, not ``gather()``: acks that come back together (a batch) wake the caller
    once, one event-loop turn after they are read. If the caller is cancelled, the
    futures not settled yet are cancelled too (as ``gather()`` does).
    """
    return (await acks_by_target([futures]))[0]


async def acks_by_target(posted: list[list[asyncio.Future[str]]]) -> list[list[str]]:
    """:func:`acks` for the messages posted to several targets at once: each target's acks, in order.

    Waits until every message of every target has settled, then raises the first error
    met (the first target's first), if any.
    """
    answers: list[list[str]] = []
    error: BaseException | None = None
    for futures in posted:
        results: list[str] = []
        for index, future in enumerate(futures):
            try:
                results.append(await future)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not future.cancelled() or (task is not None and task.cancelling()):
                    for rest in futures[index:]:
                        rest.cancel()
                    for later in posted[len(answers) + 1 :]:
                        for rest in later:
                            rest.cancel()
                    raise
                error = error or asyncio.CancelledError()  # cancelled by someone else: an outcome
            except Exception as exc:
                error = error or exc
        answers.append(results)
    if error is not None:
        raise error
    return answers
