"""bench.dashboard_load at smoke size: a generated province's day tiers, warm-up and every
timed callback run (the figures themselves are the benchmark's, not asserted here)."""

from __future__ import annotations

from bench import dashboard_load


def test_dashboard_load_at_smoke_size() -> None:
    out = dashboard_load.main(["--paths", "60", "--days", "30"])
    assert out["day_rollups"] > 60 * 30
    assert out["paths"] >= 60
    assert out["drill_down_rows"] > 0
    assert out["slowest_callback_s"] > 0
