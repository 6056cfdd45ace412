"""Per-minute rollups: the unit every window is rebuilt from.

A :class:`MinuteRollup` summarises the results of one directed path, one method and one Type-P
(RFC 2330 §13) whose send time falls in one UTC minute. Counts follow the IPPM definitions:

- sent / received / lost: RFC 7680 §2.4 (lost = not received within Tmax); error records are
  counted apart (``errors``) and are not samples;
- duplicated: extra copies (RFC 7679 §3.4: the first copy counts);
- reordered: RFC 4737 §3.3, a packet whose sequence number is below the next expected one
  (the highest seen so far plus one) in arrival order;
- loss periods: RFC 3357 §4.1, a period starts at a lost packet whose predecessor was received;
- delay: exact min, max, sum and sum of squares (mean and variance), a DDSketch
  (:mod:`analyzer.sketch`) for quantiles, and exact counts below each policy threshold.

All pure: no clock, no I/O. Windows are merged with :func:`merge`, which is exact for counts,
sums and sketches and independent of order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from analyzer.sketch import DEFAULT_ALPHA, DDSketch
from ixmeter.record import Result, Status

NS_PER_MINUTE = 60_000_000_000
DEFAULT_THRESHOLDS_NS: tuple[int, ...] = (1_000_000, 3_000_000)


@dataclass
class DelayStats:
    """Exact moments, extremes and a sketch of one delay series (ns), plus threshold counts."""

    n: int = 0
    min: int | None = None
    max: int | None = None
    sum: int = 0
    sumsq: float = 0.0
    sketch: DDSketch = field(default_factory=lambda: DDSketch(DEFAULT_ALPHA))
    below: dict[int, int] = field(default_factory=dict)  # threshold ns -> count strictly below

    def add(self, value: int, thresholds: Sequence[int]) -> None:
        self.n += 1
        self.min = value if self.min is None else min(self.min, value)
        self.max = value if self.max is None else max(self.max, value)
        self.sum += value
        self.sumsq += float(value) * float(value)
        self.sketch.add(value)
        for t in thresholds:
            if value < t:
                self.below[t] = self.below.get(t, 0) + 1
            else:
                self.below.setdefault(t, 0)

    def merge(self, other: DelayStats) -> None:
        if other.n == 0:
            for t in other.below:
                self.below.setdefault(t, 0)
            return
        self.n += other.n
        self.min = other.min if self.min is None else min(self.min, other.min or self.min)
        self.max = other.max if self.max is None else max(self.max, other.max or self.max)
        self.sum += other.sum
        self.sumsq += other.sumsq
        self.sketch.merge(other.sketch)
        for t, c in other.below.items():
            self.below[t] = self.below.get(t, 0) + c

    @property
    def mean(self) -> float | None:
        """Arithmetic mean of the conditional (arrived-only) sample (RFC 6703 §5.2)."""
        return self.sum / self.n if self.n else None


@dataclass
class MinuteRollup:
    """One path x method x Type-P x minute. ``minute`` is Unix time // 60 (UTC)."""

    path_id: str
    src_site: str
    src_carrier: str
    dst_site: str
    dst_carrier: str
    method: str
    type_p: str
    minute: int
    sent: int = 0
    received: int = 0
    lost: int = 0
    errors: int = 0
    duplicated: int = 0
    reordered: int = 0
    loss_periods: int = 0
    loss_period_max: int = 0
    tmax_ns: int = 0
    rtt: DelayStats = field(default_factory=DelayStats)
    fwd: DelayStats = field(default_factory=DelayStats)
    bwd: DelayStats = field(default_factory=DelayStats)
    clock_error_max_ns: int | None = None
    unsynced: int = 0  # results with a one-way delay whose clocks were not both synchronised

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.path_id, self.method, self.type_p, self.minute)

    @property
    def loss_ratio(self) -> float | None:
        """Mean of the loss indicators (RFC 7680 §4.1); undefined (None) for no sample."""
        samples = self.received + self.lost
        return self.lost / samples if samples else None


def minute_of(sent_at_ns: int) -> int:
    """UTC minute index of a send time."""
    return sent_at_ns // NS_PER_MINUTE


