"""Results in columnar form: one :class:`Block` per stream of a batch.

A *stream* is what stays constant over many results (probe, method, both ends, addresses,
Type-P per RFC 2330 §13, session: :data:`STREAM_FIELDS`); a block holds the per-packet fields of
a stream's results in a batch as numpy arrays, one array per field. The collector decodes wire
v2 bodies straight into blocks, computes a batch's rollups from the arrays
(:mod:`analyzer.rollups.batch`) and stores all streams of one method of a batch as one
compressed blob (:func:`encode_blob`, layout IXB2), so the cost of ingest grows with neither
one Python object and one table row per result nor one per stream.

Nulls: integer columns use :data:`NULL` (the smallest int64), code and flag columns -1. Codes
index :data:`STATUS`, :data:`TS_SOURCES` and :data:`ERRORS`; flags are 0/1. Two sparse
columns, ``error_detail`` and ``hops``, are ``(position, value)`` pairs for the results that
have one. ``idx`` is each result's index in its batch (the order the probe sent them in), so
blocks of a batch rebuild the batch's result sequence exactly.

Pure: no I/O (ARCHITECTURE: codecs import no socket, no clock).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson

from ixmeter.core.errors import RecordError
from ixmeter.core.record import ErrorKind, Hop, Method, Result, Status, TimestampSource, TypeP
from ixmeter.core.wire import ERROR_CODES, MAX_RESULTS, STATUS_CODES, TS_SOURCE_CODES

NULL = int(np.iinfo(np.int64).min)
STATUS: tuple[str, ...] = STATUS_CODES  # received, lost, error (wire v2 codes)
TS_SOURCES: tuple[str, ...] = TS_SOURCE_CODES
ERRORS: tuple[str, ...] = ERROR_CODES
RECEIVED, LOST, ERROR = (STATUS.index(s) for s in ("received", "lost", "error"))

STREAM_FIELDS = ("probe_id", "method", "src_site", "src_carrier", "dst_site", "dst_carrier",
                 "src_addr", "dst_addr", "protocol", "ip_version", "size", "dscp", "dst_port",
                 "session")
# Dense per-packet columns and their stored dtype, in block order (part of the stored format).
INT_COLUMNS = ("idx", "seq", "sent_at_ns", "tmax_ns", "rtt_ns", "fwd_ns", "bwd_ns",
               "clock_error_ns", "dup", "reply_ttl", "v")
CODE_COLUMNS = ("status", "ts_source", "error", "src_synced", "dst_synced")
NULLABLE_INTS = frozenset({"rtt_ns", "fwd_ns", "bwd_ns", "clock_error_ns", "reply_ttl"})



class StreamIdent(NamedTuple):
    """A stream's identity (:data:`STREAM_FIELDS`): what stays constant over its results.
    A named tuple: hashable and compared as the plain tuple, built in ~0.2 µs (once per stream
    of a batch), its fields read by name as fast as by position."""

    probe_id: str
    method: str
    src_site: str
    src_carrier: str
    dst_site: str
    dst_carrier: str
    src_addr: str
    dst_addr: str
    protocol: str
    ip_version: int
    size: int
    dscp: int
    dst_port: int | None
    session: str


I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]


@dataclass(eq=False, slots=True)
class Block:
    """One stream's results of one batch, column by column (see the module docstring).

    Not frozen: a frozen dataclass's ``__init__`` sets each of the 19 fields through
    ``object.__setattr__`` (1.9 µs a block, against 0.33 µs for this one, measured with
    ``timeit`` on the build machine), at ~100 blocks per batch on the ingest path; and freezing
    would not make the numpy columns immutable anyway. Nothing assigns a block's fields."""

    ident: StreamIdent
    idx: I64
    seq: I64
    sent_at_ns: I64
    tmax_ns: I64
    rtt_ns: I64
    fwd_ns: I64
    bwd_ns: I64
    clock_error_ns: I64
    dup: I64
    reply_ttl: I64
    v: I64
    status: I8
    ts_source: I8
    error: I8
    src_synced: I8
    dst_synced: I8
    error_detail: tuple[tuple[int, str], ...] = ()
    hops: tuple[tuple[int, tuple[Hop, ...]], ...] = ()

    @property
    def n(self) -> int:
        return len(self.idx)

    def same_as(self, other: Block) -> bool:
        """Equal identity and every column equal (for tests and round-trip checks)."""
        return (self.ident == other.ident and self.error_detail == other.error_detail
                and self.hops == other.hops
                and all(np.array_equal(getattr(self, c), getattr(other, c))
                        for c in INT_COLUMNS + CODE_COLUMNS))


