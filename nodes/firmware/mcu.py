"""One simulated ATmega328P running one firmware, cycle by cycle, for as many cycles as the host grants.

::

    mcu = MCU(firmware.elf)
    mcu.on_line = lambda cycle, text: print(cycle, text)
    mcu.run_for(0.1)               # setup(): Serial.begin, pinMode; "lamp ready" printed
    mcu.uart_write(b"1\\n")
    mcu.run_for(0.01)              # "lamp on"; on_pin(PinChange(cycle, 13, 1))

The MCU runs only inside :meth:`MCU.run_until` (and the ``run_*`` around it), and never more
than it was asked (give or take one instruction): a firmware looping forever with interrupts
off costs exactly the cycles granted, and a crash is a state (:class:`MCUState`), not a dead
host. What it does reaches the listeners after each slice, in order, with its exact cycle:
``on_pin(PinChange)``, ``on_pwm(PwmChange)``, ``on_line(cycle, text)`` (a line printed on
``Serial``, without its ``\\r\\n``; :data:`MAX_LINE` bytes at most, a longer one comes in pieces),
``on_reset(cycle)`` (the watchdog's), and, for whoever wants every byte printed, ``on_byte(cycle, byte)``. Hardware PWM is reported as :class:`PwmChange` from the
timer registers, and its edges (timer0's pins 5 and 6) are not reported as pin changes while
it is on (see :mod:`nodes.firmware.pins`).

Not thread-safe: one thread at a time per MCU (the helper's calls release the GIL, so
several MCUs can run in parallel threads). :mod:`nodes.firmware.clocked` runs one against
an event loop's clock.
"""

from __future__ import annotations

import ctypes
import enum
import os
import re
import struct
from collections.abc import Callable
from pathlib import Path

from mesh.errors import FirmwareError

from .pins import PWM_REGISTERS, PinChange, PwmChange, arduino_pin, pin_number, port_bit, pwm_from_registers
from .simavr import helper

__all__ = ["MAX_LINE", "MCU", "MCUState"]

#: The longest line handed on, in bytes: what a firmware prints past it without a line end comes as more lines.
MAX_LINE = 1024
#: Cycles run per call into the helper at most: events are drained (and listeners called) between calls.
CHUNK = 160_000

_EVENT = struct.Struct("<QIBBxx")  # simhelper.c's sim_event_t
_UART_TX, _PIN, _REGISTER, _RESET = 1, 2, 3, 4
_DRAIN = 4096
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # simavr colours its errors


class MCUState(enum.IntEnum):
    """simavr's core states (``cpu_*`` in sim_avr.h)."""

    LIMBO = 0
    STOPPED = 1
    RUNNING = 2
    SLEEPING = 3  # a SLEEP instruction: waiting for an interrupt (cycles still pass)
    STEP = 4
    STEP_DONE = 5
    DONE = 6  # slept with interrupts off: it can never wake again
    CRASHED = 7  # a jump past the end of flash, a bad data address

    @property
    def alive(self) -> bool:
        """Whether more cycles can change anything (running or sleeping)."""
        return self in (MCUState.RUNNING, MCUState.SLEEPING)


