"""Fixtures: a real SQLite store filled with synthetic results (analyzer.synthetic.exchange,
written through ``Store.write_batch``), a data context over it, and a headless-Chromium
``dash_duo``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from analyzer.store import open_store
from analyzer.store.base import Store
from analyzer.synthetic import exchange
from dashboard.context import Context
from inventory.loader import default_inventory, load
from inventory.topology import Topology

# 2026-11-26 12:00 +08:00: a fixed "now" so every figure is reproducible.
NOW_NS = 1_795_665_600 * 1_000_000_000
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1600,1200")


@pytest.fixture(scope="session")
def topo() -> Topology:
    return Topology(load(default_inventory()))


@pytest.fixture(scope="session")
def plan(topo: Topology) -> exchange.DemoPlan:
    return exchange.default_plan(topo, NOW_NS)


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory, topo: Topology,
          plan: exchange.DemoPlan) -> Iterator[Store]:
    s = open_store(tmp_path_factory.mktemp("dash") / "results.db")
    exchange.fill(s, topo, plan, NOW_NS)
    yield s
    s.close()


@pytest.fixture(scope="session")
def ctx(store: Store, topo: Topology, plan: exchange.DemoPlan) -> Context:
    return Context(store, topo, plan.baseline, plan.current, now_ns=lambda: NOW_NS)


def pytest_setup_options() -> list[Any]:
    """dash[testing] hook: Chrome options for Debian's chromium in headless mode."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    if Path("/usr/bin/chromium").exists():
        options.binary_location = "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    return [options]


@pytest.fixture
def dash_duo(tmp_path: Path) -> Iterator[Any]:
    """dash[testing]'s composite (threaded server + selenium) on headless Chromium; skipped
    with a reason when chromedriver is missing."""
    if shutil.which("chromedriver") is None:
        pytest.skip("chromedriver not installed (Debian: chromium-driver; make test installs it)")
    from dash.testing.application_runners import ThreadedRunner
    from dash.testing.composite import DashComposite

    download = tmp_path / "download"
    download.mkdir()
    os.environ.setdefault("DASH_TEST_CHROMEPATH", "/usr/bin/chromium")
    with ThreadedRunner() as server, DashComposite(
            server=server, browser="Chrome", headless=False, options=pytest_setup_options(),
            download_path=str(download), percy_run=False, wait_timeout=20) as duo:
        yield duo
