"""The store logic shared by the SQLite and PostgreSQL backends (DB-API, ``?`` placeholders).

A backend supplies the connection, how to open a write transaction that serialises chain
extension (SQLite ``BEGIN IMMEDIATE``; PostgreSQL an advisory transaction lock), how to bulk
insert result rows, and its migration runner. Everything else is here, so both backends pass one
test-suite (tests/store).

Rollups of a minute that later batches add to are merged (:func:`analyzer.rollup.merge`):
exact for counts, sums, extremes, threshold counts and sketches (DDSketch §2.3). Loss periods
(RFC 3357 §4.1) and reordering (RFC 4737 §3.3) are computed within each batch, so a loss period
or a reordering that straddles two batches of the same minute is counted approximately (a period
split in two counts twice; ``loss_period_max`` is the longest part).
"""

from __future__ import annotations

import gc
import heapq
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from itertools import compress
from typing import Any

import numpy as np

from analyzer.columns import (
    CODE_COLUMNS,
    INT_COLUMNS,
    Block,
    ColumnBatch,
    MethodBlob,
    StreamIdent,
    batch_blobs,
    blobs_digest,
    blocks_digest,
    blocks_of,
    check_probe,
    decode_blob,
    decode_block,
    encode_blob,
    encode_block,
    path_and_type_p,
    results_of,
)
from analyzer.rollup import DEFAULT_THRESHOLDS_NS, NS_PER_MINUTE, MinuteRollup
from analyzer.rollup_columns import TierTables, batch_tables, foldable, merge_tables, records
from analyzer.stats.units import (
    SERIES,
    DelayColumns,
    RollupColumns,
    columns_from_rollups,
)
from analyzer.store import chain
from analyzer.store.base import ChainHead, ProbeHealth, Query, WriteReceipt
from analyzer.store.folding import table_keys, table_rows, tables_from_rows
from analyzer.store.rows import (
    RESULT_COLUMNS,
    ROLLUP_COLUMNS,
    ROLLUP_KEY,
    STREAM_COLUMNS,
    body_digest,
    build_result,
    build_rollup,
    prime_columns,
    rollup_row,
    skey_of,
)
from analyzer.store.schema import BATCH_COLUMNS, BLOB_COLUMNS, PROBE_COLUMNS, TIERS
from analyzer.store.tiers import fold, merge_parts, merge_row_groups
from ixmeter.errors import RecordError
from ixmeter.record import Result
from ixmeter.wire import Batch

log = logging.getLogger("ixmeter.store")
_R_COLS = ", ".join(f"r.{c}" for c in RESULT_COLUMNS)
_S_COLS = ", ".join(f"s.{c}" for c in STREAM_COLUMNS[1:15])


def _rollup_select(table: str) -> str:
    """Every rollup column and the part number, from ``table``."""
    return f"SELECT {', '.join(ROLLUP_COLUMNS)}, part FROM {table}"


