"""A simulated firmware behind a pseudo-terminal: its ``Serial`` as a serial port, for serial tools and for tests.

::

    python -m nodes.firmware.pty firmware/lamp.ino [--link /tmp/lamp-serial]
    PTY /dev/pts/7                   (printed once ready; runs until Ctrl-C or SIGTERM)

The firmware is built (cached as for a node) and runs live on a simulated ATmega328P
(:class:`~nodes.firmware.clocked.ClockedMCU`, in step with the wall clock); what a program
writes to the pty reaches the firmware's ``Serial`` at its baud rate, and what the firmware
prints comes out of it. A node with ``serial: /dev/pts/7`` then meets real firmware bytes
over a real serial path, as it would meet a board on ``/dev/ttyACM0``; so can ``screen``,
``picocom`` or the Arduino IDE's serial monitor. ``--link`` also makes a symbolic link to the
pty, a fixed name to put in a grid.

The pty is our own (``os.openpty()``, made raw at once, or the line discipline would echo the
firmware's input back to it), fed from the event loop: not simavr's ``uart_pty`` part, which runs
a thread of its own and always names ``/tmp/simavr-uart0``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import termios
import tty
from collections.abc import Callable, Sequence
from pathlib import Path

from mesh.errors import FirmwareError

from .build import build
from .clocked import ClockedMCU
from .mcu import MCU

__all__ = ["SLICE", "PtySerial", "main", "serve"]

#: Seconds between two runs of the MCU up to the clock.
SLICE = 0.005


class PtySerial:
    """A pty pair whose device end is the firmware's ``Serial``, on the running loop."""

    def __init__(self, clock: ClockedMCU, link: str | None = None) -> None:
        self.clock = clock
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave, termios.TCSANOW)
        self.path = os.ttyname(self.slave)
        self.link = link
        if link:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)
            os.symlink(self.path, link)
        os.set_blocking(self.master, False)
        clock.on_output = self._out
        asyncio.get_running_loop().add_reader(self.master, self._in)

    def _in(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except OSError:  # EAGAIN, or EIO while no program holds the port open: nothing to take
            return
        if data:
            self.clock.write(data)

    def _out(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.master, view) :]
            except OSError:  # nobody reads and the pty's buffer is full: what a board's USB chip does too, drop
                return

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.master)
        if self.link:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.link)
        os.close(self.master)
        os.close(self.slave)


async def serve(sketch: str | os.PathLike[str], link: str | None = None, ready: Callable[[str], None] = print) -> None:
    """Build ``sketch``, run it behind a new pty until SIGINT or SIGTERM; ``ready(path)`` once it serves."""
    firmware = build(sketch)
    mcu = MCU(firmware.elf)
    clock = ClockedMCU(mcu, on_output=lambda data: None)
    clock.start()
    pty = PtySerial(clock, link)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    ready(pty.path)
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SLICE)
            await clock.advance()
    finally:
        pty.close()
        clock.stop()
        mcu.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nodes.firmware.pty", description=__doc__.splitlines()[0])
    parser.add_argument("sketch", help="the .ino to build and run")
    parser.add_argument("--link", help="also make this symbolic link to the pty")
    args = parser.parse_args(argv)
    if not Path(args.sketch).is_file():
        print(f"error: no such file: {args.sketch}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(args.sketch, args.link, lambda path: print(f"PTY {path}", flush=True)))
    except FirmwareError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
