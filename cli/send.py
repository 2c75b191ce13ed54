"""``./arduino.py send NODE MESSAGE``: one message, its acknowledgement printed."""

from __future__ import annotations

import asyncio

import click

from mesh.errors import MeshError
from mesh.links import auth_headers, send_once

from .common import Failure, find_node, load_grid, mesh_token

__all__ = ["send_command"]


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
    grid = load_grid(ctx)
    spec = find_node(grid, node)
    if spec.uri is None:
        raise Failure(f"node {node!r} has no port: nothing can be sent to it")
    headers = auth_headers(mesh_token(grid))
    try:
        ack = asyncio.run(
            asyncio.wait_for(
                send_once(node, spec.uri, channel.lstrip("/"), message, open_timeout=timeout, headers=headers), timeout
            )
        )
    except TimeoutError:
        raise Failure(f"{node} did not answer within {timeout:g} s") from None
    except MeshError as exc:
        raise Failure(str(exc)) from None
    click.echo(ack)
