"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright.

Playwright's own browser download does not work here; the test launches the
system Chromium (.ci/run installs it when missing). Set DASHBOARD_SCREENSHOT
to a path to keep the screenshot (docs/dashboard.png is made that way).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import DEADLINE, Process, arduino, shipped_grid_on_free_ports

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


@pytest.fixture
def circuit(tmp_path: Path):
    """The shipped circuit on free ports, every node a real process, the clock ticking fast and forever."""
    grid = shipped_grid_on_free_ports(tmp_path)
    processes: dict[str, Process] = {}
    for name in ("buzzer", "iopin", "dashboard", "clock"):
        extra = ["--tacks", "0"] if name == "clock" else []
        processes[name] = arduino("--grid", grid, name, *extra)
        processes[name].expect("serving on")
    yield grid, processes


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


def test_the_circuit_comes_alive_in_a_browser(circuit, tmp_path: Path):
    """Three nodes and two wires drawn; the buzzer sounds after ticks; a killed node turns down; a screenshot is saved."""
    grid, processes = circuit
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 720})
            page.goto(dashboard_url(grid))
            for name in ("clock", "iopin", "buzzer"):
                page.wait_for_selector(f'g.node[data-node="{name}"][data-state="up"]', timeout=DEADLINE * 1000)
            assert page.locator("svg#circuit .wire").count() == 2
            assert page.locator('svg#circuit .wire[data-wire="clock->iopin"]').count() == 1
            assert page.locator('svg#circuit .wire[data-wire="iopin->buzzer"]').count() == 1
            page.wait_for_selector('g.node[data-node="buzzer"][data-sounding="1"]', timeout=DEADLINE * 1000)
            page.wait_for_function("document.querySelectorAll('#log li').length >= 10", timeout=DEADLINE * 1000)
            page.wait_for_selector("#feed-state:text('live')", timeout=DEADLINE * 1000)
            shot = Path(os.environ.get("DASHBOARD_SCREENSHOT") or tmp_path / "dashboard.png")
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            print(f"\nscreenshot: {shot}")
            processes["buzzer"].signal(signal.SIGKILL)
            page.wait_for_selector('g.node[data-node="buzzer"][data-state="down"]', timeout=DEADLINE * 1000)
            assert page.locator('g.node[data-node="iopin"][data-state="up"]').count() == 1
            stats = page.evaluate("window.dashboardStats")
            assert stats["snapshots"] > 0 and stats["frames"] > 0
        finally:
            browser.close()


def test_the_page_reconnects_when_the_dashboard_restarts(circuit):
    """The page shows 'reconnecting…' while the dashboard is away and goes live again by itself."""
    grid, processes = circuit
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
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
        finally:
            browser.close()


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
