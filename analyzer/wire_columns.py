"""The one body decoder: a batch body into the :class:`analyzer.columns.Block`\\ s the store
writes, every rule of the format checked on the way.

bytes -> :func:`ixmeter.core.wire.parse_body` (msgspec: JSON syntax, types, keys, int64) -> the
counts, the envelope and the streams' identities -> the dense columns as two int64 matrices,
one row per column (:data:`analyzer.columns.NULL` for null, a flag as 0/1) -> the value rules
of :mod:`ixmeter.core.rules` on whole rows (:data:`ixmeter.core.rules.BOUNDS` with
:func:`ixmeter.core.rules.outside`, then ``idx``, then
:func:`ixmeter.core.rules.result_faults`) -> the
sparse columns -> one block per stream, its columns views of the matrices' rows
(:class:`analyzer.columns.Dense`). The same rules, on scalars, make a
:class:`ixmeter.core.record.Result`; so a body decodes exactly when each of its results, read one by
one, would make a valid record (``tests/analyzer/wire_oracle.py`` is that reading).

Errors: only :class:`ixmeter.core.errors.RecordError`, ``field '<path>': <reason>`` with the path of
the first value that breaks a rule, in the order of the steps above (``streams[2].rtt_ns[17]``;
``streams[0].tmax_ns`` where the column was sent as one value), or ``body: ...``.

Pure: no I/O.
"""

from __future__ import annotations

import bisect
import dataclasses
import operator
from collections.abc import Sequence
from itertools import chain
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt

from analyzer.columns import (
    CODE_COLUMNS,
    INT_COLUMNS,
    NULL,
    Block,
    ColumnBatch,
    Dense,
    StreamIdent,
)
from ixmeter.core.errors import RecordError
from ixmeter.core.record import Hop
from ixmeter.core.rules import (
    BOUNDS,
    DETAIL_MAX_CHARS,
    HOP_ADDR_MAX_CHARS,
    HOP_BOUNDS,
    IDENT_MAX_CHARS,
    INT64_MAX,
    MAX_RESULTS,
    METHOD_VALUES,
    Bound,
    outside,
    result_faults,
    text_problem,
    type_p_problem,
)
from ixmeter.core.wire import (
    DENSE_COLUMNS,
    IDENT_STRINGS,
    NULLABLE_COLUMNS,
    WireBody,
    WireStream,
    parse_body,
)

I64 = npt.NDArray[np.int64]
_BLOCK_FIELDS = ("ident", *INT_COLUMNS, *CODE_COLUMNS, "error_detail", "hops")
if (DENSE_COLUMNS != INT_COLUMNS + CODE_COLUMNS
        or tuple(f.name for f in dataclasses.fields(Block)) != _BLOCK_FIELDS):
    raise ImportError("ixmeter.core.wire's columns are not analyzer.columns.Block's")
_ROW = {name: r for r, name in enumerate(DENSE_COLUMNS)}  # rows of ints, then of small
_NI = len(INT_COLUMNS)
_HEAD = operator.attrgetter("method", *IDENT_STRINGS, "session", "type_p")
_TYPE_P = operator.attrgetter("protocol", "ip_version", "size", "dscp", "dst_port")
_DENSE = operator.attrgetter(*DENSE_COLUMNS)
_RUN_MAX = INT64_MAX - MAX_RESULTS  # an idx run from here may pass int64


def decode_body(body: bytes) -> ColumnBatch:
    """A batch body as blocks, one per stream in the order of its first result; raises
    :class:`RecordError` naming the first value that breaks a rule."""
    parsed = parse_body(body)
    _check_envelope(parsed)
    streams = parsed.streams
    ns = [s.n for s in streams]
    _check_counts(ns, len(body))
    if not streams:
        return ColumnBatch(parsed.probe_id, parsed.batch_id, ())
    at = _Locator(streams, ns)
    idents = _idents(parsed.probe_id, streams)
    ints, small = _matrices(streams, at)
    _check_bounds(ints, small, at)
    _check_idx(ints[_ROW["idx"]], at)
    _check_results(ints, small, at)
    details = _details(streams)
    hops = _hops(streams, ints[_ROW["tmax_ns"]], at)
    codes = np.where(small == NULL, -1, small).astype(np.int8)
    return ColumnBatch(parsed.probe_id, parsed.batch_id,
                       *_blocks(idents, at, ints, codes, details, hops))


