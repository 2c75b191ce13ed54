"""What a node answers before any websocket: the token, its pages, a line of help, the 400s.

Every connection to a node's port starts as an HTTP request. :class:`Entrance` sees it
first (websockets' ``process_request``): a request a node cannot take gets a 400 that says
what was wrong and how to talk to a node; a grid with a token refuses who does not present
it (401), except a mesh client that offers a nonce to prove it in its hello instead
(:mod:`mesh.handshake`); a plain GET is a sketch's page (``http()``) or a line saying what
the node is (426). A HEAD is answered as its GET is, without the body; a handshake of a
WebSocket version other than 13 gets a 400 naming 13 (RFC 6455 §4.2.2). The node's nonce
for such a client rides on its 101 (``process_response``).
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import weakref
from dataclasses import dataclass
from http import HTTPStatus
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeader
from websockets.headers import parse_subprotocol
from websockets.http11 import Request, Response

from mesh import auth, protocol
from mesh.throttle import Throttle, escape
from mesh.wall import HTTP_HELP, QUOTED, cap_frames, set_socket_buffers

__all__ = [
    "PREAUTH_BYTES",
    "SINGLE_HEADERS",
    "SOCKET_BUFFER",
    "WEBSOCKET_VERSION",
    "Challenge",
    "Entrance",
    "peer_host",
    "peer_name",
    "token_matches",
]

#: Headers the node reads in a handshake: each may come once (a duplicate gets a 400, not a guess).
SINGLE_HEADERS = ("Host", "Upgrade", "Authorization", "Sec-WebSocket-Key", "Sec-WebSocket-Version", auth.NONCE_HEADER)
#: The one version of the WebSocket protocol there is (RFC 6455), named in the 400 to any other.
WEBSOCKET_VERSION = "13"
#: Bytes a frame in progress may hold before a mesh client that proves the token has proved it.
PREAUTH_BYTES = 4096
#: The kernel's buffers per client socket, each way (autotuning would let a peer that does not
#: read, or floods, hold up to tcp_rmem's/tcp_wmem's maximum: megabytes each).
SOCKET_BUFFER = 256 * 1024


def peer_name(connection: ServerConnection) -> str:
    """``host:port`` of the client, for a log line."""
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if address else "a client"


def peer_host(connection: ServerConnection) -> str:
    """The client's host, without its port: what repeated warnings are counted by."""
    address = connection.remote_address
    return str(address[0]) if address else ""


def _offers_mesh(request: Request) -> bool:
    """Whether the handshake asks for the mesh subprotocol."""
    try:
        offered = [
            name for value in request.headers.get_all("Sec-WebSocket-Protocol") for name in parse_subprotocol(value)
        ]
    except InvalidHeader:
        return False
    return protocol.SUBPROTOCOL in offered


def token_matches(request: Request, token: str) -> bool:
    """Whether the request presents ``token``: ``Authorization: Bearer`` or, for browsers, ``?token=``.

    Compared in constant time; the token is never logged.
    """
    supplied = ""
    authorization = request.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        supplied = authorization[len("Bearer ") :].strip()
    else:
        supplied = parse_qs(urlsplit(request.path).query).get("token", [""])[0]
    return hmac.compare_digest(supplied.encode(), token.encode())


@dataclass(frozen=True)
class Challenge:
    """What a mesh client that proves the token is to prove it over: both nonces, and the address it dialled."""

    client_nonce: str
    server_nonce: str
    #: The request's ``Host``: the address as the client dialled it (one header at most: SINGLE_HEADERS).
    address: str


class Host(Protocol):
    """What the entrance needs of its node."""

    name: str
    log: logging.Logger
    token: str | None

    @property
    def address(self) -> str | None: ...

    def describe(self) -> str:
        """One line for a plain HTTP visitor: what this node is."""
        ...

    def http(self, path: str) -> tuple[int, str, bytes] | None:
        """A plain HTTP request: ``(status, content type, body)``, or None."""
        ...

    def is_public(self, path: str) -> bool:
        """Whether ``path`` is served without the mesh's token."""
        ...


