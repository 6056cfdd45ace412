"""bench.province's real-rate run (run it through ``python -m bench.province``): simulated
probes upload signed batches at a target rate through several collectors into PostgreSQL.

The generated province's 150 probes each measure their share of ``--rate`` paths at one probe
a second, so the offered load is one result per path per second. Every probe uploads a batch
every ``--batch-seconds`` (default 10: ~1,000 results in ~100 streams, the wide shape of
bench.store_ingest) to its collector (probe ``i`` to collector ``i % K``), its uploads spread
over the period; a batch that fails is re-sent (re-signed) until acknowledged, as the probe's
uploader does. The results' send times are real (each path's probe at its own offset within
the second), so upload lag is the time from a result's send time to its batch's
acknowledgement (its batch's period and the upload round trip). Each probe's body is encoded
once by the product encoder (``encode_columns``) and parsed by the product's schema; each batch
is that body with its send times, sequence numbers and batch id moved on, encoded by the same
msgspec schema (so the simulator's cost per batch is small and the collectors are measured).

Measured: achieved results/s (acknowledged results over the run's wall time), each collector's
and PostgreSQL's CPU as a share of one core, upload lag and round trip (median, p99, max),
database growth per hour and per million results, and, after the collectors stopped (folding
what they held) and the rest is folded, the check: every batch sent is stored once with its
result count (``links``, one row per probe and batch) and every path's minute rollups count
exactly the results sent on it.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import numpy as np
import trio

from analyzer.synthetic.province import MeshPath, PlanProbe, Province, generate
from analyzer.synthetic.results import ICMP_V4, STAMP_V4, Stream
from bench.collector_harness import CollectorProcess, Tally, free_port, upload, write_keys
from ixmeter.core.record import Method, Result, TimestampSource
from ixmeter.core.wire import Batch, WireBody, encode_columns, parse_body

NS = 10**9
TYPE_P = {"icmp": ICMP_V4, "stamp": STAMP_V4}


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--rate", type=int, default=15_000,
                    help="results/s offered: as many paths, one probe a second each")
    ap.add_argument("--collectors", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the real-rate run")
    ap.add_argument("--batch-seconds", type=int, default=10, help="a probe's upload period")
    ap.add_argument("--drain-seconds", type=float, default=300,
                    help="how long after the send window to wait for uploads still going")


def _result(probe: PlanProbe, path: MeshPath, dst_addr: str, rng: random.Random,
            seq: int) -> Result:
    """Result ``seq`` of a path (its send time is replaced per batch)."""
    lost = rng.random() < 0.01
    rtt = None if lost else int(rng.lognormvariate(16, 0.2))
    stamp = path.method == "stamp"
    extra: dict[str, Any] = dict(session="s1") if stamp else {}
    if rtt is not None:
        extra["reply_ttl"] = 60
        if stamp:
            extra.update(fwd_ns=rtt // 2, bwd_ns=rtt - rtt // 2, clock_error_ns=50_000,
                         src_synced=True, dst_synced=True)
    stream = Stream(path.src_site, path.src_carrier, path.dst_site, path.dst_carrier,
                    Method(path.method), TYPE_P[path.method], probe.id, probe.address, dst_addr,
                    TimestampSource.KERNEL)  # the collector knows these probes by their ids
    return stream.result(seq, (int(time.time()) + seq) * NS, rtt, **extra)


@dataclass
class Sender:
    """One simulated probe: its body template and the batches it sent."""

    probe: PlanProbe
    template: WireBody
    period: int
    sent: dict[str, int] = field(default_factory=dict)  # batch id -> results
    lags: list[np.ndarray] = field(default_factory=list)
    round_trips: list[float] = field(default_factory=list)
    acked_at: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, province: Province, probe: PlanProbe, period: int, seed: int) -> Sender:
        rng = random.Random(f"{seed}:{probe.id}")
        paths = province.paths[probe.id]
        dst = [province.address(p.dst_site, p.dst_carrier) for p in paths]
        results = tuple(_result(probe, p, d, rng, j) for j in range(period)
                        for p, d in zip(paths, dst, strict=True))
        body = encode_columns(Batch(probe.id, f"{probe.id}-template", results))
        return cls(probe, parse_body(body), period)

    def body(self, k: int, start_ns: int) -> tuple[bytes, np.ndarray]:
        """Batch ``k``: the period starting at ``start_ns``, each path at its own offset
        within the second; its body and its results' send times."""
        streams = self.template.streams
        times = []
        for s, stream in enumerate(streams):
            offset = start_ns + s * NS // len(streams)
            stream.sent_at_ns = [offset + j * NS for j in range(self.period)]
            stream.seq = [k * self.period + j for j in range(self.period)]
            times.extend(stream.sent_at_ns)
        self.template.batch_id = f"{self.probe.id}-{k}"
        return msgspec.json.encode(self.template), np.array(times, dtype=np.int64)


