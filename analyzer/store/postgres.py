"""The PostgreSQL store (psycopg 3): the same interface and tables as SQLite, for several
collectors behind a load balancer.

Writers serialise chain extension with a transaction-scoped advisory lock, so batches from any
collector form one chain and the ``(probe_id, batch_id)`` duplicate check sees every commit.
psycopg is imported only when a PostgreSQL store is opened.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from analyzer.rollup import DEFAULT_THRESHOLDS_NS
from analyzer.store.schema import LATEST, MIGRATIONS, TIERS_MIGRATION
from analyzer.store.sql import SqlStore
from ixmeter.errors import IxmeterError

WRITE_LOCK = 0x1C0113C7  # pg_advisory_xact_lock key of the chain writer


class PostgresStoreError(IxmeterError):
    """The PostgreSQL server cannot be reached or its schema is from a newer ixmeter."""


class PostgresStore(SqlStore):
    """:class:`analyzer.store.base.Store` on PostgreSQL."""

    placeholder = "%s"

    def __init__(self, url: str, thresholds_ns: Sequence[int] = DEFAULT_THRESHOLDS_NS) -> None:
        import psycopg

        try:
            conn = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            raise PostgresStoreError(f"cannot connect to {_redact(url)}: {exc}",
                                     hint="check the URL, that the server runs and the "
                                          "role may log in") from None
        self.url = url
        super().__init__(conn, thresholds_ns)
        if TIERS_MIGRATION in self._migrate():
            self.rebuild_tiers()  # a store written before the tiers existed

    def _check_conn(self) -> None:
        """Reconnect after the server restarted or the network dropped the connection."""
        if self._conn.broken or self._conn.closed:
            import psycopg

            self._conn = psycopg.connect(self.url, autocommit=True)

    def _begin_write(self) -> None:
        self._exec("BEGIN")
        self._exec("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))

    def _migrate(self) -> list[int]:
        """Apply pending migrations under the writer lock (several collectors may start)."""
        with self._transaction():
            return self._migrate_locked()

    def _migrate_locked(self) -> list[int]:
        self._exec("CREATE TABLE IF NOT EXISTS ixmeter_migrations (version BIGINT PRIMARY KEY, "
                   "name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)")
        done = {row[0] for row in self._exec("SELECT version FROM ixmeter_migrations")}
        if done and max(done) > LATEST:
            raise PostgresStoreError(f"database schema version {max(done)} is newer than this "
                                     f"ixmeter ({LATEST})", hint="upgrade ixmeter")
        applied = []
        for m in MIGRATIONS:
            if m.version not in done:
                for stmt in m.statements("postgres"):
                    self._exec(stmt)
                self._exec("INSERT INTO ixmeter_migrations VALUES (?, ?, ?)",
                           (m.version, m.name, time.time()))
                applied.append(m.version)
        return applied


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    head, sep, tail = url.rpartition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, cred = head.partition("//")
    return f"{scheme}//{cred.split(':', 1)[0]}:***@{tail}"