@dataclass(frozen=True, eq=False, slots=True)
class Dense:
    """The dense columns of a batch's blocks as two matrices, one row per column of
    :data:`INT_COLUMNS` and :data:`CODE_COLUMNS`: block ``k``'s columns are the views
    ``[at[k], at[k] + n)`` of these rows (what the body decoder builds the blocks from; the
    blob encoder then gathers a method's results with one index, not one copy per block)."""

    ints: I64
    codes: I8
    at: tuple[int, ...]
    n: tuple[int, ...]  # each block's results
    methods: tuple[str, ...]  # each block's method


@dataclass(frozen=True, slots=True)
class ColumnBatch:
    """A batch as blocks: what the collector writes (``Store.write_blocks``). ``dense``, when
    given, holds the same columns as the blocks (:class:`Dense`)."""

    probe_id: str
    batch_id: str
    blocks: tuple[Block, ...]
    dense: Dense | None = None

    @property
    def n(self) -> int:
        """The batch's results (from ``dense`` when the decoder kept it: one sum of ints)."""
        return sum(self.dense.n) if self.dense is not None else sum(len(b.idx)
                                                                     for b in self.blocks)


def ident_of(r: Result) -> StreamIdent:
    """The stream identity of a result, in :data:`STREAM_FIELDS` order."""
    t = r.type_p
    return StreamIdent(r.probe_id, r.method._value_, r.src_site, r.src_carrier, r.dst_site,
                       r.dst_carrier, r.src_addr, r.dst_addr, t.protocol, t.ip_version, t.size,
                       t.dscp, t.dst_port, r.session)


def path_and_type_p(ident: StreamIdent) -> tuple[str, str]:
    """The rollup labels of a stream: directed path id and Type-P key."""
    i = ident
    return (f"{i.src_site}/{i.src_carrier}>{i.dst_site}/{i.dst_carrier}",
            TypeP(i.protocol, i.ip_version, i.size, i.dscp, i.dst_port).key())


_STATUS_CODE = {s: i for i, s in enumerate(Status)}
_TS_CODE = {s: i for i, s in enumerate(TimestampSource)}
_ERROR_CODE = {e: i for i, e in enumerate(ErrorKind)}


def blocks_of(results: Sequence[Result]) -> tuple[Block, ...]:
    """Group results by stream (in order of first appearance); ``idx`` = index in ``results``."""
    groups: dict[StreamIdent, list[int]] = {}
    for i, r in enumerate(results):
        groups.setdefault(ident_of(r), []).append(i)
    return tuple(_block_of(ident, [results[i] for i in where], where)
                 for ident, where in groups.items())


def _nullable(values: Iterable[int | None]) -> I64:
    return np.array([NULL if x is None else x for x in values], dtype=np.int64)


def _flag(value: bool | None) -> int:
    return -1 if value is None else int(value)


def _block_of(ident: StreamIdent, rs: list[Result], where: list[int]) -> Block:
    return Block(
        ident=ident, idx=np.array(where, dtype=np.int64),
        seq=np.array([r.seq for r in rs], dtype=np.int64),
        sent_at_ns=np.array([r.sent_at_ns for r in rs], dtype=np.int64),
        tmax_ns=np.array([r.tmax_ns for r in rs], dtype=np.int64),
        rtt_ns=_nullable(r.rtt_ns for r in rs), fwd_ns=_nullable(r.fwd_ns for r in rs),
        bwd_ns=_nullable(r.bwd_ns for r in rs),
        clock_error_ns=_nullable(r.clock_error_ns for r in rs),
        dup=np.array([r.dup for r in rs], dtype=np.int64),
        reply_ttl=_nullable(r.reply_ttl for r in rs),
        v=np.array([r.v for r in rs], dtype=np.int64),
        status=np.array([_STATUS_CODE[r.status] for r in rs], dtype=np.int8),
        ts_source=np.array([_TS_CODE[r.ts_source] for r in rs], dtype=np.int8),
        error=np.array([-1 if r.error is None else _ERROR_CODE[r.error] for r in rs],
                       dtype=np.int8),
        src_synced=np.array([_flag(r.src_synced) for r in rs], dtype=np.int8),
        dst_synced=np.array([_flag(r.dst_synced) for r in rs], dtype=np.int8),
        error_detail=tuple((k, r.error_detail) for k, r in enumerate(rs)
                           if r.error_detail is not None),
        hops=tuple((k, r.hops) for k, r in enumerate(rs) if r.hops))


