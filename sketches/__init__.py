"""Sketches: the built-in behaviours a node can run (``clock``, ``iopin``, ``buzzer``, ``dashboard``).

Each module holds one :class:`~nodes.FactoryLoop` subclass; the grid names it by
the module's name. Your own sketches live with your grid, not here: in a
``sketches/`` folder beside ``grid.yaml``, at a path, or in a package of yours
(see :mod:`nodes.sketchbook`, and README, "Write your own sketch").
"""

from __future__ import annotations

from nodes.sketchbook import available, builtins, load, locate, problem

__all__ = ["available", "builtins", "load", "locate", "problem"]
