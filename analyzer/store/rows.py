"""Pure codecs between rollups and table rows, shared by the SQLite and PostgreSQL stores.

A stream is what stays constant over many results (probe, method, path ends, addresses, Type-P
per RFC 2330 §13, session); its key ``skey`` is canonical JSON of the 14 identity columns
(:func:`skey_of`), part of every raw-results digest (:func:`analyzer.columns.blobs_digest`).
A rollup row holds :data:`ROLLUP_COLUMNS` (:func:`rollup_row`, :func:`build_rollup`); delay sums
and sums of squares are floats (sums of at most 100,000 bounded delays per batch are exact
integers, converted once and added in chain order: see :mod:`analyzer.rollup_columns`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

import numpy as np
import numpy.typing as npt

from analyzer.rollup import DelayStats, MinuteRollup
from analyzer.sketch import DEFAULT_ALPHA, DDSketch
from analyzer.store.sketchcols import decode_many
from ixmeter.errors import RecordError

STREAM_COLUMNS = ("skey", "probe_id", "method", "src_site", "src_carrier", "dst_site",
                  "dst_carrier", "src_addr", "dst_addr", "protocol", "ip_version", "size",
                  "dscp", "dst_port", "session", "path_id", "type_p")

IDENT_COLUMNS = STREAM_COLUMNS[1:15]  # a stream's identity, in analyzer.columns.STREAM_FIELDS order
_DELAY_FIELDS = ("n", "min", "max", "sum", "sumsq", "sketch", "below")
ROLLUP_KEY = ("path_id", "method", "type_p", "minute")
ROLLUP_COLUMNS = ROLLUP_KEY + (
    "src_site", "src_carrier", "dst_site", "dst_carrier", "sent", "received", "lost", "errors",
    "duplicated", "reordered", "loss_periods", "loss_period_max", "tmax_ns",
    "clock_error_max_ns", "unsynced") + tuple(
    f"{d}_{f}" for d in ("rtt", "fwd", "bwd") for f in _DELAY_FIELDS)

# The encoders json.dumps(..., separators=(",", ":")[, ensure_ascii=False]) builds per call;
# _CANONICAL_JSON writes stream keys.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":")).encode
_CANONICAL_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def skey_of(ident: Sequence[Any]) -> str:
    """The stream key: canonical JSON of the 14 stream identity columns."""
    return _CANONICAL_JSON(list(ident))


def rollup_row(r: MinuteRollup) -> tuple[Any, ...]:
    """A rollup in :data:`ROLLUP_COLUMNS` order; sketches as ``DDSketch.to_bytes()``."""
    head = (r.path_id, r.method, r.type_p, r.minute, r.src_site, r.src_carrier, r.dst_site,
            r.dst_carrier, r.sent, r.received, r.lost, r.errors, r.duplicated, r.reordered,
            r.loss_periods, r.loss_period_max, r.tmax_ns, r.clock_error_max_ns, r.unsynced)
    return head + _delay_cols(r.rtt) + _delay_cols(r.fwd) + _delay_cols(r.bwd)


def _delay_cols(d: DelayStats) -> tuple[Any, ...]:
    return (d.n, d.min, d.max, d.sum, d.sumsq, d.sketch.to_bytes(), below_json(d.below))


def below_json(below: dict[int, int]) -> str:
    """The stored form of threshold counts: JSON, thresholds in numeric order."""
    return _COMPACT_JSON({str(k): v for k, v in sorted(below.items())})


def build_rollup(row: Sequence[Any]) -> MinuteRollup:
    """Inverse of :func:`rollup_row`."""
    (path, method, type_p, minute, src_site, src_carrier, dst_site, dst_carrier, sent,
     received, lost, errors, duplicated, reordered, loss_periods, loss_period_max, tmax_ns,
     clock_error_max_ns, unsynced) = row[:19]
    return MinuteRollup(path, src_site, src_carrier, dst_site, dst_carrier, method, type_p,
                        minute, sent, received, lost, errors, duplicated, reordered,
                        loss_periods, loss_period_max, tmax_ns, _delay(row[19:26]),
                        _delay(row[26:33]), _delay(row[33:40]), clock_error_max_ns, unsynced)


def _delay(cols: Sequence[Any]) -> DelayStats:
    n, lo, hi, total, sumsq, sketch, below = cols
    return DelayStats(n=n, min=lo, max=hi, sum=float(total), sumsq=float(sumsq),
                      sketch=LazySketch(bytes(sketch)), below=_below(below))


class LazySketch(DDSketch):
    """A stored DDSketch decoded on first use: reading N rollups costs no sketch decoding for
    the series a caller never looks at (e.g. one-way sketches when judging RTT)."""

    __slots__ = ("_raw", "_cols")

    def __init__(self, raw: bytes) -> None:  # noqa: D107 - the slots fill in on first use
        self._raw: bytes | None = raw
        self._cols: tuple[int, npt.NDArray[Any], npt.NDArray[Any]] | None = None

    def to_bytes(self) -> bytes:
        """The stored bytes while undecoded (they are the canonical encoding), else encode."""
        raw = object.__getattribute__(self, "_raw")
        return raw if raw is not None else DDSketch.to_bytes(self)

    def columns(self) -> tuple[int, npt.NDArray[Any], npt.NDArray[Any]]:
        """(zero count, bucket keys, bucket counts) as compact arrays, for the analyzer's unit
        tables. Kept while the sketch is not decoded as a dict (a year of day tiers as dicts
        would hold GBs); computed afresh once it is (its buckets may have been merged into)."""
        if self._raw is None:
            return (self.zero, np.fromiter(self.buckets, np.int32, len(self.buckets)),
                    np.fromiter(self.buckets.values(), np.int64, len(self.buckets)))
        if self._cols is None:
            s = sketch_from_bytes(self._raw)
            self._cols = (s.zero, np.fromiter(s.buckets, np.int32, len(s.buckets)),
                          np.fromiter(s.buckets.values(), np.int64, len(s.buckets)))
        return self._cols

    def __getattr__(self, name: str) -> Any:
        """Called only for a slot not yet set: decode, fill every slot, answer."""
        raw = object.__getattribute__(self, "_raw")
        if raw is None or name not in DDSketch.__slots__:
            raise AttributeError(name)
        decoded = sketch_from_bytes(raw)
        for slot in DDSketch.__slots__:
            setattr(self, slot, getattr(decoded, slot))
        self._raw, self._cols = None, None
        return getattr(self, name)


def prime_columns(rollups: Sequence[MinuteRollup], rows: Sequence[Sequence[Any]]) -> None:
    """Give the lazy sketches of ``rollups`` (built from ``rows``) their bucket columns,
    decoded for all rows at once (:func:`analyzer.store.sketchcols.decode_many`); left lazy
    if any blob is irregular."""
    for name in ("rtt", "fwd", "bwd"):
        col = ROLLUP_COLUMNS.index(f"{name}_sketch")
        decoded = decode_many([bytes(row[col]) for row in rows])
        if decoded is None:
            continue
        for r, cols in zip(rollups, decoded, strict=True):
            sketch = getattr(r, name).sketch
            if isinstance(sketch, LazySketch) and sketch._raw is not None:
                sketch._cols = cols


_BELOW_CACHE: dict[str, dict[int, int]] = {}


def _below(text: str) -> dict[int, int]:
    """Threshold counts from their JSON column; the decode is memoised (few distinct values
    repeat across many rows), the dict is a fresh copy (merging mutates it)."""
    hit = _BELOW_CACHE.get(text)
    if hit is None:
        if len(_BELOW_CACHE) > 50_000:
            _BELOW_CACHE.clear()
        hit = _BELOW_CACHE[text] = {int(k): v for k, v in json.loads(text).items()}
    return dict(hit)


_UNZIGZAG = tuple(n // 2 if n % 2 == 0 else -(n + 1) // 2 for n in range(128))
_PREFIX = DDSketch(DEFAULT_ALPHA).to_bytes()[:-2]  # magic + alpha of the store's sketches


def sketch_from_bytes(data: bytes) -> DDSketch:
    """``DDSketch.from_bytes`` without its per-byte Python loop: a pure-Python path for the
    common minute body (one-byte deltas and counts after the first bucket) and a numpy LEB128
    decode for larger bodies (hour/day tiers). The same sketch; anything unexpected goes to the
    reference decoder, which validates and raises :class:`~analyzer.sketch.SketchError`."""
    p = len(_PREFIX)
    if not data.startswith(_PREFIX):
        return DDSketch.from_bytes(data)
    zero, pos = _varint(data, p)
    n, pos = _varint(data, pos)
    first, body_at = _varint(data, pos)
    count, body_at = _varint(data, body_at)
    if zero < 0 or n <= 0 or first < 0 or count < 0:
        return DDSketch.from_bytes(data)
    body = data[body_at:]
    if body.isascii() and len(body) == 2 * (n - 1):
        deltas = map(_UNZIGZAG.__getitem__, body[0::2])
        k0 = first // 2 if first % 2 == 0 else -(first + 1) // 2
        buckets = dict(zip(accumulate(deltas, initial=k0), (count, *body[1::2]), strict=True))
    else:
        decoded = _leb128(data[pos:], 2 * n)
        if decoded is None:
            return DDSketch.from_bytes(data)
        buckets = decoded
    out = DDSketch(DEFAULT_ALPHA)
    out.buckets = buckets
    out.zero = zero
    out.count = zero + sum(buckets.values())
    return out


def _leb128(body: bytes, expected: int) -> dict[int, int] | None:
    """Buckets from ``expected`` varints (zig-zag key delta, count)*, vectorised; None if the
    body is not exactly that (the caller then uses the validating decoder)."""
    b = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(b < 0x80)
    if len(ends) != expected or ends[-1] != len(b) - 1:
        return None
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts + 1
    if lengths.max() > 8:  # > 56 bits: leave to the reference decoder
        return None
    shift = 7 * (np.arange(len(b)) - np.repeat(starts, lengths))
    vals = np.add.reduceat((b & 0x7F).astype(np.int64) << shift, starts)
    deltas = vals[0::2]
    keys = np.cumsum((deltas >> 1) ^ -(deltas & 1))
    return dict(zip(keys.tolist(), vals[1::2].tolist(), strict=True))


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """A LEB128 varint at ``pos`` of at most 8 bytes, else (-1, pos)."""
    result = shift = 0
    for i in range(pos, min(pos + 8, len(data))):
        result |= (data[i] & 0x7F) << shift
        if not data[i] & 0x80:
            return result, i + 1
        shift += 7
    return -1, pos


def ids_text(ids: Sequence[int]) -> str:
    """``blobs.stream_ids``: the ids in stored order, decimal, comma-separated."""
    return ",".join(map(str, ids))


def ids_of(text: str) -> list[int]:
    """Inverse of :func:`ids_text`; raises :class:`RecordError` for anything else."""
    try:
        return [int(i) for i in text.split(",")]
    except ValueError:
        raise RecordError(f"blobs.stream_ids: {text[:40]!r} is not a list of ids") from None
