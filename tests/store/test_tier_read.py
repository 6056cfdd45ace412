"""Columnar rollup reads (``read_rollup_columns``): the rollups ``read_rollups`` returns, as
numpy columns, stored rows and the in-memory fold of pending batches alike; on SQLite and
PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.rollups import sketch_codec
from analyzer.rollups.columns import SERIES, DelayColumns, RollupColumns, columns_from_rollups
from analyzer.rollups.sketch import DDSketch, SketchError
from analyzer.store import Query, Store, reads
from analyzer.store.writes import Writer
from analyzer.synthetic.varied import NS_MIN, T0, make_batches
from tests.store.test_store import ALL


def _fill(store: Store) -> None:
    """Six batches of 150 s (results every 3 s over three paths, two Type-Ps, from 23:50
    UTC): minutes, hours and days split over batches; the first four folded, the last two
    pending, so reads merge stored rows with the in-memory fold of the pending ones."""
    start = T0 - T0 % (1440 * NS_MIN) + 1430 * NS_MIN
    for i, b in enumerate(make_batches("p1", 6, 50, start_ns=start, gap_ns=3 * 10**9)):
        store.write_batch(b, T0)
        if i == 3:
            store.fold_pending()


def assert_same(got: RollupColumns, want: RollupColumns) -> None:
    """Equal labels and equal values in every column (NaN equal to NaN; any int dtype), and
    the same sketch in every row (a merged key may list a bucket once per part)."""
    assert got.labels == want.labels
    for name in ("series", "minute", "sent", "received", "lost", "errors", "unsynced",
                 "clock_error_max_ns"):
        assert np.array_equal(getattr(got, name), getattr(want, name), equal_nan=True), name
    assert got.delays.keys() == want.delays.keys()
    for which, d in got.delays.items():
        for name in ("n", "min", "max", "sum"):
            assert np.array_equal(getattr(d, name), getattr(want.delays[which], name),
                                  equal_nan=True), f"{which}.{name}"
        assert _sketches(d) == _sketches(want.delays[which]), which


def _sketches(d: DelayColumns) -> list[tuple[int, dict[int, int]]]:
    """Each row's sketch (its blobs merged) as (zero count, buckets)."""
    out = []
    for row in range(len(d.n)):
        merged = DDSketch()
        for blob in d.blobs[int(d.starts[row]):int(d.starts[row + 1])]:
            merged.merge(DDSketch.from_bytes(blob))
        out.append((merged.zero, merged.buckets))
    return out


def _reference(store: Store, q: Query, series: tuple[str, ...] = SERIES) -> RollupColumns:
    """The columns of ``read_rollups`` in key order by code point (the order of the columnar
    read whatever the database's collation)."""
    return columns_from_rollups(sorted(store.read_rollups(q), key=lambda r: r.key), series)


