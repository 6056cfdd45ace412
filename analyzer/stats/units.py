"""Columnar time units of one group of paths, and statistics over weighted merges of them.

A :class:`UnitTable` holds, for consecutive time units (minutes, or the hour/day tiers a store
keeps), the exact counts and moments and the DDSketch bucket counts of one delay series, as numpy
arrays. Merging units is adding rows, so a block-bootstrap replicate (a vector of block
multiplicities) is one matrix product, and any window costs the same whatever its length.

Statistics (:data:`STATISTICS`) follow the definitions in ``inventory.schema.KNOWN_STATISTICS``:
quantiles are RFC 2330 §11.3 inverted-CDF ranks over the *conditional* (arrived-only)
distribution (RFC 6703 §5.3), the median is RFC 7679 §5.2 (mean of the two central values for
even N), the mean is exact (sum / n), min and max exact, PDV is p99 - min (RFC 5481 §4.2) and
the loss ratio is lost / (received + lost) (RFC 7680 §4.1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from analyzer.rollups.columns import RollupColumns
from analyzer.rollups.model import DelayStats, MinuteRollup
from analyzer.rollups.sketch import DEFAULT_ALPHA, DDSketch

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

ZERO_KEY = -(2**62)  # key of the zero bucket column (values below 1 ns)
DELAY_STATISTICS = ("median", "mean", "p95", "p99", "min", "max", "pdv_p99")
STATISTICS = (*DELAY_STATISTICS, "loss_ratio")


@dataclass
class UnitTable:
    """Rows = time units (sorted by ``minutes``, the first minute of each unit)."""

    minutes: IntArray
    sent: FloatArray
    lost: FloatArray
    n: FloatArray
    total: FloatArray
    mins: FloatArray  # +inf where a unit has no delay
    maxs: FloatArray  # -inf where a unit has no delay
    values: FloatArray  # representative value of each sketch column (ns)
    keys: IntArray  # DDSketch bucket key of each column; column 0 is the zero bucket
    counts: FloatArray  # units x columns
    gamma: float
    clock_error_ns: float = 0.0
    unsynced: int = 0

    def __len__(self) -> int:
        return len(self.minutes)

    @property
    def samples(self) -> int:
        """Packets that were samples (received + lost)."""
        return int(self.sent.sum())

    def rows(self, mask: npt.NDArray[np.bool_]) -> UnitTable:
        """The units where ``mask`` is true (same columns)."""
        return UnitTable(self.minutes[mask], self.sent[mask], self.lost[mask], self.n[mask],
                         self.total[mask], self.mins[mask], self.maxs[mask], self.values,
                         self.keys, self.counts[mask], self.gamma, self.clock_error_ns,
                         self.unsynced)

    def blocks(self, size: int) -> UnitTable:
        """Merge runs of ``size`` consecutive units into one row each (the last may be short)."""
        if size <= 1 or len(self) == 0:
            return self
        starts = np.arange(0, len(self), size)
        return UnitTable(self.minutes[starts], np.add.reduceat(self.sent, starts),
                         np.add.reduceat(self.lost, starts), np.add.reduceat(self.n, starts),
                         np.add.reduceat(self.total, starts),
                         np.minimum.reduceat(self.mins, starts),
                         np.maximum.reduceat(self.maxs, starts), self.values, self.keys,
                         np.add.reduceat(self.counts, starts, axis=0), self.gamma,
                         self.clock_error_ns, self.unsynced)


def _stored_columns(sketch: DDSketch) -> tuple[int, npt.NDArray[Any], npt.NDArray[Any]] | None:
    """A store-read sketch's (zero, keys, counts) arrays (``LazySketch.columns``: decoded once,
    kept compact), else None."""
    columns = getattr(sketch, "columns", None)
    return None if columns is None else columns()


def table_from_rollups(rollups: Iterable[MinuteRollup], which: str = "rtt",
                       unit_minutes: int = 1) -> UnitTable:
    """Merge rollups (any paths) into units of ``unit_minutes`` and lay them out as arrays.
    ``which`` is the delay series: ``rtt``, ``fwd`` or ``bwd``."""
    units: dict[int, list[MinuteRollup]] = {}
    for r in rollups:
        units.setdefault(r.minute - r.minute % unit_minutes, []).append(r)
    order = sorted(units)
    rows: list[int] = []
    keys: list[int] = []
    cells: list[int] = []
    sums = [[0.0] * len(order) for _ in range(5)]  # sent, lost, n, total, zero bucket
    mins, maxs = [math.inf] * len(order), [-math.inf] * len(order)
    clock, unsynced = 0.0, 0
    part_rows: list[int] = []
    part_keys: list[npt.NDArray[Any]] = []
    part_cells: list[npt.NDArray[Any]] = []
    for i, minute in enumerate(order):
        for r in units[minute]:
            d: DelayStats = getattr(r, which)
            stored = _stored_columns(d.sketch)
            zero = d.sketch.zero if stored is None else stored[0]
            for j, v in enumerate((r.received + r.lost, r.lost, d.n, d.sum, zero)):
                sums[j][i] += v
            if d.min is not None and d.max is not None:
                mins[i], maxs[i] = min(mins[i], d.min), max(maxs[i], d.max)
            if stored is not None:
                part_rows.append(i)
                part_keys.append(stored[1])
                part_cells.append(stored[2])
            else:
                buckets = d.sketch.buckets
                rows.extend([i] * len(buckets))
                keys.extend(buckets)
                cells.extend(buckets.values())
            clock = max(clock, float(r.clock_error_max_ns or 0))
            unsynced += r.unsynced
    all_keys = np.concatenate([np.array(keys, dtype=np.int64), *part_keys]).astype(np.int64)
    all_rows = np.concatenate([np.array(rows, dtype=np.int64), np.repeat(
        np.array(part_rows, dtype=np.int64), [len(k) for k in part_keys])])
    all_cells = np.concatenate([np.array(cells, dtype=np.float64), *part_cells])
    columns = np.unique(all_keys)
    counts = np.zeros((len(order), len(columns) + 1))
    counts[:, 0] = sums[4]
    if len(all_keys):
        cols = np.searchsorted(columns, all_keys) + 1
        np.add.at(counts, (all_rows, cols), all_cells.astype(np.float64))
    probe = DDSketch(DEFAULT_ALPHA)
    values = np.array([0.0] + [probe.value(int(k)) for k in columns])
    keys_arr = np.concatenate([np.array([ZERO_KEY], dtype=np.int64), columns])
    return UnitTable(np.array(order, dtype=np.int64), np.array(sums[0]), np.array(sums[1]),
                     np.array(sums[2]), np.array(sums[3]), np.array(mins, dtype=np.float64),
                     np.array(maxs, dtype=np.float64),
                     values, keys_arr, counts, probe.gamma, clock, unsynced)


def table_from_columns(cols: RollupColumns, rows: IntArray, which: str = "rtt",
                       unit_minutes: int = 1) -> UnitTable:
    """:func:`table_from_rollups` of the rollups at ``rows`` (ascending) of ``cols``, without
    rollup objects: the same table, float for float (sums accumulate row by row in the same
    order)."""
    d = cols.delays[which]
    minute = cols.minute[rows]
    order, unit = np.unique(minute - minute % unit_minutes, return_inverse=True)
    width = len(order)

    def total(values: npt.NDArray[Any]) -> FloatArray:
        return np.bincount(unit, weights=values.astype(np.float64),
                           minlength=width).astype(np.float64, copy=False)

    lo, hi = d.min[rows], d.max[rows]
    has = ~(np.isnan(lo) | np.isnan(hi))
    mins, maxs = np.full(width, math.inf), np.full(width, -math.inf)
    np.minimum.at(mins, unit[has], lo[has])
    np.maximum.at(maxs, unit[has], hi[has])
    at, zero, sizes, keys, cells = d.sketches(rows)
    columns, counts = _bucket_counts(np.repeat(unit[at], sizes), keys, cells, width)
    counts[:, 0] = np.bincount(unit[at], weights=zero.astype(np.float64), minlength=width)
    probe = DDSketch(DEFAULT_ALPHA)
    values = np.array([0.0] + [probe.value(k) for k in columns.tolist()])
    clock = np.nan_to_num(cols.clock_error_max_ns[rows], nan=0.0)
    return UnitTable(order.astype(np.int64), total(cols.received[rows] + cols.lost[rows]),
                     total(cols.lost[rows]), total(d.n[rows]), total(d.sum[rows]), mins, maxs,
                     values, np.concatenate(([ZERO_KEY], columns)).astype(np.int64), counts,
                     probe.gamma, max(0.0, float(clock.max())) if len(clock) else 0.0,
                     int(cols.unsynced[rows].sum()))


def _bucket_counts(unit: IntArray, keys: npt.NDArray[np.integer[Any]],
                   cells: npt.NDArray[np.integer[Any]], width: int
                   ) -> tuple[IntArray, FloatArray]:
    """The distinct bucket keys (sorted) and the units x (1 + keys) matrix of their counts,
    ``unit`` the unit of each bucket (column 0, the zero bucket, left to the caller). Counts
    are integers: exact in any order. Delay keys span a few hundred values: counted over the
    whole range, then the columns that occur are kept."""
    if not len(keys):
        return np.zeros(0, dtype=np.int64), np.zeros((width, 1))
    lo, span = int(keys.min()), int(keys.max()) - int(keys.min()) + 1
    offset = keys.astype(np.int64) - lo
    present = np.bincount(offset, minlength=span) > 0
    columns = np.flatnonzero(present).astype(np.int64) + lo
    if width * span > DENSE_CELLS:
        span, offset = len(columns), np.cumsum(present)[offset] - 1
        present = np.ones(span, dtype=bool)
    dense = np.bincount(unit * span + offset, weights=cells.astype(np.float64),
                        minlength=width * span)
    counts = np.empty((width, len(columns) + 1))
    counts[:, 1:] = dense.reshape(width, span)[:, present]
    return columns, counts


DENSE_CELLS = 1 << 22  # units x key range counted at once; above, keys are numbered first


class UnitTables(Mapping[str, UnitTable]):
    """The unit tables of some rows of a :class:`RollupColumns` by delay series, each built on
    first use (:func:`table_from_columns`): what the comparisons take as ready tables."""

    def __init__(self, cols: RollupColumns, rows: IntArray, unit_minutes: int) -> None:
        self.cols, self.rows, self.unit_minutes = cols, rows, unit_minutes
        self._built: dict[str, UnitTable] = {}

    def __getitem__(self, which: str) -> UnitTable:
        if which not in self._built:
            if which not in self.cols.delays:
                raise KeyError(which)
            self._built[which] = table_from_columns(self.cols, self.rows, which,
                                                    self.unit_minutes)
        return self._built[which]

    def __iter__(self) -> Iterator[str]:
        return iter(self.cols.delays)

    def __len__(self) -> int:
        return len(self.cols.delays)


def align(t: UnitTable, minutes: IntArray) -> UnitTable:
    """The table re-indexed on ``minutes`` (a sorted superset of its own): absent units are
    empty rows, so two windows' tables can be resampled with the same block weights."""
    rows = np.searchsorted(minutes, t.minutes)
    out = {name: np.zeros(len(minutes)) for name in ("sent", "lost", "n", "total")}
    for name in out:
        out[name][rows] = getattr(t, name)
    mins, maxs = np.full(len(minutes), math.inf), np.full(len(minutes), -math.inf)
    mins[rows], maxs[rows] = t.mins, t.maxs
    counts = np.zeros((len(minutes), t.counts.shape[1]))
    counts[rows] = t.counts
    return UnitTable(minutes, out["sent"], out["lost"], out["n"], out["total"], mins, maxs,
                     t.values, t.keys, counts, t.gamma, t.clock_error_ns, t.unsynced)


