"""Hour and day tiers, minute retention and the fast read path, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import numpy as np
import pytest

from analyzer.rollups.model import MinuteRollup
from analyzer.rollups.sketch import DDSketch, LazySketch, SketchBatch, SketchError
from analyzer.rollups.sketch_codec import decode_many
from analyzer.stats.units import table_from_rollups
from analyzer.store import Query, Retention, Store
from analyzer.store.writes import Writer
from analyzer.synthetic.varied import NS_MIN, T0, make_batches
from tests.oracles import sketch_bytes
from tests.oracles.rollup_records import fold
from tests.store.test_store import ALL

HOUR_NS, DAY_NS = 60 * NS_MIN, 1440 * NS_MIN


def _tier(store: Store, tier: str, q: Query = ALL) -> list[MinuteRollup]:
    return store.read_rollups(Query(q.start_ns, q.end_ns, tier=tier))


def _fill(store: Store) -> None:
    """24 minutes of results every 3 s from 23:50 UTC: two hours, two days, each minute
    split over batches (20 results a minute, 60 a batch, three paths)."""
    start = T0 - T0 % DAY_NS + DAY_NS - 10 * NS_MIN
    for b in make_batches("p1", 8, 60, start_ns=start, gap_ns=3 * 10**9):
        store.write_batch(b, T0)


def test_tiers_equal_the_fold_of_their_minutes(store: Store) -> None:
    _fill(store)
    minutes = store.read_rollups(ALL)
    for tier in ("hour", "day"):
        got = _tier(store, tier)
        assert got == fold(minutes, tier)
        assert len(got) < len(minutes)
        assert sum(r.sent for r in got) == sum(r.sent for r in minutes)
    assert {r.minute % 1440 for r in _tier(store, "day")} == {0}
    assert len({r.minute for r in _tier(store, "day")}) == 2


def test_tier_read_window_covers_overlapping_units(store: Store) -> None:
    _fill(store)
    hours = _tier(store, "hour")
    first = hours[0].minute * NS_MIN
    q = Query(first + 5 * NS_MIN, first + 6 * NS_MIN)  # inside the first hour
    assert {r.minute for r in _tier(store, "hour", q)} == {hours[0].minute}


def test_minute_retention_keeps_tiers(store: Store) -> None:
    _fill(store)
    tiers = {t: _tier(store, t) for t in ("hour", "day")}
    minutes = store.read_rollups(ALL)
    second_day = max(r.minute for r in tiers["day"]) * NS_MIN
    assert store.prune_rollups(second_day + HOUR_NS) == sum(
        1 for r in minutes if r.minute * NS_MIN < second_day)  # cut at the day boundary
    assert all(r.minute * NS_MIN >= second_day for r in store.read_rollups(ALL))
    assert {t: _tier(store, t) for t in ("hour", "day")} == tiers  # units keep their rows
    assert store.verify(deep=True).ok


def test_hour_retention_keeps_days_and_verifies(store: Store) -> None:
    _fill(store)
    days = _tier(store, "day")
    hours = _tier(store, "hour")
    second_day = max(r.minute for r in days) * NS_MIN
    assert store.prune_rollups(second_day + HOUR_NS, "hour") == sum(
        1 for r in hours if r.minute * NS_MIN < second_day)
    assert all(r.minute * NS_MIN >= second_day for r in _tier(store, "hour"))
    assert _tier(store, "day") == days
    report = store.verify(deep=True)  # compares only the units retention kept
    assert report.ok, report.findings
    with pytest.raises(ValueError, match="not 'day'"):
        store.prune_rollups(2**62, "day")


def test_a_retention_policy_cuts_each_kind_with_its_own_link(store: Store) -> None:
    """Raw results, minutes and hours each pruned by their own age; days kept for ever."""
    _fill(store)
    days = _tier(store, "day")
    second_day = max(r.minute for r in days) * NS_MIN
    minutes, hours = store.read_rollups(ALL), _tier(store, "hour")
    now = second_day + 2 * DAY_NS + HOUR_NS
    policy = Retention(raw_days=1, minute_days=2, hour_days=2)  # minutes and hours: day one
    assert store.retain(policy, now) == {
        "raw": 480, "minute": sum(r.minute * NS_MIN < second_day for r in minutes),
        "hour": sum(r.minute * NS_MIN < second_day for r in hours)}
    assert store.retain(policy, now) == {"raw": 0, "minute": 0, "hour": 0}
    assert {r.minute * NS_MIN >= second_day for t in ("minute", "hour")
            for r in _tier(store, t)} == {True}
    assert _tier(store, "day") == days
    assert isinstance(store, Writer)
    details = [json.loads(d) for (d,) in store.db.execute(
        "SELECT detail FROM links WHERE kind = 'prune' ORDER BY idx")]
    assert [d.get("table", "raw") for d in details] == ["raw", "rollups", "rollups_hour"]
    report = store.verify(deep=True)
    assert report.ok, report.findings


def test_unknown_tier_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="week"):
        store.read_rollups(Query(0, 1, tier="week"))


def test_fast_and_lazy_sketch_decoding_equal_the_reference() -> None:
    rng = random.Random(7)
    blobs, refs = [], []
    for _ in range(400):
        s = DDSketch()
        for _ in range(rng.choice((0, 1, 2, 30, 400))):
            sigma = rng.choice((0.01, 0.5, 4.0))
            s.add(rng.choice((0.5, rng.lognormvariate(14, sigma))), rng.choice((1, 1, 300, 2**35)))
        data = s.to_bytes()
        ref = sketch_bytes.decode(data)
        assert data == sketch_bytes.encode(s)
        blobs.append(data)
        refs.append(ref)
        for got in (DDSketch.from_bytes(data), LazySketch(data)):
            assert got == ref
            assert (got.count, got.zero, got.to_bytes()) == (ref.count, ref.zero, data)
        lazy = LazySketch(data)
        zero, keys, counts = lazy.columns()
        assert (zero, dict(zip(keys.tolist(), counts.tolist(), strict=True))) == (
            ref.zero, ref.buckets)
        assert lazy._raw is not None  # the columns leave the dict undecoded
        batch = SketchBatch([DDSketch().to_bytes(), data])
        shared = LazySketch(data, batch, 1)
        assert shared == ref
        assert batch.columns(0)[0] == 0  # decoded with the batch
        lazy.merge(ref)
        twice = ref.copy()
        twice.merge(ref)
        assert lazy == twice
    many = decode_many(blobs)
    for (zero, keys, counts), ref in zip(many, refs, strict=True):
        assert (zero, dict(zip(keys.tolist(), counts.tolist(), strict=True))) == (
            ref.zero, ref.buckets)
    with pytest.raises(SketchError):
        decode_many([*blobs[:3], b"DD1\x00"])


@pytest.mark.parametrize("tier", ["hour", "minute"])
def test_unit_tables_from_lazy_and_decoded_sketches_are_equal(store: Store, tier: str) -> None:
    _fill(store)
    lazy = _tier(store, tier)
    decoded = _tier(store, tier)
    for r in decoded:
        for d in (r.rtt, r.fwd, r.bwd):
            d.sketch.count  # noqa: B018 - decode into the dict form
    plain = [replace(r, rtt=replace(r.rtt, sketch=DDSketch.from_bytes(r.rtt.sketch.to_bytes())))
             for r in decoded]
    for which in ("rtt", "fwd"):
        tables = [table_from_rollups(rs, which, 60) for rs in (lazy, decoded, plain)]
        for t in tables[1:]:
            for name in ("minutes", "sent", "n", "total", "mins", "keys", "counts"):
                assert np.array_equal(getattr(t, name), getattr(tables[0], name)), name
