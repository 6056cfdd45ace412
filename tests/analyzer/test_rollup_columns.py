"""The columnar rollups of a batch equal the reference (``build_rollups`` of the batch's results,
``fold`` of those into hours and days) as stored rows: same ints, same floats bit for bit,
same sketch bytes, same threshold JSON. And the vectorised sketch encoder writes exactly
``DDSketch.to_bytes``."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.columns import CODE_COLUMNS, INT_COLUMNS, Block, blocks_of, results_of
from analyzer.rollups.batch import batch_rollups
from analyzer.rollups.model import DelayStats, MinuteRollup
from analyzer.rollups.rows import rollup_row
from analyzer.rollups.sketch import DDSketch, LazySketch, SketchError
from analyzer.rollups.sketch_codec import bucket_keys, decode_many, encode_many
from analyzer.synthetic.varied import make_batches, make_results
from ixmeter.core.record import ErrorKind, Method, Result, Status, TimestampSource, TypeP
from ixmeter.core.rules import TMAX_MAX_NS as MAX_TMAX_NS
from tests.oracles import sketch_bytes
from tests.oracles.rollup_records import build_rollups, extend, fold

NS_MIN = 60 * 10**9
MIDNIGHT = 29_667_600 * NS_MIN  # a UTC midnight: a minute, hour and day boundary
THRESHOLDS = (1_000_000, 3_000_000)


def reference(results: list[Result], thresholds: tuple[int, ...] | list[int]
              ) -> dict[str, list[MinuteRollup]]:
    minutes = build_rollups(results, thresholds)
    return {"minute": minutes, "hour": fold(minutes, "hour"),
            "day": fold(minutes, "day")}


def rows(rollups: list[MinuteRollup]) -> list[tuple[Any, ...]]:
    """Stored rows, floats as their exact hex form (bit-for-bit comparison)."""
    return [tuple(x.hex() if isinstance(x, float) else x for x in rollup_row(r))
            for r in rollups]


def assert_same(results: list[Result], thresholds: tuple[int, ...] | list[int],
                blocks: tuple[Block, ...] | None = None) -> None:
    got = batch_rollups(blocks_of(results) if blocks is None else blocks, thresholds)
    want = reference(results, thresholds)
    assert set(got) == {"minute", "hour", "day"}
    for tier in want:
        assert rows(got[tier]) == rows(want[tier]), tier
        for r in got[tier]:
            assert all(type(d.sketch) is LazySketch for d in (r.rtt, r.fwd, r.bwd))


# -- fixed batches ------------------------------------------------------------------------------
def test_factory_batches_equal_the_reference() -> None:
    for seed in (1, 2):
        for batch in make_batches("p1", 3, 1000, seed=seed):
            assert_same(list(batch.results), THRESHOLDS)


def test_a_long_batch_folds_many_minutes_into_hours_and_a_day() -> None:
    results = make_results("p1", 6000, gap_ns=700_000_000, start_ns=MIDNIGHT - 35 * NS_MIN)
    assert_same(results, (0, 1_000_000, 3_000_000, 1_000_000))  # a repeated threshold
    assert_same(results, ())


def test_a_batch_with_blocks_in_any_order_and_empty_blocks() -> None:
    results = make_results("p1", 500)
    blocks = blocks_of(results)
    empty = replace(_mapped(blocks[0], lambda col: col[:0]), error_detail=(), hops=())
    assert_same(results, THRESHOLDS, (empty, *reversed(blocks), empty))
    assert batch_rollups((empty,), THRESHOLDS) == {"minute": [], "hour": [], "day": []}
    assert batch_rollups((), THRESHOLDS) == {"minute": [], "hour": [], "day": []}


def test_blocks_whose_columns_are_strided_views() -> None:
    results = make_results("p1", 300)
    strided = tuple(_mapped(b, lambda col: np.repeat(col, 2)[::2]) for b in blocks_of(results))
    assert_same(results, THRESHOLDS, strided)


def _mapped(block: Block, f: Callable[[Any], Any]) -> Block:
    """The block with ``f`` of each of its dense columns."""
    columns: dict[str, Any] = {c: f(getattr(block, c)) for c in INT_COLUMNS + CODE_COLUMNS}
    return replace(block, **columns)


def _result(seq: int, sent: int, rtt: int | None, **kw: Any) -> Result:
    base: dict[str, Any] = dict(
        probe_id="p", method=Method.ICMP, src_site="a", src_carrier="X", dst_site="b",
        dst_carrier="Y", src_addr="10.0.0.1", dst_addr="10.0.0.2", type_p=TypeP("icmp", 4, 64),
        seq=seq, sent_at_ns=sent, status=Status.RECEIVED, tmax_ns=MAX_TMAX_NS,
        ts_source=TimestampSource.KERNEL, rtt_ns=rtt)
    base.update(kw)
    return Result(**base)


def test_huge_delays_take_the_exact_integer_paths() -> None:
    """Square sums that need rounding (in int64) and squares beyond int64 (two limbs) both
    give ``float(sum(v * v))``, for delays up to the largest Tmax (an hour, the bound every
    stored delay keeps). The second series sums to just above a halfway point between two
    floats, (2**53 + 1) * 2**42 + 1: rounding the high part first would round down to even."""
    mid = [90_000_001 - 7 * k for k in range(1000)]  # squares summed in int64, above 2**53
    assert (1 << 53) < sum(v * v for v in mid) < (1 << 63)
    assert_same([_result(k, MIDNIGHT + k, v) for k, v in enumerate(mid)], THRESHOLDS)
    target = ((1 << 53) + 1 << 42) + 1
    top = MAX_TMAX_NS
    near = [top] * (target // top**2) + _squares(target % top**2)
    assert sum(v * v for v in near) == target
    assert max(near) <= MAX_TMAX_NS
    assert_same([_result(k, MIDNIGHT + k, v) for k, v in enumerate(near)], THRESHOLDS)


def _squares(n: int) -> list[int]:
    """Integers whose squares sum to ``n`` (greedy)."""
    out = []
    while n:
        out.append(math.isqrt(n))
        n -= out[-1] ** 2
    return out


def test_reordering_counts_a_repeated_sequence_number_after_an_overtaking_arrival() -> None:
    """RFC 4737 §3.3 in arrival order: seq 3 arrives before seq 2 (2 is reordered), then seq 3
    again (not above the largest seen: reordered too)."""
    results = [_result(2, MIDNIGHT, 500), _result(3, MIDNIGHT + 10, 100),
               _result(3, MIDNIGHT + 20, 600), _result(4, MIDNIGHT + 30, 1000)]
    assert_same(results, THRESHOLDS)
    assert batch_rollups(blocks_of(results), THRESHOLDS)["minute"][0].reordered == 2


def test_ties_in_send_order_across_streams_follow_the_batch_order() -> None:
    """Two streams of one key send the same seq at the same time: the stable send order keeps
    the batch order (idx), which decides the loss periods."""
    other = {"dst_addr": "10.0.0.3"}
    results = [_result(1, MIDNIGHT, None, status=Status.LOST, **other),
               _result(1, MIDNIGHT, 5), _result(2, MIDNIGHT, None, status=Status.LOST),
               _result(2, MIDNIGHT, 7, **other), _result(2, MIDNIGHT + 1, None,
                                                          status=Status.LOST, **other),
               _result(3, MIDNIGHT, 9, **other), _result(3, MIDNIGHT - 1, None,
                                                         status=Status.LOST)]
    assert_same(results, THRESHOLDS)


def test_labels_come_from_the_first_result_of_a_key() -> None:
    """Two streams whose sites differ but whose path ids are equal ("a/b" + "c" and "a" +
    "b/c"): one key, labelled by its first result in batch order."""
    one = {"src_site": "a/b", "src_carrier": "c"}
    two = {"src_site": "a", "src_carrier": "b/c", "dst_addr": "10.0.0.3"}
    for first, second in ((one, two), (two, one)):  # the first in batch order sends later
        results = [_result(2, MIDNIGHT + 5, 9, **first), _result(1, MIDNIGHT, 9, **second)]
        assert_same(results, THRESHOLDS)
        assert batch_rollups(blocks_of(results), THRESHOLDS)["minute"][0].src_site == (
            first["src_site"])


def test_clock_error_bound_comes_from_one_way_results_only() -> None:
    """Results without a one-way delay do not count towards ``clock_error_max_ns``."""
    stamp = {"method": Method.STAMP}
    assert_same([_result(1, MIDNIGHT, 9, fwd_ns=4, clock_error_ns=3, **stamp),
                 _result(2, MIDNIGHT, 9, clock_error_ns=7, **stamp),
                 _result(3, MIDNIGHT + NS_MIN, 9, bwd_ns=4, clock_error_ns=0, **stamp),
                 _result(4, MIDNIGHT + NS_MIN, 9, bwd_ns=4, **stamp)], THRESHOLDS)


def test_many_paths_with_delays_from_1_ns_to_1000_s() -> None:
    """Sketch buckets over a wide key range and many series: counted by sorting, not in a
    dense (series, key) grid, at the minute and at the folded hour and day."""
    results = [_result(k, MIDNIGHT + (k % 3) * NS_MIN + k, [1, 10**12, 5 * 10**5][k % 3],
                       dst_site=f"b{k % 25}", method=Method.STAMP, fwd_ns=k + 1)
               for k in range(150)]
    assert_same(results, THRESHOLDS)


def test_minima_and_maxima_fold_as_delay_stats_merge_does() -> None:
    """``DelayStats.merge`` takes a later minute's extreme only if it is not 0; the fold
    reproduces that: a minute of one-way delays with min 0 after one with min 5."""
    results = [_result(0, MIDNIGHT, 9, fwd_ns=5, bwd_ns=4, method=Method.STAMP),
               _result(1, MIDNIGHT + NS_MIN, 9, fwd_ns=0, bwd_ns=0, method=Method.STAMP),
               _result(2, MIDNIGHT + 2 * NS_MIN, 9, fwd_ns=7, bwd_ns=9, method=Method.STAMP)]
    assert_same(results, THRESHOLDS)


# -- generated batches --------------------------------------------------------------------------
# Streams sharing a label: same path, method and Type-P, other addresses or sessions.
STREAMS = [("a", "X", "b", "Y", "10.0.0.1", "10.0.0.2", Method.ICMP, "", TypeP("icmp", 4, 64)),
           ("a", "X", "b", "Y", "10.0.0.1", "10.0.0.3", Method.ICMP, "", TypeP("icmp", 4, 64)),
           ("a", "X", "b", "Y", "10.0.0.1", "10.0.0.2", Method.ICMP, "s2", TypeP("icmp", 4, 64)),
           ("a", "X", "b", "Y", "10.0.0.1", "10.0.0.2", Method.STAMP, "s1",
            TypeP("udp", 6, 44, 46, 862)),
           ("b", "Y", "a", "X", "10.0.0.2", "10.0.0.1", Method.STAMP, "s1",
            TypeP("udp", 6, 44, 46, 862)),
           ("b", "Y", "a", "X", "10.0.0.9", "10.0.0.1", Method.STAMP, "s3",
            TypeP("udp", 6, 44, 46, 862))]
MINUTES = (-61, -60, -59, -1, 0, 1, 2, 59, 60, 1439, 1440)  # around hour and day boundaries
delay = st.one_of(st.integers(0, 3), st.integers(10**5, 10**7), st.integers(10**7, 3 * 10**8),
                  st.integers(0, 10**12))
one_way = st.one_of(st.none(), st.integers(0, 1), st.integers(1, 10**12), delay)


@st.composite
def result(draw: st.DrawFn, streams: list[Any], minutes: list[int], jitters: list[int]
           ) -> Result:
    """A result of one of ``streams``, sent at one of ``minutes`` (from midnight) plus one of
    ``jitters`` or any time in that minute."""
    src_site, src_c, dst_site, dst_c, src_addr, dst_addr, method, session, type_p = draw(
        st.sampled_from(streams))
    status = draw(st.sampled_from([Status.RECEIVED] * 5 + [Status.LOST] * 2 + [Status.ERROR]))
    rtt = fwd = bwd = None
    if status is Status.RECEIVED:
        rtt, fwd, bwd = draw(st.one_of(st.none(), delay)), draw(one_way), draw(one_way)
        if rtt is None and fwd is None:
            rtt = draw(delay)
    elif status is Status.LOST:
        bwd = draw(st.one_of(st.none(), delay))
    else:
        rtt = draw(st.one_of(st.none(), delay))
    return Result(
        probe_id="p", method=method, src_site=src_site, src_carrier=src_c, dst_site=dst_site,
        dst_carrier=dst_c, src_addr=src_addr, dst_addr=dst_addr, type_p=type_p,
        seq=draw(st.integers(0, 8)),
        sent_at_ns=MIDNIGHT + draw(st.sampled_from(minutes)) * NS_MIN + draw(
            st.sampled_from(jitters) | st.integers(0, NS_MIN - 1)),
        status=status, tmax_ns=draw(st.integers(10**12, MAX_TMAX_NS)),
        ts_source=TimestampSource.KERNEL,
        rtt_ns=rtt, fwd_ns=fwd, bwd_ns=bwd,
        clock_error_ns=draw(st.one_of(st.none(), st.integers(0, 10**6))),
        src_synced=draw(st.sampled_from([None, True, False])),
        dst_synced=draw(st.sampled_from([None, True, False])),
        error=ErrorKind.SEND_ERROR if status is Status.ERROR else None,
        dup=draw(st.integers(0, 2)), session=session)


@st.composite
def batch(draw: st.DrawFn, max_size: int = 80) -> list[Result]:
    """Results of a few streams in a few minutes, so that keys gather many results (loss
    periods, reordering, ties in send order across streams) and units many minutes."""
    streams = draw(st.lists(st.sampled_from(STREAMS), min_size=1, max_size=4, unique=True))
    minutes = draw(st.lists(st.sampled_from(MINUTES), min_size=1, max_size=4, unique=True))
    jitters = draw(st.lists(st.integers(0, NS_MIN - 1), min_size=1, max_size=3))
    size = draw(st.integers(0, max_size))
    return draw(st.lists(result(streams, minutes, jitters), min_size=size, max_size=size))


thresholds = st.lists(st.one_of(st.integers(-3, 3), st.integers(0, 10**12),
                                st.sampled_from(THRESHOLDS)), max_size=4)


@settings(max_examples=120, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(batch(), thresholds)
def test_generated_batches_equal_the_reference(results: list[Result],
                                               limits: list[int]) -> None:
    assert_same(results, limits)


@settings(max_examples=40, deadline=None, database=None)
@given(batch(40))
def test_blocks_from_results_round_trip_through_the_columns(results: list[Result]) -> None:
    """What the collector does: results to blocks and back, rollups of both equal."""
    blocks = blocks_of(results)
    back = sorted((r for b in blocks for r in zip(b.idx.tolist(), results_of(b),
                                                  strict=True)), key=lambda p: p[0])
    assert [r for _i, r in back] == results
    assert_same(results, THRESHOLDS, blocks)


# -- the sum of squares rule --------------------------------------------------------------------
@given(st.lists(st.integers(-10**13, 10**13), max_size=200))
def test_extend_adds_the_correctly_rounded_sum_of_squares(xs: list[int]) -> None:
    stats = DelayStats()
    extend(stats, xs, THRESHOLDS)
    assert stats.sumsq.hex() == float(sum(x * x for x in xs)).hex()


# -- sketch keys and the encoder ----------------------------------------------------------------
@given(st.lists(st.one_of(st.integers(1, 2**62), st.integers(1, 10**7)), max_size=300))
def test_bucket_keys_are_ddsketch_keys(values: list[int]) -> None:
    ref = DDSketch()
    assert bucket_keys(np.array(values, np.int64)).tolist() == [ref.key(v) for v in values]


def test_bucket_keys_at_bucket_edges() -> None:
    """Values at and next to gamma**k, where log(v) / log(gamma) is nearly an integer."""
    ref = DDSketch()
    edges = {int(f(ref.gamma ** k)) + d for k in range(0, 8000) for f in (math.floor, math.ceil)
             for d in (-1, 0, 1)}
    values = sorted(v for v in edges if 1 <= v < 2**63)
    assert bucket_keys(np.array(values, np.int64)).tolist() == [ref.key(v) for v in values]


def test_bucket_keys_where_numpy_and_math_log_differ() -> None:
    """``np.log`` is not ``math.log`` for a few values (one ulp); with alpha chosen so that
    log_gamma(v) is an integer for such a value, only the recomputation gives the key
    ``DDSketch.key`` gives."""
    values = np.arange(10**8, 10**8 + 200_000, dtype=np.int64)
    logs = np.log(values.astype(np.float64))
    differ = [v for v, x in zip(values.tolist(), logs.tolist(), strict=True)
              if x != math.log(v)][:20]
    for v in differ:
        for k in (50, 333, 2000):
            gamma = math.exp(math.log(v) / k)
            alpha = (gamma - 1) / (gamma + 1)
            assert bucket_keys(np.array([v]), alpha).tolist() == [DDSketch(alpha).key(v)]


bucket_maps = st.dictionaries(st.one_of(st.integers(-3000, 3000), st.integers(-2**30, 2**30)),
                              st.one_of(st.integers(1, 200), st.integers(1, 2**50)), max_size=40)


@given(st.lists(st.tuples(st.integers(0, 2**40), bucket_maps), max_size=12))
def test_the_codec_writes_and_reads_the_reference_bytes(
        sketches: list[tuple[int, dict[int, int]]]) -> None:
    """The vectorised codec, many at once and one at a time, against the per-byte oracle."""
    refs = []
    for zero, buckets in sketches:
        s = DDSketch()
        s.zero, s.buckets = zero, dict(buckets)
        refs.append(s)
    keys = [sorted(s.buckets) for s in refs]
    got = encode_many(np.array([s.zero for s in refs], np.int64),
                      np.array([k for ks in keys for k in ks], np.int64),
                      np.array([s.buckets[k] for s, ks in zip(refs, keys, strict=True)
                                for k in ks], np.int64),
                      np.array([len(ks) for ks in keys], np.int64))
    assert got == [sketch_bytes.encode(s) for s in refs] == [s.to_bytes() for s in refs]
    assert [DDSketch.from_bytes(b) for b in got] == [sketch_bytes.decode(b) for b in got]
    decoded = decode_many(got)
    for s, (zero, ks, counts) in zip(refs, decoded, strict=True):
        assert (zero, dict(zip(ks.tolist(), counts.tolist(), strict=True))) == (
            s.zero, s.buckets)


@given(st.binary(max_size=64), st.binary(max_size=8))
def test_any_bytes_decode_or_raise_sketch_error(data: bytes, tail: bytes) -> None:
    """Random bytes, and a valid sketch with bytes appended or cut: decoded exactly as the
    oracle decodes them, or refused with SketchError (never another error)."""
    valid = sketch_bytes.encode(DDSketch.from_bytes(b"DD1\x88'\x01\x02\x00\x01\x8c\x01\x03"))
    for blob in (data, b"DD1" + data, valid + tail, valid[:len(tail)]):
        try:
            want = sketch_bytes.decode(blob)
        except SketchError:
            with pytest.raises(SketchError):
                DDSketch.from_bytes(blob)
            continue
        except ValueError:  # the oracle's own refusal (e.g. alpha 0)
            continue
        assert DDSketch.from_bytes(blob) == want


def test_encode_many_of_no_sketch_and_of_empty_sketches() -> None:
    none = np.zeros(0, np.int64)
    assert encode_many(none, none, none, none) == []
    assert encode_many(np.array([0, 7]), none, none, np.array([0, 0])) == [
        DDSketch().to_bytes(), b"DD1\x88'\x07\x00"]
