"""ICMP echo as result records: the scheduler's prober over shared-socket pingers.

One :class:`~probes.icmp.pinger.Pinger` per (address family, DSCP, source address) for the whole
probe process, bound to the inventory's source address;
each probe ends as one :class:`~ixmeter.core.record.Result`, as its echo session decided
(:mod:`probes.icmp.session`): RECEIVED with the round-trip delay (RFC 2681 §2.4) and duplicate
count (RFC 7679 §3.4), LOST with no delay at its Tmax (RFC 7680 §2.4), or ERROR with its
:class:`~ixmeter.core.record.ErrorKind` (send error, malformed reply, clock step RFC 2681 §2.5, a
negative round trip as a clock fault). Type-P is ICMP with the ICMP message size (RFC 2330 §13).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import trio

from ixmeter.core.record import ErrorKind, Result, Status, TimestampSource
from probes.clock import Clock
from probes.icmp.pinger import Pinger
from probes.icmp.session import Outcome
from probes.scheduler import Job


def to_result(outcome: Outcome, job: Job, seq: int) -> Result:
    """Pure mapping of a pinger outcome to the record."""
    return job.result(seq, outcome.sent_at_ns, outcome.status, outcome.ts_source,
                      rtt_ns=outcome.rtt_ns, dup=outcome.dup, reply_ttl=outcome.reply_ttl,
                      error=outcome.error, error_detail=outcome.error_detail)


def family_of(address: str) -> int:
    """``AF_INET6`` for an IPv6 literal, else ``AF_INET``."""
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


class IcmpProber:
    """Starts echo probes for the scheduler; runs the pingers' loops in its own nursery."""

    def __init__(self, emit: Callable[[Result], None], *, mode: str = "auto",
                 clock: Clock | None = None, rcvbuf: int = 4 << 20) -> None:
        self.emit = emit
        self.mode, self.clock, self.rcvbuf = mode, clock, rcvbuf
        self.pingers: dict[tuple[int, int, str], Pinger] = {}
        self._nursery: trio.Nursery | None = None
        self._families: dict[str, int] = {}
        self.local: Counter[str] = Counter()

    async def run(self, needed: Iterable[tuple[int, int, str]] = (), *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host the pingers' receive and Tmax loops until cancelled.

        The ``needed`` (family, DSCP, source) sockets are opened before reporting started, so a
        missing privilege or address fails at start (:class:`PermissionProblem`) rather than at
        the first probe.
        """
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for family, dscp, src in needed:
                    self.pinger(family, dscp, src)
                task_status.started()
                await trio.sleep_forever()
        finally:
            for pinger in self.pingers.values():
                pinger.finalise_all()
                pinger.close()

    def pinger(self, family: int, dscp: int = 0, src: str = "") -> Pinger:
        """The shared pinger of a family, DSCP and source address, opened on first use."""
        key = (family, dscp, src)
        found = self.pingers.get(key)
        if found is not None:
            return found
        if self._nursery is None:
            raise RuntimeError("IcmpProber.run() is not running")
        pinger = Pinger(family, self._on_outcome, mode=self.mode, clock=self.clock,
                        rcvbuf=self.rcvbuf, dscp=dscp, src=src)
        self._nursery.start_soon(pinger.receive_loop)
        self._nursery.start_soon(pinger.expiry_loop)
        self.pingers[key] = pinger
        return pinger

    def start(self, job: Job, seq: int) -> None:
        family = self._families.get(job.dst_addr)
        if family is None:
            family = self._families[job.dst_addr] = family_of(job.dst_addr)
        try:
            pinger = self.pinger(family, job.type_p.dscp, job.src_addr)
        except OSError as exc:  # e.g. no IPv6 on this host: every probe is a send error
            self.local["send_error"] += 1
            self.emit(job.result(seq, time.time_ns(), Status.ERROR, TimestampSource.USER,
                                 error=ErrorKind.SEND_ERROR, error_detail=str(exc)))
            return
        pinger.send(job.dst_addr, job.type_p.size, job.tmax_ns, ctx=(job, seq))

    def flow_ident(self, job: Job) -> int:
        """The ICMP identifier of the echoes to ``job``'s destination (same family, DSCP and
        source): a trace of that flow uses it (``probes.methods.traceroute``)."""
        return self.pinger(family_of(job.dst_addr), job.type_p.dscp, job.src_addr).flow_ident

    def _on_outcome(self, outcome: Outcome) -> None:
        ctx: Any = outcome.ctx
        job, seq = ctx
        self.emit(to_result(outcome, job, seq))

    def in_flight(self) -> int:
        return sum(p.in_flight() for p in self.pingers.values())

    async def drain(self) -> None:
        for pinger in list(self.pingers.values()):
            await pinger.drain()

    def foreign(self) -> Counter[int]:
        """ICMP errors about other protocols' packets, by IP protocol number."""
        total: Counter[int] = Counter()
        for pinger in self.pingers.values():
            total.update(pinger.statistics().foreign)
        return total

    def local_drops(self) -> Counter[str]:
        """Local drops and oddities by cause (late, duplicate, send_error, stray ...)."""
        total: Counter[str] = Counter(self.local)
        for pinger in self.pingers.values():
            total.update(pinger.statistics().local_drops())
        return total
