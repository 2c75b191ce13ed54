"""The mesh's greeting: how a client's opening handshake ends with hello frames, and the token proved.

A mesh client (a link, or a one-shot CLI request) connects with websockets' ``connect()``
and a :class:`~mesh.wall.MeshClientConnection`, whose opening handshake ends with the
:class:`Greeting` made here: the client sends its hello, the node answers with its own. On a
grid with a token, neither side sends it: the client offers a fresh nonce in its request
(``Mesh-Nonce``), the node answers the 101 with its own, and each hello carries a proof built
on both (:mod:`mesh.auth`). A peer that does not prove it is refused before anything is sent
to it; a node that refuses our token (close 1008, or an error frame) is a fatal failure.

A failure is :class:`GreetingFailed`, one of websockets' ``InvalidHandshake`` errors, so that
``connect()`` retries it with the link's backoff, or gives up, as on any failed handshake.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from . import auth, protocol
from .errors import ProtocolError

__all__ = ["NOT_PROVEN", "REFUSED", "WRONG_TOKEN", "Greeting", "GreetingFailed", "auth_headers", "greeting"]

#: What a node says (error frame, close reason) to a client that does not prove it knows the token.
WRONG_TOKEN = "wrong or missing token"
#: Why a mesh client refuses a peer, and why a node refused us.
NOT_PROVEN = "it does not prove it knows the mesh's token: not sending to it"
REFUSED = f"refused the handshake: {WRONG_TOKEN}"


class GreetingFailed(InvalidHandshake):
    """The hello frames that end a mesh handshake went wrong.

    ``fatal``: retrying cannot help (the node refused our token); otherwise the link
    retries with its backoff (a peer that does not prove it knows the token may be a
    squatter on the port of a node that will come back).
    """

    def __init__(self, reason: str, *, fatal: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal

    def __str__(self) -> str:
        return self.reason


class Greeting:
    """One connection's greeting: the hello it sends (``hello()``), and the proofs when there is a ``token``.

    The peer's hello is kept in :attr:`peer_hello` once the greeting succeeded.
    """

    def __init__(self, hello: Callable[[], protocol.Hello], token: str | None) -> None:
        self.hello = hello
        self.token = token
        self.client_nonce = auth.nonce()
        self.peer_hello: protocol.Hello | None = None

    def request_headers(self) -> dict[str, str]:
        return {auth.NONCE_HEADER: self.client_nonce} if self.token else {}

    async def greet(self, ws: ClientConnection) -> bool:
        """Send our hello, read the peer's; False (nothing exchanged) if the peer does not speak the mesh protocol."""
        if ws.subprotocol != protocol.SUBPROTOCOL:
            return False  # the caller says the peer does not speak it
        hello = self.hello()
        server_nonce = ""
        if self.token:
            assert ws.response is not None
            nonces = ws.response.headers.get_all(auth.NONCE_HEADER)
            server_nonce = nonces[0] if len(nonces) == 1 and auth.is_nonce(nonces[0]) else ""
            if not server_nonce:  # not a node of this mesh: it gets no proof to work on
                raise GreetingFailed(NOT_PROVEN)
            proof = auth.client_proof(self.token, self.client_nonce, server_nonce)
            hello = protocol.Hello(node=hello.node, session=hello.session, proof=proof)
        try:
            await ws.send(protocol.encode(hello))
            raw = await ws.recv()
            answer = protocol.decode(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
        except ConnectionClosed as exc:
            if self.token and exc.rcvd is not None and exc.rcvd.code == 1008:
                raise GreetingFailed(REFUSED, fatal=True) from None
            raise GreetingFailed("the connection closed before its hello (connection closed)") from None
        except ProtocolError as exc:
            raise GreetingFailed(f"it answered the hello with a bad frame: {exc}") from None
        if isinstance(answer, protocol.Error) and self.token:
            raise GreetingFailed(REFUSED, fatal=True)
        if not isinstance(answer, protocol.Hello):
            raise GreetingFailed(f"it answered the hello with a {type(answer).__name__.lower()} frame, not a hello")
        if self.token and not auth.proves(auth.server_proof(self.token, self.client_nonce, server_nonce), answer.proof):
            raise GreetingFailed(NOT_PROVEN)
        self.peer_hello = answer
        return True


def greeting(hello: Callable[[], protocol.Hello], token: str | None) -> Callable[[], Greeting]:
    """What :func:`mesh.wall.mesh_client` takes: a fresh :class:`Greeting` per connection."""
    return partial(Greeting, hello, token)


def auth_headers(token: str | None) -> dict[str, str]:
    """The handshake headers that present the mesh's token itself (none without one).

    For plain websocket clients and browsers only: mesh clients prove the token
    without sending it (:class:`Greeting`).
    """
    return {"Authorization": f"Bearer {token}"} if token else {}
