"""A link's reading half (mesh.replies): what a peer sends back, believed or not, against real servers on port 0."""

from __future__ import annotations

import asyncio
import json
import logging

from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

from mesh import protocol
from mesh.links import Link
from tests.helpers import DEADLINE, fast_backoff, until


async def test_a_peer_publishes_only_its_own_keys():
    """Publications on another node's keys (its ticks, its $state) are refused with an error, counted, never handed on;
    the peer's own keys, its own $state included, are."""
    errors: list[str] = []

    async def forger(ws: ServerConnection) -> None:
        await ws.recv()  # the link's hello
        await ws.send(json.dumps({"type": "hello", "node": "peer"}))
        (sub,) = protocol.decode_all(str(await ws.recv()))
        assert isinstance(sub, protocol.Subscribe)
        await ws.send(protocol.encode(protocol.Ack(id=sub.id, data="subscribed")))
        await ws.send(
            json.dumps(
                [
                    {"type": "pub", "key": "clock/tick", "data": "FORGED"},
                    {"type": "pub", "key": "clock/$state", "data": "offline"},
                    {"type": "pub", "key": "peerless/x", "data": "not peer/ either"},
                    {"type": "pub", "key": "peer/x", "data": "mine"},
                    {"type": "pub", "key": "peer/$state", "data": "online"},
                ]
            )
        )
        async for text in ws:
            for frame in protocol.decode_all(str(text)):
                if isinstance(frame, protocol.Error):
                    errors.append(frame.error)

    heard: list[tuple[str, str]] = []
    subprotocols = [Subprotocol(protocol.SUBPROTOCOL)]
    async with serve(forger, "127.0.0.1", 0, subprotocols=subprotocols) as server:
        port = server.sockets[0].getsockname()[1]
        link = Link(
            node="tx",
            peer="peer",
            uri=f"ws://127.0.0.1:{port}/",
            logger=logging.getLogger("mesh.tx"),
            on_publish=lambda key, data, lost: heard.append((key, data)),
        )
        try:
            assert await link.subscribe("#")
            await until(lambda: len(errors) == 3, "three errors back at the forger")
        finally:
            await link.close()
    assert heard == [("peer/x", "mine"), ("peer/$state", "online")]
    assert link.forged == 3 and link.presence == "online"
    assert errors[0] == "refused a publication on clock/tick: peer publishes only its own keys (peer/...)"


async def test_acks_in_a_batch_refused_whole_are_not_hostages():
    """A peer that answers in a batch past the limit (its acks inside): the link reconnects and re-sends, the peer
    answers again, and the message's ack comes at once, not after the link's whole patience."""
    connections: list[int] = []

    async def oversized_then_fair(ws: ServerConnection) -> None:
        connections.append(1)
        await ws.recv()  # the link's hello
        await ws.send(json.dumps({"type": "hello", "node": "peer"}))
        async for text in ws:
            acks = [{"type": "ack", "id": frame.id, "data": "ok"} for frame in protocol.decode_all(str(text))]
            if len(connections) == 1:  # the first time: the acks hidden in a batch of 300 frames
                acks += [{"type": "ack", "id": 10_000 + i, "data": "padding"} for i in range(300 - len(acks))]
            await ws.send(json.dumps(acks))

    async with serve(oversized_then_fair, "127.0.0.1", 0, subprotocols=[Subprotocol(protocol.SUBPROTOCOL)]) as server:
        port = server.sockets[0].getsockname()[1]
        link = Link(
            node="tx",
            peer="peer",
            uri=f"ws://127.0.0.1:{port}/",
            logger=logging.getLogger("mesh.tx"),
            reconnect_delays=fast_backoff,
            wait=60,
        )
        try:
            future = await link.post("", "hello")
            assert await asyncio.wait_for(future, DEADLINE) == "ok"
            assert len(connections) == 2 and link.connections == 2
        finally:
            await link.close()
