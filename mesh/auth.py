"""Proving the mesh's token without sending it: a mutual challenge-response (docs/protocol.md).

A mesh client offers a fresh random nonce in its handshake (the ``Mesh-Nonce``
header, no token); the node answers the 101 with its own fresh nonce in the same
header. The client's hello frame then carries :func:`client_proof`, an HMAC of both
nonces keyed with the token, and the node's hello answers with :func:`server_proof`.
Each side checks the other's proof (:func:`proves`, constant time) before it handles
anything else. A listener that is not the node (a squatter on a stopped node's port)
never sees the token; what it sees, an HMAC over a nonce the real node never picks
again, opens no connection anywhere.

No I/O here, and neither asyncio nor websockets: the client (``mesh.connection``) and
the server (``nodes.server``) both use these functions.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from .protocol import SUBPROTOCOL

__all__ = ["NONCE_HEADER", "client_proof", "is_nonce", "nonce", "proves", "server_proof"]

#: The handshake header that carries a nonce: the client's in its request, the node's in its 101.
NONCE_HEADER = "Mesh-Nonce"
#: Random bytes in a nonce (sent as hex: twice as many characters).
NONCE_BYTES = 32
_NONCE = re.compile(rf"[0-9a-f]{{{2 * NONCE_BYTES}}}")


def nonce() -> str:
    """A fresh random nonce, as lower-case hex."""
    return secrets.token_hex(NONCE_BYTES)


def is_nonce(text: str | None) -> bool:
    """Whether ``text`` has the shape of a nonce (what a peer sends is checked before it is used)."""
    return text is not None and _NONCE.fullmatch(text) is not None


def client_proof(token: str, client_nonce: str, server_nonce: str) -> str:
    """What a client's hello carries: it knows the token, on this connection only."""
    return _mac(token, "client", server_nonce, client_nonce)


def server_proof(token: str, client_nonce: str, server_nonce: str) -> str:
    """What a node's hello answers: it knows the token too (a different label: no reflecting the client's)."""
    return _mac(token, "server", client_nonce, server_nonce)


def proves(expected: str, supplied: object) -> bool:
    """Whether ``supplied`` (from a peer: anything) is ``expected``, compared in constant time."""
    if not isinstance(supplied, str):
        return False
    return hmac.compare_digest(expected.encode(), supplied.encode("utf-8", "replace"))


def _mac(token: str, label: str, first: str, second: str) -> str:
    text = f"{label}|{first}|{second}|{SUBPROTOCOL}"
    return hmac.new(token.encode("utf-8", "surrogateescape"), text.encode(), hashlib.sha256).hexdigest()
