"""Decode and encode many stored DDSketches at once as bucket columns (numpy): decoding for
large rollup reads, encoding and bucket keys for the columnar rollups of an ingested batch.

The encoding is ``DDSketch.to_bytes``: magic, alpha, then LEB128 varints ``zero, n,
(zig-zag key delta, count) * n`` (Masson et al., DDSketch, PVLDB 2019, for the sketch; the
varints are the protobuf base-128 form). All blobs are concatenated and every varint decoded in
one vectorised pass; key deltas are summed per sketch with a segmented cumulative sum. The
result for each sketch is ``(zero, keys, counts)`` as views into two shared arrays, equal to
``DDSketch.from_bytes`` (tested); any blob that is not exactly that shape makes the whole call
answer None, and the caller decodes one sketch at a time instead.

:func:`encode_many` is the inverse: ``DDSketch.to_bytes`` of many sketches given as segmented
bucket columns, every varint written in one vectorised pass. :func:`bucket_keys` is
``DDSketch.key`` of many values (DDSketch §2: ``ceil(log_gamma(x))``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from analyzer.sketch import DEFAULT_ALPHA, DDSketch, SketchError

_PREFIX = DDSketch(DEFAULT_ALPHA).to_bytes()[:-2]  # magic + alpha of the store's sketches
Columns = tuple[int, npt.NDArray[Any], npt.NDArray[Any]]
_NO_KEYS, _NO_COUNTS = np.zeros(0, np.int32), np.zeros(0, np.int64)  # shared by empty sketches


CHUNK = 4096  # blobs per vectorised pass: keeps the temporaries in cache and memory small


def decode_many(blobs: Sequence[bytes]) -> list[Columns] | None:
    """``(zero, keys, counts)`` of every blob, or None if any blob is irregular."""
    out: list[Columns] = []
    for i in range(0, len(blobs), CHUNK):
        part = _decode_chunk(blobs[i:i + CHUNK])
        if part is None:
            return None
        out += part
    return out


def _decode_chunk(blobs: Sequence[bytes]) -> list[Columns] | None:
    p = len(_PREFIX)
    if not blobs or not all(b.startswith(_PREFIX) for b in blobs):
        return None
    sizes = np.fromiter((len(b) - p for b in blobs), np.int64, len(blobs))
    if sizes.min() < 2:
        return None
    vals, per_blob = _varints(b"".join(b[p:] for b in blobs), np.cumsum(sizes))
    if vals is None or per_blob is None:
        return None
    first = np.concatenate(([0], np.cumsum(per_blob)[:-1]))
    zero, n = vals[first], vals[first + 1]
    if not np.array_equal(per_blob, 2 + 2 * n):
        return None
    pair_pos = np.repeat(first + 2, n) + 2 * (np.arange(int(n.sum())) - np.repeat(
        np.cumsum(n) - n, n))
    deltas, counts = vals[pair_pos], vals[pair_pos + 1].astype(np.int64)
    steps = (deltas >> 1) ^ -(deltas & 1)
    run = np.concatenate(([0], np.cumsum(steps)))  # run[j] = sum of the first j steps
    starts = np.cumsum(n) - n
    keys = (run[1:] - np.repeat(run[starts], n)).astype(np.int32)
    zl, sl, nl = zero.tolist(), starts.tolist(), n.tolist()
    return [(zl[i], keys[sl[i]:sl[i] + nl[i]], counts[sl[i]:sl[i] + nl[i]]) if nl[i] else
            (zl[i], _NO_KEYS, _NO_COUNTS) for i in range(len(blobs))]


def _varints(body: bytes, blob_ends: npt.NDArray[np.int64]
             ) -> tuple[npt.NDArray[np.int64] | None, npt.NDArray[np.int64] | None]:
    """All varints of ``body`` and how many each blob holds; (None, None) if a varint crosses
    a blob boundary or is longer than 8 bytes."""
    b = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(b < 0x80)
    if len(ends) == 0 or ends[-1] != len(b) - 1:
        return None, None
    cut = np.searchsorted(ends, blob_ends - 1)
    if not np.array_equal(ends[np.minimum(cut, len(ends) - 1)], blob_ends - 1):
        return None, None  # a blob does not end on a varint's last byte
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 8:
        return None, None
    shift = 7 * (np.arange(len(b)) - np.repeat(starts, lengths))
    vals = np.add.reduceat((b & 0x7F).astype(np.int64) << shift, starts)
    per_blob = np.diff(np.concatenate(([0], cut + 1)))
    return vals, per_blob


# -- encoding ---------------------------------------------------------------------------------
I64 = npt.NDArray[np.int64]
NEAR_INTEGER = 1e-9  # |log_gamma(x) - k| below which a key is recomputed with math.log


def bucket_keys(values: npt.ArrayLike, alpha: float = DEFAULT_ALPHA) -> I64:
    """``DDSketch(alpha).key(v)`` of each value (all >= 1), i.e. ``ceil(log(v) / log(gamma))``
    (Masson et al., DDSketch, PVLDB 2019, §2). ``np.log`` may differ from ``math.log`` in the
    last bit, which moves a key only where the quotient is within an ulp or so of an integer:
    those few (and exact integers such as ``v = 1``) are recomputed with ``math.log``, so the
    keys are exactly the reference's."""
    v = np.asarray(values, dtype=np.int64)
    log_gamma = math.log((1 + alpha) / (1 - alpha))  # as DDSketch.__init__
    q = np.log(v.astype(np.float64)) / log_gamma
    keys = np.ceil(q).astype(np.int64)
    for i in np.flatnonzero(np.abs(q - np.rint(q)) < NEAR_INTEGER).tolist():
        keys[i] = math.ceil(math.log(int(v[i])) / log_gamma)
    return keys


