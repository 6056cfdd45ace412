"""The shared-socket ICMP/ICMPv6 echo pinger: the socket and the timers around an echo session.

One socket per address family per probe process, read with ``trio.lowlevel.wait_readable``.
Send and receive times are kernel timestamps (SO_TIMESTAMPING TX software stamp read back with
the packet from the error queue, SO_TIMESTAMPNS on receive) and a (wall, monotonic) pair read
around each send and receipt for the clock-step check (RFC 2681 §2.5).

Every decision — which probe a reply answers, duplicates, late and stray replies, Tmax, clock
steps and faults, what each probe became — is the sans-IO :class:`~probes.icmp.session.
EchoSession`'s (RFC 792 echo, RFC 2681 round trip, RFC 7680 §2.4 loss with Tmax); this module
feeds it what the socket and the clock give, sends what it asks, hands its outcomes to
``on_outcome`` and sleeps until its next deadline. The session's deadlines are on the injected
:class:`~probes.clock.Clock`'s monotonic clock; the timer converts them to trio's.
"""

from __future__ import annotations

import math
import os
import random
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from ixmeter.core import timestamping as ts
from ixmeter.core.errors import IxmeterError, PermissionProblem
from probes.clock import Clock, SystemClock
from probes.icmp import codec
from probes.icmp.session import HOLD_NS, EchoSession, EchoStatistics, Outcome

RCVBUF = 4 << 20
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
PAIR_NS = 10_000
_SOL_RAW = 255
_ICMP_FILTER = 1
_ICMP6_FILTER = 1
_TIMESPEC3 = struct.Struct("=qqqqqq")
_PERMISSION_HINT = ("grant CAP_NET_RAW (systemd: AmbientCapabilities=CAP_NET_RAW) or allow "
                    "datagram ICMP with sysctl net.ipv4.ping_group_range='0 2147483647'")


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
    """Echo probes over one shared socket; outcomes are handed to ``on_outcome`` (an answered
    probe after the session's hold, an unanswered one at its Tmax)."""

    def __init__(self, family: int, on_outcome: Callable[[Outcome], None] | None = None, *,
                 mode: str = "auto", clock: Clock | None = None, rcvbuf: int = RCVBUF,
                 dscp: int = 0, rng: random.Random | None = None, src: str = "",
                 hold_s: float = HOLD_NS / 1e9) -> None:
        self.family = family
        self.v6 = family == socket.AF_INET6
        self.sock, self.raw = open_icmp_socket(family, mode)
        self.src = src
        if src:  # echoes leave from the inventory's source address, not the route's choice
            _bind(self.sock, src)
        self.tx_kernel = _configure(self.sock, self.raw, rcvbuf, dscp)
        self.rcvbuf = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.clock: Clock = clock or SystemClock()
        self.on_outcome = on_outcome or (lambda _o: None)
        rng = rng or random.Random(int.from_bytes(os.urandom(8), "big"))
        ident = rng.getrandbits(16)
        cookie = rng.getrandbits(32)
        self.session = EchoSession(cookie=cookie, ident=ident, first_token=rng.getrandbits(32),
                                   v6=self.v6, raw=self.raw, hold_ns=round(hold_s * 1e9))
        self._wake = trio.CancelScope()
        self._wake_ns = math.inf  # the monotonic deadline the timer sleeps until
        self._idle = trio.Event()
        self._waiters: dict[int, Callable[[Outcome], None]] = {}

    def statistics(self) -> EchoStatistics:
        """The session's counters (frozen)."""
        return self.session.statistics()

    def in_flight(self) -> int:
        return self.session.in_flight()

    # --- sending ------------------------------------------------------------------------------

    def send(self, dst: str, size: int = 64, tmax_ns: int = 3_000_000_000,
             ctx: Any = None) -> int:
        """Send one echo request of ``size`` ICMP octets now; return its token (never blocks)."""
        wall, mono = paired_now(self.clock)
        req = self.session.request(dst, size, tmax_ns, wall, mono, ctx)
        if isinstance(req, Outcome):
            self._emit(req)
            return req.token
        try:
            self.sock.sendto(req.data, (dst, 0))
        except OSError as exc:
            failed = self.session.send_failed(req.token, str(exc))
            if failed is not None:
                self._emit(failed)
            return req.token
        deadline = self.session.next_deadline()
        if deadline is not None and deadline < self._wake_ns:
            self._arm(deadline, mono)
        return req.token

    async def ping(self, dst: str, size: int = 64, tmax_ns: int = 1_000_000_000) -> Outcome:
        """Send one probe and wait for its outcome; for tests and one-off use."""
        done = trio.Event()
        box: list[Outcome] = []

        def _waiter(outcome: Outcome) -> None:
            box.append(outcome)
            done.set()

        self._waiters[self.session.next_token] = _waiter
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
        session, clock, recvmsg = self.session, self.clock, self.sock.recvmsg
        mono = None
        while True:
            try:
                data, anc, _flags, addr = recvmsg(65535, ts.ANCBUFSIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                session.receive_failed()
                break
            wall, mono = paired_now(clock)
            session.receive(data, ts.rx_timestamp_ns(anc), ts.ttl_from_ancdata(anc),
                            str(addr[0]), wall, mono)
        deadline = session.next_deadline()
        if mono is not None and deadline is not None and deadline < self._wake_ns:
            self._arm(deadline, mono)  # a hold ends before the timer's next Tmax

    def _drain_errqueue(self) -> None:
        flags = ts.MSG_ERRQUEUE | ts.MSG_DONTWAIT
        while True:
            try:
                data, anc, _flags, _addr = self.sock.recvmsg(2048, ts.ANCBUFSIZE, flags)
            except OSError:  # BlockingIOError: the queue is empty
                return
            stamp = _sw_stamp(anc)
            if stamp is not None:
                self.session.tx_timestamp(data, stamp)

    @property
    def flow_ident(self) -> int:
        """The ICMP identifier on the wire: ours on a raw socket, the socket's port on a
        datagram one (the kernel sets it); traces of this flow use it."""
        return self.session.ident if self.raw else int(self.sock.getsockname()[1])

    # --- the timer ----------------------------------------------------------------------------

    def _arm(self, deadline_ns: int, mono_ns: int) -> None:
        """Wake the timer at monotonic ``deadline_ns`` (``mono_ns`` is now on that clock)."""
        self._wake_ns = deadline_ns
        self._wake.deadline = trio.current_time() + (deadline_ns - mono_ns) / 1e9

    async def expiry_loop(self) -> None:
        """Hand over the session's outcomes at their deadlines, earliest first."""
        while True:
            deadline = self.session.next_deadline()
            with trio.CancelScope() as self._wake:
                if deadline is None:
                    self._wake_ns = math.inf
                else:
                    self._arm(deadline, self.clock.mono_ns())
                await trio.sleep_forever()
            self._drain_all()  # replies already queued in the kernel arrived before Tmax
            for outcome in self.session.expire(self.clock.mono_ns()):
                self._emit(outcome)

    def _emit(self, outcome: Outcome) -> None:
        waiter = self._waiters.pop(outcome.token, None)
        (waiter or self.on_outcome)(outcome)
        if not self.session.in_flight():
            self._idle.set()

    async def drain(self) -> None:
        """Wait until every probe in flight has ended."""
        while self.session.in_flight():
            self._idle = trio.Event()
            await self._idle.wait()

    def finalise_all(self) -> None:
        """End every probe still in flight now (shutdown): unanswered ones count as lost."""
        for outcome in self.session.finalise_all():
            self._emit(outcome)

    def close(self) -> None:
        self.sock.close()


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
