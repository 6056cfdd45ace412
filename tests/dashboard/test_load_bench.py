"""bench.dashboard_load at smoke size: a generated province's day tiers, warm-up and every
timed callback run (the figures themselves are the benchmark's, not asserted here)."""

from __future__ import annotations

from bench import dashboard_load


def test_province_inventory_has_hunans_cities() -> None:
    doc = dashboard_load.province_inventory(50)
    assert len(doc["cities"]) == 14
    assert len(doc["probes"]) == 150
    assert {p["carrier"] for p in doc["probes"]} == {"CT", "CM", "CU"}
    assert {s["city"] for s in doc["sites"]} == {c["id"] for c in doc["cities"]}


def test_dashboard_load_at_smoke_size() -> None:
    out = dashboard_load.main(["--sites", "4", "--paths", "60", "--days", "30"])
    assert out["day_rollups"] > 60 * 30
    assert out["paths"] >= 60
    assert out["drill_down_rows"] > 0
    assert out["slowest_callback_s"] > 0