_STATUSES, _TSS, _ERRS = tuple(Status), tuple(TimestampSource), tuple(ErrorKind)


def results_of(block: Block) -> list[Result]:
    """The block's results as records, in block order (inverse of :func:`blocks_of`)."""
    i = block.ident
    type_p = TypeP(i.protocol, i.ip_version, i.size, i.dscp, i.dst_port)
    m = Method(i.method)
    details, hops = dict(block.error_detail), dict(block.hops)
    cols = [getattr(block, c).tolist() for c in INT_COLUMNS[1:] + CODE_COLUMNS]
    out = []
    for k, (seq, sent, tmax, rtt, fwd, bwd, cerr, dup, ttl, v, status, ts, error, ss, ds) in (
            enumerate(zip(*cols, strict=True))):
        out.append(Result(
            probe_id=i.probe_id, method=m, src_site=i.src_site, src_carrier=i.src_carrier,
            dst_site=i.dst_site, dst_carrier=i.dst_carrier, src_addr=i.src_addr,
            dst_addr=i.dst_addr,
            type_p=type_p, seq=seq, sent_at_ns=sent, status=_STATUSES[status], tmax_ns=tmax,
            ts_source=_TSS[ts], rtt_ns=_none(rtt), fwd_ns=_none(fwd), bwd_ns=_none(bwd),
            clock_error_ns=_none(cerr), src_synced=None if ss < 0 else bool(ss),
            dst_synced=None if ds < 0 else bool(ds),
            error=None if error < 0 else _ERRS[error], error_detail=details.get(k), dup=dup,
            reply_ttl=_none(ttl), session=i.session, hops=hops.get(k, ()), v=v))
    return out


def _none(value: int) -> int | None:
    return None if value == NULL else value


def blobs_digest(items: Iterable[tuple[str, Sequence[str], int, int, int, bytes]]) -> bytes:
    """sha256 over a batch's stored blobs in order (methods in code-point order): for each,
    the method (UTF-8) and a NUL, the number of its streams (8 bytes big-endian), each
    stream's key (UTF-8) and a NUL, its result count, first and last send time (8 bytes
    big-endian each, the times signed), the blob's length (8 bytes big-endian) and the blob.
    Editing a blob, its method, its list of streams, a stream, its count or its span (what
    window reads and retention select blobs by) changes it; ``ixmeter verify`` recomputes it
    from the stored blobs and stream rows."""
    h = hashlib.sha256()
    for method, skeys, n, first_ns, last_ns, data in items:
        h.update(method.encode() + b"\0" + struct.pack(">Q", len(skeys)))
        for skey in skeys:
            h.update(skey.encode() + b"\0")
        h.update(struct.pack(">Qqq", n, first_ns, last_ns))
        h.update(struct.pack(">Q", len(data)))
        h.update(data)
    return h.digest()


def check_probe(batch_probe: str, blocks: Sequence[Block]) -> None:
    """Every block must be the batch's probe's (a probe writes only its own results)."""
    for i, b in enumerate(blocks):
        if b.ident.probe_id != batch_probe:
            raise RecordError(f"streams[{i}].probe_id: {b.ident.probe_id!r} is not the batch's "
                              "probe")


# -- blob codec: all streams of one method of a batch in one blob ------------------------------
BLOB_MAGIC = b"IXB2"
_BLOB_HEAD = struct.Struct("<4sIII")  # magic, streams, results, length of the zlib part
COLUMN_HEAD = np.dtype([("flags", "u1"), ("width", "u1"), ("base", "<i8"), ("origin", "<i8")])
_HEADS = struct.Struct("<" + "BBqq" * len(INT_COLUMNS + CODE_COLUMNS))  # COLUMN_HEAD each
_DELTA, _MASKED, _RAW = 1, 2, 16  # column flags; flags // _RAW: planes kept outside zlib
DENSE_COLUMNS = INT_COLUMNS + CODE_COLUMNS
DELTA_COLUMNS = ("idx", "seq", "sent_at_ns")  # the first rows of INT_COLUMNS
_ND, _NI = len(DELTA_COLUMNS), len(INT_COLUMNS)
_SENT = INT_COLUMNS.index("sent_at_ns")
_NULLABLE_ROWS = [INT_COLUMNS.index(c) for c in INT_COLUMNS if c in NULLABLE_INTS]
_WIDTHS = range(1, 9)  # bytes kept per value; 0: every value is the base
_SPAN_LIMITS = np.array([(1 << 8 * w) - 1 for w in range(8)], np.uint64)  # span w bytes hold
_SAMPLE = 64  # results looked at to tell a plane of noise (stored raw) from one zlib shrinks
_U64 = np.uint64
U64 = npt.NDArray[np.uint64]
if (INT_COLUMNS[:_ND] != DELTA_COLUMNS or NULLABLE_INTS & set(DELTA_COLUMNS)
        or COLUMN_HEAD.itemsize * len(DENSE_COLUMNS) != _HEADS.size):
    raise ImportError("delta columns must lead INT_COLUMNS and never be null")


