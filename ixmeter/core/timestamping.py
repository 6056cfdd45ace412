"""Kernel packet timestamps and TTL on Linux sockets (Documentation/networking/timestamping.rst).

- RX: ``SO_TIMESTAMPNS`` gives an ``SCM_TIMESTAMPNS`` cmsg, a ``struct timespec`` in system
  (CLOCK_REALTIME) time, stamped when the driver hands the packet to the stack.
- TX: ``SO_TIMESTAMPING`` with ``TX_SOFTWARE|SOFTWARE|OPT_ID|OPT_TSONLY`` queues, per datagram, an
  ``SCM_TIMESTAMPING`` cmsg (three timespecs: [0] software, [2] hardware) plus a
  ``sock_extended_err`` whose ``ee_data`` is the datagram's OPT_ID counter, on ``MSG_ERRQUEUE``.
- TTL / Hop Limit of a received packet: ``IP_RECVTTL`` / ``IPV6_RECVHOPLIMIT`` (RFC 8762 §4.3.1
  Ses-Sender TTL).

In the ground package because two parts stamp packets with it: the probes (what they measure)
and the testbed's emulator (when a packet entered the emulated link); the testbed imports no probe
code.

CPython 3.11 does not export these constants; the values below are the Linux ``_OLD`` ones from
``asm-generic/socket.h`` and the bits from ``linux/net_tstamp.h``.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable

SO_TIMESTAMPNS = 35  # SO_TIMESTAMPNS_OLD; also SCM_TIMESTAMPNS
SO_TIMESTAMPING = 37  # SO_TIMESTAMPING_OLD; also SCM_TIMESTAMPING
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
SCM_TIMESTAMPING = SO_TIMESTAMPING

SOF_TIMESTAMPING_TX_HARDWARE = 1 << 0
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_RX_HARDWARE = 1 << 2
SOF_TIMESTAMPING_RX_SOFTWARE = 1 << 3
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_SYS_HARDWARE = 1 << 5
SOF_TIMESTAMPING_RAW_HARDWARE = 1 << 6
SOF_TIMESTAMPING_OPT_ID = 1 << 7
SOF_TIMESTAMPING_TX_SCHED = 1 << 8
SOF_TIMESTAMPING_TX_ACK = 1 << 9
SOF_TIMESTAMPING_OPT_CMSG = 1 << 10
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
SOF_TIMESTAMPING_OPT_STATS = 1 << 12
SOF_TIMESTAMPING_OPT_PKTINFO = 1 << 13
SOF_TIMESTAMPING_OPT_TX_SWHW = 1 << 14

TX_FLAGS = (SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
            | SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY)

IP_TOS = 1
IP_TTL = 2
IP_RECVERR = 11
IP_RECVTTL = 12
IP_RECVTOS = 13
IPV6_RECVTCLASS = 66
IPV6_TCLASS = 67
IPV6_RECVERR = 25
IPV6_RECVHOPLIMIT = 51
IPV6_HOPLIMIT = 52
SO_EE_ORIGIN_TIMESTAMPING = 4

MSG_ERRQUEUE = 0x2000
MSG_DONTWAIT = 0x40
ANCBUFSIZE = 512

_TIMESPEC = struct.Struct("=qq")
_TIMESPEC3 = struct.Struct("=qqqqqq")
_INT = struct.Struct("=i")
# struct sock_extended_err: ee_errno u32, ee_origin u8, ee_type u8, ee_code u8, ee_pad u8,
# ee_info u32, ee_data u32
_EXT_ERR = struct.Struct("=IBBBBII")

Ancdata = Iterable[tuple[int, int, bytes]]


def _setsockopt(sock: socket.socket, level: int, opt: int, value: int) -> bool:
    try:
        sock.setsockopt(level, opt, value)
    except OSError:
        return False
    return True


def enable_rx_timestamps(sock: socket.socket) -> bool:
    """Ask for ``SCM_TIMESTAMPNS`` on every received packet; False if the kernel refuses."""
    return _setsockopt(sock, socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def enable_tx_timestamps(sock: socket.socket) -> bool:
    """Ask for software TX timestamps on the error queue, keyed by OPT_ID; False if refused.

    The OPT_ID counter starts at 0 for the first datagram sent after this call and counts up by
    one per datagram (timestamping.rst, "SOF_TIMESTAMPING_OPT_ID").
    """
    return _setsockopt(sock, socket.SOL_SOCKET, SO_TIMESTAMPING, TX_FLAGS)


def enable_rx_ttl(sock: socket.socket) -> bool:
    """Ask for the received TTL (IPv4) and Hop Limit (IPv6) as ancillary data."""
    if sock.family == socket.AF_INET6:
        ok = _setsockopt(sock, socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
        # a dual-stack socket may also receive IPv4-mapped packets
        _setsockopt(sock, socket.IPPROTO_IP, IP_RECVTTL, 1)
        return ok
    return _setsockopt(sock, socket.IPPROTO_IP, IP_RECVTTL, 1)


def enable_rx_tos(sock: socket.socket) -> bool:
    """Ask for the received IPv4 TOS / IPv6 Traffic Class (DSCP and ECN) as ancillary data."""
    if sock.family == socket.AF_INET6:
        ok = _setsockopt(sock, socket.IPPROTO_IPV6, IPV6_RECVTCLASS, 1)
        _setsockopt(sock, socket.IPPROTO_IP, IP_RECVTOS, 1)
        return ok
    return _setsockopt(sock, socket.IPPROTO_IP, IP_RECVTOS, 1)


def tos_from_ancdata(ancdata: Ancdata) -> int | None:
    """The TOS (``IP_TOS``, one octet) or Traffic Class (``IPV6_TCLASS``, an int) received."""
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_TOS and data:
            return data[0]
        if level == socket.IPPROTO_IPV6 and kind == IPV6_TCLASS and len(data) >= _INT.size:
            return int(_INT.unpack_from(data)[0]) & 0xFF
    return None


def tos_cmsg(sock: socket.socket, dscp: int) -> tuple[int, int, bytes]:
    """Ancillary data setting one datagram's DSCP (``sendmsg``; ECN bits 0)."""
    if sock.family == socket.AF_INET6:
        return socket.IPPROTO_IPV6, IPV6_TCLASS, _INT.pack((dscp & 0x3F) << 2)
    return socket.IPPROTO_IP, IP_TOS, _INT.pack((dscp & 0x3F) << 2)


