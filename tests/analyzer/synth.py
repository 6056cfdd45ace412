"""Synthetic results of known truth for the analyzer tests (seeded, deterministic)."""

from __future__ import annotations

import random
from collections.abc import Iterator

from ixmeter.record import Method, Result, Status, TimestampSource, TypeP

ICMP_V4 = TypeP("icmp", 4, 64)
STAMP_V4 = TypeP("udp", 4, 44, 0, 862)
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
MIN_NS = 60 * 10**9


def results(src: str, src_carrier: str, dst: str, dst_carrier: str, *, start_ns: int = T0,
            minutes: int = 60, per_minute: int = 10, median_ms: float = 10.0,
            spread: float = 0.05, loss: float = 0.0, seed: int = 1,
            method: Method = Method.ICMP, type_p: TypeP = ICMP_V4,
            one_way: bool = False, clock_error_ns: int = 20_000,
            synced: bool = True) -> Iterator[Result]:
    """``per_minute`` evenly spaced probes a minute; RTT lognormal around ``median_ms``."""
    rng = random.Random(seed)
    gap = MIN_NS // per_minute
    for i in range(minutes * per_minute):
        lost = rng.random() < loss
        rtt = None if lost else int(median_ms * 1e6 * rng.lognormvariate(0, spread))
        fwd = bwd = None
        if one_way and rtt is not None:
            fwd, bwd = rtt // 2, rtt - rtt // 2
        yield Result(
            probe_id=f"{src}-{src_carrier.lower()}", method=method, src_site=src,
            src_carrier=src_carrier, dst_site=dst, dst_carrier=dst_carrier,
            src_addr="198.18.0.1", dst_addr="198.18.0.2", type_p=type_p, seq=i,
            sent_at_ns=start_ns + i * gap, status=Status.LOST if lost else Status.RECEIVED,
            tmax_ns=3 * 10**9, ts_source=TimestampSource.KERNEL, rtt_ns=rtt, fwd_ns=fwd,
            bwd_ns=bwd, clock_error_ns=clock_error_ns if one_way else None,
            src_synced=synced if one_way else None, dst_synced=synced if one_way else None)
