"""Tests for mesh.grid: loading grid.yaml into a frozen, validated Grid.

The heart of this file is INVALID, a table of (id, grid.yaml text, exact error).
No event loop and no sockets: loading a grid is a pure function of its text.
"""

from __future__ import annotations

import dataclasses
import os
from textwrap import dedent
from types import MappingProxyType

import pytest

from mesh.errors import GridError, UnknownNodeError
from mesh.grid import (
    DEFAULT_HOST,
    DEFAULT_MAX_SIZE,
    DEFAULT_OUTBOX,
    Grid,
    NodeSpec,
    Wire,
    build_grid,
    load_grid,
    read_grid,
)

EXAMPLE = dedent(
    """\
    nodes:
      clock:  {sketch: clock, params: {tacks: 5, delay: 1}}
      iopin:  {sketch: iopin, host: 127.0.0.1, port: 8765, params: {chance: 0.6, sequence: 3}}
      buzzer: {sketch: buzzer, host: 127.0.0.1, port: 8766, params: {sound: buzz buzz buzz}}
    wires:
      - clock -> iopin
      - iopin -> buzzer
    """
)

SKETCHES = ("buzzer", "clock", "iopin")

#: The grid.yaml traps: what YAML reads differently from what was meant (or cannot read).
TRAPS = [
    (
        "trap-port-text",
        """\
        nodes:
          iopin:
            sketch: iopin
            port: "8765"
        """,
        "grid.yaml:4: node 'iopin': 'port' must be a whole number, not the text '8765'",
    ),
    (
        "trap-port-octal",
        """\
        nodes:
          iopin: {sketch: iopin, port: 017}
        """,
        "grid.yaml:2: node 'iopin': port '017' has a leading zero, which YAML reads as octal; write 17",
    ),
    (
        "trap-yes-value",
        """\
        nodes:
          buzzer:
            sketch: buzzer
            params: {loud: yes}
        """,
        "grid.yaml:4: 'yes' is read by YAML as a boolean; write true or false, or quote it (\"yes\")",
    ),
    (
        "trap-yes-key",
        """\
        nodes:
          buzzer:
            sketch: buzzer
            params:
              yes: 1
        """,
        "grid.yaml:5: 'yes' is read by YAML as a boolean; write true or false, or quote it (\"yes\")",
    ),
    (
        "trap-on-value",
        """\
        nodes:
          buzzer:
            sketch: buzzer
            params: {led: on}
        """,
        "grid.yaml:4: 'on' is read by YAML as a boolean; write true or false, or quote it (\"on\")",
    ),
    (
        "trap-on-key",
        """\
        nodes:
          buzzer:
            sketch: buzzer
            params:
              On: 1
        """,
        "grid.yaml:5: 'On' is read by YAML as a boolean; write true or false, or quote it (\"On\")",
    ),
    (
        "trap-tab-indent",
        """\
        nodes:
        \tclock: {sketch: clock}
        """,
        "grid.yaml:2: a tab in the indentation: YAML indents with spaces only",
    ),
    ("trap-empty-file", "", "grid.yaml: the grid is empty; it needs a 'nodes' mapping"),
    (
        "trap-file-is-a-list",
        """\
        - clock
        - iopin
        """,
        "grid.yaml:1: the grid must be a mapping with 'nodes' and 'wires', not a list",
    ),
]

