"""Running a node as a program: signals in, a clean stop out."""

from __future__ import annotations

import asyncio
import os
import signal

from .node import Node

__all__ = ["run_until_signalled"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def run_until_signalled(node: Node) -> None:
    """Run ``node`` until it is done or SIGINT/SIGTERM arrives; a second signal exits at once.

    The second-signal rule holds until the process ends, not only while the event loop
    runs: once the node has stopped, a late signal still exits at once (code 1) instead of
    killing the process mid-teardown.
    """
    loop = asyncio.get_running_loop()
    received: list[signal.Signals] = []

    def exit_now(sig: signal.Signals) -> None:
        node.log.warning("%s again: exiting now", sig.name)
        os._exit(1)

    def on_signal(sig: signal.Signals) -> None:
        if received:
            exit_now(sig)
        received.append(sig)
        node.log.info("stopping (%s)", sig.name)
        node.request_stop()

    for sig in SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await node.run()
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
            if received:  # stopping already: from here on, any signal means "now"
                signal.signal(sig, lambda signum, frame: exit_now(signal.Signals(signum)))
