"""One comparison of one group: rollups in, interval and decision out.

- relative / reference, delay statistic: minute-block bootstrap of statistic(current) /
  statistic(other) (:mod:`analyzer.stats.bootstrap`);
- relative / reference, loss ratio: Miettinen-Nurminen score interval of p1/p0 on counts divided
  by each window's dispersion phi (bursty loss, RFC 3357; methodology-notes §4); zero baseline
  loss is NOT EVALUABLE and the zero-loss bound 1 - 0.05**(1/n) is reported instead;
- absolute: bootstrap interval of the level (delay) or Wilson interval (loss ratio), with the
  clock-error bound E and the §5 gates for one-way delay (:mod:`analyzer.stats.verdicts`);
- declared baseline: the current level's interval divided by the declared value.

An INCONCLUSIVE result says how many more samples would decide it at power 0.8.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from analyzer.baselines import declared_ns
from analyzer.methods import LOSS_LEVEL, LOSS_RATIO, ZERO_LOSS
from analyzer.rollups.model import MinuteRollup
from analyzer.stats.bootstrap import (
    MIN_BLOCKS,
    BootstrapInfo,
    block_length,
    bootstrap_level,
    bootstrap_paired_ratio,
    bootstrap_ratio,
)
from analyzer.stats.intervals import (
    Z_80,
    Z_975,
    Interval,
    bootstrap_sample_factor,
    dispersion,
    loss_sample_size,
    ratio_score_ci,
    wilson_ci,
    zero_loss_upper,
)
from analyzer.stats.units import UnitTable, point_statistic, table_from_rollups
from analyzer.stats.verdicts import (
    Decision,
    Verdict,
    both_directions,
    clock_free,
    clock_gate,
    clock_limited,
    decide_absolute,
    decide_ratio,
)

# policy statistic -> (delay series, unit-table statistic); see inventory KNOWN_STATISTICS
STAT_MAP: dict[str, tuple[str, str]] = {
    "rtt_median": ("rtt", "median"), "rtt_mean": ("rtt", "mean"), "rtt_p95": ("rtt", "p95"),
    "rtt_p99": ("rtt", "p99"), "rtt_min": ("rtt", "min"), "loss_ratio": ("rtt", "loss_ratio"),
    "owd_median": ("owd", "median"), "owd_p99": ("owd", "p99"), "owd_max": ("owd", "max"),
    "pdv_p99": ("rtt", "pdv_p99"),
}
MIN_DELAY_SAMPLES = 30
MIN_LOSS_SAMPLES = 100
MIN_UNITS = 10
# Rollups (merged into units here) or ready tables by delay series ("rtt", "fwd", "bwd"), e.g.
# the hour/day tiers a store keeps, merged per group (bench/analyzer_year.py).
Data = Sequence[MinuteRollup] | Mapping[str, UnitTable]
SCORE_METHOD = LOSS_RATIO.id  # analyzer.methods: name and citation
WILSON_METHOD = LOSS_LEVEL.id


@dataclass(frozen=True)
class Comparison:
    """The figures behind one verdict. Delay values in ns; ``interval`` is on the ratio
    (``kind == "ratio"``) or on the level (``"level"``); ``method`` an id of
    :mod:`analyzer.methods`."""

    decision: Decision
    current_n: int = 0
    current_value: float | None = None
    baseline_n: int | None = None
    baseline_value: float | None = None
    interval: Interval | None = None
    kind: str = "ratio"
    threshold: float | None = None
    clock_error: float | None = None
    more_samples: int | None = None
    method: str = ""
    bootstrap: BootstrapInfo | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _table(data: Data, which: str, unit_minutes: int) -> UnitTable:
    if isinstance(data, Mapping):
        return data[which]
    return table_from_rollups(data, which, unit_minutes)


def _with_unit(c: Comparison, unit_minutes: int) -> Comparison:
    """Record the unit size in the bootstrap info (the block length is in units), and say in
    the reason of an INCONCLUSIVE result how many more samples would decide it."""
    if c.bootstrap is not None:
        c = replace(c, bootstrap=replace(c.bootstrap, unit_minutes=unit_minutes))
    if c.decision.verdict is Verdict.INCONCLUSIVE and c.more_samples:
        c = replace(c, decision=replace(c.decision, reason=f"{c.decision.reason}; about "
                                        f"{c.more_samples} more samples per window would "
                                        "decide it (power 0.8)"))
    return c


def _ne(why: str, **kw: Any) -> Comparison:
    return Comparison(Decision(Verdict.NOT_EVALUABLE, why), **kw)


def _too_few(t: UnitTable, stat: str, label: str) -> str | None:
    n = t.samples if stat == "loss_ratio" else int(t.n.sum())
    need = MIN_LOSS_SAMPLES if stat == "loss_ratio" else MIN_DELAY_SAMPLES
    if n < need:
        return f"too few samples: {label} has {n}, needs {need}"
    if stat != "loss_ratio" and len(t) < MIN_UNITS:
        return f"too few samples: {label} spans {len(t)} time units, needs {MIN_UNITS}"
    return None


def _more(n: int, factor: float | None) -> int | None:
    return None if factor is None else math.ceil(n * (factor - 1))


def compare_ratio(cur: Data, other: Data, theta: float, statistic: str, seed: int,
                  replicates: int, unit_minutes: int, paired: bool = False) -> Comparison:
    """current / other against theta: ``other`` is the baseline (another window, resampled on
    its own) or, with ``paired``, the reference scope over the same window (resampled with
    the same time blocks)."""
    return _with_unit(_compare_ratio(cur, other, theta, statistic, seed, replicates,
                                     unit_minutes, paired), unit_minutes)


def _compare_ratio(cur: Data, other: Data, theta: float, statistic: str, seed: int,
                   replicates: int, unit_minutes: int, paired: bool) -> Comparison:
    series, stat = STAT_MAP[statistic]
    if series == "owd":
        parts = [_delay_ratio(cur, other, theta, which, stat, seed + i, replicates,
                              unit_minutes, paired) for i, which in enumerate(("fwd", "bwd"))]
        return _directions(parts)
    if stat == "loss_ratio":
        return _loss_ratio(_table(cur, "rtt", unit_minutes),
                           _table(other, "rtt", unit_minutes), theta)
    return _delay_ratio(cur, other, theta, "rtt", stat, seed, replicates, unit_minutes, paired)


def _delay_ratio(cur: Data, other: Data, theta: float, which: str, stat: str, seed: int,
                 replicates: int, unit_minutes: int, paired: bool = False) -> Comparison:
    ct = _table(cur, which, unit_minutes)
    bt = _table(other, which, unit_minutes)
    figures: dict[str, Any] = {"current_n": int(ct.n.sum()), "baseline_n": int(bt.n.sum()),
               "current_value": point_statistic(ct, stat),
               "baseline_value": point_statistic(bt, stat), "threshold": theta}
    why = _too_few(ct, stat, "current") or _too_few(bt, stat, "baseline")
    if why:
        return _ne(why, **figures)
    boot = bootstrap_paired_ratio if paired else bootstrap_ratio
    iv, info = boot(ct, bt, stat, theta, seed, replicates)
    if not (math.isfinite(iv.low) and math.isfinite(iv.high)):
        return _ne("ratio undefined (baseline statistic is zero)", **figures)
    d = decide_ratio(iv, theta)
    more = _more(figures["current_n"], bootstrap_sample_factor(iv, theta)) \
        if d.verdict is Verdict.INCONCLUSIVE else None
    return Comparison(d, interval=iv, more_samples=more, method=info.method, bootstrap=info,
                      details={"direction": which}, **figures)


def _loss_ratio(ct: UnitTable, bt: UnitTable, theta: float) -> Comparison:
    n1, x1, n0, x0 = ct.samples, float(ct.lost.sum()), bt.samples, float(bt.lost.sum())
    figures: dict[str, Any] = {"current_n": n1, "baseline_n": n0, "threshold": theta,
                               "current_value": x1 / n1 if n1 else None,
                               "baseline_value": x0 / n0 if n0 else None}
    why = _too_few(ct, "loss_ratio", "current") or _too_few(bt, "loss_ratio", "baseline")
    if why:
        return _ne(why, **figures)
    if x0 == 0:
        return _ne(f"zero baseline loss: the ratio is undefined; baseline loss ratio 95% upper "
                   f"bound {zero_loss_upper(n0):.3g} (0 of {n0})", method=ZERO_LOSS.id,
                   **figures)
    (phi1, k1), (phi0, k0) = loss_dispersion(ct), loss_dispersion(bt)
    df = _df(phi1, k1, phi0, k0)
    iv = ratio_score_ci(x1 / phi1, n1 / phi1, x0 / phi0, n0 / phi0, theta, df=df)
    d = decide_ratio(iv, theta)
    more = None
    if d.verdict is Verdict.INCONCLUSIVE:
        need = loss_sample_size(x0 / n0, x1 / n1, theta, max(phi0, phi1))
        more = None if need is None else max(0, math.ceil(need - n1))
    return Comparison(d, interval=iv, more_samples=more, method=SCORE_METHOD,
                      details={"dispersion_current": round(phi1, 4),
                               "dispersion_baseline": round(phi0, 4), "t_df": df},
                      **figures)


def loss_dispersion(t: UnitTable) -> tuple[float, int]:
    """Dispersion phi of the loss counts over blocks of time and the number of blocks it rests
    on: the larger phi of blocks of b and 2b units (b by Politis-White on the per-unit loss
    ratio, capped to keep MIN_BLOCKS blocks). Losses correlated across minutes (outages, bursts
    longer than a minute; RFC 3357) inflate the variance of the total, which per-minute counts
    alone miss; blocks cut through bursts, hence the larger of two block sizes. Calibration in
    docs/methodology.md."""
    b = max(1, min(block_length(t, "loss_ratio"), len(t) // MIN_BLOCKS))
    best = (1.0, len(t))
    for k in sorted({b, max(1, min(2 * b, len(t) // MIN_BLOCKS))}):
        blocks = t.blocks(k)
        phi = dispersion(blocks.lost, blocks.sent)
        if phi >= best[0]:
            best = (phi, len(blocks))
    return best


def _df(phi1: float, k1: int, phi0: float, k0: int) -> int | None:
    """Degrees of freedom behind the estimated dispersions (None when neither is over 1)."""
    ks = [k - 1 for phi, k in ((phi1, k1), (phi0, k0)) if phi > 1.0 and k > 1]
    return min(ks) if ks else None


def _directions(parts: list[Comparison]) -> Comparison:
    """Each direction must meet the target: combine, keep the worse direction's figures."""
    fwd, bwd = parts
    d = both_directions(fwd.decision, bwd.decision)
    worst = max(parts, key=lambda c: -math.inf if c.interval is None else c.interval.high)
    more = max((c.more_samples for c in parts if c.more_samples is not None), default=None)
    details = {**worst.details, "directions": {
        "fwd": {"verdict": fwd.decision.verdict.value, "value": fwd.current_value},
        "bwd": {"verdict": bwd.decision.verdict.value, "value": bwd.current_value}}}
    return replace(worst, decision=d, more_samples=more, details=details)


