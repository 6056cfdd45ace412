"""Sans-IO STAMP sessions: exact delays, reflector rules (RFC 8762 §4, §4.6; RFC 8972) and a
seeded in-memory impaired network with exact loss/duplicate/reorder/late counts."""

from __future__ import annotations

import heapq
import random
import struct
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.clock import NTP_UNIX_OFFSET_S, unix_ns_to_ntp, unix_ns_to_ptp
from probes.stamp.codec import (
    FLAG_U,
    SYNC_FREE_RUNNING,
    SYNC_NTP,
    TLV_EXTRA_PADDING,
    TLV_TIMESTAMP_INFO,
    ErrorEstimate,
    ReflectorPacket,
    SenderPacket,
    TimestampInfo,
    decode_reflector,
    decode_tlvs,
    encode_reflector,
    encode_sender,
    encode_tlvs,
)
from probes.stamp.session import (
    Duplicate,
    Late,
    Lost,
    Malformed,
    ReflectorConfig,
    Reply,
    SessionReflector,
    SessionSender,
    StampConfigError,
    Unmatched,
)

T0 = 1_800_000_000 * 10**9  # a wall-clock instant (2027)
M0 = 5 * 10**9  # a monotonic instant
EE_SYNC = ErrorEstimate.from_ns(1_000, synced=True)
SRC = ("192.0.2.1", 40000)
KEY = b"k" * 32


def _reflector(**kw: object) -> SessionReflector:
    return SessionReflector(ReflectorConfig(rate_pps=1e9, burst=10**9, **kw))  # type: ignore[arg-type]


def _reflect(r: SessionReflector, data: bytes, src: object = SRC, ttl: int | None = 64,
             at: int = 0) -> bytes | None:
    return r.handle(data, src, T0 + at + 100, ttl, T0 + at + 200, M0 + at)


# --- sender: delays ---------------------------------------------------------------------------


def _reply_for(sent_data: bytes, t2: int, t3: int, *, ee: ErrorEstimate = EE_SYNC,
               trailer: bytes = b"", seq: int = 0, ptp: bool = False) -> bytes:
    s = struct.unpack_from("!IQ", sent_data)
    ssid = struct.unpack_from("!H", sent_data, 14)[0]
    conv = unix_ns_to_ptp if ptp else unix_ns_to_ntp
    return encode_reflector(ReflectorPacket(seq, conv(t3), ee, ssid, conv(t2), s[0], s[1],
                                            EE_SYNC, 60, trailer))


def test_delays_exact() -> None:
    sender = SessionSender(ssid=5)
    sent = sender.next_packet(T0, M0, EE_SYNC)
    assert sent.seq == 0
    reply = _reply_for(sent.data, T0 + 1_000_000, T0 + 1_050_000)
    ev = sender.receive(reply, T0 + 2_000_000, T0 + 2_000_000, M0 + 2_000_000, ttl=58)
    assert isinstance(ev, Reply)
    assert (ev.fwd_ns, ev.bwd_ns, ev.rtt_net_ns) == (1_000_000, 950_000, 1_950_000)
    assert ev.clock_error_ns == 2 * EE_SYNC.ns
    assert (ev.src_synced, ev.dst_synced, ev.sender_ttl, ev.reply_ttl) == (True, True, 60, 58)
    assert ev.fault is None
    assert not ev.stepped


def test_sequence_numbers_start_at_zero_and_count_up() -> None:
    sender = SessionSender()
    seqs = [struct.unpack_from("!I", sender.next_packet(T0, M0, EE_SYNC).data)[0]
            for _ in range(3)]
    assert seqs == [0, 1, 2]


def test_kernel_tx_stamp_replaces_t1() -> None:
    sender = SessionSender()
    sent = sender.next_packet(T0, M0, EE_SYNC)
    sender.tx_timestamp(0, T0 + 30_000)
    ev = sender.receive(_reply_for(sent.data, T0 + 1_000_000, T0 + 1_000_000),
                        T0 + 2_000_000, T0 + 2_000_000, M0 + 2_000_000)
    assert isinstance(ev, Reply)
    assert ev.fwd_ns == 970_000
    assert ev.t1_kernel


