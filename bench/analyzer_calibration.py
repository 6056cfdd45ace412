"""Calibration: how often does the latency verdict say PASS when the truth sits on the line?

Synthetic minute tables with autocorrelated minute levels (AR(1), phi = 0.8 on log RTT) and
60 lognormal samples a minute. The true median ratio current/baseline is ``--ratio``
(0.2 = exactly the 80% line, where a PASS is a false PASS). Each trial runs the same block
bootstrap ``ixmeter analyze`` uses (Politis-White block length), and, for comparison, the same
bootstrap with blocks of one minute (an i.i.d. resample that ignores autocorrelation).

    .venv/bin/python bench/analyzer_calibration.py               # 200 trials at R = 0.2
    .venv/bin/python bench/analyzer_calibration.py --ratio 0.17  # power below the line
    .venv/bin/python bench/analyzer_calibration.py --loss --ratio 0.5 --trials 1000
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyzer.rollups.sketch import DEFAULT_ALPHA, DDSketch  # noqa: E402
from analyzer.stats import bootstrap as bs  # noqa: E402
from analyzer.stats.intervals import nbb_weights, percentile_interval  # noqa: E402
from analyzer.stats.units import (  # noqa: E402
    ZERO_KEY,
    UnitTable,
    point_statistic,
    weighted_statistic,
)
from analyzer.stats.verdicts import Verdict, decide_ratio  # noqa: E402

PER_MINUTE = 60


def table(rng: np.random.Generator, minutes: int, median_ms: float) -> UnitTable:
    """Minute units: AR(1) minute level, lognormal(0.1) samples around it."""
    sk = DDSketch(DEFAULT_ALPHA)
    level = np.zeros(minutes)
    for i in range(1, minutes):
        level[i] = 0.8 * level[i - 1] + rng.normal(0, 0.05)
    samples = median_ms * 1e6 * np.exp(level[:, None] + rng.normal(0, 0.1, (minutes,
                                                                               PER_MINUTE)))
    keys = np.ceil(np.log(samples) / math.log(sk.gamma)).astype(np.int64)
    lo, hi = int(keys.min()), int(keys.max())
    counts = np.zeros((minutes, hi - lo + 2))
    for m in range(minutes):
        counts[m, 1:] += np.bincount(keys[m] - lo, minlength=hi - lo + 1)
    values = np.array([0.0] + [sk.value(k) for k in range(lo, hi + 1)])
    n = np.full(minutes, float(PER_MINUTE))
    return UnitTable(np.arange(minutes, dtype=np.int64), n, np.zeros(minutes), n,
                     samples.sum(1), samples.min(1), samples.max(1), values,
                     np.array([ZERO_KEY, *range(lo, hi + 1)], dtype=np.int64), counts, sk.gamma)


def iid_ratio(cur: UnitTable, base: UnitTable, seed: int) -> Verdict:
    """The same percentile bootstrap with one-minute blocks (ignores autocorrelation)."""
    rng = np.random.default_rng(seed)
    reps = [weighted_statistic(t, nbb_weights(len(t), 2000, rng), "median") for t in (cur, base)]
    point = point_statistic(cur, "median") / point_statistic(base, "median")
    return decide_ratio(percentile_interval(point, reps[0] / reps[1], 0.2, cur.gamma),
                        0.2).verdict


def table_of(lost: np.ndarray, sent: np.ndarray) -> UnitTable:
    """Minute units with loss counts only (no delays)."""
    k = len(lost)
    empty = np.zeros(k)
    return UnitTable(np.arange(k, dtype=np.int64), sent, lost, empty, empty,
                     np.full(k, math.inf), np.full(k, -math.inf), np.zeros(1),
                     np.array([ZERO_KEY], dtype=np.int64), np.zeros((k, 1)), 1.01)


def loss_trials(trials: int, ratio: float) -> None:
    """Loss 1% -> ratio x 1%, bursty: gamma rates (CV 1) held for 10 minutes, 600 min x 60."""
    from analyzer.stats.compare import _df, loss_dispersion
    from analyzer.stats.intervals import dispersion, ratio_score_ci

    rng = np.random.default_rng(7)
    with_phi = without = blocked = 0
    for _ in range(trials):
        counts = []
        for p in (0.01 * ratio, 0.01):
            # bursts last ~10 minutes: a gamma rate held for runs of 10 minutes
            rates = np.repeat(np.minimum(1.0, p * rng.gamma(1.0, 1.0, size=60)), 10)
            counts.append(rng.binomial(PER_MINUTE, rates).astype(float))
        sent = np.full(600, float(PER_MINUTE))
        x1, x0 = counts[0].sum(), counts[1].sum()
        if x0 == 0:
            continue
        phi1, phi0 = dispersion(counts[0], sent), dispersion(counts[1], sent)
        n = sent.sum()
        a = ratio_score_ci(x1 / phi1, n / phi1, x0 / phi0, n / phi0)
        b = ratio_score_ci(x1, n, x0, n)
        tables = [table_of(c, sent) for c in counts]
        (q1, k1), (q0, k0) = loss_dispersion(tables[0]), loss_dispersion(tables[1])
        c = ratio_score_ci(x1 / q1, n / q1, x0 / q0, n / q0, df=_df(q1, k1, q0, k0))
        blocked += decide_ratio(c, 0.5).verdict is Verdict.PASS
        with_phi += decide_ratio(a, 0.5).verdict is Verdict.PASS
        without += decide_ratio(b, 0.5).verdict is Verdict.PASS
    print(f"loss: true ratio {ratio}, {trials} trials, 10-minute bursts (gamma CV 1)")
    print(f"PASS rate, counts / block phi, t(k-1) (ixmeter):  {blocked / trials:.3f}")
    print(f"PASS rate, score interval on counts / per-minute phi: {with_phi / trials:.3f}")
    print(f"PASS rate, score interval on raw counts:   {without / trials:.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--minutes", type=int, default=240)
    ap.add_argument("--ratio", type=float, default=0.2)
    ap.add_argument("--loss", action="store_true", help="calibrate the loss interval instead")
    args = ap.parse_args()
    if args.loss:
        loss_trials(args.trials, args.ratio)
        return 0
    rng = np.random.default_rng(2026)
    block_pass = iid_pass = 0
    blocks = []
    t0 = time.perf_counter()
    for trial in range(args.trials):
        base = table(rng, args.minutes, 30.0)
        cur = table(rng, args.minutes, 30.0 * args.ratio)
        iv, info = bs.bootstrap_ratio(cur, base, "median", 0.2, trial)
        block_pass += decide_ratio(iv, 0.2).verdict is Verdict.PASS
        iid_pass += iid_ratio(cur, base, trial) is Verdict.PASS
        blocks.append(info.block_units)
    n = args.trials
    print(f"true ratio {args.ratio}, {n} trials of {args.minutes} minutes x {PER_MINUTE}/min, "
          f"{time.perf_counter() - t0:.1f} s")
    print(f"PASS rate, block bootstrap (median block {int(np.median(blocks))} min): "
          f"{block_pass / n:.3f}")
    print(f"PASS rate, one-minute blocks (i.i.d.):                 {iid_pass / n:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
