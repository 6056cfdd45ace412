"""The batch body: the probe's encoder and the collector's decoder agree with ``blocks_of`` and
with the oracle (``wire_oracle``); every rule refuses with its exact field path."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.collector.app import bad_record, field_of
from analyzer.columns import (
    CODE_COLUMNS,
    INT_COLUMNS,
    STREAM_FIELDS,
    StreamIdent,
    blocks_of,
)
from analyzer.synthetic.varied import make_batches, make_results, wide_paths
from analyzer.wire_columns import decode_body
from ixmeter.core.errors import RecordError
from ixmeter.core.record import ErrorKind, Method, Status, TimestampSource
from ixmeter.core.rules import ERROR_CODES, MAX_RESULTS, STATUS_CODES, TS_SOURCE_CODES
from ixmeter.core.wire import Batch, encode_columns
from tests.analyzer import wire_oracle
from tests.analyzer.wire_cases import (
    DELETE,
    PROBE,
    base_body,
    batches,
    edit,
    expanded,
    judged,
    result,
    same_blocks,
)

WIDE = make_batches("p1", 2, 1000, paths=wide_paths(100))  # 100 streams of 10 per batch
NARROW = make_batches("p1", 1, 1000)[0]  # 6 streams of about 167


def assert_round_trip(batch: Batch) -> None:
    body = encode_columns(batch)
    assert body.startswith(b'{"batch_id":')  # the collector's duplicate check reads it there
    assert body == json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False).encode()  # canonical
    got = judged(body)
    assert not isinstance(got, str), got
    assert (got.probe_id, got.batch_id, got.n) == (batch.probe_id, batch.batch_id,
                                                    len(batch.results))
    assert same_blocks(got.blocks, blocks_of(batch.results))
    assert wire_oracle.read(body)[2] == list(batch.results)


# -- round trips ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "size", "seed"), [(1, 1000, 1), (3, 97, 2), (2, 1, 3), (1, 0, 1)])
def test_factory_batches_round_trip(n: int, size: int, seed: int) -> None:
    for batch in make_batches("p1", n, size, seed=seed):
        assert_round_trip(batch)


@pytest.mark.parametrize("batch", [*WIDE, NARROW], ids=["wide0", "wide1", "narrow"])
def test_many_streams_round_trip_with_the_stored_dtypes(batch: Batch) -> None:
    assert_round_trip(batch)
    for b in decode_body(encode_columns(batch)).blocks:
        assert {getattr(b, c).dtype for c in INT_COLUMNS} == {np.dtype(np.int64)}
        assert {getattr(b, c).dtype for c in CODE_COLUMNS} == {np.dtype(np.int8)}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_generated_batches_round_trip(batch: Batch) -> None:
    assert_round_trip(batch)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches(), st.booleans())
def test_lists_defaults_and_stream_order_decode_alike(batch: Batch, omit: bool) -> None:
    """Columns sent as lists, streams in reverse order, keys at their default left out."""
    obj = expanded(json.loads(encode_columns(batch)))
    obj["streams"].reverse()
    if omit:
        for s in obj["streams"]:
            for key, default in (("session", ""), ("error_detail", []), ("hops", [])):
                if s[key] == default:
                    del s[key]
            if s["type_p"]["dscp"] == 0:
                del s["type_p"]["dscp"]
    got = judged(json.dumps(obj).encode())
    assert not isinstance(got, str), got
    assert same_blocks(got.blocks, blocks_of(batch.results))


def test_streams_of_unequal_length_and_runs() -> None:
    """30 streams sent as runs of positions, 60 interleaved, 10 of 3 results only."""
    results = WIDE[0].results  # result i is on path i % 100
    runs = sorted((r for i, r in enumerate(results) if i % 100 < 30), key=lambda r: r.dst_site)
    rest = [r for i, r in enumerate(results) if i % 100 >= 30 and (i % 100 < 90 or i < 300)]
    batch = Batch("p1", "b", tuple(runs + rest))
    obj = json.loads(encode_columns(batch))
    assert sorted({s["n"] for s in obj["streams"]}) == [3, 10]
    assert [type(s["idx"]) for s in obj["streams"]] == [int] * 30 + [list] * 70
    assert_round_trip(batch)


def test_code_tables_are_the_enums_in_order() -> None:
    assert tuple(s.value for s in Status) == STATUS_CODES
    assert tuple(s.value for s in TimestampSource) == TS_SOURCE_CODES
    assert tuple(e.value for e in ErrorKind) == ERROR_CODES


# -- refusals -------------------------------------------------------------------------------------
def _s(i: int, *path: Any) -> tuple[Any, ...]:
    return ("streams", i, *path)


HOP = [[0, [[1, "198.18.1.1", 100]]]]
SENT = 1_790_000_000_000_000_000
REFUSALS: list[tuple[tuple[Any, ...], Any, str, str]] = [
    # (path, value, field, message part): JSON types and structure
    (_s(0, "rtt_ns", 2), 1.5, "streams[0].rtt_ns[2]", "expected `int | null`, got `float`"),
    (_s(0, "rtt_ns", 0), True, "streams[0].rtt_ns[0]", "got `bool`"),
    (_s(0, "seq", 1), "1", "streams[0].seq[1]", "expected `int`, got `str`"),
    (_s(0, "seq", 1), None, "streams[0].seq[1]", "expected `int`, got `null`"),
    (_s(0, "seq"), [0, [1], 2], "streams[0].seq[1]", "expected `int`, got `array`"),
    (_s(0, "tmax_ns"), True, "streams[0].tmax_ns", "got `bool`"),
    (_s(0, "sent_at_ns"), 2**63, "streams[0].sent_at_ns", "<= 9223372036854775807"),
    (_s(0, "sent_at_ns"), [1, -2**63, 2], "streams[0].sent_at_ns[1]", ">= -922337203685477580"),
    (_s(1, "bwd_ns", 0), -2**63, "streams[1].bwd_ns[0]", ">= -9223372036854775807"),
    (_s(1, "bwd_ns", 1), 2**64, "streams[1].bwd_ns[1]", "<= 9223372036854775807"),
    (_s(1, "dup"), 10**30, "streams[1].dup", "<= 9223372036854775807"),
    (_s(1, "src_synced", 0), 1, "streams[1].src_synced[0]", "expected `bool | null`"),
    (_s(0, "dst_synced"), "yes", "streams[0].dst_synced", "got `str`"),
    (_s(0, "seq"), [0, 1], "streams[0].seq", "expected 3 values, got 2"),
    (_s(0, "seq"), DELETE, "streams[0].seq", "missing"),
    (_s(0, "idx"), DELETE, "streams[0].idx", "missing"),
    (_s(0, "probe_id"), PROBE, "streams[0].probe_id", "unknown key"),
    (_s(0, "n"), 0, "streams[0].n", ">= 1"),
    (_s(0, "n"), True, "streams[0].n", "expected `int`, got `bool`"),
    (_s(1, "n"), MAX_RESULTS - 2, "streams[1].n", f"more than {MAX_RESULTS} results"),
    (_s(0, "dst_addr"), 7, "streams[0].dst_addr", "expected `str`, got `int`"),
    (_s(1, "session"), None, "streams[1].session", "expected `str`, got `null`"),
    (_s(0, "type_p"), [], "streams[0].type_p", "expected `object`, got `array`"),
    (_s(0, "type_p", "protocol"), 1, "streams[0].type_p.protocol", "expected `str`"),
    (_s(0, "type_p", "size"), 64.0, "streams[0].type_p.size", "expected `int`"),
    (_s(1, "error_detail"), [[1, 5]], "streams[1].error_detail[0][1]", "expected `str`"),
    (_s(1, "error_detail"), None, "streams[1].error_detail", "expected `array`"),
    (_s(0, "hops"), [[0, []]], "streams[0].hops[0][1]", "length >= 1"),
    (_s(0, "hops"), [[0, [[1, 2, 3]]]], "streams[0].hops[0][1][0][1]", "`str | null`"),
    (_s(0, "hops"), [[0, [[1, None]]]], "streams[0].hops[0][1][0]", "`array` of length 3"),
    (_s(0, "hops"), [0], "streams[0].hops[0]", "expected `array`, got `int`"),
    (_s(0), [], "streams[0]", "expected `object`"),
    (("streams",), {}, "streams", "expected `array`"),
    (("batch_id",), DELETE, "batch_id", "missing"),
    (("results",), [], "results", "unknown key"),
    (("v",), 3, "v", "invalid enum value 3"),
    # identities and strings
    (("probe_id",), "", "probe_id", "expected a non-empty string"),
    (("probe_id",), "p\x7f", "probe_id", "U+007F at 1"),
    (("batch_id",), "b" * 129, "batch_id", "129 characters, at most 128"),
    (_s(0, "method"), "ping", "streams[0].method", "'ping' is not one of icmp, stamp"),
    (_s(0, "src_site"), "", "streams[0].src_site", "expected a non-empty string"),
    (_s(0, "src_site"), "a\x00b", "streams[0].src_site", "U+0000 at 1"),
    (_s(1, "dst_carrier"), "x" * 129, "streams[1].dst_carrier", "at most 128"),
    (_s(1, "session"), "s\x1b[0m", "streams[1].session", "U+001B"),
    (_s(0, "type_p", "dscp"), 64, "streams[0].type_p.dscp", "64 is not within 0..63"),
    (_s(0, "type_p", "protocol"), "sctp", "streams[0].type_p.protocol", "not one of icmp"),
    (_s(0, "type_p", "ip_version"), 5, "streams[0].type_p.ip_version", "5 is not 4 or 6"),
    (_s(0, "type_p", "size"), 65536, "streams[0].type_p.size", "not within 0..65535"),
    (_s(1, "type_p", "dst_port"), -1, "streams[1].type_p.dst_port", "not within 0..65535"),
    # ranges, in the order of ixmeter.core.rules.BOUNDS
    (_s(0, "seq", 2), -1, "streams[0].seq[2]", "-1 is not within 0..9223372036854775807"),
    (_s(0, "sent_at_ns"), 0, "streams[0].sent_at_ns", "[2000-01-01, 2100-01-01)"),
    (_s(0, "sent_at_ns"), [SENT, 4_102_444_800 * 10**9, SENT], "streams[0].sent_at_ns[1]",
     "2100"),
    (_s(0, "tmax_ns"), 0, "streams[0].tmax_ns", "0 is not within 1..3600000000000"),
    (_s(0, "tmax_ns"), 3600 * 10**9 + 1, "streams[0].tmax_ns", "at most 3,600 s"),
    (_s(0, "rtt_ns", 0), -5, "streams[0].rtt_ns[0]", "-5 is not within 0..tmax_ns"),
    (_s(0, "rtt_ns", 2), 3 * 10**9 + 1, "streams[0].rtt_ns[2]",
     "3000000001 is not within 0..tmax_ns (3000000000): a reply after Tmax is lost"),
    (_s(1, "fwd_ns", 0), 4 * 10**9, "streams[1].fwd_ns[0]", "RFC 7679 §3.4"),
    (_s(1, "bwd_ns", 0), -1, "streams[1].bwd_ns[0]", "-1 is not within 0..tmax_ns"),
    (_s(0, "clock_error_ns"), 86_400 * 10**9 + 1, "streams[0].clock_error_ns", "RFC 7679 §3.7"),
    (_s(1, "dup"), 2**31, "streams[1].dup", "not within 0..2147483647"),
    (_s(0, "reply_ttl"), 256, "streams[0].reply_ttl", "256 is not within 0..255"),
    (_s(0, "v"), 2, "streams[0].v", "2 is not within 1..1"),
    (_s(0, "status", 1), 3, "streams[0].status[1]", "a code (0 received, 1 lost, 2 error)"),
    (_s(0, "status", 1), 300, "streams[0].status[1]", "300 is not within 0..2"),
    (_s(0, "ts_source"), -1, "streams[0].ts_source", "-1 is not within 0..3"),
    (_s(1, "error", 1), 6, "streams[1].error[1]", "6 is not within 0..5"),
    # idx, then the per-result rules
    (_s(0, "idx", 1), 5, "streams[0].idx[1]", "5 is not a position in the batch (0..4)"),
    (_s(0, "idx"), [0, 3, 2], "streams[0].idx[2]", "must increase within a stream, got 2 after 3"),
    (_s(0, "idx", 1), 1, "streams[1].idx[0]", "position 1 is in the batch twice"),
    (_s(1, "idx"), 4, "streams[1].idx", "5 is not a position in the batch (0..4)"),
    (_s(1, "idx"), 2**63 - 2, "streams[1].idx", "9223372036854775806 is not a position"),
    (_s(0, "rtt_ns", 0), None, "streams[0].rtt_ns[0]", "received result needs rtt_ns or fwd"),
    (_s(0, "rtt_ns", 1), 5, "streams[0].rtt_ns[1]", "a lost result has no delay"),
    (_s(1, "error"), None, "streams[1].error[1]", "error result must name its error code"),
    # sparse columns
    (_s(1, "error_detail"), [[2, "x"]], "streams[1].error_detail[0][0]", "in 0..1"),
    (_s(1, "error_detail"), [[1, "a"], [1, "b"]], "streams[1].error_detail[1][0]", "in 2..1"),
    (_s(1, "error_detail"), [[1, "x" * 1025]], "streams[1].error_detail[0][1]", "at most 1024"),
    (_s(1, "error_detail"), [[1, "a\nb"]], "streams[1].error_detail[0][1]", "U+000A"),
    (_s(0, "hops"), [[3, HOP[0][1]]], "streams[0].hops[0][0]", "in 0..2"),
    (_s(0, "hops"), [[0, [[0, None, None]]]], "streams[0].hops[0][1][0][0]", "0 is not within"),
    (_s(0, "hops"), [[0, [[256, None, None]]]], "streams[0].hops[0][1][0][0]", "1..255"),
    (_s(0, "hops"), [[0, [[1, "a", 3 * 10**9 + 1]]]], "streams[0].hops[0][1][0][2]", "tmax_ns"),
    (_s(0, "hops"), [[0, [[1, "a", -1]]]], "streams[0].hops[0][1][0][2]", "-1 is not within"),
    (_s(0, "hops"), [[0, [[1, "a", 1], [2, "", 1]]]], "streams[0].hops[0][1][1][1]",
     "non-empty"),
    (_s(0, "hops"), [[0, [[1, "a" * 65, 1]]]], "streams[0].hops[0][1][0][1]", "at most 64"),
]


@pytest.mark.parametrize(("path", "value", "field", "part"), REFUSALS,
                         ids=[f"{f}={v!r}"[:60] for _, v, f, _ in REFUSALS])
def test_refusals_name_the_exact_field(path: tuple[Any, ...], value: Any, field: str,
                                       part: str) -> None:
    obj = base_body()
    edit(path, value)(obj)
    message = refused(json.dumps(obj).encode())
    assert field_of(message) == field, message
    assert message.startswith(f"field '{field}': "), message
    assert part in message, message
    problem = bad_record(RecordError(message))
    assert (problem.status, problem.body["field"]) == (422, field)


def test_duplicate_stream_and_odd_keys_are_refused() -> None:
    obj = base_body()
    twin = copy.deepcopy(obj["streams"][0])
    obj["streams"][0].update(idx=[0, 2], n=2, seq=[0, 1], status=[0, 1], rtt_ns=[1, None])
    twin.update(idx=3, n=1, seq=2, status=0, rtt_ns=2)
    obj["streams"].append(twin)
    message = refused(json.dumps(obj).encode())
    assert message == "field 'streams[2]': the same stream as streams[0]"
    obj = base_body()
    obj["streams"][0]["it's"] = 1
    assert refused(json.dumps(obj).encode()) == "field 'streams[0]': unknown key \"it's\""


@pytest.mark.parametrize("body", [
    b"", b"{", b"\xff", b'{"v": 2,}', b"\xef\xbb\xbf{}", b'{"batch_id":"\\ud800"}',
    b'{"batch_id":"\xed\xa0\x80"}', b'{"batch_id":NaN}', json.dumps({"v": 2}).encode("utf-16"),
    json.dumps(base_body()).encode() + b" {}", json.dumps(base_body()).encode()[:-1]])
def test_what_is_not_json_is_a_body_error(body: bytes) -> None:
    message = refused(body)
    assert message.startswith("body: not valid JSON"), message
    assert field_of(message) == "body"
    assert bad_record(RecordError(message)).status == 400


@pytest.mark.parametrize("body", [b"[]", b"1", b"null", b'"x"', b"[1,", b"[" * 100_000])
def test_json_that_is_not_an_object_is_a_body_error(body: bytes) -> None:
    """The types are checked as the JSON is read: an array is refused at its first byte."""
    message = refused(body)
    assert message.startswith("body: expected `object`"), message
    assert bad_record(RecordError(message)).status == 400


def test_an_integer_beyond_64_bits_is_refused_where_it_is() -> None:
    message = refused(b'{"v":' + b"9" * 5000 + b"}")
    assert message == "field 'v': number out of range", message


def refused(body: bytes) -> str:
    """The decoder's refusal of ``body`` (the oracle refuses it too)."""
    with pytest.raises(RecordError) as exc:
        decode_body(body)
    with pytest.raises(RecordError):
        wire_oracle.read(body)
    return str(exc.value)


