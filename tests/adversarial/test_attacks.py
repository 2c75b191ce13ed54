"""Every attack of issue 12, rerun against a live node with a circuit running through it.

The node under attack, ``tally``, is a real process (``./arduino.py tally``) whose sketch
prints each tick it is handed and publishes it. A real ``clock`` process streams
:data:`TICKS` numbered ticks to it, while a hostile peer (``attacker.py``, a process of
its own) attacks it and a legitimate client asks it for its status over and over. Each
test asserts the promises:

- the node kept serving: every status request was answered, p99 under :data:`P99` (never taken for frozen);
- its peak resident memory (``VmHWM``) stayed under :data:`RSS_BOUND`;
- every tick reached ``loop()`` exactly once, in order, and was acked exactly once, though
  the clock reaches the tally through a relay (:class:`tests.helpers.Proxy`) that cuts the
  wire every :data:`CUT_EVERY` (so ticks are re-sent, and the tally must drop the copies);
- nothing it logged was a traceback.

Run alone with ``pytest -m adversarial``. The figures each test measured are printed
(``-s`` shows them); ``docs/reliability.md`` ("Under attack") has the table.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from mesh import protocol
from mesh.handshake import greeting
from mesh.reconnect import CLIENT
from mesh.wall import mesh_client
from tests.helpers import DEADLINE, MS, Process, Proxy, arduino, environment, free_ports, write_grid
from tests.redis_servers import REDIS_CLI, needs_redis

pytestmark = [pytest.mark.adversarial, pytest.mark.e2e]

ATTACKER = Path(__file__).with_name("attacker.py")
TICKS = 600
#: The legitimate client's answer time, p99, that no attack may push it past: the liveness promise
#: (a link takes a peer silent for PING_INTERVAL + PING_TIMEOUT, 3 s, for frozen). The target is
#: 100 ms (issue 12), reported by each test (-s) and in docs/reliability.md: two whole suites at
#: once on 2 cores pushed 200 x 50 subscribers and the non-reading flood to 1.0-1.8 s.
P99 = 3000 * MS
#: Peak resident memory of the attacked node (it starts at about 35 MiB).
RSS_BOUND = 160 * 2**20
TOKEN = "adversarial-token-0123456789"
#: How often the wire from the clock to the tally is cut while the circuit runs.
CUT_EVERY = 300 * MS

GRID = """\
{auth}nodes:
  clock: {{sketch: clock, params: {{tacks: {ticks}, delay: 0.005}}}}
  tally: {{sketch: tally, port: {port}, params: {{fat: {fat}, retained: {retained}}}{subscribe}}}
{ghost}wires:
  - clock -> tally
"""

TALLY = '''\
"""Prints each message it is handed, and publishes it (with ``fat`` bytes of padding)."""

from nodes import FactoryLoop, reactive


class Tally(FactoryLoop):
    async def setup(self, fat: int = 0, retained: int = 0) -> None:
        self.padding = "x" * fat
        for n in range(retained):  # values kept for every later subscriber, 16 KiB each
            await self.publish(f"kept/{n}", f"{n} " + "k" * 16_000, retain=True)

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        self.out(f"got {message}")
        await self.publish("tick", f"{message} {self.padding}")
        return "ok"
'''


class Arena:
    """A grid of clock -> tally in a temporary folder, the tally's own sketch beside it."""

    def __init__(
        self,
        folder: Path,
        proxy: Proxy,
        *,
        fat: int = 0,
        auth: bool = False,
        retained: int = 0,
        ghost: bool = False,
        subscribe: str | None = None,
    ) -> None:
        self.port, self.ghost_port = free_ports(2)
        self.proxy = proxy
        self.uri = f"ws://127.0.0.1:{self.port}/"
        self.auth = auth
        (folder / "sketches").mkdir()
        (folder / "sketches" / "tally.py").write_text(TALLY)
        self.grid = write_grid(
            folder,
            GRID.format(
                auth="auth: {token_env: MESH_TOKEN}\n" if auth else "",
                ticks=TICKS,
                port=proxy.port,
                fat=fat,
                retained=retained,
                subscribe=f", subscribe: [{subscribe!r}]" if subscribe else "",
                ghost=f"  ghost: {{sketch: tally, port: {self.ghost_port}}}\n" if ghost else "",
            ),
        )
        self.env = {"MESH_TOKEN": TOKEN} if auth else {}
        #: The clock's own copy of the grid: a test that edits the tally's grid file leaves the clock's alone.
        self.clock_grid = str(Path(self.grid).with_name("clock-grid.yaml"))
        Path(self.clock_grid).write_text(Path(self.grid).read_text())
        proxy.target_port = self.port  # the grid names the relay; the tally listens behind it

    def run_clock(self) -> int:
        """Run the clock to its last tick, cutting its wire every CUT_EVERY; how many cuts.

        Never twice without a tick reaching the tally in between: on a loaded machine, with the
        tally busy with an attack, a link may need longer than CUT_EVERY to greet and re-send, and
        cuts by the clock alone would then keep every tick from ever arriving (a test's livelock,
        not the node's).
        """
        clock = self.start("clock")
        cuts = 0
        deadline = time.monotonic() + 120_000 * MS
        ticks_at_cut = -1
        while clock.popen.poll() is None:
            assert time.monotonic() < deadline, "the clock did not finish: " + clock.output()[-3000:]
            try:
                clock.popen.wait(CUT_EVERY)
            except subprocess.TimeoutExpired:
                tally = getattr(self, "tally", None)  # none: a fake peer answers the clock
                # output() takes in what the tally has printed so far: its lines are read only when asked for.
                ticks = cuts if tally is None else tally.output().count("\n[ tally ] got tick ")
                if ticks > ticks_at_cut:
                    self.proxy.cut()
                    cuts += 1
                    ticks_at_cut = ticks
        assert clock.popen.returncode == 0, clock.output()[-3000:]
        self.clock = clock
        return cuts

    def start(self, name: str) -> Process:
        port = ["-p", str(self.port)] if name == "tally" else []
        grid = self.clock_grid if name == "clock" else self.grid
        process = arduino("--grid", grid, name, *port, env=environment(**self.env))
        if name == "tally":
            process.expect("serving on")
            self.tally = process
        return process


