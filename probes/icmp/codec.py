"""ICMP and ICMPv6 echo codec: pure, no sockets (RFC 792, RFC 4443 §4, RFC 1071 checksum).

Any bytes either decode or raise :class:`MalformedPacket`. Echo messages carry an ixmeter
payload prefix (magic, process cookie, 64-bit probe token) so a probe process keeps its own id
space on a socket that sees every ICMP message of the host (the ICMP identifier alone is only
16 bits and, derived from the PID as iputils and icmplib do, collides between processes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ixmeter.core.errors import MalformedPacket
from ixmeter.core.rules import SMALLEST_PACKET, Method

ICMP_ECHO_REPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_ECHO_REQUEST = 8
ICMP_TIME_EXCEEDED = 11
ICMPV6_DEST_UNREACH = 1
ICMPV6_TIME_EXCEEDED = 3
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129

HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence (RFC 792 "Echo")
PREFIX = struct.Struct("!4sIQ")  # magic, process cookie, probe token
MAGIC = b"IXMP"
MIN_SIZE = HEADER.size + PREFIX.size  # smallest ICMP message ixmeter sends: 24 octets
assert MIN_SIZE == SMALLEST_PACKET[Method.ICMP][0] == SMALLEST_PACKET[Method.TRACEROUTE][0]
_IPV4_MIN = 20
_V6_PSEUDO = struct.Struct("!16s16sII")  # src, dst, upper-layer length, next header (RFC 8200 §8.1)



@dataclass(frozen=True, slots=True)
class Echo:
    """An ICMP/ICMPv6 echo request or reply (RFC 792; RFC 4443 §4.1-4.2)."""

    type: int
    code: int
    ident: int
    seq: int
    payload: bytes
    checksum_ok: bool = True


@dataclass(frozen=True, slots=True)
class IcmpError:
    """An ICMP error (unreachable, time exceeded) quoting the echo request that caused it."""

    type: int
    code: int
    quoted: Echo


@dataclass(frozen=True, slots=True)
class ForeignError:
    """A well-formed ICMP error about another protocol's packet (e.g. a port unreachable
    answering a STAMP test to a closed UDP port): not an echo's, not malformed."""

    type: int
    code: int
    protocol: int


@dataclass(frozen=True, slots=True)
class Token:
    """The ixmeter payload prefix of an echo: which process (cookie) and which probe (token)."""

    cookie: int
    token: int


