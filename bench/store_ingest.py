"""Ingest rate of the store and the collector, next to the raw ``executemany`` ceiling.

    .venv/bin/python -m bench.store_ingest            # short run (~2 min)
    .venv/bin/python -m bench.store_ingest --full     # 5x more batches
    .venv/bin/python -m bench.store_ingest --no-pg    # skip PostgreSQL
    .venv/bin/python -m bench.store_ingest --http-only --collector-src /tmp/old
                                  # HTTP lines only, collector run from another commit's tree

Two batch shapes of 1,000 results: *narrow* (6 streams: 3 paths x ICMP/STAMP, the factory's
shape) and *wide* (100 streams of 10 results: a probe measuring 100 targets, the shape of a
province's probes). Measures, in one run: raw ``sqlite3.executemany`` of the results as rows
in one transaction per batch (the ceiling of a row per result), ``INSERT ... ON CONFLICT DO
NOTHING`` re-ingesting them, sqlite-utils ``insert_all``; decoding batch bodies;
``batch_tables``; the store's ``write_blocks`` with its folds; results/s accepted over HTTP by
a collector pinned to one core (both shapes, then PostgreSQL); database size
per million results. The uploaders send presigned requests from one trio task per connection
on the other core (signing and encoding are the probes' costs), so the collector's core is the
one measured. The over-HTTP rates include folding every batch's rollups: what the collector
had not folded when the uploads end is folded from the stored raw results by this process
(dearer than the collector's fold from memory) and its time added.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h11
import sqlite_utils
import trio

from analyzer.rollups.batch import batch_tables
from analyzer.store import open_store
from analyzer.synthetic.varied import PATHS, T0, make_results, wide_paths
from analyzer.wire_columns import decode_body
from bench.collector_harness import (
    ROOT,
    CollectorProcess,
    Raw,
    bodies,
    free_port,
    presigned,
    send_raw,
    write_keys,
)
from ixmeter.core.record import Result
from ixmeter.core.wire import Batch, encode_columns

SIZE = 1000
HEALTH_N = 2000
SHAPES = {"narrow": PATHS, "wide": wide_paths(100)}


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}"


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


_RESULT_COLUMNS = ("seq", "sent_at_ns", "status", "tmax_ns", "ts_source", "rtt_ns", "fwd_ns",
                   "bwd_ns", "clock_error_ns", "src_synced", "dst_synced", "error",
                   "error_detail", "dup", "reply_ttl", "v")


def _result_row(r: Result) -> tuple[Any, ...]:
    """A result's per-packet columns, as a store with a row per result would keep them."""
    return (r.seq, r.sent_at_ns, r.status.value, r.tmax_ns, r.ts_source.value, r.rtt_ns,
            r.fwd_ns, r.bwd_ns, r.clock_error_ns, r.src_synced, r.dst_synced,
            None if r.error is None else r.error.value, r.error_detail, r.dup, r.reply_ttl,
            r.v)


