"""The mesh across processes, against raw websockets and the brokers people would use instead.

Two scenarios, every system in interleaved rounds (A, B, C, A, B, C, ...), every process fresh
for each measurement:

- **the three-process circuit**: clock -> iopin -> buzzer, three processes
  (``bench/peers_worker.py``), ``ticks`` strictly sequential ticks (a tick is done when
  its answer chain is back at the clock); ticks per second, and CPU per tick: user + system
  time of every process of the system (the three and the broker), from ``/proc``, over the
  timed span. Systems: the mesh (the real ``iopin`` and ``buzzer`` sketches), raw websockets
  (the same shape), Mosquitto + paho-mqtt at QoS 0 and 1 (TCP_NODELAY on paho's socket),
  Redis pub/sub (redis-py's asyncio client).
- **across processes, 1 publisher -> N subscribers** in ``processes`` processes
  (``bench/scale.py``'s measurement): the mesh, Mosquitto QoS 0 (aiomqtt), Redis pub/sub
  with each PUBLISH awaited and with pipelined PUBLISH, and the same redis-py clients on a
  node's own port (its Redis side) instead of redis-server; deliveries per second, CPU per
  delivery, and the node against redis-server (``resp``: node/redis-server, one run).

``python -m bench`` runs the circuit for the mesh and raw websockets only; ``python -m bench
--peers`` runs everything here. A system whose broker or client library is missing is skipped
with one line. Brokers are started by the bench on free ports, each in its own process group.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import scale
from bench.scale import Broker, RedisServer, System, Worker, free_port, proc, spread

WARM = 200  # ticks before the timed span: connections open, caches warm

FULL = {"ticks": 5000, "subscribers": 100, "messages": 1000, "processes": 4, "rounds": 3}
QUICK = {"ticks": 50, "subscribers": 8, "messages": 20, "processes": 2, "rounds": 1}


@dataclass(frozen=True)
class Circuit:
    """One system of the three-process circuit."""

    name: str
    kind: str  # "mesh", "raw", "mqtt" or "redis": the worker's first argument
    qos: int = 0
    loop: str = "asyncio"  # or "uvloop"
    code: str | None = None  # another checkout whose mesh, nodes and sketches the processes import


MESH = Circuit("mesh", "mesh")
RAW = Circuit("raw websockets", "raw")
CIRCUITS = [
    MESH,
    RAW,
    Circuit("Mosquitto + paho QoS 0", "mqtt", 0),
    Circuit("Mosquitto + paho QoS 1", "mqtt", 1),
    Circuit("Redis pub/sub", "redis"),
]
UVLOOP = [Circuit("mesh on uvloop", "mesh", loop="uvloop"), Circuit("raw websockets on uvloop", "raw", loop="uvloop")]

FAN_OUT = [
    System("mesh", "mesh", "mesh"),
    System("Mosquitto QoS 0", "mqtt", "mqtt", 0),
    System("Redis, each PUBLISH awaited", "redis", "redis"),
    System("Redis, pipelined PUBLISH", "redis", "redis", pipelined=True),
    System("Redis clients on a node, each PUBLISH awaited", "redis", "redis", node=True),
    System("Redis clients on a node, pipelined PUBLISH", "redis", "redis", pipelined=True, node=True),
]
#: (the node's row, redis-server's row): Redis clients served by a node against the same clients on redis-server.
RESP_PAIRS = [
    ("Redis clients on a node, each PUBLISH awaited", "Redis, each PUBLISH awaited"),
    ("Redis clients on a node, pipelined PUBLISH", "Redis, pipelined PUBLISH"),
]


def missing() -> dict[str, str]:
    """What each peer needs and this machine lacks: peer kind -> one line."""
    why: dict[str, str] = {}
    if scale.mosquitto() is None:
        why["mqtt"] = "Mosquitto is not installed (apt-get install mosquitto)"
    elif importlib.util.find_spec("paho") is None:
        why["mqtt"] = "paho-mqtt is not installed (pip install 'arduino-mesh[bench]')"
    elif importlib.util.find_spec("aiomqtt") is None:
        why["mqtt"] = "aiomqtt is not installed (pip install 'arduino-mesh[mqtt]')"
    if scale.redis_server() is None:
        why["redis"] = "redis-server is not installed (apt-get install redis-server)"
    elif importlib.util.find_spec("redis") is None:
        why["redis"] = "redis-py is not installed (pip install 'arduino-mesh[bench]')"
    if importlib.util.find_spec("uvloop") is None:
        why["uvloop"] = "uvloop is not installed (pip install uvloop)"
    return why


def skip_lines(why: dict[str, str], uvloop: bool = False) -> list[str]:
    """One line per peer left out, and why."""
    names = {"mqtt": "Mosquitto", "redis": "Redis", **({"uvloop": "uvloop"} if uvloop else {})}
    return [f"peers: skipping {names[kind]}: {line}" for kind, line in why.items() if kind in names]


async def circuit(system: Circuit, ticks: int, warm: int | None = None) -> dict[str, float]:
    """One fresh run of the circuit on ``system``: ticks per second and CPU µs per tick, all processes.
    ``warm`` ticks go first, untimed (default: ``WARM``, at most ``ticks``)."""
    warm = min(WARM, ticks) if warm is None else warm
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as name:
        folder = Path(name)
        server: Broker | RedisServer | None = None
        if system.kind == "mqtt":
            server = Broker(folder, nodelay=True)
        elif system.kind == "redis":
            server = RedisServer(folder)
        workers: list[Worker] = []
        try:
            if server is not None:
                await server.start()
            args: dict[str, Any] = {"warm": warm, "loop": system.loop, "qos": system.qos, "code": system.code}
            if server is not None:
                args["port"] = server.port
            else:
                args["buzzer"], args["iopin"] = free_port(), free_port()
            for role in ("buzzer", "iopin", "clock"):
                worker = await start(system.kind, role, args, folder)
                workers.append(worker)
                await worker.expect("ready", 30)
            clock = workers[-1]
            await clock.expect("warm", 60)
            pids = [w.pid for w in workers] + ([server.pid] if server is not None else [])
            before = sum(proc(pid)[0] for pid in pids)
            clock.send(ticks=ticks)
            elapsed = (await clock.expect("done", 600))["done"]
            cpu = sum(proc(pid)[0] for pid in pids) - before
            return {"ticks_per_s": ticks / elapsed, "cpu_us_per_tick": cpu / ticks * 1e6}
        finally:
            for worker in reversed(workers):
                await worker.stop()
            if server is not None:
                await server.stop()


async def start(kind: str, role: str, args: dict[str, Any], folder: Path) -> Worker:
    """A process of ``python -m bench.peers_worker``, in its own session, with scale.Worker's protocol."""
    return await Worker.start(role, args, folder, module="bench.peers_worker", kind=kind)


