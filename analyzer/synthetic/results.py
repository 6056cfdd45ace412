"""Synthetic result records: the one place that makes :class:`~ixmeter.core.record.Result` rows
nobody measured, and writes them as batches.

A :class:`Stream` is one path as a probe would measure it (ends, method, Type-P, addresses);
its records carry the probe id ``synthetic-<site>-<carrier>`` and the timestamp source
``imported`` unless a caller names others (uploads to a collector, which knows its probes by
id), and :func:`batch` gives every batch an id ``synthetic-<label>``: in the store and its hash
chain (the batch link names probe and batch) the rows say what they are. The shapes of time
series:

- :func:`lognormal`: ``per_minute`` evenly spaced probes, RTT lognormal around a median (the
  analyzer's known-truth tests, bench.analyzer_year, bench.store_tiers' minute reads);
- :func:`hours`: exact hours (a mean RTT plus a jitter that averages out over a cycle, every
  n-th packet lost): the fault rules' known-truth tests and ``ixmeter demo``'s fault history;
- :mod:`analyzer.synthetic.exchange` (an exchange point's before and after) and
  :mod:`analyzer.synthetic.varied` (records of every kind, for the store and codec tests and
  benchmarks) build theirs with :meth:`Stream.result` too.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from pathlib import Path
from typing import Any, NamedTuple

from analyzer.store.base import Store
from ixmeter.core.record import Method, Result, Status, TimestampSource, TypeP, parse_path_id
from ixmeter.core.wire import Batch

SYNTHETIC_PREFIX = "synthetic-"  # probe and batch ids of generated data
ICMP_V4 = TypeP("icmp", 4, 64)
STAMP_V4 = TypeP("udp", 4, 44, 0, 862)
TRACE_V4 = TypeP("udp", 4, 60, 0, 33434)
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z
MIN_NS = 60 * 10**9
TMAX_NS = 3 * 10**9


@dataclass(frozen=True, slots=True)
class Stream:
    """One synthetic path as a probe measures it; :meth:`result` makes its records."""

    src_site: str
    src_carrier: str
    dst_site: str
    dst_carrier: str
    method: Method = Method.ICMP
    type_p: TypeP = ICMP_V4
    probe_id: str = ""  # default: synthetic-<src_site>-<src_carrier>
    src_addr: str = "198.18.0.1"
    dst_addr: str = "198.18.0.2"
    ts_source: TimestampSource = TimestampSource.IMPORTED

    @classmethod
    def of(cls, path: str, **kw: object) -> Stream:
        """The stream of a path id ``site/carrier>site/carrier``."""
        return cls(*parse_path_id(path), **kw)  # type: ignore[arg-type]

    @property
    def probe(self) -> str:
        return self.probe_id or f"{SYNTHETIC_PREFIX}{self.src_site}-{self.src_carrier.lower()}"

    def result(self, seq: int, sent_at_ns: int, rtt_ns: int | None,
               *, status: Status | None = None, **extra: Any) -> Result:
        """A received record with ``rtt_ns``, or a lost one when it is None (or ``status``)."""
        if status is None:
            status = Status.LOST if rtt_ns is None else Status.RECEIVED
        return Result(
            probe_id=self.probe, method=self.method, src_site=self.src_site,
            src_carrier=self.src_carrier, dst_site=self.dst_site, dst_carrier=self.dst_carrier,
            src_addr=self.src_addr, dst_addr=self.dst_addr, type_p=self.type_p, seq=seq,
            sent_at_ns=sent_at_ns, status=status,
            tmax_ns=TMAX_NS, ts_source=self.ts_source, rtt_ns=rtt_ns,
            **extra)


def lognormal(stream: Stream, *, start_ns: int = T0, minutes: int = 60, per_minute: int = 10,
              median_ms: float = 10.0, spread: float = 0.05, loss: float = 0.0, seed: int = 1,
              one_way: bool = False, clock_error_ns: int = 20_000, synced: bool = True
              ) -> Iterator[Result]:
    """``per_minute`` evenly spaced probes a minute; RTT lognormal (sigma ``spread``) around
    ``median_ms``, each lost with probability ``loss``; ``one_way`` splits it in two halves
    with a clock error bound and S bits."""
    rng = random.Random(seed)
    gap = MIN_NS // per_minute
    for i in range(minutes * per_minute):
        lost = rng.random() < loss
        rtt = None if lost else int(median_ms * 1e6 * rng.lognormvariate(0, spread))
        extra: dict[str, Any] = {}
        if one_way:
            extra = dict(clock_error_ns=clock_error_ns, src_synced=synced, dst_synced=synced)
            if rtt is not None:
                extra.update(fwd_ns=rtt // 2, bwd_ns=rtt - rtt // 2)
        yield stream.result(i, start_ns + i * gap, rtt, **extra)


def results(src: str, src_carrier: str, dst: str, dst_carrier: str, *,
            method: Method = Method.ICMP, type_p: TypeP = ICMP_V4,
            **kw: object) -> Iterator[Result]:
    """:func:`lognormal` of the stream ``src/src_carrier>dst/dst_carrier``."""
    return lognormal(Stream(src, src_carrier, dst, dst_carrier, method, type_p),
                     **kw)  # type: ignore[arg-type]


class Hour(NamedTuple):
    """One path's hour: mean RTT (ms) and every n-th packet lost (0: none)."""

    ms: float
    lose_every: int = 0


