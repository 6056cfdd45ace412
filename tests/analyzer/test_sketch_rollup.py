"""DDSketch guarantees and minute rollups against hand-computed fixtures."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from analyzer.rollups.model import merge
from analyzer.rollups.sketch import DDSketch
from ixmeter.core.record import ErrorKind, Method, Result, Status, TimestampSource, TypeP
from tests.oracles.rollup_records import build_rollups

values = st.lists(st.integers(min_value=1, max_value=10**11), min_size=1, max_size=300)


@given(values, st.sampled_from([0.01, 0.25, 0.5, 0.9, 0.99, 1.0]))
def test_quantile_within_relative_error(xs: list[int], q: float) -> None:
    sketch = DDSketch(0.005)
    sketch.extend(xs)
    exact = float(np.percentile(xs, q * 100, method="inverted_cdf"))
    got = sketch.quantile(q)
    assert got is not None
    assert abs(got - exact) <= 0.005 * exact + 1e-6


@given(values, values)
def test_merge_is_exact_and_encoding_round_trips(a: list[int], b: list[int]) -> None:
    left, right, both = DDSketch(), DDSketch(), DDSketch()
    left.extend(a)
    right.extend(b)
    both.extend(a + b)
    left.merge(right)
    assert left == both
    assert DDSketch.from_bytes(both.to_bytes()) == both


def test_median_even_count_is_mean_of_central_values() -> None:
    sketch = DDSketch(0.005)
    sketch.extend([1_000, 2_000, 3_000, 4_000])
    median = sketch.median()
    assert median is not None
    assert math.isclose(median, 2_500, rel_tol=0.005)


T0 = 29_666_666 * 60 * 10**9  # a minute-aligned UTC instant (2026-05-28)


def _result(seq: int, status: Status, rtt: int | None = None, minute: int = 0) -> Result:
    return Result(
        probe_id="p1", method=Method.ICMP, src_site="a", src_carrier="CT", dst_site="b",
        dst_carrier="CM", src_addr="198.18.1.10", dst_addr="198.18.65.10",
        type_p=TypeP("icmp", 4, 64), seq=seq,
        sent_at_ns=T0 + minute * 60_000_000_000 + seq * 10**9,
        status=status, tmax_ns=3 * 10**9, ts_source=TimestampSource.KERNEL, rtt_ns=rtt,
        error=ErrorKind.SEND_ERROR if status is Status.ERROR else None)


def test_rollup_counts_loss_periods_and_thresholds() -> None:
    # received, lost, lost, received, error, lost, received (late arrival -> reordered)
    rs = [
        _result(0, Status.RECEIVED, 500_000),
        _result(1, Status.LOST),
        _result(2, Status.LOST),
        _result(3, Status.RECEIVED, 2_500_000_000),
        _result(4, Status.ERROR),
        _result(5, Status.LOST),
        _result(6, Status.RECEIVED, 4_000_000),
    ]
    [r] = build_rollups(rs)
    assert (r.sent, r.received, r.lost, r.errors) == (6, 3, 3, 1)
    assert (r.loss_periods, r.loss_period_max) == (2, 2)
    assert r.rtt.min == 500_000
    assert r.rtt.max == 2_500_000_000
    assert r.rtt.below == {1_000_000: 1, 3_000_000: 1}
    # seq 3 arrives at 5.5 s, seq 6 at 6.004 s: in order, nothing reordered.
    assert r.reordered == 0
    assert r.loss_ratio == 0.5


def test_reordering_rfc4737() -> None:
    rs = [_result(0, Status.RECEIVED, 3_000_000_000), _result(1, Status.RECEIVED, 1_000)]
    [r] = build_rollups(rs)
    assert r.reordered == 1


def test_merge_across_minutes_is_exact() -> None:
    rs = [_result(i, Status.RECEIVED, 1_000_000 + i, minute=i % 3) for i in range(30)]
    rollups = build_rollups(rs)
    assert len(rollups) == 3
    total = merge(rollups)
    assert total.received == 30
    assert total.rtt.sum == sum(1_000_000 + i for i in range(30))
    assert total.rtt.sketch.count == 30
