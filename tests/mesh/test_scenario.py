"""Tests for mesh.scenario: a scenario's text to steps, and its checks against a grid.

The heart of this file is two tables: ERRORS (a malformed scenario and its exact one-line
error, ``FILE:LINE: what``) and GRID_ERRORS (a well-formed scenario that does not fit the
shipped grid). Scenarios are loaded from text so that lines are real; nothing touches a
socket or an event loop.
"""

from __future__ import annotations

from textwrap import dedent

import pytest

from mesh.grid import load_grid
from mesh.scenario import ScenarioError, check, load_scenario
from mesh.steps import (
    Delay,
    ExpectCount,
    ExpectTopic,
    Flaky,
    Freeze,
    Heal,
    Kill,
    Latency,
    Partition,
    Plug,
    Restart,
    Send,
    Span,
    Unplug,
)

GRID = """\
nodes:
  clock:  {sketch: clock, host: 127.0.0.1, port: 8764, params: {tacks: 5, delay: 1}}
  iopin:  {sketch: iopin, host: 127.0.0.1, port: 8765, params: {chance: 0.6, sequence: 3}}
  buzzer: {sketch: buzzer, host: 127.0.0.1, port: 8766, params: {sound: buzz buzz buzz}}
  meter:  {sketch: meter, subscribe: ["#"]}
wires:
  - clock -> iopin
  - iopin -> buzzer
"""


def test_every_step_parsed_with_its_line() -> None:
    """Every step is read with the line it starts on; numbers meant as text keep their text as written."""
    text = dedent("""\
        grid: ../grid.yaml
        seed: 7
        nodes: [clock, iopin, buzzer]
        params: {clock: {tacks: 0}}
        steps:
          - delay: 500ms
          - send: {node: clock, message: press, channel: /b, expect: tick 1}
          - expect-topic: {key: iopin/pin, value: 1, within: 2s}
          - expect-count: {key: buzzer/sound, at-least: 3, at-most: 9, within: 1.5}
          - unplug: iopin -> buzzer
          - plug: iopin->buzzer
          - kill: buzzer
          - restart: buzzer
          - freeze:
              node: iopin
              for: 5s
          - expect-topic: {key: "+/sound", value: 0.50, within: 1m}
          - expect-count: {key: "#", exactly: 0}
    """)
    scenario = load_scenario(text, "scenarios/s.yaml")
    assert scenario.path == "scenarios/s.yaml"
    assert scenario.grid == "scenarios/../grid.yaml"
    assert scenario.seed == 7
    assert scenario.nodes == ("clock", "iopin", "buzzer")
    assert scenario.params == {"clock": {"tacks": 0}}
    assert scenario.steps == (
        Delay(line=6, seconds=0.5, written="500ms"),
        Send(line=7, node="clock", message="press", channel="/b", expect="tick 1", node_line=7),
        ExpectTopic(line=8, key="iopin/pin", value="1", within=2.0, within_written="2s"),
        ExpectCount(line=9, key="buzzer/sound", at_least=3, at_most=9, within=1.5, within_written="1.5s"),
        Unplug(line=10, source="iopin", target="buzzer"),
        Plug(line=11, source="iopin", target="buzzer"),
        Kill(line=12, node="buzzer"),
        Restart(line=13, node="buzzer"),
        Freeze(line=14, node="iopin", seconds=5.0, written="5s", node_line=15),
        ExpectTopic(line=17, key="+/sound", value="0.50", within=60.0, within_written="1m"),
        ExpectCount(line=18, key="#", exactly=0),
    )
    assert scenario.wires == (("iopin", "buzzer"),)
    assert [step.describe() for step in scenario.steps] == [
        "delay 500ms",
        "send 'press' to clock on channel '/b', expecting 'tick 1'",
        "expect-topic iopin/pin = 1 within 2s",
        "expect-count buzzer/sound at least 3 and at most 9 within 1.5s",
        "unplug iopin -> buzzer",
        "plug iopin -> buzzer",
        "kill buzzer",
        "restart buzzer",
        "freeze iopin for 5s",
        "expect-topic +/sound = 0.50 within 1m",
        "expect-count # exactly 0",
    ]


