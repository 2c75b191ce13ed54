"""Every error the mesh raises, under one root.

::

    MeshError                   root: catch this to catch everything below
    ├── GridError               the grid is wrong: fatal at start, names file and line
    │   └── ScenarioError       a scenario file is wrong, or does not fit its grid (mesh.scenario)
    ├── UnknownNodeError        a name that the grid does not have
    ├── ProtocolError           a peer sent a frame we cannot use: answer it, keep serving
    ├── PeerUnavailable         a peer cannot be reached (yet): retry later
    │   └── NotAnswering        it took the connection but did not answer in time: busy?
    └── RemoteError             a peer answered with an error (its loop() failed)

Each exception keeps its fields and builds its one-line message in ``__str__``,
so the CLI can print ``str(exc)`` as it is.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "GridError",
    "MeshError",
    "NotAnswering",
    "PeerUnavailable",
    "ProtocolError",
    "RemoteError",
    "UnknownNodeError",
]


class MeshError(Exception):
    """Root of every error raised by the mesh."""


class GridError(MeshError):
    """The grid is invalid: ``path:line: message``."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        super().__init__(path, line, message)
        self.path = path
        self.line = line
        self.message = message

    def __str__(self) -> str:
        if self.line:
            return f"{self.path}:{self.line}: {self.message}"
        return f"{self.path}: {self.message}"


class UnknownNodeError(MeshError, LookupError):
    """A node name that the grid does not define."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = tuple(sorted(known))
        super().__init__(name, self.known)

    def __str__(self) -> str:
        known = ", ".join(self.known) or "none"
        return f"unknown node {self.name!r}; known nodes: {known}"


class ProtocolError(MeshError):
    """A frame from a peer that does not follow the protocol (``id``: the frame's, if it could be read)."""

    def __init__(self, message: str, id: int | None = None) -> None:  # ``id``: the frame's field
        super().__init__(message)
        self.message = message
        self.id = id

    def __str__(self) -> str:
        return self.message


class PeerUnavailable(MeshError):
    """A peer that cannot be reached at its address."""

    def __init__(self, peer: str, address: str, reason: str) -> None:
        super().__init__(peer, address, reason)
        self.peer = peer
        self.address = address
        self.reason = reason

    def __str__(self) -> str:
        return f"cannot reach {self.peer} at {self.address}: {self.reason}"


class NotAnswering(PeerUnavailable):
    """A peer that accepted the connection but did not answer in time: busy, blocked or stopped, not gone."""

    def __str__(self) -> str:
        return f"{self.peer} at {self.address} is not answering: {self.reason}"


class RemoteError(MeshError):
    """A peer received our message and answered with an error."""

    def __init__(self, peer: str, message: str) -> None:
        super().__init__(peer, message)
        self.peer = peer
        self.message = message

    def __str__(self) -> str:
        return f"{self.peer} answered with an error: {self.message}"
