"""python -m bench.peers_worker SYSTEM ROLE JSON: one process of the three-process circuit (see bench/peers.py).

The circuit is clock -> iopin -> buzzer, each a process of its own, on one of four systems:

- ``mesh``: the real ``iopin`` and ``buzzer`` sketches and a clock node, through the node API;
- ``raw``: bare websockets: the clock sends a tick, the iopin sends 3 frames on to the buzzer,
  which answers each, and answers the clock once the buzzer has answered all 3;
- ``mqtt``: the same shape on topics of a Mosquitto, with paho-mqtt (``qos`` 0 or 1, and
  TCP_NODELAY on its socket: without it Nagle holds each small publish back);
- ``redis``: the same shape on Redis pub/sub channels, with redis-py's asyncio client.

Every role writes JSON lines to stdout: ``{"ready": PORT}`` (or ``true``) once it serves or
is subscribed. The clock then sends ``warm`` ticks, says ``{"warm": true}``, waits for a
``{"ticks": N}`` line on stdin, sends N ticks strictly one after the other (a tick is done
when its answer is back) and says ``{"done": SECONDS}``. End of stdin: the process exits.
``loop``: ``"uvloop"`` runs the asyncio roles on uvloop; ``code``: the mesh, nodes and sketches
imported from that checkout instead (to compare two versions in one interleaved run).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.scale_worker import commands, say

FAN = 3  # frames the iopin sends on per tick: the iopin sketch's default sequence


async def serve_until_eof() -> None:
    reader = await commands()
    while await reader.readline():
        pass


async def clock_loop(args: dict[str, Any], tick: Callable[[int], Awaitable[Any]]) -> None:
    """Warm up, then on ``{"ticks": N}`` time N sequential ticks."""
    for i in range(args["warm"]):
        await tick(i)
    say(warm=True)
    reader = await commands()
    while line := await reader.readline():
        count = json.loads(line)["ticks"]
        began = time.perf_counter()
        for i in range(count):
            await tick(i)
        say(done=time.perf_counter() - began)


# -- the mesh: the real sketches through the node API


def mesh_grid(args: dict[str, Any]) -> Any:
    from mesh.grid import build_grid

    return build_grid(
        {
            "clock": {"sketch": "sink"},
            "iopin": {"sketch": "iopin", "port": args["iopin"], "params": {"sequence": FAN, "seed": 1}},
            "buzzer": {"sketch": "buzzer", "port": args["buzzer"]},
        },
        ["clock -> iopin", "iopin -> buzzer"],
    )


async def mesh(role: str, args: dict[str, Any]) -> None:
    from bench.mesh_side import Sink
    from nodes.runtime import Node
    from sketches.buzzer import Buzzer
    from sketches.iopin import IOPin

    sketch = {"clock": Sink, "iopin": IOPin, "buzzer": Buzzer}[role]
    node = Node(sketch, role, mesh_grid(args))
    await node.open()
    node.begin()
    say(ready=node.port or True)
    try:
        if role == "clock":
            await clock_loop(args, lambda i: node.sketch.stream("iopin", f"tick {i}"))
        else:
            await serve_until_eof()
    finally:
        await node.stop()


# -- raw websockets: the same shape, written as simply as the library allows


async def raw(role: str, args: dict[str, Any]) -> None:
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import ServerConnection, serve

    if role == "buzzer":

        async def answer(ws: ServerConnection) -> None:
            async for _ in ws:
                await ws.send("ok")

        async with serve(answer, "127.0.0.1", args["buzzer"], compression=None):
            say(ready=args["buzzer"])
            await serve_until_eof()
    elif role == "iopin":
        from bench.raw import relay  # the same relay as the in-process twin's

        async with serve(relay(f"ws://127.0.0.1:{args['buzzer']}/", FAN), "127.0.0.1", args["iopin"], compression=None):
            say(ready=args["iopin"])
            await serve_until_eof()
    else:
        async with connect(f"ws://127.0.0.1:{args['iopin']}/", compression=None) as ws:
            say(ready=True)

            async def tick(i: int) -> None:
                await ws.send(f"tick {i}")
                await ws.recv()

            await clock_loop(args, tick)


# -- Redis pub/sub: channels tick, bit, bit-ack, ack; each PUBLISH awaited


async def redis(role: str, args: dict[str, Any]) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis(host="127.0.0.1", port=args["port"])
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    listen = {"clock": "ack", "iopin": "tick", "buzzer": "bit"}[role]
    await pubsub.subscribe(*([listen, "bit-ack"] if role == "iopin" else [listen]))
    try:
        say(ready=True)
        if role == "clock":

            async def tick(i: int) -> None:
                await client.publish("tick", f"tick {i}")
                while await pubsub.get_message(timeout=None) is None:
                    pass

            await clock_loop(args, tick)
            return
        waiting = 0

        async def serve() -> None:
            nonlocal waiting
            async for message in pubsub.listen():
                channel = message["channel"]
                if role == "buzzer":
                    await client.publish("bit-ack", "ok")
                elif channel == b"tick":
                    waiting = FAN
                    for _ in range(FAN):
                        await client.publish("bit", message["data"])
                else:
                    waiting -= 1
                    if waiting == 0:
                        await client.publish("ack", "acknowledged")

        serving = asyncio.create_task(serve())
        await serve_until_eof()
        serving.cancel()
    finally:
        await pubsub.aclose()
        await client.aclose()


# -- Mosquitto with paho-mqtt: one thread, paho's own loop, the chain driven by callbacks


def mqtt(role: str, args: dict[str, Any]) -> None:
    import paho.mqtt.client as paho

    qos = args["qos"]
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-{role}-{os.getpid()}")
    listen = {"clock": ["ack"], "iopin": ["tick", "bit-ack"], "buzzer": ["bit"]}[role]
    state: dict[str, Any] = {"waiting": 0, "left": 0, "ticks": 0, "subscribed": False, "busy": False}

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.subscribe([(topic, qos) for topic in listen])

    def on_subscribe(client: Any, userdata: Any, mid: Any, reasons: Any, properties: Any) -> None:
        state["subscribed"] = True
        say(ready=True)

    def tick() -> None:
        state["left"] -= 1
        client.publish("tick", f"tick {state['ticks']}", qos=qos)
        state["ticks"] += 1

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        if role == "buzzer":
            client.publish("bit-ack", "ok", qos=qos)
        elif role == "iopin":
            if message.topic == "tick":
                state["waiting"] = FAN
                for _ in range(FAN):
                    client.publish("bit", message.payload, qos=qos)
            else:
                state["waiting"] -= 1
                if state["waiting"] == 0:
                    client.publish("ack", "acknowledged", qos=qos)
        elif state["left"]:
            tick()
        else:
            state["busy"] = False

    def ticks(count: int) -> None:
        """``count`` ticks, each sent from the callback that received the previous one's answer."""
        if not count:
            return
        state["left"], state["busy"] = count, True
        tick()
        while state["busy"]:
            client.loop(1.0)  # what loop_forever() does, until the last answer is in

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect("127.0.0.1", args["port"])
    if role != "clock":
        threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
        client.loop_forever()
        return
    while not state["subscribed"]:
        client.loop(1.0)
    ticks(args["warm"])
    say(warm=True)
    for line in sys.stdin:
        count = json.loads(line)["ticks"]
        began = time.perf_counter()
        ticks(count)
        say(done=time.perf_counter() - began)
    client.disconnect()


def main() -> None:
    system, role, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if args.get("code"):  # the mesh of another checkout (bench's own modules stay this one's)
        sys.path.insert(0, args["code"])
    logging.disable(logging.CRITICAL)  # the nodes' log lines are not what is measured
    if system == "mqtt":
        mqtt(role, args)
        return
    if args.get("loop") == "uvloop":
        import uvloop

        uvloop.install()
    asyncio.run({"mesh": mesh, "raw": raw, "redis": redis}[system](role, args))


if __name__ == "__main__":
    main()
