"""Rollups as numpy columns: what the analyzer reads from a store's rollups.

A :class:`RollupColumns` holds rollups' labels, counts and, per delay series, a
:class:`DelayColumns` of counts, extremes, sums and the sketches as their stored blobs
(:mod:`analyzer.rollups.sketch_codec`), decoded only for the rows a unit table needs
(:mod:`analyzer.stats.units`). :func:`columns_from_rollups` lays records out the same way;
:func:`take_columns` joins reads. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import numpy.typing as npt

from analyzer.rollups.model import SERIES, DelayStats, MinuteRollup
from analyzer.rollups.sketch_codec import decode_columns

__all__ = ["LABEL_FIELDS", "SERIES", "DelayColumns", "Label", "RollupColumns",
           "columns_from_rollups", "take_columns"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _delay(r: MinuteRollup, which: str) -> DelayStats:
    stats: DelayStats = getattr(r, which)
    return stats



@dataclass
class DelayColumns:
    """One delay series (``rtt``, ``fwd`` or ``bwd``) of the rows of a :class:`RollupColumns`:
    counts, extremes (NaN where the rollup has none) and sums per row, and the sketch of
    row ``i`` as the stored ``DDSketch.to_bytes`` blobs ``blobs[starts[i]:starts[i + 1]]``
    (several when the row merges parts: their counts add up), decoded only when a unit table
    needs them (a year of day sketches decoded at once is ~90 MB per window; most reads use a
    share of the rows)."""

    n: IntArray
    min: FloatArray
    max: FloatArray
    sum: FloatArray
    starts: IntArray  # len(rows) + 1 offsets into blobs
    blobs: list[bytes]

    def sketches(self, rows: IntArray) -> tuple[IntArray, IntArray, IntArray,
                                                 npt.NDArray[np.integer[Any]],
                                                 npt.NDArray[np.integer[Any]]]:
        """The sketches of the given rows (ascending), decoded: for each blob its position in
        ``rows``, zero count and number of buckets, then the keys and counts of all buckets,
        blob after blob. Runs of consecutive rows are sliced, not indexed."""
        first, last = self.starts[rows], self.starts[rows + 1]
        cut = np.flatnonzero(np.diff(rows) != 1) + 1
        if len(cut) < RUN_SLICES:
            spans = zip(first[np.concatenate(([0], cut))].tolist(),
                        last[np.concatenate((cut - 1, [len(rows) - 1]))].tolist(),
                        strict=True) if len(rows) else iter(())
            picked = list(chain.from_iterable(self.blobs[a:b] for a, b in spans))
        else:
            picked = [self.blobs[i] for row in zip(first.tolist(), last.tolist(), strict=True)
                      for i in range(*row)]
        zero, sizes, keys, counts = decode_columns(picked)
        return np.repeat(np.arange(len(rows)), last - first), zero, sizes, keys, counts


RUN_SLICES = 4096  # at most this many runs of consecutive rows are sliced, else indexed


Label = tuple[str, str, str, str, str, str, str]
LABEL_FIELDS = ("path_id", "method", "type_p", "src_site", "src_carrier", "dst_site",
                "dst_carrier")


@dataclass
class RollupColumns:
    """Rollups as numpy columns: what the analyzer reads from a store's rollups (sketches as
    stored blobs, no ``MinuteRollup`` per row). ``labels[series[i]]`` is row ``i``'s path,
    method, Type-P and path ends (:data:`LABEL_FIELDS`); a store returns one row per rollup
    key, sorted by key (strings in code-point order), series numbered in that order. Delay
    series not read are absent from ``delays``; threshold counts, sums of squares, loss
    periods, reordering and duplicates are not kept."""

    labels: list[Label]
    series: IntArray
    minute: IntArray
    sent: IntArray
    received: IntArray
    lost: IntArray
    errors: IntArray
    unsynced: IntArray
    clock_error_max_ns: FloatArray  # NaN where None
    delays: dict[str, DelayColumns]

    def __len__(self) -> int:
        return len(self.minute)


def columns_from_rollups(rollups: Sequence[MinuteRollup],
                         series: Sequence[str] = SERIES) -> RollupColumns:
    """The columns of ``rollups``, in the order given (the reference for a store's read)."""
    index: dict[Label, int] = {}
    for r in rollups:
        index.setdefault(_label(r), len(index))
    ints = {name: np.array([getattr(r, name) for r in rollups], dtype=np.int64)
            for name in ("minute", "sent", "received", "lost", "errors", "unsynced")}
    return RollupColumns(
        list(index), np.array([index[_label(r)] for r in rollups], dtype=np.int64),
        clock_error_max_ns=_floats([r.clock_error_max_ns for r in rollups]),
        delays={which: _delay_columns([_delay(r, which) for r in rollups]) for which in series},
        **ints)


def take_columns(parts: Sequence[tuple[RollupColumns, IntArray]]) -> RollupColumns:
    """The rows ``idx`` (ascending) of each read, one after the other, as one read: each
    part's labels kept, its series renumbered after the previous parts'; the delay series
    every part has."""
    if len(parts) == 1 and np.array_equal(parts[0][1], np.arange(len(parts[0][0]))):
        return parts[0][0]
    names = [n for n in parts[0][0].delays if all(n in c.delays for c, _i in parts)]
    labels: list[Label] = []
    series = []
    for cols, idx in parts:
        series.append(cols.series[idx] + len(labels))
        labels += cols.labels

    def cat(name: str) -> npt.NDArray[Any]:
        return np.concatenate([getattr(c, name)[i] for c, i in parts])
    return RollupColumns(labels, np.concatenate(series), cat("minute"), cat("sent"),
                         cat("received"), cat("lost"), cat("errors"), cat("unsynced"),
                         cat("clock_error_max_ns"),
                         {n: _take_delays([(c.delays[n], i) for c, i in parts]) for n in names})


def _take_delays(parts: Sequence[tuple[DelayColumns, IntArray]]) -> DelayColumns:
    blobs: list[bytes] = []
    sizes = []
    for d, idx in parts:
        for lo, hi in zip(d.starts[idx].tolist(), d.starts[idx + 1].tolist(), strict=True):
            blobs += d.blobs[lo:hi]
            sizes.append(hi - lo)
    def cat(name: str) -> npt.NDArray[Any]:
        return np.concatenate([getattr(d, name)[i] for d, i in parts])
    return DelayColumns(cat("n"), cat("min"), cat("max"), cat("sum"),
                        np.concatenate(([0], np.cumsum(sizes, dtype=np.int64))), blobs)


def _label(r: MinuteRollup) -> Label:
    return (r.path_id, r.method, r.type_p, r.src_site, r.src_carrier, r.dst_site,
            r.dst_carrier)


def _floats(values: Sequence[int | None]) -> FloatArray:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


def _delay_columns(stats: Sequence[DelayStats]) -> DelayColumns:
    return DelayColumns(
        np.array([d.n for d in stats], dtype=np.int64), _floats([d.min for d in stats]),
        _floats([d.max for d in stats]), np.array([d.sum for d in stats], dtype=np.float64),
        np.arange(len(stats) + 1, dtype=np.int64), [d.sketch.to_bytes() for d in stats])


