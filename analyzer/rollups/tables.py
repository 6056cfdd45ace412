"""Rollups as columns: one table per tier, merged and folded with numpy.

A :class:`RollupTable` holds one tier's rollups, one column entry per key (path, method,
Type-P, unit), its delay statistics as :data:`NSERIES` rows per key (series-major: all rtt, then
fwd, then bwd) and its sketch buckets as sorted (row, key, count) columns. :func:`merge_tables`
merges tables key by key, each key's rows in the order given, exactly as
the records oracle's ``merge_parts`` (``tests/oracles``) merges rollups left to right: counts added,
extremes over the rows with samples, float sums added in that order, sketch buckets added
(DDSketch §2.3), ``loss_period_max`` the longest within one unit (RFC 3357 §4.1). Threshold
counts follow a list of thresholds; a count a row with samples did not take is -1, and a merged
count is kept only where every merged row with samples has it (:func:`with_thresholds` lays a
table out on another list), so tables of different thresholds merge here too.
:func:`records` builds :class:`~analyzer.rollups.model.MinuteRollup` records of a table.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from analyzer.rollups.model import SERIES, DelayStats, MinuteRollup
from analyzer.rollups.sketch import LazySketch, SketchBatch
from analyzer.rollups.sketch_codec import encode_many

Arr = npt.NDArray[Any]
NSERIES = len(SERIES)  # rtt, fwd, bwd: a table's delay columns have NSERIES * G rows,
# series-major
KEY_BITS = 16  # sketch keys of int64 values are below 2**13 at alpha 0.005
DENSE_CELLS = 1 << 15  # (row, key) grids up to this size count buckets with one bincount
INT64_MIN, INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


@dataclass(frozen=True, slots=True)
class RollupTable:
    """One tier's rollups as columns, one per key (G keys); delay columns have NSERIES * G rows
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
    below: Arr  # (rows, len(thresholds)) counts strictly below each threshold; -1: not taken
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


def empty_table(n_thresholds: int) -> RollupTable:
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


def table_keys(tables: Sequence[tuple[RollupTable, Sequence[Head]]]
               ) -> list[tuple[str, str, str, int]]:
    """The distinct rollup keys (path, method, Type-P, minute) of the tables' rows."""
    heads, ids = head_ids(tables)
    minutes = [t.minute for t, _h in tables]
    if not sum(map(len, minutes)):
        return []
    minute = np.concatenate(minutes)
    low = int(minute.min())
    codes = np.unique(np.concatenate(ids) << 32 | (minute - low))
    return [(h[0], h[5], h[6], m) for h, m in zip(
        (heads[i] for i in (codes >> 32).tolist()), ((codes & 0xFFFFFFFF) + low).tolist(),
        strict=True)]


