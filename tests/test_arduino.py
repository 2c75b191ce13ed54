"""End to end: ./arduino.py and honcho as real subprocesses, on free ports, from a grid in a temporary folder."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    DEADLINE,
    MS,
    ROOT,
    Process,
    SilentPeer,
    arduino,
    environment,
    free_ports,
    run,
    run_arduino,
    serving,
    shipped_grid_on_free_ports,
    write_grid,
)

pytestmark = pytest.mark.e2e

GRID = """\
nodes:
  clock:  {{sketch: clock, params: {{tacks: {tacks}, delay: 0.05}}}}
  iopin:  {{sketch: iopin, host: 127.0.0.1, port: {iopin}, params: {{chance: 0.5, sequence: 3, seed: 7}}}}
  buzzer: {{sketch: buzzer, host: 127.0.0.1, port: {buzzer}, params: {{sound: buzz buzz buzz}}}}
wires:
  - clock -> iopin
  - iopin -> buzzer
"""


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    """A copy of the shipped circuit on free ports, ticking 5 times."""
    iopin, buzzer = free_ports(2)
    return write_grid(tmp_path, GRID.format(tacks=5, iopin=iopin, buzzer=buzzer))


def start(grid: Path, *args: str) -> Process:
    return arduino("--grid", grid, *args)


def stop_within_a_second(process: Process, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` and check a clean exit 0 within one second, with no traceback."""
    began = time.monotonic()
    process.signal(sig)
    assert process.wait() == 0, process.output()
    assert time.monotonic() - began < 1000 * MS
    assert "Traceback" not in process.output()


def test_the_circuit_runs_in_the_wrong_order(grid: Path):
    """Clock first, then iopin, then buzzer: every tick is acked and every bit sounds."""
    clock = start(grid, "clock")
    clock.expect(r"\[ clock \] waiting for iopin at ws://127\.0\.0\.1:\d+ \(connection refused\)")
    iopin = start(grid, "iopin")
    iopin.expect(r"^\[ iopin \] serving on 127\.0\.0\.1:\d+$")
    buzzer = start(grid, "buzzer")
    buzzer.expect(r"^\[ buzzer \] serving on 127\.0\.0\.1:\d+$")
    assert clock.wait() == 0, clock.output()
    out = clock.output()
    assert [f"iopin acked tick {n}: acknowledged" in out for n in range(1, 6)] == [True] * 5
    assert out.count("acked tick") == 5
    assert out.rstrip().endswith("[ clock ] done")
    for _ in range(15):
        buzzer.expect(r"signal [01]: ")
    rng = random.Random(7)  # the grid's seed: the bits are known in advance
    bits = [1 if rng.random() < 0.5 else 0 for _ in range(15)]
    assert [line for line in buzzer.lines if "] signal " in line] == [
        f"[ buzzer ] signal {bit}: {'buzz buzz buzz' if bit else '...'}" for bit in bits
    ]
    assert iopin.expect(r"toggling pin state: \[.*\]$")[0] == f"toggling pin state: {bits[:3]}"
    stop_within_a_second(iopin)
    stop_within_a_second(buzzer, signal.SIGINT)


def test_send_prints_the_ack(grid: Path):
    """./arduino.py send buzzer 1 prints the buzzer's sound; 0 prints '...'."""
    buzzer = start(grid, "buzzer")
    buzzer.expect("serving on")
    done = run_arduino("--grid", grid, "send", "buzzer", "1")
    assert (done.returncode, done.stdout) == (0, "buzz buzz buzz\n")
    done = run_arduino("--grid", grid, "send", "buzzer", "0", "--channel", "/pin")
    assert (done.returncode, done.stdout) == (0, "...\n")
    buzzer.expect(r"signal 0: \.\.\.")
    stop_within_a_second(buzzer)


def test_send_to_a_node_that_is_down(grid: Path):
    """send to a node that is not running: one line, exit 1."""
    done = run_arduino("--grid", grid, "send", "buzzer", "1")
    port = re.search(r"port: (\d+), params: \{sound", grid.read_text())[1]
    assert done.returncode == 1
    assert done.stderr == f"Error: cannot reach buzzer at ws://127.0.0.1:{port}: connection refused\n"