def test_negative_one_way_is_a_clock_fault_but_rtt_net_survives() -> None:
    sender = SessionSender()
    sent = sender.next_packet(T0, M0, EE_SYNC)
    # The reflector's clock behind: T2 before T1; it holds the packet 600 us, so T4-T3
    # stays within T4-T1 and is kept.
    reply = _reply_for(sent.data, T0 - 100_000, T0 + 500_000)
    ev = sender.receive(reply, T0 + 1_000_000, T0 + 1_000_000, M0 + 1_000_000)
    assert isinstance(ev, Reply)
    assert ev.fwd_ns is None
    assert ev.bwd_ns == 500_000
    assert ev.rtt_net_ns == 400_000
    assert ev.fault is not None
    assert "forward" in ev.fault
    assert sender.statistics().clock_faults == 1


def test_one_way_delay_above_the_round_trip_is_a_clock_fault() -> None:
    """A reflector clock an hour ahead: T2-T1 is an hour, more than T4-T1 (2 ms) on the
    sender's own clock; T4-T3 is below 0. Neither is a delay; RTT_net survives."""
    sender = SessionSender()
    sent = sender.next_packet(T0, M0, EE_SYNC)
    hour = 3_600 * 10**9
    reply = _reply_for(sent.data, T0 + hour + 1_000_000, T0 + hour + 1_050_000)
    ev = sender.receive(reply, T0 + 2_000_000, T0 + 2_000_000, M0 + 2_000_000)
    assert isinstance(ev, Reply)
    assert (ev.fwd_ns, ev.bwd_ns, ev.rtt_net_ns) == (None, None, 1_950_000)
    assert ev.fault is not None
    assert f"forward one-way delay {hour + 1_000_000} ns > T4-T1 2000000 ns" in ev.fault
    assert "backward one-way delay" in ev.fault
    assert sender.statistics().clock_faults == 1


def test_residence_below_zero_is_a_clock_fault() -> None:
    """T3 before T2 makes RTT_net larger than T4-T1: named in the fault."""
    sender = SessionSender()
    sent = sender.next_packet(T0, M0, EE_SYNC)
    reply = _reply_for(sent.data, T0 + 1_000_000, T0 + 500_000)
    ev = sender.receive(reply, T0 + 2_000_000, T0 + 2_000_000, M0 + 2_000_000)
    assert isinstance(ev, Reply)
    assert ev.rtt_net_ns == 2_500_000
    assert ev.fault is not None
    assert "network RTT 2500000 ns > T4-T1 2000000 ns: T3 precedes T2" in ev.fault


def test_an_error_estimate_over_a_day_leaves_no_one_way_delay() -> None:
    sender = SessionSender()
    sent = sender.next_packet(T0, M0, EE_SYNC)
    vague = ErrorEstimate(True, False, 63, 255)  # 255 * 2**31 s
    reply = _reply_for(sent.data, T0 + 1_000_000, T0 + 1_050_000, ee=vague)
    ev = sender.receive(reply, T0 + 2_000_000, T0 + 2_000_000, M0 + 2_000_000)
    assert isinstance(ev, Reply)
    assert (ev.fwd_ns, ev.bwd_ns, ev.rtt_net_ns) == (None, None, 1_950_000)
    assert ev.fault is not None
    assert "is over a day (RFC 7679 §3.7.3)" in ev.fault


def test_a_reply_after_tmax_by_its_own_timestamps_is_late_and_the_packet_lost() -> None:
    """T4-T1 above Tmax: not matched (no delay above Tmax is ever reported); the packet is
    lost once it expires (RFC 7680 §2.4)."""
    sender = SessionSender(tmax_ns=1_000_000_000)
    sent = sender.next_packet(T0, M0, EE_SYNC)
    reply = _reply_for(sent.data, T0 + 500_000_000, T0 + 500_000_100)
    late = T0 + 1_000_000_001
    ev = sender.receive(reply, late, late, M0 + 1_000_000_001)
    assert ev == Late(0)
    assert sender.expire(M0 + 1_000_000_001) == [Lost(0, T0, T0)]
    st = sender.statistics()
    assert (st.received, st.lost, st.late) == (0, 1, 1)


def test_clock_step_detected() -> None:
    sender = SessionSender()
    sent = sender.next_packet(T0, M0, EE_SYNC)
    reply = _reply_for(sent.data, T0 + 1_000, T0 + 2_000)
    ev = sender.receive(reply, T0 + 10**9, T0 + 10**9, M0 + 3_000)  # wall jumped 1 s
    assert isinstance(ev, Reply)
    assert ev.stepped


