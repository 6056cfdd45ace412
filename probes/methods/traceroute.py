"""Paris traceroute (ICMP, UDP, TCP; IPv4 and IPv6) with scapy, and what a route says.

Paris traceroute (Augustin et al., "Avoiding traceroute anomalies with Paris traceroute", IMC
2006) keeps every field a load balancer hashes constant across the probes of one trace: the
5-tuple (fixed source and destination ports for UDP/TCP) and, for ICMP, the identifier, sequence
number and payload (hence the checksum). Probes are sent one TTL at a time, so each answer is
the one outstanding probe's (the IPv4 ID carries the TTL as a cross-check).

scapy (imported lazily, only ``scapy.layers.inet``/``inet6``, not ``scapy.all``) builds the
probes; they leave by one reused raw IPPROTO_RAW socket per family, and answers are read from
raw ICMP/ICMPv6 (and TCP) sockets and matched by :func:`match_answer` (scapy's own L3 socket
reads AF_PACKET and misses replies on TUN links such as the testbed's). Traces run in a worker
thread (``trio.to_thread``) behind one ``CapacityLimiter``. Each hop is mapped to a carrier and
a site (exchange point, out-of-province hub) by the inventory's prefixes; :func:`summarise`
says whether a route crosses an exchange point or a hub, :class:`RouteWatch` when it changed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from inventory.schema import SiteKind
from inventory.topology import Topology
from ixmeter.record import ErrorKind, Hop, Result, Status, TimestampSource
from probes.scheduler import Job

UDP_BASE_PORT = 33434
TCP_PORT = 80
SPORT = 33000
ICMP_ID = 0x6978  # "ix": constant for the whole trace (Paris)
MAX_SILENT = 4  # stop after this many silent TTLs in a row


@dataclass(frozen=True, slots=True)
class HopView:
    """A hop with the inventory's view of it: carrier, site and site kind (None if unknown)."""

    ttl: int
    addr: str | None
    rtt_ns: int | None
    carrier: str | None
    site: str | None
    kind: SiteKind | None


@dataclass(frozen=True, slots=True)
class RouteView:
    """What a route says: carriers crossed, exchange points and hubs on the way."""

    hops: tuple[HopView, ...]
    carriers: tuple[str, ...]
    exchange_points: tuple[str, ...]
    hubs: tuple[str, ...]

    @property
    def crosses_exchange(self) -> bool:
        return bool(self.exchange_points)

    @property
    def detours(self) -> bool:
        """Through an out-of-province hub instead of (or as well as) the exchange point."""
        return bool(self.hubs)


def classify(hops: Sequence[Hop], topo: Topology) -> tuple[HopView, ...]:
    """Map each hop's address to carrier and site by the inventory's prefixes."""
    out = []
    for h in hops:
        site = topo.site_of_address(h.addr) if h.addr else None
        kind = topo.sites[site].kind if site in topo.sites else None
        carrier = topo.carrier_of_address(h.addr) if h.addr else None
        out.append(HopView(h.ttl, h.addr, h.rtt_ns, carrier, site, kind))
    return tuple(out)


def summarise(hops: Sequence[Hop], topo: Topology) -> RouteView:
    """Carriers in order of appearance, exchange points and hubs crossed."""
    views = classify(hops, topo)
    carriers = tuple(dict.fromkeys(v.carrier for v in views if v.carrier))
    exchange = tuple(dict.fromkeys(v.site for v in views
                                   if v.site and v.kind is SiteKind.EXCHANGE_POINT))
    hubs = tuple(dict.fromkeys(v.site for v in views if v.site and v.kind is SiteKind.HUB))
    return RouteView(views, carriers, exchange, hubs)


def same_route(a: Sequence[Hop], b: Sequence[Hop]) -> bool:
    """Same route unless a TTL answered by both has different addresses, or the length differs.

    Silent hops (no reply) match anything: a lost ICMP reply is not a route change.
    """
    if len(a) != len(b):
        return False
    return all(x.addr is None or y.addr is None or x.addr == y.addr for x, y in zip(a, b,
                                                                                   strict=True))


