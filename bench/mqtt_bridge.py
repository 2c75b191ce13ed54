"""python -m bench.mqtt_bridge [--count N] [--qos Q]: the MQTT bridge's throughput, both ways, through a real Mosquitto.

- mesh -> MQTT: a node publishes ``count`` messages, at most 500 ahead of the broker's acks; the
  bridge (``out: ["load/#"]``) forwards each to Mosquitto; ``mosquitto_sub -C count`` counts
  them. Messages/s from the first publish to the subscriber's last line.
- MQTT -> mesh: ``mosquitto_pub -l`` sends ``count`` lines, at most 750 ahead of the bridge; the bridge (``in: ["feed/#"]``)
  publishes each in the mesh and streams it to a wired node. Messages/s from the first
  line sent to the last one taken by the wired node's ``loop()``.

One run each, on this machine; Mosquitto started on a free port with its config in a
temporary folder. Part of issue 15 (the full 1 -> 1,000 comparison is the bench's own).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from mesh.grid import build_grid
from nodes import FactoryLoop, reactive
from nodes.circuit import start_together, stop_together
from nodes.runtime import Node
from sketches.mqtt import Bridge


class Sink(FactoryLoop):
    """Counts what it is sent."""

    def setup(self) -> None:
        self.count = 0
        self.last = 0.0

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        self.count += 1
        self.last = time.perf_counter()
        return "ok"


class Source(FactoryLoop):
    """Publishes when the bench says so."""

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        return "ok"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_mosquitto(folder: Path) -> tuple[subprocess.Popen[str], int]:
    binary = "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else shutil.which("mosquitto")
    if binary is None:
        raise SystemExit("Mosquitto is not installed: apt-get install mosquitto mosquitto-clients")
    port = free_port()
    config = folder / "mosquitto.conf"
    user = pwd.getpwuid(os.getuid()).pw_name
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\nuser {user}\n")
    broker = subprocess.Popen([binary, "-c", str(config)], stderr=subprocess.PIPE, text=True)
    assert broker.stderr is not None
    for line in broker.stderr:
        if " running" in line:
            break
    return broker, port


async def until(condition: object, seconds: float = 120.0) -> None:
    deadline = time.perf_counter() + seconds
    while not condition():  # type: ignore[operator]
        if time.perf_counter() > deadline:
            raise SystemExit(f"the bench timed out waiting for {condition}")
        await asyncio.sleep(0.001)


async def main(count: int, qos: int) -> None:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        broker, port = start_mosquitto(Path(folder))
        url = f"mqtt://127.0.0.1:{port}"
        grid = build_grid(
            {
                "bridge": {
                    "sketch": "mqtt",
                    "port": 0,
                    "params": {"url": url, "out": ["load/#"], "in": ["feed/#"], "qos": qos},
                },
                "load": {"sketch": "source", "port": 0},
                "sink": {"sketch": "sink", "port": 0},
            },
            wires=["bridge -> sink"],
        )
        nodes = [Node(Bridge, "bridge", grid), Node(Source, "load", grid), Node(Sink, "sink", grid)]
        await start_together(nodes)
        bridge, load, sink = nodes
        try:
            assert isinstance(bridge.sketch, Bridge) and isinstance(sink.sketch, Sink)
            await until(lambda: bridge.sketch.state == "connected" and load.hub.count == 1)
            # mesh -> MQTT
            sub = await asyncio.create_subprocess_exec(
                "mosquitto_sub", "-p", str(port), "-t", "arduino-mesh/load/#", "-q", str(qos), "-C", str(count),
                stdout=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            await asyncio.sleep(0.5)  # the subscription in place (a bench, not a test)
            start = time.perf_counter()
            for n in range(count):
                # Topics are fire-and-forget (1,000 queued per subscriber, oldest dropped): keep under that.
                if n - bridge.sketch.sent > 500:
                    await until(lambda n=n: n - bridge.sketch.sent <= 250)
                await load.sketch.publish("n", n)
            await sub.wait()
            out = count / (time.perf_counter() - start)
            print(f"mesh -> MQTT: {count} messages at QoS {qos} in {time.perf_counter() - start:.2f} s: {out:,.0f}/s")
            # MQTT -> mesh
            start = time.perf_counter()
            pub = await asyncio.create_subprocess_exec(
                "mosquitto_pub", "-p", str(port), "-t", "feed/x", "-q", str(qos), "-l", stdin=asyncio.subprocess.PIPE
            )
            assert pub.stdin is not None
            for first in range(0, count, 250):
                # Mosquitto queues at most 1,000 messages for a client that reads slower (max_queued_messages),
                # dropping the rest: keep under that.
                await until(lambda first=first: first - bridge.sketch.received <= 500)
                pub.stdin.write("".join(f"{n}\n" for n in range(first, min(count, first + 250))).encode())
                await pub.stdin.drain()
            pub.stdin.close()
            await until(lambda: sink.sketch.count >= count)
            await pub.wait()
            took = sink.sketch.last - start
            print(
                f"MQTT -> mesh: {count} messages at QoS {qos} in {took:.2f} s: {count / took:,.0f}/s "
                f"(published in the mesh and streamed to a wired node)"
            )
        finally:
            await stop_together(nodes)
            broker.terminate()
            broker.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--qos", type=int, default=1)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.count, arguments.qos))
