"""Every error the mesh raises, under one root.

::

    MeshError                   root: catch this to catch everything below
    ├── GridError               the grid is wrong: fatal at start, names file and line
    │   └── ScenarioError       a scenario file is wrong, or does not fit its grid (mesh.scenario)
    ├── SketchError             a sketch cannot be found or used (nodes.sketchbook): fatal at start
    │   ├── SketchMistake       a sketch that uses the surface wrongly (a loop() without async, self.name = ...): its line
    │   │   └── NoLoop          a message for a node whose sketch has no loop(): its sender's error
    │   └── FirmwareError       a firmware (.ino) that does not build, or no toolchain or simulator to build or run it
    ├── ListenError             a node cannot listen on its address (its port taken): fatal at start
    ├── UnknownNodeError        a name that the grid does not have
    ├── TopicError              a key, topic or pattern that breaks the rules (also a ValueError)
    ├── ProtocolError           a peer sent a frame we cannot use: answer it, keep serving
    │   ├── BatchRefused        a batch past the limits, refused whole: none of its frames read
    │   └── RespError           a Redis client sent what is not RESP: Redis's error, then the connection closes
    ├── SubscriptionLimit       a node refuses a subscription past one of its bounds: answer it, keep serving
    ├── RetainLimit             a sketch asked to retain past a bound (also a ValueError): nothing published
    ├── LoopTimeout             a loop() call ran past the node's timeout: cancelled, its sender told
    ├── PeerUnavailable         a peer cannot be reached (yet): retry later
    │   └── NotAnswering        it took the connection but did not answer in time: busy?
    ├── RemoteError             a peer answered with an error (its loop() failed)
    └── SimulationError         a simulation was asked what it cannot do (an unknown wire, a node killed twice)

Outside the tree, on purpose: :class:`mesh.durations.DurationError` is a ``ValueError`` that
click turns into a usage error, and :class:`mesh.handshake.GreetingFailed` is one of websockets'
``InvalidHandshake`` errors, so that its client retries or gives up on it as on any failed handshake.

Each exception keeps its fields and builds its one-line message in ``__str__``,
so the CLI can print ``str(exc)`` as it is.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "BatchRefused",
    "FirmwareError",
    "GridError",
    "ListenError",
    "LoopTimeout",
    "MeshError",
    "NoLoop",
    "NotAnswering",
    "PeerUnavailable",
    "ProtocolError",
    "RemoteError",
    "RespError",
    "RetainLimit",
    "ScenarioError",
    "SimulationError",
    "SketchError",
    "SketchMistake",
    "SubscriptionLimit",
    "TopicError",
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


class ScenarioError(GridError):
    """A scenario that cannot be played: ``path:line: message`` (a GridError: bad configuration, fatal at start)."""


class SketchError(MeshError):
    """A sketch that cannot be found or used, with a one-line reason."""


class SketchMistake(SketchError):
    """A sketch that uses the sketch surface wrongly: ``sketches/lamp.py:12: message`` (``where`` empty: unknown)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(where, message)
        self.where = where
        self.message = message

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class NoLoop(SketchMistake):
    """A message for a node whose sketch has no ``loop()``: what its sender is answered, naming the sketch."""

    def __init__(self, where: str, node: str, sketch: str) -> None:
        super().__init__(
            where,
            f"node {node!r} has no loop(), so it takes no messages: "
            f"give {sketch} an '@reactive async def loop(self, channel, message)'",
        )
        self.node = node
        self.sketch = sketch


class FirmwareError(SketchError):
    """A firmware that cannot be built or run (nodes.firmware): one line per error, ``lamp.ino:7:20: error: ...``.

    ``lines`` are the errors, each naming the sketch's own file and line; ``log`` keeps the
    compiler's whole output for whoever wants its notes too.
    """

    def __init__(self, lines: Iterable[str], log: str = "") -> None:
        self.lines = list(lines)
        self.log = log
        super().__init__(*self.lines)

    def __str__(self) -> str:
        return "\n".join(self.lines)


class ListenError(MeshError):
    """A node cannot listen on its address; ``hint``: what probably holds it, and how to find out."""

    def __init__(self, node: str, address: str, reason: str, hint: str = "") -> None:
        super().__init__(node, address, reason)
        self.node = node
        self.address = address
        self.reason = reason
        self.hint = hint

    def __str__(self) -> str:
        hint = f" ({self.hint})" if self.hint else ""
        return f"{self.node}: cannot listen on {self.address}: {self.reason}{hint}"


class UnknownNodeError(MeshError, LookupError):
    """A node name that the grid does not define."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = tuple(sorted(known))
        super().__init__(name, self.known)

    def __str__(self) -> str:
        known = ", ".join(self.known) or "none"
        return f"unknown node {self.name!r}; known nodes: {known}"


class TopicError(MeshError, ValueError):
    """A key, topic or pattern that breaks the rules."""

    def __init__(self, text: str, problem: str) -> None:
        super().__init__(text, problem)
        self.text = text
        self.problem = problem

    def __str__(self) -> str:
        return f"invalid {self.problem}"


class ProtocolError(MeshError):
    """A frame from a peer that does not follow the protocol (``id``: the frame's, if it could be read)."""

    def __init__(self, message: str, id: int | None = None) -> None:  # ``id``: the frame's field
        super().__init__(message)
        self.message = message
        self.id = id

    def __str__(self) -> str:
        return self.message


class BatchRefused(ProtocolError):
    """A batch past :data:`mesh.protocol.BATCH` frames or ``BATCH_BYTES``: refused whole, none of its frames read.

    What it held (acks, say) is lost with it: a link that gets one from its peer reconnects,
    so that the peer answers again what it re-sends.
    """


class RespError(ProtocolError):
    """A Redis client's request that is not RESP (``mesh.resp.parse``).

    ``reply`` is what Redis answers before it closes the connection (``ERR Protocol error: ...``,
    without the ``-``), or None for the one bound Redis enforces by closing without a word (its
    query buffer limit); ``message`` says the same for a log line.
    """

    def __init__(self, reply: bytes | None, message: str) -> None:
        super().__init__(message)
        self.reply = reply


class _Why(MeshError):
    """An error that is its one line, ``why``."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why

    def __str__(self) -> str:
        return self.why


class SubscriptionLimit(_Why):
    """A node refuses a subscription past one of its limits: ``why`` says which, for the error frame."""


class RetainLimit(_Why, ValueError):
    """A sketch asked to retain past a limit (too many keys, too large a value): nothing was published."""


class LoopTimeout(MeshError):
    """A ``loop()`` call ran past the node's ``timeout:`` and was cancelled."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds

    def __str__(self) -> str:
        return f"loop() did not finish within {self.seconds:g} s (the node's timeout in the grid) and was cancelled"


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


class SimulationError(MeshError):
    """A simulation was asked something it cannot do (an unknown wire, a node already killed...)."""
