"""The sans-IO echo session in memory, no root, no socket: matching, duplicates, late, stray,
foreign and malformed replies, sequence wrap, clock steps and negative round trips (RFC 792;
RFC 2681 §2.4-2.5; RFC 7679 §3.4; RFC 7680 §2.4)."""

from __future__ import annotations

import dataclasses
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ixmeter.core.record import ErrorKind, Status, TimestampSource
from probes.icmp import codec, trace_codec
from probes.icmp.session import EchoSession, Outcome, Received, Request

WALL = 1_790_000_000_000_000_000  # a plausible wall clock (2026), ns
MONO = 5_000_000_000
MS = 1_000_000
TMAX = 1_000 * MS
HOLD = 100 * MS


def _session(**kw: object) -> EchoSession:
    args: dict[str, object] = {"cookie": 0xC00C1E, "ident": 0x1234, "first_token": 1000,
                               "raw": False, "hold_ns": HOLD}
    args.update(kw)
    return EchoSession(**args)  # type: ignore[arg-type]


def _send(s: EchoSession, at_ms: int = 0, size: int = 64, tmax: int = TMAX,
          ctx: object = None) -> Request:
    req = s.request("192.0.2.1", size, tmax, WALL + at_ms * MS, MONO + at_ms * MS, ctx)
    assert isinstance(req, Request)
    return req


def _reply(req: Request, *, v6: bool = False, corrupt: bool = False, cut: int = 0,
           ident: int | None = None) -> bytes:
    """The echo reply a host would send to ``req`` (RFC 792: same identifier, sequence, data)."""
    echo = codec.decode_icmp(req.data, v6=v6)
    assert isinstance(echo, codec.Echo)
    payload = echo.payload[:len(echo.payload) - cut]
    msg = bytearray(codec.encode_echo(echo.ident if ident is None else ident, echo.seq,
                                      payload, v6=v6, request=False))
    if corrupt:
        msg[-1] ^= 0xFF
    return bytes(msg)


def _ipv4(icmp: bytes, ttl: int = 61, protocol: int = 1) -> bytes:
    """A minimal IPv4 header in front, as a raw IPv4 socket returns it (RFC 791 §3.1)."""
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, ttl, protocol, 0,
                       bytes([192, 0, 2, 1]), bytes([192, 0, 2, 9])) + icmp


def _recv(s: EchoSession, data: bytes, at_ms: float, rx_ns: int | None = None,
          wall_skew_ns: int = 0, ttl: int | None = 64) -> Received:
    at = int(at_ms * MS)
    return s.receive(data, rx_ns, ttl, "192.0.2.1", WALL + at + wall_skew_ns, MONO + at)


def _expire(s: EchoSession, at_ms: float) -> list[Outcome]:
    return s.expire(MONO + int(at_ms * MS))


def test_a_reply_is_matched_and_handed_over_after_the_hold_with_kernel_stamps() -> None:
    s = _session()
    req = _send(s, ctx="job")
    tx = WALL + 20_000
    s.tx_timestamp(req.data, tx)
    assert _recv(s, _reply(req), 5, rx_ns=tx + 4_321_000) is Received.ANSWER
    assert s.next_deadline() == MONO + 5 * MS + HOLD  # the hold ends before Tmax
    assert _expire(s, 104) == []
    [out] = _expire(s, 105)
    assert (out.status, out.rtt_ns, out.sent_at_ns, out.ts_source, out.reply_ttl, out.dup,
            out.ctx, out.token) == (Status.RECEIVED, 4_321_000, tx, TimestampSource.KERNEL, 64,
                                    0, "job", req.token)
    assert s.in_flight() == 0
    assert _expire(s, 2_000) == []  # its Tmax entry finds nothing left
    st_ = s.statistics()
    assert (st_.sent, st_.received, st_.lost, st_.in_flight) == (1, 1, 0, 0)


def test_without_kernel_stamps_the_round_trip_is_the_monotonic_interval() -> None:
    s = _session()
    req = _send(s, 10)
    _recv(s, _reply(req), 17.5)
    [out] = _expire(s, 200)
    assert (out.rtt_ns, out.ts_source, out.sent_at_ns) == (
        7_500_000, TimestampSource.USER, WALL + 10 * MS)