# path "site/carrier>site/carrier" -> local date -> local hour -> Hour
HourPlan = Mapping[str, Mapping[date, Mapping[int, Hour]]]


def hours(stream: Stream, start: datetime, hour: Hour, *, per_minute: int, jitter_ns: int,
          cycle: int, seq0: int = 0) -> Iterator[Result]:
    """An hour of ``per_minute`` probes a minute from ``start``: RTT ``hour.ms`` plus
    ``(i % cycle) * jitter_ns``, which averages out over ``cycle`` packets; every
    ``hour.lose_every``-th packet (from the first) lost."""
    t0, gap = int(start.timestamp()) * 10**9, MIN_NS // per_minute
    for i in range(60 * per_minute):
        lost = hour.lose_every > 0 and i % hour.lose_every == 0
        yield stream.result(seq0 + i, t0 + i * gap,
                            None if lost else int(hour.ms * 1e6) + (i % cycle) * jitter_ns)


def hour_batches(plan: HourPlan, tz: tzinfo, label: str, *, per_minute: int = 4,
                 jitter_ns: int = 1000, cycle: int = 7) -> list[Batch]:
    """One batch per path and local day of ``plan`` (:func:`hours` of each of its hours, in
    the time zone ``tz``), ids ``synthetic-<label>-<path>-<day>``."""
    out = []
    for path, days in sorted(plan.items()):
        stream = Stream.of(path)
        for day, hrs in sorted(days.items()):
            rs: list[Result] = []
            for h, hour in sorted(hrs.items()):
                start = datetime(day.year, day.month, day.day, h, tzinfo=tz)
                rs.extend(hours(stream, start, hour, per_minute=per_minute, jitter_ns=jitter_ns,
                                cycle=cycle, seq0=len(rs)))
            out.append(batch(rs, f"{label}-{path}-{day}"))
    return out


def write_hours(db: str | Path, plan: HourPlan, tz: tzinfo, label: str, **kw: int) -> int:
    """:func:`hour_batches` written into the store ``db`` (a SQLite file or a PostgreSQL URL)
    in one transaction; the records written."""
    from analyzer.store import open_store

    store = open_store(db)
    try:
        return write(store, hour_batches(plan, tz, label, **kw))
    finally:
        store.close()


def batch(results: Iterable[Result], label: str) -> Batch:
    """The records as one batch of their (first) probe, id ``synthetic-<label>``."""
    rs = tuple(results)
    return Batch(rs[0].probe_id, SYNTHETIC_PREFIX + label, rs)


def write(store: Store, batches: list[Batch], received_at_ns: int = 0) -> int:
    """Write the batches in one transaction (all or none); the records written."""
    store.write_batches(batches, received_at_ns)
    return sum(len(b.results) for b in batches)
