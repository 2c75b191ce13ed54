"""Shared test helpers: timing units, free ports, in-process circuits, node processes."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from pathlib import Path
from typing import Any

import sketches
from mesh.grid import Grid
from nodes import FactoryLoop, open_together

ROOT = Path(__file__).resolve().parent.parent
ARDUINO = ROOT / "arduino.py"

#: One unit of waiting, scaled by MESH_TEST_TIMING on a slow machine (e.g. 2 doubles every wait).
MS = 0.001 * float(os.environ.get("MESH_TEST_TIMING", "1"))
#: How long a test waits for something that should happen "at once".
DEADLINE = 10_000 * MS


def fast_backoff() -> Generator[float, None, None]:
    """Reconnect delays for tests: 10 ms, every time."""
    while True:
        yield 10 * MS


async def until(condition: Callable[[], object], what: str) -> None:
    """Poll ``condition`` every unit until it holds; fail naming ``what`` after the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(MS)


def free_ports(count: int) -> list[int]:
    """``count`` ports that were free a moment ago (bound together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


async def start_circuit(grid: Grid, **options: Any) -> dict[str, FactoryLoop]:
    """Start every node of ``grid`` in this event loop, filling in the ports bound for port 0."""
    nodes = {name: sketches.load(spec.sketch)(name, grid, reconnect_delays=fast_backoff, **options)
             for name, spec in grid.nodes.items()}
    await open_together(nodes)
    for node in nodes.values():
        node.begin()
    return nodes


async def stop_circuit(nodes: Mapping[str, FactoryLoop]) -> None:
    """Stop every node, clients first."""
    for node in sorted(nodes.values(), key=lambda n: n.server is not None):
        await node.stop()


def write_grid(folder: Path, text: str) -> Path:
    """Write ``grid.yaml`` into ``folder`` and return its path."""
    path = folder / "grid.yaml"
    path.write_text(text)
    return path


def environment(**changes: str | None) -> dict[str, str]:
    """This process's environment, without PYTHONUNBUFFERED (it hides buffering bugs), plus ``changes``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


class Process:
    """A real subprocess whose merged output is read line by line as it comes."""

    def __init__(self, args: Iterable[str | os.PathLike[str]], *, cwd: Path = ROOT, env: dict[str, str] | None = None,
                 new_session: bool = False) -> None:
        self.args = [str(a) for a in args]
        self.popen = subprocess.Popen(
            self.args, cwd=cwd, env=env or environment(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            start_new_session=new_session,
        )
        self.lines: list[str] = []
        self._cursor = 0
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def expect(self, pattern: str, timeout: float = DEADLINE, *, anywhere: bool = False) -> re.Match[str]:
        """Wait for the next output line matching ``pattern`` (a regex searched in each line).

        Lines are consumed: a second call finds the next matching line, not the same one.
        With ``anywhere``, every line so far is searched (for output of several processes,
        whose order between them is not fixed).
        """
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        if anywhere:
            self._cursor = 0
        while True:
            while self._cursor < len(self.lines):
                line = self.lines[self._cursor]
                self._cursor += 1
                if (match := regex.search(line)) is not None:
                    return match
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)
                break
            self.lines.append(line)
        raise AssertionError(f"no line matching {pattern!r} from {' '.join(self.args)}; output:\n" + "\n".join(self.lines))

    def output(self) -> str:
        """All output so far: everything, once the process has ended; what has arrived, while it runs."""
        while True:
            try:
                line = self._queue.get(timeout=DEADLINE) if self.popen.poll() is not None else self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)
                break
            self.lines.append(line)
        return "\n".join(self.lines)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.popen.send_signal(sig)

    def wait(self, timeout: float = DEADLINE) -> int:
        return self.popen.wait(timeout)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


def arduino(*args: str | os.PathLike[str], **kwargs: Any) -> Process:
    """``./arduino.py ARGS`` as a real subprocess."""
    return Process([sys.executable, ARDUINO, *args], **kwargs)


def run_arduino(*args: str | os.PathLike[str], env: dict[str, str] | None = None, timeout: float = DEADLINE, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run ``./arduino.py ARGS`` to completion and capture its output."""
    return subprocess.run([sys.executable, ARDUINO, *map(str, args)], cwd=cwd, env=env or environment(),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


class Proxy:
    """A TCP relay on its own port and thread, between a node and its peer: a wire that a test can cut.

    A real relay, not a fake of our code: bytes pass through unchanged. :meth:`cut` drops
    every connection through it at once (RST), as a broken network would; new connections
    pass again right after.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_ports(1)[0]
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(DEADLINE), "the proxy did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
            self._ready.set()
            await self._server.serve_forever()

        try:
            self._loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            peer_reader, peer_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers |= {client_writer, peer_writer}

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.transport.abort()

        await asyncio.gather(pump(client_reader, peer_writer), pump(peer_reader, client_writer))
        self._writers -= {client_writer, peer_writer}

    def cut(self) -> None:
        """Drop every connection through the relay, abruptly."""
        def abort_all() -> None:
            for writer in list(self._writers):
                writer.transport.abort()
        self._loop.call_soon_threadsafe(abort_all)

    def close(self) -> None:
        def stop() -> None:
            self._server.close()
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
        self._loop.call_soon_threadsafe(stop)
        self._thread.join(DEADLINE)