class _Locator:
    """Where batch-wide value ``pos`` (streams' values one after the other, body order) was
    sent, for the error that names it."""

    def __init__(self, streams: Sequence[WireStream], ns: list[int]) -> None:
        self.streams, self.ns = streams, ns
        self.starts = [0, *np.cumsum(ns)[:-1].tolist()]
        self.total = sum(ns)

    def fail(self, column: str, pos: int, reason: str, *, indexed: bool = False) -> NoReturn:
        """Raise for value ``pos`` of ``column``: ``streams[i].column[k]``, or
        ``streams[i].column`` where the stream sent the column as one value (unless
        ``indexed``: a rule about result ``k``)."""
        i = bisect.bisect_right(self.starts, pos) - 1
        where = f"streams[{i}].{column}"
        if indexed or type(getattr(self.streams[i], column)) is list:
            where += f"[{pos - self.starts[i]}]"
        raise RecordError(f"field {where!r}: {reason}")


# -- counts, envelope, identities ---------------------------------------------------------------
def _check_envelope(parsed: WireBody) -> None:
    problem = text_problem((parsed.batch_id, parsed.probe_id), IDENT_MAX_CHARS)
    if problem is not None:
        raise RecordError(f"field {('batch_id', 'probe_id')[problem[0]]!r}: {problem[1]}")


def _check_counts(ns: list[int], size: int) -> None:
    """At most :data:`MAX_RESULTS` results, and no more results than ``size`` bytes (a body of
    single values must not make the decoder expand thousands of results from a few bytes)."""
    total = sum(ns)
    if total > MAX_RESULTS:
        i = int(np.searchsorted(np.cumsum(ns), MAX_RESULTS, side="right"))
        raise RecordError(f"field 'streams[{i}].n': the batch would hold more than "
                          f"{MAX_RESULTS} results")
    if total > size:
        raise RecordError(f"field 'streams': {total} results claimed in a body of {size} bytes "
                          "(at most one result per byte)")


def _idents(probe_id: str, streams: Sequence[WireStream]) -> list[StreamIdent]:
    """Each stream's identity (``analyzer.columns.STREAM_FIELDS`` order), every identity key
    checked, and no two streams alike."""
    heads = list(map(_HEAD, streams))
    methods, *names, sessions, type_ps = zip(*heads, strict=True)
    if not METHOD_VALUES.issuperset(methods):
        i = next(i for i, m in enumerate(methods) if m not in METHOD_VALUES)
        raise RecordError(f"field 'streams[{i}].method': {methods[i]!r} is not one of "
                          f"{', '.join(sorted(METHOD_VALUES))}")
    strings = list(chain.from_iterable(zip(*names, strict=True)))  # stream by stream
    problem = text_problem(strings, IDENT_MAX_CHARS)
    if problem is not None:
        i, k = divmod(problem[0], len(IDENT_STRINGS))
        raise RecordError(f"field 'streams[{i}].{IDENT_STRINGS[k]}': {problem[1]}")
    problem = text_problem(sessions, IDENT_MAX_CHARS, empty_ok=True)
    if problem is not None:
        raise RecordError(f"field 'streams[{problem[0]}].session': {problem[1]}")
    fields = list(map(_TYPE_P, type_ps))
    for value in dict.fromkeys(fields):
        tp_problem = type_p_problem(*value)
        if tp_problem is not None:
            raise RecordError(f"field 'streams[{fields.index(value)}].type_p.{tp_problem[0]}': "
                              f"{tp_problem[1]}")
    idents = [StreamIdent._make((probe_id, m, *strs, *tp, s)) for m, strs, tp, s in
              zip(methods, zip(*names, strict=True), fields, sessions, strict=True)]
    if len(set(idents)) < len(idents):
        seen: dict[StreamIdent, int] = {}
        for i, ident in enumerate(idents):
            if ident in seen:
                raise RecordError(f"field 'streams[{i}]': the same stream as "
                                  f"streams[{seen[ident]}]")
            seen[ident] = i
    return idents


# -- dense columns ------------------------------------------------------------------------------
def _matrices(streams: Sequence[WireStream], at: _Locator) -> tuple[I64, I64]:
    """The dense columns, one row each with one value per result in body order: the
    :data:`INT_COLUMNS`, then the :data:`CODE_COLUMNS` (apart, so that blocks do not keep
    them as int64); a list of other than ``n`` values raises."""
    sent = zip(*map(_DENSE, streams), strict=True)
    ns = np.array(at.ns, dtype=np.intp)
    ints = np.empty((_NI, at.total), dtype=np.int64)
    small = np.empty((len(CODE_COLUMNS), at.total), dtype=np.int64)
    for row, name, values in zip([*ints, *small], DENSE_COLUMNS, sent, strict=True):
        row[:] = _column(name, values, ns, at)
    return ints, small


