"""The dashboard's subscriptions and hostile values in a real browser: Debian's Chromium, headless, driven by Playwright.

Every node a real process on its own port (``./arduino.py --grid GRID NODE``), the sketches
written into the test's folder as a user's would be; the page is read for what it draws (the
circuit's SVG, the strip's), waiting on the page's own state, never on time. The browser, its
flags and ``wait`` are test_dashboard.py's.
"""

from __future__ import annotations

import math
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import DEADLINE, MS, free_ports, serving, write_grid
from tests.sketches.test_dashboard import CHROMIUM, STRIP_ROW, browser, wait

__all__ = ["browser"]  # the fixture, shared with test_dashboard.py

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium (.ci/run does)"),
]

#: The meter of docs/topics.md: it counts the high pins of every node.
METER = '''from __future__ import annotations

from nodes import FactoryLoop, reactive


class Meter(FactoryLoop):
    """Counts the high pins of every node."""

    def setup(self) -> None:
        self.highs = 0

    @reactive
    async def loop(self, channel: str, message: str) -> None:
        if message == "1":
            self.highs += 1
            self.out(f"{channel} went high ({self.highs} so far)")
'''

#: A node that subscribes to the clock's ticks at run time, not in the grid.
WATCHER = f'''from __future__ import annotations

from nodes import FactoryLoop, every, reactive


class Watcher(FactoryLoop):
    """Watches the ticks, from a subscription it makes as it begins."""

    @every({10 * MS}, times=1)
    async def watch(self) -> None:
        await self.subscribe("clock/tick", self.tick)
        self.out("watching clock/tick")

    def tick(self, key: str, data: str) -> None:
        pass

    @reactive
    async def loop(self, channel: str, message: str) -> None:
        return None
'''


def write_sketches(folder: Path, **sketches: str) -> None:
    (folder / "sketches").mkdir()
    for name, text in sketches.items():
        (folder / "sketches" / f"{name}.py").write_text(text)


#: A subscription edge (or a dangling pattern) as the page draws it, or null.
EDGE = """([selector]) => {
  const g = document.querySelector(selector);
  if (!g) return null;
  const path = g.querySelector('path');
  return {
    patterns: g.dataset.patterns,
    label: g.querySelector('text.sub-label').textContent,
    title: g.querySelector('title').textContent,
    dashed: getComputedStyle(path).strokeDasharray,
    wire: path.classList.contains('wire'),
    d: path.getAttribute('d'),
  };
}"""


def edge(page: Any, selector: str) -> dict[str, Any]:
    """Wait for the subscription drawn at ``selector``; what the page shows of it."""
    return wait(page, EDGE, [selector])


def test_subscriptions_are_drawn_beside_the_wires_and_follow_them_live(tmp_path: Path, browser):
    """The meter's '+/pin' (grid.yaml) is a dashed edge from the iopin, labelled with its pattern; its misspelt
    'senser/temp' dangles on its card; the dashboard's '#' comes from each node that published. A node that
    subscribes at run time gets its edge within seconds, and loses it when it stops; the wire stays the only wire."""
    write_sketches(tmp_path, meter=METER, watcher=WATCHER)
    clock, iopin, meter, watcher, dashboard = free_ports(5)
    grid = write_grid(
        tmp_path,
        "nodes:\n"
        f"  clock: {{sketch: clock, port: {clock}, params: {{tacks: 0, delay: {100 * MS}}}}}\n"
        f"  iopin: {{sketch: iopin, port: {iopin}, params: {{sequence: 1}}}}\n"
        f"  meter: {{sketch: meter, port: {meter}, subscribe: ['+/pin', 'senser/temp']}}\n"
        f"  watcher: {{sketch: watcher, port: {watcher}}}\n"
        f"  dashboard: {{sketch: dashboard, port: {dashboard}, subscribe: ['#']}}\n"
        "wires:\n  - clock -> iopin\n",
    )
    serving(grid, "clock", "iopin", "meter", "dashboard")
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    page.goto(f"http://127.0.0.1:{dashboard}/")
    pin = edge(page, 'g.sub[data-sub="iopin->meter"]')
    assert pin["patterns"] == pin["label"] == "+/pin" and pin["title"] == "meter subscribes to +/pin (grid.yaml)"
    assert pin["dashed"] not in ("", "none") and not pin["wire"]  # distinct from a wire
    lonely = edge(page, 'g.sub-dangling[data-subscriber="meter"][data-pattern="senser/temp"]')
    assert lonely["label"] == "senser/temp" and "no key heard matches it yet" in lonely["title"]
    for publisher in ("clock", "iopin"):
        assert edge(page, f'g.sub[data-sub="{publisher}->dashboard"]')["label"] == "#"
    # Nothing the meter or the dashboard publishes, no system pattern (+/$state...), one wire.
    shown = page.evaluate(
        "() => [...document.querySelectorAll('g.sub, g.sub-dangling')].map((g) => g.dataset.patterns)"
    )
    assert not [patterns for patterns in shown if "$" in patterns], shown
    assert page.locator("g.sub[data-publisher=meter], g.sub[data-publisher=dashboard]").count() == 0
    assert page.locator("svg#circuit .wire").count() == 1
    # Live: the watcher's run-time subscription comes, then goes with it.
    processes = serving(grid, "watcher")
    processes["watcher"].expect("watching clock/tick")
    watching = edge(page, 'g.sub[data-sub="clock->watcher"]')
    assert watching["label"] == "clock/tick" and watching["title"] == "watcher subscribes to clock/tick (at run time)"
    processes["watcher"].signal(signal.SIGTERM)
    assert processes["watcher"].wait() == 0
    page.wait_for_selector('g.sub[data-sub="clock->watcher"]', state="detached", timeout=DEADLINE * 1000)
    assert page.locator('g.sub[data-sub="iopin->meter"]').count() == 1  # the others stay


