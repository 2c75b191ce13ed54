"""A real Mosquitto for the tests: a broker on a free port, its config and persistence in the test's folder.

The ``broker`` fixture (registered for every test in ``conftest.py``) starts Debian's
Mosquitto (``apt-get install mosquitto mosquitto-clients``; ``.ci/run`` installs it) in a
session of its own through :class:`tests.helpers.Process`, so the test's teardown kills it
whatever happens. A test that asks for it is skipped, with one line, where Mosquitto is
missing. Mosquitto's own ``mosquitto_pub`` and ``mosquitto_sub`` are the foreign clients.

By default the broker is plain and anonymous (``mqtt://``). A test marked
``@pytest.mark.mosquitto(tls=True, users={"name": "password"})`` gets it over TLS
(``mqtts://``, a certificate for 127.0.0.1 from a trustme CA whose PEM is
``broker.ca``) and/or refusing anyone but those users (``allow_anonymous false`` and a
``password_file`` written with ``mosquitto_passwd``); ``pub()``/``sub()`` then pass
``--cafile`` and log in as the first user.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import signal
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import trustme

from tests.certs import write_certs
from tests.helpers import DEADLINE, Process, free_ports, run

SKIP_REASON = "Mosquitto is not installed: apt-get install mosquitto mosquitto-clients"


def mosquitto() -> str | None:
    """The Mosquitto binary: Debian's /usr/sbin/mosquitto, else the one on PATH, else None."""
    if os.access("/usr/sbin/mosquitto", os.X_OK):
        return "/usr/sbin/mosquitto"
    return shutil.which("mosquitto")


def client(name: str) -> str:
    """``mosquitto_pub`` or ``mosquitto_sub``; the test is skipped, with one line, without them."""
    found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if found is None:
        pytest.skip(SKIP_REASON)
    return found


