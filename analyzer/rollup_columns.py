"""Minute, hour and day rollups of a columnar batch, computed across the whole batch with numpy.

:func:`batch_rollups` gives for the blocks of one batch (:mod:`analyzer.columns`) exactly what
the reference gives for the batch's results in ``idx`` order: :func:`analyzer.rollup.build_rollups`
for the minutes and :func:`analyzer.store.tiers.fold` of those minutes for hours and days, equal
as stored rows (:func:`analyzer.store.rows.rollup_row`: same ints, the same floats bit for bit,
the same sketch bytes). Instead of Python per result it sorts the batch once into send order
within each rollup key, (path, method, Type-P, minute), and computes every statistic as a
segmented reduction over that order (``reduceat``, ``bincount``, a cumulative maximum):

- sent, received, lost, errors (RFC 7680 §2.4), duplicates (RFC 7679 §3.4), Tmax, the clock
  error bound of the one-way results (RFC 7679 §3.7.3) and the unsynchronised ones;
- loss periods (RFC 3357 §4.1): a lost result starts a period unless the previous non-error
  result of its key, in send order, was lost; the longest period is the longest such run;
- reordering (RFC 4737 §3.3): per key and session in arrival order, an arrival whose sequence
  number is not above every earlier one's (below the next expected); a cumulative maximum;
- delays: exact integer sums, the sum of squares as ``float`` of its exact integer value
  (:func:`_sums`, as :meth:`analyzer.rollup.DelayStats.extend`), threshold counts, and
  DDSketch buckets (Masson et al., PVLDB 2019) counted per (series row, key) for the whole
  batch at once, encoded at once by :func:`analyzer.store.sketchcols.encode_many` into
  :class:`~analyzer.store.rows.LazySketch` es the store writes without re-encoding.

Hours and days fold the minute columns as ``tiers.fold`` merges minute rollups, in minute
order: sums of squares are float sums in that order, minima and maxima over the minutes with
samples, ``loss_period_max`` stays
the longest within one minute. A batch whose keys each fall in one minute per hour (the usual
case) reuses the minute columns and sketch bytes.

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
from analyzer.rollup import NS_PER_MINUTE, DelayStats, MinuteRollup
from analyzer.store.rows import LazySketch
from analyzer.store.sketchcols import bucket_keys, encode_many
from analyzer.store.tiers import TIER_MINUTES

Arr = npt.NDArray[Any]
Label = tuple[str, str, str]  # path id, method, Type-P key

# Rows of the batch matrix, in send order after _arrange.
_INTS = ("idx", "seq", "sent_at_ns", "tmax_ns", "rtt_ns", "fwd_ns", "bwd_ns", "clock_error_ns",
         "dup")
IDX, SEQ, SENT, TMAX, RTT, FWD, BWD, CLOCK_ERROR, DUP = range(len(_INTS))
_CODES = ("status", "src_synced", "dst_synced")
STATUS, SRC_SYNCED, DST_SYNCED = range(len(_CODES))

SERIES = 3  # rtt, fwd, bwd: a table's delay columns have SERIES * G rows, series-major
KEY_BITS = 16  # sketch keys of int64 values are below 2**13 at alpha 0.005
LIMB = 21  # sums of squares in two 21-bit limbs: exact in int64 for |v| < 2**42 ...
MAX_FAST_ABS, MAX_FAST_N = 1 << (2 * LIMB), 1 << 20  # ... and fewer than 2**20 values
DENSE_CELLS = 1 << 15  # (row, key) grids up to this size count buckets with one bincount
INT64_MIN, INT64_MAX = NULL, int(np.iinfo(np.int64).max)


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


@dataclass(frozen=True, slots=True)
class RollupTable:
    """One tier's rollups as columns, one per key (G keys); delay columns have SERIES * G rows
    (all rtt rows, then fwd, then bwd), sketch buckets are sorted by (row, key)."""

    lab: Arr
    minute: Arr
    source: Arr  # minute key whose labels each key takes (its first minute)
    counts: Arr  # (8, G): sent, received, lost, errors, duplicated, reordered, loss periods,
    # unsynced
    peaks: Arr  # (3, G): loss_period_max, tmax_ns, clock_error_max_ns (-1: none)
    n: Arr
    lo: Arr  # min (meaningless where n == 0)
    hi: Arr  # max
    total: Arr  # sum: float64 of each row's exact integer sum, added in order when merged
    sumsq: Arr  # float64
    below: Arr  # (rows, len(thresholds)) counts strictly below each distinct threshold
    zero: Arr  # sketch zero bucket
    bucket_row: Arr
    bucket_key: Arr
    bucket_count: Arr


Head = tuple[str, str, str, str, str, str, str]
"""A key's labels: path, src site, src carrier, dst site, dst carrier, method, Type-P key."""


