"""Firmware for the tests: the shipped sketches (firmware/) and the tests' own (sketches/), built by the real toolchain.

Builds go to the session's cache (tests/conftest.py: firmware_cache), so the suite compiles
the Arduino core once; ``firmware("lamp")`` is a cache hit after the first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from nodes.firmware.build import Firmware, build
from tests.nodes.firmware.common import sketch


@pytest.fixture(scope="session")
def firmware(firmware_cache: Path) -> Callable[[str], Firmware]:
    """``firmware("lamp")``: firmware/lamp.ino (or sketches/lamp.ino here) built."""

    def make(name: str) -> Firmware:
        return build(sketch(name))

    return make
