#!/usr/bin/env python3
"""arduino.py: run the nodes of a circuit, and talk to them.

./arduino.py buzzer            run the node named "buzzer" in grid.yaml
./arduino.py send buzzer 1     send one message to a node, print its ack
./arduino.py echo '#'          print everything the circuit publishes
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

import sketches
from mesh.check import Finding, check_grid, summary
from mesh.errors import GridError, MeshError, UnknownNodeError
from mesh.graph import render
from mesh.grid import Grid, NodeSpec, read_grid
from mesh.links import DEFAULT_WAIT, Link, auth_headers, query_status, send_once
from mesh.topics import TopicError, check_pattern, publishers
from nodes import check_params
from nodes.node import DEFAULT_STATE_DIR, GRACE, Node
from nodes.params import sketch_parameters
from nodes.pubsub import Inbox
from nodes.runner import run_until_signalled

GRID_ENV = "ARDUINO_GRID"
LEVELS = ["debug", "info", "warning", "error"]


class Failure(click.ClickException):
    """An expected failure: one line on stderr, no traceback (exit status 1)."""


class UsageFailure(Failure):
    """A failure of what the command line asked for, e.g. a node the grid does not have (exit status 2)."""

    exit_code = 2


class NodeFormatter(logging.Formatter):
    """``[ iopin ] message``; warnings and errors say so."""

    def format(self, record: logging.LogRecord) -> str:
        who = record.name[5:] if record.name.startswith("mesh.") else record.name
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        line = f"[ {who} ] {level}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class Redact(logging.Filter):
    """Keep secrets out of every log line (the mesh's token, in a header or a query)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            for secret in self.secrets:
                text = text.replace(secret, "***")
            record.msg, record.args = text, None
        return True


REDACT = Redact()


def configure_logging(level: str) -> None:
    """Log lines to stderr, one per event, as they happen."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(NodeFormatter())
    handler.addFilter(REDACT)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # The library's own chatter (retries, handshakes, every frame) is ours to say; with
    # --log-level debug it says its handshakes, not each frame.
    logging.getLogger("websockets").setLevel(logging.INFO if level == "debug" else logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.INFO)


def load_grid(ctx: click.Context) -> Grid:
    """The grid named by ``--grid``, or a one-line error."""
    try:
        return read_grid(ctx.obj["grid"], sketches=sketches.available())
    except GridError as exc:
        raise Failure(str(exc)) from None


def mesh_token(grid: Grid) -> str | None:
    """The shared token the grid asks for, from its environment variable; never printed."""
    if grid.auth_token_env is None:
        return None
    token = os.environ.get(grid.auth_token_env)
    if not token:
        raise Failure(
            f"{grid.path}: the grid requires a token, but the environment variable {grid.auth_token_env} is not set"
        )
    REDACT.secrets.add(token)
    return token


def find_node(grid: Grid, name: str) -> NodeSpec:
    """The node called ``name``, or exit 2 listing the known ones."""
    try:
        return grid.node(name)
    except UnknownNodeError as exc:
        raise UsageFailure(f"{exc} (in {grid.path})") from None


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

    Run a node of the grid with `./arduino.py NODE` (e.g. `./arduino.py buzzer`),
    one terminal per node, or all of them with `honcho start`.
    """
    ctx.obj = {"grid": grid, "log_level": log_level.lower(), "state_dir": state_dir}
    configure_logging(log_level.lower())


def parse_param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``, the value read as a YAML scalar (``3`` is a number, ``buzz`` is text)."""
    key, sep, raw = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="--param")
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        value = raw
    if isinstance(value, (list, dict)) or value is None:
        value = raw
    return key, value


def node_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options every node command takes, whatever its sketch."""
    for decorator in reversed(
        [
            click.option("-s", "--socket", "host", metavar="HOST", help="Listen on HOST instead of the grid's."),
            click.option(
                "-p",
                "--port",
                type=click.IntRange(0, 65535),
                help="Listen on PORT instead of the grid's (0: any free port).",
            ),
            click.option(
                "--param", "extra", multiple=True, metavar="KEY=VALUE", help="Any sketch parameter (repeatable)."
            ),
            click.option(
                "--wait",
                type=click.FloatRange(0),
                default=DEFAULT_WAIT,
                show_default=True,
                help="Seconds to keep trying to reach a peer that is not up (0: forever).",
            ),
            click.option(
                "--grace",
                type=click.FloatRange(0),
                default=GRACE,
                show_default=True,
                help="Seconds that loop() calls still running get to finish when the node stops.",
            ),
        ]
    ):
        function = decorator(function)
    return function


def sketch_options(spec: NodeSpec) -> list[click.Option]:
    """One option per parameter of the node's sketch's ``setup()``: its type, and the default the grid gives it."""
    options = []
    for parameter in sketch_parameters(sketches.load(spec.sketch)):
        default = spec.params.get(parameter.name, parameter.default)
        shown = "required" if default is inspect.Parameter.empty else f"{default!r}"
        source = "grid" if parameter.name in spec.params else "sketch"
        words = f"{parameter.help[:1].upper()}{parameter.help[1:]}" if parameter.help else parameter.name
        flag = f"--{parameter.name.replace('_', '-')}"
        options.append(
            click.Option(
                [f"{flag}/--no-{flag[2:]}" if parameter.kind is bool else flag, parameter.name],
                type=parameter.kind,
                default=None,
                help=f"{words} [{source}: {shown}]",
            )
        )
    return options


def node_command(ctx: click.Context, name: str) -> click.Command:
    """``./arduino.py NAME [options]``: run the node NAME of the grid, with its sketch's parameters as options."""

    @click.command(name=name, help=f"Run the node {name!r} of the grid.")
    @node_options
    @click.pass_context
    def command(ctx: click.Context, **options: Any) -> None:
        run_node(ctx, name, **options)

    try:  # without a grid that names the node, the command still runs, to say what is wrong
        spec = read_grid(ctx.params.get("grid") or "grid.yaml").node(name)
        command.params[0:0] = sketch_options(spec)  # the sketch's own first
        command.help = f"Run the node {name!r} of the grid (sketch {spec.sketch}, {spec.address or 'no port'})."
    except MeshError:
        pass
    return command


@cli.command("run", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False)
@click.argument("node")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def run_command(ctx: click.Context, node: str, args: tuple[str, ...]) -> None:
    """Run the node NODE of the grid (same as `./arduino.py NODE [OPTIONS]`; `run NODE --help` lists them)."""
    assert ctx.parent is not None
    if node in ("-h", "--help"):
        click.echo(ctx.get_help())
        ctx.exit(0)
    command = node_command(ctx.parent, node)
    with command.make_context(node, list(args), parent=ctx.parent) as node_ctx:
        command.invoke(node_ctx)


def run_node(
    ctx: click.Context,
    name: str,
    *,
    host: str | None,
    port: int | None,
    extra: tuple[str, ...],
    wait: float,
    grace: float,
    **params: Any,
) -> None:
    """Load the grid, apply the command line's overrides, run the node until stopped."""
    grid = load_grid(ctx)
    spec = find_node(grid, name)
    overrides = {key: value for key, value in params.items() if value is not None}
    overrides.update(parse_param(text) for text in extra)
    try:
        cls = sketches.load(spec.sketch)
        check_params(cls, NodeSpec(name=name, sketch=spec.sketch, params=overrides), "command line")
        changes: dict[str, Any] = {"params": {**spec.params, **overrides}}
        if host is not None:
            changes["host"] = host
        if port is not None:
            changes["port"] = port
        grid = grid.with_node(name, **changes)
        node = Node(cls, name, grid, wait=wait, grace=grace, state_dir=ctx.obj["state_dir"], token=mesh_token(grid))
        asyncio.run(run_until_signalled(node))
    except MeshError as exc:
        raise Failure(str(exc)) from None


@cli.command("send")
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


@cli.command("echo")
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
    reachable = [name for name, spec in grid.nodes.items() if spec.port is not None]
    plan = {pattern: publishers(pattern, reachable) for pattern in patterns}
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


async def listen(grid: Grid, plan: dict[str, list[str]], count: int | None, as_json: bool) -> None:
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


@cli.command("status")
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

    Exit status 0 when every node with a port answered, 1 when one is down.
    """
    grid = load_grid(ctx)
    headers = auth_headers(mesh_token(grid))
    reports = asyncio.run(gather_status(grid, timeout, headers))
    if as_json:
        click.echo(json.dumps(reports, indent=2))
    else:
        click.echo(status_table(reports))
    if any(report["state"] == "down" for report in reports):
        ctx.exit(1)


async def gather_status(grid: Grid, per_node: float, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every node's report, asked all at once: a node that is down costs at most ``per_node`` seconds.

    ``per_node`` bounds each node's answer, not the whole call: a node that does not
    answer in time is reported down while the others' reports are kept.
    """

    async def one(spec: NodeSpec) -> dict[str, Any]:
        base = {"node": spec.name, "sketch": spec.sketch, "address": spec.address}
        if spec.uri is None:
            return {**base, "state": "no port"}
        try:
            report = await asyncio.wait_for(
                query_status(spec.name, spec.uri, open_timeout=per_node, headers=headers), per_node
            )
        except TimeoutError:
            return {**base, "state": "down", "error": f"no answer within {per_node:g} s"}
        except MeshError as exc:
            return {**base, "state": "down", "error": getattr(exc, "reason", str(exc))}
        return {**base, **report, "state": "up"}

    return list(await asyncio.gather(*(one(spec) for spec in grid.nodes.values())))


def status_table(reports: list[dict[str, Any]]) -> str:
    """The reports as an aligned table, one node a row."""
    header = ["NODE", "STATE", "ADDRESS", "SKETCH", "UPTIME", "IN", "OUT", "PUB", "PENDING", "SUBSCRIBERS", "LINKS"]
    rows = [header]
    for report in reports:
        up = report["state"] == "up"
        links = " ".join(f"{peer}:{link['state']}" for peer, link in report.get("links", {}).items())
        rows.append(
            [
                report["node"],
                report["state"],
                report["address"] or "-",
                report["sketch"],
                uptime(report["uptime"]) if up else "-",
                *(str(report[key]) if up else "-" for key in ("messages_in", "messages_out", "published", "pending")),
                str(len(report["subscribers"])) if up else "-",
                (links or "-") if up else report.get("error", ""),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    ).rstrip()


def uptime(seconds: float) -> str:
    """12s, 3m04s, 2h05m."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


@cli.command("check")
@click.option(
    "--procfile",
    type=click.Path(dir_okay=False),
    default=None,
    help="The Procfile to compare with the grid [default: ./Procfile, if there is one].",
)
@click.pass_context
def check_command(ctx: click.Context, procfile: str | None) -> None:
    """Check the grid without starting anything, like an electrical rules check.

    Beyond what loading already refuses: nodes connected to nothing, wires
    that form a loop, subscriptions that can never match, parameters a sketch
    does not take, and a Procfile that starts a node the grid does not have
    or misses one it has. One line per finding, with file and line; exit
    status 1 if there is an error, 0 otherwise (warnings included).
    """
    path = ctx.obj["grid"]
    try:
        grid = read_grid(path, sketches=sketches.available())
    except GridError as exc:
        where = f"{exc.path}:{exc.line}" if exc.line else exc.path
        click.echo(f"{where}: error: {exc.message}")
        ctx.exit(1)
    if procfile is None and Path("Procfile").is_file():
        procfile = "Procfile"
    text = None
    if procfile is not None:
        try:
            text = Path(procfile).read_text()
        except OSError as exc:
            raise Failure(f"{procfile}: cannot read the Procfile: {exc.strerror or exc}") from None
    findings = check_grid(grid, procfile=text, procfile_path=procfile or "Procfile")
    for spec in grid.nodes.values():
        try:
            check_params(sketches.load(spec.sketch), spec, grid.path)
        except (GridError, sketches.SketchError) as exc:
            message = exc.message if isinstance(exc, GridError) else str(exc)
            findings.append(Finding(path=grid.path, line=spec.line or None, level="error", message=message))
    for finding in findings:
        click.echo(str(finding))
    click.echo(summary(findings, grid))
    if any(finding.level == "error" for finding in findings):
        ctx.exit(1)


@cli.command("graph")
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
    click.echo(render(load_grid(ctx), fmt), nl=False)


def main() -> None:
    """Entry point: no traceback for Ctrl-C before the node is up."""
    try:
        cli(prog_name="arduino.py")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
