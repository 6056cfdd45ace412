"""One schema for both backends, its migrations registry and the one migration runner.

Tables:

- ``links``: the hash chain (:mod:`analyzer.store.chain`), one row per link. A *batch* link is
  one accepted batch (``probe_id``, ``batch_id``: the idempotence key; ``n``, the send-time span
  ``first_ns``..``last_ns``, the delay ``thresholds`` its rollups count and ``blobs_sha256``, the
  digest of its stored raw results); a *fold* or *prune* link records a change of the rollup
  tables or a deletion by retention (``detail``, canonical JSON committing to each evidence
  table's state after it);
- ``streams``: what stays constant over many results (probe, method, both ends, addresses,
  Type-P, session), so raw results carry only per-packet columns;
- ``blobs``: raw results, one compressed blob per batch and method
  (:func:`analyzer.columns.encode_blob`), with the ids of its streams in stored order and its
  send-time span (for window reads and retention);
- ``rollups``, ``rollups_hour``, ``rollups_day``: per path x method x Type-P x UTC minute, hour
  or day (``minute`` is the unit's first minute), each row with its ``digest``
  (:mod:`analyzer.store.evidence`); these are the *evidence tables* a verdict reads;
- ``groups_hour``, ``groups_day``: the same rows per *target group* (a policy target's scope
  and grouping, all its paths merged) x method x Type-P x unit, built from the path tiers by
  :mod:`analyzer.groups` so that analysis reads groups rather than paths; ``path_id`` is
  ``DEF:GROUP`` (``DEF`` the grouping's id, and ``DEF:`` alone the marker row saying a unit was
  built); also evidence tables;
- ``evidence_state``: each evidence table's LtHash, as the last fold, prune or load link left it;
- ``probes``: heartbeats and health (operational, not evidence: no figure is computed from it).

Migrations are an ordered registry of ``(version, name, statements)``; the applied versions are
recorded in ``ixmeter_migrations`` and each runs once, in order, in one transaction with the
writer's lock (:func:`migrate`). Nothing has shipped, so the registry holds one baseline; a
change after the first release appends a migration and never edits an applied one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from analyzer.rollups.rows import ROLLUP_COLUMNS, ROLLUP_KEY
from analyzer.store.streams import STREAM_COLUMNS

_INT, _TEXT, _REAL, _BLOB = "int", "text", "real", "blob"
_TYPES = {"sqlite": {_INT: "INTEGER", _TEXT: "TEXT", _REAL: "REAL", _BLOB: "BLOB"},
          "postgres": {_INT: "BIGINT", _TEXT: "TEXT", _REAL: "DOUBLE PRECISION",
                       _BLOB: "BYTEA"}}
_TEXT_COLS = {"skey", "probe_id", "batch_id", "method", "src_site", "src_carrier", "dst_site",
              "dst_carrier", "src_addr", "dst_addr", "protocol", "session", "path_id", "type_p",
              "kind", "thresholds", "blobs_sha256", "detail", "body_sha256", "prev_head",
              "head", "version", "counters", "stream_ids", "tbl", "rtt_below", "fwd_below",
              "bwd_below"}
_REAL_COLS = {"rtt_sum", "fwd_sum", "bwd_sum", "rtt_sumsq", "fwd_sumsq", "bwd_sumsq"}
_BLOB_COLS = {"rtt_sketch", "fwd_sketch", "bwd_sketch", "digest", "data", "state"}
_NULLABLE = {"dst_port", "clock_error_max_ns", "rtt_min", "rtt_max", "fwd_min", "fwd_max",
             "bwd_min", "bwd_max", "last_seen_ns", "last_batch_ns", "spool_depth", "version",
             "counters", "probe_id", "batch_id", "n", "first_ns", "last_ns", "thresholds",
             "blobs_sha256", "detail"}

LINK_COLUMNS = ("idx", "kind", "at_ns", "probe_id", "batch_id", "n", "first_ns", "last_ns",
                "thresholds", "blobs_sha256", "detail", "body_sha256", "prev_head", "head")
BLOB_COLUMNS = ("bid", "method", "n", "first_ns", "last_ns", "stream_ids", "data")
PROBE_COLUMNS = ("probe_id", "last_seen_ns", "last_batch_ns", "spool_depth", "results",
                 "version", "counters")
STORED_ROLLUP_COLUMNS = (*ROLLUP_COLUMNS, "digest")
TIERS = {"minute": ("rollups", 1), "hour": ("rollups_hour", 60), "day": ("rollups_day", 1440)}
GROUP_TIERS = {"hour": ("groups_hour", 60), "day": ("groups_day", 1440)}
EVIDENCE_TABLES = tuple(table for table, _size in (*TIERS.values(), *GROUP_TIERS.values()))


def _kind(col: str) -> str:
    if col in _TEXT_COLS:
        return _TEXT
    if col in _REAL_COLS:
        return _REAL
    return _BLOB if col in _BLOB_COLS else _INT


def _cols(dialect: str, cols: Sequence[str]) -> str:
    types = _TYPES[dialect]
    return ", ".join(f"{c} {types[_kind(c)]}{'' if c in _NULLABLE else ' NOT NULL'}"
                     for c in cols)


def _table(dialect: str, name: str, cols: Sequence[str], extra: str) -> str:
    return f"CREATE TABLE {name} ({_cols(dialect, cols)}, {extra})"


def baseline(dialect: str) -> list[str]:
    """The whole schema for ``dialect`` ("sqlite" or "postgres")."""
    ident = ("INTEGER PRIMARY KEY" if dialect == "sqlite"
             else "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
    key = ", ".join(ROLLUP_KEY)
    out = [
        _table(dialect, "links", LINK_COLUMNS, "PRIMARY KEY (idx), UNIQUE (probe_id, batch_id)"),
        "CREATE INDEX links_kind ON links (kind, idx)",
        "CREATE INDEX links_last ON links (last_ns)",
        f"CREATE TABLE streams (id {ident}, {_cols(dialect, STREAM_COLUMNS)}, UNIQUE (skey))",
        _table(dialect, "blobs", BLOB_COLUMNS, "PRIMARY KEY (bid, method)"),
        "CREATE INDEX blobs_first ON blobs (first_ns)",
        "CREATE INDEX blobs_last ON blobs (last_ns)",
        _table(dialect, "evidence_state", ("tbl", "state"), "PRIMARY KEY (tbl)"),
        _table(dialect, "probes", PROBE_COLUMNS, "PRIMARY KEY (probe_id)"),
    ]
    for table, _size in (*TIERS.values(), *GROUP_TIERS.values()):
        out += [_table(dialect, table, STORED_ROLLUP_COLUMNS, f"PRIMARY KEY ({key})"),
                f"CREATE INDEX {table}_minute ON {table} (minute)"]
    return out


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: Callable[[str], list[str]]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "baseline: hash chain of links, raw result blobs, rollup tiers and target-group "
                 "tiers with row digests, evidence state, probes", baseline),
)
LATEST = MIGRATIONS[-1].version
_REGISTRY = ("CREATE TABLE IF NOT EXISTS ixmeter_migrations (version {int} PRIMARY KEY, "
             "name TEXT NOT NULL, applied_at {real} NOT NULL)")


class SchemaError(Exception):
    """The database's schema is not one this ixmeter can use (raised with a clear message)."""


