"""Paris traceroute probes on the measured ICMP flow: pure encode and match, no sockets.

Paris traceroute (Augustin et al., "Avoiding traceroute anomalies with Paris traceroute", IMC
2006, §3) keeps every field a per-flow load balancer may hash constant across a trace's
probes. For ICMP echo those are the type, code and checksum (the first four octets of the
transport header, where a 5-tuple hash reads the ports) and the identifier (Linux hashes it as
the ICMP flow's port); the identifier here is the one the path's ICMP measurements use (the
pinger's), so a trace follows the measured flow under ECMP. Each probe's
sequence number says which trace and TTL it is (``slot * 64 + ttl``), and a 16-bit word of the
echo data compensates it so the checksum stays the same for every probe of the trace
(RFC 1071 one's complement sum: ``seq + word = 0xFFFF``).

Answers (RFC 792; RFC 4443 §3-4): time exceeded or destination unreachable quoting our echo
(an IP header to our destination, then at least 8 octets: the echo's identifier and sequence
number), or an echo reply from the destination carrying our data (:data:`MAGIC`). Any bytes
either match or are ignored (:func:`match`, never raises).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from probes.icmp.codec import ICMP_ECHO_REQUEST, ICMPV6_ECHO_REQUEST, MIN_SIZE, checksum

MAGIC = b"IXTR"  # trace probes' echo data; the pinger ignores echoes carrying it
MAX_TTL = 63  # ttl fits the low 6 bits of the sequence number
SLOTS = 1024  # concurrent traces per identifier
_HEADER = struct.Struct("!BBHHH")
_DATA = struct.Struct("!4sH")  # magic, compensation word
_V4_ERRORS, _V6_ERRORS = (3, 11), (1, 3)  # unreachable, time exceeded
_V4_REPLY, _V6_REPLY = 0, 129


def sequence(slot: int, ttl: int) -> int:
    """The sequence number of TTL ``ttl`` in trace ``slot``."""
    if not (0 <= slot < SLOTS and 1 <= ttl <= MAX_TTL):
        raise ValueError(f"slot {slot} / ttl {ttl} out of range")
    return slot * 64 + ttl


def echo(ident: int, slot: int, ttl: int, size: int, *, v6: bool) -> bytes:
    """The echo request of TTL ``ttl`` in trace ``slot``: ``size`` ICMP octets, same checksum
    for every TTL of the slot. The ICMPv6 checksum is left 0 (the kernel fills it on raw
    ICMPv6 sockets, RFC 3542 §3.1; constant too, as the message's sum is)."""
    if size < MIN_SIZE:
        raise ValueError(f"trace size {size} is below the minimum {MIN_SIZE}")
    seq = sequence(slot, ttl)
    data = _DATA.pack(MAGIC, 0xFFFF - seq) + bytes(size - _HEADER.size - _DATA.size)
    kind = ICMPV6_ECHO_REQUEST if v6 else ICMP_ECHO_REQUEST
    body = _HEADER.pack(kind, 0, 0, ident, seq) + data
    if v6:
        return body
    return body[:2] + checksum(body).to_bytes(2, "big") + body[4:]


@dataclass(frozen=True, slots=True)
class Answer:
    """A trace probe's answer: which slot and TTL it answers, and whether it came from the
    destination (an echo reply or an unreachable from it: the trace reached it)."""

    slot: int
    ttl: int
    final: bool


def match(data: bytes, src: str, dst: str, ident: int, *, v6: bool) -> Answer | None:
    """Whether an ICMP message (no IP header) from ``src`` answers a trace probe to ``dst``
    with identifier ``ident``; None for anything else."""
    if len(data) < 8:
        return None
    kind = data[0]
    if kind == (_V6_REPLY if v6 else _V4_REPLY):
        ours = src == dst and data[8:12] == MAGIC
        return _answer(data[4:8], ident, final=True) if ours else None
    errors = _V6_ERRORS if v6 else _V4_ERRORS
    if kind not in errors:
        return None
    quoted = _quoted_echo(data[8:], dst, v6)
    if quoted is None:
        return None
    return _answer(quoted, ident, final=kind == errors[0] and src == dst)


def _answer(id_seq: bytes, ident: int, *, final: bool) -> Answer | None:
    got_ident, seq = struct.unpack("!HH", id_seq)
    ttl, slot = seq & 63, seq >> 6
    if got_ident != ident or not 1 <= ttl <= MAX_TTL:
        return None
    return Answer(slot, ttl, final)


def _quoted_echo(quoted: bytes, dst: str, v6: bool) -> bytes | None:
    """Identifier and sequence of the echo request to ``dst`` an ICMP error quotes."""
    packed = ipaddress.ip_address(dst).packed
    if v6:
        ok = len(quoted) >= 48 and quoted[0] >> 4 == 6 and quoted[6] == 58
        inner = quoted[40:48] if ok and quoted[24:40] == packed else b""
    else:
        ihl = (quoted[0] & 0x0F) * 4 if quoted else 0
        ok = len(quoted) >= ihl + 8 >= 28 and quoted[0] >> 4 == 4 and quoted[9] == 1
        inner = quoted[ihl:ihl + 8] if ok and quoted[16:20] == packed else b""
    want = ICMPV6_ECHO_REQUEST if v6 else ICMP_ECHO_REQUEST
    if len(inner) < 8 or inner[0] != want:
        return None
    return inner[4:8]