def merge_tables(tables: Sequence[UnitTable]) -> UnitTable:
    """Add tables unit by unit (e.g. the paths of one group): rows are the union of their
    units, columns the union of their sketch buckets. Exact, like merging the rollups."""
    if not tables:
        raise ValueError("merge_tables() of no tables")
    minutes = np.unique(np.concatenate([t.minutes for t in tables]))
    keys = np.unique(np.concatenate([t.keys for t in tables]))
    out = {name: np.zeros(len(minutes)) for name in ("sent", "lost", "n", "total")}
    mins, maxs = np.full(len(minutes), math.inf), np.full(len(minutes), -math.inf)
    counts = np.zeros((len(minutes), len(keys)))
    for t in tables:
        rows = np.searchsorted(minutes, t.minutes)
        cols = np.searchsorted(keys, t.keys)
        for name in out:
            np.add.at(out[name], rows, getattr(t, name))
        np.minimum.at(mins, rows, t.mins)
        np.maximum.at(maxs, rows, t.maxs)
        counts[np.ix_(rows, cols)] += t.counts
    first = tables[0]
    probe = DDSketch(DEFAULT_ALPHA)
    values = np.array([0.0 if k == ZERO_KEY else probe.value(int(k)) for k in keys])
    return UnitTable(minutes, out["sent"], out["lost"], out["n"], out["total"], mins, maxs,
                     values, keys, counts, first.gamma,
                     max(t.clock_error_ns for t in tables), sum(t.unsynced for t in tables))


