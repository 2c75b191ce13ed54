"""``./arduino.py status``: every node of the grid, up or down, with its counters."""

from __future__ import annotations

import asyncio
import json

import click

from nodes.status import DOWN, NOT_ANSWERING, gather_status, status_table

from .common import client_ssl, load_grid, mesh_token

__all__ = ["status_command"]


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON list of every node's report.")
@click.option(
    "--timeout",
    type=click.FloatRange(0, min_open=True),
    default=1.0,
    show_default=True,
    help="Seconds to wait for each node to answer.",
)
@click.pass_context
def status_command(ctx: click.Context, as_json: bool, timeout: float) -> None:
    """Ask every node of the grid how it is: up or down, counters, links, subscribers.

    Exit status 0 when every node with a port answered, 1 when one is down (nothing
    listening) or not answering (it took the connection but said nothing: busy?).
    """
    grid = load_grid(ctx, serves=False)
    reports = asyncio.run(gather_status(grid, timeout, mesh_token(grid), client_ssl(grid)))
    if as_json:
        click.echo(json.dumps(reports, indent=2))
    else:
        click.echo(status_table(reports))
    if any(report["state"] in (DOWN, NOT_ANSWERING) for report in reports):
        ctx.exit(1)
