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

How the fast path stays cheap, for 6 streams of ~170 results as for 100 streams of 10: the
streams' keys and identities are checked column by column across streams
(:func:`ixmeter.wire.read_table`); a dense column's values are gathered over all streams, their
exact JSON types listed and counted at once (``list(map(type, values)).count(int)``; a
comprehension puts :data:`NULL` for None only where a column has nulls), converted by one
``np.fromiter`` into a row of an int64 matrix (a value sent once for a stream is repeated by
numpy instead), and the matrices are checked by a few whole-array comparisons (the ranges of
all columns at once, then ``idx`` and the per-result rules). Each block's columns are views of
the rows of the integer matrix and of the int8 codes, and blocks are made without the frozen
dataclass's 19 ``object.__setattr__`` calls (:func:`analyzer.columns.block`).

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
    block,
    blocks_of,
)
from ixmeter.wire import (
    DENSE_TYPES,
    FLAG_COLUMNS,
    INT64_MAX,
    INT64_MIN,
    WIRE_VERSION_COLUMNS,
    StreamTable,
    batch_from_json,
    bounds,
    loads_with,
    read_table,
    within_size,
)

Array = npt.NDArray[Any]
Ints = npt.NDArray[np.intp]
_NONE = type(None)
_LIST = frozenset({list})
_BLOCK_FIELDS = ("ident", *INT_COLUMNS, *CODE_COLUMNS, "error_detail", "hops")
if (tuple(DENSE_TYPES) != INT_COLUMNS + CODE_COLUMNS
        or tuple(f.name for f in dataclasses.fields(Block)) != _BLOCK_FIELDS):
    raise ImportError("ixmeter.wire's columns are not analyzer.columns.Block's")


def decode_body(body: bytes) -> ColumnBatch:
    """A v1 or v2 batch body as blocks; raises :class:`RecordError` naming the field
    (``streams[2].rtt_ns[17]``, ``results[3].seq``) or ``body: not valid JSON``. A v2 body
    may not claim more results than it has bytes (:func:`ixmeter.wire.within_size`)."""
    size = len(body)
    return loads_with(body, lambda obj: _column_batch(within_size(obj, size)))


def _column_batch(obj: Any) -> ColumnBatch:
    if isinstance(obj, Mapping) and obj.get("v") == WIRE_VERSION_COLUMNS:
        fast = fast_columns(obj)
        if fast is not None:
            return fast
    batch = batch_from_json(obj)  # raises the error of a refused body, or reads v1
    return ColumnBatch(batch.probe_id, batch.batch_id, blocks_of(batch.results))


def fast_columns(obj: Mapping[str, Any]) -> ColumnBatch | None:
    """The blocks of a parsed v2 body, or None if any value breaks a rule (the reference
    decoder then names it). The envelope and the streams' keys are checked by the reference's
    own :func:`ixmeter.wire.read_table`, which raises."""
    probe_id, batch_id, table = read_table(obj)
    if not table.ns:
        return ColumnBatch(probe_id, batch_id, ())
    ns = np.array(table.ns, dtype=np.intp)
    starts = np.cumsum(ns) - ns
    dense = _dense(table, ns)
    if dense is None:
        return None
    ints, small, nulls = dense  # small: the code and flag columns, int8 once checked
    arrays = dict(zip(DENSE_TYPES, [*ints, *small], strict=True))
    low, high = _limits(ints.shape[1])
    k = len(INT_COLUMNS)
    if not (_in_range(ints, nulls[:k], low[:k], high[:k])
            and _in_range(small, nulls[k:], low[k:], high[k:])
            and _idx_ok(starts, arrays["idx"]) and _results_ok(arrays)):
        return None
    codes = np.where(small == NULL, -1, small).astype(np.int8)
    return ColumnBatch(probe_id, batch_id, *_blocks(table, starts, ints, codes))


def _dense(table: StreamTable, ns: Ints
           ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], list[int]] | None:
    """The dense columns, a row each with one value per result in body order
    (:data:`NULL` for null, a flag as 0/1): the :data:`INT_COLUMNS`, then the
    :data:`CODE_COLUMNS` (apart, so that blocks do not keep them as int64), and each column's
    number of nulls; None if a list does not have ``n`` values or a value has a JSON type not
    allowed or is beyond int64."""
    counts = list(table.ns)
    total = int(ns.sum())
    ints = np.empty((len(INT_COLUMNS), total), dtype=np.int64)
    small = np.empty((len(CODE_COLUMNS), total), dtype=np.int64)
    nulls = []
    for row, (name, sent) in zip([*ints, *small], table.columns.items(), strict=True):
        column = _column(name, sent, counts, ns)
        if column is None:
            return None
        row[:], n_null = column
        nulls.append(n_null)
    return ints, small, nulls


