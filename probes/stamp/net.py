"""The thin trio I/O around the sans-IO STAMP sessions: UDP sockets, kernel timestamps, loops.

Sockets are plain non-blocking stdlib sockets waited on with ``trio.lowlevel.wait_readable``,
so this layer can drain the TX-timestamp error queue itself (Documentation/networking/
timestamping.rst) before reading replies. Receive times are kernel ``SO_TIMESTAMPNS`` stamps
when the kernel gives them, send times kernel TX software stamps where available.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from ixmeter.core import timestamping as ts
from probes.clock import Clock, ClockStatus, SystemClock, sync_status
from probes.stamp.codec import SYNC_FREE_RUNNING, SYNC_NTP, SYNC_PTP, ErrorEstimate
from probes.stamp.session import Event, Lost, Reply, SessionReflector, SessionSender

STAMP_PORT = 862  # RFC 8762 §4.1
CLOCK_REFRESH_NS = 1_000_000_000
_RECV_BUF = 65535


@dataclass(frozen=True, slots=True)
class SocketInfo:
    """What the kernel granted on a socket."""

    rx_kernel: bool
    tx_kernel: bool
    ttl: bool


def family_of(host: str) -> socket.AddressFamily:
    """AF_INET6 for an IPv6 literal, else AF_INET."""
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET


def open_udp(bind_host: str, port: int, *, tx_stamps: bool = False,
             dscp: int = 0) -> tuple[socket.socket, SocketInfo]:
    """A bound non-blocking UDP socket with RX stamps, TTL and (optionally) TX stamps."""
    family = family_of(bind_host)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        if family == socket.AF_INET6:  # keep v4 and v6 listeners apart on the same port
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if dscp:
            _set_dscp(sock, dscp)
        sock.bind((bind_host, port))
        info = SocketInfo(ts.enable_rx_timestamps(sock),
                          tx_stamps and ts.enable_tx_timestamps(sock), ts.enable_rx_ttl(sock))
    except BaseException:
        sock.close()
        raise
    return sock, info


def _set_dscp(sock: socket.socket, dscp: int) -> None:
    tos = (dscp & 0x3F) << 2
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos)
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)


def error_estimate_of(status: ClockStatus) -> ErrorEstimate:
    """This host's Error Estimate from the kernel's bound (RFC 4656 §4.1.2; RFC 5905 §4)."""
    return ErrorEstimate.from_ns(status.max_error_ns, synced=status.synced)


def sync_source_of(status: ClockStatus) -> int:
    """The Timestamp Information TLV's sync source (RFC 8972 §4.3): PTP, NTP or free-running."""
    if not status.synced:
        return SYNC_FREE_RUNNING
    return SYNC_PTP if status.discipline == "ptp" else SYNC_NTP


async def _recvmsg(sock: socket.socket, on_icmp_error: Callable[[], None] | None = None,
                   ) -> tuple[bytes, ts.Ancdata, Any]:
    """Wait for one datagram: (data, ancillary data, address). An ICMP error reported on the
    socket (a port unreachable on a connected one) is counted with ``on_icmp_error``."""
    while True:
        try:
            data, anc, _flags, addr = sock.recvmsg(_RECV_BUF, ts.ANCBUFSIZE)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)
            continue
        except OSError:  # an ICMP error (port unreachable) reported on a connected socket
            if on_icmp_error is not None:
                on_icmp_error()
            await trio.lowlevel.checkpoint()
            continue
        return data, anc, addr


async def _recv(sock: socket.socket, on_icmp_error: Callable[[], None] | None = None,
                ) -> tuple[bytes, Any, int | None, int | None]:
    """Wait for one datagram; returns (data, addr, kernel rx ns, ttl)."""
    data, anc, addr = await _recvmsg(sock, on_icmp_error)
    return data, addr, ts.rx_timestamp_ns(anc), ts.ttl_from_ancdata(anc)


# --- reflector --------------------------------------------------------------------------------


@dataclass(slots=True)
class T3Lag:
    """How long after the reflector read T3 each reply really left: its kernel TX stamp minus
    the T3 written in it (RFC 8762 §4.3.1 wants T3 "at the start of transmitting"). It is the
    systematic error of RTT_net and of the backward delay (RFC 7679 §3.7.3)."""

    count: int = 0
    total_ns: int = 0
    max_ns: int = 0

    def add(self, lag_ns: int) -> None:
        self.count += 1
        self.total_ns += lag_ns
        self.max_ns = max(self.max_ns, lag_ns)

    @property
    def mean_ns(self) -> int:
        return self.total_ns // self.count if self.count else 0


def prepare_reflector_socket(sock: socket.socket) -> bool:
    """Received TOS / Traffic Class (for DSCP copy and the CoS TLV) and ``SO_TIMESTAMPING``
    (hardware RX stamps where the NIC gives them, software TX stamps of the replies); True if
    the kernel gives TX stamps."""
    ts.enable_rx_tos(sock)
    return ts.enable_reflector_timestamps(sock)


