"""Deterministic result batches of every kind (ICMP and STAMP over IPv6, losses, send errors,
duplicates, unsynchronised clocks, a traceroute's hops) for the store, collector and codec tests
and the benchmarks that upload or decode (collector_harness, store_ingest, store_retention,
wire_decode, collector_faults). The probe id is the caller's (a collector knows its probes);
the records are built by :meth:`analyzer.synthetic.results.Stream.result`."""

from __future__ import annotations

import random

from analyzer.synthetic.results import ICMP_V4, Stream
from ixmeter.core.record import ErrorKind, Hop, Method, Result, Status, TimestampSource, TypeP
from ixmeter.core.wire import Batch

STAMP_V6 = TypeP("udp", 6, 44, 46, 862)

T0 = 29_666_666 * 60 * 10**9  # a fixed UTC instant (2026-05-29), minute-aligned
NS_MIN = 60 * 10**9
PATHS = (("csx-a", "CT", "csx-b", "CM"), ("csx-a", "CT", "yy-a", "CU"),
         ("yy-a", "CU", "csx-a", "CT"))


def wide_paths(n: int) -> tuple[tuple[str, str, str, str], ...]:
    """``n`` paths from one site: the shape of a probe measuring many targets."""
    return tuple(("csx-a", "CT", f"dst{k:03d}", ("CT", "CM", "CU")[k % 3]) for k in range(n))


def make_results(probe_id: str, n: int, *, seed: int = 1, start_ns: int = T0,
                 gap_ns: int = 20_000_000, seq0: int = 0,
                 paths: tuple[tuple[str, str, str, str], ...] = PATHS) -> list[Result]:
    """``n`` results of ``probe_id`` over ``paths`` (three by default), two Type-Ps, with
    losses and errors; result ``i`` is on path ``i % len(paths)``."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        src_site, src_c, dst_site, dst_c = paths[i % len(paths)]
        kind = rng.random()
        status = (Status.LOST if kind < 0.05 else Status.ERROR if kind < 0.06
                  else Status.RECEIVED)
        rtt = int(rng.lognormvariate(14, 0.5)) if status is Status.RECEIVED else None
        stamp = i % 2 == 1
        fwd = rtt // 2 if (rtt is not None and stamp) else None
        stream = Stream(src_site, src_c, dst_site, dst_c,
                        Method.STAMP if stamp else Method.ICMP, STAMP_V6 if stamp else ICMP_V4,
                        probe_id, "198.18.1.10", "2001:2::10" if stamp else "198.18.65.10",
                        TimestampSource.KERNEL)
        out.append(stream.result(
            seq0 + i, start_ns + i * gap_ns, rtt, status=status, fwd_ns=fwd,
            bwd_ns=rtt - fwd if (rtt is not None and fwd is not None) else None,
            clock_error_ns=50_000 if fwd is not None else None,
            src_synced=True if fwd is not None else None,
            dst_synced=(i % 7 != 0) if fwd is not None else None,
            error=ErrorKind.SEND_ERROR if status is Status.ERROR else None,
            error_detail="ENOBUFS" if status is Status.ERROR else None,
            dup=1 if i % 97 == 5 and status is Status.RECEIVED else 0, reply_ttl=60,
            session="s1", hops=(Hop(1, "198.18.1.1", 100_000), Hop(2, None)) if i == 3 else ()))
    return out


def make_batches(probe_id: str, n_batches: int, size: int, *, seed: int = 1,
                 start_ns: int = T0, gap_ns: int = 20_000_000,
                 paths: tuple[tuple[str, str, str, str], ...] = PATHS) -> list[Batch]:
    """Consecutive batches of one probe (sequence numbers continue across batches)."""
    results = make_results(probe_id, n_batches * size, seed=seed, start_ns=start_ns,
                           gap_ns=gap_ns, paths=paths)
    return [Batch(probe_id, f"{probe_id}-b{k}", tuple(results[k * size:(k + 1) * size]))
            for k in range(n_batches)]
