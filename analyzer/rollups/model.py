"""The rollup model: one path x method x Type-P x UTC minute (or hour, or day), and its merge.

A :class:`MinuteRollup` summarises the results of one directed path, one method and one Type-P
(RFC 2330 §13) whose send time falls in one UTC unit. Counts follow the IPPM definitions:

- sent / received / lost: RFC 7680 §2.4 (lost = not received within Tmax); error records are
  counted apart (``errors``) and are not samples;
- duplicated: extra copies (RFC 7679 §3.4: the first copy counts);
- reordered: RFC 4737 §3.3, a packet whose sequence number is below the next expected one
  (the highest seen so far plus one) in arrival order;
- loss periods: RFC 3357 §4.1, a period starts at a lost packet whose predecessor was received;
- delay: exact min and max, sum and sum of squares (mean and variance), a DDSketch
  (:mod:`analyzer.rollups.sketch`) for quantiles, and exact counts below each policy threshold.

The product computes rollups a batch at a time (:mod:`analyzer.rollups.batch`); a per-result
reference lives under ``tests/oracles`` as the oracle of the property tests. All pure: no clock,
no I/O. Records are merged with :func:`merge`, exact for counts, sums and sketches and
independent of order; stored rollups merge as tables (:func:`analyzer.rollups.tables.merge_tables`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from analyzer.rollups.sketch import DEFAULT_ALPHA, DDSketch

NS_PER_MINUTE = 60_000_000_000
DEFAULT_THRESHOLDS_NS: tuple[int, ...] = (1_000_000, 3_000_000)
SERIES = ("rtt", "fwd", "bwd")  # the delay series of a rollup


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
        merge_into(out, r)
    return out


def merge_into(out: MinuteRollup, r: MinuteRollup) -> None:
    for name in ("sent", "received", "lost", "errors", "duplicated", "reordered",
                 "loss_periods", "unsynced"):
        setattr(out, name, getattr(out, name) + getattr(r, name))
    out.loss_period_max = max(out.loss_period_max, r.loss_period_max)
    out.tmax_ns = max(out.tmax_ns, r.tmax_ns)
    out.minute = min(out.minute, r.minute)
    for name in SERIES:
        getattr(out, name).merge(getattr(r, name))
    if r.clock_error_max_ns is not None:
        out.clock_error_max_ns = max(out.clock_error_max_ns or 0, r.clock_error_max_ns)
