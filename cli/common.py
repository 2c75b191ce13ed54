"""What every command shares: the grid it reads, the one-line failures, the token, the TLS context."""

from __future__ import annotations

import logging
import os
import ssl

import click

import sketches
from mesh.errors import GridError, SketchError, UnknownNodeError
from mesh.grid import Grid, NodeSpec, read_grid
from mesh.grid.shown import suggest
from mesh.tls import check as check_tls
from mesh.tls import client_context
from nodes import FactoryLoop
from nodes.trace import Trace

from .logs import REDACT

__all__ = [
    "GRID_ENV",
    "LEVELS",
    "Failure",
    "UsageFailure",
    "client_ssl",
    "close_trace",
    "find_node",
    "load_grid",
    "load_sketch",
    "mesh_token",
    "open_trace",
    "read_checked",
]

GRID_ENV = "ARDUINO_GRID"
LEVELS = ["debug", "info", "warning", "error"]


class Failure(click.ClickException):
    """An expected failure: one line on stderr, no traceback (exit status 1)."""


class UsageFailure(Failure):
    """A failure of what the command line asked for, e.g. a node the grid does not have (exit status 2)."""

    exit_code = 2


def load_grid(ctx: click.Context, *, serves: bool = True) -> Grid:
    """The grid named by ``--grid``, or a one-line error; ``serves=False``: a command that only talks to nodes."""
    try:
        return read_checked(ctx.obj["grid"], serves=serves)
    except GridError as exc:
        raise Failure(str(exc)) from None


def read_checked(path: str, *, serves: bool = True) -> Grid:
    """The grid file at ``path``, its sketches looked for beside it (see :mod:`nodes.sketchbook`); GridError if not.

    The files its ``tls`` names are read too (:func:`mesh.tls.check`): the grid's rules do
    no I/O, so a missing or wrong certificate is found here, at its line, as the token's
    variable is read here and not by the rules. A command that only talks to nodes
    (``serves=False``: send, status, echo, graph) needs only the CA: a machine that runs
    no node needs no certificate of its own.
    """
    grid = read_grid(path, sketches=sketches.problem(path))
    if grid.tls is not None:
        if serves:
            check_tls(grid.tls)
        else:
            client_context(grid.tls)  # GridError at the ca line if it is wrong
    return grid


def load_sketch(grid: Grid, spec: NodeSpec) -> type[FactoryLoop]:
    """The class of the node's sketch, found beside the grid file (see :mod:`sketches`); GridError at its line if not."""
    try:
        return sketches.load(spec.sketch, grid.path)
    except SketchError as exc:
        raise GridError(grid.path, spec.line or None, f"node {spec.name!r}: {exc}") from None


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


def client_ssl(grid: Grid) -> ssl.SSLContext | None:
    """What a command verifies the nodes with when the grid has tls (:mod:`mesh.tls`); None without."""
    if grid.tls is None:
        return None
    try:
        return client_context(grid.tls)
    except GridError as exc:
        raise Failure(str(exc)) from None


def find_node(grid: Grid, name: str) -> NodeSpec:
    """The node called ``name``, or exit 2 listing the known ones (and the closest, as the grid's errors do)."""
    try:
        return grid.node(name)
    except UnknownNodeError as exc:
        raise UsageFailure(f"{exc} (in {grid.path}){suggest(name, exc.known)}") from None


def open_trace(path: str, *, comment: str, date: str | None = None) -> Trace:
    """The trace ``--vcd FILE`` asks for, its file opened now; one that cannot be written is a usage error (exit 2)."""
    try:
        return Trace(path, date=date, comment=comment)
    except OSError as exc:
        raise UsageFailure(f"cannot write the trace to {path}: {exc.strerror or exc}") from None


def close_trace(trace: Trace, log: logging.Logger) -> None:
    """Write the trace and say, in one line, where it went and what it holds."""
    try:
        trace.close()
    except OSError as exc:
        raise Failure(f"cannot write the trace to {trace.path}: {exc.strerror or exc}") from None
    dropped = f"; {trace.dropped} more dropped" if trace.dropped else ""
    log.info("trace written to %s: %d changes of %d signals%s", trace.path, trace.changes, trace.signals, dropped)