def _column(name: str, sent: tuple[Any, ...], ns: npt.NDArray[np.intp], at: _Locator) -> I64:
    """Column ``name`` from each stream's value as sent (one value or a list of ``n``)."""
    types = list(map(type, sent))
    lists = types.count(list)
    if not lists:
        return _repeated(name, sent, ns, at)
    if lists == len(sent):
        if list(map(len, sent)) != at.ns:
            _wrong_length(name, sent, at)
        return _numbers(sent, at.total, name in NULLABLE_COLUMNS)
    pieces: list[Any] = []
    for value, kind, n in zip(sent, types, at.ns, strict=True):
        if kind is list:
            if len(value) != n:
                _wrong_length(name, sent, at)
            pieces.append(value)
        elif name == "idx" and value <= _RUN_MAX:  # past it, its first value is reported
            pieces.append(range(value, value + n))
        else:
            pieces.append([NULL if value is None else value] * n)
    return _numbers(pieces, at.total, name in NULLABLE_COLUMNS)


def _wrong_length(name: str, sent: tuple[Any, ...], at: _Locator) -> NoReturn:
    i = next(i for i, v in enumerate(sent) if type(v) is list and len(v) != at.ns[i])
    raise RecordError(f"field 'streams[{i}].{name}': expected {at.ns[i]} values, "
                      f"got {len(sent[i])}")


def _numbers(pieces: Sequence[Sequence[Any]], total: int, nullable: bool) -> I64:
    """The JSON values of ``pieces``, one after the other, as int64: :data:`NULL` for null, a
    flag 0/1 (msgspec checked their types and that each integer is within
    ``-(2**63-1) .. 2**63-1``). A nullable column is mapped at once (most have nulls: trying
    without first costs more than it saves)."""
    values = chain.from_iterable(pieces)
    if nullable:
        return np.fromiter([NULL if x is None else x for x in values], np.int64, total)
    return np.fromiter(values, np.int64, total)


def _repeated(name: str, sent: tuple[Any, ...], ns: npt.NDArray[np.intp], at: _Locator
              ) -> I64:
    """The values sent once per stream, each repeated ``n`` times; an ``idx`` run ``i``
    stands for ``i, i+1, ..., i+n-1`` (past int64 it wraps below 0 and fails its range)."""
    out = np.repeat(_numbers((sent,), len(sent), name in NULLABLE_COLUMNS), ns)
    if name == "idx":
        out += np.arange(at.total) - np.repeat(at.starts, ns)
    return out


# -- the value rules on whole columns -------------------------------------------------------------
def _check_bounds(ints: I64, small: I64, at: _Locator) -> None:
    """:data:`ixmeter.core.rules.BOUNDS` in their order; the first value outside its range
    raises."""
    for b in BOUNDS:
        x = _row(ints, small, b.column)
        high = _row(ints, small, b.high) if isinstance(b.high, str) else b.high
        bad = outside(x, b.low, high)
        if b.column in NULLABLE_COLUMNS:
            bad &= x != NULL
        if bad.any():
            _fail_bound(b, x, high, int(np.argmax(bad)), at)


def _row(ints: I64, small: I64, name: str) -> I64:
    r = _ROW[name]
    out: I64 = ints[r] if r < _NI else small[r - _NI]
    return out


def _fail_bound(b: Bound, x: I64, high: Any, pos: int, at: _Locator) -> NoReturn:
    limit = int(high[pos]) if isinstance(high, np.ndarray) else high
    at.fail(b.column, pos, b.message(int(x[pos]), limit))


def _check_idx(idx: I64, at: _Locator) -> None:
    """Each result's position in the batch: ``0..N-1``, increasing within a stream, and no
    position twice (so every position exactly once)."""
    total = at.total
    bad = outside(idx, 0, total - 1)
    if bad.any():
        pos = int(np.argmax(bad))
        at.fail("idx", pos, f"{idx[pos]} is not a position in the batch (0..{total - 1})")
    falls = idx[1:] <= idx[:-1]
    falls[np.array(at.starts[1:], dtype=np.intp) - 1] = False  # a new stream may start lower
    if falls.any():
        pos = int(np.argmax(falls)) + 1
        at.fail("idx", pos, f"must increase within a stream, got {idx[pos]} after "
                            f"{idx[pos - 1]}")
    seen = np.zeros(total, dtype=np.bool_)
    seen[idx] = True
    if not seen.all():
        order = np.argsort(idx, kind="stable")
        twice = order[1:][idx[order][1:] == idx[order][:-1]]
        pos = int(twice.min())
        at.fail("idx", pos, f"position {idx[pos]} is in the batch twice")


def _check_results(ints: I64, small: I64, at: _Locator) -> None:
    """:func:`ixmeter.core.rules.result_faults` over all results; the first broken rule (then the
    first result in body order) raises."""
    faults = result_faults(_row(ints, small, "status"), _row(ints, small, "rtt_ns") != NULL,
                           _row(ints, small, "fwd_ns") != NULL,
                           _row(ints, small, "error") != NULL)
    for column, reason, broken in faults:
        if broken.any():
            at.fail(column, int(np.argmax(broken)), reason, indexed=True)


