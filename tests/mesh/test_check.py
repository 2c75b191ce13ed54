"""Tests for mesh.check: the electrical-rules check of a grid and its Procfile.

The heart of this file is CASES, a table of (id, grid.yaml text, Procfile text
or None, the exact findings as printed). Grids are loaded from text so that
lines are real; nothing is read from disk and nothing touches a socket.
"""

from __future__ import annotations

from textwrap import dedent

import pytest

from mesh.check import MAX_LOOPS, Finding, check_grid, summary
from mesh.grid import load_grid

#: The circuit that ships (as README.md shows it).
SHIPPED = """\
nodes:
  clock:  {sketch: clock, host: 127.0.0.1, port: 8764, params: {tacks: 5, delay: 1}}
  iopin:  {sketch: iopin, host: 127.0.0.1, port: 8765, params: {chance: 0.6, sequence: 3}}
  buzzer: {sketch: buzzer, host: 127.0.0.1, port: 8766, params: {sound: buzz buzz buzz}}
wires:
  - clock -> iopin
  - iopin -> buzzer
"""

#: The Procfile that ships.
SHIPPED_PROCFILE = """\
buzzer: exec ./arduino.py buzzer
iopin: exec ./arduino.py iopin
clock: exec ./arduino.py clock --tacks 0
"""

#: Three nodes with ports and no wires, for the Procfile cases (lines 2, 3, 4).
TRIO = """\
nodes:
  a: {sketch: clock, port: 9001, subscribe: ["b/x"]}
  b: {sketch: iopin, port: 9002, subscribe: ["a/x"]}
  c: {sketch: buzzer, port: 9003, subscribe: ["a/x"]}
"""

