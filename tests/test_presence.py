"""Presence end to end: real nodes as processes, ``echo '+/$state'`` as the subscriber, SIGKILL and SIGTERM."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from mesh.constants import LOST_AFTER, PING_INTERVAL, PING_TIMEOUT
from tests.helpers import MS, arduino, shipped_grid_on_free_ports

pytestmark = pytest.mark.e2e


def test_a_killed_node_is_offline_for_its_subscribers_within_the_keepalive_bound(tmp_path: Path) -> None:
    """echo '+/$state' hears each node online (retained); SIGKILL the buzzer: 'buzzer/$state offline' within
    the keepalive bound; restarted, online again; SIGTERM the iopin: its own clean 'offline', once."""
    grid = shipped_grid_on_free_ports(tmp_path)
    nodes = {name: arduino("--grid", grid, name) for name in ("buzzer", "iopin")}
    for node in nodes.values():
        node.expect("serving on")
    echo = arduino("--grid", grid, "echo", "+/$state")
    echo.expect(r"^buzzer/\$state online$")
    echo.expect(r"^iopin/\$state online$", anywhere=True)
    killed = time.monotonic()
    nodes["buzzer"].signal(signal.SIGKILL)
    echo.expect(r"^buzzer/\$state offline$")
    assert time.monotonic() - killed < (PING_INTERVAL + PING_TIMEOUT + LOST_AFTER) * 1000 * MS
    nodes["buzzer"] = arduino("--grid", grid, "buzzer")
    echo.expect(r"^buzzer/\$state online$")
    nodes["iopin"].signal(signal.SIGTERM)
    assert nodes["iopin"].wait() == 0
    echo.expect(r"^iopin/\$state offline$")
    nodes["iopin"] = arduino("--grid", grid, "iopin")
    echo.expect(r"^iopin/\$state online$")
    echo.signal(signal.SIGINT)
    assert echo.wait() == 0
    states = [line for line in echo.output().splitlines() if "/$state " in line]
    assert states.count("iopin/$state offline") == 1  # the node's own word; the link adds none of its own
    assert states.count("buzzer/$state offline") == 1


def test_a_frozen_node_is_offline_for_its_subscribers_and_online_again_when_it_thaws(tmp_path: Path) -> None:
    """SIGSTOP the buzzer: its port still takes connections but nothing answers, so only the keepalive can
    tell; echo hears 'buzzer/$state offline' (about PING_INTERVAL + PING_TIMEOUT + LOST_AFTER, 5 s).
    SIGCONT: the link is back and the buzzer's retained 'online' arrives again."""
    grid = shipped_grid_on_free_ports(tmp_path)
    buzzer = arduino("--grid", grid, "buzzer")
    buzzer.expect("serving on")
    echo = arduino("--grid", grid, "echo", "buzzer/$state")
    echo.expect(r"^buzzer/\$state online$")
    buzzer.signal(signal.SIGSTOP)
    try:
        echo.expect(r"^buzzer/\$state offline$")
    finally:
        buzzer.signal(signal.SIGCONT)
    echo.expect(r"^buzzer/\$state online$")
    echo.signal(signal.SIGINT)
    assert echo.wait() == 0
    states = [line for line in echo.output().splitlines() if "/$state " in line]
    assert states == ["buzzer/$state online", "buzzer/$state offline", "buzzer/$state online"]