class Probe(threading.Thread):
    """A legitimate client: on one connection, as a link keeps one, asks for the node's status again and again.

    Each answer is timed. A connection that fails is a failure; the probe then opens another.
    """

    def __init__(self, uri: str, token: str | None) -> None:
        super().__init__(daemon=True)
        self.uri = uri
        self.token = token
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self._probe())

    async def _probe(self) -> None:
        ids = itertools.count(1)
        while not self.stopping.is_set():
            try:
                async with connect(
                    self.uri,
                    **CLIENT,
                    open_timeout=5,
                    create_connection=mesh_client(greeting(partial(protocol.Hello, node="probe"), self.token, "tally")),
                ) as ws:
                    while not self.stopping.is_set():
                        frame_id = next(ids)
                        started = time.perf_counter()
                        await ws.send(protocol.encode(protocol.Status(id=frame_id)))
                        async with asyncio.timeout(5):
                            while getattr(protocol.decode(str(await ws.recv())), "id", None) != frame_id:
                                pass
                        self.latencies.append(time.perf_counter() - started)
                        await asyncio.sleep(10 * MS)
            except Exception as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")

    def stop(self) -> None:
        self.stopping.set()
        self.join()

    @property
    def p99(self) -> float:
        return statistics.quantiles(self.latencies, n=100)[98] if len(self.latencies) >= 2 else float("inf")


