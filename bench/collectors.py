"""Several collectors on one PostgreSQL: ingest rate, CPU per collector, fold work, fail-over.

``--collectors N`` collector processes (``ixmeter collector serve``, each pinned to a CPU in
turn) on one throwaway PostgreSQL; ``--probes`` simulated probes spread across them upload
pre-signed batches (the probe's encoding and signing are not the collector's cost). Half-way,
the last collector is killed (SIGKILL, right after its last answer, so it may die holding
batches it has not folded) and its probes fail over to the first; with three collectors or
more, one probe also moves from the first to the second. The live collectors run ``--linger``
seconds more (past the fold grace) and are nudged once (a heartbeat: their idle fold runs).

Prints results/s, each collector's CPU seconds, the batches each folded from memory and from
raw results, what ``collector compact`` folded after (what the collectors left unfolded when
they stopped), and checks that nothing was lost or duplicated, that ``verify --deep`` passes
and that the rollups equal, row for row and digest for digest, those of a single collector fed
the same batches in the same chain order.

    .venv/bin/python -m bench.collectors               # 2 collectors, 12 probes, 1.2M results
    .venv/bin/python -m bench.collectors --smoke       # seconds
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio

from analyzer.store import open_store
from analyzer.store.foldset import GRACE_S
from analyzer.store.schema import EVIDENCE_TABLES, STORED_ROLLUP_COLUMNS
from analyzer.store.writes import Writer
from bench.collector_harness import (
    CollectorProcess,
    bodies,
    free_port,
    presigned,
    send_raw,
    write_keys,
)
from ixmeter.core.wire import sign

Bodies = dict[str, list[tuple[str, bytes]]]


def plan(probes: list[str], n: int) -> tuple[dict[str, int], dict[str, int]]:
    """Each probe's collector before and after half-time: round robin; after, the last
    collector's probes on the first (it is killed) and, with three collectors or more, the
    first probe on the second (a fail-over of its own)."""
    before = {p: k % n for k, p in enumerate(probes)}
    after = {p: 0 if c == n - 1 else c for p, c in before.items()}
    if n >= 3:
        after[probes[0]] = 1
    return before, after


async def _upload(collectors: list[CollectorProcess], keys: dict[str, bytes], payloads: Bodies,
                  route: dict[str, int], concurrency: int) -> list[int]:
    """Each collector's share of ``payloads`` at once; the HTTP statuses."""
    statuses: list[int] = []

    async def one(k: int) -> None:
        share = {p: items for p, items in payloads.items() if route[p] == k and items}
        if not share:
            return
        c = collectors[k]
        answers = await send_raw("127.0.0.1", c.port, presigned(keys, share, f"127.0.0.1:{c.port}"),
                                 concurrency)
        statuses.extend(status for status, _body in answers)

    async with trio.open_nursery() as nursery:
        for k in range(len(collectors)):
            nursery.start_soon(one, k)
    return statuses


def scrape(collector: CollectorProcess) -> dict[str, int]:
    """Batches folded from memory and from raw, and results accepted, from its /metrics."""
    text = httpx.get(collector.url + "/metrics", timeout=30).text
    names = {"memory": 'ixmeter_collector_folded_batches_total{source="memory"}',
             "raw": 'ixmeter_collector_folded_batches_total{source="raw"}',
             "results": "ixmeter_collector_results_total"}
    return {k: int(float(m.group(1))) if (m := re.search(
        "^" + re.escape(name) + r" (\S+)$", text, re.M))
            else 0 for k, name in names.items()}


def nudge(collector: CollectorProcess, probe: str, key: bytes) -> None:
    """A heartbeat: a store call, after which the collector's idle fold runs."""
    path = f"/v1/probes/{probe}/heartbeat"
    httpx.post(collector.url + path, content=b"{}", timeout=30,
               headers=sign(key, probe, "POST", path, b"{}", time.time()))


def tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    store = open_store(url)
    assert isinstance(store, Writer)
    try:
        return {t: [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                    for row in store.db.execute(
                        f"SELECT {', '.join(STORED_ROLLUP_COLUMNS)} FROM {t} ORDER BY path_id, "
                        "method, type_p, minute").fetchall()] for t in EVIDENCE_TABLES}
    finally:
        store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collectors", type=int, default=2)
    ap.add_argument("--probes", type=int, default=12)
    ap.add_argument("--batches", type=int, default=100, help="per probe")
    ap.add_argument("--size", type=int, default=1000, help="results per batch")
    ap.add_argument("--paths", type=int, default=50, help="paths per probe")
    ap.add_argument("--concurrency", type=int, default=4, help="connections per collector")
    ap.add_argument("--linger", type=float, default=GRACE_S + 2,
                    help="seconds the live collectors run after the uploads (past the grace, "
                         "they fold the killed collector's orphans themselves)")
    ap.add_argument("--smoke", action="store_true", help="seconds; compact folds the orphans")
    args = ap.parse_args()
    if args.smoke:
        args.probes, args.batches, args.size, args.paths, args.linger = 4, 8, 200, 6, 0.0
    from tests.store.pgcluster import PgCluster, PgUnavailable

    try:
        cluster = PgCluster().start()
    except PgUnavailable as exc:
        print(f"needs a throwaway PostgreSQL: {exc}")
        return 0 if args.smoke else 1
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run(args, cluster, Path(tmp))
    finally:
        cluster.stop()
    return 0


