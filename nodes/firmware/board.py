"""A real Arduino on a serial port (``serial: /dev/ttyACM0`` in the grid): lines out to its ``Serial``, lines back.

The board runs the same ``.ino`` as a simulated node would (flashed by the Arduino IDE,
``arduino-cli`` or ``avrdude``: we do not flash it). :class:`SerialBoard` keeps its port open
with `serialx <https://github.com/puddly/serialx>`_ (native asyncio: the port's file descriptor
on the loop, no thread per read) and reopens it when it goes away, with the links' backoff and
their words: ``waiting for the board at /dev/ttyACM0 (No such file or directory); retrying in
0.05 s`` while it is unplugged, ``board at /dev/ttyACM0 down (...); reconnecting`` when it goes.

Opening the port of an Uno resets it (DTR), and the bootloader takes the first second or two:
what is written meanwhile is lost. So after opening, writes wait ``boot`` seconds (2 by default),
or until the board prints its first line, whichever comes first.

What comes from the board is untrusted: lines are cut at :data:`~nodes.firmware.mcu.MAX_LINE`
bytes, decoded as UTF-8 with replacement, and the reader's buffer is bounded by that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import serialx

from mesh.errors import FirmwareError
from mesh.reconnect import WAITING_LOG_INTERVAL, backoff

from .mcu import MAX_LINE

__all__ = ["BOOT", "DEFAULT_BAUD", "SerialBoard"]

#: Seconds a board gets to start after its port is opened (opening resets an Uno) before the first write.
BOOT = 2.0
#: The board's speed when the grid names none: what the examples' Serial.begin() says.
DEFAULT_BAUD = 115_200
#: Bytes read from the port at a time.
READ = 4096


class SerialBoard:
    """The board on ``port``: :meth:`run` keeps it connected and hands each line it prints to ``on_line``."""

    def __init__(
        self,
        port: str,
        baud: int | None,
        log: logging.Logger,
        on_line: Callable[[str], Awaitable[None]],
        *,
        boot: float = BOOT,
        delays: Callable[[], Any] = backoff,
    ) -> None:
        self.port = port
        self.baud = baud or DEFAULT_BAUD
        self.log = log
        self.on_line = on_line
        self.boot = boot
        self.delays = delays
        #: connecting, up, retrying
        self.state = "connecting"
        self.connections = 0
        self.lines = 0
        self.last_error = "not opened yet"
        #: The loop's time when the port last opened (the board's boot counts from it).
        self.opened = 0.0
        self._writer: asyncio.StreamWriter | None = None
        self._booted: asyncio.Event | None = None

    def describe(self) -> str:
        return f"the board at {self.port}"

    async def run(self) -> None:
        """Open the port, read lines until it goes away, reopen; until cancelled (the node stops)."""
        loop = asyncio.get_running_loop()
        down_since = loop.time()
        while True:
            delays = self.delays()
            said: float | None = None
            while True:
                try:
                    reader, writer = await serialx.open_serial_connection(self.port, baudrate=self.baud)
                    break
                except (OSError, serialx.SerialException) as exc:
                    self.last_error = _why(exc)
                delay = next(delays)
                self.state = "retrying"
                now = loop.time()
                if said is None or now - said >= WAITING_LOG_INTERVAL:
                    waited = f", {now - down_since:.0f} s so far" if said is not None else ""
                    self.log.info(
                        "waiting for %s (%s%s); retrying in %.2g s", self.describe(), self.last_error, waited, delay
                    )
                    said = now
                await asyncio.sleep(delay)
            self.connections += 1
            self.opened = loop.time()
            self.state = "up"
            self.log.info("%s up (%d baud)", self.describe(), self.baud)
            self._booted = asyncio.Event()
            boot = loop.call_later(self.boot, self._booted.set)
            self._writer = writer
            try:
                why = await self._read(reader)
            finally:
                boot.cancel()
                self._writer = None
                writer.close()
            self.state = "connecting"
            self.last_error = why
            down_since = loop.time()
            self.log.warning("%s down (%s); reconnecting", self.describe(), why)

    async def _read(self, reader: asyncio.StreamReader) -> str:
        """Lines from the board until it goes away; why it went."""
        partial = bytearray()
        while True:
            try:
                data = await reader.read(READ)
            except (OSError, serialx.SerialException) as exc:
                return _why(exc)
            if not data:
                return "the port closed"
            partial += data
            while True:
                end = partial.find(b"\n")
                if end < 0 and len(partial) < MAX_LINE:
                    break
                cut = end if 0 <= end < MAX_LINE else MAX_LINE
                line = bytes(partial[:cut]).rstrip(b"\r").decode("utf-8", errors="replace")
                del partial[: cut + 1 if cut == end else cut]
                self.lines += 1
                if self._booted is not None:
                    self._booted.set()  # it speaks: it has started
                await self.on_line(line)

    async def write(self, data: bytes) -> int:
        """Write to the board's ``Serial`` once it has started; FirmwareError while it is not connected.

        Returns -1: every line the board prints from now on comes after it (a board has no cycles of ours).
        """
        if self._writer is None or self._booted is None:
            raise FirmwareError([f"{self.describe()} is not connected ({self.last_error})"])
        writer = self._writer
        await self._booted.wait()
        writer.write(data)
        await writer.drain()
        return -1

    def close(self) -> None:
        """Nothing to do: :meth:`run`, cancelled, closes the port."""

    def report(self) -> dict[str, Any]:
        return {"board": self.port, "baud": self.baud, "state": self.state, "lines": self.lines}


def _why(exc: BaseException) -> str:
    """An error from the port, in words: ``No such file or directory``."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