def compare_absolute(cur: Data, limit: float, statistic: str, seed: int,
                     replicates: int, unit_minutes: int) -> Comparison:
    """The current level against ``limit`` (ns for delays, a ratio for loss)."""
    return _with_unit(_compare_absolute(cur, limit, statistic, seed, replicates, unit_minutes),
                      unit_minutes)


def _compare_absolute(cur: Data, limit: float, statistic: str, seed: int, replicates: int,
                      unit_minutes: int) -> Comparison:
    series, stat = STAT_MAP[statistic]
    if stat == "loss_ratio":
        return _loss_level(_table(cur, "rtt", unit_minutes), limit)
    if series == "owd":
        rtt = _table(cur, "rtt", unit_minutes)
        parts = [_owd_level(_table(cur, which, unit_minutes), rtt, limit, stat,
                            seed + i, replicates) for i, which in enumerate(("fwd", "bwd"))]
        return _directions(parts)
    return _level(_table(cur, "rtt", unit_minutes), limit, stat, seed, replicates)


def _level(t: UnitTable, limit: float, stat: str, seed: int, replicates: int,
           clock_error: float = 0.0) -> Comparison:
    figures: dict[str, Any] = {"current_n": int(t.n.sum()),
                               "current_value": point_statistic(t, stat),
                               "threshold": limit, "kind": "level"}
    why = _too_few(t, stat, "current")
    if why:
        return _ne(why, **figures)
    iv, info = bootstrap_level(t, stat, limit, seed, replicates)
    if clock_error:  # p-values against the limit shifted by E (PASS needs U + E < T)
        shifted, _ = bootstrap_level(t, stat, limit - clock_error, seed, replicates)
        iv = replace(iv, p_below=shifted.p_below)
    d = decide_absolute(iv, limit, clock_error, 1e6, " ms")
    more = _more(figures["current_n"], bootstrap_sample_factor(iv, limit)) \
        if d.verdict is Verdict.INCONCLUSIVE else None
    return Comparison(d, interval=iv, more_samples=more, method=info.method, bootstrap=info,
                      clock_error=clock_error or None, **figures)


