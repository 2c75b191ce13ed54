"""Outboxes: where a link keeps the messages its peer has not acknowledged yet.

:class:`MemoryOutbox` keeps them in memory: the delivery guarantee then holds
while the sending node lives. :class:`DurableOutbox` also writes them to a
SQLite file (stdlib ``sqlite3``, WAL mode), one per node, so that a node killed
with SIGKILL and started again re-sends what was not acknowledged, under the
same session and with the same ids, and the receiver drops what it had
already handled.

A durable write is one small SQLite transaction in WAL mode with
``synchronous=NORMAL``: it survives the process being killed, not the machine
losing power.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

__all__ = ["DurableOutbox", "MemoryOutbox", "Stored"]

Stored = tuple[int, str, str]  # (id, channel, data)


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