def build_rollups(results: Iterable[Result],
                  thresholds_ns: Sequence[int] = DEFAULT_THRESHOLDS_NS) -> list[MinuteRollup]:
    """Roll results up per (path, method, Type-P, minute). Sorted by key; deterministic.

    Loss periods and reordering are computed within each minute from the results given, in
    sequence order (send order); pass all results of a minute to get exact figures.
    """
    groups: dict[tuple[str, str, str, int], list[Result]] = {}
    for r in results:
        k = (r.path_id, r.method.value, r.type_p.key(), minute_of(r.sent_at_ns))
        groups.setdefault(k, []).append(r)
    return [_rollup(k, groups[k], thresholds_ns) for k in sorted(groups)]


def _rollup(key: tuple[str, str, str, int], results: list[Result],
            thresholds: Sequence[int]) -> MinuteRollup:
    first = results[0]
    out = MinuteRollup(key[0], first.src_site, first.src_carrier, first.dst_site,
                       first.dst_carrier, key[1], key[2], key[3])
    ordered = sorted(results, key=lambda r: (r.session, r.seq, r.sent_at_ns))
    for r in ordered:
        _count(out, r, thresholds)
    _loss_periods(out, ordered)
    out.reordered = _reordered(ordered)
    return out


def _count(out: MinuteRollup, r: Result, thresholds: Sequence[int]) -> None:
    out.tmax_ns = max(out.tmax_ns, r.tmax_ns)
    if r.status is Status.ERROR:
        out.errors += 1
        return
    out.sent += 1
    if r.status is Status.LOST:
        out.lost += 1
        return
    out.received += 1
    out.duplicated += r.dup
    if r.rtt_ns is not None:
        out.rtt.add(r.rtt_ns, thresholds)
    if r.fwd_ns is not None or r.bwd_ns is not None:
        _one_way(out, r, thresholds)


def _one_way(out: MinuteRollup, r: Result, thresholds: Sequence[int]) -> None:
    if r.fwd_ns is not None:
        out.fwd.add(r.fwd_ns, thresholds)
    if r.bwd_ns is not None:
        out.bwd.add(r.bwd_ns, thresholds)
    if r.clock_error_ns is not None:
        out.clock_error_max_ns = max(out.clock_error_max_ns or 0, r.clock_error_ns)
    if not (r.src_synced and r.dst_synced):
        out.unsynced += 1


def _loss_periods(out: MinuteRollup, ordered: list[Result]) -> None:
    """RFC 3357 §4.1: count periods of consecutive losses and the longest one."""
    run = 0
    for r in ordered:
        if r.status is Status.ERROR:
            continue
        if r.status is Status.LOST:
            run += 1
            if run == 1:
                out.loss_periods += 1
            out.loss_period_max = max(out.loss_period_max, run)
        else:
            run = 0


def _reordered(ordered: list[Result]) -> int:
    """RFC 4737 §3.3: arrivals whose sequence number is below the next expected one."""
    arrived = [r for r in ordered if r.status is Status.RECEIVED and r.rtt_ns is not None]
    arrived.sort(key=lambda r: (r.session, r.sent_at_ns + (r.rtt_ns or 0)))
    count, expected, session = 0, -1, None
    for r in arrived:
        if r.session != session:
            session, expected = r.session, -1
        if r.seq < expected:
            count += 1
        else:
            expected = r.seq + 1
    return count


def merge(rollups: Iterable[MinuteRollup]) -> MinuteRollup:
    """Sum rollups (any paths, minutes) into one aggregate; labels from the first one.

    Exact and order-independent for counts, sums, extremes, threshold counts and sketches.
    ``loss_period_max`` is the longest period within a minute, not across minutes.
    """
    items = list(rollups)
    if not items:
        raise ValueError("merge() of no rollups")
    f = items[0]
    out = MinuteRollup(f.path_id, f.src_site, f.src_carrier, f.dst_site, f.dst_carrier,
                       f.method, f.type_p, f.minute)
    for r in items:
        _merge_into(out, r)
    return out


def _merge_into(out: MinuteRollup, r: MinuteRollup) -> None:
    for name in ("sent", "received", "lost", "errors", "duplicated", "reordered",
                 "loss_periods", "unsynced"):
        setattr(out, name, getattr(out, name) + getattr(r, name))
    out.loss_period_max = max(out.loss_period_max, r.loss_period_max)
    out.tmax_ns = max(out.tmax_ns, r.tmax_ns)
    out.minute = min(out.minute, r.minute)
    out.rtt.merge(r.rtt)
    out.fwd.merge(r.fwd)
    out.bwd.merge(r.bwd)
    if r.clock_error_max_ns is not None:
        out.clock_error_max_ns = max(out.clock_error_max_ns or 0, r.clock_error_max_ns)
