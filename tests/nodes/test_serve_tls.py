"""Nodes over TLS in this test's event loop: a circuit over wss://, and what a wrong certificate looks like."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import socket

import pytest
import trustme
from websockets.asyncio.client import connect

from mesh import reconnect
from mesh.errors import PeerUnavailable
from mesh.grid import Grid, build_grid
from mesh.requests import query_status, send_once
from mesh.tls import client_context
from nodes import server
from nodes.runtime import Node
from nodes.testing import circuit
from sketches.clock import Clock
from tests.certs import TLS_YAML, write_certs
from tests.helpers import DEADLINE, MS, fast_backoff, start_circuit, stop_circuit, until


def tls_grid(folder, tls, *, tacks: int = 5) -> Grid:
    """clock -> iopin -> buzzer on port 0, with the grid's tls naming files in ``folder``."""
    return build_grid(
        {
            "clock": {"sketch": "clock", "params": {"tacks": tacks, "delay": 5 * MS}},
            "iopin": {"sketch": "iopin", "port": 0, "params": {"chance": 1.0, "sequence": 2}},
            "buzzer": {"sketch": "buzzer", "port": 0, "params": {"sound": "beep"}},
        },
        ["clock -> iopin", "iopin -> buzzer"],
        path=str(folder / "grid.yaml"),
        tls=tls,
    )


async def test_a_circuit_over_wss_ticks_and_buzzes(tmp_path):
    """With the grid's tls every node serves wss://, every link verifies it, and the circuit runs."""
    grid = tls_grid(tmp_path, write_certs(tmp_path), tacks=5)
    assert grid.node("buzzer").uri.startswith("wss://")
    nodes = await start_circuit(grid)
    try:
        await asyncio.wait_for(nodes["clock"].wait(), DEADLINE)
        assert list(nodes["clock"].sketch.acks) == ["acknowledged"] * 5
        assert list(nodes["buzzer"].sketch.sounds) == ["beep"] * 10
        assert nodes["clock"].sender.links["iopin"].uri.startswith("wss://127.0.0.1:")
        assert nodes["iopin"].sender.links["buzzer"].connections == 1
    finally:
        await stop_circuit(nodes)


async def test_one_shot_requests_and_the_dashboard_page_over_tls(tmp_path):
    """send_once and query_status verify the node; its HTTP answers (426, 400) come over TLS too."""
    grid = tls_grid(tmp_path, write_certs(tmp_path), tacks=1)
    nodes = await start_circuit(grid)
    try:
        buzzer = nodes["buzzer"]
        uri = f"wss://{buzzer.address}"
        context = client_context(grid.tls)
        assert await send_once("buzzer", uri, "", "1", ssl_context=context, within=DEADLINE) == "beep"
        report = await query_status("buzzer", uri, ssl_context=context, within=DEADLINE)
        assert report["node"] == "buzzer"
        async with connect(uri, ssl=context, open_timeout=DEADLINE) as ws:  # a plain websocket client
            await ws.send("0")
            assert await ws.recv() == "..."
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", buzzer.port, ssl=context, server_hostname="127.0.0.1"
        )
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)).decode()
        body = await asyncio.wait_for(reader.read(500), DEADLINE)
        writer.close()
        assert head.startswith("HTTP/1.1 426")
        assert b"websocat wss://" in body
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", buzzer.port, ssl=context, server_hostname="127.0.0.1"
        )
        writer.write(b"garbage\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(100), DEADLINE)).startswith(b"HTTP/1.1 400")
        writer.close()
    finally:
        await stop_circuit(nodes)


async def _link_log(tmp_path, caplog, monkeypatch, server_tls, client_tls) -> tuple[list[str], str]:
    """The clock's warnings while its link to a buzzer serving with ``server_tls`` fails; the link's last error."""
    monkeypatch.setattr(reconnect, "TLS_RETRY", 20 * MS)  # retried often enough to see that it says it once
    caplog.set_level(logging.INFO)
    served = await start_circuit(
        build_grid({"buzzer": {"sketch": "buzzer", "port": 0}}, path=str(tmp_path / "grid.yaml"), tls=server_tls)
    )
    try:
        grid = build_grid(
            {
                "clock": {"sketch": "clock", "params": {"tacks": 1, "delay": 5 * MS}},
                "buzzer": {"sketch": "buzzer", "port": served["buzzer"].port},
            },
            ["clock -> buzzer"],
            path=str(tmp_path / "client" / "grid.yaml"),
            tls=client_tls,
        )
        clock = Node(Clock, "clock", grid, reconnect_delays=fast_backoff)
        await clock.start()
        try:
            await until(
                lambda: "buzzer" in clock.sender.links and clock.sender.links["buzzer"].state == "retrying", "a retry"
            )
            first = clock.sender.links["buzzer"].connection.connections
            await asyncio.sleep(200 * MS)  # the fault's own length: ten retries' worth
            assert clock.sender.links["buzzer"].connection.connections == first == 0
            error = clock.sender.links["buzzer"].connection.last_error
        finally:
            await clock.stop()
    finally:
        await stop_circuit(served)
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "mesh.clock"
        and r.levelno >= logging.WARNING
        and not getattr(r, "wall_clock", False)  # the watch's "blocked the event loop": a loaded machine's, not TLS's
    ]
    assert not [r for r in caplog.records if r.exc_info], "no traceback"
    return warnings, error


