"""IOPin: on each tick, draws a short random stream of bits, publishes each on ``iopin/pin`` and streams them on."""

from __future__ import annotations

import random

from nodes import FactoryLoop, reactive


class IOPin(FactoryLoop):
    """Draws ``sequence`` bits (each 1 with probability ``chance``) and streams them to its targets."""

    def setup(self, chance: float = 0.5, sequence: int = 3, seed: int | None = None) -> None:
        """``chance``: probability of a 1; ``sequence``: bits per tick; ``seed``: the same stream, whatever the run's seed."""
        if not 0 <= chance <= 1:
            raise ValueError(f"chance must be between 0 and 1, not {chance}")
        if sequence < 1:
            raise ValueError(f"sequence must be 1 or more, not {sequence}")
        self.chance = chance
        self.sequence = sequence
        if seed is not None:  # else the node's own self.random: seeded by a simulation's --seed
            self.random = random.Random(seed)

    def draw(self) -> list[int]:
        """The next ``sequence`` bits."""
        return [1 if self.random.random() < self.chance else 0 for _ in range(self.sequence)]

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        """Toggle the pin: draw bits, stream them to every target, acknowledge."""
        bits = self.draw()
        self.out(f"toggling pin state: {bits}")
        for bit in bits:
            await self.publish("pin", bit)
        answers = await self.stream_all(self.targets, bits)  # to every target at once
        for target, acks in answers.items():
            self.log.debug("%s answered %s", target, acks)
        return "acknowledged"