class Entrance:
    """A node's answers to HTTP requests, and the challenges of mesh clients that prove the token."""

    def __init__(self, node: Host) -> None:
        self.node = node
        #: (client nonce, node nonce) of mesh clients that are to prove the token in their hello.
        self.challenges: weakref.WeakKeyDictionary[ServerConnection, Challenge] = weakref.WeakKeyDictionary()
        #: Warnings a client can repeat at will (a wrong token): one line, then a count.
        self.throttle = Throttle(node.log)
        #: ``ws`` or ``wss`` (the grid has tls): what the node's help text tells a visitor to use.
        self.scheme = "ws"

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Before the handshake: check the token, and answer plain HTTP with a line of help.

        A mesh client that offers a nonce (``Mesh-Nonce``) instead of the token gets in
        here and proves the token in its hello (:func:`nodes.conversation.mesh_session`).
        """
        set_socket_buffers(connection, SOCKET_BUFFER)
        if request.method == "HEAD":  # what GET would answer, without its body (RFC 9110 §9.3.2)
            response = self._answer(connection, request)
            if response is None:  # a websocket opens with GET only
                return self._bad_method(connection, request)
            return dataclasses.replace(response, body=b"")  # Content-Length stays the GET's
        return self._answer(connection, request)

    def _bad_method(self, connection: ServerConnection, request: Request) -> Response:
        method = escape(request.method, QUOTED, ascii_only=True)
        text = f"400 Bad Request: unsupported HTTP method; expected GET; got {method}\n{HTTP_HELP}"
        return connection.respond(HTTPStatus.BAD_REQUEST, text)

    def _answer(self, connection: ServerConnection, request: Request) -> Response | None:
        """What a GET (or the GET a HEAD stands for) is answered with; None: on to the handshake."""
        node = self.node
        if request.method not in ("GET", "HEAD"):  # websockets parses any method; a node serves GET (and HEAD)
            return self._bad_method(connection, request)
        for name in SINGLE_HEADERS:
            count = len(request.headers.get_all(name))
            if count > 1:
                node.log.debug("bad request from %s: %d %s headers", peer_name(connection), count, name)
                text = f"400 Bad Request: the {name} header came {count} times; send it once.\n{HTTP_HELP}"
                return connection.respond(HTTPStatus.BAD_REQUEST, text)
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        version = request.headers.get("Sec-WebSocket-Version")
        if upgrade and version is not None and version != WEBSOCKET_VERSION:
            # RFC 6455 §4.2.2: a version the server does not speak is refused with the ones it does.
            shown = escape(version, QUOTED, ascii_only=True)
            text = f"400 Bad Request: this node speaks WebSocket version {WEBSOCKET_VERSION} (RFC 6455), not {shown}\n{HTTP_HELP}"
            response = connection.respond(HTTPStatus.BAD_REQUEST, text)
            response.headers["Sec-WebSocket-Version"] = WEBSOCKET_VERSION
            return response
        path = urlsplit(request.path).path
        public = not upgrade and node.is_public(path)
        if node.token is not None and not public and not token_matches(request, node.token):
            client_nonce = request.headers.get(auth.NONCE_HEADER)
            if upgrade and _offers_mesh(request) and auth.is_nonce(client_nonce):
                assert client_nonce is not None
                self.challenges[connection] = Challenge(client_nonce, auth.nonce(), request.headers.get("Host", ""))
                cap_frames(connection, PREAUTH_BYTES)  # a hello is small: nothing larger is held before it is proved
                return None
            self.throttle.warn(
                ("token", peer_host(connection)),
                "refused a connection from %s: wrong or missing token",
                peer_name(connection),
            )
            return connection.respond(HTTPStatus.UNAUTHORIZED, "401 Unauthorized: this mesh needs its token\n")
        if not upgrade:
            page = node.http(path)
            if page is not None:
                status, content_type, body = page
                headers = Headers(
                    [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-cache")]
                )
                return Response(status, HTTPStatus(status).phrase, headers, body)
            text = (
                f"{node.describe()}; it speaks websockets.\n"
                f"Try: websocat {self.scheme}://{node.address}/   or   arduino-mesh send {node.name} MESSAGE"
                " (./arduino.py send in a checkout)\n"
            )
            response = connection.respond(HTTPStatus.UPGRADE_REQUIRED, text)
            response.headers["Upgrade"] = "websocket"  # a 426 says what to upgrade to (RFC 9110)
            return response
        return None

    def process_response(self, connection: ServerConnection, request: Request, response: Response) -> None:
        """After the handshake: a mesh client that is to prove the token gets the node's nonce with its 101."""
        challenge = self.challenges.get(connection)
        if challenge is None:
            return
        if response.status_code == HTTPStatus.SWITCHING_PROTOCOLS and connection.subprotocol == protocol.SUBPROTOCOL:
            response.headers[auth.NONCE_HEADER] = challenge.server_nonce
        else:
            del self.challenges[connection]
