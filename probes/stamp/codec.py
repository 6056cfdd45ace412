"""STAMP test packets (RFC 8762, RFC 8972): pure encode/decode, no sockets, no clock.

Every ``decode_*`` either returns a frozen dataclass or raises :class:`MalformedPacket` (or its
subclass :class:`BadHmac`); never ``IndexError`` or ``struct.error``.

Layouts (octet offsets):

- Session-Sender, unauthenticated, 44 octets (RFC 8762 §4.2.1 Fig. 3; RFC 8972 §3 Fig. 1):
  seq 0-3, Timestamp T1 4-11, Error Estimate 12-13, SSID 14-15, MBZ 16-43, then TLVs/padding.
- TWAMP-Light Session-Sender (RFC 5357 §4.1.2, App. I), 14 octets + padding: seq, Timestamp,
  Error Estimate; accepted on receipt as a sender packet without SSID (RFC 8762 §4.6).
- Session-Reflector, unauthenticated, 44 octets (RFC 8762 §4.3.1; RFC 8972 Fig. 2): seq 0-3,
  T3 4-11, Error Estimate 12-13, SSID 14-15, T2 16-23, Session-Sender seq 24-27, T1 28-35,
  Session-Sender Error Estimate 36-37, MBZ 38-39, Ses-Sender TTL 40, MBZ 41-43. A TWAMP-Light
  reflector's reply may stop after the TTL, at 41 octets (RFC 5357 §4.2.1); it is accepted.
- Authenticated, 112 octets each (RFC 8762 §4.2.2, §4.3.2; RFC 8972 Fig. 3-4): HMAC-SHA-256
  truncated to 16 octets (96-111) over octets 0-95 (RFC 8762 §4.4).
- Error Estimate (RFC 4656 §4.1.2): S(1) Z(1) Scale(6) Multiplier(8),
  error = Multiplier * 2^(Scale-32) s; Multiplier 0 means the packet is corrupt.
- TLV (RFC 8972 §4, Fig. 5): Flags(8: U M I R R R R R) Type(8) Length(16, of Value) Value;
  Class of Service (§4.4), HMAC (§4.8: in authenticated mode the last TLV, an HMAC over the
  Sequence Number and the TLVs before it, since the base packet's HMAC covers octets 0-95 only).

MBZ fields are zero on transmission and ignored on receipt (RFC 8762 §4.2.1).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from ixmeter.core.errors import MalformedPacket
from ixmeter.core.rules import SMALLEST_PACKET, Method

BASE_SIZE = 44  # unauthenticated base packet (RFC 8762 §4.2.1, §4.3.1)
AUTH_SIZE = 112  # authenticated base packet (RFC 8762 §4.2.2, §4.3.2)
TWAMP_LIGHT_MIN = 14  # seq + timestamp + error estimate (RFC 5357 §4.1.2)
TWAMP_LIGHT_REFLECTOR_MIN = 41  # up to and including Sender TTL (RFC 5357 §4.2.1)
HMAC_COVERED = 96  # octets 0-95 (RFC 8762 §4.4)
HMAC_LEN = 16
MAX_PACKET = 65507  # largest UDP payload over IPv4

_SENDER = struct.Struct("!IQHH28s")
_TWAMP_LIGHT = struct.Struct("!IQH")
_REFLECTOR = struct.Struct("!IQHHQIQHHB3s")
_AUTH_SENDER = struct.Struct("!I12sQHH68s")  # the 96 covered octets; HMAC follows
_AUTH_REFLECTOR = struct.Struct("!I12sQHH4sQ8sI12sQH6sB15s")
_TLV_HEADER = struct.Struct("!BBH")

assert _SENDER.size == _REFLECTOR.size == BASE_SIZE == SMALLEST_PACKET[Method.STAMP][0]
assert _AUTH_SENDER.size == _AUTH_REFLECTOR.size == HMAC_COVERED



class BadHmac(MalformedPacket):
    """An authenticated packet whose HMAC does not verify (RFC 8762 §4.4)."""


# --- Error Estimate (RFC 4656 §4.1.2) -------------------------------------------------------

_MAX_SCALE = 63
_MAX_MULT = 255


@dataclass(frozen=True, slots=True)
class ErrorEstimate:
    """S (synchronised to UTC), Z (PTP format, RFC 8186 §2.3), Scale and Multiplier."""

    synced: bool
    ptp: bool
    scale: int
    multiplier: int

    def __post_init__(self) -> None:
        if not 0 <= self.scale <= _MAX_SCALE or not 1 <= self.multiplier <= _MAX_MULT:
            raise MalformedPacket(
                f"error estimate: scale {self.scale} / multiplier {self.multiplier} out of range")

    @property
    def ns(self) -> int:
        """The estimate in nanoseconds, rounded up: Multiplier * 2^(Scale-32) s."""
        units = self.multiplier << self.scale  # in 2^-32 s
        return -((-units * 1_000_000_000) >> 32)

    @classmethod
    def from_ns(cls, error_ns: int, synced: bool, ptp: bool = False) -> ErrorEstimate:
        """The smallest Scale whose Multiplier (rounded up) fits in 8 bits, never under-stating."""
        units = max(1, -((-max(0, error_ns) << 32) // 1_000_000_000))  # ceil(ns * 2^32 / 1e9)
        scale = 0
        while scale < _MAX_SCALE and -(-units >> scale) > _MAX_MULT:
            scale += 1
        return cls(synced, ptp, scale, min(_MAX_MULT, -(-units >> scale)))

    def to_int(self) -> int:
        return (self.synced << 15) | (self.ptp << 14) | (self.scale << 8) | self.multiplier


def decode_error_estimate(value: int) -> ErrorEstimate:
    """16-bit field -> :class:`ErrorEstimate`; Multiplier 0 is corrupt (RFC 4656 §4.1.2)."""
    if not 0 <= value <= 0xFFFF:
        raise MalformedPacket(f"error estimate: {value} is not a 16-bit value")
    if value & 0xFF == 0:
        raise MalformedPacket("error estimate: Multiplier 0 (RFC 4656 §4.1.2: corrupt)")
    return ErrorEstimate(bool(value >> 15), bool((value >> 14) & 1), (value >> 8) & 0x3F,
                         value & 0xFF)


# --- TLVs (RFC 8972 §4) ---------------------------------------------------------------------

FLAG_U = 0x80  # Unrecognized: the reflector did not understand the Type
FLAG_M = 0x40  # Malformed
FLAG_I = 0x20  # Integrity: HMAC TLV verification failed

TLV_EXTRA_PADDING = 1  # RFC 8972 §4.1
TLV_LOCATION = 2
TLV_TIMESTAMP_INFO = 3  # RFC 8972 §4.3
TLV_CLASS_OF_SERVICE = 4
TLV_HMAC = 8

SYNC_NTP = 1  # RFC 8972 §5 "Synchronization Sources" registry
SYNC_PTP = 2
SYNC_SSU_BITS = 3
SYNC_GNSS = 4
SYNC_FREE_RUNNING = 5  # "local free-running": one-way delays NOT EVALUABLE
TS_HW_ASSIST = 1  # RFC 8972 §5 "Timestamping Methods" registry
TS_SW_LOCAL = 2
TS_CONTROL_PLANE = 3


@dataclass(frozen=True, slots=True)
class Tlv:
    """One STAMP TLV; ``flags`` holds U/M/I (RFC 8972 §4)."""

    type: int
    value: bytes = b""
    flags: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.type <= 255 or not 0 <= self.flags <= 255 or len(self.value) > 0xFFFF:
            raise MalformedPacket(f"TLV type {self.type}: field out of range")


def encode_tlvs(tlvs: tuple[Tlv, ...] | list[Tlv]) -> bytes:
    """TLVs laid end to end (RFC 8972 §4, Fig. 5)."""
    return b"".join(_TLV_HEADER.pack(t.flags, t.type, len(t.value)) + t.value for t in tlvs)


def decode_tlvs(data: bytes) -> tuple[Tlv, ...]:
    """Parse a TLV chain that must end exactly at the end of ``data`` (RFC 8972 §4)."""
    out: list[Tlv] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < _TLV_HEADER.size:
            raise MalformedPacket(f"TLV at offset {pos}: {len(data) - pos} octets, need 4")
        flags, kind, length = _TLV_HEADER.unpack_from(data, pos)
        end = pos + _TLV_HEADER.size + length
        if end > len(data):
            raise MalformedPacket(f"TLV at offset {pos}: length {length} runs past the packet")
        out.append(Tlv(kind, bytes(data[pos + _TLV_HEADER.size:end]), flags))
        pos = end
    return tuple(out)


@dataclass(frozen=True, slots=True)
class TimestampInfo:
    """Timestamp Information TLV value (RFC 8972 §4.3): sync source and method, in and out."""

    sync_src_in: int = 0
    timestamp_in: int = 0
    sync_src_out: int = 0
    timestamp_out: int = 0

    def to_tlv(self, flags: int = 0) -> Tlv:
        value = bytes((self.sync_src_in, self.timestamp_in, self.sync_src_out,
                       self.timestamp_out))
        return Tlv(TLV_TIMESTAMP_INFO, value, flags)


@dataclass(frozen=True, slots=True)
class ClassOfService:
    """Class of Service TLV value (RFC 8972 §4.4, Type 4, Length 4): the DSCP and ECN the
    sender asks the reflected packet to carry (DSCP1, ECN1), the DSCP and ECN the test packet
    arrived with (DSCP2, ECN2, filled by the reflector) and RP (Reverse Path: 1 when the
    reflector's policy did not let it use DSCP1)."""

    dscp1: int = 0
    ecn1: int = 0
    dscp2: int = 0
    ecn2: int = 0
    rp: int = 0

    def to_tlv(self, flags: int = 0) -> Tlv:
        value = bytes((((self.dscp1 & 0x3F) << 2) | (self.ecn1 & 3),
                       ((self.dscp2 & 0x3F) << 2) | (self.ecn2 & 3), (self.rp & 3) << 6, 0))
        return Tlv(TLV_CLASS_OF_SERVICE, value, flags)


def decode_class_of_service(tlv: Tlv) -> ClassOfService:
    """The Class of Service TLV's fields (RFC 8972 §4.4)."""
    if tlv.type != TLV_CLASS_OF_SERVICE or len(tlv.value) != 4:
        raise MalformedPacket(f"class of service TLV: type {tlv.type}, length "
                              f"{len(tlv.value)} (need type 4, length 4)")
    v = tlv.value
    return ClassOfService(v[0] >> 2, v[0] & 3, v[1] >> 2, v[1] & 3, v[2] >> 6)


HMAC_TLV_SIZE = 4 + HMAC_LEN


def hmac_tlv(key: bytes, seq: int, preceding: bytes) -> Tlv:
    """The HMAC TLV (RFC 8972 §4.8, Type 8): HMAC-SHA-256 truncated to 16 octets, with the
    authenticated mode's key (RFC 8762 §4.4), over the packet's Sequence Number and every TLV
    before it; it is the last TLV."""
    return Tlv(TLV_HMAC, _mac(key, _u(seq, 32, "seq").to_bytes(4, "big") + preceding))


def tlvs_verified(key: bytes, seq: int, trailer: bytes) -> bool:
    """Whether ``trailer`` ends with an HMAC TLV that verifies over ``seq`` and the TLVs
    before it (RFC 8972 §4.8); False for no TLVs, no HMAC TLV or a wrong one."""
    if len(trailer) < HMAC_TLV_SIZE:
        return False
    head, last = trailer[:-HMAC_TLV_SIZE], trailer[-HMAC_TLV_SIZE:]
    if last[1] != TLV_HMAC or last[2:4] != HMAC_LEN.to_bytes(2, "big"):
        return False
    return hmac.compare_digest(hmac_tlv(key, seq, head).value, last[4:])


def decode_timestamp_info(tlv: Tlv) -> TimestampInfo:
    """The four one-octet fields; optional sub-TLVs after them are ignored (RFC 8972 §4.3)."""
    if tlv.type != TLV_TIMESTAMP_INFO or len(tlv.value) < 4:
        raise MalformedPacket(f"timestamp information TLV: type {tlv.type}, "
                              f"length {len(tlv.value)} (need type 3, length >= 4)")
    v = tlv.value
    return TimestampInfo(v[0], v[1], v[2], v[3])


# --- packets --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SenderPacket:
    """A Session-Sender test packet. ``timestamp`` is the raw 64-bit T1 (NTP, or PTP if Z=1).

    ``trailer`` is everything after the base packet (TLVs or padding); ``wire_len`` the length
    it arrived with (0 when built locally); a TWAMP-Light packet shorter than 44 octets decodes
    with ``ssid == 0`` and an empty trailer.
    """

    seq: int
    timestamp: int
    error_estimate: ErrorEstimate
    ssid: int = 0
    trailer: bytes = b""
    wire_len: int = 0


@dataclass(frozen=True, slots=True)
class ReflectorPacket:
    """A Session-Reflector test packet; timestamps are raw 64-bit values (T3, T2, T1)."""

    seq: int
    timestamp: int
    error_estimate: ErrorEstimate
    ssid: int
    receive_timestamp: int
    sender_seq: int
    sender_timestamp: int
    sender_error_estimate: ErrorEstimate
    sender_ttl: int
    trailer: bytes = b""


def _mac(key: bytes, covered: bytes) -> bytes:
    return hmac.new(key, covered, hashlib.sha256).digest()[:HMAC_LEN]


def _check_hmac(data: bytes, key: bytes) -> None:
    want = _mac(key, bytes(data[:HMAC_COVERED]))
    if not hmac.compare_digest(want, bytes(data[HMAC_COVERED:AUTH_SIZE])):
        raise BadHmac("HMAC does not verify (RFC 8762 §4.4)")


def _u(value: int, bits: int, name: str) -> int:
    if not 0 <= value < (1 << bits):
        raise MalformedPacket(f"{name}: {value} does not fit in {bits} bits")
    return value


def encode_sender(pkt: SenderPacket, key: bytes | None = None) -> bytes:
    """Bytes of a sender packet: 44 octets (or 112 with ``key``) followed by the trailer."""
    seq, ts = _u(pkt.seq, 32, "seq"), _u(pkt.timestamp, 64, "timestamp")
    ee, ssid = pkt.error_estimate.to_int(), _u(pkt.ssid, 16, "ssid")
    if key is None:
        return _SENDER.pack(seq, ts, ee, ssid, bytes(28)) + pkt.trailer
    covered = _AUTH_SENDER.pack(seq, bytes(12), ts, ee, ssid, bytes(68))
    return covered + _mac(key, covered) + pkt.trailer


def decode_sender(data: bytes, key: bytes | None = None) -> SenderPacket:
    """Parse a sender packet; with ``key``, verify the HMAC first (RFC 8762 §4.4)."""
    if key is not None:
        return _decode_sender_auth(data, key)
    if len(data) < TWAMP_LIGHT_MIN:
        raise MalformedPacket(f"sender packet: {len(data)} octets, need at least 14")
    if len(data) < BASE_SIZE:  # TWAMP-Light interworking (RFC 8762 §4.6)
        seq, ts, ee = _TWAMP_LIGHT.unpack_from(data)
        return SenderPacket(seq, ts, decode_error_estimate(ee), 0, b"", len(data))
    seq, ts, ee, ssid, _mbz = _SENDER.unpack_from(data)
    return SenderPacket(seq, ts, decode_error_estimate(ee), ssid, bytes(data[BASE_SIZE:]),
                        len(data))


def _decode_sender_auth(data: bytes, key: bytes) -> SenderPacket:
    if len(data) < AUTH_SIZE:
        raise MalformedPacket(f"authenticated sender packet: {len(data)} octets, need 112")
    _check_hmac(data, key)
    seq, _mbz, ts, ee, ssid, _mbz2 = _AUTH_SENDER.unpack_from(data)
    return SenderPacket(seq, ts, decode_error_estimate(ee), ssid, bytes(data[AUTH_SIZE:]),
                        len(data))


def encode_reflector(pkt: ReflectorPacket, key: bytes | None = None) -> bytes:
    """Bytes of a reflector packet: 44 octets (or 112 with ``key``) followed by the trailer."""
    f = (_u(pkt.seq, 32, "seq"), _u(pkt.timestamp, 64, "timestamp"),
         pkt.error_estimate.to_int(), _u(pkt.ssid, 16, "ssid"),
         _u(pkt.receive_timestamp, 64, "receive timestamp"), _u(pkt.sender_seq, 32, "sender seq"),
         _u(pkt.sender_timestamp, 64, "sender timestamp"), pkt.sender_error_estimate.to_int(),
         _u(pkt.sender_ttl, 8, "sender ttl"))
    if key is None:
        return _REFLECTOR.pack(f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], 0, f[8],
                               bytes(3)) + pkt.trailer
    covered = _AUTH_REFLECTOR.pack(f[0], bytes(12), f[1], f[2], f[3], bytes(4), f[4], bytes(8),
                                   f[5], bytes(12), f[6], f[7], bytes(6), f[8], bytes(15))
    return covered + _mac(key, covered) + pkt.trailer


