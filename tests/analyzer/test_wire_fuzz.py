"""Any bytes, called straight: the decoder accepts exactly what the oracle accepts, with the
same results, or raises only RecordError; and whatever it accepts the store can hold: the
blob codec gives it back equal and the rollups take it (no overflow, no exception)."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.columns import ColumnBatch, batch_blobs, decode_blob
from analyzer.rollups.batch import batch_tables
from analyzer.synthetic.varied import make_batches, wide_paths
from ixmeter.core.rules import (
    CLOCK_ERROR_MAX_NS,
    DUP_MAX,
    INT64_MAX,
    SENT_AT_END_NS,
    SENT_AT_MIN_NS,
    TMAX_MAX_NS,
)
from ixmeter.core.wire import encode_columns
from tests.analyzer.wire_cases import base_body, batches, judged, paths, same_blocks

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))


def stored_alike(batch: ColumnBatch) -> None:
    """The accepted batch as the store keeps it: blobs back equal, rollups computed."""
    for blob in batch_blobs(batch):
        assert same_blocks(decode_blob([b.ident for b in blob.blocks], blob.data), blob.blocks)
    batch_tables(batch.blocks, (1_000_000, 3_000_000))


def decided(body: bytes) -> None:
    got = judged(body)
    if not isinstance(got, str):
        stored_alike(got)


# Values a mutation puts anywhere: wrong JSON types, the edges of every rule (inside and out),
# storage edges, text that breaks storage, deep nesting.
EDGES = [
    True, False, None, 0, 1, -1, 2, 1.0, 1.5, float("nan"), float("inf"), 1e300,
    INT64_MAX, INT64_MAX + 1, -INT64_MAX, -INT64_MAX - 1, 2**64, 10**30, -(10**30),
    255, 256, 63, 64, 65535, 65536, 2**31 - 1, 2**31, DUP_MAX,
    TMAX_MAX_NS, TMAX_MAX_NS + 1, CLOCK_ERROR_MAX_NS, CLOCK_ERROR_MAX_NS + 1,
    SENT_AT_MIN_NS, SENT_AT_MIN_NS - 1, SENT_AT_END_NS - 1, SENT_AT_END_NS, 3 * 10**9,
    3 * 10**9 + 1, "", "x", "icmp", "udp", "a\x00b", "\ud800", "\udc00x", "é" * 128,
    "é" * 129, "\x7f", "\u0085", "\n", [], {}, [0], [[0, "x"]], [[0, [[1, None, None]]]],
    [[0, [[255, "a" * 64, 0]]]], [[0, [[1, "a" * 65, 0]]]], [[[[[[[[[[[]]]]]]]]]]],
    {"k": {"k": {"k": {"k": []}}}}]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
    | st.text(max_size=5) | st.sampled_from(EDGES),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=4),
    max_leaves=10)


def dumps(obj: Any, ascii_only: bool) -> bytes:
    """JSON bytes as a client might send them; a lone surrogate raw (invalid UTF-8) when not
    escaped."""
    return json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw: st.DrawFn, obj: dict[str, Any]) -> bytes:
    """``obj`` with a few values replaced, keys dropped or added, then maybe truncated."""
    obj = json.loads(json.dumps(obj))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["nudge", "nudge", "value", "edge", "drop", "add"]))
        every = paths(obj)
        ints = [p for p in every if type(_at(obj, p)) is int]
        path = draw(st.sampled_from(ints if kind == "nudge" and ints else every))
        *head, last = path
        parent = _at(obj, tuple(head))
        if kind == "nudge" and type(parent[last]) is int:  # mostly still valid
            parent[last] += draw(st.sampled_from([-1, 1, 10**9, -(10**9)]))
        elif kind == "drop" and isinstance(parent, dict):
            del parent[last]
        elif kind == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["x", "n", "v", "idx", "results", "probe_id"]))] = (
                copy.deepcopy(draw(json_values)))
        elif kind == "edge":
            parent[last] = copy.deepcopy(draw(st.sampled_from(EDGES)))
        else:
            parent[last] = copy.deepcopy(draw(json_values))
    body = dumps(obj, draw(st.booleans()))
    if draw(st.sampled_from([False] * 9 + [True])):  # truncated, now and then
        body = body[:draw(st.integers(0, len(body)))]
    return body


def _at(obj: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        obj = obj[key]
    return obj


NARROW = json.loads(encode_columns(make_batches("p1", 1, 60)[0]))
WIDE = json.loads(encode_columns(make_batches("p1", 1, 300, paths=wide_paths(30))[0]))


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(body: bytes) -> None:
    decided(body)


@FUZZ
@given(json_values, st.booleans())
def test_random_json(value: Any, ascii_only: bool) -> None:
    decided(dumps(value, ascii_only))
    decided(dumps({"v": 2, "probe_id": "p", "batch_id": "b", "streams": [value]}, ascii_only))


@FUZZ
@given(st.sampled_from([base_body(), NARROW, WIDE]).flatmap(mutated))
def test_mutated_bodies(body: bytes) -> None:
    decided(body)


@FUZZ
@given(batches(max_results=12).flatmap(lambda b: mutated(json.loads(encode_columns(b)))))
def test_mutated_generated_bodies(body: bytes) -> None:
    decided(body)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches())
def test_valid_bodies_are_stored_alike(batch: Any) -> None:
    got = judged(encode_columns(batch))
    assert not isinstance(got, str), got
    stored_alike(got)
