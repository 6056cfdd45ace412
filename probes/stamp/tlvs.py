"""What a STAMP Session-Reflector does with a test packet's TLVs (RFC 8972 §4), and how a
sender signs its own: pure, no sockets, no clock.

- Octets after the base packet that parse exactly as a chain of TLVs of non-zero type are
  TLVs; anything else (an RFC 8762 or TWAMP-Light sender's zero padding) is copied verbatim
  (RFC 8762 §4.3).
- Extra Padding (§4.1) is kept; Timestamp Information (§4.3) is filled with the reflector's
  sync source and timestamping method; Class of Service (§4.4) gets the DSCP and ECN the test
  packet arrived with (DSCP2, ECN2) and the reply is sent with DSCP1 (RP 0); an unknown TLV
  gets its U flag.
- Without a Class of Service TLV the reply carries the DSCP the test packet arrived with (our
  policy: the return path measures the same class as the forward path, as TWAMP-Light
  reflectors commonly do).
- Authenticated mode (a key): the TLVs must end with an HMAC TLV (§4.8) that verifies over the
  test packet's Sequence Number and the TLVs before it; if it is missing or wrong every TLV gets
  its I flag (integrity failed) and the sync source / CoS in them are not acted on. The reply's
  TLVs end with a fresh HMAC TLV over the reply's Sequence Number.
"""

from __future__ import annotations

from dataclasses import dataclass

from ixmeter.core.errors import MalformedPacket
from probes.stamp.codec import (
    FLAG_I,
    FLAG_U,
    HMAC_TLV_SIZE,
    TLV_CLASS_OF_SERVICE,
    TLV_EXTRA_PADDING,
    TLV_TIMESTAMP_INFO,
    TimestampInfo,
    Tlv,
    decode_class_of_service,
    decode_tlvs,
    encode_tlvs,
    hmac_tlv,
    tlvs_verified,
)


@dataclass(frozen=True, slots=True)
class Reflected:
    """The reply's trailer, the DSCP to send it with (None: the socket's default) and
    whether the test packet's TLVs failed their HMAC TLV check."""

    trailer: bytes
    dscp: int | None
    integrity_failed: bool = False


@dataclass(frozen=True, slots=True)
class ReflectorClock:
    """What the reflector reports in a Timestamp Information TLV (RFC 8972 §4.3)."""

    sync_source: int
    ts_method: int


def reflect(trailer: bytes, *, tos: int | None, clock: ReflectorClock, key: bytes | None,
            sender_seq: int, reply_seq: int) -> Reflected:
    """The reply trailer for a test packet's ``trailer`` received with IP TOS / Traffic Class
    ``tos`` (module docstring)."""
    received_dscp = None if tos is None else tos >> 2
    tlvs = _chain(trailer)
    if tlvs is None:
        return Reflected(trailer, received_dscp)
    failed = False
    if key is not None:
        verified = tlvs_verified(key, sender_seq, trailer)
        failed = not verified
        if verified:
            tlvs = tlvs[:-1]
    out, dscp = [], received_dscp
    for tlv in tlvs:
        reflected, wanted = _reflect_tlv(tlv, tos, clock, failed)
        out.append(reflected)
        dscp = wanted if wanted is not None else dscp
    body = encode_tlvs(out)
    if key is not None and not failed:
        body += encode_tlvs([hmac_tlv(key, reply_seq, body)])
    return Reflected(body, dscp, failed)


def _chain(trailer: bytes) -> tuple[Tlv, ...] | None:
    try:
        tlvs = decode_tlvs(trailer)
    except MalformedPacket:
        return None
    if not tlvs or any(t.type == 0 for t in tlvs):  # zero padding is not a TLV chain
        return None
    return tlvs


def _reflect_tlv(tlv: Tlv, tos: int | None, clock: ReflectorClock, failed: bool
                 ) -> tuple[Tlv, int | None]:
    """One TLV as reflected, and the DSCP it asks the reply to carry (None: no say)."""
    if failed:
        return Tlv(tlv.type, tlv.value, tlv.flags | FLAG_I), None
    if tlv.type == TLV_EXTRA_PADDING:
        return tlv, None
    if tlv.type == TLV_TIMESTAMP_INFO and len(tlv.value) >= 4:
        src, method = clock.sync_source, clock.ts_method
        info = TimestampInfo(src, method, src, method).to_tlv(tlv.flags)
        return Tlv(info.type, info.value + tlv.value[4:], tlv.flags), None
    if tlv.type == TLV_CLASS_OF_SERVICE and len(tlv.value) == 4:
        cos = decode_class_of_service(tlv)
        got = tos or 0
        filled = type(cos)(cos.dscp1, cos.ecn1, got >> 2, got & 3, 0)
        return filled.to_tlv(tlv.flags), cos.dscp1
    return Tlv(tlv.type, tlv.value, tlv.flags | FLAG_U), None


def sign(key: bytes, seq: int, body: bytes) -> bytes:
    """A sender's TLVs ``body`` followed by their HMAC TLV (RFC 8972 §4.8)."""
    return body + encode_tlvs([hmac_tlv(key, seq, body)])


def signed_room(room: int, key: bytes | None) -> int:
    """The octets left for other TLVs when the last :data:`HMAC_TLV_SIZE` hold the HMAC TLV."""
    return room - HMAC_TLV_SIZE if key is not None and room >= HMAC_TLV_SIZE else room

