"""The shared-socket ICMP/ICMPv6 echo pinger, read from trio (RFC 792; RFC 4443 §4; RFC 2681).

One socket per address family per probe process, read with ``trio.lowlevel.wait_readable``.
Probes are told apart by a random process cookie and a 64-bit token in the echo data (not the
PID), so neighbouring pingers never take each other's replies. Send and receive times are kernel
timestamps (SO_TIMESTAMPING TX software stamp read back with the packet from the error queue,
SO_TIMESTAMPNS on receive); a wall-clock step during a probe invalidates it (RFC 2681 §2.5).

Each probe ends as exactly one :class:`Outcome` (RFC 7680 §2.4): an answered one (received, with
the count of duplicate copies, RFC 7679 §3.4, or a malformed reply) ``hold_s`` after its reply,
so a crash loses at most that plus the agent's group commit, and a lost one at its Tmax.
Copies arriving after the outcome was handed over count as local "duplicate" drops; replies
after Tmax as local "late" drops, not as arrivals (RFC 6703 §4.1.2 allows re-labelling with a
longer Tmax later).
"""

from __future__ import annotations

import heapq
import math
import os
import random
import socket
import struct
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from ixmeter import timestamping as ts
from ixmeter.errors import IxmeterError, MalformedPacket, PermissionProblem
from ixmeter.record import ErrorKind, Status, TimestampSource
from probes.clock import Clock, SystemClock, stepped
from probes.icmp import codec, trace_codec

RCVBUF = 4 << 20
HOLD_S = 0.1  # an answered probe waits this long for duplicate copies, then is handed over
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
PAIR_NS = 10_000
_SOL_RAW = 255
_ICMP_FILTER = 1
_ICMP6_FILTER = 1
_RECENT = 65536
_TIMESPEC3 = struct.Struct("=qqqqqq")
_PERMISSION_HINT = ("grant CAP_NET_RAW (systemd: AmbientCapabilities=CAP_NET_RAW) or allow "
                    "datagram ICMP with sysctl net.ipv4.ping_group_range='0 2147483647'")


@dataclass(frozen=True, slots=True)
class Outcome:
    """The end of one echo probe. ``rtt_ns`` only when received; ``error`` only on error."""

    dst: str
    token: int
    status: Status
    sent_at_ns: int
    tmax_ns: int
    ts_source: TimestampSource
    rtt_ns: int | None = None
    dup: int = 0
    reply_ttl: int | None = None
    error: ErrorKind | None = None
    error_detail: str | None = None
    ctx: Any = None


@dataclass(slots=True)
class _Pending:
    dst: str
    seq: int
    size: int
    wall_ns: int
    mono_ns: int
    tmax_ns: int
    ctx: Any
    tx_ns: int | None = None
    rx_ns: int | None = None
    rtt_ns: int | None = None
    kernel: bool = False
    dup: int = 0
    ttl: int | None = None
    error: ErrorKind | None = None
    detail: str | None = None


def open_icmp_socket(family: int, mode: str = "auto") -> tuple[socket.socket, bool]:
    """A non-blocking ICMP socket and whether it is raw; datagram ICMP first in ``auto`` mode.

    Raises :class:`PermissionProblem` naming the capability or sysctl to grant.
    """
    proto = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
    kinds = {"auto": (socket.SOCK_DGRAM, socket.SOCK_RAW), "dgram": (socket.SOCK_DGRAM,),
             "raw": (socket.SOCK_RAW,)}[mode]
    for kind in kinds:
        try:
            sock = socket.socket(family, kind, proto)
        except PermissionError:
            continue
        sock.setblocking(False)
        return sock, kind == socket.SOCK_RAW
    raise PermissionProblem(f"cannot open an ICMP socket ({mode}): not permitted",
                            hint=_PERMISSION_HINT)


def _bind(sock: socket.socket, src: str) -> None:
    """Bind to the source address (raw and datagram ICMP sockets alike); an address this
    host does not have is a :class:`ConfigError`-like :class:`IxmeterError` naming it."""
    try:
        sock.bind((src, 0))
    except OSError as exc:
        sock.close()
        raise IxmeterError(f"cannot send ICMP from {src}: {exc.strerror}",
                           hint="the inventory's probe addresses must be this host's") from None


