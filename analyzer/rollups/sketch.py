"""A mergeable quantile sketch with a relative-error guarantee: DDSketch.

Masson, Rim and Lee, "DDSketch: A Fast and Fully-Mergeable Quantile Sketch with Relative-Error
Guarantees", PVLDB 12(12), 2019 (arXiv:1908.10693). With ``gamma = (1 + alpha) / (1 - alpha)`` a
positive value ``x`` goes to bucket ``ceil(log_gamma(x))`` and bucket ``i`` is represented by
``2 * gamma**i / (gamma + 1)``, so every returned quantile ``x~`` of a value ``x`` in the sketch
satisfies ``|x~ - x| <= alpha * x`` (their Theorem 3 / Proposition 4). Merging adds bucket counts,
so it is exact, associative and order-independent: any window is rebuilt from minute sketches
with the same result whatever the merge order (unlike t-digest, see docs/methodology.md).

Quantiles follow RFC 2330 §11.3: the q-th percentile is the smallest x with F(x) >= q
(``numpy.percentile(..., method="inverted_cdf")``), i.e. the value of rank ``ceil(q * n)``.
Values are integers in nanoseconds; values below 1 ns go to a zero bucket. The store keeps the
bucket map unbounded (no collapsing), so low quantiles are never sacrificed. The stored form is
:mod:`analyzer.rollups.sketch_codec`'s.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np

from analyzer.rollups import sketch_codec
from analyzer.rollups.sketch_codec import DEFAULT_ALPHA, SketchError

__all__ = ["DEFAULT_ALPHA", "DDSketch", "LazySketch", "SketchError", "merged"]


class DDSketch:
    """DDSketch over positive integer values (ns), relative accuracy ``alpha``."""

    __slots__ = ("alpha", "gamma", "_log_gamma", "buckets", "zero", "count")

    def __init__(self, alpha: float = DEFAULT_ALPHA) -> None:
        if not 0 < alpha < 1:
            raise SketchError(f"alpha must be in (0, 1), got {alpha}")
        self.alpha = alpha
        self.gamma = (1 + alpha) / (1 - alpha)
        self._log_gamma = math.log(self.gamma)
        self.buckets: dict[int, int] = {}
        self.zero = 0
        self.count = 0

    def key(self, value: float) -> int:
        """Bucket index ``ceil(log_gamma(value))`` of a positive value."""
        return math.ceil(math.log(value) / self._log_gamma)

    def value(self, key: int) -> float:
        """Representative value of bucket ``key`` (relative error <= alpha)."""
        return 2 * self.gamma**key / (self.gamma + 1)

    def add(self, value: float, count: int = 1) -> None:
        if value < 1:
            self.zero += count
        else:
            k = self.key(value)
            self.buckets[k] = self.buckets.get(k, 0) + count
        self.count += count

    def extend(self, values: Iterable[float]) -> None:
        """Add many values at once: the same buckets as :meth:`add` one by one (same
        ``math.log`` per value, counted in first-seen order), without a call per value."""
        log, ceil, lg = math.log, math.ceil, self._log_gamma
        vals = list(values)
        keys = [ceil(log(v) / lg) for v in vals if not v < 1]
        self.zero += len(vals) - len(keys)
        self.count += len(vals)
        buckets = self.buckets
        get = buckets.get
        for k, c in Counter(keys).items():
            buckets[k] = get(k, 0) + c

    def merge(self, other: DDSketch) -> None:
        """Add ``other``'s counts into this sketch (exact; DDSketch §2.3)."""
        if other.alpha != self.alpha:
            raise SketchError(f"cannot merge sketches of alpha {self.alpha} and {other.alpha}")
        if not self.buckets:  # the common first merge into a new sketch: a plain copy
            self.buckets = dict(other.buckets)
        else:
            buckets = self.buckets
            get = buckets.get
            for k, c in other.buckets.items():
                buckets[k] = get(k, 0) + c
        self.zero += other.zero
        self.count += other.count

    def copy(self) -> DDSketch:
        out = DDSketch(self.alpha)
        out.buckets = dict(self.buckets)
        out.zero, out.count = self.zero, self.count
        return out

    def value_at_rank(self, rank: int) -> float:
        """Value of the ``rank``-th smallest element (1-based)."""
        if not 1 <= rank <= self.count:
            raise SketchError(f"rank {rank} outside 1..{self.count}")
        seen = self.zero
        if rank <= seen:
            return 0.0
        for k in sorted(self.buckets):
            seen += self.buckets[k]
            if rank <= seen:
                return self.value(k)
        raise SketchError("inconsistent sketch counts")  # pragma: no cover

    def quantile(self, q: float) -> float | None:
        """RFC 2330 §11.3 percentile (inverted CDF): value of rank ``max(1, ceil(q * n))``."""
        if self.count == 0:
            return None
        if not 0 <= q <= 1:
            raise SketchError(f"quantile must be in [0, 1], got {q}")
        return self.value_at_rank(max(1, math.ceil(q * self.count - 1e-9)))

    def median(self) -> float | None:
        """Median per RFC 7679 §5.2: for even n, the mean of the two central values."""
        n = self.count
        if n == 0:
            return None
        if n % 2:
            return self.value_at_rank(n // 2 + 1)
        return (self.value_at_rank(n // 2) + self.value_at_rank(n // 2 + 1)) / 2

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, DDSketch) and self.alpha == other.alpha
                and self.zero == other.zero and self.buckets == other.buckets)

    def __repr__(self) -> str:
        return f"DDSketch(alpha={self.alpha}, count={self.count}, buckets={len(self.buckets)})"

    def to_bytes(self) -> bytes:
        """The stored form (:func:`analyzer.rollups.sketch_codec.encode`)."""
        return sketch_codec.encode(self.zero, self.buckets, self.alpha)

    @classmethod
    def from_bytes(cls, data: bytes) -> DDSketch:
        """Inverse of :meth:`to_bytes` (:func:`analyzer.rollups.sketch_codec.decode`); raises
        :class:`SketchError` for anything else."""
        alpha, zero, buckets = sketch_codec.decode(data)
        sketch = cls(alpha)
        sketch.zero, sketch.buckets = zero, buckets
        sketch.count = zero + sum(buckets.values())
        return sketch


def merged(sketches: Iterable[DDSketch], alpha: float = DEFAULT_ALPHA) -> DDSketch:
    """A new sketch holding the sum of ``sketches``."""
    out = DDSketch(alpha)
    for s in sketches:
        out.merge(s)
    return out


class SketchBatch:
    """The stored sketches of one series of many rollups read together: decoded all at once
    (:func:`analyzer.rollups.sketch_codec.decode_many`) when the first of them is used, since
    the vectorised decoder costs about as much for a thousand sketches as for one."""

    __slots__ = ("blobs", "_cols")

    def __init__(self, blobs: list[bytes]) -> None:
        self.blobs = blobs
        self._cols: list[sketch_codec.Columns] | None = None

    def columns(self, index: int) -> sketch_codec.Columns:
        if self._cols is None:
            self._cols = sketch_codec.decode_many(self.blobs)
        return self._cols[index]


class LazySketch(DDSketch):
    """A stored DDSketch decoded on first use: reading N rollups costs no sketch decoding for
    the series a caller never looks at (e.g. one-way sketches when judging RTT). A sketch of a
    :class:`SketchBatch` is decoded with the whole batch."""

    __slots__ = ("_raw", "_batch", "_index")

    def __init__(self, raw: bytes, batch: SketchBatch | None = None, index: int = 0) -> None:
        self._raw: bytes | None = raw
        self._batch = batch
        self._index = index

    def to_bytes(self) -> bytes:
        """The stored bytes while undecoded (they are the canonical encoding), else encode."""
        raw = object.__getattribute__(self, "_raw")
        return raw if raw is not None else DDSketch.to_bytes(self)

    def columns(self) -> sketch_codec.Columns:
        """(zero count, bucket keys, bucket counts) as compact arrays, for the analyzer's unit
        tables. Kept while the sketch is not decoded as a dict (a year of day tiers as dicts
        would hold GBs); computed afresh once it is (its buckets may have been merged into)."""
        if self._raw is None:
            return (self.zero, np.fromiter(self.buckets, np.int32, len(self.buckets)),
                    np.fromiter(self.buckets.values(), np.int64, len(self.buckets)))
        return self._shared().columns(self._index)

    def _shared(self) -> SketchBatch:
        if self._batch is None:
            self._batch = SketchBatch([object.__getattribute__(self, "_raw")])
        return self._batch

    def __getattr__(self, name: str) -> Any:
        """Called only for a slot not yet set: decode, fill every slot, answer."""
        raw = object.__getattribute__(self, "_raw")
        if raw is None or name not in DDSketch.__slots__:
            raise AttributeError(name)
        zero, keys, counts = self._shared().columns(self._index)
        DDSketch.__init__(self, DEFAULT_ALPHA)  # the store's sketches (decode_many checks it)
        self.buckets = dict(zip(keys.tolist(), counts.tolist(), strict=True))
        self.zero, self.count = zero, zero + int(counts.sum())
        self._raw = None
        return getattr(self, name)
