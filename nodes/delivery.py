"""The receiver's half of delivery: each message of a session reaches ``loop()`` once, in order.

A link names its session in its hello frame and numbers its messages. After a
reconnect it re-sends everything it has no ack for, so the receiver may see a
message again. For each session the receiver remembers the outcome of the
last :data:`WINDOW` messages it handled: a message seen before is not handed
to ``loop()`` again, its remembered ack is sent instead. A lock per session
keeps messages in order even when a re-sent message arrives on a new
connection while the old one is still in ``loop()``.

The memory is bounded: :data:`WINDOW` outcomes per session, :data:`SESSIONS`
sessions (the least recently used one is forgotten first). It lives as long
as the receiver does: across a crash of the receiver, delivery is at least
once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

__all__ = ["SESSIONS", "WINDOW", "Session", "Sessions"]

#: Outcomes remembered per session: more than a link's largest outbox by default.
WINDOW = 10_000
#: Sessions remembered per node.
SESSIONS = 256

Outcome = tuple[bool, str]  # (ok, ack or error)


class Session:
    """What a receiver remembers of one sender's session."""

    def __init__(self, name: str = "", window: int = WINDOW, log: logging.Logger | None = None) -> None:
        self.name = name
        self.log = log or logging.getLogger("mesh")
        self.lock = asyncio.Lock()
        self.window = window
        self.outcomes: OrderedDict[int, Outcome] = OrderedDict()
        self.highest = 0
        self.duplicates = 0

    async def handle(self, msg_id: int, call: Callable[[], Awaitable[Outcome]]) -> Outcome:
        """``call()`` for a message not handled before; the remembered outcome for one that was."""
        async with self.lock:
            if msg_id <= self.highest:
                self.duplicates += 1
                self.log.debug("dropped a duplicate of message %d (session %s)", msg_id, self.name)
                return self.outcomes.get(msg_id, (True, "duplicate"))
            outcome = await call()
            self.highest = msg_id
            self.outcomes[msg_id] = outcome
            if len(self.outcomes) > self.window:
                self.outcomes.popitem(last=False)
            return outcome


class Sessions:
    """The sessions a node remembers, least recently used forgotten first."""

    def __init__(self, log: logging.Logger | None = None, keep: int = SESSIONS) -> None:
        self.log = log
        self.keep = keep
        self._sessions: OrderedDict[tuple[str, str], Session] = OrderedDict()

    def get(self, peer: str, session: str) -> Session:
        key = (peer, session)
        found = self._sessions.get(key)
        if found is None:
            found = self._sessions[key] = Session(f"{peer}/{session}", log=self.log)
            if len(self._sessions) > self.keep:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(key)
        return found

    @property
    def duplicates(self) -> int:
        """Messages dropped as duplicates, over the sessions remembered."""
        return sum(session.duplicates for session in self._sessions.values())
