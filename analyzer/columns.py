"""Results in columnar form: one :class:`Block` per stream of a batch.

A *stream* is what stays constant over many results (probe, method, both ends, addresses,
Type-P per RFC 2330 §13, session: :data:`STREAM_FIELDS`); a block holds the per-packet fields of
a stream's results in a batch as numpy arrays, one array per field. The collector decodes wire
v2 bodies straight into blocks, computes a batch's rollups from the arrays
(:mod:`analyzer.rollup_columns`) and stores all streams of one method of a batch as one
compressed blob (:func:`encode_blob`, layout IXB2; stores written before kept one blob per
stream, :func:`encode_block`, IXB1), so the cost of ingest grows with neither one Python object
and one table row per result nor one per stream.

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
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from ixmeter.errors import RecordError
from ixmeter.record import ErrorKind, Hop, Method, Result, Status, TimestampSource, TypeP
from ixmeter.wire import ERROR_CODES, MAX_RESULTS, STATUS_CODES, TS_SOURCE_CODES

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

StreamIdent = tuple[Any, ...]
I64 = npt.NDArray[np.int64]
I8 = npt.NDArray[np.int8]


@dataclass(frozen=True, eq=False, slots=True)
class Block:
    """One stream's results of one batch, column by column (see the module docstring)."""

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
        return sum(b.n for b in self.blocks)


def ident_of(r: Result) -> StreamIdent:
    """The stream identity of a result, in :data:`STREAM_FIELDS` order."""
    t = r.type_p
    return (r.probe_id, r.method._value_, r.src_site, r.src_carrier, r.dst_site, r.dst_carrier,
            r.src_addr, r.dst_addr, t.protocol, t.ip_version, t.size, t.dscp, t.dst_port,
            r.session)


def path_and_type_p(ident: StreamIdent) -> tuple[str, str]:
    """The rollup labels of a stream: directed path id and Type-P key."""
    (_p, _m, src_site, src_carrier, dst_site, dst_carrier, _sa, _da, protocol, ip_version,
     size, dscp, dst_port, _s) = ident
    return (f"{src_site}/{src_carrier}>{dst_site}/{dst_carrier}",
            TypeP(protocol, ip_version, size, dscp, dst_port).key())


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
    (probe_id, method, src_site, src_carrier, dst_site, dst_carrier, src_addr, dst_addr,
     protocol, ip_version, size, dscp, dst_port, session) = block.ident
    type_p, m = TypeP(protocol, ip_version, size, dscp, dst_port), Method(method)
    details, hops = dict(block.error_detail), dict(block.hops)
    cols = [getattr(block, c).tolist() for c in INT_COLUMNS[1:] + CODE_COLUMNS]
    out = []
    for k, (seq, sent, tmax, rtt, fwd, bwd, cerr, dup, ttl, v, status, ts, error, ss, ds) in (
            enumerate(zip(*cols, strict=True))):
        out.append(Result(
            probe_id=probe_id, method=m, src_site=src_site, src_carrier=src_carrier,
            dst_site=dst_site, dst_carrier=dst_carrier, src_addr=src_addr, dst_addr=dst_addr,
            type_p=type_p, seq=seq, sent_at_ns=sent, status=_STATUSES[status], tmax_ns=tmax,
            ts_source=_TSS[ts], rtt_ns=_none(rtt), fwd_ns=_none(fwd), bwd_ns=_none(bwd),
            clock_error_ns=_none(cerr), src_synced=None if ss < 0 else bool(ss),
            dst_synced=None if ds < 0 else bool(ds),
            error=None if error < 0 else _ERRS[error], error_detail=details.get(k), dup=dup,
            reply_ttl=_none(ttl), session=session, hops=hops.get(k, ()), v=v))
    return out


def _none(value: int) -> int | None:
    return None if value == NULL else value


# -- storage codec ----------------------------------------------------------------------------
MAGIC = b"IXB1"
_HEAD = struct.Struct("<4sI")  # magic, n


def encode_block(block: Block) -> bytes:
    """The stored form of a block: magic and n, then zlib (level 1) of the int64 columns, the
    int8 columns (little-endian, :data:`INT_COLUMNS` then :data:`CODE_COLUMNS` order) and a JSON
    trailer with the sparse columns. Deterministic: the same block gives the same bytes."""
    parts = [getattr(block, c).astype("<i8", copy=False).tobytes() for c in INT_COLUMNS]
    parts += [getattr(block, c).astype("i1", copy=False).tobytes() for c in CODE_COLUMNS]
    sparse = [[list(p) for p in block.error_detail],
              [[k, [[h.ttl, h.addr, h.rtt_ns] for h in hs]] for k, hs in block.hops]]
    parts.append(orjson.dumps(sparse))
    return _HEAD.pack(MAGIC, block.n) + zlib.compress(b"".join(parts), 1)


