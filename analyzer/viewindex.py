"""The dashboard's index of a window's rollups: time helpers, merged rollups as the analyzer's
unit tables, and :class:`RollupIndex`, read once per data refresh (:func:`load_index`).

A window is read from the store tier that serves its ends exactly, as numpy columns
(``ReadStore.read_rollup_columns``); each path's total over the window is built once as the
analyzer's unit tables, and groups (matrix cells, a target's scope) and time buckets are merges
of those rows or of the columns' rows. Every statistic is :mod:`analyzer.stats.units`' own (the
verdicts' definitions): RFC 2330 §11.3 conditional percentiles (RFC 6703 §5.3), the RFC 7679
§5.2 median, the RFC 7680 §4.1 loss ratio. Times are bucketed in the local time of the zone
the inventory declares (the index's ``tz``: the province's; a target's trend in the target's
own), through :mod:`analyzer.localtime`. :mod:`analyzer.views` re-exports what the pages use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from analyzer.localtime import local_dates, local_minutes, serving_tier
from analyzer.rollups.columns import SERIES, DelayColumns, RollupColumns
from analyzer.rollups.tiers import TIER_MINUTES
from analyzer.stats.compare import STAT_MAP
from analyzer.stats.units import (
    UnitTable,
    align,
    merge_tables,
    per_unit_statistic,
    table_from_columns,
)
from analyzer.store.base import Query, ReadStore
from inventory.topology import PathEnds
from ixmeter.core.rules import Method

PathKey = tuple[str, str, str]  # (path_id, method, type_p)
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

NS = 1_000_000_000
NS_PER_HOUR = 3600 * NS
NS_PER_DAY = 24 * NS_PER_HOUR


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open time window [start_ns, end_ns), UTC nanoseconds."""

    start_ns: int
    end_ns: int

    def query(self, path_ids: Sequence[str] = (), method: str | None = None,
              tier: str = "minute") -> Query:
        return Query(self.start_ns, self.end_ns, tuple(path_ids), method, tier=tier)

    @property
    def days(self) -> float:
        return (self.end_ns - self.start_ns) / NS_PER_DAY

    @classmethod
    def from_local_dates(cls, start: str, end: str, tz: str) -> Window:
        """Window from two ISO dates read in ``tz``; ``end`` is inclusive (whole day)."""
        return cls(*local_dates(start, end, tz))

# --- merged rollups: the analyzer's unit tables ---------------------------------------------


@dataclass(frozen=True)
class Merged:
    """Rows of merged rollups (one per time bucket, or per group of paths) as the analyzer's
    unit tables, one per delay series read (``rtt``, ``fwd``, ``bwd``), row for row the same.
    Every statistic is the analyzer's own (:func:`analyzer.stats.units.per_unit_statistic`,
    names as :data:`analyzer.stats.compare.STAT_MAP`), so a dashboard cell and a verdict
    share one definition: RFC 2330 §11.3 conditional percentiles (RFC 6703 §5.3), the RFC 7679
    §5.2 median, the RFC 7680 §4.1 loss ratio."""

    t_ns: IntArray  # a bucket's start (UTC ns), or the group's number
    tables: Mapping[str, UnitTable]
    clock_error_ns: FloatArray | None = None  # per row: the largest bound (NaN: none given)

    def __len__(self) -> int:
        return len(self.t_ns)

    def values(self, name: str) -> FloatArray:
        """One named statistic per row (inventory.schema.KNOWN_STATISTICS): delays in ms, loss
        as a ratio, NaN where undefined. ``owd_median`` is the larger of the two directions'
        medians (RFC 7679 §5.2)."""
        if name not in STAT_MAP or name == "pdv_p99":
            raise ValueError(f"statistic {name!r} is not shown by the dashboard")
        which, stat = STAT_MAP[name]
        if which == "owd":
            with np.errstate(all="ignore"):
                v = np.fmax(per_unit_statistic(self.tables["fwd"], stat),
                            per_unit_statistic(self.tables["bwd"], stat))
        else:
            v = per_unit_statistic(self.tables[which], stat)
        return v if stat == "loss_ratio" else v / 1e6

    def received(self) -> IntArray:
        """Delays in each row (received packets): the N of RFC 2330 §11.3."""
        return self.tables["rtt"].n.astype(np.int64)


