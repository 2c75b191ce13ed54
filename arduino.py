#!/usr/bin/env python3
"""arduino.py: run the nodes of a circuit, and talk to them. The commands live in :mod:`cli`.

./arduino.py buzzer            run the node named "buzzer" in grid.yaml
./arduino.py send buzzer 1     send one message to a node, print its ack
./arduino.py echo '#'          print everything the circuit publishes
"""

from __future__ import annotations

from cli import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
