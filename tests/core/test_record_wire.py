"""The result record's rules (ixmeter.core.rules on scalars), its spool form, and the signature."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ixmeter.core.errors import RecordError
from ixmeter.core.record import (
    ErrorKind,
    Hop,
    Method,
    Result,
    Status,
    TimestampSource,
    TypeP,
    from_dict,
)
from ixmeter.core.rules import BOUNDS, MAX_RESULTS, TMAX_MAX_NS, detail_text, text_problem
from ixmeter.core.wire import AuthError, sign, verify


def _result(**changes: Any) -> Result:
    base: dict[str, Any] = dict(
        probe_id="cs-yungu-ct", method=Method.ICMP, src_site="cs-yungu", src_carrier="CT",
        dst_site="cs-cmcc", dst_carrier="CM", src_addr="2001:2:0:1001::10",
        dst_addr="2001:2:0:2000::10", type_p=TypeP("icmp", 6, 64), seq=7,
        sent_at_ns=1_767_225_600_000_000_000, status=Status.RECEIVED, tmax_ns=3_000_000_000,
        ts_source=TimestampSource.KERNEL, rtt_ns=1_234_567)
    base.update(changes)
    return Result(**base)


@given(st.integers(min_value=0, max_value=2**63 - 1), st.one_of(
    st.none(), st.integers(min_value=0, max_value=3_000_000_000)))
def test_round_trip(seq: int, rtt: int | None) -> None:
    status = Status.LOST if rtt is None else Status.RECEIVED
    r = _result(seq=seq, rtt_ns=rtt, status=status,
                hops=(Hop(1, "198.18.1.1", 100), Hop(2, None, None)))
    assert from_dict(json.loads(json.dumps(r.to_dict()))) == r


T = 3_000_000_000
RULES: list[tuple[dict[str, Any], str, str]] = [
    # (changes, field, message part): a boolean or a float is not an integer, enums are typed
    ({"seq": True}, "seq", "expected int, got True"),
    ({"rtt_ns": 1.0}, "rtt_ns", "expected int or null, got 1.0"),
    ({"dup": False}, "dup", "expected int"),
    ({"src_synced": 1}, "src_synced", "expected bool or null"),
    ({"method": "icmp"}, "method", "expected Method"),
    ({"hops": [Hop(1, None)]}, "hops", "expected tuple"),
    ({"type_p": ("icmp", 4, 64)}, "type_p", "expected TypeP"),
    # strings
    ({"src_site": ""}, "src_site", "non-empty"),
    ({"probe_id": "p" * 129}, "probe_id", "at most 128"),
    ({"dst_addr": "1.2.3.4\x00"}, "dst_addr", "U+0000"),
    ({"src_carrier": "CT\ud800"}, "src_carrier", "U+D800"),
    ({"session": "s\x1b"}, "session", "U+001B"),
    ({"status": Status.ERROR, "rtt_ns": None, "error": ErrorKind.OTHER,
      "error_detail": "x" * 1025}, "error_detail", "at most 1024"),
    ({"error_detail": "a\x85"}, "error_detail", "U+0085"),
    # ranges (ixmeter.core.rules.BOUNDS)
    ({"seq": -1}, "seq", "-1 is not within 0..9223372036854775807"),
    ({"sent_at_ns": 0}, "sent_at_ns", "[2000-01-01, 2100-01-01)"),
    ({"sent_at_ns": 4_102_444_800 * 10**9}, "sent_at_ns", "2100"),
    ({"tmax_ns": 0}, "tmax_ns", "0 is not within 1..3600000000000"),
    ({"tmax_ns": TMAX_MAX_NS + 1}, "tmax_ns", "at most 3,600 s (RFC 7680 §2.4)"),
    ({"rtt_ns": -1}, "rtt_ns", "-1 is not within 0..tmax_ns (3000000000)"),
    ({"rtt_ns": T + 1}, "rtt_ns", "a reply after Tmax is lost by definition (RFC 7680 §2.4"),
    ({"fwd_ns": T + 1}, "fwd_ns", "RFC 7679 §3.4-3.5"),
    ({"bwd_ns": -1}, "bwd_ns", "-1 is not within 0..tmax_ns"),
    ({"clock_error_ns": 86_400 * 10**9 + 1}, "clock_error_ns", "RFC 7679 §3.7.3"),
    ({"dup": 2**31}, "dup", "not within 0..2147483647"),
    ({"reply_ttl": 256}, "reply_ttl", "256 is not within 0..255"),
    ({"v": 2}, "v", "2 is not within 1..1"),
    # per result (RFC 7680 §2.4-2.5)
    ({"rtt_ns": None}, "rtt_ns", "a received result needs rtt_ns or fwd_ns"),
    ({"status": Status.LOST}, "rtt_ns", "a lost result has no delay"),
    ({"status": Status.ERROR, "rtt_ns": None}, "error", "must name its error code"),
    # hops
    ({"hops": (Hop(0, None),)}, "hops[0].ttl", "0 is not within 1..255"),
    ({"hops": (Hop(1, "a"), Hop(256, "b"))}, "hops[1].ttl", "256 is not within 1..255"),
    ({"hops": (Hop(1, "a", T + 1),)}, "hops[0].rtt_ns", "tmax_ns (3000000000)"),
    ({"hops": (Hop(1, "", 1),)}, "hops[0].addr", "non-empty"),
    ({"hops": (Hop(1, "a" * 65, 1),)}, "hops[0].addr", "at most 64"),
    ({"hops": (Hop(True, "a", 1),)}, "hops[0]", "expected integer ttl and rtt_ns"),
    ({"hops": ((1, "a", 1),)}, "hops[0]", "expected a Hop"),
]


@pytest.mark.parametrize(("changes", "field", "part"), RULES,
                         ids=[f"{f}:{p}"[:50] for _c, f, p in RULES])
def test_every_rule_refuses_naming_the_field(changes: dict[str, Any], field: str,
                                             part: str) -> None:
    with pytest.raises(RecordError) as exc:
        _result(**changes)
    message = str(exc.value)
    assert message.startswith(f"field '{field}': "), message
    assert part in message, message


@pytest.mark.parametrize(("args", "field", "part"), [
    (("sctp", 4, 64), "protocol", "'sctp' is not one of icmp, udp, tcp"),
    (("udp", 5, 64), "ip_version", "5 is not 4 or 6"),
    (("udp", True, 64), "ip_version", "True is not 4 or 6"),
    (("udp", 4, 65536), "size", "65536 is not within 0..65535"),
    (("udp", 4, 64.0), "size", "expected an integer, got 64.0"),
    (("udp", 4, 64, 64), "dscp", "64 is not within 0..63"),
    (("udp", 4, 64, 0, 65536), "dst_port", "65536 is not within 0..65535"),
    (("udp", 4, 64, 0, -1), "dst_port", "-1 is not within 0..65535"),
])
def test_type_p_rules(args: tuple[Any, ...], field: str, part: str) -> None:
    with pytest.raises(RecordError, match=rf"^field 'type_p\.{field}': .*{part}"):
        TypeP(*args)


def test_the_edges_of_every_range_are_valid() -> None:
    _result(seq=2**63 - 1, sent_at_ns=946_684_800 * 10**9, tmax_ns=TMAX_MAX_NS,
            rtt_ns=TMAX_MAX_NS, fwd_ns=0, bwd_ns=TMAX_MAX_NS, clock_error_ns=86_400 * 10**9,
            dup=2**31 - 1, reply_ttl=255, session="s" * 128, probe_id="p" * 128,
            error_detail="é" * 1024, hops=(Hop(255, "a" * 64, TMAX_MAX_NS), Hop(1, None)),
            type_p=TypeP("tcp", 6, 65535, 63, 65535))
    _result(sent_at_ns=4_102_444_800 * 10**9 - 1, tmax_ns=1, rtt_ns=1, reply_ttl=0)


@given(st.text(max_size=1500))
def test_a_probes_own_message_always_makes_a_valid_detail(text: str) -> None:
    detail = detail_text(text)
    _result(status=Status.ERROR, rtt_ns=None, error=ErrorKind.SEND_ERROR, error_detail=detail)
    if text_problem([text], 1024, empty_ok=True) is None:
        assert detail == text  # a valid text is kept as it is


def test_bounds_are_ordered_after_the_column_they_name() -> None:
    seen: set[str] = set()
    for b in BOUNDS:
        assert not isinstance(b.high, str) or b.high in seen, b
        seen.add(b.column)
    assert MAX_RESULTS * TMAX_MAX_NS < 2**63  # a batch's sum of delays fits int64


@pytest.mark.parametrize(("field", "value", "message"), [
    ("seq", "7", "field 'seq': expected int, got '7'"),
    ("seq", True, "field 'seq': expected int, got True"),
    ("method", "carrier-pigeon", "field 'method': 'carrier-pigeon' is not one of"),
    ("status", 0, "field 'status': 0 is not one of received"),
    ("v", 99, "field 'v': 99 is not within 1..1"),
    ("src_site", "", "field 'src_site'"),
    ("type_p", {"protocol": "sctp", "ip_version": 4, "size": 1}, "type_p.protocol"),
    ("type_p", {"protocol": "udp", "ip_version": 4}, "field 'type_p': expected an object"),
    ("hops", [[1, "a"]], "field 'hops': expected a list of"),
    ("colour", "red", "field 'colour': unknown key"),
])
def test_the_spool_form_names_bad_fields(field: str, value: Any, message: str) -> None:
    d = json.loads(json.dumps(_result().to_dict()))
    d[field] = value
    with pytest.raises(RecordError, match=message):
        from_dict(d)


def test_the_spool_form_needs_every_required_field() -> None:
    d = _result().to_dict()
    del d["tmax_ns"]
    with pytest.raises(RecordError, match="field 'tmax_ns': missing"):
        from_dict(d)
    with pytest.raises(RecordError, match="result: expected an object, got list"):
        from_dict([])  # type: ignore[arg-type]


def test_sign_verify_and_tamper() -> None:
    body = b'{"batch_id":"b1"}'
    key = b"k" * 32
    headers = sign(key, "cs-yungu-ct", "POST", "/v1/batches", body, now=1000.0)
    assert verify(key, headers, "POST", "/v1/batches", body, now=1001.0) == headers[
        "X-Ixmeter-Nonce"]
    with pytest.raises(AuthError) as bad:
        verify(key, headers, "POST", "/v1/batches", body + b" ", now=1001.0)
    assert bad.value.reason == "bad_signature"
    with pytest.raises(AuthError) as stale:
        verify(key, headers, "POST", "/v1/batches", body, now=5000.0)
    assert stale.value.reason == "stale_timestamp"
