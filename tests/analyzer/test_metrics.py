"""Hand-computed fixtures for every metric (analyzer.metrics, analyzer.stats.units)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from analyzer import metrics
from analyzer.stats.units import point_statistic, table_from_rollups
from analyzer.synthetic.results import MIN_NS, T0, results
from ixmeter.core.record import Result, Status
from tests.oracles.rollup_records import build_rollups

MS = 1_000_000
A = 0.005  # the sketch's relative accuracy


def _fixture() -> list[Result]:
    """Sent 5: RTT 10, 20, lost, 30, 40 ms (seq 0..4), all in one minute."""
    base = list(results("s1", "A", "s3", "B", minutes=1, per_minute=5, spread=0))
    rtts = [10, 20, None, 30, 40]
    out = []
    for r, rtt in zip(base, rtts, strict=True):
        if rtt is None:
            out.append(replace(r, status=Status.LOST, rtt_ns=None))
        else:
            out.append(replace(r, rtt_ns=rtt * MS))
    return out


def test_counts_loss_ratio_and_periods() -> None:
    m = metrics.summarize("x", build_rollups(_fixture()))
    assert (m.sent, m.received, m.lost) == (5, 4, 1)
    assert m.loss_ratio == pytest.approx(0.2)  # RFC 7680 §4.1
    assert (m.loss_periods, m.loss_period_max) == (1, 1)  # RFC 3357 §4.1


def test_conditional_delay_statistics() -> None:
    d = metrics.summarize("x", build_rollups(_fixture())).rtt
    assert d.label == metrics.CONDITIONAL
    assert d.n == 4
    assert (d.min, d.max, d.mean) == (10 * MS, 40 * MS, 25 * MS)  # exact
    assert d.median == pytest.approx(25 * MS, rel=A)  # RFC 7679 §5.2: (20 + 30) / 2
    assert d.p95 == pytest.approx(40 * MS, rel=A)  # rank ceil(0.95 x 4) = 4
    assert d.pdv_p99 == pytest.approx(30 * MS, rel=2 * A)  # RFC 5481 §4.2: p99 - min


def test_loss_as_infinity_statistics() -> None:
    d = metrics.summarize("x", build_rollups(_fixture())).rtt
    assert d.inf_median == pytest.approx(30 * MS, rel=A)  # rank 3 of 5 with loss = +inf
    assert d.inf_p95 == math.inf  # rank ceil(4.75) = 5: the lost packet


def test_unit_table_matches_the_metrics() -> None:
    t = table_from_rollups(build_rollups(_fixture()))
    assert point_statistic(t, "median") == pytest.approx(25 * MS, rel=A)
    assert point_statistic(t, "mean") == 25 * MS
    assert point_statistic(t, "min") == 10 * MS
    assert point_statistic(t, "max") == 40 * MS
    assert point_statistic(t, "p99") == pytest.approx(40 * MS, rel=A)
    assert point_statistic(t, "pdv_p99") == pytest.approx(30 * MS, rel=2 * A)
    assert point_statistic(t, "loss_ratio") == pytest.approx(0.2)


def test_any_window_is_the_merge_of_minutes() -> None:
    rs = list(results("s1", "A", "s3", "B", minutes=30, per_minute=6, loss=0.1, seed=3))
    rolls = build_rollups(rs)
    whole = metrics.summarize("x", rolls)
    halves = metrics.summarize("x", rolls[15:] + rolls[:15])
    assert whole == halves
    assert whole.sent == 180


def test_one_way_statistics_carry_the_clock_error() -> None:
    rs = list(results("s1", "A", "s2", "B", minutes=2, per_minute=5, one_way=True,
                      clock_error_ns=50_000))
    m = metrics.summarize("x", build_rollups(rs))
    assert m.fwd.clock_error_ns == 50_000
    assert m.fwd.median == pytest.approx(5 * MS, rel=0.2)
    out = metrics.metrics_to_dict(m)
    assert out["fwd"]["clock_error_ms"] == 0.05
    assert set(out["rtt"]) == {"n", "conditional", "loss=+inf"}


def test_grouping_keys_are_direction_aware() -> None:
    rs = list(results("s1", "A", "s3", "B", minutes=1)) + \
        list(results("s3", "B", "s1", "A", minutes=1, start_ns=T0 + MIN_NS))
    rolls = build_rollups(rs)
    city = {"s1": "c1", "s3": "c2"}.get
    assert sorted(metrics.group_rollups(rolls, "carrier_pair", city)) == ["A>B", "B>A"]
    assert sorted(metrics.group_rollups(rolls, "city_pair", city)) == ["c1>c2", "c2>c1"]
    assert list(metrics.group_rollups(rolls, "scope", city)) == ["all"]
    assert len(metrics.group_rollups(rolls, "path", city)) == 2
    assert sorted(metrics.carrier_matrix(rolls)) == [("A", "B"), ("B", "A")]
    with pytest.raises(ValueError, match="unknown grouping"):
        metrics.group_rollups(rolls, "province", city)
