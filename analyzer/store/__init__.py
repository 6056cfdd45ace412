"""The store: one interface (:class:`analyzer.store.base.Store`), SQLite and PostgreSQL backends.

``open_store("results.db")`` or ``open_store("postgresql://user@host/db")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from analyzer.rollup import DEFAULT_THRESHOLDS_NS
from analyzer.store.base import ChainHead, ProbeHealth, Query, Store, WriteReceipt

__all__ = ["ChainHead", "ProbeHealth", "Query", "Store", "WriteReceipt", "is_postgres_url",
           "open_store"]


def is_postgres_url(target: str | Path) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


def open_store(target: str | Path,
               thresholds_ns: Sequence[int] = DEFAULT_THRESHOLDS_NS) -> Store:
    """A SQLite file path or a ``postgresql://`` URL -> the matching store (schema migrated)."""
    if is_postgres_url(target):
        from analyzer.store.postgres import PostgresStore
        return PostgresStore(str(target), thresholds_ns)
    from analyzer.store.sqlite import SqliteStore
    return SqliteStore(target, thresholds_ns)
