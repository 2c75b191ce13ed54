"""The subscriber's side (nodes.inbox): a lane per handler, bounded in bytes."""

from __future__ import annotations

import asyncio
import logging

from nodes.inbox import ENTRY_BYTES, Inbox

LOG = logging.getLogger("mesh.test")


def test_a_burst_of_thousands_of_small_publications_is_held_and_a_slow_handler_loses_its_oldest():
    """Redis's spirit: the bound is bytes, so a burst of small messages is held whole; past the budget, oldest first."""

    async def main() -> None:
        got: list[str] = []
        release, done = asyncio.Event(), asyncio.Event()

        async def slow(key: str, data: str) -> None:
            await release.wait()
            got.append(data)
            if data == "next":
                done.set()

        inbox = Inbox(LOG)
        inbox.add("a/#", slow)
        for i in range(3000):
            inbox.deliver("a/x", str(i))
        await asyncio.sleep(0)  # the lane takes its first message and waits in the handler
        assert inbox.lost == 0
        inbox.budget = 10 * (len("a/x") + 4 + ENTRY_BYTES)  # room for about ten
        inbox.deliver("a/x", "next")
        assert inbox.lost > 2900
        release.set()
        await done.wait()
        assert got[0] == "0" and got[-1] == "next" and len(got) <= 12
        await inbox.close()

    asyncio.run(main())
