"""Benchmark: verdicts over one year x 500 paths (baseline year and current year).

263M minute rollups per window cannot be Python objects, so the analysis reads *day tiers*:
per path and local day, the counts, exact moments and DDSketch bucket counts of that day
(a merge of its 1,440 minute rollups; what the store should keep, see docs/methodology.md).
The bench synthesises those day tiers (lognormal RTT per path with a day-to-day factor,
binomial loss), merges the paths of each carrier pair (``merge_tables``), and runs the same
comparisons ``ixmeter analyze`` runs: the block-bootstrap ratio of median RTT (B = 2000) per
carrier pair and the score interval of the loss ratio over the scope. It also times the minute
path (``table_from_rollups`` on real MinuteRollup objects) and extrapolates it.

    .venv/bin/python bench/analyzer_year.py            # 500 paths x 365 days (~30 s)
    .venv/bin/python bench/analyzer_year.py --paths 50 --days 30
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyzer.columns import blocks_of  # noqa: E402
from analyzer.rollups.batch import batch_rollups  # noqa: E402
from analyzer.rollups.model import DEFAULT_THRESHOLDS_NS, MinuteRollup  # noqa: E402
from analyzer.rollups.sketch import DEFAULT_ALPHA, DDSketch  # noqa: E402
from analyzer.stats.compare import compare_ratio  # noqa: E402
from analyzer.stats.units import (  # noqa: E402
    ZERO_KEY,
    UnitTable,
    merge_tables,
    table_from_rollups,
)
from analyzer.synthetic.results import results  # noqa: E402
from ixmeter.core.record import Result  # noqa: E402

CARRIERS = ("CT", "CM", "CU")
PER_DAY = 86_400  # 1 probe per second per path


def minute_rollups(rs: Iterable[Result]) -> list[MinuteRollup]:
    """The minute rollups of results, as the collector computes them (a batch at a time)."""
    return batch_rollups(blocks_of(list(rs)), DEFAULT_THRESHOLDS_NS)["minute"]


def day_tier(rng: np.random.Generator, days: int, median_ms: float, loss: float,
             first_day: int) -> UnitTable:
    """Synthetic day tier of one path: per-day sketch counts of lognormal RTTs."""
    sk = DDSketch(DEFAULT_ALPHA)
    lo = sk.key(median_ms * 1e6 * math.exp(-0.5))
    hi = sk.key(median_ms * 1e6 * math.exp(0.5))
    keys = np.arange(lo, hi + 1)
    edges = np.log(np.array([sk.gamma ** (k - 1) for k in range(lo, hi + 2)]))
    factor = np.exp(rng.normal(0, 0.02, size=days))  # day-to-day level
    received = rng.binomial(PER_DAY, 1 - loss, size=days)
    counts = np.zeros((days, len(keys) + 1))
    mu = math.log(median_ms * 1e6)
    for d in range(days):
        cdf = _norm_cdf((edges - mu - math.log(factor[d])) / 0.1)
        probs = np.diff(cdf)
        probs /= probs.sum()
        counts[d, 1:] = rng.multinomial(received[d], probs)
    values = np.array([0.0] + [sk.value(int(k)) for k in keys])
    total = counts @ values
    occupied = counts[:, 1:] > 0
    mins = np.where(occupied.any(1), values[1:][occupied.argmax(1)], math.inf)
    maxs = np.where(occupied.any(1), values[1:][len(keys) - 1 - occupied[:, ::-1].argmax(1)],
                    -math.inf)
    return UnitTable(minutes=(first_day + np.arange(days, dtype=np.int64)) * 1440,
                     sent=np.full(days, float(PER_DAY)), lost=PER_DAY - received.astype(float),
                     n=received.astype(float), total=total, mins=mins, maxs=maxs, values=values,
                     keys=np.concatenate([[ZERO_KEY], keys]).astype(np.int64), counts=counts,
                     gamma=sk.gamma)


def _norm_cdf(z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    out: np.ndarray = ndtr(z)
    return out


def paths(n: int) -> list[tuple[str, str]]:
    """n directed paths spread over the 9 carrier pairs (6 inter-carrier)."""
    pairs = [(a, b) for a in CARRIERS for b in CARRIERS]
    return [pairs[i % len(pairs)] for i in range(n)]


def run(n_paths: int, days: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    groups: dict[str, dict[str, list[UnitTable]]] = {}
    for src, dst in paths(n_paths):
        if src == dst:
            continue
        median = rng.uniform(20, 40)
        g = groups.setdefault(f"{src}>{dst}", {"base": [], "cur": []})
        g["base"].append(day_tier(rng, days, median, 0.01, 0))
        g["cur"].append(day_tier(rng, days, median * rng.uniform(0.08, 0.3), 0.004, days))
    t_gen = time.perf_counter() - t0
    rss_gen = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    t1 = time.perf_counter()
    verdicts = []
    all_base, all_cur = [], []
    for i, (name, g) in enumerate(sorted(groups.items())):
        base, cur = merge_tables(g["base"]), merge_tables(g["cur"])
        all_base.append(base)
        all_cur.append(cur)
        c = compare_ratio({"rtt": cur}, {"rtt": base}, 0.2, "rtt_median", seed + i, 2000, 1440)
        verdicts.append((name, c.decision.verdict.value, c.interval))
    loss = compare_ratio({"rtt": merge_tables(all_cur)}, {"rtt": merge_tables(all_base)}, 0.5,
                         "loss_ratio", seed, 2000, 1440)
    t_analysis = time.perf_counter() - t1
    for name, verdict, iv in verdicts:
        print(f"  {name}: {verdict} {iv}")
    print(f"  loss (scope): {loss.decision.verdict.value} {loss.interval}")
    return {"generate_s": t_gen, "analysis_s": t_analysis, "rss_after_generate_mib": rss_gen,
            "rss_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "inter_paths": sum(len(g["base"]) for g in groups.values())}


def minute_path_cost(paths_n: int = 5, minutes: int = 1440) -> float:
    """Seconds per MinuteRollup to lay minute rollups out as a table (the object path)."""
    rolls = []
    for i in range(paths_n):
        rolls += minute_rollups(results("s1", "A", f"d{i}", "B", minutes=minutes,
                                        per_minute=60, seed=i))
    t = time.perf_counter()
    table_from_rollups(rolls, "rtt", 1)
    return (time.perf_counter() - t) / len(rolls)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=500)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--smoke", action="store_true",
                    help="3 paths x 20 days, a small minute path (the suite runs this)")
    args = ap.parse_args()
    if args.smoke:
        args.paths, args.days = 3, 20
    print(f"day tiers: {args.paths} paths x {args.days} days, baseline and current windows")
    out = run(args.paths, args.days, args.seed)
    for k, v in out.items():
        print(f"{k}: {v:.2f}")
    per = minute_path_cost(*((1, 30) if args.smoke else ()))
    rollups = args.paths * args.days * 1440
    print(f"minute path: {per * 1e6:.1f} us per MinuteRollup -> {rollups:,} rollups per window "
          f"would take {per * rollups / 3600:.1f} h (why the analysis reads day/hour tiers)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
