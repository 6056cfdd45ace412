"""Hand-computed fixtures for the statistical methods (analyzer.stats)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analyzer.stats import intervals as iv
from analyzer.stats.units import UnitTable, merge_tables, point_statistic, table_from_rollups
from analyzer.synthetic.results import results
from tests.oracles.rollup_records import build_rollups


def test_score_ci_zero_current_losses_matches_notes() -> None:
    # methodology-notes §4: 0/20000 vs 100/20000 -> score CI [0, 0.038]
    ci = iv.ratio_score_ci(0, 20000, 100, 20000)
    assert ci.point == 0
    assert ci.low == 0
    assert ci.high == pytest.approx(0.038, abs=0.0005)


def test_score_ci_bounds_solve_the_score_equation() -> None:
    ci = iv.ratio_score_ci(30, 10000, 100, 10000)
    assert ci.point == pytest.approx(0.3)
    assert iv.ratio_score_z(30, 10000, 100, 10000, ci.low) == pytest.approx(iv.Z_975, abs=1e-6)
    assert iv.ratio_score_z(30, 10000, 100, 10000, ci.high) == pytest.approx(-iv.Z_975,
                                                                              abs=1e-6)
    assert ci.low < 0.3 < ci.high


def test_constrained_mle_maximises_the_likelihood() -> None:
    x1, n1, x0, n0, r = 7, 500, 20, 600, 0.5
    p0 = iv._constrained_p0(x1, n1, x0, n0, r)

    def loglik(p: float) -> float:
        return (x1 * math.log(r * p) + (n1 - x1) * math.log(1 - r * p)
                + x0 * math.log(p) + (n0 - x0) * math.log(1 - p))

    assert loglik(p0) >= loglik(p0 * 1.01)
    assert loglik(p0) >= loglik(p0 * 0.99)


def test_koopman_is_slightly_narrower_than_miettinen_nurminen() -> None:
    mn = iv.ratio_score_ci(10, 200, 20, 200)
    koopman = iv.ratio_score_ci(10, 200, 20, 200, correction=False)
    assert koopman.low >= mn.low
    assert koopman.high <= mn.high


def test_score_p_values_agree_with_the_interval() -> None:
    ci = iv.ratio_score_ci(30, 10000, 100, 10000, threshold=ci_high(30, 100))
    assert ci.p_below == pytest.approx(0.025, abs=1e-4)


def ci_high(x1: int, x0: int) -> float:
    return iv.ratio_score_ci(x1, 10000, x0, 10000).high


@pytest.mark.parametrize(("x", "n", "low", "high"), [
    (0, 10, 0.0, 0.27753), (5, 10, 0.23659, 0.76341), (10, 10, 0.72247, 1.0)])
def test_wilson_interval(x: int, n: int, low: float, high: float) -> None:
    ci = iv.wilson_ci(x, n)
    assert ci.low == pytest.approx(low, abs=1e-5)
    assert ci.high == pytest.approx(high, abs=1e-5)


def test_zero_loss_bound_is_about_three_over_n() -> None:
    assert iv.zero_loss_upper(3000) == pytest.approx(0.000998, abs=1e-6)


def test_dispersion_hand_computed() -> None:
    # p = 10/400; X^2 = (3 x 2.5^2 + 7.5^2) / (100 x 0.025 x 0.975) = 30.769; phi = X^2 / 3
    assert iv.dispersion([0, 0, 0, 10], [100] * 4) == pytest.approx(30.769 / 3, rel=1e-4)
    assert iv.dispersion([1, 1, 1, 1], [100] * 4) == 1.0  # under-dispersed: floor at 1
    assert iv.dispersion([0, 0], [100, 100]) == 1.0


def test_holm_hand_computed() -> None:
    assert iv.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert iv.holm([]) == []


@pytest.mark.parametrize(("p1", "expected"), [
    (0.0005, 6660), (0.001, 11200), (0.0015, 26000), (0.002, 110000)])
def test_loss_sample_size_table_of_the_notes(p1: float, expected: int) -> None:
    n = iv.loss_sample_size(0.005, p1, 0.5)
    assert n is not None
    assert n == pytest.approx(expected, rel=0.01)


def test_loss_sample_size_undecidable_at_the_threshold() -> None:
    assert iv.loss_sample_size(0.01, 0.005, 0.5) is None
    assert iv.loss_sample_size(0.01, 0.0, 0.5) is None


def test_percentile_interval_ranks() -> None:
    reps = np.arange(1, 101, dtype=float)
    ci = iv.percentile_interval(50.0, reps, threshold=90.0)
    assert (ci.low, ci.high) == (3.0, 98.0)  # ranks ceil(2.5) and ceil(97.5)
    assert ci.p_below == pytest.approx(12 / 101)  # 11 replicates >= 90, plus one


def test_politis_white_longer_blocks_for_dependent_series() -> None:
    rng = np.random.default_rng(7)
    noise = rng.normal(size=4000)
    ar = np.zeros(4000)
    for i in range(1, 4000):
        ar[i] = 0.9 * ar[i - 1] + noise[i]
    assert iv.politis_white_block(noise) <= 3
    assert iv.politis_white_block(ar) >= 10
    assert iv.politis_white_block([1.0] * 50) == 1


def test_nbb_weights_draw_k_blocks() -> None:
    w = iv.nbb_weights(12, 50, np.random.default_rng(1))
    assert w.shape == (50, 12)
    assert (w.sum(axis=1) == 12).all()


def test_unit_table_statistics_hand_computed() -> None:
    rs = [r for r in results("s1", "A", "s3", "B", minutes=1, per_minute=4, spread=0)]
    rolls = build_rollups(rs)
    t = table_from_rollups(rolls)
    assert point_statistic(t, "mean") == pytest.approx(10e6)
    assert point_statistic(t, "median") == pytest.approx(10e6, rel=0.005)
    assert point_statistic(t, "loss_ratio") == 0.0


def test_merged_tables_equal_the_table_of_all_rollups() -> None:
    a = build_rollups(results("s1", "A", "s3", "B", minutes=20, median_ms=5, loss=0.1))
    b = build_rollups(results("s2", "A", "s3", "B", minutes=30, median_ms=50, loss=0.2,
                              seed=2))
    merged = merge_tables([table_from_rollups(a), table_from_rollups(b)])
    whole = table_from_rollups(a + b)
    for name in ("minutes", "sent", "lost", "n", "total", "mins", "maxs", "keys", "counts"):
        assert np.array_equal(getattr(merged, name), getattr(whole, name)), name
    for stat in ("median", "p99", "mean", "loss_ratio"):
        assert point_statistic(merged, stat) == point_statistic(whole, stat)


def test_finite_block_correction_hand_computed() -> None:
    from analyzer.stats.bootstrap import small_sample_factor

    # t(14, 0.975) = 2.14479; / 1.95996 * sqrt(15/14)
    assert small_sample_factor(15) == pytest.approx(2.14479 / 1.95996 * math.sqrt(15 / 14),
                                                    rel=1e-4)
    assert small_sample_factor(10_000) == pytest.approx(1.0, abs=1e-3)
    assert small_sample_factor(1) == math.inf


def _shared_level_tables(seed: int) -> tuple[UnitTable, UnitTable]:
    """Two groups whose minute levels move together (a shared busy-hour effect)."""
    from analyzer.rollups.sketch import DEFAULT_ALPHA, DDSketch
    from analyzer.stats.units import ZERO_KEY

    rng = np.random.default_rng(seed)
    sk = DDSketch(DEFAULT_ALPHA)
    level = np.cumsum(rng.normal(0, 0.05, 200))  # a random walk shared by both groups
    out = []
    for median in (3e6, 2e6):
        x = median * np.exp(level[:, None] + rng.normal(0, 0.05, (200, 30)))
        keys = np.ceil(np.log(x) / math.log(sk.gamma)).astype(np.int64)
        lo, hi = int(keys.min()), int(keys.max())
        counts = np.zeros((200, hi - lo + 2))
        for m in range(200):
            counts[m, 1:] = np.bincount(keys[m] - lo, minlength=hi - lo + 1)
        n = np.full(200, 30.0)
        out.append(UnitTable(np.arange(200, dtype=np.int64), n, np.zeros(200), n, x.sum(1),
                             x.min(1), x.max(1),
                             np.array([0.0] + [sk.value(k) for k in range(lo, hi + 1)]),
                             np.array([ZERO_KEY, *range(lo, hi + 1)], dtype=np.int64), counts,
                             sk.gamma))
    return out[0], out[1]


def test_paired_bootstrap_keeps_common_time_effects() -> None:
    from analyzer.stats.bootstrap import bootstrap_paired_ratio, bootstrap_ratio

    scope, ref = _shared_level_tables(3)
    paired, info = bootstrap_paired_ratio(scope, ref, "mean", 1.5, seed=1)
    apart, _ = bootstrap_ratio(scope, ref, "mean", 1.5, seed=1)
    assert paired.point == pytest.approx(1.5, rel=0.02)
    assert paired.low <= paired.point <= paired.high
    assert (paired.high - paired.low) < 0.5 * (apart.high - apart.low)
    assert info.method == "paired-block-bootstrap"
