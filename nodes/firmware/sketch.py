"""``Firmware``: the sketch of a node whose ``sketch:`` is Arduino firmware (``lamp.ino``).

The node is like any other (a port, wires, subscriptions, ``status``); its behaviour is the firmware's:

- a message to the node (``send``, a wire, ``stream()``) is written to the firmware's ``Serial``
  with a newline, and the next line the firmware prints is its acknowledgement; within the
  node's ``timeout:``, or when the grid gives none, within :data:`ANSWER` seconds of the
  firmware's own time (a simulated MCU that lags behind a busy machine's clock is given its
  second); an error ack after it;
- every line the firmware prints is published as ``NODE/serial``;
- every pin it drives is published on change as ``NODE/pin/N`` (``0``/``1``, Arduino numbers:
  13 is the LED, retained: a subscriber that comes later gets each pin's level), and hardware
  PWM (``analogWrite``) as ``NODE/pwm/N``, its duty (0 to 1; ``0`` when it stops). ``tone()``
  toggles its pin from an interrupt: that is the pin toggling. A pin that changes more than
  :data:`EDGES` times in one slice is published once, at the slice's last level;
- a message on channel ``pin/N`` (``send lamp 1 --channel pin/2``) drives input pin N: ``1``,
  ``0``, or ``z`` to let it go (it then reads its pull-up); so does a publication the node
  hears (``subscribe:``) whose key ends in ``pin/N``; any other key it hears is written to
  ``Serial`` as a line, its data only, no answer awaited;
- ``status`` shows its MCU, clock, cycles run, the lag behind the clock and the pins (``@reports``).

Where the firmware runs:

- **simulated** (no ``serial:``): the ``.ino`` is built when the node is made (cached by
  content hash: :mod:`nodes.firmware.build`) and runs on a simulated ATmega328P at 16 MHz
  (:mod:`nodes.firmware.mcu`), in step with the event loop's clock (:mod:`nodes.firmware.clocked`):
  real speed live, lockstep in virtual time. Building when the node is made, not in
  ``setup()``, keeps a build out of the run's time: no virtual second passes, no warning of a
  blocked loop;
- **a real board** (``serial: /dev/ttyACM0``, ``baud:``): the same topics and acks over USB serial
  (:mod:`nodes.firmware.board`); its pins are its own (``pin/N`` is refused), and it cannot run
  in virtual time.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mesh.errors import FirmwareError, GridError, SketchError
from mesh.throttle import Throttle, escape

from ..factory import FactoryLoop
from ..reactive import every, hears, reactive, reports
from ..sketchbook import locate
from .board import BOOT, SerialBoard
from .build import Firmware as Built
from .build import build
from .clocked import ClockedMCU, is_virtual
from .mcu import MAX_LINE, MCU
from .pins import PinChange, PwmChange, pin_name
from .simavr import helper

if TYPE_CHECKING:
    from ..node import Node

__all__ = ["ANSWER", "EDGES", "LAG", "LIVE_SLICE", "VIRTUAL_SLICE", "Firmware"]

#: Seconds a message waits for the firmware's line when the grid gives the node no ``timeout:``.
ANSWER = 1.0
#: Seconds between two runs of a simulated MCU up to the clock: live (in a worker thread), and in virtual
#: time (inline; also how late, at most, an output is seen, and so the grain of its time in a trace).
LIVE_SLICE = 0.01
VIRTUAL_SLICE = 0.001
#: Changes of one pin in one slice past which only the slice's last level is published.
EDGES = 16
#: Seconds a live MCU may fall behind the wall clock before the node says so (every 10 s at most, while it lasts).
LAG = 1.0

_PIN_CHANNEL = re.compile(r"pin/([0-9]{1,2})")
_PIN_KEY = re.compile(r"(?:.*/)?pin/([0-9]{1,2})")
_LEVELS = {"0": 0, "1": 1, "z": None, "Z": None}
_MCU_NAMES = {"atmega328p": "ATmega328P"}

#: Firmware built by this process, by path, size and time: a grid of many nodes of one .ino builds it once.
_built: dict[tuple[Path, int, int], Built] = {}


class Simulated:
    """The firmware on a simulated ATmega328P, on the loop's clock."""

    def __init__(self, built: Built, sketch: Firmware) -> None:
        self.built = built
        self.mcu = MCU(built.elf)
        self.clock = ClockedMCU(
            self.mcu,
            on_pin=sketch.pin_changed,
            on_pwm=sketch.pwm_changed,
            on_line=sketch.printed,
            on_reset=sketch.reset,
        )
        self.clock.start()
        self.driven: dict[int, int | None] = {}  # input pins driven from outside, and their levels
        self.said_stopped = False

    def describe(self) -> str:
        return f"a simulated {_MCU_NAMES.get(self.mcu.name, self.mcu.name)}"

    async def run(self) -> None:
        await self.clock.advance()

    async def write(self, data: bytes) -> int:
        return self.clock.write(data)

    def set_pin(self, pin: int, level: int | None) -> None:
        self.clock.set_pin(pin, level)
        if level is None:
            self.driven.pop(pin, None)
        else:
            self.driven[pin] = level

    def close(self) -> None:
        self.clock.stop()

    def stopped(self) -> str | None:
        """Why the MCU stopped for good (crashed, or asleep with interrupts off), the first time it is asked; else None."""
        if self.clock.state.alive or self.said_stopped:
            return None
        self.said_stopped = True
        why = self.mcu.log.splitlines()[-1:] or ["no word from simavr"]
        return f"{self.clock.state.name.lower()} at cycle {self.mcu.cycle:,} ({escape(why[0], 200)})"

    def report(self) -> dict[str, Any]:
        mcu, clock = self.mcu, self.clock
        pins = []
        for pin in range(20):
            mode = mcu.pin_mode(pin)
            if mode != "input" or pin in self.driven:
                kind = {"output": "out", "input_pullup": "pullup", "input": "in"}[mode]
                pins.append(f"{pin_name(pin)}={kind}:{mcu.pin_level(pin)}")
        return {
            "mcu": _MCU_NAMES.get(mcu.name, mcu.name),
            "clock": f"{mcu.freq / 1e6:g} MHz",
            "cycles": clock.cycles,
            "pins": " ".join(pins) or "none",  # before the rest: status cuts its line at 160 characters
            "state": clock.state.name.lower(),
            "lag": round(clock.lag, 4),
            "flash": self.built.flash,
            "ram": self.built.ram,
        }


