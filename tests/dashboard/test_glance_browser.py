"""Issue 20's "right at a glance" points in headless Chromium: the synthetic banner, verdict
reasons in Chinese, city labels that do not overlap as drawn, the change matrix's scale at the
target, a PDF from the reports page; and on a short window (the demo's shape, two stores): the
live minute chart, minute time ticks that never repeat, the one-way band of the clock bound."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analyzer.store import open_store
from analyzer.synthetic import exchange
from analyzer.views import NS, Window
from dashboard.context import Context
from inventory.topology import Topology
from tests.dashboard.conftest import NOW_NS
from tests.dashboard.test_browser import WAIT, _start

pytestmark = pytest.mark.browser
MIN = 60 * NS

_OVERLAPS = """
const boxes = Array.from(document.querySelectorAll('#ov-map .textpoint text'))
  .map(t => t.getBoundingClientRect()).filter(r => r.width > 0);
let hits = 0;
for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
  const a = boxes[i], b = boxes[j];
  if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) hits++;
}
return [boxes.length, hits];
"""


def test_glance_on_a_long_window(dash_duo: Any, ctx: Context) -> None:
    _start(dash_duo, ctx, "/?lang=zh")
    dash_duo.wait_for_contains_text("#synthetic-banner", "合成数据", timeout=WAIT)
    dash_duo.wait_for_contains_text("#card-hn-inter-carrier-latency", "95%置信区间",
                                    timeout=WAIT)
    dash_duo.wait_for_element("#ov-map .textpoint text", timeout=WAIT)
    time.sleep(1.0)
    labels, overlaps = dash_duo.driver.execute_script(_OVERLAPS)
    assert labels >= 9
    assert overlaps == 0
    dash_duo.find_element("#nav-matrix").click()
    dash_duo.wait_for_contains_text("#mx-change .colorbar", "0.2x", timeout=WAIT)
    dash_duo.find_element("#nav-reports").click()
    dash_duo.wait_for_element("#rp-format input[value='pdf']", timeout=WAIT).click()
    dash_duo.find_element("#rp-generate").click()
    folder = Path(dash_duo.download_path)
    deadline = time.monotonic() + WAIT
    files: list[Path] = []
    while time.monotonic() < deadline and not files:
        files = [f for f in folder.glob("ixmeter-report-*.pdf") if f.stat().st_size]
        time.sleep(0.2)
    assert files, f"no PDF in {folder}: {list(folder.iterdir())}"
    assert files[0].read_bytes().startswith(b"%PDF")


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory, topo: Topology) -> Iterator[Context]:
    """Twelve minutes in two stores, as the demo writes them: the baseline copy's (detour)
    and the current copy's (direct), over the same window."""
    end = NOW_NS // MIN * MIN
    window = Window(end - 12 * MIN, end)
    empty = Window(0, 0)
    folder = tmp_path_factory.mktemp("short")
    stores = []
    for name, plan in (("baseline", exchange.DemoPlan(exchange.DEFAULT_SITES, window, empty, 20)),
                       ("current", exchange.DemoPlan(exchange.DEFAULT_SITES, empty, window, 20))):
        s = open_store(folder / f"{name}.db")
        exchange.fill(s, topo, plan, NOW_NS)
        stores.append(s)
    yield Context(stores[1], topo, window, window, now_ns=lambda: NOW_NS,
                  baseline_store=stores[0])
    for s in stores:
        s.close()


def test_glance_on_a_short_window(dash_duo: Any, short: Context) -> None:
    _start(dash_duo, short, "/?lang=en")
    dash_duo.wait_for_element("#ov-live .main-svg", timeout=WAIT)
    dash_duo.wait_for_contains_text("#ov-live", "Baseline network", timeout=WAIT)
    dash_duo.wait_for_element("#card-hn-inter-carrier-latency .xtick text", timeout=WAIT)
    ticks = [e.text for e in dash_duo.find_elements(
        "#card-hn-inter-carrier-latency .xtick text")]
    assert ticks
    assert all(len(x) == 5 and x[2] == ":" for x in ticks)  # HH:MM
    assert len(set(ticks)) == len(ticks)  # never the same minute twice
    dash_duo.driver.get(dash_duo.server.url.rstrip("/") +
                        "/path?path=cs-yungu/CT>cz-ezone/CM&lang=en")
    dash_duo.wait_for_contains_text("#pa-owd", "Clock error bound ±0.05 ms", timeout=WAIT)


def test_live_overview_draws_each_new_minute(dash_duo: Any, topo: Topology,
                                             tmp_path: Path) -> None:
    """``--live``: a minute stored while the page is open appears on the live chart without
    a reload (the timer asks every 15 s; the caches turn over when the clock's minute does)."""
    end = NOW_NS // MIN * MIN
    window = Window(end - 10 * MIN, end)
    store = open_store(tmp_path / "current.db")
    first = Window(window.start_ns, window.start_ns + 4 * MIN)
    exchange.fill(store, topo, exchange.DemoPlan(exchange.DEFAULT_SITES, Window(0, 0), first, 20),
                  NOW_NS)
    clock = [first.end_ns + 30 * NS]
    ctx = Context(store, topo, window, window, now_ns=lambda: clock[0], live=True)
    try:
        _start(dash_duo, ctx, "/?lang=en")
        points = "return document.querySelectorAll('#ov-live .scatterlayer .point').length"
        dash_duo.wait_for_element("#ov-live .scatterlayer .point", timeout=WAIT)
        before = dash_duo.driver.execute_script(points)
        more = Window(first.end_ns, first.end_ns + MIN)
        exchange.fill(store, topo,
                      exchange.DemoPlan(exchange.DEFAULT_SITES, Window(0, 0), more, 20), NOW_NS)
        clock[0] += MIN
        deadline = time.monotonic() + 60
        after = before
        while time.monotonic() < deadline and after <= before:
            time.sleep(1.0)
            after = dash_duo.driver.execute_script(points)
        assert after > before
    finally:
        store.close()