def test_unknown_node_exits_2_and_lists_the_known_ones(grid: Path):
    """./arduino.py buzer: exit 2, naming the known nodes."""
    done = run_arduino("--grid", grid, "buzer")
    assert done.returncode == 2
    assert done.stderr == (
        f"Error: unknown node 'buzer'; known nodes: buzzer, clock, iopin (in {grid}); did you mean 'buzzer'?\n"
    )
    done = run_arduino("--grid", grid, "send", "nobody", "1")
    assert done.returncode == 2
    assert done.stderr == f"Error: unknown node 'nobody'; known nodes: buzzer, clock, iopin (in {grid})\n"
    done = run_arduino("--grid", grid, "run", "clok")
    assert (done.returncode, done.stderr) == (
        2,
        f"Error: unknown node 'clok'; known nodes: buzzer, clock, iopin (in {grid}); did you mean 'clock'?\n",
    )


def test_port_in_use_is_one_line(grid: Path):
    """A port already taken: one line naming the address and what probably holds it, exit 1, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_arduino("--grid", grid, "buzzer", "--port", str(port))
    assert done.returncode == 1
    assert done.stderr == (
        f"Error: buzzer: cannot listen on 127.0.0.1:{port}: address already in use (is your own `arduino-mesh up`"
        " or `honcho start` still running? `arduino-mesh status` shows which nodes of the grid answer)\n"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "nodes:\n  clock: {sketch: clok}\n",
            "grid.yaml:2: node 'clock': unknown sketch 'clok'; tried sketches/clok.py beside the grid, the built-in sketches; "
            "known sketches: buzzer, clock, dashboard, iopin, mqtt; did you mean 'clock'?",
        ),
        (
            "nodes:\n  a: {sketch: clock}\n  a: {sketch: clock}\n",
            "grid.yaml:3: node 'a' is defined twice (first on line 2)",
        ),
        (
            "nodes:\n  clock: {sketch: clock}\nwires:\n  - clock => buzzer\n",
            "grid.yaml:4: malformed wire 'clock => buzzer'; expected 'SOURCE -> TARGET'",
        ),
        (
            "nodes:\n  clock: {sketch: clock, params: {tacks: five}}\n",
            "grid.yaml:2: node 'clock' (sketch clock): parameter 'tacks' must be a whole number, not 'five'",
        ),
    ],
)
def test_a_bad_grid_is_one_line_with_file_and_line(tmp_path: Path, text: str, message: str):
    """A broken grid.yaml: exit 1 and one line naming the file, the line and the problem."""
    write_grid(tmp_path, text)
    done = run_arduino("--grid", "grid.yaml", "clock", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (1, f"Error: {message}\n")


def test_a_missing_grid(tmp_path: Path):
    """No grid file: one line, exit 1."""
    done = run_arduino("--grid", tmp_path / "nope.yaml", "clock")
    assert (done.returncode, done.stderr) == (
        1,
        f"Error: {tmp_path / 'nope.yaml'}: cannot read the grid: No such file or directory\n",
    )


def test_command_line_overrides_the_grid(grid: Path):
    """-p/--port and sketch options override the grid for that node."""
    (port,) = free_ports(1)
    buzzer = start(grid, "buzzer", "-p", str(port), "--sound", "beep")
    buzzer.expect(rf"serving on 127\.0\.0\.1:{port}$")
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{port}/") as ws:
        ws.send("1")
        assert ws.recv(timeout=DEADLINE) == "beep"
    done = run_arduino("--grid", grid, "buzzer", "--tacks", "3")  # a clock's option: not the buzzer's
    assert done.returncode == 2 and done.stderr.endswith("Error: No such option '--tacks'.\n"), done.stderr
    done = run_arduino("--grid", grid, "buzzer", "--param", "tacks=3")
    assert (done.returncode, done.stderr) == (
        1,
        "Error: command line: node 'buzzer' (sketch buzzer) takes no parameter 'tacks'; its parameters: sound\n",
    )
    stop_within_a_second(buzzer)


def test_help_on_every_command(grid: Path):
    """--help works on the group, on send, and on a node, and lists the grid's nodes."""
    done = run_arduino("--grid", grid, "--help")
    assert done.returncode == 0
    assert "send" in done.stdout and "buzzer" in done.stdout and "sketch iopin" in done.stdout
    for args in (["send", "--help"], ["buzzer", "--help"], ["run", "--help"]):
        done = run_arduino("--grid", grid, *args)
        assert done.returncode == 0, done.stderr
        assert "Usage:" in done.stdout
    buzzer = run_arduino("--grid", grid, "buzzer", "--help").stdout
    assert re.search(r"--sound TEXT\s+What a 1 sounds like \[grid: 'buzz buzz buzz'\]", buzzer), buzzer
    assert "--tacks" not in buzzer
    clock = run_arduino("--grid", grid, "run", "clock", "--help").stdout  # options from the clock's setup()
    assert re.search(r"--tacks INTEGER\s+How many ticks \(0: forever\) \[grid: 5\]", clock), clock
    assert re.search(r"--delay FLOAT\s+Seconds between ticks \[grid: 0.05\]", clock), clock
    iopin = run_arduino("--grid", grid, "iopin", "--help").stdout
    assert re.search(r"--seed INTEGER\s+The same stream, whatever the run.s seed \[grid: 7\]", iopin), iopin


