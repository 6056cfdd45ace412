"""Paris traceroute on the measured ICMP flow, many traces at once, and what a route says.

A trace is a Paris traceroute (Augustin et al., IMC 2006) whose probes are ICMP echoes with
the identifier the path's ICMP measurements use (``probes.icmp.trace_codec``): under per-flow
load balancing (ECMP) the route it finds is the measured flow's. Probes leave from the
inventory's source address on one raw ICMP socket per (family, source), with a TTL (Hop Limit)
and DSCP set per probe; the kernel builds the IP header. Each trace sends TTLs a window at a
time (:data:`WINDOW`) and waits for that window's answers (at most ``hop_timeout``), so a trace
costs about one round trip per window instead of one per hop, and a destination that never
answers costs two hop timeouts, not one per TTL. Up to ``max_traces`` run concurrently on the
event loop (the scheduler counts more as local drops); answers are read by one task per socket
and handed to their trace by slot. Without CAP_NET_RAW :meth:`TracerouteProber.check` fails at
start naming it.

Each hop is mapped to a carrier and a site (exchange point, out-of-province hub) by the
inventory's prefixes and endpoint addresses; :func:`summarise` says whether a route crosses an
exchange point or a hub; :class:`RouteWatch` records a route change as an event with the hops
before and after.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import trio

from inventory.schema import SiteKind
from inventory.topology import Topology
from ixmeter.core.errors import PermissionProblem
from ixmeter.core.record import ErrorKind, Hop, Result, Status, TimestampSource
from probes.icmp import trace_codec
from probes.scheduler import Job

EVENTS_KEPT = 1000
log = logging.getLogger("ixmeter.probe.route")


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
    """Same route if the answering hops are the same addresses in the same order (a lost
    answer at one TTL, even just before the destination, is not a route change), or if every
    TTL answered by both has the same address and the lengths agree (silent hops match
    anything)."""
    if [h.addr for h in a if h.addr] == [h.addr for h in b if h.addr]:
        return True
    if len(a) != len(b):
        return False
    return all(x.addr is None or y.addr is None or x.addr == y.addr
               for x, y in zip(a, b, strict=True))


@dataclass(frozen=True, slots=True)
class RouteChange:
    """A route change event: the path, when it was seen, and the hops before and after."""

    path: str
    at_ns: int
    before: tuple[Hop, ...]
    after: tuple[Hop, ...]


def _hops_text(hops: Sequence[Hop]) -> str:
    return " ".join(h.addr or "*" for h in hops)


class RouteWatch:
    """Remembers the last route per path; a change is an event (logged, kept in ``events``,
    the latest :data:`EVENTS_KEPT`) and counted per path."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[Hop, ...]] = {}
        self.changes: Counter[str] = Counter()
        self.events: deque[RouteChange] = deque(maxlen=EVENTS_KEPT)

    def observe(self, path: str, hops: Sequence[Hop]) -> bool:
        """True if ``hops`` differs from the previous route of ``path`` (not on first sight)."""
        prev = self.last.get(path)
        self.last[path] = tuple(hops)
        if prev is None or same_route(prev, hops):
            return False
        self.changes[path] += 1
        self.events.append(RouteChange(path, time.time_ns(), prev, tuple(hops)))
        log.warning("route change on %s: before [%s] after [%s]", path, _hops_text(prev),
                    _hops_text(hops))
        return True


# --- the event-loop side: raw ICMP sockets, traces by slot -----------------------------------

WINDOW = 8  # TTLs sent at once
MAX_TTL = 30
MAX_SILENT = 4  # stop after this many silent TTLs in a row
OWN_IDENT = 0x6978  # "ix": the identifier of traces on their own flow (traceroute_mode icmp)
_SOL_RAW, _ICMP_FILTER, _ICMP6_FILTER = 255, 1, 1
_CAP_HINT = ("grant CAP_NET_RAW (systemd: AmbientCapabilities=CAP_NET_RAW); traceroute "
             "needs raw ICMP sockets")


