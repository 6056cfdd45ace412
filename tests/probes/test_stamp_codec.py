"""STAMP codec: packets laid out by hand from RFC 8762 / RFC 8972 / RFC 5357 figures, table-driven
truncation and junk tests, hypothesis round-trips and ``decode(st.binary())``."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ixmeter.core.errors import MalformedPacket
from probes.stamp import codec
from probes.stamp.codec import (
    BadHmac,
    ErrorEstimate,
    ReflectorPacket,
    SenderPacket,
    TimestampInfo,
    Tlv,
    decode_error_estimate,
    decode_reflector,
    decode_sender,
    decode_timestamp_info,
    decode_tlvs,
    encode_reflector,
    encode_sender,
    encode_tlvs,
)

KEY = b"shared-secret-key"
EE_SYNC = ErrorEstimate(True, False, 0, 1)  # 0x8001: S=1, Z=0, Scale 0, Multiplier 1
T1 = 0xE5A1B2C3_80000000  # an NTP timestamp: some second + 0.5 s


def _h(*parts: str) -> bytes:
    return bytes.fromhex("".join(p.replace(" ", "") for p in parts))


# RFC 5357 §4.1.2 / App. I: a TWAMP-Light sender packet without padding, 14 octets.
TWAMP_LIGHT_14 = _h("0000 0007", "E5A1B2C3 80000000", "8001")
# RFC 8762 §4.2.1 Fig. 3: seq, Timestamp, Error Estimate, MBZ (30 octets).
RFC8762_SENDER = _h("0000 0002", "E5A1B2C3 80000000", "8001", "00" * 30)
# RFC 8972 Fig. 1 + §4: SSID 0x1234 then a Timestamp Information TLV (type 3, length 4), an
# Extra Padding TLV (type 1, length 4) and an unknown TLV (type 200, length 2).
RFC8972_SENDER = _h("0000 0003", "E5A1B2C3 80000000", "8001", "1234", "00" * 28,
                    "00 03 0004 00000000", "00 01 0004 00000000", "00 C8 0002 ABCD")
# RFC 8762 §4.3.1 Fig. 5 / RFC 8972 Fig. 2: reflector packet.
RFC8762_REFLECTOR = _h("0000 0009", "E5A1B2C4 00000000", "0103", "1234",
                       "E5A1B2C3 C0000000", "0000 0003", "E5A1B2C3 80000000", "8001", "0000",
                       "3F", "000000")


def test_twamp_light_14_octets() -> None:
    p = decode_sender(TWAMP_LIGHT_14)
    assert (p.seq, p.timestamp, p.error_estimate, p.ssid, p.trailer) == (7, T1, EE_SYNC, 0, b"")
    assert p.wire_len == 14


def test_rfc8762_sender_by_hand() -> None:
    p = decode_sender(RFC8762_SENDER)
    assert (p.seq, p.timestamp, p.ssid, p.trailer) == (2, T1, 0, b"")
    assert encode_sender(SenderPacket(2, T1, EE_SYNC)) == RFC8762_SENDER


def test_rfc8972_sender_with_ssid_and_tlvs() -> None:
    p = decode_sender(RFC8972_SENDER)
    assert p.ssid == 0x1234
    tlvs = decode_tlvs(p.trailer)
    assert [(t.type, t.value, t.flags) for t in tlvs] == [
        (3, bytes(4), 0), (1, bytes(4), 0), (200, b"\xab\xcd", 0)]
    assert encode_sender(SenderPacket(3, T1, EE_SYNC, 0x1234, encode_tlvs(tlvs))) == RFC8972_SENDER


def test_reflector_by_hand() -> None:
    r = decode_reflector(RFC8762_REFLECTOR)
    assert r.seq == 9
    assert r.timestamp == 0xE5A1B2C4_00000000
    assert r.error_estimate == ErrorEstimate(False, False, 1, 3)
    assert r.ssid == 0x1234
    assert r.receive_timestamp == 0xE5A1B2C3_C0000000
    assert (r.sender_seq, r.sender_timestamp, r.sender_error_estimate) == (3, T1, EE_SYNC)
    assert r.sender_ttl == 0x3F
    assert encode_reflector(r) == RFC8762_REFLECTOR


def test_twamp_light_reflector_41_octets() -> None:
    """RFC 5357 §4.2.1: the TWAMP reflector packet ends with Sender TTL at octet 40."""
    r = decode_reflector(RFC8762_REFLECTOR[:41])
    assert (r.seq, r.sender_seq, r.sender_ttl, r.trailer) == (9, 3, 0x3F, b"")


def test_authenticated_layout_by_hand() -> None:
    """RFC 8762 §4.2.2 / RFC 8972 Fig. 3: T1 at 16, EE at 24, SSID at 26, HMAC 96-111."""
    covered = _h("0000 0004", "00" * 12, "E5A1B2C3 80000000", "8001", "0042", "00" * 68)
    wire = covered + hmac.new(KEY, covered, hashlib.sha256).digest()[:16]
    p = decode_sender(wire, KEY)
    assert (p.seq, p.timestamp, p.ssid) == (4, T1, 0x42)
    assert encode_sender(SenderPacket(4, T1, EE_SYNC, 0x42), KEY) == wire


def test_authenticated_reflector_offsets() -> None:
    r = ReflectorPacket(1, 2, EE_SYNC, 3, 4, 5, 6, EE_SYNC, 7)
    wire = encode_reflector(r, KEY)
    assert len(wire) == 112
    assert struct.unpack_from("!I", wire, 0)[0] == 1
    assert struct.unpack_from("!QHH", wire, 16) == (2, 0x8001, 3)
    assert struct.unpack_from("!Q", wire, 32)[0] == 4
    assert struct.unpack_from("!I", wire, 48)[0] == 5
    assert struct.unpack_from("!QH", wire, 64) == (6, 0x8001)
    assert wire[80] == 7
    assert wire[96:] == hmac.new(KEY, wire[:96], hashlib.sha256).digest()[:16]
    assert decode_reflector(wire, KEY) == r


def test_bad_hmac_and_wrong_key() -> None:
    wire = bytearray(encode_sender(SenderPacket(1, T1, EE_SYNC), KEY))
    with pytest.raises(BadHmac):
        decode_sender(bytes(wire), b"other key")
    wire[5] ^= 1
    with pytest.raises(BadHmac):
        decode_sender(bytes(wire), KEY)


# --- Error Estimate (RFC 4656 §4.1.2) -------------------------------------------------------


@pytest.mark.parametrize(
    ("error_ns", "scale", "multiplier"),
    [(0, 0, 1), (1, 0, 5), (59, 0, 254), (60, 1, 129), (1_000, 5, 135),
     (1_000_000, 15, 132), (16_000_000_000, 29, 128), (10**30, 63, 255)],
)
def test_error_estimate_smallest_scale_rounded_up(error_ns: int, scale: int,
                                                   multiplier: int) -> None:
    ee = ErrorEstimate.from_ns(error_ns, synced=True)
    assert (ee.scale, ee.multiplier) == (scale, multiplier)
    if error_ns < 10**20:
        assert ee.ns >= error_ns  # never under-states
        if scale:
            # the largest value at Scale-1 (exact, in 2^-32 s units) is below the error
            assert (255 << (scale - 1)) * 1_000_000_000 < error_ns << 32


def test_error_estimate_bits() -> None:
    assert decode_error_estimate(0xC105) == ErrorEstimate(True, True, 1, 5)
    assert ErrorEstimate(True, True, 1, 5).to_int() == 0xC105
    with pytest.raises(MalformedPacket, match="Multiplier 0"):
        decode_error_estimate(0x8100)


def test_multiplier_zero_makes_the_packet_corrupt() -> None:
    bad = bytearray(RFC8762_SENDER)
    bad[13] = 0
    with pytest.raises(MalformedPacket):
        decode_sender(bytes(bad))


# --- TLVs (RFC 8972 §4) ---------------------------------------------------------------------


def test_tlv_flags_and_timestamp_info() -> None:
    tlv = TimestampInfo(1, 2, 5, 3).to_tlv(codec.FLAG_U | codec.FLAG_I)
    wire = encode_tlvs([tlv])
    assert wire == _h("A0 03 0004 01020503")
    (back,) = decode_tlvs(wire)
    assert back == tlv
    assert decode_timestamp_info(back) == TimestampInfo(1, 2, 5, 3)
    with pytest.raises(MalformedPacket):
        decode_timestamp_info(Tlv(3, b"\x01"))


@pytest.mark.parametrize("data", [_h("00"), _h("000300"), _h("00 03 0005 00000000"),
                                  _h("00 01 0000 00")])
def test_tlv_chain_must_end_exactly(data: bytes) -> None:
    with pytest.raises(MalformedPacket):
        decode_tlvs(data)


# --- table-driven: whole, every truncation, trailing junk -----------------------------------

Decoder = Callable[[bytes], Any]
CASES: list[tuple[str, bytes, Decoder, int]] = [
    ("twamp-light", TWAMP_LIGHT_14, decode_sender, 14),
    ("rfc8762-sender", RFC8762_SENDER, decode_sender, 14),
    ("rfc8972-sender", RFC8972_SENDER, decode_sender, 14),
    ("reflector", RFC8762_REFLECTOR, decode_reflector, 41),
    ("auth-sender", encode_sender(SenderPacket(1, T1, EE_SYNC, 5), KEY),
     lambda b: decode_sender(b, KEY), 112),
    ("auth-reflector", encode_reflector(ReflectorPacket(1, 2, EE_SYNC, 3, 4, 5, 6, EE_SYNC, 7),
                                        KEY), lambda b: decode_reflector(b, KEY), 112),
]


@pytest.mark.parametrize(("name", "wire", "decode", "minimum"), CASES, ids=[c[0] for c in CASES])
def test_truncations_raise_malformed(name: str, wire: bytes, decode: Decoder,
                                     minimum: int) -> None:
    decode(wire)
    for n in range(minimum):
        with pytest.raises(MalformedPacket):
            decode(wire[:n])


@pytest.mark.parametrize(("name", "wire", "decode", "minimum"), CASES, ids=[c[0] for c in CASES])
def test_trailing_junk_is_kept_as_trailer(name: str, wire: bytes, decode: Decoder,
                                          minimum: int) -> None:
    if len(wire) < 44:
        return  # a short TWAMP-Light packet has no room for a trailer
    pkt = decode(wire + b"\xde\xad\xbe")
    assert pkt.trailer.endswith(b"\xde\xad\xbe")


# --- hypothesis ---------------------------------------------------------------------------

ee_st = st.builds(ErrorEstimate, st.booleans(), st.booleans(), st.integers(0, 63),
                  st.integers(1, 255))
u32, u64 = st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1)


@settings(deadline=None)  # a shared 2-vCPU CI machine stalls for ms at times
@given(u32, u64, ee_st, st.integers(0, 2**16 - 1), st.binary(max_size=64),
       st.sampled_from([None, KEY]))
def test_sender_round_trip(seq: int, ts: int, ee: ErrorEstimate, ssid: int, trailer: bytes,
                           key: bytes | None) -> None:
    pkt = SenderPacket(seq, ts, ee, ssid, trailer)
    wire = encode_sender(pkt, key)
    back = decode_sender(wire, key)
    assert back == SenderPacket(seq, ts, ee, ssid, trailer, len(wire))


@settings(deadline=None)  # a shared 2-vCPU CI machine stalls for ms at times
@given(st.builds(ReflectorPacket, u32, u64, ee_st, st.integers(0, 65535), u64, u32, u64, ee_st,
                 st.integers(0, 255), st.binary(max_size=64)), st.sampled_from([None, KEY]))
def test_reflector_round_trip(pkt: ReflectorPacket, key: bytes | None) -> None:
    assert decode_reflector(encode_reflector(pkt, key), key) == pkt


@settings(deadline=None)  # a shared 2-vCPU CI machine stalls for ms at times
@given(st.lists(st.builds(Tlv, st.integers(0, 255), st.binary(max_size=40),
                          st.integers(0, 255)), max_size=5))
def test_tlv_round_trip(tlvs: list[Tlv]) -> None:
    assert decode_tlvs(encode_tlvs(tlvs)) == tuple(tlvs)


@settings(deadline=None)  # a shared 2-vCPU CI machine stalls for ms at times
@given(st.binary(max_size=200), st.sampled_from([None, KEY]))
def test_any_bytes_decode_or_raise_malformed(data: bytes, key: bytes | None) -> None:
    for decode in (decode_sender, decode_reflector):
        with contextlib.suppress(MalformedPacket):
            decode(data, key)
    with contextlib.suppress(MalformedPacket):
        decode_tlvs(data)


# --- another implementation: scapy.contrib.stamp (RFC 8762/8972) ---------------------------


def test_interop_with_scapy_both_ways() -> None:
    stamp = pytest.importorskip("scapy.contrib.stamp")
    theirs = stamp.STAMPSessionSenderTestUnauthenticated(
        seq=11, ssid=0x0BAD, err_estimate=stamp.ErrorEstimate(S=1, scale=2, multiplier=3),
        tlv_objects=[stamp.STAMPTestTLV(type=3, len=4, value=b"\x00" * 4)])
    mine = decode_sender(bytes(theirs))
    assert (mine.seq, mine.ssid) == (11, 0x0BAD)
    assert mine.error_estimate == ErrorEstimate(True, False, 2, 3)
    assert decode_tlvs(mine.trailer) == (Tlv(3, bytes(4)),)

    ours = encode_reflector(ReflectorPacket(5, T1, EE_SYNC, 0x0BAD, T1 + 1, 11, T1 - 1,
                                            ErrorEstimate(False, False, 4, 9), 61))
    parsed = stamp.STAMPSessionReflectorTestUnauthenticated(ours)
    assert (parsed.seq, parsed.ssid, parsed.seq_sender, parsed.ttl_sender) == (5, 0x0BAD, 11, 61)
    assert (parsed.err_estimate_sender.scale, parsed.err_estimate_sender.multiplier) == (4, 9)
    assert bytes(parsed) == ours