def test_honcho_runs_the_shipped_procfile(tmp_path: Path):
    """honcho start with the shipped Procfile and grid: the circuit ticks and buzzes; Ctrl-C stops every node cleanly."""
    grid = shipped_grid_on_free_ports(tmp_path)
    procfile = tmp_path / "Procfile"
    shutil.copy(ROOT / "Procfile", procfile)
    env = environment(ARDUINO_GRID=str(grid), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    # honcho itself runs unbuffered (-u), its nodes do not (-u is not inherited; PYTHONUNBUFFERED is unset).
    # honcho's Ctrl-C handler prints. When the signal lands while honcho's main thread is blocked
    # writing to a full pipe, a *buffered* stdout raises "RuntimeError: reentrant call inside
    # <_io.BufferedWriter name='<stdout>'>" in the handler: honcho never sends SIGTERM to its
    # nodes and hangs joining its workers. Minimal reproducer, no honcho involved:
    #   import signal
    #   signal.signal(signal.SIGALRM, lambda *_: print("signal received", flush=True))
    #   signal.setitimer(signal.ITIMER_REAL, 0.2)
    #   while True: print("x" * 200, flush=True)
    # run as `python3 repro.py | (sleep 1; cat >/dev/null)`: RuntimeError; with -u: none.
    process = Process([sys.executable, "-u", "-m", "honcho", "-f", procfile, "-d", ROOT, "start"], env=env)
    process.expect(r"buzzer\.1\s+\| \[ buzzer \] serving on 127\.0\.0\.1:\d+", anywhere=True)
    process.expect(r"iopin\.1\s+\| \[ iopin \] serving on 127\.0\.0\.1:\d+", anywhere=True)
    # beyond 5 ticks: the Procfile says --tacks 0
    process.expect(r"clock\.1\s+\| \[ clock \] iopin acked tick 6: acknowledged", anywhere=True)
    process.expect(r"buzzer\.1\s+\| \[ buzzer \] signal [01]: ", anywhere=True)
    began = time.monotonic()
    process.signal_group(signal.SIGINT)  # Ctrl-C reaches the terminal's whole foreground group
    assert process.wait() == 130  # honcho's own code for "stopped by SIGINT"; each node's rc is below
    assert time.monotonic() - began < 2000 * MS
    out = process.output()
    for name in ("buzzer", "iopin", "clock", "dashboard"):
        assert re.search(rf"{name}\.1 stopped \(rc=0\)", out), out
    assert "Traceback" not in out
    assert "SIGKILL" not in out


def test_a_peer_that_never_comes_is_given_up_after_wait(grid: Path):
    """--wait bounds how long a node waits for a peer: each tick then fails with one line, and the clock goes on."""
    clock = start(grid, "clock", "--tacks", "2", "--wait", "0.2")
    assert clock.wait() == 0
    clock.expect(
        r"^\[ clock \] waiting for iopin at ws://127\.0\.0\.1:\d+ \(connection refused\); retrying in 0\.05 s$"
    )
    clock.expect(
        r"^\[ clock \] error: tick 1: cannot reach iopin at ws://127\.0\.0\.1:\d+: connection refused \(gave up after 0\.\d s\)$"
    )
    clock.expect(r"^\[ clock \] error: tick 2: cannot reach iopin")
    assert "Traceback" not in clock.output()


def test_echo_prints_what_the_circuit_publishes(tmp_path: Path):
    """./arduino.py echo PATTERN --count N against a running circuit: N lines `key payload`, then exit 0."""
    clock_port, iopin_port, buzzer_port = free_ports(3)
    grid = write_grid(
        tmp_path,
        GRID.format(tacks=0, iopin=iopin_port, buzzer=buzzer_port).replace(
            "clock:  {sketch: clock,", f"clock:  {{sketch: clock, port: {clock_port},"
        ),
    )
    serving(grid, "buzzer", "iopin")  # at once: neither needs the other
    start(grid, "clock").expect("serving on")
    done = run_arduino("--grid", grid, "echo", "iopin/pin", "--count", "6")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 6 and all(re.fullmatch(r"iopin/pin [01]", line) for line in lines), lines
    done = run_arduino("--grid", grid, "echo", "+/sound", "clock/tick", "-n", "4", "--json")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(events) == 4
    assert {e["key"] for e in events} <= {"buzzer/sound", "clock/tick"}
    assert all(e["data"] in ("buzz buzz buzz", "...") for e in events if e["key"] == "buzzer/sound")


def test_echo_without_count_runs_until_ctrl_c(tmp_path: Path):
    """echo '#' prints as messages arrive, even through a pipe, and Ctrl-C ends it with exit 0."""
    clock_port, iopin_port, buzzer_port = free_ports(3)
    grid = write_grid(
        tmp_path,
        GRID.format(tacks=0, iopin=iopin_port, buzzer=buzzer_port).replace(
            "clock:  {sketch: clock,", f"clock:  {{sketch: clock, port: {clock_port},"
        ),
    )
    serving(grid, "buzzer", "iopin")  # at once: neither needs the other
    start(grid, "clock").expect("serving on")
    echo = start(grid, "echo", "#")
    echo.expect(r"^clock/tick \d+$")
    echo.expect(r"^iopin/pin [01]$")
    echo.expect(r"^buzzer/sound (buzz buzz buzz|\.\.\.)$")
    stop_within_a_second(echo, signal.SIGINT)


def test_echo_refuses_bad_patterns(grid: Path):
    """An invalid pattern is a usage error (exit 2); a pattern nothing can match is exit 1."""
    done = run_arduino("--grid", grid, "echo", "a/#/b")
    assert done.returncode == 2
    assert "invalid pattern 'a/#/b': '#' may only stand last" in done.stderr
    done = run_arduino("--grid", grid, "echo", "ghost/pin")
    assert (done.returncode, done.stderr) == (
        1,
        f"Error: nothing to listen to: no node of {grid} with a port matches 'ghost/pin'\n",
    )


def test_a_token_grid_end_to_end_never_prints_the_token(tmp_path: Path):
    """auth: the node needs MESH_TOKEN to start; send needs it too; not even debug output shows it."""
    (port,) = free_ports(1)
    grid = write_grid(
        tmp_path, f"auth: {{token_env: MESH_TOKEN}}\nnodes:\n  buzzer: {{sketch: buzzer, port: {port}}}\n"
    )
    done = run_arduino("--grid", grid, "buzzer", env=environment(MESH_TOKEN=None))
    assert (done.returncode, done.stderr) == (
        1,
        f"Error: {grid}: the grid requires a token, but the environment variable MESH_TOKEN is not set\n",
    )
    secret = "open-sesame-7d1f"
    buzzer = arduino("--grid", grid, "--log-level", "debug", "buzzer", env=environment(MESH_TOKEN=secret))
    buzzer.expect("serving on")
    done = run_arduino(
        "--grid", grid, "--log-level", "debug", "send", "buzzer", "1", env=environment(MESH_TOKEN=secret)
    )
    assert (done.returncode, done.stdout) == (0, "buzz buzz buzz\n")
    assert secret not in done.stderr
    done = run_arduino("--grid", grid, "send", "buzzer", "1", env=environment(MESH_TOKEN="wrong"))
    assert (done.returncode, done.stderr) == (
        1,
        f"Error: cannot reach buzzer at ws://127.0.0.1:{port}: refused the handshake: wrong or missing token\n",
    )
    buzzer.expect("refused a connection from 127.0.0.1:\\d+: wrong or missing token")
    stop_within_a_second(buzzer)
    assert secret not in buzzer.output()


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Path]:
    """A grid whose iopin streams to a buzzer that greets and never acks: a tick stays in the iopin's loop()."""
    buzzer = SilentPeer("buzzer")
    (port,) = free_ports(1)
    yield write_grid(
        tmp_path,
        f"nodes:\n  iopin: {{sketch: iopin, port: {port}}}\n  buzzer: {{sketch: buzzer, port: {buzzer.port}}}\n"
        "wires:\n  - iopin -> buzzer\n",
    )
    buzzer.close()


