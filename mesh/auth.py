"""Proving the mesh's token without sending it: a mutual challenge-response (docs/protocol.md).

A mesh client offers a fresh random nonce in its handshake (the ``Mesh-Nonce``
header, no token); the node answers the 101 with its own fresh nonce in the same
header. The client's hello frame then carries :func:`client_proof`, an HMAC keyed with
the token, and the node's hello answers with :func:`server_proof`. Each side checks the
other's proof (:func:`proves`, constant time) before it handles anything else.

Each proof covers both nonces and the conversation it opens (a :class:`Binding`): the
node the client dialled (its name, and the address as dialled: the ``Host`` header), who
the client says it is and its session (its hello's claims), and the subprotocol. A proof
relayed to another node fails there (that node computes it with its own name), and a
node's proof relayed back fails at the client (it expects the name it dialled). A
listener that is not the node (a squatter on a stopped node's port) never sees the token,
and nothing it is shown opens a connection anywhere else. What only TLS gives: a relay
to the *same* node, passing the bytes through unchanged, is a man in the middle.

No I/O here, and neither asyncio nor websockets: the client (``mesh.handshake``) and
the server (``nodes.conversation``) both use these functions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass

from .protocol import SUBPROTOCOL

__all__ = ["NONCE_HEADER", "Binding", "client_proof", "is_nonce", "nonce", "proves", "server_proof"]

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


@dataclass(frozen=True)
class Binding:
    """What one conversation's proofs are bound to, as both ends see it.

    ``target``: the node the client dialled, by name (the node checks its own);
    ``address``: where it dialled it, as its handshake's ``Host`` header says;
    ``node`` and ``session``: what the client's hello claims.
    """

    target: str
    address: str
    node: str
    session: str = ""


def client_proof(token: str, client_nonce: str, server_nonce: str, binding: Binding) -> str:
    """What a client's hello carries: it knows the token, on this connection, for this node and these claims."""
    return _mac(token, "client", server_nonce, client_nonce, binding)


def server_proof(token: str, client_nonce: str, server_nonce: str, binding: Binding) -> str:
    """What a node's hello answers: it knows the token too (a different label: no reflecting the client's)."""
    return _mac(token, "server", client_nonce, server_nonce, binding)


def proves(expected: str, supplied: object) -> bool:
    """Whether ``supplied`` (from a peer: anything) is ``expected``, compared in constant time."""
    if not isinstance(supplied, str):
        return False
    return hmac.compare_digest(expected.encode(), supplied.encode("utf-8", "replace"))


def _mac(token: str, label: str, first: str, second: str, binding: Binding) -> str:
    # A JSON array: no field can be made to run into the next (a claim may hold any printable character).
    fields = [label, first, second, SUBPROTOCOL, binding.target, binding.address, binding.node, binding.session]
    text = json.dumps(fields, ensure_ascii=True, separators=(",", ":"))
    return hmac.new(token.encode("utf-8", "surrogateescape"), text.encode(), hashlib.sha256).hexdigest()
