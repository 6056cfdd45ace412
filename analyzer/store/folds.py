"""Folds: a run of stored batches' rollups merged into the rollup tables, and group rows.

:meth:`Folds.fold_pending` folds the batches this writer holds (and those no writer folded
within :data:`~analyzer.store.foldset.GRACE_S`, from their stored raw results, checked against
their batch link first) into the rollup tables, :data:`FOLD_CHUNK` batches per transaction: the
rows of the keys the run touches are replaced by their merge with the run
(:func:`analyzer.store.folding.plan`), each new row with its digest, each table's LtHash
updated, and a *fold* link committing to the tables' states appended. A fold never launders an
edited row into a new digest: the stored rows it merges must match theirs.
:meth:`Folds.replace_groups` rebuilds target-group rows, :meth:`Folds.load_rows` loads rows
computed elsewhere, each with its link.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from analyzer.columns import Block
from analyzer.rollups.batch import batch_tables
from analyzer.rollups.rows import ROLLUP_KEY
from analyzer.rollups.tables import TierTables
from analyzer.rollups.tiers import unit_runs
from analyzer.store import chain
from analyzer.store.connection import gc_paused
from analyzer.store.evidence import EvidenceError, row_digest
from analyzer.store.folding import Key, Row, check_rows, key_of, plan
from analyzer.store.foldset import GRACE_S, Span, Unfolded, choose, days_of, ranges_of, watermark
from analyzer.store.ledger import ROW_INSERT, Ledger
from analyzer.store.schema import GROUP_TIERS, STORED_ROLLUP_COLUMNS, TIERS
from analyzer.store.streams import ids_of
from analyzer.store.verify import blobs_sha256

FOLD_CHUNK = 256  # batches folded per transaction (and fold link)


class Folds(Ledger):
    """The folding half of the writer."""

    _held: dict[int, TierTables]
    _wrote: dict[tuple[str, Key], Row]
    _paths: dict[int, str]
    fold_work: dict[str, int]
    _waiting: int

    def fold_pending(self, everything: bool = False) -> int:
        """Fold the batches this writer holds, and those no writer folded within
        :data:`~analyzer.store.foldset.GRACE_S` (``everything``: every batch not folded yet,
        what ``collector compact`` does), into the rollup tables, :data:`FOLD_CHUNK` batches
        per transaction and fold link; returns the batches folded."""
        folded = 0
        while True:
            with gc_paused(), self.db.write():
                n = self._fold_locked(FOLD_CHUNK, everything)
            folded += n
            if n < FOLD_CHUNK:
                self._waiting = len(self._held)
                return folded

    def _fold_locked(self, limit: int, everything: bool) -> int:
        unfolded = self.unfolded()
        waiting = {u.bid for u in unfolded}
        for bid in [b for b in self._held if b not in waiting]:
            del self._held[bid]  # folded meanwhile by another writer
        old = time.time_ns() - int(GRACE_S * 1e9)
        batches = choose(unfolded, lambda u: everything or u.bid in self._held or u.at_ns < old,
                         self._span, limit)
        if not batches:
            return 0
        tables = [self._held.get(u.bid) or self._stored_tables(u.bid, u.thresholds)
                  for u in batches]
        changes = plan(tables, self.stored_rows, check=self._check_stored)
        state = self._state()
        key = " AND ".join(f"{c} = ?" for c in ROLLUP_KEY)
        if len(self._wrote) > 100_000:
            self._wrote.clear()
        for change in changes:
            self.db.executemany(f"DELETE FROM {change.table} WHERE {key}",
                                [r[:4] for r in change.removed])
            self._wrote.update(((change.table, key_of(r)), r) for r in change.written)
            self.db.executemany(f"INSERT INTO {change.table} {ROW_INSERT}", change.written)
            state[change.table].remove(change.table, [bytes(r[-1]) for r in change.removed])
            state[change.table].add(change.table, [r[-1] for r in change.written])
        self._drop_groups({c.table: {int(r[3]) for r in c.written} for c in changes}, state)
        self._commit_state(chain.FOLD, state, {
            "batches": ranges_of(u.bid for u in batches),
            "through": watermark(unfolded, batches, self.chain_head().length),
            "rows_removed": sum(len(c.removed) for c in changes),
            "rows_written": sum(len(c.written) for c in changes)})
        for u in batches:  # forgotten only once folded: a rollback keeps them
            self.fold_work["memory" if self._held.pop(u.bid, None) else "raw"] += 1
        return len(batches)

    def _span(self, u: Unfolded) -> Span:
        """The paths and UTC days a batch may touch, from its blobs' streams (nothing
        decoded); streams' paths are cached."""
        ids = {i for (text,) in self.db.execute("SELECT stream_ids FROM blobs WHERE bid = ?",
                                                (u.bid,)).fetchall() for i in ids_of(text)}
        if missing := [i for i in ids if i not in self._paths]:
            if len(self._paths) > 100_000:
                self._paths.clear()
            for k in range(0, len(missing), 500):
                chunk = missing[k:k + 500]
                self._paths.update((int(i), p) for i, p in self.db.execute(
                    f"SELECT id, path_id FROM streams WHERE id IN "
                    f"({', '.join('?' * len(chunk))})", chunk).fetchall())
        return (frozenset(self._paths.get(i, "") for i in ids), *days_of(u.first_ns, u.last_ns))

    def _check_stored(self, table: str, rows: Sequence[Row]) -> None:
        """:func:`check_rows` of the stored rows a fold merges, but for rows still exactly as
        this writer wrote them (the digest it computed then stands)."""
        check_rows(table, [r for r in rows if self._wrote.get((table, key_of(r))) != tuple(r)])

    def _stored_tables(self, bid: int, thresholds: Sequence[int]) -> TierTables:
        """A stored batch's rollups from its raw results, once they match its link."""
        blocks = self._checked_blocks(bid)
        return batch_tables(blocks, thresholds)

    def _checked_blocks(self, bid: int) -> list[Block]:
        stored = self.db.execute("SELECT blobs_sha256 FROM links WHERE idx = ?",
                                 (bid,)).fetchone()
        if stored is None or blobs_sha256(self, bid) != stored[0]:
            raise EvidenceError(f"link #{bid}: the batch's stored raw results are missing or "
                                "do not match its digest; run `ixmeter verify`")
        return self.batch_blocks(bid)

    def replace_groups(self, tier: str, units: Sequence[int],
                       compute: Callable[[list[Row]], list[Sequence[Any]]], note: str) -> int:
        """Rebuild the group rows of ``units`` (unit minutes of ``tier``, hour or day) in one
        write transaction (no fold can change the path rows in between): ``compute`` gets the
        stored path rows of those units sorted by key (rollup columns, then the digest, each
        checked against it) and returns the group rows (:data:`ROLLUP_COLUMNS`); the units'
        old group rows are replaced and a *group* link commits to the new states. Returns the
        rows written."""
        table, size = TIERS[tier]
        group_table = GROUP_TIERS[tier][0]
        with gc_paused(), self.db.write():
            state = self._state()
            rows: list[Row] = []
            for low, high in unit_runs(sorted(set(units)), size):
                rows += self.db.execute(
                    f"SELECT {', '.join(STORED_ROLLUP_COLUMNS)} FROM {table} WHERE minute >= ? "
                    "AND minute <= ?", (low, high)).fetchall()
            rows.sort(key=key_of)  # code-point order, whatever the database's collation
            check_rows(table, rows)
            written = [(*r, row_digest(group_table, r)) for r in compute(rows)]
            self._drop_groups({table: set(units)}, state)
            self.db.executemany(f"INSERT INTO {group_table} {ROW_INSERT}", written)
            state[group_table].add(group_table, [r[-1] for r in written])
            self._commit_state(chain.GROUP, state, {
                "table": group_table, "units": len(set(units)), "rows_read": len(rows),
                "rows_written": len(written), "note": note})
        return len(written)


    def load_rows(self, tier: str, rows: Sequence[Sequence[Any]], note: str) -> int:
        """Load rollup rows (:data:`~analyzer.rollups.rows.ROLLUP_COLUMNS`, e.g.
        ``rows.rollup_row`` of synthetic rollups) into a tier as they are, with their digests,
        and append a *load* link whose detail carries ``note`` (say what they are: "synthetic
        history for bench.store_tiers"). No raw result backs them; a key already stored is
        refused by the table's key. Returns the rows loaded."""
        table = TIERS[tier][0]
        written = [(*r, row_digest(table, r)) for r in rows]
        with gc_paused(), self.db.write():
            state = self._state()
            self.db.executemany(f"INSERT INTO {table} {ROW_INSERT}", written)
            state[table].add(table, [r[-1] for r in written])
            self._drop_groups({table: {int(r[3]) for r in written}}, state)
            self._commit_state(chain.LOAD, state, {"table": table, "rows": len(written),
                                                   "note": note})
        return len(written)