def hold_a_tick(grid: Path, *args: str) -> Process:
    """Start the held grid's iopin with ``args`` and leave one tick in its loop()."""
    from websockets.sync.client import connect

    iopin = start(grid, "iopin", *args)
    port = iopin.expect(r"serving on 127\.0\.0\.1:(\d+)")[1]
    with connect(f"ws://127.0.0.1:{port}/") as ws:
        ws.send("tick")
        iopin.expect("link to buzzer up")
    return iopin


def test_a_second_signal_exits_at_once(held: Path):
    """SIGTERM starts a clean stop; a second signal while loop() still runs exits at once."""
    iopin = hold_a_tick(held, "--grace", str(DEADLINE))  # the stop would wait longer than the test
    iopin.signal(signal.SIGTERM)
    iopin.expect(r"stopping \(SIGTERM\)")
    began = time.monotonic()
    iopin.signal(signal.SIGTERM)
    assert iopin.wait() == 1
    assert time.monotonic() - began < 1000 * MS
    assert "SIGTERM again: exiting now" in iopin.output()
    assert "Traceback" not in iopin.output()


def test_the_grace_bounds_a_stop(held: Path):
    """A loop() that does not finish within --grace is cancelled: the node says so and exits 0."""
    iopin = hold_a_tick(held, "--grace", str(100 * MS))
    iopin.signal(signal.SIGTERM)
    assert iopin.wait() == 0
    iopin.expect(r"stopping with 1 message\(s\) still in loop\(\)")
    assert "Traceback" not in iopin.output()