def _configure(sock: socket.socket, raw: bool, rcvbuf: int, dscp: int) -> bool:
    """Buffers, filters, DSCP and timestamps; True if kernel TX timestamps were granted."""
    v6 = sock.family == socket.AF_INET6
    for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        try:  # past net.core.rmem_max/wmem_max (needs CAP_NET_ADMIN) ...
            sock.setsockopt(socket.SOL_SOCKET, force, rcvbuf)
        except OSError:  # ... else as much as the sysctl allows
            sock.setsockopt(socket.SOL_SOCKET, plain, rcvbuf)
    if raw and not v6:  # pass only echo reply, unreachable, time exceeded (raw(7) ICMP_FILTER)
        allowed = (1 << codec.ICMP_ECHO_REPLY) | (1 << codec.ICMP_DEST_UNREACH) | (
            1 << codec.ICMP_TIME_EXCEEDED)
        sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("=I", ~allowed & 0xFFFFFFFF))
    if raw and v6:  # ICMP6_FILTER (RFC 3542 §3.2): a set bit blocks the type
        words = [0xFFFFFFFF] * 8
        for kind in (codec.ICMPV6_DEST_UNREACH, codec.ICMPV6_TIME_EXCEEDED,
                     codec.ICMPV6_ECHO_REPLY):
            words[kind >> 5] &= ~(1 << (kind & 31)) & 0xFFFFFFFF
        sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("=8I", *words))
    if dscp:
        level, opt = ((socket.IPPROTO_IPV6, socket.IPV6_TCLASS) if v6
                      else (socket.IPPROTO_IP, socket.IP_TOS))
        sock.setsockopt(level, opt, dscp << 2)
    ts.enable_rx_timestamps(sock)
    ts.enable_rx_ttl(sock)
    flags = ts.SOF_TIMESTAMPING_TX_SOFTWARE | ts.SOF_TIMESTAMPING_SOFTWARE
    try:
        sock.setsockopt(socket.SOL_SOCKET, ts.SO_TIMESTAMPING, flags)
        level, opt = ((socket.IPPROTO_IPV6, ts.IPV6_RECVERR) if v6
                      else (socket.IPPROTO_IP, ts.IP_RECVERR))
        sock.setsockopt(level, opt, 1)
    except OSError:
        return False
    return True


def paired_now(clock: Clock, tries: int = 4) -> tuple[int, int]:
    """(wall, mono) read as close together as possible: mono is the midpoint of two reads
    bracketing the wall read, retried while the bracket is wider than ``PAIR_NS`` (a preempted
    read on a busy host must not look like a clock step, RFC 2681 §2.5)."""
    for _ in range(tries):
        m0 = clock.mono_ns()
        wall = clock.wall_ns()
        m1 = clock.mono_ns()
        if m1 - m0 <= PAIR_NS:
            break
    return wall, (m0 + m1) // 2


def _sw_stamp(anc: ts.Ancdata) -> int | None:
    """The software stamp [0] of an ``SCM_TIMESTAMPING`` cmsg (timestamping.rst §2.1)."""
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == ts.SCM_TIMESTAMPING and len(data) >= 48:
            sec, nsec = _TIMESPEC3.unpack_from(data)[:2]
            return int(sec) * 1_000_000_000 + int(nsec) or None
    return None


