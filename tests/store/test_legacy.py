"""Stores written before schema version 3 (a ``results`` row per result, rollups upserted in
place) open, migrate and keep working: reads, verify, retention and new columnar batches."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from analyzer.rollup import build_rollups
from analyzer.store import Query
from analyzer.store.chain import GENESIS, link
from analyzer.store.rows import (
    RESULT_COLUMNS,
    ROLLUP_COLUMNS,
    body_digest,
    result_row,
    rollup_row,
    stream_of,
)
from analyzer.store.schema import BATCH_COLUMNS, MIGRATIONS, STREAM_COLUMNS
from analyzer.store.sqlite import SqliteStore
from analyzer.store.tiers import fold
from ixmeter.wire import Batch
from tests.store.factory import NS_MIN, T0, make_batches

ALL = Query(0, 2**62)


def _write_v2_store(path: Path, batches: list[Batch], version: int = 2) -> None:
    """The layout of schema ``version`` (1 or 2), written the way ixmeter 0.1 wrote it (each
    minute in one batch, so its rollups are exactly ``build_rollups``)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE ixmeter_migrations (version INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at REAL NOT NULL)")
    for m in MIGRATIONS[:version]:
        for stmt in m.statements("sqlite"):
            conn.execute(stmt)
        conn.execute("INSERT INTO ixmeter_migrations VALUES (?, ?, 0)", (m.version, m.name))
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
