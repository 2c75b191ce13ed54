"""The CLI over TLS: a grid with tls:, real ./arduino.py processes, certificates made per test with trustme."""

from __future__ import annotations

import datetime
import signal
from pathlib import Path

import pytest
import trustme

from tests.certs import TLS_YAML, write_certs
from tests.helpers import MS, arduino, free_ports, run_arduino, write_grid

pytestmark = pytest.mark.e2e


def circuit_text(clock: int, iopin: int, buzzer: int) -> str:
    return (
        TLS_YAML
        + "nodes:\n"
        + f"  clock: {{sketch: clock, port: {clock}, params: {{tacks: 0, delay: {50 * MS}}}}}\n"
        + f"  iopin: {{sketch: iopin, port: {iopin}, params: {{chance: 1.0, sequence: 1}}}}\n"
        + f"  buzzer: {{sketch: buzzer, port: {buzzer}}}\n"
        + "wires:\n  - clock -> iopin\n  - iopin -> buzzer\n"
    )


def test_send_status_and_echo_over_tls(tmp_path: Path):
    """`up` serves wss://; send, status and echo verify it against the grid's CA and work as over ws://."""
    ports = free_ports(3)
    write_certs(tmp_path)
    grid = write_grid(tmp_path, circuit_text(*ports))
    up = arduino("--grid", grid, "up")
    up.expect(r"clock\s+\| link to iopin up \(wss://127\.0\.0\.1:")
    up.expect(r"iopin\s+\| link to buzzer up \(wss://127\.0\.0\.1:")
    done = run_arduino("--grid", grid, "send", "buzzer", "1")
    assert (done.returncode, done.stdout, done.stderr) == (0, "buzz buzz buzz\n", "")
    done = run_arduino("--grid", grid, "status")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "iopin:up" in done.stdout and "buzzer:up" in done.stdout
    done = run_arduino("--grid", grid, "echo", "buzzer/sound", "--count", "2")
    assert (done.returncode, done.stdout) == (0, "buzzer/sound buzz buzz buzz\n" * 2), done.stderr
    up.signal(signal.SIGINT)
    assert up.wait() == 0


def test_a_wrong_ca_an_expired_certificate_and_a_missing_file_are_one_line_each(tmp_path: Path):
    """send exits 1 with one line for a node the grid's CA did not sign, or whose certificate expired; no traceback."""
    (port,) = free_ports(1)
    ca = trustme.CA()
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    node = tmp_path / "node"
    write_certs(node, ca=ca)
    grid = write_grid(node, TLS_YAML + f"nodes:\n  buzzer: {{sketch: buzzer, port: {port}}}\n")
    buzzer = arduino("--grid", grid, "buzzer")
    buzzer.expect("serving on")

    laptop = tmp_path / "laptop"  # a machine that runs no node: the grid and the CA, no certificate of its own
    laptop.mkdir()
    (laptop / "ca.pem").write_bytes((node / "ca.pem").read_bytes())
    commands = write_grid(laptop, TLS_YAML + f"nodes:\n  buzzer: {{sketch: buzzer, port: {port}}}\n")
    done = run_arduino("--grid", commands, "send", "buzzer", "1")
    assert (done.returncode, done.stdout, done.stderr) == (0, "buzz buzz buzz\n", "")
    done = run_arduino("--grid", commands, "buzzer")  # but a node needs its certificate
    assert done.returncode == 1
    assert "tls.cert: node.pem cannot be read: no such file or directory" in done.stderr

    other = tmp_path / "other"
    write_certs(other)  # another CA
    client = write_grid(other, TLS_YAML + f"nodes:\n  buzzer: {{sketch: buzzer, port: {port}}}\n")
    done = run_arduino("--grid", client, "send", "buzzer", "1")
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        f"Error: cannot reach buzzer at wss://127.0.0.1:{port}: "
        "certificate verify failed: not signed by the grid's CA (tls.ca: ca.pem)\n",
    )
    done = run_arduino("--grid", client, "status")
    assert done.returncode == 1
    assert "not signed by the grid's CA (tls.ca: ca.pem)" in done.stdout
    echo = arduino("--grid", client, "echo", "#")
    echo.expect(
        f"buzzer is down \\(certificate verify failed: not signed by the grid's CA \\(tls\\.ca: ca\\.pem\\) "
        f"at wss://127\\.0\\.0\\.1:{port}\\); listening for it to come back"
    )
    echo.signal(signal.SIGINT)
    assert echo.wait() == 0
    assert "Traceback" not in echo.output()
    buzzer.signal(signal.SIGTERM)
    assert buzzer.wait() == 0

    write_certs(node, ca=ca, not_after=past)  # the node restarts with an expired certificate
    done = run_arduino("--grid", grid, "check")
    assert done.returncode == 1
    assert done.stdout.startswith(
        f"{grid}:1: error: tls.cert: node.pem: certificate verify failed: certificate has expired: "
        "every client of the grid would refuse it\n"
    )
    buzzer = arduino("--grid", grid, "buzzer")
    buzzer.expect(
        r"tls\.cert: node\.pem: certificate verify failed: certificate has expired: every client will refuse this node"
    )
    buzzer.expect("serving on")
    done = run_arduino("--grid", grid, "send", "buzzer", "1")
    assert (done.returncode, done.stderr) == (
        1,
        f"Error: cannot reach buzzer at wss://127.0.0.1:{port}: certificate verify failed: certificate has expired\n",
    )
    buzzer.signal(signal.SIGTERM)
    assert buzzer.wait() == 0

    (node / "node.pem").unlink()
    for command in (["buzzer"], ["check"]):
        done = run_arduino("--grid", grid, *command)
        assert done.returncode == 1
        said = done.stdout + done.stderr  # check reports on stdout, as "FILE:LINE: error: ..."
        assert said.startswith(("Error: ", f"{grid}:1: error: ")), command
        assert said.endswith(
            f"{grid}:1: tls.cert: node.pem cannot be read: no such file or directory ({node / 'node.pem'})\n"
            if command != ["check"]
            else f"tls.cert: node.pem cannot be read: no such file or directory ({node / 'node.pem'})\n"
        ), said
        assert "Traceback" not in said
