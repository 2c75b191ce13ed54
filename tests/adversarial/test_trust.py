"""The attacks of issue 25 on trust and memory, each against a live node with the circuit running through it.

The same arena as tests/adversarial/test_attacks.py: a real ``tally`` process, a real ``clock``
streaming numbered ticks to it through a relay that cuts the wire, a legitimate client asking
for status throughout, and a hostile peer (``attacker.py``) at work. Each test asserts the
promises (every tick once, in order; the legitimate client's p99 under the liveness promise;
the tally's peak memory under its bound; no traceback) and what the attack was after.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.adversarial.test_attacks import ATTACKER, TICKS, Arena, check_promises, under_attack
from tests.helpers import MS, Process, Proxy, environment, run_arduino

pytestmark = [pytest.mark.adversarial, pytest.mark.e2e]


@pytest.fixture
def proxy():
    relay = Proxy(0)
    yield relay
    relay.close()


def test_frames_trickled_a_byte_at_a_time_hold_no_more_than_the_nodes_budget(tmp_path: Path, proxy: Proxy) -> None:
    """300 clients each holding all but the last bytes of a 1 MiB frame: cut, the oldest first, past the budget."""
    clock, probe, _, output = under_attack(Arena(tmp_path, proxy), "trickle")
    check_promises(clock, probe, output)


def test_frames_before_the_hello_is_proved_are_capped(tmp_path: Path, proxy: Proxy) -> None:
    """500 mesh clients that offer a nonce, then 1 MiB of a frame instead of their hello: each cut at 4 KiB."""
    clock, probe, _, output = under_attack(Arena(tmp_path, proxy, auth=True), "preauth", then="100 cut")
    check_promises(clock, probe, output)


def test_retained_values_are_shared_by_subscribers_that_come_and_go(tmp_path: Path, proxy: Proxy) -> None:
    """40 '#' subscribers that never read, again and again, to a node retaining 1,000 values of 16 KiB: one copy."""
    arena = Arena(tmp_path, proxy, retained=1000)
    clock, probe, _, output = under_attack(arena, "retained-churn", then="100 subscriptions")
    check_promises(clock, probe, output)


def test_a_handshake_relayed_to_another_node_opens_nothing(tmp_path: Path, proxy: Proxy) -> None:
    """A listener on the stopped ghost's port relays `send ghost` to the live tally: the tally refuses (the proof is
    the ghost's), handles nothing, and the sender says who answered; the circuit is untouched."""
    arena = Arena(tmp_path, proxy, auth=True, ghost=True)
    sent: list[subprocess.CompletedProcess[str]] = []

    def send_to_the_ghost() -> None:
        sent.append(run_arduino("--grid", arena.grid, "send", "ghost", "relayed", env=environment(**arena.env)))

    clock, probe, _, output = under_attack(
        arena, "relay", args=(str(arena.ghost_port),), then="relaying connection", meanwhile=send_to_the_ghost
    )
    check_promises(clock, probe, output)
    (done,) = sent
    assert done.returncode == 1 and "tally answers at ghost's address, not ghost" in done.stderr, done.stderr
    assert "got relayed" not in output
    assert "meant for ghost" in output  # the tally's one line


def test_a_squatter_cannot_publish_for_other_nodes(tmp_path: Path, proxy: Proxy) -> None:
    """The tally subscribes to ghost/#; a squatter on the ghost's port publishes the clock's ticks and the tally's
    own state: refused, never handed to loop(); the squatter's own key goes through."""
    arena = Arena(tmp_path, proxy, ghost=True, subscribe="ghost/#")
    clock, probe, _, output = under_attack(arena, "spoof", args=(str(arena.ghost_port),), then="published forged keys")
    check_promises(clock, probe, output)
    assert "got ghost's own" in output
    assert "got FORGED" not in output and "got offline" not in output
    assert "refused a publication on clock/tick from ghost" in output


def test_acks_hidden_in_a_refused_batch_stall_nothing(tmp_path: Path, proxy: Proxy) -> None:
    """The clock's peer answers its first ticks inside a batch past the limit: the clock reconnects, re-sends, and
    finishes long before its patience (60 s) would run out; every tick acked once."""
    arena = Arena(tmp_path, proxy)
    fake = Process([sys.executable, ATTACKER, "bloated-acks", arena.uri, str(arena.port)])
    try:
        fake.expect("^attacking$", timeout=30_000 * MS)
        began = time.monotonic()
        arena.run_clock()
        took = time.monotonic() - began
    finally:
        fake.kill()
    acked = [int(n) for n in re.findall(r"\] tally acked tick (\d+): ok", arena.clock.output())]
    assert sorted(acked) == list(range(1, TICKS + 1))
    assert "answered with a bloated batch" in fake.output()
    print(f"\nbloated acks: the clock finished in {took:.1f} s")
    assert took < 30, f"the clock took {took:.0f} s: a refused batch held its acks hostage"


def test_a_pathological_grid_edit_stalls_no_node(tmp_path: Path, proxy: Proxy) -> None:
    """Edits of the running grid file nested 50,000 deep, 10 MB long, and of 5,000 nodes (the last wrong), one
    after the other while the clock ticks: each read off the event loop, one line each, the running grid kept; the
    legitimate client's answers stay within the promise. Each edit waits for the tally's line about the one before
    (a watcher that looks now and then reads only the file's latest state)."""
    arena = Arena(tmp_path, proxy)
    grid = Path(arena.grid)
    good = grid.read_text()
    many = "".join(f"  n{i}: {{sketch: tally, port: 0}}\n" for i in range(4999)) + "  n4999: {sketch: tally, port: x}\n"
    edits = [  # each with the line that says the tally read it
        (
            good.replace("wires:", "  deep: {sketch: tally, params: {x: " + "[" * 50_000 + "]" * 50_000 + "}}\nwires:"),
            "nested deeper than 64 levels",
        ),
        (good + "#" + "x" * 10_000_000 + "\n", "is valid again; nothing to change"),  # 10 MB, valid
        (good.replace("wires:", many + "wires:"), "node 'n4999': 'port' must be a whole number"),
        (good, "is valid again; nothing to change"),
    ]
    failed: list[BaseException] = []

    def edit() -> None:
        try:
            for text, line in edits:
                grid.write_text(text)
                arena.tally.expect(re.escape(line))
        except BaseException as exc:  # said by the test, in its own thread
            failed.append(exc)

    def start() -> Callable[[], None]:
        writer = threading.Thread(target=edit, daemon=True)
        writer.start()
        return writer.join

    clock, probe, _, output = under_attack(arena, "http", meanwhile=start)
    assert not failed, failed
    check_promises(clock, probe, output)
    assert "Traceback" not in output


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-s"]))
