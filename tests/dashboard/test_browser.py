"""The real dashboard in headless Chromium (dash[testing]): every page loads, the language
switches, a matrix click lands on the path page, a report downloads, nothing is fetched from
outside the app."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.action_chains import ActionChains

from dashboard.app import create_app
from dashboard.context import Context

pytestmark = pytest.mark.browser
WAIT = 45  # seconds; a page normally appears within one or two


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(dash_duo: Any, ctx: Context, path: str = "/") -> None:
    """Serve a fresh app on a free loopback port and open ``path`` (generous timeouts: the
    machine running CI may be busy)."""
    ctx.warm()
    dash_duo.start_server(create_app(ctx), navigate=False, port=_free_port())
    dash_duo.wait_for_page(dash_duo.server.url.rstrip("/") + path, timeout=60)


def _no_outside_requests(dash_duo: Any) -> None:
    entries = dash_duo.driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [u for u in entries if not u.startswith(dash_duo.server.url.rstrip("/"))]
    assert outside == []


def test_pages_load_and_language_switches(dash_duo: Any, ctx: Context) -> None:
    _start(dash_duo, ctx)
    dash_duo.wait_for_text_to_equal("#app-title", "网间通信质量监测", timeout=WAIT)
    dash_duo.wait_for_element("#ov-map .main-svg", timeout=WAIT)
    dash_duo.wait_for_contains_text("#ov-body", "政策目标", timeout=WAIT)
    dash_duo.find_elements("#lang-switch input")[1].click()
    dash_duo.wait_for_text_to_equal("#app-title", "Inter-carrier quality monitor",
                                    timeout=WAIT)
    dash_duo.wait_for_contains_text("#ov-body", "Policy targets", timeout=WAIT)
    for nav, selector, text in (("#nav-matrix", "#mx-change .main-svg", None),
                                ("#nav-path", "#pa-header", "→"),
                                ("#nav-probes", "#pr-table .set-aside", "1 (40)"),
                                ("#nav-reports", "#rp-generate", "Generate")):
        dash_duo.find_element(nav).click()
        dash_duo.wait_for_element(selector, timeout=WAIT)
        if text:
            dash_duo.wait_for_contains_text(selector, text, timeout=WAIT)
    _no_outside_requests(dash_duo)
    assert [e for e in dash_duo.get_logs() if e.get("level") == "SEVERE"] == []


def test_matrix_click_opens_the_path_page(dash_duo: Any, ctx: Context) -> None:
    _start(dash_duo, ctx, "/matrix?by=carrier")
    dash_duo.wait_for_element("#mx-change .heatmaplayer", timeout=WAIT)
    drag = dash_duo.find_element("#mx-change .nsewdrag")
    ActionChains(dash_duo.driver).move_to_element(drag).click().perform()  # middle cell
    dash_duo.wait_for_element("#pa-header", timeout=WAIT)
    url = dash_duo.driver.current_url
    assert "/path?" in url
    assert "by=carrier" in url
    assert "src=CM" in url
    assert "dst=CM" in url
    dash_duo.wait_for_contains_text("#pa-header", "中国移动", timeout=WAIT)
    dash_duo.wait_for_element("#pa-rtt .main-svg", timeout=WAIT)


def test_report_downloads(dash_duo: Any, ctx: Context) -> None:
    _start(dash_duo, ctx, "/reports")
    dash_duo.wait_for_element("#rp-generate", timeout=WAIT).click()
    dash_duo.wait_for_element("#rp-result", timeout=WAIT)
    folder = Path(dash_duo.download_path)
    deadline = time.monotonic() + WAIT
    files: list[Path] = []
    while time.monotonic() < deadline and not files:
        files = list(folder.glob("ixmeter-report-*.html"))
        time.sleep(0.2)
    assert files, f"no report in {folder}: {list(folder.iterdir())}"
    assert "hn-inter-carrier-latency" in files[0].read_text(encoding="utf-8")
