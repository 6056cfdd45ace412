"""Rollup rows read as numpy columns (:class:`~analyzer.rollups.columns.RollupColumns`).

What :meth:`analyzer.store.reads.Reader.read_rollup_columns` and ``read_group_columns`` build
from the selected rows: numbers converted a chunk of rows at a time, the sketch blobs kept as
stored until a unit table decodes the rows it needs. Pure: rows in, columns out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from analyzer.rollups.columns import DelayColumns, RollupColumns, columns_from_rollups
from analyzer.rollups.rows import ROLLUP_KEY

_SERIES_KEY = ROLLUP_KEY[:3]  # path_id, method, type_p
_COUNT_COLS = ("minute", "sent", "received", "lost", "errors", "unsynced", "clock_error_max_ns")
_DELAY_COLS = ("n", "sum", "min", "max", "sketch")
COLUMN_CHUNK = 16_384  # rows fetched and converted at a time: bounded Python temporaries
Array = np.ndarray[Any, Any]


def column_names(series: tuple[str, ...]) -> list[str]:
    """Path, method and Type-P, the counts and the clock-error bound, then each delay
    series' columns (what :func:`fetch_columns` reads)."""
    return [*_SERIES_KEY, *_COUNT_COLS, *(f"{d}_{f}" for d in series for f in _DELAY_COLS)]


def fetch_columns(chunks: Iterator[Sequence[Sequence[Any]]], series: tuple[str, ...],
                   ends: Callable[[tuple[str, str, str]], tuple[str, str, str, str]]
                   ) -> RollupColumns:
    """Rows of :func:`column_names` as columns sorted by key (code-point order of the
    strings, whatever the database's collation); ``ends`` gives each series' path ends.
    Numbers are converted a chunk of rows at a time; the sketch blobs are kept as they are
    (decoded by the unit tables that need them)."""
    index: dict[tuple[str, str, str], int] = {}
    parts: list[list[Array]] = []
    blobs: list[list[bytes]] = [[] for _ in series]
    for chunk in chunks:
        if not chunk:
            continue
        cols = list(zip(*chunk, strict=True))
        parts.append([_series_ids(cols, index), *_numbers(cols, len(series))])
        for k, column in enumerate(cols[-5 * len(series) + 4::5] if series else ()):
            blobs[k] += map(bytes, column)
    if not parts:
        return columns_from_rollups([], series)
    keys = sorted(index)
    rank = np.empty(len(keys), dtype=np.int64)
    rank[[index[k] for k in keys]] = np.arange(len(keys))
    ids, minute, sent, received, lost, errors, unsynced, clock, *delay = (
        np.concatenate(c) for c in zip(*parts, strict=True))
    order = np.lexsort((minute, rank[ids]))
    if not bool((order[1:] > order[:-1]).all()):
        ids, minute, sent, received, lost, errors, unsynced, clock, *delay = (
            a[order] for a in (ids, minute, sent, received, lost, errors, unsynced, clock,
                               *delay))
        blobs = [[b[i] for i in order.tolist()] for b in blobs]
    delays = {name: _delay_columns(delay[4 * k:4 * k + 4], blobs[k])
              for k, name in enumerate(series)}
    return RollupColumns([(*k, *ends(k)) for k in keys], rank[ids], minute, sent, received,
                         lost, errors, unsynced, clock, delays)


def _delay_columns(numbers: list[Array], blobs: list[bytes]) -> DelayColumns:
    n, lo, hi, total = numbers
    return DelayColumns(n, lo, hi, total, np.arange(len(blobs) + 1, dtype=np.int64), blobs)


def _numbers(cols: list[tuple[Any, ...]], series: int) -> list[Array]:
    """Counts, the clock bound (None: NaN), then n, min, max (None: NaN) and sum of each
    delay series, for a chunk of rows."""
    at = len(_SERIES_KEY)
    out = [np.array(c, dtype=np.int64) for c in cols[at:at + 6]]
    out.append(np.array(cols[at + 6], dtype=np.float64))
    for k in range(series):
        n, total, lo, hi = cols[at + 7 + 5 * k:at + 11 + 5 * k]
        out += [np.array(n, dtype=np.int64), np.array(lo, dtype=np.float64),
                np.array(hi, dtype=np.float64), np.array(total, dtype=np.float64)]
    return out


def _series_ids(cols: list[tuple[Any, ...]], index: dict[tuple[str, str, str], int]
                ) -> Array:
    """The series (path, method, Type-P) number of each row; new series added to ``index``."""
    return np.array([index.setdefault(k, len(index)) for k in zip(*cols[:3], strict=True)],
                    dtype=np.int64)