def test_era_wrap_2036() -> None:
    wrap = ((1 << 32) - NTP_UNIX_OFFSET_S) * 10**9
    sender = SessionSender()
    sent = sender.next_packet(wrap - 500_000, M0, EE_SYNC)
    ev = sender.receive(_reply_for(sent.data, wrap + 500_000, wrap + 600_000),
                        wrap + 1_600_000, wrap + 1_600_000, M0 + 2_100_000)
    assert isinstance(ev, Reply)
    assert (ev.fwd_ns, ev.bwd_ns) == (1_000_000, 1_000_000)


def test_ptp_timestamps_from_reflector() -> None:
    sender = SessionSender()
    sent = sender.next_packet(T0, M0, EE_SYNC)
    ptp_ee = ErrorEstimate(True, True, 0, 1)
    ev = sender.receive(_reply_for(sent.data, T0 + 7_000, T0 + 9_000, ee=ptp_ee, ptp=True),
                        T0 + 20_000, T0 + 20_000, M0 + 20_000)
    assert isinstance(ev, Reply)
    assert (ev.fwd_ns, ev.bwd_ns) == (7_000, 11_000)


def test_free_running_reflector_is_not_synced() -> None:
    sender = SessionSender()
    sent = sender.next_packet(T0, M0, EE_SYNC)
    info = encode_tlvs([TimestampInfo(SYNC_FREE_RUNNING, 2, SYNC_FREE_RUNNING, 2).to_tlv()])
    ev = sender.receive(_reply_for(sent.data, T0 + 1, T0 + 2, trailer=info), T0 + 3, T0 + 3,
                        M0 + 3)
    assert isinstance(ev, Reply)
    assert not ev.dst_synced
    assert ev.timestamp_info == TimestampInfo(5, 2, 5, 2)


def test_unmatched_malformed_duplicate_late() -> None:
    sender = SessionSender(ssid=9, tmax_ns=1_000)
    a = sender.next_packet(T0, M0, EE_SYNC)
    b = sender.next_packet(T0, M0, EE_SYNC)
    wrong_t1 = bytearray(_reply_for(a.data, T0 + 1, T0 + 2))
    wrong_t1[35] ^= 1
    assert isinstance(sender.receive(bytes(wrong_t1), T0 + 3, T0 + 3, M0 + 3), Unmatched)
    assert isinstance(sender.receive(b"\x00" * 10, T0 + 3, T0 + 3, M0 + 3), Malformed)
    good = _reply_for(a.data, T0 + 1, T0 + 2)
    assert isinstance(sender.receive(good, T0 + 3, T0 + 3, M0 + 3), Reply)
    assert isinstance(sender.receive(good, T0 + 4, T0 + 4, M0 + 4), Duplicate)
    assert sender.expire(M0 + 1_000) == [Lost(1, T0, T0)]
    assert isinstance(sender.receive(_reply_for(b.data, T0 + 1, T0 + 2), T0 + 5, T0 + 5,
                                     M0 + 2_000), Late)
    st = sender.statistics()
    assert (st.sent, st.received, st.lost, st.duplicates, st.late, st.malformed,
            st.unmatched) == (2, 1, 1, 1, 1, 1, 1)


def test_sender_accepts_a_twamp_light_reflectors_41_octets() -> None:
    sender = SessionSender()
    sent = sender.next_packet(T0, M0, EE_SYNC)
    reply = _reply_for(sent.data, T0 + 1_000, T0 + 3_000)[:41]
    ev = sender.receive(reply, T0 + 5_000, T0 + 5_000, M0 + 5_000)
    assert isinstance(ev, Reply)
    assert (ev.fwd_ns, ev.bwd_ns, ev.rtt_net_ns) == (1_000, 2_000, 3_000)


def test_sender_size_and_padding() -> None:
    sender = SessionSender(size=80, tlvs=(TimestampInfo().to_tlv(),))
    data = sender.next_packet(T0, M0, EE_SYNC).data
    assert len(data) == 80
    tlvs = decode_tlvs(data[44:])
    assert [t.type for t in tlvs] == [TLV_TIMESTAMP_INFO, TLV_EXTRA_PADDING]
    assert len(SessionSender(size=46).next_packet(T0, M0, EE_SYNC).data) == 46
    assert len(SessionSender(key=KEY).next_packet(T0, M0, EE_SYNC).data) == 112
    with pytest.raises(StampConfigError):
        SessionSender(size=45, tlvs=(TimestampInfo().to_tlv(),))


