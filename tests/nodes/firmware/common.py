"""What the firmware tests share: where their sketches are, and an MCU that records what it does."""

from __future__ import annotations

from pathlib import Path

from nodes.firmware.mcu import MCU
from nodes.firmware.pins import PinChange, PwmChange
from tests.helpers import ROOT

SHIPPED = ROOT / "firmware"
OWN = Path(__file__).resolve().parent / "sketches"
#: Cycles in a millisecond at 16 MHz.
MS = 16_000


def sketch(name: str) -> Path:
    """The .ino called ``name``: shipped, or the tests' own."""
    path = SHIPPED / f"{name}.ino"
    return path if path.exists() else OWN / f"{name}.ino"


class Recorded:
    """An MCU with everything it does recorded: lines, pin changes, PWM changes, resets, bytes printed."""

    def __init__(self, elf: Path) -> None:
        self.mcu = MCU(elf)
        self.lines: list[tuple[int, str]] = []
        self.pins: list[PinChange] = []
        self.pwm: list[PwmChange] = []
        self.resets: list[int] = []
        self.output = bytearray()
        self.mcu.on_line = lambda cycle, text: self.lines.append((cycle, text))
        self.mcu.on_pin = self.pins.append
        self.mcu.on_pwm = self.pwm.append
        self.mcu.on_reset = self.resets.append
        self.mcu.on_byte = lambda cycle, byte: self.output.append(byte)

    def texts(self) -> list[str]:
        """The lines printed since the last call."""
        texts = [text for _, text in self.lines]
        self.lines.clear()
        return texts

    def __enter__(self) -> Recorded:
        return self

    def __exit__(self, *exc: object) -> None:
        self.mcu.close()
