"""STAMP measurements as result records (RFC 8762 session-sender; ixmeter.core.record.Result).

Entry point for a scheduler::

    async with open_stamp_probe(target) as probe:   # one socket, one STAMP session
        result = await probe.measure()               # one packet -> one Result

``measure`` may be called concurrently (each waits up to ``target.tmax_ns`` for its own reply);
the scheduler decides the send times (RFC 2330 §11.1.3). :func:`to_result` is the pure mapping
from a session outcome to a record, used by tests and importers alike.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from ixmeter.core.record import ErrorKind, Method, Result, Status, TimestampSource, TypeP
from ixmeter.core.rules import CLOCK_ERROR_MAX_NS, detail_text
from probes.clock import Clock, ClockStatus, SystemClock, sync_status
from probes.stamp.codec import (
    AUTH_SIZE,
    ClassOfService,
    TimestampInfo,
    Tlv,
    base_size,
    encode_tlvs,
)
from probes.stamp.net import STAMP_PORT, SenderEndpoint, family_of, open_udp
from probes.stamp.session import Lost, Reply, SenderStatistics, SessionSender
from probes.stamp.tlvs import signed_room


@dataclass(frozen=True, slots=True)
class StampTarget:
    """One directed STAMP path: who measures, towards which reflector, with which Type-P.

    ``size`` is the UDP payload (>= 44, or 112 with ``key``), ``tmax_ns`` the loss threshold
    (RFC 7680 §2.4; store raw with a long Tmax, RFC 6703 §4.1.2). ``src_addr`` is bound
    ("" picks the wildcard of ``dst_addr``'s family).
    """

    probe_id: str
    src_site: str
    src_carrier: str
    dst_site: str
    dst_carrier: str
    dst_addr: str
    src_addr: str = ""
    port: int = STAMP_PORT
    size: int = 44
    dscp: int = 0
    ssid: int = 1
    key: bytes | None = None
    tmax_ns: int = 2_000_000_000
    session: str = ""

    def type_p(self) -> TypeP:
        """UDP, the payload size, DSCP and destination port (RFC 7679 §3.8.1)."""
        version = 6 if family_of(self.dst_addr) == socket.AF_INET6 else 4
        return TypeP("udp", version, self.size, self.dscp, self.port)


def to_result(target: StampTarget, outcome: Reply | Lost | str, seq: int,
              sent_at_ns: int, rx_kernel: bool) -> Result:
    """One STAMP outcome as a record (RFC 7679 §3.4, RFC 7680 §2.4, RFC 2681 §2.5).

    - a clock step during the exchange: ERROR/CLOCK_STEP, no delays;
    - a network RTT below 0 or above T4-T1: ERROR/CLOCK_FAULT (T3 before T2 or T4 before T1);
    - a one-way delay that cannot be physical, <= 0 (RFC 7679 §3.5) or above the exchange's own
      round trip T4-T1: RECEIVED with ``rtt_ns`` (clock-free) kept, that one-way delay None and
      ``error=CLOCK_FAULT`` naming it; so is a clock error estimate over a day (RFC 7679
      §3.7.3), then with both one-way delays and ``clock_error_ns`` None;
    - :class:`Lost`: LOST; a string: ERROR/SEND_ERROR (the packet never left).
    """
    if isinstance(outcome, str):
        return _make(target, seq, sent_at_ns, status=Status.ERROR,
                     ts_source=TimestampSource.USER, error=ErrorKind.SEND_ERROR,
                     error_detail=detail_text(outcome))
    if isinstance(outcome, Lost):
        return _make(target, seq, sent_at_ns, status=Status.LOST, ts_source=TimestampSource.USER)
    source = TimestampSource.KERNEL if rx_kernel and outcome.t1_kernel else TimestampSource.USER
    if outcome.stepped:
        return _make(target, seq, sent_at_ns, status=Status.ERROR, ts_source=source,
                     error=ErrorKind.CLOCK_STEP,
                     error_detail="wall clock stepped during the exchange (RFC 2681 §2.5)")
    if not 0 <= outcome.rtt_net_ns <= outcome.t4_ns - outcome.t1_ns:
        return _make(target, seq, sent_at_ns, status=Status.ERROR, ts_source=source,
                     error=ErrorKind.CLOCK_FAULT, error_detail=outcome.fault)
    return _make(target, seq, sent_at_ns, status=Status.RECEIVED, ts_source=source,
                 rtt_ns=outcome.rtt_net_ns, fwd_ns=outcome.fwd_ns, bwd_ns=outcome.bwd_ns,
                 clock_error_ns=(outcome.clock_error_ns
                                 if outcome.clock_error_ns <= CLOCK_ERROR_MAX_NS else None),
                 src_synced=outcome.src_synced,
                 dst_synced=outcome.dst_synced, reply_ttl=outcome.reply_ttl,
                 error=ErrorKind.CLOCK_FAULT if outcome.fault else None,
                 error_detail=outcome.fault)


def _make(t: StampTarget, seq: int, sent_at_ns: int, **fields: Any) -> Result:
    return Result(probe_id=t.probe_id, method=Method.STAMP, src_site=t.src_site,
                  src_carrier=t.src_carrier, dst_site=t.dst_site, dst_carrier=t.dst_carrier,
                  src_addr=t.src_addr or "*", dst_addr=t.dst_addr, type_p=t.type_p(), seq=seq,
                  sent_at_ns=sent_at_ns, tmax_ns=t.tmax_ns, session=t.session, **fields)


class StampProbe:
    """An open STAMP session to one reflector; :meth:`measure` sends one packet."""

    def __init__(self, target: StampTarget, endpoint: SenderEndpoint) -> None:
        self.target, self.endpoint = target, endpoint

    async def measure(self) -> Result:
        """Send one test packet and return its record once answered, lost or failed."""
        seq_hint = self.endpoint.session.next_seq
        sent_at = self.endpoint.clock.wall_ns()
        outcome = await self.endpoint.probe()
        if isinstance(outcome, Reply | Lost):
            seq_hint, sent_at = outcome.seq, outcome.sent_wall_ns
        return to_result(self.target, outcome, seq_hint, sent_at, self.endpoint.info.rx_kernel)

    def statistics(self) -> SenderStatistics:
        """Session counters: duplicates, late, malformed and unmatched replies, send errors."""
        return self.endpoint.session.statistics()


def _session_tlvs(target: StampTarget) -> tuple[Tlv, ...]:
    """What the packet has room for, in this order: the reflector's sync source (RFC 8972
    §4.3), then, for a DSCP other than 0, the Class of Service TLV asking the reply to carry
    the same DSCP (§4.4); in authenticated mode only with room left for the HMAC TLV (§4.8).
    Without them the reflector copies the test packet's DSCP (``probes.stamp.tlvs``)."""
    room = signed_room(target.size - base_size(target.key is not None), target.key)
    if target.key is not None and room == target.size - AUTH_SIZE:
        return ()  # no room for the HMAC TLV: no TLVs, none unprotected
    wanted = [TimestampInfo().to_tlv()]
    if target.dscp:
        wanted.append(ClassOfService(dscp1=target.dscp).to_tlv())
    out: list[Tlv] = []
    for tlv in wanted:
        if len(encode_tlvs([*out, tlv])) <= room:
            out.append(tlv)
    return tuple(out)