#: (id, grid.yaml, Procfile or None, findings as printed, in order).
CASES: list[tuple[str, str, str | None, list[str]]] = [
    # ---- clean
    ("shipped", SHIPPED, None, []),
    ("shipped-with-procfile", SHIPPED, SHIPPED_PROCFILE, []),
    # ---- a wildcard host others must reach
    (
        "wildcard-host-wired-to",
        """\
        nodes:
          clock: {sketch: clock, host: 0.0.0.0, port: 8764}
          iopin: {sketch: iopin, host: "::", port: 8765}
          buzzer: {sketch: buzzer, host: 0.0.0.0, port: 8766}
          meter: {sketch: meter, subscribe: ["buzzer/#"]}
        wires:
          - clock -> iopin
        """,
        None,
        [
            "grid.yaml:3: warning: node 'iopin' has host '::': 'clock' would connect to ::, which is its own"
            " machine; give the address the others reach it at, and start the node with --socket 0.0.0.0 to"
            " listen on every address (docs/hosts.md)",
            "grid.yaml:4: warning: node 'buzzer' has host '0.0.0.0': 'meter' would connect to 0.0.0.0, which"
            " is its own machine; give the address the others reach it at, and start the node with --socket"
            " 0.0.0.0 to listen on every address (docs/hosts.md)",
        ],
    ),
    # ---- 1. connected to nothing
    (
        "lonely-node",
        """\
        nodes:
          clock: {sketch: clock, port: 8764}
          iopin: {sketch: iopin, port: 8765}
          led: {sketch: led}
        wires:
          - clock -> iopin
        """,
        None,
        ["grid.yaml:4: warning: node 'led' is connected to nothing: no wire in or out, no subscription"],
    ),
    (
        "lonely-nodes-in-file-order",
        """\
        nodes:
          zed: {sketch: led}
          alpha: {sketch: led, port: 9000}
        """,
        None,
        [
            "grid.yaml:2: warning: node 'zed' is connected to nothing: no wire in or out, no subscription",
            "grid.yaml:3: warning: node 'alpha' is connected to nothing: no wire in or out, no subscription",
        ],
    ),
    (
        "a-subscriber-is-connected",
        """\
        nodes:
          iopin: {sketch: iopin, port: 8765}
          meter: {sketch: meter, subscribe: ["iopin/pin"]}
        """,
        None,
        [],
    ),
    (
        "a-node-a-subscriber-hears-is-connected",
        """\
        nodes:
          led: {sketch: led, port: 8767}
          meter: {sketch: meter, subscribe: ["#"]}
        """,
        None,
        [],
    ),
    (
        "a-portless-node-cannot-be-heard",
        """\
        nodes:
          led: {sketch: led, port: 8767}
          lamp: {sketch: led}
          meter: {sketch: meter, subscribe: ["#"]}
        """,
        None,
        ["grid.yaml:3: warning: node 'lamp' is connected to nothing: no wire in or out, no subscription"],
    ),
    # ---- 2. loops
    (
        "loop-of-two",
        """\
        nodes:
          clock: {sketch: clock, port: 8764}
          iopin: {sketch: iopin, port: 8765}
        wires:
          - clock -> iopin
          - iopin -> clock
        """,
        None,
        ["grid.yaml:6: warning: wires form a loop: clock -> iopin -> clock"],
    ),
    (
        "loop-to-itself",
        """\
        nodes:
          pin: {sketch: iopin, port: 8765}
        wires:
          - pin -> pin
        """,
        None,
        ["grid.yaml:4: warning: wires form a loop: pin -> pin"],
    ),
    (
        "loop-written-from-first-node-in-file-order",
        """\
        nodes:
          a: {sketch: clock, port: 9001}
          b: {sketch: iopin, port: 9002}
          c: {sketch: buzzer, port: 9003}
        wires:
          - b -> c
          - c -> a
          - a -> b
        """,
        None,
        ["grid.yaml:7: warning: wires form a loop: a -> b -> c -> a"],
    ),
    (
        "two-loops-sharing-wires-each-once",
        """\
        nodes:
          a: {sketch: clock, port: 9001}
          b: {sketch: iopin, port: 9002}
          c: {sketch: buzzer, port: 9003}
        wires:
          - a -> b
          - c -> a
          - b -> c
          - b -> a
        """,
        None,
        [
            "grid.yaml:7: warning: wires form a loop: a -> b -> c -> a",
            "grid.yaml:9: warning: wires form a loop: a -> b -> a",
        ],
    ),
    (
        "separate-loops-in-file-order-of-closing-wire",
        """\
        nodes:
          a: {sketch: clock, port: 9001}
          b: {sketch: iopin, port: 9002}
          c: {sketch: buzzer, port: 9003}
          d: {sketch: buzzer, port: 9004}
        wires:
          - c -> d
          - d -> c
          - a -> b
          - b -> a
          - b -> c
        """,
        None,
        [
            "grid.yaml:8: warning: wires form a loop: c -> d -> c",
            "grid.yaml:10: warning: wires form a loop: a -> b -> a",
        ],
    ),
    (
        "no-loop-in-a-diamond",
        """\
        nodes:
          a: {sketch: clock, port: 9001}
          b: {sketch: iopin, port: 9002}
          c: {sketch: iopin, port: 9003}
          d: {sketch: buzzer, port: 9004}
        wires:
          - a -> b
          - a -> c
          - b -> d
          - c -> d
        """,
        None,
        [],
    ),
    # ---- 3. subscriptions that can hear nothing
    (
        "subscribes-to-unknown-node",
        """\
        nodes:
          iopin: {sketch: iopin, port: 8765}
          meter: {sketch: meter, subscribe: ["iopin/pin", "ghost/pin"]}
        """,
        None,
        [
            "grid.yaml:3: warning: node 'meter' subscribes to 'ghost/pin', "
            "which no node of the grid with a port can publish"
        ],
    ),
    (
        "subscribes-to-a-misspelt-node",
        """\
        nodes:
          sensor: {sketch: clock, port: 8765}
          heater: {sketch: meter, subscribe: ["senser/temp", "sensr/#", "+/temp"]}
        """,
        None,
        [
            "grid.yaml:3: warning: node 'heater' subscribes to 'senser/temp', "
            "which no node of the grid with a port can publish; did you mean 'sensor/temp'?",
            "grid.yaml:3: warning: node 'heater' subscribes to 'sensr/#', "
            "which no node of the grid with a port can publish; did you mean 'sensor/#'?",
        ],
    ),
    (
        "subscribes-to-portless-node",
        """\
        nodes:
          clock: {sketch: clock}
          iopin: {sketch: iopin, port: 8765}
          meter: {sketch: meter, subscribe: ["clock/tick", "iopin/#"]}
        wires:
          - clock -> iopin
        """,
        None,
        [
            "grid.yaml:4: warning: node 'meter' subscribes to 'clock/tick', "
            "which only 'clock' could publish, and it has no port"
        ],
    ),
    # A node's own publications reach its own subscriptions (as at run time), port or not.
    (
        "a-node-hears-its-own-keys",
        """\
        nodes:
          iopin: {sketch: iopin, port: 8765}
          meter: {sketch: meter, port: 8767, subscribe: ["meter/count", "iopin"]}
        """,
        None,
        [],
    ),
    (
        "a-portless-node-hears-its-own-keys",
        """\
        nodes:
          iopin: {sketch: iopin, port: 8765}
          meter: {sketch: meter, subscribe: ["meter/count", "iopin/#"]}
        """,
        None,
        [],
    ),
    (
        "wildcard-with-no-other-port-hears-itself",
        """\
        nodes:
          clock: {sketch: clock}
          meter: {sketch: meter, port: 8767, subscribe: ["+/tick", "#"]}
        """,
        None,
        ["grid.yaml:2: warning: node 'clock' is connected to nothing: no wire in or out, no subscription"],
    ),
    # ---- 4. the Procfile
    (
        "procfile-unknown-node",
        SHIPPED,
        "buzzer: exec ./arduino.py buzzer\niopin: exec ./arduino.py iopin\nclock: exec ./arduino.py buzer\n",
        [
            "Procfile:3: error: starts node 'buzer', which grid.yaml does not have; known nodes: buzzer, clock, iopin",
            "grid.yaml:2: warning: the Procfile does not start node 'clock'",
        ],
    ),
    (
        "procfile-node-twice",
        SHIPPED,
        "buzzer: ./arduino.py buzzer\niopin: ./arduino.py iopin\nclock: ./arduino.py clock\n"
        "iopin2: ./arduino.py iopin --port 8800\n",
        ["Procfile:4: error: starts node 'iopin' again (first on line 2)"],
    ),
    (
        "procfile-malformed-lines",
        SHIPPED,
        "buzzer ./arduino.py buzzer\nbad name: ./arduino.py iopin\nclock:\n" + SHIPPED_PROCFILE,
        [
            "Procfile:1: error: malformed line; expected 'NAME: COMMAND'",
            "Procfile:2: error: malformed line; expected 'NAME: COMMAND'",
            "Procfile:3: error: malformed line; expected 'NAME: COMMAND'",
        ],
    ),
    (
        "procfile-process-name-twice",
        SHIPPED,
        SHIPPED_PROCFILE + "clock: ./arduino.py echo '#'\n",
        ["Procfile:4: error: process 'clock' is listed again (first on line 3)"],
    ),
    (
        "procfile-unclosed-quote",
        SHIPPED,
        SHIPPED_PROCFILE + "logger: ./arduino.py echo '#\n",
        ["Procfile:4: error: cannot read the command: no closing quotation"],
    ),
    (
        "procfile-not-started-in-grid-order",
        SHIPPED,
        "iopin: exec ./arduino.py iopin\n",
        [
            "grid.yaml:2: warning: the Procfile does not start node 'clock'",
            "grid.yaml:4: warning: the Procfile does not start node 'buzzer'",
        ],
    ),
    (
        "procfile-portless-node-not-started",
        """\
        nodes:
          clock: {sketch: clock}
          iopin: {sketch: iopin, port: 8765}
        wires:
          - clock -> iopin
        """,
        "iopin: ./arduino.py iopin\n",
        ["grid.yaml:2: warning: the Procfile does not start node 'clock'"],
    ),
    (
        "procfile-empty",
        TRIO,
        "",
        [
            "grid.yaml:2: warning: the Procfile does not start node 'a'",
            "grid.yaml:3: warning: the Procfile does not start node 'b'",
            "grid.yaml:4: warning: the Procfile does not start node 'c'",
        ],
    ),
    (
        "procfile-ways-to-start-a-node",
        TRIO,
        dedent(
            """\
            # comments and blank lines are skipped

            a: MESH_TOKEN=s3cret PYTHONUNBUFFERED=1 python3 -u ./arduino.py --log-level debug a
            b: exec env X=1 .venv/bin/python arduino.py --grid=grid.yaml --state-dir /tmp/s run b --wait 0
            c: /srv/mesh/arduino.py --log-level=info --state-dir=.state --grid grid.yaml c  # trailing comment
            """
        ),
        [],
    ),
    (
        "procfile-other-commands-are-ignored",
        TRIO,
        dedent(
            """\
            a: ./arduino.py a
            b: ./arduino.py b
            c: ./arduino.py c
            web: python -m http.server 8000
            tail: tail -f log.txt
            hear: ./arduino.py echo '#'
            poke: ./arduino.py send a 1
            status: ./arduino.py status
            graph: ./arduino.py graph --format dot
            check: ./arduino.py check
            help: ./arduino.py --help
            bare: ./arduino.py
            notarduino: ./arduino.py.bak x
            """
        ),
        [],
    ),
    (
        "procfile-run-a-node-named-like-a-command",
        """\
        nodes:
          echo: {sketch: iopin, port: 8765}
          send: {sketch: buzzer, port: 8766}
        wires:
          - echo -> send
        """,
        "echo: ./arduino.py run echo\nsend: ./arduino.py send echo 1\n",
        [
            "grid.yaml:2: warning: node 'echo' is named like the command 'arduino-mesh echo', which runs instead of it: start it with 'arduino-mesh run echo', or rename it",
            "grid.yaml:3: warning: node 'send' is named like the command 'arduino-mesh send', which runs instead of it: start it with 'arduino-mesh run send', or rename it",
            "grid.yaml:3: warning: the Procfile does not start node 'send'",
        ],
    ),
    (
        "procfile-runs-the-arduino-ide",
        TRIO,
        "a: exec arduino a\nb: arduino-mesh b\nc: ./arduino.py c\n",
        [
            "Procfile:1: error: runs 'arduino', the Arduino IDE's command: this project's is 'arduino-mesh'",
            "grid.yaml:2: warning: the Procfile does not start node 'a'",
        ],
    ),
    (
        "procfile-line-for-another-grid-is-ignored",
        TRIO,
        "a: ./arduino.py a\nb: ./arduino.py b\nc: ./arduino.py c\n"
        "x: ./arduino.py --grid lab/other.yaml ghost\n"
        "y: ARDUINO_GRID=other.yaml ./arduino.py ghost\n"
        "z: ./arduino.py --grid ./grid.yaml ghost\n",
        ["Procfile:6: error: starts node 'ghost', which grid.yaml does not have; known nodes: a, b, c"],
    ),
    # ---- every kind at once, in report order
    (
        "all-kinds-in-order",
        """\
        nodes:
          clock: {sketch: clock, port: 8764}
          iopin: {sketch: iopin, port: 8765}
          led: {sketch: led}
          meter: {sketch: meter, subscribe: ["ghost/#"]}
        wires:
          - clock -> iopin
          - iopin -> clock
        """,
        "clock: ./arduino.py clock\nbroken\niopin: ./arduino.py iopn\n",
        [
            "grid.yaml:4: warning: node 'led' is connected to nothing: no wire in or out, no subscription",
            "grid.yaml:8: warning: wires form a loop: clock -> iopin -> clock",
            "grid.yaml:5: warning: node 'meter' subscribes to 'ghost/#', "
            "which no node of the grid with a port can publish",
            "Procfile:2: error: malformed line; expected 'NAME: COMMAND'",
            "Procfile:3: error: starts node 'iopn', which grid.yaml does not have; "
            "known nodes: clock, iopin, led, meter",
            "grid.yaml:3: warning: the Procfile does not start node 'iopin'",
            "grid.yaml:4: warning: the Procfile does not start node 'led'",
            "grid.yaml:5: warning: the Procfile does not start node 'meter'",
        ],
    ),
]