def statistic(m: Merged, name: str, row: int = 0) -> float | None:
    """One named statistic of one row of ``m`` (:meth:`Merged.values`); None where undefined."""
    v = float(m.values(name)[row])
    return None if math.isnan(v) else v


def _opt(values: FloatArray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in values.tolist()]


def distribution(m: Merged, which: str = "rtt") -> tuple[list[float], list[float]]:
    """Empirical CDF of the first row's merged sketch: bucket representative values (ms) and
    F(x) (the zero bucket, column 0, at 0 ms)."""
    t = m.tables[which]
    counts = t.counts[0]
    total = counts.sum()
    if total <= 0:
        return [], []
    keep = counts > 0
    return (t.values[keep] / 1e6).tolist(), (np.cumsum(counts)[keep] / total).tolist()


class _Lazy(Mapping[str, UnitTable]):
    """Unit tables by delay series, each built on first use: a matrix of RTT never decodes
    the one-way sketches."""

    def __init__(self, names: Iterable[str], build: Callable[[str], UnitTable]) -> None:
        self._names, self._build = tuple(names), build
        self._built: dict[str, UnitTable] = {}

    def __getitem__(self, which: str) -> UnitTable:
        if which not in self._names:
            raise KeyError(which)
        if which not in self._built:
            self._built[which] = self._build(which)
        return self._built[which]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


CHUNK_ROWS = 250_000  # rows decoded at once: a year of a province's sketches is gigabytes


def _table(cols: RollupColumns, rows: IntArray, which: str, unit_minutes: int) -> UnitTable:
    """:func:`analyzer.stats.units.table_from_columns`, decoding at most :data:`CHUNK_ROWS`
    sketches at a time and adding the parts (:func:`analyzer.stats.units.merge_tables`)."""
    if len(rows) <= CHUNK_ROWS:
        return table_from_columns(cols, rows, which, unit_minutes)
    return merge_tables([table_from_columns(cols, rows[i:i + CHUNK_ROWS], which, unit_minutes)
                         for i in range(0, len(rows), CHUNK_ROWS)])


def _grouped(t: UnitTable, groups: Sequence[IntArray]) -> UnitTable:
    """A table whose row ``g`` is the merge of rows ``groups[g]`` of ``t`` (each non-empty):
    counts and sums add, extremes take their min and max (exact, like merging rollups)."""
    order = np.concatenate(groups)
    starts = np.cumsum([0, *[len(g) for g in groups[:-1]]])

    def add(a: FloatArray) -> FloatArray:
        out: FloatArray = np.add.reduceat(a[order], starts, axis=0)
        return out

    return UnitTable(np.arange(len(groups), dtype=np.int64), add(t.sent), add(t.lost),
                     add(t.n), add(t.total), np.minimum.reduceat(t.mins[order], starts),
                     np.maximum.reduceat(t.maxs[order], starts), t.values, t.keys,
                     add(t.counts), t.gamma, t.clock_error_ns, t.unsynced)


# --- an index of one window's rollups --------------------------------------------------------


MINUTE_WINDOW_NS = 6 * NS_PER_HOUR  # windows up to this long are drawn by minute
_TIER_OF_BUCKET = {"minute": "minute", "hour": "hour", "day": "day"}
_FINER = ("minute", "hour", "day")


def display_bucket(window: Window) -> str:
    """The time resolution a window is drawn at: ``minute`` up to 6 hours (a live demo),
    ``hour`` up to 14 days, else ``day`` (a year)."""
    length = window.end_ns - window.start_ns
    if length <= MINUTE_WINDOW_NS:
        return "minute"
    return "hour" if length <= 14 * NS_PER_DAY else "day"


def index_tier(window: Window) -> str:
    """The store tier a window is read from: the coarsest that serves its ends exactly
    (:func:`analyzer.localtime.serving_tier`, the evaluator's rule) and is no coarser than
    the window's display bucket. A year on UTC day boundaries reads the day tier; one on
    local (+08:00) midnights reads the hour tier."""
    tier, _ = serving_tier("auto", [(window.start_ns, window.end_ns)], None, None)
    return min(tier, _TIER_OF_BUCKET[display_bucket(window)], key=_FINER.index)