def circuits(
    peers: bool, uvloop: bool = False, why: dict[str, str] | None = None, against: list[Path] | None = None
) -> list[Circuit]:
    """The circuit's systems: the mesh and raw websockets, with ``peers`` the brokers present, with
    ``uvloop`` both again on uvloop, and the mesh of each checkout ``against``."""
    why = missing() if why is None else why
    wanted = [MESH, RAW, *(Circuit(f"mesh of {path}", "mesh", code=str(path.resolve())) for path in against or [])]
    if peers:
        wanted += [c for c in CIRCUITS[2:] if c.kind not in why]
    if uvloop and "uvloop" not in why:
        wanted += UVLOOP
    return wanted


async def run_circuit(
    systems: list[Circuit], ticks: int, rounds: int, say: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Every system of the circuit, ``rounds`` interleaved rounds; a row per system, medians and ranges."""
    runs: dict[str, list[dict[str, float]]] = {s.name: [] for s in systems}
    for r in range(rounds):
        for system in systems:
            say(f"circuit, round {r + 1}/{rounds}: {system.name}, {ticks:,} ticks")
            runs[system.name].append(await circuit(system, ticks))
            figures = runs[system.name][-1]
            say(f"  {figures['ticks_per_s']:,.0f} ticks/s, {figures['cpu_us_per_tick']:,.0f} µs CPU per tick")
    return [
        {"system": name, **{key: spread([one[key] for one in got]) for key in got[0]}, "runs": got}
        for name, got in runs.items()
    ]


async def run(
    sizes: dict[str, Any], say: Callable[[str], None], uvloop: bool = False, against: list[Path] | None = None
) -> dict[str, Any]:
    """``--peers``: the circuit and the cross-process fan-out on every system present, with ratios."""
    why = missing()
    for line in skip_lines(why, uvloop):
        say(line)
    rounds = sizes["rounds"]
    rows = await run_circuit(circuits(True, uvloop, why, against), sizes["ticks"], rounds, say)
    wanted = [s for s in FAN_OUT if not (s.broker and "mqtt" in why) and not (s.redis and "redis" in why)]
    n, m, p = sizes["subscribers"], sizes["messages"], sizes["processes"]
    fan: dict[str, list[dict[str, Any]]] = {s.name: [] for s in wanted}
    for r in range(rounds):
        for system in wanted:
            say(
                f"fan-out, round {r + 1}/{rounds}: {system.name}, 1 -> {n:,} subscribers in {p} processes, {m:,} messages"
            )
            fan[system.name].append(await scale.measure(system, n, m, p, say))
            got = fan[system.name][-1]
            say(f"  {got['deliveries_per_s']:,.0f} deliveries/s, {got['cpu_us_per_delivery']:.1f} µs CPU per delivery")
    fan_rows = [
        {
            "system": name,
            **{key: spread([one[key] for one in got]) for key in ("deliveries_per_s", "cpu_us_per_delivery", "lost")},
            "runs": got,
        }
        for name, got in fan.items()
    ]
    return {
        "skipped": {k: v for k, v in why.items() if uvloop or k != "uvloop"},
        "circuit": rows,
        "fan_out": fan_rows,
        "resp": resp_ratios(fan),
    }


def resp_ratios(fan: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """A node serving Redis clients against redis-server serving the same clients: node/redis-server, medians of the
    same run's rounds. The server's CPU is the node's process against redis-server's; the rest is the clients'."""
    ratios = []
    for mine, theirs in RESP_PAIRS:
        if not fan.get(mine) or not fan.get(theirs):
            continue
        medians = {
            key: (spread([r[key] for r in fan[mine]])["median"], spread([r[key] for r in fan[theirs]])["median"])
            for key in ("deliveries_per_s", "cpu_us_per_delivery", "broker_cpu_us")
        }
        ratios.append(
            {
                "node": mine,
                "redis": theirs,
                **{f"{key}_ratio": a / b if b else 0.0 for key, (a, b) in medians.items()},
                "server_cpu_us": {"node": medians["broker_cpu_us"][0], "redis": medians["broker_cpu_us"][1]},
            }
        )
    return ratios


def machine() -> dict[str, Any]:
    """The brokers' versions and the load when the run began."""
    versions = {}
    for name, found, flag in (("mosquitto", scale.mosquitto(), "-h"), ("redis", scale.redis_server(), "--version")):
        if found is None:
            versions[name] = "not installed"
            continue
        done = subprocess.run([found, flag], capture_output=True, text=True, check=False)
        versions[name] = ((done.stdout or done.stderr).splitlines() or ["?"])[0].strip()
    return {**versions, "load": " ".join(f"{x:.2f}" for x in os.getloadavg())}
