"""One subscriber at its publisher: a bounded queue of publications, written in batches at the end of a turn.

A publication is encoded once (:class:`Publication`) and appended to the queue of every
subscriber it matches. Slow subscribers never stall anyone: each queue is bounded in bytes
(``QUEUE_BYTES``, and ``QUEUE_BOUND`` publications); when it is full the oldest is dropped, counted, logged, and
reported to the subscriber with the next one it does get (``lost`` in the ``pub`` frame).
A queue that was empty asks its hub to write it at the end of the event loop's turn
(:meth:`RemoteSubscriber.write_due`): straight to the connection's transport, in batches
(:func:`mesh.protocol.batch_sizes`), built once for every subscriber that gets the same
publications. A connection past its write limit gets its queue from a task of its own,
which waits for it at most ``SEND_TIMEOUT`` seconds and drops it past that.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from typing import TYPE_CHECKING

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from mesh import protocol
from mesh.constants import DEFAULT_MAX_SIZE, QUEUE_BOUND, QUEUE_BYTES, SEND_TIMEOUT, WARN_EVERY
from mesh.throttle import Throttle, escape
from mesh.wall import drained, owe, writable, write_now

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["PUB_FRAME_LIMIT", "Publication", "RemoteSubscriber"]

#: Bytes of the largest pub frame a publisher sends: what a websockets client takes by default
#: (and a node, unless its max_size says more). A larger publication is dropped and counted lost.
PUB_FRAME_LIMIT = DEFAULT_MAX_SIZE


class Publication:
    """One message on its way to subscribers, encoded once for all of them.

    ``frame`` is its ``pub`` frame with no ``lost`` count, as the UTF-8 bytes that go
    on the wire, the frame nearly every subscriber gets; a subscriber that has losses
    to report gets a frame of its own (:meth:`frame_for`), spliced from it. ``size``
    is the frame's length. Only the frame is kept, not the data beside it: a queue of
    large publications costs their frames' size once, whatever the subscribers, and a
    batch of them is joined from these bytes, never encoded again.
    """

    __slots__ = ("frame", "key", "retained", "size")

    def __init__(self, key: str, data: str, retained: bool = False) -> None:
        self.key = key
        self.retained = retained
        # A lone surrogate (never valid UTF-8) goes out as "?", so that the frame is always valid text.
        self.frame = protocol.encode_pub(key, data, retained=retained).encode("utf-8", "replace")
        self.size = len(self.frame)

    def frame_for(self, lost: int) -> bytes:
        """The frame for a subscriber that lost ``lost`` messages since its previous one."""
        if not lost:
            return self.frame
        # encode_pub writes lost after data and before retained, the frame's last field if there.
        tail = _RETAINED_TAIL if self.retained else b"}"
        return self.frame[: -len(tail)] + b',"lost":%d' % lost + tail


_RETAINED_TAIL = b',"retained":true}'


class RemoteSubscriber:
    """One connection subscribed to this node: its patterns and its own bounded queue.

    A publication is queued, and written at the end of the event loop's turn
    straight to the connection's transport, with whatever else the turn
    published, while the connection takes it without waiting (see
    :meth:`Hub.write_due`). A connection past its write limit gets its queue
    from a task of its own, which waits for it to drain, at most
    :data:`SEND_TIMEOUT` seconds, and drops it past that.
    """

    def __init__(
        self,
        name: str,
        websocket: ServerConnection,
        log: logging.Logger,
        bound: int = QUEUE_BOUND,
        throttle: Throttle | None = None,
        hub: Hub | None = None,
        budget: int = QUEUE_BYTES,
    ) -> None:
        self.name = name
        self.websocket = websocket
        self.log = log
        self.throttle = throttle if throttle is not None else Throttle(log, WARN_EVERY)
        self.bound = bound
        #: Bytes of publications the queue holds at most (their frames: shared with other subscribers).
        self.budget = budget
        self.hub = hub
        self.patterns: dict[str, None] = {}
        self.queue: deque[Publication] = deque()
        #: Bytes the queue holds now.
        self.queued_bytes = 0
        self.sent = 0
        self.lost = 0
        #: Subscriptions this connection asked for past MAX_PATTERNS_PER_CONNECTION.
        self.refused = 0
        self._unreported = 0
        self._wake = asyncio.Event()
        self.closed = False
        #: Set while nothing is queued or being written: what a stopping node waits for (Hub.flush).
        self.idle = asyncio.Event()
        self.idle.set()
        self._task = asyncio.create_task(self._pump(), name=f"pub to {name}")

    def offer(self, key: str, data: str, retained: bool = False) -> None:
        """Queue a message without waiting; drop the oldest if the queue is full."""
        self.offer_publication(Publication(key, data, retained))

    def offer_publication(self, publication: Publication) -> None:
        """Queue a publication (shared with other subscribers) without waiting; drop the oldest if full."""
        queue = self.queue
        while queue and (len(queue) >= self.bound or self.queued_bytes + publication.size > self.budget):
            self.queued_bytes -= queue.popleft().size
            self._drop("falls behind")
        queue.append(publication)
        self.queued_bytes += publication.size
        if self.idle.is_set():  # the first since the queue emptied: written at the end of this turn
            self.idle.clear()
            if self.hub is not None:
                self.hub.due(self)
            else:
                self._wake.set()

    def _drop(self, why: str) -> None:
        """One message for this subscriber is lost: count it, report it with the next pub, warn now and then."""
        self.lost += 1
        self._unreported += 1
        self.throttle.warn(
            ("lost", self.name), "subscriber %s %s: %d message(s) dropped so far", escape(self.name), why, self.lost
        )

    def _batch(self) -> tuple[bytes, int]:
        """One batch of pub frames from the head of the queue (:func:`mesh.protocol.batch_sizes`): (text, frames).

        A publication larger than the subscriber can take is dropped here, counted lost. Only the
        head of a batch can be: a frame over BATCH_BYTES always starts a batch of its own.
        """
        queue = self.queue
        while queue:
            head = list(itertools.islice(queue, protocol.BATCH))
            frames = [publication.frame for publication in head]
            sizes = [publication.size + 1 for publication in head]  # + 1: the comma between two frames
            if self._unreported:
                frames[0] = head[0].frame_for(self._unreported)
                sizes[0] = len(frames[0]) + 1
            if sizes[0] - 1 > PUB_FRAME_LIMIT:  # more than the subscriber can take: lost, not sent
                self.queued_bytes -= queue.popleft().size
                self._drop(
                    f"cannot take a publication of {sizes[0] - 1} bytes on {head[0].key} (at most {PUB_FRAME_LIMIT})"
                )
                continue
            count = next(protocol.batch_sizes(sizes, protocol.BATCH_BYTES))
            for _ in range(count):
                self.queued_bytes -= queue.popleft().size
            self._unreported = 0
            return (frames[0] if count == 1 else b"[" + b",".join(frames[:count]) + b"]"), count
        return b"", 0

    def write_due(self, shared: dict[tuple[Publication, ...], bytes]) -> None:
        """End of the turn: write the queue straight to the transport, or hand it to the task if it must wait.

        ``shared``: the bytes of the batches already built this turn for other
        subscribers, by the publications they hold: a batch is built once for all
        the subscribers that get the same publications (no losses to report).
        """
        websocket, queue = self.websocket, self.queue
        if self.closed:
            self._clear()
            self.idle.set()
            return
        try:
            while queue:
                if not writable(websocket):
                    if websocket.state is not State.OPEN:
                        self._clear()  # closing: the server forgets this subscriber when its handler ends
                        break
                    self._wake.set()  # past its write limit: the task waits for it, bounded
                    return
                whole = None
                if not self._unreported and len(queue) <= protocol.BATCH:
                    whole = tuple(queue)
                    data = shared.get(whole)
                    if data is not None:
                        self._clear()
                        write_now(websocket, data)
                        self.sent += len(whole)
                        continue
                data, count = self._batch()
                if not count:
                    continue
                if whole is not None and not queue and count == len(whole):
                    shared[whole] = data  # all of it, as is: the next subscriber with the same queue reuses it
                write_now(websocket, data)
                self.sent += count
        except Exception as exc:  # what broadcast() shrugs off: the connection is going, its handler cleans up
            self._clear()
            self.log.debug("could not write to subscriber %s: %s", escape(self.name), escape(str(exc)))
        self.idle.set()

    async def _pump(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                websocket = self.websocket
                while self.queue:  # what piled up goes in batches, each built once the last has drained
                    owe(websocket, websocket.transport.get_write_buffer_size())  # held for it meanwhile
                    if not await drained(websocket, SEND_TIMEOUT):
                        self.log.warning(
                            "subscriber %s took nothing for %g s: dropping its connection",
                            escape(self.name),
                            SEND_TIMEOUT,
                        )
                        return
                    owe(websocket, 0)
                    data, count = self._batch()
                    if count and not write_now(websocket, data):
                        await websocket.send(data, text=True)  # a fragmented send under way (never, from here)
                    del data  # the transport holds its copy: not a second one per waiting subscriber
                    self.sent += count
                self.idle.set()
        except ConnectionClosed:
            pass
        finally:
            owe(self.websocket, 0)
            self.idle.set()  # nothing more will be written: nobody waits for it

    def _clear(self) -> None:
        self.queue.clear()
        self.queued_bytes = 0

    def close(self) -> None:
        self.closed = True
        self._clear()
        self._task.cancel()