@asynccontextmanager
async def open_stamp_probe(target: StampTarget, *, clock: Clock | None = None,
                           status: Callable[[], ClockStatus] = sync_status,
                           ) -> AsyncIterator[StampProbe]:
    """Open the UDP socket (kernel RX/TX stamps), start the reply reader, yield a probe."""
    family = family_of(target.dst_addr)
    bind = target.src_addr or ("::" if family == socket.AF_INET6 else "0.0.0.0")
    sock, info = open_udp(bind, 0, tx_stamps=True, dscp=target.dscp)
    try:
        sock.connect((target.dst_addr, target.port))
        session = SessionSender(ssid=target.ssid, key=target.key, size=target.size,
                                tmax_ns=target.tmax_ns, tlvs=_session_tlvs(target))
        endpoint = SenderEndpoint(sock, info, session, clock or SystemClock(), status)
        async with trio.open_nursery() as nursery:
            await nursery.start(endpoint.run)
            yield StampProbe(target, endpoint)
            nursery.cancel_scope.cancel()
    finally:
        sock.close()


async def run_session(target: StampTarget, count: int, interval_s: float, *,
                      clock: Clock | None = None,
                      status: Callable[[], ClockStatus] = sync_status) -> list[Result]:
    """Send ``count`` packets periodically at absolute times (RFC 2330 §11.1.3; RFC 3432).

    A convenience for the CLI, tests and benchmarks; the scheduler uses :func:`open_stamp_probe`.
    """
    results: list[Result] = []

    async def one(probe: StampProbe) -> None:
        results.append(await probe.measure())

    async with open_stamp_probe(target, clock=clock, status=status) as probe:
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for i in range(count):
                await trio.sleep_until(start + i * interval_s)
                nursery.start_soon(one, probe)
    return sorted(results, key=lambda r: r.seq)
