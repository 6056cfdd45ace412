"""The result record and the signed wire format."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ixmeter.errors import RecordError
from ixmeter.record import (
    ErrorKind,
    Hop,
    Method,
    Result,
    Status,
    TimestampSource,
    TypeP,
    from_dict,
)
from ixmeter.wire import AuthError, Batch, decode_batch, encode_batch, sign, verify


def _result(**changes: Any) -> Result:
    base: dict[str, Any] = dict(
        probe_id="cs-yungu-ct", method=Method.ICMP, src_site="cs-yungu", src_carrier="CT",
        dst_site="cs-cmcc", dst_carrier="CM", src_addr="2001:2:0:1001::10",
        dst_addr="2001:2:0:2000::10", type_p=TypeP("icmp", 6, 64), seq=7,
        sent_at_ns=1_767_225_600_000_000_000, status=Status.RECEIVED, tmax_ns=3_000_000_000,
        ts_source=TimestampSource.KERNEL, rtt_ns=1_234_567)
    base.update(changes)
    return Result(**base)


@given(st.integers(min_value=0, max_value=2**31), st.one_of(st.none(),
       st.integers(min_value=0, max_value=10**10)))
def test_round_trip(seq: int, rtt: int | None) -> None:
    status = Status.LOST if rtt is None else Status.RECEIVED
    r = _result(seq=seq, rtt_ns=rtt, status=status,
                hops=(Hop(1, "198.18.1.1", 100), Hop(2, None, None)))
    assert from_dict(json.loads(json.dumps(r.to_dict()))) == r


@pytest.mark.parametrize(("field", "value", "message"), [
    ("seq", "7", "field 'seq': expected an integer"),
    ("method", "carrier-pigeon", "field 'method': 'carrier-pigeon' is not one of"),
    ("v", 99, "unknown schema version 99"),
    ("src_site", "", "field 'src_site'"),
    ("type_p", {"protocol": "sctp", "ip_version": 4, "size": 1}, "type_p.protocol"),
])
def test_bad_fields_are_named(field: str, value: Any, message: str) -> None:
    d = _result().to_dict()
    d[field] = value
    with pytest.raises(RecordError, match=message):
        from_dict(d)


def test_lost_has_no_delay_and_error_names_its_kind() -> None:
    with pytest.raises(RecordError, match="lost result has no delay"):
        _result(status=Status.LOST)
    with pytest.raises(RecordError, match="ErrorKind"):
        _result(status=Status.ERROR, rtt_ns=None)
    ok = _result(status=Status.ERROR, rtt_ns=None, error=ErrorKind.SEND_ERROR)
    assert not ok.lost


def test_batch_sign_verify_and_tamper() -> None:
    body = encode_batch(Batch("cs-yungu-ct", "b1", (_result(),)))
    key = b"k" * 32
    headers = sign(key, "cs-yungu-ct", "POST", "/v1/batches", body, now=1000.0)
    assert verify(key, headers, "POST", "/v1/batches", body, now=1001.0) == headers[
        "X-Ixmeter-Nonce"]
    assert decode_batch(body).results[0].rtt_ns == 1_234_567
    with pytest.raises(AuthError) as bad:
        verify(key, headers, "POST", "/v1/batches", body + b" ", now=1001.0)
    assert bad.value.reason == "bad_signature"
    with pytest.raises(AuthError) as stale:
        verify(key, headers, "POST", "/v1/batches", body, now=5000.0)
    assert stale.value.reason == "stale_timestamp"


def test_batch_rejects_foreign_results() -> None:
    body = encode_batch(Batch("cs-yungu-ct", "b1", (_result(probe_id="other"),)))
    with pytest.raises(RecordError, match=r"results\[0\].probe_id"):
        decode_batch(body)
