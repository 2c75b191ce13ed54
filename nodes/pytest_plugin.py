"""The pytest plugin: a ``circuit`` fixture, the grid's nodes in virtual time for one test.

::

    async def test_an_hour_of_ticks(circuit):
        await circuit.advance("1h")                 # an hour of the circuit, in seconds of wall time
        assert circuit.count("clock/tick") >= 3600
        await circuit.unplug("iopin", "buzzer")     # faults as in scenarios (the wire made unpluggable below)

    @pytest.mark.circuit(only=["clock", "iopin"], params={"clock": {"delay": 0.5}}, seed=7, wires="all")
    async def test_configured(circuit): ...

    @pytest.mark.circuit(seeds=range(50))           # a swarm: the test once per seed, test_x[seed=0]...
    async def test_every_seed(circuit): ...

The fixture is a started :class:`nodes.simulation.Simulation` (``advance``, ``published``,
``count``, ``send``, ``wait_for``, ``unplug``/``plug``, ``kill``/``restart``, ``freeze``/``thaw``,
``sketch``, ``now``), its state folder in the test's ``tmp_path``; whatever the test
does, pass or fail, every node is stopped after it.

The grid is ``grid.yaml`` in pytest's rootdir, or the ini option ``arduino_grid``
(relative to the rootdir), or the marker's ``grid=`` (the same). The marker's other
keywords are :class:`~nodes.simulation.Simulation`'s: ``only``, ``params``, ``seed``,
``wires``, ``token``; and ``seeds``, which runs the test once per seed, each its own test
(``test_x[seed=17]``): a failing seed is replayed alone by its id,
``pytest 'tests/test_x.py::test_x[seed=17]'``. Markers add up, the closest (the test's own
over its module's) winning.

How the test's loop comes to run in virtual time: the test runs on pytest-asyncio's
loop, which looptime's own plugin patched when it was made (disabled, in wall time).
The fixture switches that loop to virtual time before it starts the nodes and back
after it has stopped them, so that setup, test and teardown all see one clock: looptime's
marker alone would switch it only around the test's body, and the nodes' timers set
during setup (in wall-clock seconds) would then lie hours ahead of the virtual clock.
The plugin marks the tests that use the fixture ``asyncio`` (so that they run in
pytest-asyncio's strict mode too) and ``looptime(False)`` (so that ``--looptime`` does not
switch it a second time).

This module imports only pytest (and pytest-asyncio, looptime, if installed) when pytest
loads it: the simulation is imported by the fixture, so that a session that never uses it
pays nothing for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .simulation import Simulation

__all__ = ["circuit"]

#: The keywords of ``@pytest.mark.circuit(...)``.
KEYWORDS = ("grid", "only", "params", "seed", "seeds", "wires", "token")
MARKER = (
    "circuit(grid=None, only=None, params=None, seed=0, seeds=None, wires=(), token=None): how the `circuit` "
    "fixture (arduino-mesh) starts the grid in virtual time (seeds: the test once per seed); see "
    "nodes/pytest_plugin.py"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "arduino_grid",
        "the grid file the `circuit` fixture (arduino-mesh) runs, relative to the rootdir",
        default="grid.yaml",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Generator[None, Any, Any]:
    """Mark ``asyncio`` a test that uses the fixture, before pytest-asyncio decides whether it is one of its own."""
    result = yield
    items = result if isinstance(result, list) else [result]
    for item in items:
        if isinstance(item, pytest.Function) and "circuit" in item.fixturenames:
            if item.get_closest_marker("asyncio") is None and asyncio.iscoroutinefunction(item.obj):
                item.add_marker(pytest.mark.asyncio)
    return result


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``seeds=``: the test once per seed, the fixture's ``request.param``."""
    if "circuit" not in metafunc.fixturenames:
        return
    seeds = None
    for marker in metafunc.definition.iter_markers("circuit"):  # the closest first
        if "seeds" in marker.kwargs:
            seeds = marker.kwargs["seeds"]
            break
    if seeds is not None:
        seeds = list(seeds)
        metafunc.parametrize("circuit", seeds, indirect=True, ids=[f"seed={seed}" for seed in seeds])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.has_plugin("looptime"):  # -p no:looptime: nothing of its to keep away
        return
    for item in items:
        if "circuit" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.looptime(False), append=False)  # the closest: the fixture switches the clock


def _settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The marker's keywords, the closest winning, checked; the grid as a path."""
    settings: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("circuit"))):
        if marker.args:
            pytest.fail(f"@pytest.mark.circuit takes keywords only ({', '.join(KEYWORDS)})", pytrace=False)
        unknown = sorted(set(marker.kwargs) - set(KEYWORDS))
        if unknown:
            pytest.fail(
                f"@pytest.mark.circuit: unknown keyword {', '.join(unknown)} (known: {', '.join(KEYWORDS)})",
                pytrace=False,
            )
        settings.update(marker.kwargs)
    grid = settings.pop("grid", None) or request.config.getini("arduino_grid")
    settings["grid"] = request.config.rootpath / Path(grid)
    settings.pop("seeds", None)
    if hasattr(request, "param"):  # one seed of seeds=
        settings["seed"] = request.param
    return settings


async def _circuit(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Simulation]:
    """The grid's nodes in virtual time, started: ``await circuit.advance("10s")``, ``circuit.published(...)``."""
    import looptime

    from mesh.errors import MeshError

    from .simulation import Simulation
    from .virtual import NOOP_CYCLES

    settings = _settings(request)
    try:
        simulation = Simulation(state_dir=tmp_path / "state", **settings)
    except (MeshError, OSError) as error:
        raise pytest.fail.Exception(f"circuit fixture: {error}", pytrace=False) from None
    loop = asyncio.get_running_loop()
    if not isinstance(loop, looptime.LoopTimeEventLoop):  # looptime's plugin is off (-p no:looptime)
        loop = looptime.patch_event_loop(loop, _enabled=False)  # type: ignore[arg-type]
    loop.setup_looptime(noop_cycles=NOOP_CYCLES)
    with loop.looptime_enabled():
        try:
            await simulation.start()
        except MeshError as error:
            raise pytest.fail.Exception(f"circuit fixture: {error}", pytrace=False) from None
        try:
            yield simulation
        finally:
            await simulation.stop()


def _missing() -> None:
    """The grid's nodes in virtual time: needs pytest-asyncio."""
    pytest.fail(
        "the circuit fixture needs pytest-asyncio: pip install 'arduino-mesh[project]' (or pytest-asyncio)",
        pytrace=False,
    )


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - exercised only where pytest-asyncio is missing
    circuit: Any = pytest.fixture(_missing, name="circuit")
else:
    circuit = pytest_asyncio.fixture(_circuit, name="circuit", loop_scope="function")