@dataclass(frozen=True, slots=True)
class TierTables:
    """Rollups of every tier (``minute``, ``hour``, ``day``) as tables; each table's ``source``
    indexes ``heads``, and its ``below`` columns follow ``thresholds`` (distinct values)."""

    thresholds: tuple[int, ...]
    heads: list[Head]
    tiers: dict[str, RollupTable]


def batch_rollups(blocks: Sequence[Block],
                  thresholds_ns: Sequence[int]) -> dict[str, list[MinuteRollup]]:
    """``{"minute": build_rollups(results), "hour": fold(minutes, "hour"), "day": ...}`` for
    the results of ``blocks`` in ``idx`` order, exactly (see the module docstring)."""
    return records(batch_tables(blocks, thresholds_ns))


def batch_tables(blocks: Sequence[Block], thresholds_ns: Sequence[int]) -> TierTables:
    """:func:`batch_rollups` as tables, before any record is built: what the store keeps of a
    batch until it folds a run of batches into its rollup rows (:func:`merge_tables`)."""
    thresholds = list(dict.fromkeys(thresholds_ns))
    live = [b for b in blocks if b.n]
    if not live:
        empty = _empty_table(len(thresholds))
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
        out[tier] = _fold(minutes, unit) or replace(minutes, minute=unit)
    return TierTables(tuple(thresholds), list(index), out)


def records(tables: TierTables) -> dict[str, list[MinuteRollup]]:
    """New :class:`MinuteRollup` records of every tier of ``tables``. A tier that shares the
    minute table's columns (a batch within one minute per unit) reuses its fields."""
    thresholds = list(tables.thresholds)
    out: dict[str, list[MinuteRollup]] = {}
    fields: dict[int, TableFields] = {}
    for tier, t in tables.tiers.items():
        if not len(t.minute):
            out[tier] = []
            continue
        f = fields.get(id(t.n)) or fields.setdefault(id(t.n), TableFields.of(t, thresholds))
        keyed = [tables.heads[i] for i in t.source.tolist()]
        out[tier] = _records(f, [list(col) for col in zip(*keyed, strict=True)], t.minute)
    return out


def sketch_blobs(t: RollupTable) -> list[bytes]:
    """``DDSketch.to_bytes()`` of every row's sketch (:func:`encode_many`)."""
    return encode_many(t.zero, t.bucket_key, t.bucket_count,
                       np.bincount(t.bucket_row, minlength=len(t.n)))


def _empty_table(n_thresholds: int) -> RollupTable:
    none = np.zeros(0, np.int64)
    return RollupTable(none, none, none, np.zeros((8, 0), np.int64), np.zeros((3, 0), np.int64),
                       none, none, none, none, np.zeros(0), np.zeros((0, n_thresholds), np.int64),
                       none, none, none, none)


