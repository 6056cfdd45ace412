"""STAMP for the scheduler: one session (one UDP socket) per job, opened and retired as the
job list changes (``probes.methods.stamp`` does the measuring)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import trio

from ixmeter.core.record import Result
from probes.clock import Clock
from probes.methods.stamp import StampProbe, StampTarget, open_stamp_probe
from probes.metrics import StampPath
from probes.scheduler import Job

RETIRE_GRACE_S = 1.0  # after its Tmax, a retired session's socket closes


def target_of(job: Job) -> StampTarget:
    """The STAMP session of a job: its ends, source address, Type-P, Tmax and key."""
    return StampTarget(job.probe_id, job.src_site, job.src_carrier, job.dst_site,
                       job.dst_carrier, job.dst_addr, src_addr=job.src_addr,
                       port=job.type_p.dst_port or 862, size=job.type_p.size,
                       dscp=job.type_p.dscp, tmax_ns=job.tmax_ns, session=job.session,
                       key=job.options.get("stamp_key"))


class StampProber:
    """Sessions by job key; :meth:`update` opens the new ones, then :meth:`retire` closes the
    ones no longer wanted once their probes in flight reached Tmax."""

    def __init__(self, emit: Callable[[Result], None], jobs: Sequence[Job],
                 clock: Clock | None = None) -> None:
        self.emit, self.jobs, self.clock = emit, list(jobs), clock
        self.probes: dict[str, StampProbe] = {}
        self._job_of: dict[str, Job] = {}
        self._scopes: dict[str, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None
        self._in_flight = 0
        self._idle = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self.update(self.jobs)
            task_status.started()
            await trio.sleep_forever()

    async def update(self, jobs: Sequence[Job]) -> None:
        """Open a session for every job that has none (or whose job changed)."""
        if self._nursery is None:
            raise RuntimeError("StampProber.run() is not running")
        self.jobs = list(jobs)
        for job in self.jobs:
            if self._job_of.get(job.key) != job:
                self._retire(job.key)
                scope = trio.CancelScope()
                self.probes[job.key] = await self._nursery.start(self._hold, target_of(job),
                                                                 scope)
                self._job_of[job.key], self._scopes[job.key] = job, scope

    def retire(self) -> None:
        """Close the sessions of jobs no longer in the list (after their Tmax)."""
        wanted = {job.key for job in self.jobs}
        for key in [k for k in self._job_of if k not in wanted]:
            self._retire(key)

    def _retire(self, key: str) -> None:
        job, scope = self._job_of.pop(key, None), self._scopes.pop(key, None)
        self.probes.pop(key, None)
        if job is not None and scope is not None and self._nursery is not None:
            self._nursery.start_soon(self._close_after, scope, job.tmax_ns / 1e9)

    @staticmethod
    async def _close_after(scope: trio.CancelScope, seconds: float) -> None:
        await trio.sleep(seconds + RETIRE_GRACE_S)
        scope.cancel()

    async def _hold(self, target: StampTarget, scope: trio.CancelScope, *,
                    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            async with open_stamp_probe(target, clock=self.clock) as probe:
                task_status.started(probe)
                await trio.sleep_forever()

    def in_flight(self) -> int:
        return self._in_flight

    def paths(self) -> list[StampPath]:
        """Each session's loss split, reordering, duplicates and ICMP errors, by path."""
        out = []
        for job in self.jobs:
            probe = self.probes.get(job.key)
            if probe is not None:
                st = probe.statistics()
                out.append(StampPath(job.dst_site, job.dst_addr, st.forward_lost,
                                     st.backward_lost, st.reordered, st.duplicates,
                                     probe.endpoint.unreachable))
        return out

    def start(self, job: Job, seq: int) -> None:
        if self._nursery is None:
            raise RuntimeError("StampProber.run() is not running")
        self._in_flight += 1
        self._nursery.start_soon(self._measure, self.probes[job.key])

    async def _measure(self, probe: StampProbe) -> None:
        try:
            result = await probe.measure()
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
        self.emit(result)

    async def drain(self) -> None:
        while self._in_flight:
            self._idle = trio.Event()
            await self._idle.wait()