@dataclass(slots=True)
class _Trace:
    """One trace in progress: when each TTL left, who answered, whether it reached."""

    dst: str
    ident: int
    slot: int
    sent: dict[int, int] = field(default_factory=dict)  # ttl -> monotonic ns
    hops: dict[int, tuple[str, int]] = field(default_factory=dict)  # ttl -> (addr, rtt)
    reached: int | None = None
    changed: trio.Event = field(default_factory=trio.Event)

    def answered(self, ttl: int, addr: str, final: bool, at_ns: int) -> None:
        if ttl in self.sent and ttl not in self.hops:
            self.hops[ttl] = (addr, at_ns - self.sent[ttl])
        if final and (self.reached is None or ttl < self.reached):
            self.reached = ttl
        self.changed.set()

    def result(self) -> tuple[tuple[Hop, ...], bool]:
        last = self.reached or max(self.hops, default=0)
        return tuple(Hop(t, *self.hops.get(t, (None, None))) for t in range(1, last + 1)), \
            self.reached is not None


class TraceSocket:
    """A raw ICMP socket of one family, bound to one source address: sends trace probes with
    a TTL and DSCP per probe, and reads the answers for every trace using it."""

    def __init__(self, family: int, src: str) -> None:
        self.v6 = family == socket.AF_INET6
        proto = socket.IPPROTO_ICMPV6 if self.v6 else socket.IPPROTO_ICMP
        try:
            self.sock = socket.socket(family, socket.SOCK_RAW, proto)
        except PermissionError:
            raise PermissionProblem("cannot open a raw ICMP socket for traceroute: not "
                                    "permitted", hint=_CAP_HINT) from None
        self.sock.setblocking(False)
        if src:
            self.sock.bind((src, 0))
        self._filter()
        self.traces: dict[tuple[int, int], _Trace] = {}  # (ident, slot) -> trace

    def _filter(self) -> None:
        """Wake only for echo replies, unreachables and time exceeded (raw(7), RFC 3542)."""
        if self.v6:
            words = [0xFFFFFFFF] * 8
            for kind in (1, 3, 129):
                words[kind >> 5] &= ~(1 << (kind & 31)) & 0xFFFFFFFF
            self.sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("=8I", *words))
        else:
            allowed = (1 << 0) | (1 << 3) | (1 << 11)
            self.sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("=I", ~allowed & 0xFFFFFFFF))

    def send(self, dst: str, data: bytes, ttl: int, dscp: int) -> None:
        if self.v6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, dscp << 2)
        else:
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, dscp << 2)
        self.sock.sendto(data, (dst, 0))

    async def receive_loop(self) -> None:
        while True:
            await trio.lowlevel.wait_readable(self.sock)
            while True:
                try:
                    data, addr = self.sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue
                self._handle(data, str(addr[0]), time.monotonic_ns())

    def _handle(self, data: bytes, src: str, at_ns: int) -> None:
        if not self.v6:  # IPv4 raw sockets return the IP header
            data = data[(data[0] & 0x0F) * 4:] if len(data) >= 20 else b""
        for trace in list(self.traces.values()):
            got = trace_codec.match(data, src, trace.dst, trace.ident, v6=self.v6)
            if got is not None and got.slot == trace.slot:
                trace.answered(got.ttl, src, got.final, at_ns)
                return

    def free_slot(self, ident: int) -> int:
        used = {slot for i, slot in self.traces if i == ident}
        return next(s for s in range(trace_codec.SLOTS) if s not in used)

    def close(self) -> None:
        self.sock.close()


async def run_trace(sock: TraceSocket, dst: str, ident: int, *, size: int = 64, dscp: int = 0,
                    hop_timeout_s: float = 1.0, max_ttl: int = MAX_TTL
                    ) -> tuple[tuple[Hop, ...], bool]:
    """One Paris trace to ``dst`` on identifier ``ident`` (module docstring)."""
    slot = sock.free_slot(ident)
    trace = sock.traces[(ident, slot)] = _Trace(dst, ident, slot)
    try:
        first = 1
        while first <= max_ttl and trace.reached is None:
            window = range(first, min(first + WINDOW, max_ttl + 1))
            for ttl in window:
                trace.sent[ttl] = time.monotonic_ns()
                sock.send(dst, trace_codec.echo(ident, slot, ttl, size, v6=sock.v6), ttl, dscp)
            await _await_window(trace, window, hop_timeout_s)
            if _silent_tail(trace, window.stop - 1) >= MAX_SILENT:
                break
            first = window.stop
    finally:
        del sock.traces[(ident, slot)]
    return trace.result()