class Pinger:
    """Echo probes over one shared socket; outcomes are handed to ``on_outcome`` at Tmax."""

    def __init__(self, family: int, on_outcome: Callable[[Outcome], None] | None = None, *,
                 mode: str = "auto", clock: Clock | None = None, rcvbuf: int = RCVBUF,
                 dscp: int = 0, rng: random.Random | None = None, src: str = "",
                 hold_s: float = HOLD_S) -> None:
        self.family = family
        self.v6 = family == socket.AF_INET6
        self.sock, self.raw = open_icmp_socket(family, mode)
        self.src, self.hold_s = src, hold_s
        if src:  # echoes leave from the inventory's source address, not the route's choice
            _bind(self.sock, src)
        self.tx_kernel = _configure(self.sock, self.raw, rcvbuf, dscp)
        self.rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.clock: Clock = clock or SystemClock()
        self.on_outcome = on_outcome or (lambda _o: None)
        rng = rng or random.Random(int.from_bytes(os.urandom(8), "big"))
        self.ident = rng.getrandbits(16)
        self.cookie = rng.getrandbits(32)
        self._cookie_bytes = codec.MAGIC + struct.pack("!I", self.cookie)
        self._next = rng.getrandbits(32)
        self._pending: dict[int, _Pending] = {}
        self._by_seq: dict[int, int] = {}
        self._heap: list[tuple[float, int]] = []
        self._recent: OrderedDict[int, bool] = OrderedDict()  # token -> was answered
        self._wake = trio.CancelScope()
        self._fill: dict[int, bytes] = {}
        self._idle = trio.Event()
        self._waiters: dict[int, Callable[[Outcome], None]] = {}
        self.local: Counter[str] = Counter()
        self.foreign: Counter[int] = Counter()  # ICMP errors about other protocols' packets
        self.sent = 0

    # --- sending ------------------------------------------------------------------------------

    def in_flight(self) -> int:
        return len(self._pending)

    def send(self, dst: str, size: int = 64, tmax_ns: int = 3_000_000_000,
             ctx: Any = None) -> int:
        """Send one echo request of ``size`` ICMP octets now; return its token (never blocks)."""
        token = self._next
        self._next = (self._next + 1) & 0xFFFFFFFFFFFFFFFF
        seq = token & 0xFFFF
        if seq in self._by_seq:
            self.local["queue_full"] += 1
            self._emit_now(dst, token, tmax_ns, ctx, ErrorKind.LOCAL_DROP, "65536 echoes in flight")
            return token
        try:
            msg = codec.encode_echo(self.ident, seq, self._payload(token, size), v6=self.v6)
        except ValueError as exc:  # a size below codec.MIN_SIZE: the probe cannot be sent
            self.local["send_error"] += 1
            self._emit_now(dst, token, tmax_ns, ctx, ErrorKind.SEND_ERROR, str(exc))
            return token
        wall, mono = paired_now(self.clock)
        entry = _Pending(dst, seq, size, wall, mono, tmax_ns, ctx)
        try:
            self.sock.sendto(msg, (dst, 0))
        except OSError as exc:
            self.local["send_error"] += 1
            self._emit_now(dst, token, tmax_ns, ctx, ErrorKind.SEND_ERROR, str(exc))
            return token
        self.sent += 1
        self._pending[token] = entry
        self._by_seq[seq] = token
        self._finalise_at(trio.current_time() + tmax_ns / 1e9, token)
        return token

    def _payload(self, token: int, size: int) -> bytes:
        fill = self._fill.get(size)
        if fill is None:
            fill = self._fill[size] = codec.payload_for(0, 0, size)[codec.PREFIX.size:]
        return self._cookie_bytes + token.to_bytes(8, "big") + fill

    def _emit_now(self, dst: str, token: int, tmax_ns: int, ctx: Any, kind: ErrorKind,
                  detail: str) -> None:
        self._emit(Outcome(dst, token, Status.ERROR, self.clock.wall_ns(), tmax_ns,
                                TimestampSource.USER, error=kind, error_detail=detail, ctx=ctx))

    async def ping(self, dst: str, size: int = 64, tmax_ns: int = 1_000_000_000) -> Outcome:
        """Send one probe and wait for its outcome (at Tmax); for tests and one-off use."""
        done = trio.Event()
        box: list[Outcome] = []

        def _waiter(outcome: Outcome) -> None:
            box.append(outcome)
            done.set()

        self._waiters[self._next] = _waiter
        self.send(dst, size, tmax_ns)
        await done.wait()
        return box[0]

    # --- receiving ----------------------------------------------------------------------------

    async def receive_loop(self) -> None:
        """Read replies (and TX timestamps) until cancelled."""
        while True:
            await trio.lowlevel.wait_readable(self.sock)
            self._drain_all()

    def _drain_all(self) -> None:
        if self.tx_kernel:
            self._drain_errqueue()
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                data, anc, _flags, addr = self.sock.recvmsg(65535, ts.ANCBUFSIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.local["recv_error"] += 1
                return
            self._handle(data, anc, str(addr[0]))

    def _drain_errqueue(self) -> None:
        flags = ts.MSG_ERRQUEUE | ts.MSG_DONTWAIT
        while True:
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(2048, ts.ANCBUFSIZE, flags)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            at = data.find(self._cookie_bytes)
            stamp = _sw_stamp(anc)
            if at < 0 or stamp is None:
                continue
            token = int.from_bytes(data[at + 8:at + 16], "big")
            entry = self._pending.get(token)
            if entry is not None and entry.tx_ns is None:
                entry.tx_ns = stamp

    def _handle(self, data: bytes, anc: ts.Ancdata, src: str) -> None:
        rx_ns = ts.rx_timestamp_ns(anc)
        ttl = ts.ttl_from_ancdata(anc)
        try:
            if self.raw and not self.v6:
                ttl = data[8] if len(data) > 8 else ttl
                data = codec.strip_ipv4(data)
            msg = codec.decode_icmp(data, v6=self.v6)
        except MalformedPacket:
            self.local["malformed_stray"] += 1
            return
        if isinstance(msg, codec.ForeignError):
            self.foreign[msg.protocol] += 1  # another protocol's error: not ours, not malformed
        elif isinstance(msg, codec.IcmpError):
            self._on_error(msg)
        elif msg.type in (codec.ICMP_ECHO_REPLY, codec.ICMPV6_ECHO_REPLY) and msg.code == 0:
            self._on_reply(msg, rx_ns, ttl, src)

    @property
    def flow_ident(self) -> int:
        """The ICMP identifier on the wire: ours on a raw socket, the socket's port on a
        datagram one (the kernel sets it); traces of this flow use it."""
        return self.ident if self.raw else int(self.sock.getsockname()[1])

    def _lookup(self, echo: codec.Echo) -> tuple[int | None, bool]:
        """(token, payload intact) of the probe an echo answers, or (None, _) if not ours (a
        trace probe on the same identifier is not: ``trace_codec.MAGIC``)."""
        if (self.raw and echo.ident != self.ident) or echo.payload[:4] == trace_codec.MAGIC:
            return None, False
        try:
            tok = codec.decode_token(echo.payload)
        except MalformedPacket:
            return self._by_seq.get(echo.seq), False
        if tok.cookie != self.cookie:
            return None, False
        if (tok.token & 0xFFFF) != echo.seq:
            return self._by_seq.get(echo.seq), False
        return tok.token, True

    def _on_reply(self, echo: codec.Echo, rx_ns: int | None, ttl: int | None, src: str) -> None:
        token, intact = self._lookup(echo)
        if token is None:
            return
        entry = self._pending.get(token)
        if entry is None:
            answered = self._recent.get(token)
            self.local["stray" if answered is None else "duplicate" if answered else "late"] += 1
            return
        if rx_ns is not None and entry.tx_ns is not None and rx_ns - entry.tx_ns > entry.tmax_ns:
            self.local["late"] += 1  # in the kernel after Tmax, though not yet expired here
            return
        if entry.rtt_ns is not None or entry.error is not None:
            entry.dup += 1
            self.local["duplicate"] += 1
            return
        wall, mono = paired_now(self.clock)
        if not intact or not echo.checksum_ok or len(echo.payload) + 8 != entry.size:
            entry.error, entry.detail = ErrorKind.MALFORMED_REPLY, f"bad echo reply from {src}"
        elif stepped(entry.wall_ns, entry.mono_ns, wall, mono):
            entry.error, entry.detail = ErrorKind.CLOCK_STEP, "wall clock stepped during probe"
        else:
            self._set_rtt(entry, rx_ns, wall, mono)
            entry.ttl = ttl
            if entry.rtt_ns is not None and entry.rtt_ns > entry.tmax_ns:
                entry.rtt_ns = None  # arrived after Tmax: lost (RFC 7680 §2.4), counted late
                self.local["late"] += 1
                return
        self._finalise_at(trio.current_time() + self.hold_s, token)

    def _finalise_at(self, deadline: float, token: int) -> None:
        heapq.heappush(self._heap, (deadline, token))
        if deadline < self._wake.deadline:
            self._wake.deadline = deadline

    def _set_rtt(self, entry: _Pending, rx_ns: int | None, wall: int, mono: int) -> None:
        if rx_ns is not None and entry.tx_ns is not None:
            entry.rtt_ns, entry.kernel = max(0, rx_ns - entry.tx_ns), True
        else:
            entry.rtt_ns = max(0, mono - entry.mono_ns)

    def _on_error(self, err: codec.IcmpError) -> None:
        token, intact = self._lookup(err.quoted)
        entry = self._pending.get(token) if token is not None and intact else None
        if entry is not None and entry.detail is None:
            entry.detail = f"icmp{'v6' if self.v6 else ''} error type {err.type} code {err.code}"

    # --- Tmax ---------------------------------------------------------------------------------

    async def expiry_loop(self) -> None:
        """Finalise each probe at its Tmax, earliest first."""
        while True:
            deadline = self._heap[0][0] if self._heap else math.inf
            with trio.CancelScope(deadline=deadline) as self._wake:
                await trio.sleep_forever()
            self._drain_all()  # replies already queued in the kernel arrived before Tmax
            now = trio.current_time()
            while self._heap and self._heap[0][0] <= now:
                self._finalise(heapq.heappop(self._heap)[1])

    def _finalise(self, token: int) -> None:
        entry = self._pending.pop(token, None)
        if entry is None:
            return
        self._by_seq.pop(entry.seq, None)
        self._recent[token] = entry.rtt_ns is not None or entry.error is not None
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        self._emit(_outcome(entry, token))
        if not self._pending:
            self._idle.set()

    def _emit(self, outcome: Outcome) -> None:
        waiter = self._waiters.pop(outcome.token, None)
        (waiter or self.on_outcome)(outcome)

    async def drain(self) -> None:
        """Wait until every probe in flight has reached its Tmax."""
        while self._pending:
            self._idle = trio.Event()
            await self._idle.wait()

    def finalise_all(self) -> None:
        """End every probe still in flight now (shutdown): unanswered ones count as lost."""
        for _deadline, token in sorted(self._heap):
            self._finalise(token)
        self._heap.clear()

    def close(self) -> None:
        self.sock.close()


def _outcome(e: _Pending, token: int) -> Outcome:
    sent = e.tx_ns if e.kernel and e.tx_ns is not None else e.wall_ns
    source = TimestampSource.KERNEL if e.kernel else TimestampSource.USER
    if e.error is not None:
        return Outcome(e.dst, token, Status.ERROR, sent, e.tmax_ns, source, dup=e.dup,
                       error=e.error, error_detail=e.detail, ctx=e.ctx)
    if e.rtt_ns is None:
        return Outcome(e.dst, token, Status.LOST, sent, e.tmax_ns, source,
                       error_detail=e.detail, ctx=e.ctx)
    return Outcome(e.dst, token, Status.RECEIVED, sent, e.tmax_ns, source, rtt_ns=e.rtt_ns,
                   dup=e.dup, reply_ttl=e.ttl, ctx=e.ctx)


@asynccontextmanager
async def open_pinger(family: int, on_outcome: Callable[[Outcome], None] | None = None,
                      **kw: Any) -> AsyncIterator[Pinger]:
    """A running :class:`Pinger`; on exit, probes still in flight are finalised as lost."""
    pinger = Pinger(family, on_outcome, **kw)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pinger.receive_loop)
            nursery.start_soon(pinger.expiry_loop)
            try:
                yield pinger
            finally:
                nursery.cancel_scope.cancel()
        pinger.finalise_all()
    finally:
        pinger.close()