def test_load_1000_concurrent_clients(grid: Path):
    """1,000 plain clients connected at once to one node: every one is answered; the node's memory is reported."""
    import asyncio

    from websockets.asyncio.client import connect

    buzzer = start(grid, "buzzer")
    port = int(buzzer.expect(r"serving on 127\.0\.0\.1:(\d+)")[1])

    def rss_kib() -> int:
        status = Path(f"/proc/{buzzer.popen.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status)[1])

    before = rss_kib()

    async def load() -> list[str]:
        gate = asyncio.Semaphore(200)  # the listen backlog is finite: open them 200 at a time
        sockets = []

        async def open_one():
            async with gate:
                sockets.append(await connect(f"ws://127.0.0.1:{port}/", open_timeout=DEADLINE))

        await asyncio.gather(*(open_one() for _ in range(1000)))
        try:

            async def ask(ws, i: int) -> str:
                await ws.send(str(i % 2))
                return await asyncio.wait_for(ws.recv(), DEADLINE)

            answers = await asyncio.gather(*(ask(ws, i) for i, ws in enumerate(sockets)))
            peak = rss_kib()
            print(
                f"\n1,000 connections: buzzer RSS {before} KiB before, {peak} KiB with all open "
                f"({(peak - before) / 1000:.1f} KiB per connection)"
            )
            return answers
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))

    answers = asyncio.run(load())
    assert answers == ["..." if i % 2 == 0 else "buzz buzz buzz" for i in range(1000)]
    stop_within_a_second(buzzer)


SLEEPY = '''\
"""A node with an Arduino habit: loop() waits with time.sleep(), as delay() does, until a file appears."""

import asyncio
import sys
import time
from pathlib import Path

from mesh.grid import read_grid
from nodes import FactoryLoop, reactive
from nodes.runtime import Node
from cli.logs import configure_logging
from nodes.runner import run_until_signalled

RELEASE = Path(sys.argv[2])


class Sleepy(FactoryLoop):
    @reactive
    async def loop(self, channel: str, message: str) -> str:
        deadline = time.monotonic() + {deadline}
        while message != "hello" and not RELEASE.exists() and time.monotonic() < deadline:
            time.sleep({nap})
        return "awake"


configure_logging("info")
asyncio.run(run_until_signalled(Node(Sleepy, "sleepy", read_grid(sys.argv[1]))))
'''

