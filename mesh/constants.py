"""Defaults and bounds of a node's settings, shared by the grid and the links.

One place for each number: :mod:`mesh.grid` fills in a node's defaults and checks
its bounds with these, and :mod:`mesh.links` sizes a link with the same defaults.
"""

from __future__ import annotations

__all__ = ["DEFAULT_HOST", "DEFAULT_MAX_SIZE", "DEFAULT_OUTBOX", "MAX_SIZE_RANGE", "OUTBOX_RANGE"]

#: The host a node listens on unless the grid says.
DEFAULT_HOST = "127.0.0.1"
#: How many unacked messages a link holds before stream() waits, unless the node says.
DEFAULT_OUTBOX = 1000
#: The largest frame a node accepts, in bytes, unless the node says (1 MiB).
DEFAULT_MAX_SIZE = 2**20
#: The bounds (inclusive) of a node's ``outbox``.
OUTBOX_RANGE = (1, 1_000_000)
#: The bounds (inclusive) of a node's ``max_size``, in bytes (1 KiB to 64 MiB).
MAX_SIZE_RANGE = (1024, 64 * 2**20)