def encode_many(zero: npt.ArrayLike, keys: npt.ArrayLike, counts: npt.ArrayLike,
                sizes: npt.ArrayLike, alpha: float = DEFAULT_ALPHA) -> list[bytes]:
    """``DDSketch.to_bytes()`` of many sketches, bit for bit. Sketch ``i`` has zero count
    ``zero[i]`` and the next ``sizes[i]`` entries of ``keys`` (strictly increasing) and
    ``counts`` as its buckets. Empty sketches share one bytes object."""
    z, n = np.asarray(zero, np.int64), np.asarray(sizes, np.int64)
    k, c = np.asarray(keys, np.int64), np.asarray(counts, np.int64)
    if len(n) != len(z) or len(c) != len(k) or int(n.sum()) != len(k):
        raise SketchError("encode_many: sizes do not match the bucket columns")
    if not len(z):
        return []
    filled = (n > 0) | (z != 0)
    if filled.all():
        return _encode(z, k, c, n, alpha)
    blank = DDSketch(alpha).to_bytes()
    blobs = iter(_encode(z[filled], k, c, n[filled], alpha) if filled.any() else [])
    return [next(blobs) if f else blank for f in filled.tolist()]


def _encode(z: I64, k: I64, c: I64, n: I64, alpha: float) -> list[bytes]:
    """:func:`encode_many` of sketches given as checked columns. A blob is a run of LEB128
    varints (protobuf base-128): the three magic bytes (each below 0x80, so its own one-byte
    varint), alpha in ppm, zero, n, then (zig-zag key delta, count) per bucket. All runs are
    laid out in one value array and encoded at once (:func:`_leb128`)."""
    s, p = len(z), len(k)
    first = n.cumsum() - n  # first bucket of each sketch
    owner = np.repeat(np.arange(s), n)  # sketch of each bucket
    prev = np.zeros(p, np.int64)
    prev[1:] = k[:-1]
    prev[first[n > 0]] = 0  # the first key of a sketch is a delta from 0
    delta = k - prev
    m = len(_MAGIC)
    head = m + 3  # varints before the buckets: the magic bytes, alpha, zero, n
    start = head * np.arange(s) + 2 * first  # first value of each sketch
    vals = np.empty(head * s + 2 * p, np.int64)
    vals[start[:, None] + np.arange(m + 1)] = (*_MAGIC, round(alpha * 1_000_000))
    vals[start + m + 1] = z
    vals[start + m + 2] = n
    at = head * owner + 2 * np.arange(p) + head
    vals[at] = (delta << 1) ^ (delta >> 63)  # zig-zag
    vals[at + 1] = c
    if vals.min() < 0:
        raise SketchError("encode_many: negative count")
    body, value_ends = _leb128(vals)
    ends = value_ends[np.append(start[1:], len(vals)) - 1].tolist()
    buf = body.tobytes()
    return [buf[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


_MAGIC = tuple(DDSketch().to_bytes()[:3])  # b"DD1": each byte below 0x80, its own varint


def _leb128(vals: I64) -> tuple[npt.NDArray[np.uint8], I64]:
    """LEB128 bytes of non-negative values, concatenated, and where each value's bytes end.
    Byte ``j`` of every value that has one is written in one step: most values are one byte,
    a few two (a sketch's first key, alpha)."""
    width = max(1, (int(vals.max()).bit_length() + 6) // 7) if len(vals) else 1
    if width == 1:
        return vals.astype(np.uint8), np.arange(1, len(vals) + 1)
    longer = [vals >= 1 << 7 * j for j in range(1, width)]  # has a byte j
    lengths = longer[0] + 1
    for more in longer[1:]:
        lengths += more
    ends = lengths.cumsum()
    start = ends - lengths
    out = np.empty(int(ends[-1]), np.uint8)
    out[start] = vals & 0x7F | longer[0] << 7
    for j, more in enumerate(longer, 1):
        group = vals[more] >> 7 * j
        if j < width - 1:
            group = group & 0x7F | (group >= 0x80) << 7
        out[start[more] + j] = group
    return out, ends
