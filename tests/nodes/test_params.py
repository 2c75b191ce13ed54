"""nodes.params: a node's params checked against its sketch's ``setup()`` before it runs; the options a command offers."""

from __future__ import annotations

import inspect

import pytest

from mesh.errors import GridError
from mesh.grid import build_grid
from nodes import FactoryLoop
from nodes.params import SketchParameter, check_params, sketch_parameters


class Lamp(FactoryLoop):
    def setup(self, color: str, brightness: float = 1.0, blinks: int = 0, on: bool = False, note: str | None = None):
        """A lamp.

        ``color``: what it shines; ``brightness``: from 0 to 1.
        ``blinks``: times a second.
        """


class Anything(FactoryLoop):
    def setup(self, **params: object) -> None:
        pass


def spec(**params: object):
    return build_grid({"lamp": {"sketch": "lamp", "params": params}}).nodes["lamp"]


@pytest.mark.parametrize(
    "params",
    [
        {"color": "red"},
        {"color": "red", "brightness": 1, "blinks": 3, "on": True, "note": None},  # an int is a number
        {"color": "red", "note": "hi"},
    ],
)
def test_params_that_setup_takes_pass(params):
    check_params(Lamp, spec(**params), "grid.yaml")


@pytest.mark.parametrize(
    ("params", "error"),
    [
        (
            {"color": "red", "colour": "blue"},
            "takes no parameter 'colour'; its parameters: color, brightness, blinks, on, note",
        ),
        ({"color": 1}, "parameter 'color' must be text, not 1"),
        ({"color": "red", "blinks": 1.5}, "parameter 'blinks' must be a whole number, not 1.5"),
        ({"color": "red", "blinks": True}, "parameter 'blinks' must be a whole number, not True"),  # YAML's true
        ({"color": "red", "brightness": "high"}, "parameter 'brightness' must be a number, not 'high'"),
        ({"color": "red", "on": "yes"}, "parameter 'on' must be true or false, not 'yes'"),
        ({"color": "red", "note": 3}, "parameter 'note' must be text, not 3"),
        ({}, "node 'lamp' needs param 'color' (setup() has no default); add it to params: or pass --color"),
    ],
)
def test_params_that_setup_cannot_take_are_one_line_naming_the_node(params, error):
    with pytest.raises(GridError) as raised:
        check_params(Lamp, spec(**params), "grid.yaml")
    assert error in str(raised.value)
    assert str(raised.value).startswith("grid.yaml")


def test_overrides_need_not_be_complete_and_any_keyword_takes_anything():
    check_params(Lamp, spec(blinks=2), "grid.yaml", complete=False)
    check_params(Anything, spec(whatever=[1, 2]), "grid.yaml")


def test_the_options_a_command_offers_come_from_setup_and_its_docstring():
    empty = inspect.Parameter.empty
    assert sketch_parameters(Lamp) == [
        SketchParameter("color", str, empty, "what it shines"),
        SketchParameter("brightness", float, 1.0, "from 0 to 1"),
        SketchParameter("blinks", int, 0, "times a second"),
        SketchParameter("on", bool, False, ""),
        SketchParameter("note", str, None, ""),
    ]
    assert sketch_parameters(Anything) == []
