"""The stored form of rollups: one row per rollup key, and rows to and from tables.

A rollup row holds :data:`ROLLUP_COLUMNS` (:func:`rollup_row`, :func:`build_rollup`); delay
sums and sums of squares are floats (sums of at most 100,000 bounded delays per batch are exact
integers, converted once and added in chain order: see :mod:`analyzer.rollups.batch`); a
sketch is its stored form (:mod:`analyzer.rollups.sketch_codec`), decoded only when read
(:class:`LazySketch`); threshold counts are JSON (:func:`below_json`). :func:`table_rows` and
:func:`tables_from_rows` convert between rows and the columnar tables the batch computation
and the folds merge (:mod:`analyzer.rollups.tables`). Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from analyzer.rollups.model import SERIES, DelayStats, MinuteRollup
from analyzer.rollups.sketch import LazySketch, SketchBatch
from analyzer.rollups.sketch_codec import decode_columns
from analyzer.rollups.tables import NSERIES, Head, RollupTable, TableFields, merge_tables

Arr = npt.NDArray[Any]
Key = tuple[str, str, str, int]
_DELAY_FIELDS = ("n", "min", "max", "sum", "sumsq", "sketch", "below")
ROLLUP_KEY = ("path_id", "method", "type_p", "minute")
ROLLUP_COLUMNS = ROLLUP_KEY + (
    "src_site", "src_carrier", "dst_site", "dst_carrier", "sent", "received", "lost", "errors",
    "duplicated", "reordered", "loss_periods", "loss_period_max", "tmax_ns",
    "clock_error_max_ns", "unsynced") + tuple(
    f"{d}_{f}" for d in ("rtt", "fwd", "bwd") for f in _DELAY_FIELDS)

_SKETCH = tuple(ROLLUP_COLUMNS.index(f"{s}_sketch") for s in SERIES)
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps' compact form


def rollup_row(r: MinuteRollup) -> tuple[Any, ...]:
    """A rollup in :data:`ROLLUP_COLUMNS` order; sketches as ``DDSketch.to_bytes()``."""
    head = (r.path_id, r.method, r.type_p, r.minute, r.src_site, r.src_carrier, r.dst_site,
            r.dst_carrier, r.sent, r.received, r.lost, r.errors, r.duplicated, r.reordered,
            r.loss_periods, r.loss_period_max, r.tmax_ns, r.clock_error_max_ns, r.unsynced)
    return head + _delay_cols(r.rtt) + _delay_cols(r.fwd) + _delay_cols(r.bwd)


def _delay_cols(d: DelayStats) -> tuple[Any, ...]:
    return (d.n, d.min, d.max, d.sum, d.sumsq, d.sketch.to_bytes(), below_json(d.below))


def below_json(below: dict[int, int]) -> str:
    """The stored form of threshold counts: JSON, thresholds in numeric order."""
    return _COMPACT_JSON({str(k): v for k, v in sorted(below.items())})


def build_rollup(row: Sequence[Any]) -> MinuteRollup:
    """Inverse of :func:`rollup_row`, each sketch lazy (decoded alone when first used)."""
    return _built(row, [LazySketch(bytes(row[c])) for c in _SKETCH])


def rollups_of_rows(rows: Sequence[Sequence[Any]]) -> list[MinuteRollup]:
    """:func:`build_rollup` of each row, the sketches of each series lazy and decoded together
    (:class:`~analyzer.rollups.sketch.SketchBatch`) when the first of them is used."""
    batches = [SketchBatch([bytes(row[c]) for row in rows]) for c in _SKETCH]
    return [_built(row, [LazySketch(b.blobs[i], b, i) for b in batches])
            for i, row in enumerate(rows)]


def _built(row: Sequence[Any], sketches: list[LazySketch]) -> MinuteRollup:
    (path, method, type_p, minute, src_site, src_carrier, dst_site, dst_carrier, sent,
     received, lost, errors, duplicated, reordered, loss_periods, loss_period_max, tmax_ns,
     clock_error_max_ns, unsynced) = row[:19]
    rtt, fwd, bwd = (_delay(row[19 + 7 * s:26 + 7 * s], sketches[s]) for s in range(NSERIES))
    return MinuteRollup(path, src_site, src_carrier, dst_site, dst_carrier, method, type_p,
                        minute, sent, received, lost, errors, duplicated, reordered,
                        loss_periods, loss_period_max, tmax_ns, rtt, fwd, bwd,
                        clock_error_max_ns, unsynced)


def _delay(cols: Sequence[Any], sketch: LazySketch) -> DelayStats:
    n, lo, hi, total, sumsq, _blob, below = cols
    return DelayStats(n=n, min=lo, max=hi, sum=float(total), sumsq=float(sumsq), sketch=sketch,
                      below=_below(below))


_BELOW_CACHE: dict[str, dict[int, int]] = {}


def _below(text: str) -> dict[int, int]:
    """Threshold counts from their JSON column; the decode is memoised (few distinct values
    repeat across many rows), the dict is a fresh copy (merging mutates it)."""
    hit = _BELOW_CACHE.get(text)
    if hit is None:
        if len(_BELOW_CACHE) > 50_000:
            _BELOW_CACHE.clear()
        hit = _BELOW_CACHE[text] = {int(k): v for k, v in json.loads(text).items()}
    return dict(hit)


def key_of(row: Sequence[Any]) -> Key:
    """A rollup row's key (path, method, Type-P, unit's first minute)."""
    return (row[0], row[1], row[2], int(row[3]))


def table_rows(t: RollupTable, heads: Sequence[Head], thresholds: Sequence[int]
               ) -> list[tuple[Any, ...]]:
    """Each key's stored row, in :data:`ROLLUP_COLUMNS` order: what
    :func:`rollup_row` gives for the records of the table, from the same
    field lists the records are built from (:class:`TableFields`), without the records."""
    g = len(t.minute)
    if not g:
        return []
    f = TableFields.of(t, list(thresholds))
    keyed = [heads[i] for i in t.source.tolist()]
    path, src_site, src_carrier, dst_site, dst_carrier, method, type_p = zip(*keyed,
                                                                              strict=True)
    sent, received, lost, errors, duplicated, reordered, periods, unsynced = f.counts
    below = list(map(below_json, f.below))
    delay = [list(zip(*(c[s * g:(s + 1) * g] for c in (f.n, f.lo, f.hi, f.total, f.sumsq,
                                                       f.blobs, below)), strict=True))
             for s in range(NSERIES)]
    return [(*head, *rest, *rtt, *fwd, *bwd) for head, rest, rtt, fwd, bwd in zip(
        zip(path, method, type_p, t.minute.tolist(), src_site, src_carrier, dst_site,
            dst_carrier, strict=True),
        zip(sent, received, lost, errors, duplicated, reordered, periods, f.longest, f.tmax,
            f.clock, unsynced, strict=True),
        *delay, strict=True)]


def tables_from_rows(rows: Sequence[Sequence[Any]]
                     ) -> tuple[RollupTable, list[Head], list[int]]:
    """Stored rollup rows (:data:`ROLLUP_COLUMNS` first, in the order they merge) as a table,
    its heads, and the thresholds its ``below`` columns follow: every threshold a row with
    samples counts (-1 where another row with samples does not; the threshold counts of a
    series without samples are none). Raises :class:`~analyzer.rollups.sketch.SketchError`
    for a sketch that is not the stored form."""
    cols = list(zip(*rows, strict=False))
    g = len(rows)
    index: dict[Head, int] = {}
    source = np.array([index.setdefault(h, len(index)) for h in zip(
        cols[0], cols[4], cols[5], cols[6], cols[7], cols[1], cols[2], strict=True)], np.int64)
    delays = [cols[19 + 7 * s:26 + 7 * s] for s in range(NSERIES)]
    n = np.array([x for d in delays for x in d[0]], np.int64)
    below, thresholds = _below_rows([x for d in delays for x in d[6]], n)
    zero, sizes, keys, counts = decode_columns([bytes(row[c]) for c in _SKETCH for row in rows])
    table = RollupTable(
        np.zeros(g, np.int64), np.array(cols[3], np.int64), source,
        np.array([cols[i] for i in (8, 9, 10, 11, 12, 13, 14, 18)], np.int64).reshape(8, g),
        np.array([cols[15], cols[16], [-1 if c is None else c for c in cols[17]]],
                 np.int64).reshape(3, g),
        n, _ints([x for d in delays for x in d[1]]), _ints([x for d in delays for x in d[2]]),
        np.array([float(x) for d in delays for x in d[3]], np.float64),
        np.array([x for d in delays for x in d[4]], np.float64), below, zero,
        np.repeat(np.arange(NSERIES * g, dtype=np.int64), sizes), keys,
        counts.astype(np.int64))
    return table, list(index), thresholds


def merge_rows(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Stored rollup rows merged key by key (:func:`analyzer.rollups.tables.merge_tables`),
    each key's rows in the order given; one row per key, sorted by key."""
    if not rows:
        return []
    table, heads, thresholds = tables_from_rows(rows)
    merged, heads = merge_tables([(table, heads)])
    return table_rows(merged, heads, thresholds)


def _ints(values: list[int | None]) -> Arr:
    return np.array([0 if v is None else v for v in values], np.int64)


def _below_rows(texts: list[str], n: Arr) -> tuple[Arr, list[int]]:
    """Threshold counts as rows following the thresholds any series with samples counts
    (-1 where one does not), and those thresholds."""
    counted = [_below(text) if count else {} for text, count in zip(texts, n.tolist(),
                                                                      strict=True)]
    thresholds = sorted({t for below in counted for t in below})
    out = np.zeros((len(texts), len(thresholds)), np.int64)
    for i, below in enumerate(counted):
        if n[i]:
            out[i] = [below.get(t, -1) for t in thresholds]
    return out, thresholds
