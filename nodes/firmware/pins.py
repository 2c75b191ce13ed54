"""The Uno's pins as Arduino numbers them, and what a pin's changes amount to: plain functions and data, no I/O.

Arduino pin numbers throughout: D0-D7 are the ATmega328P's PD0-PD7, D8-D13 are PB0-PB5 (13 is
the LED), A0-A5 (14-19) are PC0-PC5. PB6/PB7 (the crystal) and PC6 (RESET) have no number.

- :class:`PinChange`: an output pin's level changed (or a pin became an output: its first level);
- :class:`PwmChange`: a pin's hardware PWM (``analogWrite``) started, changed or stopped, worked
  out from the timer's registers (:func:`pwm_from_registers`): simavr 1.6 toggles the pin only in
  fast PWM (timer0: pins 5 and 6), and not at all in the phase-correct mode Arduino uses on pins
  3, 9, 10 and 11;
- :func:`square_wave`: the frequency and duty of a run of edges (``tone()``, which toggles its pin
  from timer2's interrupt: real edges).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

__all__ = [
    "PWM_REGISTERS",
    "PinChange",
    "PwmChange",
    "SquareWave",
    "arduino_pin",
    "pin_name",
    "pin_number",
    "port_bit",
    "pwm_from_registers",
    "square_wave",
]

#: Each port of the helper (0 = B, 1 = C, 2 = D): its first Arduino number, and how many of its bits have one.
_PORT_BASE = {0: 8, 1: 14, 2: 0}
_PORT_BITS = {0: 6, 1: 6, 2: 8}


@dataclasses.dataclass(frozen=True, slots=True)
class PinChange:
    """An output pin's level changed (or a pin became an output: its first level)."""

    cycle: int
    pin: int  # Arduino number: 0-13, 14-19 for A0-A5
    value: int  # 0 or 1

    @property
    def name(self) -> str:
        return pin_name(self.pin)


@dataclasses.dataclass(frozen=True, slots=True)
class SquareWave:
    """What a run of edges on one pin amounts to: PWM (analogWrite) or tone()."""

    frequency: float  # Hz
    duty: float  # fraction of each period spent high, 0..1
    periods: int  # complete periods measured


def square_wave(changes: list[PinChange], pin: int, freq: int = 16_000_000) -> SquareWave | None:
    """Frequency and duty cycle of ``pin`` from its rising edges in ``changes`` (None if fewer
    than two rising edges). PWM and tone() reach the host as every edge; this is how a node can
    turn them back into one number each, e.g. per slice of its own time."""
    edges = [c for c in changes if c.pin == pin]
    rising = [i for i in range(1, len(edges)) if edges[i].value == 1 and edges[i - 1].value == 0]
    if len(rising) < 2:
        return None
    first, last = rising[0], rising[-1]
    periods = len(rising) - 1
    span = edges[last].cycle - edges[first].cycle
    high = sum(edges[i + 1].cycle - edges[i].cycle for i in range(first, last) if edges[i].value == 1)
    return SquareWave(frequency=periods * freq / span, duty=high / span, periods=periods)


@dataclasses.dataclass(frozen=True, slots=True)
class PwmChange:
    """A pin's hardware PWM (analogWrite) started, changed or stopped (``frequency == 0``).

    Derived from the timer's registers at the cycle they were written, not from pin edges:
    simavr 1.6 drives the pin only in fast PWM (timer0: pins 5, 6); Arduino's phase-correct PWM
    on pins 3, 9, 10, 11 shows no edge at all there."""

    cycle: int
    pin: int
    frequency: float  # Hz; 0.0: PWM off, the pin is a plain digital output again
    duty: float  # 0..1, fraction of the period high


# ATmega328P timer registers (data addresses) and the PWM pins they drive.
_TCCR0A, _TCCR0B, _OCR0A, _OCR0B = 0x44, 0x45, 0x47, 0x48
_TCCR1A, _TCCR1B, _ICR1L, _ICR1H, _OCR1AL, _OCR1AH, _OCR1BL, _OCR1BH = 0x80, 0x81, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8B
_TCCR2A, _TCCR2B, _OCR2A, _OCR2B = 0xB0, 0xB1, 0xB3, 0xB4
PWM_REGISTERS = (
    _TCCR0A,
    _TCCR0B,
    _OCR0A,
    _OCR0B,
    _TCCR1A,
    _TCCR1B,
    _ICR1L,
    _ICR1H,
    _OCR1AL,
    _OCR1AH,
    _OCR1BL,
    _OCR1BH,
    _TCCR2A,
    _TCCR2B,
    _OCR2A,
    _OCR2B,
)
_PWM_PINS = {6: (0, "A"), 5: (0, "B"), 9: (1, "A"), 10: (1, "B"), 11: (2, "A"), 3: (2, "B")}
_PRESCALERS = {
    0: {1: 1, 2: 8, 3: 64, 4: 256, 5: 1024},
    1: {1: 1, 2: 8, 3: 64, 4: 256, 5: 1024},
    2: {1: 1, 2: 8, 3: 32, 4: 64, 5: 128, 6: 256, 7: 1024},
}


