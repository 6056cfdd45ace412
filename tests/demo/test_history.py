"""The demo's synthetic history for the fault rules: marked synthetic, Annex 4 made
illustrative only in its own copy of the inventory, and exactly the planted faults."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from analyzer.faults import evaluate_faults
from analyzer.store import open_store
from inventory.loader import default_inventory, load
from ixmeter.demo import history


def test_history_shows_faults_and_none(tmp_path: Path) -> None:
    text = history.show(tmp_path, default_inventory(), date(2026, 4, 8))
    assert text.splitlines()[1].startswith("SYNTHETIC DATA: ")
    inv = load(tmp_path / "inventory.yaml")
    assert inv.synthetic is not None
    annex4 = {t.id: t for t in inv.thresholds if t.id.startswith("annex4")}
    assert all(t.value is not None and t.source.startswith("ILLUSTRATIVE")
               for t in annex4.values())
    assert all(t.value is None for t in load(default_inventory()).thresholds
               if t.id.startswith("annex4"))  # the seed itself keeps them empty
    store = open_store(tmp_path / "results.db")
    try:
        reg = evaluate_faults(store, inv, date(2026, 4, 2), date(2026, 4, 7))
    finally:
        store.close()
    got = [(f.series.rule, f.series.path, f.began, f.cleared) for f in reg.faults]
    assert got == [("class-a-1", "cs-ixp/CT>cs-ixp/CM", "2026-04-03", "2026-04-06"),
                   ("class-a-2", "cs-ixp/CT>cs-cmcc/CM", "2026-04-06", None)]
    near = next(s for s in reg.series if s.path == "cs-ixp/CU>cs-tianyi-zn/CT")
    assert {d.state for d in near.days} == {"CLEAR"}  # 40 ms, but within 25 % of 36 ms
    outage = next(s for s in reg.series if s.path == "cs-ixp/CM>cs-ixp/CT")
    assert outage.days[-4].reason.startswith("no data on 2026-04-04")
    assert reg.synthetic == history.SYNTHETIC