def test_a_body_may_not_claim_more_results_than_it_has_bytes() -> None:
    """All columns single values: 60,000 results in a few hundred bytes would be expanded by
    the decoder; refused on the claim, naming ``streams``. A real body passes."""
    obj = base_body()
    obj["streams"][0].update(n=60_000, idx=0, seq=0, status=1, rtt_ns=None, error_detail=[],
                             hops=[])
    del obj["streams"][1]
    body = json.dumps(obj).encode()
    message = refused(body)
    assert message == (f"field 'streams': 60000 results claimed in a body of {len(body)} "
                       "bytes (at most one result per byte)")
    real = encode_columns(make_batches("p1", 1, 1000)[0])
    assert decode_body(real).n == 1000


def test_streams_that_differ_in_one_identity_key_only() -> None:
    """Streams 1 and 41 made to differ only in the session or in the Type-P's DSCP are two
    streams; made to differ in nothing, the body is refused."""
    obj = json.loads(encode_columns(WIDE[0]))
    first, other = obj["streams"][1], obj["streams"][41]
    other.update(dst_site=first["dst_site"], dst_carrier=first["dst_carrier"])
    message = refused(json.dumps(obj).encode())
    assert message == "field 'streams[41]': the same stream as streams[1]"
    for key, value in (("session", "s2"), ("type_p", {**first["type_p"], "dscp": 0})):
        edited = copy.deepcopy(obj)
        edited["streams"][41][key] = value
        assert not isinstance(judged(json.dumps(edited).encode()), str)


