"""Minute-block bootstrap of a statistic and of a ratio of statistics (methodology-notes §4).

Each window is resampled on its own: the window's units are merged into non-overlapping blocks of
``b`` consecutive units (Carlstein 1986), ``b`` chosen by the Politis-White (2004/2009) rule on
the per-unit series of the statistic itself, then B replicates draw as many blocks with
replacement and merge them (a weighted sum of block rollups, so sketches merge exactly). The
interval is the percentile interval of the replicates, widened by the sketch's gamma (DDSketch,
Masson et al. 2019: each quantile is within a factor gamma), and the seed makes it reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analyzer.methods import BOOTSTRAP, PAIRED_BOOTSTRAP
from analyzer.stats.intervals import (
    Z_975,
    FloatArray,
    Interval,
    nbb_weights,
    percentile_interval,
)
from analyzer.stats.intervals import politis_white_block as _pw
from analyzer.stats.units import (
    DELAY_STATISTICS,
    UnitTable,
    align,
    per_unit_statistic,
    point_statistic,
    weighted_statistic,
)

DEFAULT_REPLICATES = 2000
MIN_BLOCKS = 10  # the block length is capped so that a window holds at least this many


METHOD = BOOTSTRAP.id  # analyzer.methods: name and citation
PAIRED_METHOD = PAIRED_BOOTSTRAP.id


@dataclass(frozen=True, slots=True)
class BootstrapInfo:
    """How an interval was obtained, for the report row (methodology-notes §7)."""

    block_units: int
    blocks: int
    replicates: int
    seed: int
    method: str = METHOD
    unit_minutes: int = 1


def block_length(t: UnitTable, statistic: str) -> int:
    """Politis-White block length (in units) on the per-unit series of ``statistic``."""
    series = per_unit_statistic(t, statistic)
    series = series[np.isfinite(series)]
    return _pw(series)


def _replicates(t: UnitTable, statistic: str, replicates: int,
                rng: np.random.Generator) -> tuple[FloatArray, int, int]:
    b = block_length(t, statistic)
    b = max(1, min(b, len(t) // MIN_BLOCKS))  # keep at least MIN_BLOCKS blocks to draw from
    blocks = t.blocks(b)
    w = nbb_weights(len(blocks), replicates, rng)
    out: list[FloatArray] = []
    for start in range(0, replicates, 250):  # bounded memory: 250 x blocks weights at a time
        out.append(weighted_statistic(blocks, w[start:start + 250], statistic))
    return np.concatenate(out), b, len(blocks)


def small_sample_factor(blocks: int) -> float:
    """Finite-block correction of the bootstrap spread: t(k-1, 0.975)/z(0.975) * sqrt(k/(k-1)).
    The k-block bootstrap variance is (k-1)/k of the block-means variance, and its quantiles
    are normal where a batch-means interval uses Student's t with k-1 degrees of freedom
    (Schmeiser, Oper. Res. 30, 1982). Tends to 1 as k grows."""
    if blocks < 2:
        return math.inf
    from scipy.special import stdtrit  # = scipy.stats.t.ppf(p, df), imported in 0.2 s

    return float(stdtrit(blocks - 1, 0.975)) / Z_975 * math.sqrt(blocks / (blocks - 1))


def _stretch(reps: FloatArray, point: float, factor: float) -> FloatArray:
    """Scale replicates' deviations from the point by ``factor`` (on log scale when all are
    positive, as for ratios and delays)."""
    if not math.isfinite(point) or factor == 1.0:
        return reps
    finite = reps[np.isfinite(reps)]
    if point > 0 and finite.size and bool((finite > 0).all()):
        with np.errstate(divide="ignore", invalid="ignore"):
            out: FloatArray = point * np.exp(factor * np.log(reps / point))
        return out
    return point + factor * (reps - point)


def _widen(statistic: str, gamma: float) -> float:
    return gamma if statistic in DELAY_STATISTICS and statistic not in ("mean", "min",
                                                                         "max") else 1.0


def bootstrap_level(t: UnitTable, statistic: str, threshold: float | None, seed: int,
                    replicates: int = DEFAULT_REPLICATES) -> tuple[Interval, BootstrapInfo]:
    """95% interval of one window's statistic (absolute targets)."""
    rng = np.random.default_rng(seed)
    reps, b, k = _replicates(t, statistic, replicates, rng)
    point = point_statistic(t, statistic)
    reps = _stretch(reps, point, small_sample_factor(k))
    interval = percentile_interval(point, reps, threshold, _widen(statistic, t.gamma))
    return interval, BootstrapInfo(b, k, replicates, seed)


def bootstrap_ratio(current: UnitTable, baseline: UnitTable, statistic: str,
                    threshold: float | None, seed: int, replicates: int = DEFAULT_REPLICATES
                    ) -> tuple[Interval, BootstrapInfo]:
    """95% interval of statistic(current) / statistic(baseline), each window resampled alone.
    The two windows use independent streams derived from ``seed``."""
    seeds = np.random.SeedSequence(seed).spawn(2)
    cur, b_cur, k_cur = _replicates(current, statistic, replicates,
                                    np.random.default_rng(seeds[0]))
    base, b_base, k_base = _replicates(baseline, statistic, replicates,
                                       np.random.default_rng(seeds[1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = cur / base
    den = point_statistic(baseline, statistic)
    point = point_statistic(current, statistic) / den if den else math.nan
    ratios = _stretch(ratios, point, small_sample_factor(min(k_cur, k_base)))
    # each quantile is within (1 +- alpha), so the ratio is within a factor gamma
    widen = _widen(statistic, current.gamma)
    interval = percentile_interval(point, ratios, threshold, widen)
    info = BootstrapInfo(max(b_cur, b_base), min(k_cur, k_base), replicates, seed)
    return interval, info


def bootstrap_paired_ratio(scope: UnitTable, reference: UnitTable, statistic: str,
                           threshold: float | None, seed: int,
                           replicates: int = DEFAULT_REPLICATES
                           ) -> tuple[Interval, BootstrapInfo]:
    """95% interval of statistic(scope) / statistic(reference) measured over the *same* time:
    both tables are aligned on the union of their units and resampled with the same block
    weights, which keeps their common time effects (busy hours, shared links) paired."""
    minutes = np.union1d(scope.minutes, reference.minutes)
    a, r = align(scope, minutes), align(reference, minutes)
    b = max(block_length(scope, statistic), block_length(reference, statistic))
    b = max(1, min(b, len(minutes) // MIN_BLOCKS))
    ab, rb = a.blocks(b), r.blocks(b)
    w = nbb_weights(len(ab), replicates, np.random.default_rng(seed))
    parts = []
    for start in range(0, replicates, 250):
        chunk = w[start:start + 250]
        with np.errstate(divide="ignore", invalid="ignore"):
            parts.append(weighted_statistic(ab, chunk, statistic)
                         / weighted_statistic(rb, chunk, statistic))
    ratios = np.concatenate(parts)
    den = point_statistic(reference, statistic)
    point = point_statistic(scope, statistic) / den if den else math.nan
    ratios = _stretch(ratios, point, small_sample_factor(len(ab)))
    interval = percentile_interval(point, ratios, threshold, _widen(statistic, scope.gamma))
    return interval, BootstrapInfo(b, len(ab), replicates, seed, PAIRED_METHOD)
