"""The probe's local SQLite spool: every result lands here before any upload is tried.

Results are appended to ``results``; :meth:`Spool.seal` assigns the oldest loose ones, in one
transaction, to a new *batch* whose id and encoded body (``ixmeter.core.wire.encode_columns``) are
stored, so a batch re-sent after a crash or restart is byte-for-byte the same and the
collector's dedup on (probe id, batch id) makes the re-send idempotent. A batch and its results
stay until :meth:`ack`, after the collector acknowledged it; a batch refused as too large is
re-sealed from its stored results in two halves (:meth:`split`), so the probe never decodes a
body. A batch that can never be accepted (the collector answered 400/422, or 413 for a single
result) and a stored result that no longer validates are *set aside* in ``rejected``: kept
with their body, reason and when, counted (:meth:`status`), never sent again. The queue is
bounded (:class:`SpoolLimits`, :meth:`enforce`): by age, then by the file's bytes, the oldest
results go first, counted by reason (:meth:`dropped`); a full disk is the caller's to count
(:meth:`count_dropped`) when it has to let go of results it could not write. WAL journal,
``synchronous=NORMAL``: a committed write survives ``kill -9`` of the agent (not a power cut;
use ``durable=True`` for FULL).

Blocking (sqlite3): callers on trio go through ``trio.to_thread.run_sync`` with one limiter.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ixmeter.core.errors import IxmeterError, RecordError
from ixmeter.core.heartbeat import SET_ASIDE_REASONS, SPOOL_DROP_REASONS
from ixmeter.core.record import Result, from_dict
from ixmeter.core.wire import Batch, encode_columns

SCHEMA = 1
_DROP_CHUNK = 1000  # loose results dropped per step while over max_bytes
_NOW = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"  # UTC, for the operator reading ``rejected``
_MIGRATIONS = {
    1: [
        # batch: the sealed batch's seq, NULL while loose; sent_at: the result's, for max_age
        "CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL,"
        " batch INTEGER, sent_at INTEGER NOT NULL)",
        "CREATE INDEX results_batch ON results (batch)",
        "CREATE TABLE batches (seq INTEGER PRIMARY KEY, batch_id TEXT NOT NULL UNIQUE,"
        " n INTEGER NOT NULL, body BLOB NOT NULL)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        # set aside: kept for inspection, never sent again (reason: SET_ASIDE_REASONS;
        # detail: the collector's answer or why the spool could not read the result)
        "CREATE TABLE rejected (batch_id TEXT PRIMARY KEY, n INTEGER NOT NULL,"
        " body BLOB NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL,"
        " set_aside_at TEXT NOT NULL)",
    ],
}


class SpoolError(IxmeterError):
    """The spool file cannot be opened or is not an ixmeter spool."""


@dataclass(frozen=True, slots=True)
class SealedBatch:
    """A batch ready to send: its id, number of results and the exact body to POST."""

    batch_id: str
    n: int
    body: bytes


@dataclass(frozen=True, slots=True)
class SpoolStatus:
    """What the spool holds: results not yet acknowledged, ``{reason: (batches, results)}``
    set aside, the bytes its file holds and the results its limits dropped, by reason."""

    depth: int
    set_aside: Mapping[str, tuple[int, int]]
    bytes: int = 0
    dropped: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpoolLimits:
    """How much the spool may hold while the collector cannot be reached: ``max_bytes`` of
    file, results sent at most ``max_age_s`` ago. What goes first: the oldest."""

    max_bytes: int = 1 << 30
    max_age_s: float = 7 * 86_400.0


class Spool:
    """A crash-safe queue of results and sealed batches in one SQLite file."""

    def __init__(self, path: str | Path, probe_id: str, *, durable: bool = False) -> None:
        self.path = Path(path)
        self.probe_id = probe_id
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise SpoolError(f"spool {self.path}: {exc}",
                             hint="check the path in the config and that it is writable") from None
        self.instance = self._instance_id()

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA:
            raise SpoolError(f"spool {self.path}: schema {version} is newer than this agent")
        for target in range(version + 1, SCHEMA + 1):
            with self._tx():
                for sql in _MIGRATIONS[target]:
                    self._db.execute(sql)
                self._db.execute(f"PRAGMA user_version={target}")

    def _tx(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def _instance_id(self) -> str:
        """A random id fixed at spool creation: batch ids never repeat if the file is replaced."""
        row = self._db.execute("SELECT value FROM meta WHERE key='instance'").fetchone()
        if row:
            return str(row[0])
        value = uuid.uuid4().hex[:12]
        with self._tx():
            self._db.execute("INSERT INTO meta VALUES ('instance', ?)", (value,))
        return value

    def add(self, results: Iterable[Result]) -> int:
        """Append results (one transaction); return how many. A full disk raises
        :class:`sqlite3.OperationalError` (``SQLITE_FULL``) and writes nothing."""
        rows = [(json.dumps(r.to_dict(), separators=(",", ":")), r.sent_at_ns) for r in results]
        if rows:
            with self._tx():
                self._db.executemany("INSERT INTO results (body, sent_at) VALUES (?, ?)", rows)
        return len(rows)

    # --- limits ------------------------------------------------------------------------------

    def used_bytes(self) -> int:
        """Bytes the spool file's pages in use hold (free pages excluded)."""
        pages, free, size = (int(self._db.execute(f"PRAGMA {p}").fetchone()[0])
                             for p in ("page_count", "freelist_count", "page_size"))
        return (pages - free) * size

    def enforce(self, limits: SpoolLimits, now_ns: int) -> dict[str, int]:
        """Drop what is over the limits, oldest first, and count it (``{reason: results}``,
        added to :meth:`dropped`): results older than ``max_age_s`` (a sealed batch once all
        its results are), then, while the file holds more than ``max_bytes``, the oldest sealed
        batch or else the oldest loose results. Set-aside batches are never dropped here."""
        out = {"max_age": self._drop_older(now_ns - round(limits.max_age_s * 1e9))}
        out["max_bytes"] = self._drop_over(limits.max_bytes)
        for reason, n in out.items():
            if n:
                self.count_dropped(reason, n)
        return out

    def _drop_older(self, cutoff_ns: int) -> int:
        with self._tx():
            n = self._db.execute("DELETE FROM results WHERE batch IS NULL AND sent_at < ?",
                                 (cutoff_ns,)).rowcount
            old = [int(r[0]) for r in self._db.execute(
                "SELECT batch FROM results WHERE batch IS NOT NULL GROUP BY batch "
                "HAVING MAX(sent_at) < ?", (cutoff_ns,))]
            for seq in old:
                n += self._drop_batch(seq)
        return int(n)

    def _drop_over(self, max_bytes: int) -> int:
        dropped = 0
        while self.used_bytes() > max_bytes:
            with self._tx():
                row = self._db.execute("SELECT MIN(seq) FROM batches").fetchone()
                if row[0] is not None:
                    n = self._drop_batch(int(row[0]))
                else:
                    n = self._db.execute(
                        "DELETE FROM results WHERE id IN (SELECT id FROM results "
                        "ORDER BY id LIMIT ?)", (_DROP_CHUNK,)).rowcount
            if not n:
                break  # only set-aside batches left: the operator's to clear
            dropped += n
        return dropped

    def _drop_batch(self, seq: int) -> int:
        n = self._db.execute("DELETE FROM results WHERE batch = ?", (seq,)).rowcount
        self._db.execute("DELETE FROM batches WHERE seq = ?", (seq,))
        return int(n)

    def count_dropped(self, reason: str, n: int) -> None:
        """Add ``n`` results dropped for ``reason`` (:data:`SPOOL_DROP_REASONS`) to the
        spool's own counters (kept across restarts)."""
        if reason not in SPOOL_DROP_REASONS:
            raise ValueError(f"drop reason {reason!r} is not one of {SPOOL_DROP_REASONS}")
        with self._tx():
            self._db.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                             "value = CAST(value AS INTEGER) + excluded.value",
                             (f"dropped.{reason}", n))

    def dropped(self) -> dict[str, int]:
        """Results dropped by the limits since the spool was created, by reason."""
        rows = dict(self._db.execute("SELECT key, value FROM meta WHERE key LIKE 'dropped.%'")
                    .fetchall())
        return {r: int(rows.get(f"dropped.{r}", 0)) for r in SPOOL_DROP_REASONS}

    def seal(self, max_results: int = 1000) -> SealedBatch | None:
        """Assign up to ``max_results`` oldest loose results to a new batch; None if none
        wait."""
        with self._tx():
            rows = self._db.execute("SELECT id, body FROM results WHERE batch IS NULL "
                                    "ORDER BY id LIMIT ?", (max_results,)).fetchall()
            if not rows:
                return None
            return self._seal_rows(rows)

    def _seal_rows(self, rows: list[tuple[int, str]]) -> SealedBatch | None:
        """A new batch of the stored results ``rows`` (id, body), inside the open
        transaction; results that no longer decode are set aside and dropped from it."""
        kept = [(i, r) for i, r in ((i, self._decode(i, body)) for i, body in rows) if r]
        good = {i for i, _r in kept}
        self._db.executemany("DELETE FROM results WHERE id = ?",
                             [(i,) for i, _body in rows if i not in good])
        if not kept:
            return None
        sealed, seq = self._insert_batch(tuple(r for _i, r in kept))
        self._db.executemany("UPDATE results SET batch = ? WHERE id = ?",
                             [(seq, i) for i, _r in kept])
        return sealed

    def _decode(self, row_id: int, body: str) -> Result | None:
        """A stored result, or None after setting aside one that no longer validates or is
        another probe's (it would be refused by the collector and must not block the queue)."""
        try:
            result = from_dict(json.loads(body))
            if result.probe_id != self.probe_id:
                raise RecordError(f"probe_id {result.probe_id!r} is not this spool's probe")
            return result
        except (RecordError, ValueError) as exc:
            self._db.execute(f"INSERT OR REPLACE INTO rejected VALUES (?, 1, ?, ?, ?, {_NOW})",
                             (f"row-{self.instance}-{row_id}", body.encode(), "unreadable",
                              str(exc)))
            return None

    def _next_seq(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
        return int(row[0]) if row else 1

    def next_batch(self) -> SealedBatch | None:
        """The oldest sealed batch not yet acknowledged."""
        row = self._db.execute("SELECT batch_id, n, body FROM batches ORDER BY seq LIMIT 1")\
            .fetchone()
        return SealedBatch(str(row[0]), int(row[1]), bytes(row[2])) if row else None

    def ack(self, batch_id: str) -> None:
        """Forget a batch the collector acknowledged, and its results."""
        with self._tx():
            self._drop(batch_id)

    def _drop(self, batch_id: str) -> None:
        self._db.execute("DELETE FROM results WHERE batch = (SELECT seq FROM batches "
                         "WHERE batch_id = ?)", (batch_id,))
        self._db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))

    def set_aside(self, batch_id: str, reason: str, detail: str) -> None:
        """Move a batch that can never be accepted to ``rejected`` (body kept, never sent
        again), with its reason class (:data:`~ixmeter.core.heartbeat.SET_ASIDE_REASONS`) and the
        collector's answer; its results leave the queue."""
        if reason not in SET_ASIDE_REASONS:
            raise ValueError(f"set-aside reason {reason!r} is not one of {SET_ASIDE_REASONS}")
        with self._tx():
            self._db.execute("INSERT OR REPLACE INTO rejected SELECT batch_id, n, body, ?, ?, "
                             f"{_NOW} FROM batches WHERE batch_id = ?",
                             (reason, detail, batch_id))
            self._drop(batch_id)

    def split(self, batch_id: str, detail: str = "") -> int:
        """Replace a batch refused as too large (never stored by the collector) by two
        batches of its results with fresh ids; return how many batches it became (1: a single
        result, set aside as ``too_large`` with ``detail``)."""
        row = self._db.execute("SELECT seq, n FROM batches WHERE batch_id = ?",
                               (batch_id,)).fetchone()
        if row is None:
            return 0
        if int(row[1]) < 2:
            self.set_aside(batch_id, "too_large", detail)
            return 1
        with self._tx():
            rows = self._db.execute("SELECT id, body FROM results WHERE batch = ? ORDER BY id",
                                    (row[0],)).fetchall()
            self._db.execute("DELETE FROM batches WHERE batch_id = ?", (batch_id,))
            half = len(rows) // 2
            for part in (rows[:half], rows[half:]):
                self._seal_rows(part)
        return 2

    def _insert_batch(self, results: tuple[Result, ...]) -> tuple[SealedBatch, int]:
        seq = int(self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM batches")
                  .fetchone()[0])
        seq = max(seq, self._next_seq())
        batch_id = f"{self.instance}-{seq:010d}"
        body = encode_columns(Batch(self.probe_id, batch_id, results))
        self._db.execute("INSERT INTO batches VALUES (?, ?, ?, ?)",
                         (seq, batch_id, len(results), body))
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('next_seq', ?)", (seq + 1,))
        return SealedBatch(batch_id, len(results), body), seq

    def set_aside_counts(self) -> dict[str, tuple[int, int]]:
        """``{reason: (batches, results)}`` kept in ``rejected``."""
        rows = self._db.execute("SELECT reason, COUNT(*), COALESCE(SUM(n), 0) FROM rejected "
                                "GROUP BY reason").fetchall()
        return {str(r): (int(b), int(n)) for r, b, n in rows}

    def status(self) -> SpoolStatus:
        """Depth, set-aside counts, bytes and drops, read together (for ``/metrics`` and the
        heartbeat)."""
        return SpoolStatus(self.depth(), self.set_aside_counts(), self.used_bytes(),
                           self.dropped())

    def depth(self) -> int:
        """Results not yet acknowledged (loose or in sealed batches)."""
        return int(self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0])

    def close(self) -> None:
        self._db.close()
