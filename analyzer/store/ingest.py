"""Ingest: a batch's raw results and its batch link, in one transaction.

:meth:`Ingest.write_blocks` commits a batch's raw results as one blob per method
(:func:`analyzer.columns.batch_blobs`) and a *batch* link; the answer to the probe is given
after the commit. The batch's minute, hour and day rollups are computed at once as tables
(:func:`analyzer.rollups.batch.batch_tables`) and held in memory until a run of batches is
folded (:mod:`analyzer.store.folds`), every :data:`FOLD_AT` batches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from analyzer.columns import (
    ColumnBatch,
    MethodBlob,
    StreamIdent,
    batch_blobs,
    blobs_digest,
    blocks_of,
    check_probe,
    path_and_type_p,
)
from analyzer.rollups.batch import batch_tables
from analyzer.rollups.tables import TierTables
from analyzer.store import chain
from analyzer.store.base import WriteReceipt
from analyzer.store.connection import gc_paused
from analyzer.store.ledger import Ledger
from analyzer.store.schema import BLOB_COLUMNS
from analyzer.store.streams import STREAM_COLUMNS, ids_text, skey_of
from ixmeter.core.errors import RecordError
from ixmeter.core.wire import MAX_RESULTS, Batch

log = logging.getLogger("ixmeter.store")
FOLD_AT = 64  # batches a writer stores before it folds their rollups
_BLOB_INSERT = (f"INSERT INTO blobs ({', '.join(BLOB_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(BLOB_COLUMNS))})")
Prepared = tuple[list[MethodBlob], list[list[tuple[Any, ...]]], TierTables]


class Ingest(Ledger):
    """The ingest half of the writer."""

    thresholds_ns: tuple[int, ...]
    _streams: dict[str, int]
    _stream_rows: dict[StreamIdent, tuple[Any, ...]]
    _held: dict[int, TierTables]
    _waiting: int

    def write_batch(self, batch: Batch, received_at_ns: int) -> WriteReceipt:
        """Store a batch of records exactly once (:meth:`write_blocks`)."""
        if (known := self.batch_receipt(batch.probe_id, batch.batch_id)) is not None:
            return known  # cheap answer to a re-send, before any conversion
        return self.write_blocks(
            ColumnBatch(batch.probe_id, batch.batch_id, blocks_of(batch.results)),
            received_at_ns)

    def write_batches(self, batches: Sequence[Batch], received_at_ns: int
                      ) -> list[WriteReceipt]:
        """Store several batches of records in one transaction: all of them or none (an
        import); a batch already stored is answered as a duplicate and stores nothing."""
        columns = [ColumnBatch(b.probe_id, b.batch_id, blocks_of(b.results)) for b in batches]
        with gc_paused():
            prepared = [self._prepare(c) for c in columns]
            with self._writing():
                written = [self._write_locked(c, received_at_ns, p)
                           for c, p in zip(columns, prepared, strict=True)]
        self._hold([(bid, p[2]) for (_r, bid), p in zip(written, prepared, strict=True)])
        return [receipt for receipt, _bid in written]

    def write_blocks(self, batch: ColumnBatch, received_at_ns: int) -> WriteReceipt:
        """Store a columnar batch exactly once, in one transaction committed before returning:
        one blob per method and a batch link. Its rollups are folded later (module
        docstring); reads fold pending batches in memory, so they see every stored batch."""
        if (known := self.batch_receipt(batch.probe_id, batch.batch_id)) is not None:
            return known  # cheap answer to a re-send; checked again under the write lock
        with gc_paused():
            prepared = self._prepare(batch)
            with self._writing():  # a duplicate wrote nothing: committing it is harmless
                receipt, bid = self._write_locked(batch, received_at_ns, prepared)
        self._hold([(bid, prepared[2])])
        return receipt

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A write transaction; if it rolls back, stream ids cached during it may not exist."""
        try:
            with self.db.write():
                yield
        except BaseException:
            self._streams.clear()
            raise

    def _prepare(self, batch: ColumnBatch) -> Prepared:
        """What a batch's write needs, computed before the write lock: its blobs, the stream
        rows of each blob and its rollup tables."""
        check_probe(batch.probe_id, batch.blocks)
        if batch.n > MAX_RESULTS:
            raise RecordError(f"field 'streams': {batch.n} results in one batch (at most "
                              f"{MAX_RESULTS})")
        blobs = batch_blobs(batch)
        streams = [[self._stream_row(b.ident) for b in m.blocks] for m in blobs]
        return blobs, streams, batch_tables(batch.blocks, self.thresholds_ns)

    def _write_locked(self, batch: ColumnBatch, received_at_ns: int, prepared: Prepared
                      ) -> tuple[WriteReceipt, int]:
        """The batch's rows and link; its receipt and chain index (0 for a duplicate)."""
        if (known := self.batch_receipt(batch.probe_id, batch.batch_id)) is not None:
            return known, 0
        blobs, streams, tables = prepared
        n = sum(m.n for m in blobs)
        first = min((m.first_ns for m in blobs), default=0)
        last = max((m.last_ns for m in blobs), default=0)
        digest = blobs_digest((m.method, [s[0] for s in rows], m.n, m.first_ns, m.last_ns,
                               m.data) for m, rows in zip(blobs, streams, strict=True)).hex()
        thresholds = chain.thresholds_text(tables.thresholds)
        body = chain.batch_body(n, first, last, thresholds, digest)
        bid, head = self._append(chain.BATCH, received_at_ns, body, batch.probe_id,
                                 batch.batch_id, (n, first, last, thresholds, digest, None))
        ids = self._stream_ids([s for rows in streams for s in rows])
        self.db.executemany(_BLOB_INSERT, [
            (bid, m.method, m.n, m.first_ns, m.last_ns, ids_text([ids[s[0]] for s in rows]),
             m.data) for m, rows in zip(blobs, streams, strict=True)])
        self.db.execute(
            "INSERT INTO probes (probe_id, last_batch_ns, results) VALUES (?, ?, ?) "
            "ON CONFLICT (probe_id) DO UPDATE SET last_batch_ns = excluded.last_batch_ns, "
            "results = probes.results + excluded.results",
            (batch.probe_id, received_at_ns, n))
        return WriteReceipt(n, False, head), bid

    def _stream_row(self, ident: StreamIdent) -> tuple[Any, ...]:
        """The ``streams`` row of a block's identity (skey first), memoised."""
        row = self._stream_rows.get(ident)
        if row is None:
            if len(self._stream_rows) > 100_000:
                self._stream_rows.clear()
            row = self._stream_rows[ident] = (skey_of(ident), *ident, *path_and_type_p(ident))
        return row

    def _stream_ids(self, streams: list[tuple[Any, ...]]) -> dict[str, int]:
        missing = {s[0]: s for s in streams if s[0] not in self._streams}
        if missing:
            cols = ", ".join(STREAM_COLUMNS)
            self.db.executemany(
                f"INSERT INTO streams ({cols}) VALUES ({', '.join('?' * len(STREAM_COLUMNS))}) "
                "ON CONFLICT (skey) DO NOTHING", list(missing.values()))
            for skey in missing:
                row = self.db.execute("SELECT id FROM streams WHERE skey = ?",
                                      (skey,)).fetchone()
                self._streams[skey] = row[0]
        return self._streams

    def _hold(self, written: Sequence[tuple[int, TierTables]]) -> None:
        """Keep committed batches' rollups until they are folded; fold every FOLD_AT new
        ones (those a fold left, waiting behind another writer's batches, are not new)."""
        for bid, tables in written:
            if bid:
                self._held[bid] = tables
        if len(self._held) >= FOLD_AT + self._waiting:
            try:
                self.fold_pending()
            except Exception:  # the batches are stored and acknowledged: the next fold
                log.exception("folding rollups failed; the next fold redoes them from the "
                              "stored raw results")
                if len(self._held) > 4 * FOLD_AT:
                    self._held.clear()
                self._waiting = len(self._held)

