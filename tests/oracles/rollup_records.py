"""Rollups built and merged record by record: the oracle of the batch computation's tests.

:func:`build_rollups` rolls results up one key at a time in plain Python, straight from the
definitions (RFC 7680 §2.4 counts, RFC 7679 §3.4 duplicates, RFC 3357 §4.1 loss periods,
RFC 4737 §3.3 reordering, DDSketch buckets); the product's batch computation
(:func:`analyzer.rollups.batch.batch_rollups`) must give the same rollups, the same floats bit
for bit. :func:`merge_parts` and :func:`fold` merge records left to right, the reference for
:func:`analyzer.rollups.tables.merge_tables` and the tier folds. Test code only: the product has
one rollup computation and one merge of stored rollups.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from operator import attrgetter, itemgetter, mul

from analyzer.rollups.model import (
    DEFAULT_THRESHOLDS_NS,
    NS_PER_MINUTE,
    SERIES,
    DelayStats,
    MinuteRollup,
    merge,
    merge_into,
)
from analyzer.rollups.tiers import unit_start
from ixmeter.core.record import Result, Status


def add(stats: DelayStats, value: int, thresholds: Sequence[int]) -> None:
    """Add one value. Everything but ``sumsq`` ends as :func:`extend` of the same values
    would leave it; ``sumsq`` here is a running float sum, so a series added value by value
    may differ from :func:`extend`'s correctly rounded one in the last bits."""
    stats.n += 1
    stats.min = value if stats.min is None else min(stats.min, value)
    stats.max = value if stats.max is None else max(stats.max, value)
    stats.sum += float(value)
    stats.sumsq += float(value) * float(value)
    stats.sketch.add(value)
    for t in thresholds:
        if value < t:
            stats.below[t] = stats.below.get(t, 0) + 1
        else:
            stats.below.setdefault(t, 0)


def extend(stats: DelayStats, values: list[int], thresholds: Sequence[int]) -> None:
    """Add a series at once: the counts, extremes, sum, sketch and threshold counts that
    :func:`add` of each value in turn gives (extremes and threshold counts read off the
    sorted values). The sum of squares adds ``float`` of the exact integer sum of ``v * v``:
    one correctly rounded value (IEEE 754-2019 §5.4.1 convertFromInt of the exact sum),
    independent of the order of the values and never less accurate than summing rounded
    squares in turn, so a vectorised computation (:mod:`analyzer.rollups.batch`) gives the
    same float bit for bit."""
    if not values:
        return
    ranked = sorted(values)
    stats.n += len(values)
    stats.min = ranked[0] if stats.min is None else min(stats.min, ranked[0])
    stats.max = ranked[-1] if stats.max is None else max(stats.max, ranked[-1])
    stats.sum += float(sum(values))
    stats.sumsq += float(sum(map(mul, values, values)))
    stats.sketch.extend(values)
    for t in thresholds:
        stats.below[t] = stats.below.get(t, 0) + bisect_left(ranked, t)


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
    (:func:`extend`), with the clock error bound and unsynchronised count of the
    one-way ones."""
    extend(out.rtt, [r.rtt_ns for r in received if r.rtt_ns is not None], thresholds)
    one_way = [r for r in received if r.fwd_ns is not None or r.bwd_ns is not None]
    if not one_way:
        return
    extend(out.fwd, [r.fwd_ns for r in one_way if r.fwd_ns is not None], thresholds)
    extend(out.bwd, [r.bwd_ns for r in one_way if r.bwd_ns is not None], thresholds)
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



def merge_parts(parts: Sequence[MinuteRollup]) -> MinuteRollup:
    """The parts (rollups of one key) merged left to right into one accumulator, ``minute``
    the earliest. A threshold count is kept only where every part with samples of its series
    has it, so a threshold added to the configuration mid-unit is never reported from a
    partial count. ``parts`` are left unchanged."""
    out = merge(parts[:1])
    for new in parts[1:]:
        shared = {name: set(getattr(out, name).below) & set(getattr(new, name).below)
                  for name in SERIES if getattr(out, name).n and getattr(new, name).n}
        merge_into(out, new)
        for name, keep in shared.items():
            stats = getattr(out, name)
            stats.below = {t: c for t, c in stats.below.items() if t in keep}
    return out


def fold(rollups: Iterable[MinuteRollup], tier: str) -> list[MinuteRollup]:
    """Rollups merged per key and unit of ``tier`` (in the order given), sorted by key; each
    result's ``minute`` is its unit's first minute."""
    groups: dict[tuple[str, str, str, int], list[MinuteRollup]] = {}
    for r in rollups:
        groups.setdefault((r.path_id, r.method, r.type_p, unit_start(r.minute, tier)),
                          []).append(r)
    out = []
    for key in sorted(groups):
        merged = merge_parts(groups[key])
        merged.minute = key[3]
        out.append(merged)
    return out
