"""Clock: ticks ``tacks`` times, every ``delay`` seconds, into every node it is wired to."""

from __future__ import annotations

import asyncio
from collections import deque

from mesh.errors import MeshError
from nodes import FactoryLoop, every, reactive

#: How many recent acks a clock remembers (for tests and status).
HISTORY = 1000


class Clock(FactoryLoop):
    """Sends ``tick N`` to each wired node and logs what each one acknowledges."""

    def setup(self, tacks: int = 5, delay: float = 1.0) -> None:
        """``tacks``: how many ticks (0: forever); ``delay``: seconds between ticks."""
        if tacks < 0:
            raise ValueError(f"tacks must be 0 (forever) or more, not {tacks}")
        if delay <= 0:
            raise ValueError(f"delay must be above 0 seconds, not {delay}")
        self.tacks = tacks
        self.delay = delay
        self.ticks = 0
        self.acks: deque[str] = deque(maxlen=HISTORY)
        self._waiting: set[asyncio.Future[None]] = set()
        if not self.targets:
            self.log.warning("wired to nothing: ticks go nowhere (add a wire 'clock -> NODE')")

    @every("delay", times="tacks")
    async def tick(self) -> None:
        """One tick, to every target. Ticks keep their pace: acks are awaited on the side."""
        self.ticks += 1
        payload = f"tick {self.ticks}"
        for target in self.targets:
            (future,) = await self.post(target, payload)  # waits only while the outbox is full
            waiting = asyncio.ensure_future(self._acked(target, payload, future))
            self._waiting.add(waiting)
            waiting.add_done_callback(self._waiting.discard)
        self.out(payload)
        await self.publish("tick", self.ticks)
        if self.ticks == self.tacks:
            await asyncio.gather(*self._waiting)
            if self.address is not None:
                self.out(f"{self.tacks} ticks done; still serving until stopped")

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
        """A clock takes no input; it says so."""
        return f"clock at tick {self.ticks}"