def test_an_unanswered_probe_is_lost_at_its_tmax_with_no_delay() -> None:
    s = _session()
    req = _send(s, tmax=300 * MS)
    assert _expire(s, 299.9) == []
    [out] = _expire(s, 300)
    assert (out.status, out.rtt_ns, out.error, out.token) == (Status.LOST, None, None, req.token)
    assert s.statistics().lost == 1


def test_copies_within_the_hold_are_dup_and_after_it_a_local_duplicate() -> None:
    s = _session()
    req = _send(s)
    assert [_recv(s, _reply(req), t) for t in (3, 4, 5)] == [
        Received.ANSWER, Received.DUPLICATE, Received.DUPLICATE]
    [out] = _expire(s, 200)
    assert (out.status, out.dup) == (Status.RECEIVED, 2)  # the first copy counts (RFC 7679 §3.4)
    assert _recv(s, _reply(req), 250) is Received.DUPLICATE
    st_ = s.statistics()
    assert (st_.duplicates, st_.late, st_.stray, st_.received) == (3, 0, 0, 1)
    assert st_.local_drops() == {"duplicate": 3}


def test_a_reply_after_tmax_is_late_and_the_probe_stays_lost() -> None:
    s = _session()
    a, b, c = _send(s), _send(s), _send(s)
    s.tx_timestamp(b.data, WALL)
    # b: by its kernel stamps after Tmax, though the timer has not fired yet
    assert _recv(s, _reply(b), 900, rx_ns=WALL + TMAX + 1) is Received.LATE
    # c: no kernel stamps, the timer late (a stalled loop): the monotonic interval decides
    assert _recv(s, _reply(c), 1_000.001) is Received.LATE
    outs = _expire(s, 1_000.001)
    assert [o.status for o in outs] == [Status.LOST] * 3
    assert all(o.rtt_ns is None for o in outs)
    # a: after it was declared lost
    assert _recv(s, _reply(a), 1_500) is Received.LATE
    assert s.statistics().late == 3
    assert s.statistics().lost == 3


def test_a_reply_exactly_at_tmax_counts() -> None:
    s = _session()
    req = _send(s)
    s.tx_timestamp(req.data, WALL)
    assert _recv(s, _reply(req), 999, rx_ns=WALL + TMAX) is Received.ANSWER
    [out] = _expire(s, 1_099)
    assert out.rtt_ns == TMAX


def test_strays_and_other_processes_replies() -> None:
    s = _session(raw=True)
    req = _send(s)
    other = _session(cookie=0xBEEF, raw=True)  # another pinger, even with our identifier
    theirs = _send(other)
    assert _recv(s, _ipv4(_reply(theirs)), 1) is Received.NOT_OURS
    assert _recv(s, _ipv4(_reply(req, ident=0x4321)), 1) is Received.NOT_OURS  # raw: ident
    never = codec.encode_echo(0x1234, 7, s.payload(7, 64), request=False)
    assert _recv(s, _ipv4(never), 1) is Received.STRAY  # our cookie, a token never sent
    trace = codec.encode_echo(0x1234, req.token & 0xFFFF, trace_codec.MAGIC + bytes(36),
                              request=False)
    assert _recv(s, _ipv4(trace), 1) is Received.NOT_OURS  # a trace probe on our flow
    assert _recv(s, _ipv4(req.data), 1) is Received.NOT_OURS  # a request, not a reply
    assert _recv(s, _ipv4(_reply(req), ttl=57), 2) is Received.ANSWER
    [out] = _expire(s, 500)
    assert (out.status, out.reply_ttl) == (Status.RECEIVED, 57)  # the IP header's TTL
    st_ = s.statistics()
    assert (st_.stray, st_.malformed_stray, st_.duplicates) == (1, 0, 0)


