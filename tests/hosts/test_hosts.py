"""One grid across two hosts: Linux network namespaces joined by a veth pair, the cable pulled for 5 s.

Each namespace is a host with its own network stack; the only way between them is the
veth pair, as a cable between two machines. The nodes are real ``./arduino.py NODE``
processes started inside them (``ip netns exec``), from one grid.yaml that names each
node by its host's address, as docs/hosts.md tells a user to write it.

Needs root and ``ip netns`` (CI runs as root); skipped with the reason elsewhere.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.certs import TLS_YAML, write_certs
from tests.helpers import DEADLINE, MS, ROOT, Process, environment, run, write_grid
from tests.hosts.netns import Hosts, clean_leftovers, why_not

pytestmark = [pytest.mark.e2e, pytest.mark.hosts]

#: Ticks the clock sends: at DELAY apart, they run past the outage on both sides.
TICKS = 160
DELAY = 50 * MS
#: How long the cable stays out: past the links' keepalive (a ping every 1 s, 2 s to answer),
#: so both ends notice it, and past the reconnect backoff's 2 s cap.
OUTAGE = 5000 * MS
#: Bits the iopin streams per tick; with chance 1, every one is a 1 and sounds the buzzer.
BITS = 3

#: The lines a node logs for every message: left out of the story printed, counted instead.
TICK = re.compile(r"\] tick (\d+)$")
ROUTINE = re.compile(r"\] (tick \d+|iopin acked tick \d+: |toggling pin state: |signal \d: )")


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    """Two namespaces joined by a veth pair; deleted at teardown, pass or fail (and an earlier crashed run's too)."""
    reason = why_not()
    if reason is not None:
        pytest.skip(f"needs root and `ip netns`: {reason}")
    clean_leftovers()
    made = Hosts.make()
    try:
        yield made
    finally:
        made.close()


def grid_text(hosts: Hosts) -> str:
    return f"""\
# One circuit on two hosts: clock and iopin on host A, buzzer on host B.
auth: {{token_env: MESH_TOKEN}}
{TLS_YAML.strip()}
nodes:
  clock:  {{sketch: clock, host: {hosts.address_a}, port: 8764, params: {{tacks: {TICKS}, delay: {DELAY}}}}}
  iopin:  {{sketch: iopin, host: {hosts.address_a}, port: 8765, params: {{chance: 1, sequence: {BITS}}}}}
  buzzer: {{sketch: buzzer, host: {hosts.address_b}, port: 8766}}
wires:
  - clock -> iopin
  - iopin -> buzzer
"""


def story(nodes: dict[str, Process], marks: list[tuple[str, dict[str, int]]]) -> str:
    """What each node logged apart from its per-message lines, with the test's own steps where they fell."""
    out = []
    for name, process in nodes.items():
        process.output()
        steps = {index: [] for index in range(len(process.lines) + 1)}
        for what, at in marks:
            steps[at[name]].append(what)
        out.append(f"--- {name} ({len(process.lines)} lines; per-message lines left out)")
        for index in range(len(process.lines) + 1):
            out.extend(f"    ---- {what} ----" for what in steps[index])
            if index < len(process.lines) and not ROUTINE.search(process.lines[index]):
                out.append("    " + process.lines[index])
    return "\n".join(out)


def test_a_circuit_across_two_hosts_loses_no_tick_while_the_cable_is_out_for_5_s(hosts: Hosts, tmp_path: Path) -> None:
    """clock and iopin on host A, buzzer on host B, one grid, TLS and a token: 5 s without the cable lose no tick, run none twice.

    One certificate, signed by the grid's CA (trustme), names both hosts' addresses: every
    node serves wss:// and every link and ``status`` verifies it.

    The settings are the ones a user runs with: the default patience (``--wait`` 60 s, far
    past the outage) and no ``durable`` (no process dies here; durable matters when the
    sender itself is killed). Evidence: the clock's log has every tick acked once; the
    iopin drew ``[1, 1, 1]`` once per tick and the buzzer sounded once per bit; ``status``,
    run on host A and reaching both hosts, has the same counts and both links up again.
    """
    token = secrets.token_urlsafe(32)
    env = environment(MESH_TOKEN=token)
    write_certs(tmp_path, hosts=(hosts.address_a, hosts.address_b))
    grid = write_grid(tmp_path, grid_text(hosts))

    buzzer = hosts.arduino(hosts.b, "--grid", grid, "buzzer", env=env)
    buzzer.expect(rf"serving on {re.escape(hosts.address_b)}:8766")
    iopin = hosts.arduino(hosts.a, "--grid", grid, "iopin", env=env)
    iopin.expect(rf"serving on {re.escape(hosts.address_a)}:8765")
    clock = hosts.arduino(hosts.a, "--grid", grid, "clock", env=env)
    clock.expect(rf"link to iopin up \(wss://{re.escape(hosts.address_a)}:8765\)")
    clock.expect(r"iopin acked tick 3: acknowledged")  # the circuit runs across the cable
    iopin.expect(rf"link to buzzer up \(wss://{re.escape(hosts.address_b)}:8766\)")
    nodes = {"clock": clock, "iopin": iopin, "buzzer": buzzer}

    def mark() -> dict[str, int]:
        for process in nodes.values():
            process.output()
        return {name: len(process.lines) for name, process in nodes.items()}

    marks = [(f"cable out: ip link set {hosts.veth_a} down, for {OUTAGE:g} s", mark())]
    hosts.cut()
    time.sleep(OUTAGE)  # the outage itself, the scenario: not a wait for anything
    marks.append((f"cable back: ip link set {hosts.veth_a} up", mark()))
    hosts.mend()
    try:
        clock.expect(rf"{TICKS} ticks done", timeout=TICKS * DELAY + DEADLINE)
        marks.append(("every tick acked", mark()))
        status = hosts.run_arduino(hosts.a, "--grid", grid, "status", env=env)
        reports = json.loads(hosts.run_arduino(hosts.a, "--grid", grid, "status", "--json", env=env).stdout)
    finally:
        print(story(nodes, marks))
    print(f"$ ip netns exec {hosts.a} ./arduino.py status\n{status.stdout}")
    report = {r["node"]: r for r in reports}
    print(
        "re-sent after a reconnect, recognised and not run again: "
        + ", ".join(f"{name} {report[name]['duplicates']}" for name in nodes)
        + "; link connections: "
        + ", ".join(
            f"{name}->{peer} {link['connections']}" for name in nodes for peer, link in report[name]["links"].items()
        )
    )

    cut_at, mended_at = marks[0][1], marks[1][1]
    # Both ends of the cable noticed, and the links came back once it was mended.
    iopin_after = iopin.lines[cut_at["iopin"] :]
    down = next(i for i, line in enumerate(iopin_after) if "link to buzzer down" in line)
    assert any("link to buzzer up" in line for line in iopin_after[down:]), iopin.output()
    # The clock ticked on through the outage: those ticks are among the acked below.
    during = [int(m[1]) for line in clock.lines[cut_at["clock"] : mended_at["clock"]] if (m := TICK.search(line))]
    assert during, "the clock sent no tick while the cable was out"
    print(f"ticks sent while the cable was out: {during[0]} to {during[-1]}")

    acked = Counter(int(n) for n in re.findall(r"\] iopin acked tick (\d+): acknowledged$", clock.output(), re.M))
    assert sorted(acked) == list(range(1, TICKS + 1)), f"ticks not acked: {set(range(1, TICKS + 1)) - set(acked)}"
    assert max(acked.values()) == 1, f"acked twice: {[n for n, c in acked.items() if c > 1]}"
    assert iopin.output().count(f"toggling pin state: {[1] * BITS}") == TICKS
    assert buzzer.output().count("signal 1: buzz buzz buzz") == BITS * TICKS
    assert "signal 0" not in buzzer.output()
    assert not [name for name, process in nodes.items() if "Traceback" in process.output()]

    assert status.returncode == 0, status.stdout + status.stderr
    assert report["clock"]["links"]["iopin"]["acked"] == TICKS
    assert report["iopin"]["messages_in"] == TICKS
    assert report["iopin"]["links"]["buzzer"]["acked"] == BITS * TICKS
    assert report["iopin"]["links"]["buzzer"]["connections"] >= 2  # it reconnected
    assert report["buzzer"]["messages_in"] == BITS * TICKS  # loop() once per bit: none lost, none twice
    assert all(link["state"] == "up" and link["pending"] == 0 for r in reports for link in r["links"].values())


def openssl_recipe(addresses: list[str]) -> str:
    """docs/hosts.md's openssl commands (a CA, one certificate per host), for ``addresses`` instead of its three."""
    text = (ROOT / "docs" / "hosts.md").read_text()
    start = text.index("mkdir -p pki")
    recipe = text[start : text.index("```", start)]
    assert "192.168.1.10 192.168.1.11 192.168.1.12" in recipe and "192.168.1.*.pem" in recipe
    return recipe.replace("192.168.1.10 192.168.1.11 192.168.1.12", " ".join(addresses)).replace(
        "192.168.1.*.pem", " ".join(f"{address}.pem" for address in addresses)
    )


def test_the_openssl_recipe_of_docs_hosts_gives_each_host_its_own_certificate(hosts: Hosts, tmp_path: Path) -> None:
    """docs/hosts.md's openssl commands, run as written: each host its own certificate under one name, verified across the cable."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: apt-get install openssl")
    done = run(["sh", "-e", "-c", openssl_recipe([hosts.address_a, hosts.address_b])], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(": OK") == 2, done.stdout  # openssl verify -x509_strict
    grid = f"""\
auth: {{token_env: MESH_TOKEN}}
tls: {{cert: certs/host.pem, key: certs/host.key, ca: certs/ca.pem}}
nodes:
  iopin:  {{sketch: iopin, host: {hosts.address_a}, port: 8765, params: {{chance: 1}}}}
  buzzer: {{sketch: buzzer, host: {hosts.address_b}, port: 8766}}
wires:
  - iopin -> buzzer
"""
    # Two machines: each its own folder with the same grid.yaml, the CA, and its own certificate and key.
    for host, address in (("a", hosts.address_a), ("b", hosts.address_b)):
        (tmp_path / host / "certs").mkdir(parents=True)
        write_grid(tmp_path / host, grid)
        shutil.copy(tmp_path / "pki" / "ca.pem", tmp_path / host / "certs" / "ca.pem")
        shutil.copy(tmp_path / "pki" / f"{address}.pem", tmp_path / host / "certs" / "host.pem")
        shutil.copy(tmp_path / "pki" / f"{address}.key", tmp_path / host / "certs" / "host.key")
    env = environment(MESH_TOKEN=secrets.token_urlsafe(32))
    hosts.arduino(hosts.b, "--grid", tmp_path / "b" / "grid.yaml", "buzzer", env=env).expect("serving on")
    iopin = hosts.arduino(hosts.a, "--grid", tmp_path / "a" / "grid.yaml", "iopin", env=env)
    iopin.expect("serving on")

    sent = hosts.run_arduino(hosts.a, "--grid", tmp_path / "a" / "grid.yaml", "send", "iopin", "tick 1", env=env)
    assert (sent.returncode, sent.stdout) == (0, "acknowledged\n"), sent.stderr
    iopin.expect(rf"link to buzzer up \(wss://{re.escape(hosts.address_b)}:8766\)")
    status = hosts.run_arduino(hosts.b, "--grid", tmp_path / "b" / "grid.yaml", "status", env=env)
    assert status.returncode == 0, status.stdout + status.stderr