def _query(tier: str, **kw: object) -> Query:
    return Query(ALL.start_ns, ALL.end_ns, tier=tier, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("tier", ["minute", "hour", "day"])
def test_columns_equal_the_rollups_read(store: Store, tier: str) -> None:
    _fill(store)
    for q in (_query(tier), _query(tier, method="stamp"),
              _query(tier, path_ids=["csx-a/CT>yy-a/CU"]),
              Query(T0 + 3 * NS_MIN, T0 + 5 * NS_MIN, tier=tier)):
        for series in (SERIES, ("rtt",), ("fwd", "bwd"), ()):
            assert_same(store.read_rollup_columns(q, series), _reference(store, q, series))


def test_chunk_boundaries_change_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows fetched 5 at a time."""
    _fill(store)
    want = store.read_rollup_columns(_query("minute"))
    monkeypatch.setattr(reads, "COLUMN_CHUNK", 5)
    assert_same(store.read_rollup_columns(_query("minute")), want)
    assert_same(want, _reference(store, _query("minute")))


def test_empty_reads_and_bad_arguments(store: Store) -> None:
    empty = store.read_rollup_columns(ALL)
    assert len(empty) == 0
    assert empty.labels == []
    assert set(empty.delays) == set(SERIES)
    with pytest.raises(ValueError, match="unknown tier"):
        store.read_rollup_columns(Query(0, 1, tier="week"))
    with pytest.raises(ValueError, match="unknown delay series"):
        store.read_rollup_columns(ALL, ("rtt", "owd"))


def test_decode_columns_refuses_irregular_blobs() -> None:
    sketch = DDSketch()
    sketch.extend([1, 2, 3, 10**9])
    blob = sketch.to_bytes()
    zero, n, keys, counts = sketch_codec.decode_columns([blob, DDSketch().to_bytes()])
    assert (zero.tolist(), n.tolist()) == ([0, 0], [4, 0])
    assert dict(zip(keys.tolist(), counts.tolist(), strict=True)) == sketch.buckets
    for bad in (b"DD1\x00", blob[:-1], blob + b"\x00", b"XX1" + blob[3:],
                blob[:6] + b"\xff" * 9 + b"\x01"):
        with pytest.raises(SketchError):
            sketch_codec.decode_columns([blob, bad])
    assert [len(a) for a in sketch_codec.decode_columns([])] == [0, 0, 0, 0]


def test_decode_columns_refuses_other_alphas_unless_asked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 2 blobs: a sketch of another alpha is refused where the store's alpha is
    expected; with ``alpha=None`` every blob is decoded, the buckets blob after blob."""
    monkeypatch.setattr(sketch_codec, "CHUNK", 2)
    odd, plain = DDSketch(0.02), DDSketch()
    odd.extend([0, 5, 900])
    plain.extend([7, 7, 10**6])
    blobs = [plain.to_bytes(), plain.to_bytes(), odd.to_bytes(), DDSketch().to_bytes()]
    with pytest.raises(SketchError):
        sketch_codec.decode_columns(blobs)
    assert sketch_codec.decode_alphas(blobs) == [0.005, 0.005, 0.02, 0.005]
    zero, sizes, keys, counts = sketch_codec.decode_columns(blobs, alpha=None)
    assert zero.tolist() == [0, 0, 1, 0]
    assert sizes.tolist() == [2, 2, 2, 0]
    pairs = list(zip(keys.tolist(), counts.tolist(), strict=True))
    assert [dict(pairs[i:i + 2]) for i in (0, 2, 4)] == [plain.buckets, plain.buckets,
                                                         odd.buckets]


def test_varints_of_every_length_decode() -> None:
    """Counts of 1 to 6 varint bytes (int32 up to 28 bits, then int64), zero counts too."""
    sketches = []
    for i, count in enumerate((1, 200, 20_000, 3_000_000, 2**29, 2**40)):
        s = DDSketch()
        s.add(10**6 * (i + 1), count)
        s.add(10**9, 3)
        s.add(0, count)  # the zero bucket
        sketches.append(s)
    zero, n, keys, counts = sketch_codec.decode_columns([s.to_bytes() for s in sketches])
    assert zero.tolist() == [s.zero for s in sketches]
    assert n.tolist() == [2] * len(sketches)
    pairs = list(zip(keys.tolist(), counts.tolist(), strict=True))
    assert [dict(pairs[2 * i:2 * i + 2]) for i in range(len(sketches))] == [
        s.buckets for s in sketches]


def test_path_ends_outlive_pruned_minutes(store: Store) -> None:
    """Series labels come from one row per series; minutes pruned meanwhile: from a tier."""
    assert isinstance(store, Writer)
    _fill(store)
    key = store.read_rollup_columns(_query("minute")).labels[0]
    store.prune_rollups(2**62)
    assert store._path_ends("rollups", key[:3]) == key[3:]
    with pytest.raises(LookupError):
        store._path_ends("rollups", ("x/A>y/B", "icmp", "icmp/v4/64/dscp0"))