@pytest.mark.parametrize(
    ("grid_text", "procfile", "expected"),
    [pytest.param(text, procfile, expected, id=name) for name, text, procfile, expected in CASES],
)
def test_check_grid_table(grid_text: str, procfile: str | None, expected: list[str]) -> None:
    """check_grid() finds exactly these problems, in report order, printed as file:line: level: message."""
    grid = load_grid(dedent(grid_text), "grid.yaml")
    assert [str(finding) for finding in check_grid(grid, procfile=procfile)] == expected


@pytest.mark.parametrize(
    ("grid_path", "procfile_path", "expected"),
    [
        pytest.param(
            "grid.yaml",
            "Procfile",
            [
                Finding(
                    path="Procfile",
                    line=1,
                    level="error",
                    message="starts node 'buzer', which grid.yaml does not have; known nodes: buzzer, clock, iopin",
                ),
                Finding(
                    path="grid.yaml",
                    line=3,
                    level="warning",
                    message="the Procfile does not start node 'iopin'",
                ),
            ],
            id="default-names",
        ),
        pytest.param(
            "lab/circuit.yaml",
            "Procfile.dev",
            [
                Finding(
                    path="Procfile.dev",
                    line=1,
                    level="error",
                    message="starts node 'buzer', which lab/circuit.yaml does not have; "
                    "known nodes: buzzer, clock, iopin",
                ),
                Finding(
                    path="lab/circuit.yaml", line=3, level="warning", message="the Procfile does not start node 'iopin'"
                ),
            ],
            id="given-names",
        ),
    ],
)
def test_check_grid_paths(grid_path: str, procfile_path: str, expected: list[Finding]) -> None:
    """Findings name the grid's path and the given Procfile path, with the lines as numbers."""
    grid = load_grid(SHIPPED, grid_path)
    procfile = "a: ./arduino.py buzer\nb: ./arduino.py buzzer\nc: ./arduino.py clock\n"
    assert check_grid(grid, procfile=procfile, procfile_path=procfile_path) == expected