def peak_rss(pid: int) -> int:
    """The process's peak resident memory so far, in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def under_attack(
    arena: Arena,
    attack: str,
    *,
    then: str | None = None,
    args: tuple[str, ...] = (),
    before: Callable[[], None] | None = None,
    meanwhile: Callable[[], Callable[[], object] | None] | None = None,
) -> tuple[Process, Probe, Process, str]:
    """Run the whole circuit while ``attack`` goes on; the tally's whole output, once stopped.

    ``then``: a line the attacker must print before it is stopped (what it saw of the node);
    ``args``: more arguments for the attacker; ``before``: called once the tally serves, before
    anything else starts; ``meanwhile``: what the test does once the attack is on, returning what
    to wait for (if anything) before the tally is stopped.
    """
    tally = arena.start("tally")
    if before is not None:
        before()
    probe = Probe(arena.uri, TOKEN if arena.auth else None)  # connected before the attack, as a link is
    probe.start()
    deadline = time.monotonic() + DEADLINE
    while not probe.latencies and not probe.failures:
        assert time.monotonic() < deadline, "the legitimate client got no answer"
        time.sleep(MS)
    attacker = Process([sys.executable, ATTACKER, attack, arena.uri, *args])
    attacker.expect("^attacking$", timeout=30_000 * MS)
    finish = meanwhile() if meanwhile is not None else None
    try:
        cuts = arena.run_clock()
        if finish is not None:
            finish()
    finally:
        probe.stop()
    clock = arena.clock
    if then is not None:
        attacker.expect(then)
    rss = peak_rss(tally.pid)
    attacker.kill()
    tally.signal(signal.SIGTERM)
    assert tally.wait() == 0, tally.output()[-3000:]
    output = tally.output()
    print(
        f"\n{attack}: status p50 {statistics.median(probe.latencies) * 1000:.1f} ms, "
        f"p99 {probe.p99 * 1000:.1f} ms over {len(probe.latencies)} requests, {len(probe.failures)} failed; "
        f"peak RSS {rss / 2**20:.0f} MiB; {cuts} cuts; attacker: {(attacker.output().splitlines() or ['-'])[-1][:200]}"
    )
    return clock, probe, attacker, output + f"\nPEAK_RSS {rss}"


def check_promises(clock: Process, probe: Probe, output: str) -> None:
    got = [int(n) for n in re.findall(r"^\[ tally \] got tick (\d+)$", output, re.MULTILINE)]
    assert got == list(range(1, TICKS + 1)), "ticks lost, repeated or out of order"
    acked = [int(n) for n in re.findall(r"\] tally acked tick (\d+): ok", clock.output())]
    assert sorted(acked) == list(range(1, TICKS + 1))
    assert "Traceback" not in output, output[-5000:]
    assert not probe.failures, probe.failures[:5]
    assert probe.p99 <= P99, f"a legitimate client's p99 was {probe.p99 * 1000:.0f} ms"
    rss = int(output.rsplit("PEAK_RSS ", 1)[1])
    assert rss <= RSS_BOUND, f"peak RSS {rss / 2**20:.0f} MiB"


ATTACKS = [
    "subs-one-frame",
    "subs-many-clients",
    "tiny-batch",
    "status-batch",
    "non-reading",
    "sessions",
    "malformed",
    "http",
    "big-frames",
    "slowloris",
    "connect-flood",
]


@pytest.fixture
def proxy():
    relay = Proxy(0)
    yield relay
    relay.close()


@pytest.mark.parametrize("attack", ATTACKS)
def test_the_node_keeps_its_promises_under(attack: str, tmp_path: Path, proxy: Proxy) -> None:
    clock, probe, _, output = under_attack(Arena(tmp_path, proxy), attack)
    check_promises(clock, probe, output)


def test_subscribers_that_never_read_are_dropped_and_cost_nobody(tmp_path: Path, proxy: Proxy) -> None:
    clock, probe, _, output = under_attack(Arena(tmp_path, proxy, fat=65_536), "lazy-subscriber", then="dropped")
    check_promises(clock, probe, output)
    assert "took nothing for 3 s: dropping its connection" in output


def test_a_flood_of_wrong_tokens_is_refused_in_few_lines(tmp_path: Path, proxy: Proxy) -> None:
    clock, probe, _, output = under_attack(Arena(tmp_path, proxy, auth=True), "http")
    check_promises(clock, probe, output)
    refusals = [line for line in output.splitlines() if "refused a connection" in line]
    assert 1 <= len(refusals) <= 5, refusals


def test_a_redis_attacker_gets_redis_errors_and_a_redis_subscriber_misses_nothing(tmp_path: Path, proxy: Proxy) -> None:
    """Malformed RESP, subscribers that never read, 1,023 subscriptions at once, nasty globs, a PUBLISH flood
    whose replies are never read, silent connections: each gets Redis's error or is cut, the node keeps its
    promises, and a Redis subscriber that reads (redis-cli) hears every one of the tally's ticks, in order."""
    needs_redis()
    assert REDIS_CLI is not None
    arena = Arena(tmp_path, proxy)
    listeners: list[Process] = []

    def listen() -> None:
        listener = Process([REDIS_CLI, "-p", str(arena.port), "SUBSCRIBE", "tally/tick"])
        listener.expect("^1$")  # subscribed: "subscribe", "tally/tick", 1
        listeners.append(listener)

    clock, probe, attacker, output = under_attack(
        arena,
        "redis",
        then=r"malformed: ok,ok,ok,ok,ok,ok,ok \| lazy subscriber cut \| lazy subscriber cut",
        before=listen,
    )
    check_promises(clock, probe, output)
    (listener,) = listeners
    listener.expect(f"^tick {TICKS} $")
    heard = [int(n) for n in re.findall(r"^tick (\d+) $", listener.output(), re.MULTILINE)]
    assert heard == list(range(1, TICKS + 1))
    assert "greedy: b'-ERR too many subscriptions: 1000 channels and patterns per client at most' refused=True" in (
        attacker.output()
    )


def test_a_quiet_node_for_comparison(tmp_path: Path, proxy: Proxy) -> None:
    """No attack (the wire is still cut): the figures the others compare with."""
    arena = Arena(tmp_path, proxy)
    tally = arena.start("tally")
    probe = Probe(arena.uri, None)
    probe.start()
    try:
        cuts = arena.run_clock()
    finally:
        probe.stop()
    clock = arena.clock
    rss = peak_rss(tally.pid)
    tally.signal(signal.SIGTERM)
    assert tally.wait() == 0
    output = tally.output()
    print(
        f"\nquiet: status p99 {probe.p99 * 1000:.1f} ms over {len(probe.latencies)}; "
        f"peak RSS {rss / 2**20:.0f} MiB; {cuts} cuts"
    )
    check_promises(clock, probe, output + f"\nPEAK_RSS {rss}")
