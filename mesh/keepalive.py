"""Keepalive for many connections: one timer per event loop, a ping only where a connection went silent.

websockets' own keepalive runs a task per connection that pings every ``ping_interval``
whatever the traffic, and both ends of a link did it: 1,000 idle links in one process
burnt 38 % of a core. Here each connection stamps when it last heard anything
(:meth:`KeptAlive.data_received`, one clock read), and one :class:`Sweeper` per event loop
looks at every connection a few times a second:

- silent for ``ping_interval``: one ping (its pong, like anything else heard, resets the silence);
- silent for ``ping_interval + ping_timeout``: the connection fails as websockets' keepalive
  fails it (close code 1011, reason :data:`KEEPALIVE_TIMEOUT`), so a frozen peer is noticed
  within ``ping_interval + ping_timeout`` plus one sweep.

A busy connection is never pinged; an idle one costs one ping and one pong per
``ping_interval``. The end that pings is the one with the shorter interval: a link pings
its server; the server, far more patient, hears those pings and so pings only clients
that ping nobody (a browser, a one-shot request). Timers are the loop's own clock, so
the keepalive runs in virtual time under a simulation, as everything else does.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from websockets.asyncio.connection import Connection
from websockets.frames import CloseCode
from websockets.protocol import State

__all__ = ["KEEPALIVE_TIMEOUT", "SWEEP", "KeptAlive", "Sweeper", "sweeper"]

#: The reason a connection is closed with when its peer stopped answering (websockets' own words).
KEEPALIVE_TIMEOUT = "keepalive ping timeout"
#: Seconds between two looks at every connection, at most (a quarter of the shortest interval or timeout, if less).
SWEEP = 0.25
#: What a keepalive ping carries: websockets ignores a pong it did not ask for, which this one is to it.
_PAYLOAD = b""
#: Bytes asked of the kernel per read. asyncio asks 256 KiB, above glibc's 128 KiB threshold
#: for mapping memory, so each read mapped a fresh buffer and unmapped it once shrunk to the
#: few bytes a frame holds: three system calls and a page fault per read, 12 µs of 16 here.
READ_SIZE = 64 * 1024


class KeptAlive(Connection):
    """A websockets connection whose keepalive is the loop's :class:`Sweeper`, not a task of its own."""

    #: The loop's time when something last came in (any frame, a pong included).
    last_heard = 0.0
    #: The loop's time of the last keepalive ping (0: none yet).
    pinged = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Set here, in the same order for every connection, so that instances share their dict's keys:
        # first set in data_received, they cost 1.5 KiB a connection (a dict of its own).
        self.last_heard = 0.0
        self.pinged = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # asyncio's socket transport reads max_size at a time; TLS's reads into a buffer of its own.
        if getattr(transport, "max_size", 0) > READ_SIZE:
            transport.max_size = READ_SIZE  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.last_heard = self.loop.time()
        super().data_received(data)

    def start_keepalive(self) -> None:
        if self.ping_interval is not None:
            self.last_heard = self.loop.time()
            sweeper(self.loop).add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        sweeper(self.loop).discard(self)
        super().connection_lost(exc)


class Sweeper:
    """Every kept-alive connection of one event loop, looked at every :data:`SWEEP` seconds while there are any."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        #: In the order they came (a dict, not a set: a simulation pings in the same order every run).
        self.connections: dict[KeptAlive, None] = {}
        self.period = SWEEP
        self.timer: asyncio.TimerHandle | None = None
        #: Pings sent and connections failed, over the loop's life (for tests and benchmarks).
        self.pings = 0
        self.failed = 0

    def add(self, ws: KeptAlive) -> None:
        self.connections[ws] = None
        shortest = min(ws.ping_interval or SWEEP, ws.ping_timeout or SWEEP)
        self.period = min(self.period, shortest / 4)
        if self.timer is None:
            self.timer = self.loop.call_later(self.period, self.sweep)

    def discard(self, ws: KeptAlive) -> None:
        self.connections.pop(ws, None)

    def sweep(self) -> None:
        """Ping each connection silent for its interval (once per silence); fail each silent for interval + timeout."""
        self.timer = None
        now = self.loop.time()
        for ws in list(self.connections):
            silent = now - ws.last_heard
            interval = ws.ping_interval
            if interval is None or silent < interval:  # the common case first: heard lately
                continue
            if ws.protocol.state is not State.OPEN or ws.transport.is_closing():
                continue
            if ws.ping_timeout is not None and silent >= interval + ws.ping_timeout:
                self._fail(ws)
            elif ws.pinged <= ws.last_heard:  # no ping yet in this silence
                ws.pinged = now
                self.pings += 1
                ws.protocol.send_ping(_PAYLOAD)
                ws.send_data()
        if self.connections:
            self.timer = self.loop.call_later(self.period, self.sweep)

    def _fail(self, ws: KeptAlive) -> None:
        """Close ``ws`` as websockets' keepalive does, then cut it if the peer does not answer the close in time."""
        self.failed += 1
        self.discard(ws)
        ws.protocol.fail(CloseCode.INTERNAL_ERROR, KEEPALIVE_TIMEOUT)
        ws.send_data()
        self.loop.call_later(ws.close_timeout or 0, _abort, ws)


def _abort(ws: Any) -> None:
    if ws.protocol.state is not State.CLOSED:
        ws.transport.abort()


_SWEEPERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Sweeper] = weakref.WeakKeyDictionary()


def sweeper(loop: asyncio.AbstractEventLoop) -> Sweeper:
    """The one sweeper of ``loop``."""
    found = _SWEEPERS.get(loop)
    if found is None:
        found = _SWEEPERS[loop] = Sweeper(loop)
    return found
