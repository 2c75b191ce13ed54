"""The dashboard over TLS in a real browser: the page from https://, its live feed over wss://."""

from __future__ import annotations

import signal
import ssl
import urllib.request
from pathlib import Path

import pytest

from tests.certs import TLS_YAML, write_certs
from tests.helpers import DEADLINE, MS, arduino, free_ports, write_grid
from tests.sketches.test_dashboard import CHROMIUM, FLAGS, wait

playwright = pytest.importorskip(
    "playwright.sync_api", reason="playwright is a test dependency: pip install -e '.[test]'"
)
pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install chromium (.ci/run does)"),
]


def test_the_page_over_https_connects_its_wss_feed(tmp_path: Path):
    """A grid with tls: the page loads from https:// (the CA trusted by Python; the browser told to accept it)
    and its feed over wss:// shows the circuit alive."""
    clock, iopin, buzzer, dashboard = free_ports(4)
    write_certs(tmp_path)
    grid = write_grid(
        tmp_path,
        TLS_YAML
        + "nodes:\n"
        + f"  clock: {{sketch: clock, port: {clock}, params: {{tacks: 0, delay: {100 * MS}}}}}\n"
        + f"  iopin: {{sketch: iopin, port: {iopin}, params: {{chance: 1.0, sequence: 1}}}}\n"
        + f"  buzzer: {{sketch: buzzer, port: {buzzer}}}\n"
        + f"  dashboard: {{sketch: dashboard, port: {dashboard}, subscribe: ['#']}}\n"
        + "wires:\n  - clock -> iopin\n  - iopin -> buzzer\n",
    )
    up = arduino("--grid", grid, "up")
    up.expect(r"dashboard\s+\| serving on")
    url = f"https://127.0.0.1:{dashboard}/"
    trusted = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    with urllib.request.urlopen(url, timeout=DEADLINE, context=trusted) as response:
        assert response.status == 200 and "<svg" in response.read().decode()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_context(ignore_https_errors=True).new_page()
            page.goto(url)
            page.wait_for_selector("#feed-state:text('live')", timeout=DEADLINE * 1000)
            for name in ("clock", "iopin", "buzzer"):
                page.wait_for_selector(f'g.node[data-node="{name}"][data-state="up"]', timeout=DEADLINE * 1000)
            wait(page, "() => document.querySelectorAll('#log li').length >= 3")
            assert page.evaluate("location.protocol") == "https:"
        finally:
            browser.close()
    up.signal(signal.SIGINT)
    assert up.wait() == 0
