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
bucket map unbounded (no collapsing), so low quantiles are never sacrificed.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Iterable

DEFAULT_ALPHA = 0.005
_MAGIC = b"DD1"


class SketchError(ValueError):
    """A serialized sketch that cannot be decoded, or sketches that cannot be merged."""


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
        """Compact, canonical encoding: magic, alpha (ppm), zero count, then sorted buckets as
        (zig-zag delta of key, count) varints. Equal sketches give equal bytes."""
        keys = sorted(self.buckets)
        fields = [round(self.alpha * 1_000_000), self.zero, len(keys), *keys, *keys]
        fields[3::2] = _zigzags(map(operator.sub, keys, [0, *keys[:-1]]))  # interleaved
        fields[4::2] = map(self.buckets.__getitem__, keys)
        return _MAGIC + _put_varints(fields)

    @classmethod
    def from_bytes(cls, data: bytes) -> DDSketch:
        if data[:3] != _MAGIC:
            raise SketchError("not a DDSketch encoding")
        pos = 3
        alpha_ppm, pos = _get_varint(data, pos)
        sketch = cls(alpha_ppm / 1_000_000)
        sketch.zero, pos = _get_varint(data, pos)
        n, pos = _get_varint(data, pos)
        key, total = 0, sketch.zero
        for _ in range(n):
            delta, pos = _get_varint(data, pos)
            count, pos = _get_varint(data, pos)
            key += _unzigzag(delta)
            sketch.buckets[key] = count
            total += count
        if pos != len(data):
            raise SketchError("trailing bytes after DDSketch encoding")
        sketch.count = total
        return sketch


def merged(sketches: Iterable[DDSketch], alpha: float = DEFAULT_ALPHA) -> DDSketch:
    """A new sketch holding the sum of ``sketches``."""
    out = DDSketch(alpha)
    for s in sketches:
        out.merge(s)
    return out


def _zigzag(n: int) -> int:
    return n * 2 if n >= 0 else -n * 2 - 1


def _zigzags(values: Iterable[int]) -> list[int]:
    """:func:`_zigzag` of each value, without a call per value (to_bytes of tier sketches)."""
    return [n * 2 if n >= 0 else -n * 2 - 1 for n in values]


def _unzigzag(n: int) -> int:
    return n // 2 if n % 2 == 0 else -(n + 1) // 2


def _put_varints(values: list[int]) -> bytes:
    """LEB128 of each value in turn. Almost all sketch fields (key deltas after the first,
    counts) are below 128, their own single byte: the runs between the others are copied
    with one ``bytes()`` call each."""
    out = bytearray()
    start = 0
    for i in [i for i, n in enumerate(values) if not 0 <= n < 0x80]:
        out += bytes(values[start:i])
        _put_varint(out, values[i])
        start = i + 1
    out += bytes(values[start:])
    return bytes(out)


def _put_varint(out: bytearray, n: int) -> None:
    if n < 0:
        raise SketchError(f"varint of negative {n}")
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _get_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(data):
            raise SketchError("truncated DDSketch encoding")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise SketchError("varint too long in DDSketch encoding")
