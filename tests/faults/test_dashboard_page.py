"""The dashboard's Faults page over the known-truth store: the register, a fault's evidence and
the report form's fields, in Chinese and English (callbacks called directly, no browser)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import ModuleType

import dash
import pytest

from analyzer.store import open_store
from analyzer.views import Window
from dashboard import context
from dashboard.app import create_app
from dashboard.context import Context
from inventory.loader import load
from inventory.topology import Topology
from tests.faults.history import INVENTORY, write_plan
from tests.faults.test_known_truth import _plan


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    db = tmp_path_factory.mktemp("faults-page") / "store.db"
    write_plan(db, _plan())
    store = open_store(db)
    saved = context._current
    cur = Window.from_local_dates("2026-04-01", "2026-04-06", "Asia/Shanghai")
    ctx = Context(store, Topology(load(INVENTORY)), cur, cur, inventory_path=INVENTORY)
    create_app(ctx)
    module = next(sys.modules[p["module"]] for p in dash.page_registry.values()
                  if p["module"].endswith(".faults"))
    try:
        yield module
    finally:
        context._current = saved
        store.close()


def test_layout_and_labels(page: ModuleType) -> None:
    picker = page.layout().children[1].children[1]
    assert (picker.start_date, picker.end_date) == ("2026-04-01", "2026-04-06")
    assert page._labels("zh")[0] == "网间通信障碍登记（按日判定）"


def test_register_and_evidence_in_both_languages(page: ModuleType) -> None:
    body, options, value = page.render("2026-04-01", "2026-04-06", "en")
    text = str(body)
    assert "Fault rules" in text
    assert "Carrier B → Carrier A" in text
    assert len(options) == 5
    assert value == options[0]["value"]
    key = next(o["value"] for o in options if o["value"].startswith("r2|"))
    ev = str(page.evidence(key, "2026-04-01", "2026-04-06", "zh"))
    assert "网间通信障碍申告单字段" in ev
    assert "A类障碍" in ev
    assert "乙→甲" in ev
    assert "loss_ratio 2.08 % &gt; 0.5 %" in ev or "loss_ratio 2.08 % > 0.5 %" in ev
    assert "由申告方填写" in ev


def test_days_without_faults_and_bad_ranges(page: ModuleType) -> None:
    body, options, value = page.render("2026-05-01", "2026-05-02", "zh")
    assert "该日期范围内没有障碍" in str(body)
    assert (options, value) == ([], None)
    assert page.render("2026-05-02", "2026-05-01", "en") == ([], [], None)
    assert page.evidence("nope", "2026-04-01", "2026-04-06", "en") == []
    assert date.fromisoformat("2026-04-06")  # dates are local, inclusive


def test_the_nav_lists_the_page(page: ModuleType) -> None:
    from dashboard.app import PAGE_ORDER

    assert "faults" in PAGE_ORDER
    assert Path(page.__file__).name == "faults.py"
