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

__all__ = [
    "NOT_PROVEN",
    "REFUSED",
    "WRONG_NODE",
    "WRONG_TOKEN",
    "Greeting",
    "GreetingFailed",
    "auth_headers",
    "greeting",
    "wrong_node",
]

#: What a node says (error frame, close reason) to a client that does not prove it knows the token.
WRONG_TOKEN = "wrong or missing token"
#: The close reason of a node that a hello meant for another node reached (a stale address, a relay).
WRONG_NODE = "wrong node"
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


def wrong_node(node: str, target: str) -> str:
    """What node ``node`` answers a hello meant for ``target``."""
    return f"this is {node}, not {target}: {WRONG_NODE}"


class Greeting:
    """One connection's greeting to ``target``: the hello it sends (``hello()``), and the proofs with a ``token``.

    The hello names the node dialled (``to``); the proofs are bound to it, to the address
    dialled and to the hello's claims (:class:`mesh.auth.Binding`). The peer's hello is kept
    in :attr:`peer_hello` once the greeting succeeded.
    """

    def __init__(self, hello: Callable[[], protocol.Hello], token: str | None, target: str = "") -> None:
        self.hello = hello
        self.token = token
        self.target = target
        self.client_nonce = auth.nonce()
        self.peer_hello: protocol.Hello | None = None

    def request_headers(self) -> dict[str, str]:
        return {auth.NONCE_HEADER: self.client_nonce} if self.token else {}

    async def greet(self, ws: ClientConnection) -> bool:
        """Send our hello, read the peer's; False (nothing exchanged) if the peer does not speak the mesh protocol."""
        if ws.subprotocol != protocol.SUBPROTOCOL:
            return False  # the caller says the peer does not speak it
        mine = self.hello()
        hello = protocol.Hello(node=mine.node, session=mine.session, to=self.target)
        server_nonce = ""
        binding = auth.Binding(self.target, "", hello.node, hello.session)
        if self.token:
            assert ws.response is not None and ws.request is not None
            nonces = ws.response.headers.get_all(auth.NONCE_HEADER)
            server_nonce = nonces[0] if len(nonces) == 1 and auth.is_nonce(nonces[0]) else ""
            if not server_nonce:  # not a node of this mesh: it gets no proof to work on
                raise GreetingFailed(NOT_PROVEN)
            binding = auth.Binding(self.target, ws.request.headers.get("Host", ""), hello.node, hello.session)
            proof = auth.client_proof(self.token, self.client_nonce, server_nonce, binding)
            hello = protocol.Hello(node=hello.node, session=hello.session, proof=proof, to=self.target)
        try:
            await ws.send(protocol.encode(hello))
            raw = await ws.recv()
            answer = protocol.decode(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == 1008 and exc.rcvd.reason == WRONG_NODE:
                raise GreetingFailed(self._another_node()) from None
            if self.token and exc.rcvd is not None and exc.rcvd.code == 1008:
                raise GreetingFailed(REFUSED, fatal=True) from None
            raise GreetingFailed("the connection closed before its hello (connection closed)") from None
        except ProtocolError as exc:
            raise GreetingFailed(f"it answered the hello with a bad frame: {exc}") from None
        if isinstance(answer, protocol.Error) and answer.error.endswith(f": {WRONG_NODE}"):
            raise GreetingFailed(self._another_node(answer.error))  # not fatal: the node dialled may come back
        if isinstance(answer, protocol.Error) and self.token:
            raise GreetingFailed(REFUSED, fatal=True)
        if not isinstance(answer, protocol.Hello):
            raise GreetingFailed(f"it answered the hello with a {type(answer).__name__.lower()} frame, not a hello")
        expected = self.token and auth.server_proof(self.token, self.client_nonce, server_nonce, binding)
        if expected and not auth.proves(expected, answer.proof):
            raise GreetingFailed(NOT_PROVEN)
        self.peer_hello = answer
        return True

    def _another_node(self, said: str = "") -> str:
        """Why a node that is not ``target`` answered at its address: one line."""
        who = said.split(",", 1)[0].removeprefix("this is ") if said.startswith("this is ") else "another node"
        return f"{who} answers at {self.target}'s address, not {self.target} (a stale address, or a relay): not sending to it"


def greeting(hello: Callable[[], protocol.Hello], token: str | None, target: str = "") -> Callable[[], Greeting]:
    """What :func:`mesh.wall.mesh_client` takes: a fresh :class:`Greeting` per connection to ``target``."""
    return partial(Greeting, hello, token, target)


def auth_headers(token: str | None) -> dict[str, str]:
    """The handshake headers that present the mesh's token itself (none without one).

    For plain websocket clients and browsers only: mesh clients prove the token
    without sending it (:class:`Greeting`).
    """
    return {"Authorization": f"Bearer {token}"} if token else {}