def migrate(execute: Callable[[str, Sequence[Any]], Any], dialect: str) -> list[int]:
    """Apply the pending migrations through ``execute(sql, params)`` (``?`` placeholders),
    inside the caller's write transaction; return the versions applied."""
    types = _TYPES[dialect]
    execute(_REGISTRY.format(int=types[_INT], real=types[_REAL]), ())
    done = {int(row[0]) for row in execute("SELECT version FROM ixmeter_migrations",
                                           ()).fetchall()}
    check_version(done)
    applied = []
    for m in MIGRATIONS:
        if m.version not in done:
            for stmt in m.statements(dialect):
                execute(stmt, ())
            execute("INSERT INTO ixmeter_migrations VALUES (?, ?, ?)",
                    (m.version, m.name, time.time()))
            applied.append(m.version)
    return applied


def check_version(done: set[int]) -> None:
    """Refuse a database from a newer ixmeter, or one whose migrations are not all applied
    (what a read-only reader must not do itself)."""
    if done and max(done) > LATEST:
        raise SchemaError(f"database schema version {max(done)} is newer than this ixmeter "
                          f"({LATEST}): upgrade ixmeter")
    missing = {m.version for m in MIGRATIONS} - done
    if done and missing:
        raise SchemaError(f"database schema is at version {max(done)}, this ixmeter needs "
                          f"{LATEST}: open it once with a writer (the collector or "
                          "`ixmeter collector compact`) to migrate it")