def merge_tables(parts: Sequence[tuple[RollupTable, Sequence[Head]]]
                 ) -> tuple[RollupTable, list[Head]]:
    """Tables of one tier (each with the heads its ``source`` indexes, threshold counts on one
    list: :func:`with_thresholds`) merged key by key, each key's rows in the order of
    ``parts``: what ``merge_parts`` (the records oracle, ``tests/oracles``) gives merging the
    key's rollups left to right
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
            [order] for s in range(NSERIES)])

    bucket_row = np.concatenate([
        (t.bucket_row // n) * g + at[off + t.bucket_row % n] if n else t.bucket_row
        for t, n, off in zip(tables, sizes, offsets, strict=True)])
    combined = RollupTable(  # buckets not yet sorted by row: fold_units sorts what it merges
        lab[order], minute[order], src[order],
        np.concatenate([t.counts for t in tables], axis=1)[:, order],
        np.concatenate([t.peaks for t in tables], axis=1)[:, order],
        rows([t.n for t in tables]), rows([t.lo for t in tables]), rows([t.hi for t in tables]),
        rows(total), rows([t.sumsq for t in tables]), rows([t.below for t in tables]),
        rows([t.zero for t in tables]), bucket_row,
        np.concatenate([t.bucket_key for t in tables]),
        np.concatenate([t.bucket_count for t in tables]))
    folded = fold_units(combined, combined.minute)
    if folded is None:  # one row per key already
        folded = replace(combined, **dict(zip(
            ("bucket_row", "bucket_key", "bucket_count"),
            bucket_counts(bucket_row, combined.bucket_key, combined.bucket_count), strict=True)))
    return folded, heads


def bucket_counts(rows: Arr, keys: Arr, counts: Arr | None = None) -> tuple[Arr, Arr, Arr]:
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


# -- hour and day folds -----------------------------------------------------------------------
def fold_units(t: RollupTable, unit: Arr) -> RollupTable | None:
    """The minute table merged into the units starting at minutes ``unit``; None
    if every unit holds one minute (the fold changes nothing but the minute)."""
    ng = len(unit)
    new = np.ones(ng, bool)
    new[1:] = (t.lab[1:] != t.lab[:-1]) | (unit[1:] != unit[:-1])
    if new.all():
        return None
    starts = np.flatnonzero(new)
    nu = len(starts)
    rows = (starts + ng * np.arange(NSERIES)[:, None]).ravel()  # unit runs over the rows
    lengths = np.diff(np.append(rows, NSERIES * ng))
    lo, hi = _merged_extremes(t, rows)
    into = (t.bucket_row // ng) * nu + (np.cumsum(new) - 1)[t.bucket_row % ng]
    bucket_row, bucket_key, bucket_count = bucket_counts(into, t.bucket_key, t.bucket_count)
    zero = np.add.reduceat(t.zero, rows)
    return RollupTable(t.lab[starts], unit[starts], t.source[starts],
                       np.add.reduceat(t.counts, starts, axis=1),
                       np.maximum.reduceat(t.peaks, starts, axis=1), np.add.reduceat(t.n, rows),
                       lo, hi, _sequential_sums(t.total, rows, lengths),
                       _sequential_sums(t.sumsq, rows, lengths),
                       _merged_below(t, rows), zero, bucket_row, bucket_key,
                       bucket_count)


def _merged_below(t: RollupTable, rows: Arr) -> Arr:
    """Threshold counts of each run of rows: the sum, or -1 where a row with samples of the
    run did not take the count (``merge_parts``: a count is kept only where every part with
    samples has it)."""
    if not t.below.size or t.below.min() >= 0:
        return np.add.reduceat(t.below, rows, axis=0)
    missing = (t.below < 0) & (t.n > 0)[:, None]
    out = np.add.reduceat(np.maximum(t.below, 0), rows, axis=0)
    out[np.add.reduceat(missing, rows, axis=0) > 0] = -1
    return out


def with_thresholds(t: RollupTable, have: Sequence[int], want: Sequence[int]) -> RollupTable:
    """The table with its threshold counts (following ``have``) laid out on ``want`` (a
    superset): a threshold the table did not count is -1 for the rows with samples."""
    if list(have) == list(want):
        return t
    below = np.zeros((len(t.n), len(want)), np.int64)
    below[t.n > 0] = -1
    for j, threshold in enumerate(want):
        if threshold in have:
            below[:, j] = t.below[:, list(have).index(threshold)]
    return replace(t, below=below)


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
        taken = not t.below.size or t.below.min() >= 0  # else -1: a count not taken
        for i, c in zip(where.tolist(), t.below[where].tolist(), strict=True):
            below[i] = (dict(zip(thresholds, c, strict=True)) if taken else
                        {t: k for t, k in zip(thresholds, c, strict=True) if k >= 0})
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


def _records(f: TableFields, heads: list[list[Any]], minute: Arr) -> list[MinuteRollup]:
    """New :class:`MinuteRollup` records (with new delay stats, sketches and dicts) from the
    fields, column by column: a few hundred records per batch, whose construction is most of
    the cost of this module. Each series' sketches decode together on first use."""
    ng = len(minute)
    batches = [SketchBatch(f.blobs[s * ng:(s + 1) * ng]) for s in range(NSERIES)]
    sketches = [LazySketch(blob, batches[i // ng], i % ng) for i, blob in enumerate(f.blobs)]
    stats = list(map(DelayStats, f.n, f.lo, f.hi, f.total, f.sumsq, sketches,
                     map(dict.copy, f.below)))
    return list(map(MinuteRollup, *heads, minute.tolist(), *f.counts[:7], f.longest, f.tmax,
                    stats[:ng], stats[ng:2 * ng], stats[2 * ng:], f.clock, f.counts[7]))
