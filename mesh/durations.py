"""Durations as people write them: ``500ms``, ``10s``, ``2m``, ``1h``, ``1h30m``, or a number of seconds."""

from __future__ import annotations

import math
import re

__all__ = ["DurationError", "duration", "shown"]

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|min|s|m|h)")


class DurationError(ValueError):
    """Not a duration: what was given and what is accepted."""

    def __init__(self, text: object) -> None:
        super().__init__(f"{text!r} is not a duration (write 500ms, 10s, 2m, 1h, 1h30m, or seconds as a number)")


def duration(text: str | float | int) -> float:
    """Seconds in ``text``: ``"1h30m"`` is 5400.0, ``"500ms"`` 0.5, ``2`` and ``"2"`` 2.0; never negative."""
    if isinstance(text, bool):
        raise DurationError(text)
    if isinstance(text, (int, float)):
        seconds = float(text)
    elif isinstance(text, str):
        raw = text.strip().lower()
        try:
            seconds = float(raw)
        except ValueError:
            end = 0
            seconds = 0.0
            for match in _PART.finditer(raw):
                if match.start() != end and raw[end : match.start()].strip():
                    raise DurationError(text) from None
                seconds += float(match.group(1)) * UNITS[match.group(2)]
                end = match.end()
            if end == 0 or raw[end:].strip():
                raise DurationError(text) from None
    else:
        raise DurationError(text)
    if not math.isfinite(seconds) or seconds < 0:
        raise DurationError(text)
    return seconds


def shown(seconds: float) -> str:
    """``seconds`` as a clock: ``00:12:03.250`` (hours go past 99 if they must)."""
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"
