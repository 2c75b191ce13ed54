"""nodes.firmware.pins: the Uno's pins as Arduino numbers them, and PWM from the timer registers."""

from __future__ import annotations

import pytest

from nodes.firmware.pins import PinChange, arduino_pin, pin_name, pin_number, port_bit, pwm_from_registers, square_wave


@pytest.mark.parametrize(
    ("given", "number"), [(13, 13), ("13", 13), ("D13", 13), ("d2", 2), ("A0", 14), ("a5", 19), (" 7 ", 7), (0, 0)]
)
def test_pin_numbers(given, number):
    assert pin_number(given) == number


@pytest.mark.parametrize("given", [20, -1, "A6", "D20", "x", "", "1.5", True, None, "123"])
def test_not_pins(given):
    with pytest.raises(ValueError, match="pin"):
        pin_number(given)


def test_every_pin_has_its_port_bit_and_back():
    """D0-D7 are PD0-7, D8-D13 PB0-5, A0-A5 PC0-5; the crystal and RESET have no number."""
    assert [port_bit(pin) for pin in (0, 7, 8, 13, 14, 19)] == [(2, 0), (2, 7), (0, 0), (0, 5), (1, 0), (1, 5)]
    assert all(arduino_pin(*port_bit(pin)) == pin for pin in range(20))
    assert [arduino_pin(0, 6), arduino_pin(0, 7), arduino_pin(1, 6), arduino_pin(3, 0)] == [None] * 4
    assert [pin_name(13), pin_name(14), PinChange(0, 19, 1).name] == ["D13", "A0", "A5"]


def _registers(**values: int):
    addresses = {"TCCR0A": 0x44, "TCCR0B": 0x45, "OCR0B": 0x48, "TCCR1A": 0x80, "TCCR1B": 0x81, "OCR1AL": 0x88}
    table = {addresses[name]: value for name, value in values.items()}
    return lambda address: table.get(address, 0)


@pytest.mark.parametrize(
    ("registers", "pin", "expected"),
    [
        # analogWrite(5, 64) on timer0: fast PWM (WGM 3), COM0B = 2, prescaler 64
        pytest.param(_registers(TCCR0A=0b00100011, TCCR0B=3, OCR0B=64), 5, (976.5625, 65 / 256), id="fast-pin-5"),
        # analogWrite(9, 64) on timer1: 8-bit phase-correct (WGM 1), COM1A = 2, prescaler 64
        pytest.param(
            _registers(TCCR1A=0b10000001, TCCR1B=3, OCR1AL=64), 9, (16e6 / (2 * 64 * 255), 64 / 255), id="phase-pin-9"
        ),
        pytest.param(
            _registers(TCCR1A=0b11000001, TCCR1B=3, OCR1AL=64), 9, (16e6 / (2 * 64 * 255), 1 - 64 / 255), id="inverted"
        ),
        pytest.param(_registers(TCCR0A=0b00000011, TCCR0B=3, OCR0B=64), 5, None, id="output-compare-off"),
        pytest.param(_registers(TCCR0A=0b00100011, TCCR0B=0, OCR0B=64), 5, None, id="timer-stopped"),
        pytest.param(_registers(TCCR0A=0b00100000, TCCR0B=3), 5, None, id="normal-mode"),
        pytest.param(_registers(), 13, None, id="no-pwm-pin"),
    ],
)
def test_pwm_from_the_timer_registers(registers, pin, expected):
    found = pwm_from_registers(registers, pin)
    assert found == expected if expected is None else found == pytest.approx(expected)


def test_a_square_wave_from_its_edges():
    """tone(8, 440): edges every 18,182 cycles; frequency and duty from the rising edges."""
    edges = [PinChange(i * 18_182, 8, (i + 1) % 2) for i in range(10)]
    wave = square_wave(edges, 8)
    assert wave is not None and wave.frequency == pytest.approx(440, abs=0.1) and wave.duty == pytest.approx(0.5)
    assert square_wave(edges[:2], 8) is None and square_wave(edges, 9) is None
