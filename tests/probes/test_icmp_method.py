"""ICMP method under the real scheduler on loopback: one record per probe sent."""

from __future__ import annotations

import random

import pytest
import trio

from ixmeter.core.record import ErrorKind, Method, Result, Status, TimestampSource, TypeP
from probes.icmp.session import Outcome
from probes.methods.icmp import IcmpProber, to_result
from probes.scheduler import Job, Scheduler


def _job(dst: str, rate: float = 40.0) -> Job:
    v = 6 if ":" in dst else 4
    return Job("icmp-mesh", Method.ICMP, "p1", "s1", "CT", "s2", "CM", "::" if v == 6 else
               "0.0.0.0", dst, TypeP("icmp", v, 64), rate, 2_000_000_000, "poisson", "sess1")


def test_to_result_lost_has_no_delay() -> None:
    job = _job("127.0.0.1")
    sent = 1_790_000_000_000_000_000  # a plausible wall-clock send time (2026)
    out = Outcome("127.0.0.1", 5, Status.LOST, sent, job.tmax_ns, TimestampSource.KERNEL)
    r = to_result(out, job, 3)
    assert (r.status, r.rtt_ns, r.seq, r.session, r.method) == (
        Status.LOST, None, 3, "sess1", Method.ICMP)


def test_to_result_clock_fault_is_an_error_record_with_no_delay() -> None:
    """A negative round trip (the session's ``clock_fault``) is stored as such: no RTT of 0,
    no loss (RFC 2681 §2.4; RFC 7680 §2.5: an error is not a sample)."""
    job = _job("127.0.0.1")
    out = Outcome("127.0.0.1", 5, Status.ERROR, 1_790_000_000_000_000_000, job.tmax_ns,
                  TimestampSource.KERNEL, error=ErrorKind.CLOCK_FAULT,
                  error_detail="round trip -20000 ns < 0: the kernel RX stamp precedes the send "
                               "stamp")
    r = to_result(out, job, 4)
    assert (r.status, r.rtt_ns, r.error) == (Status.ERROR, None, ErrorKind.CLOCK_FAULT)


@pytest.mark.root
async def test_scheduler_with_icmp_on_loopback_v4_and_v6() -> None:
    got: list[Result] = []
    prober = IcmpProber(got.append)
    jobs = [_job("127.0.0.1"), _job("::1"), _job("127.0.0.2")]
    sched = Scheduler(jobs, {Method.ICMP: prober}, got.append, rng=random.Random(4))
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        await nursery.start(prober.run)
        nursery.start_soon(sched.run, stop)
        await trio.sleep(1.0)
        stop.set()
        await prober.drain()
        nursery.cancel_scope.cancel()
    stats = sched.statistics()
    assert len(got) == stats.started > 60  # every probe started is one record
    assert {r.status for r in got} == {Status.RECEIVED}
    assert {r.ts_source for r in got} == {TimestampSource.KERNEL}
    for dst in ("127.0.0.1", "::1", "127.0.0.2"):
        seqs = sorted(r.seq for r in got if r.dst_addr == dst)
        assert seqs == list(range(len(seqs)))
    assert sum(prober.local_drops().values()) == 0