def _column(name: str, sent: Sequence[Any], counts: list[int], ns: Ints
            ) -> tuple[Array, int] | None:
    """Column ``name`` from each stream's value as sent, one value per result in body order,
    and its number of nulls."""
    kinds = set(map(type, sent))
    if list not in kinds:
        return _repeated(name, list(sent), counts, ns)
    if kinds == _LIST:
        if list(map(len, sent)) != counts:
            return None
        return _numbers(name, list(chain.from_iterable(sent)))
    # Lists and single values: the single values repeated first (a filler of the column's
    # type for a stream that sent a list), then the lists' values over their streams.
    listed = [type(v) is list for v in sent]
    lists = list(compress(sent, listed))
    if list(map(len, lists)) != list(compress(counts, listed)):
        return None
    filler: Any = False if name in FLAG_COLUMNS else 0
    parts = _numbers(name, list(chain.from_iterable(lists)))
    once = _repeated(name, [filler if x else v for v, x in zip(sent, listed, strict=True)],
                     counts, ns)
    if parts is None or once is None:
        return None
    out, nulls = once
    out[np.repeat(listed, ns)] = parts[0]
    return out, nulls + parts[1]


def _numbers(name: str, values: list[Any]) -> tuple[Array, int] | None:
    """``values`` of column ``name`` as int64 (:data:`NULL` for None) and their number of
    nulls, if each has a JSON type allowed and is within int64 (-2**63 sent as a value reads
    as null here: :func:`_in_range` refuses it, as one value below the low bound too many).
    The exact types are listed and the plain ones counted (``list.count`` finds a type by
    identity), cheaper than collecting them in a set when all are plain."""
    types = list(map(type, values))
    plain = types.count(bool if name in FLAG_COLUMNS else int)
    nulls = len(values) - plain
    if nulls:
        if not DENSE_TYPES[name].issuperset(types) or _NONE not in DENSE_TYPES[name]:
            return None
        values = [NULL if x is None else x for x in values]
    try:
        return np.fromiter(values, np.int64, len(values)), nulls
    except OverflowError:
        return None


def _repeated(name: str, sent: list[Any], counts: list[int], ns: Ints
              ) -> tuple[Array, int] | None:
    """The values sent once per stream, each repeated ``n`` times, and the number of nulls
    they stand for; an ``idx`` run ``i`` stands for ``i, i+1, ..., i+n-1`` (out of int64 it
    wraps below 0; out of the batch, below 0 or past it, it fails :func:`_in_range`)."""
    numbers = _numbers(name, sent)
    if numbers is None:
        return None
    each, nulls = numbers
    out = np.repeat(each, ns)
    if name == "idx":
        out += np.arange(len(out)) - np.repeat(np.cumsum(ns) - ns, ns)
    return out, nulls and sum(n for v, n in zip(sent, counts, strict=True) if v is None)


def _in_range(values: npt.NDArray[np.int64], nulls: list[int], low: npt.NDArray[np.int64],
              high: npt.NDArray[np.int64]) -> bool:
    """Whether each row's values but its nulls are within the row's bounds ``low`` and
    ``high`` (column vectors, :func:`_limits`): :data:`NULL` is below every low bound, so a
    row must have exactly as many values below it as nulls (-2**63 sent as a value is one
    too many)."""
    return (np.array_equal(np.count_nonzero(values < low, axis=1), nulls)
            and not (values > high).any())


@functools.lru_cache(maxsize=16)
def _limits(total: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Per dense column (:data:`DENSE_TYPES` order), as column vectors, the range its rules
    (:func:`ixmeter.wire.bounds`) leave for a non-null value; a flag is 0 or 1."""
    out = dict.fromkeys(DENSE_TYPES, (INT64_MIN, INT64_MAX))
    out.update(dict.fromkeys(FLAG_COLUMNS, (0, 1)))
    for rule in bounds(total):
        low, high = out[rule.column]
        out[rule.column] = (max(low, rule.low), min(high, rule.high))
    low_high = np.array(list(out.values()), dtype=np.int64)
    return low_high[:, :1], low_high[:, 1:]


def _idx_ok(starts: Ints, idx: npt.NDArray[np.int64]) -> bool:
    """Positions increase within each stream and none is in the batch twice (their range was
    checked: so each position of the batch is used exactly once)."""
    if len(idx) < 2:
        return True
    falls = idx[1:] <= idx[:-1]
    falls[starts[1:] - 1] = False  # a new stream may start lower
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
                or ((status == ERROR) & (arrays["error"] == NULL)).any())


def _blocks(table: StreamTable, starts: Ints, ints: npt.NDArray[np.int64],
            codes: npt.NDArray[np.int8]) -> tuple[tuple[Block, ...], Dense]:
    """One block per stream, its columns views of the rows of ``ints`` and ``codes``, in the
    order of each stream's first result; and those matrices as :class:`Dense` (the blob
    encoder gathers a method's results from them with one index)."""
    rows, ns = [*ints, *codes], table.ns
    if len(set(ns)) == 1:  # streams of equal length: each row viewed as one line per stream
        columns = [list(row.reshape(len(ns), -1)) for row in rows]
    else:
        spans = [slice(a, b) for a, b in zip(starts.tolist(), (starts + ns).tolist(),
                                             strict=True)]
        columns = [[row[span] for span in spans] for row in rows]
    per_stream = list(zip(*columns, strict=True))
    order = np.argsort(ints[0][starts]).tolist()
    at, sizes = starts.tolist(), list(ns)
    return (tuple(block(table.idents[i], per_stream[i], table.error_detail[i], table.hops[i])
                  for i in order),
            Dense(ints, codes, tuple(at[i] for i in order), tuple(sizes[i] for i in order),
                  tuple(table.idents[i][1] for i in order)))