SLEEPY_GRID = """\
nodes:
  clock:  {{sketch: clock, params: {{tacks: 1, delay: 0.05}}}}
  sleepy: {{sketch: buzzer, port: {sleepy}}}
  ghost:  {{sketch: buzzer, port: {ghost}}}
wires:
  - clock -> sleepy
"""


def test_a_node_whose_loop_blocks_says_so_and_so_do_send_status_and_its_peers(tmp_path: Path):
    """The issue's sleepy node: named in its own log while it blocks; status says 'not answering', not 'down';
    send says it is busy; the wired clock says it stopped answering pings; released, it serves again."""
    sleepy_port, ghost_port = free_ports(2)
    grid = write_grid(tmp_path, SLEEPY_GRID.format(sleepy=sleepy_port, ghost=ghost_port))
    script = tmp_path / "sleepy_node.py"
    script.write_text(SLEEPY.format(deadline=60_000 * MS, nap=10 * MS))
    release = tmp_path / "release"
    sleepy = Process([sys.executable, script, grid, release], env=environment(PYTHONPATH=str(ROOT)), cwd=tmp_path)
    sleepy.expect(r"^\[ sleepy \] serving on ")
    clock = start(grid, "clock")  # its tick 1 sends sleepy's loop() to sleep

    sleepy.expect(
        rf"^\[ sleepy \] warning: loop\(\) has been blocking the event loop for 0\.\d s so far, "
        rf"at sleepy_node\.py:\d+: time\.sleep\({10 * MS:g}\): use 'await asyncio\.sleep\(\)', not 'time\.sleep\(\)'$"
    )
    done = run_arduino("--grid", grid, "status", "--timeout", str(500 * MS))
    assert done.returncode == 1, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
    assert rows["sleepy"].split()[1:3] == ["not", "answering"]
    assert rows["sleepy"].endswith(f"busy? it took the connection but no handshake came within {500 * MS:g} s")
    assert rows["ghost"].split()[1] == "down" and rows["ghost"].endswith("connection refused")

    done = run_arduino("--grid", grid, "send", "sleepy", "hello", "--timeout", str(500 * MS))
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"Error: sleepy at ws://127.0.0.1:{sleepy_port} is not answering: "
        f"it took the connection but no handshake came within {500 * MS:g} s; is it busy? "
        "sketch code that blocks (time.sleep(), a busy loop, blocking I/O) stalls the whole node"
    )
    done = run_arduino("--grid", grid, "send", "ghost", "hello")
    assert done.stderr == f"Error: cannot reach ghost at ws://127.0.0.1:{ghost_port}: connection refused\n"

    clock.expect(
        r"\[ clock \] warning: link to sleepy down \(it sent nothing for 3 s, not even a pong: busy or frozen\?\)"
    )
    release.touch()
    sleepy.expect(r"^\[ sleepy \] warning: loop\(\) blocked the event loop for \d+\.\d\d s in all$")
    clock.expect(r"\[ clock \] sleepy acked tick 1: awake")
    done = run_arduino("--grid", grid, "send", "sleepy", "hello")
    assert (done.returncode, done.stdout) == (0, "awake\n")


# ---- issue 11, small fixes: a required sketch parameter is the grid's business, not the command line's

LED = """\
from nodes import FactoryLoop, reactive


class Led(FactoryLoop):
    def setup(self, color: str) -> None:
        self.color = color

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        return self.color
"""

LED_GRID = """\
nodes:
  clock: {{sketch: clock, params: {{tacks: 1}}}}

  led:
    sketch: led
    port: 0{params}
wires:
  - clock -> led
"""


def with_led_sketch(folder: Path) -> list[str]:
    """``./arduino.py``, with the user's sketch ``led`` in ``sketches/`` beside the grid in ``folder``."""
    (folder / "sketches").mkdir(exist_ok=True)
    (folder / "sketches" / "led.py").write_text(LED)
    return [sys.executable, str(ROOT / "arduino.py")]


