"""The sessions a node remembers, and who may take its memory: its grid peers in pools of their own, guests apart.

A session is a sender's numbering of its messages (:class:`nodes.delivery.Session`). How many a
node keeps, and whose:

- A session claimed by a node of the receiver's grid (the hello names it) lives in that
  peer's own pool of :data:`KEEP_PER_PEER` sessions; only another hello naming the same
  node can push one out (a restarted node that is not durable comes back with a new
  session; a durable one resumes its old one). No other client can evict it. Neither a
  session a connection uses now, nor the peer's newest session that handled messages (its
  link may be between two connections) is pushed out: hellos that only claim the name
  cannot do it.
- Every other session (``./arduino.py echo``, a user's script, a test) goes to one small
  pool, :data:`GUEST_SESSIONS` sessions, least recently used out, with a smaller window:
  de-duplication still works for them across a reconnect, and no number of them touches a
  grid peer's sessions.
- A connection whose hello has no session (``send``, ``status``) takes no slot.

Without a token, a hello's name is only a claim. :meth:`Sessions.check_address` logs a
hello naming a grid node from an address that cannot be that node's.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import socket
from collections import OrderedDict
from collections.abc import Callable

from mesh.grid import Grid
from mesh.grid.values import host_ip

from .delivery import WINDOW, WINDOW_BYTES, Session, next_use

__all__ = [
    "GUEST_BYTES",
    "GUEST_SESSIONS",
    "GUEST_WINDOW",
    "KEEP_PER_PEER",
    "KEY_CHARS",
    "MISMATCH_EVERY",
    "Sessions",
    "could_be",
]

#: Sessions remembered per node of the grid that talks to this one (that node's oldest out first).
KEEP_PER_PEER = 4
#: Sessions remembered of clients that are not nodes of the grid (echo, scripts), least recently used out.
GUEST_SESSIONS = 64
#: Outcomes remembered per session of such a client.
GUEST_WINDOW = 1_000
#: Bytes of outcomes remembered per session of such a client.
GUEST_BYTES = 128 * 2**10
#: Characters of a peer's name or session id kept as they are; a longer one is kept as its SHA-256 (hex).
KEY_CHARS = 64
#: Seconds between two lines about hellos naming a grid node from an address that cannot be it.
MISMATCH_EVERY = 10.0


def _bounded(text: str) -> str:
    """``text``, or its SHA-256 when it is long: what a hello claims costs a slot no more than KEY_CHARS."""
    if len(text) <= KEY_CHARS:
        return text
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Sessions:
    """The sessions a node remembers: its grid peers' in pools of their own, everyone else's in a small LRU.

    ``grid`` gives the node's grid as it is now (it changes on reload); ``own`` is the
    node's name (a hello naming the node itself is a guest's). Without ``grid``, every
    session is a guest's.
    """

    def __init__(
        self,
        log: logging.Logger | None = None,
        *,
        grid: Callable[[], Grid] | None = None,
        own: str = "",
        keep_per_peer: int = KEEP_PER_PEER,
        guests: int = GUEST_SESSIONS,
    ) -> None:
        self.log = log or logging.getLogger("mesh")
        self.grid = grid
        self.own = own
        self.keep_per_peer = keep_per_peer
        self.guests = guests
        self._peers: dict[str, dict[str, Session]] = {}  # grid peer -> its sessions
        self._guests: OrderedDict[tuple[str, str], Session] = OrderedDict()
        self._forgotten = 0  # duplicates counted by sessions since forgotten
        self._mismatches = 0  # hellos from a wrong address not logged yet
        self._mismatch_logged: float | None = None
        self._local: dict[str, bool] = {}  # host -> whether this machine has that address

    def is_peer(self, name: str) -> bool:
        """Whether ``name`` is a node of the grid (as it is now) other than this one."""
        return self.grid is not None and name != self.own and name in self.grid().nodes

    def get(self, peer: str, session: str) -> Session:
        """The session ``session`` of ``peer`` (what its hello claims), made if new."""
        session = _bounded(session)
        if self.is_peer(peer):
            return self._peer_session(peer, session)
        peer = _bounded(peer)
        key = (peer, session)
        found = self._guests.get(key)
        if found is None:
            found = self._guests[key] = Session(
                f"{peer}/{session}", window=GUEST_WINDOW, budget=GUEST_BYTES, log=self.log
            )
            if len(self._guests) > self.guests:
                self._forget(self._guests.popitem(last=False)[1])
        else:
            self._guests.move_to_end(key)
            found.used = next_use()
        return found

    def _peer_session(self, peer: str, session: str) -> Session:
        pool = self._peers.get(peer)
        if pool is None:
            self._drop_former_peers()
            pool = self._peers[peer] = {}
        found = pool.get(session)
        if found is not None:
            found.used = next_use()
            return found
        found = self._guests.pop((peer, session), None)  # a guest before the grid named it (a reload)
        if found is None:
            found = Session(f"{peer}/{session}", log=self.log)
        else:
            found.window, found.budget = WINDOW, WINDOW_BYTES
            found.used = next_use()
        pool[session] = found
        if len(pool) > self.keep_per_peer:
            # That peer's least recently used session goes; one that never handled a message
            # (nothing to forget) before one that did.
            # A session a connection uses now stays, even one that has handled nothing yet (the
            # link's first messages may be in flight): forgotten, its re-sends would run again.
            # So does the newest session that handled messages, between two connections of its
            # link (a cut wire): hellos that only claim the peer's name cannot push it out.
            idle = [s for s in pool if s != session and not pool[s].connections]
            handled = [s for s in pool if pool[s].highest > 0]
            if handled:
                newest = max(handled, key=lambda s: pool[s].used)
                idle = [s for s in idle if s != newest]
            if idle:
                victim = min(idle, key=lambda s: (pool[s].highest > 0, pool[s].used))
                self._forget(pool.pop(victim))
        return found

    def _drop_former_peers(self) -> None:
        """Forget the sessions of nodes the grid no longer has (it was reloaded)."""
        for name in [name for name in self._peers if not self.is_peer(name)]:
            for session in self._peers.pop(name).values():
                self._forget(session)

    def _forget(self, session: Session) -> None:
        self._forgotten += session.duplicates

    def __len__(self) -> int:
        return len(self._guests) + sum(len(pool) for pool in self._peers.values())

    @property
    def duplicates(self) -> int:
        """Messages dropped as duplicates over the node's life (forgotten sessions' included)."""
        sessions = itertools.chain(self._guests.values(), *(pool.values() for pool in self._peers.values()))
        return self._forgotten + sum(session.duplicates for session in sessions)

    # -- who claims a grid name -------------------------------------------------

    def check_address(self, peer: str, remote: str | None, local: str | None = None) -> bool:
        """Whether a hello naming ``peer`` from ``remote`` can come from it; logs one line if not (rate-limited).

        ``local`` is the address the connection reached this node on. Only a grid node with
        a port and an IP address (or ``localhost``) for a host is checked: a host name would
        need a DNS lookup, a node without a port has no address in the grid. The hello is
        accepted anyway: a token, where the grid has one, is what authenticates.
        """
        if remote is None or not self.is_peer(peer):
            return True
        assert self.grid is not None
        spec = self.grid().nodes[peer]
        if spec.port is None or could_be(spec.host, remote, local, self._is_local):
            return True
        self._mismatches += 1
        now = asyncio.get_running_loop().time()
        if self._mismatch_logged is None or now - self._mismatch_logged >= MISMATCH_EVERY:
            more = self._mismatches - 1
            self._mismatch_logged = now
            self._mismatches = 0
            self.log.warning(
                "a hello from %s says it is %r, which the grid puts at %s%s",
                remote,
                peer,
                spec.host,
                f" ({more} more such hello(s) since the last line)" if more else "",
            )
        return False

    def _is_local(self, host: str) -> bool:
        """Whether this machine has the address ``host`` (it can bind it); remembered per host."""
        local = self._local.get(host)
        if local is None:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            try:
                with socket.socket(family, socket.SOCK_STREAM) as probe:
                    probe.bind((host, 0))
                local = True
            except OSError:
                local = False
            if len(self._local) >= 64:  # a grid's hosts are few; never let it grow
                self._local.clear()
            self._local[host] = local
        return local


def could_be(host: str, remote: str, local: str | None = None, is_local: Callable[[str], bool] | None = None) -> bool:
    """Whether a connection from ``remote`` (to ``local``) can come from a node the grid puts at ``host``.

    A host that is a name or a wildcard (``0.0.0.0``, ``::``) could be anywhere. A
    connection from this machine (a loopback address, or the very address it reached)
    can be a node whose host is a loopback address or one of this machine's own
    (``is_local``); from another machine, only a node at that address.
    """
    want = host_ip(host)
    came = host_ip(remote)
    if want is None or came is None or want.is_unspecified:
        return True
    here = host_ip(local) if local is not None else None
    if came.is_loopback or came == here:
        return want.is_loopback or want == came or (is_local is not None and is_local(host))
    return came == want
