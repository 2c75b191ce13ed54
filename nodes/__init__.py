"""The node runtime: ``FactoryLoop``, ``@reactive``, ``@every``, serving and running."""

from __future__ import annotations

from .circuit import open_together
from .factory import FactoryLoop, NodeStats, check_params
from .periodic import every
from .reactive import reactive
from .server import ListenError

__all__ = ["FactoryLoop", "ListenError", "NodeStats", "check_params", "every", "open_together", "reactive"]