def _runs() -> dict[str, Any]:
    """Two streams of 10 results, each sent as a run of positions: ``idx`` 0 and 10."""
    rs = make_results("p1", 20, paths=wide_paths(1))
    ordered = [r for r in rs if r.method is Method.ICMP] + [
        r for r in rs if r.method is not Method.ICMP]
    obj: dict[str, Any] = json.loads(encode_columns(Batch("p1", "b", tuple(ordered))))
    assert [s["idx"] for s in obj["streams"]] == [0, 10]
    return obj


@pytest.mark.parametrize("start", [10, 11, 9, -1, 2**63 - 1, 2**63 - 5, 2**63 - 100_000,
                                   2**63, -2**63, -2**63 + 1, True, 1.0, None, "10"])
@pytest.mark.parametrize("mixed", [False, True])
def test_idx_runs_must_stay_in_the_batch(start: Any, mixed: bool) -> None:
    """A run ``i`` stands for ``i .. i+n-1``: out of the batch it is refused, also where
    adding the offsets in int64 would wrap around; alone or next to a stream sent as a list."""
    obj = _runs()
    if mixed:
        obj["streams"][0]["idx"] = list(range(10))
    obj["streams"][1]["idx"] = start
    got = judged(json.dumps(obj).encode())
    assert isinstance(got, str) == (start != 10 or type(start) is not int), got
    if isinstance(got, str):
        assert field_of(got) == "streams[1].idx", got


def test_stream_identities_are_named_tuples_equal_to_plain_ones() -> None:
    """Decoded blocks carry a :class:`StreamIdent`: equal to, and hashing as, the plain tuple
    of :data:`STREAM_FIELDS`, read by name."""
    fields = ("p", "icmp", "a", "CT", "b", "CM", "1.1.1.1", "2.2.2.2", "icmp", 4, 64, 0, None, "")
    ident = StreamIdent(*fields)
    assert ident == fields
    assert hash(ident) == hash(fields)
    assert StreamIdent._fields == STREAM_FIELDS
    assert (ident.method, ident.dst_carrier, ident.session) == ("icmp", "CM", "")


def test_a_result_of_another_probe_is_not_encoded() -> None:
    with pytest.raises(RecordError, match=r"results\[1\].probe_id: 'other'"):
        encode_columns(Batch(PROBE, "b", (result(), result(probe_id="other", seq=1))))