def decode_block(ident: StreamIdent, data: bytes) -> Block:
    """Inverse of :func:`encode_block`; raises :class:`RecordError` for bytes it cannot read."""
    try:
        magic, n = _HEAD.unpack_from(data)
        if magic != MAGIC:
            raise ValueError(f"magic {magic!r}")
        raw = zlib.decompress(data[_HEAD.size:])
        cols: dict[str, Any] = {}
        pos = 0
        for c in INT_COLUMNS:
            cols[c] = np.frombuffer(raw, "<i8", n, pos).astype(np.int64)
            pos += 8 * n
        for c in CODE_COLUMNS:
            cols[c] = np.frombuffer(raw, "i1", n, pos).astype(np.int8)
            pos += n
        details, hops = orjson.loads(raw[pos:])
        return Block(ident=tuple(ident), **cols,
                     error_detail=tuple((int(k), str(s)) for k, s in details),
                     hops=tuple((int(k), tuple(Hop(*h) for h in hs)) for k, hs in hops))
    except (ValueError, TypeError, struct.error, zlib.error, orjson.JSONDecodeError) as exc:
        raise RecordError(f"stored block: cannot decode ({exc})") from None


def blocks_digest(items: Iterable[tuple[str, bytes]]) -> bytes:
    """sha256 over a batch's stored blocks in order: for each, the stream key (UTF-8), a NUL,
    the blob's length (8 bytes big-endian) and the blob. Editing a block or its stream changes
    it; ``ixmeter verify`` recomputes it from the stored blobs."""
    h = hashlib.sha256()
    for skey, data in items:
        h.update(skey.encode())
        h.update(b"\0")
        h.update(struct.pack(">Q", len(data)))
        h.update(data)
    return h.digest()


def blobs_digest(items: Iterable[tuple[str, Sequence[str], bytes]]) -> bytes:
    """sha256 over a batch's stored blobs in order (methods in code-point order): for each,
    the method (UTF-8) and a NUL, the number of its streams (8 bytes big-endian), each
    stream's key (UTF-8) and a NUL, the blob's length (8 bytes big-endian) and the blob.
    Editing a blob, its method, its list of streams or a stream changes it; ``ixmeter
    verify`` recomputes it from the stored blobs and stream rows."""
    h = hashlib.sha256()
    for method, skeys, data in items:
        h.update(method.encode() + b"\0" + struct.pack(">Q", len(skeys)))
        for skey in skeys:
            h.update(skey.encode() + b"\0")
        h.update(struct.pack(">Q", len(data)))
        h.update(data)
    return h.digest()


def check_probe(batch_probe: str, blocks: Sequence[Block]) -> None:
    """Every block must be the batch's probe's (a probe writes only its own results)."""
    for i, b in enumerate(blocks):
        if b.ident[0] != batch_probe:
            raise RecordError(f"streams[{i}].probe_id: {b.ident[0]!r} is not the batch's probe")



# -- blob codec: all streams of one method of a batch in one blob ------------------------------
BLOB_MAGIC = b"IXB2"
_BLOB_HEAD = struct.Struct("<4sII")  # magic, streams, results
_COLUMN_HEAD = np.dtype([("flags", "u1"), ("width", "u1"), ("base", "<i8"), ("origin", "<i8")])
_HEADS = struct.Struct("<" + "BBqq" * len(INT_COLUMNS + CODE_COLUMNS))  # _COLUMN_HEAD each
_DELTA, _MASKED = 1, 2  # column flags
DENSE_COLUMNS = INT_COLUMNS + CODE_COLUMNS
DELTA_COLUMNS = ("idx", "seq", "sent_at_ns")  # the first rows of INT_COLUMNS
_ND = len(DELTA_COLUMNS)
_SENT = INT_COLUMNS.index("sent_at_ns")
_NULLABLE_ROWS = [INT_COLUMNS.index(c) for c in INT_COLUMNS if c in NULLABLE_INTS]
_WIDTHS = (1, 2, 4, 8)  # and 0: every value is the base
_WIDTH_OF = np.array((0, *_WIDTHS), np.int64)
_SPAN_LIMITS = np.array((0, 0xFF, 0xFFFF, 0xFFFF_FFFF), np.uint64)  # the span each width holds
_U64 = np.uint64
U64 = npt.NDArray[np.uint64]
if (INT_COLUMNS[:_ND] != DELTA_COLUMNS or NULLABLE_INTS & set(DELTA_COLUMNS)
        or _COLUMN_HEAD.itemsize * len(DENSE_COLUMNS) != _HEADS.size):
    raise ImportError("delta columns must lead INT_COLUMNS and never be null")


