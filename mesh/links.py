"""Links: a node's one persistent connection to one peer.

Every ``stream()`` from a node to a peer goes through that peer's :class:`Link`.
The link opens one websocket with the ``arduino-mesh.1`` subprotocol and keeps
it: messages are written in order on it, several may be in flight at once, and
acks come back matched by message id. When the peer is not listening yet, or
goes away, the link waits for it with backoff (the ``websockets`` client's own
reconnecting iterator) and re-sends what was not acked once it is back.

This is the I/O half of the mesh; frames themselves are built in
:mod:`mesh.protocol`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import uuid
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.client import process_exception as library_verdict
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from . import protocol
from .errors import PeerUnavailable, ProtocolError, RemoteError
from .outbox import MemoryOutbox

__all__ = ["Link", "acks", "auth_headers", "backoff", "query_status", "reason", "request", "send_once"]

#: Seconds a link keeps trying to reach a peer before giving up (0: forever).
DEFAULT_WAIT = 60.0
#: Messages a link holds unacked before ``send()`` waits for room.
DEFAULT_OUTBOX = 1000
#: Seconds to open a connection or close it.
OPEN_TIMEOUT = 5.0
CLOSE_TIMEOUT = 0.25
#: Keepalive: a ping every PING_INTERVAL seconds, unanswered for PING_TIMEOUT, closes
#: the connection, so a frozen peer (SIGSTOP) is noticed within about 3 s.
PING_INTERVAL = 1.0
PING_TIMEOUT = 2.0
#: How every mesh client connects: the mesh subprotocol; no compression (on small frames it
#: costs a quarter to a third of the throughput and saves nothing); no size limit on what
#: comes back (acks and our own subscriptions: the peer's limit applies to what we send).
CLIENT: dict[str, Any] = {
    "subprotocols": [protocol.SUBPROTOCOL],
    "compression": None,
    "close_timeout": CLOSE_TIMEOUT,
    "max_size": None,
    "proxy": None,
}
#: A link sends what piled up while it was writing as one batch: at most this many
#: messages, and this many bytes (or the peer's max_size, if smaller).
BATCH = 256
BATCH_BYTES = 256 * 1024
#: Seconds between two "waiting for PEER" log lines while a peer stays away.
NAG = 10.0


async def acks(futures: list[asyncio.Future[str]]) -> list[str]:
    """The acks of messages posted together, in order; the first error raised once all have settled."""
    if len(futures) == 1:  # the common case, one event-loop turn sooner than gather()
        return [await futures[0]]
    results = await asyncio.gather(*futures, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return list(results)  # type: ignore[arg-type]


def auth_headers(token: str | None) -> dict[str, str]:
    """The handshake headers that present the mesh's token (none without one)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def backoff(initial: float = 0.05, factor: float = 2.0, maximum: float = 2.0) -> Generator[float, None, None]:
    """Delays between attempts to reach a peer: short at first, capped at ``maximum``."""
    delay = initial
    while True:
        yield delay
        delay = min(delay * factor, maximum)


def reason(exc: BaseException) -> str:
    """Why a connection failed, in a few lower-case words."""
    if isinstance(exc, PeerUnavailable):
        return exc.reason
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "timed out"
    if isinstance(exc, InvalidStatus):
        if exc.response.status_code == 401:
            return "refused the handshake with HTTP 401: wrong or missing token"
        return f"refused the handshake with HTTP {exc.response.status_code}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    if isinstance(exc, ConnectionClosed):
        return "connection closed"
    return str(exc) or type(exc).__name__


