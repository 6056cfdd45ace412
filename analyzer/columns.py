"""Results in columnar form: one :class:`Block` per stream of a batch.

A *stream* is what stays constant over many results (probe, method, both ends, addresses,
Type-P per RFC 2330 §13, session: :data:`STREAM_FIELDS`); a block holds the per-packet fields of
a stream's results in a batch as numpy arrays, one array per field. The collector decodes wire
v2 bodies straight into blocks, computes a batch's rollups from the arrays
(:mod:`analyzer.rollup_columns`) and stores each block as one compressed blob
(:func:`encode_block`), so the cost of ingest no longer grows with one Python object and one
table row per result.

Nulls: integer columns use :data:`NULL` (the smallest int64), code and flag columns -1. Codes
index :data:`STATUS`, :data:`TS_SOURCES` and :data:`ERRORS`; flags are 0/1. Two sparse
columns, ``error_detail`` and ``hops``, are ``(position, value)`` pairs for the results that
have one. ``idx`` is each result's index in its batch (the order the probe sent them in), so
blocks of a batch rebuild the batch's result sequence exactly.

Pure: no I/O (ARCHITECTURE: codecs import no socket, no clock).
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from ixmeter.errors import RecordError
from ixmeter.record import ErrorKind, Hop, Method, Result, Status, TimestampSource, TypeP
from ixmeter.wire import ERROR_CODES, STATUS_CODES, TS_SOURCE_CODES

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


# Block's slots without its frozen __setattr__: the generated __init__ stores each field
# directly, where Block's goes through object.__setattr__ 19 times (4x slower, which counts
# at 100 blocks per batch). Filled, the object becomes a Block by assigning __class__, which
# Python allows because the slot layouts are identical (as ixmeter.record._UnfrozenResult).
_UnfrozenBlock = dataclasses.make_dataclass(
    "_UnfrozenBlock", [(f.name, f.type) for f in dataclasses.fields(Block)], slots=True,
    eq=False, repr=False)


def block(ident: StreamIdent, columns: Sequence[npt.NDArray[Any]],
          error_detail: tuple[tuple[int, str], ...], hops: tuple[tuple[int, tuple[Hop, ...]], ...]
          ) -> Block:
    """``Block(ident, *columns, error_detail, hops)``, made faster; ``columns`` in
    :data:`INT_COLUMNS` then :data:`CODE_COLUMNS` order."""
    out = _UnfrozenBlock(ident, *columns, error_detail, hops)
    out.__class__ = Block
    return out  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class ColumnBatch:
    """A batch as blocks: what the collector writes (``Store.write_blocks``)."""

    probe_id: str
    batch_id: str
    blocks: tuple[Block, ...]

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


def check_probe(batch_probe: str, blocks: Sequence[Block]) -> None:
    """Every block must be the batch's probe's (a probe writes only its own results)."""
    for i, b in enumerate(blocks):
        if b.ident[0] != batch_probe:
            raise RecordError(f"streams[{i}].probe_id: {b.ident[0]!r} is not the batch's probe")