def test_send_failed_is_not_loss() -> None:
    sender = SessionSender(tmax_ns=1)
    sender.next_packet(T0, M0, EE_SYNC)
    sender.send_failed(0)
    assert sender.expire(M0 + 10) == []
    st = sender.statistics()
    assert (st.sent, st.lost, st.send_errors) == (0, 0, 1)


# --- reflector ------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "reply_size"), [(14, 44), (30, 44), (43, 44), (44, 44),
                                                  (45, 45), (100, 100), (1400, 1400)])
def test_reply_size_rule(size: int, reply_size: int) -> None:
    """RFC 8762 §4.6: shorter than the base -> base packet; longer -> same size, never more."""
    data = encode_sender(SenderPacket(1, 2, EE_SYNC))
    data = data[:size] if size <= 44 else data + bytes(size - 44)
    reply = _reflect(_reflector(), data)
    assert reply is not None
    assert len(reply) == reply_size


def test_twamp_light_14_octets_gets_base_reply_laid_out_by_hand() -> None:
    light = bytes.fromhex("00000007" "E5A1B2C380000000" "8001")
    reply = _reflect(_reflector(stateful=False), light, ttl=None)
    assert reply is not None
    assert len(reply) == 44
    assert reply[0:4] == bytes.fromhex("00000007")  # stateless: the sender's seq
    assert reply[14:16] == b"\x00\x00"  # no SSID from a legacy sender
    assert reply[16:24] == unix_ns_to_ntp(T0 + 100).to_bytes(8, "big")  # T2
    assert reply[4:12] == unix_ns_to_ntp(T0 + 200).to_bytes(8, "big")  # T3
    assert reply[24:28] == bytes.fromhex("00000007")
    assert reply[28:36] == bytes.fromhex("E5A1B2C380000000")
    assert reply[36:38] == bytes.fromhex("8001")
    assert reply[40] == 255  # TTL unknown (RFC 5357 §4.2.1)
    assert reply[38:40] == b"\0\0"
    assert reply[41:44] == b"\0\0\0"


def test_rfc8972_tlvs_processed_and_ssid_copied() -> None:
    sent = bytes.fromhex("00000003" "E5A1B2C380000000" "8001" "1234") + bytes(28) + bytes.fromhex(
        "00030004 00000000" "00010004 DEADBEEF" "00C80002 ABCD")
    r = _reflector()
    r.set_clock(ErrorEstimate.from_ns(500_000, synced=True), SYNC_NTP)
    reply = _reflect(r, sent)
    assert reply is not None
    assert len(reply) == len(sent)
    assert reply[14:16] == bytes.fromhex("1234")
    assert reply[44:] == bytes.fromhex("00030004 01020102" "00010004 DEADBEEF" "80C80002 ABCD")
    tlvs = decode_tlvs(reply[44:])
    assert tlvs[2].flags & FLAG_U


def test_plain_padding_copied_verbatim() -> None:
    for pad in (bytes(20), b"\x01\x02\x03"):
        reply = _reflect(_reflector(), encode_sender(SenderPacket(1, 2, EE_SYNC)) + pad)
        assert reply is not None
        assert reply[44:] == pad


def test_stateful_counts_per_session_stateless_copies() -> None:
    def seqs(r: SessionReflector, ssid: int, sender_seqs: list[int]) -> list[int]:
        out = []
        for s in sender_seqs:
            reply = _reflect(r, encode_sender(SenderPacket(s, 2, EE_SYNC, ssid)))
            assert reply is not None
            out.append(decode_reflector(reply).seq)
        return out

    stateful = _reflector()
    assert seqs(stateful, 1, [0, 2, 7]) == [0, 1, 2]
    assert seqs(stateful, 2, [5]) == [0]  # another SSID is another session (RFC 8972 §3)
    assert stateful.statistics().sessions == 2
    assert seqs(_reflector(stateful=False), 1, [0, 2, 7]) == [0, 2, 7]


def test_rate_limit_per_source() -> None:
    r = SessionReflector(ReflectorConfig(rate_pps=10, burst=5))
    data = encode_sender(SenderPacket(1, 2, EE_SYNC))
    answered = sum(_reflect(r, data) is not None for _ in range(20))
    assert answered == 5
    assert _reflect(r, data, src=("192.0.2.2", 1)) is not None  # another source has its own
    assert sum(_reflect(r, data, at=100_000_000) is not None for _ in range(3)) == 1  # 0.1 s
    assert sum(_reflect(r, data, at=10**10) is not None for _ in range(10)) == 5  # capped
    st = r.statistics()
    assert (st.received, st.reflected, st.rate_limited) == (34, 12, 22)