class Firmware(FactoryLoop):
    """Arduino firmware as a node: its ``Serial`` is the node's messages, its pins the node's topics."""

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        spec = self.grid.node(self.name)
        #: The ``.ino``, and how the grid writes it (errors name it so).
        self.shown = spec.sketch
        try:
            found = locate(spec.sketch, self.grid.path)
        except SketchError as exc:
            raise GridError(self.grid.path, spec.line or None, f"node {self.name!r}: {exc}") from None
        assert found.file is not None
        self.source = found.file
        self.built: Built | None = None
        if spec.serial is None:
            try:
                self.built = _build(self.source, self.shown)
                helper()  # compiled once per user: here too, out of the run's time; simavr missing is one line
            except FirmwareError as exc:
                count = f"{len(exc.lines)} error{'s' if len(exc.lines) != 1 else ''}"
                head = f"node {self.name!r}: {self.shown} does not build ({count}):\n" if exc.log else ""
                raise GridError(self.grid.path, spec.line or None, f"{head or f'node {self.name!r}: '}{exc}") from None

    def setup(self, boot: float | None = None) -> None:
        """``boot``: seconds a board over serial gets to start once its port opens (2 if not given: opening resets an Uno)."""
        spec = self.grid.node(self.name)
        virtual = is_virtual(asyncio.get_running_loop())
        self.device: Simulated | SerialBoard
        if spec.serial is not None:
            if virtual:
                raise ValueError(
                    f"its board at {spec.serial} cannot run in virtual time; simulate its firmware instead "
                    "(without 'serial:', the .ino runs on a simulated MCU)"
                )
            if boot is not None and boot < 0:
                raise ValueError(f"boot must be 0 seconds or more, not {boot}")
            self.device = SerialBoard(
                spec.serial, spec.baud, self.log, self.board_line, boot=BOOT if boot is None else boot
            )
            self.slice = LIVE_SLICE  # one call of run(), which keeps the port for the node's whole life
        else:
            if boot is not None:
                raise ValueError(
                    "boot is for a board over serial (serial: in the grid); a simulated MCU starts at once"
                )
            assert self.built is not None
            self.device = Simulated(self.built, self)
            self.slice = VIRTUAL_SLICE if virtual else LIVE_SLICE
            how = "cached" if self.built.cached else f"built in {self.built.seconds:.2f} s"
            self.out(
                f"{self.shown}: {how} ({self.built.flash:,} bytes of flash, {self.built.ram:,} of RAM), "
                f"running on {self.device.describe()} at 16 MHz"
            )
        self.answers = 0
        self.outputs: list[tuple[str, str, bool]] = []  # (topic, data, retained), published after each run
        self.published_pins: dict[int, str] = {}
        #: The answer awaited, and the cycle from which a line is one (the message's own; -1: a board's next line).
        self.waiting: asyncio.Future[str] | None = None
        self.since = -1
        self.deadline: int | None = None  # the cycle by which a simulated MCU must have answered (no timeout:)
        self.turn = asyncio.Lock()  # one message in the firmware's Serial at a time
        self.warnings = Throttle(self.log)
        self.own_wait = spec.timeout is None  # the grid's timeout: bounds loop() itself, else ANSWER here

    # -- what the device does ----------------------------------------------------------------

    def printed(self, cycle: int, text: str) -> None:
        """A line the firmware printed, at ``cycle`` (-1: a board's, whose cycles are its own)."""
        self.outputs.append(("serial", text, False))
        if self.waiting is not None and not self.waiting.done() and cycle >= self.since:
            self.waiting.set_result(text)

    async def board_line(self, text: str) -> None:
        self.printed(-1, text)
        await self.flush()

    def pin_changed(self, change: PinChange) -> None:
        self.outputs.append((f"pin/{change.pin}", str(change.value), True))

    def pwm_changed(self, change: PwmChange) -> None:
        self.outputs.append((f"pwm/{change.pin}", f"{change.duty:.3f}".rstrip("0").rstrip(".") or "0", True))

    def reset(self, cycle: int) -> None:
        self.out(f"{self.shown}: the MCU reset (its watchdog, cycle {cycle:,})")

    async def flush(self) -> None:
        """Publish what the device did since the last flush, in order; a pin's burst of edges as its last level."""
        outputs, self.outputs = self.outputs, []
        edges = Counter(topic for topic, _, retained in outputs if retained)
        last = {topic: index for index, (topic, _, retained) in enumerate(outputs) if retained}
        for index, (topic, data, retained) in enumerate(outputs):
            if retained and edges[topic] > EDGES and last[topic] != index:
                continue
            await self.publish(topic, data, retain=retained)

    # -- the node's side -----------------------------------------------------------------------

    @every("slice")
    async def run_device(self) -> None:
        """Run the simulated MCU up to the clock (a board: keep its port, for the node's life)."""
        try:
            await self.device.run()
        except asyncio.CancelledError:  # the node stops (or is killed): so does the device
            self.device.close()
            raise
        await self.flush()
        self._expire()
        if isinstance(self.device, Simulated):
            if (why := self.device.stopped()) is not None:
                self.log.error("%s: the MCU stopped for good: %s; restart the node to start it again", self.shown, why)
            elif self.device.clock.lag > LAG:
                self.warnings.warn(
                    "lag",
                    "%s: the simulated MCU is %.1f s behind the clock: this machine has less CPU to spare than "
                    '16 MHz takes (docs/firmware.md, "What it costs"); it catches up when it can',
                    self.shown,
                    self.device.clock.lag,
                )

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        """A line for the firmware's ``Serial`` (its next line back is the ack), or a level for ``pin/N``."""
        if channel:
            pin = _PIN_CHANNEL.fullmatch(channel)
            if pin is None:
                raise FirmwareError(
                    [
                        f"{self.shown} takes lines on its Serial (no channel) and levels on pin/N, not channel {channel!r}"
                    ]
                )
            level = self.drive(int(pin[1]), message)
            await self.flush()
            return f"pin/{int(pin[1])} {'z' if level is None else level}"
        if "\n" in message or "\r" in message or len(message.encode()) > MAX_LINE:
            raise FirmwareError([f"one line of at most {MAX_LINE} bytes per message to {self.shown}"])
        if isinstance(self.device, Simulated) and not self.device.clock.state.alive:
            raise self._dead()
        async with self.turn:
            self.waiting, self.since = asyncio.get_running_loop().create_future(), 1 << 62
            try:
                self.since = await self.device.write(message.encode() + b"\n")
                await self.flush()
                if not self.own_wait:  # the grid's timeout: bounds loop() itself (the reactor's error)
                    return await self.waiting
                if isinstance(self.device, Simulated):  # ANSWER seconds of the MCU's own time (it may lag, live)
                    self.deadline = self.since + int(ANSWER * self.device.mcu.freq)
                    return await self.waiting
                try:
                    return await asyncio.wait_for(asyncio.shield(self.waiting), ANSWER)
                except TimeoutError:
                    raise self._silent() from None
            finally:
                self.waiting, self.deadline = None, None

    def _silent(self) -> FirmwareError:
        return FirmwareError(
            [f"{self.shown} printed no line within {ANSWER:g} s (set the node's timeout: to wait longer)"]
        )

    def _expire(self) -> None:
        """A message whose answer the MCU has run past its deadline without printing, or can never print: an error ack."""
        waiting, deadline = self.waiting, self.deadline
        if waiting is not None and deadline is not None and not waiting.done():
            assert isinstance(self.device, Simulated)
            if not self.device.clock.state.alive:  # its cycles stopped: the deadline would never come
                waiting.set_exception(self._dead())
            elif self.device.mcu.cycle >= deadline:
                waiting.set_exception(self._silent())

    def _dead(self) -> FirmwareError:
        assert isinstance(self.device, Simulated)
        state = self.device.clock.state.name.lower()
        return FirmwareError([f"{self.shown}: the MCU stopped for good ({state}): restart the node to start it again"])

    def drive(self, pin: int, text: str) -> int | None:
        """Drive input ``pin`` to the level ``text`` says (``0``, ``1``, ``z``); FirmwareError if it cannot be."""
        if not isinstance(self.device, Simulated):
            raise FirmwareError([f"{self.device.describe()} has its own pins: over serial, only its Serial is ours"])
        if pin > 19:
            raise FirmwareError([f"pin/{pin}: the Uno's pins are 0-19 (A0-A5 are 14-19)"])
        level = _LEVELS.get(text.strip(), -1)
        if level == -1:
            raise FirmwareError([f"pin/{pin}: a level is 0, 1 or z (let go), not {escape(text, 20)!r}"])
        self.device.set_pin(pin, level)
        return level

    @hears
    async def heard(self, key: str, data: str) -> None:
        """A publication: a key ending in ``pin/N`` drives pin N; any other is a line to ``Serial``."""
        pin = _PIN_KEY.fullmatch(key)
        try:
            if pin is not None:
                self.drive(int(pin[1]), data)
            elif "\n" not in data and "\r" not in data and len(data.encode()) <= MAX_LINE:
                async with self.turn:  # after a message waiting for its answer, never in the middle
                    await self.device.write(data.encode() + b"\n")
            else:
                raise FirmwareError([f"one line of at most {MAX_LINE} bytes per message to {self.shown}"])
        except FirmwareError as exc:
            self.warnings.warn(key, "%s: %s", escape(key), exc)
        await self.flush()

    @reports
    def state(self) -> dict[str, Any]:
        return {"firmware": self.shown, **self.device.report()}


def _build(source: Path, shown: str) -> Built:
    """The firmware of ``source``, built once per process per content (and once per user: the cache)."""
    stat = source.stat()
    key = (source.resolve(), stat.st_mtime_ns, stat.st_size)
    built = _built.get(key)
    if built is None:
        built = _built[key] = build(source, shown=shown)
    return built
