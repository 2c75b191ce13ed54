"""Connections in memory: what asyncio's socket transports and servers are to their protocols, moved by the loop alone.

A :class:`Pipe` is one connection: two :class:`MemoryTransport` ends, each an
``asyncio.Transport`` whose bytes reach the other end in a later turn of the event loop
(``call_soon``, or ``call_at`` with latency), never through the kernel. A
:class:`MemoryServer` is what ``loop.create_server()`` returns for a listener in memory. They
behave as asyncio's do on Linux where a protocol can tell: the order of callbacks, EOF and
half-close, a reset for a close that leaves bytes unread or for bytes that reach a closed end,
flow control with ``pause_writing``/``resume_writing``, ``pause_reading``. The network
(:mod:`mesh.network`) makes them, routes them, and breaks them. Past 400 lines, it is one job,
asyncio's transport contract kept in memory, and reads best whole: the two ends' halves of
each callback side by side.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import random
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .network import Network

__all__ = ["WINDOW", "Address", "ListeningSocket", "MemoryServer", "MemoryTransport", "Pipe"]

Address = tuple[str, int]

#: Bytes in flight or unread per direction of a connection, past which writes wait in the writer's buffer.
WINDOW = 256 * 1024
_FIN = b""  # in the air, after the data: the end of this direction
_RESET = ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")


class MemoryTransport(asyncio.Transport):
    """One end of a connection in memory: what asyncio's socket transport is to its protocol.

    ``write()`` puts bytes at the peer (or in the air, with latency) while this direction's
    window has room, else into this end's buffer, with ``pause_writing()``/``resume_writing()``
    at the buffer's marks. The peer reads in a turn of its own, at most once per turn.
    ``close()`` flushes, then ends this direction (the peer: EOF; a reset instead if this end
    left bytes unread, as Linux does); ``abort()`` drops the buffer and closes. A reset (the
    peer's, or the network's) ends the connection with ConnectionResetError.
    """

    #: Bytes handed to the protocol per read at most (the project's keepalive may lower it, as on a socket).
    max_size = WINDOW

    def __init__(self, pipe: Pipe, local: Address, remote: Address, context: contextvars.Context) -> None:
        super().__init__({"peername": remote, "sockname": local, "socket": None})
        self.pipe = pipe
        self.loop = pipe.loop
        self.peer: MemoryTransport = self  # the other end, set by the pipe
        self.context = context
        self.protocol: Any = None
        self.delay = 0.0  # latency, this direction (the network sets it)
        self.jitter = 0.0
        self._random: random.Random | None = None
        # writing
        self._buffer: deque[bytes] = deque()  # past the window
        self._buffered = 0
        self._flight = 0  # bytes of this direction in the air or unread at the peer
        self._high, self._low = 64 * 1024, 16 * 1024
        self._writing_paused = False
        self._eof = False  # write_eof() asked: the end of this direction once the buffer is empty
        self._air: deque[tuple[float, bytes | ConnectionResetError]] = deque()  # with latency: (arrival, what)
        self._landing: asyncio.TimerHandle | None = None
        self._last = 0.0  # arrival of the last thing sent: nothing arrives before it
        # reading
        self._chunks: list[bytes] = []  # arrived, unread
        self._unread = 0
        self._fin = False  # the peer's direction ended (after the chunks)
        self._reader: asyncio.Handle | None = None
        self._reading = True
        self._started = False  # connection_made was called
        # life
        self._closing = False  # close() or abort(): no more writes
        self._shut = False  # this end is closed: what still comes is answered with a reset
        self._lost = False  # connection_lost is called (or due)

    def __repr__(self) -> str:
        return f"<MemoryTransport {self.pipe} {'closed' if self._shut else 'open'}>"

    # -- asyncio.BaseTransport

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._reading = False
        if not self._buffered:
            self._shutdown(None)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        protocol: asyncio.BaseProtocol = self.protocol
        return protocol

    # -- asyncio.ReadTransport

    def is_reading(self) -> bool:
        return self._reading

    def pause_reading(self) -> None:
        self._reading = False

    def resume_reading(self) -> None:
        if self._reading or self._closing:
            return
        self._reading = True
        self._read_soon()

    # -- asyncio.WriteTransport

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = 64 * 1024 if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._pause_if_full()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (self._low, self._high)

    def get_write_buffer_size(self) -> int:
        return self._buffered

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._closing or not data:
            return
        if type(data) is not bytes:
            data = bytes(data)
        size = len(data)
        if self._buffered or self._flight + size > WINDOW:
            self._buffer.append(data)
            self._buffered += size
            self._flush()
            self._pause_if_full()
            return
        self._flight += size
        self._send(data)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._closing or self._eof:
            return
        self._eof = True
        if not self._buffered:
            self._send(_FIN)

    def abort(self) -> None:
        self._buffer.clear()
        self._buffered = 0
        self._closing = True
        self._reading = False
        self._shutdown(None)

    # -- this end as the writer

    def _send(self, what: bytes | ConnectionResetError) -> None:
        """Toward the peer: now (zero latency, nothing in the air), else in the air until its arrival."""
        if not self.delay and not self._air:
            self.peer._arrive(what)
            return
        at = self.loop.time() + self.delay
        if self.jitter:
            if self._random is None:
                self._random = self.pipe.network.random(f"jitter:{self.pipe.serial}:{self.pipe.client is self}")
            at += self._random.uniform(-self.jitter, self.jitter)
        at = self._last = max(at, self._last)
        self._air.append((at, what))
        if self._landing is None:
            self._landing = self.loop.call_at(at, self._land, context=self.context)

    def _land(self) -> None:
        """What was in the air and is due has arrived."""
        self._landing = None
        air, now = self._air, self.loop.time()
        while air and air[0][0] <= now:
            self.peer._arrive(air.popleft()[1])
        if air:
            self._landing = self.loop.call_at(air[0][0], self._land, context=self.context)

    def _flush(self) -> None:
        """Move buffered bytes into the window's room; close or end the direction once the buffer is empty."""
        buffer = self._buffer
        while buffer and self._flight < WINDOW:
            chunk = buffer.popleft()
            room = WINDOW - self._flight
            if len(chunk) > room:
                buffer.appendleft(chunk[room:])
                chunk = chunk[:room]
            self._buffered -= len(chunk)
            self._flight += len(chunk)
            self._send(chunk)
        if not self._buffered:
            if self._closing:
                self._shutdown(None)
            elif self._eof:
                self._send(_FIN)
            if self._writing_paused and self.protocol is not None:
                self._writing_paused = False
                self._call(self.protocol.resume_writing)
        elif self._writing_paused and self._buffered <= self._low and self.protocol is not None:
            self._writing_paused = False
            self._call(self.protocol.resume_writing)

    def _pause_if_full(self) -> None:
        if not self._writing_paused and self._buffered > self._high and self.protocol is not None:
            self._writing_paused = True
            self._call(self.protocol.pause_writing)

    def _credit(self, size: int) -> None:
        """The peer read ``size`` bytes of this direction."""
        self._flight -= size
        if self._buffered:
            self._flush()

    # -- this end as the reader

    def _arrive(self, what: bytes | ConnectionResetError) -> None:
        if what is _FIN:
            self._fin = True
        elif type(what) is bytes:
            if self._shut:  # for a closed end: the "kernel" answers with a reset
                self.peer._send(_RESET)
                return
            self._chunks.append(what)
            self._unread += len(what)
        else:
            self._reset()
            return
        if self._reader is None and self._reading and self._started:
            self._reader = self.loop.call_soon(self._read, context=self.context)

    def _read_soon(self) -> None:
        if self._reader is None and self._started and (self._chunks or self._fin):
            self._reader = self.loop.call_soon(self._read, context=self.context)

    def _read(self) -> None:
        """One read, as one readiness of a socket gives: what arrived (up to max_size), or the EOF after it."""
        self._reader = None
        if not self._reading or self._lost:
            return
        chunks = self._chunks
        if chunks:
            if len(chunks) == 1 and self._unread <= self.max_size:
                data = chunks.pop()
            else:
                joined = b"".join(chunks)
                data, rest = joined[: self.max_size], joined[self.max_size :]
                chunks[:] = [rest] if rest else []
            self._unread -= len(data)
            self.peer._credit(len(data))
            try:
                self.protocol.data_received(data)
            except Exception as exc:
                self._fatal(exc, "Fatal error: protocol.data_received() call failed.")
                return
            self._read_soon()  # the rest, or the EOF, at the next turn
        elif self._fin:
            self._fin = False
            try:
                keep_open = self.protocol.eof_received()
            except Exception as exc:
                self._fatal(exc, "Fatal error: protocol.eof_received() call failed.")
                return
            if not keep_open:
                self.close()

    # -- the end

    def _shutdown(self, exc: Exception | None) -> None:
        """This end closes, as a socket's close(): the peer gets the end of this direction, or a reset if bytes
        were left unread here; connection_lost follows."""
        if self._shut:
            return
        self._shut = True
        if self._unread:
            self._chunks.clear()
            self._unread = 0
            self._send(_RESET)
        else:
            self._send(_FIN)
        self._lose(exc)

    def _reset(self) -> None:
        """A reset reached this end (its peer's, or the network's): everything dropped, ConnectionResetError."""
        self._buffer.clear()
        self._buffered = self._unread = 0
        self._chunks.clear()
        self._air.clear()
        self._fin = False
        self._closing = self._shut = True
        self._reading = False
        self._lose(ConnectionResetError(*_RESET.args))

    def _lose(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        if self._started:  # (not started: its listener finds it lost when it comes to accept it)
            self.loop.call_soon(self._connection_lost, exc, context=self.context)

    def _connection_lost(self, exc: Exception | None) -> None:
        try:
            self.protocol.connection_lost(exc)
        finally:
            self.pipe.ended(self)

    def _fatal(self, exc: Exception, message: str) -> None:
        self.loop.call_exception_handler({"message": message, "exception": exc, "transport": self})
        self.abort()

    def _call(self, method: Callable[[], object]) -> None:
        try:
            method()
        except Exception as exc:
            self.loop.call_exception_handler({"message": f"protocol.{method.__name__}() failed", "exception": exc})

    def start(self, protocol: asyncio.BaseProtocol) -> None:
        """Hand this end to ``protocol`` (``connection_made``), then read what already came."""
        self.protocol = protocol
        self._started = True
        protocol.connection_made(self)
        self._read_soon()


class Pipe:
    """One connection: a client end and a server end, and which nodes they belong to."""

    def __init__(
        self, network: Network, loop: asyncio.AbstractEventLoop, serial: int, source: str, target: str
    ) -> None:
        self.network = network
        self.loop = loop
        self.serial = serial
        self.source = source  # the node that opened it (or "simulate", a test...)
        self.target = target  # the node it reached
        self.client: MemoryTransport
        self.server: MemoryTransport
        self.flake: asyncio.TimerHandle | None = None
        self._open = 2

    def __str__(self) -> str:
        return f"#{self.serial} {self.source} -> {self.target}"

    def between(self, a: str, b: str) -> bool:
        return (self.source, self.target) in ((a, b), (b, a))

    def reset(self) -> None:
        """Cut the connection: a reset at both ends, at once."""
        for end in (self.client, self.server):
            if not end._lost:
                end._reset()

    def ended(self, end: MemoryTransport) -> None:
        self._open -= 1
        if not self._open:
            self.network.pipes.pop(self.serial, None)
            if self.flake is not None:
                self.flake.cancel()


class ListeningSocket:
    """What ``server.sockets`` holds for a listener in memory: its address (``getsockname()``), nothing to set."""

    family = 2  # AF_INET: websockets formats the address it logs by it

    def __init__(self, address: Address) -> None:
        self.address = address

    def getsockname(self) -> Address:
        return self.address

    def setsockopt(self, *args: Any) -> None:
        """Socket options mean nothing in memory."""

    def fileno(self) -> int:
        return -1


class MemoryServer(asyncio.AbstractServer):
    """A listener in memory, as ``loop.create_server()`` returns: ``close()`` refuses from then on; connections go on."""

    def __init__(
        self, network: Network, loop: asyncio.AbstractEventLoop, factory: Callable[[], Any], address: Address
    ) -> None:
        self.network = network
        self.loop = loop
        self.factory = factory
        self.address = address
        self.context = contextvars.copy_context()  # its connections' handlers are its node's
        self.listening = True
        self._closed = loop.create_future()

    @property
    def sockets(self) -> tuple[ListeningSocket, ...]:
        return (ListeningSocket(self.address),) if self.listening else ()

    def close(self) -> None:
        if self.listening:
            self.listening = False
            if self.network.listeners.get(self.address) is self:
                del self.network.listeners[self.address]
            if not self._closed.done():
                self._closed.set_result(None)

    def is_serving(self) -> bool:
        return self.listening

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self.loop

    async def start_serving(self) -> None:
        """It serves from the start."""

    async def serve_forever(self) -> None:
        await asyncio.shield(self._closed)

    async def wait_closed(self) -> None:
        """As Python 3.11's: nothing to wait for (websockets waits for its own handlers)."""

    def accept(self, end: MemoryTransport) -> None:
        """A connection reached this listener (run in the listener's context: its handler is its node's)."""
        if end._lost:  # reset before it was accepted: as a socket reset just after accept()
            end.pipe.ended(end)
            return
        end.start(self.factory())
