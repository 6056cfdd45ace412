"""The store interface shared by the SQLite and PostgreSQL backends.

Two small Protocols (ARCHITECTURE.md): :class:`ReadStore`, what readers (analyze, report,
verify, dashboard) may do, and :class:`Store`, which adds the writers' operations (collector,
imports, maintenance). Both backends pass one shared test-suite.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from analyzer.columns import ColumnBatch
from analyzer.rollups.columns import SERIES, RollupColumns
from analyzer.rollups.model import MinuteRollup
from analyzer.store import chain
from ixmeter.core.record import Result
from ixmeter.core.wire import Batch


@dataclass(frozen=True, slots=True)
class WriteReceipt:
    """What ingest answers once a batch is committed."""

    accepted: int
    duplicate: bool
    chain_head: str


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Head of the hash chain (tamper evidence): its length in links and the head."""

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
    flagged: tuple[str, ...] | None = None
    """With the inventory's site ids: only rows with error records or an end at another site
    (the rows analysis notes as exclusions)."""


@dataclass(frozen=True, slots=True)
class Retention:
    """How long the store keeps each kind of evidence, in days (None or 0: for ever): raw
    results, minute rollups and hour rollups; day rollups are kept for ever. The collector's
    ``--retention-days``, ``--minute-rollup-days`` and ``--hour-rollup-days``."""

    raw_days: float | None = None
    minute_days: float | None = None
    hour_days: float | None = None

    def __bool__(self) -> bool:
        return bool(self.raw_days or self.minute_days or self.hour_days)


MAX_FINDINGS = 50  # findings a verify report names individually; the rest are counted


@dataclass
class Report:
    """What ``verify`` found. ``findings`` name each problem (empty: the store is intact)."""

    length: int = 0
    head: str = chain.GENESIS
    batches: int = 0
    raw_checked: int = 0
    raw_pruned: int = 0
    rows_checked: dict[str, int] = field(default_factory=dict)
    unfolded: int = 0
    deep_rows: int | None = None
    deep_groups: int | None = None  # target-group rows compared (analyzer.groups.check)
    found_at: int | None = None
    findings: list[str] = field(default_factory=list)
    more: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, finding: str) -> None:
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(finding)
        else:
            self.more += 1


class ReadStore(Protocol):
    """What a reader may do; it never changes a byte of the store."""

    def snapshot(self) -> AbstractContextManager[None]:
        """Every read inside sees one committed state (a report's figures and its head)."""
        ...

    def batch_receipt(self, probe_id: str, batch_id: str) -> WriteReceipt | None:
        """The answer to a re-send of a stored batch (``duplicate=True``), else None."""
        ...

    def read_rollups(self, query: Query) -> list[MinuteRollup]:
        """Rollups of the query's tier whose unit overlaps the window, sorted by key;
        batches not yet folded are folded in memory."""
        ...

    def read_rollup_columns(self, query: Query, series: Sequence[str] = SERIES
                            ) -> RollupColumns:
        """The rollups :meth:`read_rollups` returns, as numpy columns with only the delay
        ``series`` asked for (``rtt``, ``fwd``, ``bwd``)."""
        ...

    def read_group_columns(self, grouping: str, query: Query, series: Sequence[str] = SERIES
                           ) -> tuple[RollupColumns, set[int]]:
        """The rows of a target grouping (:mod:`analyzer.groups`) in the window of the query's
        tier (hour or day), and the units built for it."""
        ...

    def read_results(self, query: Query) -> Iterator[Result]:
        """Raw results still within retention, in send order."""
        ...

    def chain_head(self) -> ChainHead: ...

    def probe_health(self) -> list[ProbeHealth]: ...

    def verify(self, find_head: str | None = None, deep: bool = False) -> Report:
        """Check the store against its hash chain (``ixmeter verify``)."""
        ...

    def close(self) -> None: ...


class Store(ReadStore, Protocol):
    """A writer: :class:`ReadStore` and the operations that extend the chain."""

    def write_batch(self, batch: Batch, received_at_ns: int) -> WriteReceipt:
        """Store a batch exactly once (idempotent on probe id + batch id) and extend the hash
        chain; commit before returning."""
        ...

    def write_batches(self, batches: Sequence[Batch], received_at_ns: int
                      ) -> list[WriteReceipt]:
        """:meth:`write_batch` of each batch, all in one transaction: all stored or none
        (imports)."""
        ...

    def write_blocks(self, batch: ColumnBatch, received_at_ns: int) -> WriteReceipt:
        """:meth:`write_batch` for a columnar batch (what the collector decodes bodies into)."""
        ...

    def fold_pending(self, everything: bool = False) -> int:
        """Fold the rollups of the batches this writer holds, and of those no writer folded
        within the grace period (``everything``: of every batch not folded yet), into the
        rollup tables (fold links); returns the batches folded."""
        ...

    def record_heartbeat(self, probe_id: str, at_ns: int, spool_depth: int | None,
                         version: str | None, counters: Mapping[str, int] | None = None
                         ) -> None: ...

    def prune(self, before_ns: int) -> int:
        """Retention: delete the raw results of folded batches sent before ``before_ns``
        (a prune link); rollups and the chain stay."""
        ...

    def prune_rollups(self, before_ns: int, tier: str = "minute") -> int:
        """Retention of minute or hour rollups: delete those of UTC days wholly before
        ``before_ns`` (a prune link); the coarser tiers stay."""
        ...

    def retain(self, policy: Retention, now_ns: int) -> dict[str, int]:
        """Apply a retention policy at ``now_ns`` (raw, minute, hour; each a prune link)."""
        ...
