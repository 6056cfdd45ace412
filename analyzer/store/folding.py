"""Folding batches' rollups into the rollup tables (pure: stored rows come through a callback).

Ingest commits a batch's raw results only; its minute, hour and day rollups, computed as tables
(:func:`analyzer.rollup_columns.batch_tables`), are folded into the rollup tables in runs of
batches (:func:`plan`): the stored rows of the keys the run touches (:func:`tables_from_rows`),
then each batch's tables in chain order, merged key by key
(:func:`analyzer.rollup_columns.merge_tables`) into one row per key (:func:`table_rows`), each
with its digest (:func:`analyzer.store.evidence.row_digest`). That is the left-to-right merge of
every batch of the key in chain order, so a key's row does not depend on when folds ran: the
same batches give the same floats bit for bit. The writer applies a plan and appends a fold
link; a reader folds the batches stored since the last fold the same way, in memory.

Batches whose rollups count other delay thresholds than the rest of the run, or stored rows of
another threshold set, are merged as records (:func:`analyzer.store.tiers.merge_parts`: a
threshold count is kept only where every part has it), which gives the same figures.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from analyzer.rollup import MinuteRollup
from analyzer.rollup_columns import (
    SERIES,
    Head,
    RollupTable,
    TableFields,
    TierTables,
    head_ids,
    merge_tables,
    records,
)
from analyzer.store.evidence import EvidenceError, row_digest
from analyzer.store.rows import ROLLUP_COLUMNS, _below, below_json, build_rollup, rollup_row
from analyzer.store.schema import TIERS
from analyzer.store.sketchcols import decode_columns
from analyzer.store.tiers import merge_parts

Arr = npt.NDArray[Any]
Key = tuple[str, str, str, int]
Row = tuple[Any, ...]
StoredRows = Callable[[str, Sequence[Key]], list[Row]]
"""``(table, keys) -> rows``: the stored rows (rollup columns, then the digest) of ``keys``."""
_WIDTH = len(ROLLUP_COLUMNS)


@dataclass(frozen=True, slots=True)
class TableChange:
    """What a fold does to one rollup table: the stored rows it replaces and the rows it
    writes (rollup columns, then the digest)."""

    table: str
    removed: list[Row]
    written: list[Row]


Check = Callable[[str, Sequence[Row]], None]
"""``(table, rows)``: raise :class:`EvidenceError` for a stored row that was edited."""


def plan(batches: Sequence[TierTables], stored: StoredRows, *, check: Check | None
         ) -> list[TableChange]:
    """The change of every rollup table that folding ``batches`` (in chain order) makes.
    With ``check`` (what a writer does, e.g. :func:`check_rows`), a stored row whose figures
    do not match its digest raises :class:`EvidenceError`: a fold never launders an edited row
    into a new digest."""
    thresholds = batches[0].thresholds
    same = all(b.thresholds == thresholds for b in batches)
    as_records: list[dict[str, list[MinuteRollup]]] | None = None
    out = []
    for tier, (table, _size) in TIERS.items():
        parts = [(b.tiers[tier], b.heads) for b in batches]
        old = stored(table, table_keys(parts))
        if check is not None:
            check(table, old)
        rows = _merged(parts, old, thresholds) if same else None
        if rows is None:
            as_records = as_records or [records(b) for b in batches]
            rows = _merged_records([r[tier] for r in as_records], old)
        out.append(TableChange(table, old, [(*r, row_digest(table, r)) for r in rows]))
    return out


def check_rows(table: str, rows: Sequence[Row]) -> None:
    """Raise :class:`EvidenceError` naming the first row whose figures do not match its
    stored digest."""
    for row in rows:
        if row_digest(table, row[:_WIDTH]) != bytes(row[_WIDTH]):
            raise EvidenceError(f"{table} row {key_text(row)}: the stored figures do not match "
                                "the row's digest (edited)")


def key_of(row: Sequence[Any]) -> Key:
    """A rollup row's key (path, method, Type-P, unit's first minute)."""
    return (row[0], row[1], row[2], int(row[3]))


def key_text(row: Sequence[Any]) -> str:
    """A rollup row's key for messages: path, method, Type-P and the unit's UTC minute."""
    when = datetime.fromtimestamp(int(row[3]) * 60, UTC).strftime("%Y-%m-%dT%H:%MZ")
    return f"{row[0]} {row[1]} {row[2]} {when}"


def _merged(parts: Sequence[tuple[RollupTable, Sequence[Head]]], old: Sequence[Row],
            thresholds: Sequence[int]) -> list[Row] | None:
    """The merged rows of the stored rows then the parts, as tables; None if the stored rows
    do not fit the table form (other thresholds)."""
    if old:
        before = tables_from_rows(old, thresholds)
        if before is None:
            return None
        parts = [before, *parts]
    merged, heads = merge_tables(parts)
    return table_rows(merged, heads, thresholds)


def _merged_records(batches: Sequence[Sequence[MinuteRollup]], old: Sequence[Row]
                    ) -> list[Row]:
    """The merged rows of the stored rows then each batch's records, key by key."""
    groups: dict[Key, list[MinuteRollup]] = {}
    for row in old:
        r = build_rollup(row[:_WIDTH])
        groups.setdefault(r.key, []).append(r)
    for rollups in batches:
        for r in rollups:
            groups.setdefault(r.key, []).append(r)
    return [rollup_row(merge_parts(groups[key])) for key in sorted(groups)]


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
        np.array([float(x) for d in delays for x in d[3]], np.float64),
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
