"""Links: a node's one persistent connection to one peer.

Every ``stream()`` from a node to a peer goes through that peer's :class:`Link`.
The link opens one websocket with the ``arduino-mesh.1`` subprotocol and keeps
it: messages are written in order on it, batched, several in flight at once,
and acks come back matched by message id. When the peer is not listening yet,
or goes away, the link waits for it and re-sends what was not acked once it is
back.

A link is the composition of three parts, each with its own module and tests:

- its :class:`~mesh.outbox.Outbox`: message ids, room and storage of what is unacked;
- its :class:`~mesh.connection.Connection`: reconnect policy, patience, keepalive;
- its :class:`~mesh.subscriptions.Subscriptions`: patterns held at the peer, and their waiters.

What the link does itself: greet the peer, write batches, and read what comes
back, in the turn that reads it from the socket (``MeshClientConnection.on_text``:
an ack settles its future there, and the sender runs the next turn). That reading
never awaits user code: a publication is handed to ``on_publish`` (which must not
block), so acks keep flowing whatever the topic handlers do. Frames themselves are
built in :mod:`mesh.protocol`.

A link also says whether its peer is present (``presence``: ``online`` or
``offline``, and since when): online while its connection is up or when the peer
publishes ``<peer>/$state`` = ``online``; offline when the peer publishes
``offline`` (a clean stop), or when the connection is lost and not back within
:data:`LOST_AFTER` seconds, or a reconnect fails first. That last case, the
peer lost rather than stopped, is told to ``on_lost()`` once per transition:
MQTT's last will, brokerless (the node hands its subscribers a ``$state`` =
``offline`` of its own).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from . import protocol
from .connection import (
    CLIENT,
    CLOSE_TIMEOUT,
    DEFAULT_WAIT,
    OPEN_TIMEOUT,
    PING_INTERVAL,
    PING_TIMEOUT,
    Connection,
    MeshClientConnection,
    auth_headers,
    backoff,
    query_status,
    request,
    send_once,
    writable,
    write_now,
)
from .errors import PeerUnavailable, ProtocolError, RemoteError
from .outbox import DEFAULT_OUTBOX, MemoryOutbox, Outbox
from .protocol import BATCH, BATCH_BYTES
from .subscriptions import Subscriptions
from .throttle import Throttle, escape

__all__ = [
    "BATCH",
    "BATCH_BYTES",
    "CLIENT",
    "CLOSE_TIMEOUT",
    "DEFAULT_OUTBOX",
    "DEFAULT_WAIT",
    "LOST_AFTER",
    "OFFLINE",
    "ONLINE",
    "OPEN_TIMEOUT",
    "PING_INTERVAL",
    "PING_TIMEOUT",
    "STATE_TOPIC",
    "Link",
    "acks",
    "acks_by_target",
    "auth_headers",
    "backoff",
    "query_status",
    "request",
    "send_once",
]

#: What a link does with a publication that arrives: (key, data, lost). It must not block.
OnPublish = Callable[[str, str, int], object]
#: Seconds a lost connection has to come back before the link says its peer is offline
#: (a reconnect that fails says it at once). With the keepalive (a frozen peer's connection
#: is closed after PING_INTERVAL + PING_TIMEOUT), a peer that dies is offline within ~5 s.
LOST_AFTER = 2.0
#: The payloads of ``<node>/$state``, the presence key every node with a port publishes (retained).
ONLINE, OFFLINE = "online", "offline"
#: The topic of that key.
STATE_TOPIC = "$state"


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


class Link:
    """One persistent connection from node ``node`` to peer ``peer`` at ``uri``.

    ``post()`` may be called from many tasks at once; messages go out in the
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
        on_publish: OnPublish | None = None,
        store: MemoryOutbox | None = None,
        headers: Mapping[str, str] | None = None,
        max_size: int | None = None,
        token: str | None = None,
        recv_max_size: int | None = CLIENT["max_size"],
        on_lost: Callable[[], object] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.node = node
        self.peer = peer
        self.log = logger
        #: The largest frame the peer accepts (its grid max_size): larger messages are refused here.
        self.max_size = max_size
        self.on_publish = on_publish
        self.outbox = Outbox(peer, room=outbox, store=store, max_size=max_size)
        self.subscriptions = Subscriptions()
        self.connection = Connection(
            peer=peer,
            uri=uri,
            logger=logger,
            wait=wait,
            reconnect_delays=reconnect_delays,
            headers=headers,
            greeting=lambda: protocol.Hello(node=self.node, session=self.outbox.session),
            token=token,  # proved in the hello frames, never sent (mesh.auth)
            keep_trying=lambda: bool(self.subscriptions.patterns),  # subscriptions keep the link trying
            on_retry=self._unreachable,
            on_patience_out=self.outbox.fail_all,  # only the messages waiting give up
            max_size=recv_max_size,  # the largest frame taken from the peer (our own node's max_size)
            ssl_context=ssl_context,  # wss://, the peer verified against the grid's CA (mesh.tls)
        )
        #: Messages written (a message re-sent after a reconnect counts again).
        self.sent = 0
        #: Messages the peer dropped for us because we fell behind.
        self.lost = 0
        #: Acks and errors from the peer for ids this link never sent (refused, not believed).
        self.unknown_acks = 0
        #: What the peer can make us warn about again and again: one line, then a count.
        self.throttle = Throttle(logger)
        self._write_lock = asyncio.Lock()  # one writer at a time keeps the ids in order on the wire
        self._writers = 0  # tasks holding the write lock or waiting for it (post_now writes only when none)
        self._written = 0  # the highest id written on the current connection
        self._ws: ClientConnection | None = None  # while up
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._moving = False  # retarget() is ending the connection to the old address
        #: The peer as this link last saw it: None (not yet), "online" or "offline"; since (the loop's clock).
        self.presence: str | None = None
        self.presence_since = 0.0
        self.on_lost = on_lost
        self._state_key = f"{peer}/{STATE_TOPIC}"
        self._losing: asyncio.TimerHandle | None = None

    # -- what the node reads -----------------------------------------------------

    @property
    def uri(self) -> str:
        """Where the peer is: its connection's address (:meth:`retarget` moves it)."""
        return self.connection.uri

    @property
    def state(self) -> str:
        """idle, connecting, retrying, up, down (gave up) or closed."""
        return self.connection.state

    @property
    def connections(self) -> int:
        """Connections opened over the link's life: 1 while the peer stays up."""
        return self.connection.connections

    @property
    def pending(self) -> int:
        """Messages sent and not acked yet."""
        return len(self.outbox)

    @property
    def acked(self) -> int:
        return self.outbox.acked

    @property
    def session(self) -> str:
        """Names this link to the receiver, which drops messages of a session it has handled."""
        return self.outbox.session

    @property
    def resumed(self) -> int:
        """Messages resumed from an earlier run (a durable outbox)."""
        return self.outbox.resumed

    @property
    def store(self) -> MemoryOutbox:
        return self.outbox.store

    @property
    def patterns(self) -> dict[str, None]:
        """Patterns this link subscribes to at the peer; kept across reconnects."""
        return self.subscriptions.patterns

    # -- sending -------------------------------------------------------------------

    async def post(self, channel: str, text: str) -> asyncio.Future[str]:
        """Take one message into the outbox (waiting while it is full); the future resolves with its ack."""
        return (await self.post_many(channel, [text]))[0]

    async def post_many(self, channel: str, texts: Iterable[str]) -> list[asyncio.Future[str]]:
        """Take messages into the outbox and write them at once, batched; one future per message.

        Waits while the outbox is full, writing what it has taken so far first.
        Nothing is lost if the connection is down: the outbox is written out
        when it is back.
        """
        if self._closed or (self.connection.stopping and self._ws is None):
            raise PeerUnavailable(self.peer, self.uri, "the node is stopping")
        self._ensure_running()
        return await self.outbox.take(channel, texts, self._push)

    def post_now(self, channel: str, texts: Sequence[str]) -> list[asyncio.Future[str]] | None:
        """:meth:`post_many`'s work in the caller's turn, when nothing is to be waited for: the link is up, its
        connection takes a write now, no other write is under way or waiting for its turn (the order on the wire
        is the order of the calls), and the outbox has room for every message, whose frames fit one batch.
        One future per message; None: nothing was taken (await :meth:`post_many`).

        The common case, a few messages on a quiet link, costs no coroutine, no lock and no task.
        """
        ws = self._ws
        if ws is None or self._writers or self._closed or not writable(ws):
            return None
        taken = self.outbox.take_now(channel, texts, min(BATCH_BYTES, self.max_size or BATCH_BYTES))
        if taken is None:
            return None
        futures, frames, self._written = taken
        write_now(ws, protocol.batch(frames))  # writable: it writes
        self.sent += len(frames)
        return futures

    def has_room(self, count: int) -> bool:
        """Whether the outbox takes ``count`` more messages now, without waiting."""
        return self.outbox.has_room(count)

    async def send(self, channel: str, texts: Iterable[str]) -> list[str]:
        """Send messages back to back (all in flight at once) and return their acks in order."""
        return await acks(await self.post_many(channel, texts))

    async def _push(self, ids: list[int]) -> None:
        """Write these messages now if the link is up (else they go when it is)."""
        ws = self._ws
        if not ids or ws is None:
            return
        self._writers += 1
        try:
            async with self._write_lock:
                ws = self._ws  # read again: the connection may have gone while we waited for the lock
                if ws is None:
                    return
                try:
                    await self._write(ws, self.outbox.frames(ids, after=self._written))
                except ConnectionClosed:
                    pass  # still pending: written again on the next connection
        finally:
            self._writers -= 1

    async def _write(self, ws: ClientConnection, frames: list[tuple[int, str]]) -> None:
        """Write messages in order, in batches of at most BATCH frames and the batch bytes (write lock held)."""
        limit = min(BATCH_BYTES, self.max_size or BATCH_BYTES)
        batch: list[str] = []
        size = 0
        for msg_id, frame in frames:
            if batch and (len(batch) >= BATCH or size + len(frame) * 4 > limit):
                text = protocol.batch(batch)
                if not write_now(ws, text):
                    await ws.send(text)
                self.sent += len(batch)
                batch, size = [], 0
            batch.append(frame)
            size += len(frame) * 4  # at most 4 bytes a character: within the peer's max_size
            self._written = msg_id
        if batch:
            text = protocol.batch(batch)
            if not write_now(ws, text):  # no coroutine per write while the buffer has room
                await ws.send(text)
            self.sent += len(batch)

    # -- subscriptions -------------------------------------------------------------

    async def subscribe(self, pattern: str) -> bool:
        """Subscribe to ``pattern`` at the peer, now and after every reconnect.

        Returns True once the peer has taken it, False if the peer cannot be
        reached right now (it gets the subscription when it comes back).
        """
        future = self.subscriptions.add(pattern)
        if self._ws is not None:
            await self._ws.send(self.subscriptions.subscribe_frame(self.outbox.next_id(), pattern))
        self._ensure_running()
        return await future

    async def unsubscribe(self, pattern: str) -> None:
        """Stop the subscription to ``pattern`` at the peer."""
        if self.subscriptions.remove(pattern) and self._ws is not None:
            try:
                await self._ws.send(self.subscriptions.unsubscribe_frame(self.outbox.next_id(), pattern))
            except ConnectionClosed:
                pass  # the peer forgets us anyway

    def _unreachable(self) -> None:
        """The peer is not reachable now: subscribe() callers hear False; subscribed when it is back."""
        self.subscriptions.settle(None, False)
        self._lost()

    # -- presence ------------------------------------------------------------------

    def _present(self, state: str) -> None:
        """The peer is ``state`` from now on (a change is timed; the same state again is not)."""
        if self._losing is not None:
            self._losing.cancel()
            self._losing = None
        if state != self.presence:
            self.presence = state
            self.presence_since = asyncio.get_running_loop().time()

    def _lost(self) -> None:
        """The peer was online and is not reachable: offline, and ``on_lost()`` told, once per transition."""
        if self.presence != ONLINE:
            return
        self._present(OFFLINE)
        self.log.debug("%s is offline: its connection is lost", self.peer)
        if self.on_lost is not None:
            self.on_lost()

    # -- life ----------------------------------------------------------------------

    def resume(self) -> None:
        """Start re-sending what an earlier run left unacked (a durable outbox)."""
        if self.outbox.resume():
            self._ensure_running()

    def stop_reconnecting(self) -> None:
        """The node is stopping: do not reconnect. The open connection, if any, stays for now."""
        self.connection.stop_reconnecting()

    async def retarget(self, uri: str, max_size: int | None = None) -> None:
        """The peer is now at ``uri`` (the grid moved it) and accepts frames up to ``max_size``.

        The connection to the old address closes (1001) and the link connects to the new
        one at once if it was running; what is unacked stays in the outbox and is re-sent
        there, under the same session, so the peer still handles each message once.
        """
        self.max_size = max_size
        self.outbox.max_size = max_size
        if uri == self.uri:
            return
        self.connection.uri = uri
        task = self._task
        if task is None or task.done() or self._closed:
            return  # the next post() or subscribe() connects to the new address
        self._moving = True
        try:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        finally:
            self._moving = False
        self.connection.state = "idle"
        self._ensure_running()

    @property
    def websocket(self) -> ClientConnection | None:
        """The connection open now, if any."""
        return self._ws

    def abort(self) -> None:
        """Drop the link at once, as a killed process would: no close frame, nothing failed, no reconnect.

        What is pending stays in the outbox (and in its file, for a durable node): a restart resumes it.
        """
        self._closed = True
        self.connection.stop_reconnecting()
        if self._losing is not None:
            self._losing.cancel()
        if self._ws is not None:
            self._ws.transport.abort()
        if self._task is not None:
            self._task.cancel()
        self.connection.state = "closed"

    async def close(self) -> None:
        """Close the connection (1001, going away) and fail what is still pending."""
        self._closed = True
        self.connection.stop_reconnecting()
        if self._losing is not None:
            self._losing.cancel()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self.outbox.fail_all(PeerUnavailable(self.peer, self.uri, "the link was closed"))
        self.subscriptions.settle(None, False)
        self.connection.state = "closed"

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"link {self.node}->{self.peer}")

    async def _run(self) -> None:
        """Connect, reconnect, and pump frames until closed or out of patience."""
        try:
            await self.connection.run(self._session)
        except PeerUnavailable as error:
            self._lost()
            self.subscriptions.settle(None, False)
            self.outbox.fail_all(error)  # the callers of post() report it: one line each, where it matters

    async def _session(self, ws: ClientConnection) -> None:
        """One connection's life: greet, subscribe, re-send what is pending, then read until it closes."""
        if ws.subprotocol != protocol.SUBPROTOCOL:
            raise PeerUnavailable(self.peer, self.uri, f"it does not speak {protocol.SUBPROTOCOL}")
        if not await self._greet(ws):
            return
        if isinstance(ws, MeshClientConnection):  # replies handled in the turn that reads them: no reader hop
            ws.on_text = self._receive_text
        # Subscriptions first, so that nothing published from now on is missed.
        self.subscriptions.connected()
        sent: set[str] = set()
        try:
            while todo := [pattern for pattern in self.subscriptions.patterns if pattern not in sent]:
                for pattern in todo:  # subscribe() may add more while we await
                    await ws.send(self.subscriptions.subscribe_frame(self.outbox.next_id(), pattern))
                    sent.add(pattern)
        except ConnectionClosed:
            return
        self.connection.up()
        self._present(ONLINE)
        reader = asyncio.create_task(self._read(ws))  # acks flow while we re-send: no deadlock on full buffers
        try:
            self._writers += 1
            try:
                async with self._write_lock:
                    self._ws = ws
                    self._written = 0
                    await self._write(ws, self.outbox.frames())  # everything unacked, in order, before anything new
            finally:
                self._writers -= 1
            await reader
        except ConnectionClosed:
            pass
        finally:
            self._ws = None
            if isinstance(ws, MeshClientConnection):
                ws.on_text = None
            reader.cancel()
            if self._moving:
                await ws.close(1001)  # the peer moved: no "link down" line, no reconnect to the old address
            else:
                if not self.connection.stopping and self.presence == ONLINE and self._losing is None:
                    self._losing = asyncio.get_running_loop().call_later(LOST_AFTER, self._lost)
                await self.connection.down(ws)

    async def _greet(self, ws: ClientConnection) -> bool:
        """The hello frames, exchanged by the handshake (MeshClientConnection): a warning if the peer has another name."""
        hello = getattr(ws, "peer_hello", None)
        if not isinstance(hello, protocol.Hello):
            self.log.warning("link to %s failed its greeting: no hello from it", self.peer)
            return False
        if hello.node != self.peer:
            self.log.warning("%s at %s says it is %r", self.peer, self.uri, hello.node)
        return True

    # -- reading -------------------------------------------------------------------

    async def _read(self, ws: ClientConnection) -> None:
        """What the connection does not hand over as it arrives (``on_text``), and its end."""
        try:
            async for text in ws:
                self._receive_text(text if isinstance(text, str) else text.decode("utf-8", "replace"))
        except ConnectionClosed:
            pass

    def _receive_text(self, text: str) -> None:
        """The frames of one websocket message from the peer. Never waits."""
        receive = self._receive
        for frame in protocol.decode_all(text):
            receive(frame)

    def _receive(self, frame: protocol.Frame | ProtocolError) -> None:
        """One frame from the peer: an ack, an error, something published, or a bad frame. Never waits."""
        if isinstance(frame, protocol.Ack):
            if frame.id > self._written or not self.outbox.ack(frame.id, frame.data):
                if self.subscriptions.answered(frame.id, True) is None:
                    self._unknown(frame.id)
        elif isinstance(frame, protocol.Publish):
            if frame.lost:
                self.lost += frame.lost
                self.throttle.warn(
                    "lost",
                    "fell behind %s: it dropped %d message(s) for us (%d in all)",
                    self.peer,
                    frame.lost,
                    self.lost,
                )
            if frame.key == self._state_key and frame.data in (ONLINE, OFFLINE):
                self._present(frame.data)  # the peer's own word: a clean stop is offline, not lost
            if self.on_publish is not None:
                self.on_publish(frame.key, frame.data, frame.lost)
        elif isinstance(frame, protocol.Error):
            if (
                frame.id is not None
                and frame.id <= self._written
                and self.outbox.refuse(frame.id, RemoteError(self.peer, frame.error))
            ):
                return
            pattern = None if frame.id is None else self.subscriptions.answered(frame.id, False)
            if pattern is not None:
                self.log.error("%s refused the subscription %r: %s", self.peer, pattern, escape(frame.error))
            elif frame.id is not None:
                self._unknown(frame.id)
            else:
                self.throttle.warn("error", "%s reports an error: %s", self.peer, escape(frame.error))
        elif isinstance(frame, ProtocolError):
            self.throttle.warn("bad frame", "bad frame from %s: %s", self.peer, escape(frame))

    def _unknown(self, msg_id: int) -> None:
        """An answer for an id this link never sent (or already settled): counted, not believed."""
        self.unknown_acks += 1
        self.throttle.warn(
            "unknown id",
            "%s answered id %d, which this link never sent or already settled: ignored (%d so far)",
            self.peer,
            msg_id,
            self.unknown_acks,
        )
