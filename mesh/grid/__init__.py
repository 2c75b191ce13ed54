"""The grid: which nodes make up the circuit, where they listen, and how they are wired.

``grid.yaml`` names every node (its sketch, where it listens, the sketch's params,
the topic patterns it subscribes to) and the wires between them::

    nodes:
      clock:  {sketch: clock, params: {tacks: 5, delay: 1}}
      iopin:  {sketch: iopin, host: 127.0.0.1, port: 8765, params: {chance: 0.6}}
      buzzer: {sketch: buzzer, port: 8766, params: {sound: buzz buzz buzz}}
      meter:  {sketch: meter, subscribe: ["iopin/pin", "+/sound"]}
    wires:
      - clock -> iopin
      - iopin -> buzzer

A node may also set how its links behave: ``outbox`` (how many unacked messages
a link holds before ``stream()`` waits; 1000 by default), ``max_size`` (the
largest frame it accepts, in bytes; 1 MiB by default) and ``durable`` (true to
keep its unacked outbox in a local SQLite file, so that it survives the node
being killed). At the top level, ``auth: {token_env: MESH_TOKEN}`` names the
environment variable that holds the token every connection must present: the
grid never holds the token itself, and loading it never reads the environment.
``tls: {cert: node.pem, key: node-key.pem, ca: ca.pem}`` makes every node serve
``wss://`` and every client verify it against the CA; the paths are relative to
the grid file's folder, and loading checks their form only: :mod:`mesh.tls` reads
the files.

Loading is a pure function from text to a frozen, validated :class:`Grid`, in two
steps that each do one job: :mod:`~mesh.grid.loader` turns the YAML text into
plain data and a line map, refusing the traps of YAML (duplicate keys, merge
keys, ``yes``/``no``/``on``/``off`` read as booleans, odd tags, an alias inside
itself); :mod:`~mesh.grid.rules` is the one validator, which turns plain data
into the :class:`Grid` (:mod:`~mesh.grid.model`), or one
:class:`~mesh.errors.GridError` naming the file, the line and what is wrong.
:func:`load_grid` takes the text, :func:`read_grid` reads the file first,
:func:`build_grid` takes plain Python data, and :meth:`Grid.with_node` changes
one node: all of them through the same rules. YAML problems are found first, in
file order; then the rules: the top level, the nodes, the wires, auth, tls, and
the checks across nodes.
"""

from __future__ import annotations

import os

from mesh.constants import DEFAULT_HOST, DEFAULT_MAX_SIZE, DEFAULT_OUTBOX
from mesh.errors import GridError

from .loader import load_yaml
from .marks import Marks
from .model import Grid, NodeSpec, TLSFiles, Wire
from .rules import AUTH_KEYS, NODE_KEYS, TLS_KEYS, TOP_KEYS, Sketches, build_grid, validate

__all__ = [
    "AUTH_KEYS",
    "DEFAULT_HOST",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_OUTBOX",
    "NODE_KEYS",
    "TLS_KEYS",
    "TOP_KEYS",
    "Grid",
    "Marks",
    "NodeSpec",
    "TLSFiles",
    "Wire",
    "build_grid",
    "load_grid",
    "load_yaml",
    "read_grid",
    "read_text",
    "validate",
]


#: Characters a grid or scenario file may hold at most (a grid of 10,000 nodes is about 600 KB).
MAX_FILE_BYTES = 16 * 2**20


def load_grid(text: str, path: str = "grid.yaml", *, sketches: Sketches | None = None) -> Grid:
    """Parse and validate the text of a grid; ``path`` only names it in errors.

    ``sketches``, when given, are the known sketch names, or a function saying
    what is wrong with a ``sketch:`` value (see :func:`sketches.problem`): a node
    naming a sketch not found is an error at its line. Raises GridError for the first problem found.
    """
    try:
        data, marks = load_yaml(text, path)
        return validate(data, path=path, marks=marks, sketches=sketches)
    except RecursionError:
        raise GridError(path, None, "the grid is nested too deeply") from None


def read_text(path: str | os.PathLike[str], what: str, error: type[GridError] = GridError) -> tuple[str, str]:
    """``(name, text)`` of the UTF-8 file at ``path``; ``error`` (a GridError) saying it cannot read ``what`` if not.

    A file of more than :data:`MAX_FILE_BYTES` is refused unread: no grid or scenario is that large.
    """
    name = os.fsdecode(os.fspath(path))
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read(MAX_FILE_BYTES + 1)
            if len(text) > MAX_FILE_BYTES:
                raise error(
                    name,
                    None,
                    f"cannot read {what}: it is larger than {MAX_FILE_BYTES // 2**20} MiB; is it the right file?",
                )
            return name, text
    except OSError as exc:
        raise error(name, None, f"cannot read {what}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise error(name, None, f"cannot read {what}: it is not UTF-8 text (byte {exc.start})") from exc


def read_grid(path: str | os.PathLike[str], *, sketches: Sketches | None = None) -> Grid:
    """Read the grid file at ``path`` (UTF-8) and load it; GridError if it cannot be read."""
    name, text = read_text(path, "the grid")
    return load_grid(text, name, sketches=sketches)
