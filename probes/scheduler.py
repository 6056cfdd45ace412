"""The probe scheduler: one trio nursery, one task serving every path from a heap of absolute
send times.

Send times follow RFC 2330 §11.1: Poisson gaps ``E_i = -ln(U_i)/lambda`` (§11.1.1) added to the
previous *planned* time, so the schedule never drifts by the time spent sending (the "Method 1"
error of §11.1.3); or periodic with a random start in [0, 1/lambda) (RFC 3432 §3, RFC 6703 §8.1).
The planned time only paces; each result's send time is the kernel's or the actual one.

Local drops (queue full here; send error, late and duplicate replies in the methods) are counted
apart from network loss and exposed as a frozen :class:`Statistics` (STYLE.md §6). trio's clock
drives the schedule, so tests run it on ``trio.testing.MockClock(autojump_threshold=0)``.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from ixmeter.core.record import ErrorKind, Method, Result, Status, TimestampSource, TypeP
from ixmeter.core.rules import detail_text
from probes.clock import Clock, SystemClock
from probes.metrics import LAG_BUCKETS_S, Histogram

LATE_SCHEDULE_S = 0.010  # a send more than 10 ms behind plan is counted (our policy)
BATCH = 256


@dataclass(frozen=True, slots=True)
class Job:
    """One directed path measured by one spec: everything needed to send and label a probe."""

    spec_id: str
    method: Method
    probe_id: str
    src_site: str
    src_carrier: str
    dst_site: str
    dst_carrier: str
    src_addr: str
    dst_addr: str
    type_p: TypeP
    rate_pps: float
    tmax_ns: int
    schedule: str = "poisson"
    session: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        port = f":{self.type_p.dst_port}" if self.type_p.dst_port is not None else ""
        return f"{self.method}:{self.spec_id}:{self.dst_addr}{port}"

    def result(self, seq: int, sent_at_ns: int, status: Status, ts_source: TimestampSource,
               **kw: Any) -> Result:
        """A :class:`Result` for probe ``seq`` of this job (RFC 2330 §11 singleton). An error
        detail (the probe's own text, e.g. an exception's) is made a valid one
        (:func:`ixmeter.core.rules.detail_text`), so no message can make the record invalid."""
        if kw.get("error_detail") is not None:
            kw["error_detail"] = detail_text(kw["error_detail"])
        return Result(self.probe_id, self.method, self.src_site, self.src_carrier,
                      self.dst_site, self.dst_carrier, self.src_addr, self.dst_addr,
                      self.type_p, seq, sent_at_ns, status, self.tmax_ns, ts_source,
                      session=self.session, **kw)


class Prober(Protocol):
    """A measurement method as the scheduler sees it: start a probe now, never block."""

    def start(self, job: Job, seq: int) -> None: ...

    def in_flight(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Statistics:
    """Scheduler counters: probes planned and started, local drops by cause, lateness."""

    planned: int
    started: int
    local_drops: Mapping[str, int]
    late_schedule: int
    max_lag_ns: int


def poisson_gaps(rate: float, rng: random.Random) -> Iterator[float]:
    """Exponential gaps ``-ln(U)/rate``, U uniform in (0, 1] (RFC 2330 §11.1.1)."""
    while True:
        yield -math.log(1.0 - rng.random()) / rate


def periodic_gaps(rate: float, rng: random.Random) -> Iterator[float]:
    """A random first offset in [0, 1/rate), then 1/rate (RFC 3432 §3)."""
    yield rng.random() / rate
    while True:
        yield 1.0 / rate


def send_times(start: float, rate: float, schedule: str, rng: random.Random) -> Iterator[float]:
    """Absolute planned send times from ``start`` (RFC 2330 §11.1.3: sums of gaps)."""
    gaps = poisson_gaps(rate, rng) if schedule == "poisson" else periodic_gaps(rate, rng)
    t = start
    for gap in gaps:
        t += gap
        yield t


class Scheduler:
    """Runs every job on its own absolute schedule; at most ``max_in_flight`` probes in flight
    per method (``limits`` overrides it per method, e.g. a few queued traceroutes).
    :meth:`update` replaces the job list while running: unchanged jobs keep their schedule and
    sequence numbers, new or changed ones start a schedule of their own from now, removed ones
    stop."""

    def __init__(self, jobs: Sequence[Job], probers: Mapping[Method, Prober],
                 emit: Callable[[Result], None], *, max_in_flight: int = 20_000,
                 limits: Mapping[Method, int] | None = None,
                 rng: random.Random | None = None, clock: Clock | None = None) -> None:
        self.jobs = list(jobs)
        self.probers = probers
        self.emit = emit
        self.max_in_flight = max_in_flight
        self.limits = dict(limits or {})
        self.rng = rng or random.Random()
        self.clock: Clock = clock or SystemClock()
        self.drops: Counter[str] = Counter()
        self.lag = Histogram(LAG_BUCKETS_S)  # seconds behind plan at each start
        self._planned = self._started = self._late = self._max_lag = 0
        self._heap: list[tuple[float, int, Job, Iterator[float]]] = []
        self._active: dict[str, Job] = {}
        self._seq: Counter[str] = Counter()  # next sequence number per job key
        self._pushed = 0
        self._wake: trio.CancelScope | None = None

    async def run(self, stop: trio.Event | None = None) -> None:
        """Run until ``stop`` is set (or forever); returns with no probe task left.

        One task serves every job from a heap of next send times: each wake-up starts every
        probe that is due, so the cost per probe is a heap operation, not a task switch.
        """
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._loop)
            if stop is not None:
                await stop.wait()
                nursery.cancel_scope.cancel()

    def update(self, jobs: Sequence[Job]) -> None:
        """Replace the job list (see the class docstring); effective at once."""
        self.jobs = list(jobs)
        if self._wake is not None:
            self._plan(trio.current_time())

    def _plan(self, start: float) -> None:
        wanted = {job.key: job for job in self.jobs}
        for key in [k for k, job in self._active.items() if wanted.get(k) != job]:
            del self._active[key]  # its heap entries are dropped when they come up
        for key, job in wanted.items():
            if key not in self._active:
                self._active[key] = job
                rng = random.Random(self.rng.getrandbits(64))
                times = send_times(start, job.rate_pps, job.schedule, rng)
                self._push(next(times), job, times)

    def _push(self, at: float, job: Job, times: Iterator[float]) -> None:
        self._pushed += 1
        heapq.heappush(self._heap, (at, self._pushed, job, times))
        if self._wake is not None and at < self._wake.deadline:
            self._wake.deadline = at

    async def _loop(self) -> None:
        heap = self._heap
        self._wake = trio.CancelScope()
        self._plan(trio.current_time())
        while True:
            with trio.CancelScope(deadline=heap[0][0] if heap else math.inf) as self._wake:
                await trio.sleep_forever()
            now = trio.current_time()
            started = 0
            while heap and heap[0][0] <= now:
                planned, _n, job, times = heapq.heappop(heap)
                if self._active.get(job.key) is not job:
                    continue  # removed or replaced by update()
                seq = self._seq[job.key]
                self._seq[job.key] += 1
                self._start(job, seq, now - planned)
                self._push(next(times), job, times)
                started += 1
                if started % BATCH == 0:  # let replies be read during a long burst
                    await trio.lowlevel.checkpoint()

    def _start(self, job: Job, seq: int, lag_s: float) -> None:
        prober = self.probers[job.method]
        self._planned += 1
        self._note_lag(lag_s)
        if prober.in_flight() >= self.limits.get(job.method, self.max_in_flight):
            self._drop(job, seq, "queue_full")
            return
        self._started += 1
        prober.start(job, seq)

    def _note_lag(self, lag_s: float) -> None:
        self.lag.observe(max(0.0, lag_s))
        lag_ns = int(lag_s * 1e9)
        self._max_lag = max(self._max_lag, lag_ns)
        if lag_s > LATE_SCHEDULE_S:
            self._late += 1

    def _drop(self, job: Job, seq: int, cause: str) -> None:
        self.drops[cause] += 1
        self.emit(job.result(seq, self.clock.wall_ns(), Status.ERROR, TimestampSource.USER,
                             error=ErrorKind.LOCAL_DROP, error_detail=cause))

    def statistics(self) -> Statistics:
        """A frozen snapshot of the counters (local drops apart from network loss)."""
        return Statistics(self._planned, self._started, dict(self.drops), self._late,
                          self._max_lag)
