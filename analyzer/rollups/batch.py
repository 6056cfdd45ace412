"""Minute, hour and day rollups of a columnar batch, computed across the whole batch with numpy.

:func:`batch_rollups` gives, for the blocks of one batch (:mod:`analyzer.columns`), the minute
rollups of the batch's results and their hour and day folds. Instead of Python per result it
sorts the batch once into send order within each rollup key, (path, method, Type-P, minute),
and computes every statistic as a segmented reduction over that order (``reduceat``,
``bincount``, a cumulative maximum):

- sent, received, lost, errors (RFC 7680 §2.4), duplicates (RFC 7679 §3.4), Tmax, the clock
  error bound of the one-way results (RFC 7679 §3.7.3) and the unsynchronised ones;
- loss periods (RFC 3357 §4.1): a lost result starts a period unless the previous non-error
  result of its key, in send order, was lost; the longest period is the longest such run;
- reordering (RFC 4737 §3.3): per key and session in arrival order, an arrival whose sequence
  number is not above every earlier one's (below the next expected); a cumulative maximum;
- delays: exact integer sums, the sum of squares as ``float`` of its exact integer value
  (:func:`_sums`: one correctly rounded value, IEEE 754-2019 §5.4.1, independent of the order
  of the values), threshold counts, and DDSketch buckets (Masson et al., PVLDB 2019) counted
  per (series row, key) for the whole batch at once, encoded at once by
  :func:`analyzer.rollups.sketch_codec.encode_many`.

Hours and days fold the minute table (:func:`analyzer.rollups.tables.fold_units`), in minute
order. A batch whose keys each fall in one minute per hour (the usual case) reuses the minute
columns and sketch bytes. The per-result oracle of the property tests
(``tests/oracles/rollup_records.py``) gives the same rollups, the same floats bit for bit.

Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from operator import mul
from typing import Any

import numpy as np
import numpy.typing as npt

from analyzer.columns import ERROR, LOST, NULL, RECEIVED, Block, StreamIdent, path_and_type_p
from analyzer.rollups.model import NS_PER_MINUTE, MinuteRollup
from analyzer.rollups.sketch_codec import bucket_keys
from analyzer.rollups.tables import (
    NSERIES,
    Head,
    RollupTable,
    TierTables,
    bucket_counts,
    empty_table,
    fold_units,
    records,
)
from analyzer.rollups.tiers import TIER_MINUTES

Arr = npt.NDArray[Any]
Label = tuple[str, str, str]  # path id, method, Type-P key

_INTS = ("idx", "seq", "sent_at_ns", "tmax_ns", "rtt_ns", "fwd_ns", "bwd_ns", "clock_error_ns",
         "dup")
IDX, SEQ, SENT, TMAX, RTT, FWD, BWD, CLOCK_ERROR, DUP = range(len(_INTS))
_CODES = ("status", "src_synced", "dst_synced")
STATUS, SRC_SYNCED, DST_SYNCED = range(len(_CODES))

LIMB = 21  # sums of squares in two 21-bit limbs: exact in int64 for |v| < 2**42 ...
MAX_FAST_ABS, MAX_FAST_N = 1 << (2 * LIMB), 1 << 20  # ... and fewer than 2**20 values


@dataclass(frozen=True, slots=True)
class _Batch:
    """The batch's results in send order within each rollup key (``rollup._send_order``:
    key, session, seq, send time, then ``idx``), with the key of each."""

    ints: Arr  # (len(_INTS), N) int64
    codes: Arr  # (len(_CODES), N) int8
    key: Arr  # (label, minute, session) of each result as one increasing integer
    group: Arr  # index of the result's rollup key
    starts: Arr  # first position of each key
    lab: Arr  # label rank of each key (index into labels)
    minute: Arr  # minute of each key
    first: Arr  # block of each key's first result (by idx): its site and carrier labels
    labels: list[Label]  # sorted
    idents: list[StreamIdent]  # per block


def batch_rollups(blocks: Sequence[Block],
                  thresholds_ns: Sequence[int]) -> dict[str, list[MinuteRollup]]:
    """``{"minute": [...], "hour": [...], "day": [...]}``: the rollups of the results of
    ``blocks`` in ``idx`` order as records (see the module docstring)."""
    return records(batch_tables(blocks, thresholds_ns))


def batch_tables(blocks: Sequence[Block], thresholds_ns: Sequence[int]) -> TierTables:
    """:func:`batch_rollups` as tables, before any record is built: what the store keeps of a
    batch until it folds a run of batches into its rollup rows (:func:`merge_tables`)."""
    thresholds = list(dict.fromkeys(thresholds_ns))
    live = [b for b in blocks if b.n]
    if not live:
        empty = empty_table(len(thresholds))
        return TierTables(tuple(thresholds), [], {tier: empty for tier in TIER_MINUTES})
    batch = _arrange(live)
    copies = np.array([Counter(thresholds_ns)[t] for t in thresholds], np.int64)
    minutes = _minute_table(batch, np.array(thresholds, np.int64), copies)
    index: dict[Head, int] = {}
    source = np.array([index.setdefault(h, len(index)) for h in _heads(batch)], np.int64)
    minutes = replace(minutes, source=source)
    out = {"minute": minutes}
    for tier in ("hour", "day"):
        unit = minutes.minute - minutes.minute % TIER_MINUTES[tier]
        # None: every unit holds one minute, so the tier is the minute table relabelled
        out[tier] = fold_units(minutes, unit) or replace(minutes, minute=unit)
    return TierTables(tuple(thresholds), list(index), out)


# -- arranging the batch ----------------------------------------------------------------------
def _arrange(blocks: Sequence[Block]) -> _Batch:
    """Concatenate the blocks' columns and sort them by (label, minute, session, seq, send
    time, idx): the rollup keys in order, each in send order (a stable sort of the
    idx-ordered results). Label, minute and session are sorted as one integer."""
    nb = len(blocks)
    sizes = np.fromiter((b.n for b in blocks), np.int64, nb)
    ints, codes = _columns(blocks, _INTS, np.int64), _columns(blocks, _CODES, np.int8)
    own = [_label(b.ident) for b in blocks]
    labels, sessions = sorted(set(own)), sorted({b.ident.session for b in blocks})
    block = np.repeat(np.arange(nb), sizes)
    minute = ints[SENT] // NS_PER_MINUTE
    low = int(minute.min())
    span = int(minute.max()) - low + 1
    if len(labels) * span * len(sessions) >= 1 << 62:  # minutes far apart: rank them
        low, (minute, span) = 0, _dense(minute)
    ns = len(sessions)
    per_block = _ranks(own, labels) * (span * ns) + _ranks([b.ident.session for b in blocks],
                                                             sessions)
    key = per_block[block] + (minute - low) * ns  # (label, minute, session) as one integer
    order = np.lexsort((ints[IDX], ints[SENT], ints[SEQ], key))
    ints, codes = np.take(ints, order, axis=1), np.take(codes, order, axis=1)
    block, key = block[order], key[order]
    group_key = key // ns
    new = np.empty(len(key), bool)
    new[0] = True
    np.not_equal(group_key[1:], group_key[:-1], out=new[1:])
    starts = new.nonzero()[0]
    return _Batch(ints, codes, key, new.cumsum() - 1, starts, group_key[starts] // span,
                  ints[SENT][starts] // NS_PER_MINUTE,
                  np.minimum.reduceat(ints[IDX] * nb + block, starts) % nb,
                  labels, [b.ident for b in blocks])


def _columns(blocks: Sequence[Block], names: tuple[str, ...], dtype: type[Any]) -> Arr:
    """The named columns of all blocks as rows of one matrix. ``bytes.join`` copies the many
    small buffers with less overhead per array than ``np.concatenate`` (the block columns are
    contiguous arrays of ``dtype`` by construction; anything else takes np.concatenate)."""
    parts = [getattr(b, c) for c in names for b in blocks]
    try:
        flat = np.frombuffer(b"".join(parts), dtype)
    except (BufferError, TypeError, ValueError):  # a strided view: no contiguous buffer
        flat = np.zeros(0, dtype)
    if len(flat) != sum(len(p) for p in parts[:len(blocks)]) * len(names):
        flat = np.concatenate(parts).astype(dtype)
    return flat.reshape(len(names), -1)


@lru_cache(maxsize=1 << 16)
def _label(ident: StreamIdent) -> Label:
    """The (path, method, Type-P key) rollup label of a stream (streams recur every batch)."""
    path, type_p = path_and_type_p(ident)
    return path, ident.method, type_p


def _ranks(items: Sequence[Any], ordered: Sequence[Any]) -> Arr:
    rank = {x: i for i, x in enumerate(ordered)}
    return np.array([rank[x] for x in items], np.int64)


def _dense(x: Arr) -> tuple[Arr, int]:
    """Rank of each value among the distinct values, and how many there are."""
    distinct, rank = np.unique(x, return_inverse=True)
    return rank.astype(np.int64), len(distinct)


# -- minute rollups ---------------------------------------------------------------------------
def _minute_table(b: _Batch, thresholds: Arr, copies: Arr) -> RollupTable:
    """The minute rollups of the batch as a table."""
    g, starts, ints, codes = b.group, b.starts, b.ints, b.codes
    ng = len(starts)
    status = codes[STATUS].astype(np.int64)
    kinds = np.bincount(g * 3 + status, minlength=3 * ng).reshape(ng, 3).T
    received = status == RECEIVED
    delays = received & (ints[RTT:BWD + 1] != NULL)  # rtt, fwd, bwd present and received
    one_way = delays[1] | delays[2]
    counts = np.empty((8, ng), np.int64)
    counts[0] = kinds[RECEIVED] + kinds[LOST]
    counts[1:4] = kinds[[RECEIVED, LOST, ERROR]]
    counts[4] = np.add.reduceat(np.where(received, ints[DUP], 0), starts)
    counts[5] = _reordered(b, delays[0])
    peaks = np.empty((3, ng), np.int64)
    counts[6], peaks[0] = _loss_periods(status, g, ng)
    counts[7] = np.add.reduceat(one_way & ((codes[SRC_SYNCED] != 1) | (codes[DST_SYNCED] != 1)),
                                starts, dtype=np.int64)
    peaks[1] = np.maximum.reduceat(ints[TMAX], starts)
    bound = one_way & (ints[CLOCK_ERROR] != NULL)
    peaks[2] = np.maximum.reduceat(np.where(bound, np.maximum(ints[CLOCK_ERROR], 0), -1), starts)
    series, at = delays.nonzero()  # series-major: all rtt, then fwd, then bwd
    return _delay_table(b.lab, b.minute, np.arange(ng), counts, peaks,
                        ints[RTT:BWD + 1][series, at], series * ng + g[at], NSERIES * ng,
                        thresholds, copies)


def _loss_periods(status: Arr, g: Arr, ng: int) -> tuple[Arr, Arr]:
    """RFC 3357 §4.1 per key, over the send order with error records skipped (as
    ``rollup._loss_periods``): the number of loss periods and the longest one."""
    keep = status != ERROR
    lost, g = status[keep] == LOST, g[keep]
    start = lost.copy()
    start[1:] &= ~(lost[:-1] & (g[1:] == g[:-1]))
    periods = np.bincount(g[start], minlength=ng)
    longest = np.zeros(ng, np.int64)
    if start.any():
        run = start.cumsum() - 1
        np.maximum.at(longest, g[start], np.bincount(run[lost]))
    return periods, longest


def _reordered(b: _Batch, arrived: Arr) -> Arr:
    """RFC 4737 §3.3 per key (as ``rollup._reordered``): in arrival order per session (send
    time + RTT, ties in send order), arrivals whose sequence number is at most the largest
    one seen before, i.e. below the next expected one.

    The send order is by key, session and seq already: while no arrival overtakes an
    earlier-sent one of its session, that is only a repeated seq; otherwise the runs are
    sorted by arrival and a running maximum per run gives the answer."""
    ng = len(b.starts)
    run, g = b.key[arrived], b.group[arrived]  # run: (key, session)
    seq = b.ints[SEQ][arrived]
    if len(seq) < 2:
        return np.zeros(ng, np.int64)
    at = b.ints[SENT][arrived] + b.ints[RTT][arrived]
    same = run[1:] == run[:-1]
    if not (same & (at[1:] < at[:-1])).any():
        return np.bincount(g[1:][same & (seq[1:] == seq[:-1])], minlength=ng)
    order = np.lexsort((at, run))  # stable: ties stay in send order
    run, g, seq = run[order], g[order], seq[order]
    same = run[1:] == run[:-1]
    index = np.concatenate(([0], np.cumsum(~same)))
    top = int(seq.max()) + 1
    if top * (int(index[-1]) + 1) >= 1 << 62:
        seq, top = _dense(seq)
    key = index * top + seq  # increasing from one run to the next
    late = key[1:] <= np.maximum.accumulate(key)[:-1]
    return np.bincount(g[1:][late], minlength=ng)


def _delay_table(lab: Arr, minute: Arr, source: Arr, counts: Arr, peaks: Arr, values: Arr,
                 rows: Arr, nrows: int, thresholds: Arr, copies: Arr) -> RollupTable:
    """A table's delay columns from every delay value and its row (sorted by row), as
    ``DelayStats.extend`` of each row's values."""
    n = np.bincount(rows, minlength=nrows)
    live = (n > 0).nonzero()[0]
    at = (n.cumsum() - n)[live]  # start of each non-empty row in values
    lo, hi = np.zeros(nrows, np.int64), np.zeros(nrows, np.int64)
    below = np.zeros((nrows, len(thresholds)), np.int64)
    total, sumsq = _sums(values, at, live, nrows)
    if len(values):
        lo[live] = np.minimum.reduceat(values, at)
        hi[live] = np.maximum.reduceat(values, at)
        for j, (t, c) in enumerate(zip(thresholds.tolist(), copies.tolist(), strict=True)):
            below[live, j] = np.add.reduceat(values < t, at, dtype=np.int64) * c
    pos = values >= 1
    zero = np.bincount(rows[~pos], minlength=nrows)
    bucket_row, bucket_key, bucket_count = bucket_counts(rows[pos], bucket_keys(values[pos]))
    return RollupTable(lab, minute, source, counts, peaks, n, lo, hi, total, sumsq, below, zero,
                       bucket_row, bucket_key, bucket_count)


