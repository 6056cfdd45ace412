"""Metrics over minute rollups: per path, carrier pair, city pair or the whole scope.

Pure functions. A window's metrics are those of the merge of its minute rollups
(:func:`analyzer.rollups.model.merge`, exact and order-independent), so any window costs the same.

Definitions (docs/methodology.md has the full table):

- N, sent, received, lost, loss ratio: RFC 7680 §2.4 and §4.1 (the mean of the loss indicators;
  undefined for an empty sample); round-trip loss RFC 6673 §4.3; "N must be reported" RFC 2330
  §11.3. Error records are counted apart and are not samples.
- loss periods: RFC 3357 §4.1 (count; the longest is per minute, see ``merge``).
- delay statistics: min, median, mean, p95, p99, max of the *conditional* distribution (arrived
  packets only; RFC 6703 §3.1, §5.2, §5.3), percentiles as RFC 2330 §11.3 inverted-CDF ranks,
  the median per RFC 7679 §5.2; and the same percentiles with lost packets as +infinity
  (RFC 7679 §5.1, RFC 2681 §4.1), labelled ``loss=+inf``.
- PDV: p99 of D(i) - D(min) (RFC 5481 §4.2, §6.5).
- one-way delay: RFC 7679 §3.4, reported with the clock-error bound E (RFC 7679 §3.7.3) and the
  count of samples whose clocks were not both synchronised (RFC 4656 §4.1.2 S bit).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from analyzer.rollups.model import DelayStats, MinuteRollup, merge
from analyzer.rollups.sketch import DDSketch
from inventory.topology import PathEnds, group_key, pair_key

Per = Literal["scope", "carrier_pair", "city_pair", "path"]
CONDITIONAL = "conditional"
LOSS_INF = "loss=+inf"


@dataclass(frozen=True, slots=True)
class DelaySummary:
    """One delay series (ns). ``label`` says the distribution is conditional on arrival;
    ``inf_*`` are the percentiles with lost packets as +infinity (``loss=+inf``)."""

    kind: str  # rtt | fwd | bwd
    n: int
    min: float | None
    median: float | None
    mean: float | None
    p95: float | None
    p99: float | None
    max: float | None
    pdv_p99: float | None
    inf_median: float | None
    inf_p95: float | None
    inf_p99: float | None
    clock_error_ns: float | None = None
    label: str = CONDITIONAL


@dataclass(frozen=True, slots=True)
class Metrics:
    """Everything measured on one group of rollups over one window."""

    key: str
    minutes: int
    sent: int
    received: int
    lost: int
    errors: int
    duplicated: int
    reordered: int
    loss_ratio: float | None
    loss_periods: int
    loss_period_max: int
    tmax_ns: int
    unsynced: int
    rtt: DelaySummary
    fwd: DelaySummary
    bwd: DelaySummary


def inf_quantile(sketch: DDSketch, q: float, samples: int) -> float | None:
    """RFC 7679 §5.1 percentile with lost packets as +inf: rank ceil(q * samples) over all
    samples; +inf when that rank falls among the lost ones; None for an empty sample."""
    if samples <= 0:
        return None
    rank = max(1, math.ceil(q * samples - 1e-9))
    return sketch.value_at_rank(rank) if rank <= sketch.count else math.inf


def inf_median(sketch: DDSketch, samples: int) -> float | None:
    """RFC 7679 §5.2 median with lost packets as +inf (mean of the central two for even N)."""
    if samples <= 0:
        return None
    ranks = {(samples + 1) // 2, samples // 2 + 1}
    values = [sketch.value_at_rank(r) if r <= sketch.count else math.inf for r in ranks]
    return sum(values) / len(values)


def delay_summary(d: DelayStats, samples: int, kind: str,
                  clock_error_ns: float | None = None) -> DelaySummary:
    """Summary of one delay series; ``samples`` (received + lost) sets the +inf ranks."""
    p99 = d.sketch.quantile(0.99)
    pdv = None if p99 is None or d.min is None else max(0.0, p99 - d.min)
    return DelaySummary(
        kind=kind, n=d.n, min=_f(d.min), median=d.sketch.median(), mean=d.mean,
        p95=d.sketch.quantile(0.95), p99=p99, max=_f(d.max), pdv_p99=pdv,
        inf_median=inf_median(d.sketch, samples) if d.n else None,
        inf_p95=inf_quantile(d.sketch, 0.95, samples) if d.n else None,
        inf_p99=inf_quantile(d.sketch, 0.99, samples) if d.n else None,
        clock_error_ns=clock_error_ns)


def _f(v: int | None) -> float | None:
    return None if v is None else float(v)


def summarize(key: str, rollups: Sequence[MinuteRollup]) -> Metrics:
    """Metrics of the merge of ``rollups`` (RFC 7680 §4.1 loss ratio, RFC 3357 §4.1 periods)."""
    m = merge(rollups)
    samples = m.received + m.lost
    clock = None if m.clock_error_max_ns is None else float(m.clock_error_max_ns)
    return Metrics(
        key=key, minutes=len({r.minute for r in rollups}), sent=m.sent, received=m.received,
        lost=m.lost, errors=m.errors, duplicated=m.duplicated, reordered=m.reordered,
        loss_ratio=m.loss_ratio, loss_periods=m.loss_periods, loss_period_max=m.loss_period_max,
        tmax_ns=m.tmax_ns, unsynced=m.unsynced,
        rtt=delay_summary(m.rtt, samples, "rtt"),
        fwd=delay_summary(m.fwd, samples, "fwd", clock),
        bwd=delay_summary(m.bwd, samples, "bwd", clock))


def group_rollups(rollups: Iterable[MinuteRollup], per: str,
                  city_of: Callable[[str], str | None]) -> dict[str, list[MinuteRollup]]:
    """Rollups by group key, keys sorted."""
    out: dict[str, list[MinuteRollup]] = {}
    for r in rollups:
        ends = PathEnds(r.src_site, r.src_carrier, r.dst_site, r.dst_carrier)
        out.setdefault(group_key(ends, per, city_of), []).append(r)
    return {k: out[k] for k in sorted(out)}


def metrics_by(rollups: Iterable[MinuteRollup], per: str,
               city_of: Callable[[str], str | None]) -> list[Metrics]:
    """Metrics of each group, sorted by key."""
    return [summarize(k, v) for k, v in group_rollups(rollups, per, city_of).items()]


def carrier_matrix(rollups: Iterable[MinuteRollup]) -> dict[tuple[str, str], Metrics]:
    """Direction-aware carrier x carrier metrics: (source carrier, destination carrier)."""
    out: dict[tuple[str, str], list[MinuteRollup]] = {}
    for r in rollups:
        out.setdefault((r.src_carrier, r.dst_carrier), []).append(r)
    return {k: summarize(pair_key(*k), out[k]) for k in sorted(out)}


def ms(value: float | None) -> float | str | None:
    """ns -> ms rounded to 3 decimals for display (``"inf"`` for +inf); None stays None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if math.isinf(value):
        return "inf"
    return round(value / 1e6, 3)


