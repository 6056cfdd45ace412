"""The store's writer: ingest, folds and retention, each a link of the hash chain.

:class:`Writer` joins :class:`~analyzer.store.ingest.Ingest` (a batch's raw results and batch
link), :class:`~analyzer.store.folds.Folds` (rollups folded into the rollup tables, group rows,
loaded rows) and :class:`~analyzer.store.retention.Pruning` (retention) over one connection
(:mod:`analyzer.store.connection`), after migrating the schema
(:func:`analyzer.store.schema.migrate`, the one migration runner of both backends). A writer
checks the evidence it builds on: the stored rows a fold merges must match their digests, the
tables' states must match the last fold, prune or load link, the raw results a fold reads must
match their batch link; otherwise it refuses (:class:`~analyzer.store.evidence.EvidenceError`)
rather than launder an edit into new digests.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from analyzer.columns import StreamIdent
from analyzer.rollups.model import DEFAULT_THRESHOLDS_NS
from analyzer.rollups.tables import TierTables
from analyzer.store.connection import Db, StoreError
from analyzer.store.folding import Key, Row
from analyzer.store.folds import Folds
from analyzer.store.ingest import Ingest
from analyzer.store.retention import Pruning
from analyzer.store.schema import SchemaError, migrate

log = logging.getLogger("ixmeter.store")


class Writer(Ingest, Folds, Pruning):
    """The read and write halves of the store (collector, imports, maintenance)."""

    def __init__(self, db: Db, thresholds_ns: Sequence[int] = DEFAULT_THRESHOLDS_NS) -> None:
        super().__init__(db)
        self.thresholds_ns = tuple(sorted(set(thresholds_ns)))
        self._streams: dict[str, int] = {}
        self._stream_rows: dict[StreamIdent, tuple[Any, ...]] = {}
        self._held: dict[int, TierTables] = {}  # rollups computed at ingest, until folded
        self._wrote: dict[tuple[str, Key], Row] = {}  # the rows this writer's last folds wrote
        self._paths: dict[int, str] = {}  # stream id -> path, for fold spans
        self.fold_work = {"memory": 0, "raw": 0}  # batches folded from memory, from raw results
        self._waiting = 0  # held batches the last fold left (behind another writer's)
        try:
            with db.write():
                migrate(db.execute, db.dialect)
        except SchemaError as exc:
            db.close()
            raise StoreError(str(exc)) from None
        except Exception as exc:
            db.close()
            raise StoreError(f"cannot open the store for writing: {exc}".strip(),
                             hint="a writer (collector, import) needs a role that may create "
                                  "and write its tables; readers use a read-only one") from None

    def close(self) -> None:
        """Fold what this writer holds (an import, a stopping collector), then close."""
        try:
            if self._held:
                self.fold_pending()
        except Exception:  # stored and acknowledged: the next writer folds them
            log.exception("folding rollups on close failed; the next fold redoes them")
        finally:
            self.db.close()

    # -- heartbeats (operational, not evidence) -------------------------------------------
    def record_heartbeat(self, probe_id: str, at_ns: int, spool_depth: int | None,
                         version: str | None, counters: Mapping[str, int] | None = None
                         ) -> None:
        text = None if counters is None else json.dumps(dict(counters), sort_keys=True)
        with self.db.write():
            self.db.execute(
                "INSERT INTO probes (probe_id, last_seen_ns, spool_depth, results, version, "
                "counters) VALUES (?, ?, ?, 0, ?, ?) ON CONFLICT (probe_id) DO UPDATE SET "
                "last_seen_ns = excluded.last_seen_ns, spool_depth = excluded.spool_depth, "
                "version = excluded.version, counters = excluded.counters",
                (probe_id, at_ns, spool_depth, version, text))

