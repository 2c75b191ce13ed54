"""Past one mesh: one publisher to many subscribers, the mesh's own fan-out against Mosquitto and the bridge.

``python -m bench --scale`` runs, in interleaved rounds, one publisher to
``subscribers`` subscribers spread over ``processes`` processes:

- **mesh**: a publisher node and one subscriber *node* per subscriber (each with
  its own link to the publisher, as a grid of that many nodes would have);
- **Mosquitto, QoS 0 / QoS 1**: an MQTT publisher and one MQTT client per
  subscriber (aiomqtt), through a Mosquitto the bench starts on a free port;
- **bridge, QoS 0 / QoS 1**: the same mesh publisher -> the ``mqtt`` bridge node ->
  Mosquitto -> the MQTT clients: how docs/scale.md says to go past one mesh;

and the bridge's own throughput, one publisher to one subscriber, both ways:
mesh -> MQTT and MQTT -> mesh, at QoS 0 and 1. Every process is fresh for each
measurement. Deliveries per second run from the first publication to the last
delivery; CPU is every process's (publisher, broker, bridge, subscribers) user
and system time over that span, from ``/proc``; memory is each process's peak
resident set. What needs Mosquitto or aiomqtt, or the bridge, is skipped with
one line when missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
DONE_TIMEOUT = 30.0  # seconds for every delivery of one measurement, then what arrived counts
PREFIX = "arduino-mesh"  # the bridge's prefix on the MQTT side

FULL = {"subscribers": 1000, "messages": 100, "processes": 4, "rounds": 2, "through": 2000, "pace": 10, "paced": 30}
QUICK = {"subscribers": 20, "messages": 20, "processes": 2, "rounds": 1, "through": 100, "pace": 100, "paced": 10}


def mosquitto() -> str | None:
    """Debian's /usr/sbin/mosquitto, else one on PATH."""
    if os.access("/usr/sbin/mosquitto", os.X_OK):
        return "/usr/sbin/mosquitto"
    return shutil.which("mosquitto")


def redis_server() -> str | None:
    """Debian's /usr/bin/redis-server, else one on PATH."""
    return shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/sbin")


def missing() -> dict[str, str]:
    """What each part needs and this machine lacks: part -> one line."""
    why: dict[str, str] = {}
    if mosquitto() is None:
        why["mqtt"] = "Mosquitto is not installed (apt-get install mosquitto)"
    elif importlib.util.find_spec("aiomqtt") is None:
        why["mqtt"] = "aiomqtt is not installed (pip install 'arduino-mesh[mqtt]')"
    if "mqtt" in why:
        why["bridge"] = why["mqtt"]
    elif not (ROOT / "sketches" / "mqtt.py").exists():
        why["bridge"] = "the mqtt bridge sketch (sketches/mqtt.py) is not in this checkout"
    return why


def skip_lines(why: dict[str, str]) -> list[str]:
    """One line per part left out, and why."""
    if "mqtt" in why:
        return [f"scale: skipping the Mosquitto and bridge parts: {why['mqtt']}"]
    return [f"scale: skipping the bridge part: {why['bridge']}"] if "bridge" in why else []


def proc(pid: int) -> tuple[float, int, int]:
    """A process's CPU seconds (user + system), resident and peak resident KiB."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status)[1])  # type: ignore[index]
    peak = int(re.search(r"VmHWM:\s+(\d+) kB", status)[1])  # type: ignore[index]
    return cpu, rss, peak


def free_port() -> int:
    """A free port below the kernel's ephemeral range: no outgoing connection is handed it meanwhile
    (a port that binding port 0 picks is, now and then, before the broker binds it)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    while True:
        port = random.randrange(max(1024, low - 12_000), low)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def raise_fd_limit() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def reaped(process: asyncio.subprocess.Process, seconds: float = 5) -> None:
    """Wait for ``process`` (a session leader) to exit; past ``seconds``, SIGKILL its session."""
    try:
        await asyncio.wait_for(process.wait(), seconds)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