async def serve_reflector(sock: socket.socket, reflector: SessionReflector,
                          clock: Clock | None = None,
                          status: Callable[[], ClockStatus] = sync_status,
                          *, lag: T3Lag | None = None,
                          task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                          ) -> None:
    """Answer STAMP packets on ``sock`` until cancelled (RFC 8762 §4.3): T2 the kernel's (or
    the NIC's) receive stamp, the reply sent with the DSCP the reflector decided (the Class of
    Service TLV's, else the test packet's), each reply's T3 lag measured into ``lag``."""
    clock = clock or SystemClock()
    lag = lag if lag is not None else T3Lag()
    tx = prepare_reflector_socket(sock)
    sent: dict[int, int] = {}  # OPT_ID (the count of replies sent before) -> T3
    replies = 0
    refreshed = -CLOCK_REFRESH_NS
    task_status.started()
    while True:
        data, anc, addr = await _recvmsg(sock)
        mono = clock.mono_ns()
        if mono - refreshed >= CLOCK_REFRESH_NS:
            refreshed = mono
            st = status()
            reflector.set_clock(error_estimate_of(st), sync_source_of(st))
        rx_ns, _hw = ts.rx_stamp(anc)
        prepared = reflector.prepare(data, addr, rx_ns if rx_ns is not None else clock.wall_ns(),
                                     ts.ttl_from_ancdata(anc), mono, ts.tos_from_ancdata(anc))
        if prepared is None:
            continue
        t3 = clock.wall_ns()  # T3 read as late as possible
        if _send(sock, prepared.encode(t3), addr, prepared.dscp) and tx:
            sent[replies] = t3
            replies += 1
            _drain_lag(sock, sent, lag)
        await trio.lowlevel.checkpoint()


def _send(sock: socket.socket, reply: bytes, addr: Any, dscp: int | None) -> bool:
    """Send a reply with its DSCP; a full buffer or an unreachable peer drops it."""
    try:
        if dscp is None:
            sock.sendto(reply, addr)
        else:
            sock.sendmsg([reply], [ts.tos_cmsg(sock, dscp)], 0, addr)
    except OSError:
        return False
    return True


def _drain_lag(sock: socket.socket, sent: dict[int, int], lag: T3Lag) -> None:
    while (got := ts.read_tx_timestamp(sock)) is not None:
        t3 = sent.pop(got[0], None)
        if t3 is not None:
            lag.add(got[1] - t3)
    if len(sent) > 4096:  # stamps the kernel never delivered
        for key in sorted(sent)[:-1024]:
            del sent[key]


# --- sender -----------------------------------------------------------------------------------


class SenderEndpoint:
    """A STAMP session-sender on one connected UDP socket.

    Run :meth:`run` in a nursery; call :meth:`probe` (concurrently if you like) to send one
    packet and get its outcome: a :class:`Reply` or :class:`Lost` after Tmax, or an error
    string if sending failed. Duplicates, late and malformed replies go to the session's
    counters.
    """

    def __init__(self, sock: socket.socket, info: SocketInfo, session: SessionSender,
                 clock: Clock | None = None,
                 status: Callable[[], ClockStatus] = sync_status) -> None:
        self.sock, self.info, self.session = sock, info, session
        self.clock = clock or SystemClock()
        self._status = status
        self._status_at = -CLOCK_REFRESH_NS
        self._ee = ErrorEstimate.from_ns(16_000_000_000, synced=False)
        self._waiting: dict[int, trio.MemorySendChannel[Reply]] = {}
        self._opt_ids: dict[int, int] = {}
        self._sent = 0
        self.unreachable = 0  # ICMP errors reported on the socket (e.g. port unreachable)
        self.clock_status: ClockStatus | None = None

    def _error_estimate(self, mono: int) -> ErrorEstimate:
        if mono - self._status_at >= CLOCK_REFRESH_NS:
            self._status_at = mono
            self.clock_status = self._status()
            self._ee = error_estimate_of(self.clock_status)
        return self._ee

    async def probe(self) -> Reply | Lost | str:
        """Send one packet and wait for its reply up to the session's Tmax.

        Returns the :class:`Reply`, :class:`Lost` (RFC 7680 §2.4), or a string naming a local
        send error (the packet never left: not loss).
        """
        send, recv = trio.open_memory_channel[Reply](1)
        mono = self.clock.mono_ns()
        sent = self.session.next_packet(self.clock.wall_ns(), mono, self._error_estimate(mono))
        self._waiting[sent.seq] = send
        try:
            try:
                self.sock.send(sent.data)
            except OSError as exc:
                self.session.send_failed(sent.seq)
                return f"send failed: {exc}"
            self._note_sent(sent.seq)
            with trio.move_on_after(self.session.tmax_ns / 1e9):
                return await recv.receive()
            lost = self.session.give_up(sent.seq)
            if lost is not None:
                return lost
            return recv.receive_nowait()  # the reply was matched as the timeout fired
        finally:
            self._waiting.pop(sent.seq, None)

    def _note_sent(self, seq: int) -> None:
        if self.info.tx_kernel:
            self._opt_ids[self._sent] = seq
            self._sent += 1
            self._drain_tx()

    def _drain_tx(self) -> None:
        while (got := ts.read_tx_timestamp(self.sock)) is not None:
            seq = self._opt_ids.pop(got[0], None)
            if seq is not None:
                self.session.tx_timestamp(seq, got[1])
        if len(self._opt_ids) > 4096:  # stamps the kernel never delivered
            for key in sorted(self._opt_ids)[:-1024]:
                del self._opt_ids[key]

    def _icmp_error(self) -> None:
        self.unreachable += 1

    def _deliver(self, outcome: Event) -> None:
        if not isinstance(outcome, Reply):
            return
        chan = self._waiting.get(outcome.seq)
        if chan is not None:
            with contextlib.suppress(trio.WouldBlock):
                chan.send_nowait(outcome)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                  ) -> None:
        """Receive replies until cancelled and hand each to the waiting :meth:`probe`."""
        task_status.started()
        while True:
            data, _addr, rx_ns, ttl = await _recv(self.sock, self._icmp_error)
            if self.info.tx_kernel:
                self._drain_tx()
            wall, mono = self.clock.wall_ns(), self.clock.mono_ns()
            event = self.session.receive(data, rx_ns if rx_ns is not None else wall, wall, mono,
                                         ttl)
            self._deliver(event)