class MCU:
    """One simulated microcontroller (an ATmega328P at 16 MHz: the Uno's) running the firmware at ``elf``."""

    def __init__(self, elf: str | os.PathLike[str], mcu: str = "atmega328p", freq: int = 16_000_000) -> None:
        self._lib = helper()
        self.elf = Path(elf)
        self.name = mcu
        self.freq = freq
        if not self.elf.is_file():  # simavr would perror() it on stderr
            raise FirmwareError([f"{self.elf}: no such file"])
        error = ctypes.create_string_buffer(1024)
        handle = self._lib.sim_new(mcu.encode(), freq, os.fsencode(self.elf), error, len(error))
        if not handle:
            raise FirmwareError([f"{self.elf}: {error.value.decode(errors='replace')}"])
        self._sim: int | None = handle
        self._buffer = ctypes.create_string_buffer(_EVENT.size * _DRAIN)
        self._registers: dict[int, int] = {}
        for address in PWM_REGISTERS:
            if self._lib.sim_watch_register(handle, address) != 0:
                raise FirmwareError([f"{self.elf}: cannot watch the timer register {address:#x}"])
            self._registers[address] = self._lib.sim_peek(handle, address)
        self._pwm: dict[int, tuple[float, float]] = {}  # pins with hardware PWM on
        self._level: dict[int, int] = {}  # every output's last level, hidden PWM edges included
        self._partial = bytearray()
        self.on_pin: Callable[[PinChange], None] | None = None
        self.on_pwm: Callable[[PwmChange], None] | None = None
        self.on_line: Callable[[int, str], None] | None = None
        self.on_reset: Callable[[int], None] | None = None
        #: Every byte printed, as it comes ``(cycle, byte)``: for whoever wants more than lines (a pty).
        self.on_byte: Callable[[int, int], None] | None = None
        #: Bytes the firmware printed, all told.
        self.printed = 0

    # -- life --------------------------------------------------------------------------------

    def close(self) -> None:
        """Free the simulator (a second call does nothing)."""
        if self._sim is not None:
            self._lib.sim_free(self._sim)
            self._sim = None

    def __enter__(self) -> MCU:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_sim", None) is not None:
            self.close()

    @property
    def _h(self) -> int:
        if self._sim is None:
            raise ValueError("the MCU is closed")
        return self._sim

    # -- time ----------------------------------------------------------------------------------

    @property
    def cycle(self) -> int:
        """Cycles run since reset, sleeping ones included."""
        return int(self._lib.sim_cycle(self._h))

    @property
    def state(self) -> MCUState:
        return MCUState(self._lib.sim_state(self._h))

    def run_until(self, cycle: int) -> MCUState:
        """Run until :attr:`cycle` is at least ``cycle`` (past it by one instruction at most), or the MCU stops.

        Sleeps are clipped at the target, never on a timer's own cycle, so the outcome does not
        depend on how a run is cut into calls.
        """
        lib, h = self._lib, self._h
        state = MCUState(lib.sim_state(h))
        while state.alive:
            now = lib.sim_cycle(h)
            if now >= cycle:
                break
            state = MCUState(lib.sim_run_until(h, min(cycle, now + CHUNK)))
            self._drain()
        self._drain()
        return state

    def run_for(self, seconds: float) -> MCUState:
        """Run ``seconds`` more of the MCU's time."""
        return self.run_until(self.cycle + int(seconds * self.freq))

    # -- Serial (UART0) ---------------------------------------------------------------------------

    def uart_write(self, data: bytes) -> None:
        """Bytes for the firmware's ``Serial``: they reach it at its baud rate, none dropped, however many.

        They wait here and enter simavr's 64-byte receive buffer as it has room (its XON/XOFF);
        bytes sent before ``Serial.begin()`` wait for it.
        """
        self._lib.sim_uart_write(self._h, data, len(data))
        self._drain()

    @property
    def uart_pending(self) -> int:
        """Bytes written that the firmware's receive buffer has not taken yet."""
        return int(self._lib.sim_uart_pending(self._h))

    # -- pins ------------------------------------------------------------------------------------

    def set_pin(self, pin: int | str, level: int | None) -> None:
        """Drive input ``pin`` from outside: 1 (to 5 V), 0 (to ground), or None (let go: the pin then
        reads its pull-up, 1 with ``INPUT_PULLUP``, else 0). Pin change interrupts fire as on hardware."""
        port, bit = port_bit(pin_number(pin))
        self._lib.sim_set_pin(self._h, port, bit, -1 if level is None else int(bool(level)))
        self._drain()

    def pin_mode(self, pin: int | str) -> str:
        """``output``, ``input_pullup`` or ``input``, as the firmware set it."""
        port, bit = port_bit(pin_number(pin))
        state = int(self._lib.sim_port_state(self._h, port))
        if (state >> 8) >> bit & 1:
            return "output"
        return "input_pullup" if state >> bit & 1 else "input"

    def pin_level(self, pin: int | str) -> int:
        """The pin's level as ``digitalRead`` would read it."""
        port, bit = port_bit(pin_number(pin))
        state = int(self._lib.sim_port_state(self._h, port))
        output = (state >> 8) >> bit & 1
        return ((state if output else state >> 16) >> bit) & 1

    def pwm(self, pin: int | str) -> tuple[float, float] | None:
        """(frequency in Hz, duty 0..1) of the hardware PWM on ``pin`` now, or None."""
        return pwm_from_registers(self.peek, pin_number(pin), self.freq)

    # -- looking inside ----------------------------------------------------------------------------

    def peek(self, address: int) -> int:
        """A byte of data memory (registers, I/O, SRAM)."""
        return int(self._lib.sim_peek(self._h, address))

    @property
    def pc(self) -> int:
        """The program counter, in bytes."""
        return int(self._lib.sim_pc(self._h))

    @property
    def log(self) -> str:
        """simavr's recent warnings and errors for this MCU (why it crashed, say)."""
        raw: bytes | None = self._lib.sim_log(self._h)
        return _ANSI.sub("", (raw or b"").decode(errors="replace")).strip()

    # -- events ----------------------------------------------------------------------------------

    def _drain(self) -> None:
        lib, h, buffer = self._lib, self._h, self._buffer
        while n := lib.sim_drain(h, buffer, _DRAIN):
            for cycle, value, kind, where in _EVENT.iter_unpack(memoryview(buffer)[: n * _EVENT.size]):
                if kind == _UART_TX:
                    self._byte(cycle, value)
                elif kind == _PIN:
                    self._pin(cycle, where >> 3, where & 7, value)
                elif kind == _REGISTER:
                    self._registers[value >> 8] = value & 0xFF
                    self._update_pwm(cycle)
                elif kind == _RESET:
                    self._reset(cycle)

    def _byte(self, cycle: int, value: int) -> None:
        self.printed += 1
        if self.on_byte is not None:
            self.on_byte(cycle, value)
        if value != 0x0A:
            self._partial.append(value)
            if len(self._partial) < MAX_LINE:
                return
        text = bytes(self._partial).rstrip(b"\r").decode("utf-8", errors="replace")
        self._partial.clear()
        if self.on_line is not None:
            self.on_line(cycle, text)

    def _pin(self, cycle: int, port: int, bit: int, value: int) -> None:
        pin = arduino_pin(port, bit)
        if pin is None:
            return
        self._level[pin] = value
        if pin not in self._pwm and self.on_pin is not None:
            self.on_pin(PinChange(cycle, pin, value))

    def _reset(self, cycle: int) -> None:
        """A reset cleared the timer registers without writing them: PWM is off everywhere, every pin an input."""
        for address in self._registers:
            self._registers[address] = 0
        self._level.clear()
        self._update_pwm(cycle)
        if self.on_reset is not None:
            self.on_reset(cycle)

    def _update_pwm(self, cycle: int) -> None:
        """After a timer register changed: each PWM pin whose (frequency, duty) changed, as a PwmChange."""
        for pin in (3, 5, 6, 9, 10, 11):
            now = pwm_from_registers(self._registers.__getitem__, pin, self.freq)
            if now == self._pwm.get(pin):
                continue
            if now is None:
                del self._pwm[pin]
            else:
                self._pwm[pin] = now
            if self.on_pwm is not None:
                self.on_pwm(PwmChange(cycle, pin, *(now or (0.0, 0.0))))
            if now is None and pin in self._level and self.on_pin is not None:
                self.on_pin(PinChange(cycle, pin, self._level[pin]))  # a digital pin again: where the edges left it