def encode_blob(blocks: Sequence[Block]) -> bytes:
    """The stored form of several streams' results (one method of a batch), layout ``IXB2``:
    magic, stream count and result count (``<4sII``), then zlib (level 1) of

    - each stream's result count (uint32);
    - a head per column of :data:`DENSE_COLUMNS`: flags (1: delta, 2: nulls masked), width,
      base, origin (``<BBqq``);
    - the null masks of the masked columns, in column order (``np.packbits``, little-endian
      bit order);
    - the columns of width 1, then 2, 4 and 8 bytes, each in column order: every column over
      all streams concatenated, stored as ``value - base`` in its width (unsigned, little
      endian; width 0: every value is the base);
    - a JSON trailer ``[[[stream, position, detail]...], [[stream, position, hops]...]]``.

    Frame of reference: ``base`` is a column's smallest value and its width the narrowest that
    holds its span, chosen per column and blob. The :data:`DELTA_COLUMNS` are stored as
    differences where that needs a narrower width: each result minus the previous one of its
    stream, a stream's first minus the previous stream's first, the very first minus
    ``origin`` (modulo 2**64). A nullable column with both nulls and values has a mask and its
    nulls stored as its largest value; a column of nulls only is the constant :data:`NULL`.
    Deterministic: the same blocks give the same bytes."""
    return _encode(_joined(blocks, INT_COLUMNS, np.int64),
                   _joined(blocks, CODE_COLUMNS, np.int8), blocks)[0]


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
    methods. Uses ``batch.dense`` when the decoder kept it."""
    groups: dict[str, list[int]] = {}
    for k, b in enumerate(batch.blocks):
        if b.n:
            groups.setdefault(b.ident[1], []).append(k)
    out = []
    for method in sorted(groups):
        blocks = tuple(batch.blocks[k] for k in groups[method])
        if batch.dense is None:
            ints, codes = _joined(blocks, INT_COLUMNS, np.int64), _joined(
                blocks, CODE_COLUMNS, np.int8)
        else:
            sizes = np.fromiter((b.n for b in blocks), np.int64, len(blocks))
            at = np.array([batch.dense.at[k] for k in groups[method]], np.int64)
            where = np.repeat(at - (np.cumsum(sizes) - sizes), sizes) + np.arange(
                int(sizes.sum()))
            ints, codes = batch.dense.ints[:, where], batch.dense.codes[:, where]
        data, first, last = _encode(ints, codes, blocks)
        out.append(MethodBlob(method, blocks, data, ints.shape[1], first, last))
    return out


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


def _encode(ints: I64, codes: I8, blocks: Sequence[Block]) -> tuple[bytes, int, int]:
    """:func:`encode_blob` of ``blocks`` whose dense columns are the rows of ``ints`` and
    ``codes`` (streams one after the other, in ``blocks`` order), and the first and last send
    time (0, 0 without results). Vectorised across the columns: a few numpy calls per blob,
    the choices per column made on Python lists."""
    counts = np.fromiter((b.n for b in blocks), np.int64, len(blocks))
    n, nc = ints.shape[1], len(DENSE_COLUMNS)
    x = np.concatenate((ints, codes.astype(np.int64)))
    flags, origins = [0] * nc, [0] * nc
    masks, rows, groups, span = b"", list(range(nc)), [], (0, 0)
    if n:
        masks = _mask_nulls(x, flags)
        y = np.concatenate((x, _deltas(x[:_ND], _starts(counts))))  # rows nc...: differences
        lo, hi = y.min(axis=1), y.max(axis=1)
        width = _widths(lo, hi).tolist()
        span = (int(lo[_SENT]), int(hi[_SENT]))
        for i in range(_ND):
            if width[nc + i] < width[i]:  # delta-encoded where it pays
                flags[i], origins[i], rows[i] = _DELTA, int(x[i, 0]), nc + i
        base, width = lo[rows], [width[r] for r in rows]
        for w in _WIDTHS:
            if picked := [k for k in range(nc) if width[k] == w]:
                stored = y[[rows[k] for k in picked]].view(_U64) - base[picked].view(
                    _U64)[:, None]
                groups.append(stored.astype(f"<u{w}").tobytes())
        heads = _HEADS.pack(*chain.from_iterable(zip(flags, width, base.tolist(), origins,
                                                     strict=True)))
    else:
        heads = _HEADS.pack(*[0] * 4 * nc)
    payload = b"".join([counts.astype("<u4").tobytes(), heads, masks, *groups,
                        orjson.dumps(_sparse(blocks))])
    return _BLOB_HEAD.pack(BLOB_MAGIC, len(blocks), n) + zlib.compress(payload, 1), *span


def _mask_nulls(x: I64, flags: list[int]) -> bytes:
    """Flag the nullable columns of ``x`` holding both nulls and values, store their nulls as
    the column's largest value and return their null masks (a column of nulls only stays
    the constant :data:`NULL`)."""
    null = x[_NULLABLE_ROWS] == NULL
    n = x.shape[1]
    mixed = [k for k, c in enumerate(np.count_nonzero(null, axis=1).tolist()) if 0 < c < n]
    if not mixed:
        return b""
    rows = [_NULLABLE_ROWS[k] for k in mixed]
    where, sub = null[mixed], x[rows]
    x[rows] = np.where(where, sub.max(axis=1)[:, None], sub)
    for r in rows:
        flags[r] = _MASKED
    return bytes(np.packbits(where, axis=1, bitorder="little"))


def _widths(lo: I64, hi: I64) -> I64:
    """The narrowest width (bytes) holding ``hi - lo`` (modulo 2**64), per column."""
    out: I64 = _WIDTH_OF[np.searchsorted(_SPAN_LIMITS, hi.view(_U64) - lo.view(_U64))]
    return out


def _starts(counts: I64) -> I64:
    """Where each stream with results starts in the concatenated columns."""
    out: I64 = (np.cumsum(counts) - counts)[counts > 0]
    return out


def _deltas(x: I64, starts: I64) -> I64:
    """Each value minus the previous of its stream; a stream's first minus the previous
    stream's first; 0 for the very first (modulo 2**64, as the inverse adds modulo 2**64)."""
    u = x.view(_U64)
    d = np.diff(u, axis=1, prepend=u[:, :1])
    if len(starts) > 1:
        d[:, starts[1:]] = u[:, starts[1:]] - u[:, starts[:-1]]
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
        magic, k, n = _BLOB_HEAD.unpack_from(data)
        if magic != BLOB_MAGIC:
            raise ValueError(f"magic {magic!r}")
        if k != len(idents):
            raise ValueError(f"{k} streams stored, {len(idents)} named")
        if n > MAX_RESULTS:
            raise ValueError(f"{n} results (a batch has at most {MAX_RESULTS})")
        raw = zlib.decompress(data[_BLOB_HEAD.size:])
        counts = np.frombuffer(raw, "<u4", k).astype(np.int64)
        if int(counts.sum()) != n:
            raise ValueError("stream counts do not add up")
        head = np.frombuffer(raw, _COLUMN_HEAD, len(DENSE_COLUMNS), 4 * k)
        ints, codes, pos = _columns_of(raw, 4 * k + head.nbytes, head, counts)
        details, hops = _trailer(orjson.loads(raw[pos:]), counts)
    except (ValueError, TypeError, struct.error, zlib.error, orjson.JSONDecodeError) as exc:
        raise RecordError(f"stored blob: cannot decode ({exc})") from None
    ends = np.cumsum(counts).tolist()
    out = []
    for s, (ident, a, b) in enumerate(zip(idents, [0, *ends], ends, strict=False)):
        fields: list[Any] = [tuple(ident), *ints[:, a:b], *codes[:, a:b],
                             tuple(details.get(s, ())), tuple(hops.get(s, ()))]
        out.append(Block(*fields))
    return tuple(out)


