"""Synthetic data of known truth through the comparisons (analyzer.stats.compare)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from analyzer.rollups.model import MinuteRollup
from analyzer.stats.compare import compare_absolute, compare_declared, compare_ratio
from analyzer.stats.verdicts import Verdict
from analyzer.synthetic.results import MIN_NS, T0, results
from tests.oracles.rollup_records import build_rollups

DAY = 1440 * MIN_NS
KW: dict[str, Any] = {"seed": 11, "replicates": 2000, "unit_minutes": 1}


def latency(median_ms: float, *, minutes: int = 120, per_minute: int = 10, day: int = 0,
            seed: int = 1) -> list[MinuteRollup]:
    return build_rollups(results("s1", "A", "s3", "B", start_ns=T0 + day * DAY,
                                 minutes=minutes, per_minute=per_minute,
                                 median_ms=median_ms, spread=0.1, seed=seed))


def loss(p: float, *, minutes: int, per_minute: int, seed: int,
         burst: float = 0.0) -> list[MinuteRollup]:
    """Per-minute binomial losses; with ``burst`` > 0 the rate varies by minute (gamma)."""
    rng = np.random.default_rng(seed)
    out = []
    for m in range(minutes):
        rate = p if burst == 0 else min(1.0, p * rng.gamma(1 / burst, burst))
        lost = int(rng.binomial(per_minute, rate))
        out.append(MinuteRollup("s1/A>s3/B", "s1", "A", "s3", "B", "icmp", "icmp/v4/64/dscp0",
                                m, sent=per_minute, received=per_minute - lost, lost=lost))
    return out


BASE = latency(30.0)


@pytest.mark.parametrize(("current_ms", "verdict"), [
    (3.0, Verdict.PASS),  # 90% reduction
    (9.0, Verdict.FAIL),  # 70% reduction
    (5.7, Verdict.PASS),  # 81%: just past the 80% line, with enough samples
])
def test_latency_reductions(current_ms: float, verdict: Verdict) -> None:
    c = compare_ratio(latency(current_ms, day=1, seed=2), BASE, 0.2, "rtt_median", **KW)
    assert c.decision.verdict is verdict, c.decision.reason
    assert c.interval is not None
    assert c.interval.low <= current_ms / 30 * 1.02
    assert c.interval.high >= current_ms / 30 * 0.98
    assert c.bootstrap is not None
    assert c.bootstrap.replicates == 2000


def test_latency_exactly_at_the_line_is_inconclusive_and_says_how_many_more() -> None:
    c = compare_ratio(latency(6.0, minutes=15, per_minute=4, day=1, seed=3),
                      latency(30.0, minutes=15, per_minute=4), 0.2, "rtt_median", **KW)
    assert c.decision.verdict is Verdict.INCONCLUSIVE
    assert c.more_samples is None or c.more_samples > 0


def test_latency_tiny_samples_not_evaluable() -> None:
    c = compare_ratio(latency(3.0, minutes=3, per_minute=2, day=1), BASE, 0.2, "rtt_median",
                      **KW)
    assert c.decision.verdict is Verdict.NOT_EVALUABLE
    assert "too few samples" in c.decision.reason


def test_loss_one_percent_to_point_three_passes() -> None:
    c = compare_ratio(loss(0.003, minutes=600, per_minute=100, seed=2),
                      loss(0.01, minutes=600, per_minute=100, seed=1), 0.5, "loss_ratio", **KW)
    assert c.decision.verdict is Verdict.PASS, c.decision.reason
    assert c.method == "loss-ratio-score"


def test_loss_one_percent_to_point_six_fails_with_enough_samples() -> None:
    c = compare_ratio(loss(0.006, minutes=2000, per_minute=100, seed=4),
                      loss(0.01, minutes=2000, per_minute=100, seed=3), 0.5, "loss_ratio", **KW)
    assert c.decision.verdict is Verdict.FAIL, c.decision.reason


def test_loss_one_percent_to_point_six_small_sample_is_inconclusive() -> None:
    c = compare_ratio(loss(0.006, minutes=100, per_minute=60, seed=6),
                      loss(0.01, minutes=100, per_minute=60, seed=5), 0.5, "loss_ratio", **KW)
    assert c.decision.verdict is Verdict.INCONCLUSIVE
    assert c.more_samples is not None
    assert c.more_samples > 0
    assert f"about {c.more_samples} more samples per window" in c.decision.reason


def test_bursty_loss_widens_the_interval() -> None:
    cur = loss(0.003, minutes=600, per_minute=100, seed=8, burst=3.0)
    base = loss(0.01, minutes=600, per_minute=100, seed=7, burst=3.0)
    c = compare_ratio(cur, base, 0.5, "loss_ratio", **KW)
    assert c.details["dispersion_baseline"] > 1.5
    plain = compare_ratio(loss(0.003, minutes=600, per_minute=100, seed=2),
                          loss(0.01, minutes=600, per_minute=100, seed=1), 0.5, "loss_ratio",
                          **KW)
    assert c.interval is not None
    assert plain.interval is not None
    width = np.log(c.interval.high / max(c.interval.low, 1e-9))
    assert width > np.log(plain.interval.high / plain.interval.low)


def test_zero_baseline_loss_not_evaluable_with_the_bound() -> None:
    c = compare_ratio(loss(0.003, minutes=100, per_minute=60, seed=2),
                      loss(0.0, minutes=100, per_minute=60, seed=1), 0.5, "loss_ratio", **KW)
    assert c.decision.verdict is Verdict.NOT_EVALUABLE
    assert "zero baseline loss" in c.decision.reason
    assert "0.000499" in c.decision.reason  # 1 - 0.05 ** (1 / 6000)


def test_absolute_one_way_with_clock_error() -> None:
    rs = build_rollups(results("s1", "A", "s2", "B", minutes=30, per_minute=10,
                               median_ms=0.6, spread=0.05, one_way=True,
                               clock_error_ns=20_000))
    c = compare_absolute(rs, 1e6, "owd_median", **KW)  # 0.3 ms each way + 0.02 ms < 1 ms
    assert c.decision.verdict is Verdict.PASS, c.decision.reason
    assert c.clock_error == 20_000
    near = compare_absolute(rs, 0.31e6, "owd_median", **KW)  # 0.30 +- 0.02 straddles 0.31
    assert near.decision.verdict is Verdict.INCONCLUSIVE


def test_unsynchronised_clocks_fall_back_to_the_clock_free_bound() -> None:
    rs = build_rollups(results("s1", "A", "s2", "B", minutes=30, per_minute=10,
                               median_ms=0.6, one_way=True, synced=False))
    c = compare_absolute(rs, 1e6, "owd_median", **KW)  # RTT_net 0.6 ms < 1 ms
    assert c.decision.verdict is Verdict.PASS
    assert "clock-free" in c.decision.reason
    c = compare_absolute(rs, 0.5e6, "owd_median", **KW)  # 0.6 ms: neither < 0.5 nor >= 1.0
    assert c.decision.verdict is Verdict.NOT_EVALUABLE
    assert "unsynchronised" in c.decision.reason


def test_clock_limited_is_flagged() -> None:
    rs = build_rollups(results("s1", "A", "s2", "B", minutes=30, per_minute=10,
                               median_ms=0.2, spread=0.01, one_way=True,
                               clock_error_ns=50_000))
    c = compare_absolute(rs, 1e6, "owd_median", **KW)
    assert "clock-limited" in c.decision.reason


def test_declared_baseline() -> None:
    c = compare_declared(latency(3.0, day=1), (40.0, "ms"), 0.2, "rtt_median", **KW)
    assert c.decision.verdict is Verdict.PASS
    assert c.interval is not None
    assert c.interval.point == pytest.approx(3.0 / 40, rel=0.05)
    missing = compare_declared(latency(3.0, day=1), None, 0.2, "rtt_median", **KW)
    assert missing.decision.verdict is Verdict.NOT_EVALUABLE


def test_same_seed_same_interval() -> None:
    a = compare_ratio(latency(5.7, day=1, seed=2), BASE, 0.2, "rtt_p95", **KW)
    b = compare_ratio(latency(5.7, day=1, seed=2), BASE, 0.2, "rtt_p95", **KW)
    assert a.interval == b.interval


def test_discarded_one_way_delays_are_reported_as_clock_faults() -> None:
    from dataclasses import replace as dc_replace

    from ixmeter.core.record import ErrorKind

    rs = list(results("s1", "A", "s2", "B", minutes=30, per_minute=10, median_ms=0.6,
                      one_way=True))
    rs[:5] = [dc_replace(r, fwd_ns=None, error=ErrorKind.CLOCK_FAULT) for r in rs[:5]]
    c = compare_absolute(build_rollups(rs), 1e6, "owd_median", **KW)
    assert "5 one-way delays discarded as clock faults" in c.decision.reason