INVALID = [
    # ---- YAML itself
    (
        "yaml-unclosed-flow",
        """\
        nodes: {clock: {sketch: clock}
        """,
        "grid.yaml:1: the '{' at column 8 is never closed: YAML read on to the end of the file looking for '}'",
    ),
    (
        "yaml-two-documents",
        """\
        nodes: {clock: {sketch: clock}}
        ---
        nodes: {iopin: {sketch: iopin}}
        """,
        "grid.yaml:2: invalid YAML: expected a single document in the stream, but found another document",
    ),
    (
        "yaml-unknown-tag",
        """\
        nodes:
          clock: {sketch: !shout clock}
        """,
        "grid.yaml:2: invalid YAML: could not determine a constructor for the tag '!shout'",
    ),
    (
        "yaml-python-tag-is-never-run",
        """\
        nodes:
          clock:
            sketch: !!python/object/apply:os.system ["echo pwned"]
        """,
        "grid.yaml:3: invalid YAML: unsupported tag 'tag:yaml.org,2002:python/object/apply:os.system'",
    ),
    (
        "yaml-merge-key",
        """\
        nodes:
          clock: &base {sketch: clock}
          iopin:
            <<: *base
            port: 8765
        """,
        "grid.yaml:4: merge keys ('<<') are not supported; write the keys out",
    ),
    (
        "yaml-alias-inside-itself",
        """\
        nodes:
          clock:
            sketch: clock
            params: &p {again: [*p]}
        """,
        "grid.yaml:4: a value contains itself (through an alias)",
    ),
    # ---- the top level
    (
        "only-comments",
        """\
        # a grid to come

        """,
        "grid.yaml: the grid is empty; it needs a 'nodes' mapping",
    ),
    (
        "top-level-string",
        "clock -> iopin\n",
        "grid.yaml:1: the grid must be a mapping with 'nodes' and 'wires', not a string",
    ),
    (
        "top-level-number",
        "42\n",
        "grid.yaml:1: the grid must be a mapping with 'nodes' and 'wires', not a number",
    ),
    (
        "unknown-top-key-close",
        """\
        nodes:
          clock: {sketch: clock}
        wire:
          - clock -> clock
        """,
        "grid.yaml:3: unknown key 'wire' at the top level (expected one of: auth, nodes, tls, wires); did you mean 'wires'?",
    ),
    (
        "unknown-top-key-far",
        """\
        colour: red
        nodes:
          clock: {sketch: clock}
        """,
        "grid.yaml:1: unknown key 'colour' at the top level (expected one of: auth, nodes, tls, wires)",
    ),
    (
        "node-at-the-top-level",
        """\
        nodes:
          clock: {sketch: clock}
        heater: {sketch: buzzer}
        """,
        "grid.yaml:3: unknown key 'heater' at the top level (expected one of: auth, nodes, tls, wires); "
        "a node goes under 'nodes:' on line 1, indented like the other nodes",
    ),
    (
        "top-key-not-text",
        """\
        nodes:
          clock: {sketch: clock}
        5: five
        """,
        "grid.yaml:3: keys must be text, not 5",
    ),
    (
        "duplicate-top-key",
        """\
        nodes:
          clock: {sketch: clock}
        nodes:
          iopin: {sketch: iopin}
        """,
        "grid.yaml:3: duplicate key 'nodes' (first on line 1)",
    ),
    ("no-nodes", "wires: []\n", "grid.yaml: the grid has no 'nodes'"),
    (
        "nodes-list",
        """\
        nodes:
          - clock
        """,
        "grid.yaml:2: 'nodes' must be a mapping of node names to nodes",
    ),
    (
        "nodes-empty",
        "nodes: {}\n",
        "grid.yaml:1: 'nodes' must be a mapping of node names to nodes",
    ),
    (
        "nodes-null",
        "nodes:\n",
        "grid.yaml:1: 'nodes' must be a mapping of node names to nodes",
    ),
    # ---- node names and node mappings
    (
        "node-defined-twice",
        """\
        nodes:
          clock: {sketch: clock}
          iopin: {sketch: iopin, port: 8765}
          iopin: {sketch: iopin, port: 8766}
        """,
        "grid.yaml:4: node 'iopin' is defined twice (first on line 3)",
    ),
    (
        "node-name-slash",
        """\
        nodes:
          a/b: {sketch: clock}
        """,
        "grid.yaml:2: invalid node name 'a/b': use letters, digits, '_' and '-', starting with a letter or '_'",
    ),
    (
        "node-name-number",
        """\
        nodes:
          5: {sketch: clock}
        """,
        "grid.yaml:2: invalid node name 5: use letters, digits, '_' and '-', starting with a letter or '_'",
    ),
    (
        "node-not-mapping",
        """\
        nodes:
          clock: clock
        """,
        "grid.yaml:2: node 'clock' must be a mapping with at least a 'sketch'",
    ),
    (
        "node-null",
        """\
        nodes:
          clock:
        """,
        "grid.yaml:2: node 'clock' must be a mapping with at least a 'sketch'",
    ),
    (
        "unknown-node-key-close",
        """\
        nodes:
          iopin:
            sketch: iopin
            prot: 8765
        """,
        "grid.yaml:4: unknown key 'prot' in node 'iopin' "
        "(expected one of: baud, durable, host, max_size, outbox, params, port, serial, sketch, subscribe, timeout); "
        "did you mean 'port'?",
    ),
    (
        "unknown-node-key-far",
        """\
        nodes:
          iopin: {sketch: iopin, colour: red}
        """,
        "grid.yaml:2: unknown key 'colour' in node 'iopin' "
        "(expected one of: baud, durable, host, max_size, outbox, params, port, serial, sketch, "
        "subscribe, timeout)",
    ),
    (
        "duplicate-node-key",
        """\
        nodes:
          iopin:
            sketch: iopin
            port: 8765
            sketch: buzzer
        """,
        "grid.yaml:5: duplicate key 'sketch' (first on line 3)",
    ),
    (
        "no-sketch",
        """\
        nodes:
          clock:
            params: {tacks: 5}
        """,
        "grid.yaml:2: node 'clock' has no 'sketch'",
    ),
    (
        "sketch-number",
        """\
        nodes:
          clock: {sketch: 5}
        """,
        "grid.yaml:2: node 'clock': 'sketch' must be a sketch's name (blinker), a path to a .py file (./sketches/blinker.py), module:Class (mypackage.blinker:Blinker) or Arduino firmware (lamp.ino)",
    ),
    (
        "sketch-empty",
        """\
        nodes:
          clock:
            sketch: ""
        """,
        "grid.yaml:3: node 'clock': 'sketch' must be a sketch's name (blinker), a path to a .py file (./sketches/blinker.py), module:Class (mypackage.blinker:Blinker) or Arduino firmware (lamp.ino)",
    ),
    (
        "host-number",
        """\
        nodes:
          iopin: {sketch: iopin, host: 5, port: 8765}
        """,
        "grid.yaml:2: node 'iopin': 'host' must be a host name or address",
    ),
    (
        "host-empty",
        """\
        nodes:
          iopin:
            sketch: iopin
            host: ''
        """,
        "grid.yaml:4: node 'iopin': 'host' must be a host name or address",
    ),
    # ---- ports
    (
        "port-float",
        """\
        nodes:
          iopin: {sketch: iopin, port: 8.5}
        """,
        "grid.yaml:2: node 'iopin': 'port' must be a whole number, not 8.5",
    ),
    (
        "port-bool",
        """\
        nodes:
          iopin: {sketch: iopin, port: true}
        """,
        "grid.yaml:2: node 'iopin': 'port' must be a whole number, not True",
    ),
    (
        "port-too-big",
        """\
        nodes:
          iopin: {sketch: iopin, port: 70000}
        """,
        "grid.yaml:2: node 'iopin': port 70000 is outside 0-65535",
    ),
    (
        "port-negative",
        """\
        nodes:
          iopin: {sketch: iopin, port: -1}
        """,
        "grid.yaml:2: node 'iopin': port -1 is outside 0-65535",
    ),
    (
        "port-hex",
        """\
        nodes:
          iopin: {sketch: iopin, port: 0x1F}
        """,
        "grid.yaml:2: node 'iopin': port '0x1F' is not a plain decimal number; write 31",
    ),
    (
        "port-sexagesimal",
        """\
        nodes:
          iopin: {sketch: iopin, port: 1:30}
        """,
        "grid.yaml:2: node 'iopin': port '1:30' is not a plain decimal number; write 90",
    ),
    # ---- outbox: unacked messages a link holds
    (
        "unknown-node-key-outbx",
        """\
        nodes:
          clock: {sketch: clock, outbx: 50}
        """,
        "grid.yaml:2: unknown key 'outbx' in node 'clock' "
        "(expected one of: baud, durable, host, max_size, outbox, params, port, serial, sketch, "
        "subscribe, timeout); did you mean 'outbox'?",
    ),
    (
        "outbox-zero",
        """\
        nodes:
          clock: {sketch: clock, outbox: 0}
        """,
        "grid.yaml:2: node 'clock': 'outbox' must be a whole number from 1 to 1000000, not 0",
    ),
    (
        "outbox-negative",
        """\
        nodes:
          clock: {sketch: clock, outbox: -5}
        """,
        "grid.yaml:2: node 'clock': 'outbox' must be a whole number from 1 to 1000000, not -5",
    ),
    (
        "outbox-too-big",
        """\
        nodes:
          clock:
            sketch: clock
            outbox: 1000001
        """,
        "grid.yaml:4: node 'clock': 'outbox' must be a whole number from 1 to 1000000, not 1000001",
    ),
    (
        "outbox-text",
        """\
        nodes:
          clock:
            sketch: clock
            outbox: "5"
        """,
        "grid.yaml:4: node 'clock': 'outbox' must be a whole number from 1 to 1000000, not the text '5'",
    ),
    (
        "outbox-words",
        """\
        nodes:
          clock: {sketch: clock, outbox: many}
        """,
        "grid.yaml:2: node 'clock': 'outbox' must be a whole number from 1 to 1000000, not the text 'many'",
    ),
    (
        "outbox-float",
        """\
        nodes:
          clock: {sketch: clock, outbox: 2.5}
        """,
        "grid.yaml:2: node 'clock': 'outbox' must be a whole number from 1 to 1000000, not 2.5",
    ),
    (
        "outbox-bool",
        """\
        nodes:
          clock: {sketch: clock, outbox: true}
        """,
        "grid.yaml:2: node 'clock': 'outbox' must be a whole number from 1 to 1000000, not True",
    ),
    (
        "outbox-null",
        """\
        nodes:
          clock:
            sketch: clock
            outbox:
        """,
        "grid.yaml:4: node 'clock': 'outbox' must be a whole number from 1 to 1000000, not None",
    ),
    (
        "outbox-list",
        """\
        nodes:
          clock: {sketch: clock, outbox: [5]}
        """,
        "grid.yaml:2: node 'clock': 'outbox' must be a whole number from 1 to 1000000, not [5]",
    ),
    (
        "outbox-octal",
        """\
        nodes:
          clock: {sketch: clock, outbox: 017}
        """,
        "grid.yaml:2: node 'clock': outbox '017' has a leading zero, which YAML reads as octal; write 17",
    ),
    (
        "outbox-leading-zero-not-octal",
        """\
        nodes:
          clock: {sketch: clock, outbox: 019}
        """,
        "grid.yaml:2: node 'clock': outbox '019' has a leading zero, which YAML reads as octal; write 19",
    ),
    (
        "outbox-hex",
        """\
        nodes:
          clock: {sketch: clock, outbox: 0x10}
        """,
        "grid.yaml:2: node 'clock': outbox '0x10' is not a plain decimal number; write 16",
    ),
    (
        "outbox-underscore",
        """\
        nodes:
          clock: {sketch: clock, outbox: 1_000}
        """,
        "grid.yaml:2: node 'clock': outbox '1_000' is not a plain decimal number; write 1000",
    ),
    (
        "outbox-yes",
        """\
        nodes:
          clock: {sketch: clock, outbox: yes}
        """,
        "grid.yaml:2: 'yes' is read by YAML as a boolean; write true or false, or quote it (\"yes\")",
    ),
    # ---- max_size: the largest frame a node accepts
    (
        "unknown-node-key-max-size-dash",
        """\
        nodes:
          clock:
            sketch: clock
            max-size: 2048
        """,
        "grid.yaml:4: unknown key 'max-size' in node 'clock' "
        "(expected one of: baud, durable, host, max_size, outbox, params, port, serial, sketch, "
        "subscribe, timeout); did you mean 'max_size'?",
    ),
    (
        "max-size-too-small",
        """\
        nodes:
          clock: {sketch: clock, max_size: 5}
        """,
        "grid.yaml:2: node 'clock': 'max_size' must be a whole number of bytes from 1024 to 67108864, not 5",
    ),
    (
        "max-size-just-too-small",
        """\
        nodes:
          clock: {sketch: clock, max_size: 1023}
        """,
        "grid.yaml:2: node 'clock': 'max_size' must be a whole number of bytes from 1024 to 67108864, not 1023",
    ),
    (
        "max-size-too-big",
        """\
        nodes:
          clock:
            sketch: clock
            max_size: 67108865
        """,
        "grid.yaml:4: node 'clock': 'max_size' must be a whole number of bytes from 1024 to 67108864, not 67108865",
    ),
    (
        "max-size-text",
        """\
        nodes:
          clock: {sketch: clock, max_size: "2048"}
        """,
        "grid.yaml:2: node 'clock': 'max_size' must be a whole number of bytes "
        "from 1024 to 67108864, not the text '2048'",
    ),
    (
        "max-size-with-unit",
        """\
        nodes:
          clock: {sketch: clock, max_size: 1 MiB}
        """,
        "grid.yaml:2: node 'clock': 'max_size' must be a whole number of bytes "
        "from 1024 to 67108864, not the text '1 MiB'",
    ),
    (
        "max-size-float",
        """\
        nodes:
          clock: {sketch: clock, max_size: 2048.0}
        """,
        "grid.yaml:2: node 'clock': 'max_size' must be a whole number of bytes from 1024 to 67108864, not 2048.0",
    ),
    (
        "max-size-null",
        """\
        nodes:
          clock: {sketch: clock, max_size: ~}
        """,
        "grid.yaml:2: node 'clock': 'max_size' must be a whole number of bytes from 1024 to 67108864, not None",
    ),
    (
        "max-size-octal",
        """\
        nodes:
          clock: {sketch: clock, max_size: 04000}
        """,
        "grid.yaml:2: node 'clock': max_size '04000' has a leading zero, which YAML reads as octal; write 4000",
    ),
    (
        "max-size-underscore",
        """\
        nodes:
          clock: {sketch: clock, max_size: 1_048_576}
        """,
        "grid.yaml:2: node 'clock': max_size '1_048_576' is not a plain decimal number; write 1048576",
    ),
    (
        "max-size-binary",
        """\
        nodes:
          clock: {sketch: clock, max_size: 0b10000000000}
        """,
        "grid.yaml:2: node 'clock': max_size '0b10000000000' is not a plain decimal number; write 1024",
    ),
    # ---- timeout: how long one loop() call may take
    (
        "timeout-zero",
        """\
        nodes:
          buzzer: {sketch: buzzer, port: 8766, timeout: 0}
        """,
        "grid.yaml:2: node 'buzzer': 'timeout' must be a number of seconds above 0, not 0",
    ),
    (
        "timeout-negative",
        """\
        nodes:
          buzzer:
            sketch: buzzer
            timeout: -1.5
        """,
        "grid.yaml:4: node 'buzzer': 'timeout' must be a number of seconds above 0, not -1.5",
    ),
    (
        "timeout-text",
        """\
        nodes:
          buzzer: {sketch: buzzer, timeout: 2 s}
        """,
        "grid.yaml:2: node 'buzzer': 'timeout' must be a number of seconds above 0, not the text '2 s'",
    ),
    (
        "timeout-infinite",
        """\
        nodes:
          buzzer: {sketch: buzzer, timeout: .inf}
        """,
        "grid.yaml:2: node 'buzzer': 'timeout' must be a number of seconds above 0, not inf",
    ),
    (
        "timeout-bool",
        """\
        nodes:
          buzzer: {sketch: buzzer, timeout: true}
        """,
        "grid.yaml:2: node 'buzzer': 'timeout' must be a number of seconds above 0, not True",
    ),
    (
        "timeout-sexagesimal",
        """\
        nodes:
          buzzer: {sketch: buzzer, timeout: 1:30}
        """,
        "grid.yaml:2: node 'buzzer': timeout '1:30' is not a plain decimal number; write 90",
    ),
    # ---- firmware: a sketch that is an .ino; serial and baud only where they make sense
    (
        "ino-alone",
        """\
        nodes:
          lamp: {sketch: .ino}
        """,
        "grid.yaml:2: node 'lamp': 'sketch' must be a sketch's name (blinker), a path to a .py file "
        "(./sketches/blinker.py), module:Class (mypackage.blinker:Blinker) or Arduino firmware (lamp.ino)",
    ),
    (
        "serial-on-python",
        """\
        nodes:
          lamp:
            sketch: buzzer
            serial: /dev/ttyACM0
        """,
        "grid.yaml:4: node 'lamp': 'serial' is for a node whose sketch is Arduino firmware running on a real "
        "board (sketch: lamp.ino), not 'buzzer'; remove 'serial', or name the board's .ino",
    ),
    (
        "baud-without-serial",
        """\
        nodes:
          lamp:
            sketch: lamp.ino
            port: 8767
            baud: 9600
        """,
        "grid.yaml:5: node 'lamp': 'baud' goes with 'serial' (the board's port, /dev/ttyACM0): "
        "a simulated firmware's Serial runs at the speed its sketch sets; remove 'baud'",
    ),
    (
        "baud-on-python",
        """\
        nodes:
          clock: {sketch: clock, baud: 9600}
        """,
        "grid.yaml:2: node 'clock': 'baud' goes with 'serial' (the board's port, /dev/ttyACM0): "
        "only a board has one; remove 'baud'",
    ),
    (
        "baud-too-low",
        """\
        nodes:
          lamp: {sketch: lamp.ino, serial: /dev/ttyACM0, baud: 12}
        """,
        "grid.yaml:2: node 'lamp': 'baud' must be a whole number of bits per second from 300 to 2,000,000 "
        "(what the firmware's Serial.begin() says, 115200 say), not 12",
    ),
    (
        "baud-hex",
        """\
        nodes:
          lamp: {sketch: lamp.ino, serial: /dev/ttyACM0, baud: 0x2580}
        """,
        "grid.yaml:2: node 'lamp': baud '0x2580' is not a plain decimal number; write 9600",
    ),
    (
        "serial-empty",
        """\
        nodes:
          lamp: {sketch: lamp.ino, serial: ""}
        """,
        "grid.yaml:2: node 'lamp': 'serial' must be the board's serial port, like /dev/ttyACM0, not ''",
    ),
    (
        "serial-number",
        """\
        nodes:
          lamp: {sketch: lamp.ino, serial: 3}
        """,
        "grid.yaml:2: node 'lamp': 'serial' must be the board's serial port, like /dev/ttyACM0, not 3",
    ),
    (
        "timeout-octal",
        """\
        nodes:
          buzzer: {sketch: buzzer, timeout: 010}
        """,
        "grid.yaml:2: node 'buzzer': timeout '010' has a leading zero, which YAML reads as octal; write 10",
    ),
    # ---- durable: keep the unacked outbox on disk
    (
        "unknown-node-key-durabel",
        """\
        nodes:
          clock: {sketch: clock, durabel: true}
        """,
        "grid.yaml:2: unknown key 'durabel' in node 'clock' "
        "(expected one of: baud, durable, host, max_size, outbox, params, port, serial, sketch, "
        "subscribe, timeout); did you mean 'durable'?",
    ),
    (
        "durable-maybe",
        """\
        nodes:
          clock:
            sketch: clock
            durable: maybe
        """,
        "grid.yaml:4: node 'clock': 'durable' must be true or false, not 'maybe'",
    ),
    (
        "durable-quoted-true",
        """\
        nodes:
          clock: {sketch: clock, durable: "true"}
        """,
        "grid.yaml:2: node 'clock': 'durable' must be true or false, not 'true'",
    ),
    (
        "durable-number",
        """\
        nodes:
          clock: {sketch: clock, durable: 1}
        """,
        "grid.yaml:2: node 'clock': 'durable' must be true or false, not 1",
    ),
    (
        "durable-null",
        """\
        nodes:
          clock:
            sketch: clock
            durable:
        """,
        "grid.yaml:4: node 'clock': 'durable' must be true or false, not None",
    ),
    (
        "durable-yes",
        """\
        nodes:
          clock: {sketch: clock, durable: yes}
        """,
        "grid.yaml:2: 'yes' is read by YAML as a boolean; write true or false, or quote it (\"yes\")",
    ),
    (
        "durable-off",
        """\
        nodes:
          clock:
            sketch: clock
            durable: off
        """,
        "grid.yaml:4: 'off' is read by YAML as a boolean; write true or false, or quote it (\"off\")",
    ),
    # ---- YAML 1.1 booleans and keys
    (
        "bool-off-nested",
        """\
        nodes:
          buzzer:
            sketch: buzzer
            params: {modes: [loud, OFF]}
        """,
        "grid.yaml:4: 'OFF' is read by YAML as a boolean; write true or false, or quote it (\"OFF\")",
    ),
    # ---- params
    (
        "params-list",
        """\
        nodes:
          clock:
            sketch: clock
            params: [5, 1]
        """,
        "grid.yaml:4: node 'clock': 'params' must be a mapping",
    ),
    (
        "param-name-invalid",
        """\
        nodes:
          clock:
            sketch: clock
            params: {1x: 5}
        """,
        "grid.yaml:4: node 'clock': invalid parameter name '1x'",
    ),
    (
        "param-name-not-text",
        """\
        nodes:
          clock:
            sketch: clock
            params:
              5: tacks
        """,
        "grid.yaml:5: keys must be text, not 5",
    ),
    (
        "duplicate-param",
        """\
        nodes:
          clock:
            sketch: clock
            params:
              tacks: 5
              tacks: 6
        """,
        "grid.yaml:6: duplicate key 'tacks' (first on line 5)",
    ),
    (
        "duplicate-key-in-param-value",
        """\
        nodes:
          clock:
            sketch: clock
            params:
              notes: {a: 1, b: 2,
                      a: 3}
        """,
        "grid.yaml:6: duplicate key 'a' (first on line 5)",
    ),
    # ---- wires
    (
        "wires-not-list",
        """\
        nodes:
          clock: {sketch: clock}
          iopin: {sketch: iopin, port: 8765}
        wires: clock -> iopin
        """,
        "grid.yaml:4: 'wires' must be a list of 'SOURCE -> TARGET'",
    ),
    (
        "wire-without-arrow",
        """\
        nodes:
          clock: {sketch: clock}
          iopin: {sketch: iopin, port: 8765}
        wires:
          - clock iopin
        """,
        "grid.yaml:5: malformed wire 'clock iopin'; expected 'SOURCE -> TARGET'",
    ),
    (
        "wire-chain",
        """\
        nodes:
          clock: {sketch: clock}
          iopin: {sketch: iopin, port: 8765}
        wires:
          - clock -> iopin -> clock
        """,
        "grid.yaml:5: malformed wire 'clock -> iopin -> clock'; expected 'SOURCE -> TARGET'",
    ),
    (
        "wire-number",
        """\
        nodes:
          clock: {sketch: clock}
        wires:
          - 5
        """,
        "grid.yaml:4: malformed wire 5; expected 'SOURCE -> TARGET'",
    ),
    (
        "wire-mapping",
        """\
        nodes:
          clock: {sketch: clock}
          iopin: {sketch: iopin, port: 8765}
        wires:
          - clock: iopin
        """,
        "grid.yaml:5: malformed wire {'clock': 'iopin'}; expected 'SOURCE -> TARGET'",
    ),
    (
        "wire-unknown-target-close",
        """\
        nodes:
          clock: {sketch: clock}
          iopin: {sketch: iopin, port: 8765}
          buzzer: {sketch: buzzer, port: 8766}
        wires:
          - clock -> iopn
        """,
        "grid.yaml:6: wire 'clock -> iopn' names unknown node 'iopn'; "
        "known nodes: buzzer, clock, iopin; did you mean 'iopin'?",
    ),
    (
        "wire-unknown-source-far",
        """\
        nodes:
          clock: {sketch: clock}
          iopin: {sketch: iopin, port: 8765}
        wires:
          - ghost->iopin
        """,
        "grid.yaml:5: wire 'ghost -> iopin' names unknown node 'ghost'; known nodes: clock, iopin",
    ),
    (
        "wire-twice",
        """\
        nodes:
          clock: {sketch: clock}
          iopin: {sketch: iopin, port: 8765}
        wires:
          - clock -> iopin
          - clock->iopin
        """,
        "grid.yaml:6: wire 'clock -> iopin' is listed twice (first on line 5)",
    ),
    # ---- subscriptions
    (
        "unknown-node-key-subscribes",
        """\
        nodes:
          meter:
            sketch: meter
            subscribes: [iopin/pin]
        """,
        "grid.yaml:4: unknown key 'subscribes' in node 'meter' "
        "(expected one of: baud, durable, host, max_size, outbox, params, port, serial, sketch, subscribe, timeout); "
        "did you mean 'subscribe'?",
    ),
    (
        "subscribe-single-string",
        """\
        nodes:
          meter:
            sketch: meter
            subscribe: iopin/pin
        """,
        "grid.yaml:4: node 'meter': 'subscribe' must be a list of topic patterns",
    ),
    (
        "subscribe-mapping",
        """\
        nodes:
          meter:
            sketch: meter
            subscribe:
              iopin: pin
        """,
        "grid.yaml:5: node 'meter': 'subscribe' must be a list of topic patterns",
    ),
    (
        "subscribe-number",
        """\
        nodes:
          meter: {sketch: meter, subscribe: 5}
        """,
        "grid.yaml:2: node 'meter': 'subscribe' must be a list of topic patterns",
    ),
    (
        "subscription-number",
        """\
        nodes:
          meter:
            sketch: meter
            subscribe:
              - iopin/pin
              - 5
        """,
        "grid.yaml:6: node 'meter': a subscription must be a topic pattern (text), not 5",
    ),
    (
        "subscription-list",
        """\
        nodes:
          meter:
            sketch: meter
            subscribe:
              - [iopin, pin]
        """,
        "grid.yaml:5: node 'meter': a subscription must be a topic pattern (text), not ['iopin', 'pin']",
    ),
    (
        "subscription-null",
        """\
        nodes:
          meter:
            sketch: meter
            subscribe:
              - iopin/pin
              - ~
        """,
        "grid.yaml:6: node 'meter': a subscription must be a topic pattern (text), not None",
    ),
    (
        "subscription-yes",
        """\
        nodes:
          meter:
            sketch: meter
            subscribe: [iopin/pin, yes]
        """,
        "grid.yaml:4: 'yes' is read by YAML as a boolean; write true or false, or quote it (\"yes\")",
    ),
    (
        "subscription-hash-not-last",
        """\
        nodes:
          meter:
            sketch: meter
            subscribe: ["a/#/b"]
        """,
        "grid.yaml:4: node 'meter': invalid pattern 'a/#/b': '#' may only stand last",
    ),
    (
        "subscription-plus-inside-level",
        """\
        nodes:
          meter:
            sketch: meter
            subscribe:
              - iopin/pin
              - a+/b
        """,
        "grid.yaml:6: node 'meter': invalid pattern 'a+/b': '+' and '#' must stand alone in their level, not in 'a+'",
    ),
    (
        "subscription-empty",
        """\
        nodes:
          meter:
            sketch: meter
            subscribe:
              - ""
        """,
        "grid.yaml:5: node 'meter': invalid pattern '': it is empty",
    ),
    (
        "subscription-empty-level",
        """\
        nodes:
          meter:
            sketch: meter
            subscribe:
              - iopin//pin
        """,
        "grid.yaml:5: node 'meter': invalid pattern 'iopin//pin': a level is empty (no '//', nor '/' at either end)",
    ),
    (
        "subscription-twice",
        """\
        nodes:
          meter:
            sketch: meter
            subscribe:
              - iopin/pin
              - +/sound
              - iopin/pin
        """,
        "grid.yaml:7: node 'meter': pattern 'iopin/pin' is listed twice",
    ),
    (
        "subscription-before-wires",
        """\
        nodes:
          clock: {sketch: clock}
          meter: {sketch: meter, subscribe: ["#/pin"]}
        wires:
          - clock -> ghost
        """,
        "grid.yaml:3: node 'meter': invalid pattern '#/pin': '#' may only stand last",
    ),
    # ---- auth: the environment variable that holds the token
    (
        "auth-unknown-key-close",
        """\
        auth:
          token: MESH_TOKEN
        nodes:
          clock: {sketch: clock}
        """,
        "grid.yaml:2: unknown key 'token' in 'auth' (expected one of: token_env); did you mean 'token_env'?",
    ),
    (
        "auth-unknown-key-far",
        """\
        nodes:
          clock: {sketch: clock}
        auth: {token_env: MESH_TOKEN, secret: hunter2}
        """,
        "grid.yaml:3: unknown key 'secret' in 'auth' (expected one of: token_env)",
    ),
    (
        "auth-duplicate-key",
        """\
        nodes:
          clock: {sketch: clock}
        auth:
          token_env: MESH_TOKEN
          token_env: OTHER_TOKEN
        """,
        "grid.yaml:5: duplicate key 'token_env' (first on line 4)",
    ),
    (
        "auth-twice",
        """\
        auth: {token_env: MESH_TOKEN}
        nodes:
          clock: {sketch: clock}
        auth: {token_env: OTHER_TOKEN}
        """,
        "grid.yaml:4: duplicate key 'auth' (first on line 1)",
    ),
    (
        "auth-string",
        """\
        nodes:
          clock: {sketch: clock}
        auth: MESH_TOKEN
        """,
        "grid.yaml:3: 'auth' must be a mapping like {token_env: MESH_TOKEN}",
    ),
    (
        "auth-list",
        """\
        nodes:
          clock: {sketch: clock}
        auth:
          - token_env: MESH_TOKEN
        """,
        "grid.yaml:4: 'auth' must be a mapping like {token_env: MESH_TOKEN}",
    ),
    (
        "auth-null",
        """\
        nodes:
          clock: {sketch: clock}
        auth:
        """,
        "grid.yaml:3: 'auth' must be a mapping like {token_env: MESH_TOKEN}",
    ),
    (
        "auth-empty",
        """\
        nodes:
          clock: {sketch: clock}
        auth: {}
        """,
        "grid.yaml:3: 'auth' must be a mapping like {token_env: MESH_TOKEN}",
    ),
    (
        "auth-token-env-dollar",
        """\
        nodes:
          clock: {sketch: clock}
        auth:
          token_env: $MESH_TOKEN
        """,
        "grid.yaml:4: 'auth': 'token_env' must name an environment variable, like MESH_TOKEN",
    ),
    (
        "auth-token-env-dash",
        """\
        nodes:
          clock: {sketch: clock}
        auth: {token_env: MESH-TOKEN}
        """,
        "grid.yaml:3: 'auth': 'token_env' must name an environment variable, like MESH_TOKEN",
    ),
    (
        "auth-token-env-leading-digit",
        """\
        nodes:
          clock: {sketch: clock}
        auth: {token_env: 1TOKEN}
        """,
        "grid.yaml:3: 'auth': 'token_env' must name an environment variable, like MESH_TOKEN",
    ),
    (
        "auth-token-env-number",
        """\
        nodes:
          clock: {sketch: clock}
        auth: {token_env: 5}
        """,
        "grid.yaml:3: 'auth': 'token_env' must name an environment variable, like MESH_TOKEN",
    ),
    (
        "auth-token-env-null",
        """\
        nodes:
          clock: {sketch: clock}
        auth:
          token_env:
        """,
        "grid.yaml:4: 'auth': 'token_env' must name an environment variable, like MESH_TOKEN",
    ),
    (
        "auth-token-env-empty",
        """\
        nodes:
          clock: {sketch: clock}
        auth: {token_env: ""}
        """,
        "grid.yaml:3: 'auth': 'token_env' must name an environment variable, like MESH_TOKEN",
    ),
    (
        "auth-token-itself-is-never-shown",
        """\
        nodes:
          clock: {sketch: clock}
        auth:
          token_env: "s3cr3t t0ken!"
        """,
        "grid.yaml:4: 'auth': 'token_env' must name an environment variable, like MESH_TOKEN",
    ),
    # ---- across nodes
    (
        "wired-node-without-port",
        """\
        nodes:
          clock: {sketch: clock}
          iopin: {sketch: iopin}
        wires:
          - clock -> iopin
        """,
        "grid.yaml:3: node 'iopin' receives a wire (line 5) but has no port to receive on",
    ),
    (
        "address-taken",
        """\
        nodes:
          clock:  {sketch: clock}
          iopin:  {sketch: iopin, port: 8765}
          buzzer: {sketch: buzzer, host: 127.0.0.1, port: 8765}
        """,
        "grid.yaml:4: node 'buzzer' listens on 127.0.0.1:8765, already taken by node 'iopin' (line 3)",
    ),
    # ---- order: the first problem in the file wins
    (
        "first-problem-wins",
        """\
        nodes:
          clock: {sketch: clock, port: 70000}
          iopin: {sketch: iopin, prot: 8765}
        wires:
          - clock iopin
        """,
        "grid.yaml:2: node 'clock': port 70000 is outside 0-65535",
    ),
    (
        "nodes-before-wires",
        """\
        wires:
          - clock iopin
        nodes:
          clock: {params: {}}
        """,
        "grid.yaml:4: node 'clock' has no 'sketch'",
    ),
    (
        "wires-before-across",
        """\
        nodes:
          clock: {sketch: clock, port: 8765}
          iopin: {sketch: iopin, port: 8765}
        wires:
          - clock -> buzzer
        """,
        "grid.yaml:5: wire 'clock -> buzzer' names unknown node 'buzzer'; known nodes: clock, iopin",
    ),
    (
        "nodes-before-auth",
        """\
        auth: {token_env: $TOKEN}
        nodes:
          clock: {sketch: clock, outbox: 0}
        """,
        "grid.yaml:3: node 'clock': 'outbox' must be a whole number from 1 to 1000000, not 0",
    ),
    (
        "wires-before-auth",
        """\
        auth: {token: MESH_TOKEN}
        nodes:
          clock: {sketch: clock}
        wires:
          - clock -> ghost
        """,
        "grid.yaml:5: wire 'clock -> ghost' names unknown node 'ghost'; known nodes: clock",
    ),
    (
        "auth-before-across",
        """\
        nodes:
          clock: {sketch: clock}
          iopin: {sketch: iopin}
        wires:
          - clock -> iopin
        auth: {token_env: MESH TOKEN}
        """,
        "grid.yaml:6: 'auth': 'token_env' must name an environment variable, like MESH_TOKEN",
    ),
]