def test_a_missing_required_param_is_blamed_on_the_grid_line(tmp_path: Path):
    """setup(color) with no color in the grid nor on the command line: the node's line in grid.yaml, and the fix."""
    grid = write_grid(tmp_path, LED_GRID.format(params=""))
    command = with_led_sketch(tmp_path)
    expected = f"{grid}:4: node 'led' needs param 'color' (setup() has no default); add it to params: or pass --color"
    done = run([*command, "--grid", grid, "led"])
    assert (done.returncode, done.stderr) == (1, f"Error: {expected}\n")
    done = run([*command, "--grid", grid, "check"])
    assert done.returncode == 1
    assert f"{grid}:4: error: node 'led' needs param 'color'" in done.stdout


@pytest.mark.parametrize(
    ("params", "args", "color"),
    [
        pytest.param("\n    params: {color: green}", [], "green", id="from-the-grid"),
        pytest.param("", ["--color", "blue"], "blue", id="from-the-command-line"),
        pytest.param("\n    params: {color: green}", ["--param", "color=red"], "red", id="command-line-wins"),
    ],
)
def test_a_required_param_given_by_the_grid_or_the_command_line_runs(
    tmp_path: Path, params: str, args: list[str], color: str
):
    """A required param from the grid alone (not repeated on the command line), or from the command line alone."""
    grid = write_grid(tmp_path, LED_GRID.format(params=params))
    command = with_led_sketch(tmp_path)
    led = Process([*command, "--grid", grid, "led", *args])
    port = led.expect(r"^\[ led \] serving on 127\.0\.0\.1:(\d+)$")[1]
    grid.write_text(grid.read_text().replace("port: 0", f"port: {port}"))
    done = run([*command, "--grid", grid, "send", "led", "1"])
    assert (done.returncode, done.stdout) == (0, f"{color}\n"), done.stderr
    stop_within_a_second(led)


CHECKED = "nodes:\n  a: {sketch: clock}\n  b: {sketch: buzzer, port: 1}\nwires:\n  - a -> b\n"


def test_check_compares_the_grid_with_the_procfile_beside_it(tmp_path: Path):
    """check --grid lab/grid.yaml reads lab/Procfile, not the working folder's; a Procfile for grid.yaml says nothing of other.yaml."""
    (tmp_path / "Procfile").write_text("x: exec ./arduino.py x\n")  # the working folder's: runs its grid.yaml
    lab = tmp_path / "lab"
    lab.mkdir()
    write_grid(lab, CHECKED)
    (lab / "Procfile").write_text("a: exec ./arduino.py a\n")
    (tmp_path / "other.yaml").write_text(CHECKED)
    done = run_arduino("--grid", "lab/grid.yaml", "check", cwd=tmp_path)
    assert (done.returncode, done.stdout.splitlines()) == (
        0,
        [
            "lab/grid.yaml:3: warning: the Procfile does not start node 'b'",
            "lab/grid.yaml: 2 nodes, 1 wire: 1 warning",
        ],
    ), done.stderr
    done = run_arduino("--grid", "other.yaml", "check", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "other.yaml: 2 nodes, 1 wire: no problems found\n"), done.stderr
    done = run_arduino("--grid", "other.yaml", "check", "--procfile", "Procfile", cwd=tmp_path)
    assert (done.returncode, done.stdout.splitlines()) == (
        0,
        [
            "Procfile: warning: starts no node of other.yaml; its lines run another grid",
            "other.yaml: 2 nodes, 1 wire: 1 warning",
        ],
    ), done.stderr
    done = run_arduino("--grid", "other.yaml", "check", cwd=tmp_path, env=environment(ARDUINO_GRID="other.yaml"))
    assert done.stdout.splitlines()[0] == (
        "Procfile:1: error: starts node 'x', which other.yaml does not have; known nodes: a, b"
    ), done.stderr


def test_an_indentation_mistake_is_one_plain_line_at_the_line_to_fix(tmp_path: Path):
    """A node key one space too far: exit 1, one sentence naming that line, no YAML parser jargon."""
    write_grid(tmp_path, "nodes:\n  clock: {sketch: clock}\n   iopin: {sketch: iopin, port: 1}\n")
    done = run_arduino("--grid", "grid.yaml", "clock", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        1,
        "Error: grid.yaml:3: bad indentation: 'iopin' is indented 3 spaces, more than 'clock' on line 2 "
        "(2 spaces), which has its value already; line it up with 'clock'\n",
    )