def pwm_from_registers(reg: Callable[[int], int], pin: int, f_cpu: int = 16_000_000) -> tuple[float, float] | None:
    """(frequency Hz, duty 0..1) of the hardware PWM on ``pin`` given the timer registers
    (``reg(address) -> byte``), or None when the pin's output compare is off (COM = 0), the
    timer is stopped, or the mode is not PWM (normal, CTC). The datasheet's formulas:
    fast PWM f = F_CPU / (N (TOP + 1)), duty (OCR + 1) / (TOP + 1); phase-correct
    f = F_CPU / (2 N TOP), duty OCR / TOP; inverting mode (COM = 3) is 1 - duty."""
    if pin not in _PWM_PINS:
        return None
    timer, channel = _PWM_PINS[pin]
    if timer == 1:
        a, b = reg(_TCCR1A), reg(_TCCR1B)
        wgm = (a & 3) | ((b >> 3) & 3) << 2
        ocra = reg(_OCR1AL) | reg(_OCR1AH) << 8
        ocr = ocra if channel == "A" else reg(_OCR1BL) | reg(_OCR1BH) << 8
        icr = reg(_ICR1L) | reg(_ICR1H) << 8
        fast_tops = {5: 0xFF, 6: 0x1FF, 7: 0x3FF, 14: icr, 15: ocra}
        phase_tops = {1: 0xFF, 2: 0x1FF, 3: 0x3FF, 8: icr, 9: ocra, 10: icr, 11: ocra}
    else:
        tccra, tccrb, ocra_addr, ocrb_addr = (
            (_TCCR0A, _TCCR0B, _OCR0A, _OCR0B) if timer == 0 else (_TCCR2A, _TCCR2B, _OCR2A, _OCR2B)
        )
        a, b = reg(tccra), reg(tccrb)
        wgm = (a & 3) | ((b >> 3) & 1) << 2
        ocra = reg(ocra_addr)
        ocr = ocra if channel == "A" else reg(ocrb_addr)
        fast_tops = {3: 0xFF, 7: ocra}
        phase_tops = {1: 0xFF, 5: ocra}
    com = (a >> (6 if channel == "A" else 4)) & 3
    prescaler = _PRESCALERS[timer].get(b & 7)
    if com < 2 or prescaler is None:  # COM 1 in PWM modes: disconnected (or a toggle on OCnA only)
        return None
    if wgm in fast_tops:
        top = fast_tops[wgm]
        frequency = f_cpu / (prescaler * (top + 1))
        duty = min(1.0, (ocr + 1) / (top + 1))
    elif wgm in phase_tops:
        top = phase_tops[wgm]
        if top == 0:
            return None
        frequency = f_cpu / (2 * prescaler * top)
        duty = min(1.0, ocr / top)
    else:
        return None
    if com == 3:
        duty = 1.0 - duty
    return frequency, duty


def pin_number(pin: int | str) -> int:
    """An Arduino pin number from ``13``, ``"13"``, ``"D13"`` or ``"A0"`` (14); ValueError for anything else."""
    if isinstance(pin, int) and not isinstance(pin, bool):
        number = pin
    elif isinstance(pin, str):
        text = pin.strip().upper()
        if text[:1] in ("A", "D") and text[1:].isdigit() and len(text) <= 3:
            number = int(text[1:]) + (14 if text[0] == "A" else 0)
        elif text.isdigit() and len(text) <= 2:
            number = int(text)
        else:
            raise ValueError(f"not a pin: {pin!r} (D0-D13, A0-A5, or 0-19)")
    else:
        raise ValueError(f"not a pin: {pin!r} (D0-D13, A0-A5, or 0-19)")
    if not 0 <= number <= 19:
        raise ValueError(f"not an Uno pin: {pin!r} (D0-D13, A0-A5, or 0-19)")
    return number


def pin_name(pin: int) -> str:
    """``"D13"`` for 13, ``"A0"`` for 14."""
    return f"A{pin - 14}" if pin >= 14 else f"D{pin}"


def port_bit(pin: int) -> tuple[int, int]:
    """(port index, bit) of an Arduino pin number, the port as the helper numbers it (0 = B, 1 = C, 2 = D)."""
    if pin <= 7:
        return 2, pin
    if pin <= 13:
        return 0, pin - 8
    return 1, pin - 14


def arduino_pin(port: int, bit: int) -> int | None:
    """The Arduino number of a port's bit, or None for a bit without one (the crystal, RESET)."""
    if port not in _PORT_BITS or not 0 <= bit < _PORT_BITS[port]:
        return None
    return _PORT_BASE[port] + bit
