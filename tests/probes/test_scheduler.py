"""The scheduler on trio's MockClock: exact Poisson/periodic send times, no drift, drops."""

from __future__ import annotations

import dataclasses
import math
import random
import statistics

import pytest
import trio
import trio.testing

from ixmeter.core.record import ErrorKind, Method, Result, Status, TypeP
from probes.scheduler import Job, Scheduler, poisson_gaps, send_times


def job(rate: float = 10.0, schedule: str = "poisson", dst: str = "198.18.65.10") -> Job:
    return Job("icmp-mesh", Method.ICMP, "p1", "s1", "CT", "s2", "CM", "198.18.1.10", dst,
               TypeP("icmp", 4, 64), rate, 1_000_000_000, schedule)


class FakeProber:
    """Records when each probe started; optionally 'busy' (in flight) or slow to send."""

    def __init__(self, clock: trio.testing.MockClock | None = None, send_cost_s: float = 0.0,
                 busy: int = 0) -> None:
        self.starts: list[tuple[str, int, float]] = []
        self.clock, self.send_cost_s, self.busy = clock, send_cost_s, busy

    def start(self, j: Job, seq: int) -> None:
        self.starts.append((j.dst_addr, seq, trio.current_time()))
        if self.clock is not None and self.send_cost_s:
            self.clock.jump(self.send_cost_s)  # sending took this long

    def in_flight(self) -> int:
        return self.busy


async def _run_for(sched: Scheduler, seconds: float) -> None:
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sched.run, stop)
        await trio.sleep(seconds)
        stop.set()


async def test_poisson_times_are_exact_sums_of_gaps(autojump_clock: trio.testing.MockClock
                                                    ) -> None:
    prober = FakeProber()
    sched = Scheduler([job(5.0)], {Method.ICMP: prober}, lambda r: None, rng=random.Random(7))
    start = trio.current_time()
    await _run_for(sched, 20.0)
    expected_rng = random.Random(random.Random(7).getrandbits(64))
    expected = [t for _, t in zip(range(len(prober.starts)),
                                  send_times(start, 5.0, "poisson", expected_rng), strict=False)]
    assert [t for _, _, t in prober.starts] == pytest.approx(expected, abs=1e-9)
    assert [s for _, s, _ in prober.starts] == list(range(len(expected)))
    assert 60 <= len(expected) <= 140  # 5/s for 20 s


async def test_periodic_random_start_then_fixed_interval(
        autojump_clock: trio.testing.MockClock) -> None:
    prober = FakeProber()
    jobs = [job(2.0, "periodic", f"198.18.65.{i}") for i in range(5)]
    sched = Scheduler(jobs, {Method.ICMP: prober}, lambda r: None, rng=random.Random(3))
    start = trio.current_time()
    await _run_for(sched, 10.0)
    firsts = []
    for i in range(5):
        times = [t for dst, _, t in prober.starts if dst == f"198.18.65.{i}"]
        assert 0 <= times[0] - start < 0.5
        assert all(b - a == pytest.approx(0.5) for a, b in zip(times, times[1:], strict=False))
        firsts.append(times[0])
    assert len(set(firsts)) == 5  # each path draws its own start (RFC 3432 §3)


async def test_absolute_times_do_not_drift_when_sending_is_slow(
        autojump_clock: trio.testing.MockClock) -> None:
    prober = FakeProber(autojump_clock, send_cost_s=0.3)
    sched = Scheduler([job(1.0, "periodic")], {Method.ICMP: prober}, lambda r: None,
                      rng=random.Random(1))
    await _run_for(sched, 30.5)
    times = [t for _, _, t in prober.starts]
    assert len(times) >= 29  # sleep-after-send would manage only ~23 (RFC 2330 §11.1.3)
    assert times[-1] - times[0] == pytest.approx(len(times) - 1)


async def test_queue_full_is_a_local_drop_result(autojump_clock: trio.testing.MockClock) -> None:
    out: list[Result] = []
    prober = FakeProber(busy=10)
    sched = Scheduler([job(10.0)], {Method.ICMP: prober}, out.append, max_in_flight=10,
                      rng=random.Random(2))
    await _run_for(sched, 3.0)
    stats = sched.statistics()
    assert stats.started == 0
    assert stats.planned == len(out) == stats.local_drops["queue_full"] > 0
    assert {(r.status, r.error) for r in out} == {(Status.ERROR, ErrorKind.LOCAL_DROP)}
    assert [r.seq for r in out] == list(range(len(out)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.planned = 0  # type: ignore[misc]


def test_poisson_gaps_are_exponential() -> None:
    """Mean 1/lambda and coefficient of variation 1 (RFC 2330 §11.1.1)."""
    gaps = [g for g, _ in zip(poisson_gaps(4.0, random.Random(5)), range(20_000), strict=False)]
    assert statistics.fmean(gaps) == pytest.approx(0.25, rel=0.03)
    assert statistics.pstdev(gaps) / statistics.fmean(gaps) == pytest.approx(1.0, rel=0.03)
    assert min(gaps) > 0
    assert all(math.isfinite(g) for g in gaps)


async def test_per_method_limit(autojump_clock: trio.testing.MockClock) -> None:
    out: list[Result] = []
    busy, free = FakeProber(busy=3), FakeProber()
    trace = dataclasses.replace(job(10.0), method=Method.TRACEROUTE)
    sched = Scheduler([job(10.0), trace], {Method.ICMP: free, Method.TRACEROUTE: busy},
                      out.append, limits={Method.TRACEROUTE: 3}, rng=random.Random(2))
    await _run_for(sched, 2.0)
    assert busy.starts == []
    assert free.starts
    assert {r.method for r in out} == {Method.TRACEROUTE}


async def test_update_applies_a_new_job_list_without_restart(
        autojump_clock: trio.testing.MockClock) -> None:
    """Jobs added start, removed ones stop, unchanged ones keep their schedule and sequence
    numbers, changed ones (another rate) go on with their numbers on the new schedule."""
    prober = FakeProber()
    kept, gone = job(10.0, "periodic", "198.18.65.10"), job(10.0, "periodic", "198.18.66.10")
    sched = Scheduler([kept, gone], {Method.ICMP: prober}, lambda r: None,
                      rng=random.Random(3))
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sched.run, stop)
        await trio.sleep(1.0)
        changed_at = trio.current_time()
        sched.update([dataclasses.replace(kept), job(10.0, "periodic", "198.18.67.10"),
                      ])
        await trio.sleep(1.0)
        sched.update([dataclasses.replace(kept, rate_pps=50.0)])
        await trio.sleep(1.0)
        stop.set()
    by_dst: dict[str, list[tuple[int, float]]] = {}
    for dst, seq, at in prober.starts:
        by_dst.setdefault(dst, []).append((seq, at))
    assert max(at for _s, at in by_dst["198.18.66.10"]) <= changed_at
    assert min(at for _s, at in by_dst["198.18.67.10"]) >= changed_at
    assert max(at for _s, at in by_dst["198.18.67.10"]) <= changed_at + 1.0 + 1e-9
    seqs = [s for s, _at in by_dst["198.18.65.10"]]
    assert seqs == list(range(len(seqs)))  # never reused, never skipped
    assert 60 <= len(seqs) <= 75  # 10/s for 2 s, then 50/s for 1 s
