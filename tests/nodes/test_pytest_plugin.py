"""The pytest plugin: a user's project tests its circuit with the `circuit` fixture, an hour in seconds.

The user's project is a folder of its own (pytester's), with a grid, a sketch of its own and a
test file; pytest runs it in this process, with the plugin as an installed package loads it.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

#: The user's pytest.ini, as `arduino-mesh new` writes it: without the loop scope, pytest-asyncio warns in every run.
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"

#: pytest-asyncio's warning of an unset loop scope made an error: the user's ini above sets it.
NO_WARNING = ["-W", "error::pytest.PytestDeprecationWarning"]

#: How the user's session gets the plugin: by its entry point once installed, else by name.
PLUGIN = [] if entry_points(group="pytest11", name="arduino_mesh") else ["-p", "nodes.pytest_plugin"]

GRID = """\
nodes:
  clock:  {sketch: clock, port: 8764, params: {tacks: 0, delay: 1}}
  iopin:  {sketch: iopin, port: 8765, params: {chance: 1.0, sequence: 3}}
  led:    {sketch: led, port: 8767, params: {color: green}}
wires:
  - clock -> iopin
  - iopin -> led
"""

LED = """\
from __future__ import annotations

from nodes import FactoryLoop, reactive


class Led(FactoryLoop):
    def setup(self, color: str = "red") -> None:
        self.color = color
        self.lit = False

    @reactive
    async def loop(self, channel: str, message: str) -> str:
        self.lit = message == "1"
        state = "on" if self.lit else "off"
        await self.publish("lit", state)
        return state
"""

#: A user's test of ``span`` of their circuit (``seconds`` long): the README's example, an hour, and a short one.
SPAN = """\
async def test_{name}_of_the_circuit(circuit):
    await circuit.advance("{span}")
    ticks = circuit.count("clock/tick")
    assert {seconds} <= ticks <= {seconds} + 1
    assert circuit.now() == {seconds}
    assert circuit.count("iopin/pin") == 3 * ticks
    assert circuit.count("led/lit") >= 3 * (ticks - 1)  # the last tick's bits may be on their way
    assert {{p.data for p in circuit.published("led/lit")}} == {{"on"}}
    assert circuit.sketch("led").lit
    assert await circuit.send("led", "0") == "off"
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A user's project: grid.yaml, sketches/led.py."""
    pytester.makeini(INI)
    pytester.makefile(".yaml", grid=GRID)
    (pytester.path / "sketches").mkdir()
    (pytester.path / "sketches" / "led.py").write_text(LED)
    return pytester


@pytest.mark.slow  # 3,600 ticks through three nodes: 3.5 s (12 s under coverage); five minutes of it below
def test_a_users_test_runs_an_hour_of_their_circuit(project: pytest.Pytester):
    """`await circuit.advance("1h")` runs an hour of the user's own circuit; its counts are exact."""
    project.makepyfile(test_led=SPAN.format(name="an_hour", span="1h", seconds=3600))
    result = project.runpytest(*PLUGIN)
    result.assert_outcomes(passed=1)


def test_a_users_test_runs_five_minutes_of_their_circuit(project: pytest.Pytester):
    """The same test of the user's, over five minutes: the fast set's share of the hour above."""
    project.makepyfile(test_led=SPAN.format(name="five_minutes", span="5m", seconds=300))
    result = project.runpytest(*PLUGIN, *NO_WARNING)
    result.assert_outcomes(passed=1)


def test_a_failing_assertion_fails_and_the_nodes_stop(project: pytest.Pytester):
    """A test that fails is reported failed, and its nodes are stopped all the same: nothing listens, no connection is left."""
    project.makepyfile(
        test_led="""
        RAN = []

        async def test_wrong(circuit):
            await circuit.advance("10s")
            RAN.append(circuit)
            assert circuit.count("clock/tick") == 0

        def test_stopped_after():
            (circuit,) = RAN
            assert not circuit.network.listeners and not circuit.network.pipes
            assert circuit.network.serial > 0  # it carried connections while it ran
        """
    )
    result = project.runpytest(*PLUGIN)
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*AssertionError: assert * == 0"])


def test_seeds_run_the_test_once_per_seed_and_a_failing_one_replays_by_its_id(project: pytest.Pytester):
    """`seeds=range(3)`: three tests, test_every_seed[seed=0]..[seed=2]; the one that fails fails again alone."""
    project.makepyfile(
        test_seeds="""
        import pytest

        @pytest.mark.circuit(seeds=range(3))
        async def test_every_seed(circuit):
            await circuit.advance("1500ms")
            assert circuit.count("led/lit") == 6
            assert circuit.seed != 1, "seed 1 fails"
        """
    )
    result = project.runpytest(*PLUGIN, "-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_every_seed?seed=1? FAILED*"])
    again = project.runpytest(*PLUGIN, "test_seeds.py::test_every_seed[seed=1]")
    again.assert_outcomes(failed=1)
    again.stdout.fnmatch_lines(["*seed 1 fails*"])


