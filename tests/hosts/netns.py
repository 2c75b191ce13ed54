"""Two hosts on one machine: Linux network namespaces joined by a veth pair, for real.

:class:`Hosts` makes two namespaces, each with its own network stack (``lo`` up), and
one veth pair between them, an address on each end (a /30 of 10.231.0.0/16): two
machines on one cable. :meth:`Hosts.run` starts a command inside one of them as a
:class:`tests.helpers.Process`; :meth:`Hosts.cut` and :meth:`Hosts.mend` take the cable
out and put it back (``ip link set ... down``/``up``). :meth:`Hosts.close` kills what
it started and deletes both namespaces (the veth pair goes with them), pass or fail.

``ip netns exec NS CMD`` enters the namespace and *execs* CMD: the process a test
holds is the command itself, in the session :class:`~tests.helpers.Process` gave it,
so killing its group kills the node.

Every name carries this process's pid (``arduino-mesh-PID-a``): two suites at once never
share one, and :func:`clean_leftovers` deletes those of a run that died before its
teardown (its pid is gone), never another live run's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import ARDUINO, DEADLINE, ROOT, Process, run

#: Every namespace this helper makes starts with this, then the pid of the test process.
PREFIX = "arduino-mesh-"


def ip_command() -> str:
    """The ``ip`` binary (iproute2): on PATH, else /usr/sbin/ip, /sbin/ip."""
    for candidate in (shutil.which("ip"), "/usr/sbin/ip", "/sbin/ip"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return "ip"


IP = ip_command()


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS`` to completion; raise with its stderr if it fails."""
    done = subprocess.run([IP, *args], capture_output=True, text=True, timeout=DEADLINE, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done


def why_not() -> str | None:
    """Why this machine cannot run the namespace tests (not root, no ``ip netns``), or None if it can."""
    if sys.platform != "linux":
        return f"runs on Linux, not {sys.platform}"
    if os.geteuid() != 0:
        return "not running as root"
    probe = f"{PREFIX}{os.getpid()}-probe"
    try:
        ip("netns", "add", probe)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    try:
        ip("netns", "del", probe)
    except RuntimeError as exc:
        return str(exc)
    return None


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def clean_leftovers() -> list[str]:
    """Delete the namespaces an earlier run of this helper left (its process is gone); return their names."""
    found = []
    for line in ip("netns", "list").stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if not name.startswith(PREFIX):
            continue
        pid = name.removeprefix(PREFIX).split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            ip("netns", "del", name)
            found.append(name)
    return found


@dataclass
class Hosts:
    """Two namespaces, ``a`` and ``b``, joined by a veth pair: ``a`` at ``address_a``, ``b`` at ``address_b``."""

    a: str
    b: str
    veth_a: str
    veth_b: str
    address_a: str
    address_b: str
    processes: list[Process] = field(default_factory=list)

    @classmethod
    def make(cls) -> Hosts:
        pid = os.getpid()
        subnet = 4 * (pid % 64)  # a /30 of 10.231.(pid // 64 % 256).0/24
        third = pid // 64 % 256
        hosts = cls(
            a=f"{PREFIX}{pid}-a",
            b=f"{PREFIX}{pid}-b",
            veth_a=f"am{pid}a"[:15],
            veth_b=f"am{pid}b"[:15],
            address_a=f"10.231.{third}.{subnet + 1}",
            address_b=f"10.231.{third}.{subnet + 2}",
        )
        try:
            hosts._build()
        except BaseException:
            hosts.close()
            raise
        return hosts

    def _build(self) -> None:
        for namespace in (self.a, self.b):
            ip("netns", "add", namespace)
            ip("-n", namespace, "link", "set", "lo", "up")
        # Made straight inside the namespaces: nothing of it ever appears in the machine's own.
        ip("link", "add", self.veth_a, "netns", self.a, "type", "veth", "peer", "name", self.veth_b, "netns", self.b)
        for namespace, veth, address in ((self.a, self.veth_a, self.address_a), (self.b, self.veth_b, self.address_b)):
            ip("-n", namespace, "addr", "add", f"{address}/30", "dev", veth)
            ip("-n", namespace, "link", "set", veth, "up")

    def arduino(self, namespace: str, *args: str | os.PathLike[str], env: dict[str, str] | None = None) -> Process:
        """``./arduino.py ARGS`` started inside ``namespace`` (killed with the rest at :meth:`close`)."""
        process = Process([IP, "netns", "exec", namespace, sys.executable, ARDUINO, *args], env=env)
        self.processes.append(process)
        return process

    def run_arduino(
        self, namespace: str, *args: str | os.PathLike[str], env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``./arduino.py ARGS`` inside ``namespace``, to completion, its output captured."""
        return run([IP, "netns", "exec", namespace, sys.executable, ARDUINO, *args], env=env, cwd=ROOT)

    def cut(self) -> None:
        """Take the cable out: ``a``'s end of the veth pair down (``b``'s end sees its carrier go)."""
        ip("-n", self.a, "link", "set", self.veth_a, "down")

    def mend(self) -> None:
        """Put the cable back."""
        ip("-n", self.a, "link", "set", self.veth_a, "up")

    def close(self) -> None:
        """Kill what ran inside, then delete both namespaces (the veth pair goes with them). Never raises."""
        for process in self.processes:
            process.kill()
        for namespace in (self.a, self.b):
            subprocess.run([IP, "netns", "del", namespace], capture_output=True, timeout=DEADLINE, check=False)
