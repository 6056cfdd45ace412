"""The blob codec (``analyzer.columns.encode_blob`` / ``decode_blob``, layout IXB2): every
block round-trips exactly (nulls, int64 extremes, empty streams, sparse columns), the decoder's
view of the batch equals the record path's, and any bytes decode or raise RecordError."""

from __future__ import annotations

import contextlib
import zlib
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.columns import (
    BLOB_MAGIC,
    CODE_COLUMNS,
    COLUMN_HEAD,
    DENSE_COLUMNS,
    INT_COLUMNS,
    NULL,
    NULLABLE_INTS,
    Block,
    ColumnBatch,
    batch_blobs,
    blocks_of,
    decode_blob,
    encode_blob,
)
from analyzer.synthetic.varied import make_batches, make_results, wide_paths
from analyzer.wire_columns import decode_body
from ixmeter.core.errors import RecordError
from ixmeter.core.record import Hop
from ixmeter.core.wire import encode_columns

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
EXTREMES = [I64_MIN + 1, I64_MAX, 0, -1, 1, 2**32, -(2**31)]
value = st.one_of(st.integers(-3, 300), st.integers(I64_MIN + 1, I64_MAX),
                  st.sampled_from(EXTREMES))


@st.composite
def column(draw: st.DrawFn, n: int, nullable: bool) -> list[int]:
    """A column of ``n`` values: random, constant or increasing (what delta encoding is for),
    nullable ones with some, all or no nulls."""
    kind = draw(st.sampled_from(["random", "constant", "increasing"]))
    if kind == "random":
        out = draw(st.lists(value, min_size=n, max_size=n))
    elif kind == "constant":
        out = [draw(value)] * n
    else:
        start, step = draw(value), draw(st.integers(0, 10**10))
        out = [max(I64_MIN + 1, min(I64_MAX, start + k * step)) for k in range(n)]
    if nullable:
        nulls = draw(st.sampled_from(["none", "some", "all"]))
        if nulls == "all":
            out = [NULL] * n
        elif nulls == "some":
            out = [NULL if draw(st.booleans()) else x for x in out]
    return out


hop = st.builds(Hop, st.integers(0, 255), st.none() | st.text(max_size=20),
                st.none() | st.integers(I64_MIN + 1, I64_MAX))


@st.composite
def block(draw: st.DrawFn, stream: int) -> Block:
    n = draw(st.integers(0, 100))
    ints = {c: np.array(draw(column(n, c in NULLABLE_INTS)), np.int64) for c in INT_COLUMNS}
    codes = {c: np.array(draw(st.lists(st.integers(-128, 127), min_size=n, max_size=n)),
                         np.int8) for c in CODE_COLUMNS}
    where = sorted(draw(st.sets(st.integers(0, max(n - 1, 0)), max_size=n)))
    details = tuple((k, draw(st.text(max_size=30))) for k in where if draw(st.booleans()))
    hops = tuple((k, tuple(draw(st.lists(hop, min_size=1, max_size=4))))
                 for k in where if draw(st.booleans()))
    return Block(("p1", "icmp", f"s{stream}", *([None] * 11)), **ints, **codes,
                 error_detail=details, hops=hops)


@st.composite
def blocks(draw: st.DrawFn) -> list[Block]:
    return [draw(block(s)) for s in range(draw(st.integers(0, 5)))]


def assert_round_trip(bs: list[Block] | tuple[Block, ...]) -> bytes:
    data = encode_blob(bs)
    assert data.startswith(BLOB_MAGIC)
    back = decode_blob([b.ident for b in bs], data)
    assert len(back) == len(bs)
    for got, want in zip(back, bs, strict=True):
        assert got.same_as(want)
        assert all(getattr(got, c).dtype == getattr(want, c).dtype
                   for c in INT_COLUMNS + CODE_COLUMNS)
    assert encode_blob(back) == data  # deterministic
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks())
def test_any_blocks_round_trip(bs: list[Block]) -> None:
    assert_round_trip(bs)


