"""The stored form of a DDSketch, byte by byte: the oracle of the codec's property tests.

Plain Python over one sketch at a time, straight from the format's description in
:mod:`analyzer.rollups.sketch_codec` (magic ``DD1``, then LEB128 varints of at most 8 bytes:
alpha in ppm, zero count, bucket count, ``(zig-zag key delta, count)`` per bucket in key
order). The product has
one codec, the vectorised one; this checks it. Test code only.
"""

from __future__ import annotations

from analyzer.rollups.sketch import DDSketch, SketchError


def encode(sketch: DDSketch) -> bytes:
    """The stored form of ``sketch``."""
    out = bytearray(b"DD1")
    keys = sorted(sketch.buckets)
    fields = [round(sketch.alpha * 1_000_000), sketch.zero, len(keys)]
    previous = 0
    for k in keys:
        delta = k - previous
        fields += [delta * 2 if delta >= 0 else -delta * 2 - 1, sketch.buckets[k]]
        previous = k
    for n in fields:
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | 0x80 if n else byte)
            if not n:
                break
    return bytes(out)


def decode(data: bytes) -> DDSketch:
    """Inverse of :func:`encode`; raises :class:`SketchError` for anything else."""
    if data[:3] != b"DD1":
        raise SketchError("not a DDSketch encoding")
    pos = 3

    def varint() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            if pos >= len(data):
                raise SketchError("truncated DDSketch encoding")
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift >= 56:
                raise SketchError("varint too long in DDSketch encoding (at most 8 bytes)")

    sketch = DDSketch(varint() / 1_000_000)
    sketch.zero = varint()
    key, total = 0, sketch.zero
    for _ in range(varint()):
        delta = varint()
        key += delta // 2 if delta % 2 == 0 else -(delta + 1) // 2
        sketch.buckets[key] = varint()
        total += sketch.buckets[key]
    if pos != len(data):
        raise SketchError("trailing bytes after DDSketch encoding")
    sketch.count = total
    return sketch
