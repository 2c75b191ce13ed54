"""nodes.firmware.board: a board over serial, met here by real firmware bytes: the firmware on simavr behind a pty.

``python -m nodes.firmware.pty lamp.ino`` runs in a process of its own (as a board is another
machine), and the node opens its pty with serialx as it would open /dev/ttyACM0. No fake of
the MCU nor of the serial port.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from mesh.errors import RemoteError
from mesh.grid import build_grid
from nodes.testing import circuit
from tests.helpers import DEADLINE, Process, until
from tests.nodes.firmware.common import sketch

pytestmark = pytest.mark.e2e


def board(name: str) -> tuple[Process, str]:
    """The firmware ``name`` on simavr behind a pty, in a process of its own: it and its pty's path."""
    process = Process([sys.executable, "-m", "nodes.firmware.pty", sketch(name)])
    return process, process.expect(r"^PTY (\S+)$", DEADLINE * 3)[1]


def grid_of(port: str, **params: object):
    return build_grid(
        {"lamp": {"sketch": "lamp.ino", "port": 0, "serial": port, "baud": 115200, "params": params}},
        path=str(sketch("lamp").parent / "grid.yaml"),
    )


async def test_the_same_topics_and_acks_as_the_simulated_node(firmware_cache, caplog):
    caplog.set_level(logging.INFO, "mesh")
    process, port = board("lamp")
    heard: list[tuple[str, str]] = []
    # The board's boot wait, as a user's node has it: the lamp's "lamp ready" either came before the node opened the
    # port (gone, and the wait runs its 2 s) or comes after (it ends the wait, and answers nothing). With no wait, a
    # boot line read just after the first write was taken for that write's answer.
    async with circuit(grid_of(port)) as running:
        node = running.nodes["lamp"]
        await node.subscribe("lamp/#", lambda key, data: heard.append((key, data)))
        await until(lambda: "up" in (node.status()["report"]["state"],), "the board's port open")
        assert [await running.send("lamp", text) for text in ("1", "0", "hey")] == ["lamp on", "lamp off", "lamp? hey"]
        await until(lambda: ("lamp/serial", "lamp? hey") in heard, "the lines published")
        heard = [line for line in heard if line != ("lamp/serial", "lamp ready")]  # if it came after the port opened
        assert heard == [("lamp/serial", "lamp on"), ("lamp/serial", "lamp off"), ("lamp/serial", "lamp? hey")]
        report = node.status()["report"]
        assert (report["firmware"], report["board"], report["baud"]) == ("lamp.ino", port, 115200)
        assert report["lines"] in (3, 4)  # the boot line, if it came after the port opened
        with pytest.raises(
            RemoteError, match=r"the board at .* has its own pins: over serial, only its Serial is ours"
        ):
            await running.send("lamp", "1", channel="pin/2")

        process.signal()  # unplugged (SIGTERM: its pty closes as a board's port goes when pulled out)
        assert process.wait() == 0
        await until(lambda: "waiting for the board" in caplog.text, "the board's absence said")
        assert f"the board at {port} down (" in caplog.text
        assert f"waiting for the board at {port} (No such file or directory); retrying in 0.05 s" in caplog.text
        with pytest.raises(RemoteError, match=f"the board at {port} is not connected"):
            await running.send("lamp", "1")


async def test_a_board_waits_its_boot_before_the_first_write(firmware_cache):
    process, port = board("buzzer")  # which prints nothing as it starts (the lamp's first line would end the wait)
    async with circuit(grid_of(port, boot=0.3)) as running:
        loop = asyncio.get_running_loop()
        await until(lambda: running.nodes["lamp"].status()["report"]["state"] == "up", "the board's port open")
        assert await running.send("lamp", "1") == "buzz buzz buzz"
        device = running.sketch("lamp").device
        assert loop.time() - device.opened >= 0.3  # opening resets an Uno: what is written first waits its boot
    process.signal()
    assert process.wait() == 0
