"""The simulated network's model: who connects as whom, latency and jitter, partitions, unplugged wires, flaky links.

Each test runs in virtual time (:func:`nodes.virtual.run_virtual`), so times are exact.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mesh.network import Network
from nodes.virtual import run_virtual

A = ("127.0.0.1", 8001)
B = ("127.0.0.1", 8002)
C = ("10.0.0.3", 8003)


class Ends(asyncio.Protocol):
    """A raw protocol recording when each chunk arrived, and how it was lost."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.arrived: list[tuple[float, bytes]] = []
        self.lost: BaseException | str | None = "open"
        self.made = self.lost_at = 0.0
        self.gone = asyncio.Event()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.made = asyncio.get_running_loop().time()

    def data_received(self, data: bytes) -> None:
        self.arrived.append((asyncio.get_running_loop().time(), data))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc
        self.lost_at = asyncio.get_running_loop().time()
        self.gone.set()


def network_of_three(seed: int = 0) -> Network:
    network = Network(seed)
    for address, name in ((A, "a"), (B, "b"), (C, "c")):
        network.assign(address, name)
    return network


async def listening(network: Network, *addresses: tuple[str, int]) -> dict[tuple[str, int], list[Ends]]:
    """Each address listening (as its node), every end it accepts kept."""
    loop = asyncio.get_running_loop()
    network.attach(loop)
    accepted: dict[tuple[str, int], list[Ends]] = {}
    names = {A: "a", B: "b", C: "c"}
    for address in addresses:
        ends = accepted[address] = []
        with network.acting_as(names[address]):
            await loop.create_server(lambda ends=ends: ends.append(Ends()) or ends[-1], *address)  # type: ignore[misc]
    return accepted


async def connect(network: Network, source: str, address: tuple[str, int]) -> Ends:
    with network.acting_as(source):
        _, ends = await asyncio.get_running_loop().create_connection(Ends, *address)
    return ends


def test_a_connection_belongs_to_the_node_acting_and_comes_from_its_host():
    async def main():
        network = network_of_three()
        accepted = await listening(network, A)
        near = await connect(network, "c", A)
        await asyncio.sleep(0)
        (pipe,) = network.pipes.values()
        return (pipe.source, pipe.target), near.transport.get_extra_info("sockname")[0], len(accepted[A])

    assert run_virtual(main()) == (("c", "a"), "10.0.0.3", 1)


def test_latency_delays_every_byte_in_order_and_jitter_draws_from_the_seed():
    async def main(seed):
        network = network_of_three(seed)
        accepted = await listening(network, A)
        network.set_latency(0.05, 0.01, between=("b", "a"))
        t0 = asyncio.get_running_loop().time()
        near = await connect(network, "b", A)
        connected = asyncio.get_running_loop().time() - t0  # one round trip
        for n in range(100):
            near.transport.write(b"%d," % n)
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.1)
        far = accepted[A][0]
        delays = [t - t0 - connected for t, _ in far.arrived]
        return connected, b"".join(data for _, data in far.arrived), [round(d, 6) for d in delays]

    connected, data, first = run_virtual(main(1))
    assert connected == pytest.approx(0.1)
    assert data == b"".join(b"%d," % n for n in range(100))  # in order, whatever the jitter drew
    assert run_virtual(main(1))[2] == first  # the same seed, the same draws
    assert run_virtual(main(2))[2] != first


def test_a_partition_cuts_crossing_connections_refuses_new_ones_and_heals():
    async def main():
        network = network_of_three()
        await listening(network, A, B)
        crossing, inside, free = (
            await connect(network, "a", B),
            await connect(network, "b", B),
            await connect(network, "c", A),
        )
        assert network.partition([["a"], ["b"]]) == 1
        await asyncio.sleep(0)
        with pytest.raises(ConnectionRefusedError):
            await connect(network, "b", A)
        network.heal()
        again = await connect(network, "b", A)
        return type(crossing.lost).__name__, inside.lost, free.lost, again.lost

    assert run_virtual(main()) == ("ConnectionResetError", "open", "open", "open")


def test_an_unplugged_wire_cuts_one_way_only_until_plugged():
    async def main():
        network = network_of_three()
        await listening(network, A, B)
        wire, back = await connect(network, "a", B), await connect(network, "b", A)
        network.unplug("a", "b")
        await asyncio.sleep(0)
        with pytest.raises(ConnectionRefusedError):
            await connect(network, "a", B)
        network.plug("a", "b")
        await connect(network, "a", B)
        return type(wire.lost).__name__, back.lost

    assert run_virtual(main()) == ("ConnectionResetError", "open")


def test_a_flaky_link_resets_its_connections_on_average_that_often():
    async def main(seed):
        network = network_of_three(seed)
        await listening(network, A)
        network.set_flaky(2.0, between=("b", "a"))
        lives = []
        while len(lives) < 400:
            ends = await connect(network, "b", A)
            await ends.gone.wait()
            lives.append(ends.lost_at - ends.made)
        network.set_flaky(None)
        steady = await connect(network, "b", A)
        await asyncio.sleep(100)
        return sum(lives) / len(lives), steady.lost

    mean, steady = run_virtual(main(1))
    assert 1.6 < mean < 2.4  # 400 draws of an exponential of mean 2 s: 3.5 standard errors either way
    assert steady == "open"
    assert run_virtual(main(1))[0] == mean
    assert run_virtual(main(2))[0] != mean


def test_a_killed_nodes_connections_are_reset():
    async def main():
        network = network_of_three()
        await listening(network, A, B)
        to_a, to_b = await connect(network, "c", A), await connect(network, "c", B)
        assert network.cut("a") == 1
        await asyncio.sleep(0)
        return type(to_a.lost).__name__, to_b.lost

    assert run_virtual(main()) == ("ConnectionResetError", "open")


def test_a_node_listening_on_port_0_gets_a_free_port_of_the_network():
    async def main():
        network = Network()
        loop = asyncio.get_running_loop()
        network.attach(loop)
        with network.acting_as("a"):
            first = await loop.create_server(Ends, "127.0.0.1", 0)
            second = await loop.create_server(Ends, "127.0.0.1", 0)
        with pytest.raises(OSError, match="address already in use"):
            await loop.create_server(Ends, "127.0.0.1", first.sockets[0].getsockname()[1])
        network.detach(loop)
        return first.sockets[0].getsockname(), second.sockets[0].getsockname()

    assert run_virtual(main()) == (("127.0.0.1", 20_000), ("127.0.0.1", 20_001))
