"""A link's reading half: what its peer sends back, taken in the turn that reads it; and the peer's presence.

:class:`Replies` takes each text message the link's connection reads
(:attr:`mesh.wall.MeshClientConnection.on_text`: no reader task between) and its frames:
an ack settles its message's future in the outbox (the sender runs the next turn), an error
fails it, a publication goes to ``on_publish`` (which must not block: the node's inbox
queues it), and whatever the peer cannot make us believe (an ack for an id never sent, a
bad frame, a publication on a key that is not the peer's own) is counted and said once in
a while, never acted on. Nothing here waits or runs user code, so acks keep flowing
whatever the topic handlers do.

Keys only from their publishers: the first level of a key names the node that publishes it,
so a peer's publication is believed only on ``<peer>/...`` (its ``$state`` included). A
publication on any other key is refused with an error frame and counted (``forged`` in the
link's status), never handed to a handler, the dashboard, or the peer's presence: a peer
cannot say another node is offline, or tick for it.

:class:`Presence` is whether the peer is present as this link sees it: online while its
connection is up or when the peer publishes ``<peer>/$state`` = ``online``; offline when
the peer publishes ``offline`` (a clean stop), or when the connection is lost and not back
within ``LOST_AFTER`` seconds, or a reconnect fails first. That last case, the peer lost
rather than stopped, is told to ``on_lost()`` once per transition: MQTT's last will,
brokerless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from . import protocol
from .constants import LOST_AFTER, OFFLINE, ONLINE, STATE_TOPIC
from .errors import BatchRefused, ProtocolError, RemoteError
from .outbox import Outbox
from .subscriptions import Subscriptions
from .throttle import Throttle, escape

__all__ = ["OnPublish", "Presence", "Replies"]

#: What a link does with a publication that arrives: (key, data, lost). It must not block.
OnPublish = Callable[[str, str, int], object]


class Presence:
    """The peer as a link last saw it: ``state`` None (not yet), ``online`` or ``offline``; ``since`` (the loop's clock)."""

    def __init__(
        self, peer: str, log: logging.Logger | logging.LoggerAdapter, on_lost: Callable[[], object] | None
    ) -> None:
        self.peer = peer
        self.log = log
        self.on_lost = on_lost
        self.state: str | None = None
        self.since = 0.0
        self._losing: asyncio.TimerHandle | None = None

    def present(self, state: str) -> None:
        """The peer is ``state`` from now on (a change is timed; the same state again is not)."""
        self.cancel()
        if state != self.state:
            self.state = state
            self.since = asyncio.get_running_loop().time()

    def lost(self) -> None:
        """The peer was online and is not reachable: offline, and ``on_lost()`` told, once per transition."""
        if self.state != ONLINE:
            return
        self.present(OFFLINE)
        self.log.debug("%s is offline: its connection is lost", self.peer)
        if self.on_lost is not None:
            self.on_lost()

    def lose_later(self) -> None:
        """The connection to an online peer dropped: offline unless it is back within LOST_AFTER seconds."""
        if self.state == ONLINE and self._losing is None:
            self._losing = asyncio.get_running_loop().call_later(LOST_AFTER, self.lost)

    def cancel(self) -> None:
        if self._losing is not None:
            self._losing.cancel()
            self._losing = None


class Replies:
    """What one link's peer sends back, frame by frame; ``written()`` is the highest id written on the connection."""

    def __init__(
        self,
        peer: str,
        *,
        outbox: Outbox,
        subscriptions: Subscriptions,
        presence: Presence,
        on_publish: OnPublish | None,
        log: logging.Logger | logging.LoggerAdapter,
    ) -> None:
        self.peer = peer
        self.outbox = outbox
        self.subscriptions = subscriptions
        self.presence = presence
        self.on_publish = on_publish
        self.log = log
        #: The highest message id written on the current connection (the link sets it as it writes).
        self.written = 0
        #: Messages the peer dropped for us because we fell behind.
        self.lost = 0
        #: Acks and errors from the peer for ids this link never sent (refused, not believed).
        self.unknown_acks = 0
        #: Publications from the peer on keys that are not its own (refused, never handed on).
        self.forged = 0
        #: Where an error frame for the peer goes (the link sets it while a connection is up)...
        self.answer: Callable[[str], object] | None = None
        #: ...and what ends that connection, when the peer sent what cannot be read whole (a batch refused).
        self.unreadable: Callable[[], object] | None = None
        #: What the peer can make us warn about again and again: one line, then a count.
        self.throttle = Throttle(log)
        self._state_key = f"{peer}/{STATE_TOPIC}"
        self._own = f"{peer}/"

    def receive_text(self, text: str) -> None:
        """The frames of one websocket message from the peer. Never waits."""
        receive = self.receive
        for frame in protocol.decode_all(text):
            receive(frame)

    def receive(self, frame: protocol.Frame | ProtocolError) -> None:
        """One frame from the peer: an ack, an error, something published, or a bad frame. Never waits."""
        if isinstance(frame, protocol.Ack):
            if frame.id > self.written or not self.outbox.ack(frame.id, frame.data):
                if self.subscriptions.answered(frame.id, True) is None:
                    self._unknown(frame.id)
        elif isinstance(frame, protocol.Publish):
            if not frame.key.startswith(self._own):  # a node publishes its own keys only: never believed
                self._forged(frame.key)
                return
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
                self.presence.present(frame.data)  # the peer's own word: a clean stop is offline, not lost
            if self.on_publish is not None:
                self.on_publish(frame.key, frame.data, frame.lost)
        elif isinstance(frame, protocol.Error):
            if (
                frame.id is not None
                and frame.id <= self.written
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
        elif isinstance(frame, BatchRefused):  # what it held (acks) is lost: reconnect, and the peer answers again
            self.throttle.warn("batch", "refused a batch from %s: %s; reconnecting", self.peer, escape(frame))
            if self.unreadable is not None:
                self.unreadable()
        elif isinstance(frame, ProtocolError):
            self.throttle.warn("bad frame", "bad frame from %s: %s", self.peer, escape(frame))

    def _forged(self, key: str) -> None:
        """A publication on a key of another node (or of none): counted, said once in a while, answered with an error."""
        self.forged += 1
        self.throttle.warn(
            "forged",
            "refused a publication on %s from %s: a node publishes only its own keys (%s...); %d refused so far",
            escape(key, 80),
            self.peer,
            self._own,
            self.forged,
        )
        if self.answer is not None:
            error = (
                f"refused a publication on {escape(key, 80)}: {self.peer} publishes only its own keys ({self._own}...)"
            )
            self.answer(protocol.encode(protocol.Error(id=None, error=error)))

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