def _columns_of(raw: bytes, pos: int, head: Any, counts: I64) -> tuple[I64, I8, int]:
    """The integer and code columns stored at ``pos`` (one row each), and the position after
    them."""
    n = int(counts.sum())
    flags, width = head["flags"], head["width"]
    if not (np.isin(flags, (0, _DELTA, _MASKED)).all() and np.isin(width, _WIDTH_OF).all()
            and not (flags[_ND:] & _DELTA).any()):
        raise ValueError("column heads")
    masked = np.flatnonzero(flags & _MASKED)
    size = (n + 7) // 8
    null = np.unpackbits(np.frombuffer(raw, np.uint8, size * len(masked), pos).reshape(
        len(masked), size), axis=1, count=n, bitorder="little").view(np.bool_)
    pos += size * len(masked)
    stored = np.zeros((len(head), n), _U64)
    for w in _WIDTHS:
        rows = np.flatnonzero(width == w)
        stored[rows] = np.frombuffer(raw, f"<u{w}", n * len(rows), pos).reshape(len(rows), n)
        pos += w * n * len(rows)
    x = stored + head["base"].view(_U64)[:, None]
    delta = np.flatnonzero(flags & _DELTA)
    if len(delta) and n:
        x[delta] = _undelta(x[delta], head["origin"][delta].view(_U64), _starts(counts),
                            counts[counts > 0])
    signed = x.view(np.int64)
    signed[masked] = np.where(null, NULL, signed[masked])
    codes = signed[len(INT_COLUMNS):]
    if n and not ((codes >= -128).all() and (codes <= 127).all()):
        raise ValueError("a code column is out of range")
    return signed[:len(INT_COLUMNS)], codes.astype(np.int8), pos


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
