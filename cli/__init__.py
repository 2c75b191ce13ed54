"""The command line: ``arduino-mesh`` (installed) or ``./arduino.py`` (in a checkout); each command a small module.

arduino-mesh buzzer            run the node named "buzzer" in ./grid.yaml
arduino-mesh send buzzer 1     send one message to a node, print its ack
arduino-mesh echo '#'          print everything the circuit publishes
arduino-mesh new blinky        make a project folder of your own
"""

from __future__ import annotations

import os
import sys

import click

from mesh.errors import GridError
from mesh.grid import read_grid
from nodes.node import DEFAULT_STATE_DIR
from nodes.runner import finish

from .check import check_command, graph_command
from .common import GRID_ENV, LEVELS
from .echo import echo_command
from .logs import configure_logging
from .new import new_command
from .run import node_command, run_command
from .send import send_command
from .simulate import simulate_command
from .status import status_command
from .up import up_command

__all__ = ["cli", "main"]


class Cli(click.Group):
    """Commands, plus one command per node of the grid."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        return command if command is not None else node_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_commands(ctx, formatter)
        try:
            grid = read_grid(ctx.params.get("grid") or "grid.yaml")
        except GridError:
            return
        rows = [
            (spec.name, f"run node {spec.name!r} (sketch {spec.sketch}, {spec.address or 'no port'})")
            for spec in grid.nodes.values()
        ]
        with formatter.section(f"Nodes (from {grid.path})"):
            formatter.write_dl(rows)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--grid",
    default="grid.yaml",
    envvar=GRID_ENV,
    show_default=True,
    show_envvar=True,
    type=click.Path(dir_okay=False),
    help="The circuit: nodes, addresses, wires.",
)
@click.option(
    "--log-level",
    default="info",
    envvar="ARDUINO_LOG_LEVEL",
    show_default=True,
    type=click.Choice(LEVELS, case_sensitive=False),
    help="How much the nodes say.",
)
@click.option(
    "--state-dir",
    default=DEFAULT_STATE_DIR,
    envvar="ARDUINO_STATE_DIR",
    show_default=True,
    show_envvar=True,
    type=click.Path(file_okay=False),
    help="Where durable nodes keep their unacked messages.",
)
@click.pass_context
def cli(ctx: click.Context, grid: str, log_level: str, state_dir: str) -> None:
    """Run the nodes of an Arduino-like circuit that talk over websockets.

    Run a node of the grid (./grid.yaml unless --grid says otherwise) with
    `arduino-mesh NODE` (`./arduino.py NODE` in a checkout), one terminal per node,
    all of them in one process with `arduino-mesh up`, or as separate processes with
    `honcho start`. Start a project of your own with `arduino-mesh new NAME`.
    """
    ctx.obj = {"grid": grid, "log_level": log_level.lower(), "state_dir": state_dir}
    configure_logging(log_level.lower())


for command in (
    run_command,
    up_command,
    simulate_command,
    send_command,
    echo_command,
    status_command,
    check_command,
    graph_command,
    new_command,
):
    cli.add_command(command)


def main() -> None:
    """Entry point: no traceback for Ctrl-C before the node is up; once nodes ran, signals are answered to the end."""
    try:
        cli(prog_name=os.path.basename(sys.argv[0]) or "arduino-mesh")
    except KeyboardInterrupt:
        finish(130)
    except SystemExit as exc:  # how click ends every command
        finish(exc.code)
