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


def _grid_rows(dash_duo: Any) -> list[dict[str, str]]:
    """The drill-down grid's displayed rows, in display order: {column id: text}."""
    rows = dash_duo.driver.execute_script("""
        return [...document.querySelectorAll('#mx-paths .ag-center-cols-container .ag-row')]
          .sort((a, b) => +a.getAttribute('row-index') - +b.getAttribute('row-index'))
          .map(r => Object.fromEntries([...r.querySelectorAll('.ag-cell')]
                .map(c => [c.getAttribute('col-id'), c.innerText])));""")
    return list(rows)


def _wait_rows(dash_duo: Any, check: Any) -> list[dict[str, str]]:
    deadline = time.monotonic() + WAIT
    rows = _grid_rows(dash_duo)
    while time.monotonic() < deadline and not (rows and check(rows)):
        time.sleep(0.3)
        rows = _grid_rows(dash_duo)
    assert rows
    assert check(rows), rows
    return rows


def test_matrix_cell_lists_its_paths_search_sort_and_open(dash_duo: Any, ctx: Context) -> None:
    _start(dash_duo, ctx, "/matrix?by=carrier")
    dash_duo.wait_for_element("#mx-change .heatmaplayer", timeout=WAIT)
    dash_duo.wait_for_contains_text("#mx-drill-head", "点击上方任一单元格", timeout=WAIT)
    drag = dash_duo.find_element("#mx-change .nsewdrag")
    ActionChains(dash_duo.driver).move_to_element(drag).click().perform()  # middle: CM -> CM
    dash_duo.wait_for_contains_text("#mx-drill-head", "中国移动 → 中国移动", timeout=WAIT)
    rows = _wait_rows(dash_duo, lambda rs: all(r.get("path_id") for r in rs))
    assert all(r["path_id"].split(">")[0].endswith("/CM") and r["path_id"].endswith("/CM")
               for r in rows)
    everything = len(rows)
    # sortable: a click on the "current" header sorts the rows by it
    dash_duo.find_element('#mx-paths .ag-header-cell[col-id="current"]').click()
    rows = _wait_rows(dash_duo, lambda rs: [float(r["current"]) for r in rs] ==
                      sorted(float(r["current"]) for r in rs))
    # search: every word must match an id or a name (site, carrier, city), either language
    site = rows[0]["path_id"].split("/")[0]
    search = dash_duo.find_element("#mx-search")
    search.send_keys(site + "\n")
    rows = _wait_rows(dash_duo, lambda rs: all(site in r["path_id"] for r in rs))
    assert len(rows) < everything
    dash_duo.wait_for_contains_text("#mx-drill-head", f"显示 {len(rows)} 条，共 {everything} 条",
                                    timeout=WAIT)
    # a row opens its path page
    chosen = rows[0]["path_id"]
    dash_duo.find_element('#mx-paths .ag-row[row-index="0"] .ag-cell[col-id="path_id"]').click()
    dash_duo.wait_for_element("#pa-header", timeout=WAIT)
    assert "/path?path=" in dash_duo.driver.current_url
    dash_duo.wait_for_element("#pa-rtt .main-svg", timeout=WAIT)
    assert chosen.split("/")[0] in dash_duo.driver.current_url


def test_matrix_city_level_and_language(dash_duo: Any, ctx: Context) -> None:
    _start(dash_duo, ctx, "/matrix?by=city&lang=en")
    dash_duo.wait_for_element("#mx-change .heatmaplayer", timeout=WAIT)
    dash_duo.wait_for_contains_text("#mx-change", "Changsha", timeout=WAIT)
    drag = dash_duo.find_element("#mx-change .nsewdrag")
    size = drag.size  # two cities: the top-left cell is a quarter of the plot from its centre
    ActionChains(dash_duo.driver).move_to_element(drag).move_by_offset(
        -size["width"] // 4, -size["height"] // 4).click().perform()
    dash_duo.wait_for_contains_text("#mx-drill-head", "Paths of the cell", timeout=WAIT)
    rows = _wait_rows(dash_duo, lambda rs: all(r.get("src_city") for r in rs))
    head = dash_duo.find_element("#mx-drill-head").text
    city = head.split(": ", 1)[1].split(" → ")[0]
    assert all(r["src_city"] == city for r in rows)
    dash_duo.find_element("#mx-search").send_keys("China Mobile\n")
    rows = _wait_rows(dash_duo, lambda rs: all("China Mobile" in (r["src_carrier"] +
                                                                  r["dst_carrier"])
                                               for r in rs))
    assert [e for e in dash_duo.get_logs() if e.get("level") == "SEVERE"] == []


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