def encode_blob(blocks: Sequence[Block]) -> bytes:
    """The stored form of several streams' results (one method of a batch), layout ``IXB2``:
    magic, stream count, result count and the length of the zlib part (``<4sIII``), then the
    zlib part (level 1) of

    - each stream's result count (uint32);
    - a head per column of :data:`DENSE_COLUMNS`: flags, width in bytes (0-8), base, origin
      (``<BBqq``); flags: 1 delta-encoded, 2 nulls masked, and 16 times the number of the
      column's low byte planes kept raw;
    - the null masks of the masked columns, in column order (``np.packbits``, little-endian
      bit order);
    - the columns of width 1, then 2, ... 8 bytes, each group in column order: a column over
      all streams concatenated, stored as ``value - base`` (unsigned) byte plane by byte plane,
      the least significant first, but for its raw planes; width 0: every value is the base;
    - a JSON trailer ``[[[stream, position, detail]...], [[stream, position, hops]...]]``;

    and last the raw planes, in the same order. Frame of reference: ``base`` is a column's
    smallest value and its width the fewest bytes holding its span, chosen per column and
    blob. The :data:`DELTA_COLUMNS` are stored as differences where that takes fewer bytes:
    each result minus the previous one of its stream, a stream's first minus the previous
    stream's first, the very first minus ``origin`` (modulo 2**64). A nullable column with
    both nulls and values has a mask and its nulls stored as ``NULL - base`` wraps; a column
    of nulls only is the constant :data:`NULL`. Byte planes put the near-constant high bytes
    of delays and times in runs zlib shrinks fast; the low planes of delays are noise, which
    zlib would spend most of its time on for nothing, so a plane below a column's top one
    that changes between at least 7 of 8 of the first :data:`_SAMPLE` results is kept raw.
    Deterministic: the same blocks give the same bytes."""
    sizes = [b.n for b in blocks]
    if not any(sizes):
        return _encode_empty(blocks)
    x = np.concatenate((_joined(blocks, INT_COLUMNS, np.int64),
                        _joined(blocks, CODE_COLUMNS, np.int8).astype(np.int64)))
    [(data, _first, _last)] = _encode(x, [blocks], [sizes])
    return data


@dataclass(frozen=True, slots=True)
class MethodBlob:
    """One method's results of a batch as stored: its streams with results (in stored order),
    their :func:`encode_blob`, the result count and the first and last send time."""

    method: str
    blocks: tuple[Block, ...]
    data: bytes
    n: int
    first_ns: int
    last_ns: int


def batch_blobs(batch: ColumnBatch) -> list[MethodBlob]:
    """The batch's stored form: one blob per method with results, in code-point order of the
    methods, all encoded in one pass over the batch's columns (``batch.dense`` when the
    decoder kept it)."""
    dense = batch.dense
    sizes = list(dense.n) if dense else [len(b.idx) for b in batch.blocks]
    of_block = dense.methods if dense else tuple(b.ident.method for b in batch.blocks)
    methods = sorted({m for m, n in zip(of_block, sizes, strict=True) if n})
    if not methods:
        return []
    groups = {m: [k for k, (b, n) in enumerate(zip(of_block, sizes, strict=True)) if b == m and n]
              for m in methods}
    order = [k for m in methods for k in groups[m]]
    parts = [tuple(batch.blocks[k] for k in groups[m]) for m in methods]
    counts = [[sizes[k] for k in groups[m]] for m in methods]
    n = np.array([sizes[k] for k in order], np.int64)
    x = np.empty((len(DENSE_COLUMNS), int(n.sum())), np.int64)
    if dense is None:
        blocks = [batch.blocks[k] for k in order]
        x[:_NI], x[_NI:] = _joined(blocks, INT_COLUMNS, np.int64), _joined(
            blocks, CODE_COLUMNS, np.int8)
    else:
        at = np.array([dense.at[k] for k in order], np.int64)
        where = np.repeat(at - (np.cumsum(n) - n), n) + np.arange(len(x[0]))
        np.take(dense.ints, where, axis=1, out=x[:_NI])
        x[_NI:] = np.take(dense.codes, where, axis=1)
    return [MethodBlob(m, part, data, sum(c), first, last) for m, part, c, (data, first, last)
            in zip(methods, parts, counts, _encode(x, parts, counts), strict=True)]