def delay_to_dict(d: DelaySummary) -> dict[str, Any]:
    """JSON form in ms; conditional and loss=+inf statistics are labelled apart."""
    out: dict[str, Any] = {
        "n": d.n,
        CONDITIONAL: {name: ms(getattr(d, name)) for name in
                      ("min", "median", "mean", "p95", "p99", "max", "pdv_p99")},
        LOSS_INF: {"median": ms(d.inf_median), "p95": ms(d.inf_p95), "p99": ms(d.inf_p99)},
    }
    if d.kind != "rtt":
        out["clock_error_ms"] = ms(d.clock_error_ns)
    return out


def metrics_to_dict(m: Metrics) -> dict[str, Any]:
    """JSON form of one group's metrics (ms, 3 decimals; loss ratio to 6 decimals)."""
    return {
        "key": m.key, "minutes": m.minutes, "sent": m.sent, "received": m.received,
        "lost": m.lost, "errors": m.errors, "duplicated": m.duplicated,
        "reordered": m.reordered,
        "loss_ratio": None if m.loss_ratio is None else round(m.loss_ratio, 6),
        "loss_periods": m.loss_periods, "loss_period_max": m.loss_period_max,
        "tmax_ms": ms(m.tmax_ns), "unsynced": m.unsynced,
        "rtt": delay_to_dict(m.rtt), "fwd": delay_to_dict(m.fwd), "bwd": delay_to_dict(m.bwd),
    }