@pytest.mark.parametrize(
    ("text", "message"),
    [pytest.param(text, message, id=case) for case, text, message in TRAPS + INVALID],
)
def test_invalid_grid_names_file_line_and_problem(text: str, message: str) -> None:
    """Each invalid grid raises one GridError with the exact file:line: message."""
    with pytest.raises(GridError) as caught:
        load_grid(dedent(text), "grid.yaml")
    assert str(caught.value) == message


def test_each_case_is_in_the_tables_once() -> None:
    """Every trap and invalid case has its own id, and no grid text is tested twice."""
    cases = TRAPS + INVALID
    assert len({case for case, _, _ in cases}) == len(cases)
    assert len({text for _, text, _ in cases}) == len(cases)


@pytest.fixture
def grid() -> Grid:
    return load_grid(EXAMPLE, "grid.yaml")


def test_example_nodes_in_file_order(grid: Grid) -> None:
    """The example loads with its nodes in file order and its path kept."""
    assert list(grid.nodes) == ["clock", "iopin", "buzzer"]
    assert grid.path == "grid.yaml"


def test_example_node_specs(grid: Grid) -> None:
    """Each node has its sketch, host (default 127.0.0.1), port and definition line."""
    assert grid.node("clock") == NodeSpec(name="clock", sketch="clock", params={"tacks": 5, "delay": 1}, line=2)
    assert grid.node("clock").host == DEFAULT_HOST == "127.0.0.1"
    assert grid.node("clock").port is None
    iopin = grid.node("iopin")
    assert (iopin.sketch, iopin.host, iopin.port, iopin.line) == ("iopin", "127.0.0.1", 8765, 3)
    assert grid.node("buzzer").line == 4