RX_ANY_FLAGS = (SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
                | SOF_TIMESTAMPING_RX_HARDWARE | SOF_TIMESTAMPING_RAW_HARDWARE)


def enable_reflector_timestamps(sock: socket.socket) -> bool:
    """``SO_TIMESTAMPING`` for a reflector: RX stamps, hardware ones where the NIC gives them,
    and software TX stamps of its replies on the error queue (OPT_ID, OPT_TSONLY)."""
    return _setsockopt(sock, socket.SOL_SOCKET, SO_TIMESTAMPING, RX_ANY_FLAGS | TX_FLAGS)


def rx_stamp(ancdata: Ancdata) -> tuple[int | None, bool]:
    """(Unix ns, from hardware) of a received packet: the NIC's stamp from
    ``SCM_TIMESTAMPING`` [2] when there is one, else the kernel's software stamp."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPING and len(data) >= 48:
            hw = _timespec_ns(data, 32)
            if hw:
                return hw, True
    return rx_timestamp_ns(ancdata), False


def _timespec_ns(data: bytes, offset: int = 0) -> int:
    sec, nsec = _TIMESPEC.unpack_from(data, offset)
    return int(sec) * 1_000_000_000 + int(nsec)


def rx_timestamp_ns(ancdata: Ancdata) -> int | None:
    """The kernel receive time (Unix ns) from ``SCM_TIMESTAMPNS`` or ``SCM_TIMESTAMPING``.

    ``SCM_TIMESTAMPING`` is used when ``SCM_TIMESTAMPNS`` is absent: its software stamp [0], or
    the hardware stamp [2] if the software one is zero. None if neither is present.
    """
    fallback: int | None = None
    for level, kind, data in ancdata:
        if level != socket.SOL_SOCKET:
            continue
        if kind == SCM_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            return _timespec_ns(data)
        if kind == SCM_TIMESTAMPING and len(data) >= _TIMESPEC3.size:
            fallback = _timestamping_ns(data)
    return fallback


def _timestamping_ns(data: bytes) -> int | None:
    sw, hw = _timespec_ns(data, 0), _timespec_ns(data, 32)
    if sw:
        return sw
    return hw or None


def ttl_from_ancdata(ancdata: Ancdata) -> int | None:
    """The TTL (``IP_TTL``) or Hop Limit (``IPV6_HOPLIMIT``) from ancillary data, if present."""
    for level, kind, data in ancdata:
        is_v4 = level == socket.IPPROTO_IP and kind == IP_TTL
        is_v6 = level == socket.IPPROTO_IPV6 and kind == IPV6_HOPLIMIT
        if (is_v4 or is_v6) and len(data) >= _INT.size:
            return int(_INT.unpack_from(data)[0])
    return None


def tx_timestamp_from_ancdata(ancdata: Ancdata) -> tuple[int, int] | None:
    """``(opt_id, tx_ns)`` from one error-queue message's ancillary data, or None."""
    ts: int | None = None
    opt_id: int | None = None
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPING and len(data) >= 48:
            ts = _timestamping_ns(data)
        elif _is_recverr(level, kind) and len(data) >= _EXT_ERR.size:
            _errno, origin, _t, _c, _p, _info, ee_data = _EXT_ERR.unpack_from(data)
            if origin == SO_EE_ORIGIN_TIMESTAMPING:
                opt_id = int(ee_data)
    if ts is None or opt_id is None:
        return None
    return opt_id, ts


def _is_recverr(level: int, kind: int) -> bool:
    return (level == socket.IPPROTO_IP and kind == IP_RECVERR) or (
        level == socket.IPPROTO_IPV6 and kind == IPV6_RECVERR)


def read_tx_timestamp(sock: socket.socket) -> tuple[int, int] | None:
    """Read one TX timestamp ``(opt_id, tx_ns)`` from ``MSG_ERRQUEUE`` without blocking.

    Returns None when the queue holds nothing (or only messages that are not timestamps).
    """
    while True:
        try:
            _data, anc, _flags, _addr = sock.recvmsg(64, ANCBUFSIZE, MSG_ERRQUEUE | MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return None
        got = tx_timestamp_from_ancdata(anc)
        if got is not None:
            return got


def recvmsg_ts(sock: socket.socket, bufsize: int = 65535,
               ) -> tuple[bytes, object, int | None, int | None]:
    """``recvmsg`` returning ``(data, addr, rx_ns | None, ttl | None)``.

    Blocks as the socket does (callers on trio wait with ``trio.lowlevel.wait_readable`` first).
    ``rx_ns`` is the kernel's receive stamp when :func:`enable_rx_timestamps` succeeded, ``ttl``
    the received TTL/Hop Limit when :func:`enable_rx_ttl` did.
    """
    data, anc, _flags, addr = sock.recvmsg(bufsize, ANCBUFSIZE)
    return data, addr, rx_timestamp_ns(anc), ttl_from_ancdata(anc)
