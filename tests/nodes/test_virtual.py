"""The virtual loop: its clock jumps to the next timer, stands still while a thread works, and still hears signals."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from nodes.virtual import VirtualLoop, run_virtual


def test_an_hour_passes_at_once_and_timers_fire_at_their_exact_instants():
    async def main():
        loop = asyncio.get_running_loop()
        seen = []
        for delay in (0.1, 0.2, 0.30000000000000004, 1e-7):
            loop.call_later(delay, lambda: seen.append(loop.time()))
        await asyncio.sleep(3600)
        return loop.time(), seen, isinstance(loop, VirtualLoop)

    wall = time.perf_counter()
    now, seen, virtual = run_virtual(main())
    assert virtual and now == 3600.0
    assert seen == [1e-6, 0.1, 0.2, 0.3]  # whole microseconds
    assert time.perf_counter() - wall < 1.0


def test_the_clock_stands_still_while_a_thread_works():
    async def main():
        loop = asyncio.get_running_loop()
        ticking = asyncio.ensure_future(asyncio.sleep(10))
        before = loop.time()
        await asyncio.to_thread(time.sleep, 0.02)  # wall time passes; simulated time does not
        after = loop.time()
        ticking.cancel()
        return before, after

    before, after = run_virtual(main())
    assert before == after == 0.0


def test_a_signal_is_heard_while_the_clock_only_jumps():
    async def main():
        loop = asyncio.get_running_loop()
        heard = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, lambda: heard.set_result(loop.time()))

        def tick() -> None:
            ticking[0] = loop.call_later(0.1, tick)

        ticking = [loop.call_later(0.1, tick)]

        os.kill(os.getpid(), signal.SIGUSR1)
        try:
            return await asyncio.wait_for(heard, 3600)
        finally:
            ticking[0].cancel()
            loop.remove_signal_handler(signal.SIGUSR1)

    assert run_virtual(main()) < 10.0  # within a few dozen turns, not at the hour


def test_real_sockets_still_work_on_it():
    async def main():
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        writer.write(b"hello\n")
        answer = await reader.readline()
        writer.close()
        server.close()
        await server.wait_closed()
        return answer

    assert run_virtual(main()) == b"hello\n"