def checksum(data: bytes) -> int:
    """The Internet checksum: one's complement of the one's complement sum (RFC 1071 §4.1)."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(memoryview(data).cast("H"))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return _swap(~total & 0xFFFF)


def _swap(native: int) -> int:
    """Native-order 16-bit sum -> network order value (the sum is byte-order independent)."""
    return int.from_bytes(native.to_bytes(2, "little"), "big") if _LITTLE else native


_LITTLE = struct.pack("=H", 1) == b"\x01\x00"


def v6_pseudo_header(src: bytes, dst: bytes, length: int) -> bytes:
    """IPv6 pseudo-header for the ICMPv6 checksum (RFC 8200 §8.1; RFC 4443 §2.3)."""
    return _V6_PSEUDO.pack(src, dst, length, 58)


def payload_for(cookie: int, token: int, size: int) -> bytes:
    """Echo data for an ICMP message of ``size`` octets: prefix then a fixed fill pattern."""
    if size < MIN_SIZE:
        raise ValueError(f"ICMP size {size} is below the minimum {MIN_SIZE}")
    fill = size - MIN_SIZE
    return PREFIX.pack(MAGIC, cookie, token) + bytes(i & 0xFF for i in range(fill))


def encode_echo(ident: int, seq: int, payload: bytes, *, v6: bool = False,
                request: bool = True, pseudo: bytes = b"") -> bytes:
    """An echo request/reply. For ICMPv6 the checksum needs ``pseudo`` (else 0: the kernel
    fills it on raw ICMPv6 sockets, RFC 3542 §3.1)."""
    kind = (ICMPV6_ECHO_REQUEST if request else ICMPV6_ECHO_REPLY) if v6 else (
        ICMP_ECHO_REQUEST if request else ICMP_ECHO_REPLY)
    body = HEADER.pack(kind, 0, 0, ident & 0xFFFF, seq & 0xFFFF) + payload
    if v6 and not pseudo:
        return body
    csum = checksum(pseudo + body)
    return body[:2] + csum.to_bytes(2, "big") + body[4:]


def decode_token(payload: bytes) -> Token:
    """The ixmeter prefix of an echo payload; :class:`MalformedPacket` if it is not ours."""
    if len(payload) < PREFIX.size:
        raise MalformedPacket(f"echo payload of {len(payload)} octets has no ixmeter prefix")
    magic, cookie, token = PREFIX.unpack_from(payload)
    if magic != MAGIC:
        raise MalformedPacket("echo payload does not start with the ixmeter magic")
    return Token(cookie, token)


def strip_ipv4(packet: bytes) -> bytes:
    """The ICMP message inside an IPv4 datagram as a raw socket returns it (RFC 791 §3.1)."""
    if len(packet) < _IPV4_MIN:
        raise MalformedPacket(f"IPv4 datagram of {len(packet)} octets is shorter than a header")
    if packet[0] >> 4 != 4:
        raise MalformedPacket(f"IP version {packet[0] >> 4} where 4 was expected")
    ihl = (packet[0] & 0x0F) * 4
    if ihl < _IPV4_MIN or ihl > len(packet):
        raise MalformedPacket(f"IPv4 header length {ihl} does not fit {len(packet)} octets")
    if packet[9] != 1:
        raise MalformedPacket(f"IPv4 protocol {packet[9]} is not ICMP")
    return packet[ihl:]


def decode_icmp(message: bytes, *, v6: bool = False, pseudo: bytes = b""
                ) -> Echo | IcmpError | ForeignError:
    """Decode an echo or an error quoting an echo; anything else raises :class:`MalformedPacket`.

    ``checksum_ok`` is False when the checksum does not verify (ICMPv6 only checked with
    ``pseudo``; the kernel verifies it on raw ICMPv6 sockets).
    """
    if len(message) < HEADER.size:
        raise MalformedPacket(f"ICMP message of {len(message)} octets is shorter than 8")
    kind, code, _csum, ident, seq = HEADER.unpack_from(message)
    ok = True if (v6 and not pseudo) else checksum(pseudo + message) == 0
    echo_types = (ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY) if v6 else (
        ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY)
    if kind in echo_types:
        return Echo(kind, code, ident, seq, bytes(message[HEADER.size:]), ok)
    error_types = (ICMPV6_DEST_UNREACH, ICMPV6_TIME_EXCEEDED) if v6 else (
        ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED)
    if kind in error_types:
        foreign = _foreign_protocol(message[HEADER.size:], v6)
        if foreign is not None:
            return ForeignError(kind, code, foreign)
        return IcmpError(kind, code, _quoted_echo(message[HEADER.size:], v6))
    raise MalformedPacket(f"ICMP{'v6' if v6 else ''} type {kind} is neither echo nor an error")


def _foreign_protocol(quoted: bytes, v6: bool) -> int | None:
    """The protocol of the quoted packet when it is a well-formed IP header of another
    protocol than ICMP/ICMPv6 (RFC 792; RFC 4443 §3: the invoking packet); else None."""
    if v6:
        ok = len(quoted) >= 40 and quoted[0] >> 4 == 6
        return quoted[6] if ok and quoted[6] != 58 else None
    ok = len(quoted) >= _IPV4_MIN and quoted[0] >> 4 == 4 and (quoted[0] & 0x0F) * 4 >= _IPV4_MIN
    return quoted[9] if ok and quoted[9] != 1 else None


def _quoted_echo(quoted: bytes, v6: bool) -> Echo:
    """The echo request quoted in an ICMP error (RFC 792; RFC 4443 §3.1, §3.3)."""
    if v6:
        if len(quoted) < 40 + HEADER.size or quoted[0] >> 4 != 6 or quoted[6] != 58:
            raise MalformedPacket("ICMPv6 error does not quote an ICMPv6 packet")
        inner = quoted[40:]
    else:
        inner = strip_ipv4(quoted)
    got = decode_icmp(inner, v6=v6)
    if not isinstance(got, Echo):
        raise MalformedPacket("ICMP error quotes another ICMP error")
    return Echo(got.type, got.code, got.ident, got.seq, got.payload, True)