def _joined(blocks: Sequence[Block], names: tuple[str, ...], dtype: type[Any]) -> Any:
    """The named columns of ``blocks`` concatenated, one row per name. ``bytes.join`` copies
    many small buffers with less overhead per array than ``np.concatenate``; a column that is
    not a contiguous array of ``dtype`` takes np.concatenate."""
    parts = [getattr(b, c) for c in names for b in blocks]
    n = sum(b.n for b in blocks)
    try:
        flat = np.frombuffer(b"".join(parts), dtype)
    except (BufferError, TypeError, ValueError):  # a strided view: no contiguous buffer
        flat = np.zeros(0, dtype)
    if len(flat) != n * len(names):
        flat = np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
    return flat.reshape(len(names), n)


def _encode_empty(blocks: Sequence[Block]) -> bytes:
    """:func:`encode_blob` of streams without results."""
    z = zlib.compress(b"".join([struct.pack(f"<{len(blocks)}I", *[0] * len(blocks)),
                                _HEADS.pack(*[0] * 4 * len(DENSE_COLUMNS)),
                                orjson.dumps(_sparse(blocks))]), 1)
    return _BLOB_HEAD.pack(BLOB_MAGIC, len(blocks), 0, len(z)) + z


@dataclass(slots=True)
class _Frame:
    """How one blob stores its columns (the column heads), and its null masks by column."""

    flags: list[int]
    widths: list[int]
    bases: list[int]
    origins: list[int]
    masks: dict[int, bytes]

    def heads(self) -> bytes:
        return _HEADS.pack(*chain.from_iterable(zip(self.flags, self.widths, self.bases,
                                                    self.origins, strict=True)))


def _encode(x: I64, parts: Sequence[Sequence[Block]], sizes: list[list[int]]
            ) -> list[tuple[bytes, int, int]]:
    """:func:`encode_blob` of each part (blocks whose result counts are ``sizes``, every part
    with results), and its first and last send time. The parts' dense columns are the rows of
    ``x``, one part after the other, streams in order (overwritten).

    Vectorised across the columns and the parts: each step is one numpy call over the whole
    batch (segment reductions per part), the choices per column and part made on lists."""
    lens = [sum(s) for s in sizes]
    seg = np.array(list(accumulate(lens, initial=0))[:-1])
    frames, spans = _frames(x, seg, lens, [n for s in sizes for n in s])
    bases = np.array([f.bases for f in frames], np.int64).T.view(_U64)
    stored = x.view(_U64) - np.repeat(bases, lens, axis=1)
    planes = _planes(stored, seg.tolist(), lens, frames)
    out = []
    for part, counts, frame, (packed, raw), span in zip(parts, sizes, frames, planes, spans,
                                                         strict=True):
        z = zlib.compress(b"".join([struct.pack(f"<{len(counts)}I", *counts), frame.heads(),
                                    *frame.masks.values(), packed,
                                    orjson.dumps(_sparse(part))]), 1)
        out.append((_BLOB_HEAD.pack(BLOB_MAGIC, len(counts), sum(counts), len(z)) + z + raw,
                    *span))
    return out


def _frames(x: I64, seg: I64, lens: list[int], sizes: list[int]
            ) -> tuple[list[_Frame], list[tuple[int, int]]]:
    """Each part's frame (``seg``: where the parts start, ``lens``: their results, ``sizes``:
    every stream's results) and its first and last send time; the :data:`DELTA_COLUMNS` of
    a part stored as differences are replaced by them in ``x``."""
    lo, hi = np.minimum.reduceat(x, seg, axis=1), np.maximum.reduceat(x, seg, axis=1)
    masks = _nulls(x, lo, hi, seg, lens)
    d = _deltas(x[:_ND], seg, sizes)
    d_lo, d_hi = np.minimum.reduceat(d, seg, axis=1), np.maximum.reduceat(d, seg, axis=1)
    widths = _widths(np.concatenate((lo, d_lo)), np.concatenate((hi, d_hi))).T.tolist()
    bases, d_bases, firsts = lo.T.tolist(), d_lo.T.tolist(), x[:_ND, seg].T.tolist()
    nc, frames = len(x), []
    for m, (a, n) in enumerate(zip(seg.tolist(), lens, strict=True)):
        f = _Frame([_MASKED if r in masks[m] else 0 for r in range(nc)], widths[m][:nc],
                   bases[m], [0] * nc, masks[m])
        for i in range(_ND):
            if widths[m][nc + i] < f.widths[i]:  # delta-encoded where it pays
                f.flags[i], f.widths[i], f.bases[i], f.origins[i] = (
                    _DELTA, widths[m][nc + i], d_bases[m][i], firsts[m][i])
                x[i, a:a + n] = d[i, a:a + n]
        frames.append(f)
    return frames, list(zip(lo[_SENT].tolist(), hi[_SENT].tolist(), strict=True))


