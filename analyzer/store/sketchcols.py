"""Decode many stored DDSketches at once into bucket columns (numpy), for large rollup reads.

The encoding is ``DDSketch.to_bytes``: magic, alpha, then LEB128 varints ``zero, n,
(zig-zag key delta, count) * n`` (Masson et al., DDSketch, PVLDB 2019, for the sketch; the
varints are the protobuf base-128 form). All blobs are concatenated and every varint decoded in
one vectorised pass; key deltas are summed per sketch with a segmented cumulative sum. The
result for each sketch is ``(zero, keys, counts)`` as views into two shared arrays, equal to
``DDSketch.from_bytes`` (tested); any blob that is not exactly that shape makes the whole call
answer None, and the caller decodes one sketch at a time instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from analyzer.sketch import DEFAULT_ALPHA, DDSketch

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
