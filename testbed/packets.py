"""Pure IPv4/IPv6 packet handling for the link emulator: header view, TTL/hop-limit rewrite and
ICMP Time Exceeded construction. No sockets, no clock.

Definitions:
  IPv4 header and checksum: RFC 791 §3.1; TTL decrement by forwarders: RFC 1812 §5.3.1.
  IPv6 header, hop limit: RFC 8200 §3; upper-layer checksum pseudo-header: RFC 8200 §8.1.
  ICMP Time Exceeded: RFC 792 (type 11 code 0), quoting rules RFC 1812 §4.3.2.3 (at most 576 bytes).
  ICMPv6 Time Exceeded: RFC 4443 §3.3 (type 3 code 0), as much of the invoking packet as fits
  in the IPv6 minimum MTU (RFC 4443 §2.4 (c)); checksum RFC 4443 §2.3.
  No ICMP error about an ICMP error: RFC 1812 §4.3.2.7, RFC 4443 §2.4 (e).
"""

from __future__ import annotations

import functools
import ipaddress
import struct
from dataclasses import dataclass

from ixmeter.core.errors import MalformedPacket

IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")
IPV6_HEADER = struct.Struct("!IHBB16s16s")
ICMP_HEADER = struct.Struct("!BBHI")

PROTO_ICMP = 1
PROTO_ICMPV6 = 58
ICMP_TIME_EXCEEDED = 11
ICMPV6_TIME_EXCEEDED = 3
IPV6_EXTENSIONS = frozenset({0, 43, 44, 60})
ICMP_ERROR_TYPES = frozenset({3, 4, 5, 11, 12})  # RFC 792 error messages
IPV4_ERROR_MAX = 576  # RFC 1812 §4.3.2.3
IPV6_MIN_MTU = 1280  # RFC 8200 §5
REPLY_TTL = 64



@dataclass(frozen=True, slots=True)
class IpView:
    """The fields the emulator needs from an IP header."""

    version: int
    src: bytes  # 4 or 16 bytes, network order
    dst: bytes
    ttl: int  # TTL (v4) or hop limit (v6)
    proto: int  # protocol (v4) or first next-header (v6)
    header_len: int
    is_icmp_error: bool
    first_fragment: bool


def parse(packet: bytes) -> IpView:
    """Decode the IP header of ``packet`` or raise :class:`MalformedPacket`."""
    if not packet:
        raise MalformedPacket("empty packet")
    version = packet[0] >> 4
    if version == 4:
        return _parse_v4(packet)
    if version == 6:
        return _parse_v6(packet)
    raise MalformedPacket(f"IP version {version}")


def _parse_v4(packet: bytes) -> IpView:
    if len(packet) < IPV4_HEADER.size:
        raise MalformedPacket("IPv4 packet shorter than its header")
    vihl, _tos, total, _ident, frag, ttl, proto, _ck, src, dst = IPV4_HEADER.unpack_from(packet)
    ihl = (vihl & 0x0F) * 4
    if ihl < 20 or ihl > len(packet) or total < ihl or total > len(packet):
        raise MalformedPacket(f"IPv4 header length {ihl} / total {total} of {len(packet)} bytes")
    first = (frag & 0x1FFF) == 0
    is_err = proto == PROTO_ICMP and first and len(packet) > ihl and packet[ihl] in ICMP_ERROR_TYPES
    return IpView(4, src, dst, ttl, proto, ihl, is_err, first)


def _parse_v6(packet: bytes) -> IpView:
    if len(packet) < IPV6_HEADER.size:
        raise MalformedPacket("IPv6 packet shorter than its header")
    _vtf, plen, nxt, hlim, src, dst = IPV6_HEADER.unpack_from(packet)
    if IPV6_HEADER.size + plen > len(packet):
        raise MalformedPacket(f"IPv6 payload length {plen} exceeds {len(packet) - 40} bytes")
    proto, offset, first = _skip_extensions(packet, nxt, IPV6_HEADER.size)
    is_err = proto == PROTO_ICMPV6 and first and len(packet) > offset and packet[offset] < 128
    return IpView(6, src, dst, hlim, nxt, IPV6_HEADER.size, is_err, first)  # RFC 4443 §2.1


