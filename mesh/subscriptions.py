"""Subscriptions: the patterns a link keeps at its peer, and who waits to hear that the peer took them.

A link subscribes to its patterns again on every connection, before anything
else, so that nothing published from then on is missed. Each subscribe or
unsubscribe frame carries an id; the peer answers it with an ack or an error
of the same id, which settles the callers of ``subscribe()`` waiting for that
pattern. No I/O here: the link writes the frames.
"""

from __future__ import annotations

import asyncio

from . import protocol

__all__ = ["Subscriptions"]


class Subscriptions:
    """The patterns of one link, kept across reconnects, and the waiters for their confirmation."""

    def __init__(self) -> None:
        #: Patterns to hold at the peer, in the order they were asked for.
        self.patterns: dict[str, None] = {}
        # id of a sub/unsub frame -> pattern, until the peer answers it
        self._asked: dict[int, str] = {}
        # callers of subscribe() waiting to hear whether the peer took the pattern
        self._waiters: list[tuple[str, asyncio.Future[bool]]] = []

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __contains__(self, pattern: str) -> bool:
        return pattern in self.patterns

    def add(self, pattern: str) -> asyncio.Future[bool]:
        """Keep ``pattern``; the future resolves with whether the peer took it (False: not reachable now)."""
        self.patterns[pattern] = None
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append((pattern, future))
        return future

    def remove(self, pattern: str) -> bool:
        """Forget ``pattern``; True if it was kept."""
        return self.patterns.pop(pattern, False) is None

    def subscribe_frame(self, msg_id: int, pattern: str) -> str:
        """The frame that asks the peer for ``pattern``, remembered until it is answered."""
        self._asked[msg_id] = pattern
        return protocol.encode(protocol.Subscribe(id=msg_id, pattern=pattern))

    def unsubscribe_frame(self, msg_id: int, pattern: str) -> str:
        """The frame that tells the peer to drop ``pattern``."""
        self._asked[msg_id] = pattern
        return protocol.encode(protocol.Unsubscribe(id=msg_id, pattern=pattern))

    def answered(self, msg_id: int, taken: bool) -> str | None:
        """The peer answered frame ``msg_id``: settle the waiters of its pattern; the pattern, or None if not ours."""
        pattern = self._asked.pop(msg_id, None)
        if pattern is not None:
            self.settle(pattern, taken)
        return pattern

    def connected(self) -> None:
        """A new connection: answers to frames sent on the last one will not come."""
        self._asked.clear()

    def settle(self, pattern: str | None, taken: bool) -> None:
        """Tell the waiters for ``pattern`` (None: all of them) how it went."""
        waiting = []
        for entry in self._waiters:
            if pattern is None or entry[0] == pattern:
                if not entry[1].done():
                    entry[1].set_result(taken)
            else:
                waiting.append(entry)
        self._waiters = waiting
