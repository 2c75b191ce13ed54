"""The node runtime and the sketch surface.

A sketch sees :class:`FactoryLoop` (subclass it), ``@reactive`` (its ``loop``), ``@every``
(periodic methods), ``@hears`` (where the grid's topics arrive) and ``@reports``
(the sketch's own section of its status report). The runtime that runs a
sketch is :class:`Node`; :func:`open_together` opens several nodes of one grid in one process.
"""

from __future__ import annotations

from mesh.errors import ListenError

from .circuit import open_together
from .factory import FactoryLoop
from .node import Node
from .params import check_params
from .periodic import every
from .reactive import hears, reactive, reports

__all__ = [
    "FactoryLoop",
    "ListenError",
    "Node",
    "check_params",
    "every",
    "hears",
    "open_together",
    "reactive",
    "reports",
]
