"""mesh.requests: one-shot requests (send, status), as the CLI makes them, against real listeners on port 0."""

from __future__ import annotations

import asyncio
import socket

import pytest

from mesh.errors import NotAnswering, PeerUnavailable
from mesh.requests import query_status, send_once
from tests.helpers import MS, SilentPeer
from tests.mesh.test_reconnect import closed_port


async def test_one_shot_requests_tell_refused_from_not_answering():
    """request(): nothing listening is PeerUnavailable (refused); a TCP listener that never speaks is NotAnswering
    (no handshake); a mesh peer that greets but never acks is NotAnswering too (no answer)."""
    with pytest.raises(PeerUnavailable, match=r"connection refused$") as refused:
        await send_once("ghost", f"ws://127.0.0.1:{closed_port()}", "", "x", within=1000 * MS)
    assert not isinstance(refused.value, NotAnswering)

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # takes the connection, says nothing: a blocked event loop looks like this
        writer.close()

    listener = await asyncio.start_server(mute, "127.0.0.1", 0)
    try:
        uri = f"ws://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
        with pytest.raises(NotAnswering) as silent:
            await query_status("sleepy", uri, open_timeout=1000 * MS, within=100 * MS)
        assert str(silent.value) == (
            f"sleepy at {uri} is not answering: it took the connection but no handshake came within {100 * MS:g} s"
        )
    finally:
        listener.close()

    peer = SilentPeer("sleepy")
    try:
        uri = f"ws://127.0.0.1:{peer.port}"
        with pytest.raises(NotAnswering, match=rf"^sleepy at {uri} is not answering: no answer within {100 * MS:g} s$"):
            await send_once("sleepy", uri, "", "x", within=100 * MS)
    finally:
        peer.close()


@pytest.mark.parametrize(
    ("host", "family", "address"),
    [("127.0.0.1", socket.AF_INET, ("127.0.0.1", 8765)), ("::1", socket.AF_INET6, ("::1", 8765))],
)
async def test_a_literal_address_is_used_without_the_resolver(host, family, address):
    """A one-shot request to a literal address asks no resolver: no thread, whose wall time would move virtual time."""
    from mesh.requests import _addresses

    loop = asyncio.get_running_loop()
    resolved = []

    async def resolver(*args, **kwargs):
        resolved.append(args)
        return []

    loop.getaddrinfo = resolver  # type: ignore[method-assign]  # (this test's own loop)
    try:
        assert await _addresses(loop, host, 8765) == [(family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", address)]
        assert resolved == []
        assert await _addresses(loop, "localhost", 8765) == []
        assert resolved == [("localhost", 8765)]
    finally:
        del loop.getaddrinfo
