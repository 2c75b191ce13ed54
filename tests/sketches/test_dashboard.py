"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright.

The circuit runs as shipped: one tick a second (the grid's ``delay: 1``), as a
user first sees it, and the tests read what the page shows, not only its state.
Playwright's own browser download does not work here; the test launches the
system Chromium (.ci/run installs it when missing). Set DASHBOARD_SCREENSHOT
to a path to keep the screenshot (docs/dashboard.png is made that way).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from sketches.dashboard import RECENT
from sketches.dashboard.strip import cut
from tests.helpers import (
    DEADLINE,
    MS,
    arduino,
    free_ports,
    serving,
    shipped_grid_on_free_ports,
    write_grid,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip(
    "playwright.sync_api", reason="playwright is a test dependency: pip install -e '.[test]'"
)
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium (.ci/run does)"),
]
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


#: Every text the page shows on a card, every rate, and how often the buzzer lit up, as they
#: change: a MutationObserver records them from the page's first render, so a test can assert
#: what was ever shown, however briefly (a sound lights the buzzer for 0.3 s).
RECORDER = """
window.shown = { clock: [], iopin: [], buzzer: [], rate: [], sounded: 0 };
new MutationObserver((mutations) => {
  for (const m of mutations) {
    if (m.type === "attributes" && m.target.getAttribute("data-sounding") === "1") window.shown.sounded++;
  }
  for (const t of document.querySelectorAll("g.node text.last, g.node text.sound")) {
    const list = window.shown[t.dataset.node];
    if (list && t.textContent && list[list.length - 1] !== t.textContent) list.push(t.textContent);
  }
  const rate = document.getElementById("rate");
  const rates = window.shown.rate;
  if (rate && rates[rates.length - 1] !== rate.textContent) rates.push(rate.textContent);
}).observe(document, {
  subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ["data-sounding"],
});
"""


@pytest.fixture
def circuit(tmp_path: Path, request: pytest.FixtureRequest):
    """The shipped circuit on free ports, every node a real process, the clock at the shipped rate and forever
    (as the Procfile). Parametrized indirectly, the parameter is more options for the buzzer."""
    grid = shipped_grid_on_free_ports(tmp_path, quick=False)
    assert "delay: 1}" in grid.read_text()
    options = {"clock": ["--tacks", "0"], "buzzer": list(getattr(request, "param", []))}
    processes = serving(grid, "buzzer", "iopin", options=options)  # these two at once: neither needs the other
    for name in ("dashboard", "clock"):
        processes.update(serving(grid, name, options=options))
    yield grid, processes


@pytest.fixture
def browser():
    """Headless Chromium, closed after the test."""
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


def wait(page: Any, condition: str, arg: Any = None) -> Any:
    """Wait until the JavaScript ``condition`` (a function of ``arg``) holds in the page; its value."""
    return page.wait_for_function(
        condition, arg=arg, timeout=DEADLINE * 1000, polling=round(100 * MS * 1000)
    ).json_value()


def dashboard_url(grid: Path) -> str:
    port = next(line for line in grid.read_text().splitlines() if "dashboard:" in line).split("port: ")[1].split(",")[0]
    return f"http://127.0.0.1:{port}/"


def test_the_page_and_its_data_are_served_over_plain_http(circuit):
    """GET / is the page, /circuit.json the grid; no CDN, nothing else to install."""
    grid, _ = circuit
    url = dashboard_url(grid)
    with urllib.request.urlopen(url, timeout=DEADLINE) as response:
        page = response.read().decode()
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<svg" in page and "app.js" in page and "https://" not in page
    with urllib.request.urlopen(url + "circuit.json", timeout=DEADLINE) as response:
        circuit_json = json.load(response)
    assert [n["name"] for n in circuit_json["nodes"]] == ["clock", "iopin", "buzzer", "dashboard"]
    assert circuit_json["wires"] == [{"source": "clock", "target": "iopin"}, {"source": "iopin", "target": "buzzer"}]


def test_the_circuit_comes_alive_in_a_browser(circuit, browser, tmp_path: Path):
    """Three nodes and two wires drawn, each online from its $state; the buzzer sounds after ticks; a killed node
    turns offline (the dashboard's link lost it: its last will); a screenshot is saved."""
    grid, processes = circuit
    page = browser.new_page(viewport={"width": 1200, "height": 720})
    page.add_init_script(RECORDER)
    page.goto(dashboard_url(grid))
    for name in ("clock", "iopin", "buzzer"):
        page.wait_for_selector(f'g.node[data-node="{name}"][data-state="up"]', timeout=DEADLINE * 1000)
    for name in ("clock", "iopin", "buzzer", "dashboard"):
        page.wait_for_selector(f'g.node[data-node="{name}"][data-presence="online"]', timeout=DEADLINE * 1000)
        assert page.locator(f'g.node[data-node="{name}"] text.state-label').text_content() == "online"
    assert page.locator("svg#circuit .wire").count() == 2
    assert page.locator('svg#circuit .wire[data-wire="clock->iopin"]').count() == 1
    assert page.locator('svg#circuit .wire[data-wire="iopin->buzzer"]').count() == 1
    wait(page, "() => window.shown.sounded > 0")
    page.wait_for_function("document.querySelectorAll('#log li').length >= 10", timeout=DEADLINE * 1000)
    page.wait_for_selector("#feed-state:text('live')", timeout=DEADLINE * 1000)
    wait(page, "() => window.shown.clock.some((text) => /^tick \\d+$/.test(text))")
    shot = Path(os.environ.get("DASHBOARD_SCREENSHOT") or tmp_path / "dashboard.png")
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    print(f"\nscreenshot: {shot}")
    processes["buzzer"].signal(signal.SIGKILL)
    page.wait_for_selector('g.node[data-node="buzzer"][data-presence="offline"]', timeout=DEADLINE * 1000)
    assert page.locator('g.node[data-node="buzzer"][data-state="down"] text.state-label').text_content() == "offline"
    assert page.locator('g.node[data-node="iopin"][data-presence="online"]').count() == 1
    stats = page.evaluate("window.dashboardStats")
    assert stats["snapshots"] > 0 and stats["frames"] > 0


def test_the_cards_show_each_nodes_latest_value_at_the_shipped_rate(circuit, browser):
    """Over four ticks at one a second: the clock's card only ever reads 'tick N', the iopin's 'pin 0/1', the
    buzzer's a sound; no card ever shows a '$' topic; the rate, once above 0, never reads 0.0 again."""
    grid, _ = circuit
    page = browser.new_page(viewport={"width": 1200, "height": 720})
    page.add_init_script(RECORDER)
    page.goto(dashboard_url(grid))
    first = int(
        wait(page, "() => { const t = window.shown.clock.find((s) => /^tick \\d+$/.test(s)); return t && t.slice(5); }")
    )
    wait(page, "(n) => window.shown.clock.some((s) => s === `tick ${n}`)", first + 4)
    wait(page, "() => window.shown.iopin.length > 0 && window.shown.buzzer.some((s) => s !== '—')")
    shown = page.evaluate("window.shown")
    assert all(re.fullmatch(r"tick \d+", text) for text in shown["clock"]), shown["clock"]
    ticks = [int(text[5:]) for text in shown["clock"]]
    assert ticks == sorted(set(ticks)) and ticks[-1] >= first + 4, ticks  # in order, each once
    assert all(re.fullmatch(r"pin [01]", text) for text in shown["iopin"]), shown["iopin"]
    assert set(shown["buzzer"]) <= {"—", "buzz buzz buzz", "..."}, shown["buzzer"]
    rates = shown["rate"]
    moving = rates[next(i for i, rate in enumerate(rates) if float(rate) > 0) :]
    assert "0.0" not in moving, rates
    # The value lines end before the LED and the speaker: nothing covers a card's text.
    for name, icon in (("iopin", "circle.led-ring"), ("buzzer", ".speaker")):
        text, other = (
            page.locator(f'g.node[data-node="{name}"] {selector}').bounding_box()
            for selector in (":is(text.last, text.sound)", icon)
        )
        assert text["x"] + text["width"] < other["x"], (name, text, other)


LONG = "bzz " * 12 + "end"


@pytest.mark.parametrize("circuit", [["--sound", LONG]], indirect=True)
def test_a_value_too_long_for_its_card_is_cut_before_the_icon(circuit, browser):
    """A buzzer whose sound is longer than its card shows its start, cut with '…' before the speaker."""
    grid, _ = circuit
    page = browser.new_page(viewport={"width": 1200, "height": 720})
    page.goto(dashboard_url(grid))
    # Read in one go: the next sound may be a quiet '...' at any moment.
    shown = wait(
        page,
        """() => {
            const card = document.querySelector('g.node[data-node=buzzer]'), text = card && card.querySelector('text.sound');
            if (!text || !text.textContent.endsWith('…')) return null;
            const box = text.getBoundingClientRect(), speaker = card.querySelector('.speaker').getBoundingClientRect();
            return { text: text.textContent, right: box.right, speaker: speaker.left };
        }""",
    )
    assert LONG.startswith(shown["text"][:-1]) and len(shown["text"]) < len(LONG), shown
    assert shown["right"] < shown["speaker"], shown


def test_a_page_opens_with_the_recent_history(circuit, browser):
    """A page opened after some ticks lists them in its log at once: the dashboard keeps the last 50 messages."""
    grid, _ = circuit
    early = browser.new_page()
    early.add_init_script(RECORDER)
    early.goto(dashboard_url(grid))
    first = int(
        wait(
            early, "() => { const t = window.shown.clock.find((s) => /^tick \\d+$/.test(s)); return t && t.slice(5); }"
        )
    )
    wait(early, "(n) => window.shown.clock.some((s) => s === `tick ${n}`)", first + 2)
    late = browser.new_page()
    sent: list[dict[str, Any]] = []  # what the feed carried to the late page, in order
    late.on("websocket", lambda ws: ws.on("framereceived", lambda payload: sent.append(json.loads(payload))))
    late.goto(dashboard_url(grid))
    wait(late, "() => window.dashboardStats.frames > 0")  # the first snapshot drawn
    log = late.evaluate(
        "() => [...document.querySelectorAll('#log li')].map((li) => li.dataset.key + ' ' + li.querySelector('.data').textContent)"
    )
    assert f"clock/tick {first}" in log and f"clock/tick {first + 1}" in log, log
    assert any(line.startswith("iopin/pin ") for line in log) and any(line.startswith("buzzer/sound ") for line in log)
    assert not [line for line in log if "$" in line], log
    # The log starts with the full snapshot's history (at most RECENT), then what came after (a busy browser may
    # draw its first frame after the next snapshot too): each message once, in order.
    numbers = late.evaluate("() => [...document.querySelectorAll('#log li')].map((li) => Number(li.dataset.n))")
    numbers.reverse()
    history = [m["n"] for m in next(m for m in sent if m["type"] == "snapshot" and m["full"])["recent"]]
    assert 0 < len(history) <= RECENT and numbers[: len(history)] == history, (numbers, history)
    assert numbers == sorted(set(numbers)), numbers


def test_the_page_reconnects_when_the_dashboard_restarts(circuit, browser):
    """The page shows 'reconnecting…' while the dashboard is away and goes live again by itself."""
    grid, processes = circuit
    page = browser.new_page()
    page.goto(dashboard_url(grid))
    page.wait_for_selector("#feed-state:text('live')", timeout=DEADLINE * 1000)
    processes["dashboard"].signal(signal.SIGTERM)
    assert processes["dashboard"].wait() == 0
    page.wait_for_selector("#feed-state:text('reconnecting')", timeout=DEADLINE * 1000)
    processes["dashboard"] = arduino("--grid", grid, "dashboard")
    processes["dashboard"].expect("serving on")
    page.wait_for_selector("#feed-state:text('live')", timeout=DEADLINE * 1000)
    page.wait_for_selector('g.node[data-node="clock"][data-state="up"]', timeout=DEADLINE * 1000)


def test_with_a_token_the_page_loads_but_its_data_needs_the_token(tmp_path: Path):
    """auth: the page and its assets load without the token (a browser cannot add it to them); the data does not."""
    import urllib.error

    from tests.helpers import environment, free_ports, write_grid

    (port,) = free_ports(1)
    grid = write_grid(
        tmp_path,
        f"auth: {{token_env: MESH_TOKEN}}\nnodes:\n  dashboard: {{sketch: dashboard, port: {port}, subscribe: ['#']}}\n",
    )
    dashboard = arduino("--grid", grid, "dashboard", env=environment(MESH_TOKEN="s3cret"))
    try:
        dashboard.expect("serving on")
        base = f"http://127.0.0.1:{port}"
        for path in ("/", "/app.js", "/style.css"):
            with urllib.request.urlopen(base + path, timeout=DEADLINE) as response:
                assert response.status == 200
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/circuit.json", timeout=DEADLINE)
        assert refused.value.code == 401
        with urllib.request.urlopen(base + "/circuit.json?token=s3cret", timeout=DEADLINE) as response:
            assert json.load(response)["nodes"][0]["name"] == "dashboard"
    finally:
        dashboard.kill()


#: The strip's row of a key as the page draws it, with what the page holds for it (window.dashboardStrip()): a
#: bit's waveform, a number's trace (its vertices, and where they are on screen), marks (title, x on screen).
STRIP_ROW = """(key) => {
  const row = [...document.querySelectorAll('#strip g.strip-row')].find((g) => g.dataset.key === key);
  const label = [...document.querySelectorAll('#strip g.strip-label')].find((g) => g.dataset.key === key);
  const held = window.dashboardStrip()[key];
  if (!row || !label || !held) return null;
  const wave = row.querySelector('polyline.wave'), trace = row.querySelector('polyline.trace');
  const points = (line) => line && line.getAttribute('points').trim().split(/\\s+/).filter(Boolean).map((p) => p.split(',').map(Number));
  const onScreen = (line) => line && points(line).map(([x, y]) => {
    const p = new DOMPoint(x, y).matrixTransform(line.getScreenCTM());
    return [p.x, p.y];
  });
  const clip = document.getElementById('strip-clip-rect'), left = document.getElementById('strip').getBoundingClientRect().left;
  const from = left + Number(clip.getAttribute('x')), to = from + Number(clip.getAttribute('width'));
  const value = label.querySelector('text.value');
  return {
    kind: row.dataset.kind,
    held: held.points,
    drawn: held.drawn,
    wave: points(wave),
    trace: points(trace),
    screen: onScreen(trace),
    high: (wave || trace) && Number((wave || trace).dataset.high),
    low: (wave || trace) && Number((wave || trace).dataset.low),
    min: trace && trace.dataset.min,
    max: trace && trace.dataset.max,
    value: value && value.textContent,
    title: label.querySelector('title').textContent,
    marks: [...row.querySelectorAll('line.mark')].map((m) => [m.textContent, m.getBoundingClientRect().x]),
    plot: [from, to],
  };
}"""


def steps(values: list[str]) -> list[str]:
    """The levels a waveform goes through: ``values`` without repeats in a row."""
    return [value for i, value in enumerate(values) if i == 0 or values[i - 1] != value]


def test_the_strip_draws_the_pins_waveform_the_ticks_trace_and_the_sounds_marks(circuit, browser):
    """Under the circuit: iopin/pin a square waveform stepping through exactly the values the page was sent (the
    bits the iopin drew, in its own log); clock/tick, a number, a trace that steps up with each tick, grows and
    scrolls to the left, the newest tick beside its name; buzzer/sound, text, a row of marks titled with the sounds."""
    grid, processes = circuit
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    sent: dict[int, str] = {}  # iopin/pin, as the feed carried it to the page: message number -> value

    def received(payload: str | bytes) -> None:
        rows = json.loads(payload).get("strip", {}).get("rows", {})
        sent.update({n: value for n, _, value in rows.get("iopin/pin", {}).get("points", [])})

    page.on("websocket", lambda ws: ws.on("framereceived", received))
    page.goto(dashboard_url(grid))
    pin = wait(
        page,
        f"(key) => {{ const row = ({STRIP_ROW})(key); return row && row.drawn && row.held.length >= 6 && row; }}",
        "iopin/pin",
    )
    assert pin["kind"] == "bit" and pin["marks"] == []
    numbers, values = [n for n, _ in pin["held"]], [value for _, value in pin["held"]]
    assert numbers == sorted(set(numbers)) and set(values) <= {"0", "1"}
    assert {n: sent[n] for n in numbers} == dict(pin["held"])  # what was drawn is what was sent...
    assert [n for n in sorted(sent) if n <= numbers[-1]] == numbers  # ...all of it, none twice
    # The polyline: one point at the first value, two at each change (the step), one at its end.
    levels = {pin["high"]: "1", pin["low"]: "0"}
    xs = [x for x, _ in pin["wave"]]
    assert xs == sorted(xs) and steps([levels[y] for _, y in pin["wave"]]) == steps(values), (pin["wave"], values)
    assert len(pin["wave"]) == 2 * len(steps(values)), (pin["wave"], values)
    # The bits are the iopin's own, in order: a run of those it logged ("toggling pin state: [1, 0, 1]").
    drawn = "".join(values)
    while True:
        logged = "".join(
            "".join(re.findall(r"[01]", line.split("toggling pin state:")[1]))
            for line in processes["iopin"].lines
            if "toggling pin state:" in line
        )
        if drawn in logged:
            break
        processes["iopin"].expect("toggling pin state")  # not read yet: the next tick's line (or fail at DEADLINE)
    # clock/tick, a number: a trace, a step line scaled to its least and greatest tick, its value beside its name.
    tick = wait(
        page,
        f"(key) => {{ const row = ({STRIP_ROW})(key); return row && row.drawn && row.held.length >= 3 && row; }}",
        "clock/tick",
    )
    assert tick["kind"] == "integer" and tick["wave"] is None and tick["marks"] == []
    ticks = [int(value) for _, value in tick["held"]]
    assert ticks == sorted(set(ticks)), ticks
    # Each tick a step: one vertex at the first, two at each later one (the old level, the new), one at the end.
    assert len(tick["trace"]) == 2 * len(ticks), (tick["trace"], ticks)
    xs, ys = [x for x, _ in tick["trace"]], [y for _, y in tick["trace"]]
    assert xs == sorted(xs) and ys == sorted(ys, reverse=True), tick["trace"]  # later ticks higher up
    assert ys[0] == tick["low"] and ys[-1] == tick["high"]  # scaled to the least and the greatest
    assert (tick["min"], tick["max"]) == (str(ticks[0]), str(ticks[-1]))
    assert tick["value"] == str(ticks[-1]) and f"now {ticks[-1]}" in tick["title"]
    left, right = tick["plot"]
    x = tick["screen"][-2][0]  # the newest tick's own vertex (the last one is its level running on)
    assert left < x < right, (tick["screen"], tick["plot"])  # the newest tick is on the strip, near now
    assert right - x < (right - left) / 4, (tick["screen"], tick["plot"])
    # The trace grows with each tick, and scrolls with time: the newest tick's vertex moves left (point j's own
    # vertex is the trace's 2j-th).
    grown = wait(
        page,
        f"""([key, n, tick, x]) => {{
            const row = ({STRIP_ROW})(key);
            if (!row || !row.drawn || row.trace.length <= n) return null;
            const j = row.held.findIndex(([, value]) => value === tick);
            return j >= 0 && row.screen[2 * j][0] < x - 10 && row;
        }}""",
        ["clock/tick", len(tick["trace"]), str(ticks[-1]), x],
    )
    assert grown["value"] == grown["held"][-1][1] != tick["value"]
    # buzzer/sound, text: marks, each titled with its value.
    sound = wait(
        page,
        f"(key) => {{ const row = ({STRIP_ROW})(key); return row && row.drawn && row.marks.length >= 2 && row; }}",
        "buzzer/sound",
    )
    assert sound["kind"] == "string" and sound["trace"] is None and sound["wave"] is None and sound["value"] is None
    assert {title for title, _ in sound["marks"]} <= {"buzz buzz buzz", "..."}, sound["marks"]


HOSTILE_KEY = '<img src=x onerror="window.pwned=1">'
HOSTILE_VALUE = '</title><script>window.pwned=2</script>"'


def test_the_strip_shows_hostile_keys_and_values_as_text(tmp_path: Path, browser):
    """A sketch publishing markup as a key and a value: the strip's label and the marks' titles hold it as text;
    nothing in it runs, no element is made of it; its 0/1 key beside it is a waveform."""
    (tmp_path / "sketches").mkdir()
    (tmp_path / "sketches" / "evil.py").write_text(
        "from nodes import FactoryLoop, every, reactive\n\n\n"
        "class Evil(FactoryLoop):\n"
        "    def setup(self) -> None:\n"
        "        self.n = 0\n\n"
        f"    @every({100 * MS})\n"
        "    async def spam(self) -> None:\n"
        "        self.n += 1\n"
        f"        await self.publish({HOSTILE_KEY!r}, {HOSTILE_VALUE!r})\n"
        "        await self.publish('bit', self.n % 2)\n\n"
        "    @reactive\n"
        "    async def loop(self, channel: str, message: str) -> None:\n"
        "        return None\n"
    )
    evil_port, port = free_ports(2)
    grid = write_grid(
        tmp_path,
        f"nodes:\n  evil: {{sketch: evil, port: {evil_port}}}\n"
        f"  dashboard: {{sketch: dashboard, port: {port}, subscribe: ['#']}}\n",
    )
    for name in ("evil", "dashboard"):
        arduino("--grid", grid, name).expect("serving on")
    page = browser.new_page(viewport={"width": 1200, "height": 720})
    page.goto(f"http://127.0.0.1:{port}/")
    key = f"evil/{HOSTILE_KEY}"
    row = wait(page, f"(key) => {{ const row = ({STRIP_ROW})(key); return row && row.marks.length >= 3 && row; }}", key)
    assert row["kind"] == "string" and {title for title, _ in row["marks"]} == {cut(HOSTILE_VALUE)}  # 32 characters
    label = page.evaluate(
        "(key) => [...document.querySelectorAll('#strip g.strip-label')].find((g) => g.dataset.key === key)"
        ".querySelector('title').textContent",
        key,
    )
    assert label == key
    bit = wait(
        page,
        f"(key) => {{ const row = ({STRIP_ROW})(key); return row && row.drawn && row.held.length >= 3 && row; }}",
        "evil/bit",
    )
    assert bit["kind"] == "bit" and len(bit["wave"]) >= 4
    assert page.evaluate("() => [window.pwned, document.querySelectorAll('img').length, document.scripts.length]") == [
        None,
        0,
        1,
    ]