def _owd_level(t: UnitTable, rtt: UnitTable, limit: float, stat: str, seed: int,
               replicates: int) -> Comparison:
    point = point_statistic(t, stat)
    e = t.clock_error_ns
    why = _too_few(t, stat, "current")
    gate = None if why else clock_gate(t.unsynced, point, e)
    if gate is not None or why:
        fallback = _level(rtt, limit, stat, seed, replicates)  # RTT_net, clock-free
        free = clock_free(fallback.interval, limit) if fallback.interval else None
        if free is not None:
            return replace(fallback, decision=free, details={"clock_free": True})
        reason = why or (gate.reason if gate else "")
        return _ne(reason, current_n=int(t.n.sum()), current_value=point, threshold=limit,
                   kind="level", clock_error=e)
    c = _level(t, limit, stat, seed, replicates, e)
    notes = []
    if clock_limited(point, e):
        notes.append(f"clock-limited (E/d = {e / point:.4g} > 0.1)")
    faults = int(rtt.n.sum() - t.n.sum())  # RTT_net kept, this one-way delay discarded
    if faults > 0:
        notes.append(f"{faults} one-way delays discarded as clock faults (RFC 7679 §3.5)")
    if notes:
        c = replace(c, decision=replace(c.decision, reason="; ".join([c.decision.reason,
                                                                       *notes])),
                    details={**c.details, "clock_faults": max(faults, 0)})
    return c


