"""The store: one interface (:mod:`analyzer.store.base`), SQLite and PostgreSQL backends.

``open_store("results.db")`` or ``open_store("postgresql://user@host/db")`` for a writer
(collector, imports, maintenance: creates or migrates the schema); ``open_reader(target)`` for
analyze, report, verify and the dashboard, which never change a byte of the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from analyzer.rollups.model import DEFAULT_THRESHOLDS_NS
from analyzer.store.base import (
    ChainHead,
    ProbeHealth,
    Query,
    ReadStore,
    Retention,
    Store,
    WriteReceipt,
)
from analyzer.store.connection import StoreError, is_postgres_url

__all__ = ["ChainHead", "ProbeHealth", "Query", "ReadStore", "Retention", "Store", "StoreError",
           "WriteReceipt", "is_postgres_url", "open_reader", "open_store"]


def open_store(target: str | Path,
               thresholds_ns: Sequence[int] = DEFAULT_THRESHOLDS_NS) -> Store:
    """A SQLite file path or a ``postgresql://`` URL -> a writer (schema migrated)."""
    from analyzer.store.connection import connect
    from analyzer.store.writes import Writer

    return Writer(connect(target, readonly=False), thresholds_ns)


def open_reader(target: str | Path) -> ReadStore:
    """A SQLite file path or a ``postgresql://`` URL -> a read-only store."""
    from analyzer.store.connection import connect
    from analyzer.store.reads import open_checked

    return open_checked(connect(target, readonly=True))