def test_example_params_keep_their_yaml_types(grid: Grid) -> None:
    """Params are read as YAML scalars: ints, floats and unquoted text."""
    assert dict(grid.node("clock").params) == {"tacks": 5, "delay": 1}
    chance = grid.node("iopin").params["chance"]
    assert chance == 0.6 and isinstance(chance, float)
    assert type(grid.node("iopin").params["sequence"]) is int
    assert grid.node("buzzer").params["sound"] == "buzz buzz buzz"


def test_example_wires_and_their_lines(grid: Grid) -> None:
    """Wires keep their order and line, and print as 'source -> target'."""
    assert grid.wires == (
        Wire(source="clock", target="iopin", line=6),
        Wire(source="iopin", target="buzzer", line=7),
    )
    assert [str(wire) for wire in grid.wires] == ["clock -> iopin", "iopin -> buzzer"]


def test_targets_and_sources(grid: Grid) -> None:
    """targets() and sources() follow the wires in both directions."""
    assert grid.targets("clock") == ("iopin",)
    assert grid.targets("iopin") == ("buzzer",)
    assert grid.targets("buzzer") == ()
    assert grid.sources("clock") == ()
    assert grid.sources("iopin") == ("clock",)
    assert grid.sources("buzzer") == ("iopin",)


def test_address_and_uri(grid: Grid) -> None:
    """A node with a port has host:port and ws:// addresses; one without has None."""
    assert grid.node("iopin").address == "127.0.0.1:8765"
    assert grid.node("iopin").uri == "ws://127.0.0.1:8765"
    assert grid.node("clock").address is None
    assert grid.node("clock").uri is None


