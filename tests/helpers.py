"""Shared test helpers: timing units, free ports, in-process circuits, node processes."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import sketches
from mesh.grid import Grid
from nodes.circuit import start_together, stop_together
from nodes.runtime import Node

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


def _port_range() -> range:
    """Ports a test may give a node by number: below the kernel's ephemeral range.

    A port taken from the ephemeral range (what binding port 0 or any outgoing connection
    gets) can be handed to another socket between the moment a test picks it and the moment
    the node binds it; below that range the kernel hands out nothing by itself.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(max(1024, low - 12_000), low)


#: Lock files that reserve a port for this test process; held until the process ends.
_reserved: list[int] = []


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports for nodes that a test starts by port number.

    Each is outside the ephemeral range (nothing else is handed it by the kernel), free when
    picked, and reserved for this test run by a lock file that other runs of the suite on the
    same machine respect, so two suites at once never pick the same port.
    """
    folder = Path(tempfile.gettempdir()) / "arduino-mesh-test-ports"
    folder.mkdir(exist_ok=True)
    ports: list[int] = []
    candidates = list(_port_range())
    random.shuffle(candidates)
    for port in candidates:
        if len(ports) == count:
            return ports
        fd = os.open(folder / f"{port}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another suite holds it
            os.close(fd)
            continue
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:  # some other program listens there
                os.close(fd)
                continue
        _reserved.append(fd)  # kept until this process ends; a port is never handed out twice
        ports.append(port)
    if len(ports) < count:
        raise RuntimeError(f"no {count} free ports below the ephemeral range")
    return ports


async def start_circuit(grid: Grid, **options: Any) -> dict[str, Node]:
    """Start every node of ``grid`` in this event loop, filling in the ports bound for port 0."""
    nodes = {
        name: Node(sketches.load(spec.sketch, grid.path), name, grid, reconnect_delays=fast_backoff, **options)
        for name, spec in grid.nodes.items()
    }
    await start_together(list(nodes.values()))
    return nodes


async def stop_circuit(nodes: Mapping[str, Node]) -> None:
    """Stop every node, each after the nodes that stream to it (as ``arduino-mesh up`` does)."""
    await stop_together(list(nodes.values()))


def write_grid(folder: Path, text: str) -> Path:
    """Write ``grid.yaml`` into ``folder`` and return its path."""
    path = folder / "grid.yaml"
    path.write_text(text)
    return path


def environment(**changes: str | None) -> dict[str, str]:
    """This process's environment, without PYTHONUNBUFFERED (it hides buffering bugs), plus ``changes``.

    Where PYTHONDONTWRITEBYTECODE keeps compiled modules out of the source folders, a Python process
    started with it caches them where this one does (``sys.pycache_prefix``, see conftest.py) rather
    than compile every module of ours at each start.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if env.get("PYTHONDONTWRITEBYTECODE") and sys.pycache_prefix and not env.get("PYTHONPYCACHEPREFIX"):
        del env["PYTHONDONTWRITEBYTECODE"]
        env["PYTHONPYCACHEPREFIX"] = sys.pycache_prefix
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def has_children() -> bool:
    """Whether this process has any child at all, live or not yet reaped: a read of a few tiny /proc files.

    Each thread's ``/proc/self/task/TID/children`` lists the processes it is the parent of; the
    kernel fills it under its task-list lock, so a file that reads empty was empty at that
    moment. A process started by the test is a child of one of our threads, and an orphan below
    one comes back to us (we are a child subreaper), so no child at all means no descendant at
    all. Where the kernel has no such file (built without CONFIG_PROC_CHILDREN): True, so that
    the caller looks the long way.
    """
    try:
        threads = os.listdir("/proc/self/task")
        for tid in threads:
            with open(f"/proc/self/task/{tid}/children", "rb") as listing:
                if listing.read(1):
                    return True
        # A thread that ended while we read hands its children to another one, perhaps one already
        # read: the same threads afterwards mean that no child moved between two of our reads.
        return sorted(os.listdir("/proc/self/task")) != sorted(threads)
    except FileNotFoundError:  # a thread gone meanwhile, or no such file on this kernel
        return True


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...), read from /proc; zombies left out."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if state != "Z":
            children.setdefault(int(ppid), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid``'s process group and every process below it, whatever group or session it moved to.

    honcho, for one, starts each of its processes in a session of its own, so killing
    honcho's group alone would leave the nodes running.
    """
    for _ in range(10):  # a process may fork while we look: look again until nothing is left
        below = descendants(pid)
        for target in below:
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        if not below:
            return


def spawn(
    args: list[str], *, cwd: Path, env: dict[str, str] | None, stderr: int, bufsize: int = -1
) -> subprocess.Popen[str]:
    """Start ``args`` in a session (and process group) of its own: a signal to the group, or a kill, reaches all it starts."""
    return subprocess.Popen(
        args,
        cwd=cwd,
        env=env or environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        bufsize=bufsize,
        start_new_session=True,
    )


class Process:
    """A real subprocess, in a process group of its own, whose merged output is read line by line as it comes.

    Every process started this way is killed, with everything it started, when the test ends
    (the ``_processes`` fixture in ``conftest.py``), pass or fail.
    """

    #: Every Process not yet killed; the test's teardown kills them.
    running: ClassVar[list[Process]] = []

    def __init__(
        self,
        args: Iterable[str | os.PathLike[str]],
        *,
        cwd: Path = ROOT,
        env: dict[str, str] | None = None,
    ) -> None:
        self.args = [str(a) for a in args]
        self.popen = spawn(self.args, cwd=cwd, env=env, stderr=subprocess.STDOUT, bufsize=1)
        Process.running.append(self)
        self.lines: list[str] = []
        self._cursor = 0
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.popen.pid

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
        raise AssertionError(
            f"no line matching {pattern!r} from {' '.join(self.args)}; output:\n" + "\n".join(self.lines)
        )

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
        """Send ``sig`` to the process itself (not its group)."""
        self.popen.send_signal(sig)

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the process's whole group, as a terminal's Ctrl-C does to its foreground job."""
        os.killpg(self.popen.pid, sig)

    def wait(self, timeout: float = DEADLINE) -> int:
        return self.popen.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the process, its group and everything it started; reap it."""
        kill_tree(self.popen.pid)
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()
        self.popen.wait()
        if self in Process.running:
            Process.running.remove(self)


def arduino(*args: str | os.PathLike[str], **kwargs: Any) -> Process:
    """``./arduino.py ARGS`` as a real subprocess."""
    return Process([sys.executable, ARDUINO, *args], **kwargs)


def serving(grid: Path, *names: str, options: Mapping[str, Iterable[str]] | None = None) -> dict[str, Process]:
    """``./arduino.py --grid GRID NAME`` for each of ``names``, all started at once, each once it says it is serving.

    Started together, their start-ups (Python, the imports: most of a second each) overlap;
    each is still waited for by its own line. ``options``: more arguments, by node.
    """
    started = {name: arduino("--grid", grid, name, *(options or {}).get(name, ())) for name in names}
    for process in started.values():
        process.expect("serving on")
    return started


def run_arduino(
    *args: str | os.PathLike[str], env: dict[str, str] | None = None, timeout: float = DEADLINE, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """Run ``./arduino.py ARGS`` to completion and capture its output."""
    return run([sys.executable, ARDUINO, *args], env=env, timeout=timeout, cwd=cwd)


def run(
    args: Iterable[str | os.PathLike[str]],
    *,
    env: dict[str, str] | None = None,
    timeout: float = DEADLINE,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, in a process group of its own, and capture its output.

    Past ``timeout``, or if the test is interrupted, the process and all it started are killed.
    """
    command = [str(a) for a in args]
    with spawn(command, cwd=cwd, env=env, stderr=subprocess.PIPE) as popen:
        try:
            stdout, stderr = popen.communicate(timeout=timeout)
        except BaseException:
            kill_tree(popen.pid)
            popen.kill()
            raise
    return subprocess.CompletedProcess(command, popen.returncode, stdout, stderr)


def shipped_grid_on_free_ports(folder: Path, *, quick: bool = True) -> Path:
    """The shipped grid.yaml, every port replaced by a free one, and a quick clock (``quick=False``: the shipped rate)."""
    text = (ROOT / "grid.yaml").read_text()
    if quick:
        text = text.replace("delay: 1}", "delay: 0.05}")
    ports = re.findall(r"port: (\d+)", text)
    for old, new in zip(ports, free_ports(len(ports)), strict=True):
        text = text.replace(f"port: {old}", f"port: {new}")
    return write_grid(folder, text)


class SilentPeer:
    """A real mesh peer, on its own port and thread, that greets and then never acknowledges anything.

    A node's ``loop()`` that streams to it waits for an ack for as long as the test likes:
    the way to hold a message in ``loop()`` for as long as a test needs, with no timing.
    """

    def __init__(self, name: str) -> None:
        from websockets.sync.server import serve

        from mesh import protocol

        def handler(ws: Any) -> None:
            for _ in ws:  # the hello, then messages: none is ever acked
                ws.send(protocol.encode(protocol.Hello(node=name)))
                break
            for _ in ws:
                pass

        self._server = serve(handler, "127.0.0.1", 0, subprotocols=[protocol.SUBPROTOCOL])
        self.port: int = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(DEADLINE)


class Proxy:
    """A TCP relay on its own port and thread, between a node and its peer: a wire that a test can cut.

    A real relay, not a fake of our code: bytes pass through unchanged. :meth:`cut` drops
    every connection through it at once (RST), as a broken network would; new connections
    pass again right after.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0  # bound by the OS; read back once the server is up
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
            self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
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