async def _probe(sender: Sender, client: httpx.AsyncClient, url: str, key: bytes, tally: Tally,
                 t0: float, phase: float, end: float) -> None:
    """Batch ``k`` holds the results sent in [t0 + k P, t0 + (k + 1) P) and is uploaded
    ``phase`` after its period ends (the probes' uploads spread over the period)."""
    async with trio.open_nursery() as uploads:
        k = 0
        while t0 + (k + 1) * sender.period <= end:
            start = t0 + k * sender.period
            await trio.sleep(max(0.0, start + sender.period + phase - time.time()))
            body, times = sender.body(k, int(start * NS))
            batch_id = f"{sender.probe.id}-{k}"
            sender.sent[batch_id] = len(times)
            uploads.start_soon(_upload, sender, client, url, key, batch_id, body, times, tally)
            k += 1


async def _upload(sender: Sender, client: httpx.AsyncClient, url: str, key: bytes,
                  batch_id: str, body: bytes, times: np.ndarray, tally: Tally) -> None:
    posted = time.time()
    await upload(client, url, key, sender.probe.id, batch_id, body, tally,
                 retry_for=float('inf'))  # as the probe: re-signed and re-sent until answered
    acked = time.time()
    if (sender.probe.id, batch_id) in tally.acked:
        sender.acked_at.append(acked)
        sender.lags.append((int(acked * NS) - times) / NS)
        sender.round_trips.append(acked - posted)


async def _send_all(senders: Sequence[Sender], urls: Sequence[str], keys: dict[str, bytes],
                    t0: float, seconds: float, drain: float, tally: Tally) -> float:
    """Run the probes (send window [t0, t0 + seconds)) and wait at most ``drain`` s after it
    for the uploads still going (cancelled then: still spooled at a real probe); when the
    last upload ended."""
    end = t0 + seconds
    clients = [httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64))
               for _ in urls]
    try:
        with trio.move_on_at(trio.current_time() + (t0 - time.time()) + seconds + drain):
            async with trio.open_nursery() as nursery:
                for i, s in enumerate(senders):
                    url = urls[i % len(urls)]
                    nursery.start_soon(_probe, s, clients[i % len(urls)], url,
                                       keys[s.probe.id], tally, t0, i * s.period / len(senders),
                                       end)
    finally:
        for c in clients:
            await c.aclose()
    return time.time()


# -- CPU and size of the database -------------------------------------------------------------
def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu(data_dir: Path) -> float:
    """CPU seconds of the cluster's postmaster and its live children (the collectors'
    connections last the whole run)."""
    master = int((data_dir / "postmaster.pid").read_text().split()[0])
    total = _proc_cpu(master)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == master:
                total += _proc_cpu(int(entry.name))
    return total