class Daemon:
    """A broker the bench starts in a session of its own, its output in ``log``; ready once ``ready(log)``."""

    name = "the daemon"
    log: Path
    process: asyncio.subprocess.Process | None = None

    async def launch(self, *argv: str, stdout: Any, stderr: Any, ready: Callable[[str], bool]) -> None:
        """Start ``argv`` (its output to ``stdout``/``stderr``) and wait until ``ready`` of its log, 10 s at most."""
        self.process = await asyncio.create_subprocess_exec(
            *argv, stdout=stdout, stderr=stderr, start_new_session=True, preexec_fn=raise_fd_limit
        )
        deadline = time.monotonic() + 10
        while not ready(self.log.read_text()):
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start: {self.log.read_text()[-500:]}")
            await asyncio.sleep(0.01)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def stop(self) -> None:
        """SIGTERM to its session; SIGKILL past 5 s."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            await reaped(self.process)


class Broker(Daemon):
    """A Mosquitto on a free port of 127.0.0.1, its config and log in ``folder``; no persistence.
    ``nodelay``: TCP_NODELAY on its sockets (without it a chain of small request/answer publishes
    waits on Nagle's algorithm and delayed ACKs: about 45 ms per round trip)."""

    name = "Mosquitto"

    def __init__(self, folder: Path, nodelay: bool = False) -> None:
        binary = mosquitto()
        assert binary is not None
        self.port = free_port()
        self.log = folder / "mosquitto.log"
        config = folder / "mosquitto.conf"
        config.write_text(
            "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous true",
                    "persistence false",
                    "connection_messages false",
                    *(["set_tcp_nodelay true"] if nodelay else []),
                    "log_dest stderr",
                    *(f"log_type {kind}" for kind in ("error", "warning", "notice", "information")),
                    f"user {pwd.getpwuid(os.getuid()).pw_name}",  # as root it would switch to user mosquitto
                    "",
                ]
            )
        )
        self.binary, self.config = binary, config

    async def start(self) -> None:
        # Mosquitto logs "Opening ... listen socket" before it listens, "running" once it does.
        listening = re.compile(rf"listen socket on port {self.port}\.[\s\S]*running")
        with self.log.open("w") as log:
            await self.launch(
                self.binary,
                "-c",
                str(self.config),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
                ready=lambda text: listening.search(text) is not None,
            )


class RedisServer(Daemon):
    """A redis-server on a free port of 127.0.0.1, run from ``folder``: no snapshots, no append-only file."""

    name = "redis-server"

    def __init__(self, folder: Path) -> None:
        binary = redis_server()
        assert binary is not None
        self.binary, self.folder = binary, folder
        self.port = free_port()
        self.log = folder / "redis.log"

    async def start(self) -> None:
        arguments = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with self.log.open("w") as log:
            await self.launch(
                self.binary,
                *arguments,
                "--dir",
                str(self.folder),
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                ready=lambda text: "Ready to accept connections" in text,
            )