def test_ipv6_host_is_bracketed() -> None:
    """An IPv6 host is written in brackets in the address and the URI."""
    spec = NodeSpec(name="iopin", sketch="iopin", host="::1", port=8765)
    assert spec.address == "[::1]:8765"
    assert spec.uri == "ws://[::1]:8765"


def test_unknown_node_lookup(grid: Grid) -> None:
    """node(), targets() and sources() raise UnknownNodeError for a name not in the grid."""
    for lookup in (grid.node, grid.targets, grid.sources):
        with pytest.raises(UnknownNodeError) as caught:
            lookup("ghost")
        assert caught.value.known == ("buzzer", "clock", "iopin")


def test_grid_is_immutable(grid: Grid) -> None:
    """Grid, NodeSpec, Wire, the node mapping and params cannot be changed."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        grid.path = "other.yaml"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        grid.node("iopin").port = 9000  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        grid.wires[0].target = "buzzer"  # type: ignore[misc]
    with pytest.raises(TypeError):
        grid.nodes["ghost"] = grid.node("clock")  # type: ignore[index]
    with pytest.raises(TypeError):
        grid.node("clock").params["tacks"] = 6  # type: ignore[index]
    assert isinstance(grid.nodes, MappingProxyType)
    assert isinstance(grid.node("clock").params, MappingProxyType)


def test_nested_params_are_deeply_immutable() -> None:
    """Lists in params become tuples and mappings become read-only mappings."""
    grid = load_grid(
        dedent(
            """\
            nodes:
              buzzer:
                sketch: buzzer
                params:
                  notes: [a, b, {pitch: 440}]
                  volume: {left: 1, right: 0.5}
            """
        )
    )
    params = grid.node("buzzer").params
    assert params["notes"][:2] == ("a", "b")
    assert isinstance(params["notes"][2], MappingProxyType)
    assert params["volume"] == {"left": 1, "right": 0.5}
    with pytest.raises(TypeError):
        params["volume"]["left"] = 0


def test_quoted_yes_and_true_are_fine() -> None:
    """Quoted 'yes' stays text; true/false (any case) are booleans."""
    grid = load_grid(
        dedent(
            """\
            nodes:
              buzzer: {sketch: buzzer, params: {answer: "yes", loud: True, quiet: false}}
            """
        )
    )
    assert dict(grid.node("buzzer").params) == {"answer": "yes", "loud": True, "quiet": False}


def test_null_wires_and_params_mean_none() -> None:
    """'wires:' and 'params:' left empty mean no wires and no params."""
    grid = load_grid("nodes:\n  clock:\n    sketch: clock\n    params:\nwires:\n")
    assert grid.wires == ()
    assert dict(grid.node("clock").params) == {}


def test_port_zero_may_be_shared() -> None:
    """Port 0 means 'any free port', so several nodes may ask for it."""
    grid = load_grid("nodes:\n  a: {sketch: iopin, port: 0}\n  b: {sketch: iopin, port: 0}\n")
    assert [spec.port for spec in grid.nodes.values()] == [0, 0]


def test_with_node_overrides_port(grid: Grid) -> None:
    """with_node() returns a new grid with that node changed; the old one is kept."""
    moved = grid.with_node("iopin", port=9000, host="localhost")
    assert moved.node("iopin").uri == "ws://localhost:9000"
    assert moved.node("iopin").line == 3
    assert grid.node("iopin").port == 8765
    assert list(moved.nodes) == list(grid.nodes)
    assert moved.wires == grid.wires and moved.path == grid.path


def test_with_node_freezes_new_params(grid: Grid) -> None:
    """with_node() params become read-only too."""
    changed = grid.with_node("clock", params={"tacks": 2, "pattern": [1, 0]})
    assert changed.node("clock").params == {"tacks": 2, "pattern": (1, 0)}
    with pytest.raises(TypeError):
        changed.node("clock").params["tacks"] = 3  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "changes", "message"),
    [
        pytest.param(
            "iopin",
            {"port": 8766},
            "grid.yaml:3: node 'iopin' listens on 127.0.0.1:8766, already taken by node 'buzzer' (line 4)",
            id="address-taken",
        ),
        pytest.param(
            "iopin",
            {"port": None},
            "grid.yaml:3: node 'iopin' receives a wire (line 6) but has no port to receive on",
            id="wired-without-port",
        ),
        pytest.param(
            "iopin",
            {"port": 70000},
            "grid.yaml:3: node 'iopin': port 70000 is outside 0-65535",
            id="port-range",
        ),
        pytest.param(
            "iopin",
            {"port": "9000"},
            "grid.yaml:3: node 'iopin': 'port' must be a whole number, not the text '9000'",
            id="port-text",
        ),
        pytest.param(
            "buzzer",
            {"host": ""},
            "grid.yaml:4: node 'buzzer': 'host' must be a host name or address",
            id="host-empty",
        ),
        pytest.param(
            "clock",
            {"subscribe": "iopin/pin"},
            "grid.yaml:2: node 'clock': 'subscribe' must be a list of topic patterns",
            id="subscribe-string",
        ),
        pytest.param(
            "clock",
            {"subscribe": ["iopin/pin", 5]},
            "grid.yaml:2: node 'clock': a subscription must be a topic pattern (text), not 5",
            id="subscription-number",
        ),
        pytest.param(
            "clock",
            {"subscribe": ("a/#/b",)},
            "grid.yaml:2: node 'clock': invalid pattern 'a/#/b': '#' may only stand last",
            id="subscription-invalid",
        ),
        pytest.param(
            "clock",
            {"subscribe": ["iopin/pin", "+/sound", "iopin/pin"]},
            "grid.yaml:2: node 'clock': pattern 'iopin/pin' is listed twice",
            id="subscription-twice",
        ),
        pytest.param(
            "clock",
            {"outbox": 0},
            "grid.yaml:2: node 'clock': 'outbox' must be a whole number from 1 to 1000000, not 0",
            id="outbox-zero",
        ),
        pytest.param(
            "clock",
            {"outbox": "5"},
            "grid.yaml:2: node 'clock': 'outbox' must be a whole number from 1 to 1000000, not the text '5'",
            id="outbox-text",
        ),
        pytest.param(
            "clock",
            {"outbox": None},
            "grid.yaml:2: node 'clock': 'outbox' must be a whole number from 1 to 1000000, not None",
            id="outbox-none",
        ),
        pytest.param(
            "iopin",
            {"max_size": 5},
            "grid.yaml:3: node 'iopin': 'max_size' must be a whole number of bytes from 1024 to 67108864, not 5",
            id="max-size-small",
        ),
        pytest.param(
            "iopin",
            {"max_size": True},
            "grid.yaml:3: node 'iopin': 'max_size' must be a whole number of bytes from 1024 to 67108864, not True",
            id="max-size-bool",
        ),
        pytest.param(
            "clock",
            {"durable": "maybe"},
            "grid.yaml:2: node 'clock': 'durable' must be true or false, not 'maybe'",
            id="durable-text",
        ),
        pytest.param(
            "clock",
            {"durable": 1},
            "grid.yaml:2: node 'clock': 'durable' must be true or false, not 1",
            id="durable-number",
        ),
    ],
)
def test_with_node_checks_again(grid: Grid, name: str, changes: dict, message: str) -> None:
    """with_node() re-runs the checks and names the grid's file and the node's line."""
    with pytest.raises(GridError) as caught:
        grid.with_node(name, **changes)
    assert str(caught.value) == message


def test_with_node_unknown_name(grid: Grid) -> None:
    """with_node() raises UnknownNodeError for a node that is not in the grid."""
    with pytest.raises(UnknownNodeError):
        grid.with_node("ghost", port=9000)


def test_build_grid_from_python_data() -> None:
    """build_grid() makes the same Grid from plain data, with no lines."""
    grid = build_grid(
        {
            "clock": {"sketch": "clock", "params": {"tacks": 5}},
            "iopin": {"sketch": "iopin", "port": 8765, "params": {"seq": [1, 2]}},
        },
        ["clock -> iopin"],
    )
    assert grid.path == "<memory>"
    assert grid.node("iopin") == NodeSpec(name="iopin", sketch="iopin", port=8765, params={"seq": (1, 2)})
    assert grid.wires == (Wire(source="clock", target="iopin"),)
    assert grid.targets("clock") == ("iopin",)


@pytest.mark.parametrize(
    ("nodes", "wires", "message"),
    [
        pytest.param(
            {"clock": {"sketch": "clock"}, "iopin": {"sketch": "iopin"}},
            ["clock -> iopin"],
            "<memory>: node 'iopin' receives a wire ('clock -> iopin') but has no port to receive on",
            id="wired-without-port",
        ),
        pytest.param(
            {"iopin": {"sketch": "iopin", "port": "8765"}},
            [],
            "<memory>: node 'iopin': 'port' must be a whole number, not the text '8765'",
            id="port-text",
        ),
        pytest.param(
            {"a": {"sketch": "iopin", "port": 1}, "b": {"sketch": "iopin", "port": 1}},
            [],
            "<memory>: node 'b' listens on 127.0.0.1:1, already taken by node 'a'",
            id="address-taken",
        ),
        pytest.param(
            {"clock": {"sketch": "clock"}},
            ["clock => clock"],
            "<memory>: malformed wire 'clock => clock'; expected 'SOURCE -> TARGET'",
            id="malformed-wire",
        ),
        pytest.param(
            {"meter": {"sketch": "meter", "subscribe": "iopin/pin"}},
            [],
            "<memory>: node 'meter': 'subscribe' must be a list of topic patterns",
            id="subscribe-string",
        ),
        pytest.param(
            {"meter": {"sketch": "meter", "subscribe": ["iopin/pin", 5]}},
            [],
            "<memory>: node 'meter': a subscription must be a topic pattern (text), not 5",
            id="subscription-number",
        ),
        pytest.param(
            {"meter": {"sketch": "meter", "subscribe": ("a/#/b",)}},
            [],
            "<memory>: node 'meter': invalid pattern 'a/#/b': '#' may only stand last",
            id="subscription-invalid",
        ),
        pytest.param(
            {"meter": {"sketch": "meter", "subscribe": ["iopin/pin", "iopin/pin"]}},
            [],
            "<memory>: node 'meter': pattern 'iopin/pin' is listed twice",
            id="subscription-twice",
        ),
        pytest.param(
            {"clock": {"sketch": "clock", "outbox": "5"}},
            [],
            "<memory>: node 'clock': 'outbox' must be a whole number from 1 to 1000000, not the text '5'",
            id="outbox-text",
        ),
        pytest.param(
            {"clock": {"sketch": "clock", "outbox": 1_000_001}},
            [],
            "<memory>: node 'clock': 'outbox' must be a whole number from 1 to 1000000, not 1000001",
            id="outbox-too-big",
        ),
        pytest.param(
            {"clock": {"sketch": "clock", "max_size": 64 * 2**20 + 1}},
            [],
            "<memory>: node 'clock': 'max_size' must be a whole number of bytes from 1024 to 67108864, not 67108865",
            id="max-size-too-big",
        ),
        pytest.param(
            {"clock": {"sketch": "clock", "durable": "yes"}},
            [],
            "<memory>: node 'clock': 'durable' must be true or false, not 'yes'",
            id="durable-text",
        ),
        pytest.param(
            {"clock": {"sketch": "clock", "durabel": True}},
            [],
            "<memory>: unknown key 'durabel' in node 'clock' "
            "(expected one of: baud, durable, host, max_size, outbox, params, port, serial, sketch, "
            "subscribe, timeout); did you mean 'durable'?",
            id="unknown-key",
        ),
    ],
)
def test_build_grid_errors_have_no_line(nodes: dict, wires: list, message: str) -> None:
    """build_grid() applies the same checks; its errors name the path and no line."""
    with pytest.raises(GridError) as caught:
        build_grid(nodes, wires)
    assert caught.value.line is None
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "token_env",
    [
        pytest.param("MESH TOKEN", id="space"),
        pytest.param("$MESH_TOKEN", id="dollar"),
        pytest.param("1TOKEN", id="leading-digit"),
        pytest.param("", id="empty"),
        pytest.param(5, id="number"),
        pytest.param(["MESH_TOKEN"], id="list"),
    ],
)
def test_build_grid_checks_auth_token_env(token_env: object) -> None:
    """build_grid(auth_token_env=...) gets the same check as 'auth: {token_env: ...}'."""
    with pytest.raises(GridError) as caught:
        build_grid({"clock": {"sketch": "clock"}}, auth_token_env=token_env)  # type: ignore
    assert caught.value.line is None
    assert str(caught.value) == ("<memory>: 'auth': 'token_env' must name an environment variable, like MESH_TOKEN")


def test_read_grid_reads_a_file(tmp_path) -> None:
    """read_grid() loads a UTF-8 file and names it in the Grid."""
    path = tmp_path / "grid.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    grid = read_grid(path)
    assert grid.path == str(path)
    assert list(grid.nodes) == ["clock", "iopin", "buzzer"]


def test_read_grid_errors_name_the_file(tmp_path) -> None:
    """Errors in a file read by read_grid() name that file."""
    path = tmp_path / "grid.yaml"
    path.write_text("nodes:\n  clock: {sketch: clock, prot: 1}\n", encoding="utf-8")
    with pytest.raises(GridError) as caught:
        read_grid(path)
    assert str(caught.value).startswith(f"{path}:2: unknown key 'prot'")


def test_read_grid_missing_file(tmp_path) -> None:
    """A missing file is a GridError naming it, with no line."""
    path = tmp_path / "missing.yaml"
    with pytest.raises(GridError) as caught:
        read_grid(path)
    assert str(caught.value) == f"{path}: cannot read the grid: No such file or directory"


def test_known_sketches_accepted() -> None:
    """With sketches=, nodes naming known sketches load."""
    grid = load_grid(EXAMPLE, sketches=SKETCHES)
    assert [spec.sketch for spec in grid.nodes.values()] == ["clock", "iopin", "buzzer"]


@pytest.mark.parametrize(
    ("sketch", "message"),
    [
        pytest.param(
            "clok",
            "grid.yaml:3: node 'clock': unknown sketch 'clok'; "
            "known sketches: buzzer, clock, iopin; did you mean 'clock'?",
            id="close",
        ),
        pytest.param(
            "servo",
            "grid.yaml:3: node 'clock': unknown sketch 'servo'; known sketches: buzzer, clock, iopin",
            id="far",
        ),
    ],
)
def test_unknown_sketch(sketch: str, message: str) -> None:
    """With sketches=, a node naming another sketch is an error at its 'sketch' line."""
    text = f"nodes:\n  clock:\n    sketch: {sketch}\n"
    with pytest.raises(GridError) as caught:
        load_grid(text, sketches=SKETCHES)
    assert str(caught.value) == message


def test_sketches_not_checked_without_list() -> None:
    """Without sketches=, any sketch module name is accepted."""
    assert load_grid("nodes:\n  x: {sketch: my_sketches.servo}\n").node("x").sketch == ("my_sketches.servo")


def test_subscribe_is_a_tuple_of_patterns() -> None:
    """'subscribe' loads as a tuple of patterns in file order; the node needs no port."""
    grid = load_grid(
        dedent(
            """\
            nodes:
              iopin: {sketch: iopin, port: 8765}
              meter:
                sketch: meter
                subscribe: ["iopin/pin", "+/sound"]
            """
        )
    )
    spec = grid.node("meter")
    assert spec.subscribe == ("iopin/pin", "+/sound")
    assert isinstance(spec.subscribe, tuple)
    assert spec.port is None


@pytest.mark.parametrize(("written", "seconds"), [("2", 2.0), ("0.25", 0.25), ("~", None), ("30", 30.0)])
def test_timeout_is_seconds_or_none(written: str, seconds: float | None) -> None:
    """A node's timeout is a number of seconds above 0 (an int is read as a float); null, or none, is no bound."""
    grid = load_grid(f"nodes:\n  buzzer: {{sketch: buzzer, timeout: {written}}}\n  clock: {{sketch: clock}}\n")
    assert grid.node("buzzer").timeout == seconds
    assert grid.node("clock").timeout is None
    assert build_grid({"buzzer": {"sketch": "buzzer", "timeout": 3}}).node("buzzer").timeout == 3.0