def head_ids(parts: Sequence[tuple[RollupTable, Sequence[Head]]]
             ) -> tuple[list[Head], list[Arr]]:
    """The distinct heads of the parts (in order of first appearance), and for each part the
    index of its rows' heads among them. Batches of a probe repeat one list of heads: each
    distinct list is indexed once."""
    index: dict[Head, int] = {}
    known: dict[tuple[Head, ...], Arr] = {}
    out = []
    for t, heads in parts:
        key = tuple(heads)
        ids = known.get(key)
        if ids is None:
            ids = known[key] = np.array([index.setdefault(h, len(index)) for h in heads]
                                        or [0], np.int64)
        out.append(ids[t.source])
    return list(index), out


def merge_tables(parts: Sequence[tuple[RollupTable, Sequence[Head]]]
                 ) -> tuple[RollupTable, list[Head]]:
    """Tables of one tier (each with the heads its ``source`` indexes, and the same
    thresholds) merged key by key, each key's rows in the order of ``parts``: what
    :func:`analyzer.store.tiers.merge_parts` gives merging the key's rollups left to right
    (sums of squares added in that order, extremes as ``DelayStats.merge`` folds them, sketch
    buckets added: DDSketch §2.3). Keys come out sorted by (path, method, Type-P) in
    code-point order, then minute; ``source`` indexes the returned heads."""
    heads, ids = head_ids(parts)
    src = np.concatenate(ids)
    labels = sorted({(h[0], h[5], h[6]) for h in heads})
    rank = {label: i for i, label in enumerate(labels)}
    lab = np.array([rank[(h[0], h[5], h[6])] for h in heads] or [0], np.int64)[src]
    minute = np.concatenate([t.minute for t, _h in parts])
    order = np.lexsort((minute, lab))  # stable: a key's rows stay in the order of parts
    g = len(order)
    at = np.empty(g, np.int64)
    at[order] = np.arange(g)
    sizes = [len(t.minute) for t, _h in parts]
    offsets = np.cumsum([0, *sizes[:-1]]).tolist()
    tables = [t for t, _h in parts]
    total = [t.total for t in tables]

    def rows(columns: Sequence[Arr]) -> Arr:
        """Delay rows (series-major in every table) of all tables, in key order."""
        return np.concatenate([
            np.concatenate([c[s * n:(s + 1) * n] for c, n in zip(columns, sizes, strict=True)])
            [order] for s in range(SERIES)])

    bucket_row = np.concatenate([
        (t.bucket_row // n) * g + at[off + t.bucket_row % n] if n else t.bucket_row
        for t, n, off in zip(tables, sizes, offsets, strict=True)])
    combined = RollupTable(  # buckets not yet sorted by row: _fold sorts what it merges
        lab[order], minute[order], src[order],
        np.concatenate([t.counts for t in tables], axis=1)[:, order],
        np.concatenate([t.peaks for t in tables], axis=1)[:, order],
        rows([t.n for t in tables]), rows([t.lo for t in tables]), rows([t.hi for t in tables]),
        rows(total), rows([t.sumsq for t in tables]), rows([t.below for t in tables]),
        rows([t.zero for t in tables]), bucket_row,
        np.concatenate([t.bucket_key for t in tables]),
        np.concatenate([t.bucket_count for t in tables]))
    folded = _fold(combined, combined.minute)
    if folded is None:  # one row per key already
        folded = replace(combined, **dict(zip(
            ("bucket_row", "bucket_key", "bucket_count"),
            _buckets(bucket_row, combined.bucket_key, combined.bucket_count), strict=True)))
    return folded, heads


# -- arranging the batch ----------------------------------------------------------------------
def _arrange(blocks: Sequence[Block]) -> _Batch:
    """Concatenate the blocks' columns and sort them by (label, minute, session, seq, send
    time, idx): ``build_rollups``' keys in order, each in ``_send_order`` (a stable sort of the
    idx-ordered results). Label, minute and session are sorted as one integer."""
    nb = len(blocks)
    sizes = np.fromiter((b.n for b in blocks), np.int64, nb)
    ints, codes = _columns(blocks, _INTS, np.int64), _columns(blocks, _CODES, np.int8)
    own = [_label(b.ident) for b in blocks]
    labels, sessions = sorted(set(own)), sorted({b.ident[-1] for b in blocks})
    block = np.repeat(np.arange(nb), sizes)
    minute = ints[SENT] // NS_PER_MINUTE
    low = int(minute.min())
    span = int(minute.max()) - low + 1
    if len(labels) * span * len(sessions) >= 1 << 62:  # minutes far apart: rank them
        low, (minute, span) = 0, _dense(minute)
    ns = len(sessions)
    per_block = _ranks(own, labels) * (span * ns) + _ranks([b.ident[-1] for b in blocks],
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
    return path, ident[1], type_p


def _ranks(items: Sequence[Any], ordered: Sequence[Any]) -> Arr:
    rank = {x: i for i, x in enumerate(ordered)}
    return np.array([rank[x] for x in items], np.int64)


def _dense(x: Arr) -> tuple[Arr, int]:
    """Rank of each value among the distinct values, and how many there are."""
    distinct, rank = np.unique(x, return_inverse=True)
    return rank.astype(np.int64), len(distinct)


# -- minute rollups ---------------------------------------------------------------------------
def _minute_table(b: _Batch, thresholds: Arr, copies: Arr) -> RollupTable:
    """``build_rollups`` of the batch as columns."""
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
                        ints[RTT:BWD + 1][series, at], series * ng + g[at], SERIES * ng,
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
    bucket_row, bucket_key, bucket_count = _buckets(rows[pos], bucket_keys(values[pos]))
    return RollupTable(lab, minute, source, counts, peaks, n, lo, hi, total, sumsq, below, zero,
                       bucket_row, bucket_key, bucket_count)


def _buckets(rows: Arr, keys: Arr, counts: Arr | None = None) -> tuple[Arr, Arr, Arr]:
    """Distinct (row, key) pairs sorted by row then key, with their summed counts (1 per pair
    if ``counts`` is None): the sketches' buckets (DDSketch §2.3: merging adds counts).
    A batch's keys span a few hundred values: pairs are counted into a dense (row, key) grid
    when it is small, else sorted."""
    if not len(keys):
        return rows, keys, np.zeros(0, np.int64)
    low = int(keys.min())
    span = int(keys.max()) - low + 1
    cells = (int(rows.max()) + 1) * span
    if cells <= DENSE_CELLS + 8 * len(keys):
        code = rows * span + (keys - low)
        grid = np.bincount(code, counts, minlength=cells)
        at = (grid > 0).nonzero()[0]
        return at // span, at % span + low, grid[at].astype(np.int64)
    code = rows << KEY_BITS | keys
    order = np.argsort(code, kind="stable")
    code = code[order]
    new = np.empty(len(code), bool)
    new[0] = True
    np.not_equal(code[1:], code[:-1], out=new[1:])
    at = np.flatnonzero(new)
    summed = (np.diff(np.append(at, len(code))) if counts is None
              else np.add.reduceat(counts[order], at))
    code = code[at]
    return code >> KEY_BITS, code & ((1 << KEY_BITS) - 1), summed


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


# -- hour and day folds -----------------------------------------------------------------------
def _fold(t: RollupTable, unit: Arr) -> RollupTable | None:
    """``tiers.fold`` of the minute table into the units starting at minutes ``unit``; None
    if every unit holds one minute (the fold changes nothing but the minute)."""
    ng = len(unit)
    new = np.ones(ng, bool)
    new[1:] = (t.lab[1:] != t.lab[:-1]) | (unit[1:] != unit[:-1])
    if new.all():
        return None
    starts = np.flatnonzero(new)
    nu = len(starts)
    rows = (starts + ng * np.arange(SERIES)[:, None]).ravel()  # unit runs over the rows
    lengths = np.diff(np.append(rows, SERIES * ng))
    lo, hi = _merged_extremes(t, rows)
    into = (t.bucket_row // ng) * nu + (np.cumsum(new) - 1)[t.bucket_row % ng]
    bucket_row, bucket_key, bucket_count = _buckets(into, t.bucket_key, t.bucket_count)
    zero = np.add.reduceat(t.zero, rows)
    return RollupTable(t.lab[starts], unit[starts], t.source[starts],
                       np.add.reduceat(t.counts, starts, axis=1),
                       np.maximum.reduceat(t.peaks, starts, axis=1), np.add.reduceat(t.n, rows),
                       lo, hi, _sequential_sums(t.total, rows, lengths),
                       _sequential_sums(t.sumsq, rows, lengths),
                       np.add.reduceat(t.below, rows, axis=0), zero, bucket_row, bucket_key,
                       bucket_count)


def _merged_extremes(t: RollupTable, rows: Arr) -> tuple[Arr, Arr]:
    """Min and max of each run of rows over its non-empty rows, as ``DelayStats.merge``
    leaves them (meaningless where the run has no sample)."""
    live = t.n > 0
    return (np.minimum.reduceat(np.where(live, t.lo, INT64_MAX), rows),
            np.maximum.reduceat(np.where(live, t.hi, INT64_MIN), rows))


def _sequential_sums(x: Arr, rows: Arr, lengths: Arr) -> Arr:
    """Float sum of each run, added left to right from 0.0 as the fold merges minutes (a
    reduceat may sum pairwise, which rounds differently)."""
    out = np.zeros(len(rows))
    for j in range(int(lengths.max())):
        more = lengths > j
        out[more] += x[rows[more] + j]
    return out


# -- records ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TableFields:
    """A table's values as Python lists, ready to be handed to the record constructors; the
    threshold dicts are prototypes, copied into each record."""

    n: list[int]
    lo: list[int | None]
    hi: list[int | None]
    total: list[float]
    sumsq: list[float]
    blobs: list[bytes]
    below: list[dict[int, int]]
    counts: list[list[int]]
    longest: list[int]
    tmax: list[int]
    clock: list[int | None]

    @classmethod
    def of(cls, t: RollupTable, thresholds: list[int]) -> TableFields:
        live = t.n > 0
        below: list[dict[int, int]] = [{}] * len(live)  # an empty series has none
        where = live.nonzero()[0]
        for i, c in zip(where.tolist(), t.below[where].tolist(), strict=True):
            below[i] = dict(zip(thresholds, c, strict=True))
        longest, tmax, clock = t.peaks.tolist()
        return cls(t.n.tolist(), _or_none(t.lo, live), _or_none(t.hi, live),
                   t.total.tolist(), t.sumsq.tolist(), sketch_blobs(t), below,
                   t.counts.tolist(),
                   longest, tmax, [None if c < 0 else c for c in clock])


def _or_none(values: Arr, keep: Arr) -> list[Any]:
    """The values as Python ints, None where not ``keep``."""
    out = values.astype(object)
    out[~keep] = None
    return out.tolist()  # type: ignore[no-any-return]


def _heads(b: _Batch) -> list[Head]:
    """The labels of each minute key: path, src site and carrier, dst site and carrier (from
    the key's first result), method, Type-P."""
    labels, idents = b.labels, b.idents
    return [(labels[lab][0], *idents[first][2:6], *labels[lab][1:])
            for lab, first in zip(b.lab.tolist(), b.first.tolist(), strict=True)]


def _records(f: TableFields, heads: list[list[Any]], minute: Arr) -> list[MinuteRollup]:
    """New :class:`MinuteRollup` records (with new delay stats, sketches and dicts) from the
    fields, column by column: a few hundred records per batch, whose construction is most of
    the cost of this module."""
    ng = len(minute)
    stats = list(map(DelayStats, f.n, f.lo, f.hi, f.total, f.sumsq, map(LazySketch, f.blobs),
                     map(dict.copy, f.below)))
    return list(map(MinuteRollup, *heads, minute.tolist(), *f.counts[:7], f.longest, f.tmax,
                    stats[:ng], stats[ng:2 * ng], stats[2 * ng:], f.clock, f.counts[7]))
