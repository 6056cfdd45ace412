"""The SQLite store: one file, WAL journal with ``synchronous=NORMAL``, one writer.

The hot ingest path is plain ``executemany`` inside one ``BEGIN IMMEDIATE`` transaction per
batch (measured against sqlite-utils' ``insert_all`` in docs/collector.md); sqlite-utils runs
the migrations registry and is there for ad-hoc work (``store.db``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import sqlite_utils

from analyzer.rollup import DEFAULT_THRESHOLDS_NS
from analyzer.store.schema import LATEST, MIGRATIONS, TIERS_MIGRATION
from analyzer.store.sql import SqlStore
from ixmeter.errors import IxmeterError


class StoreError(IxmeterError):
    """The database cannot be opened or is from a newer ixmeter."""


class SqliteStore(SqlStore):
    """:class:`analyzer.store.base.Store` on a SQLite file."""

    def __init__(self, path: str | Path,
                 thresholds_ns: Sequence[int] = DEFAULT_THRESHOLDS_NS) -> None:
        try:
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                   timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {str(path)!r}: {exc}",
                             hint="check the path and that its directory is writable") from None
        conn.execute("PRAGMA synchronous=NORMAL")
        super().__init__(conn, thresholds_ns)
        self.path = Path(path)
        self.db = sqlite_utils.Database(conn)
        if TIERS_MIGRATION in migrate(self.db):
            self.rebuild_tiers()  # a store written before the tiers existed

    def _begin_write(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")


def migrate(db: sqlite_utils.Database) -> list[int]:
    """Apply pending migrations in order; return the versions applied."""
    table = db["ixmeter_migrations"]
    if not table.exists():
        db.execute("CREATE TABLE IF NOT EXISTS ixmeter_migrations "
                   "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)")
    done = {row["version"] for row in db["ixmeter_migrations"].rows}
    if done and max(done) > LATEST:
        raise StoreError(f"database schema version {max(done)} is newer than this ixmeter "
                         f"({LATEST})", hint="upgrade ixmeter")
    applied = []
    for m in MIGRATIONS:
        if m.version in done:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            for stmt in m.statements("sqlite"):
                db.execute(stmt)
            db.execute("INSERT INTO ixmeter_migrations VALUES (?, ?, ?)",
                       (m.version, m.name, time.time()))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        applied.append(m.version)
    return applied
