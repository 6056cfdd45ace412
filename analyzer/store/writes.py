"""Writing the store: ingest, folds and retention, each a link of the hash chain.

Ingest (:meth:`Writer.write_blocks`) commits a batch's raw results as one blob per method and a
*batch* link, in one transaction; the answer to the probe is given after the commit. The
batch's minute, hour and day rollups are computed at once as tables and kept in memory until a
run of batches is *folded* into the rollup tables (:meth:`Writer.fold_pending`, every
:data:`FOLD_AT` batches, when the collector is idle, and when it stops): the rows of the keys
the run touches are replaced by their merge with the run (:func:`analyzer.store.folding.plan`),
each new row with its digest, each table's LtHash updated, and a *fold* link committing to the
tables' states is appended, in one transaction. Batches not in the writer's memory (stored by
another collector, or before a restart) are folded from their stored raw results, checked
against their batch link first. Retention (:meth:`Writer.retain`: :meth:`Writer.prune`,
:meth:`Writer.prune_rollups`) deletes raw results of folded batches or old minute or hour
rollups, each cut appending a *prune* link.

A writer checks the evidence it builds on: the stored rows a fold merges must match their
digests, the tables' states must match the last fold, prune or load link, the raw results a fold
reads must match their batch link; otherwise it refuses (:class:`EvidenceError`) rather than
launder an edit into new digests.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from analyzer.columns import (
    Block,
    ColumnBatch,
    MethodBlob,
    StreamIdent,
    batch_blobs,
    blobs_digest,
    blocks_of,
    check_probe,
    path_and_type_p,
)
from analyzer.rollups.batch import batch_tables
from analyzer.rollups.model import DEFAULT_THRESHOLDS_NS, NS_PER_MINUTE
from analyzer.rollups.rows import ROLLUP_KEY
from analyzer.rollups.tables import TierTables
from analyzer.rollups.tiers import unit_runs
from analyzer.store import chain
from analyzer.store.base import Retention, WriteReceipt
from analyzer.store.connection import Db, StoreError
from analyzer.store.evidence import EvidenceError, LtHash, row_digest
from analyzer.store.folding import Key, Row, check_rows, key_of, plan
from analyzer.store.foldset import (
    GRACE_S,
    NS_PER_DAY,
    Span,
    Unfolded,
    choose,
    days_of,
    ranges_of,
    watermark,
)
from analyzer.store.reads import Reader, _gc_paused
from analyzer.store.schema import (
    BLOB_COLUMNS,
    EVIDENCE_TABLES,
    GROUP_TIERS,
    LINK_COLUMNS,
    STORED_ROLLUP_COLUMNS,
    TIERS,
    SchemaError,
    migrate,
)
from analyzer.store.streams import STREAM_COLUMNS, ids_of, ids_text, skey_of
from analyzer.store.verify import blobs_sha256
from ixmeter.errors import RecordError
from ixmeter.wire import MAX_RESULTS, Batch

log = logging.getLogger("ixmeter.store")
FOLD_AT = 64  # batches a writer stores before it folds their rollups
FOLD_CHUNK = 256  # batches folded per transaction (and fold link)
PRUNE_UNITS = 10  # units of a tier read (checked, hashed out) at a time by a rollup prune
_LINK_INSERT = (f"INSERT INTO links ({', '.join(LINK_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(LINK_COLUMNS))})")
_BLOB_INSERT = (f"INSERT INTO blobs ({', '.join(BLOB_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(BLOB_COLUMNS))})")
_ROW_INSERT = (f"({', '.join(STORED_ROLLUP_COLUMNS)}) "
               f"VALUES ({', '.join('?' * len(STORED_ROLLUP_COLUMNS))})")
Prepared = tuple[list[MethodBlob], list[list[tuple[Any, ...]]], TierTables]


class Writer(Reader):
    """The read and write halves of the store (collector, imports, maintenance)."""

    def __init__(self, db: Db, thresholds_ns: Sequence[int] = DEFAULT_THRESHOLDS_NS) -> None:
        super().__init__(db)
        self.thresholds_ns = tuple(sorted(set(thresholds_ns)))
        self._streams: dict[str, int] = {}
        self._stream_rows: dict[StreamIdent, tuple[Any, ...]] = {}
        self._held: dict[int, TierTables] = {}  # rollups computed at ingest, until folded
        self._wrote: dict[tuple[str, Key], Row] = {}  # the rows this writer's last folds wrote
        self._paths: dict[int, str] = {}  # stream id -> path, for fold spans
        self.fold_work = {"memory": 0, "raw": 0}  # batches folded from memory, from raw results
        self._waiting = 0  # held batches the last fold left (behind another writer's)
        try:
            with db.write():
                migrate(db.execute, db.dialect)
        except SchemaError as exc:
            db.close()
            raise StoreError(str(exc)) from None
        except Exception as exc:
            db.close()
            raise StoreError(f"cannot open the store for writing: {exc}".strip(),
                             hint="a writer (collector, import) needs a role that may create "
                                  "and write its tables; readers use a read-only one") from None

    # -- ingest ---------------------------------------------------------------------------
    def write_batch(self, batch: Batch, received_at_ns: int) -> WriteReceipt:
        """Store a batch of records exactly once (:meth:`write_blocks`)."""
        if (known := self.batch_receipt(batch.probe_id, batch.batch_id)) is not None:
            return known  # cheap answer to a re-send, before any conversion
        return self.write_blocks(
            ColumnBatch(batch.probe_id, batch.batch_id, blocks_of(batch.results)),
            received_at_ns)

    def write_batches(self, batches: Sequence[Batch], received_at_ns: int
                      ) -> list[WriteReceipt]:
        """Store several batches of records in one transaction: all of them or none (an
        import); a batch already stored is answered as a duplicate and stores nothing."""
        columns = [ColumnBatch(b.probe_id, b.batch_id, blocks_of(b.results)) for b in batches]
        with _gc_paused():
            prepared = [self._prepare(c) for c in columns]
            with self._writing():
                written = [self._write_locked(c, received_at_ns, p)
                           for c, p in zip(columns, prepared, strict=True)]
        self._hold([(bid, p[2]) for (_r, bid), p in zip(written, prepared, strict=True)])
        return [receipt for receipt, _bid in written]

    def write_blocks(self, batch: ColumnBatch, received_at_ns: int) -> WriteReceipt:
        """Store a columnar batch exactly once, in one transaction committed before returning:
        one blob per method and a batch link. Its rollups are folded later (module
        docstring); reads fold pending batches in memory, so they see every stored batch."""
        if (known := self.batch_receipt(batch.probe_id, batch.batch_id)) is not None:
            return known  # cheap answer to a re-send; checked again under the write lock
        with _gc_paused():
            prepared = self._prepare(batch)
            with self._writing():  # a duplicate wrote nothing: committing it is harmless
                receipt, bid = self._write_locked(batch, received_at_ns, prepared)
        self._hold([(bid, prepared[2])])
        return receipt

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A write transaction; if it rolls back, stream ids cached during it may not exist."""
        try:
            with self.db.write():
                yield
        except BaseException:
            self._streams.clear()
            raise

    def _prepare(self, batch: ColumnBatch) -> Prepared:
        """What a batch's write needs, computed before the write lock: its blobs, the stream
        rows of each blob and its rollup tables."""
        check_probe(batch.probe_id, batch.blocks)
        if batch.n > MAX_RESULTS:
            raise RecordError(f"field 'streams': {batch.n} results in one batch (at most "
                              f"{MAX_RESULTS})")
        blobs = batch_blobs(batch)
        streams = [[self._stream_row(b.ident) for b in m.blocks] for m in blobs]
        return blobs, streams, batch_tables(batch.blocks, self.thresholds_ns)

    def _write_locked(self, batch: ColumnBatch, received_at_ns: int, prepared: Prepared
                      ) -> tuple[WriteReceipt, int]:
        """The batch's rows and link; its receipt and chain index (0 for a duplicate)."""
        if (known := self.batch_receipt(batch.probe_id, batch.batch_id)) is not None:
            return known, 0
        blobs, streams, tables = prepared
        n = sum(m.n for m in blobs)
        first = min((m.first_ns for m in blobs), default=0)
        last = max((m.last_ns for m in blobs), default=0)
        digest = blobs_digest((m.method, [s[0] for s in rows], m.n, m.first_ns, m.last_ns,
                               m.data) for m, rows in zip(blobs, streams, strict=True)).hex()
        thresholds = chain.thresholds_text(tables.thresholds)
        body = chain.batch_body(n, first, last, thresholds, digest)
        bid, head = self._append(chain.BATCH, received_at_ns, body, batch.probe_id,
                                 batch.batch_id, (n, first, last, thresholds, digest, None))
        ids = self._stream_ids([s for rows in streams for s in rows])
        self.db.executemany(_BLOB_INSERT, [
            (bid, m.method, m.n, m.first_ns, m.last_ns, ids_text([ids[s[0]] for s in rows]),
             m.data) for m, rows in zip(blobs, streams, strict=True)])
        self.db.execute(
            "INSERT INTO probes (probe_id, last_batch_ns, results) VALUES (?, ?, ?) "
            "ON CONFLICT (probe_id) DO UPDATE SET last_batch_ns = excluded.last_batch_ns, "
            "results = probes.results + excluded.results",
            (batch.probe_id, received_at_ns, n))
        return WriteReceipt(n, False, head), bid

    def _append(self, kind: str, at_ns: int, body: str, probe_id: str | None = None,
                batch_id: str | None = None,
                columns: tuple[Any, ...] = (None, None, None, None, None, None)
                ) -> tuple[int, str]:
        """Append a link (inside the write transaction); its index and head."""
        prev = self.chain_head()
        head = chain.head_of(prev.head, body, kind, probe_id or "", batch_id or "", at_ns)
        self.db.execute(_LINK_INSERT, (prev.length + 1, kind, at_ns, probe_id, batch_id,
                                       *columns, body, prev.head, head))
        return prev.length + 1, head

    def _stream_row(self, ident: StreamIdent) -> tuple[Any, ...]:
        """The ``streams`` row of a block's identity (skey first), memoised."""
        row = self._stream_rows.get(ident)
        if row is None:
            if len(self._stream_rows) > 100_000:
                self._stream_rows.clear()
            row = self._stream_rows[ident] = (skey_of(ident), *ident, *path_and_type_p(ident))
        return row

    def _stream_ids(self, streams: list[tuple[Any, ...]]) -> dict[str, int]:
        missing = {s[0]: s for s in streams if s[0] not in self._streams}
        if missing:
            cols = ", ".join(STREAM_COLUMNS)
            self.db.executemany(
                f"INSERT INTO streams ({cols}) VALUES ({', '.join('?' * len(STREAM_COLUMNS))}) "
                "ON CONFLICT (skey) DO NOTHING", list(missing.values()))
            for skey in missing:
                row = self.db.execute("SELECT id FROM streams WHERE skey = ?",
                                      (skey,)).fetchone()
                self._streams[skey] = row[0]
        return self._streams

    def _hold(self, written: Sequence[tuple[int, TierTables]]) -> None:
        """Keep committed batches' rollups until they are folded; fold every FOLD_AT new
        ones (those a fold left, waiting behind another writer's batches, are not new)."""
        for bid, tables in written:
            if bid:
                self._held[bid] = tables
        if len(self._held) >= FOLD_AT + self._waiting:
            try:
                self.fold_pending()
            except Exception:  # the batches are stored and acknowledged: the next fold
                log.exception("folding rollups failed; the next fold redoes them from the "
                              "stored raw results")
                if len(self._held) > 4 * FOLD_AT:
                    self._held.clear()
                self._waiting = len(self._held)

    # -- folds ----------------------------------------------------------------------------
    def fold_pending(self, everything: bool = False) -> int:
        """Fold the batches this writer holds, and those no writer folded within
        :data:`~analyzer.store.foldset.GRACE_S` (``everything``: every batch not folded yet,
        what ``collector compact`` does), into the rollup tables, :data:`FOLD_CHUNK` batches
        per transaction and fold link; returns the batches folded."""
        folded = 0
        while True:
            with _gc_paused(), self.db.write():
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
            self.db.executemany(f"INSERT INTO {change.table} {_ROW_INSERT}", change.written)
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

    # -- target-group rows ------------------------------------------------------------------
    def _drop_groups(self, units: Mapping[str, set[int]], state: dict[str, LtHash]) -> None:
        """Delete the group rows of the hour and day units whose path rows just changed
        (``units``: path tier table -> unit minutes), updating the group tables' states: a
        group row never outlives the path rows it merges; the next build remakes it."""
        for tier, (group_table, _size) in GROUP_TIERS.items():
            changed = sorted(units.get(TIERS[tier][0], ()))
            for at in range(0, len(changed), 500):
                part = changed[at:at + 500]
                marks = ", ".join("?" * len(part))
                gone = self.db.execute(f"SELECT digest FROM {group_table} WHERE minute IN "
                                       f"({marks})", part).fetchall()
                if gone:
                    state[group_table].remove(group_table, [bytes(r[0]) for r in gone])
                    self.db.execute(f"DELETE FROM {group_table} WHERE minute IN ({marks})",
                                    part)

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
        with _gc_paused(), self.db.write():
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
            self.db.executemany(f"INSERT INTO {group_table} {_ROW_INSERT}", written)
            state[group_table].add(group_table, [r[-1] for r in written])
            self._commit_state(chain.GROUP, state, {
                "table": group_table, "units": len(set(units)), "rows_read": len(rows),
                "rows_written": len(written), "note": note})
        return len(written)

    # -- evidence state -------------------------------------------------------------------
    def _state(self) -> dict[str, LtHash]:
        """Each evidence table's LtHash, checked against the last fold, prune or load link."""
        stored = {tbl: LtHash.from_bytes(bytes(data)) for tbl, data in
                  self.db.execute("SELECT tbl, state FROM evidence_state").fetchall()}
        state = {t: stored.get(t, LtHash()) for t in EVIDENCE_TABLES}
        committed = self.committed_state()
        for table, lt in state.items():
            if lt.hexdigest() != committed.get(table, LtHash().hexdigest()):
                raise EvidenceError(f"{table}: the stored evidence state does not match the "
                                    "chain's last fold, prune or load link (the store was edited); "
                                    "run `ixmeter verify`")
        return state

    def _commit_state(self, kind: str, state: Mapping[str, LtHash],
                      fields: Mapping[str, Any]) -> None:
        """Store the tables' states and append the link committing to them."""
        self.db.execute("DELETE FROM evidence_state")
        self.db.executemany("INSERT INTO evidence_state (tbl, state) VALUES (?, ?)",
                            [(t, lt.to_bytes()) for t, lt in state.items()])
        detail = chain.detail_of(kind, fields, {t: lt.hexdigest() for t, lt in state.items()})
        self._append(kind, time.time_ns(), chain.detail_body(detail),
                     columns=(None, None, None, None, None, detail))

    # -- retention ------------------------------------------------------------------------
    def prune(self, before_ns: int) -> int:
        """Retention of raw results: delete the raw results of folded batches sent wholly
        before ``before_ns``; their links, the rollups and the chain stay, and a prune link
        records the cut. Returns the results deleted."""
        self.fold_pending()  # never delete raw results whose rollups are not folded
        with self.db.write():
            through = self.folded_through()
            found = self.db.execute(
                "SELECT idx, n FROM links WHERE kind = ? AND idx <= ? AND last_ns < ? AND "
                "EXISTS (SELECT 1 FROM blobs WHERE bid = links.idx)",
                (chain.BATCH, through, before_ns)).fetchall()
            if not found:
                return 0
            self.db.executemany("DELETE FROM blobs WHERE bid = ?", [(r[0],) for r in found])
            self._commit_state(chain.PRUNE, self._state(), {
                "raw_before_ns": before_ns, "through": through, "batches": len(found),
                "results": sum(int(r[1]) for r in found)})
            return sum(int(r[1]) for r in found)

    def prune_rollups(self, before_ns: int, tier: str = "minute") -> int:
        """Retention of a rollup tier (minute or hour): delete its rows of UTC days wholly
        before ``before_ns`` (rounded down to a day, so every coarser unit that keeps rows of
        this tier keeps all of them); the coarser tiers stay. A prune link records the table,
        the cut and the table's new state (the hour tier's target-group rows are cut with
        it). Returns the rows deleted."""
        if tier not in TIERS or tier == "day":
            raise ValueError(f"rollup retention is for the minute and hour tiers, not {tier!r}")
        table = TIERS[tier][0]
        day = before_ns // NS_PER_MINUTE // 1440 * 1440
        self.fold_pending()
        step = PRUNE_UNITS * TIERS[tier][1]  # minutes read at a time: bounded memory
        with _gc_paused(), self.db.write():
            first = f"SELECT MIN(minute) FROM {table} WHERE minute >= ? AND minute < ?"
            start = self.db.execute(first, (-(2**62), day)).fetchone()[0]
            if start is None:
                return 0
            state, n = self._state(), 0
            while start is not None:  # a run of units at a time, skipping gaps
                end = min(int(start) + step, day)
                rows = self.db.execute(f"SELECT {', '.join(STORED_ROLLUP_COLUMNS)} FROM "
                                       f"{table} WHERE minute >= ? AND minute < ?",
                                       (start, end)).fetchall()
                check_rows(table, rows)
                state[table].remove(table, [bytes(r[-1]) for r in rows])
                n += len(rows)
                start = self.db.execute(first, (end, day)).fetchone()[0]
            self.db.execute(f"DELETE FROM {table} WHERE minute < ?", (day,))
            groups = self._prune_groups(tier, day, state)
            self._commit_state(chain.PRUNE, state, {"table": table, "minute_before": day,
                                                    "rows": n, "group_rows": groups})
            return n

    def _prune_groups(self, tier: str, day: int, state: dict[str, LtHash]) -> int:
        """The target-group rows of ``tier`` before ``day`` go with the path rows they merge."""
        if tier not in GROUP_TIERS:
            return 0
        table = GROUP_TIERS[tier][0]
        gone = self.db.execute(f"SELECT digest FROM {table} WHERE minute < ?",
                               (day,)).fetchall()
        state[table].remove(table, [bytes(r[0]) for r in gone])
        self.db.execute(f"DELETE FROM {table} WHERE minute < ?", (day,))
        return len(gone)

    def retain(self, policy: Retention, now_ns: int) -> dict[str, int]:
        """Apply a retention policy at ``now_ns``: raw results (:meth:`prune`), then minute and
        hour rollups (:meth:`prune_rollups`), each cut its own prune link; day rollups are
        kept for ever. Returns what each deleted (results, rows)."""
        out = {}
        for what, days in (("raw", policy.raw_days), ("minute", policy.minute_days),
                           ("hour", policy.hour_days)):
            if days:
                cut = now_ns - int(days * NS_PER_DAY)
                out[what] = self.prune(cut) if what == "raw" else self.prune_rollups(cut, what)
        return out

    # -- loading rows computed elsewhere ---------------------------------------------------
    def load_rows(self, tier: str, rows: Sequence[Sequence[Any]], note: str) -> int:
        """Load rollup rows (:data:`~analyzer.rollups.rows.ROLLUP_COLUMNS`, e.g.
        ``rows.rollup_row`` of synthetic rollups) into a tier as they are, with their digests,
        and append a *load* link whose detail carries ``note`` (say what they are: "synthetic
        history for bench.store_tiers"). No raw result backs them; a key already stored is
        refused by the table's key. Returns the rows loaded."""
        table = TIERS[tier][0]
        written = [(*r, row_digest(table, r)) for r in rows]
        with _gc_paused(), self.db.write():
            state = self._state()
            self.db.executemany(f"INSERT INTO {table} {_ROW_INSERT}", written)
            state[table].add(table, [r[-1] for r in written])
            self._drop_groups({table: {int(r[3]) for r in written}}, state)
            self._commit_state(chain.LOAD, state, {"table": table, "rows": len(written),
                                                   "note": note})
        return len(written)

    def close(self) -> None:
        """Fold what this writer holds (an import, a stopping collector), then close."""
        try:
            if self._held:
                self.fold_pending()
        except Exception:  # stored and acknowledged: the next writer folds them
            log.exception("folding rollups on close failed; the next fold redoes them")
        finally:
            self.db.close()

    # -- heartbeats (operational, not evidence) -------------------------------------------
    def record_heartbeat(self, probe_id: str, at_ns: int, spool_depth: int | None,
                         version: str | None, counters: Mapping[str, int] | None = None
                         ) -> None:
        text = None if counters is None else json.dumps(dict(counters), sort_keys=True)
        with self.db.write():
            self.db.execute(
                "INSERT INTO probes (probe_id, last_seen_ns, spool_depth, results, version, "
                "counters) VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (probe_id) DO UPDATE SET "
                "last_seen_ns = excluded.last_seen_ns, spool_depth = excluded.spool_depth, "
                "version = excluded.version, counters = excluded.counters",
                (probe_id, at_ns, spool_depth, version, text))