def test_the_network_steps_and_spans_parsed() -> None:
    """latency, partition, heal and flaky, with their wires; a duration written low..high is a span, drawn when played."""
    text = dedent("""\
        steps:
          - latency: {wire: iopin -> buzzer, delay: 50ms, jitter: 10ms}
          - latency: {delay: 100ms..300ms}
          - latency: {}
          - partition: [[clock], [iopin, buzzer]]
          - heal: {}
          - flaky: {wire: clock -> iopin, every: 2s}
          - flaky: {}
          - delay: 1s..10s
          - freeze: {node: iopin, for: 2s..2s}
    """)
    assert load_scenario(text, "s.yaml").steps == (
        Latency(line=2, wire=("iopin", "buzzer"), delay=0.05, delay_written="50ms", jitter=0.01, jitter_written="10ms"),
        Latency(line=3, delay=Span(0.1, 0.3, "100ms..300ms"), delay_written="100ms..300ms"),
        Latency(line=4),
        Partition(line=5, groups=(("clock",), ("iopin", "buzzer"))),
        Heal(line=6),
        Flaky(line=7, wire=("clock", "iopin"), every=2.0, every_written="2s"),
        Flaky(line=8),
        Delay(line=9, seconds=Span(1.0, 10.0, "1s..10s"), written="1s..10s"),
        Freeze(line=10, node="iopin", seconds=Span(2.0, 2.0, "2s..2s"), written="2s..2s", node_line=10),
    )


def test_a_span_draws_from_the_generator_it_is_given() -> None:
    """The same generator state draws the same; the drawn step says what was drawn, of what."""
    import random

    step = Delay(line=1, seconds=Span(1.0, 10.0, "1s..10s"), written="1s..10s")
    drawn = step.drawn(random.Random("1:scenario"))
    assert drawn == step.drawn(random.Random("1:scenario"))
    assert isinstance(drawn.seconds, float) and 1.0 <= drawn.seconds <= 10.0
    assert drawn.describe() == f"delay {drawn.seconds:g}s (of 1s..10s)"
    assert Heal(line=2).drawn(random.Random(1)) == Heal(line=2)


def test_only_steps_required() -> None:
    """Without grid, seed, nodes or params, the command's own are used (None, empty)."""
    scenario = load_scenario("steps: [{delay: 1}]\n", "s.yaml")
    assert (scenario.grid, scenario.seed, scenario.nodes, dict(scenario.params)) == (None, None, None, {})
    assert scenario.steps == (Delay(line=1, seconds=1.0, written="1s"),)


