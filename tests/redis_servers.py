"""What the Redis tests share: a real redis-server on a free port, raw sockets, redis-cli run to its end.

Every process goes through :class:`tests.helpers.Process` (its own process group, killed whole
at the end). Nothing waits with a fixed sleep: a server is waited for by connecting to its port
until a deadline, a reply by reading it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import DEADLINE, Process, free_ports

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")


def needs_redis() -> None:
    """Skip, saying how to install them, unless redis-server and redis-cli are here (CI installs both)."""
    if REDIS_SERVER is None or REDIS_CLI is None:
        pytest.skip("redis-server and redis-cli are not installed (apt-get install redis-server redis-tools)")


def wait_port(port: int, process: Process, within: float = DEADLINE) -> None:
    """Return once something accepts connections on ``port`` of 127.0.0.1; an error past ``within`` seconds."""
    end = time.monotonic() + within
    while True:
        assert process.popen.poll() is None, f"it exited: {process.output()[-500:]}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            assert time.monotonic() < end, f"nothing listens on {port} after {within} s"
            time.sleep(0.005)  # a poll interval under the deadline, not a wait for something


class RedisServer:
    """A real redis-server on a free port of 127.0.0.1, no persistence; killed with its group on the way out."""

    def __init__(self, folder: Path, *extra: str) -> None:
        assert REDIS_SERVER is not None
        (self.port,) = free_ports(1)
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = Process([*argv, "--dir", str(folder), *extra])
        try:
            wait_port(self.port, self.process)
        except BaseException:
            self.process.kill()
            raise

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.kill()


@contextlib.contextmanager
def raw_connection(port: int) -> Iterator[socket.socket]:
    """A plain blocking TCP connection to 127.0.0.1, closed on the way out."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    try:
        yield sock
    finally:
        sock.close()


def recv_until(sock: socket.socket, needle: bytes) -> bytes:
    """Read until ``needle`` came or the peer closed; all bytes read."""
    data = bytearray()
    while needle not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return bytes(data)


def recv_until_closed(sock: socket.socket) -> bytes:
    """Read until the peer closes (a reset ends it too); all bytes read."""
    data = bytearray()
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return bytes(data)


async def read_all(reader: asyncio.StreamReader) -> bytes:
    """Everything until the peer closes, within the deadline."""
    async with asyncio.timeout(DEADLINE):
        return await reader.read()


async def redis_cli(*args: str, port: int) -> str:
    """``redis-cli -p PORT ARGS...`` run to its end, in its own process group; its output (stdout and stderr)."""
    assert REDIS_CLI is not None
    process = await asyncio.create_subprocess_exec(
        REDIS_CLI,
        "-p",
        str(port),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(DEADLINE):
            out, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()
    return out.decode()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server for the test (the reference), killed with its group at the end.

    One per test, not per module: every process still running when a test ends is a leak
    (tests/conftest.py), and a redis-server starts in a few milliseconds.
    """
    needs_redis()
    with RedisServer(tmp_path) as server:
        yield server


class Cli:
    """A redis-cli that runs on beside a node in the test's own event loop (SUBSCRIBE): its output read as it comes.

    ``await Cli.start(port, *args)``; ``expect()`` reads until a regex matches what came since the last
    match; ``aclose()`` kills its process group and reaps it (the test's ``finally``).
    """

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.out = b""

    @classmethod
    async def start(cls, port: int, *args: str) -> Cli:
        assert REDIS_CLI is not None
        process = await asyncio.create_subprocess_exec(
            REDIS_CLI,
            "-p",
            str(port),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        return cls(process)

    async def expect(self, pattern: bytes) -> None:
        """Read until ``pattern`` (a regex) matches the output not yet matched; AssertionError past the deadline."""
        assert self.process.stdout is not None
        regex = re.compile(pattern)
        try:
            async with asyncio.timeout(DEADLINE):
                while (found := regex.search(self.out)) is None:
                    chunk = await self.process.stdout.read(65536)
                    assert chunk, f"redis-cli ended before {pattern!r}: {self.out!r}"
                    self.out += chunk
        except TimeoutError:
            raise AssertionError(f"{pattern!r} not in redis-cli's output: {self.out!r}") from None
        self.out = self.out[found.end() :]

    async def aclose(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.communicate()