def test_authenticated_reflector() -> None:
    r = _reflector(key=KEY)
    good = encode_sender(SenderPacket(3, 4, EE_SYNC, 7), KEY)
    reply = _reflect(r, good)
    assert reply is not None
    assert len(reply) == 112
    assert decode_reflector(reply, KEY).sender_seq == 3
    assert _reflect(r, encode_sender(SenderPacket(3, 4, EE_SYNC, 7), b"wrong")) is None
    assert _reflect(r, encode_sender(SenderPacket(3, 4, EE_SYNC))) is None  # 44 octets: too short
    st = r.statistics()
    assert (st.reflected, st.bad_hmac, st.malformed) == (1, 1, 1)


def test_reflector_keeps_serving_after_malformed() -> None:
    r = _reflector()
    for junk in (b"", b"\x00" * 13, bytes(44)):  # the last has Multiplier 0: corrupt
        assert _reflect(r, junk) is None
    assert _reflect(r, encode_sender(SenderPacket(1, 2, EE_SYNC))) is not None
    assert r.statistics().malformed == 3


@settings(deadline=None)
@given(st.binary(max_size=300), st.sampled_from([None, KEY]), st.booleans())
def test_reflector_never_raises_and_never_amplifies(data: bytes, key: bytes | None,
                                                    stateful: bool) -> None:
    """Any bytes: dropped, or one reply no larger than max(44, request) (RFC 8762 §4.6)."""
    reply = _reflect(_reflector(key=key, stateful=stateful), data)
    if reply is not None:
        assert len(reply) <= max(44, len(data))
        assert len(data) >= (112 if key else 14)


# --- the impaired network ------------------------------------------------------------------


@dataclass
class _Net:
    fwd_loss: float = 0.1
    bwd_loss: float = 0.1
    dup: float = 0.05
    late: float = 0.03


def _simulate(seed: int, n: int, net: _Net) -> tuple[SessionSender, dict[str, int]]:
    """Send ``n`` packets 1 ms apart (plus 5 clean tail packets) through a seeded network."""
    rng = random.Random(seed)
    tmax = 500_000_000
    sender = SessionSender(ssid=3, tmax_ns=tmax)
    reflector = _reflector()
    expect = {"fwd_lost": 0, "bwd_lost": 0, "dups": 0, "late": 0, "received": 0}
    events: list[tuple[int, int, bytes]] = []  # (arrival time, tie-break, reply bytes)
    for i in range(n + 5):
        t = i * 1_000_000
        sent = sender.next_packet(T0 + t, M0 + t, EE_SYNC)
        clean = i >= n
        if not clean and rng.random() < net.fwd_loss:
            expect["fwd_lost"] += 1
            continue
        t2 = t + rng.randrange(1_000_000, 5_000_000)  # jitter larger than the gap: reorder
        reply = reflector.handle(sent.data, SRC, T0 + t2, 60, T0 + t2 + 10_000, M0 + t2)
        assert reply is not None
        if not clean and rng.random() < net.bwd_loss:
            expect["bwd_lost"] += 1
            continue
        late = not clean and rng.random() < net.late
        arrive = t2 + (tmax + 1_000_000 if late else rng.randrange(1_000_000, 5_000_000))
        copies = 2 if not clean and rng.random() < net.dup else 1
        if late:
            expect["late"] += copies
            expect["bwd_lost"] += 1
        else:
            expect["received"] += 1
            expect["dups"] += copies - 1
        for c in range(copies):
            events.append((arrive + c * 7, len(events), reply))
    heapq.heapify(events)
    first_seen: set[int] = set()
    highest = -1
    expect["reordered"] = 0
    while events:
        at, _, reply = heapq.heappop(events)
        sender.expire(M0 + at)
        event = sender.receive(reply, T0 + at, T0 + at, M0 + at)
        seq = decode_reflector(reply).sender_seq
        if isinstance(event, Reply):
            assert seq not in first_seen
            first_seen.add(seq)
            expect["reordered"] += seq < highest
            highest = max(highest, seq)
    sender.expire(M0 + 10 * tmax)
    return sender, expect


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_impaired_network_exact_counts(seed: int) -> None:
    n = 2000
    sender, expect = _simulate(seed, n, _Net())
    st = sender.statistics()
    assert st.sent == n + 5
    assert st.received == expect["received"]
    assert st.lost == n + 5 - expect["received"]
    assert st.duplicates == expect["dups"]
    assert st.late == expect["late"]
    assert st.reordered == expect["reordered"]
    assert expect["reordered"] > 100
    assert st.pending == 0
    assert st.forward_lost == expect["fwd_lost"]
    assert st.backward_lost == expect["bwd_lost"]
    assert (st.malformed, st.unmatched, st.clock_faults) == (0, 0, 0)
    assert expect["dups"] > 0
    assert expect["late"] > 0


