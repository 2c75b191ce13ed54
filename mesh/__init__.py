"""Network knowledge: the grid, the protocol, links to peers, and the errors."""

from __future__ import annotations

from .errors import GridError, MeshError, PeerUnavailable, ProtocolError, RemoteError, UnknownNodeError

__all__ = ["GridError", "MeshError", "PeerUnavailable", "ProtocolError", "RemoteError", "UnknownNodeError"]
