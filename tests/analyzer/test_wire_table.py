"""Wire v2 bodies of many streams: the stream table read across streams
(:func:`ixmeter.wire.read_table`) equals the reference's stream-by-stream reading, and the
collector's decoder accepts and refuses many-stream bodies exactly as the reference does."""

from __future__ import annotations

import copy
import dataclasses
import json
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.columns import CODE_COLUMNS, INT_COLUMNS, Block, block, blocks_of
from analyzer.wire_columns import decode_body, fast_columns
from ixmeter.record import Method
from ixmeter.wire import (
    DENSE_TYPES,
    Batch,
    StreamTable,
    decode_batch,
    encode_columns,
    read_streams,
    read_table,
)
from tests.analyzer.test_wire_columns import _decoded_alike, _paths, _refused, same_blocks
from tests.store.factory import make_batches, make_results, wide_paths

WIDE = make_batches("p1", 2, 1000, paths=wide_paths(100))  # 100 streams of 10 per batch
NARROW = make_batches("p1", 1, 1000)[0]  # 6 streams of about 167


def _body(batch: Batch) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(encode_columns(batch))
    return obj


def _reference_table(obj: Any) -> tuple[str, str, StreamTable]:
    probe_id, batch_id, streams = read_streams(obj)
    return probe_id, batch_id, StreamTable(
        [s.ident for s in streams], [s.n for s in streams],
        {name: [s.columns[name] for s in streams] for name in DENSE_TYPES},
        [s.error_detail for s in streams], [s.hops for s in streams])


def _same_table(got: tuple[str, str, StreamTable], want: tuple[str, str, StreamTable]) -> None:
    (probe, batch, table), (probe2, batch2, table2) = got, want
    assert (probe, batch) == (probe2, batch2)
    assert list(table.idents) == list(table2.idents)
    assert list(table.ns) == list(table2.ns)
    assert list(table.error_detail) == list(table2.error_detail)
    assert list(table.hops) == list(table2.hops)
    assert table.columns.keys() == table2.columns.keys()
    for name in DENSE_TYPES:  # same values of the same JSON types
        assert json.dumps(list(table.columns[name])) == json.dumps(list(table2.columns[name]))


def _shuffled_keys(obj: dict[str, Any], seed: int) -> dict[str, Any]:
    """Every stream's keys in its own order (the plain reading wants one order)."""
    rng = random.Random(seed)
    out = copy.deepcopy(obj)
    for k, stream in enumerate(out["streams"]):
        items = list(stream.items())
        rng.shuffle(items)
        out["streams"][k] = dict(items)
    return out


def _without_defaults(obj: dict[str, Any]) -> dict[str, Any]:
    """Every stream without the keys whose value is the default (the plain reading wants
    all keys)."""
    defaults = {"session": "", "error_detail": [], "hops": [], "dup": 0, "v": 1,
                "rtt_ns": None, "fwd_ns": None, "bwd_ns": None, "clock_error_ns": None,
                "reply_ttl": None, "error": None, "src_synced": None, "dst_synced": None}
    out = copy.deepcopy(obj)
    for stream in out["streams"]:
        for key, value in defaults.items():
            if key in stream and stream[key] == value and type(stream[key]) is type(value):
                del stream[key]
        if stream["type_p"]["dscp"] == 0:
            del stream["type_p"]["dscp"]
    return out


@pytest.mark.parametrize("batch", [*WIDE, NARROW], ids=["wide0", "wide1", "narrow"])
def test_table_equals_the_streams_read_one_by_one(batch: Batch) -> None:
    obj = _body(batch)
    assert len(obj["streams"]) in (6, 100)
    _same_table(read_table(obj), _reference_table(obj))
    for variant in (_shuffled_keys(obj, 1), _without_defaults(obj)):
        _same_table(read_table(variant), _reference_table(variant))
        assert same_blocks(fast_columns(variant).blocks,  # type: ignore[union-attr]
                           blocks_of(batch.results))


@pytest.mark.parametrize("batch", [*WIDE, NARROW], ids=["wide0", "wide1", "narrow"])
def test_many_streams_decode_to_the_reference_blocks(batch: Batch) -> None:
    body = encode_columns(batch)
    assert decode_batch(body) == batch
    assert fast_columns(json.loads(body)) is not None
    got = decode_body(body)
    assert (got.probe_id, got.batch_id, got.n) == (batch.probe_id, batch.batch_id, 1000)
    assert same_blocks(got.blocks, blocks_of(batch.results))
    for b in got.blocks:  # the stored dtypes (same_as compares values only)
        assert {getattr(b, c).dtype for c in INT_COLUMNS} == {np.dtype(np.int64)}
        assert {getattr(b, c).dtype for c in CODE_COLUMNS} == {np.dtype(np.int8)}