def _planes(stored: U64, starts: list[int], lens: list[int], frames: list[_Frame]
            ) -> list[tuple[bytes, bytes]]:
    """Per part, its columns of ``stored`` grouped by width, narrowest first, as their byte
    planes (least significant first): those zlib is to compress and those kept raw (noise;
    their count added to the frame's flags). Every plane any part needs is cut out of the
    batch in one gather, and each part's two runs of planes in one more each."""
    widths = [f.widths for f in frames]
    tops = [max(ws) for ws in zip(*widths, strict=True)]
    pairs = [(r, p) for r, top in enumerate(tops) for p in range(top)]
    if not pairs:
        return [(b"", b"")] * len(lens)
    where = {pair: k for k, pair in enumerate(pairs)}
    octets = stored.astype("<u8", copy=False).view(np.uint8).reshape(len(stored), -1, 8)
    rows, planes = zip(*pairs, strict=True)
    cut = octets[list(rows), :, list(planes)]  # (plane of a column, result)
    noise = _noise(stored, starts, lens, widths)
    out = []
    for m, (a, n) in enumerate(zip(starts, lens, strict=True)):
        packed, raw = [], []
        for r in sorted((r for r, w in enumerate(widths[m]) if w), key=widths[m].__getitem__):
            k = noise[m][r]
            frames[m].flags[r] += k * _RAW
            raw += [where[r, p] for p in range(k)]
            packed += [where[r, p] for p in range(k, widths[m][r])]
        out.append((cut[packed, a:a + n].tobytes(), cut[raw, a:a + n].tobytes()))
    return out


