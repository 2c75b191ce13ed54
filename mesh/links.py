"""Links: a node's one persistent connection to one peer.

Every ``stream()`` from a node to a peer goes through that peer's :class:`Link`.
The link opens one websocket with the ``arduino-mesh.1`` subprotocol and keeps
it: messages are written in order on it, batched, several in flight at once,
and acks come back matched by message id. When the peer is not listening yet,
or goes away, the link waits for it and re-sends what was not acked once it is
back.

A link is the composition of parts, each with its own module and tests:

- its :class:`~mesh.outbox.Outbox`: message ids, room and storage of what is unacked;
- its :class:`~mesh.reconnect.Connection`: reconnect policy, patience, keepalive;
- its :class:`~mesh.subscriptions.Subscriptions`: patterns held at the peer, and their waiters;
- its :class:`~mesh.replies.Replies`: what the peer sends back, taken in the turn that reads
  it, and its :class:`~mesh.replies.Presence`: whether the peer is online, as the link sees it.

What the link does itself: greet the peer (subscriptions first, then everything unacked, in
order, before anything new) and write batches (:func:`mesh.protocol.batches`), in the
caller's turn when nothing needs waiting for (:meth:`Link.post_now`).

It runs past 400 lines and stays one module: greeting and writing share one order (what was
unacked goes before anything new, on every connection), which reads best in one place.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from functools import partial

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from . import protocol
from .constants import DEFAULT_OUTBOX, DEFAULT_WAIT, ONLINE
from .errors import PeerUnavailable
from .outbox import MemoryOutbox, Outbox, acks
from .protocol import BATCH_BYTES
from .reconnect import CLIENT, Connection, backoff
from .replies import OnPublish, Presence, Replies
from .subscriptions import Subscriptions
from .wall import MeshClientConnection, abort, writable, write_now

__all__ = ["Link"]


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
        #: The peer as this link last saw it (online, offline) and since when.
        self.seen = Presence(peer, logger, on_lost)
        #: The link's reading half: acks, errors and publications from the peer.
        self.replies = Replies(
            peer,
            outbox=self.outbox,
            subscriptions=self.subscriptions,
            presence=self.seen,
            on_publish=on_publish,
            log=logger,
        )
        #: Messages written (a message re-sent after a reconnect counts again).
        self.sent = 0
        self._write_lock = asyncio.Lock()  # one writer at a time keeps the ids in order on the wire
        self._writers = 0  # tasks holding the write lock or waiting for it (post_now writes only when none)
        self._ws: ClientConnection | None = None  # while up
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._moving = False  # retarget() is ending the connection to the old address

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
    def presence(self) -> str | None:
        """The peer as this link last saw it: None (not yet), ``online`` or ``offline``."""
        return self.seen.state

    @property
    def presence_since(self) -> float:
        return self.seen.since

    @property
    def lost(self) -> int:
        """Messages the peer dropped for us because we fell behind."""
        return self.replies.lost

    @property
    def forged(self) -> int:
        """Publications from the peer on keys that are not its own (refused, never handed on)."""
        return self.replies.forged

    @property
    def unknown_acks(self) -> int:
        """Acks and errors from the peer for ids this link never sent (refused, not believed)."""
        return self.replies.unknown_acks

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
        futures, frames, self.replies.written = taken
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
                    await self._write(ws, self.outbox.frames(ids, after=self.replies.written))
                except ConnectionClosed:
                    pass  # still pending: written again on the next connection
        finally:
            self._writers -= 1

    async def _write(self, ws: ClientConnection, frames: list[tuple[int, str]]) -> None:
        """Write messages in order, in batches (:func:`mesh.protocol.batches`) the peer accepts (write lock held)."""
        end = 0
        for count, text in protocol.batches(
            [frame for _, frame in frames], min(BATCH_BYTES, self.max_size or BATCH_BYTES)
        ):
            end += count
            self.replies.written = frames[end - 1][0]
            if not write_now(ws, text):  # no coroutine per write while the buffer has room
                await ws.send(text)
            self.sent += count

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
        self.seen.lost()

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
        self.seen.cancel()
        if self._ws is not None:
            abort(self._ws)
        if self._task is not None:
            self._task.cancel()
        self.connection.state = "closed"

    async def close(self) -> None:
        """Close the connection (1001, going away) and fail what is still pending."""
        self._closed = True
        self.connection.stop_reconnecting()
        self.seen.cancel()
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
            self.seen.lost()
            self.subscriptions.settle(None, False)
            self.outbox.fail_all(error)  # the callers of post() report it: one line each, where it matters

    async def _session(self, ws: ClientConnection) -> None:
        """One connection's life: greet, subscribe, re-send what is pending, then read until it closes."""
        if ws.subprotocol != protocol.SUBPROTOCOL:
            raise PeerUnavailable(self.peer, self.uri, f"it does not speak {protocol.SUBPROTOCOL}")
        if not await self._greet(ws):
            return
        if isinstance(ws, MeshClientConnection):  # replies handled in the turn that reads them: no reader hop
            ws.on_text = self.replies.receive_text
        self.replies.answer = partial(write_now, ws)
        self.replies.unreadable = partial(abort, ws)  # the outbox re-sends what is unacked on the next connection
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
        self.seen.present(ONLINE)
        reader = asyncio.create_task(self._read(ws))  # acks flow while we re-send: no deadlock on full buffers
        try:
            self._writers += 1
            try:
                async with self._write_lock:
                    self._ws = ws
                    self.replies.written = 0
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
                if not self.connection.stopping:
                    self.seen.lose_later()
                await self.connection.down(ws)

    async def _greet(self, ws: ClientConnection) -> bool:
        """The hello frames, exchanged by the handshake (MeshClientConnection): a warning if the peer has another name."""
        greeter = getattr(ws, "greeter", None)
        hello = getattr(greeter, "peer_hello", None)
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
                self.replies.receive_text(text if isinstance(text, str) else text.decode("utf-8", "replace"))
        except ConnectionClosed:
            pass