@pytest.mark.parametrize(
    ("finding", "expected"),
    [
        (Finding(path="grid.yaml", line=5, level="warning", message="m"), "grid.yaml:5: warning: m"),
        (Finding(path="Procfile", line=3, level="error", message="m"), "Procfile:3: error: m"),
        (Finding(path="grid.yaml", line=None, level="warning", message="m"), "grid.yaml: warning: m"),
        (Finding(path="<grid>", line=0, level="warning", message="m"), "<grid>: warning: m"),
    ],
    ids=["line", "procfile", "no-line", "line-zero"],
)
def test_finding_str(finding: Finding, expected: str) -> None:
    """A finding prints as path:line: level: message, without the line when there is none."""
    assert str(finding) == expected


def _finding(level: str) -> Finding:
    return Finding(path="grid.yaml", line=1, level=level, message="m")


ONE_NODE = "nodes:\n  a: {sketch: clock}\n"
TWO_WIRES = SHIPPED
ONE_WIRE = "nodes:\n  a: {sketch: clock}\n  b: {sketch: iopin, port: 9002}\nwires:\n  - a -> b\n"


@pytest.mark.parametrize(
    ("grid_text", "levels", "expected"),
    [
        (TWO_WIRES, [], "grid.yaml: 3 nodes, 2 wires: no problems found"),
        (TWO_WIRES, ["error", "warning", "warning"], "grid.yaml: 3 nodes, 2 wires: 1 error, 2 warnings"),
        (TWO_WIRES, ["error", "error"], "grid.yaml: 3 nodes, 2 wires: 2 errors"),
        (TWO_WIRES, ["warning"], "grid.yaml: 3 nodes, 2 wires: 1 warning"),
        (ONE_NODE, ["warning"], "grid.yaml: 1 node, 0 wires: 1 warning"),
        (ONE_WIRE, ["error", "error", "warning"], "grid.yaml: 2 nodes, 1 wire: 2 errors, 1 warning"),
    ],
    ids=["clean", "mixed", "errors-only", "one-warning", "one-node", "one-wire"],
)
def test_summary(grid_text: str, levels: list[str], expected: str) -> None:
    """summary() counts nodes, wires, errors and warnings, each singular or plural as it should be."""
    grid = load_grid(grid_text, "grid.yaml")
    assert summary([_finding(level) for level in levels], grid) == expected