_LANES = np.uint64(0x0101_0101_0101_0101)
_BUSY = -(-7 * (_SAMPLE - 1) // 8)  # changes: at least 7 in 8


def _noise(stored: U64, starts: list[int], lens: list[int], widths: list[list[int]]
           ) -> list[list[int]]:
    """Per part and column, how many of its low byte planes look like noise: below its top
    plane, and changing between at least 7 of 8 consecutive results of the part's first
    :data:`_SAMPLE` (parts with fewer results: none). The changes of all eight planes are
    counted at once, a byte lane each (at most 63 < 256 per lane)."""
    out = [[0] * len(stored) for _ in lens]
    long = [m for m, n in enumerate(lens) if n >= _SAMPLE]
    tops = [max(ws) for ws in zip(*(widths[m] for m in long), strict=True)] if long else []
    rows = [r for r, top in enumerate(tops) if top > 1]
    if not rows:
        return out
    at = (np.array([starts[m] for m in long])[:, None] + np.arange(_SAMPLE)).ravel()
    sample = stored[np.array(rows)[:, None], at].reshape(len(rows), len(long), _SAMPLE)
    flips = sample[:, :, 1:] ^ sample[:, :, :-1]
    for shift in (4, 2, 1):  # fold each byte onto its lowest bit: 1 where the byte changed
        flips |= flips >> np.uint64(shift)
    lanes = np.ascontiguousarray((flips & _LANES).sum(axis=2), "<u8").view(np.uint8).reshape(
        len(rows), len(long), 8).tolist()
    for k, r in enumerate(rows):
        for j, m in enumerate(long):
            changes, n = lanes[k][j], 0
            while n < widths[m][r] - 1 and changes[n] >= _BUSY:
                n += 1
            out[m][r] = n
    return out


_NULLABLE_FROM = min(_NULLABLE_ROWS)  # the nullable columns are rows of x[FROM:TO]
_NULLABLE_TO = max(_NULLABLE_ROWS) + 1
_IS_NULLABLE = np.array([r in _NULLABLE_ROWS for r in range(_NULLABLE_FROM, _NULLABLE_TO)])
_I64_MAX = np.iinfo(np.int64).max


def _nulls(x: I64, lo: I64, hi: I64, seg: I64, lens: list[int]) -> list[dict[int, bytes]]:
    """Per part (``seg``: where each starts, ``lens``: its results), the null masks of its
    nullable columns holding both nulls and values, by row; their ``lo`` raised to the
    smallest value. :data:`NULL` is the smallest int64, so ``lo`` is NULL where a column has
    a null and ``hi`` where it has nothing else (a column of nulls only: the constant)."""
    rows = slice(_NULLABLE_FROM, _NULLABLE_TO)
    mixed = (lo[rows] == NULL) & (hi[rows] != NULL) & _IS_NULLABLE[:, None]
    out: list[dict[int, bytes]] = [{} for _ in lens]
    if not mixed.any():
        return out
    null = x[rows] == NULL
    values = np.minimum.reduceat(np.where(null, _I64_MAX, x[rows]), seg, axis=1)
    lo[rows] = np.where(mixed, values, lo[rows])
    for m, (a, n, column) in enumerate(zip(seg.tolist(), lens, mixed.T.tolist(), strict=True)):
        if ks := [k for k, flag in enumerate(column) if flag]:
            packed = np.packbits(null[ks, a:a + n], axis=1, bitorder="little").tobytes()
            size = (n + 7) // 8
            out[m] = {k + _NULLABLE_FROM: packed[j * size:(j + 1) * size]
                      for j, k in enumerate(ks)}
    return out


def _widths(lo: I64, hi: I64) -> I64:
    """The bytes (0-8) holding ``hi - lo`` (modulo 2**64), elementwise."""
    out: I64 = np.searchsorted(_SPAN_LIMITS, hi.view(_U64) - lo.view(_U64))
    return out


def _starts(counts: I64) -> I64:
    """Where each stream with results starts in the concatenated columns."""
    out: I64 = (np.cumsum(counts) - counts)[counts > 0]
    return out


def _deltas(x: I64, seg: I64, sizes: list[int]) -> I64:
    """Each value minus the previous of its stream; a stream's first minus the previous
    stream's first; 0 for the first of each part (``seg``: where the parts start, ``sizes``:
    all streams' result counts). Modulo 2**64, as the inverse adds modulo 2**64."""
    u = x.view(_U64)
    d = np.empty_like(u)
    np.subtract(u[:, 1:], u[:, :-1], out=d[:, 1:])
    starts = _starts(np.array(sizes, np.int64))
    if len(starts) > 1:
        d[:, starts[1:]] = u[:, starts[1:]] - u[:, starts[:-1]]
    d[:, seg] = 0
    out: I64 = d.view(np.int64)
    return out


def _undelta(d: U64, origin: U64, starts: I64, lengths: I64) -> U64:
    """Inverse of :func:`_deltas` for columns (rows of ``d``) whose first values are
    ``origin``; ``d`` is overwritten."""
    d[:, 0] = origin
    first = np.cumsum(d[:, starts], axis=1)
    d[:, starts] = 0
    c = np.cumsum(d, axis=1)
    out: U64 = c + np.repeat(first - c[:, starts], lengths, axis=1)
    return out


def _sparse(blocks: Sequence[Block]) -> list[list[Any]]:
    details: list[Any] = []
    hops: list[Any] = []
    for s, b in enumerate(blocks):
        if b.error_detail:
            details += [[s, k, v] for k, v in b.error_detail]
        if b.hops:
            hops += [[s, k, [[h.ttl, h.addr, h.rtt_ns] for h in hs]] for k, hs in b.hops]
    return [details, hops]


def decode_blob(idents: Sequence[StreamIdent], data: bytes) -> tuple[Block, ...]:
    """Inverse of :func:`encode_blob`, the streams' identities given in stored order; raises
    :class:`RecordError` for bytes it cannot read."""
    try:
        magic, k, n, size = _BLOB_HEAD.unpack_from(data)
        if magic != BLOB_MAGIC:
            raise ValueError(f"magic {magic!r}")
        if k != len(idents):
            raise ValueError(f"{k} streams stored, {len(idents)} named")
        if n > MAX_RESULTS:
            raise ValueError(f"{n} results (a batch has at most {MAX_RESULTS})")
        raw = zlib.decompress(data[_BLOB_HEAD.size:_BLOB_HEAD.size + size])
        counts = np.frombuffer(raw, "<u4", k).astype(np.int64)
        if int(counts.sum()) != n:
            raise ValueError("stream counts do not add up")
        head = np.frombuffer(raw, COLUMN_HEAD, len(DENSE_COLUMNS), 4 * k)
        ints, codes, pos = _columns_of(raw, 4 * k + head.nbytes, head, counts,
                                       memoryview(data)[_BLOB_HEAD.size + size:])
        details, hops = _trailer(orjson.loads(raw[pos:]), counts)
    except (ValueError, TypeError, struct.error, zlib.error, orjson.JSONDecodeError) as exc:
        raise RecordError(f"stored blob: cannot decode ({exc})") from None
    ends = np.cumsum(counts).tolist()
    out = []
    for s, (ident, a, b) in enumerate(zip(idents, [0, *ends], ends, strict=False)):
        fields: list[Any] = [ident, *ints[:, a:b], *codes[:, a:b],
                             tuple(details.get(s, ())), tuple(hops.get(s, ()))]
        out.append(Block(*fields))
    return tuple(out)


def _columns_of(raw: bytes, pos: int, head: Any, counts: I64, planes_raw: memoryview
                ) -> tuple[I64, I8, int]:
    """The integer and code columns stored at ``pos`` (one row each; their raw planes in
    ``planes_raw``), and the position after them."""
    n = int(counts.sum())
    flags, width = head["flags"] % _RAW, head["width"]
    noise = head["flags"] // _RAW
    if not (np.isin(flags, (0, _DELTA, _MASKED)).all() and (width <= 8).all()
            and (noise <= width).all() and not (flags[_ND:] & _DELTA).any()):
        raise ValueError("column heads")
    masked = np.flatnonzero(flags & _MASKED)
    size = (n + 7) // 8
    null = np.unpackbits(np.frombuffer(raw, np.uint8, size * len(masked), pos).reshape(
        len(masked), size), axis=1, count=n, bitorder="little").view(np.bool_)
    pos += size * len(masked)
    planes = np.zeros((len(head), 8, n), np.uint8)
    at = 0
    for w in _WIDTHS:
        for r in np.flatnonzero(width == w).tolist():
            k = int(noise[r])
            planes[r, :k] = np.frombuffer(planes_raw, np.uint8, k * n, at).reshape(k, n)
            planes[r, k:w] = np.frombuffer(raw, np.uint8, (w - k) * n, pos).reshape(w - k, n)
            at, pos = at + k * n, pos + (w - k) * n
    if at != len(planes_raw):
        raise ValueError("raw planes do not add up")
    x = (np.ascontiguousarray(planes.transpose(0, 2, 1)).view("<u8").reshape(len(head), n)
         + head["base"].view(_U64)[:, None])
    delta = np.flatnonzero(flags & _DELTA)
    if len(delta) and n:
        x[delta] = _undelta(x[delta], head["origin"][delta].view(_U64), _starts(counts),
                            counts[counts > 0])
    signed = x.view(np.int64)
    signed[masked] = np.where(null, NULL, signed[masked])
    codes = signed[_NI:]
    if n and not ((codes >= -128).all() and (codes <= 127).all()):
        raise ValueError("a code column is out of range")
    return signed[:_NI], codes.astype(np.int8), pos


def _trailer(obj: Any, counts: I64) -> tuple[dict[int, list[tuple[int, str]]],
                                             dict[int, list[tuple[int, tuple[Hop, ...]]]]]:
    """The sparse columns of the trailer, per stream (stream and position checked)."""
    details_in, hops_in = obj
    details: dict[int, list[tuple[int, str]]] = {}
    hops: dict[int, list[tuple[int, tuple[Hop, ...]]]] = {}
    for s, k, text in details_in:
        if not isinstance(text, str):
            raise TypeError(f"error detail {text!r}")
        details.setdefault(_at(s, k, counts), []).append((k, text))
    for s, k, hs in hops_in:
        hops.setdefault(_at(s, k, counts), []).append((k, tuple(_hop(h) for h in hs)))
    return details, hops


def _at(s: Any, k: Any, counts: I64) -> int:
    if not (type(s) is int and type(k) is int and 0 <= s < len(counts)
            and 0 <= k < counts[s]):
        raise ValueError(f"sparse value at stream {s!r}, position {k!r}")
    return s


def _hop(h: Any) -> Hop:
    ttl, addr, rtt = h
    if type(ttl) is not int or not (addr is None or isinstance(addr, str)) or not (
            rtt is None or type(rtt) is int):
        raise TypeError(f"hop {h!r}")
    return Hop(ttl, addr, rtt)