# --- statistics over merged rows ------------------------------------------------------------


def _rank_values(hist: FloatArray, values: FloatArray, ranks: FloatArray) -> FloatArray:
    """Value of the ``ranks``-th smallest element of each histogram row (1-based)."""
    cum = np.cumsum(hist, axis=1)
    idx = (cum < ranks[:, None] - 1e-9).sum(axis=1)
    idx = np.minimum(idx, len(values) - 1)
    out: FloatArray = values[idx]
    return out


def _quantile(hist: FloatArray, values: FloatArray, q: float) -> FloatArray:
    """RFC 2330 §11.3: the value of rank max(1, ceil(q * n)) of each row."""
    n = hist.sum(axis=1)
    ranks = np.maximum(1.0, np.ceil(q * n - 1e-9))
    return np.where(n > 0, _rank_values(hist, values, ranks), np.nan)


def _median(hist: FloatArray, values: FloatArray) -> FloatArray:
    """RFC 7679 §5.2 median: the central value, or the mean of the two central values."""
    n = hist.sum(axis=1)
    lo = np.maximum(1.0, np.floor((n + 1) / 2))
    hi = np.maximum(1.0, np.floor(n / 2) + 1)
    med = (_rank_values(hist, values, lo) + _rank_values(hist, values, hi)) / 2
    return np.where(n > 0, med, np.nan)