class Link:
    """One persistent connection from node ``node`` to peer ``peer`` at ``uri``.

    ``send()`` may be called from many tasks at once; messages go out in the
    order of the calls. ``wait`` bounds how long the link tries to reach a
    peer that is not there (0: forever); when it runs out, pending sends fail
    with :class:`PeerUnavailable` and the next send starts trying again.
    """

    def __init__(
        self,
        *,
        node: str,
        peer: str,
        uri: str,
        logger: logging.Logger | logging.LoggerAdapter,
        wait: float = DEFAULT_WAIT,
        outbox: int = DEFAULT_OUTBOX,
        reconnect_delays: Callable[[], Generator[float, None, None]] = backoff,
        on_publish: Callable[[str, str, int], Awaitable[None]] | None = None,
        store: MemoryOutbox | None = None,
        headers: Mapping[str, str] | None = None,
        max_size: int | None = None,
    ) -> None:
        self.node = node
        self.peer = peer
        self.uri = uri
        self.log = logger
        self.wait = wait
        self.reconnect_delays = reconnect_delays
        self.state = "idle"
        #: Connections opened over the link's life: 1 while the peer stays up.
        self.connections = 0
        self.sent = 0
        self.acked = 0
        self.headers = dict(headers or {})
        #: The largest frame the peer accepts (its grid max_size): larger messages are refused here.
        self.max_size = max_size
        self.store = store or MemoryOutbox()
        # id -> (frame text, future of the ack); insertion order is send order.
        self._pending: dict[int, tuple[str, asyncio.Future[str]]] = {}
        kept = self.store.session(peer)
        #: Names this link to the receiver, which drops messages of a session it has handled.
        self.session, first_id = kept if kept is not None else (uuid.uuid4().hex[:12], 1)
        self.store.begin(peer, self.session)
        self._ids = itertools.count(first_id)
        stored = self.store.pending(peer)  # kept from a run that was killed
        #: Room in the outbox: send() waits while it is full. Resumed messages take room too.
        self._room = asyncio.Semaphore(max(0, outbox - len(stored)))
        self.resumed = len(stored)
        for msg_id, channel, data in stored:
            self._pending[msg_id] = (self._frame(msg_id, channel, data), self._future())
        self._write_lock = asyncio.Lock()  # one writer at a time keeps the ids in order on the wire
        self._written = 0  # the highest id written on the current connection
        self._task: asyncio.Task[None] | None = None
        self._draining = False  # the node is stopping: no more reconnecting
        self._closed = False
        self._down_since = 0.0
        self._last_error = "not reached yet"
        self.on_publish = on_publish
        #: Patterns this link subscribes to at the peer; kept across reconnects.
        self.patterns: dict[str, None] = {}
        #: Messages the peer dropped for us because we fell behind.
        self.lost = 0
        self._ws: ClientConnection | None = None  # while up
        # id of a sub/unsub frame -> pattern, until the peer answers it
        self._control: dict[int, str] = {}
        # callers of subscribe() waiting to hear whether the peer took the pattern
        self._sub_waiters: list[tuple[str, asyncio.Future[bool]]] = []

    @property
    def pending(self) -> int:
        """Messages sent and not acked yet."""
        return len(self._pending)

    async def send(self, channel: str, texts: Iterable[str]) -> list[str]:
        """Send messages back to back (all in flight at once) and return their acks in order."""
        return await acks(await self.post_many(channel, texts))

    async def subscribe(self, pattern: str) -> bool:
        """Subscribe to ``pattern`` at the peer, now and after every reconnect.

        Returns True once the peer has taken it, False if the peer cannot be
        reached right now (it gets the subscription when it comes back).
        """
        self.patterns[pattern] = None
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._sub_waiters.append((pattern, future))
        if self._ws is not None:
            await self._send_control(self._ws, protocol.Subscribe, pattern)
        self._ensure_running()
        return await future

    async def unsubscribe(self, pattern: str) -> None:
        """Stop the subscription to ``pattern`` at the peer."""
        if self.patterns.pop(pattern, False) is None and self._ws is not None:
            try:
                await self._send_control(self._ws, protocol.Unsubscribe, pattern)
            except ConnectionClosed:
                pass  # the peer forgets us anyway

    async def _send_control(self, ws: ClientConnection, kind: type, pattern: str) -> None:
        msg_id = next(self._ids)
        self._control[msg_id] = pattern
        await ws.send(protocol.encode(kind(id=msg_id, pattern=pattern)))

    def _settle_subscriptions(self, pattern: str | None, taken: bool) -> None:
        """Tell the subscribe() callers for ``pattern`` (None: all of them) how it went."""
        waiting = []
        for entry in self._sub_waiters:
            if pattern is None or entry[0] == pattern:
                if not entry[1].done():
                    entry[1].set_result(taken)
            else:
                waiting.append(entry)
        self._sub_waiters = waiting

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"link {self.node}->{self.peer}")

    def drain(self) -> None:
        """Stop reconnecting: the node is stopping. The open connection, if any, stays for now."""
        self._draining = True

    async def close(self) -> None:
        """Close the connection (1001, going away) and fail what is still pending."""
        self._draining = self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self._fail_pending(PeerUnavailable(self.peer, self.uri, "the link was closed"))
        self._settle_subscriptions(None, False)
        self.state = "closed"

    async def post(self, channel: str, text: str) -> asyncio.Future[str]:
        """Take one message into the outbox (waiting while it is full); the future resolves with its ack."""
        return (await self.post_many(channel, [text]))[0]

    async def post_many(self, channel: str, texts: Iterable[str]) -> list[asyncio.Future[str]]:
        """Take messages into the outbox and write them at once, batched; one future per message.

        Waits while the outbox is full, writing what it has taken so far first.
        Nothing is lost if the connection is down: the outbox is written out
        when it is back.
        """
        if self._closed or (self._draining and self._ws is None):
            raise PeerUnavailable(self.peer, self.uri, "the node is stopping")
        self._ensure_running()
        futures: list[asyncio.Future[str]] = []
        taken: list[int] = []
        for text in texts:
            if self._room.locked() and taken:
                await self._push(taken)
                taken = []
            await self._room.acquire()
            msg_id = next(self._ids)
            frame = self._frame(msg_id, channel, text)
            # The peer would close the connection with 1009 and we would re-send it forever: refuse it here.
            if self.max_size is not None and len(frame) * 4 > self.max_size and len(frame.encode()) > self.max_size:
                self._room.release()
                await self._push(taken)
                raise ProtocolError(
                    f"a message of {len(frame.encode())} bytes is over {self.peer}'s limit of {self.max_size} bytes (max_size)"
                )
            self.store.add(self.peer, msg_id, channel, text)
            future = self._future()
            self._pending[msg_id] = (frame, future)
            futures.append(future)
            taken.append(msg_id)
        await self._push(taken)
        return futures

    async def _push(self, ids: list[int]) -> None:
        """Write these messages now if the link is up (else they go when it is)."""
        ws = self._ws
        if not ids or ws is None:
            return
        async with self._write_lock:
            ws = self._ws  # read again: the connection may have gone while we waited for the lock
            if ws is None:
                return
            try:
                await self._write(ws, ids)
            except ConnectionClosed:
                pass  # still pending: written again on the next connection

    async def _write(self, ws: ClientConnection, ids: Iterable[int]) -> None:
        """Write messages not yet written on this connection, in order, in batches (with the write lock held)."""
        limit = min(BATCH_BYTES, self.max_size or BATCH_BYTES)
        frames: list[str] = []
        size = 0
        for msg_id in ids:
            entry = self._pending.get(msg_id)
            if entry is None or msg_id <= self._written:
                continue  # acked meanwhile, or already on its way
            if frames and (len(frames) >= BATCH or size + len(entry[0]) * 4 > limit):
                await ws.send(protocol.batch(frames))
                self.sent += len(frames)
                frames, size = [], 0
            frames.append(entry[0])
            size += len(entry[0]) * 4  # at most 4 bytes a character: within the peer's max_size
            self._written = msg_id
        if frames:
            await ws.send(protocol.batch(frames))
            self.sent += len(frames)

    def _future(self) -> asyncio.Future[str]:
        """The future of one message's ack; its room in the outbox is given back when it leaves ``_pending``."""
        return asyncio.get_running_loop().create_future()

    @staticmethod
    def _frame(msg_id: int, channel: str, data: str) -> str:
        return protocol.encode(protocol.Message(id=msg_id, channel=channel, data=data))

    def resume(self) -> None:
        """Start re-sending what an earlier run left unacked (a durable outbox)."""
        if self._pending:
            for _, future in self._pending.values():
                future.add_done_callback(_quiet)
            self._ensure_running()

    async def _run(self) -> None:
        """Connect, reconnect, and pump frames until closed or out of patience."""
        loop = asyncio.get_running_loop()
        self._down_since = loop.time()
        self.state = "connecting"
        self.log.info("connecting to %s at %s", self.peer, self.uri)
        try:
            async for ws in connect(
                self.uri,
                **CLIENT,
                open_timeout=OPEN_TIMEOUT,
                ping_interval=PING_INTERVAL,
                ping_timeout=PING_TIMEOUT,
                additional_headers=self.headers,
                process_exception=self._on_connect_error,
                reconnect_delays=self._delays,
            ):
                await self._session(ws)
                if self._draining:
                    return
                self._down_since = loop.time()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.state = "down"
            self._settle_subscriptions(None, False)
            # The callers of send() report it: one line each, where it matters.
            self._fail_pending(
                exc if isinstance(exc, PeerUnavailable) else PeerUnavailable(self.peer, self.uri, reason(exc))
            )

    async def _session(self, ws: ClientConnection) -> None:
        """One connection's life: greet, re-send what is pending, then pump."""
        self.connections += 1
        if ws.subprotocol != protocol.SUBPROTOCOL:
            raise PeerUnavailable(self.peer, self.uri, f"it does not speak {protocol.SUBPROTOCOL}")
        try:
            await ws.send(protocol.encode(protocol.Hello(node=self.node, session=self.session)))
            raw = await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT)
            hello = protocol.decode(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
            if not isinstance(hello, protocol.Hello):
                raise ProtocolError(f"expected a hello frame, got {type(hello).__name__}")
            if hello.node != self.peer:
                self.log.warning("%s at %s says it is %r", self.peer, self.uri, hello.node)
        except (ConnectionClosed, ProtocolError, TimeoutError) as exc:
            self.log.warning("link to %s failed its greeting: %s", self.peer, reason(exc))
            return
        # Subscriptions first, so that nothing published from now on is missed.
        self._control.clear()
        sent: set[str] = set()
        try:
            while todo := [pattern for pattern in self.patterns if pattern not in sent]:
                for pattern in todo:  # subscribe() may add more while we await
                    await self._send_control(ws, protocol.Subscribe, pattern)
                    sent.add(pattern)
        except ConnectionClosed:
            return
        self.state = "up"
        self.log.info("link to %s up (%s)", self.peer, self.uri)
        reader = asyncio.create_task(self._read(ws))  # acks flow while we re-send: no deadlock on full buffers
        try:
            async with self._write_lock:
                self._ws = ws
                self._written = 0
                await self._write(ws, list(self._pending))  # everything unacked, in order, before anything new
            await reader
        except ConnectionClosed:
            pass
        finally:
            self._ws = None
            reader.cancel()
            if not self._draining:
                self.state = "connecting"
                self.log.warning("link to %s down (%s); reconnecting", self.peer, reason_closed(ws))
            else:
                await ws.close(1001)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for text in ws:
                for frame in protocol.decode_all(text if isinstance(text, str) else text.decode("utf-8", "replace")):
                    await self._receive(frame)
        except ConnectionClosed:
            pass

    async def _receive(self, frame: protocol.Frame | ProtocolError) -> None:
        """One frame from the peer: an ack, an error, something published, or a bad frame."""
        if isinstance(frame, ProtocolError):
            self.log.warning("bad frame from %s: %s", self.peer, frame)
        elif isinstance(frame, protocol.Publish):
            if frame.lost:
                self.lost += frame.lost
                self.log.warning(
                    "fell behind %s: it dropped %d message(s) for us (%d in all)", self.peer, frame.lost, self.lost
                )
            if self.on_publish is not None:
                await self.on_publish(frame.key, frame.data, frame.lost)
        elif isinstance(frame, (protocol.Ack, protocol.Error)) and frame.id in self._control:
            pattern = self._control.pop(frame.id)
            if isinstance(frame, protocol.Error):
                self.log.error("%s refused the subscription %r: %s", self.peer, pattern, frame.error)
            self._settle_subscriptions(pattern, isinstance(frame, protocol.Ack))
        elif isinstance(frame, (protocol.Ack, protocol.Error)) and frame.id in self._pending:
            _, future = self._pending.pop(frame.id)
            self._room.release()
            if self.store.path is not None:
                self.store.remove(self.peer, frame.id)
            if future.done():
                return
            if isinstance(frame, protocol.Ack):
                self.acked += 1
                future.set_result(frame.data)
            else:
                future.set_exception(RemoteError(self.peer, frame.error))
        elif isinstance(frame, protocol.Error):
            self.log.warning("%s reports an error: %s", self.peer, frame.error)

    def _on_connect_error(self, exc: Exception) -> Exception | None:
        """Retry while there is patience left; give up with a clear error after."""
        if self._draining:
            return exc
        # The library knows which failures are transient: refused, reset, timed out, a
        # handshake cut short by a peer that is starting or stopping, HTTP 5xx.
        if isinstance(exc, PeerUnavailable) or library_verdict(exc) is not None:  # not None: fatal
            return PeerUnavailable(self.peer, self.uri, reason(exc))
        self._last_error = reason(exc)
        self._settle_subscriptions(None, False)  # not reachable now; subscribed when it is back
        waited = asyncio.get_running_loop().time() - self._down_since
        if self.wait and waited >= self.wait:
            error = PeerUnavailable(self.peer, self.uri, f"{self._last_error} (gave up after {waited:.1f} s)")
            if not self.patterns:
                return error
            # Subscriptions keep the link trying; only the messages waiting give up.
            self._fail_pending(error)
            self._down_since = asyncio.get_running_loop().time()
        return None

    def _delays(self) -> Generator[float, None, None]:
        """The backoff delays, with a log line on the first wait and every ``NAG`` seconds after."""
        loop = asyncio.get_running_loop()
        said = None
        for delay in self.reconnect_delays():
            self.state = "retrying"
            now = loop.time()
            if said is None or now - said >= NAG:
                waited = now - self._down_since
                self.log.info(
                    "waiting for %s at %s (%s%s); retrying in %.2g s",
                    self.peer,
                    self.uri,
                    self._last_error,
                    f", {waited:.0f} s so far" if said is not None else "",
                    delay,
                )
                said = now
            else:
                self.log.debug("retrying %s in %.2g s (%s)", self.peer, delay, self._last_error)
            yield delay

    def _fail_pending(self, error: Exception) -> None:
        pending, self._pending = self._pending, {}
        for _, future in pending.values():
            self._room.release()
            if not future.done():
                future.set_exception(error)
                future.exception()  # a caller that went away must not leave a warning


def _quiet(future: asyncio.Future[str]) -> None:
    """Nobody awaits a resumed message: retrieve its outcome so asyncio does not warn."""
    if not future.cancelled():
        future.exception()


def reason_closed(ws: ClientConnection) -> str:
    """How a connection ended, for a log line."""
    if ws.close_code is None:
        return "connection lost"
    return f"closed with {ws.close_code}" + (f": {ws.close_reason}" if ws.close_reason else "")


async def request(
    peer: str,
    uri: str,
    frame: protocol.Frame,
    *,
    sender: str = "cli",
    open_timeout: float = OPEN_TIMEOUT,
    headers: Mapping[str, str] | None = None,
) -> protocol.Frame:
    """Open a connection, send one frame, return the answer with the same id, close: for the CLI.

    ``open_timeout`` bounds opening the connection only: bound the whole call at the
    call site, with ``asyncio.timeout`` or ``wait_for``.
    """
    frame_id = getattr(frame, "id", None)
    try:
        async with connect(uri, **CLIENT, open_timeout=open_timeout, additional_headers=headers) as ws:
            if ws.subprotocol != protocol.SUBPROTOCOL:
                raise PeerUnavailable(peer, uri, f"it does not speak {protocol.SUBPROTOCOL}")
            await ws.send(protocol.encode(protocol.Hello(node=sender)))
            await ws.send(protocol.encode(frame))
            async for raw in ws:
                answer = protocol.decode(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
                if isinstance(answer, protocol.Error) and answer.id in (frame_id, None):
                    raise RemoteError(peer, answer.error)
                if getattr(answer, "id", None) == frame_id and not isinstance(answer, protocol.Hello):
                    return answer
            raise PeerUnavailable(peer, uri, "the connection closed before the answer came")
    except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed) as exc:
        raise PeerUnavailable(peer, uri, reason(exc)) from None


async def send_once(
    peer: str,
    uri: str,
    channel: str,
    text: str,
    *,
    sender: str = "cli",
    open_timeout: float = OPEN_TIMEOUT,
    headers: Mapping[str, str] | None = None,
) -> str:
    """Open a connection, send one message, return its ack, close: for the CLI's ``send``."""
    answer = await request(
        peer,
        uri,
        protocol.Message(id=1, channel=channel, data=text),
        sender=sender,
        open_timeout=open_timeout,
        headers=headers,
    )
    assert isinstance(answer, protocol.Ack)
    return answer.data


async def query_status(
    peer: str,
    uri: str,
    *,
    open_timeout: float = 1.0,
    headers: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """A node's status report (see docs/protocol.md)."""
    answer = await request(peer, uri, protocol.Status(id=1), open_timeout=open_timeout, headers=headers)
    assert isinstance(answer, protocol.Report)
    return answer.data