class Broker:
    """One Mosquitto on ``127.0.0.1:port``: started, stopped, killed and started again on the same port and data.

    ``tls`` (True, or a ``trustme.CA`` to sign with) makes the listener TLS only: the CA's
    PEM is written to ``ca.pem`` in ``folder`` (:attr:`ca`), the broker's certificate (for
    127.0.0.1 and localhost) and key beside it, and :attr:`url` is ``mqtts://``.
    ``users`` (name to password) makes a ``password_file`` with ``mosquitto_passwd`` and
    sets ``allow_anonymous false``; :attr:`login` is the first, which ``pub()`` and
    ``sub()`` use. ``extra`` is appended to the config. ``start()`` waits for Mosquitto's
    "Opening ipv4 listen socket on port" line and then its "running" line (the first comes
    before the socket listens: a client that connects on it alone is sometimes refused),
    so the broker accepts connections once it returns.
    """

    def __init__(
        self,
        folder: Path,
        *,
        extra: str = "",
        tls: bool | trustme.CA = False,
        users: Mapping[str, str] | None = None,
    ) -> None:
        binary = mosquitto()
        if binary is None:
            pytest.skip(SKIP_REASON)
        self.binary = binary
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.port,) = free_ports(1)
        self.config = folder / "mosquitto.conf"
        self.extra = extra
        self.process: Process | None = None
        self._subscribers = 0
        #: The CA that signed the broker's certificate (PEM), for ``--cafile`` and a bridge's ``ca``; None without TLS.
        self.ca: Path | None = None
        self._tls_lines: list[str] = []
        if tls is not False:
            files = write_certs(folder, ca=tls if isinstance(tls, trustme.CA) else None)
            self.ca = folder / files["ca"]
            self._tls_lines = [
                f"certfile {folder / files['cert']}",
                f"keyfile {folder / files['key']}",
                f"cafile {self.ca}",  # for client certificates, which it does not require
            ]
        #: The user ``pub()`` and ``sub()`` log in as (name, password); None for an anonymous broker.
        self.login: tuple[str, str] | None = None
        self._password_lines: list[str] = []
        if users:
            passwords = folder / "passwords"
            for index, (name, password) in enumerate(users.items()):
                create = ("-c",) if index == 0 else ()
                done = run([client("mosquitto_passwd"), "-b", *create, passwords, name, password])
                assert done.returncode == 0, f"mosquitto_passwd failed: {done.stderr.strip()}"
            self.login = next(iter(users.items()))
            self._password_lines = ["allow_anonymous false", f"password_file {passwords}"]
        self.write_config()

    def write_config(self) -> None:
        lines = [
            f"listener {self.port} 127.0.0.1",
            *self._tls_lines,
            *self._password_lines,
            "allow_anonymous true" if "allow_anonymous" not in self.extra and not self._password_lines else "",
            "persistence true",
            f"persistence_location {self.folder}/",
            "log_dest stderr",
            "log_type all",
            # Run as root (a container, CI), Mosquitto would drop to user "mosquitto", which
            # cannot write the test's folder; as anyone else this line changes nothing.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            self.extra,
        ]
        self.config.write_text("\n".join(line for line in lines if line) + "\n")

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT``, or ``mqtts://`` over TLS."""
        return f"{'mqtts' if self.ca is not None else 'mqtt'}://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.popen.poll() is None

    def start(self) -> Broker:
        """Start Mosquitto (again) on the same port and persistence folder; return once it listens."""
        assert not self.running, "the broker already runs"
        self.process = Process([self.binary, "-c", self.config], cwd=self.folder)
        self.process.expect(rf"Opening ipv4 listen socket on port {self.port}\b")
        # Mosquitto says "Opening" before it binds and listens; "running" comes once every listener listens.
        self.process.expect(r"mosquitto version \S+ running")
        return self

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it (it saves its persistence file), and wait for the end."""
        if self.process is None:
            return
        if self.process.popen.poll() is None:
            self.process.signal(signal.SIGTERM)
            self.process.wait(DEADLINE)
        self.process.kill()  # reaps it, forgets it
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the broker dies as in a crash (what it had not saved is lost)."""
        if self.process is not None:
            self.process.kill()
            self.process = None

    def log(self) -> str:
        """Everything Mosquitto has logged so far (this run only)."""
        return self.process.output() if self.process is not None else ""

    def args(self) -> list[str]:
        """What mosquitto_pub and mosquitto_sub need to reach the broker: host, port, CA, user."""
        args = ["-h", "127.0.0.1", "-p", str(self.port)]
        if self.ca is not None:
            args += ["--cafile", str(self.ca)]
        if self.login is not None:
            args += ["-u", self.login[0], "-P", self.login[1]]
        return args

    async def apub(self, topic: str, message: str, *options: str) -> None:
        """:meth:`pub` from a thread, for an async test whose nodes must run meanwhile."""
        await asyncio.to_thread(self.pub, topic, message, *options)

    async def asub(self, topic: str, *options: str) -> Process:
        """:meth:`sub` from a thread, for an async test whose nodes must run meanwhile."""
        return await asyncio.to_thread(self.sub, topic, *options)

    async def astart(self) -> Broker:
        """:meth:`start` from a thread, for an async test whose nodes must run meanwhile."""
        return await asyncio.to_thread(self.start)

    def pub(self, topic: str, message: str, *options: str) -> None:
        """``mosquitto_pub -t TOPIC -m MESSAGE OPTIONS``, run to completion; fails the test if it fails."""
        done = run(
            [client("mosquitto_pub"), *self.args(), "-t", topic, *(("-m", message) if message else ()), *options]
        )
        assert done.returncode == 0, f"mosquitto_pub failed: {done.stderr.strip()}"

    def sub(self, topic: str, *options: str) -> Process:
        """``mosquitto_sub -t TOPIC -v OPTIONS`` running; its lines are ``TOPIC PAYLOAD``.

        Returns once the subscription is in place (Mosquitto logs its SUBSCRIBE), so nothing
        published after this call is missed.
        """
        if "-i" not in options:
            self._subscribers += 1
            options = ("-i", f"test-sub-{os.getpid()}-{self._subscribers}", *options)
        name = options[options.index("-i") + 1]
        process = Process([client("mosquitto_sub"), *self.args(), "-v", "-t", topic, *options])
        if self.process is not None:
            try:
                self.process.expect(rf"Received SUBSCRIBE from {re.escape(name)}$")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\nmosquitto_sub's output:\n{process.output()}") from None
        return process


async def expect(process: Process, pattern: str, *, anywhere: bool = False) -> re.Match[str]:
    """``process.expect(pattern)`` from a thread: an async test's event loop (its nodes) runs meanwhile."""
    return await asyncio.to_thread(lambda: process.expect(pattern, anywhere=anywhere))


@pytest.fixture
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    """A running Mosquitto on a free port, config and data under the test's ``tmp_path``; killed at teardown.

    Plain and anonymous, unless the test is marked ``@pytest.mark.mosquitto(tls=..., users=...)``
    (the keywords of :class:`Broker`).
    """
    mark = request.node.get_closest_marker("mosquitto")
    instance = Broker(tmp_path / "mosquitto", **(mark.kwargs if mark is not None else {}))
    instance.start()
    yield instance
    instance.kill()