# --- RFC 8972 Class of Service and HMAC TLVs -------------------------------------------------


def test_reply_carries_the_test_packets_dscp_or_the_one_the_cos_tlv_asks() -> None:
    """The issue's finding: the reflector answered DSCP-46 tests with DSCP 0."""
    from probes.stamp.codec import ClassOfService, decode_class_of_service

    reflector = SessionReflector()
    plain = SessionSender(size=44).next_packet(T0, 0, EE_SYNC)
    prepared = reflector.prepare(plain.data, ("198.18.1.10", 1), T0, 64, 1, tos=46 << 2)
    assert prepared is not None
    assert prepared.dscp == 46  # copied (our policy without a CoS TLV)
    cos = ClassOfService(dscp1=10, ecn1=0)
    sender = SessionSender(size=52, tlvs=(cos.to_tlv(),))
    sent = sender.next_packet(T0, 0, EE_SYNC)
    prepared = reflector.prepare(sent.data, ("198.18.1.10", 1), T0, 64, 2,
                                 tos=(46 << 2) | 1)
    assert prepared is not None
    assert prepared.dscp == 10  # DSCP1 (RFC 8972 §4.4)
    [tlv] = decode_tlvs(prepared.packet.trailer)
    assert decode_class_of_service(tlv) == ClassOfService(10, 0, 46, 1, 0)  # DSCP2, ECN2 filled


def test_authenticated_tlvs_carry_an_hmac_tlv_both_ways() -> None:
    """The issue's finding: in authenticated mode the TLVs were unprotected (RFC 8972 §4.8),
    though the Timestamp Information TLV decides ``dst_synced``."""
    from probes.stamp.codec import FLAG_I, TLV_HMAC

    key = b"k" * 32
    reflector = SessionReflector(ReflectorConfig(key=key))
    reflector.set_clock(ErrorEstimate.from_ns(1000, synced=True), SYNC_NTP)
    sender = SessionSender(key=key, size=140, tlvs=(TimestampInfo().to_tlv(),))
    sent = sender.next_packet(T0, 0, EE_SYNC)
    assert decode_tlvs(sent.data[112:])[-1].type == TLV_HMAC
    reply = reflector.handle(sent.data, ("198.18.1.10", 1), T0 + 5, 64, T0 + 9, 1)
    assert reply is not None
    assert len(reply) == len(sent.data)
    got = sender.receive(reply, T0 + 20, T0 + 20, 20)
    assert isinstance(got, Reply)
    assert got.timestamp_info is not None
    assert got.dst_synced
    # a TLV changed on the way: the reflector flags it (I) and does not act on it
    tampered = bytearray(sender.next_packet(T0, 0, EE_SYNC).data)
    tampered[112 + 4] ^= 0xFF
    out = reflector.prepare(bytes(tampered), ("198.18.1.10", 1), T0, 64, 3)
    assert out is not None
    assert all(t.flags & FLAG_I for t in decode_tlvs(out.packet.trailer))
    assert reflector.statistics().bad_tlv_hmac == 1


def test_a_reply_whose_hmac_tlv_fails_is_measured_without_its_tlvs() -> None:
    key = b"k" * 32
    reflector = SessionReflector(ReflectorConfig(key=key))
    reflector.set_clock(ErrorEstimate.from_ns(1000, synced=True), 1)
    sender = SessionSender(key=key, size=140, tlvs=(TimestampInfo().to_tlv(),))
    sent = sender.next_packet(T0, 0, EE_SYNC)
    reply = bytearray(reflector.handle(sent.data, ("198.18.1.10", 1), T0 + 5, 64,
                                       T0 + 9, 1) or b"")
    reply[112 + 4] ^= 0x01  # the sync source in the reflected Timestamp Information TLV
    got = sender.receive(bytes(reply), T0 + 20, T0 + 20, 20)
    assert isinstance(got, Reply)
    assert got.timestamp_info is None  # not trusted: the HMAC TLV does not verify
