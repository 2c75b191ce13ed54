"""Arduino firmware in the circuit: an ``.ino`` as a node, on a simulated ATmega328P or a real board.

``sketch: lamp.ino`` in a grid makes a node whose sketch is :class:`Firmware` (see
:mod:`nodes.firmware.sketch` for how its ``Serial`` and pins meet the mesh). The parts, one job each:

- :mod:`~nodes.firmware.toolchain`: what the machine has (the AVR toolchain, simavr), and the
  user's cache where builds and the simavr helper are kept;
- :mod:`~nodes.firmware.ino` (``.ino`` to ``.cpp``, gcc's errors as the sketch's) and
  :mod:`~nodes.firmware.build` (the compiler, cached by content hash);
- :mod:`~nodes.firmware.simavr` (our C helper, ``simhelper.c``, compiled once and loaded with
  ctypes), :mod:`~nodes.firmware.mcu` (one simulated MCU), :mod:`~nodes.firmware.pins` (the
  Uno's pins, PWM from the timer registers);
- :mod:`~nodes.firmware.clocked`: the MCU on the event loop's clock, live or virtual;
- :mod:`~nodes.firmware.board`: a real board over USB serial;
- :mod:`~nodes.firmware.pty`: a simulated firmware behind a pseudo-terminal, for serial tools.

docs/firmware.md says how it works, what simavr does not model, and the way to a real board.
"""

from __future__ import annotations

from .build import build
from .clocked import ClockedMCU
from .mcu import MCU, MCUState
from .sketch import Firmware
from .toolchain import cache_dir

__all__ = ["MCU", "ClockedMCU", "Firmware", "MCUState", "build", "cache_dir"]
