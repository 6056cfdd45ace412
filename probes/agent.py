"""The probe agent: scheduler + methods + spool + uploader + /metrics, until told to stop.

Every result goes to an in-memory buffer that is written to the spool every
``FLUSH_S`` (one SQLite transaction per flush), then uploaded by the uploader. On stop
(Ctrl-C, SIGTERM) the scheduler stops sending, probes in flight run to their Tmax, the buffer is
flushed and one last upload is tried: nothing measured is dropped on a clean stop, and nothing
committed to the spool is lost on ``kill -9``.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
import trio

from ixmeter.core.errors import IxmeterError
from ixmeter.core.record import Method, Result
from probes.clock import Clock, SystemClock, sync_status
from probes.clock_sources import ClockMonitor
from probes.config import ProbeConfig
from probes.jobsource import JobSource
from probes.methods.icmp import IcmpProber, family_of
from probes.methods.stamp_prober import StampProber
from probes.methods.traceroute import TracerouteProber
from probes.metrics import AgentState, ProbeMetrics, heartbeat_counters, render, serve_metrics
from probes.scheduler import Job, Prober, Scheduler
from probes.spool import Spool, SpoolLimits, SpoolStatus
from probes.uploader import Uploader

FLUSH_S = 0.2
ENFORCE_S = 5.0  # the spool's limits are checked this often
HELD_MAX = 20_000  # results held in memory while the disk is full; the oldest go beyond
FINAL_UPLOAD_S = 10.0
TRACE_GRACE_S = 5.0
log = logging.getLogger("ixmeter.probe")


class Agent:
    """One probe process; :meth:`run` returns after a clean drain once ``stop`` is set."""

    def __init__(self, cfg: ProbeConfig, *, clock: Clock | None = None,
                 rng: random.Random | None = None, config_path: Path | None = None) -> None:
        self.cfg = cfg
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.session = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"
        self.source = JobSource(cfg, self.session, config_path)
        self.jobs = self.source.initial()
        self.metrics = ProbeMetrics()
        self.buffer: list[Result] = []
        self.spool = Spool(cfg.spool, cfg.probe_id)
        self.limits = SpoolLimits(cfg.spool_max_bytes, cfg.spool_max_age_s)
        self.spool_errors = 0
        self.held: list[Result] = []  # not yet written: the disk was full
        self.disk_full_drops = 0  # not yet counted in the spool itself
        self._enforced_at = -ENFORCE_S
        self._status = SpoolStatus(0, {})
        self.limiter = trio.CapacityLimiter(1)
        self.uploader = Uploader(self.spool, cfg.collector_url, cfg.probe_id, self.source.key,
                                 batch_size=cfg.batch_size, limiter=self.limiter)
        self.icmp = IcmpProber(self.emit, mode=cfg.icmp_mode, clock=self.clock)
        self.trace = TracerouteProber(self.emit, self.source.topology,
                                      ident_of=self.icmp.flow_ident)
        self.stamp = StampProber(self.emit, self._stamp_jobs(self.jobs), self.clock)
        probers: dict[Method, Prober] = {Method.ICMP: self.icmp, Method.TRACEROUTE: self.trace,
                                         Method.STAMP: self.stamp}
        self.scheduler = Scheduler(self.jobs, probers, self.emit,
                                   max_in_flight=cfg.max_in_flight,
                                   limits={Method.TRACEROUTE: cfg.max_traces}, rng=self.rng,
                                   clock=self.clock)
        self.clock_monitor = ClockMonitor(cfg.clock_source, cfg.ptp_device)
        self.metrics_port: int | None = None
        self._spool_depth = 0  # as of the last flush
        self._set_aside: Mapping[str, tuple[int, int]] = {}  # idem
        self._reload = trio.Event()
        self.reloads = 0
        self.done = trio.Event()

    @staticmethod
    def _stamp_jobs(jobs: Sequence[Job]) -> list[Job]:
        return [j for j in jobs if j.method is Method.STAMP]

    def request_reload(self) -> None:
        """Read the config, keys and plan again now (SIGHUP)."""
        self._reload.set()

    async def reload(self, client: httpx.AsyncClient) -> bool:
        """Re-read config, keys and plan and apply what changed, without a restart; False
        (and logged, the jobs in use kept) when any of them is unusable."""
        try:
            jobs = await self.source.refresh(client)
        except IxmeterError as exc:
            log.error("reload: %s%s; keeping the %d jobs in use", exc,
                      f" ({exc.hint})" if exc.hint else "", len(self.jobs))
            return False
        self.uploader.key = self.source.key
        self.trace.topology = self.source.topology
        if jobs != self.jobs:
            await self._apply(jobs)
        self.reloads += 1
        log.info("reload: %d jobs", len(self.jobs))
        return True

    async def _apply(self, jobs: list[Job]) -> None:
        """New STAMP sessions first, then the schedule, then the old sessions retire."""
        self.jobs = jobs
        await self.stamp.update(self._stamp_jobs(jobs))
        self.scheduler.update(jobs)
        self.stamp.retire()

    async def _reloader(self, client: httpx.AsyncClient) -> None:
        """Reload on SIGHUP and every ``plan_refresh_s`` (every 10 s while the collector's
        plan has never been had)."""
        while True:
            waiting = self.source.cfg.source == "collector" and not self.source.issued_at
            with trio.move_on_after(10.0 if waiting else self.source.cfg.plan_refresh_s):
                await self._reload.wait()
            self._reload = trio.Event()
            await self.reload(client)

    def emit(self, result: Result) -> None:
        self.buffer.append(result)
        self.metrics.observe(result)

    def local_drops(self) -> Counter[str]:
        drops = Counter(self.scheduler.statistics().local_drops)
        drops.update(self.icmp.local_drops())
        return drops

    def spool_status(self) -> SpoolStatus:
        """The spool as of the last flush, with what is buffered or held in memory and the
        full-disk drops not yet written to it."""
        st = self._status
        dropped = dict(st.dropped)
        dropped["disk_full"] = dropped.get("disk_full", 0) + self.disk_full_drops
        return SpoolStatus(st.depth + len(self.buffer) + len(self.held), st.set_aside,
                           st.bytes, dropped)

    def metrics_text(self) -> str:
        return render(self.metrics, AgentState(
            self.spool_status(), self.local_drops(), self.uploader.errors,
            self.uploader.uploaded, self.trace.route_changes(), sync_status(),
            self.scheduler.lag, self.stamp.paths(), self.icmp.foreign()))

    async def flush(self) -> None:
        """Write the buffered results to the spool (one transaction, the group commit); on a
        full disk hold them in memory (at most :data:`HELD_MAX`, the oldest go first, counted
        ``disk_full``) and retry at the next flush; every :data:`ENFORCE_S` apply the spool's
        limits."""
        self.held += self.buffer
        self.buffer = []
        await trio.to_thread.run_sync(self._write_held, limiter=self.limiter)
        now = trio.current_time()
        if now - self._enforced_at >= ENFORCE_S:
            self._enforced_at = now
            await trio.to_thread.run_sync(self._enforce, limiter=self.limiter)
        self._status = await trio.to_thread.run_sync(self.spool.status, limiter=self.limiter)
        self._spool_depth, self._set_aside = self._status.depth, self._status.set_aside

    def _write_held(self) -> None:
        """Blocking: the held results into the spool, or keep holding them (disk full)."""
        try:
            if self.held:
                self.spool.add(self.held)
                self.held = []
            if self.disk_full_drops:
                self.spool.count_dropped("disk_full", self.disk_full_drops)
                self.disk_full_drops = 0
        except (sqlite3.Error, OSError) as exc:
            self.spool_errors += 1
            over = len(self.held) - HELD_MAX
            if over > 0:
                del self.held[:over]
                self.disk_full_drops += over
            log.warning("spool: cannot write %d results (%s); holding them in memory, %d "
                        "dropped so far", len(self.held), exc, self.disk_full_drops)

    def _enforce(self) -> None:
        try:
            dropped = self.spool.enforce(self.limits, time.time_ns())
        except (sqlite3.Error, OSError) as exc:
            log.warning("spool: cannot apply its limits now (%s)", exc)
            return
        for reason, n in dropped.items():
            if n:
                log.warning("spool: dropped the %d oldest unsent results (%s, limits %d bytes, "
                            "%g s)", n, reason, self.limits.max_bytes, self.limits.max_age_s)

    async def _flusher(self) -> None:
        while True:
            await trio.sleep(FLUSH_S)
            await self.flush()

    async def _heartbeat(self, client: httpx.AsyncClient) -> None:
        while True:
            counters = heartbeat_counters(self.metrics, self.local_drops())
            counters["route_changes"] = self.trace.route_changes()
            await self.uploader.heartbeat(client, counters, self.spool_status())
            await trio.sleep(self.cfg.heartbeat_s)

    async def run(self, stop: trio.Event, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Measure, spool and upload until ``stop``; then drain and return."""
        log.info("probe %s: %d jobs, session %s", self.cfg.probe_id, len(self.jobs),
                 self.session)
        try:
            async with httpx.AsyncClient(timeout=30) as client, trio.open_nursery() as nursery:
                await self._start_services(nursery, client)
                task_status.started()
                await self.scheduler.run(stop)
                await self._drain(client)
                nursery.cancel_scope.cancel()
        finally:
            # records emitted while tasks were cancelled (abandoned traces, echoes finalised
            # as lost): written synchronously, the event loop is shutting down
            self.held += self.buffer
            self.buffer = []
            self._write_held()
            self._spool_depth = self.spool.depth() + len(self.held)
            self.spool.close()
            self.done.set()

    async def _start_services(self, nursery: trio.Nursery, client: httpx.AsyncClient) -> None:
        needed = {(family_of(j.dst_addr), j.type_p.dscp, j.src_addr) for j in self.jobs
                  if j.method is Method.ICMP}
        await nursery.start(self.icmp.run, sorted(needed))
        self.trace.check([j for j in self.jobs if j.method is Method.TRACEROUTE])
        await nursery.start(self.trace.run)
        await nursery.start(self.stamp.run)
        await nursery.start(self.clock_monitor.run)
        if self.source.cfg.source == "collector":
            await self.reload(client)  # the plan now, or the cached one stays in use
        nursery.start_soon(self._reloader, client)
        nursery.start_soon(self._flusher)
        self.uploader.client = client
        nursery.start_soon(self.uploader.run)
        nursery.start_soon(self._heartbeat, client)
        if self.cfg.metrics_port:
            self.metrics_port = await nursery.start(
                serve_metrics, self.cfg.metrics_bind, self.cfg.metrics_port, self.metrics_text)

    async def _drain_echoes(self, limit_s: float) -> None:
        with trio.move_on_after(limit_s):
            await self.icmp.drain()
            await self.stamp.drain()

    async def _drain(self, client: httpx.AsyncClient) -> None:
        """Let probes in flight reach Tmax, spool everything, try one last upload."""
        tmax_s = max((j.tmax_ns for j in self.jobs), default=0) / 1e9
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._drain_echoes, tmax_s + 2.0)
            nursery.start_soon(self.trace.stop, TRACE_GRACE_S)
        await self.flush()
        with trio.move_on_after(FINAL_UPLOAD_S):
            await self.uploader.upload_pending(client)
        await self.flush()