def _loss_level(t: UnitTable, limit: float) -> Comparison:
    n, x = t.samples, float(t.lost.sum())
    figures: dict[str, Any] = {"current_n": n, "current_value": x / n if n else None,
                               "threshold": limit, "kind": "level"}
    why = _too_few(t, "loss_ratio", "current")
    if why:
        return _ne(why, **figures)
    phi, _ = loss_dispersion(t)
    iv = wilson_ci(x / phi, n / phi, limit)
    d = decide_absolute(iv, limit)
    more = None
    if d.verdict is Verdict.INCONCLUSIVE and iv.point != limit:
        p = max(iv.point, 1e-9)
        need = ((Z_975 + Z_80) ** 2) * p * (1 - p) / (p - limit) ** 2 * phi
        more = max(0, math.ceil(need - n))
    return Comparison(d, interval=iv, more_samples=more, method=WILSON_METHOD,
                      details={"dispersion_current": round(phi, 4)}, **figures)


def compare_declared(cur: Data, declared: tuple[float, str] | None,
                     theta: float, statistic: str, seed: int, replicates: int,
                     unit_minutes: int, scope: str | None = None,
                     why: str = "") -> Comparison:
    """current level / declared baseline value against theta (no baseline sampling error);
    ``scope`` says which declared scope the value came from (``details.declared_scope``)."""
    if declared is None:
        return _ne(why or f"the declared baseline gives no value for {statistic}")
    v = declared_ns(*declared)
    if v <= 0:
        return _ne("zero declared baseline: the ratio is undefined")
    level = compare_absolute(cur, theta * v, statistic, seed, replicates, unit_minutes)
    if level.interval is None:
        return replace(level, baseline_value=v, kind="ratio")
    iv = level.interval
    ratio = Interval(iv.point / v, iv.low / v, iv.high / v, iv.p_below, iv.p_above)
    d = decide_ratio(ratio, theta)
    out = replace(level, decision=d, interval=ratio, kind="ratio", baseline_value=v,
                  threshold=theta, details={**level.details, "declared": True,
                                            "declared_scope": scope})
    return _with_unit(out, unit_minutes)