def test_icmp_errors_ours_noted_foreign_counted_apart() -> None:
    s = _session()
    req = _send(s)
    quoted_ours = _ipv4(req.data, ttl=1)
    unreach = struct.pack("!BBHI", codec.ICMP_DEST_UNREACH, 1, 0, 0) + quoted_ours
    assert _recv(s, _fix_checksum(unreach), 3) is Received.ERROR_NOTED
    udp = struct.pack("!BBHI", codec.ICMP_DEST_UNREACH, 3, 0, 0) + _ipv4(bytes(8), protocol=17)
    assert _recv(s, _fix_checksum(udp), 4) is Received.FOREIGN
    [out] = _expire(s, 1_000)
    assert (out.status, out.error_detail) == (Status.LOST, "icmp error type 3 code 1")
    st_ = s.statistics()
    assert dict(st_.foreign) == {17: 1}
    assert st_.malformed_stray == 0


def _fix_checksum(msg: bytes) -> bytes:
    csum = codec.checksum(msg[:2] + b"\0\0" + msg[4:])
    return msg[:2] + csum.to_bytes(2, "big") + msg[4:]


def test_malformed_replies_to_a_probe_are_errors_and_garbage_is_counted_and_dropped() -> None:
    s = _session()
    bad_sum, short, ok = _send(s), _send(s), _send(s)
    assert _recv(s, _reply(bad_sum, corrupt=True), 2) is Received.ANSWER
    assert _recv(s, _reply(short, cut=24), 2) is Received.ANSWER
    assert _recv(s, _reply(ok), 2) is Received.ANSWER
    assert _recv(s, b"\x00\x01", 2) is Received.MALFORMED
    assert _recv(s, bytes([13, 0, 0, 0]) + bytes(16), 2) is Received.MALFORMED  # a timestamp
    outs = _expire(s, 200)
    assert [(o.status, o.error) for o in outs] == [
        (Status.ERROR, ErrorKind.MALFORMED_REPLY), (Status.ERROR, ErrorKind.MALFORMED_REPLY),
        (Status.RECEIVED, None)]
    assert all(o.rtt_ns is None for o in outs[:2])
    st_ = s.statistics()
    assert (st_.malformed, st_.malformed_stray, st_.lost, st_.received) == (2, 2, 0, 1)


@given(st.binary(max_size=200))
def test_any_bytes_are_a_received_kind_never_an_exception(data: bytes) -> None:
    for raw, v6 in ((True, False), (False, False), (False, True)):
        s = _session(raw=raw, v6=v6)
        _send(s)
        assert isinstance(_recv(s, data, 1), Received)


def test_sequence_numbers_wrap_with_the_token_and_tokens_wrap_at_64_bits() -> None:
    s = _session(first_token=0xFFFE)
    reqs = [_send(s) for _ in range(3)]
    assert [r.token & 0xFFFF for r in reqs] == [0xFFFE, 0xFFFF, 0]
    for k, r in enumerate(reversed(reqs)):
        assert _recv(s, _reply(r), 5 + k) is Received.ANSWER
    outs = _expire(s, 200)
    assert [(o.token, o.rtt_ns) for o in outs] == [(0x10000, 5 * MS), (0xFFFF, 6 * MS),
                                                   (0xFFFE, 7 * MS)]
    top = _session(first_token=(1 << 64) - 1)
    assert [_send(top).token for _ in range(2)] == [(1 << 64) - 1, 0]


def test_a_damaged_token_is_matched_by_sequence_as_a_malformed_reply() -> None:
    s = _session()
    req = _send(s)
    echo = codec.decode_icmp(req.data)
    assert isinstance(echo, codec.Echo)
    damaged = codec.encode_echo(echo.ident, echo.seq, b"XXXX" + echo.payload[4:], request=False)
    assert _recv(s, damaged, 2) is Received.ANSWER
    [out] = _expire(s, 200)
    assert out.error is ErrorKind.MALFORMED_REPLY


def test_65536_in_flight_the_next_is_a_local_drop_never_sent() -> None:
    s = _session(first_token=0)
    for _ in range(65536):
        _send(s)
    full = s.request("192.0.2.1", 64, TMAX, WALL, MONO)
    assert isinstance(full, Outcome)
    assert (full.status, full.error) == (Status.ERROR, ErrorKind.LOCAL_DROP)
    st_ = s.statistics()
    assert (st_.sent, st_.queue_full, st_.in_flight) == (65536, 1, 65536)


