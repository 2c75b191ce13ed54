"""nodes.firmware.pty: the firmware behind a pseudo-terminal, as a serial tool meets it (its command line)."""

from __future__ import annotations

import os
import sys
import termios
import tty

import pytest

from tests.helpers import DEADLINE, Process, run
from tests.nodes.firmware.common import OWN, sketch

pytestmark = pytest.mark.e2e


def test_what_is_written_to_the_pty_reaches_the_firmware_and_what_it_prints_comes_back(tmp_path, firmware_cache):
    link = tmp_path / "lamp-serial"
    process = Process([sys.executable, "-m", "nodes.firmware.pty", sketch("lamp"), "--link", link])
    path = process.expect(r"^PTY (\S+)$", DEADLINE * 3)[1]
    assert os.path.realpath(link) == path
    fd = os.open(link, os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd, termios.TCSANOW)
        os.write(fd, b"1\n")
        seen = b""
        while b"lamp on\r\n" not in seen:
            seen += os.read(fd, 100)
        assert seen.startswith(b"lamp ready\r\n")  # every byte it printed, as printed
    finally:
        os.close(fd)
    process.signal()
    assert process.wait() == 0
    assert not link.exists()  # its link goes with it


def test_a_sketch_that_is_missing_or_does_not_build_is_one_line(tmp_path, firmware_cache):
    missing = run([sys.executable, "-m", "nodes.firmware.pty", tmp_path / "nope.ino"])
    assert (missing.returncode, missing.stderr) == (2, f"error: no such file: {tmp_path / 'nope.ino'}\n")
    broken = run([sys.executable, "-m", "nodes.firmware.pty", OWN / "broken.ino"], timeout=DEADLINE * 3)
    assert broken.returncode == 1
    assert broken.stderr == f"{OWN / 'broken.ino'}:3:32: error: 'levle' was not declared in this scope\n"
