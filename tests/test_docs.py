"""The reference stays true: every ``module.NAME`` that README.md and docs/ name is where they say.

A limit's row names the constant that sets it (``mesh.constants.SEND_TIMEOUT``, then
``SEND_TIMEOUT``-like names of the same module in the same cell): a module split or a
constant moved makes this fail, not a reader who looks for it.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: A backticked name in one of our packages (``nodes.NAME.port`` is a grid key, not a module).
QUALIFIED = re.compile(r"`((?:mesh|nodes|sketches|cli|bench)(?:\.(?!NAME\b)[A-Za-z_]\w*)+)`")
#: A bare constant after a qualified name in the same table cell: the same module's.
BARE = re.compile(r"`([A-Z][A-Z0-9_]+)`")


def resolve(name: str) -> tuple[ModuleType, object] | None:
    """The module and the object ``name`` names, or None."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        obj: object = module
        for attribute in parts[i:]:
            if not hasattr(obj, attribute):
                return None
            obj = getattr(obj, attribute)
        return module, obj
    return None


def references() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            for cell in line.split("|") if line.startswith("|") else [line]:
                module = None
                for match in re.finditer(f"{QUALIFIED.pattern}|{BARE.pattern}", cell):
                    qualified, bare = match.groups()
                    if qualified:
                        found.append((f"{page.name}:{number}", qualified))
                        module = qualified.rsplit(".", 1)[0]
                    elif module is not None and line.startswith("|"):
                        found.append((f"{page.name}:{number}", f"{module}.{bare}"))
    return found


def test_the_docs_name_things_that_exist():
    wrong = [f"{where}: {name}" for where, name in references() if resolve(name) is None]
    assert not wrong, "named in the docs, not found:\n" + "\n".join(wrong)


@pytest.mark.parametrize("name", ["mesh.constants.SEND_TIMEOUT", "mesh.reconnect.backoff"])
def test_a_reference_resolves(name: str):
    assert resolve(name) is not None
    assert resolve(name.replace(".", ".no_such_", 1)) is None


LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped but '-' and '_', spaces as '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in page.read_text().splitlines() if re.match(r"#{1,6} ", line)}


def test_every_link_between_the_pages_leads_somewhere():
    """A relative link in README.md or docs/ names a file that exists, and a heading of it when it has a #."""
    wrong = []
    for page in PAGES:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            for target in LINK.findall(line):
                if re.match(r"[a-z]+:", target):
                    continue  # http:, https:, mailto:
                path, _, anchor = target.partition("#")
                linked = (page.parent / path).resolve() if path else page
                if not linked.exists():
                    wrong.append(f"{page.name}:{number}: {target} (no such file)")
                elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                    wrong.append(f"{page.name}:{number}: {target} (no such heading)")
    assert not wrong, "\n".join(wrong)