def decode_reflector(data: bytes, key: bytes | None = None) -> ReflectorPacket:
    """Parse a reflector packet; with ``key``, verify the HMAC first (RFC 8762 §4.4)."""
    if key is None:
        if len(data) < TWAMP_LIGHT_REFLECTOR_MIN:
            raise MalformedPacket(f"reflector packet: {len(data)} octets, need 44 (41 TWAMP)")
        trailer = bytes(data[BASE_SIZE:])
        if len(data) < BASE_SIZE:  # a TWAMP-Light reflector's 41 octets (RFC 5357 §4.2.1)
            data = bytes(data) + bytes(BASE_SIZE - len(data))
        seq, t3, ee, ssid, t2, sseq, t1, see, _mbz, ttl, _mbz2 = _REFLECTOR.unpack_from(data)
    else:
        if len(data) < AUTH_SIZE:
            raise MalformedPacket(f"authenticated reflector packet: {len(data)} octets, need 112")
        _check_hmac(data, key)
        (seq, _m1, t3, ee, ssid, _m2, t2, _m3, sseq, _m4, t1, see, _m5, ttl,
         _m6) = _AUTH_REFLECTOR.unpack_from(data)
        trailer = bytes(data[AUTH_SIZE:])
    return ReflectorPacket(seq, t3, decode_error_estimate(ee), ssid, t2, sseq, t1,
                           decode_error_estimate(see), ttl, trailer)


def base_size(authenticated: bool) -> int:
    """44 or 112 octets (RFC 8762 §4.2.1, §4.2.2)."""
    return AUTH_SIZE if authenticated else BASE_SIZE