def test_subscribe_defaults_to_none() -> None:
    """A node without 'subscribe', or with it null or empty, subscribes to nothing."""
    grid = load_grid(
        dedent(
            """\
            nodes:
              a: {sketch: clock}
              b: {sketch: clock, subscribe: }
              c: {sketch: clock, subscribe: []}
            """
        )
    )
    assert [spec.subscribe for spec in grid.nodes.values()] == [(), (), ()]


def test_build_grid_subscribe_becomes_a_tuple() -> None:
    """build_grid() takes 'subscribe' as a list or a tuple and stores a tuple."""
    grid = build_grid(
        {
            "a": {"sketch": "meter", "subscribe": ["iopin/pin", "+/sound"]},
            "b": {"sketch": "meter", "subscribe": ("#",)},
            "c": {"sketch": "meter", "subscribe": None},
        }
    )
    assert grid.node("a").subscribe == ("iopin/pin", "+/sound")
    assert grid.node("b").subscribe == ("#",)
    assert grid.node("c").subscribe == ()


def test_with_node_sets_subscriptions(grid: Grid) -> None:
    """with_node(subscribe=...) takes a list or a tuple and stores a tuple; the old grid is kept."""
    listed = grid.with_node("clock", subscribe=["iopin/pin", "+/sound"])
    assert listed.node("clock").subscribe == ("iopin/pin", "+/sound")
    assert grid.node("clock").subscribe == ()
    assert grid.with_node("clock", subscribe=("iopin/#",)).node("clock").subscribe == ("iopin/#",)
    assert listed.with_node("clock", subscribe=[]).node("clock").subscribe == ()


