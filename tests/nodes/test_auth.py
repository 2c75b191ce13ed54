"""The token never crosses the wire for mesh clients: a mutual challenge-response (mesh.auth), on real sockets.

A squatter is a plain asyncio server on the port a grid names, where the node is not:
it keeps every byte a client sends it (websocket frames unmasked), so the tests can
search them for the token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from mesh import auth, protocol
from mesh.errors import PeerUnavailable
from mesh.grid import build_grid
from mesh.requests import query_status, send_once
from tests.helpers import DEADLINE, environment, free_ports, run_arduino, until, write_grid
from tests.nodes.test_delivery import started

TOKEN = "sesame-" + "7" * 24
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def token_grid(port: int = 0):
    return build_grid(
        {"rx": {"sketch": "recorder", "port": port}, "tx": {"sketch": "recorder"}},
        ["tx -> rx"],
        auth_token_env="TEST_MESH_TOKEN",
    )


class Squatter:
    """A listener on a node's port that is not the node; it keeps what clients send it.

    ``answer=False``: it reads the handshake request and hangs up. ``answer=True``: it
    completes the handshake as a node of the mesh would, with a nonce of its own, and
    answers the hello with a proof it made up.
    """

    def __init__(self, port: int, *, answer: bool) -> None:
        self.port = port
        self.answer = answer
        self.received = bytearray()  # requests and unmasked frame payloads
        self.frames: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Squatter:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.received += head
            if not self.answer:
                return
            key = re.search(rb"(?i)\r\nSec-WebSocket-Key: *(\S+)", head)
            assert key is not None
            accept = base64.b64encode(hashlib.sha1(key.group(1) + GUID).digest())
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: arduino-mesh.1\r\n"
                b"Mesh-Nonce: " + auth.nonce().encode() + b"\r\n\r\n"
            )
            while True:
                first, second = await reader.readexactly(2)
                length = second & 0x7F
                if length == 126:
                    length = int.from_bytes(await reader.readexactly(2), "big")
                elif length == 127:
                    length = int.from_bytes(await reader.readexactly(8), "big")
                mask = await reader.readexactly(4) if second & 0x80 else b"\0\0\0\0"
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(await reader.readexactly(length)))
                self.frames.append(payload)
                self.received += payload
                if first & 0x0F == 8:  # close
                    return
                hello = protocol.encode(protocol.Hello(node="rx", proof="0" * 64)).encode()
                writer.write(bytes([0x81, len(hello)]) + hello)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.mark.parametrize("answer", [False, True], ids=["hangs-up", "answers-with-a-made-up-proof"])
async def test_a_squatter_gets_no_token_from_a_link_which_sends_it_nothing_and_waits_for_the_node(caplog, answer):
    """A link to a squatter: no token bytes in what it gets, no message; the link retries and reaches the node later."""
    caplog.set_level(logging.INFO)
    (port,) = free_ports(1)
    grid = token_grid(port)
    tx = await started("tx", grid, token=TOKEN)
    rx = None
    sending: asyncio.Task | None = None
    try:
        async with Squatter(port, answer=answer) as squatter:
            sending = asyncio.create_task(tx.sketch.stream("rx", "tick 1"))
            await until(lambda: squatter.connections >= 3, "the link to try the squatter again (backoff)")
            assert not sending.done()
        assert TOKEN.encode() not in squatter.received
        assert b"Authorization" not in squatter.received
        assert not any(b'"msg"' in frame for frame in squatter.frames), squatter.frames
        if answer:
            hellos = [json.loads(frame) for frame in squatter.frames if frame.startswith(b"{")]
            assert hellos and all(h["type"] == "hello" and len(h["proof"]) == 64 for h in hellos)
            refused = [
                r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "prove" in r.getMessage()
            ]
            assert refused[:1] == [
                f"rx at ws://127.0.0.1:{port} does not prove it knows the mesh's token: not sending to it"
            ]
            assert len(refused) == 1  # one line, then the "waiting for" lines say it
        rx = await started("rx", grid, token=TOKEN)
        assert await asyncio.wait_for(sending, DEADLINE) == ["got tick 1"]
        assert rx.sketch.seen == ["tick 1"]
    finally:
        if sending is not None and not sending.done():
            sending.cancel()
        await tx.stop()
        if rx is not None:
            await rx.stop()


async def test_a_node_that_does_not_know_the_token_is_refused_by_a_link(caplog):
    """A real node of a grid without auth, where the link expects one: it proves nothing, gets nothing."""
    caplog.set_level(logging.INFO)
    open_grid = build_grid({"rx": {"sketch": "recorder", "port": 0}})
    rx = await started("rx", open_grid)
    tx = await started("tx", token_grid(rx.port), token=TOKEN)
    sending = asyncio.create_task(tx.sketch.stream("rx", "tick"))
    try:
        await until(lambda: any("does not prove" in r.getMessage() for r in caplog.records), "the refusal")
        await until(lambda: rx.server.connections >= 3, "a few retries (backoff)")  # none of them sends it
        assert rx.sketch.seen == []
    finally:
        sending.cancel()
        await tx.stop()
        await rx.stop()


@pytest.mark.e2e  # ./arduino.py as a real subprocess
@pytest.mark.parametrize("command", [["send", "buzzer", "1"], ["status"]])
async def test_the_cli_sends_a_squatter_no_token_and_says_so_in_one_line(tmp_path, command):
    """./arduino.py send/status to a port held by a squatter: no token bytes; one clear line."""
    (port,) = free_ports(1)
    grid = write_grid(
        tmp_path, f"auth: {{token_env: MESH_TOKEN}}\nnodes:\n  buzzer: {{sketch: buzzer, port: {port}}}\n"
    )
    async with Squatter(port, answer=True) as squatter:
        done = await asyncio.to_thread(run_arduino, "--grid", grid, *command, env=environment(MESH_TOKEN=TOKEN))
    assert done.returncode == 1
    assert TOKEN.encode() not in squatter.received and squatter.connections == 1
    assert b"Mesh-Nonce: " in squatter.received
    assert not any(b'"msg"' in frame or b'"status"' in frame for frame in squatter.frames)
    why = "it does not prove it knows the mesh's token: not sending to it"
    if command[0] == "send":
        assert done.stderr == f"Error: cannot reach buzzer at ws://127.0.0.1:{port}: {why}\n"
    else:
        assert why in done.stdout and "Traceback" not in done.stderr


async def test_a_client_with_the_wrong_token_gets_no_report_and_reaches_nothing(caplog):
    """Wrong token: refused in one line; a client that skips or fakes the hello gets an error frame and 1008, no more."""
    rx = await started("rx", token_grid(), token=TOKEN)
    uri = f"ws://{rx.address}"
    try:
        with pytest.raises(PeerUnavailable, match=r"refused the handshake: wrong or missing token$"):
            await query_status("rx", uri, within=DEADLINE, token="wrong")
        with pytest.raises(PeerUnavailable, match=r"refused the handshake: wrong or missing token$"):
            await send_once("rx", uri, "", "x", within=DEADLINE, token="wrong")
        first_frames = [
            protocol.encode(protocol.Status(id=1)),
            protocol.encode(protocol.Subscribe(id=1, pattern="#")),
            protocol.encode(protocol.Message(id=1, channel="", data="sneaked")),
            protocol.encode(protocol.Hello(node="tx")),  # no proof
            protocol.encode(protocol.Hello(node="tx", proof="0" * 64)),
            protocol.batch([protocol.encode(protocol.Hello(node="tx", proof="0" * 64)), '{"type":"status","id":2}']),
            "not json",
        ]
        for first in first_frames:
            headers = {auth.NONCE_HEADER: auth.nonce()}
            async with connect(uri, subprotocols=["arduino-mesh.1"], additional_headers=headers) as ws:
                assert auth.is_nonce(ws.response.headers[auth.NONCE_HEADER])
                await ws.send(first)
                await ws.send(protocol.encode(protocol.Status(id=3)))
                answers = []
                with pytest.raises(ConnectionClosed) as closed:
                    while True:
                        answers.append(json.loads(await asyncio.wait_for(ws.recv(), DEADLINE)))
            assert answers == [{"type": "error", "id": None, "error": "wrong or missing token"}], first
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "wrong or missing token")
        # Nothing reached loop(), nobody subscribed; the right token still gets in.
        assert rx.sketch.seen == []
        assert (await query_status("rx", uri, within=DEADLINE, token=TOKEN))["subscribers"] in (0, {}, [])
        assert await send_once("rx", uri, "", "right", within=DEADLINE, token=TOKEN) == "got right"
        assert rx.sketch.seen == ["right"]
        assert not any(TOKEN in r.getMessage() for r in caplog.records)
    finally:
        await rx.stop()


async def test_a_nonce_without_the_mesh_subprotocol_or_of_the_wrong_shape_gets_401():
    """The nonce opens only a mesh handshake, and only a well-formed one: anything else still needs the token."""
    rx = await started("rx", token_grid(), token=TOKEN)
    try:
        for subprotocols, nonce in [(None, auth.nonce()), (["arduino-mesh.1"], "abc"), (["arduino-mesh.1"], "G" * 64)]:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(
                    f"ws://{rx.address}", subprotocols=subprotocols, additional_headers={auth.NONCE_HEADER: nonce}
                ):
                    pass
            assert refused.value.response.status_code == 401
    finally:
        await rx.stop()


async def test_a_link_needs_no_token_where_the_grid_has_none():
    """No auth: no nonce, no proof, as before."""
    grid = build_grid({"rx": {"sketch": "recorder", "port": 0}, "tx": {"sketch": "recorder"}}, ["tx -> rx"])
    rx = await started("rx", grid)
    tx = await started("tx", grid.with_node("rx", port=rx.port))
    try:
        assert await tx.sketch.stream("rx", "plain") == ["got plain"]
    finally:
        await tx.stop()
        await rx.stop()


@pytest.mark.parametrize("token", [None, TOKEN], ids=["no token", "token"])
async def test_a_hello_meant_for_another_node_is_refused_and_the_link_says_who_answered(token, caplog):
    """A link to `ghost` whose address another node answers (a stale grid, a relay): that node handles nothing and
    refuses the hello (with a token, the proofs are bound to the node dialled too); the link keeps trying, naming it."""
    caplog.set_level(logging.INFO)
    auth_section = {"auth_token_env": "MESH_TOKEN"} if token else {}
    grid = build_grid(
        {
            "rx": {"sketch": "recorder", "port": 0},
            "ghost": {"sketch": "recorder", "port": 0},
            "tx": {"sketch": "recorder"},
        },
        ["tx -> ghost"],
        **auth_section,
    )
    rx = await started("rx", grid, token=token)
    tx = await started("tx", grid.with_node("ghost", port=rx.port), token=token)
    try:
        (future,) = await tx.sender.post("ghost", "not for rx")
        line = "rx answers at ghost's address, not ghost (a stale address, or a relay): not sending to it"
        await until(lambda: line in caplog.text, "the link's line naming who answered")
        assert not future.done() and rx.reactor.messages_in == 0
        assert tx.sender.links["ghost"].state in ("connecting", "retrying")
        assert "refused a hello from 127.0.0.1:" in caplog.text and "meant for ghost" in caplog.text
    finally:
        await tx.stop()
        await rx.stop()