#: (id, scenario text, the error as printed). The file is named "s.yaml".
ERRORS: list[tuple[str, str, str]] = [
    ("empty", "# nothing\n", "s.yaml: the scenario is empty; it needs 'steps'"),
    ("not-a-mapping", "- delay: 1\n", "s.yaml:1: a scenario must be a mapping with 'steps', not a list"),
    ("no-steps", "seed: 1\n", "s.yaml: the scenario has no 'steps'"),
    (
        "unknown-top-key",
        "seed: 1\nstep: []\n",
        "s.yaml:2: unknown key 'step' at the top level (expected one of: grid, nodes, params, seed, steps); "
        "did you mean 'steps'?",
    ),
    ("steps-empty", "steps: []\n", "s.yaml:1: 'steps' must be a list of steps, like [{delay: 1s}]"),
    ("steps-not-a-list", "steps: {delay: 1}\n", "s.yaml:1: 'steps' must be a list of steps, like [{delay: 1s}]"),
    (
        "unknown-step",
        "steps:\n  - delay: 1\n  - expect-pin: {key: a}\n",
        "s.yaml:3: unknown step 'expect-pin' (expected one of: delay, send, expect-topic, expect-count, unplug, "
        "plug, kill, restart, freeze, latency, partition, heal, flaky); did you mean 'expect-topic'?",
    ),
    (
        "two-steps-in-one",
        "steps:\n  - delay: 1\n    kill: buzzer\n",
        "s.yaml:2: a step is one 'name: what', like 'delay: 500ms' (steps: delay, send, expect-topic, "
        "expect-count, unplug, plug, kill, restart, freeze, latency, partition, heal, flaky), not 2 keys",
    ),
    (
        "step-not-a-mapping",
        "steps:\n  - delay\n",
        "s.yaml:2: a step is one 'name: what', like 'delay: 500ms' (steps: delay, send, expect-topic, "
        "expect-count, unplug, plug, kill, restart, freeze, latency, partition, heal, flaky), not 'delay'",
    ),
    (
        "bad-duration",
        "steps:\n  - delay: 5 seconds\n",
        "s.yaml:2: delay: '5 seconds' is not a duration (write 500ms, 10s, 2m, 1h, 1h30m, or seconds as a number)",
    ),
    (
        "negative-duration",
        "steps:\n  - delay: -1\n",
        "s.yaml:2: delay: -1 is not a duration (write 500ms, 10s, 2m, 1h, 1h30m, or seconds as a number)",
    ),
    (
        "bad-within-at-its-line",
        "steps:\n  - expect-topic:\n      key: iopin/pin\n      within: soon\n",
        "s.yaml:4: expect-topic 'within': 'soon' is not a duration "
        "(write 500ms, 10s, 2m, 1h, 1h30m, or seconds as a number)",
    ),
    (
        "expect-topic-without-within",
        "steps:\n  - expect-topic: {key: iopin/pin}\n",
        "s.yaml:2: expect-topic iopin/pin needs 'within' (how long to wait for it, like 2s)",
    ),
    (
        "unknown-field",
        "steps:\n  - send:\n      node: buzzer\n      mesage: 1\n",
        "s.yaml:4: unknown key 'mesage' in send (expected one of: channel, expect, message, node); "
        "did you mean 'message'?",
    ),
    ("send-without-message", "steps:\n  - send: {node: buzzer}\n", "s.yaml:2: send needs 'message'"),
    ("send-without-node", "steps:\n  - send: {message: 1}\n", "s.yaml:2: send needs 'node'"),
    (
        "send-not-a-mapping",
        "steps:\n  - send: buzzer 1\n",
        "s.yaml:2: send must be a mapping with channel, expect, message, node, "
        "like {node: buzzer, message: 1, expect: buzz buzz buzz}",
    ),
    (
        "send-message-a-list",
        "steps:\n  - send:\n      node: buzzer\n      message: [1, 0]\n",
        "s.yaml:4: send 'message' must be text or a number, not [1, 0]",
    ),
    (
        "node-not-a-name",
        "steps:\n  - kill: [buzzer]\n",
        "s.yaml:2: kill: expected a node name, not ['buzzer']",
    ),
    (
        "wire-malformed",
        "steps:\n  - unplug: iopin to buzzer\n",
        "s.yaml:2: unplug: expected a wire 'SOURCE -> TARGET', not 'iopin to buzzer'",
    ),
    (
        "bad-pattern",
        "steps:\n  - expect-count: {key: 'a/#/b', exactly: 1}\n",
        "s.yaml:2: expect-count 'key': invalid pattern 'a/#/b': '#' may only stand last",
    ),
    (
        "count-without-bound",
        "steps:\n  - expect-count: {key: a/b}\n",
        "s.yaml:2: expect-count a/b needs 'at-least', 'exactly' or 'at-most'",
    ),
    (
        "count-negative",
        "steps:\n  - expect-count:\n      key: a/b\n      at-least: -1\n",
        "s.yaml:4: expect-count 'at-least' must be a whole number, 0 or more, not -1",
    ),
    (
        "count-not-whole",
        "steps:\n  - expect-count: {key: a/b, exactly: 2.5}\n",
        "s.yaml:2: expect-count 'exactly' must be a whole number, 0 or more, not 2.5",
    ),
    (
        "count-exactly-and-more",
        "steps:\n  - expect-count: {key: a/b, exactly: 2, at-least: 1}\n",
        "s.yaml:2: expect-count a/b: 'exactly' goes alone, without 'at-least' or 'at-most'",
    ),
    (
        "count-impossible",
        "steps:\n  - expect-count: {key: a/b, at-least: 3, at-most: 2}\n",
        "s.yaml:2: expect-count a/b: at least 3 and at most 2 can never hold",
    ),
    ("freeze-without-for", "steps:\n  - freeze: {node: iopin}\n", "s.yaml:2: freeze needs 'for' (how long, like 5s)"),
    (
        "span-backwards",
        "steps:\n  - delay: 10s..1s\n",
        "s.yaml:2: delay: the span 10s..1s goes from the shorter to the longer",
    ),
    (
        "span-not-durations",
        "steps:\n  - delay: 1s..soon\n",
        "s.yaml:2: delay: 'soon' is not a duration (write 500ms, 10s, 2m, 1h, 1h30m, or seconds as a number) "
        "(a span is written 1s..10s)",
    ),
    (
        "span-where-none-goes",
        "steps:\n  - expect-topic: {key: a/b, within: 1s..2s}\n",
        "s.yaml:2: expect-topic 'within': '1s..2s' is not a duration "
        "(write 500ms, 10s, 2m, 1h, 1h30m, or seconds as a number)",
    ),
    (
        "latency-wire-malformed",
        "steps:\n  - latency:\n      wire: iopin buzzer\n      delay: 1s\n",
        "s.yaml:3: latency 'wire': expected 'SOURCE -> TARGET', not 'iopin buzzer'",
    ),
    (
        "latency-jitter-alone",
        "steps:\n  - latency: {jitter: 10ms}\n",
        "s.yaml:2: latency: 'jitter' goes around a 'delay' at least as long (delay: 50ms, jitter: 10ms)",
    ),
    (
        "partition-one-group",
        "steps:\n  - partition: [[clock, iopin]]\n",
        "s.yaml:2: partition: expected two groups of nodes or more, like [[clock], [iopin, buzzer]], "
        "not [['clock', 'iopin']]",
    ),
    (
        "partition-node-twice",
        "steps:\n  - partition:\n      - [clock]\n      - [iopin, clock]\n",
        "s.yaml:4: partition: node 'clock' is in two groups",
    ),
    (
        "heal-with-fields",
        "steps:\n  - heal: {now: 1}\n",
        "s.yaml:2: heal takes nothing: write 'heal: {}', not {'now': 1}",
    ),
    (
        "flaky-wire-without-every",
        "steps:\n  - flaky: {wire: clock -> iopin}\n",
        "s.yaml:2: flaky needs 'every' (how often on average, like 2s); flaky: {} ends it",
    ),
    (
        "flaky-every-0",
        "steps:\n  - flaky:\n      every: 0s\n",
        "s.yaml:3: flaky 'every' must be above 0 (flaky: {} ends it)",
    ),
    (
        "yaml-boolean-trap",
        "steps:\n  - send: {node: buzzer, message: yes}\n",
        "s.yaml:2: 'yes' is read by YAML as a boolean; write true or false, or quote it (\"yes\")",
    ),
    ("yaml-duplicate-key", "seed: 1\nseed: 2\nsteps: []\n", "s.yaml:2: duplicate key 'seed' (first on line 1)"),
    ("yaml-broken", "steps: [\n", "s.yaml:2: invalid YAML: expected the node content, but found '<stream end>'"),
    ("grid-not-text", "grid: 3\nsteps: [{delay: 1}]\n", "s.yaml:1: 'grid' must be the path of a grid file, not 3"),
    ("seed-a-list", "seed: [1]\nsteps: [{delay: 1}]\n", "s.yaml:1: 'seed' must be a whole number or a word, not [1]"),
    (
        "nodes-twice",
        "nodes:\n  - clock\n  - clock\nsteps: [{delay: 1}]\n",
        "s.yaml:3: node 'clock' is listed twice in 'nodes'",
    ),
    (
        "params-not-a-mapping",
        "params: [clock]\nsteps: [{delay: 1}]\n",
        "s.yaml:1: 'params' must map node names to params, like {clock: {tacks: 0}}",
    ),
]


