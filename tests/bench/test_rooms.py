"""The rooms a tick enters, measured through `arduino-mesh up`, are the ones docs/architecture.md prints."""

from __future__ import annotations

import re

import pytest

from bench.rooms import ROOT, measure

pytestmark = pytest.mark.e2e


def test_the_tick_enters_the_rooms_the_architecture_page_lists():
    """At most nine runtime modules, none calling another that calls it back, exactly as the page says."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    listed = re.search(r"<!-- rooms: python -m bench\.rooms -->\n```\n(.*?)```\n<!-- /rooms -->", page, re.S)
    assert listed is not None, "docs/architecture.md has no rooms block"
    *modules, both = listed.group(1).strip().splitlines()
    found = measure(seconds=2.0)
    assert found["modules"] == modules, "update docs/architecture.md's rooms block (python -m bench.rooms)"
    assert found["both_ways"] == [] and both == "calling each other both ways: none"
    assert len(found["modules"]) <= 9
