"""Load and faults: many probes at once, the collector killed mid-batch, the disk full.

    .venv/bin/python -m bench.collector_faults             # short run (~1-2 min)
    .venv/bin/python -m bench.collector_faults --full      # more probes' batches

Every probe uploads unique batches and retries (re-signed, fresh nonce) until acknowledged,
as the probe's uploader does. Afterwards the store is read back: results sent, acknowledged,
stored, duplicated (same probe/session/sequence stored twice) and lost (sent, never stored);
the goal is 0 lost and 0 duplicated, with the hash chain intact, and every stored result
counted once in the rollups (folded after the kills from the stored blocks).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import trio

from analyzer.store import Query, open_reader
from analyzer.synthetic.varied import make_batches
from bench.collector_harness import CollectorProcess, Tally, free_port, upload, write_keys
from ixmeter.core.wire import encode_columns

Job = tuple[str, str, bytes, int]  # probe, batch id, body, results


def jobs_for(probes: list[str], n_batches: int, size: int) -> list[Job]:
    out = []
    for k, p in enumerate(probes):
        for b in make_batches(p, n_batches, size, seed=k):
            out.append((p, b.batch_id, encode_columns(b), len(b.results)))
    return out


async def run_uploads(url: str, keys: dict[str, bytes], jobs: list[Job], concurrency: int,
                      during: Callable[[Tally], object] | None = None) -> Tally:
    """Each probe uploads its batches in order; ``concurrency`` probes at a time; ``during``
    runs in a thread meanwhile, seeing the tally as it grows."""
    tally = Tally()
    by_probe: dict[str, list[Job]] = {}
    for job in jobs:
        by_probe.setdefault(job[0], []).append(job)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def probe(items: list[Job]) -> None:
            for p, bid, body, _n in items:
                await upload(client, url, keys[p], p, bid, body, tally, retry_for=300)

        async with trio.open_nursery() as nursery:
            if during is not None:
                nursery.start_soon(trio.to_thread.run_sync, during, tally)
            for items in by_probe.values():
                nursery.start_soon(probe, items)
    return tally


def outcome(name: str, db: Path, jobs: list[Job], tally: Tally, seconds: float) -> str:
    store = open_reader(db)
    try:
        stored = list(store.read_results(Query(0, 2**62)))
        report = store.verify()
        rolled = sum(r.sent + r.errors for r in store.read_rollups(Query(0, 2**62, tier="day")))
    finally:
        store.close()
    keys = {(r.probe_id, r.session, r.seq) for r in stored}
    sent = sum(n for *_, n in jobs)
    acked = sum(n for p, b, _, n in jobs if (p, b) in tally.acked)
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(tally.errors.items())) or "none"
    return (f"| {name} | {sent:,} | {acked:,} | {len(stored):,} | {len(stored) - len(keys)} | "
            f"{sent - len(keys):,} | {rolled:,} | {tally.duplicate_acks} | {tally.retries} "
            f"({errors}) | {'ok' if report.ok else '; '.join(report.findings)} | {seconds:.1f} s |")


def many_probes(tmp: Path, n_probes: int, n_batches: int) -> str:
    probes = [f"load-{k:03d}" for k in range(n_probes)]
    keys = write_keys(tmp / "k1.yaml", probes)
    jobs = jobs_for(probes, n_batches, 100)
    db = tmp / "many.db"
    collector = CollectorProcess(str(db), tmp / "k1.yaml", free_port(), cpu=0).start()
    try:
        start = time.perf_counter()
        tally = trio.run(run_uploads, collector.url, keys, jobs, n_probes)
        seconds = time.perf_counter() - start
    finally:
        collector.stop()
    return outcome(f"{n_probes} probes concurrently", db, jobs, tally, seconds)


def killed(tmp: Path, kills: int, n_probes: int = 20, size: int = 500) -> str:
    probes = [f"kill-{k:02d}" for k in range(n_probes)]
    keys = write_keys(tmp / "k2.yaml", probes)
    jobs = jobs_for(probes, 10, size)
    db = tmp / "killed.db"
    collector = CollectorProcess(str(db), tmp / "k2.yaml", free_port(), cpu=0).start()

    def killer(tally: Tally) -> None:
        """SIGKILL (no shutdown, requests in flight cut) at evenly spread points of the
        upload, judged by the batches acknowledged so far: the upload takes well under a
        second at today's ingest rates, so fixed delays would miss it."""
        for k in range(1, kills + 1):
            while len(tally.acked) < k * len(jobs) // (kills + 1):
                time.sleep(0.002)
            collector.kill()
            time.sleep(0.3)
            collector.start()

    try:
        start = time.perf_counter()
        tally = trio.run(run_uploads, collector.url, keys, jobs, n_probes, killer)
        seconds = time.perf_counter() - start
    finally:
        collector.stop()
    return outcome(f"collector SIGKILLed {kills}x mid-upload", db, jobs, tally, seconds)


def disk_full(tmp: Path) -> str:
    if os.geteuid() != 0:
        return "| disk full | skipped: needs root to mount a small tmpfs |"
    mnt = tmp / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    try:
        return _disk_full(tmp, mnt)
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def _disk_full(tmp: Path, mnt: Path) -> str:
    probes = [f"full-{k:02d}" for k in range(10)]
    keys = write_keys(tmp / "k3.yaml", probes)
    jobs = jobs_for(probes, 10, 500)  # ~50,000 results: about 5 MiB, more than the 4 MiB
    db = mnt / "full.db"
    collector = CollectorProcess(str(db), tmp / "k3.yaml", free_port(), cpu=0).start()
    full_seen: list[str] = []

    def grow_when_full(_tally: Tally) -> None:
        while True:  # wait for the store to report the disk full, then give it room
            time.sleep(0.5)
            text = httpx.get(collector.url + "/metrics").text
            if 'ixmeter_collector_rejected_total{reason="store_error"}' in text:
                full_seen.append(text)
                time.sleep(2)
                subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
                return

    try:
        start = time.perf_counter()
        tally = trio.run(run_uploads, collector.url, keys, jobs, 10, grow_when_full)
        seconds = time.perf_counter() - start
    finally:
        collector.stop()
    name = "disk full (4 MiB tmpfs), then grown" if full_seen else "disk full: never filled"
    return outcome(name, db, jobs, tally, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="more batches per probe")
    parser.add_argument("--only", choices=["many", "kill", "full"], help="one scenario only")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny scenarios (seconds): the suite runs this")
    args = parser.parse_args()
    print("| scenario | results sent | acknowledged | stored | duplicated | lost | in rollups "
          "| duplicate acks | retries (causes) | chain | time |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.only in (None, "many"):
            print(many_probes(tmp, *((10, 1) if args.smoke else (200, 20 if args.full else 5))),
                  flush=True)
        if args.only in (None, "kill"):
            print(killed(tmp, *((1, 4, 100) if args.smoke else (6 if args.full else 3,))),
                  flush=True)
        if args.only in (None, "full"):
            print(disk_full(tmp), flush=True)


if __name__ == "__main__":
    main()
