"""The fast decoding path gives exactly what the checked path gives: the same records, and for
bad input the same RecordError text (the collector returns it to the probe)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ixmeter import record
from ixmeter.errors import RecordError
from ixmeter.record import Result, from_dict
from ixmeter.wire import Batch, decode_batch, encode_batch
from tests.store.factory import make_results

RESULTS = make_results("p0", 200)
DICTS = [json.loads(json.dumps(r.to_dict())) for r in RESULTS]


def _outcome(d: Any) -> Result | str:
    try:
        return from_dict(d)
    except RecordError as exc:
        return f"RecordError: {exc}"


def _checked_outcome(d: Any) -> Result | str:
    """What from_dict gave before the fast path existed."""
    with mock.patch.object(record, "_from_v1_fast", return_value=None):
        return _outcome(d)


def test_fast_path_takes_every_factory_record_and_builds_the_same_result() -> None:
    for d, expected in zip(DICTS, RESULTS, strict=True):
        fast = record._from_v1_fast(d)
        assert fast is not None
        assert type(fast) is Result
        assert fast == expected
        assert hash(fast) == hash(expected)
        assert fast.to_dict() == expected.to_dict()


def test_fast_result_is_frozen() -> None:
    fast = record._from_v1_fast(DICTS[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.seq = 5  # type: ignore[misc, union-attr]


def test_fast_path_covers_every_field() -> None:
    names = [f.name for f in dataclasses.fields(Result)]
    assert [*record._FAST_TYPES, "v"] == names
    assert record._UnfrozenResult.__slots__ == tuple(names)


def test_encode_decode_is_byte_identical() -> None:
    batch = Batch("p0", "b1", tuple(RESULTS))
    body = encode_batch(batch)
    assert decode_batch(body) == batch
    assert encode_batch(decode_batch(body)) == body


BAD_VALUES: list[Any] = [None, True, False, 0, -1, 4.0, 2**70, "", "x", "icmp", "lost",
                         "send_error", [], [[1, None, None]], [[1, "a"]], {}]


@pytest.mark.parametrize("name", [*record._FAST_TYPES, "v"])
@pytest.mark.parametrize("value", BAD_VALUES, ids=repr)
def test_one_odd_field_gives_the_checked_outcome(name: str, value: Any) -> None:
    for d in (DICTS[0], DICTS[1], DICTS[3]):
        odd = {**d, name: value}
        assert _outcome(odd) == _checked_outcome(odd)


@pytest.mark.parametrize("name", [*record._FAST_TYPES, "v"])
def test_a_missing_field_gives_the_checked_outcome(name: str) -> None:
    d = dict(DICTS[1])
    del d[name]
    assert _outcome(d) == _checked_outcome(d)


@pytest.mark.parametrize("name", ["protocol", "ip_version", "size", "dscp", "dst_port"])
@pytest.mark.parametrize("value", [*BAD_VALUES, 6, 63, 64, "udp", "sctp"], ids=repr)
def test_an_odd_type_p_gives_the_checked_outcome(name: str, value: Any) -> None:
    from_dict(DICTS[0])  # the well-formed Type-P is cached first: 4.0 or true must not hit it
    for d in (DICTS[0], DICTS[1]):
        odd = {**d, "type_p": {**d["type_p"], name: value}}
        assert _outcome(odd) == _checked_outcome(odd)
        without = {**d, "type_p": {k: v for k, v in d["type_p"].items() if k != name}}
        assert _outcome(without) == _checked_outcome(without)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
    | st.sampled_from(["icmp", "stamp", "lost", "error", "received", "kernel", "send_error"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(base=st.sampled_from(DICTS),
       changes=st.dictionaries(st.sampled_from([*record._FAST_TYPES, "v"]), JSON_VALUES,
                               max_size=3))
def test_random_changes_give_the_checked_outcome(base: dict[str, Any],
                                                 changes: dict[str, Any]) -> None:
    d = {**base, **changes}
    assert _outcome(d) == _checked_outcome(d)


def _body(*results: dict[str, Any]) -> bytes:
    return json.dumps({"v": 1, "probe_id": "p0", "batch_id": "b", "results": results}).encode()


def test_bodies_orjson_refuses_are_still_read_as_json_reads_them() -> None:
    (result,) = decode_batch(_body({**DICTS[0], "error_detail": "\ud800"})).results
    assert result.error_detail == "\ud800"


def test_an_integer_beyond_64_bits_is_read_as_json_reads_it() -> None:
    """orjson reads 2**70 as a float; the record would be refused, so json reads it again."""
    (result,) = decode_batch(_body({**DICTS[0], "seq": 2**70})).results
    assert result.seq == 2**70


def test_a_bad_body_keeps_the_error_text() -> None:
    with pytest.raises(RecordError, match=r"^results\[1\]: field 'seq': expected an integer, "
                       r"got 1\.5$"):
        decode_batch(_body(DICTS[0], {**DICTS[1], "seq": 1.5}))


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff", b'{"v": 1,}'])
def test_invalid_json_keeps_the_json_error_text(body: bytes) -> None:
    try:
        json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        expected = f"body: not valid JSON ({exc})"
    with pytest.raises(RecordError) as info:
        decode_batch(body)
    assert str(info.value) == expected