def pg_size(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return int(row[0])


# -- the run ------------------------------------------------------------------------------------
def run(args: argparse.Namespace, out: Path) -> None:
    from analyzer.store import open_store
    from tests.store.pgcluster import PgCluster, PgUnavailable

    province = generate(args.rate, args.seed)
    n_paths = len(province.all_paths)
    seconds = args.minutes * 60
    print(f"\nreal rate: {len(province.probes)} probes, {n_paths:,} paths at 1/s "
          f"({n_paths:,} results/s offered), {args.collectors} collector(s), PostgreSQL, "
          f"{seconds:.0f} s, a batch per probe every {args.batch_seconds} s", flush=True)
    senders = [Sender.of(province, p, args.batch_seconds, args.seed) for p in province.probes
               if province.paths[p.id]]
    try:
        cluster = PgCluster(durable=True).start()
    except PgUnavailable as exc:
        print(f"real rate: skipped: {exc}")
        return
    collectors: list[CollectorProcess] = []
    try:
        url = cluster.new_database()
        open_store(url).close()
        keys = write_keys(out / "probe-keys.yaml", [s.probe.id for s in senders])
        collectors = [CollectorProcess(url, out / "probe-keys.yaml", free_port(), cpu=None
                                       ).start() for _ in range(args.collectors)]
        size0, pg0 = pg_size(url), postgres_cpu(cluster.data)
        cpu0 = [c.cpu_seconds() for c in collectors]
        own0, tally = time.process_time(), Tally()
        t0 = time.time() + 1
        drained = trio.run(_send_all, senders, [c.url for c in collectors], keys, t0, seconds,
                           args.drain_seconds, tally)
        wall = time.time() - t0
        cpu = [c.cpu_seconds() - c0 for c, c0 in zip(collectors, cpu0, strict=True)]
        pg_cpu, own = postgres_cpu(cluster.data) - pg0, time.process_time() - own0
        size1 = pg_size(url)
        for c in collectors:
            c.stop()  # folds what it holds
        _report(senders, tally, (t0, seconds, drained, wall), cpu, pg_cpu, own, size1 - size0)
        _check(url, senders, tally)
    finally:
        for c in collectors:
            c.stop()
        cluster.stop()


def _report(senders: Sequence[Sender], tally: Tally, times: tuple[float, float, float, float],
            cpu: Sequence[float], pg_cpu: float, own: float, grown: int) -> None:
    """The figures; CPU shares are over the whole run (``wall``: send window and drain)."""
    t0, seconds, drained, wall = times
    sent = sum(sum(s.sent.values()) for s in senders)
    results = sum(len(x) for s in senders for x in s.lags)
    period = max(s.period for s in senders)
    in_time = sum(len(x) for s in senders for x, at in zip(s.lags, s.acked_at, strict=True)
                  if at <= t0 + seconds + 2 * period)
    lags = np.concatenate([x for s in senders for x in s.lags]) if results else np.zeros(1)
    trips = np.array([t for s in senders for t in s.round_trips] or [0.0])
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    rows: list[tuple[str, Any]] = [
        ("results offered / s (paths at one a second)",
         f"{sum(len(s.template.streams) for s in senders):,}"),
        (f"results sent in the {seconds:.0f} s window / acknowledged", f"{sent:,} / {results:,}"),
        ("achieved: results acknowledged within two upload periods of the window's end, per "
         "second of window", f"{in_time / seconds:,.0f}"),
        ("last acknowledgement after the window's end", f"{drained - t0 - seconds:.1f} s"),
        ("uploads re-sent / answered duplicate", f"{tally.retries} / {tally.duplicate_acks}"),
        ("errors seen by the uploaders", dict(tally.errors) or "none"),
        *((f"collector {i + 1} CPU, share of one core", f"{c / wall:.1%}")
          for i, c in enumerate(cpu)),
        ("PostgreSQL CPU (all its processes), share of one core", f"{pg_cpu / wall:.1%}"),
        ("simulated probes' CPU (this process), share of one core", f"{own / wall:.1%}"),
        ("upload lag, send time to acknowledgement: median / p99 / max",
         " / ".join(f"{np.quantile(lags, q):.1f} s" for q in (0.5, 0.99, 1.0))),
        ("upload round trip (POST to acknowledgement): median / p99 / max",
         " / ".join(f"{np.quantile(trips, q) * 1e3:.0f} ms" for q in (0.5, 0.99, 1.0))),
        ("database growth per hour of the window (at this rate)",
         f"{grown / seconds * 3600 / 2**30:.2f} GiB"),
        ("database growth per million results",
         f"{grown / max(results, 1) * 1e6 / 2**20:.0f} MiB"),
        ("load average (1, 5, 15 min) at the end", load),
    ]
    print("| real rate | figure |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |", flush=True)


def _check(url: str, senders: Sequence[Sender], tally: Tally) -> None:
    """Every acknowledged batch stored once with its count (none lost), nothing stored that
    was not sent; every stored batch's results counted once in its paths' minute rollups."""
    from analyzer.store import open_store

    store = open_store(url)
    store.fold_pending(everything=True)  # what the collectors left unfolded (no grace)
    store.close()
    import psycopg

    with psycopg.connect(url) as conn:
        links = {(p, b): n for p, b, n in conn.execute(
            "SELECT probe_id, batch_id, n FROM links WHERE kind = 'batch'")}
        folded: dict[str, int] = dict(conn.execute(
            "SELECT path_id || ' ' || method, SUM(sent) FROM rollups "
            "GROUP BY path_id, method").fetchall())
    sent = {(s.probe.id, b): n for s in senders for b, n in s.sent.items()}
    lost = [k for k in tally.acked if k not in links]
    extra = [k for k in links if k not in sent]
    wrong = [k for k in links if k in sent and links[k] != sent[k]]
    unanswered = [k for k in sent if k not in tally.acked]
    expected: dict[str, int] = {}
    for s in senders:
        stored = sum((s.probe.id, b) in links for b in s.sent) * s.period
        for stream in s.template.streams:
            key = f"{_path_id(stream)} {stream.method}"
            expected[key] = expected.get(key, 0) + stored
    expected = {k: v for k, v in expected.items() if v}
    off = {k: (folded.get(k), v) for k, v in expected.items() if folded.get(k) != v}
    ok = not (lost or extra or wrong or off) and len(folded) == len(expected)
    print(f"| batches sent / acknowledged / stored (links) | {len(sent):,} / "
          f"{len(tally.acked):,} / {len(links):,} |")
    print(f"| acknowledged but not stored (lost) / stored but never sent / stored with another "
          f"count | {len(lost)} / {len(extra)} / {len(wrong)} |")
    print(f"| not acknowledged when the run ended (a real probe still holds them) | "
          f"{len(unanswered)}, of which stored: {sum(k in links for k in unanswered)} |")
    print(f"| paths whose minute rollups count other than their stored batches' results | "
          f"{len(off)} of {len(expected):,} {list(off.items())[:3] if off else ''} |")
    print(f"| nothing lost or duplicated | {'yes' if ok else 'NO'} |", flush=True)


def _path_id(stream: Any) -> str:
    from ixmeter.core.record import path_id

    return path_id(stream.src_site, stream.src_carrier, stream.dst_site, stream.dst_carrier)