@dataclass(eq=False)
class Worker:
    """One process of ``python -m bench.scale_worker``: commands in on stdin, JSON events out on stdout."""

    role: str
    process: asyncio.subprocess.Process
    errors: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    started: ClassVar[Iterator[int]] = itertools.count()

    @classmethod
    async def start(
        cls, role: str, args: dict[str, Any], folder: Path, *, module: str = "bench.scale_worker", kind: str = ""
    ) -> Worker:
        """``python -m MODULE [KIND] ROLE ARGS`` in its own session, its stderr in a file of ``folder``."""
        words = [kind, role] if kind else [role]
        errors = folder / f"{'-'.join(words)}-{next(cls.started)}.err"
        with errors.open("w") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                *words,
                json.dumps(args),
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
                limit=1 << 20,
            )
        return cls(" ".join(words), process, errors)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def expect(self, key: str, within: float) -> dict[str, Any]:
        """The next event that carries ``key``; a clear error if the worker died or took too long."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + within
        while True:
            try:
                line = await asyncio.wait_for(self.process.stdout.readline(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise RuntimeError(f"{self.role}: no {key!r} within {within:g} s") from None
            if not line:
                raise RuntimeError(f"{self.role} exited: {self.errors.read_text()[-800:].strip()}")
            event = json.loads(line)
            self.events.append(event)
            if key in event:
                return event

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())

    async def stop(self) -> None:
        if self.process.returncode is None:
            assert self.process.stdin is not None
            self.process.stdin.close()  # the end of its commands: it closes everything and exits
            await reaped(self.process)


@dataclass(frozen=True)
class System:
    """What one measurement starts: who publishes, through what, to which subscribers."""

    name: str
    publisher: str  # "mesh", "mqtt" or "redis"
    subscribers: str  # "mesh", "mqtt" or "redis"
    qos: int = 0
    bridge: bool = False
    pace: float = 0.0  # publications per second; 0: as fast as the publisher may
    pipelined: bool = False  # redis: PUBLISH in pipelines of the publisher's window, not each awaited
    node: bool = False  # redis: the clients speak to a node's own port (its Redis side), not to redis-server

    @property
    def broker(self) -> bool:
        return self.bridge or "mqtt" in (self.publisher, self.subscribers)

    @property
    def redis(self) -> bool:
        return "redis" in (self.publisher, self.subscribers)


FAN_OUT = [
    System("mesh", "mesh", "mesh"),
    System("Mosquitto QoS 0", "mqtt", "mqtt", 0),
    System("Mosquitto QoS 1", "mqtt", "mqtt", 1),
    System("bridge QoS 0", "mesh", "mqtt", 0, bridge=True),
    System("bridge QoS 1", "mesh", "mqtt", 1, bridge=True),
]


def paced(rate: float) -> list[System]:
    """The mesh and Mosquitto at a steady rate both keep up with: what a delivery costs without batching."""
    return [
        System(f"mesh, {rate:g} msg/s", "mesh", "mesh", pace=rate),
        System(f"Mosquitto QoS 0, {rate:g} msg/s", "mqtt", "mqtt", 0, pace=rate),
    ]


THROUGH = [
    System("Mosquitto alone, MQTT -> MQTT, QoS 0", "mqtt", "mqtt", 0),
    System("Mosquitto alone, MQTT -> MQTT, QoS 1", "mqtt", "mqtt", 1),
    System("bridge mesh -> MQTT, QoS 0", "mesh", "mqtt", 0, bridge=True),
    System("bridge mesh -> MQTT, QoS 1", "mesh", "mqtt", 1, bridge=True),
    System("bridge MQTT -> mesh, QoS 0", "mqtt", "mesh", 0, bridge=True),
    System("bridge MQTT -> mesh, QoS 1", "mqtt", "mesh", 1, bridge=True),
]


async def measure(
    system: System, subscribers: int, messages: int, processes: int, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """One fresh run of ``system``: deliveries per second, CPU per delivery, peak memory of each part."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as name:
        folder = Path(name)
        broker: Broker | RedisServer | None = (
            Broker(folder) if system.broker else RedisServer(folder) if system.redis and not system.node else None
        )
        workers: list[Worker] = []
        node: Worker | None = None  # the node whose port Redis clients speak to, instead of redis-server
        try:
            if broker is not None:
                await broker.start()
            if system.node:
                node = await Worker.start("resp-node", {}, folder)
                workers.append(node)
                redis_port = (await node.expect("ready", 30))["ready"]
            elif isinstance(broker, RedisServer):
                redis_port = broker.port
            if system.publisher == "mesh":
                publisher = await Worker.start("mesh-pub", {"bound": messages + 100}, folder)
                workers.append(publisher)
                mesh_port = (await publisher.expect("ready", 30))["ready"]
                topic = "pub/n"
            elif system.publisher == "redis":
                topic = "bench/n"  # a node's Redis clients publish under its name: the node is "bench"
                args = {"port": redis_port, "topic": topic, "pipelined": system.pipelined}
                publisher = await Worker.start("redis-pub", args, folder)
                workers.append(publisher)
                await publisher.expect("ready", 30)
            else:
                assert broker is not None
                topic = "devices/n" if system.bridge else "bench/n"
                publisher = await Worker.start(
                    "mqtt-pub", {"port": broker.port, "topic": topic, "qos": system.qos}, folder
                )
                workers.append(publisher)
                await publisher.expect("ready", 30)
            bridge = None
            if system.bridge:
                assert broker is not None
                bridge = await Worker.start(
                    "bridge",
                    {
                        "broker": broker.port,
                        "port": mesh_port if system.publisher == "mesh" else None,
                        "qos": system.qos,
                        "prefix": PREFIX,
                        "out": ["pub/#"] if system.publisher == "mesh" else [],
                        "in": ["devices/#"] if system.publisher == "mqtt" else [],
                        "bound": messages + 100,
                    },
                    folder,
                )
                workers.append(bridge)
                bridge_port = (await bridge.expect("ready", 30))["ready"]
            if system.subscribers == "mesh":
                role = "mesh-subs"
                port, pattern, owner = (
                    (bridge_port, f"bridge/{topic}", "bridge") if bridge else (mesh_port, topic, "pub")
                )
                common: dict[str, Any] = {"port": port, "pattern": pattern, "publisher": owner}
            elif system.subscribers == "redis":
                role, common = "redis-subs", {"port": redis_port, "pattern": topic}
            else:
                assert broker is not None
                role = "mqtt-subs"
                pattern = f"{PREFIX}/{topic}" if bridge else topic
                common = {"port": broker.port, "pattern": pattern, "qos": system.qos}
            shares = [subscribers // processes + (i < subscribers % processes) for i in range(processes)]
            subs: list[Worker] = []
            for i, share in enumerate(shares):
                if share:
                    args = {**common, "first": sum(shares[:i]), "clients": share, "expect": messages}
                    subs.append(await Worker.start(role, args, folder))
                    workers.append(subs[-1])
            base = [(await sub.expect("ready", 120)).get("base", 0) for sub in subs]
            publisher.send(warm=True)
            for sub in subs:
                await sub.expect("warm", 60)
            parts = {"publisher": [publisher.pid], "subscribers": [sub.pid for sub in subs]}
            if broker is not None:
                parts["broker"] = [broker.pid]
            if node is not None:
                parts["broker"] = [node.pid]
            if bridge is not None:
                parts["bridge"] = [bridge.pid]
            cpu_before = {part: sum(proc(pid)[0] for pid in pids) for part, pids in parts.items()}
            began = time.monotonic()
            publisher.send(publish=messages, pace=system.pace)
            ends = []
            deadline = began + DONE_TIMEOUT
            for sub in subs:
                try:
                    ends.append(await sub.expect("done", max(0.1, deadline - time.monotonic())))
                except RuntimeError:  # not all arrived: count what did
                    sub.send(stop=True)
                    ends.append(await sub.expect("done", 10))
            cpu = {part: sum(proc(pid)[0] for pid in pids) - cpu_before[part] for part, pids in parts.items()}
            received = sum(end["received"] for end in ends)
            elapsed = max(end["done"] for end in ends) - began
            peaks = {w: proc(w.pid)[2] for w in workers}
            lost = subscribers * messages - received
            if lost:  # what the nodes and clients said went wrong, for the record
                trouble = [f"{w.role}: {line}" for w in workers for line in w.errors.read_text().splitlines()[-3:]]
                say(
                    f"  {system.name}: {lost:,} of {subscribers * messages:,} deliveries missing; "
                    + " | ".join(trouble)
                )
            return {
                "deliveries_per_s": received / elapsed if elapsed > 0 else 0.0,
                "lost": lost,
                "cpu_us_per_delivery": sum(cpu.values()) / received * 1e6 if received else 0.0,
                **{f"{part}_cpu_us": seconds / received * 1e6 if received else 0.0 for part, seconds in cpu.items()},
                "publisher_kib": peaks[publisher],
                "broker_kib": proc(broker.pid)[2] if broker else peaks[node] if node else 0,
                "bridge_kib": peaks[bridge] if bridge else 0,
                "subscribers_kib": sum(peaks[s] for s in subs),
                "kib_per_subscriber": (sum(peaks[s] for s in subs) - sum(base)) / subscribers,
            }
        finally:
            for worker in reversed(workers):
                await worker.stop()
            if broker is not None:
                await broker.stop()


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def run(sizes: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
    """Every system of the fan-out, then of the bridge's throughput, in interleaved rounds."""
    why = missing()
    for line in skip_lines(why):
        say(line)

    def runs(system: System) -> bool:
        return not system.broker or ("mqtt" not in why and (not system.bridge or "bridge" not in why))

    wanted = [s for s in FAN_OUT + paced(sizes["pace"]) if runs(s)]
    through = [s for s in THROUGH if runs(s)]
    n, p, rounds = sizes["subscribers"], sizes["processes"], sizes["rounds"]
    figures: dict[str, list[dict[str, Any]]] = {s.name: [] for s in wanted + through}
    for r in range(rounds):
        for system in wanted:
            m = sizes["paced"] if system.pace else sizes["messages"]
            say(f"scale, round {r + 1}/{rounds}: {system.name}, 1 -> {n:,} subscribers, {m:,} messages")
            began = time.monotonic()
            figures[system.name].append(await measure(system, n, m, p, say))
            say(f"  {time.monotonic() - began:.1f} s")
        for system in through:
            say(f"scale, round {r + 1}/{rounds}: {system.name}, {sizes['through']:,} messages")
            began = time.monotonic()
            figures[system.name].append(await measure(system, 1, sizes["through"], 1, say))
            say(f"  {time.monotonic() - began:.1f} s")

    def summary(name: str) -> dict[str, Any]:
        runs = figures[name]
        return {
            "system": name,
            **{key: spread([run_[key] for run_ in runs]) for key in runs[0]},
            "lost_in_all": sum(run_["lost"] for run_ in runs),
            "runs": runs,
        }

    fan_out = [summary(s.name) for s in wanted]
    ratios = []
    burst = [row for row, s in zip(fan_out, wanted, strict=True) if not s.pace]
    mesh = burst[0]["deliveries_per_s"]["median"]
    for row in burst[1:]:
        ratios.append(
            {"what": f"deliveries/s: mesh / {row['system']}", "ratio": mesh / row["deliveries_per_s"]["median"]}
        )
    steady = [row for row, s in zip(fan_out, wanted, strict=True) if s.pace]
    if len(steady) == 2:
        mesh_row, broker_row = steady
        rate = f"{sizes['pace']:g} msg/s"
        for what, mine, theirs in (
            ("every process: mesh / Mosquitto QoS 0", "cpu_us_per_delivery", "cpu_us_per_delivery"),
            ("the fan-out point: mesh publisher / Mosquitto", "publisher_cpu_us", "broker_cpu_us"),
        ):
            if broker_row[theirs]["median"]:  # a tiny run may not see a clock tick of it
                ratios.append(
                    {
                        "what": f"CPU per delivery at {rate}, {what}",
                        "ratio": mesh_row[mine]["median"] / broker_row[theirs]["median"],
                    }
                )
    one_way = [summary(s.name) for s in through]
    alone = {row["system"][-5:]: row for row in one_way if not row["system"].startswith("bridge")}
    for row in one_way:
        reference = alone.get(row["system"][-5:])
        if row["system"].startswith("bridge") and reference is not None:
            ratios.append(
                {
                    "what": f"messages/s: {row['system']} / {reference['system']}",
                    "ratio": row["deliveries_per_s"]["median"] / reference["deliveries_per_s"]["median"],
                }
            )
    return {"skipped": why, "fan_out": fan_out, "ratios": ratios, "through": one_way}


def machine() -> dict[str, Any]:
    """What the scale-out figures also depend on: Mosquitto's version and the load when they began."""
    found = mosquitto()
    version = "Mosquitto not installed"
    if found is not None:
        import subprocess

        done = subprocess.run([found, "-h"], capture_output=True, text=True, check=False)
        first = (done.stdout or done.stderr).splitlines()[:1]
        version = first[0].replace("mosquitto version", "Mosquitto").strip() if first else "Mosquitto"
    return {"mosquitto": version, "load": " ".join(f"{x:.2f}" for x in os.getloadavg())}
