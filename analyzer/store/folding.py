"""Folding batches' rollups into the rollup tables: the pure codecs between rollup tables
(:class:`analyzer.rollup_columns.RollupTable`) and stored rollup rows.

Ingest commits a batch's raw results only; its minute, hour and day rollups, computed as tables
(:func:`analyzer.rollup_columns.batch_tables`), wait in the store's memory until it folds a run
of batches into its rollup tables (``SqlStore.fold_pending``): the stored rows of the keys the
run touches (:func:`tables_from_rows`), then each batch's tables in chain order, merged key by
key (:func:`analyzer.rollup_columns.merge_tables`) into one row per key (:func:`table_rows`).
That is the left-to-right merge of every part of the key in chain order, as reads and
compaction merge stored parts (:func:`analyzer.store.tiers.merge_parts`), so a key's row does
not depend on when folds ran: the same batches give the same floats bit for bit.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from analyzer.rollup_columns import SERIES, Head, RollupTable, TableFields, head_ids
from analyzer.store.rows import ROLLUP_COLUMNS, _below, below_json
from analyzer.store.sketchcols import decode_columns

Arr = npt.NDArray[Any]


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


def table_rows(t: RollupTable, heads: Sequence[Head], thresholds: Sequence[int]
               ) -> list[tuple[Any, ...]]:
    """Each key's stored row, in :data:`ROLLUP_COLUMNS` order: what
    :func:`analyzer.store.rows.rollup_row` gives for the records of the table, from the same
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
             for s in range(SERIES)]
    return [(*head, *rest, *rtt, *fwd, *bwd) for head, rest, rtt, fwd, bwd in zip(
        zip(path, method, type_p, t.minute.tolist(), src_site, src_carrier, dst_site,
            dst_carrier, strict=True),
        zip(sent, received, lost, errors, duplicated, reordered, periods, f.longest, f.tmax,
            f.clock, unsynced, strict=True),
        *delay, strict=True)]


_SKETCH = tuple(ROLLUP_COLUMNS.index(f"{s}_sketch") for s in ("rtt", "fwd", "bwd"))


def tables_from_rows(rows: Sequence[Sequence[Any]], thresholds: Sequence[int]
                     ) -> tuple[RollupTable, list[Head]] | None:
    """Stored rollup rows (:data:`ROLLUP_COLUMNS` first, in the order they merge) as a table
    whose ``below`` columns follow ``thresholds``; None if a row does not fit the table form
    (threshold counts of other thresholds, a sketch of another shape): the caller then
    merges the rows as records."""
    cols = list(zip(*rows, strict=False))
    g = len(rows)
    index: dict[Head, int] = {}
    source = np.array([index.setdefault(h, len(index)) for h in zip(
        cols[0], cols[4], cols[5], cols[6], cols[7], cols[1], cols[2], strict=True)], np.int64)
    delays = [cols[19 + 7 * s:26 + 7 * s] for s in range(SERIES)]
    n = np.array([x for d in delays for x in d[0]], np.int64)
    below = _below_rows([x for d in delays for x in d[6]], n, thresholds)
    decoded = decode_columns([bytes(row[c]) for c in _SKETCH for row in rows])
    if below is None or decoded is None:
        return None
    zero, sizes, keys, counts = decoded
    table = RollupTable(
        np.zeros(g, np.int64), np.array(cols[3], np.int64), source,
        np.array([cols[i] for i in (8, 9, 10, 11, 12, 13, 14, 18)], np.int64).reshape(8, g),
        np.array([cols[15], cols[16], [-1 if c is None else c for c in cols[17]]],
                 np.int64).reshape(3, g),
        n, _ints([x for d in delays for x in d[1]]), _ints([x for d in delays for x in d[2]]),
        np.array([int(x) for d in delays for x in d[3]], np.int64),
        np.array([x for d in delays for x in d[4]], np.float64), below, zero,
        np.repeat(np.arange(SERIES * g, dtype=np.int64), sizes), keys.astype(np.int64),
        counts.astype(np.int64))
    return table, list(index)


def _ints(values: list[int | None]) -> Arr:
    return np.array([0 if v is None else v for v in values], np.int64)


def _below_rows(texts: list[str], n: Arr, thresholds: Sequence[int]) -> Arr | None:
    """Threshold counts as rows following ``thresholds``: a series with samples must count
    exactly those thresholds, an empty one none (else None)."""
    want = set(thresholds)
    out = np.zeros((len(texts), len(thresholds)), np.int64)
    for i, (text, count) in enumerate(zip(texts, n.tolist(), strict=True)):
        below = _below(text)
        if count and set(below) == want:
            out[i] = [below[t] for t in thresholds]
        elif count or below:
            return None
    return out