@pytest.mark.parametrize("paths", [None, wide_paths(100)])
def test_decoded_bodies_round_trip_and_match_the_record_path(paths: Any) -> None:
    """What the collector stores: blobs from the decoder's matrices equal blobs of the blocks
    of the records, and the stored size is below the per-stream blocks'."""
    kw = {} if paths is None else {"paths": paths}
    for batch in make_batches("p1", 3, 1000, **kw):
        decoded = decode_body(encode_columns(batch))
        dense = decoded.dense
        assert dense is not None
        assert dense.n == tuple(b.n for b in decoded.blocks)
        assert dense.methods == tuple(b.ident[1] for b in decoded.blocks)
        for b, at in zip(decoded.blocks, dense.at, strict=True):
            assert np.array_equal(dense.ints[:, at:at + b.n], [getattr(b, c) for c in INT_COLUMNS])
            assert np.array_equal(dense.codes[:, at:at + b.n],
                                  [getattr(b, c) for c in CODE_COLUMNS])
        fast = batch_blobs(decoded)
        slow = batch_blobs(ColumnBatch(batch.probe_id, batch.batch_id,
                                       blocks_of(batch.results)))
        assert [m.method for m in fast] == ["icmp", "stamp"]
        assert [(m.method, m.data, m.n, m.first_ns, m.last_ns) for m in fast] == [
            (m.method, m.data, m.n, m.first_ns, m.last_ns) for m in slow]
        for m in fast:
            assert assert_round_trip(m.blocks) == m.data
            sent = np.concatenate([b.sent_at_ns for b in m.blocks])
            assert (m.n, m.first_ns, m.last_ns) == (len(sent), sent.min(), sent.max())


def test_batch_blobs_leave_out_empty_streams() -> None:
    results = make_results("p1", 10)
    [first, *rest] = blocks_of(results)
    empty = replace(first, **{c: getattr(first, c)[:0] for c in INT_COLUMNS + CODE_COLUMNS},
                    error_detail=(), hops=())
    got = batch_blobs(ColumnBatch("p1", "b", (empty, first, *rest)))
    assert [len(m.blocks) for m in got] == [3, 3]  # 3 paths x (ICMP, STAMP)
    assert all(b.n for m in got for b in m.blocks)


def test_noisy_low_planes_are_kept_out_of_zlib() -> None:
    """RTTs vary in their two low bytes: those planes are stored raw, the top one packed."""
    batch = make_batches("p1", 1, 1000)[0]
    [icmp, _stamp] = batch_blobs(decode_body(encode_columns(batch)))
    size = int.from_bytes(icmp.data[12:16], "little")
    payload = zlib.decompress(icmp.data[16:16 + size])
    head = np.frombuffer(payload, COLUMN_HEAD, len(DENSE_COLUMNS), 4 * len(icmp.blocks))
    rtt = head[DENSE_COLUMNS.index("rtt_ns")]
    assert (rtt["width"], rtt["flags"] // 16) == (3, 2)
    assert len(icmp.data) - 16 - size == 2 * icmp.n
    assert_round_trip(icmp.blocks)


def test_delta_and_width_choices_keep_blobs_small() -> None:
    """1,000 results of 100 streams in two blobs: a few bytes per result."""
    batch = make_batches("p1", 1, 1000, paths=wide_paths(100))[0]
    total = sum(len(m.data) for m in batch_blobs(decode_body(encode_columns(batch))))
    assert total < 10 * 1000


# -- refusing bad bytes -------------------------------------------------------------------------
def _valid() -> bytes:
    return encode_blob(blocks_of(make_results("p1", 50))[:1])


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_record_error(data: bytes) -> None:
    for prefix in (b"", BLOB_MAGIC + bytes(12)):
        with contextlib.suppress(RecordError):
            decode_blob([("x",)], prefix + data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 255))
def test_edited_payloads_decode_or_raise_record_error(at: int, xor: int) -> None:
    data = _valid()
    size = int.from_bytes(data[12:16], "little")
    payload = bytearray(zlib.decompress(data[16:16 + size]))
    payload[at % len(payload)] ^= xor
    z = zlib.compress(bytes(payload))
    for edited in (data[:12] + len(z).to_bytes(4, "little") + z + data[16 + size:],
                   data[:at % len(data)] + bytes([data[at % len(data)] ^ xor])
                   + data[at % len(data) + 1:]):
        with contextlib.suppress(RecordError):
            decode_blob([("x",)], edited)


def _head(streams: int, results: int, size: int) -> bytes:
    return BLOB_MAGIC + b"".join(v.to_bytes(4, "little") for v in (streams, results, size))


@pytest.mark.parametrize(("data", "message"), [
    (b"IXB1" + bytes(12), "magic"),
    (_head(2, 0, 0), "2 streams stored, 1 named"),
    (_head(1, 10**6, 0), "at most"),
    (_head(1, 0, 4) + b"junk", "cannot decode"),
    (_valid() + b"x", "raw planes do not add up"),
])
def test_refusals_say_why(data: bytes, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        decode_blob([("x",)], data)