def test_a_wall_clock_step_during_a_probe_is_a_clock_step_error() -> None:
    s = _session()
    req = _send(s)
    assert _recv(s, _reply(req), 5, wall_skew_ns=1_000_000_000) is Received.ANSWER
    [out] = _expire(s, 200)
    assert (out.status, out.error, out.rtt_ns) == (Status.ERROR, ErrorKind.CLOCK_STEP, None)
    assert s.statistics().clock_steps == 1


def test_a_negative_round_trip_is_a_clock_fault_never_zero_never_loss() -> None:
    """The kernel RX stamp before the TX stamp (a small backward step, under the step check's
    50 us): before this change the pinger clamped it to an RTT of 0."""
    s = _session()
    req = _send(s)
    s.tx_timestamp(req.data, WALL + 30_000)
    assert _recv(s, _reply(req), 0.02, rx_ns=WALL + 10_000) is Received.ANSWER
    [out] = _expire(s, 200)
    assert (out.status, out.error, out.rtt_ns, out.ts_source) == (
        Status.ERROR, ErrorKind.CLOCK_FAULT, None, TimestampSource.KERNEL)
    assert "-20000 ns < 0" in (out.error_detail or "")
    st_ = s.statistics()
    assert (st_.clock_faults, st_.lost, st_.received) == (1, 0, 0)


def test_a_send_failure_is_an_error_not_a_probe_sent_and_its_reply_a_stray() -> None:
    s = _session()
    req = _send(s)
    out = s.send_failed(req.token, "No route to host")
    assert out is not None
    assert (out.status, out.error, out.error_detail) == (
        Status.ERROR, ErrorKind.SEND_ERROR, "No route to host")
    assert s.send_failed(req.token, "again") is None
    assert _recv(s, _reply(req), 3) is Received.STRAY
    assert _expire(s, 2_000) == []
    st_ = s.statistics()
    assert (st_.sent, st_.send_errors, st_.in_flight) == (0, 1, 0)


def test_a_size_below_the_codec_minimum_is_a_send_error() -> None:
    s = _session()
    out = s.request("192.0.2.1", codec.MIN_SIZE - 1, TMAX, WALL, MONO)
    assert isinstance(out, Outcome)
    assert (out.status, out.error) == (Status.ERROR, ErrorKind.SEND_ERROR)
    assert "below the minimum" in (out.error_detail or "")


def test_shutdown_ends_every_probe_answered_ones_as_received() -> None:
    s = _session()
    a, _b = _send(s), _send(s)
    _recv(s, _reply(a), 1)
    assert [o.status for o in s.finalise_all()] == [Status.RECEIVED, Status.LOST]
    assert s.in_flight() == 0
    assert s.next_deadline() is None


def test_statistics_are_a_frozen_snapshot() -> None:
    s = _session()
    _send(s)
    snap = s.statistics()
    _send(s)
    assert (snap.sent, s.statistics().sent) == (1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.sent = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        snap.foreign[1] = 1  # type: ignore[index]


def test_seeded_impaired_network_every_probe_one_outcome_exact_counts() -> None:
    """1,000 probes through a seeded network that loses, duplicates, delays and reorders: the
    session's counts equal the network's, and loss is only what the network lost."""
    rng = random.Random(7)
    s = _session()
    arrivals: list[tuple[float, bytes]] = []
    lost = dups = late = 0
    for i in range(1_000):
        req = _send(s, i)
        if rng.random() < 0.1:
            lost += 1
            continue
        delay = rng.choice([5.0, 20.0, 1_500.0]) if rng.random() < 0.05 else rng.uniform(1, 30)
        late += delay > TMAX / MS
        copies = 2 if rng.random() < 0.05 else 1
        dups += (copies - 1) * (delay <= TMAX / MS)
        arrivals += [(i + delay + k * 0.5, _reply(req)) for k in range(copies)]
    outs: list[Outcome] = []
    for at, data in sorted(arrivals, key=lambda a: a[0]):
        outs += _expire(s, at)
        _recv(s, data, at)
    outs += _expire(s, 10_000)
    st_ = s.statistics()
    assert len(outs) == 1_000
    assert len({o.token for o in outs}) == 1_000
    assert sum(o.status is Status.LOST for o in outs) == lost + late == st_.lost
    assert sum(o.dup for o in outs) == dups
    assert st_.received == 1_000 - lost - late
    assert st_.late >= late
    assert st_.stray == st_.malformed == 0
