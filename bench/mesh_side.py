"""The mesh side of each scenario: real nodes in this event loop, on port 0."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from mesh.grid import build_grid
from nodes import FactoryLoop, reactive
from nodes.runtime import Node, open_together

try:
    from nodes.circuit import building
except ImportError:  # the mesh of an older checkout (`--peers --against`), before start-up paused the collector
    from contextlib import nullcontext as building
from sketches.buzzer import Buzzer
from sketches.iopin import IOPin

ROOT = Path(__file__).resolve().parent.parent


class Sink(FactoryLoop):
    """Answers every message at once."""

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        return "ok"


class Ring(FactoryLoop):
    """Passes a token on to the next node: the message is the number of hops left."""

    finished: asyncio.Event | None = None

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        left = int(message)
        if left == 0:
            assert Ring.finished is not None
            Ring.finished.set()
        else:
            await self.post(self.targets[0], str(left - 1))  # do not wait for the ack: the ring would deadlock
        return "ok"


async def stopped(nodes: dict[str, Node]) -> None:
    for node in sorted(nodes.values(), key=lambda n: n.server is not None):
        await node.stop()


def pair() -> dict[str, Node]:
    grid = build_grid({"rx": {"sketch": "sink", "port": 0}, "tx": {"sketch": "sink"}}, ["tx -> rx"])
    return {"rx": Node(Sink, "rx", grid), "tx": Node(Sink, "tx", grid)}


async def stream_one_hop(count: int) -> float:
    """A node streams ``count`` messages over a wire, delivery guarantee on. Messages per second."""
    nodes = pair()
    await open_together(nodes)
    try:
        tx = nodes["tx"].sketch
        await tx.stream("rx", "warm up")
        began = time.perf_counter()
        acks = await tx.stream("rx", [str(i) for i in range(count)])
        elapsed = time.perf_counter() - began
        assert len(acks) == count
        return count / elapsed
    finally:
        await stopped(nodes)


async def one_at_a_time(count: int) -> float:
    """The same link, one message at a time: send, await the ack, then the next. Messages per second."""
    nodes = pair()
    await open_together(nodes)
    try:
        tx = nodes["tx"].sketch
        began = time.perf_counter()
        for i in range(count):
            await tx.stream("rx", str(i))
        return count / (time.perf_counter() - began)
    finally:
        await stopped(nodes)


class OneByOne(IOPin):
    """The iopin as it was: each target awaited in turn (the twin of the concurrent one)."""

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        bits = self.draw()
        for target in self.targets:
            await self.stream(target, bits)
        return "acknowledged"


@contextlib.asynccontextmanager
async def ticking(sequence: int, buzzers: int = 1, in_turn: bool = False) -> AsyncIterator[Callable[[str], Awaitable]]:
    """A clock, the real iopin and ``buzzers`` real buzzers, open: yields ``tick(text)``, which awaits one
    tick's ack; the iopin streams ``sequence`` bits to every buzzer (all at once; one after the other with
    ``in_turn``)."""
    names = ["buzzer"] if buzzers == 1 else [f"buzzer{i}" for i in range(buzzers)]
    grid = build_grid(
        {
            "clock": {"sketch": "sink"},
            "iopin": {"sketch": "iopin", "port": 0, "params": {"sequence": sequence, "seed": 1}},
            **{name: {"sketch": "buzzer", "port": 0} for name in names},
        },
        ["clock -> iopin", *(f"iopin -> {name}" for name in names)],
    )
    nodes = {
        **{name: Node(Buzzer, name, grid) for name in names},
        "iopin": Node(OneByOne if in_turn else IOPin, "iopin", grid),
        "clock": Node(Sink, "clock", grid),
    }
    await open_together(nodes)
    try:
        clock = nodes["clock"].sketch
        await clock.stream("iopin", "warm up")
        yield functools.partial(clock.stream, "iopin")
    finally:
        await stopped(nodes)


async def tick_to_buzz(count: int, sequence: int, buzzers: int = 1, in_turn: bool = False) -> list[float]:
    """``count`` ticks through :func:`ticking`: seconds until each tick's ack."""
    async with ticking(sequence, buzzers, in_turn) as tick:
        return [await timed(tick, f"tick {i}") for i in range(count)]


async def timed(call: Callable[[str], Awaitable], text: str) -> float:
    """Seconds ``await call(text)`` takes."""
    began = time.perf_counter()
    await call(text)
    return time.perf_counter() - began


