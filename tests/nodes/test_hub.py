"""The publisher's side (nodes.hub): retained values encoded once and shared; queues bounded in bytes."""

from __future__ import annotations

import asyncio
import logging

from nodes.hub import Hub

LOG = logging.getLogger("mesh.test")


class Peer:
    """Stands for a subscriber's connection: the hub only keeps it as a key until a queue is written."""


def test_retained_values_are_encoded_once_and_shared_by_every_subscription():
    """Forty '#' subscriptions to a node retaining many values hold the same publications, not forty copies."""

    async def main() -> None:
        hub = Hub("pub", LOG, announce=lambda topic, text: 0)
        for i in range(100):
            hub.retain(f"pub/k{i}", "v" * 1000)
        peers = [Peer() for _ in range(40)]
        for n, peer in enumerate(peers):
            hub.add(peer, f"sub{n}", "#")  # type: ignore[arg-type]
        queues = [hub.subscribers[peer].queue for peer in peers]  # in this turn: nothing written yet
        assert all(len(queue) == 100 for queue in queues)
        assert all(a is b for queue in queues[1:] for a, b in zip(queue, queues[0], strict=True))
        hub.retain("pub/k0", "changed")  # a new value: a new publication for the next subscription
        hub.add(Peer(), "late", "pub/k0")  # type: ignore[arg-type]
        late = list(hub.subscribers.values())[-1]
        assert late.queue[0] is not queues[0][0] and b'"changed"' in late.queue[0].frame
        for subscriber in hub.subscribers.values():
            subscriber.close()

    asyncio.run(main())


def test_a_subscribers_queue_is_bounded_in_bytes_and_loses_its_oldest():
    """Past the queue's budget in bytes, the oldest publication goes, counted; small bursts fit whole."""

    async def main() -> None:
        hub = Hub("pub", LOG, announce=lambda topic, text: 0)
        peer = Peer()
        hub.add(peer, "sub", "#")  # type: ignore[arg-type]
        subscriber = hub.subscribers[peer]  # type: ignore[index]
        for i in range(5000):  # a burst of small publications in one turn: all held
            hub.publish(f"pub/n{i % 10}", str(i))
        assert len(subscriber.queue) == 5000 and subscriber.lost == 0
        subscriber.budget = subscriber.queued_bytes + 10_000
        for _ in range(10):
            hub.publish("pub/big", "x" * 2_000)
        assert subscriber.queued_bytes <= subscriber.budget and subscriber.lost > 0
        subscriber.close()

    asyncio.run(main())


def test_a_sketch_that_retains_all_it_may_leaves_room_for_the_nodes_own_state():
    """A sketch at MAX_RETAINED keys cannot make the node's `$state` (and `$subscribers`) fail: those are the runtime's."""
    hub = Hub("pub", LOG, announce=lambda topic, text: 0)
    for i in range(hub.most_retained):
        hub.retain(f"pub/k{i}", "v")
    hub.retain("pub/$state", "offline")
    assert hub.retained["pub/$state"] == "offline"
