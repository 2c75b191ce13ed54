"""python -m bench.scale_worker ROLE JSON: one process of the scale-out scenario (see bench/scale.py).

Each role reads commands from stdin and writes JSON lines to stdout, one per event:

- ``mesh-pub``: a publisher node on a free port. ``{"ready": PORT}``; then on
  ``{"warm": true}`` it publishes ``warm`` every 20 ms until ``{"publish": N}``,
  which publishes N messages as fast as it may, or ``pace`` a second if given
  (``{"published": N}``).
- ``mqtt-pub``: an MQTT client of the broker at ``port``, the same commands, at ``qos``.
- ``mesh-subs``: ``clients`` subscriber nodes of the publisher at ``port``, each with its
  own link, subscribed to ``pattern``.
- ``mqtt-subs``: ``clients`` MQTT clients of the broker at ``port``, subscribed to
  ``pattern`` at ``qos``.
- ``redis-pub``: a redis-py asyncio client of the redis-server at ``port``, the same
  commands; each PUBLISH awaited, or ``pipelined`` 64 to a pipeline.
- ``redis-subs``: ``clients`` redis-py asyncio clients, each on its own connection,
  subscribed to the channel ``pattern``.
- ``bridge``: the ``mqtt`` bridge node between the mesh publisher at ``port`` and the broker
  at ``broker`` (``params`` as in a grid).

Subscribers write ``{"ready": true}`` once subscribed, ``{"warm": true}`` once every
client has heard a ``warm``, and ``{"done": T, "received": R}`` once every client has
heard ``expect`` messages (T: ``time.monotonic()`` of the last one, comparable across
processes on Linux), or on ``{"stop": true}`` with what arrived so far. End of stdin:
the process closes everything and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

WARM = "warm"
WARM_EVERY = 0.02  # seconds between two warm-up messages
WINDOW = 64  # publications an MQTT publisher has unanswered at once: the bridge's own window


def rss_kib() -> int:
    """This process's resident memory now."""
    with open("/proc/self/status") as status:
        return int(next(line.split()[1] for line in status if line.startswith("VmRSS:")))


def say(**event: Any) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def commands() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


class Counter:
    """What the subscribers of this process heard: warm-ups per client, then the count."""

    def __init__(self, clients: int, expect: int) -> None:
        self.clients = clients
        self.total = clients * expect
        self.warm: set[int] = set()
        self.received = 0
        self.last = 0.0
        self.finished = False

    def heard(self, client: int, data: str) -> None:
        if data == WARM:
            if client not in self.warm:
                self.warm.add(client)
                if len(self.warm) == self.clients:
                    say(warm=True)
            return
        self.received += 1
        self.last = time.monotonic()
        if self.received == self.total:
            self.report()

    def report(self) -> None:
        if not self.finished:
            self.finished = True
            say(done=self.last, received=self.received)


