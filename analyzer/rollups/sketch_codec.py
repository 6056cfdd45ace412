"""The stored form of a DDSketch: one encoder and one decoder, each over many sketches at once.

A stored sketch is a run of LEB128 varints (the protobuf base-128 form): the three magic bytes
``DD1`` (each below 0x80, so its own one-byte varint), alpha in parts per million, the zero
bucket's count, the number of buckets ``n``, then ``(zig-zag key delta, count) * n`` with the
keys in increasing order, the first a delta from 0 (Masson, Rim and Lee, "DDSketch: A Fast and
Fully-Mergeable Quantile Sketch with Relative-Error Guarantees", PVLDB 12(12), 2019, for the
sketch). Equal sketches give equal bytes.

:func:`encode_many` writes many sketches given as segmented bucket columns, every varint in one
vectorised pass; :func:`decode_columns` reads many blobs the same way: they are concatenated
and every varint decoded at once, the key deltas summed per sketch with a segmented cumulative
sum. The single-sketch forms (``DDSketch.to_bytes`` / ``from_bytes``) are these with one
sketch: there is no second codec. ``python -m bench.sketch_codec`` (docs/collector.md): over
many sketches at once this is 1.6-1.8x faster to encode and 5-13x faster to decode than plain
per-byte Python (``tests/oracles/sketch_bytes.py``, the property tests' oracle); one sketch
alone costs ~100 µs of numpy overhead, so reads decode a series' sketches together
(:class:`~analyzer.rollups.sketch.SketchBatch`). Anything that is not exactly this form raises
:class:`SketchError`.
:func:`bucket_keys` is ``DDSketch.key`` of many values (DDSketch §2: ``ceil(log_gamma(x))``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

DEFAULT_ALPHA = 0.005
MAGIC = b"DD1"
_HEAD = len(MAGIC) + 3  # varints before the buckets: the magic bytes, alpha, zero, n
Columns = tuple[int, npt.NDArray[Any], npt.NDArray[Any]]
Array = npt.NDArray[Any]
_NO_KEYS, _NO_COUNTS = np.zeros(0, np.int32), np.zeros(0, np.int64)  # shared by empty sketches
CHUNK = 1024  # blobs per vectorised pass: L2-sized temporaries (fastest of 512-4,096 blobs)


class SketchError(ValueError):
    """A serialized sketch that cannot be decoded, or sketches that cannot be merged."""


def ppm(alpha: float) -> int:
    """Alpha as stored: parts per million."""
    return round(alpha * 1_000_000)


# -- decoding ---------------------------------------------------------------------------------
def decode_columns(blobs: Sequence[bytes], alpha: float | None = DEFAULT_ALPHA
                   ) -> tuple[Array, Array, Array, Array]:
    """(zero, number of buckets, keys, counts) of the blobs, the buckets of all blobs in turn
    (int64, counts int32 while every varint is at most 4 bytes), :data:`CHUNK` blobs per
    vectorised pass. Every blob must be of accuracy ``alpha``
    (None: any; :func:`decode_alphas` says which); raises :class:`SketchError` otherwise, or
    for any blob that is not exactly the stored form."""
    parts = [_decode(blobs[i:i + CHUNK]) for i in range(0, len(blobs), CHUNK)]
    if not parts:
        none = np.zeros(0, np.int64)
        return none, none, none, none
    if alpha is not None and any((p[0] != ppm(alpha)).any() for p in parts):
        raise SketchError(f"a stored sketch is not of alpha {alpha}")
    if len(parts) == 1:
        return parts[0][1:]
    zero, sizes, keys, counts = (np.concatenate(c) for c in zip(*(p[1:] for p in parts),
                                                                   strict=True))
    return zero, sizes, keys, counts


def decode_alphas(blobs: Sequence[bytes]) -> list[float]:
    """The accuracy (alpha) of each blob."""
    return [a / 1_000_000 for i in range(0, len(blobs), CHUNK)
            for a in _decode(blobs[i:i + CHUNK])[0].tolist()]


def decode_many(blobs: Sequence[bytes]) -> list[Columns]:
    """``(zero, keys, counts)`` of every blob (of the default alpha), as views into the
    columns of :func:`decode_columns`."""
    zero, n, keys, counts = decode_columns(blobs)
    keys, counts = keys.astype(np.int32), counts.astype(np.int64)
    zl, nl = zero.tolist(), n.tolist()
    sl = (np.cumsum(n) - n).tolist()
    return [(zl[j], keys[sl[j]:sl[j] + nl[j]], counts[sl[j]:sl[j] + nl[j]]) if nl[j] else
            (zl[j], _NO_KEYS, _NO_COUNTS) for j in range(len(zl))]


def _decode(blobs: Sequence[bytes]) -> tuple[Array, Array, Array, Array, Array]:
    """(alpha ppm, zero, n, keys, counts) of a chunk of blobs. A blob is varints throughout
    (the magic bytes and alpha too), so the chunk is one run of varints, each read from its
    last byte back."""
    sizes = np.fromiter(map(len, blobs), np.int64, len(blobs))
    if sizes.min() < _HEAD:
        raise SketchError("truncated DDSketch encoding")
    b = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    blob_ends = np.cumsum(sizes) - 1
    if any((b[blob_ends + 1 - sizes + j] != byte).any() for j, byte in enumerate(MAGIC)):
        raise SketchError("not a DDSketch encoding")
    ends = np.flatnonzero(b < 0x80)
    if ends[-1] != len(b) - 1:
        raise SketchError("truncated DDSketch encoding")
    vals = _varints(b, ends)
    if vals is None:
        raise SketchError("varint too long in DDSketch encoding")
    cut = np.searchsorted(ends, blob_ends)
    if not np.array_equal(ends[cut], blob_ends):
        raise SketchError("truncated DDSketch encoding")  # a blob ends inside a varint
    per_blob = np.diff(cut, prepend=-1)
    if per_blob.min() < _HEAD:
        raise SketchError("truncated DDSketch encoding")
    head = np.cumsum(per_blob) - per_blob
    alpha, zero, n = (vals[head + len(MAGIC) + i] for i in range(3))
    if not np.array_equal(per_blob, _HEAD + 2 * n):
        raise SketchError("a DDSketch encoding's buckets do not match its count (trailing or "
                          "missing bytes)")
    pairs = np.ones(len(vals), dtype=bool)
    pairs[(head[:, None] + np.arange(_HEAD)).ravel()] = False
    body = vals[pairs]
    deltas = body[0::2].astype(np.int64)
    run = np.cumsum((deltas >> 1) ^ -(deltas & 1))  # zig-zag key deltas, summed across blobs
    firsts = np.cumsum(n) - n
    before = run[np.maximum(firsts - 1, 0)] if len(run) else firsts
    keys = run - np.repeat(np.where(firsts > 0, before, 0), n)
    return alpha, zero.astype(np.int64), n.astype(np.int64), keys, body[1::2]


def _varints(b: Array, ends: Array) -> Array | None:
    """The value of each varint ending at ``ends`` of ``b``; None past 8 bytes. The byte
    ``j`` before a varint's last is its own while it and those after it have the continuation
    bit (the byte before the first varint is read as the chunk's last byte, which never has
    it); each such byte is the next lower 7 bits."""
    vals: Array = b[ends].astype(np.int32)
    more = np.ones(len(ends), dtype=bool)
    for j in range(1, 9):
        prev = b[ends - j]
        more &= prev >= 0x80
        if not more.any():
            return vals
        if j == 4:
            vals = vals.astype(np.int64)  # more than 28 bits
        if j == 8:
            return None
        vals = np.where(more, (vals << 7) | (prev & 0x7F), vals)
    return None


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
    blank = bytes(_leb128(np.array([*MAGIC, ppm(alpha), 0, 0], np.int64))[0])
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
    m = len(MAGIC)
    head = m + 3  # varints before the buckets: the magic bytes, alpha, zero, n
    start = head * np.arange(s) + 2 * first  # first value of each sketch
    vals = np.empty(head * s + 2 * p, np.int64)
    vals[start[:, None] + np.arange(m + 1)] = (*MAGIC, ppm(alpha))
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
    out = np.repeat((vals & 0x7F | longer[0] << 7).astype(np.uint8), lengths)  # byte 0 first
    for j, more in enumerate(longer, 1):
        group = vals[more] >> 7 * j
        if j < width - 1:
            group = group & 0x7F | (group >= 0x80) << 7
        out[start[more] + j] = group
    return out, ends


# -- one sketch -------------------------------------------------------------------------------
def encode(zero: int, buckets: dict[int, int], alpha: float = DEFAULT_ALPHA) -> bytes:
    """The stored form of one sketch (:func:`encode_many` of one)."""
    keys = sorted(buckets)
    return encode_many([zero], keys, [buckets[k] for k in keys], [len(keys)], alpha)[0]


def decode(data: bytes) -> tuple[float, int, dict[int, int]]:
    """Alpha, zero count and buckets of one stored sketch (:func:`decode_columns` of one)."""
    alpha, zero, _n, keys, counts = _decode([data])
    return (int(alpha[0]) / 1_000_000, int(zero[0]),
            dict(zip(keys.tolist(), counts.tolist(), strict=True)))
