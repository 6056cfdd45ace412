"""Stores written before schema version 4 open, migrate and keep working (reads, verify,
retention and new batches, stored as blobs per method): versions 1-2 (a ``results`` row per
result, rollups upserted in place) and version 3 (``batches.fmt`` 2: one block per stream and
batch, rollups as parts)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from analyzer.columns import blocks_digest, blocks_of, encode_block, path_and_type_p
from analyzer.rollup import build_rollups
from analyzer.store import Query
from analyzer.store.chain import GENESIS, link
from analyzer.store.rows import (
    RESULT_COLUMNS,
    ROLLUP_COLUMNS,
    body_digest,
    result_row,
    rollup_row,
    skey_of,
    stream_of,
)
from analyzer.store.schema import BATCH_COLUMNS, MIGRATIONS, STREAM_COLUMNS
from analyzer.store.sqlite import SqliteStore
from analyzer.store.tiers import fold
from ixmeter.wire import Batch
from tests.store.factory import NS_MIN, T0, make_batches

ALL = Query(0, 2**62)


def _schema(path: Path, version: int) -> sqlite3.Connection:
    """A new SQLite file with the migrations up to ``version`` applied."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE ixmeter_migrations (version INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at REAL NOT NULL)")
    for m in MIGRATIONS[:version]:
        for stmt in m.statements("sqlite"):
            conn.execute(stmt)
        conn.execute("INSERT INTO ixmeter_migrations VALUES (?, ?, 0)", (m.version, m.name))
    return conn


def _write_v2_store(path: Path, batches: list[Batch], version: int = 2) -> None:
    """The layout of schema ``version`` (1 or 2), written the way ixmeter 0.1 wrote it (each
    minute in one batch, so its rollups are exactly ``build_rollups``)."""
    conn = _schema(path, version)
    head, streams = GENESIS, {}
    for bid, b in enumerate(batches, start=1):
        idents = [stream_of(r) for r in b.results]
        rows = [result_row(r) for r in b.results]
        pairs = enumerate(zip(idents, rows, strict=True))
        digest = body_digest((s[0], i, row) for i, (s, row) in pairs).hex()
        new = link(head, digest, b.probe_id, b.batch_id, T0)
        conn.execute(f"INSERT INTO batches ({', '.join(BATCH_COLUMNS)}) VALUES "
                     f"({', '.join('?' * len(BATCH_COLUMNS))})",
                     (bid, b.probe_id, b.batch_id, T0, len(rows), digest, head, new, 0))
        head = new
        for s in idents:
            if s[0] not in streams:
                conn.execute(f"INSERT INTO streams ({', '.join(STREAM_COLUMNS)}) VALUES "
                             f"({', '.join('?' * len(STREAM_COLUMNS))})", s)
                streams[s[0]] = conn.execute("SELECT id FROM streams WHERE skey = ?",
                                             (s[0],)).fetchone()[0]
        conn.executemany(f"INSERT INTO results (bid, idx, stream, {', '.join(RESULT_COLUMNS)}) "
                         f"VALUES ({', '.join('?' * (3 + len(RESULT_COLUMNS)))})",
                         [(bid, i, streams[s[0]], *row)
                          for i, (s, row) in enumerate(zip(idents, rows, strict=True))])
    minutes = build_rollups([r for b in batches for r in b.results])
    tables = (("rollups", minutes), ("rollups_hour", fold(minutes, "hour")),
              ("rollups_day", fold(minutes, "day")))
    for table, rollups in tables[:1 if version == 1 else 3]:
        conn.executemany(f"INSERT INTO {table} ({', '.join(ROLLUP_COLUMNS)}) VALUES "
                         f"({', '.join('?' * len(ROLLUP_COLUMNS))})",
                         [rollup_row(r) for r in rollups])
    conn.close()


def _write_v3_store(path: Path, batches: list[Batch]) -> None:
    """The layout of schema version 3 as ixmeter wrote it then: ``batches.fmt`` 2, one
    ``blocks`` row per stream and batch (``encode_block``, IXB1) under ``blocks_digest``,
    the rollups of all batches as part 0 of each key."""
    conn = _schema(path, 3)
    head, streams = GENESIS, dict[str, int]()
    for bid, b in enumerate(batches, start=1):
        blocks = blocks_of(b.results)
        rows = [(skey_of(k.ident), *k.ident, *path_and_type_p(k.ident)) for k in blocks]
        blobs = [encode_block(k) for k in blocks]
        digest = blocks_digest(zip((r[0] for r in rows), blobs, strict=True)).hex()
        new = link(head, digest, b.probe_id, b.batch_id, T0)
        conn.execute(f"INSERT INTO batches ({', '.join(BATCH_COLUMNS)}, fmt) VALUES "
                     f"({', '.join('?' * (len(BATCH_COLUMNS) + 1))})",
                     (bid, b.probe_id, b.batch_id, T0, len(b.results), digest, head, new, 0, 2))
        head = new
        for row in rows:
            if row[0] not in streams:
                conn.execute(f"INSERT INTO streams ({', '.join(STREAM_COLUMNS)}) VALUES "
                             f"({', '.join('?' * len(STREAM_COLUMNS))})", row)
                streams[row[0]] = conn.execute("SELECT id FROM streams WHERE skey = ?",
                                               (row[0],)).fetchone()[0]
        conn.executemany("INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?, ?)", [
            (bid, sno, streams[row[0]], k.n, int(k.sent_at_ns.min()), int(k.sent_at_ns.max()),
             blob) for sno, (k, row, blob) in enumerate(zip(blocks, rows, blobs, strict=True))])
    minutes = build_rollups([r for b in batches for r in b.results])
    for table, rollups in (("rollups", minutes), ("rollups_hour", fold(minutes, "hour")),
                           ("rollups_day", fold(minutes, "day"))):
        conn.executemany(f"INSERT INTO {table} ({', '.join(ROLLUP_COLUMNS)}, part) VALUES "
                         f"({', '.join('?' * (len(ROLLUP_COLUMNS) + 1))})",
                         [(*rollup_row(r), 0) for r in rollups])
    conn.close()