@dataclass
class RollupIndex:
    """One window's rollups as numpy columns (``ReadStore.read_rollup_columns`` of the tier
    :func:`index_tier` picks), read once per data refresh, with each path's total over the
    window as unit tables (one row per key, sketches decoded once). Groups (matrix cells, a
    target's scope) are merges of those rows, buckets (a path's or a scope's series) are
    merges of the columns' rows: numpy over arrays, no Python object per rollup."""

    window: Window
    tier: str
    cols: RollupColumns
    tz: str  # local time of the buckets and hours (an IANA zone, the inventory's)
    keys: list[PathKey] = field(init=False)
    _order: IntArray = field(init=False)
    _starts: IntArray = field(init=False)
    _by_key: dict[PathKey, int] = field(init=False)
    _totals: dict[str, UnitTable] = field(default_factory=dict)
    cache: dict[Any, Any] = field(default_factory=dict)  # derived figures (matrix cells, scopes)

    def __post_init__(self) -> None:
        self.keys = [(lb[0], lb[1], lb[2]) for lb in self.cols.labels]
        self._by_key = {k: i for i, k in enumerate(self.keys)}
        self._order = np.argsort(self.cols.series, kind="stable")
        self._starts = np.searchsorted(self.cols.series[self._order],
                                       np.arange(len(self.keys) + 1))

    @property
    def unit_ns(self) -> int:
        return TIER_MINUTES[self.tier] * 60 * NS

    def ends(self, i: int) -> PathEnds:
        lb = self.cols.labels[i]
        return PathEnds(lb[3], lb[4], lb[5], lb[6])

    def select(self, method: str | None = None, type_p: str | None = None) -> list[PathKey]:
        return sorted(k for k in self.keys
                      if (method is None or k[1] == method) and (type_p is None or k[2] == type_p))

    def type_ps(self, method: str | None = None) -> list[str]:
        return sorted({k[2] for k in self.select(method)})

    def positions(self, keys: Iterable[PathKey]) -> IntArray:
        return np.array([self._by_key[k] for k in keys if k in self._by_key], dtype=np.int64)

    def totals(self, which: str = "rtt") -> UnitTable:
        """Row ``i``: key ``i`` merged over the window (built once per series)."""
        if which not in self._totals:
            by_key = replace(self.cols, minute=self.cols.series)
            has = np.flatnonzero(self.cols.delays[which].n > 0) if which != "rtt" \
                else np.arange(len(self.cols))  # one-way sketches: STAMP rows only
            t = _table(by_key, has, which, 1)
            every = np.arange(len(self.keys), dtype=np.int64)
            self._totals[which] = t if len(t) == len(every) else align(t, every)
        return self._totals[which]

    def groups(self, members: Sequence[IntArray]) -> Merged:
        """Row ``g``: the keys at positions ``members[g]`` (each non-empty) merged."""
        return Merged(np.arange(len(members), dtype=np.int64),
                      _Lazy(self.cols.delays, lambda w: _grouped(self.totals(w), members)))

    def per_key(self) -> Merged:
        """Row ``i``: key ``i`` over the window."""
        return Merged(np.arange(len(self.keys), dtype=np.int64),
                      _Lazy(self.cols.delays, self.totals))

    def group_total(self, keys: Iterable[PathKey]) -> Merged | None:
        """The keys merged over the window (one row), None when none is in the window."""
        pos = self.positions(keys)
        return self.groups([pos]) if len(pos) else None

    def rows_of(self, keys: Iterable[PathKey], hours: Sequence[int] = (),
                tz: str | None = None) -> IntArray:
        """Rows of the columns of ``keys`` (ascending), optionally only rows whose unit starts
        in one of the local ``hours`` of the day in ``tz`` (default: the index's zone; hour
        or minute tiers)."""
        pos = self.positions(keys)
        rows = np.sort(np.concatenate([self._order[self._starts[i]:self._starts[i + 1]]
                                       for i in pos.tolist()] or [np.zeros(0, np.int64)]))
        if hours and self.tier != "day":
            hod = (local_minutes(self.cols.minute[rows], tz or self.tz) // 60) % 24
            rows = rows[np.isin(hod, list(hours))]
        return rows

    def buckets(self, keys: Iterable[PathKey], bucket: str = "hour",
                hours: Sequence[int] = (), tz: str | None = None) -> Merged:
        """The keys merged per minute, local hour or local day in ``tz`` (default: the
        index's zone; sorted), optionally only some local hours. A tier row is never split:
        read from the tier of the bucket (a year from the day tier), a bucket is a tier unit
        (a UTC day); coarser, a row goes to the local bucket its first minute is in. Cached:
        several targets share one scope."""
        ck = ("buckets", tuple(keys), bucket, tuple(hours), tz or self.tz)
        if ck not in self.cache:
            self.cache[ck] = self._merge_buckets(ck[1], bucket, ck[3], ck[4])
        out: Merged = self.cache[ck]
        return out

    def _merge_buckets(self, keys: Sequence[PathKey], bucket: str,
                       hours: Sequence[int], tz: str) -> Merged:
        if _FINER.index(bucket) < _FINER.index(self.tier):
            raise ValueError(f"{bucket} buckets of a window read from the {self.tier} tier")
        rows = self.rows_of(keys, hours, tz)
        size = TIER_MINUTES[bucket]
        minute = self.cols.minute[rows]
        cols, local = self.cols, minute  # a tier's own unit: as stored
        if bucket != self.tier:  # a bucket's rows by their local first minute
            local = local_minutes(minute, tz)
            at = np.zeros(len(self.cols), dtype=np.int64)
            at[rows] = local
            cols = replace(self.cols, minute=at)
        t_loc, first, unit = np.unique(local - local % size, return_index=True,
                                       return_inverse=True)
        tables = _Lazy(self.cols.delays, lambda w: _table(cols, rows, w, size))
        clock = np.full(len(t_loc), np.nan)
        np.fmax.at(clock, unit, self.cols.clock_error_max_ns[rows])
        utc = t_loc - (local - minute)[first]  # back to UTC by the zone's offset there
        return Merged(utc * 60 * NS, tables, clock)


def load_index(store: ReadStore, window: Window, tz: str,
               path_ids: Sequence[str] = ()) -> RollupIndex:
    """Read a window's rollups from the tier :func:`index_tier` picks, as columns: one-way
    series only for STAMP (the other methods' one-way sketches are empty, and a province's
    year of them is millions of blobs); buckets and hours local to ``tz``."""
    tier = index_tier(window)
    parts = [store.read_rollup_columns(window.query(path_ids, m.value, tier),
                                       SERIES if m is Method.STAMP else ("rtt",))
             for m in Method]
    return RollupIndex(window, tier, _concat(parts), tz)


def _no_delays(rows: int) -> DelayColumns:
    return DelayColumns(np.zeros(rows, np.int64), np.full(rows, math.nan),
                        np.full(rows, math.nan), np.zeros(rows), np.zeros(rows + 1, np.int64),
                        [])


def _concat(parts: Sequence[RollupColumns]) -> RollupColumns:
    """Several reads' columns as one (series renumbered; a delay series a part did not read
    is empty there)."""
    labels: list[Any] = []
    series = []
    for c in parts:
        series.append(c.series + len(labels))
        labels.extend(c.labels)
    ints = {name: np.concatenate([getattr(c, name) for c in parts]).astype(np.int64)
            for name in ("minute", "sent", "received", "lost", "errors", "unsynced")}
    delays = {}
    for which in SERIES:
        cols = [c.delays.get(which) or _no_delays(len(c)) for c in parts]
        starts: list[IntArray] = [np.zeros(1, np.int64)]
        blobs: list[bytes] = []
        for d in cols:
            starts.append(d.starts[1:] + len(blobs))
            blobs.extend(d.blobs)
        n, lo, hi, total = (np.concatenate([getattr(d, f) for d in cols])
                            for f in ("n", "min", "max", "sum"))
        delays[which] = DelayColumns(n, lo, hi, total, np.concatenate(starts), blobs)
    return RollupColumns(labels, np.concatenate(series).astype(np.int64),
                         clock_error_max_ns=np.concatenate(
                             [c.clock_error_max_ns for c in parts]),
                         delays=delays, **ints)