def test_nodespec_subscribe_list_is_frozen() -> None:
    """A NodeSpec built with a list of patterns keeps them as a tuple, so it stays hashable."""
    spec = NodeSpec(name="meter", sketch="meter", subscribe=["iopin/pin"])  # type: ignore[arg-type]
    assert spec.subscribe == ("iopin/pin",)
    assert hash(spec) == hash(NodeSpec(name="meter", sketch="meter", subscribe=("iopin/pin",)))


def test_link_settings_default(grid: Grid) -> None:
    """A node without outbox, max_size or durable gets 1000, 1 MiB and False; no auth."""
    assert DEFAULT_OUTBOX == 1000
    assert DEFAULT_MAX_SIZE == 2**20 == 1_048_576
    defaults = (DEFAULT_OUTBOX, DEFAULT_MAX_SIZE, False)
    for spec in grid.nodes.values():
        assert (spec.outbox, spec.max_size, spec.durable) == defaults
    assert grid.auth_token_env is None
    spec = NodeSpec(name="clock", sketch="clock")
    assert (spec.outbox, spec.max_size, spec.durable) == (1000, 1_048_576, False)


def test_link_settings_load() -> None:
    """outbox, max_size and durable load as ints and bools, bounds included."""
    grid = load_grid(
        dedent(
            """\
            nodes:
              a: {sketch: clock, outbox: 50, max_size: 4096, durable: true}
              b:
                sketch: clock
                outbox: 1
                max_size: 1024
                durable: False
              c: {sketch: clock, outbox: 1000000, max_size: 67108864, durable: TRUE}
              d: {sketch: clock, outbox: +7}
            """
        )
    )
    settings = [(spec.outbox, spec.max_size, spec.durable) for spec in grid.nodes.values()]
    assert settings == [
        (50, 4096, True),
        (1, 1024, False),
        (1_000_000, 64 * 2**20, True),
        (7, DEFAULT_MAX_SIZE, False),
    ]
    for spec in grid.nodes.values():
        assert type(spec.outbox) is int and type(spec.max_size) is int
        assert type(spec.durable) is bool
    assert grid.node("a") == NodeSpec(name="a", sketch="clock", outbox=50, max_size=4096, durable=True, line=2)


