"""The store interface shared by the SQLite and PostgreSQL backends.

One small Protocol (ARCHITECTURE.md): write a batch idempotently (as records or as columnar
blocks), read rollups for paths x window, read raw results, the hash-chain head, probe health.
Both backends pass one shared test-suite.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from analyzer.columns import ColumnBatch
from analyzer.rollup import MinuteRollup
from analyzer.stats.units import SERIES, RollupColumns
from analyzer.store.chain import ChainReport
from ixmeter.record import Result
from ixmeter.wire import Batch


@dataclass(frozen=True, slots=True)
class WriteReceipt:
    """What ingest answers once a batch is committed."""

    accepted: int
    duplicate: bool
    chain_head: str


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Head of the hash chain over accepted batches (tamper evidence)."""

    length: int
    head: str


@dataclass(frozen=True, slots=True)
class ProbeHealth:
    """A probe as the collector last saw it."""

    probe_id: str
    last_seen_ns: int | None
    last_batch_ns: int | None
    spool_depth: int | None
    results: int
    version: str | None = None
    counters: dict[str, int] | None = None  # the heartbeat's counters, as last reported


@dataclass(frozen=True, slots=True)
class Query:
    """Which rollups or results to read: a half-open time window [start_ns, end_ns) and filters.
    Empty filters mean 'all'. ``tier`` picks the rollup table: ``minute`` (default), ``hour``
    or ``day`` (UTC units; a tier row's ``minute`` is the first minute of its unit)."""

    start_ns: int
    end_ns: int
    path_ids: Sequence[str] = ()
    method: str | None = None
    type_p: str | None = None
    tier: str = "minute"


class Store(Protocol):
    """Implemented by :class:`analyzer.store.sqlite.SqliteStore` and
    :class:`analyzer.store.postgres.PostgresStore`. A store object is used by one thread at a
    time (the collector serialises through its ``CapacityLimiter``); open one per thread
    otherwise. Any number of readers and processes may open the same database."""

    def write_batch(self, batch: Batch, received_at_ns: int) -> WriteReceipt:
        """Store a batch exactly once (idempotent on probe id + batch id), update rollups,
        extend the hash chain; commit before returning."""
        ...

    def write_batches(self, batches: Sequence[Batch], received_at_ns: int
                      ) -> list[WriteReceipt]:
        """:meth:`write_batch` of each batch, all in one transaction: all stored or none
        (imports)."""
        ...

    def write_blocks(self, batch: ColumnBatch, received_at_ns: int) -> WriteReceipt:
        """:meth:`write_batch` for a columnar batch (what the collector decodes wire bodies
        into): raw results kept as one compressed blob per method, the chain extended over
        the stored blobs; the rollups are folded into the rollup tables in runs of batches
        (:meth:`fold_pending`)."""
        ...

    def fold_pending(self) -> int:
        """Fold the rollups of every batch stored since the last fold into the rollup tables
        (reads do this first; ingest every few dozen batches); returns the batches folded."""
        ...

    def compact(self) -> int:
        """Fold rollup keys stored as several parts into one row each (maintenance; ingest
        compacts the keys it writes often by itself); returns the parts removed."""
        ...

    def batch_receipt(self, probe_id: str, batch_id: str) -> WriteReceipt | None:
        """The answer to a re-send of a stored batch (``duplicate=True``), else None."""
        ...

    def read_rollups(self, query: Query) -> list[MinuteRollup]:
        """Rollups of the query's tier (minute by default) whose unit overlaps the window,
        sorted by (path, method, Type-P, minute)."""
        ...

    def read_rollup_columns(self, query: Query, series: Sequence[str] = SERIES
                            ) -> RollupColumns:
        """The rollups :meth:`read_rollups` returns, as numpy columns with only the delay
        ``series`` asked for (``rtt``, ``fwd``, ``bwd``): what the analyzer builds its unit
        tables from, without a rollup object per row (a year of day tiers is ~10^5 rows).
        Sorted by key with strings in code-point order, whatever the database's collation."""
        ...

    def read_results(self, query: Query) -> Iterator[Result]:
        """Raw results still within retention, in send order."""
        ...

    def chain_head(self) -> ChainHead: ...

    def record_heartbeat(self, probe_id: str, at_ns: int, spool_depth: int | None,
                         version: str | None, counters: Mapping[str, int] | None = None
                         ) -> None: ...

    def probe_health(self) -> list[ProbeHealth]: ...

    def prune(self, before_ns: int) -> int:
        """Retention: delete raw results sent before ``before_ns``; rollups and chain stay."""
        ...

    def prune_rollups(self, before_ns: int) -> int:
        """Retention of minute rollups: delete those of UTC days wholly before ``before_ns``
        (rounded down to a day); hour and day tiers stay."""
        ...

    def rebuild_tiers(self) -> int:
        """Recompute the hour and day tiers of every unit that still has minute rollups (for
        stores written before the tiers existed); returns the tier rows written."""
        ...

    def verify_chain(self, find_head: str | None = None) -> ChainReport:
        """Re-check every link of the hash chain (``ixmeter verify``); with ``find_head``, also
        report where that (published) head sits in the chain."""
        ...

    def close(self) -> None: ...
