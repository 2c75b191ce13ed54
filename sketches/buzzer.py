"""Buzzer: sounds on a 1, stays quiet on anything else."""

from __future__ import annotations

from collections import deque

from nodes import FactoryLoop, reactive

QUIET = "..."
#: How many recent sounds a buzzer remembers (for tests and status).
HISTORY = 1000


class Buzzer(FactoryLoop):
    """Answers each signal with its ``sound`` for a ``1`` and ``...`` otherwise."""

    def setup(self, sound: str = "buzz buzz buzz") -> None:
        """``sound``: what a 1 sounds like."""
        self.sound = sound
        self.sounds: deque[str] = deque(maxlen=HISTORY)

    def sound_for(self, signal: str) -> str:
        """The sound for one signal."""
        return self.sound if signal.strip() == "1" else QUIET

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        """Sound the signal, log it, and answer with the sound."""
        sound = self.sound_for(message)
        self.sounds.append(sound)
        self.out(f"signal {message}: {sound}")
        await self.publish("sound", sound)
        return sound