def test_auth_token_env_loads() -> None:
    """'auth: {token_env: NAME}' keeps the name of the variable, whatever its case."""
    text = "auth:\n  token_env: MESH_TOKEN\nnodes:\n  clock: {sketch: clock}\n"
    assert load_grid(text).auth_token_env == "MESH_TOKEN"
    text = 'nodes:\n  clock: {sketch: clock}\nauth: {token_env: "_mesh_token2"}\n'
    assert load_grid(text).auth_token_env == "_mesh_token2"


class _NoEnviron:
    """Stands in for os.environ: any use of it fails the test."""

    def _fail(self, *args: object) -> object:
        raise AssertionError("the grid loader read the environment")

    __getitem__ = __contains__ = __iter__ = __len__ = _fail

    def __getattr__(self, name: str) -> object:
        return self._fail()


def test_loading_never_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The grid holds the variable's name, never the token; loading never looks it up."""
    monkeypatch.setenv("MESH_TOKEN", "s3cr3t-t0ken")
    text = "nodes:\n  clock: {sketch: clock, durable: true}\nauth: {token_env: MESH_TOKEN}\n"
    with monkeypatch.context() as patch:
        patch.setattr(os, "environ", _NoEnviron())
        loaded = load_grid(text)
        built = build_grid({"clock": {"sketch": "clock"}}, auth_token_env="MESH_TOKEN")
        changed = loaded.with_node("clock", outbox=5)
    for grid in (loaded, built, changed):
        assert grid.auth_token_env == "MESH_TOKEN"
        assert "s3cr3t" not in repr(grid) and "s3cr3t" not in repr(dict(grid.nodes))


def test_build_grid_link_settings_and_auth() -> None:
    """build_grid() takes outbox, max_size, durable per node and auth_token_env for the grid."""
    grid = build_grid(
        {
            "clock": {"sketch": "clock", "outbox": 10, "max_size": 2048, "durable": True},
            "iopin": {"sketch": "iopin", "port": 8765},
        },
        ["clock -> iopin"],
        auth_token_env="MESH_TOKEN",
    )
    assert grid.node("clock") == NodeSpec(name="clock", sketch="clock", outbox=10, max_size=2048, durable=True)
    assert grid.node("iopin").outbox == DEFAULT_OUTBOX
    assert grid.auth_token_env == "MESH_TOKEN"
    assert build_grid({"clock": {"sketch": "clock"}}).auth_token_env is None


def test_with_node_link_settings(grid: Grid) -> None:
    """with_node() changes outbox, max_size and durable; the old grid is kept."""
    changed = grid.with_node("iopin", outbox=5, max_size=4096, durable=True)
    iopin = changed.node("iopin")
    assert (iopin.outbox, iopin.max_size, iopin.durable) == (5, 4096, True)
    assert grid.node("iopin").outbox == DEFAULT_OUTBOX
    assert grid.node("iopin").durable is False


def test_with_node_keeps_auth() -> None:
    """with_node() keeps the grid's auth_token_env."""
    grid = load_grid("auth: {token_env: MESH_TOKEN}\nnodes:\n  iopin: {sketch: iopin, port: 8765}\n")
    assert grid.with_node("iopin", port=9000).auth_token_env == "MESH_TOKEN"


def test_link_settings_keep_nodespec_hashable() -> None:
    """NodeSpecs with the new fields still hash and compare by value."""
    one = NodeSpec(name="a", sketch="clock", outbox=5, max_size=2048, durable=True)
    two = NodeSpec(name="a", sketch="clock", outbox=5, max_size=2048, durable=True)
    assert one == two and hash(one) == hash(two)
    assert one != dataclasses.replace(two, durable=False)