def _complete(size: int) -> str:
    names = [f"n{index}" for index in range(size)]
    nodes = "".join(f"  {name}: {{sketch: iopin, port: {9000 + index}}}\n" for index, name in enumerate(names))
    wires = "".join(f"  - {a} -> {b}\n" for a in names for b in names if a != b)
    return f"nodes:\n{nodes}wires:\n{wires}"


@pytest.mark.parametrize(
    ("size", "loops", "capped"),
    [(3, 5, False), (4, 20, False), (8, MAX_LOOPS, True)],
    ids=["complete-3", "complete-4", "complete-8-capped"],
)
def test_loops_in_complete_graphs(size: int, loops: int, capped: bool) -> None:
    """Every node wired to every other: each loop listed once, at most MAX_LOOPS, then a line saying so."""
    grid = load_grid(_complete(size), "grid.yaml")
    messages = [finding.message for finding in check_grid(grid)]
    listed = [message for message in messages if message.startswith("wires form a loop: ")]
    assert len(listed) == loops
    assert len(set(listed)) == loops
    tail = [f"more wires form loops; only the first {MAX_LOOPS} loops are listed"] if capped else []
    assert messages == listed + tail


#: What a Procfile that starts 'buzer' and misses 'iopin' says about the grid at PATH, when it runs that grid.
def _about(path: str) -> list[str]:
    return [
        f"Procfile:1: error: starts node 'buzer', which {path} does not have; known nodes: buzzer, clock, iopin",
        f"{path}:3: warning: the Procfile does not start node 'iopin'",
    ]


