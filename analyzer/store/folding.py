"""Folding batches' rollups into the rollup tables (pure: stored rows come through a callback).

Ingest commits a batch's raw results only; its minute, hour and day rollups, computed as tables
(:func:`analyzer.rollups.batch.batch_tables`), are folded into the rollup tables in runs of
batches (:func:`plan`): the stored rows of the keys the run touches
(:func:`analyzer.rollups.rows.tables_from_rows`), then each batch's tables in chain order,
merged key by key (:func:`analyzer.rollups.tables.merge_tables`) into one row per key
(:func:`analyzer.rollups.rows.table_rows`), each with its digest
(:func:`analyzer.store.evidence.row_digest`). That is the left-to-right merge of every batch of
the key in chain order, so a key's row does not depend on when folds ran: the same batches give
the same floats bit for bit. The writer applies a plan and appends a fold link; a reader folds
the batches stored since the last fold the same way, in memory.

Batches ingested with other delay thresholds than the rest of the run, and stored rows of
another threshold set, merge the same way: every table is laid out on all the thresholds
(:func:`analyzer.rollups.tables.with_thresholds`), and a threshold count is kept only where
every merged part with samples has it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from analyzer.rollups.rows import ROLLUP_COLUMNS, Key, key_of, table_rows, tables_from_rows
from analyzer.rollups.tables import (
    Head,
    RollupTable,
    TierTables,
    merge_tables,
    table_keys,
    with_thresholds,
)
from analyzer.store.evidence import EvidenceError, row_digest
from analyzer.store.schema import TIERS

__all__ = ["Check", "Key", "Row", "StoredRows", "TableChange", "check_rows", "key_of",
           "key_text", "plan"]
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
    out = []
    for tier, (table, _size) in TIERS.items():
        parts = [(b.tiers[tier], b.heads) for b in batches]
        old = stored(table, table_keys(parts))
        if check is not None:
            check(table, old)
        out.append(TableChange(table, old, [(*r, row_digest(table, r))
                                            for r in _merged(batches, tier, old)]))
    return out


def check_rows(table: str, rows: Sequence[Row]) -> None:
    """Raise :class:`EvidenceError` naming the first row whose figures do not match its
    stored digest."""
    for row in rows:
        if row_digest(table, row[:_WIDTH]) != bytes(row[_WIDTH]):
            raise EvidenceError(f"{table} row {key_text(row)}: the stored figures do not match "
                                "the row's digest (edited)")


def key_text(row: Sequence[Any]) -> str:
    """A rollup row's key for messages: path, method, Type-P and the unit's UTC minute."""
    when = datetime.fromtimestamp(int(row[3]) * 60, UTC).strftime("%Y-%m-%dT%H:%MZ")
    return f"{row[0]} {row[1]} {row[2]} {when}"


def _merged(batches: Sequence[TierTables], tier: str, old: Sequence[Row]) -> list[Row]:
    """The merged rows of the stored rows then each batch's table of ``tier``, all laid out on
    every threshold any of them counts."""
    parts: list[tuple[RollupTable, Sequence[Head], Sequence[int]]] = [
        (b.tiers[tier], b.heads, b.thresholds) for b in batches]
    if old:
        parts.insert(0, tables_from_rows([r[:_WIDTH] for r in old]))
    thresholds = sorted({t for _t, _h, have in parts for t in have})
    merged, heads = merge_tables([(with_thresholds(t, have, thresholds), h)
                                  for t, h, have in parts])
    return table_rows(merged, heads, thresholds)
