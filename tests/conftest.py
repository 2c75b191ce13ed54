"""Suite-wide rules: every process a test starts is gone when the test ends, and tests carry their marks.

On Linux the test process makes itself a *child subreaper* (prctl PR_SET_CHILD_SUBREAPER),
so a process whose parent dies (a node started by a killed honcho, a browser's helper)
is re-parented to the test process instead of to init. After each test every process
below the test process is therefore visible, and any still alive is a leak: it is killed
and the test errors, naming it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from hypothesis.configuration import set_hypothesis_home_dir

from tests.broker import broker  # noqa: F401  (the fixture, for every test)
from tests.helpers import MS, Process, descendants, kill_tree

PR_SET_CHILD_SUBREAPER = 36

# The `circuit` fixture: pytest loads our plugin through its pytest11 entry point once the
# package is installed (pip install -e .); a checkout whose install predates it loads it here.
if not entry_points(group="pytest11", name="arduino_mesh"):
    pytest_plugins = ["nodes.pytest_plugin"]


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"stopped by signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    _hypothesis_out_of_the_checkout(config)
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # SIGTERM (a CI time-out, tests/stress.sh stopped) ends the run as Ctrl-C does: the
    # running test's teardown still kills what it started.
    signal.signal(signal.SIGTERM, _interrupted)


def _hypothesis_out_of_the_checkout(config: pytest.Config) -> None:
    """Hypothesis keeps its examples (and caches) in pytest's cache, not in a ``.hypothesis/`` of the checkout.

    A failing example is still replayed on the next run; ``pytest --cache-clear`` forgets it
    with the rest. ``HYPOTHESIS_STORAGE_DIRECTORY``, when set, wins.
    """
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        return
    cache = getattr(config, "cache", None)
    if cache is not None:
        home = cache.mkdir("hypothesis")
    else:  # -p no:cacheprovider: the system's temporary folder
        home = Path(tempfile.gettempdir()) / "arduino-mesh-hypothesis"
    set_hypothesis_home_dir(str(home))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A browser test is an end-to-end test too."""
    for item in items:
        if item.get_closest_marker("browser") is not None and item.get_closest_marker("e2e") is None:
            item.add_marker(pytest.mark.e2e)


def _describe(pid: int) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        args = "?"
    return f"{pid} {args[:200]}"


@pytest.fixture(scope="session", autouse=True)
def firmware_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cache of firmware builds and of the simavr helper for the whole session (nodes.firmware.toolchain).

    Empty at the start, so the suite builds the Arduino core and the helper cold, once; every
    test after finds them there. Through the environment, so that ./arduino.py and the other
    processes the tests start share it too; nothing lands in the user's ~/.cache.
    """
    from nodes.firmware.toolchain import CACHE_ENV

    path = tmp_path_factory.mktemp("arduino-mesh-cache")
    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = old


@pytest.fixture(autouse=True)
def _processes() -> Iterator[None]:
    """Kill whatever the test started, pass or fail; error if anything escaped that cleanup."""
    yield
    for process in list(Process.running):
        process.kill()
    # What a closed browser leaves (its crash handler) exits by itself a moment later: give it that moment.
    deadline = time.monotonic() + 2000 * MS
    while (leaked := descendants(os.getpid())) and time.monotonic() < deadline:
        time.sleep(10 * MS)
    if leaked:
        described = [_describe(pid) for pid in leaked]
        for pid in leaked:
            kill_tree(pid)
        pytest.fail("processes left running by this test (now killed):\n  " + "\n  ".join(described), pytrace=False)