def test_streams_of_unequal_length_and_runs() -> None:
    """30 streams sent as runs of positions, 60 interleaved, 10 of 3 results only."""
    results = WIDE[0].results  # result i is on path i % 100
    runs = sorted((r for i, r in enumerate(results) if i % 100 < 30), key=lambda r: r.dst_site)
    rest = [r for i, r in enumerate(results) if i % 100 >= 30 and (i % 100 < 90 or i < 300)]
    batch = Batch("p1", "b", tuple(runs + rest))
    body = encode_columns(batch)
    obj = json.loads(body)
    assert sorted({s["n"] for s in obj["streams"]}) == [3, 10]
    assert [type(s["idx"]) for s in obj["streams"]] == [int] * 30 + [list] * 70
    assert fast_columns(obj) is not None
    assert same_blocks(decode_body(body).blocks, blocks_of(batch.results))


def test_streams_that_differ_in_one_identity_key_only() -> None:
    """Streams 1 and 41 made to differ only in the session or in the Type-P's DSCP are two
    streams; made to differ in nothing, the body is refused as the reference refuses it."""
    obj = _body(WIDE[0])
    first, other = obj["streams"][1], obj["streams"][41]
    other.update(dst_site=first["dst_site"], dst_carrier=first["dst_carrier"])
    message = _refused(json.dumps(obj).encode())
    assert message.startswith("field 'streams[41]': the same stream as streams[1]"), message
    for key, value in (("session", "s2"), ("type_p", {**first["type_p"], "dscp": 0})):
        edited = copy.deepcopy(obj)
        edited["streams"][41][key] = value
        body = json.dumps(edited).encode()
        assert fast_columns(json.loads(body)) is not None
        assert same_blocks(decode_body(body).blocks, blocks_of(decode_batch(body).results))


# Values that break one rule in one stream of a hundred; each column is checked over all
# streams at once, the message must still name the stream and position the reference names.
WIDE_BODY = _body(WIDE[0])
BAD_VALUES = [0, 1, -1, 2, True, False, None, 1.0, 1.5, "1", [], {}, [1], 2**63 - 1, 2**63,
              -2**63, -2**63 + 1, 2**64, 10**30, 1000, 999, 990, 991]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 99), st.sampled_from(sorted(WIDE_BODY["streams"][0])),
       st.sampled_from(BAD_VALUES), st.booleans(), st.data())
def test_one_bad_value_among_many_streams_is_judged_alike(
        stream: int, key: str, value: Any, whole: bool, data: st.DataObject) -> None:
    obj = copy.deepcopy(WIDE_BODY)
    target = obj["streams"][stream]
    if type(target[key]) is list and target[key] and not whole:
        target[key][data.draw(st.integers(0, len(target[key]) - 1))] = value
    elif type(target[key]) is dict:
        target[key][data.draw(st.sampled_from(sorted(target[key])))] = value
    else:
        target[key] = value
    _decoded_alike(json.dumps(obj).encode())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_edits_anywhere_in_a_wide_body_are_judged_alike(data: st.DataObject) -> None:
    obj = copy.deepcopy(WIDE_BODY)
    path = data.draw(st.sampled_from(_paths(obj)))
    value = data.draw(st.sampled_from(BAD_VALUES))
    target: Any = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    _decoded_alike(json.dumps(obj).encode())


def _runs() -> dict[str, Any]:
    """Two streams of 10 results, each sent as a run of positions: ``idx`` 0 and 10."""
    results = make_results("p1", 20, paths=wide_paths(1))
    ordered = [r for r in results if r.method is Method.ICMP]
    ordered += [r for r in results if r.method is not Method.ICMP]
    obj = _body(Batch("p1", "b", tuple(ordered)))
    assert [s["idx"] for s in obj["streams"]] == [0, 10]
    return obj


@pytest.mark.parametrize("start", [10, 11, 9, -1, 2**63 - 1, 2**63 - 5, 2**63, -2**63,
                                   -2**63 + 1, True, 1.0, None, "10"])
def test_idx_runs_must_stay_in_the_batch(start: Any) -> None:
    """A run ``i`` stands for ``i .. i+n-1``: out of the batch it is refused as the reference
    refuses it, also where adding the offsets in int64 would wrap around."""
    obj = _runs()
    obj["streams"][1]["idx"] = start
    body = json.dumps(obj).encode()
    _decoded_alike(body)
    if start == 10 and type(start) is int:
        assert fast_columns(obj) is not None
    else:
        assert fast_columns(obj) is None
        _refused(body)


def test_block_is_a_frozen_block_equal_to_the_constructed_one() -> None:
    columns = [np.arange(3, dtype=np.int64) + k for k in range(11)]
    columns += [np.array([0, 1, -1], dtype=np.int8) for _ in range(5)]
    ident = ("p", "icmp", "a", "CT", "b", "CM", "1.1.1.1", "2.2.2.2", "icmp", 4, 64, 0, None, "")
    made = block(ident, columns, ((1, "x"),), ())
    built = Block(ident, *columns, error_detail=((1, "x"),))
    assert type(made) is Block
    assert made.same_as(built)
    assert [getattr(made, f.name) is getattr(built, f.name)
            for f in dataclasses.fields(Block)] == [True] * len(dataclasses.fields(Block))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.seq = columns[0]  # type: ignore[misc]