def ceiling(tmp: Path, n_batches: int) -> list[tuple[str, str]]:
    """Raw inserts of the results as one row each (a table keyed by batch and index, indexed
    by send time), in three ways: the ceiling of a row per result."""
    path = tmp / "ceiling.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    cols = ("bid", "idx", "stream", *_RESULT_COLUMNS)
    conn.execute(f"CREATE TABLE results ({', '.join(cols)}, PRIMARY KEY (bid, idx)) "
                 "WITHOUT ROWID")
    conn.execute("CREATE INDEX results_sent ON results (sent_at_ns)")
    rows = [_result_row(r) for r in make_results("p0", SIZE)]
    sql = f"INSERT INTO results ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"

    def plain(conflict: str = "") -> None:
        for b in range(n_batches):
            conn.execute("BEGIN")
            conn.executemany(sql + conflict, [(b, i, 1, *row) for i, row in enumerate(rows)])
            conn.execute("COMMIT")

    n = n_batches * SIZE
    out = [("sqlite3 executemany, 1 transaction per batch (ceiling)", rate(n, timed(plain))),
           ("same rows again, INSERT ... ON CONFLICT DO NOTHING",
            rate(n, timed(lambda: plain(" ON CONFLICT DO NOTHING"))))]
    db = sqlite_utils.Database(conn)
    dicts = [dict(zip(cols, (n_batches + b, i, 1, *row), strict=True))
             for b in range(max(1, n_batches // 4)) for i, row in enumerate(rows)]
    seconds = timed(lambda: db["results"].insert_all(dicts, batch_size=SIZE))
    out.append(("sqlite-utils insert_all(batch_size=1000), no outer transaction",
                rate(len(dicts), seconds)))
    conn.close()
    return out


def store_direct(tmp: Path, n_batches: int, shape: str) -> list[tuple[str, str]]:
    """Decode, rollups and ``write_blocks`` on one core, without HTTP."""
    paths = SHAPES[shape]
    n = min(n_batches, 100)
    encoded = bodies("p0", n, SIZE, paths=paths)
    decoded = [decode_body(body) for _, body in encoded]
    t_decode = timed(lambda: [decode_body(body) for _, body in encoded])
    t_best = min(timed(lambda: [decode_body(body) for _, body in encoded]) for _ in range(5))
    t_roll = timed(lambda: [batch_tables(b.blocks, (1_000_000, 3_000_000)) for b in decoded])
    store = open_store(tmp / f"direct-{shape}.db")
    t_write = timed(lambda: ([store.write_blocks(b, T0) for b in decoded],
                             store.fold_pending()))  # every batch's rollups folded
    store.close()
    k = n * SIZE
    return [(f"{shape}: decode the batch body (JSON to blocks, every rule checked)",
             rate(k, t_decode)),
            (f"{shape}: same, best of 5 more passes (less noise)", rate(k, t_best)),
            (f"{shape}: batch_tables (minute, hour, day rollups as tables)", rate(k, t_roll)),
            (f"{shape}: write_blocks (rollups, blobs, chain, commit, folds)",
             rate(k, t_write))]


def _sent(collector: CollectorProcess, requests: list[Raw], duplicate: bool | None
          ) -> tuple[float, float]:
    """Seconds to send the requests over 4 connections from the other core, and the
    collector's CPU seconds meanwhile; every answer must be 200 (and duplicate or not, as
    given)."""
    start, cpu = time.perf_counter(), collector.cpu_seconds()
    with _on_other_core():
        answers = trio.run(send_raw, "127.0.0.1", collector.port, requests, 4)
    seconds, cpu = time.perf_counter() - start, collector.cpu_seconds() - cpu
    for status, body in answers:
        if status != 200 or (duplicate is not None
                             and (b'"duplicate":true' in body) != duplicate):
            raise RuntimeError(f"unexpected answer {status} {body[:200]!r}")
    return seconds, cpu


def _per_request(n: int, seconds: float, cpu: float, count: int) -> str:
    """``n / seconds``, and the collector's CPU per request (steadier than wall time on a
    shared machine)."""
    return f"{rate(n, seconds)} ({cpu / count * 1e3:.2f} ms CPU per request)"


@contextmanager
def _on_other_core() -> Iterator[None]:
    """Run the uploaders on a core other than the collector's (core 0) when there is one."""
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus - {0} or cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, cpus)


def over_http(tmp: Path, db: str, n_batches: int, label: str, shape: str = "narrow",
              encode: Callable[[Batch], bytes] = encode_columns, src: Path = ROOT
              ) -> tuple[list[tuple[str, str]], int]:
    probes = [f"p{k}" for k in range(4)]
    keys = write_keys(tmp / f"keys-{label}.yaml", probes)
    payloads = {p: bodies(p, n_batches // len(probes), SIZE, seed=k, encode=encode,
                          paths=SHAPES[shape]) for k, p in enumerate(probes)}
    collector = CollectorProcess(db, tmp / f"keys-{label}.yaml", free_port(), cpu=0,
                                 src=src).start()
    host = f"127.0.0.1:{collector.port}"
    try:
        seconds, cpu = _sent(collector, presigned(keys, payloads, host), duplicate=False)
        fold = _fold_rest(db, src)  # what the collector had not folded yet
        first = (seconds + fold, cpu + fold)
        again = _sent(collector, presigned(keys, payloads, host), duplicate=True)  # re-sent
        health = [(h11.Request(method="GET", target="/healthz", headers=[("Host", host)]), b"")]
        healthz = _sent(collector, health * HEALTH_N, duplicate=None)
    finally:
        collector.stop()
    batches = sum(len(items) for items in payloads.values())
    n = batches * SIZE
    return [(f"over HTTP into {label}, collector on 1 core, 4 uploaders",
             _per_request(n, *first, batches)),
            (f"same batches re-sent to {label} (answered duplicate, nothing stored)",
             _per_request(n, *again, batches)),
            ("GET /healthz on that collector, requests/s (not results/s)",
             _per_request(HEALTH_N, *healthz, HEALTH_N))], n


_FOLD_REST = ("import sys, time\nfrom analyzer.store import open_store\nt = time.perf_counter()"
              "\ns = open_store(sys.argv[1])\ns.fold_pending(everything=True)\ns.close()\n"
              "print(time.perf_counter() - t)")


def _fold_rest(db: str, src: Path) -> float:
    """Seconds to fold what the collector had not folded (from the stored raw results), with
    the collector's own code (``src``): counted in the ingest time, so every batch's rollups
    are paid for."""
    done = subprocess.run([sys.executable, "-c", _FOLD_REST, db], cwd=src, check=True,
                          capture_output=True, text=True)
    return float(done.stdout.split()[-1])


def db_size_sqlite(path: Path, n: int) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return f"{path.stat().st_size / n * 1e6 / 2**20:,.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="5x more batches")
    parser.add_argument("--smoke", action="store_true",
                        help="8 batches a measurement (seconds; the suite runs this)")
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--http-only", action="store_true",
                        help="only the over-HTTP lines (no ceiling, decode or store lines)")
    parser.add_argument("--collector-src", type=Path, default=ROOT, metavar="DIR",
                        help="run the collector from this source tree, e.g. an export of an "
                             "older commit, to compare in one session (default: this one)")
    args = parser.parse_args()
    n_batches = 8 if args.smoke else 2000 if args.full else 400
    src = args.collector_src.resolve()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if not args.http_only:
            rows += ceiling(tmp, 2 if args.smoke else 40)
            for shape in SHAPES:
                rows += store_direct(tmp, n_batches, shape)
        http, n = over_http(tmp, str(tmp / "http.db"), n_batches, "SQLite (narrow)", src=src)
        rows += http + [("SQLite size per million results (rollups included)",
                         db_size_sqlite(tmp / "http.db", n))]
        rows += over_http(tmp, str(tmp / "wide.db"), n_batches, "SQLite (wide)", "wide",
                          src=src)[0][:2]
        if not args.no_pg:
            rows += _postgres(tmp, n_batches, src)
    print(f"batches of {SIZE} results; {os.cpu_count()} CPUs (shared); collector from {src}\n")
    print("| measurement | results/s |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


def _postgres(tmp: Path, n_batches: int, src: Path) -> list[tuple[str, str]]:
    from tests.store.pgcluster import PgCluster, PgUnavailable

    try:
        cluster = PgCluster(durable=True).start()
    except PgUnavailable as exc:
        return [("PostgreSQL", f"skipped: {exc}")]
    try:
        url = cluster.new_database()
        open_store(url).close()  # schema only: its size is subtracted below
        empty = _pg_size(url)
        http, n = over_http(tmp, url, n_batches, "PostgreSQL (narrow)", src=src)
        return http[:2] + [("PostgreSQL size per million results (rollups, indexes included)",
                        f"{(_pg_size(url) - empty) / n * 1e6 / 2**20:,.0f} MiB")]
    finally:
        cluster.stop()


def _pg_size(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


if __name__ == "__main__":
    main()
