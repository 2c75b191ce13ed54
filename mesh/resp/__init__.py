"""RESP, the Redis protocol, on a node's port: the pure parts. No I/O: neither asyncio nor websockets.

::

    parse      a client's requests out of a byte stream (multibulk and inline), with Redis's limits
    encode     replies, RESP2 and RESP3
    globs      Redis's glob patterns, as Redis's stringmatchlen matches them
    keys       channels as the mesh's keys; a glob's cover, the MQTT pattern the mesh carries it by
    commands   the commands served, each with Redis's arity, flags and replies
    session    one client: its state, the checks before a command, its output buffer's bounds
    registry   the channels and patterns of every client of one node, and delivery to them
    sniff      a Redis client or HTTP, from a connection's first bytes

The node's side (a connection's protocol, the registry's seam to the mesh) is ``nodes.redis``;
the hook that hands a connection over by its first bytes is ``mesh.wall.SniffingConnection``.
``docs/redis.md`` says what works, what is refused, and how keys map.
"""

from __future__ import annotations

from .encode import Error, error
from .parse import Limits
from .registry import Config, Mesh, Registry
from .session import Session, Sink
from .sniff import sniff

__all__ = ["Config", "Error", "Limits", "Mesh", "Registry", "Session", "Sink", "error", "sniff"]