def test_the_marker_and_the_ini_option_choose_the_grid_and_its_nodes(project: pytest.Pytester):
    """`arduino_grid` names another grid; the marker picks nodes, params, a seed and the wires to unplug."""
    (project.path / "lab").mkdir()
    (project.path / "grid.yaml").rename(project.path / "lab" / "grid.yaml")
    (project.path / "sketches").rename(project.path / "lab" / "sketches")
    project.makeini(f"{INI}arduino_grid = lab/grid.yaml\n")
    project.makepyfile(
        test_led="""
        import pytest

        pytestmark = pytest.mark.circuit(params={"clock": {"delay": 0.5}})

        @pytest.mark.circuit(only=["clock", "iopin", "led"], seed=3, wires="all")
        async def test_a_wire_unplugged_for_ten_seconds_loses_no_tick(circuit):
            await circuit.advance("10s")
            await circuit.unplug("iopin", "led")
            await circuit.advance("10s")
            during = circuit.count("led/lit")
            await circuit.advance("1ms")
            assert circuit.count("led/lit") == during  # nothing arrives while the wire is out
            await circuit.plug("iopin", "led")
            await circuit.advance("10s")
            assert circuit.count("led/lit") == circuit.count("iopin/pin")
            assert circuit.count("clock/tick") == 61  # a tick every 0.5 s (the module's marker), from t = 0
        """
    )
    result = project.runpytest(*PLUGIN)
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("marker", "error"),
    [
        ('grid="nowhere.yaml"', "circuit fixture: */nowhere.yaml: cannot read the grid: No such file or directory"),
        ('grid="bad.yaml"', "circuit fixture: */bad.yaml:2: node 'clock' (sketch clock) takes no parameter 'nope'; *"),
        ('only=["lamp"]', "circuit fixture: unknown node 'lamp'; known nodes: clock, iopin, led"),
        (
            "colour=1",
            "@pytest.mark.circuit: unknown keyword colour (known: grid, only, params, seed, seeds, wires, token)",
        ),
    ],
)
def test_a_bad_configuration_is_one_line(project: pytest.Pytester, marker: str, error: str):
    """A grid that is not there or wrong (file:line), a node it lacks, a keyword the marker does not take: one line."""
    project.makefile(".yaml", bad="nodes:\n  clock: {sketch: clock, port: 1, params: {nope: 1}}\n")
    project.makepyfile(
        test_led=f"""
        import pytest

        @pytest.mark.circuit({marker})
        async def test_it(circuit):
            pass
        """
    )
    result = project.runpytest(*PLUGIN)
    result.assert_outcomes(errors=1)
    # one line, then the next section (the warnings or the short summary): no traceback
    result.stdout.fnmatch_lines(["*ERROR at setup of test_it*", error, "=*=*"], consecutive=True)


def test_a_session_that_does_not_use_it_is_untouched(pytester: pytest.Pytester):
    """The plugin loaded, a plain test suite (sync and async, no grid anywhere) runs as before."""
    pytester.makeini(INI)
    pytester.makepyfile(
        test_plain="""
        def test_sync():
            assert True
        """
    )
    result = pytester.runpytest(*PLUGIN, *NO_WARNING)
    result.assert_outcomes(passed=1)


# -- the fixture in this suite: the shipped grid.yaml (clock -> iopin -> buzzer, the dashboard) -------------


async def test_the_fixture_runs_the_shipped_circuit(circuit):
    """The grid's five ticks (tacks: 5, one a second) and their bits, each answered by the buzzer, within a minute."""
    await circuit.advance("1m")
    assert circuit.now() == 60
    assert circuit.count("clock/tick") == 5
    assert circuit.count("iopin/pin") == circuit.count("buzzer/sound") == 15
    assert [p.t for p in circuit.published("clock/tick")] == [0, 1, 2, 3, 4]


@pytest.mark.circuit(params={"clock": {"tacks": 0}}, wires=[("iopin", "buzzer")], seed=1)
async def test_a_buzzer_killed_or_frozen_loses_no_bit(circuit):
    """The buzzer killed for 10 s and restarted, then frozen for 10 s, then cut off: every bit is answered after."""
    await circuit.advance("5s")
    await circuit.kill("buzzer")
    await circuit.advance("10s")
    await circuit.restart("buzzer")
    circuit.freeze("buzzer", "10s")
    await circuit.advance("10s")
    await circuit.unplug("iopin", "buzzer")
    await circuit.advance("10s")
    await circuit.plug("iopin", "buzzer")
    settled = await circuit.until(lambda: circuit.count("buzzer/sound") >= circuit.count("iopin/pin"), within="30s")
    assert settled, (circuit.count("buzzer/sound"), circuit.count("iopin/pin"))
    assert circuit.count("clock/tick") >= 35
    assert await circuit.send("buzzer", "1") == "buzz buzz buzz"
