"""Faults a simulation puts into a node as a signal would into a process: freeze (SIGSTOP) and thaw (SIGCONT).

(A kill, as SIGKILL would, is the node's own :meth:`~nodes.node.Node.kill`: it stops every part.)
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from mesh.wall import freeze as freeze_connection
from mesh.wall import thaw as thaw_connection

if TYPE_CHECKING:
    from .node import Node

__all__ = ["freeze", "thaw"]


def freeze(node: Node) -> None:
    """Stop reading every connection of ``node`` and calling its ``@every`` methods, until :func:`thaw`.

    Peers see a node that stopped answering: their pings go unanswered, what they send waits
    in their outboxes. Unlike a stopped process, the node's own timers still run (the
    keepalive of its links), so it may give up on its links while frozen; they reconnect
    when it thaws. A connection accepted meanwhile is frozen as it comes (the server looks).
    """
    if node.thawed is None:
        node.thawed = asyncio.Event()
    for ws in _connections(node):
        freeze_connection(ws)


def thaw(node: Node) -> None:
    """Undo :func:`freeze`: read again, and the ``@every`` methods go on."""
    thawed, node.thawed = node.thawed, None
    if thawed is not None:
        thawed.set()
    for ws in _connections(node):
        thaw_connection(ws)


def _connections(node: Node) -> list[Any]:
    """Every open websocket connection of the node: those it serves, and its links'."""
    found: list[Any] = [] if node.server is None else node.server.open_connections()
    return found + [link.websocket for link in node.sender.links.values() if link.websocket is not None]
