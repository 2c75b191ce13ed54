"""``./arduino.py echo PATTERN...``: print what the circuit publishes on matching keys."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys

import click

from mesh.grid import Grid
from mesh.links import Link, auth_headers
from mesh.topics import TopicError, check_pattern
from nodes.pubsub import Inbox

from .common import Failure, load_grid, mesh_token

__all__ = ["echo_command"]


@click.command("echo")
@click.argument("patterns", nargs=-1, required=True, metavar="PATTERN...")
@click.option("--count", "-n", type=click.IntRange(1), default=None, help="Exit after N messages.")
@click.option("--json", "as_json", is_flag=True, help='One JSON object per line: {"key": ..., "data": ...}.')
@click.pass_context
def echo_command(ctx: click.Context, patterns: tuple[str, ...], count: int | None, as_json: bool) -> None:
    """Print every message published on a key that matches a PATTERN, as `key payload`.

    Patterns use MQTT's wildcards: `+` is one level, `#` the rest. For example
    `./arduino.py echo '#'` shows the whole circuit, `./arduino.py echo '+/pin'`
    every pin. Runs until Ctrl-C, or until --count messages have been printed.
    """
    grid = load_grid(ctx)
    for pattern in patterns:
        try:
            check_pattern(pattern)
        except TopicError as exc:
            raise click.BadParameter(str(exc), param_hint="PATTERN") from None
    plan = {pattern: grid.publishers(pattern) for pattern in patterns}
    if not any(plan.values()):
        raise Failure(
            f"nothing to listen to: no node of {grid.path} with a port matches {', '.join(map(repr, patterns))}"
        )
    for pattern, names in plan.items():
        if not names:
            logging.getLogger("mesh.echo").warning(
                "no node of %s with a port publishes keys that %r can match", grid.path, pattern
            )
    try:
        asyncio.run(listen(grid, plan, count, as_json))
    except BrokenPipeError:  # `echo '#' | head`: the reader went away, which is fine
        sys.stdout = open(os.devnull, "w")  # nothing may be flushed to the closed pipe at exit


async def listen(grid: Grid, plan: dict[str, tuple[str, ...]], count: int | None, as_json: bool) -> None:
    """Subscribe to each pattern at its publishers and print what arrives."""
    log = logging.getLogger("mesh.echo")
    done = asyncio.Event()
    printed = 0

    def show(key: str, data: str) -> None:
        nonlocal printed
        if done.is_set():
            return
        line = json.dumps({"key": key, "data": data}, ensure_ascii=False) if as_json else f"{key} {data}"
        click.echo(line)
        printed += 1
        if count is not None and printed >= count:
            done.set()

    inbox = Inbox(log)
    name = f"echo-{os.getpid()}"
    headers = auth_headers(mesh_token(grid))
    links: dict[str, Link] = {}
    for pattern, names in plan.items():
        inbox.handlers[pattern] = show
        for peer in names:
            if peer not in links:
                uri = grid.node(peer).uri
                assert uri is not None
                links[peer] = Link(
                    node=name, peer=peer, uri=uri, logger=log, wait=0, on_publish=inbox.deliver, headers=headers
                )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    subscribing = [
        asyncio.create_task(links[peer].subscribe(pattern)) for pattern, names in plan.items() for peer in names
    ]
    try:
        await done.wait()
    finally:
        for task in subscribing:
            task.cancel()
        await asyncio.gather(*(link.close() for link in links.values()))
        await inbox.close()