async def _await_window(trace: _Trace, window: range, timeout_s: float) -> None:
    with trio.move_on_after(timeout_s):
        while trace.reached is None and not all(t in trace.hops for t in window):
            trace.changed = trio.Event()
            await trace.changed.wait()


def _silent_tail(trace: _Trace, last: int) -> int:
    n = 0
    while last - n >= 1 and (last - n) not in trace.hops:
        n += 1
    return n


# --- the scheduler's prober -------------------------------------------------------------------


def to_result(job: Job, seq: int, sent_at_ns: int, hops: tuple[Hop, ...], reached: bool
              ) -> Result:
    """One trace as one record: RECEIVED with the last hop's RTT if the destination answered
    within Tmax, else LOST. A hop that answered after Tmax keeps its address (route evidence)
    but no RTT: a reply after Tmax is not a delay sample (RFC 7680 §2.4)."""
    hops = tuple(h if h.rtt_ns is None or h.rtt_ns <= job.tmax_ns else Hop(h.ttl, h.addr)
                 for h in hops)
    if reached and hops[-1].rtt_ns is not None:
        return job.result(seq, sent_at_ns, Status.RECEIVED, TimestampSource.USER,
                          rtt_ns=hops[-1].rtt_ns, hops=hops)
    return job.result(seq, sent_at_ns, Status.LOST, TimestampSource.USER, hops=hops)


class TracerouteProber:
    """Runs traces for the scheduler on the event loop; ``ident_of(job)`` gives the ICMP
    identifier of the job's measured flow (``traceroute_mode: flow``), else its own."""

    def __init__(self, emit: Callable[[Result], None], topology: Topology | None = None, *,
                 ident_of: Callable[[Job], int] | None = None) -> None:
        self.emit, self.topology, self.ident_of = emit, topology, ident_of
        self.watch = RouteWatch()
        self.sockets: dict[tuple[int, str], TraceSocket] = {}
        self._nursery: trio.Nursery | None = None
        self._in_flight = 0
        self._idle = trio.Event()

    def check(self, jobs: Sequence[Job]) -> None:
        """Open the sockets the trace jobs need now: a missing capability fails at start
        (:class:`PermissionProblem` naming CAP_NET_RAW), not as a send error per trace."""
        for job in jobs:
            self._socket(job)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for sock in self.sockets.values():
                    nursery.start_soon(sock.receive_loop)
                task_status.started()
                await trio.sleep_forever()
        finally:
            for sock in self.sockets.values():
                sock.close()

    def _socket(self, job: Job) -> TraceSocket:
        v6 = job.type_p.ip_version == 6
        key = (socket.AF_INET6 if v6 else socket.AF_INET, job.src_addr)
        found = self.sockets.get(key)
        if found is None:
            found = self.sockets[key] = TraceSocket(*key)
            if self._nursery is not None:
                self._nursery.start_soon(found.receive_loop)
        return found

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
        local-drop record)."""
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
        """Trace ``job``'s path now; a local failure becomes an ERROR record."""
        sent_at = time.time_ns()
        flow = job.options.get("mode", "flow") == "flow" and self.ident_of is not None
        try:
            ident = self.ident_of(job) if flow and self.ident_of else OWN_IDENT
            hops, reached = await run_trace(
                self._socket(job), job.dst_addr, ident, size=job.type_p.size,
                dscp=job.type_p.dscp, hop_timeout_s=min(job.tmax_ns / 1e9, 2.0))
        except (OSError, ValueError) as exc:
            return job.result(seq, sent_at, Status.ERROR, TimestampSource.USER,
                              error=ErrorKind.SEND_ERROR, error_detail=str(exc))
        self.watch.observe(job.key, hops)
        return to_result(job, seq, sent_at, hops, reached)