@pytest.mark.parametrize(("text", "error"), [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS])
def test_malformed_scenario_is_one_line_at_its_line(text: str, error: str) -> None:
    """Each malformed scenario is one ScenarioError naming the file and the line of what is wrong."""
    with pytest.raises(ScenarioError) as caught:
        load_scenario(text, "s.yaml")
    assert str(caught.value) == error


#: (id, scenario text, the error as printed) against GRID (file "grid.yaml"), nodes not given by the command.
GRID_ERRORS: list[tuple[str, str, str]] = [
    (
        "unknown-node",
        "steps:\n  - delay: 1\n  - kill: buzer\n",
        "s.yaml:3: unknown node 'buzer' in grid.yaml; known nodes: clock, iopin, buzzer, meter; did you mean 'buzzer'?",
    ),
    (
        "unknown-node-in-send-at-its-field",
        "steps:\n  - send:\n      message: 1\n      node: bell\n",
        "s.yaml:4: unknown node 'bell' in grid.yaml; known nodes: clock, iopin, buzzer, meter",
    ),
    (
        "node-not-simulated",
        "nodes: [clock, iopin]\nsteps:\n  - restart: buzzer\n",
        "s.yaml:3: node 'buzzer' is not among the nodes simulated (clock, iopin)",
    ),
    (
        "unknown-node-in-nodes",
        "nodes: [clock, bell]\nsteps: [{delay: 1}]\n",
        "s.yaml:1: unknown node 'bell' in grid.yaml; known nodes: clock, iopin, buzzer, meter",
    ),
    (
        "params-of-unknown-node",
        "params: {bell: {x: 1}}\nsteps: [{delay: 1}]\n",
        "s.yaml:1: unknown node 'bell' in grid.yaml; known nodes: clock, iopin, buzzer, meter",
    ),
    (
        "wire-not-in-grid",
        "steps:\n  - unplug: clock -> buzzer\n",
        "s.yaml:2: unplug: no wire clock -> buzzer in grid.yaml (wires: clock -> iopin, iopin -> buzzer)",
    ),
    (
        "latency-wire-not-in-grid",
        "steps:\n  - latency: {wire: buzzer -> clock, delay: 1s}\n",
        "s.yaml:2: latency: no wire buzzer -> clock in grid.yaml (wires: clock -> iopin, iopin -> buzzer)",
    ),
    (
        "partition-node-not-simulated",
        "nodes: [clock, iopin]\nsteps:\n  - partition: [[clock], [buzzer]]\n",
        "s.yaml:3: node 'buzzer' is not among the nodes simulated (clock, iopin)",
    ),
    (
        "send-to-node-without-port",
        "steps:\n  - send: {node: meter, message: hi}\n",
        "s.yaml:2: send: node 'meter' has no port: nothing can be sent to it",
    ),
    (
        "kill-twice",
        "steps:\n  - kill: buzzer\n  - delay: 1\n  - kill: buzzer\n",
        "s.yaml:4: kill: buzzer is already killed (restart it first)",
    ),
    ("restart-running", "steps:\n  - restart: buzzer\n", "s.yaml:2: restart: buzzer is running (kill it first)"),
    (
        "freeze-killed",
        "steps:\n  - kill: iopin\n  - freeze:\n      for: 1s\n      node: iopin\n",
        "s.yaml:5: freeze: iopin is killed: nothing to freeze",
    ),
]


@pytest.mark.parametrize(("text", "error"), [case[1:] for case in GRID_ERRORS], ids=[case[0] for case in GRID_ERRORS])
def test_scenario_that_does_not_fit_the_grid(text: str, error: str) -> None:
    """A step naming a node or a wire the simulation does not have is refused before any time passes, at its line."""
    grid = load_grid(GRID, "grid.yaml")
    with pytest.raises(ScenarioError) as caught:
        check(load_scenario(text, "s.yaml"), grid)
    assert str(caught.value) == error


def test_check_names_the_nodes_to_run() -> None:
    """The scenario's nodes win; else the command's; else all of the grid's."""
    grid = load_grid(GRID, "grid.yaml")
    steps = "steps: [{kill: iopin}, {restart: iopin}, {send: {node: clock, message: x}}]\n"
    assert check(load_scenario("nodes: [iopin, clock]\n" + steps, "s.yaml"), grid, ["buzzer"]) == ("iopin", "clock")
    assert check(load_scenario(steps, "s.yaml"), grid, ["clock", "iopin"]) == ("clock", "iopin")
    assert check(load_scenario(steps, "s.yaml"), grid) == ("clock", "iopin", "buzzer", "meter")
