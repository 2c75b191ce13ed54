"""nodes.firmware.toolchain: the user's cache, and one line naming the Debian packages for what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.errors import FirmwareError
from nodes.firmware import toolchain


def test_the_cache_is_the_users(monkeypatch, tmp_path):
    """$ARDUINO_MESH_CACHE, else $XDG_CACHE_HOME/arduino-mesh, else ~/.cache/arduino-mesh."""
    monkeypatch.setenv("ARDUINO_MESH_CACHE", str(tmp_path / "mine"))
    assert toolchain.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("ARDUINO_MESH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert toolchain.cache_dir() == tmp_path / "xdg" / "arduino-mesh"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert toolchain.cache_dir() == tmp_path / "home" / ".cache" / "arduino-mesh"


def test_a_missing_toolchain_is_one_line_naming_the_packages(monkeypatch, tmp_path):
    monkeypatch.setattr(toolchain.shutil, "which", lambda name: None)
    with pytest.raises(FirmwareError) as caught:
        toolchain.Toolchain.find.__wrapped__(tmp_path)  # (not the process's cached one)
    assert str(caught.value) == (
        f"AVR toolchain missing (avr-gcc, avr-g++, avr-gcc-ar, avr-objcopy, avr-size, the Arduino core in {tmp_path}): "
        "apt-get install gcc-avr avr-libc binutils-avr arduino-core-avr"
    )


def test_missing_simavr_is_one_line_naming_the_packages(monkeypatch, tmp_path):
    monkeypatch.setattr(toolchain, "SIMAVR_INCLUDE", tmp_path / "nowhere")
    monkeypatch.setattr(toolchain.Path, "glob", lambda self, pattern: iter(()))
    monkeypatch.setattr(toolchain.Path, "exists", lambda self: False)
    with pytest.raises(FirmwareError) as caught:
        toolchain.find_simavr.__wrapped__()
    assert str(caught.value) == (
        f"simavr missing ({Path(tmp_path / 'nowhere' / 'sim_avr.h')}, libsimavr.so): apt-get install libsimavr-dev gcc"
    )