def test_a_version_3_store_of_blocks_migrates_and_keeps_its_chain(tmp_path: Path) -> None:
    old = make_batches("p1", 6, 500)
    _write_v3_store(tmp_path / "old.db", old)
    store = SqliteStore(tmp_path / "old.db")
    try:
        assert store.verify_chain().ok
        olds = [r for b in old for r in b.results]
        assert list(store.read_results(ALL)) == olds
        path = "csx-a/CT>yy-a/CU"
        assert list(store.read_results(Query(0, 2**62, [path], "stamp"))) == [
            r for r in olds if r.path_id == path and r.method.value == "stamp"]
        assert store.read_rollups(ALL) == build_rollups(olds)
        new = make_batches("p1", 12, 500)[6:]
        for b in new:
            store.write_batch(b, T0)
        fmts = store._exec("SELECT fmt FROM batches ORDER BY bid").fetchall()
        assert [f for (f,) in fmts] == [2] * 6 + [3] * 6
        everything = olds + [r for b in new for r in b.results]
        assert list(store.read_results(ALL)) == everything
        assert list(store.read_results(Query(T0 + 50 * 10**9, T0 + 70 * 10**9))) == [
            r for r in everything if T0 + 50 * 10**9 <= r.sent_at_ns < T0 + 70 * 10**9]
        assert store.read_rollups(ALL) == build_rollups(everything)
        report = store.verify_chain()
        assert (report.ok, report.length, report.bodies_checked) == (True, 12, 12)
        cut = T0 + 55 * 10**9 + 1  # within batch #6 (blocks); later blobs keep everything
        assert store.prune(cut) == sum(r.sent_at_ns < cut for r in everything)
        assert list(store.read_results(ALL)) == [r for r in everything if r.sent_at_ns >= cut]
        report = store.verify_chain()
        assert (report.ok, report.bodies_checked) == (True, 6)
    finally:
        store.close()


def test_an_edited_block_of_a_version_3_store_breaks_verify(tmp_path: Path) -> None:
    _write_v3_store(tmp_path / "old.db", make_batches("p1", 3, 100))
    store = SqliteStore(tmp_path / "old.db")
    try:
        store.write_batch(make_batches("p1", 4, 100)[3], T0)
        assert store.verify_chain().ok
        store._exec("UPDATE blocks SET data = CAST(data || x'00' AS BLOB) "
                    "WHERE bid = 2 AND sno = 1")
        broken = store.verify_chain().broken
        assert broken is not None
        assert broken.startswith("batch #2 (p1/p1-b1)")
    finally:
        store.close()


def test_a_version_2_store_migrates_and_keeps_its_chain(tmp_path: Path) -> None:
    old = make_batches("p1", 6, 500)  # 3,000 results per minute, one minute per 6 batches
    _write_v2_store(tmp_path / "old.db", old)
    store = SqliteStore(tmp_path / "old.db")
    try:
        assert store.verify_chain().ok
        assert list(store.read_results(ALL)) == [r for b in old for r in b.results]
        assert store.read_rollups(ALL) == build_rollups([r for b in old for r in b.results])
        new = make_batches("p1", 12, 500)[6:]  # the next minute, as blocks
        for b in new:
            store.write_batch(b, T0)
        everything = [r for b in old + new for r in b.results]
        assert list(store.read_results(ALL)) == everything
        assert store.read_rollups(ALL) == build_rollups(everything)
        report = store.verify_chain()
        assert report.ok
        assert (report.length, report.bodies_checked) == (12, 12)
        assert store.prune(T0 + NS_MIN) == 3000
        assert [r.sent_at_ns for r in store.read_results(ALL)] == [
            r.sent_at_ns for b in new for r in b.results]
        assert store.verify_chain().ok
        store._exec("UPDATE results SET rtt_ns = rtt_ns + 1")  # nothing left to edit: pruned
        assert store.verify_chain().ok
    finally:
        store.close()


def test_an_edited_result_row_of_a_version_2_store_breaks_verify(tmp_path: Path) -> None:
    _write_v2_store(tmp_path / "old.db", make_batches("p1", 3, 100))
    store = SqliteStore(tmp_path / "old.db")
    try:
        store._exec("UPDATE results SET rtt_ns = rtt_ns + 1 WHERE bid = 2 AND idx = 0")
        broken = store.verify_chain().broken
        assert broken is not None
        assert broken.startswith("batch #2 (p1/p1-b1)")
    finally:
        store.close()


def test_a_version_1_store_gets_its_tiers_built(tmp_path: Path) -> None:
    batches = make_batches("p1", 8, 500)
    _write_v2_store(tmp_path / "old.db", batches, version=1)
    store = SqliteStore(tmp_path / "old.db")
    try:
        minutes = build_rollups([r for b in batches for r in b.results])
        for tier in ("hour", "day"):
            assert store.read_rollups(Query(0, 2**62, tier=tier)) == fold(minutes, tier)
        assert store.verify_chain().ok
    finally:
        store.close()