#: (id, the checked grid's path, the default grid of the Procfile's lines, found beside the grid, findings).
OTHER_GRID = [
    ("default-grid-is-this-one", "grid.yaml", "grid.yaml", True, _about("grid.yaml")),
    ("default-grid-elsewhere-found", "other.yaml", "grid.yaml", True, []),
    (
        "default-grid-elsewhere-asked-for",
        "other.yaml",
        "grid.yaml",
        False,
        ["Procfile: warning: starts no node of other.yaml; its lines run another grid"],
    ),
    ("same-folder-other-spelling", "lab/grid.yaml", "lab/./grid.yaml", True, _about("lab/grid.yaml")),
    ("no-default-is-this-grid", "other.yaml", None, True, _about("other.yaml")),
]


@pytest.mark.parametrize(
    ("grid_path", "default_grid", "found", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in OTHER_GRID],
)
def test_a_procfile_for_another_grid(grid_path: str, default_grid: str | None, found: bool, expected: list[str]):
    """Lines without --grid run the default grid: a Procfile that runs none of this grid is not compared with it."""
    grid = load_grid(SHIPPED, grid_path)
    procfile = "a: ./arduino.py buzer\nb: ./arduino.py buzzer\nc: ./arduino.py clock\n"
    findings = check_grid(grid, procfile=procfile, default_grid=default_grid, found=found)
    assert [str(finding) for finding in findings] == expected


def test_a_procfile_running_this_grid_and_another_is_checked_for_this_one() -> None:
    """Lines for another grid are skipped; the rest is compared with this grid as usual."""
    grid = load_grid(SHIPPED, "other.yaml")
    procfile = (
        "a: ./arduino.py clock\nb: ./arduino.py --grid other.yaml iopin\nc: ./arduino.py --grid=other.yaml buzer\n"
    )
    assert [str(f) for f in check_grid(grid, procfile=procfile, default_grid="grid.yaml", found=True)] == [
        "Procfile:3: error: starts node 'buzer', which other.yaml does not have; known nodes: buzzer, clock, iopin",
        "other.yaml:2: warning: the Procfile does not start node 'clock'",
        "other.yaml:4: warning: the Procfile does not start node 'buzzer'",
    ]


def test_a_node_sent_messages_without_a_loop() -> None:
    """The caller says which sketches have no loop(): wired to, or subscribed without @hears, is a warning."""
    grid = load_grid(
        dedent(
            """\
            nodes:
              iopin: {sketch: iopin, port: 8765}
              lamp:  {sketch: lamp, port: 8766}
              meter: {sketch: meter, subscribe: ["iopin/#"]}
              ear:   {sketch: ear, subscribe: ["iopin/#"]}
              idle:  {sketch: idle, port: 8767, subscribe: ["iopin/#"]}
            wires:
              - iopin -> lamp
              - iopin -> idle
            """
        ),
        "grid.yaml",
    )
    fix = "give it an '@reactive async def loop(self, channel, message)'"
    found = check_grid(grid, no_loop={"lamp": False, "meter": False, "ear": True, "idle": False})
    assert [str(finding) for finding in found] == [
        f"grid.yaml:3: warning: node 'lamp' has no loop(): what 'iopin' sends gets an error; {fix}",
        f"grid.yaml:4: warning: node 'meter' has no loop(): the topics of iopin/# go nowhere; {fix}",
        f"grid.yaml:6: warning: node 'idle' has no loop(): what 'iopin' sends gets an error; "
        f"the topics of iopin/# go nowhere; {fix}",
    ]
    assert check_grid(grid) == []  # nothing said about sketches: nothing assumed
