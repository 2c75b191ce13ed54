"""``./arduino.py echo PATTERN...``: print what the circuit publishes on matching keys.

What it prints on stdout is the messages, ``key payload``. On stderr it says, once
per node, that a publisher it listens to is down, and once that it is back up:
the links' own chatter (connecting, ``waiting for X`` every 10 s while X stays
away, link up) is left out unless ``--log-level debug`` asks for everything.

With ``--vcd FILE`` every message printed is recorded too, at the event loop's time since
echo started, and written as a Value Change Dump when echo stops (:mod:`nodes.trace`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
import time

import click

from mesh import reconnect
from mesh.errors import TopicError
from mesh.grid import Grid, NodeSpec
from mesh.topics import check_pattern
from nodes import FactoryLoop, every, hears, reactive
from nodes.runtime import Node
from nodes.trace import LIMIT, Trace

from .common import Failure, close_trace, load_grid, mesh_token, open_trace

__all__ = ["echo_command"]

#: Seconds between two looks at the publishers' links, to say which went down or came back.
WATCH_PERIOD = 0.1


class LinkChatter(logging.Filter):
    """Drops the links' progress lines (mesh.reconnect's, below ERROR): echo says itself who is down or back."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.pathname != reconnect.__file__ or record.levelno >= logging.ERROR


class Presence:
    """Each publisher's last reported state, ``up`` or ``down``, so that each change is said once."""

    def __init__(self, publishers: tuple[str, ...]) -> None:
        self.said: dict[str, str] = dict.fromkeys(publishers, "")
        self.seen: set[str] = set()

    def changes(self, peers: dict[str, str]) -> list[tuple[str, str]]:
        """``(node, change)`` for each publisher whose link changed since the last call.

        ``change`` is ``up`` (the first time), ``down``, ``back`` (up again after it was up),
        or ``came`` (up at last, after it was down from the start). A link still ``connecting``
        (or ``idle``) for the first time says nothing yet; one that failed (``retrying``,
        ``down``) or left ``up`` is down.
        """
        found = []
        for name, was in self.said.items():
            state = peers.get(name, "idle")
            if state == "up":
                now = "up"
            elif state in ("retrying", "down", "closed") or was == "up":
                now = "down"
            else:
                continue
            if now != was:
                self.said[name] = now
                change = now if now == "down" or was == "" else "back" if name in self.seen else "came"
                if now == "up":
                    self.seen.add(name)
                found.append((name, change))
        return found


@click.command("echo")
@click.argument("patterns", nargs=-1, required=True, metavar="PATTERN...")
@click.option("--count", "-n", type=click.IntRange(1), default=None, help="Exit after N messages.")
@click.option("--json", "as_json", is_flag=True, help='One JSON object per line: {"key": ..., "data": ...}.')
@click.option(
    "--vcd",
    "vcd",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="Also record what is printed, as a Value Change Dump (GTKWave, Surfer), written when echo stops.",
)
@click.pass_context
def echo_command(
    ctx: click.Context, patterns: tuple[str, ...], count: int | None, as_json: bool, vcd: str | None
) -> None:
    """Print every message published on a key that matches a PATTERN, as `key payload`.

    Patterns use MQTT's wildcards: `+` is one level, `#` the rest. For example
    `./arduino.py echo '#'` shows the whole circuit, `./arduino.py echo '+/pin'`
    every pin. Runs until Ctrl-C, or until --count messages have been printed.
    With --vcd FILE, what it printed is also written to FILE as a trace, in
    wall-clock time since echo started.
    """
    grid = load_grid(ctx, serves=False)
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
    trace = None
    if vcd is not None:  # before connecting: a bad FILE fails first
        trace = open_trace(
            vcd,
            date=time.strftime("%Y-%m-%d %H:%M:%S %z"),
            comment=f"arduino-mesh echo {' '.join(patterns)} (grid {grid.path}), wall-clock time since echo started",
        )
    try:
        asyncio.run(listen(grid, plan, count, as_json, trace))
    except BrokenPipeError:  # `echo '#' | head`: the reader went away, which is fine
        sys.stdout = open(os.devnull, "w")  # nothing may be flushed to the closed pipe at exit
    finally:
        if trace is not None:
            close_trace(trace, logging.getLogger(f"mesh.echo-{os.getpid()}"))


async def listen(
    grid: Grid, plan: dict[str, tuple[str, ...]], count: int | None, as_json: bool, trace: Trace | None = None
) -> None:
    """Run a port-less node subscribed to the patterns, as a node's grid ``subscribe:`` would, and print what it hears.

    With a ``trace``, each message printed is recorded in it at the loop's time since the start.
    """
    done = asyncio.Event()
    printed = 0
    loop = asyncio.get_running_loop()
    start = loop.time()

    def show(key: str, data: str) -> None:
        nonlocal printed
        if done.is_set():
            return
        line = json.dumps({"key": key, "data": data}, ensure_ascii=False) if as_json else f"{key} {data}"
        click.echo(line)
        printed += 1
        if trace is not None:
            trace.publication(loop.time() - start, key, data)
            if trace.dropped == 1:
                log.warning("the trace holds %d changes: what comes next is not recorded in %s", LIMIT, trace.path)
        if count is not None and printed >= count:
            done.set()

    presence = Presence(tuple(sorted({name for names in plan.values() for name in names}, key=list(grid.nodes).index)))

    class Echo(FactoryLoop):
        """Prints every publication it hears, and says when a publisher goes down or comes back."""

        @hears
        def heard(self, key: str, data: str) -> None:
            show(key, data)

        @every(WATCH_PERIOD)
        def watch(self) -> None:
            for peer, change in presence.changes(self.peers()):
                uri = grid.nodes[peer].uri
                link = node.sender.links.get(peer)
                if change == "down" and link is not None and link.connection.tls_failing:  # not "nothing answers"
                    self.out(f"{peer} is down ({link.connection.last_error} at {uri}); listening for it to come back")
                elif change == "down":
                    self.out(f"{peer} is down (nothing answers at {uri}); listening for it to come back")
                elif change == "back":
                    self.out(f"{peer} is back up ({uri})")
                elif change == "came":
                    self.out(f"{peer} is up ({uri})")

        @reactive
        async def loop(self, channel: str, message: str) -> None:
            return None

    name = f"echo-{os.getpid()}"
    log = logging.getLogger(f"mesh.{name}")
    if not log.isEnabledFor(logging.DEBUG):
        log.addFilter(LinkChatter())
    spec = NodeSpec(name=name, sketch="echo", subscribe=tuple(plan))
    node = Node(Echo, name, dataclasses.replace(grid, nodes={**grid.nodes, name: spec}), wait=0, token=mesh_token(grid))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    await node.start()
    try:
        await done.wait()
    finally:
        await node.stop()