_NEEDS = {"loss_ratio": ("sent", "lost"), "mean": ("n", "total"), "min": ("n", "min"),
          "max": ("n", "max"), "median": ("n", "hist"), "p95": ("n", "hist"), "p99": ("n", "hist"),
          "pdv_p99": ("n", "min", "hist")}


def _merged(t: UnitTable, w: FloatArray, statistic: str) -> dict[str, FloatArray]:
    """Row-wise weighted sums of the table's columns a statistic reads: one row per weight
    vector (the bootstrap's replicates; the rest is not computed)."""
    out: dict[str, FloatArray] = {}
    for name in _NEEDS.get(statistic, ("sent", "lost", "n", "total", "min", "max", "hist")):
        if name == "min":
            out[name] = np.where(w > 0, t.mins[None, :], math.inf).min(axis=1)
        elif name == "max":
            out[name] = np.where(w > 0, t.maxs[None, :], -math.inf).max(axis=1)
        elif name == "hist":
            out[name] = w @ t.counts
        else:
            out[name] = w @ getattr(t, name)
    return out


def _from_parts(p: dict[str, FloatArray], values: FloatArray, statistic: str) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        if statistic == "loss_ratio":
            return np.where(p["sent"] > 0, p["lost"] / p["sent"], np.nan)
        if statistic == "mean":
            return np.where(p["n"] > 0, p["total"] / p["n"], np.nan)
    empty = p["n"] <= 0
    if statistic == "min":
        return np.where(empty, np.nan, p["min"])
    if statistic == "max":
        return np.where(empty, np.nan, p["max"])
    if statistic == "median":
        return _median(p["hist"], values)
    if statistic in ("p95", "p99"):
        return _quantile(p["hist"], values, int(statistic[1:]) / 100)
    if statistic == "pdv_p99":
        return np.where(empty, np.nan, _quantile(p["hist"], values, 0.99) - p["min"])
    raise ValueError(f"unknown statistic {statistic!r}; known: {', '.join(STATISTICS)}")


def weighted_statistic(t: UnitTable, w: FloatArray, statistic: str) -> FloatArray:
    """The statistic of each weighted merge of the table's rows (``w``: replicates x rows)."""
    return _from_parts(_merged(t, w, statistic), t.values, statistic)


def point_statistic(t: UnitTable, statistic: str) -> float:
    """The statistic over all rows merged (NaN when undefined)."""
    if len(t) == 0:
        return math.nan
    return float(weighted_statistic(t, np.ones((1, len(t))), statistic)[0])


def per_unit_statistic(t: UnitTable, statistic: str) -> FloatArray:
    """The statistic of each unit alone (the series a block length is chosen on)."""
    parts = {"sent": t.sent, "lost": t.lost, "n": t.n, "total": t.total, "min": t.mins,
             "max": t.maxs, "hist": t.counts}
    return _from_parts(parts, t.values, statistic)


def split_days(t: UnitTable, offset_minutes: Sequence[int]) -> dict[int, UnitTable]:
    """Rows grouped by local day (``(minute + offset) // 1440``); ``offset_minutes`` per row."""
    day = (t.minutes + np.asarray(offset_minutes, dtype=np.int64)) // 1440
    return {int(d): t.rows(day == d) for d in np.unique(day)}