async def test_a_wrong_ca_is_one_line_in_the_links_log(tmp_path, caplog, monkeypatch):
    """A node whose certificate another CA signed: one warning naming the grid's CA file, retried quietly."""
    server_tls = write_certs(tmp_path)
    client_tls = write_certs(tmp_path / "client")  # another CA: trustme.CA() per call
    warnings, error = await _link_log(tmp_path, caplog, monkeypatch, server_tls, client_tls)
    why = "certificate verify failed: not signed by the grid's CA (tls.ca: ca.pem)"
    assert warnings[0].endswith(f": {why}")
    assert len([line for line in warnings if why in line]) == 1
    assert error == why


async def test_an_expired_certificate_is_one_line_in_the_links_log(tmp_path, caplog, monkeypatch):
    """A node serving an expired certificate: one warning, 'certificate has expired'."""
    ca = trustme.CA()
    past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    server_tls = write_certs(tmp_path, ca=ca, not_after=past)
    client_tls = write_certs(tmp_path / "client", ca=ca)
    warnings, error = await _link_log(tmp_path, caplog, monkeypatch, server_tls, client_tls)
    assert error == "certificate verify failed: certificate has expired"
    assert len(warnings) == 1
    assert warnings[0].endswith(error)


async def test_a_certificate_for_another_host_names_it(tmp_path):
    """A certificate that does not name the node's host: the one-shot request says which names it holds."""
    grid = tls_grid(tmp_path, write_certs(tmp_path, hosts=("buzzer.example",)), tacks=1)
    nodes = await start_circuit(grid_of(grid, "buzzer"))
    try:
        uri = f"wss://{nodes['buzzer'].address}"
        with pytest.raises(PeerUnavailable) as caught:
            await send_once("buzzer", uri, "", "1", ssl_context=client_context(grid.tls), within=DEADLINE)
        assert caught.value.reason == "the certificate is for 'buzzer.example', not '127.0.0.1'"
    finally:
        await stop_circuit(nodes)


