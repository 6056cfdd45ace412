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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from analyzer.rollup import DEFAULT_THRESHOLDS_NS, NS_PER_MINUTE, MinuteRollup, build_rollups
from analyzer.store import chain
from analyzer.store.base import ChainHead, ProbeHealth, Query, WriteReceipt
from analyzer.store.rows import (
    RESULT_COLUMNS,
    ROLLUP_COLUMNS,
    ROLLUP_KEY,
    STREAM_COLUMNS,
    body_digest,
    build_result,
    build_rollup,
    prime_columns,
    result_row,
    rollup_labels,
    rollup_row,
    skey_of,
    stream_of,
)
from analyzer.store.schema import BATCH_COLUMNS, PROBE_COLUMNS, TIERS
from analyzer.store.tiers import fold, merge_pair
from ixmeter.record import Result
from ixmeter.wire import Batch

_R_COLS = ", ".join(f"r.{c}" for c in RESULT_COLUMNS)
_S_COLS = ", ".join(f"s.{c}" for c in STREAM_COLUMNS[1:15])


def _rollup_select(table: str) -> str:
    return f"SELECT {', '.join(ROLLUP_COLUMNS)} FROM {table}"


def _rollup_upsert(table: str) -> str:
    return (f"INSERT INTO {table} ({', '.join(ROLLUP_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(ROLLUP_COLUMNS))}) "
            f"ON CONFLICT ({', '.join(ROLLUP_KEY)}) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in ROLLUP_COLUMNS[len(ROLLUP_KEY):]))


_ROLLUP_SELECT = _rollup_select("rollups")
_RESULT_INSERT = (
    f"INSERT INTO results (bid, idx, stream, {', '.join(RESULT_COLUMNS)}) "
    f"VALUES ({', '.join('?' * (3 + len(RESULT_COLUMNS)))}) ON CONFLICT DO NOTHING")
_BATCH_INSERT = (f"INSERT INTO batches ({', '.join(BATCH_COLUMNS)}) "
                 f"VALUES ({', '.join('?' * len(BATCH_COLUMNS))})")


class SqlStore:
    """Common implementation of :class:`analyzer.store.base.Store` over a DB-API connection."""

    placeholder = "?"

    def __init__(self, conn: Any, thresholds_ns: Sequence[int] = DEFAULT_THRESHOLDS_NS) -> None:
        self._conn = conn
        self.thresholds_ns = tuple(sorted(set(thresholds_ns)))
        self._streams: dict[str, int] = {}
        self._in_tx = False
        self._idents: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._rebuilt: set[tuple[tuple[str, str, str, int], str]] = set()

    # -- backend hooks -------------------------------------------------------------------
    def _begin_write(self) -> None:
        raise NotImplementedError

    def _insert_results(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        cur.executemany(self._sql(_RESULT_INSERT), rows)

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
        """Store a batch exactly once, merge its minute rollups and extend the chain, in one
        transaction committed before returning."""
        if (known := self.batch_receipt(batch.probe_id, batch.batch_id)) is not None:
            return known  # cheap answer to a re-send; checked again under the write lock
        with _gc_paused():  # ~10 acyclic objects per result: collections would be pure cost
            streams = [stream_of(r, self._idents) for r in batch.results]
            rows = [result_row(r) for r in batch.results]
            skeys = [s[0] for s in streams]
            digest = body_digest(zip(skeys, range(len(rows)), rows, strict=True))
            rollups = build_rollups(batch.results, self.thresholds_ns, rollup_labels(streams))
            with self._transaction():  # a duplicate wrote nothing: committing it is harmless
                return self._write_locked(batch, received_at_ns, digest.hex(), streams, rows,
                                          rollups)

    def _write_locked(self, batch: Batch, received_at_ns: int, digest: str,
                      streams: list[tuple[Any, ...]], rows: list[tuple[Any, ...]],
                      rollups: list[MinuteRollup]) -> WriteReceipt:
        if (known := self.batch_receipt(batch.probe_id, batch.batch_id)) is not None:
            return known
        head = self.chain_head()
        bid = head.length + 1
        new_head = chain.link(head.head, digest, batch.probe_id, batch.batch_id, received_at_ns)
        self._exec(_BATCH_INSERT, (bid, batch.probe_id, batch.batch_id, received_at_ns,
                                   len(rows), digest, head.head, new_head, 0))
        ids = self._stream_ids(streams)
        cur = self._conn.cursor()
        self._insert_results(cur, [(bid, i, ids[s[0]], *row)
                                   for i, (s, row) in enumerate(zip(streams, rows, strict=True))])
        for r in rollups:
            self._merge_rollup(r, "rollups")
        for tier in ("hour", "day"):
            for r in fold(rollups, tier):
                self._merge_rollup(r, TIERS[tier][0])
        self._exec("INSERT INTO probes (probe_id, last_batch_ns, results) VALUES (?, ?, ?) "
                   "ON CONFLICT (probe_id) DO UPDATE SET last_batch_ns = excluded.last_batch_ns, "
                   "results = probes.results + excluded.results",
                   (batch.probe_id, received_at_ns, len(rows)))
        return WriteReceipt(len(rows), False, new_head)

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

    def _merge_rollup(self, new: MinuteRollup, table: str) -> None:
        where = " AND ".join(f"{c} = ?" for c in ROLLUP_KEY)
        row = self._exec(f"{_rollup_select(table)} WHERE {where}", new.key).fetchone()
        merged = new if row is None else merge_pair(build_rollup(row), new)
        self._exec(_rollup_upsert(table), rollup_row(merged))

    def record_heartbeat(self, probe_id: str, at_ns: int, spool_depth: int | None,
                         version: str | None) -> None:
        with self._transaction():
            self._exec(
                "INSERT INTO probes (probe_id, last_seen_ns, spool_depth, results, version) "
                "VALUES (?, ?, ?, 0, ?) ON CONFLICT (probe_id) DO UPDATE SET "
                "last_seen_ns = excluded.last_seen_ns, spool_depth = excluded.spool_depth, "
                "version = excluded.version", (probe_id, at_ns, spool_depth, version))

    def prune(self, before_ns: int) -> int:
        """Delete raw results sent before ``before_ns`` (retention); rollups and the chain stay.
        Batches that lose rows are marked ``pruned`` so verify checks only their links."""
        with self._transaction():
            self._exec("UPDATE batches SET pruned = 1 WHERE bid IN "
                       "(SELECT DISTINCT bid FROM results WHERE sent_at_ns < ?)", (before_ns,))
            return int(self._exec("DELETE FROM results WHERE sent_at_ns < ?",
                                  (before_ns,)).rowcount)

    def prune_rollups(self, before_ns: int) -> int:
        """Delete minute rollups of UTC days wholly before ``before_ns``; the hour and day
        tiers stay. Cutting at a day boundary keeps every unit with minutes left complete,
        so :meth:`rebuild_tiers` never rebuilds a tier row from part of its minutes."""
        day = before_ns // NS_PER_MINUTE // 1440 * 1440
        with self._transaction():
            return int(self._exec("DELETE FROM rollups WHERE minute < ?", (day,)).rowcount)

    def rebuild_tiers(self) -> int:
        """Recompute the hour and day tier rows of every unit that has minute rollups, from
        those minutes (in key order, as ingest would have merged them); units whose minutes
        were pruned keep their tier rows. One transaction."""
        written, self._rebuilt = 0, set()
        with self._transaction():
            cur = self._conn.cursor()
            cur.execute(f"{_ROLLUP_SELECT} ORDER BY {', '.join(ROLLUP_KEY)}")
            while chunk := cur.fetchmany(20_000):
                minutes = [build_rollup(row) for row in chunk]
                written += self._replace_tiers(minutes)
        self._rebuilt = set()
        return written

    def _replace_tiers(self, minutes: list[MinuteRollup]) -> int:
        """Upsert the tier rows of ``minutes``; a unit cut by the chunk boundary is merged
        into what the previous chunk wrote (rows this rebuild has touched)."""
        n = 0
        for tier in ("hour", "day"):
            table = TIERS[tier][0]
            for r in fold(minutes, tier):
                if (r.key, table) in self._rebuilt:
                    self._merge_rollup(r, table)
                else:
                    self._exec(_rollup_upsert(table), rollup_row(r))
                    self._rebuilt.add((r.key, table))
                n += 1
        return n

    # -- reading -------------------------------------------------------------------------
    def read_rollups(self, query: Query) -> list[MinuteRollup]:
        """Rollups of the query's tier whose unit overlaps ``[start_ns, end_ns)``, sorted by
        key."""
        if query.tier not in TIERS:
            raise ValueError(f"unknown tier {query.tier!r}; known: {', '.join(TIERS)}")
        table, size = TIERS[query.tier]
        where, params = _filters(query, "")
        first = query.start_ns // NS_PER_MINUTE
        params = [first - first % size, (query.end_ns - 1) // NS_PER_MINUTE, *params]
        cur = self._exec(f"{_rollup_select(table)} WHERE minute >= ? AND minute <= ?{where} "
                         f"ORDER BY {', '.join(ROLLUP_KEY)}", params)
        with _gc_paused():  # acyclic objects only: collections here would be pure cost (~2/3)
            rows = cur.fetchall()
            out = [build_rollup(row) for row in rows]
            if query.tier != "minute" and len(rows) >= _BULK_DECODE:
                prime_columns(out, rows)
            return out

    def read_results(self, query: Query) -> Iterator[Result]:
        """Raw results sent in ``[start_ns, end_ns)`` still within retention, in send order."""
        where, params = _filters(query, "s.")
        cur = self._exec(
            f"SELECT {_S_COLS}, {_R_COLS} FROM results r JOIN streams s ON s.id = r.stream "
            f"WHERE r.sent_at_ns >= ? AND r.sent_at_ns < ?{where} "
            "ORDER BY r.sent_at_ns, r.bid, r.idx", [query.start_ns, query.end_ns, *params])
        while chunk := cur.fetchmany(5000):
            for row in chunk:
                yield build_result(row[:14], row[14:])

    def chain_head(self) -> ChainHead:
        row = self._exec("SELECT bid, head FROM batches ORDER BY bid DESC LIMIT 1").fetchone()
        return ChainHead(0, chain.GENESIS) if row is None else ChainHead(int(row[0]), row[1])

    def probe_health(self) -> list[ProbeHealth]:
        cur = self._exec(f"SELECT {', '.join(PROBE_COLUMNS)} FROM probes ORDER BY probe_id")
        return [ProbeHealth(p, seen, batch, depth, results, version)
                for p, seen, batch, depth, results, version in cur.fetchall()]

    def verify_chain(self, find_head: str | None = None) -> chain.ChainReport:
        """Recompute every link and every body digest still backed by raw results."""
        return chain.check(self._links(), find_head)

    def _links(self) -> Iterator[chain.StoredLink]:
        cur = self._exec(f"SELECT {', '.join(BATCH_COLUMNS)} FROM batches ORDER BY bid")
        for bid, probe, batch_id, at, _n, body, prev, head, pruned in cur.fetchall():
            recomputed = None if pruned else self._body_of(bid)
            yield chain.StoredLink(int(bid), probe, batch_id, int(at), body, prev, head,
                                   recomputed)

    def _body_of(self, bid: int) -> str:
        cur = self._exec(f"SELECT {_S_COLS}, r.idx, {_R_COLS} FROM results r "
                         "JOIN streams s ON s.id = r.stream WHERE r.bid = ? ORDER BY r.idx",
                         (bid,))
        return body_digest((skey_of(row[:14]), row[14], row[15:])
                           for row in cur.fetchall()).hex()

    def close(self) -> None:
        self._conn.close()


_BULK_DECODE = 1000  # tier reads of this many rows decode their sketches vectorised


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

