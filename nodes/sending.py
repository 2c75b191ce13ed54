"""What a node sends: messages to its peers over its links, and publications to whoever subscribed.

:class:`Sender` is the runtime behind a sketch's ``stream``, ``stream_all``, ``post`` and
``publish`` (the sketch's surface hands those straight to it: no layer between). It keeps
the node's link registry: one persistent :class:`~mesh.links.Link` per peer, made on first
use from the grid's address, so a tick goes from the sketch to the link's outbox and onto
the wire in the sketch's own turn when nothing needs waiting for.

A publication goes to the node's own hub (its remote subscribers' queues), to the node's
own inbox (its own subscriptions), and to the taps (a simulation's record), in that order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING

from mesh.constants import OFFLINE, STATE_TOPIC
from mesh.errors import MeshError, TopicError, UnknownNodeError
from mesh.grid import Grid
from mesh.links import Link
from mesh.outbox import acks, acks_by_target
from mesh.protocol import to_text
from mesh.topics import check_key, check_topic

if TYPE_CHECKING:
    from .node import Node

__all__ = ["KNOWN_TOPICS", "Sender"]

#: Topics a node remembers as already checked.
KNOWN_TOPICS = 4096
#: Seconds between two looks at a retired link's outbox, until it is empty.
DRAIN_POLL = 0.05


def _texts(data: object) -> list[str]:
    """``data`` as the texts of its messages: one for text or a single value, one per item of anything else."""
    items = [data] if isinstance(data, (str, bytes, int, float, dict)) or data is None else list(data)  # type: ignore[call-overload]
    return [to_text(item) for item in items]


def _failed(error: Exception) -> asyncio.Future[str]:
    """A future that already failed with ``error``: a target whose messages could not be taken."""
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    future.set_exception(error)
    return future


class Sender:
    """A node's links and publications: what its sketch sends, and the counters of it."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.name = node.name
        self.links: dict[str, Link] = {}
        self.messages_out = 0
        self.published = 0
        #: Who else sees each publication as it is made, ``tap(key, text)``: a simulation's record of the circuit.
        self.taps: list[Callable[[str, str], None]] = []
        #: Counts each message handed to a link: ``posted(target, futures)`` (a simulation's wires in its trace).
        self.posted: Callable[[str, list[asyncio.Future[str]]], None] | None = None
        self._topics: set[str] = set()

    # -- messages -----------------------------------------------------------------------

    async def post(self, target: str, data: object, channel: str = "") -> list[asyncio.Future[str]]:
        """Hand ``data`` (one message, or one per item) to the link to ``target``; one future per message.

        Returns as soon as the link has taken the messages; each future resolves with its ack
        (or an error). Waits only while the link's outbox is full: the backpressure of a peer
        that is down or slow.
        """
        texts = _texts(data)
        link = self.link(target)
        futures = link.post_now(channel, texts)  # written in this turn when nothing needs waiting for
        if futures is None:
            futures = await link.post_many(channel, texts)
        self.messages_out += len(futures)
        if self.posted is not None:
            self.posted(target, futures)
        return futures

    async def stream(self, target: str, data: object, channel: str = "") -> list[str]:
        """Send each item of ``data`` to node ``target``; return their acks, in order.

        Text (or any single value) is one message; a list, tuple or generator is one
        message per item. Items that are not text travel as JSON. Everything goes over
        the one persistent link to ``target``. To send to several nodes at once, use
        :meth:`stream_all`.
        """
        if not isinstance(target, str):
            raise TypeError(
                f"stream() sends to one node, named by a str, not {type(target).__name__}:"
                " use stream_all(targets, data) to send to several at once"
            )
        return await acks(await self.post(target, data, channel))

    async def stream_all(self, targets: Iterable[str], data: object, channel: str = "") -> dict[str, list[str]]:
        """Send all of ``data`` to every one of ``targets`` at once; ``{target: [acks, in order]}`` once all answered.

        Every link takes the messages and writes them before any ack is awaited, so the
        targets work on them together. A link whose outbox is full is handed its share once
        the others have theirs, so a target that is down or slow holds up no other. Once
        every target has answered or failed, the first failure (in the order of
        ``targets``) is raised, as :meth:`stream` raises it for one target.
        """
        if isinstance(targets, str):
            raise TypeError(f"stream_all() takes several nodes (a list, such as self.targets), not the str {targets!r}")
        texts = _texts(data)
        links = {target: self.link(target) for target in targets}  # UnknownNodeError before anything is sent
        posted: dict[str, list[asyncio.Future[str]]] = {}
        full = []
        for target, link in links.items():
            if link.has_room(len(texts)):  # taken at once: no task to make
                try:
                    posted[target] = await self.post(target, texts, channel)
                except MeshError as exc:  # this target's failure, raised once the others are delivered
                    posted[target] = [_failed(exc)]
            else:
                full.append(target)
        if full:
            taken = await asyncio.gather(
                *(self.post(target, texts, channel) for target in full), return_exceptions=True
            )
            for target, outcome in zip(full, taken, strict=True):
                if isinstance(outcome, asyncio.CancelledError) or not isinstance(outcome, Exception):
                    if isinstance(outcome, BaseException):
                        raise outcome
                    posted[target] = outcome
                else:
                    posted[target] = [_failed(outcome)]
        answers = await acks_by_target([posted[target] for target in links])
        return dict(zip(links, answers, strict=True))

    # -- the links ------------------------------------------------------------------------

    def link(self, target: str) -> Link:
        """The persistent link to ``target``, made on first use."""
        link = self.links.get(target)
        if link is None:
            node = self.node
            spec = node.grid.nodes.get(target)
            if spec is None:
                raise UnknownNodeError(target, node.grid.nodes)
            if spec.uri is None:
                raise MeshError(f"node {target!r} has no port: nothing can stream to it")
            link = Link(
                node=self.name,
                peer=target,
                uri=spec.uri,
                logger=node.log,
                # A durable outbox is store-and-forward: it keeps trying until the peer takes it all.
                wait=0 if node.spec.durable else node.patience,
                reconnect_delays=node.reconnect_delays,
                on_publish=node.inbox.deliver,
                outbox=node.spec.outbox,
                store=node.store,
                token=node.token,
                max_size=spec.max_size,
                recv_max_size=node.spec.max_size,  # what the peer sends back: no more than we accept
                on_lost=partial(self._lost, target),
                ssl_context=node.client_ssl(),
            )
            self.links[target] = link
        return link

    def _lost(self, peer: str) -> None:
        """The link to ``peer`` lost it (not a clean stop): its ``$state`` = ``offline`` to our own handlers."""
        key = f"{peer}/{STATE_TOPIC}"
        inbox = self.node.inbox
        if inbox.wants(key):
            inbox.deliver(key, OFFLINE)

    def peers(self, grid: Grid) -> dict[str, str]:
        """Every other node of ``grid``: ``no port``, or the state of this node's link to it (``idle``: none yet)."""
        states = {}
        for name, spec in grid.nodes.items():
            if name == self.name:
                continue
            link = self.links.get(name)
            states[name] = "no port" if spec.port is None else link.state if link is not None else "idle"
        return states

    # -- publications ------------------------------------------------------------------------

    async def publish(self, topic: str, data: object, *, retain: bool = False) -> int:
        """Publish ``data`` on ``<node>/<topic>``; return how many subscribers it was handed to.

        No subscribers is 0, not an error. A node without a port cannot be reached, so only
        its own subscriptions can hear it. With ``retain=True`` the node keeps the value as
        the key's last, and every later subscription that matches it gets it at once (an
        empty ``data`` clears it). Topics starting with ``$`` are the runtime's: refused.
        """
        if topic not in self._topics:  # checked once per topic
            self.check(topic)
        node = self.node
        if retain:
            return self.publish_now(topic, to_text(data), retain=True)
        inbox = node.inbox
        if not node.hub.subscribers and not inbox.handlers and not inbox.inline and not self.taps:  # nobody hears it
            self.published += 1
            return 0
        return self.publish_now(topic, to_text(data))

    def check(self, topic: str) -> None:
        """:class:`TopicError` unless this node may publish on ``topic`` (what :meth:`publish` checks once per topic)."""
        check_topic(topic)
        if topic.startswith("$"):
            raise TopicError(
                topic,
                f"topic {topic!r}: topics starting with '$' are the runtime's"
                f" ({self.name}/$state, {self.name}/$subscribers/...); publish on another name",
            )
        check_key(f"{self.name}/{topic}")
        if len(self._topics) < KNOWN_TOPICS:
            self._topics.add(topic)

    def publish_now(self, topic: str, text: str, retain: bool = False) -> int:
        """Publish ``text`` on ``<node>/<topic>``, unchecked (the runtime's own ``$`` topics come this way)."""
        key = f"{self.name}/{topic}"
        node = self.node
        for tap in self.taps:
            tap(key, text)
        if retain:
            node.hub.retain(key, text)  # RetainLimit past a limit: nothing published
        handed = node.hub.publish(key, text)
        inbox = node.inbox
        if inbox.wants(key) and inbox.deliver(key, text):
            handed += 1
        self.published += 1
        return handed

    # -- following the grid file ---------------------------------------------------------------

    async def follow(self, old: Grid, new: Grid, subscribed: set[str]) -> None:
        """Links follow their peers' addresses; links no longer wired or subscribed through (or to a node gone) retire.

        ``subscribed``: the peers whose links held subscriptions before the edit. A retiring
        link closes once its outbox is empty: what was in flight is delivered first, or fails
        after the node's ``--wait`` like any message to a peer that stays away.
        """
        node = self.node
        for peer, link in list(self.links.items()):
            spec = new.nodes.get(peer)
            if spec is not None and spec.uri is not None:
                if spec.uri != link.uri:
                    node.log.info("%s moved to %s", peer, spec.uri)
                await link.retarget(spec.uri, spec.max_size)
        unwired = (set(old.targets(self.name)) | subscribed) - set(new.targets(self.name))
        for peer, link in list(self.links.items()):
            if peer in unwired or new.nodes.get(peer) is None or new.nodes[peer].uri is None:
                node.in_background(self._retire(peer, link), f"{self.name} retires {peer}")

    def _retirable(self, peer: str, link: Link) -> bool:
        """The link is still ours, its peer is not wired to, and no subscription needs it."""
        return self.links.get(peer) is link and peer not in self.node.targets and not link.patterns

    async def _retire(self, peer: str, link: Link) -> None:
        """Close the link to ``peer`` once its outbox is empty (what is in flight is delivered or fails first)."""
        # The outbox has no "empty" event to wait on; a look every DRAIN_POLL on the loop's clock is cheap.
        while self._retirable(peer, link) and link.pending:  # noqa: ASYNC110
            await asyncio.sleep(DRAIN_POLL)
        if self._retirable(peer, link):
            del self.links[peer]  # a later stream() to the peer opens a new link
            await link.close()
            gone = "no longer needed" if peer in self.node.grid.nodes else "gone from the grid"
            self.node.log.info("link to %s closed: %s", peer, gone)

    # -- the end --------------------------------------------------------------------------------

    def stop_reconnecting(self) -> None:
        for link in self.links.values():
            link.stop_reconnecting()

    async def close(self) -> None:
        await asyncio.gather(*(link.close() for link in self.links.values()))

    def abort(self) -> None:
        for link in self.links.values():
            link.abort()