# -- sparse columns -------------------------------------------------------------------------------
Details = list[tuple[tuple[int, str], ...]]
Hops = list[tuple[tuple[int, tuple[Hop, ...]], ...]]


def _positions(pairs: Sequence[tuple[Any, ...]], n: int, where: str) -> None:
    """The ``k`` of a sparse column's pairs: increasing, each in ``0..n-1``."""
    low = 0
    for j, pair in enumerate(pairs):
        k = pair[0]
        if not low <= k < n:
            raise RecordError(f"field '{where}[{j}][0]': expected an integer in "
                              f"{low}..{n - 1} (increasing), got {k}")
        low = k + 1


def _details(streams: Sequence[WireStream]) -> Details:
    """Each stream's ``error_detail`` pairs, positions and texts checked."""
    out: Details = []
    for i, s in enumerate(streams):
        pairs = s.error_detail
        if pairs:
            _positions(pairs, s.n, f"streams[{i}].error_detail")
            problem = text_problem([text for _k, text in pairs], DETAIL_MAX_CHARS,
                                   empty_ok=True)
            if problem is not None:
                raise RecordError(f"field 'streams[{i}].error_detail[{problem[0]}][1]': "
                                  f"{problem[1]}")
        out.append(tuple(pairs))
    return out


def _hops(streams: Sequence[WireStream], tmax: I64, at: _Locator) -> Hops:
    """Each stream's ``hops`` pairs; every hop's TTL, RTT (:data:`ixmeter.core.rules.HOP_BOUNDS`,
    its result's Tmax) and address checked over all hops at once."""
    out: Hops = []
    located: list[tuple[str, int]] = []  # each hop: its path, its result's batch position
    for i, s in enumerate(streams):
        if not s.hops:
            out.append(())
            continue
        _positions(s.hops, s.n, f"streams[{i}].hops")
        out.append(tuple((k, tuple(Hop(*h) for h in hops)) for k, hops in s.hops))
        located += [(f"streams[{i}].hops[{j}][1][{h}]", at.starts[i] + k)
                    for j, (k, hops) in enumerate(s.hops) for h in range(len(hops))]
    if located:
        _check_hops([h for pairs in out for _k, hops in pairs for h in hops], located, tmax)
    return out


def _check_hops(hops: list[Hop], located: list[tuple[str, int]], tmax: I64) -> None:
    result_tmax = tmax[np.array([pos for _path, pos in located], dtype=np.intp)]
    for b, offset in zip(HOP_BOUNDS, (0, 2), strict=True):
        x = np.array([NULL if (v := getattr(h, b.column)) is None else v for h in hops],
                     dtype=np.int64)
        high = result_tmax if isinstance(b.high, str) else b.high
        bad = outside(x, b.low, high) & (x != NULL)
        if bad.any():
            j = int(np.argmax(bad))
            limit = int(high[j]) if isinstance(high, np.ndarray) else high
            raise RecordError(f"field '{located[j][0]}[{offset}]': "
                              f"{b.message(int(x[j]), limit)}")
    addrs = [(j, h.addr) for j, h in enumerate(hops) if h.addr is not None]
    problem = text_problem([a for _j, a in addrs], HOP_ADDR_MAX_CHARS)
    if problem is not None:
        raise RecordError(f"field '{located[addrs[problem[0]][0]][0]}[1]': {problem[1]}")


# -- blocks ---------------------------------------------------------------------------------------
def _blocks(idents: list[StreamIdent], at: _Locator, ints: I64,
            codes: npt.NDArray[np.int8], details: Details, hops: Hops
            ) -> tuple[tuple[Block, ...], Dense]:
    """One block per stream, its columns views of the rows of ``ints`` and ``codes``, in the
    order of each stream's first result; and those matrices as :class:`Dense` (the blob
    encoder gathers a method's results from them with one index)."""
    rows, ns, starts = [*ints, *codes], at.ns, at.starts
    if len(set(ns)) == 1:  # streams of equal length: each row viewed as one line per stream
        columns = [list(row.reshape(len(ns), -1)) for row in rows]
    else:
        spans = [slice(a, a + n) for a, n in zip(starts, ns, strict=True)]
        columns = [[row[span] for span in spans] for row in rows]
    per_stream = list(zip(*columns, strict=True))
    order = np.argsort(ints[_ROW["idx"]][starts]).tolist()
    fields: list[list[Any]] = [[idents[i], *per_stream[i], details[i], hops[i]] for i in order]
    return (tuple(Block(*f) for f in fields),
            Dense(ints, codes, tuple(starts[i] for i in order), tuple(ns[i] for i in order),
                  tuple(idents[i].method for i in order)))
