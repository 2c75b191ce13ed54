"""``./arduino.py send NODE MESSAGE``: one message, its acknowledgement printed."""

from __future__ import annotations

import asyncio

import click

from mesh.errors import MeshError, NotAnswering
from mesh.requests import send_once

from .common import Failure, client_ssl, find_node, load_grid, mesh_token

__all__ = ["BUSY_HINT", "send_command"]

#: What a node that takes the connection but does not answer is most likely doing.
BUSY_HINT = (
    "is it busy? sketch code that blocks (time.sleep(), a busy loop, blocking I/O) stalls the whole node: see its log"
)


@click.command("send")
@click.argument("node")
@click.argument("message")
@click.option("--channel", default="", metavar="PATH", help="The channel (URI path) the message is sent on.")
@click.option(
    "--timeout",
    type=click.FloatRange(0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds to wait for the node to answer.",
)
@click.pass_context
def send_command(ctx: click.Context, node: str, message: str, channel: str, timeout: float) -> None:
    """Send MESSAGE to NODE and print its acknowledgement."""
    grid = load_grid(ctx, serves=False)
    spec = find_node(grid, node)
    if spec.uri is None:
        raise Failure(f"node {node!r} has no port: nothing can be sent to it")
    token = mesh_token(grid)
    context = client_ssl(grid)
    try:
        ack = asyncio.run(
            send_once(
                node,
                spec.uri,
                channel.lstrip("/"),
                message,
                open_timeout=timeout,
                within=timeout,
                token=token,
                ssl_context=context,
            )
        )
    except NotAnswering as exc:
        # It is there (the connection opened) but silent: busy, most likely with sketch code that blocks.
        raise Failure(f"{exc}; {BUSY_HINT}; --timeout S waits longer") from None
    except MeshError as exc:
        raise Failure(str(exc)) from None
    click.echo(ack)
