"""The progress line's per-window counts (settled minutes counted once, the rest re-read,
the total always equal to a full read) and its live inter-carrier figures, on real stores."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analyzer.store import open_store
from analyzer.store.base import Query
from ixmeter.core.record import Method, Result, Status, TimestampSource, TypeP
from ixmeter.core.wire import Batch
from ixmeter.demo.network import networks
from ixmeter.demo.plan import MINUTE_NS, NS, Timeline
from ixmeter.demo.progress import Counts, Progress


@dataclass
class _Rollup:
    minute: int
    sent: int
    errors: int = 0


class _Store:
    """Rollups of ``per_minute`` results in every minute up to ``upto_ns``; counts reads."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute, self.upto_ns, self.reads = per_minute, 0, 0

    def read_rollups(self, q: Query) -> list[_Rollup]:
        self.reads += 1
        first, last = q.start_ns // MINUTE_NS, (min(q.end_ns, self.upto_ns) - 1) // MINUTE_NS
        return [_Rollup(m, self.per_minute) for m in range(first, last + 1)]


def test_cached_counts_equal_a_full_read() -> None:
    t0 = 1_795_000_020 * NS  # a minute boundary
    window = (t0, t0 + 10 * MINUTE_NS)
    store = _Store(per_minute=100)
    counts = Counts(store, window)
    now = t0
    while now < window[1] + MINUTE_NS:
        store.upto_ns = now
        assert counts.stored(now) == Counts(store, window).stored()
        now += 30 * NS
    later = window[1] + 2 * MINUTE_NS
    assert counts.stored(later) == 1000
    reads = store.reads
    counts.stored(later)
    assert store.reads == reads  # settled: nothing is read again


def _echoes(t0: int, rtt_ms: float, lose_every: int) -> tuple[Result, ...]:
    return tuple(Result(
        probe_id="cs-yungu-ct", method=Method.ICMP, src_site="cs-yungu", src_carrier="CT",
        dst_site="cz-ezone", dst_carrier="CM", src_addr="198.18.2.10",
        dst_addr="198.18.68.10", type_p=TypeP("icmp", 4, 64), seq=i,
        sent_at_ns=t0 + i * NS // 2, tmax_ns=3 * NS, ts_source=TimestampSource.KERNEL,
        status=Status.LOST if i % lose_every == 0 else Status.RECEIVED,
        rtt_ns=None if i % lose_every == 0 else int(rtt_ms * 1e6)) for i in range(240))


def test_the_line_shows_each_networks_live_rtt_and_loss(tmp_path: Path) -> None:
    """Two minutes stored in each copy's store: the line shows the latest complete minute's
    inter-carrier median RTT and loss of each, and the counts."""
    from inventory.loader import default_inventory

    t0 = 1_795_000_020 * NS // MINUTE_NS * MINUTE_NS
    nets = networks(tmp_path, "t")
    for net, rtt, every in ((nets[0], 38.5, 100), (nets[1], 5.2, 1000)):
        store = open_store(net.db)
        store.write_batch(Batch("cs-yungu-ct", "b1", _echoes(t0, rtt, every)), t0)
        store.close()
    progress = Progress(nets, Timeline(t0, t0 + 2 * MINUTE_NS), default_inventory())
    try:
        line = progress.line(t0 + 2 * MINUTE_NS + 10 * NS)
    finally:
        progress.close()
    assert "baseline (detour) 38.5 ms 0.83 % loss, 240 stored" in line  # 1 lost of 120
    assert "current (direct) 5.2 ms 0.00 % loss, 240 stored" in line
    assert line.startswith("[2:10 / 2:00] done")
