"""Faults with real processes (no honcho: it stops everything when one process exits).

2,000 numbered ticks go through clock -> iopin -> buzzer while a node is killed,
frozen, or cut off. The receivers run with --log-level debug, which logs a line
for each message handed to loop(): `handled message ID from PEER ...`, so the
test can count what reached loop(), in which order, and what repeated.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.helpers import MS, Process, Proxy, arduino, free_ports, write_grid

pytestmark = pytest.mark.e2e

TICKS = 2000
BITS = 3

GRID = """\
nodes:
  clock:  {{sketch: clock, durable: {durable}, outbox: 5000, params: {{tacks: {ticks}, delay: 0.001}}}}
  iopin:  {{sketch: iopin, port: {iopin}, params: {{chance: 0.5, sequence: {bits}, seed: 1}}}}
  buzzer: {{sketch: buzzer, port: {buzzer}}}
wires:
  - clock -> iopin
  - iopin -> buzzer
"""


@pytest.fixture
def circuit(tmp_path: Path):
    """Start nodes of a fresh grid on free ports; every process is killed at the end (conftest)."""

    class Circuit:
        iopin_port, buzzer_port = free_ports(2)
        grid = write_grid(
            tmp_path, GRID.format(durable="false", ticks=TICKS, bits=BITS, iopin=iopin_port, buzzer=buzzer_port)
        )
        state = tmp_path / "state"

        def start(self, name: str, *args: str, debug: bool = False, wait: bool = True) -> Process:
            level = ["--log-level", "debug"] if debug else []
            process = arduino("--grid", self.grid, "--state-dir", self.state, *level, name, *args)
            if wait and name != "clock":
                process.expect("serving on")
            return process

    yield Circuit()


def acked_ticks(clock: Process) -> list[int]:
    return [int(n) for n in re.findall(r"\] iopin acked tick (\d+): acknowledged", clock.output())]


def handled(process: Process, peer: str) -> list[int]:
    """The ids of the messages from ``peer`` that reached loop(), in order."""
    return [int(n) for n in re.findall(rf"\] handled message (\d+) from {peer} ", process.output())]


def finish(clock: Process) -> None:
    assert clock.wait(timeout=60_000 * MS) == 0, clock.output()[-3000:]


def stopped(process: Process) -> Process:
    """Stop a node (SIGTERM) so that all it logged can be read."""
    process.signal(signal.SIGTERM)
    assert process.wait() == 0
    return process


def test_a_killed_iopin_loses_no_tick(circuit):
    """(a) iopin killed with SIGKILL mid-run and restarted: every one of the 2,000 ticks is acked at the clock."""
    circuit.start("buzzer")
    iopin = circuit.start("iopin")
    clock = circuit.start("clock")
    clock.expect(r"\] iopin acked tick 500: ")
    iopin.popen.kill()
    iopin.wait()
    circuit.start("iopin")
    finish(clock)
    acked = acked_ticks(clock)
    assert sorted(acked) == list(range(1, TICKS + 1))  # none lost, none acked twice
    print(f"\n(a) iopin killed at tick ~500: {TICKS} ticks acked, 0 lost")


def test_a_killed_buzzer_misses_nothing_in_order(circuit):
    """(b) buzzer killed and restarted: every bit iopin streamed reaches a buzzer loop(), in order; only in-flight ones repeat."""
    first = circuit.start("buzzer", debug=True)
    circuit.start("iopin")
    clock = circuit.start("clock")
    first.expect(r"\] handled message 1500 from iopin ")
    first.popen.kill()
    first.wait()
    second = circuit.start("buzzer", debug=True)
    finish(clock)
    assert sorted(acked_ticks(clock)) == list(range(1, TICKS + 1))
    before, after = handled(first, "iopin"), handled(stopped(second), "iopin")
    assert before == list(range(1, len(before) + 1))
    assert after == list(range(after[0], TICKS * BITS + 1))
    assert after[0] <= before[-1] + 1  # nothing skipped at the restart
    repeats = before[-1] - after[0] + 1
    assert 0 <= repeats <= 1000  # only what was in flight at the kill (at most the outbox)
    print(f"\n(b) buzzer killed after message {before[-1]}: 0 lost, {repeats} repeated")


def test_a_frozen_buzzer_and_a_cut_wire_deliver_exactly_once(circuit):
    """(c) buzzer frozen 3 s (SIGSTOP), then the wire cut and restored: each bit reaches loop() exactly once, in order."""
    proxy = Proxy(circuit.buzzer_port)
    try:
        buzzer = arduino("--grid", circuit.grid, "--log-level", "debug", "buzzer", "-p", str(circuit.buzzer_port))
        buzzer.expect("serving on")
        circuit_processes = [buzzer]
        try:
            # iopin reaches the buzzer through the proxy: the grid's address for it is the proxy's.
            grid_text = circuit.grid.read_text().replace(f"port: {circuit.buzzer_port}}}", f"port: {proxy.port}}}")
            circuit.grid.write_text(grid_text)
            iopin = arduino("--grid", circuit.grid, "--log-level", "debug", "iopin")
            circuit_processes.append(iopin)
            iopin.expect("serving on")
            clock = circuit.start("clock")
            circuit_processes.append(clock)
            buzzer.expect(r"\] handled message 600 from iopin ")
            buzzer.signal(signal.SIGSTOP)
            frozen = time.monotonic()
            iopin.expect(r"\] warning: link to buzzer down")
            noticed = time.monotonic() - frozen
            remaining = 3000 * MS - (time.monotonic() - frozen)
            if remaining > 0:
                time.sleep(remaining)  # the fault itself lasts 3 s; this is not a wait for a server
            buzzer.signal(signal.SIGCONT)
            buzzer.expect(r"\] handled message 3600 from iopin ")
            proxy.cut()
            iopin.expect(r"\] warning: link to buzzer down")
            finish(clock)
            assert sorted(acked_ticks(clock)) == list(range(1, TICKS + 1))
            ids = handled(stopped(buzzer), "iopin")
            assert ids == list(range(1, TICKS * BITS + 1))  # exactly once, in order
            assert proxy.connections >= 3  # first, after the freeze, after the cut
            print(
                f"\n(c) frozen buzzer noticed in {noticed:.1f} s; 0 lost, 0 repeated over {proxy.connections} connections"
            )
        finally:
            for process in circuit_processes:
                process.kill()
    finally:
        proxy.close()


def test_a_killed_durable_sender_loses_nothing_it_accepted(circuit, tmp_path: Path):
    """(d) with durable: true, the clock killed with SIGKILL and restarted re-sends every tick it had accepted."""
    circuit.grid.write_text(circuit.grid.read_text().replace("durable: false", "durable: true"))
    first = circuit.start("clock")  # nobody listens yet: ticks pile up in the durable outbox
    accepted = int(first.expect(r"^\[ clock \] tick (\d+)$", timeout=20_000 * MS)[1])
    while accepted < 500:
        accepted = int(first.expect(r"^\[ clock \] tick (\d+)$")[1])
    first.popen.kill()
    first.wait()
    second = circuit.start("clock", "--tacks", "1")
    resumed = int(second.expect(r"resuming (\d+) unacked message\(s\) to iopin from .*clock\.outbox\.sqlite")[1])
    assert resumed >= accepted
    circuit.start("buzzer")
    iopin = circuit.start("iopin", debug=True)
    finish(second)
    ids = handled(stopped(iopin), "clock")
    assert ids[: resumed + 1] == list(range(1, resumed + 2))  # the resumed ticks, then the new run's one
    data = dict(re.findall(r"\] handled message (\d+) from clock on '': '(tick \d+)'", iopin.output()))
    assert all(data[str(n)] == f"tick {n}" for n in range(1, accepted + 1))
    with sqlite3.connect(circuit.state / "clock.outbox.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
    print(f"\n(d) durable clock killed after accepting {accepted} ticks: {resumed} resumed, 0 lost")
