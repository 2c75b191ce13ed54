"""Clock: ticks ``tacks`` times, every ``delay`` seconds, into every node it is wired to; and once per message it gets.

A message to the clock (a wire from the MQTT bridge, ``./arduino.py send clock press``) is
one more tick, at once: a real button ticks the circuit. Its ack is ``tick N``.
"""

from __future__ import annotations

import asyncio
from collections import deque

from mesh.errors import MeshError
from nodes import FactoryLoop, every, reactive

#: How many recent acks a clock remembers (for tests and status).
HISTORY = 1000


class Clock(FactoryLoop):
    """Sends ``tick N`` to each wired node, every ``delay`` and on each message, and logs what each one acknowledges."""

    def setup(self, tacks: int = 5, delay: float = 1.0) -> None:
        """``tacks``: how many ticks (0: forever); ``delay``: seconds between ticks."""
        if tacks < 0:
            raise ValueError(f"tacks must be 0 (forever) or more, not {tacks}")
        if delay <= 0:
            raise ValueError(f"delay must be above 0 seconds, not {delay}")
        self.tacks = tacks
        self.delay = delay
        self.ticks = 0  # every tick: the periodic ones and those a message caused
        self.periodic = 0  # the periodic ones, which stop at tacks
        self.acks: deque[str] = deque(maxlen=HISTORY)
        self._waiting: set[asyncio.Future[None]] = set()
        if not self.targets:
            self.log.warning("wired to nothing: ticks go nowhere (add a wire 'clock -> NODE')")

    @every("delay", times="tacks")
    async def tick(self) -> None:
        """One periodic tick, to every target. Ticks keep their pace: acks are awaited on the side."""
        self.periodic += 1
        await self._tick()
        if self.periodic == self.tacks:
            await asyncio.gather(*self._waiting)
            if self.address is not None:
                self.out(f"{self.tacks} ticks done; still serving until stopped")

    async def _tick(self) -> str:
        """Send ``tick N`` to every target (acks on the side), log it, publish it; return it."""
        self.ticks += 1
        payload = f"tick {self.ticks}"
        for target in self.targets:
            (future,) = await self.post(target, payload)  # waits only while the outbox is full
            waiting = asyncio.ensure_future(self._acked(target, payload, future))
            self._waiting.add(waiting)
            waiting.add_done_callback(self._waiting.discard)
        self.out(payload)
        await self.publish("tick", self.ticks)
        return payload

    async def _acked(self, target: str, payload: str, future: asyncio.Future[str]) -> None:
        try:
            ack = await future
        except MeshError as exc:
            self.log.error("%s: %s", payload, exc)
            return
        self.acks.append(ack)
        self.out(f"{target} acked {payload}: {ack}")

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        """Any message is a button press: one tick at once, acked ``tick N`` (the periodic ticks go on)."""
        return await self._tick()
