"""One-shot requests, for the command line: open a connection, ask one thing, close it.

:func:`request` sends one frame and returns the answer with its id; :func:`send_once` sends a
message and returns its ack (``send``); :func:`query_status` asks for a node's status report
(``status``). Each opens its TCP connection before the websocket handshake, so that a peer
that is not there (refused: :class:`~mesh.errors.PeerUnavailable`) is told from one that is
there but silent (no handshake: :class:`~mesh.errors.NotAnswering`). A TLS failure that leaves
a doubt is made exact by a second, short handshake (:func:`_probed`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Mapping
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from . import protocol
from .constants import OPEN_TIMEOUT
from .errors import MeshError, NotAnswering, PeerUnavailable, RemoteError
from .failures import MAYBE_PLAIN, MAYBE_TLS, SPEAKS_PLAIN, SPEAKS_TLS, describe_error
from .handshake import greeting
from .network import network_of
from .reconnect import CLIENT, tls_options
from .tls import MeshContext, client_context, names_mismatch
from .wall import mesh_client

__all__ = ["PROBE_TIMEOUT", "query_status", "request", "send_once"]

#: Seconds the one-shot CLI request spends finding out more about a TLS failure (a second handshake).
PROBE_TIMEOUT = 1.0


async def request(
    peer: str,
    uri: str,
    frame: protocol.Frame,
    *,
    sender: str = "cli",
    open_timeout: float = OPEN_TIMEOUT,
    within: float | None = None,
    headers: Mapping[str, str] | None = None,
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> protocol.Frame:
    """Open a connection, send one frame, return the answer with the same id, close: for the CLI.

    ``open_timeout`` bounds opening the connection; ``within``, if given, the whole call.
    Refused, unreachable, or a TCP connection that times out: :class:`PeerUnavailable`.
    A peer whose TCP connection opens (the kernel accepts it for a live process) but
    that does not complete the handshake or answer in time: :class:`NotAnswering`,
    busy (a sketch blocking its event loop) or stopped, but there. With a ``token``,
    the peer must prove it knows it before the frame is sent (:class:`MeshClientConnection`).
    With an ``ssl_context`` (``wss://``), the peer's certificate is verified; a TLS failure
    is one line (:func:`mesh.tls.describe_tls_error`), no retry.
    """
    frame_id = getattr(frame, "id", None)
    phase = "connecting"
    try:
        async with asyncio.timeout(within):
            # A simulated network refuses at once, in connect(): there is no TCP phase to tell apart.
            sock = None if _simulated(uri) else await _open_socket(uri)
            phase = "handshake"
            hello = partial(protocol.Hello, node=sender)
            async with connect(
                uri,
                **CLIENT,
                sock=sock,
                open_timeout=open_timeout,
                additional_headers=headers,
                create_connection=mesh_client(greeting(hello, token, peer)),
                **tls_options(ssl_context),
            ) as ws:
                phase = "answer"
                if ws.subprotocol != protocol.SUBPROTOCOL:
                    raise PeerUnavailable(peer, uri, f"it does not speak {protocol.SUBPROTOCOL}")
                await ws.send(protocol.encode(frame))
                async for raw in ws:
                    answer = protocol.decode(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
                    if isinstance(answer, protocol.Error) and answer.id in (frame_id, None):
                        raise RemoteError(peer, answer.error)
                    if getattr(answer, "id", None) == frame_id and not isinstance(answer, protocol.Hello):
                        return answer
                raise PeerUnavailable(peer, uri, "the connection closed before the answer came")
    except TimeoutError:
        if phase == "handshake":
            waited = open_timeout if within is None else min(within, open_timeout)
            raise NotAnswering(peer, uri, f"it took the connection but no handshake came within {waited:g} s") from None
        if phase == "answer":
            raise NotAnswering(peer, uri, f"no answer within {within:g} s") from None
        raise PeerUnavailable(peer, uri, "timed out connecting") from None
    except (OSError, InvalidHandshake, ConnectionClosed) as exc:
        why = describe_error(exc, ssl_context, plain=ssl_context is None)
        raise PeerUnavailable(peer, uri, await _probed(why, exc, uri, ssl_context)) from None


async def _probed(why: str, exc: BaseException, uri: str, ssl_context: ssl.SSLContext | None) -> str:
    """``why`` made exact by a second, short TLS handshake, where a TLS failure leaves a doubt (CLI only).

    A plain client that got no HTTP answer learns whether the peer speaks TLS, a TLS
    client cut during its handshake whether the peer speaks plain HTTP; a certificate
    for another host says which names it holds.
    """
    parts = urlsplit(uri)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            if why == MAYBE_PLAIN:
                reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
                writer.write(f"GET / HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode())
                answer = await reader.read(5)
                writer.close()
                return SPEAKS_PLAIN if answer == b"HTTP/" else why
            if why == MAYBE_TLS:
                probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                probe.check_hostname = False
                probe.verify_mode = ssl.CERT_NONE  # only: does it speak TLS at all? Nothing is sent.
                _, writer = await asyncio.open_connection(parts.hostname, parts.port, ssl=probe)
                writer.close()
                return SPEAKS_TLS
            if (
                isinstance(exc, ssl.SSLCertVerificationError)
                and exc.verify_code in (62, 64)
                and isinstance(ssl_context, MeshContext)
                and ssl_context.tls is not None
            ):
                names = client_context(ssl_context.tls, check_hostname=False)  # still signed by the grid's CA
                _, writer = await asyncio.open_connection(parts.hostname, parts.port, ssl=names)
                cert = writer.get_extra_info("peercert") or {}
                writer.close()
                found = [str(value) for kind, value in cert.get("subjectAltName", ()) if kind in ("DNS", "IP Address")]
                return names_mismatch(str(parts.hostname), found)
    except (OSError, TimeoutError, MeshError):
        pass
    return why


def _simulated(uri: str) -> bool:
    """Whether ``uri``'s address is one of the simulated network this loop runs on (a simulation's node)."""
    network = network_of(asyncio.get_running_loop())
    parts = urlsplit(uri)
    return network is not None and network.simulates((str(parts.hostname), parts.port or 0))


async def _open_socket(uri: str) -> socket.socket:
    """A TCP connection to the host and port of ``uri`` (OSError if none opens).

    Opened apart from the websocket handshake, so that a caller can tell a peer that is
    not there (refused) from one that is there but does not answer (no handshake).
    """
    parts = urlsplit(uri)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    loop = asyncio.get_running_loop()
    error: OSError = OSError(f"cannot resolve {parts.hostname}")
    for family, kind, proto, _, address in await _addresses(loop, parts.hostname, port):
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    raise error


async def _addresses(loop: asyncio.AbstractEventLoop, host: str | None, port: int) -> list[tuple[Any, ...]]:
    """Where ``host:port`` is: a literal address as it is, a name through the resolver.

    A literal needs no resolver, and so no thread: ``loop.getaddrinfo`` runs in the loop's
    executor, and in virtual time looptime moves its clock by the wall time a thread takes,
    which made a simulation's ``send`` land a slice later on a busy machine (asyncio's own
    ``create_connection`` takes the same shortcut).
    """
    try:
        literal = ipaddress.ip_address(host or "")
    except ValueError:
        return await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
    return [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (str(literal), port))]


async def send_once(
    peer: str,
    uri: str,
    channel: str,
    text: str,
    *,
    sender: str = "cli",
    open_timeout: float = OPEN_TIMEOUT,
    within: float | None = None,
    headers: Mapping[str, str] | None = None,
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> str:
    """Open a connection, send one message, return its ack, close: for the CLI's ``send``."""
    answer = await request(
        peer,
        uri,
        protocol.Message(id=1, channel=channel, data=text),
        sender=sender,
        open_timeout=open_timeout,
        within=within,
        headers=headers,
        token=token,
        ssl_context=ssl_context,
    )
    assert isinstance(answer, protocol.Ack)
    return answer.data


async def query_status(
    peer: str,
    uri: str,
    *,
    open_timeout: float = 1.0,
    within: float | None = None,
    headers: Mapping[str, str] | None = None,
    token: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> dict[str, object]:
    """A node's status report (see docs/protocol.md)."""
    answer = await request(
        peer,
        uri,
        protocol.Status(id=1),
        open_timeout=open_timeout,
        within=within,
        headers=headers,
        token=token,
        ssl_context=ssl_context,
    )
    assert isinstance(answer, protocol.Report)
    return answer.data