def _skip_extensions(packet: bytes, nxt: int, offset: int) -> tuple[int, int, bool]:
    """(upper-layer protocol, its offset, first fragment?) after the IPv6 extension headers
    (RFC 8200 §4: hop-by-hop 0, routing 43, fragment 44, destination options 60)."""
    first = True
    while nxt in IPV6_EXTENSIONS:
        if offset + 8 > len(packet):
            raise MalformedPacket("IPv6 extension header beyond the packet")
        if nxt == 44:  # fragment header, RFC 8200 §4.5: 13-bit offset in 8-octet units
            first = first and (int.from_bytes(packet[offset + 2:offset + 4], "big") >> 3) == 0
            size = 8
        else:
            size = (packet[offset + 1] + 1) * 8
        nxt, offset = packet[offset], offset + size
    return nxt, offset, first


def checksum(data: bytes) -> int:
    """The Internet checksum: one's complement of the one's complement sum (RFC 1071 §1)."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def with_ttl(packet: bytes, ttl: int) -> bytes:
    """``packet`` with its TTL / hop limit set to ``ttl`` (IPv4 header checksum recomputed,
    RFC 791 §3.1; IPv6 has no header checksum, RFC 8200 §3)."""
    if not 0 <= ttl <= 255:
        raise ValueError(f"TTL {ttl} out of range")
    view = parse(packet)
    buf = bytearray(packet)
    if view.version == 4:
        buf[8] = ttl
        buf[10:12] = b"\0\0"
        buf[10:12] = checksum(bytes(buf[: view.header_len])).to_bytes(2, "big")
    else:
        buf[7] = ttl
    return bytes(buf)


def time_exceeded(packet: bytes, hop: bytes) -> bytes | None:
    """The Time Exceeded message router ``hop`` returns for expired ``packet``, or None when
    no error may be sent (it is itself an ICMP error or a non-first fragment)."""
    view = parse(packet)
    if view.is_icmp_error or not view.first_fragment:
        return None
    if view.version == 4:
        return _time_exceeded_v4(packet, view, hop)
    return _time_exceeded_v6(packet, view, hop)


def _time_exceeded_v4(packet: bytes, view: IpView, hop: bytes) -> bytes:
    if len(hop) != 4:
        raise ValueError("IPv4 packet needs an IPv4 hop address")
    quote = packet[: IPV4_ERROR_MAX - IPV4_HEADER.size - ICMP_HEADER.size]
    icmp = ICMP_HEADER.pack(ICMP_TIME_EXCEEDED, 0, 0, 0) + quote
    icmp = icmp[:2] + checksum(icmp).to_bytes(2, "big") + icmp[4:]
    return ipv4_header(hop, view.src, PROTO_ICMP, len(icmp)) + icmp


def ipv4_header(src: bytes, dst: bytes, proto: int, payload_len: int,
                ttl: int = REPLY_TTL) -> bytes:
    """A 20-byte IPv4 header with its checksum (RFC 791 §3.1)."""
    hdr = IPV4_HEADER.pack(0x45, 0, 20 + payload_len, 0, 0x4000, ttl, proto, 0, src, dst)
    return hdr[:10] + checksum(hdr).to_bytes(2, "big") + hdr[12:]


def _time_exceeded_v6(packet: bytes, view: IpView, hop: bytes) -> bytes:
    if len(hop) != 16:
        raise ValueError("IPv6 packet needs an IPv6 hop address")
    quote = packet[: IPV6_MIN_MTU - IPV6_HEADER.size - ICMP_HEADER.size]
    icmp = ICMP_HEADER.pack(ICMPV6_TIME_EXCEEDED, 0, 0, 0) + quote
    ck = icmpv6_checksum(hop, view.src, icmp)
    icmp = icmp[:2] + ck.to_bytes(2, "big") + icmp[4:]
    hdr = IPV6_HEADER.pack(6 << 28, len(icmp), PROTO_ICMPV6, REPLY_TTL, hop, view.src)
    return hdr + icmp


def icmpv6_checksum(src: bytes, dst: bytes, message: bytes) -> int:
    """ICMPv6 checksum over the pseudo-header (RFC 8200 §8.1, RFC 4443 §2.3)."""
    pseudo = src + dst + struct.pack("!I3xB", len(message), PROTO_ICMPV6)
    return checksum(pseudo + message)


@functools.lru_cache(maxsize=8192)
def packed(address: str) -> bytes:
    """An IPv4 or IPv6 address in network byte order."""
    return ipaddress.ip_address(address).packed


def text(address: bytes) -> str:
    """The printable form of a packed address."""
    return str(ipaddress.ip_address(address))
