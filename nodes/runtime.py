"""The runtime's public names: what runs sketches, for programs, tests and benchmarks (not for sketches).

::

    from nodes.runtime import Node, open_together

    node = Node(Buzzer, "buzzer", grid)     # one sketch's runtime
    await node.run()                        # open, begin, wait until stopped, stop

A sketch sees none of this: :mod:`nodes` is the sketch surface.
"""

from __future__ import annotations

from .circuit import on_free_ports, open_together, run_together, start_together, stop_together
from .node import Node
from .params import check_params
from .reload import GridSource, GridWatch
from .testing import Circuit, circuit

__all__ = [
    "Circuit",
    "GridSource",
    "GridWatch",
    "Node",
    "check_params",
    "circuit",
    "on_free_ports",
    "open_together",
    "run_together",
    "start_together",
    "stop_together",
]
