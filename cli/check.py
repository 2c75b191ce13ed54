"""``./arduino.py check`` and ``graph``: the grid examined and drawn, nothing started."""

from __future__ import annotations

import os
from pathlib import Path

import click

from mesh.check import Finding, check_grid, summary
from mesh.errors import GridError
from mesh.graph import render
from mesh.tls import verify_own
from nodes.reactive import has_loop, heard_by
from nodes.runtime import check_params

from .common import GRID_ENV, Failure, load_grid, load_sketch, read_checked

__all__ = ["check_command", "graph_command"]


@click.command("check")
@click.option(
    "--procfile",
    type=click.Path(dir_okay=False),
    default=None,
    help="The Procfile to compare with the grid [default: the Procfile beside the grid, if there is one].",
)
@click.pass_context
def check_command(ctx: click.Context, procfile: str | None) -> None:
    """Check the grid without starting anything, like an electrical rules check.

    Beyond what loading already refuses: nodes connected to nothing, wires
    that form a loop, subscriptions that can never match, parameters a sketch
    does not take, a Procfile that starts a node the grid does not have
    or misses one it has, and with tls, a certificate that the grid's CA did
    not sign or that is not valid now. One line per finding, with file and line; exit
    status 1 if there is an error, 0 otherwise (warnings included).
    """
    path = ctx.obj["grid"]
    try:
        grid = read_checked(path)
    except GridError as exc:
        where = f"{exc.path}:{exc.line}" if exc.line else exc.path
        click.echo(f"{where}: error: {exc.message}")
        ctx.exit(1)
    found = procfile is None
    if found and (Path(path).parent / "Procfile").is_file():
        procfile = str(Path(path).parent / "Procfile")
    text = None
    if procfile is not None:
        try:
            text = Path(procfile).read_text()
        except OSError as exc:
            raise Failure(f"{procfile}: cannot read the Procfile: {exc.strerror or exc}") from None
    # What a Procfile line without --grid runs: honcho passes its environment on to the nodes.
    default_grid = os.environ.get(GRID_ENV) or str(Path(procfile or ".").parent / "grid.yaml")
    problems: list[Finding] = []
    no_loop: dict[str, bool] = {}  # nodes whose sketch has no loop(): whether it has @hears
    for spec in grid.nodes.values():
        try:
            sketch = load_sketch(grid, spec)
            check_params(sketch, spec, grid.path)
        except GridError as exc:
            problems.append(Finding(path=grid.path, line=spec.line or None, level="error", message=exc.message))
            continue
        if not has_loop(sketch):
            no_loop[spec.name] = heard_by(sketch) is not None
    findings = check_grid(
        grid,
        procfile=text,
        procfile_path=procfile or "Procfile",
        default_grid=default_grid,
        found=found,
        no_loop=no_loop,
    )
    findings += problems
    refused = None if grid.tls is None else verify_own(grid.tls)
    if grid.tls is not None and refused is not None:
        message = f"{grid.tls.shown('cert')}: {refused}: every client of the grid would refuse it"
        findings.insert(0, Finding(path=grid.path, line=grid.tls.line_of("cert"), level="error", message=message))
    for finding in findings:
        click.echo(str(finding))
    click.echo(summary(findings, grid))
    if any(finding.level == "error" for finding in findings):
        ctx.exit(1)


@click.command("graph")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "mermaid", "dot"]),
    default="text",
    show_default=True,
    help="text for a terminal, mermaid for Markdown, dot for Graphviz.",
)
@click.pass_context
def graph_command(ctx: click.Context, fmt: str) -> None:
    """Draw the circuit from the grid: nodes, wires, subscriptions.

    `./arduino.py graph --format dot | dot -Tsvg > circuit.svg` with Graphviz.
    """
    click.echo(render(load_grid(ctx, serves=False), fmt), nl=False)
