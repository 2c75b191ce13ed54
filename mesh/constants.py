"""Defaults, bounds and timings of a node, shared by the grid, the links and the server.

One place for each number: :mod:`mesh.grid` fills in a node's defaults and checks its
bounds with these, the links size themselves with the same defaults, and every timeout
and keepalive interval of a connection is here. (What each costs, measured, is in
``bench/NOTES.md``.)
"""

from __future__ import annotations

__all__ = [
    "CLOSE_TIMEOUT",
    "DEFAULT_HOST",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_OUTBOX",
    "DEFAULT_WAIT",
    "LOST_AFTER",
    "MAX_SIZE_RANGE",
    "OFFLINE",
    "ONLINE",
    "OPEN_TIMEOUT",
    "OUTBOX_RANGE",
    "PING_INTERVAL",
    "PING_TIMEOUT",
    "QUEUE_BOUND",
    "QUEUE_BYTES",
    "SEND_TIMEOUT",
    "SERVER_PING_INTERVAL",
    "SERVER_PING_TIMEOUT",
    "STATE_TOPIC",
    "WARN_EVERY",
]

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

#: Seconds a link keeps trying to reach a peer before giving up (0: forever).
DEFAULT_WAIT = 60.0
#: Seconds to open a connection, and to close one.
OPEN_TIMEOUT = 5.0
CLOSE_TIMEOUT = 0.25
#: Keepalive (mesh.wall.Sweeper): a link silent for PING_INTERVAL seconds sends a ping; silent
#: PING_TIMEOUT seconds more, its connection closes, so a frozen peer (SIGSTOP) is noticed within
#: about 3 s (plus one sweep). A busy link is never pinged; an idle one costs a ping and a pong per
#: PING_INTERVAL. The price of so short a bound: a peer must answer within about a second.
PING_INTERVAL = 2.0
PING_TIMEOUT = 1.0
#: The server side of every connection is more patient: a ping after 5 s of silence, closed after
#: 20 s more. A link pings its server every PING_INTERVAL when idle, so the server never pings a
#: link: only a client that pings nobody (a browser). A busy but healthy client on a loaded machine
#: is not cut; a client that stops reading is dropped by the send timeouts.
SERVER_PING_INTERVAL = 5.0
SERVER_PING_TIMEOUT = 20.0
#: Seconds one send may wait for a peer that does not read (a full send buffer) before its
#: connection is aborted: the liveness promise, since the keepalive's ping waits behind that buffer.
SEND_TIMEOUT = PING_INTERVAL + PING_TIMEOUT

#: The topic of the presence key every node with a port publishes (retained): ``<node>/$state``...
STATE_TOPIC = "$state"
#: ...and its two values.
ONLINE, OFFLINE = "online", "offline"
#: Seconds a lost connection has to come back before a link says its peer is offline (a reconnect
#: that fails says it at once). With the keepalive, a peer that dies is offline within ~5 s.
LOST_AFTER = 2.0

#: Bytes of publications queued for one subscriber (at its publisher, and for each handler in
#: its inbox) before the oldest is dropped, counted and reported: Redis's own soft limit for a
#: pub/sub client, so that a burst of thousands of small publications is held, and a truly slow
#: subscriber still loses its oldest...
QUEUE_BYTES = 8 * 2**20
#: ...and publications at most, however small (each costs its entry besides its bytes).
QUEUE_BOUND = 100_000
#: Seconds between two "dropping messages" warnings about the same subscriber or handler.
WARN_EVERY = 5.0