class RouteWatch:
    """Remembers the last route per path and reports changes."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[Hop, ...]] = {}
        self.changes: Counter[str] = Counter()

    def observe(self, path: str, hops: Sequence[Hop]) -> bool:
        """True if ``hops`` differs from the previous route of ``path`` (not on first sight)."""
        prev = self.last.get(path)
        self.last[path] = tuple(hops)
        if prev is None or same_route(prev, hops):
            return False
        self.changes[path] += 1
        return True


# --- the blocking side (runs in a worker thread) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Flow:
    """The constant flow of one Paris trace and how to recognise answers to it."""

    dst: str
    v6: bool
    mode: str
    dport: int


_V4 = struct.Struct("!BBHHHBBH4s4s")
_PORTS = struct.Struct("!HH")


def match_answer(flow: Flow, src: str, proto: int, data: bytes) -> tuple[bool, bool, int | None]:
    """Does a received packet answer ``flow``? Returns (matches, final, quoted IPv4 id).

    ``data`` is the ICMP/ICMPv6 message or the TCP segment (no IP header). An ICMP error
    (time exceeded, unreachable) must quote our destination and flow fields (RFC 792: the
    IP header plus the first 8 octets, which hold ports or the echo identifier; RFC 4443 §3).
    Pure: never raises on any bytes.
    """
    if proto == socket.IPPROTO_TCP:
        ok = len(data) >= 4 and src == flow.dst and _PORTS.unpack_from(data) == (flow.dport, SPORT)
        return ok, ok, None
    if len(data) < 8:
        return False, False, None
    kind = data[0]
    echo_reply, errors = (129, (1, 3)) if flow.v6 else (0, (3, 11))
    if kind == echo_reply:
        ok = flow.mode == "icmp" and src == flow.dst and data[4:6] == ICMP_ID.to_bytes(2, "big")
        return ok, ok, None
    if kind not in errors:
        return False, False, None
    quoted_ok, ip_id = _quotes_flow(flow, data[8:])
    unreachable_from_dst = kind == errors[0] and src == flow.dst
    return quoted_ok, quoted_ok and unreachable_from_dst, ip_id


def _quotes_flow(flow: Flow, quoted: bytes) -> tuple[bool, int | None]:
    proto = {"icmp": 58 if flow.v6 else 1, "udp": 17, "tcp": 6}[flow.mode]
    if flow.v6:
        if len(quoted) < 48 or quoted[0] >> 4 != 6:
            return False, None
        dst, next_header, l4, ip_id = quoted[24:40], quoted[6], quoted[40:48], None
    else:
        if len(quoted) < 20 or quoted[0] >> 4 != 4:
            return False, None
        ihl = (quoted[0] & 0x0F) * 4
        if len(quoted) < ihl + 8:
            return False, None
        fields = _V4.unpack_from(quoted)
        dst, next_header, l4, ip_id = fields[9], fields[6], quoted[ihl:ihl + 8], fields[3]
    if next_header != proto or dst != ipaddress.ip_address(flow.dst).packed:
        return False, None
    if flow.mode == "icmp":
        return l4[4:6] == ICMP_ID.to_bytes(2, "big"), ip_id
    return _PORTS.unpack_from(l4) == (SPORT, flow.dport), ip_id


class Tracer:
    """Reusable raw sockets per family (send: IPPROTO_RAW with our header; receive: ICMP and
    TCP); :meth:`trace` is blocking. scapy builds the probes."""

    def __init__(self) -> None:
        self._socks: dict[tuple[bool, str], socket.socket] = {}

    def _sock(self, v6: bool, role: str) -> socket.socket:
        key = (v6, role)
        if key not in self._socks:
            family = socket.AF_INET6 if v6 else socket.AF_INET
            proto = {"send": socket.IPPROTO_RAW, "tcp": socket.IPPROTO_TCP,
                     "icmp": socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP}[role]
            sock = socket.socket(family, socket.SOCK_RAW, proto)
            if role != "send":
                sock.setblocking(False)
            self._socks[key] = sock
        return self._socks[key]

    def trace(self, dst: str, *, v6: bool, mode: str = "icmp", size: int = 60,
              dport: int | None = None, max_ttl: int = 30, hop_timeout_s: float = 1.0,
              src: str | None = None) -> tuple[tuple[Hop, ...], bool]:
        """Hops from TTL 1 until ``dst`` answers (reached) or ``max_ttl``/silence; probes
        leave from ``src`` (the inventory's source address) or the route's."""
        port = dport or (UDP_BASE_PORT if mode == "udp" else TCP_PORT)
        flow = Flow(dst, v6, mode, port)
        src = src or source_address(dst, v6)
        receivers = [self._sock(v6, "icmp")] + ([self._sock(v6, "tcp")] if mode == "tcp" else [])
        hops: list[Hop] = []
        silent = 0
        for ttl in range(1, max_ttl + 1):
            packet = bytes(build_probe(dst, ttl, v6=v6, mode=mode, size=size, dport=port,
                                       src=src))
            for sock in receivers:
                _flush(sock)
            started = time.monotonic_ns()
            self._sock(v6, "send").sendto(packet, (dst, 0))
            answer = _await_answer(flow, ttl, receivers, hop_timeout_s)
            addr, final = answer if answer else (None, False)
            rtt = time.monotonic_ns() - started if addr else None
            hops.append(Hop(ttl, addr, rtt))
            silent = 0 if addr else silent + 1
            if final or addr == dst:
                return tuple(hops), True
            if silent >= MAX_SILENT:
                break
        return tuple(hops), False

    def close(self) -> None:
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()


def source_address(dst: str, v6: bool) -> str:
    """The address the kernel would send from to ``dst`` (a connected UDP socket sends nothing);
    set explicitly so the TCP/UDP pseudo-header checksum is right (RFC 793 §3.1, RFC 8200 §8.1)."""
    with socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((dst, 9))
        return str(s.getsockname()[0])


def _flush(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while sock.recv(65535):
            pass


def _await_answer(flow: Flow, ttl: int, socks: list[socket.socket], timeout_s: float
                  ) -> tuple[str, bool] | None:
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        ready, _w, _x = select.select(socks, [], [], left)
        for sock in ready:
            with contextlib.suppress(OSError):
                data, addr = sock.recvfrom(65535)
                got = _check(flow, ttl, sock, data, str(addr[0]))
                if got is not None:
                    return got
    return None


def _check(flow: Flow, ttl: int, sock: socket.socket, data: bytes, src: str
           ) -> tuple[str, bool] | None:
    if not flow.v6:  # IPv4 raw sockets return the IP header
        if len(data) < 20:
            return None
        data = data[(data[0] & 0x0F) * 4:]
    ok, final, ip_id = match_answer(flow, src, sock.proto, data)
    if not ok or (ip_id is not None and ip_id != ttl):
        return None
    return src, final


def build_probe(dst: str, ttl: int, *, v6: bool, mode: str, size: int,
                dport: int | None, src: str | None = None) -> Any:
    """A Paris probe: identical flow fields for every TTL (IMC 2006 §3)."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6

    net = IPv6(dst=dst, hlim=ttl) if v6 else IP(dst=dst, ttl=ttl, id=ttl)
    if src is not None:
        net.src = src
    pad = b"\x00" * max(0, size - 8)
    if mode == "icmp":
        if v6:  # the echo data is a field of scapy's ICMPv6 echo (its answers() compares it)
            return net / ICMPv6EchoRequest(id=ICMP_ID, seq=1, data=pad)
        return net / ICMP(id=ICMP_ID, seq=1) / pad
    if mode == "udp":
        return net / UDP(sport=SPORT, dport=dport or UDP_BASE_PORT) / pad
    if mode == "tcp":
        return net / TCP(sport=SPORT, dport=dport or TCP_PORT, flags="S", seq=0x69786D74)
    raise ValueError(f"unknown traceroute mode {mode!r}: use icmp, udp or tcp")


# --- the scheduler's prober -------------------------------------------------------------------


def to_result(job: Job, seq: int, sent_at_ns: int, hops: tuple[Hop, ...], reached: bool
              ) -> Result:
    """One trace as one record: RECEIVED with the last hop's RTT if the destination answered."""
    if reached:
        return job.result(seq, sent_at_ns, Status.RECEIVED, TimestampSource.USER,
                          rtt_ns=hops[-1].rtt_ns or 0, hops=hops)
    return job.result(seq, sent_at_ns, Status.LOST, TimestampSource.USER, hops=hops)


class TracerouteProber:
    """Runs traces for the scheduler in a worker thread, one at a time per process."""

    def __init__(self, emit: Callable[[Result], None], topology: Topology | None = None, *,
                 tracer: Tracer | None = None) -> None:
        self.emit, self.topology = emit, topology
        self.tracer = tracer or Tracer()
        self.limiter = trio.CapacityLimiter(1)
        self.watch = RouteWatch()
        self._nursery: trio.Nursery | None = None
        self._in_flight = 0
        self._idle = trio.Event()
        self._abandoned = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await trio.sleep_forever()
        finally:
            if not self._abandoned:
                self.tracer.close()

    def in_flight(self) -> int:
        return self._in_flight

    def route_changes(self) -> int:
        """Route changes seen since the agent started, over every path."""
        return sum(self.watch.changes.values())

    def start(self, job: Job, seq: int) -> None:
        if self._nursery is None:
            raise RuntimeError("TracerouteProber.run() is not running")
        self._in_flight += 1
        self._nursery.start_soon(self._trace, job, seq)

    async def _trace(self, job: Job, seq: int) -> None:
        try:
            result = await self.trace(job, seq)
        except trio.Cancelled:
            self._abandoned = True  # its worker thread may still be using the sockets
            self.emit(job.result(seq, time.time_ns(), Status.ERROR, TimestampSource.USER,
                                 error=ErrorKind.LOCAL_DROP,
                                 error_detail="agent stopped before the trace finished"))
            raise
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
        self.emit(result)

    async def stop(self, grace_s: float) -> None:
        """Let running traces finish for ``grace_s``, then abandon the rest (each becomes a
        local-drop record) and close the sockets."""
        with trio.move_on_after(grace_s):
            await self.drain()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def drain(self) -> None:
        """Wait until no trace is running."""
        while self._in_flight:
            self._idle = trio.Event()
            await self._idle.wait()

    async def trace(self, job: Job, seq: int = 0) -> Result:
        """Trace ``job``'s path now; an exception becomes an ERROR record."""
        sent_at = time.time_ns()
        mode = str(job.options.get("mode", "icmp"))

        def _run() -> tuple[tuple[Hop, ...], bool]:
            return self.tracer.trace(job.dst_addr, v6=job.type_p.ip_version == 6, mode=mode,
                                     size=job.type_p.size, dport=job.type_p.dst_port,
                                     hop_timeout_s=min(job.tmax_ns / 1e9, 2.0),
                                     src=job.src_addr)

        try:
            hops, reached = await trio.to_thread.run_sync(_run, limiter=self.limiter,
                                                          abandon_on_cancel=True)
        except (OSError, ValueError) as exc:
            return job.result(seq, sent_at, Status.ERROR, TimestampSource.USER,
                              error=ErrorKind.SEND_ERROR, error_detail=str(exc))
        self.watch.observe(job.key, hops)
        return to_result(job, seq, sent_at, hops, reached)