async def per_extra_target(count: int, buzzers: int, in_turn: bool = False) -> float:
    """Milliseconds each buzzer past the first adds to a tick (p50 with ``buzzers`` against p50 with one)."""
    one = statistics.median(await tick_to_buzz(count, 3, 1, in_turn))
    many = statistics.median(await tick_to_buzz(count, 3, buzzers, in_turn))
    return (many - one) / (buzzers - 1) * 1e3


async def fan_out(subscribers: int, count: int) -> float:
    """One publisher, ``subscribers`` subscriber nodes. Deliveries per second."""
    names = [f"s{i}" for i in range(subscribers)]
    grid = build_grid({"pub": {"sketch": "sink", "port": 0}, **{name: {"sketch": "sink"} for name in names}})
    nodes = {name: Node(Sink, name, grid) for name in ["pub", *names]}
    await open_together(nodes)
    try:
        publisher = nodes["pub"]
        publisher.hub.bound = count + 10  # compare deliveries, not drops: broadcast() drops nothing either
        received = [0]
        done = asyncio.Event()
        total = subscribers * count

        def heard(key: str, data: str) -> None:
            received[0] += 1
            if received[0] == total:
                done.set()

        await asyncio.gather(*(nodes[name].sketch.subscribe("pub/n", heard) for name in names))
        began = time.perf_counter()
        for i in range(count):
            await publisher.sketch.publish("n", str(i))
            if i % 100 == 0:
                await asyncio.sleep(0)
        await done.wait()
        return total / (time.perf_counter() - began)
    finally:
        await stopped(nodes)


def rss_kib() -> int:
    """This process's resident memory."""
    return int(re.search(r"VmRSS:\s+(\d+) kB", Path("/proc/self/status").read_text())[1])


async def ring(size: int, hops: int, links: bool = True) -> dict[str, float]:
    """``size`` nodes in one process, wired in a ring, passing a token ``hops`` times.

    Without ``links`` (too few files may be open for them), only start-up and memory per node.
    """
    before = rss_kib()
    began, cpu = time.perf_counter(), time.process_time()
    with building():  # as `arduino-mesh up` builds its nodes
        grid = build_grid(
            {f"n{i}": {"sketch": "ring", "port": 0} for i in range(size)},
            [f"n{i} -> n{(i + 1) % size}" for i in range(size)],  # one node: wired to itself
        )
        nodes = {name: Node(Ring, name, grid) for name in grid.nodes}
        await open_together(nodes)
    startup = {"startup_s": time.perf_counter() - began, "startup_cpu_s": time.process_time() - cpu}
    try:
        if not links:
            return {**startup, "kib_per_node": (rss_kib() - before) / size}
        first, second = "n0", f"n{1 % size}"
        Ring.finished = asyncio.Event()
        await nodes[first].sketch.post(second, str(size))  # once around: every link opens
        await Ring.finished.wait()
        per_node = (rss_kib() - before) / size
        Ring.finished = asyncio.Event()
        began = time.perf_counter()
        await nodes[first].sketch.post(second, str(hops))
        await Ring.finished.wait()
        rate = hops / (time.perf_counter() - began)
        return {**startup, "kib_per_node": per_node, "hops_per_s": rate}
    finally:
        await stopped(nodes)


def processes(count: int) -> dict[str, float]:
    """``count`` nodes as separate processes from one grid: time until all serve, memory per process."""
    with tempfile.TemporaryDirectory() as folder:
        grid = Path(folder) / "grid.yaml"  # port 0: each binds a free port and says which
        grid.write_text("nodes:\n" + "".join(f"  n{i}: {{sketch: buzzer, port: 0}}\n" for i in range(count)))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        began = time.perf_counter()
        started = [
            subprocess.Popen(
                [sys.executable, str(ROOT / "arduino.py"), "--grid", str(grid), f"n{i}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for i in range(count)
        ]
        try:
            for process in started:
                assert process.stderr is not None
                for line in process.stderr:
                    if "serving on" in line:
                        break
                else:
                    raise RuntimeError(f"a node did not start: exit {process.wait()}")
            startup = time.perf_counter() - began
            rss = [int(re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{p.pid}/status").read_text())[1]) for p in started]
            return {"startup_s": startup, "kib_per_process": sum(rss) / len(rss)}
        finally:
            for process in started:
                process.terminate()
            for process in started:
                process.wait()
