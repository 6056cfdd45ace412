"""The collector's body decoder: a batch body straight into :class:`analyzer.columns.Block`\\ s.

:func:`decode_body` reads wire v2 (:mod:`ixmeter.wire`, columnar) into numpy arrays without
one Python object per result, and wire v1 through :func:`ixmeter.wire.decode_batch`'s records
and :func:`analyzer.columns.blocks_of`. The blocks of a v2 body equal ``blocks_of`` of the
records the reference decoder (:func:`ixmeter.wire.decode_batch`) makes of it: ``idx`` is the
position in the batch, blocks come in the order of their first result.

Two paths, one judgement. The fast path here only *decides*: it checks every rule of v2 with
whole-column operations and gives up (None) at the first doubt; the reference decoder then
reads the body again, value by value, and raises the :class:`RecordError` that names the field.
So a refused body gets the reference's exact message (``streams[2].rtt_ns[17]``) whatever the
order the vectorised checks run in, and only refused bodies pay for the second reading.

How the fast path stays cheap: a column is gathered over all streams into one list (a value
sent once for a stream is repeated by numpy instead), its JSON types checked at once by
``set(map(type, values))``, converted by one ``np.array`` and checked by a few whole-array
comparisons (ranges, then ``idx`` and the per-result rules over all columns).

Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from itertools import chain, compress
from typing import Any

import numpy as np
import numpy.typing as npt

from analyzer.columns import (
    CODE_COLUMNS,
    ERROR,
    INT_COLUMNS,
    LOST,
    NULL,
    RECEIVED,
    Block,
    ColumnBatch,
    Dense,
    blocks_of,
)
from ixmeter.wire import (
    DENSE_TYPES,
    WIRE_VERSION_COLUMNS,
    Stream,
    batch_from_json,
    bounds,
    loads_with,
    read_streams,
)

Array = npt.NDArray[Any]
_NONE = type(None)
_BLOCK_FIELDS = ("ident", *INT_COLUMNS, *CODE_COLUMNS, "error_detail", "hops")
if (tuple(DENSE_TYPES) != INT_COLUMNS + CODE_COLUMNS
        or tuple(f.name for f in dataclasses.fields(Block)) != _BLOCK_FIELDS):
    raise ImportError("ixmeter.wire's columns are not analyzer.columns.Block's")


def decode_body(body: bytes) -> ColumnBatch:
    """A v1 or v2 batch body as blocks; raises :class:`RecordError` naming the field
    (``streams[2].rtt_ns[17]``, ``results[3].seq``) or ``body: not valid JSON``."""
    return loads_with(body, _column_batch)


def _column_batch(obj: Any) -> ColumnBatch:
    if isinstance(obj, Mapping) and obj.get("v") == WIRE_VERSION_COLUMNS:
        fast = fast_columns(obj)
        if fast is not None:
            return fast
    batch = batch_from_json(obj)  # raises the error of a refused body, or reads v1
    return ColumnBatch(batch.probe_id, batch.batch_id, blocks_of(batch.results))


def fast_columns(obj: Mapping[str, Any]) -> ColumnBatch | None:
    """The blocks of a parsed v2 body, or None if any value breaks a rule (the reference
    decoder then names it). The envelope and stream keys are checked by the reference's own
    :func:`ixmeter.wire.read_streams`, which raises."""
    probe_id, batch_id, streams = read_streams(obj)
    if not streams:
        return ColumnBatch(probe_id, batch_id, ())
    ns = np.array([s.n for s in streams], dtype=np.intp)
    limits = _limits(int(ns.sum()))
    arrays: dict[str, Array] = {}
    for name in DENSE_TYPES:
        arr = _column(streams, name, ns, limits.get(name))
        if arr is None:
            return None
        arrays[name] = arr
    if not (_idx_ok(streams, arrays["idx"]) and _results_ok(arrays)):
        return None
    return ColumnBatch(probe_id, batch_id, *_blocks(streams, arrays))


@functools.lru_cache(maxsize=16)
def _limits(total: int) -> dict[str, tuple[int, int]]:
    """Per integer column, the range its rules (:func:`ixmeter.wire.bounds`) leave."""
    out: dict[str, tuple[int, int]] = {}
    for rule in bounds(total):
        low, high = out.get(rule.column, (rule.low, rule.high))
        out[rule.column] = (max(low, rule.low), min(high, rule.high))
    return out


def _column(streams: Sequence[Stream], name: str, ns: npt.NDArray[np.intp],
            limit: tuple[int, int] | None) -> Array | None:
    """Column ``name`` of all streams, in body order: int64 with :data:`NULL`, or int8 with -1
    for the code and flag columns; None if a value breaks a rule of the column."""
    values = [s.columns[name] for s in streams]
    is_list = [type(v) is list for v in values]
    if all(is_list):
        return _listed(name, list(chain.from_iterable(values)), limit)
    out = _repeated(streams, name, values, is_list, ns, limit)
    if out is not None and any(is_list):
        listed = _listed(name, list(chain.from_iterable(compress(values, is_list))), limit)
        if listed is None:
            return None
        out[np.repeat(is_list, ns)] = listed
    return out


def _listed(name: str, parts: list[Any], limit: tuple[int, int] | None) -> Array | None:
    """The values sent in lists, as an array, if each has a JSON type and value allowed."""
    types = set(map(type, parts))
    if not DENSE_TYPES[name].issuperset(types):
        return None
    if limit is None:  # a flag column
        return np.array([-1 if x is None else x for x in parts] if _NONE in types else parts,
                        dtype=np.int8)
    nulls = parts.count(None) if _NONE in types else 0
    try:
        arr = np.array([NULL if x is None else x for x in parts] if nulls else parts,
                       dtype=np.int64)
    except OverflowError:
        return None
    if not _fits(arr, nulls, *limit):
        return None
    if name in CODE_COLUMNS:
        return (np.where(arr == NULL, -1, arr) if nulls else arr).astype(np.int8)
    return arr


def _fits(arr: npt.NDArray[np.int64], nulls: int, low: int, high: int) -> bool:
    """Whether every value of ``arr`` but its ``nulls`` nulls (:data:`NULL`, below ``low``) is
    in ``low..high``; -2**63 sent as a value does not fit."""
    if nulls:
        return int(np.count_nonzero(arr < low)) == nulls and int(arr.max()) <= high
    return low <= int(arr.min()) and int(arr.max()) <= high


def _repeated(streams: Sequence[Stream], name: str, values: list[Any], is_list: list[bool],
              ns: npt.NDArray[np.intp], limit: tuple[int, int] | None) -> Array | None:
    """The values sent once per stream, checked and each repeated ``n`` times (0 where the
    stream sent a list); an ``idx`` run ``i`` becomes ``i, i+1, ..., i+n-1``."""
    allowed = DENSE_TYPES[name]
    low, high = limit or (0, 0)
    span = name == "idx"
    for s, v, listed in zip(streams, values, is_list, strict=True):
        if listed:
            continue
        if type(v) not in allowed:
            return None
        if limit is not None and v is not None and not low <= v <= high - (s.n - 1) * span:
            return None
    small = name in CODE_COLUMNS
    null = -1 if small else NULL
    each = [0 if listed else null if v is None else v
            for v, listed in zip(values, is_list, strict=True)]
    out = np.repeat(np.array(each, dtype=np.int8 if small else np.int64), ns)
    if span:
        out += np.arange(len(out), dtype=np.int64) - np.repeat(
            np.array([s.start for s in streams], dtype=np.int64), ns)
    return out


def _idx_ok(streams: Sequence[Stream], idx: npt.NDArray[np.int64]) -> bool:
    """Positions increase within each stream and none is in the batch twice (their range was
    checked: so each position of the batch is used exactly once)."""
    if len(idx) < 2:
        return True
    falls = idx[1:] <= idx[:-1]
    falls[[s.start - 1 for s in streams[1:]]] = False  # a new stream may start lower
    if falls.any():
        return False
    seen = np.zeros(len(idx), dtype=np.bool_)
    seen[idx] = True
    return bool(seen.all())


def _results_ok(arrays: dict[str, Array]) -> bool:
    """The per-result rules (v1's ``_check_consistency``): a received result has a delay, a
    lost one none, an error names its code."""
    status = arrays["status"]
    no_delay = (arrays["rtt_ns"] == NULL) & (arrays["fwd_ns"] == NULL)
    return not (((status == RECEIVED) & no_delay).any()
                or ((status == LOST) & ~no_delay).any()
                or ((status == ERROR) & (arrays["error"] == -1)).any())


def _blocks(streams: Sequence[Stream], arrays: dict[str, Array]
            ) -> tuple[tuple[Block, ...], Dense]:
    """One block per stream, in the order of each stream's first result, its columns views
    of the rows of two batch-wide matrices (returned as :class:`Dense`)."""
    ints = np.stack([arrays[c] for c in INT_COLUMNS])
    codes = np.stack([arrays[c] for c in CODE_COLUMNS])
    idx = ints[0]
    out, ordered = [], sorted(streams, key=lambda s: int(idx[s.start]))
    for s in ordered:
        a, b = s.start, s.start + s.n
        fields: list[Any] = [s.ident, *ints[:, a:b], *codes[:, a:b], s.error_detail, s.hops]
        out.append(Block(*fields))
    return tuple(out), Dense(ints, codes, tuple(s.start for s in ordered),
                             tuple(s.n for s in ordered), tuple(s.ident[1] for s in ordered))
