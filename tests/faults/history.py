"""Known-truth histories for the fault-rule tests: exact delays and loss counts per local hour,
written through ``Store.write_batches`` as result records."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from analyzer.store import open_store
from ixmeter.record import Method, Result, Status, TimestampSource, TypeP
from ixmeter.wire import Batch

ICMP_V4 = TypeP("icmp", 4, 64)
PER_MINUTE = 4  # 240 samples an hour
INVENTORY = Path(__file__).with_name("faults.yaml")
SHANGHAI = ZoneInfo("Asia/Shanghai")
# One hour of one path: (mean RTT in ms, every n-th packet lost or 0 for none)
Hour = tuple[float, int]
# path "site/carrier>site/carrier" -> local date -> local hour -> Hour
Plan = Mapping[str, Mapping[date, Mapping[int, Hour]]]


def hour_results(path: str, start: datetime, hour: Hour, seq0: int = 0) -> Iterator[Result]:
    """``PER_MINUTE`` probes a minute for an hour from ``start`` (local): RTT ``ms`` plus a
    jitter of 0-6 us that averages out exactly over 7 packets, every n-th packet lost."""
    (src, dst) = path.split(">")
    (ss, sc), (ds, dc) = src.split("/"), dst.split("/")
    ms, every = hour
    t0 = int(start.timestamp()) * 10**9
    gap = 60 * 10**9 // PER_MINUTE
    for i in range(60 * PER_MINUTE):
        lost = every > 0 and i % every == 0
        yield Result(
            probe_id=f"{ss}-{sc.lower()}", method=Method.ICMP, src_site=ss, src_carrier=sc,
            dst_site=ds, dst_carrier=dc, src_addr="198.18.1.10", dst_addr="198.18.65.10",
            type_p=ICMP_V4, seq=seq0 + i, sent_at_ns=t0 + i * gap,
            status=Status.LOST if lost else Status.RECEIVED, tmax_ns=3 * 10**9,
            ts_source=TimestampSource.KERNEL,
            rtt_ns=None if lost else int(ms * 1e6) + (i % 7) * 1000)


def write_plan(db: str | Path, plan: Plan, name: str = "known") -> None:
    """One batch per path and day, all in one transaction (a SQLite file or a PostgreSQL
    URL)."""
    batches = []
    for path, days in sorted(plan.items()):
        for day, hours in sorted(days.items()):
            rs: list[Result] = []
            for h, hour in sorted(hours.items()):
                start = datetime(day.year, day.month, day.day, h, tzinfo=SHANGHAI)
                rs.extend(hour_results(path, start, hour, seq0=len(rs)))
            batches.append(Batch(rs[0].probe_id, f"{name}-{path}-{day}", tuple(rs)))
    store = open_store(db)
    try:
        store.write_batches(batches, 0)
    finally:
        store.close()


def days(first: date, n: int) -> list[date]:
    return [date.fromordinal(first.toordinal() + k) for k in range(n)]