def _rollup_upsert(table: str) -> str:
    """Insert or overwrite one part: parameters are a :func:`rollup_row` and the part."""
    return (f"INSERT INTO {table} ({', '.join(ROLLUP_COLUMNS)}, part) "
            f"VALUES ({', '.join('?' * (len(ROLLUP_COLUMNS) + 1))}) "
            f"ON CONFLICT ({', '.join(ROLLUP_KEY)}, part) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in ROLLUP_COLUMNS[len(ROLLUP_KEY):]))


_ROLLUP_SELECT = _rollup_select("rollups")
_BATCH_INSERT = (f"INSERT INTO batches ({', '.join(BATCH_COLUMNS)}, fmt, thresholds) "
                 f"VALUES ({', '.join('?' * (len(BATCH_COLUMNS) + 2))})")
_BLOB_INSERT = (f"INSERT INTO blobs ({', '.join(BLOB_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(BLOB_COLUMNS))})")
FMT_ROWS, FMT_BLOCKS, FMT_BLOBS = 1, 2, 3  # batches.fmt: where a batch's raw results are
FOLD_AT = 64  # batches a store writes before it folds their rollups into the rollup tables
FOLD_CHUNK = 256  # batches folded per transaction
KEYS_PER_SELECT = 200  # rollup keys looked up per statement when folding


def _part_insert(table: str) -> str:
    return (f"INSERT INTO {table} ({', '.join(ROLLUP_COLUMNS)}, part) "
            f"VALUES ({', '.join('?' * (len(ROLLUP_COLUMNS) + 1))})")


def _stream_row(ident: tuple[Any, ...]) -> tuple[Any, ...]:
    """The ``streams`` row of a block's identity (skey first, path and Type-P last)."""
    return (skey_of(ident), *ident, *path_and_type_p(ident))


def _ids_text(ids: Sequence[int]) -> str:
    """``blobs.stream_ids``: the ids in stored order, decimal, comma-separated."""
    return ",".join(map(str, ids))


def _ids_of(text: str) -> list[int]:
    """Inverse of :func:`_ids_text`; raises :class:`RecordError` for anything else."""
    try:
        return [int(i) for i in text.split(",")]
    except ValueError:
        raise RecordError(f"blobs.stream_ids: {text[:40]!r} is not a list of ids") from None


def _span(block: Block) -> tuple[int, int]:
    """First and last send time of a block (window reads and retention)."""
    return int(block.sent_at_ns.min()), int(block.sent_at_ns.max())


def _merged_rows(rows: Sequence[Sequence[Any]], rollups: Sequence[MinuteRollup] | None = None
                 ) -> list[MinuteRollup]:
    """Rows ``(rollup columns..., part)`` sorted by key and part, one rollup per key. A key
    stored as one part (compacted, or a tier written once) is returned as read: merging only
    runs over keys with several parts."""
    built = rollups if rollups is not None else [build_rollup(row[:-1]) for row in rows]
    out: list[MinuteRollup] = []
    start = 0
    for i in range(1, len(rows) + 1):
        if i == len(rows) or tuple(rows[i][:4]) != tuple(rows[start][:4]):
            out.append(built[start] if i - start == 1 else merge_parts(built[start:i]))
            start = i
    return out


class SqlStore:
    """Common implementation of :class:`analyzer.store.base.Store` over a DB-API connection."""

    placeholder = "?"

    def __init__(self, conn: Any, thresholds_ns: Sequence[int] = DEFAULT_THRESHOLDS_NS) -> None:
        self._conn = conn
        self.thresholds_ns = tuple(sorted(set(thresholds_ns)))
        self._streams: dict[str, int] = {}
        self._stream_rows: dict[StreamIdent, tuple[Any, ...]] = {}
        self._in_tx = False
        # rollups this store computed at ingest, by chain index, until they are folded
        self._unfolded: dict[int, TierTables] = {}
        self._rebuilt: set[tuple[tuple[str, str, str, int], str]] = set()

    # -- backend hooks -------------------------------------------------------------------
    def _begin_write(self) -> None:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _check_conn(self) -> None:
        """Backends that can lose their connection re-open it here."""

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if not self._in_tx:  # never re-connect inside a transaction: its work would be lost
            self._check_conn()
        cur = self._conn.cursor()
        cur.execute(self._sql(sql), tuple(params))
        return cur

    def _rollback(self) -> None:
        """Undo the open transaction; stream ids cached during it may not exist."""
        self._streams.clear()
        with suppress(Exception):  # a lost connection has been rolled back by the server
            self._exec("ROLLBACK")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction: committed on success, rolled back on any error."""
        self._check_conn()
        self._in_tx = True
        try:
            self._begin_write()
            yield
            self._exec("COMMIT")
        except BaseException:
            self._rollback()
            raise
        finally:
            self._in_tx = False

    # -- writing -------------------------------------------------------------------------
    def batch_receipt(self, probe_id: str, batch_id: str) -> WriteReceipt | None:
        """The duplicate answer for a batch already stored (its own chain head), else None."""
        row = self._exec("SELECT head FROM batches WHERE probe_id = ? AND batch_id = ?",
                         (probe_id, batch_id)).fetchone()
        return None if row is None else WriteReceipt(0, True, row[0])

    def write_batch(self, batch: Batch, received_at_ns: int) -> WriteReceipt:
        """Store a batch of records exactly once: as blocks (:meth:`write_blocks`)."""
        if (known := self.batch_receipt(batch.probe_id, batch.batch_id)) is not None:
            return known  # cheap answer to a re-send, before any conversion
        return self.write_blocks(
            ColumnBatch(batch.probe_id, batch.batch_id, blocks_of(batch.results)),
            received_at_ns)

    def write_batches(self, batches: Sequence[Batch], received_at_ns: int
                      ) -> list[WriteReceipt]:
        """Store several batches of records in one transaction: all of them or none (an
        import); a batch already stored is answered as a duplicate and stores nothing."""
        prepared = []
        with _gc_paused():
            for batch in batches:
                columns = ColumnBatch(batch.probe_id, batch.batch_id, blocks_of(batch.results))
                check_probe(columns.probe_id, columns.blocks)
                prepared.append((columns, self._prepare(columns)))
            with self._transaction():
                written = [self._write_locked(columns, received_at_ns, *parts)
                           for columns, parts in prepared]
        for (_columns, parts), (_receipt, bid) in zip(prepared, written, strict=True):
            tables = parts[3]
            if bid and foldable(tables):
                self._unfolded[bid] = tables
        if len(self._unfolded) >= FOLD_AT:
            self._fold_after_write()
        return [receipt for receipt, _bid in written]

    def _prepare(self, batch: ColumnBatch) -> tuple[str, list[list[tuple[Any, ...]]],
                                                     list[MethodBlob], TierTables]:
        """What a batch's write needs, computed before the write lock: its blob digest,
        stream rows, blobs and rollup tables."""
        blobs = batch_blobs(batch)
        streams = [[self._stream_row(b.ident) for b in m.blocks] for m in blobs]
        digest = blobs_digest((m.method, [s[0] for s in rows], m.data)
                              for m, rows in zip(blobs, streams, strict=True)).hex()
        return digest, streams, blobs, batch_tables(batch.blocks, self.thresholds_ns)

    def write_blocks(self, batch: ColumnBatch, received_at_ns: int) -> WriteReceipt:
        """Store a columnar batch exactly once, in one transaction committed before returning:
        one blob per method (:func:`analyzer.columns.batch_blobs`) and the chain extended
        over the blobs. The batch's minute, hour and day rollups are computed here and kept in
        memory until the store folds a run of batches into the rollup tables
        (:meth:`fold_pending`), every :data:`FOLD_AT` batches; reads fold first, so they see
        every stored batch."""
        if (known := self.batch_receipt(batch.probe_id, batch.batch_id)) is not None:
            return known  # cheap answer to a re-send; checked again under the write lock
        check_probe(batch.probe_id, batch.blocks)
        with _gc_paused():
            digest, streams, blobs, tables = self._prepare(batch)
            with self._transaction():  # a duplicate wrote nothing: committing it is harmless
                receipt, bid = self._write_locked(batch, received_at_ns, digest, streams,
                                                  blobs, tables)
        if bid and foldable(tables):
            self._unfolded[bid] = tables
            if len(self._unfolded) >= FOLD_AT:
                self._fold_after_write()
        return receipt

    def _fold_after_write(self) -> None:
        """Fold after a committed write. A failure is logged, not raised: the batch is
        stored and acknowledged, and the next fold (or read) folds it from
        its stored raw results."""
        try:
            self.fold_pending()
        except Exception:
            log.exception("folding rollups failed; the next fold redoes them from raw results")
            if len(self._unfolded) > 4 * FOLD_AT:
                self._unfolded.clear()  # recomputed from the raw results when folded

    def _stream_row(self, ident: StreamIdent) -> tuple[Any, ...]:
        """:func:`_stream_row`, memoised (streams recur in every batch of a probe)."""
        row = self._stream_rows.get(ident)
        if row is None:
            if len(self._stream_rows) > 100_000:
                self._stream_rows.clear()
            row = self._stream_rows[ident] = _stream_row(ident)
        return row

    def _write_locked(self, batch: ColumnBatch, received_at_ns: int, digest: str,
                      streams: list[list[tuple[Any, ...]]], blobs: list[MethodBlob],
                      tables: TierTables) -> tuple[WriteReceipt, int]:
        """The batch's rows; its receipt and chain index (0 for a duplicate)."""
        if (known := self.batch_receipt(batch.probe_id, batch.batch_id)) is not None:
            return known, 0
        head = self.chain_head()
        bid = head.length + 1
        n = batch.n
        new_head = chain.link(head.head, digest, batch.probe_id, batch.batch_id, received_at_ns)
        self._exec(_BATCH_INSERT, (bid, batch.probe_id, batch.batch_id, received_at_ns,
                                   n, digest, head.head, new_head, 0, FMT_BLOBS,
                                   ",".join(map(str, tables.thresholds))))
        ids = self._stream_ids([s for rows in streams for s in rows])
        cur = self._conn.cursor()
        cur.executemany(self._sql(_BLOB_INSERT), [
            (bid, m.method, m.n, m.first_ns, m.last_ns, _ids_text([ids[s[0]] for s in rows]),
             m.data) for m, rows in zip(blobs, streams, strict=True)])
        if not foldable(tables):  # sums beyond int64: merged as rows, after earlier batches
            self._fold_locked(bid - 1)
            self._write_parts(bid, records(tables))
            self._exec("UPDATE rollup_fold SET through_bid = ?", (bid,))
        self._exec("INSERT INTO probes (probe_id, last_batch_ns, results) VALUES (?, ?, ?) "
                   "ON CONFLICT (probe_id) DO UPDATE SET last_batch_ns = excluded.last_batch_ns, "
                   "results = probes.results + excluded.results",
                   (batch.probe_id, received_at_ns, n))
        return WriteReceipt(n, False, new_head), bid

    def _write_parts(self, part: int, rollups: dict[str, list[MinuteRollup]]) -> None:
        """Append rollups of every tier as rows numbered ``part``, then compact their keys."""
        cur = self._conn.cursor()
        for tier, (table, _size) in TIERS.items():
            cur.executemany(self._sql(_part_insert(table)),
                            [(*rollup_row(r), part) for r in rollups[tier]])
            self._compact_keys(table, sorted({r.key for r in rollups[tier]}))

    # -- folding rollups into the rollup tables -------------------------------------------
    def fold_pending(self) -> int:
        """Fold the rollups of every batch stored since the last fold into the rollup tables,
        :data:`FOLD_CHUNK` batches per transaction: for each key a run touches, its stored
        row(s) and then each batch's rollups merged in chain order into one row
        (:mod:`analyzer.store.folding`). Returns the batches folded."""
        folded = 0
        while True:
            with self._transaction():
                n = self._fold_locked(limit=FOLD_CHUNK)
            folded += n
            if n < FOLD_CHUNK:
                return folded

    def _fold_if_pending(self) -> None:
        """What readers call first, so that they see the rollups of every stored batch."""
        row = self._exec("SELECT (SELECT COALESCE(MAX(bid), 0) FROM batches) - through_bid "
                         "FROM rollup_fold").fetchone()
        if row is not None and row[0] > 0:
            self.fold_pending()

    def _fold_locked(self, through: int | None = None, limit: int = 0) -> int:
        """Fold the batches after the last fold (through chain index ``through``; at most
        ``limit``, 0: all) inside the open write transaction; returns how many."""
        done = int(self._exec("SELECT through_bid FROM rollup_fold").fetchone()[0])
        for bid in [b for b in self._unfolded if b <= done]:
            del self._unfolded[bid]  # folded meanwhile by another store (a reader, a collector)
        bids = [int(row[0]) for row in self._exec(
            "SELECT bid FROM batches WHERE bid > ? AND bid <= ? ORDER BY bid"
            + (f" LIMIT {int(limit)}" if limit else ""),
            (done, 2**62 if through is None else through)).fetchall()]
        if not bids:
            return 0
        found = [(bid, self._unfolded.get(bid) or self._tables_of(bid)) for bid in bids]
        if not self._fold_tables(found):
            for bid, tables in found:  # other thresholds, or stored rows of another shape
                self._write_parts(bid, records(tables))
        self._exec("UPDATE rollup_fold SET through_bid = ?", (bids[-1],))
        for bid in [b for b in self._unfolded if b <= bids[-1]]:
            del self._unfolded[bid]  # forgotten only once folded: a rollback keeps them
        return len(bids)

    def _tables_of(self, bid: int) -> TierTables:
        """A stored batch's rollup tables, from its raw results and with the thresholds of
        the store that ingested it (a batch another store wrote, or before this one opened)."""
        text = self._exec("SELECT thresholds FROM batches WHERE bid = ?", (bid,)).fetchone()[0]
        blocks = self._stored_blocks(bid)
        thresholds = [int(t) for t in text.split(",") if t] if text is not None else None
        return batch_tables(blocks, self.thresholds_ns if thresholds is None else thresholds)

    def _stored_blocks(self, bid: int) -> list[Block]:
        """A batch's raw results as blocks, from its blobs or (schema 3) its blocks."""
        rows = self._exec("SELECT bid, stream_ids, data FROM blobs WHERE bid = ?",
                          (bid,)).fetchall()
        if rows:
            return [b for blob, labels in zip(rows, self._blob_labels(rows), strict=True)
                    for b in decode_blob([ident for ident, _p, _t in labels], bytes(blob[2]))]
        cur = self._exec(f"SELECT {_S_COLS}, b.data FROM blocks b JOIN streams s "
                         "ON s.id = b.stream WHERE b.bid = ? ORDER BY b.sno", (bid,))
        return [decode_block(row[:14], bytes(row[14])) for row in cur.fetchall()]

    def _fold_tables(self, found: list[tuple[int, TierTables]]) -> bool:
        """The vectorised fold (:func:`merge_tables`); False, having written nothing, if the
        batches or the stored rows do not fit one table form (then rows are merged instead)."""
        thresholds = found[0][1].thresholds
        if any(tables.thresholds != thresholds or not foldable(tables)
               for _bid, tables in found):
            return False
        plan = []
        for tier, (table, _size) in TIERS.items():
            parts = [(tables.tiers[tier], tables.heads) for _bid, tables in found]
            stored = self._rows_of_keys(table, table_keys(parts))
            first: dict[tuple[Any, ...], int] = {}
            if stored:
                before = tables_from_rows(stored, thresholds)
                if before is None:
                    return False
                parts.insert(0, before)
                for row in stored:
                    first.setdefault(tuple(row[:4]), row[-1])
            merged, heads = merge_tables(parts)
            plan.append((table, list(first), [(*row, first.get(row[:4], found[0][0]))
                                              for row in table_rows(merged, heads, thresholds)]))
        where = " AND ".join(f"{c} = ?" for c in ROLLUP_KEY)
        cur = self._conn.cursor()
        for table, old, rows in plan:
            cur.executemany(self._sql(f"DELETE FROM {table} WHERE {where}"), old)
            cur.executemany(self._sql(_part_insert(table)), rows)
        return True

    def _rows_of_keys(self, table: str, keys: Sequence[tuple[Any, ...]]
                      ) -> list[tuple[Any, ...]]:
        """Every stored part of ``keys`` in ``table``, sorted by key and part."""
        out: list[tuple[Any, ...]] = []
        for i in range(0, len(keys), KEYS_PER_SELECT):
            chunk = keys[i:i + KEYS_PER_SELECT]
            values = ", ".join(["(?, ?, ?, ?)"] * len(chunk))
            out += map(tuple, self._exec(
                f"{_rollup_select(table)} WHERE ({', '.join(ROLLUP_KEY)}) IN (VALUES {values})",
                [x for key in chunk for x in key]).fetchall())
        out.sort(key=_key_and_part)
        return out

    def _stream_ids(self, streams: list[tuple[Any, ...]]) -> dict[str, int]:
        missing = {s[0]: s for s in streams if s[0] not in self._streams}
        if missing:
            cols = ", ".join(STREAM_COLUMNS)
            self._conn.cursor().executemany(self._sql(
                f"INSERT INTO streams ({cols}) VALUES ({', '.join('?' * len(STREAM_COLUMNS))}) "
                "ON CONFLICT (skey) DO NOTHING"), list(missing.values()))
            for skey in missing:
                row = self._exec("SELECT id FROM streams WHERE skey = ?", (skey,)).fetchone()
                self._streams[skey] = row[0]
        return self._streams

    # -- rollup parts and compaction ------------------------------------------------------
    def compact(self) -> int:
        """Fold every rollup key stored as several parts into one row (maintenance; ingest
        compacts the keys it writes often by itself). Returns the parts removed."""
        self._fold_if_pending()
        removed = 0
        with self._transaction():
            for table, _size in TIERS.values():
                keys = self._exec(f"SELECT {', '.join(ROLLUP_KEY)} FROM {table} GROUP BY "
                                  f"{', '.join(ROLLUP_KEY)} HAVING COUNT(*) > 1").fetchall()
                for i in range(0, len(keys), 1000):
                    removed += self._compact_keys(table, [tuple(k) for k in keys[i:i + 1000]])
        return removed

    def _compact_keys(self, table: str, keys: Sequence[tuple[Any, ...]]) -> int:
        """Replace the parts of each key by their merge, stored as the first part's number;
        returns the number of parts removed."""
        where = " AND ".join(f"{c} = ?" for c in ROLLUP_KEY)
        groups = []
        for key in keys:
            rows = self._exec(f"{_rollup_select(table)} WHERE {where} ORDER BY part",
                              key).fetchall()
            if len(rows) > 1:
                groups.append((key, rows))
        merged = merge_row_groups([rows for _key, rows in groups])
        for (key, rows), m in zip(groups, merged, strict=True):
            self._exec(f"DELETE FROM {table} WHERE {where}", key)
            self._exec(_part_insert(table), (*rollup_row(m), rows[0][-1]))
        return sum(len(rows) - 1 for _key, rows in groups)

    def record_heartbeat(self, probe_id: str, at_ns: int, spool_depth: int | None,
                         version: str | None, counters: Mapping[str, int] | None = None
                         ) -> None:
        text = None if counters is None else json.dumps(dict(counters), sort_keys=True)
        with self._transaction():
            self._exec(
                "INSERT INTO probes (probe_id, last_seen_ns, spool_depth, results, version, "
                "counters) VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (probe_id) DO UPDATE SET "
                "last_seen_ns = excluded.last_seen_ns, spool_depth = excluded.spool_depth, "
                "version = excluded.version, counters = excluded.counters",
                (probe_id, at_ns, spool_depth, version, text))

    def prune(self, before_ns: int) -> int:
        """Delete raw results sent before ``before_ns`` (retention); rollups and the chain stay.
        Batches that lose results are marked ``pruned`` so verify checks only their links. A
        blob (or block) wholly before the cut-off is deleted; one straddling it is rewritten
        with the results it keeps."""
        with self._transaction():
            removed = self._prune_blobs(before_ns)
            self._exec("UPDATE batches SET pruned = 1 WHERE bid IN "
                       "(SELECT DISTINCT bid FROM results WHERE sent_at_ns < ?)", (before_ns,))
            removed += int(self._exec("DELETE FROM results WHERE sent_at_ns < ?",
                                      (before_ns,)).rowcount)
            self._exec("UPDATE batches SET pruned = 1 WHERE bid IN "
                       "(SELECT DISTINCT bid FROM blocks WHERE first_ns < ?)", (before_ns,))
            removed += int(self._exec("SELECT COALESCE(SUM(n), 0) FROM blocks "
                                      "WHERE last_ns < ?", (before_ns,)).fetchone()[0])
            self._exec("DELETE FROM blocks WHERE last_ns < ?", (before_ns,))
            straddling = self._exec("SELECT bid, sno, data FROM blocks WHERE first_ns < ?",
                                    (before_ns,)).fetchall()
            for bid, sno, data in straddling:
                removed += self._trim_block(bid, sno, bytes(data), before_ns)
            return removed

    def _prune_blobs(self, before_ns: int) -> int:
        """:meth:`prune` of the ``blobs`` table (inside its transaction)."""
        self._exec("UPDATE batches SET pruned = 1 WHERE bid IN "
                   "(SELECT DISTINCT bid FROM blobs WHERE first_ns < ?)", (before_ns,))
        removed = int(self._exec("SELECT COALESCE(SUM(n), 0) FROM blobs WHERE last_ns < ?",
                                 (before_ns,)).fetchone()[0])
        self._exec("DELETE FROM blobs WHERE last_ns < ?", (before_ns,))
        for bid, method, ids, data in self._exec(
                "SELECT bid, method, stream_ids, data FROM blobs WHERE first_ns < ?",
                (before_ns,)).fetchall():
            removed += self._trim_blob(bid, method, _ids_of(ids), bytes(data), before_ns)
        return removed

    def _trim_blob(self, bid: int, method: str, ids: list[int], data: bytes,
                   before_ns: int) -> int:
        """Rewrite one blob without its results sent before ``before_ns`` (streams left
        without results leave its list)."""
        blocks = decode_blob([("",) * 14] * len(ids), data)
        kept = [(i, _subset(b, b.sent_at_ns >= before_ns)) for i, b in zip(ids, blocks,
                                                                              strict=True)]
        kept = [(i, b) for i, b in kept if b.n]
        n = sum(b.n for _i, b in kept)
        first = min(int(b.sent_at_ns.min()) for _i, b in kept)  # a blob kept has a result
        self._exec("UPDATE blobs SET n = ?, first_ns = ?, stream_ids = ?, data = ? "
                   "WHERE bid = ? AND method = ?",
                   (n, first, _ids_text([i for i, _b in kept]),
                    encode_blob([b for _i, b in kept]), bid, method))
        return sum(b.n for b in blocks) - n

    def _trim_block(self, bid: int, sno: int, data: bytes, before_ns: int) -> int:
        """Rewrite one block without its results sent before ``before_ns``."""
        block = decode_block(("",) * 14, data)
        keep = block.sent_at_ns >= before_ns
        kept = _subset(block, keep)
        self._exec("UPDATE blocks SET n = ?, first_ns = ?, data = ? WHERE bid = ? AND sno = ?",
                   (kept.n, _span(kept)[0], encode_block(kept), bid, sno))
        return int(block.n - kept.n)

    def prune_rollups(self, before_ns: int) -> int:
        """Delete minute rollups of UTC days wholly before ``before_ns``; the hour and day
        tiers stay. Cutting at a day boundary keeps every unit with minutes left complete,
        so :meth:`rebuild_tiers` never rebuilds a tier row from part of its minutes."""
        day = before_ns // NS_PER_MINUTE // 1440 * 1440
        self._fold_if_pending()
        with self._transaction():
            return int(self._exec("DELETE FROM rollups WHERE minute < ?", (day,)).rowcount)

    def rebuild_tiers(self) -> int:
        """Recompute the hour and day tier rows of every unit that has minute rollups, from
        those minutes (parts merged in part order, minutes in key order, as ingest would have
        merged them); units whose minutes were pruned keep their tier rows. One transaction."""
        self._fold_if_pending()
        written, self._rebuilt = 0, set()
        with self._transaction():
            cur = self._conn.cursor()
            cur.execute(f"{_ROLLUP_SELECT} ORDER BY "
                        f"{', '.join(ROLLUP_KEY)}, part")
            carry: list[Any] = []
            while chunk := cur.fetchmany(20_000):
                rows = carry + list(chunk)
                last = tuple(rows[-1][:4])
                cut = len(rows)
                while cut and tuple(rows[cut - 1][:4]) == last:
                    cut -= 1  # the last key may continue in the next chunk
                carry = rows[cut:]
                written += self._replace_tiers(_merged_rows(rows[:cut]))
            written += self._replace_tiers(_merged_rows(carry))
        self._rebuilt = set()
        return written

    def _replace_tiers(self, minutes: list[MinuteRollup]) -> int:
        """Replace the tier rows of ``minutes``' units; a unit cut by the chunk boundary is
        merged into what the previous chunk wrote (rows this rebuild has touched)."""
        n = 0
        where = " AND ".join(f"{c} = ?" for c in ROLLUP_KEY)
        for tier in ("hour", "day"):
            table = TIERS[tier][0]
            for r in fold(minutes, tier):
                if (r.key, table) in self._rebuilt:  # after this rebuild's part 0
                    self._exec(_part_insert(table), (*rollup_row(r), 1))
                    self._compact_keys(table, [r.key])
                else:
                    self._exec(f"DELETE FROM {table} WHERE {where}", r.key)
                    self._exec(_part_insert(table), (*rollup_row(r), 0))
                    self._rebuilt.add((r.key, table))
                n += 1
        return n

    # -- reading -------------------------------------------------------------------------
    def read_rollups(self, query: Query) -> list[MinuteRollup]:
        """Rollups of the query's tier whose unit overlaps ``[start_ns, end_ns)``, sorted by
        key."""
        self._fold_if_pending()
        table, where, params = _tier_window(query)
        cur = self._exec(f"{_rollup_select(table)} WHERE {where} "
                         f"ORDER BY {', '.join(ROLLUP_KEY)}, part", params)
        with _gc_paused():  # acyclic objects only: collections here would be pure cost (~2/3)
            rows = cur.fetchall()
            built = [build_rollup(row[:-1]) for row in rows]
            if query.tier != "minute" and len(rows) >= _BULK_DECODE:
                prime_columns(built, rows)
            return _merged_rows(rows, built)

    def read_rollup_columns(self, query: Query, series: Sequence[str] = SERIES
                            ) -> RollupColumns:
        """:meth:`read_rollups` as numpy columns (what the analyzer's unit tables are built
        from), with only the delay ``series`` asked for: no rollup object per row, the
        sketch blobs kept as stored until a unit table decodes the rows it needs."""
        if unknown := set(series) - set(SERIES):
            raise ValueError(f"unknown delay series {sorted(unknown)}; known: {SERIES}")
        self._fold_if_pending()
        table, where, params = _tier_window(query)
        cur = self._exec(f"{_columns_select(table, series)} WHERE {where}",
                         params)  # sorted here: cheaper than in SQL
        with _gc_paused():
            return _fetch_columns(cur, tuple(series), lambda key: self._path_ends(table, key))

    def _path_ends(self, table: str, key: Sequence[str]) -> tuple[str, str, str, str]:
        """The path ends of a (path, method, Type-P) series, from one of its rows: read once
        per series rather than four strings per row (a quarter of a large read's fetch)."""
        tables = [table, *(t for t, _size in TIERS.values() if t != table)]
        for name in tables:  # a minute read pruned meanwhile: the tiers keep the series
            row = self._exec(f"SELECT src_site, src_carrier, dst_site, dst_carrier FROM {name} "
                             "WHERE path_id = ? AND method = ? AND type_p = ? LIMIT 1",
                             key).fetchone()
            if row is not None:
                return (row[0], row[1], row[2], row[3])
        raise LookupError(f"rollups of {'/'.join(key)} vanished while being read")

    def read_results(self, query: Query) -> Iterator[Result]:
        """Raw results sent in ``[start_ns, end_ns)`` still within retention, in send order
        (ties: chain order, then index in the batch), from result rows (batches stored before
        schema version 3), blocks (version 3) and blobs alike. Only the blobs of the query's
        method are read, and only those with a stream on its paths and Type-P decoded."""
        yield from (r for _key, r in heapq.merge(self._row_results(query),
                                                  self._block_results(query),
                                                  self._blob_results(query)))

    def _row_results(self, query: Query) -> Iterator[tuple[tuple[int, int, int], Result]]:
        where, params = _filters(query, "s.")
        cur = self._exec(
            f"SELECT {_S_COLS}, r.bid, r.idx, {_R_COLS} FROM results r "
            "JOIN streams s ON s.id = r.stream "
            f"WHERE r.sent_at_ns >= ? AND r.sent_at_ns < ?{where} "
            "ORDER BY r.sent_at_ns, r.bid, r.idx", [query.start_ns, query.end_ns, *params])
        while chunk := cur.fetchmany(5000):
            for row in chunk:
                r = build_result(row[:14], row[16:])
                yield (r.sent_at_ns, row[14], row[15]), r

    def _block_results(self, query: Query) -> Iterator[tuple[tuple[int, int, int], Result]]:
        """Results of the blocks overlapping the window, in (send time, bid, idx) order."""
        where, params = _filters(query, "s.")
        cur = self._exec(
            f"SELECT {_S_COLS}, b.bid, b.data FROM blocks b JOIN streams s ON s.id = b.stream "
            f"WHERE b.first_ns < ? AND b.last_ns >= ?{where}",
            [query.end_ns, query.start_ns, *params])
        found: list[tuple[tuple[int, int, int], Result]] = []
        for row in cur.fetchall():
            found += _in_window(decode_block(row[:14], bytes(row[15])), int(row[14]), query)
        found.sort(key=_first)
        return iter(found)

    def _blob_results(self, query: Query) -> Iterator[tuple[tuple[int, int, int], Result]]:
        """Results of the blobs overlapping the window, in (send time, bid, idx) order."""
        where = "first_ns < ? AND last_ns >= ?"
        params: list[Any] = [query.end_ns, query.start_ns]
        if query.method is not None:
            where += " AND method = ?"
            params.append(query.method)
        rows = self._exec(f"SELECT bid, stream_ids, data FROM blobs WHERE {where}",
                          params).fetchall()
        paths, type_p = set(query.path_ids), query.type_p
        found: list[tuple[tuple[int, int, int], Result]] = []
        for (bid, _ids, data), labels in zip(rows, self._blob_labels(rows), strict=True):
            wanted = [(not paths or path in paths) and type_p in (None, tp)
                      for _ident, path, tp in labels]
            if not any(wanted):
                continue  # no stream of the query's paths and Type-P: not decoded
            blocks = decode_blob([ident for ident, _p, _t in labels], bytes(data))
            for block, want in zip(blocks, wanted, strict=True):
                if want:
                    found += _in_window(block, int(bid), query)
        found.sort(key=_first)
        return iter(found)

    def _blob_labels(self, rows: Sequence[Sequence[Any]]
                     ) -> list[list[tuple[StreamIdent, str, str]]]:
        """Identity, path and Type-P of the streams of each blob row (bid, stream_ids, ...)."""
        lists = [_ids_of(ids) for _bid, ids, *_rest in rows]
        streams = self._stream_labels({i for ids in lists for i in ids})
        try:
            return [[streams[i] for i in ids] for ids in lists]
        except KeyError as exc:
            raise RecordError(f"a blob names stream {exc}, which is not stored") from None

    def _stream_labels(self, ids: set[int]) -> dict[int, tuple[StreamIdent, str, str]]:
        """Identity, path and Type-P of the streams ``ids``."""
        out: dict[int, tuple[StreamIdent, str, str]] = {}
        wanted = sorted(ids)
        for k in range(0, len(wanted), 500):
            chunk = wanted[k:k + 500]
            cur = self._exec(f"SELECT s.id, {_S_COLS}, s.path_id, s.type_p FROM streams s "
                             f"WHERE s.id IN ({', '.join('?' * len(chunk))})", chunk)
            for row in cur.fetchall():
                out[int(row[0])] = (tuple(row[1:15]), row[15], row[16])
        return out

    def chain_head(self) -> ChainHead:
        row = self._exec("SELECT bid, head FROM batches ORDER BY bid DESC LIMIT 1").fetchone()
        return ChainHead(0, chain.GENESIS) if row is None else ChainHead(int(row[0]), row[1])

    def probe_health(self) -> list[ProbeHealth]:
        cur = self._exec(f"SELECT {', '.join(PROBE_COLUMNS)} FROM probes ORDER BY probe_id")
        return [ProbeHealth(p, seen, batch, depth, results, version,
                            None if counters is None else json.loads(counters))
                for p, seen, batch, depth, results, version, counters in cur.fetchall()]

    def verify_chain(self, find_head: str | None = None) -> chain.ChainReport:
        """Recompute every link and every body digest still backed by raw results."""
        return chain.check(self._links(), find_head)

    def _links(self) -> Iterator[chain.StoredLink]:
        cur = self._exec(f"SELECT {', '.join(BATCH_COLUMNS)}, fmt FROM batches ORDER BY bid")
        skeys: dict[int, str] | None = None  # read once, at the first batch of blobs
        for bid, probe, batch_id, at, _n, body, prev, head, pruned, fmt in cur.fetchall():
            if fmt == FMT_BLOBS and not pruned and skeys is None:
                skeys = self._stream_keys()
            recomputed = (None if pruned else self._blobs_body_of(bid, skeys or {})
                          if fmt == FMT_BLOBS else self._blocks_body_of(bid)
                          if fmt == FMT_BLOCKS else self._body_of(bid))
            yield chain.StoredLink(int(bid), probe, batch_id, int(at), body, prev, head,
                                   recomputed)

    def _stream_keys(self) -> dict[int, str]:
        """Every stream's key, rebuilt from its columns (so an edited stream changes it)."""
        cur = self._exec(f"SELECT s.id, {_S_COLS} FROM streams s")
        return {int(row[0]): skey_of(row[1:15]) for row in cur.fetchall()}

    def _blobs_body_of(self, bid: int, skeys: dict[int, str]) -> str:
        """The digest of a batch's stored blobs, in method order, each with the keys of the
        streams it names ("" for a list that is not one, or an id with no stream: the digest
        then cannot match)."""
        rows = sorted(self._exec("SELECT method, stream_ids, data, n, first_ns, last_ns "
                                 "FROM blobs WHERE bid = ?", (bid,)).fetchall(), key=_first_str)
        try:
            items = [(method, [skeys.get(i, "") for i in _ids_of(ids)], bytes(data))
                     for method, ids, data, *_span in rows]
            if not all(_span_holds(bytes(row[2]), len(items[k][1]), row[3:])
                       for k, row in enumerate(rows)):
                return ""  # n or the send-time span edited: window reads would miss results
        except RecordError:
            return ""
        return blobs_digest(items).hex()

    def _body_of(self, bid: int) -> str:
        cur = self._exec(f"SELECT {_S_COLS}, r.idx, {_R_COLS} FROM results r "
                         "JOIN streams s ON s.id = r.stream WHERE r.bid = ? ORDER BY r.idx",
                         (bid,))
        return body_digest((skey_of(row[:14]), row[14], row[15:])
                           for row in cur.fetchall()).hex()

    def _blocks_body_of(self, bid: int) -> str:
        """The digest of a batch's stored blocks, stream keys rebuilt from the stream columns
        (so an edited stream breaks it too)."""
        cur = self._exec(f"SELECT {_S_COLS}, b.data FROM blocks b JOIN streams s "
                         "ON s.id = b.stream WHERE b.bid = ? ORDER BY b.sno", (bid,))
        return blocks_digest((skey_of(row[:14]), bytes(row[14]))
                             for row in cur.fetchall()).hex()

    def close(self) -> None:
        self._conn.close()


_BULK_DECODE = 1000  # tier reads of this many rows decode their sketches vectorised


def _span_holds(data: bytes, streams: int, stored: Sequence[Any]) -> bool:
    """Whether a blob row's ``n``, ``first_ns`` and ``last_ns`` (what window reads and
    retention select blobs by, outside the digest) are the blob's own."""
    blocks = decode_blob([("",) * 14] * streams, data)
    sent = np.concatenate([b.sent_at_ns for b in blocks]) if blocks else np.zeros(0, np.int64)
    if not len(sent):
        return int(stored[0]) == 0
    return [int(x) for x in stored] == [len(sent), int(sent.min()), int(sent.max())]


def _first(item: tuple[tuple[int, int, int], Result]) -> tuple[int, int, int]:
    return item[0]


def _key_and_part(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*row[:4], row[-1])


def _first_str(row: Sequence[Any]) -> str:
    return str(row[0])


def _in_window(block: Block, bid: int, query: Query
               ) -> list[tuple[tuple[int, int, int], Result]]:
    """The block's results sent within the query's window, keyed (send time, bid, idx)."""
    sent = block.sent_at_ns
    keep = ((sent >= query.start_ns) & (sent < query.end_ns)).tolist()
    return [((r.sent_at_ns, bid, i), r) for i, r, k in
            zip(block.idx.tolist(), results_of(block), keep, strict=True) if k]


def _subset(block: Block, keep: np.ndarray[Any, Any]) -> Block:
    """The results of ``block`` where ``keep`` is true (sparse columns re-indexed)."""
    where = np.flatnonzero(keep)
    new_pos = {int(old): k for k, old in enumerate(where)}
    arrays = {c: getattr(block, c)[where] for c in INT_COLUMNS + CODE_COLUMNS}
    return Block(ident=block.ident, **arrays,
                 error_detail=tuple((new_pos[k], v) for k, v in block.error_detail
                                    if k in new_pos),
                 hops=tuple((new_pos[k], v) for k, v in block.hops if k in new_pos))


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small acyclic objects."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _tier_window(query: Query) -> tuple[str, str, list[Any]]:
    """The rollup table of the query's tier, and the WHERE clause and parameters selecting
    the units that overlap its window and match its filters."""
    if query.tier not in TIERS:
        raise ValueError(f"unknown tier {query.tier!r}; known: {', '.join(TIERS)}")
    table, size = TIERS[query.tier]
    where, params = _filters(query, "")
    first = query.start_ns // NS_PER_MINUTE
    return (table, f"minute >= ? AND minute <= ?{where}",
            [first - first % size, (query.end_ns - 1) // NS_PER_MINUTE, *params])


def _filters(query: Query, prefix: str) -> tuple[str, list[Any]]:
    where, params = "", list[Any]()
    if query.path_ids:
        where += f" AND {prefix}path_id IN ({', '.join('?' * len(query.path_ids))})"
        params += list(query.path_ids)
    for col, value in (("method", query.method), ("type_p", query.type_p)):
        if value is not None:
            where += f" AND {prefix}{col} = ?"
            params.append(value)
    return where, params




# -- columnar rollup reads (:meth:`SqlStore.read_rollup_columns`) ----------------------------
_SERIES_KEY = ROLLUP_KEY[:3]  # path_id, method, type_p
_COUNT_COLS = ("minute", "sent", "received", "lost", "errors", "unsynced", "clock_error_max_ns")
_DELAY_COLS = ("n", "sum", "min", "max", "sketch")
COLUMN_CHUNK = 16_384  # rows fetched and converted at a time: bounded Python temporaries
Array = np.ndarray[Any, Any]


def _columns_select(table: str, series: Sequence[str]) -> str:
    """Path, method and Type-P, counts, the clock-error bound and the part, then each delay
    series' columns."""
    cols = [*_SERIES_KEY, *_COUNT_COLS, "part",
            *(f"{d}_{f}" for d in series for f in _DELAY_COLS)]
    return f"SELECT {', '.join(cols)} FROM {table}"


def _fetch_columns(cur: Any, series: tuple[str, ...],
                   ends: Callable[[tuple[str, str, str]], tuple[str, str, str, str]]
                   ) -> RollupColumns:
    """The rows of :func:`_columns_select` as columns sorted by key (code-point order of the
    strings, whatever the database's collation) and part, then each key's parts merged;
    ``ends`` gives each series' path ends. Numbers are converted a chunk of rows at a time;
    the sketch blobs are kept as they are (decoded by the unit tables that need them)."""
    index: dict[tuple[str, str, str], int] = {}
    chunks: list[list[Array]] = []
    blobs: list[list[bytes]] = [[] for _ in series]
    while chunk := cur.fetchmany(COLUMN_CHUNK):
        cols = list(zip(*chunk, strict=True))
        chunks.append([_series_ids(cols, index), *_numbers(cols, len(series))])
        for k, column in enumerate(cols[-5 * len(series) + 4::5] if series else ()):
            blobs[k] += map(bytes, column)
    if not chunks:
        return columns_from_rollups([], series)
    keys = sorted(index)
    rank = np.empty(len(keys), dtype=np.int64)
    rank[[index[k] for k in keys]] = np.arange(len(keys))
    ids, minute, sent, received, lost, errors, unsynced, clock, part, *delay = (
        np.concatenate(c) for c in zip(*chunks, strict=True))
    order = np.lexsort((part, minute, rank[ids]))
    if not bool((order[1:] > order[:-1]).all()):
        ids, minute, sent, received, lost, errors, unsynced, clock, *delay = (
            a[order] for a in (ids, minute, sent, received, lost, errors, unsynced, clock,
                               *delay))
        blobs = [[b[i] for i in order.tolist()] for b in blobs]
    delays = {name: _delay_columns(delay[4 * k:4 * k + 4], blobs[k])
              for k, name in enumerate(series)}
    return _merge_key_parts(RollupColumns([(*k, *ends(k)) for k in keys], rank[ids], minute,
                                          sent, received, lost, errors, unsynced, clock,
                                          delays))


def _delay_columns(numbers: list[Array], blobs: list[bytes]) -> DelayColumns:
    n, lo, hi, total = numbers
    return DelayColumns(n, lo, hi, total, np.arange(len(blobs) + 1, dtype=np.int64), blobs)


def _numbers(cols: list[tuple[Any, ...]], series: int) -> list[Array]:
    """Counts, the clock bound (None: NaN), the part, then n, min, max (None: NaN) and sum of
    each delay series, for a chunk of rows."""
    at = len(_SERIES_KEY)
    out = [np.array(c, dtype=np.int64) for c in cols[at:at + 6]]
    out += [np.array(cols[at + 6], dtype=np.float64), np.array(cols[at + 7], dtype=np.int64)]
    for k in range(series):
        n, total, lo, hi = cols[at + 8 + 5 * k:at + 12 + 5 * k]
        out += [np.array(n, dtype=np.int64), np.array(lo, dtype=np.float64),
                np.array(hi, dtype=np.float64), np.array(total, dtype=np.int64)]
    return out


def _series_ids(cols: list[tuple[Any, ...]], index: dict[tuple[str, str, str], int]
                ) -> Array:
    """The series (path, method, Type-P) number of each row; new series added to ``index``."""
    return np.array([index.setdefault(k, len(index)) for k in zip(*cols[:3], strict=True)],
                    dtype=np.int64)


def _merge_key_parts(c: RollupColumns) -> RollupColumns:
    """One row per key: the parts of a key (adjacent rows of one series and minute, in part
    order) merged as :func:`_merge_parts` merges rollups: counts and sums added, the clock
    bound the largest (at least 0), delay figures only from parts with samples."""
    new = np.ones(len(c), dtype=bool)
    new[1:] = (c.series[1:] != c.series[:-1]) | (c.minute[1:] != c.minute[:-1])
    if new.all():
        return c
    first = np.flatnonzero(new)
    key = np.cumsum(new) - 1
    multi = (np.diff(np.append(first, len(c))) > 1)[key]

    def add(a: Array) -> Array:
        return np.add.reduceat(a, first)

    clock = np.fmax.reduceat(c.clock_error_max_ns, first)
    clock = np.where(np.isnan(clock) | ~multi[first], clock, np.maximum(clock, 0.0))
    return RollupColumns(c.labels, c.series[first], c.minute[first], add(c.sent),
                         add(c.received), add(c.lost), add(c.errors), add(c.unsynced), clock,
                         {name: _merge_delay(d, first, (d.n > 0) | ~multi)
                          for name, d in c.delays.items()})


def _merge_delay(d: DelayColumns, first: Array, keep: Array) -> DelayColumns:
    """A delay series' parts merged per key (``keep``: the rows whose figures count)."""
    sizes = np.where(keep, np.diff(d.starts), 0)
    kept = np.repeat(keep, np.diff(d.starts)).tolist()
    return DelayColumns(
        np.add.reduceat(np.where(keep, d.n, 0), first),
        _extreme(d.min, keep, first, np.fmin),
        _extreme(d.max, keep, first, np.fmax),
        np.add.reduceat(np.where(keep, d.sum, 0), first),
        np.concatenate(([0], np.cumsum(np.add.reduceat(sizes, first)))).astype(np.int64),
        list(compress(d.blobs, kept)))


def _extreme(v: Array, keep: Array, first: Array, pick: np.ufunc) -> Array:
    """Per key, as ``DelayStats.merge`` folds parts: ``pick`` (``fmin``/``fmax``: NaN, a
    part without the figure, loses) over the kept parts; NaN if none has it."""
    out: Array = pick.reduceat(np.where(keep, v, np.nan), first)
    return out