def run(args: argparse.Namespace, cluster: Any, tmp: Path) -> None:
    probes = [f"p{k:03d}" for k in range(args.probes)]
    keys = write_keys(tmp / "keys.yaml", probes)
    payloads = {p: bodies(p, args.batches, args.size, seed=k + 1, paths=tuple(
        (f"s{k:03d}", "CT", f"d{j:03d}", ("CT", "CM", "CU")[j % 3]) for j in range(args.paths)))
        for k, p in enumerate(probes)}
    half = args.batches // 2
    before, after = plan(probes, args.collectors)
    url = cluster.new_database()
    open_store(url).close()  # the schema, once
    cpus = os.cpu_count() or 1
    collectors = [CollectorProcess(url, tmp / "keys.yaml", free_port(), cpu=k % cpus).start()
                  for k in range(args.collectors)]
    cpu0 = [c.cpu_seconds() for c in collectors]
    n = args.probes * args.batches * args.size
    print(f"{args.collectors} collectors on one PostgreSQL, {args.probes} probes x "
          f"{args.batches} batches x {args.size} results ({args.paths} paths per probe), "
          f"{args.concurrency} connections per collector; {cpus} CPUs; load "
          f"{os.getloadavg()[0]:.2f}")
    live = collectors[:-1] if args.collectors > 1 else collectors
    try:
        began = time.perf_counter()
        statuses = trio.run(_upload, collectors, keys, {p: v[:half] for p, v in
                                                        payloads.items()}, before,
                            args.concurrency)
        if len(live) < len(collectors):
            dead_cpu = collectors[-1].cpu_seconds() - cpu0[-1]
            collectors[-1].kill()  # at once: it may hold batches not folded yet
        statuses += trio.run(_upload, collectors, keys, {p: v[half:] for p, v in
                                                         payloads.items()}, after,
                             args.concurrency)
        took = time.perf_counter() - began
        time.sleep(args.linger)
        for c in live:
            nudge(c, probes[0], keys[probes[0]])
        time.sleep(1.5)  # the idle fold
        work = [scrape(c) for c in live]
        cpu = [c.cpu_seconds() - c0 for c, c0 in zip(live, cpu0, strict=False)]
    finally:
        for c in collectors:
            c.stop()
    moved = [f"{p} {before[p]} -> {after[p]}" for p in probes if before[p] != after[p]]
    print(f"\nuploads: {n:,} results in {took:.1f} s: {n / took:,.0f} results/s "
          f"({sum(s == 200 for s in statuses):,} of {len(statuses):,} answered 200); "
          f"half-way: {', '.join(moved) or 'no probe moved'}; load {os.getloadavg()[0]:.2f}")
    print(f"{'collector':>10} {'CPU s':>8} {'results':>10} {'results/CPU s':>14} "
          f"{'folded from memory':>19} {'from raw':>9}")
    for k, (w, c) in enumerate(zip(work, cpu, strict=True)):
        print(f"{k:>10} {c:8.1f} {w['results']:10,} {w['results'] / max(c, 1e-9):14,.0f} "
              f"{w['memory']:19,} {w['raw']:9,}")
    if len(live) < len(collectors):
        print(f"{len(live):>10} {dead_cpu:8.1f}   killed half-way (its /metrics gone with it)")
    check(url, cluster, keys, payloads, n)


def check(url: str, cluster: Any, keys: dict[str, bytes], payloads: Bodies, n: int) -> None:
    store = open_store(url)
    assert isinstance(store, Writer)
    try:
        left = len(store.unfolded())
        store.fold_pending(everything=True)  # what `collector compact` does
        links = store.db.execute("SELECT probe_id, batch_id, n FROM links WHERE kind = 'batch' "
                                 "ORDER BY idx").fetchall()
        report = store.verify(deep=True)
    finally:
        store.close()
    stored = {(p, b) for p, b, _n in links}
    sent = {(p, b) for p, items in payloads.items() for b, _body in items}
    lost, extra = len(sent - stored), len(links) - len(stored)
    results = sum(int(k) for _p, _b, k in links)
    print(f"left unfolded when the collectors stopped, folded by compact: {left} batch(es) "
          f"(memory {store.fold_work['memory']}, raw {store.fold_work['raw']})")
    print(f"stored {len(links):,} batches, {results:,} results: {lost} lost, {extra} duplicated"
          f"; verify --deep {'ok' if report.ok else 'FAILED: ' + '; '.join(report.findings)}")
    single = cluster.new_database()
    one = CollectorProcess(single, _keys_file(keys), free_port(), cpu=0).start()
    by_id = {(p, b): body for p, items in payloads.items() for b, body in items}
    began = time.perf_counter()
    try:
        for p, b, _n in links:  # the same batches in the same chain order, one at a time
            trio.run(send_raw, "127.0.0.1", one.port, presigned(
                keys, {p: [(b, by_id[(p, b)])]}, f"127.0.0.1:{one.port}"), 1)
    finally:
        one.stop()
    store = open_store(single)
    try:
        store.fold_pending(everything=True)  # what SIGTERM left (it folds on a clean stop)
    finally:
        store.close()
    same = tables(url) == tables(single)
    print(f"one collector fed the same batches in the same chain order "
          f"({time.perf_counter() - began:.1f} s): rollups "
          f"{'equal, row for row and digest for digest' if same else 'DIFFER'}")
    if lost or extra or results != n or not report.ok or not same:
        raise SystemExit("FAILED: see above")


def _keys_file(keys: dict[str, bytes]) -> Path:
    path = Path(tempfile.mkdtemp(prefix="ixmeter-bench-")) / "keys.yaml"
    path.write_text("".join(f"{p}: {k.hex()}\n" for p, k in keys.items()))
    return path


if __name__ == "__main__":
    raise SystemExit(main())