async def publisher(
    send: Callable[[str], Any], window: int = 1, many: Callable[[list[str]], Awaitable[Any]] | None = None
) -> None:
    """The publisher's command loop: warm up on request, then publish the messages, ``window`` at a time
    (``many``: the whole window in one call, as a Redis pipeline)."""
    reader = await commands()
    warming: asyncio.Task[None] | None = None
    cooled = asyncio.Event()  # not a cancel: a publish cut half way could leave the client stuck

    async def warm() -> None:
        while not cooled.is_set():
            await send(WARM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(cooled.wait(), WARM_EVERY)

    while line := await reader.readline():
        command = json.loads(line)
        if "warm" in command:
            warming = asyncio.create_task(warm())
        elif "publish" in command:
            cooled.set()
            if warming is not None:
                await warming
            count, pace = command["publish"], command.get("pace", 0)
            if pace:  # one every 1/pace seconds: a steady rate, nothing piles up to be batched
                loop = asyncio.get_running_loop()
                start = loop.time()
                for i in range(count):
                    await send(str(i))
                    await asyncio.sleep(max(0.0, start + (i + 1) / pace - loop.time()))
            elif many is not None:
                for first in range(0, count, window):
                    await many([str(i) for i in range(first, min(count, first + window))])
            elif window == 1:
                for i in range(count):
                    await send(str(i))
                    if i % 100 == 0:
                        await asyncio.sleep(0)
            else:  # up to ``window`` unanswered at once, as the bridge publishes
                for first in range(0, count, window):
                    await asyncio.gather(*(send(str(i)) for i in range(first, min(count, first + window))))
            say(published=command["publish"])
    cooled.set()
    if warming is not None:
        await warming


async def subscribers(counter: Counter) -> None:
    """A subscriber process's command loop: report on stop, return at the end of stdin."""
    reader = await commands()
    while line := await reader.readline():
        if "stop" in json.loads(line):
            counter.report()


async def listening(counter: Counter, readers: list[asyncio.Task[None]], base: int) -> None:
    """Say ready, run the command loop, then cancel the clients' ``readers`` (a broker's subscribers)."""
    say(ready=True, base=base)
    try:
        await subscribers(counter)
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


async def mesh_pub(args: dict[str, Any]) -> None:
    from bench.mesh_side import Sink
    from mesh.grid import build_grid
    from nodes.runtime import Node

    node = Node(Sink, "pub", build_grid({"pub": {"sketch": "sink", "port": 0}}))
    node.hub.bound = args.get("bound", 1000)  # compare deliveries, not drops (as bench's own fan-out)
    await node.open()
    node.begin()
    say(ready=node.port)
    try:
        await publisher(lambda data: node.sketch.publish("n", data))
    finally:
        await node.stop()


async def mesh_subs(args: dict[str, Any]) -> None:
    from bench.mesh_side import Sink
    from mesh.grid import build_grid
    from nodes.runtime import Node

    first, clients = args["first"], args["clients"]
    names = [f"s{first + i}" for i in range(clients)]
    publisher = args.get("publisher", "pub")
    grid = build_grid({publisher: {"sketch": "sink", "port": args["port"]}, **{n: {"sketch": "sink"} for n in names}})
    counter = Counter(clients, args["expect"])
    base = rss_kib()
    nodes = [Node(Sink, name, grid) for name in names]
    for node in nodes:
        node.inbox.bound = args["expect"] + 100  # compare deliveries, not drops
        await node.open()
        node.begin()
    try:
        await asyncio.gather(
            *(
                node.sketch.subscribe(args["pattern"], lambda key, data, i=i: counter.heard(i, data))
                for i, node in enumerate(nodes)
            )
        )
        say(ready=True, base=base)
        await subscribers(counter)
    finally:
        await asyncio.gather(*(node.stop() for node in nodes), return_exceptions=True)


async def mqtt_pub(args: dict[str, Any]) -> None:
    import aiomqtt

    async with aiomqtt.Client(
        "127.0.0.1", args["port"], identifier="bench-pub", max_inflight_messages=WINDOW
    ) as client:
        client.pending_calls_threshold = WINDOW  # else aiomqtt warns for each publish past 10 unanswered
        say(ready=True)
        await publisher(lambda data: client.publish(args["topic"], data, qos=args["qos"]), WINDOW)


async def mqtt_subs(args: dict[str, Any]) -> None:
    import aiomqtt

    first, clients = args["first"], args["clients"]
    counter = Counter(clients, args["expect"])
    base = rss_kib()
    subscribed = asyncio.Event()
    count = [0]

    async def one(i: int) -> None:
        async with aiomqtt.Client("127.0.0.1", args["port"], identifier=f"bench-sub-{first + i}") as client:
            await client.subscribe(args["pattern"], qos=args["qos"])
            count[0] += 1
            if count[0] == clients:
                subscribed.set()
            async for message in client.messages:
                payload = message.payload
                counter.heard(i, payload.decode() if isinstance(payload, bytes) else str(payload))

    tasks = [asyncio.create_task(one(i)) for i in range(clients)]
    waiting = asyncio.create_task(subscribed.wait())
    await asyncio.wait([waiting, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if not subscribed.is_set():  # a client failed: say why
        for task in tasks:
            if task.done():
                task.result()
    await listening(counter, tasks, base)


async def redis_pub(args: dict[str, Any]) -> None:
    """A redis-py asyncio client: each PUBLISH awaited, or ``pipelined`` in pipelines of ``WINDOW``."""
    import redis.asyncio as aioredis

    client = aioredis.Redis(host="127.0.0.1", port=args["port"])
    topic = args["topic"]

    async def many(batch: list[str]) -> None:
        pipe = client.pipeline(transaction=False)
        for data in batch:
            pipe.publish(topic, data)
        await pipe.execute()

    try:
        await client.ping()
        say(ready=True)
        if args["pipelined"]:
            await publisher(lambda data: client.publish(topic, data), WINDOW, many)
        else:  # one at a time: each PUBLISH answered before the next
            await publisher(lambda data: client.publish(topic, data))
    finally:
        await client.aclose()


async def redis_subs(args: dict[str, Any]) -> None:
    """``clients`` redis-py asyncio clients, each with its own connection, subscribed to ``pattern``."""
    import redis.asyncio as aioredis

    clients = args["clients"]
    counter = Counter(clients, args["expect"])
    base = rss_kib()
    connections = [aioredis.Redis(host="127.0.0.1", port=args["port"]) for _ in range(clients)]
    subscriptions = [c.pubsub(ignore_subscribe_messages=True) for c in connections]
    for subscription in subscriptions:
        await subscription.subscribe(args["pattern"])

    async def one(i: int) -> None:
        async for message in subscriptions[i].listen():
            counter.heard(i, message["data"].decode())

    tasks = [asyncio.create_task(one(i)) for i in range(clients)]
    try:
        await listening(counter, tasks, base)
    finally:
        for subscription, connection in zip(subscriptions, connections, strict=True):
            await subscription.aclose()
            await connection.aclose()


async def resp_node(args: dict[str, Any]) -> None:
    """A node named ``bench`` on a free port, for Redis clients: what redis-server is in the Redis rows."""
    from bench.mesh_side import Sink
    from mesh.grid import build_grid
    from nodes.runtime import Node

    node = Node(Sink, "bench", build_grid({"bench": {"sketch": "sink", "port": 0}}))
    await node.open()
    node.begin()
    say(ready=node.port)
    try:
        reader = await commands()
        while await reader.readline():
            pass
    finally:
        await node.stop()


async def bridge(args: dict[str, Any]) -> None:
    """The ``mqtt`` bridge node, as a grid would run it: between the publisher node (if any) and the broker."""
    from mesh.grid import build_grid
    from nodes.runtime import Node
    from sketches.mqtt import Bridge

    params = {
        "url": f"mqtt://127.0.0.1:{args['broker']}",
        "out": args["out"],
        "in": args["in"],
        "prefix": args["prefix"],
        "qos": args["qos"],
    }
    nodes: dict[str, Any] = {"bridge": {"sketch": "mqtt", "port": 0, "params": params}}
    if args["port"] is not None:
        nodes["pub"] = {"sketch": "sink", "port": args["port"]}
    node = Node(Bridge, "bridge", build_grid(nodes))
    node.hub.bound = node.inbox.bound = args["bound"]  # compare deliveries, not drops
    await node.open()
    node.begin()
    say(ready=node.port)
    try:
        reader = await commands()
        while await reader.readline():
            pass
    finally:
        await node.stop()


ROLES = {
    "bridge": bridge,
    "mesh-pub": mesh_pub,
    "mesh-subs": mesh_subs,
    "mqtt-pub": mqtt_pub,
    "mqtt-subs": mqtt_subs,
    "redis-pub": redis_pub,
    "redis-subs": redis_subs,
    "resp-node": resp_node,
}


def main() -> None:
    role, args = sys.argv[1], json.loads(sys.argv[2])
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a thousand connections in one process
    # Only what goes wrong (a link lost, a subscriber dropped): it lands in the worker's error file.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(ROLES[role](args))


if __name__ == "__main__":
    main()
