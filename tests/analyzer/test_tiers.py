"""The analyzer reading hour/day tiers: same verdicts as minute rollups merged into the same
units, the tier chosen from the windows, and the tier named in the run's notes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analyzer.baselines import TimeWindow
from analyzer.evaluate import Params, choose_tier, evaluate
from analyzer.report.jsonout import row_to_dict
from analyzer.store import open_store
from analyzer.synthetic.results import MIN_NS, T0, results
from inventory.loader import load
from inventory.schema import Aggregation
from ixmeter.core.wire import Batch

INV = Path(__file__).parent / "data" / "mini.yaml"
HOUR, DAY = 60 * MIN_NS, 1440 * MIN_NS
BASE = TimeWindow(T0, T0 + 16 * HOUR)
CUR = TimeWindow(T0 + DAY, T0 + DAY + 16 * HOUR)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two inter-carrier paths, 14 hours in each window (16-hour windows), 4 probes/min."""
    path = tmp_path_factory.mktemp("tiers") / "store.db"
    store = open_store(path)
    for w, median, loss, seed in ((BASE, 30, 0.02, 1), (CUR, 5, 0.005, 11)):
        for i, (src, sc, dst, dc) in enumerate((("s1", "A", "s3", "B"),
                                                 ("s1", "B", "s3", "A"))):
            rs = list(results(src, sc, dst, dc, start_ns=w.start_ns + HOUR, minutes=14 * 60,
                              per_minute=4, median_ms=median * (1 + i), spread=0.2,
                              loss=loss, seed=seed + i))
            for k in range(0, len(rs), 2000):
                store.write_batch(Batch(rs[0].probe_id, f"{seed}-{i}-{k}",
                                        tuple(rs[k:k + 2000])), 0)
    store.close()
    return path


def _rows(db: Path, tier: str, unit_minutes: int = 1) -> tuple[list[str], list[str]]:
    store = open_store(db)
    try:
        ev = evaluate(store, load(INV), Params(CUR, BASE, seed=5, replicates=400,
                                          unit_minutes=unit_minutes, tier=tier),
                      targets=["latency", "loss"])
    finally:
        store.close()
    return [json.dumps(row_to_dict(r), sort_keys=True) for r in ev.rows], ev.notes


def test_hour_tier_verdicts_equal_minutes_merged_into_hours(db: Path) -> None:
    minutes, notes_m = _rows(db, tier="minute", unit_minutes=60)
    hours, notes_h = _rows(db, tier="hour", unit_minutes=60)
    assert minutes == hours
    assert len(minutes) == 3
    assert all(json.loads(r)["verdict"] in ("PASS", "FAIL") for r in hours), hours
    assert notes_m == [n for n in notes_h if not n.startswith("read from")]
    assert "read from hour (bootstrap unit 60 min) rollups: latency, loss" in notes_h


def test_a_coarser_tier_changes_only_the_bootstrap_unit(db: Path) -> None:
    fine, _ = _rows(db, tier="minute")
    hours, _ = _rows(db, tier="hour")
    for a, b in zip(fine, hours, strict=True):
        da, db_ = json.loads(a), json.loads(b)
        assert (da["baseline"], da["current"]) == (db_["baseline"], db_["current"])


def test_runs_are_byte_identical(db: Path) -> None:
    assert _rows(db, tier="hour") == _rows(db, tier="hour")


def test_choose_tier_from_windows_and_aggregation() -> None:
    whole = Aggregation(timezone="UTC")
    year = TimeWindow(T0, T0 + 365 * DAY)
    assert choose_tier([year], whole, 1) == "day"
    assert choose_tier([TimeWindow(T0, T0 + 7 * DAY)], whole, 1) == "hour"  # 7 days < 60
    assert choose_tier([TimeWindow(T0, T0 + 7 * DAY + MIN_NS)], whole, 1) == "minute"
    assert choose_tier([year, TimeWindow(T0, T0 + DAY)], whole, 1) == "minute"
    week = TimeWindow(T0, T0 + 7 * DAY)
    assert choose_tier([week], whole, 90) == "minute"  # 90-minute units do not tile hours
    assert choose_tier([year], whole, 90) == "day"  # units below the tier become the tier
    busy = Aggregation(window="busy_hours", busy_hours=[20, 21], timezone="Asia/Shanghai")
    assert choose_tier([year], busy, 1) == "hour"
    # 60 hours hold 6-9 busy hours: too few hour units, so minute units (issue 17)
    assert choose_tier([TimeWindow(T0, T0 + 60 * 60 * MIN_NS)], busy, 1) == "minute"
    assert choose_tier([TimeWindow(T0, T0 + 30 * DAY)], busy, 1) == "hour"  # 60 busy hours
    assert choose_tier([TimeWindow(T0, T0 + 29 * DAY)], busy, 1) == "minute"  # 58
    kolkata = Aggregation(window="busy_hours", busy_hours=[20], timezone="Asia/Kolkata")
    assert choose_tier([year], kolkata, 1) == "minute"  # UTC+5:30