def _sums(values: Arr, at: Arr, live: Arr, nrows: int) -> tuple[Arr, Arr]:
    """Exact sum and ``float`` of the exact sum of squares (correctly rounded, as
    ``DelayStats.extend``) of the runs of ``values`` starting at ``at``, placed at rows
    ``live`` of ``nrows``.

    Where every square sum fits in int64 (|v| up to about 30 ms for 10**4 values) the
    squares are summed directly and converted once. Otherwise, with |v| < 2**42 and fewer
    than 2**20 values, ``v = h * 2**21 + l`` splits every square into limb products below
    2**42 whose run sums are exact in int64; carried into ``hi * 2**42 + lo`` (``lo < 2**42``),
    ``float(hi) * 2**42 + float(lo)`` is one IEEE addition of two exact floats when
    ``hi < 2**53``, so correctly rounded. Other runs (delays over an hour, or huge sums) are
    summed as Python ints."""
    total: Arr = np.zeros(nrows)
    sumsq = np.zeros(nrows)
    if not len(values):
        return total, sumsq
    top = max(-int(values.min()), int(values.max()))
    longest = int(np.diff(np.append(at, len(values))).max())
    if len(values) >= MAX_FAST_N or top >= MAX_FAST_ABS:
        ends = np.append(at[1:], len(values)).tolist()
        runs = [values[a:e].tolist() for a, e in zip(at.tolist(), ends, strict=True)]
        total[live] = [float(sum(run)) for run in runs]
        sumsq[live] = [float(sum(map(mul, run, run))) for run in runs]
        return total, sumsq
    total[live] = np.add.reduceat(values, at)  # exact in int64 (|v| < 2**42, n < 2**20)
    if top * top * longest < 1 << 63:
        sumsq[live] = np.add.reduceat(values * values, at)  # exact, converted once
    else:
        sumsq[live] = _limb_squares(values, at)
    return total, sumsq