#: What a hostile sketch publishes: markup as a value and as a topic, numbers past a double's range, NaN.
MARKUP = '<img src=x onerror="window.pwned=1">'
MARKUP_TOPIC = '<img src=x onerror="window.pwned=2">'
MARKUP_PATTERN = f"evil/{MARKUP_TOPIC}"
NUMBERS = ["3", "-1e308", "1e308", "1e309", "-1e309", "7"]
EVIL = f"""from __future__ import annotations

from nodes import FactoryLoop, every, reactive


class Evil(FactoryLoop):
    def setup(self) -> None:
        self.n = 0

    @every({100 * MS})
    async def spam(self) -> None:
        numbers = {NUMBERS!r}
        await self.publish("num", numbers[self.n % len(numbers)])
        await self.publish("nan", "NaN" if self.n % 2 else "1")
        await self.publish("html", {MARKUP!r})
        await self.publish({MARKUP_TOPIC!r}, self.n)
        self.n += 1

    @reactive
    async def loop(self, channel: str, message: str) -> None:
        return None
"""


def test_hostile_values_render_as_text_and_numbers_past_range_stay_on_the_row(tmp_path: Path, browser):
    """Markup as a value, a topic and a pattern is text wherever it shows (marks' titles, a row's name, an edge's
    label); a key carrying 1e308, 1e309 and -1e309 is a trace whose every vertex is a finite point within its row,
    scaled to its finite values, the infinities at its edges; a key that once carried NaN is marks."""
    write_sketches(tmp_path, evil=EVIL)
    evil, peeker, dashboard = free_ports(3)
    grid = write_grid(
        tmp_path,
        "nodes:\n"
        f"  evil: {{sketch: evil, port: {evil}}}\n"
        f"  peeker: {{sketch: dashboard, port: {peeker}, subscribe: ['{MARKUP_PATTERN}']}}\n"
        f"  dashboard: {{sketch: dashboard, port: {dashboard}, subscribe: ['#']}}\n",
    )
    serving(grid, "evil", "peeker", "dashboard")
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    page.goto(f"http://127.0.0.1:{dashboard}/")
    number = wait(
        page,
        f"(key) => {{ const row = ({STRIP_ROW})(key); return row && row.drawn && row.held.length >= 12 && row; }}",
        "evil/num",
    )
    assert number["kind"] == "real" and number["marks"] == []
    assert (number["min"], number["max"]) == ("-1e+308", "1e+308")
    ys = {y for _, y in number["trace"]}
    assert all(isinstance(x, (int, float)) and math.isfinite(x) for point in number["trace"] for x in point)
    assert min(ys) == number["high"] and max(ys) == number["low"]  # the infinities (and 1e308, -1e308) at the edges
    assert number["value"] in NUMBERS and number["value"] == number["held"][-1][1]
    nan = wait(
        page,
        f"(key) => {{ const row = ({STRIP_ROW})(key); return row && row.drawn && row.marks.length >= 2 && row; }}",
        "evil/nan",
    )
    assert nan["kind"] == "string" and nan["trace"] is None and {title for title, _ in nan["marks"]} == {"1", "NaN"}
    html = wait(
        page,
        f"(key) => {{ const row = ({STRIP_ROW})(key); return row && row.drawn && row.marks.length >= 2 && row; }}",
        "evil/html",
    )
    assert {title for title, _ in html["marks"]} == {MARKUP[:31] + "…"}  # cut to 32 characters, as text
    counter = wait(
        page,
        f"(key) => {{ const row = ({STRIP_ROW})(key); return row && row.drawn && row.held.length >= 3 && row; }}",
        MARKUP_PATTERN,
    )
    assert counter["kind"] == "integer" and counter["title"].startswith(MARKUP_PATTERN + "\n")
    peeking = edge(page, 'g.sub[data-sub="evil->peeker"]')
    assert peeking["patterns"] == MARKUP_PATTERN and peeking["label"] == MARKUP_PATTERN[:21] + "…"
    assert peeking["title"] == f"peeker subscribes to {MARKUP_PATTERN} (grid.yaml)"
    assert page.evaluate("() => [window.pwned, document.querySelectorAll('img').length, document.scripts.length]") == [
        None,
        0,
        1,
    ]
