"""The sketch surface: what a sketch author uses, and nothing else.

A sketch subclasses :class:`FactoryLoop` and marks its methods: ``@reactive`` (its ``loop``),
``@every`` (periodic methods), ``@hears`` (where the grid's topics arrive) and ``@reports``
(its own section of the status report). A sketch that serves plain websocket clients its own
way (``serve_plain``) gets a :class:`PlainClient` and may :func:`broadcast` to several.

The runtime that runs sketches (``Node``, ``open_together``, ...) is :mod:`nodes.runtime`.
"""

from __future__ import annotations

from .factory import FactoryLoop
from .plain import PlainClient, broadcast
from .reactive import every, hears, reactive, reports

__all__ = ["FactoryLoop", "PlainClient", "broadcast", "every", "hears", "reactive", "reports"]
