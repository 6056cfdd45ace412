"""The batch paths of the ingest (series added at once, varints encoded in bulk) give exactly
what the per-value reference paths give: the store's bytes and the row digests depend on it."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from analyzer.rollups.model import DelayStats
from analyzer.rollups.sketch import DDSketch
from tests.oracles.rollup_records import add, extend

delays = st.lists(st.integers(min_value=-10**6, max_value=10**13), max_size=400)
THRESHOLDS = (0, 1_000_000, 3_000_000)


@given(delays)
def test_extend_equals_adding_one_by_one(xs: list[int]) -> None:
    """Everything exact but the sum of squares: ``extend`` rounds the exact integer sum once,
    ``add`` rounds a running float sum (both within 1e-12 relative)."""
    one, many = DelayStats(), DelayStats()
    for x in xs:
        add(one, x, THRESHOLDS)
    extend(many, xs, THRESHOLDS)
    assert (one.n, one.min, one.max, one.sum, one.below) == (
        many.n, many.min, many.max, many.sum, many.below)
    assert many.sumsq == float(sum(x * x for x in xs))
    assert math.isclose(one.sumsq, many.sumsq, rel_tol=1e-12, abs_tol=0.0)
    assert one.sketch.to_bytes() == many.sketch.to_bytes()
    assert one.sketch.count == many.sketch.count


def test_encoding_is_the_stored_format() -> None:
    """Bytes written by the per-varint encoder before the bulk one (multi-byte keys, deltas,
    counts, a zero bucket)."""
    sketch = DDSketch()
    for v in (0, -3, 1, 2, 1000, 10**9, 10**15):
        sketch.add(v)
    sketch.add(5000, 300)
    assert sketch.to_bytes() == (b"DD1\x88'\x02\x06\x00\x01\x8c\x01\x01\xda\t\x01\xc2\x02\xac"
                                 b"\x02\x8a\x13\x01\xca\x15\x01")
    assert DDSketch().to_bytes() == b"DD1\x88'\x00\x00"
