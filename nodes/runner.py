"""Running a node as a program: signals in, a clean stop out."""

from __future__ import annotations

import asyncio
import os
import signal

from .factory import FactoryLoop

__all__ = ["run_until_signalled"]


async def run_until_signalled(node: FactoryLoop) -> None:
    """Run ``node`` until it is done or SIGINT/SIGTERM arrives; a second signal exits at once."""
    loop = asyncio.get_running_loop()
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        if len(received) > 1:
            node.log.warning("%s again: exiting now", sig.name)
            os._exit(1)
        node.log.info("stopping (%s)", sig.name)
        node.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await node.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
