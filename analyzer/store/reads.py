"""Reading the store: chain head, rollups (as records or columns), raw results, probe health.

Readers never write. Batches no fold link has folded yet (a collector folds every few dozen
batches or when idle; :mod:`analyzer.store.foldset`) are folded *in memory* the way the writer
will fold them (:func:`analyzer.store.folding.plan`), from their stored raw results, so every
read sees every stored batch: a rollup key those batches touch is read as the fold would leave
it. The pending fold is computed once per state of the chain and kept (:class:`Pending`).

Call reads inside :meth:`Reader.snapshot` when several must agree (a report's figures and the
chain head it quotes): the store may be written meanwhile by a collector.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain as chained
from typing import Any

from analyzer.columns import Block, StreamIdent, decode_blob, results_of
from analyzer.rollups.batch import batch_tables
from analyzer.rollups.columns import SERIES, RollupColumns
from analyzer.rollups.model import NS_PER_MINUTE, MinuteRollup
from analyzer.rollups.rows import ROLLUP_COLUMNS, ROLLUP_KEY, rollups_of_rows
from analyzer.rollups.tables import TierTables
from analyzer.store import chain
from analyzer.store.base import ChainHead, ProbeHealth, Query, Report, WriteReceipt
from analyzer.store.column_reads import COLUMN_CHUNK, column_names, fetch_columns
from analyzer.store.connection import Db, StoreError, gc_paused
from analyzer.store.folding import Key, Row, key_of, plan
from analyzer.store.foldset import Unfolded, unfolded_of
from analyzer.store.schema import (
    GROUP_TIERS,
    PROBE_COLUMNS,
    STORED_ROLLUP_COLUMNS,
    TIERS,
    SchemaError,
    check_version,
)
from analyzer.store.streams import IDENT_COLUMNS, ids_of
from analyzer.store.verify import verify
from ixmeter.core.errors import RecordError
from ixmeter.core.record import Result

_S_COLS = ", ".join(f"s.{c}" for c in IDENT_COLUMNS)
_ROWS = f"SELECT {', '.join(STORED_ROLLUP_COLUMNS)} FROM "
KEYS_PER_SELECT = 200  # rollup keys looked up per statement
Labels = list[tuple[StreamIdent, str, str]]


@dataclass(frozen=True, slots=True)
class Pending:
    """The rollup rows folding the batches not folded yet would write, per table and key;
    computed for the chain state ending at link ``length`` (fold watermark ``through``)."""

    length: int
    through: int
    batches: int
    rows: dict[str, dict[Key, Row]]


class Reader:
    """The read half of the store over a :class:`~analyzer.store.connection.Db`."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self._pending: Pending | None = None
        self._tables: dict[int, TierTables] = {}  # pending batches' rollups, by chain index

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read inside sees one committed state of the store."""
        with self.db.snapshot():
            yield

    # -- the chain and batches -----------------------------------------------------------
    def chain_head(self) -> ChainHead:
        row = self.db.execute("SELECT idx, head FROM links ORDER BY idx DESC LIMIT 1"
                              ).fetchone()
        return ChainHead(0, chain.GENESIS) if row is None else ChainHead(int(row[0]), row[1])

    def batch_receipt(self, probe_id: str, batch_id: str) -> WriteReceipt | None:
        """The duplicate answer for a batch already stored (its own chain head), else None."""
        row = self.db.execute("SELECT head FROM links WHERE probe_id = ? AND batch_id = ?",
                              (probe_id, batch_id)).fetchone()
        return None if row is None else WriteReceipt(0, True, row[0])

    def folded_through(self) -> int:
        """The fold watermark: every batch at or below this chain index is folded (later
        ones may be too, named by later fold links; :meth:`unfolded`)."""
        row = self.db.execute("SELECT detail FROM links WHERE kind = ? ORDER BY idx DESC "
                              "LIMIT 1", (chain.FOLD,)).fetchone()
        return 0 if row is None else int(json.loads(row[0])["through"])

    def committed_state(self) -> dict[str, str]:
        """Each evidence table's state digest as the last fold, prune or load link committed it
        (empty before the first)."""
        row = self.db.execute(f"SELECT detail FROM links WHERE kind IN "
                              f"({', '.join('?' * len(chain.STATE_KINDS))}) ORDER BY idx "
                              "DESC LIMIT 1", chain.STATE_KINDS).fetchone()
        return {} if row is None else dict(json.loads(row[0])["state"])

    def unfolded(self) -> list[Unfolded]:
        """Each stored batch not folded yet, in chain order (:mod:`analyzer.store.foldset`):
        above the watermark and named by no later fold link."""
        through = self.folded_through()
        folds = [json.loads(d)["batches"] for (d,) in self.db.execute(
            "SELECT detail FROM links WHERE kind = ? AND idx > ?", (chain.FOLD, through))]
        return unfolded_of([
            Unfolded(int(bid), chain.thresholds_of(text), int(at), int(first), int(last))
            for bid, text, at, first, last in self.db.execute(
                "SELECT idx, thresholds, at_ns, first_ns, last_ns FROM links WHERE kind = ? "
                "AND idx > ? ORDER BY idx", (chain.BATCH, through)).fetchall()], folds)

    def probe_health(self) -> list[ProbeHealth]:
        cur = self.db.execute(f"SELECT {', '.join(PROBE_COLUMNS)} FROM probes "
                              "ORDER BY probe_id")
        return [ProbeHealth(p, seen, batch, depth, results, version,
                            None if counters is None else json.loads(counters))
                for p, seen, batch, depth, results, version, counters in cur.fetchall()]

    # -- raw results ----------------------------------------------------------------------
    def batch_blocks(self, bid: int) -> list[Block]:
        """A stored batch's raw results as blocks (empty once pruned)."""
        rows = self.db.execute("SELECT bid, stream_ids, data FROM blobs WHERE bid = ? "
                               "ORDER BY method", (bid,)).fetchall()
        return [b for row, labels in zip(rows, self._blob_labels(rows), strict=True)
                for b in decode_blob([ident for ident, _p, _t in labels], bytes(row[2]))]

    def batch_tables(self, bid: int, thresholds: Sequence[int]) -> TierTables:
        """A stored batch's rollups as tables, with the thresholds it was ingested with."""
        return batch_tables(self.batch_blocks(bid), thresholds)

    def read_results(self, query: Query) -> Iterator[Result]:
        """Raw results sent in ``[start_ns, end_ns)`` still within retention, in send order
        (ties: chain order, then index in the batch). Only the blobs of the query's method
        are read, and only those with a stream on its paths and Type-P decoded."""
        where = "first_ns < ? AND last_ns >= ?"
        params: list[Any] = [query.end_ns, query.start_ns]
        if query.method is not None:
            where += " AND method = ?"
            params.append(query.method)
        rows = self.db.execute(f"SELECT bid, stream_ids, data FROM blobs WHERE {where}",
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
        return iter(r for _key, r in found)

    def _blob_labels(self, rows: Sequence[Sequence[Any]]) -> list[Labels]:
        """Identity, path and Type-P of the streams of each blob row (bid, stream_ids, ...)."""
        lists = [ids_of(ids) for _bid, ids, *_rest in rows]
        streams = self._stream_labels({i for ids in lists for i in ids})
        try:
            return [[streams[i] for i in ids] for ids in lists]
        except KeyError as exc:
            raise RecordError(f"a blob names stream {exc}, which is not stored") from None

    def _stream_labels(self, ids: set[int]) -> dict[int, tuple[StreamIdent, str, str]]:
        out: dict[int, tuple[StreamIdent, str, str]] = {}
        wanted = sorted(ids)
        for k in range(0, len(wanted), 500):
            chunk = wanted[k:k + 500]
            cur = self.db.execute(f"SELECT s.id, {_S_COLS}, s.path_id, s.type_p FROM streams s "
                                  f"WHERE s.id IN ({', '.join('?' * len(chunk))})", chunk)
            for row in cur.fetchall():
                out[int(row[0])] = (StreamIdent._make(row[1:15]), row[15], row[16])
        return out

    # -- rollups --------------------------------------------------------------------------
    def stored_rows(self, table: str, keys: Sequence[Key]) -> list[Row]:
        """The stored rows of ``keys`` in ``table`` (rollup columns, then the digest)."""
        out: list[Row] = []
        for i in range(0, len(keys), KEYS_PER_SELECT):
            chunk = keys[i:i + KEYS_PER_SELECT]
            values = ", ".join(["(?, ?, ?, ?)"] * len(chunk))
            out += map(tuple, self.db.execute(
                f"{_ROWS}{table} WHERE ({', '.join(ROLLUP_KEY)}) IN (VALUES {values})",
                [x for key in chunk for x in key]).fetchall())
        return out

    def pending(self) -> Pending:
        """The in-memory fold of the batches not folded yet."""
        length = self.chain_head().length
        if self._pending is not None and self._pending.length == length:
            return self._pending
        through = self.folded_through()
        self._tables = {u.bid: self._tables.get(u.bid) or self.batch_tables(u.bid, u.thresholds)
                        for u in self.unfolded()}  # each batch decoded once
        batches = list(self._tables.values())
        rows: dict[str, dict[Key, Row]] = {table: {} for table, _size in TIERS.values()}
        if batches:
            for change in plan(batches, self.stored_rows, check=None):
                rows[change.table] = {key_of(r): r for r in change.written}
        self._pending = Pending(length, through, len(batches), rows)
        return self._pending

    def _tier_rows(self, query: Query, columns: str) -> tuple[Iterator[list[Any]], list[Row]]:
        """The query's stored rows (``columns`` selected), a chunk at a time, without the keys
        the pending fold rewrites; and the pending fold's rows of the query (all columns)."""
        table, where, params = _tier_window(query)
        pending = self.pending().rows[table]
        cur = self.db.execute(f"SELECT {columns} FROM {table} WHERE {where}", params)
        extra = [r for key, r in pending.items() if _matches(query, key) and _flagged(query, r)]

        def chunks() -> Iterator[list[Any]]:
            while chunk := cur.fetchmany(COLUMN_CHUNK):
                yield [r for r in chunk if key_of(r) not in pending] if pending else chunk
        return chunks(), extra

    def read_rollups(self, query: Query) -> list[MinuteRollup]:
        """Rollups of the query's tier whose unit overlaps ``[start_ns, end_ns)``, sorted by
        key."""
        chunks, extra = self._tier_rows(query, ", ".join(ROLLUP_COLUMNS))
        with gc_paused():  # acyclic objects only: collections here would be pure cost
            rows = sorted(chained(chained.from_iterable(chunks), extra), key=key_of)
            return rollups_of_rows(rows)

    def read_rollup_columns(self, query: Query, series: Sequence[str] = SERIES
                            ) -> RollupColumns:
        """:meth:`read_rollups` as numpy columns (what the analyzer's unit tables are built
        from), with only the delay ``series`` asked for: no rollup object per row, the
        sketch blobs kept as stored until a unit table decodes the rows it needs."""
        if unknown := set(series) - set(SERIES):
            raise ValueError(f"unknown delay series {sorted(unknown)}; known: {SERIES}")
        picked = column_names(tuple(series))
        chunks, extra = self._tier_rows(query, ", ".join(picked))
        at = [STORED_ROLLUP_COLUMNS.index(c) for c in picked]
        projected = [tuple(r[i] for i in at) for r in extra]
        ends = {(r[0], r[1], r[2]): (r[4], r[5], r[6], r[7]) for r in extra}
        table = TIERS[query.tier][0]
        with gc_paused():
            return fetch_columns(chained(chunks, [projected] if projected else []),
                                  tuple(series), lambda key: ends.get(key) or self._path_ends(
                                      table, key))

    def read_group_columns(self, grouping: str, query: Query, series: Sequence[str] = SERIES
                           ) -> tuple[RollupColumns, set[int]]:
        """The rows of target grouping ``grouping`` (:mod:`analyzer.groups`) whose unit
        overlaps the query's window (tier hour or day) as columns: group rows labelled
        ``("GROUPING:GROUP", method, Type-P, "", "", "", "")``, the path rows kept for
        exclusions labelled ``("GROUPING!PATH", method, Type-P, path ends)``; and the units
        built for it (its marker rows), but those the pending fold changes (their rows are
        left out too)."""
        table, _size = GROUP_TIERS[query.tier]
        _t, low, high = _unit_span(query)
        stale = {k[3] for k in self.pending().rows[TIERS[query.tier][0]]}
        marker = f"{grouping}:"
        where, params = "path_id >= ? AND path_id < ? AND minute >= ? AND minute <= ?", [
            grouping, f"{grouping}~", low, high]
        if query.method is not None:
            where += " AND (method = ? OR path_id = ?)"
            params += [query.method, marker]
        cur = self.db.execute(f"SELECT {', '.join(column_names(tuple(series)))} FROM {table} "
                              f"WHERE {where}", params)
        built = set[int]()

        def chunks() -> Iterator[list[Any]]:
            while chunk := cur.fetchmany(COLUMN_CHUNK):
                built.update(int(r[3]) for r in chunk if r[0] == marker)
                yield [r for r in chunk if r[0] != marker and int(r[3]) not in stale]

        def ends(key: tuple[str, str, str]) -> tuple[str, str, str, str]:
            return self._path_ends(table, key) if key[0][len(grouping)] == "!" else \
                ("", "", "", "")
        with gc_paused():
            cols = fetch_columns(chunks(), tuple(series), ends)
        return cols, built - stale

    def _path_ends(self, table: str, key: Sequence[str]) -> tuple[str, str, str, str]:
        """The path ends of a (path, method, Type-P) series, from one of its rows: read once
        per series rather than four strings per row."""
        for name in [table, *(t for t, _size in TIERS.values() if t != table)]:
            row = self.db.execute(f"SELECT src_site, src_carrier, dst_site, dst_carrier FROM "
                                  f"{name} WHERE path_id = ? AND method = ? AND type_p = ? "
                                  "LIMIT 1", key).fetchone()
            if row is not None:
                return (row[0], row[1], row[2], row[3])
        raise LookupError(f"rollups of {'/'.join(key)} vanished while being read")

    def verify(self, find_head: str | None = None, deep: bool = False) -> Report:
        """``ixmeter verify`` (:func:`analyzer.store.verify.verify`)."""
        return verify(self, find_head, deep)

    def close(self) -> None:
        self.db.close()


def open_checked(db: Db) -> Reader:
    """A reader over ``db`` once its schema is this ixmeter's; else :class:`StoreError`."""
    try:
        done = {int(r[0]) for r in db.execute("SELECT version FROM ixmeter_migrations")}
    except Exception:
        db.close()
        raise StoreError("not an ixmeter store (no ixmeter_migrations table)",
                         hint="check the path or URL") from None
    try:
        check_version(done)
    except SchemaError as exc:
        db.close()
        raise StoreError(str(exc)) from None
    if not done:
        db.close()
        raise StoreError("the store's schema was never created",
                         hint="open it once with a writer (collector, import)")
    return Reader(db)


def _first(item: tuple[tuple[int, int, int], Result]) -> tuple[int, int, int]:
    return item[0]


def _in_window(block: Block, bid: int, query: Query
               ) -> list[tuple[tuple[int, int, int], Result]]:
    """The block's results sent within the query's window, keyed (send time, bid, idx)."""
    sent = block.sent_at_ns
    keep = ((sent >= query.start_ns) & (sent < query.end_ns)).tolist()
    return [((r.sent_at_ns, bid, i), r) for i, r, k in
            zip(block.idx.tolist(), results_of(block), keep, strict=True) if k]


def _unit_span(query: Query) -> tuple[str, int, int]:
    """The query tier's table and the first and last unit start (minutes) overlapping it."""
    if query.tier not in TIERS:
        raise ValueError(f"unknown tier {query.tier!r}; known: {', '.join(TIERS)}")
    table, size = TIERS[query.tier]
    first = query.start_ns // NS_PER_MINUTE
    return table, first - first % size, (query.end_ns - 1) // NS_PER_MINUTE


def _tier_window(query: Query) -> tuple[str, str, list[Any]]:
    """The rollup table of the query's tier, and the WHERE clause and parameters selecting
    the units that overlap its window and match its filters."""
    table, low, high = _unit_span(query)
    where, params = "minute >= ? AND minute <= ?", list[Any]([low, high])
    if query.path_ids:
        where += f" AND path_id IN ({', '.join('?' * len(query.path_ids))})"
        params += list(query.path_ids)
    for col, value in (("method", query.method), ("type_p", query.type_p)):
        if value is not None:
            where += f" AND {col} = ?"
            params.append(value)
    if query.flagged:
        sites = ", ".join("?" * len(query.flagged))
        where += f" AND (errors > 0 OR src_site NOT IN ({sites}) OR dst_site NOT IN ({sites}))"
        params += [*query.flagged, *query.flagged]
    return table, where, params


def _flagged(query: Query, row: Row) -> bool:
    """Whether a rollup row passes the query's ``flagged`` filter."""
    if query.flagged is None:
        return True
    return bool(row[ROLLUP_COLUMNS.index("errors")]) or not {
        row[ROLLUP_COLUMNS.index("src_site")], row[ROLLUP_COLUMNS.index("dst_site")]
    } <= set(query.flagged)


def _matches(query: Query, key: Key) -> bool:
    """Whether a rollup key is one :func:`_tier_window` selects."""
    _table, low, high = _unit_span(query)
    path, method, type_p, minute = key
    return (low <= minute <= high and (not query.path_ids or path in query.path_ids)
            and query.method in (None, method) and query.type_p in (None, type_p))