async def test_plain_and_tls_mixed_up_say_so(tmp_path):
    """A TLS client to a plain node, and a plain client to a TLS node: each one line saying which."""
    tls = write_certs(tmp_path)
    plain = await start_circuit(build_grid({"buzzer": {"sketch": "buzzer", "port": 0}}))
    secure = await start_circuit(
        build_grid({"buzzer": {"sketch": "buzzer", "port": 0}}, path=str(tmp_path / "grid.yaml"), tls=tls)
    )
    try:
        context = client_context(secure["buzzer"].grid.tls)
        with pytest.raises(PeerUnavailable) as caught:
            await send_once("buzzer", f"wss://{plain['buzzer'].address}", "", "1", ssl_context=context, within=DEADLINE)
        assert caught.value.reason == "the peer speaks plain ws://, not TLS"
        with pytest.raises(PeerUnavailable) as caught:
            await send_once("buzzer", f"ws://{secure['buzzer'].address}", "", "1", within=DEADLINE)
        assert caught.value.reason == "the peer speaks TLS: the grid has no tls"
    finally:
        await stop_circuit(plain)
        await stop_circuit(secure)


async def test_silent_and_garbage_sockets_do_not_stall_a_tls_node(tmp_path, caplog):
    """Hundreds of TCP connections that never finish a TLS handshake: a status request still answers at once."""
    caplog.set_level(logging.INFO)
    grid = tls_grid(tmp_path, write_certs(tmp_path), tacks=1)
    nodes = await start_circuit(grid)
    socks: list[socket.socket] = []
    try:
        # Its one tick gone through, the iopin's link to the buzzer is up: a handler of the buzzer's, before the
        # status request's (it was counted in the status request's, or not, by a race: 2 == 1 once, under load).
        await asyncio.wait_for(nodes["clock"].wait(), DEADLINE)
        link = nodes["iopin"].sender.links["buzzer"]
        handled, linked = nodes["buzzer"].server.connections, link.connections
        port = nodes["buzzer"].port
        for index in range(300):
            sock = socket.create_connection(("127.0.0.1", port))
            if index % 2:
                sock.sendall(b"\x16\x03\x01\x02\x00" + bytes(range(256)) * 2)  # a TLS record header, then garbage
            socks.append(sock)
        loop = asyncio.get_running_loop()
        started = loop.time()
        report = await query_status(
            "buzzer", f"wss://{nodes['buzzer'].address}", ssl_context=client_context(grid.tls), within=DEADLINE
        )
        assert report["node"] == "buzzer"
        assert loop.time() - started < DEADLINE
        # None of them reached a handler: the status request did (and the iopin's link, had it to reconnect).
        assert nodes["buzzer"].server.connections - handled == 1 + link.connections - linked
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    finally:
        for sock in socks:
            sock.close()
        await stop_circuit(nodes)


def grid_of(grid: Grid, *names: str) -> Grid:
    """``grid`` with only the nodes ``names`` (and no wires)."""
    return dataclasses.replace(grid, nodes={name: grid.nodes[name] for name in names}, wires=())


async def test_the_testing_circuit_sends_over_tls(tmp_path):
    """nodes.testing.circuit runs a grid file with tls: and its send() verifies the node as `arduino-mesh send` does."""
    write_certs(tmp_path)
    (tmp_path / "grid.yaml").write_text(TLS_YAML + "nodes:\n  buzzer: {sketch: buzzer, port: 8766}\n")
    async with circuit(tmp_path / "grid.yaml") as running:
        assert running.grid.node("buzzer").uri.startswith("wss://")
        assert await running.send("buzzer", "1") == "buzz buzz buzz"


async def test_a_tls_handshake_that_never_comes_is_cut(tmp_path, monkeypatch):
    """A socket that opens TCP and says nothing is closed by the node once TLS_HANDSHAKE_TIMEOUT has passed."""
    monkeypatch.setattr(server, "TLS_HANDSHAKE_TIMEOUT", 100 * MS)
    nodes = await start_circuit(
        build_grid(
            {"buzzer": {"sketch": "buzzer", "port": 0}}, path=str(tmp_path / "grid.yaml"), tls=write_certs(tmp_path)
        )
    )
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", nodes["buzzer"].port)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await asyncio.wait_for(reader.read(100), DEADLINE) == b""  # closed by the node, nothing said
        assert 50 * MS <= loop.time() - started < DEADLINE  # not at once: it was given its time
        writer.close()
    finally:
        await stop_circuit(nodes)
