"""Suite-wide rules: every process a test starts is gone when the test ends, and tests carry their marks.

On Linux the test process makes itself a *child subreaper* (prctl PR_SET_CHILD_SUBREAPER),
so a process whose parent dies (a node started by a killed honcho, a browser's helper)
is re-parented to the test process instead of to init. After each test every process
below the test process is therefore visible, and any still alive is a leak: it is killed
and the test errors, naming it.
"""

# ruff: noqa: E402 -- the bytecode cache is set up before the imports it is for

from __future__ import annotations

import os
import sys
import tempfile

#: Where compiled modules go when PYTHONDONTWRITEBYTECODE keeps them out of the source folders: without a
#: cache, every run (and every Python process a test starts) compiles hypothesis, our modules and pytest's
#: rewritten test modules anew, seconds of each run. PYTHONPYCACHEPREFIX, if set, wins; see environment().
PYCACHE = os.path.join(tempfile.gettempdir(), "arduino-mesh-pycache")
if sys.dont_write_bytecode and not sys.pycache_prefix:
    sys.pycache_prefix = PYCACHE
    sys.dont_write_bytecode = False

import asyncio
import ctypes
import signal
import time
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import entry_points
from pathlib import Path

import coverage
import looptime
import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from nodes.virtual import NOOP_CYCLES
from tests.broker import broker  # noqa: F401  (the fixture, for every test)
from tests.helpers import MS, Process, descendants, has_children, kill_tree
from tests.redis_servers import redis_server  # noqa: F401  (the fixture, for every test)

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A browser test is an end-to-end test too, and so is a slow one: neither is in ``-m "not e2e"``.

    A slow test is the long variant of one in the fast set, which runs the same code, so the
    coverage of ``pytest --cov`` is measured there; tracing the long one (three to four times
    slower under coverage: 60 s of the whole suite) would add no line to it (pytest-cov's no_cover).
    """
    measured = config.pluginmanager.hasplugin("_cov")
    for item in items:
        slow = item.get_closest_marker("slow") is not None
        if item.get_closest_marker("e2e") is None and (item.get_closest_marker("browser") is not None or slow):
            item.add_marker(pytest.mark.e2e)
        if slow and measured:
            item.add_marker(pytest.mark.no_cover)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A no_cover test runs untraced with workers (pytest -n) too.

    pytest-cov pauses the coverage it measures the test with, but a worker holds two of its own
    (one from its start-up, one from the session's), and the other one traced on: the slow set
    ran at the traced speed. Inside pytest-cov's pause, whatever coverage is still running is
    stopped too, and started again after (in the same order: ``Coverage.current()`` is a stack).
    """
    paused: list[coverage.Coverage] = []
    if item.get_closest_marker("no_cover") is not None:
        while (running := coverage.Coverage.current()) is not None and len(paused) < 4:
            running.stop()
            paused.append(running)
    try:
        return (yield)
    finally:
        for each in reversed(paused):
            each.start()


#: Examples a property (a hypothesis test) tries in the fast set. Its ``thorough`` variant, marked
#: slow (so in the whole suite only), tries as many as its own ``@settings`` says.
FAST_EXAMPLES = 10


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every property runs twice: ``[fast]``, a few examples, and ``[thorough]``, its whole budget (slow)."""
    if getattr(metafunc.function, "is_hypothesis_test", False):
        metafunc.parametrize(
            "_examples", ["fast", pytest.param("thorough", marks=pytest.mark.slow)], indirect=True, scope="function"
        )


@pytest.fixture(autouse=True)
def _examples(request: pytest.FixtureRequest) -> Iterator[None]:
    """A property's ``[fast]`` variant: its own settings, at most FAST_EXAMPLES examples; anything else: untouched."""
    if getattr(request, "param", None) != "fast":
        yield
        return
    test = request.function
    own = test._hypothesis_internal_use_settings  # what @settings (or the profile) gave it; hypothesis reads it per run
    test._hypothesis_internal_use_settings = settings(own, max_examples=min(own.max_examples, FAST_EXAMPLES))
    try:
        yield
    finally:
        test._hypothesis_internal_use_settings = own


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
    if not has_children():  # most tests start nothing: nothing to look for below us (a look costs ~3 ms)
        return
    # What a closed browser leaves (its crash handler) exits by itself a moment later: give it that moment.
    deadline = time.monotonic() + 2000 * MS
    while (leaked := descendants(os.getpid())) and time.monotonic() < deadline:
        time.sleep(10 * MS)
    if leaked:
        described = [_describe(pid) for pid in leaked]
        for pid in leaked:
            kill_tree(pid)
        pytest.fail("processes left running by this test (now killed):\n  " + "\n  ".join(described), pytrace=False)


@pytest.fixture
async def virtual_time() -> AsyncIterator[None]:
    """The test's event loop in virtual time (looptime) from here on: the fixtures set up after this one, the test,
    and their teardown; its clock jumps to the next timer whenever every task waits.

    For a test whose wait is a timeout of the code under test (which, like everything that
    waits in the mesh, runs on the loop's clock): SEND_TIMEOUT's 3 s take no wall time.
    Request it before the fixtures that start nodes (or start them in the test), as the
    ``circuit`` fixture does, so that no timer was set on the wall clock, which virtual time
    does not follow. Only for a test whose every peer runs in this loop: a thread or a
    process answering would be one the loop cannot wait for (the clock would jump past it).
    """
    loop = asyncio.get_running_loop()
    # A timer already set is on the wall clock, far ahead of the virtual one: it would fire much too late.
    assert not getattr(loop, "_scheduled", ()), "virtual_time must come before any fixture that starts something"
    if not isinstance(loop, looptime.LoopTimeEventLoop):  # looptime's plugin is off (-p no:looptime)
        loop = looptime.patch_event_loop(loop, _enabled=False)
    loop.setup_looptime(noop_cycles=NOOP_CYCLES)
    with loop.looptime_enabled():
        yield