def _limb_squares(values: Arr, at: Arr) -> Arr:
    """Correctly rounded sums of squares of runs of |v| < 2**42 (see :func:`_sums`)."""
    mag = np.abs(values)
    h, low = mag >> LIMB, mag & ((1 << LIMB) - 1)
    hh, hl, ll = (np.add.reduceat(x, at) for x in (h * h, h * low, low * low))
    # sum of squares = hh * 2**42 + hl * 2**22 + ll = hi * 2**42 + lo
    hi = hh + (hl >> (2 * LIMB - 22))
    lo = ll + ((hl & ((1 << (2 * LIMB - 22)) - 1)) << 22)
    hi += lo >> (2 * LIMB)
    lo &= (1 << (2 * LIMB)) - 1
    squares: Arr = hi.astype(np.float64) * float(1 << (2 * LIMB)) + lo.astype(np.float64)
    ends = np.append(at[1:], len(values))
    for i in np.flatnonzero(hi >= 1 << 53).tolist():  # beyond 2**95: not one rounding
        run = values[at[i]:ends[i]].tolist()
        squares[i] = float(sum(map(mul, run, run)))
    return squares


def _heads(b: _Batch) -> list[Head]:
    """The labels of each minute key: path, src site and carrier, dst site and carrier (from
    the key's first result), method, Type-P."""
    labels, idents = b.labels, b.idents
    return [(labels[lab][0], (i := idents[first]).src_site, i.src_carrier, i.dst_site,
             i.dst_carrier, *labels[lab][1:])
            for lab, first in zip(b.lab.tolist(), b.first.tolist(), strict=True)]


