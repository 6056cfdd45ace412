"""Per-minute rollups: the unit every window is rebuilt from.

A :class:`MinuteRollup` summarises the results of one directed path, one method and one Type-P
(RFC 2330 §13) whose send time falls in one UTC minute. Counts follow the IPPM definitions:

- sent / received / lost: RFC 7680 §2.4 (lost = not received within Tmax); error records are
  counted apart (``errors``) and are not samples;
- duplicated: extra copies (RFC 7679 §3.4: the first copy counts);
- reordered: RFC 4737 §3.3, a packet whose sequence number is below the next expected one
  (the highest seen so far plus one) in arrival order;
- loss periods: RFC 3357 §4.1, a period starts at a lost packet whose predecessor was received;
- delay: exact min and max, sum and sum of squares (mean and variance), a DDSketch
  (:mod:`analyzer.sketch`) for quantiles, and exact counts below each policy threshold.

All pure: no clock, no I/O. Windows are merged with :func:`merge`, which is exact for counts,
sums and sketches and independent of order.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter, mul

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
    sum: float = 0.0  # float of each series' exact integer sum, added in order
    sumsq: float = 0.0
    sketch: DDSketch = field(default_factory=lambda: DDSketch(DEFAULT_ALPHA))
    below: dict[int, int] = field(default_factory=dict)  # threshold ns -> count strictly below

    def add(self, value: int, thresholds: Sequence[int]) -> None:
        """Add one value. Everything but ``sumsq`` ends as :meth:`extend` of the same values
        would leave it; ``sumsq`` here is a running float sum, so a series added value by value
        may differ from :meth:`extend`'s correctly rounded one in the last bits."""
        self.n += 1
        self.min = value if self.min is None else min(self.min, value)
        self.max = value if self.max is None else max(self.max, value)
        self.sum += float(value)
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
        if other.min is not None:  # a minimum of 0 counts too (0 ns one-way delays happen)
            self.min = other.min if self.min is None else min(self.min, other.min)
        if other.max is not None:
            self.max = other.max if self.max is None else max(self.max, other.max)
        self.sum += other.sum
        self.sumsq += other.sumsq
        self.sketch.merge(other.sketch)
        for t, c in other.below.items():
            self.below[t] = self.below.get(t, 0) + c

    def extend(self, values: list[int], thresholds: Sequence[int]) -> None:
        """Add a series at once: the counts, extremes, sum, sketch and threshold counts that
        :meth:`add` of each value in turn gives (extremes and threshold counts read off the
        sorted values). The sum of squares adds ``float`` of the exact integer sum of ``v * v``:
        one correctly rounded value (IEEE 754-2019 §5.4.1 convertFromInt of the exact sum),
        independent of the order of the values and never less accurate than summing rounded
        squares in turn, so a vectorised computation (:mod:`analyzer.rollup_columns`) gives the
        same float bit for bit."""
        if not values:
            return
        ranked = sorted(values)
        self.n += len(values)
        self.min = ranked[0] if self.min is None else min(self.min, ranked[0])
        self.max = ranked[-1] if self.max is None else max(self.max, ranked[-1])
        self.sum += float(sum(values))
        self.sumsq += float(sum(map(mul, values, values)))
        self.sketch.extend(values)
        for t in thresholds:
            self.below[t] = self.below.get(t, 0) + bisect_left(ranked, t)

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
                  thresholds_ns: Sequence[int] = DEFAULT_THRESHOLDS_NS,
                  labels: Sequence[tuple[str, str, str]] | None = None) -> list[MinuteRollup]:
    """Roll results up per (path, method, Type-P, minute). Sorted by key; deterministic.

    Loss periods and reordering are computed within each minute from the results given, in
    sequence order (send order); pass all results of a minute to get exact figures.
    ``labels``, if given, are the (path, method, Type-P key) of each result, for callers that
    derive them once per stream (the store) instead of once per result.
    """
    items = list(results)
    if labels is None:
        labels = [(r.path_id, r.method.value, r.type_p.key()) for r in items]
    groups: dict[tuple[tuple[str, str, str], int], list[Result]] = {}
    for r, label in zip(items, labels, strict=True):
        k = (label, r.sent_at_ns // NS_PER_MINUTE)
        if (group := groups.get(k)) is None:
            groups[k] = [r]
        else:
            group.append(r)
    return [_rollup((*k[0], k[1]), groups[k], thresholds_ns) for k in sorted(groups)]


def _rollup(key: tuple[str, str, str, int], results: list[Result],
            thresholds: Sequence[int]) -> MinuteRollup:
    first = results[0]
    out = MinuteRollup(key[0], first.src_site, first.src_carrier, first.dst_site,
                       first.dst_carrier, key[1], key[2], key[3])
    ordered = sorted(results, key=_send_order)
    received = _count(out, ordered)
    _loss_periods(out, ordered)
    _delays(out, received, thresholds)
    out.reordered = _reordered(ordered)
    return out


_send_order = attrgetter("session", "seq", "sent_at_ns")


def _count(out: MinuteRollup, ordered: list[Result]) -> list[Result]:
    """Sample counts (RFC 7680 §2.4: sent = received + lost; errors are no samples) and
    duplicates (RFC 7679 §3.4); returns the received results."""
    error, lost = Status.ERROR, Status.LOST
    out.tmax_ns = max(out.tmax_ns, max(r.tmax_ns for r in ordered))
    samples = [r for r in ordered if r.status is not error]
    received = [r for r in samples if r.status is not lost]
    out.errors += len(ordered) - len(samples)
    out.sent += len(samples)
    out.lost += len(samples) - len(received)
    out.received += len(received)
    out.duplicated += sum(r.dup for r in received)
    return received


def _delays(out: MinuteRollup, received: list[Result], thresholds: Sequence[int]) -> None:
    """Add the round-trip and one-way delays of the received results, each series at once
    (:meth:`DelayStats.extend`), with the clock error bound and unsynchronised count of the
    one-way ones."""
    out.rtt.extend([r.rtt_ns for r in received if r.rtt_ns is not None], thresholds)
    one_way = [r for r in received if r.fwd_ns is not None or r.bwd_ns is not None]
    if not one_way:
        return
    out.fwd.extend([r.fwd_ns for r in one_way if r.fwd_ns is not None], thresholds)
    out.bwd.extend([r.bwd_ns for r in one_way if r.bwd_ns is not None], thresholds)
    for r in one_way:
        if r.clock_error_ns is not None:
            out.clock_error_max_ns = max(out.clock_error_max_ns or 0, r.clock_error_ns)
    out.unsynced += sum(1 for r in one_way if not (r.src_synced and r.dst_synced))


def _loss_periods(out: MinuteRollup, ordered: list[Result]) -> None:
    """RFC 3357 §4.1: count periods of consecutive losses and the longest one."""
    error, lost = Status.ERROR, Status.LOST
    run, periods, longest = 0, out.loss_periods, out.loss_period_max
    for r in ordered:
        status = r.status
        if status is lost:
            run += 1
            if run == 1:
                periods += 1
            if run > longest:
                longest = run
        elif status is not error:
            run = 0
    out.loss_periods, out.loss_period_max = periods, longest


def _reordered(ordered: list[Result]) -> int:
    """RFC 4737 §3.3: arrivals whose sequence number is below the next expected one.
    Arrival order is (session, send time + RTT), ties in send order (a stable sort)."""
    received = Status.RECEIVED
    arrived = [(r.session, r.sent_at_ns + r.rtt_ns, r.seq) for r in ordered
               if r.status is received and r.rtt_ns is not None]
    arrived.sort(key=_arrival)
    count, expected, session = 0, -1, None
    for sess, _at, seq in arrived:
        if sess != session:
            session, expected = sess, -1
        if seq < expected:
            count += 1
        else:
            expected = seq + 1
    return count


_arrival = itemgetter(0, 1)


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
