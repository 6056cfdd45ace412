"""Glue: store + inventory + windows -> one verdict row per policy target and scope group.

For each policy target (inventory data, nothing province-specific here): select the rollups of
the target's method whose directed path is in the target's scope (``Topology.in_scope``), keep
the busy hours if the aggregation says so (local hours in its time zone), group them by the
target's ``per`` (scope, carrier pair, city pair, path) and Type-P (RFC 2330 §13: different
Type-P are never compared), then compare as the target says (relative to the baseline, absolute,
or relative to the reference scope) and apply Holm over per-pair lists. Day-by-day rules (N
consecutive days) are fault rules, judged by :mod:`analyzer.faults`.

The statistics, intervals and rules are in :mod:`analyzer.stats` and :mod:`analyzer.stats.verdicts`;
docs/methodology.md cites each. Deterministic: every row's bootstrap seed is derived from the
run's seed and the row's identity, so the order of evaluation does not matter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from analyzer import baselines as bl
from analyzer import clockdomain
from analyzer import groups as grp
from analyzer.localtime import TIER_MINUTES, local_minutes, offset_at_hour, why_not
from analyzer.rollups.columns import SERIES, RollupColumns, take_columns
from analyzer.rollups.model import MinuteRollup
from analyzer.stats.compare import (
    STAT_MAP,
    Comparison,
    compare_absolute,
    compare_declared,
    compare_ratio,
)
from analyzer.stats.units import IntArray, UnitTables
from analyzer.stats.verdicts import Decision, Verdict, holm_adjust
from analyzer.store.base import Query, ReadStore
from inventory.schema import Aggregation, Inventory, PathScope, PolicyTarget
from inventory.topology import PathEnds, Topology, group_key, source_carrier

DEFAULT_SEED = 20260101


@dataclass(frozen=True, slots=True)
class Params:
    """One analysis run: windows, seed, bootstrap replicates, unit size (minutes), and the
    store tier to read (``auto``: :func:`choose_tier`; or ``minute``, ``hour``, ``day``)."""

    current: bl.TimeWindow
    baseline: bl.TimeWindow | None = None
    seed: int = DEFAULT_SEED
    replicates: int = 2000
    unit_minutes: int = 1
    tier: str = "auto"


TIER_MIN_UNITS = 60  # a window is read from a tier only if it selects at least this many units
_NS_MIN = 60_000_000_000
_NS_HOUR = 60 * _NS_MIN


def _busy(agg: Aggregation) -> bool:
    return agg.window == "busy_hours" and bool(agg.busy_hours)


def selected_units(w: bl.TimeWindow, size: int, agg: Aggregation) -> int:
    """How many units of ``size`` minutes of the window the aggregation keeps: all of them, or
    for busy hours the hours whose local hour is a busy one."""
    if not _busy(agg):
        return (w.end_ns - w.start_ns) // (size * _NS_MIN)
    hours = range(w.start_ns // _NS_HOUR, -(-w.end_ns // _NS_HOUR))
    return sum((h + offset_at_hour(h, agg.timezone) // 60) % 24 in agg.busy_hours
               for h in hours)


def choose_tier(windows: Sequence[bl.TimeWindow], agg: Aggregation, unit_minutes: int) -> str:
    """The coarsest store tier a target can be evaluated from without changing what it
    selects (:func:`analyzer.localtime.why_not`: busy hours need local hours tiled by the
    tier's UTC units) and that leaves each window at least :data:`TIER_MIN_UNITS` selected
    units for the block bootstrap; a ``unit_minutes`` larger than the tier must be a multiple
    of it. Else ``minute``."""
    spans = [(w.start_ns, w.end_ns) for w in windows]
    for tier in ("day", "hour"):
        size = TIER_MINUTES[tier]
        busy = _busy(agg)
        if why_not(tier, spans, agg.timezone if busy else None, 60 if busy else None):
            continue
        if any(selected_units(w, size, agg) < TIER_MIN_UNITS for w in windows):
            continue
        if unit_minutes > size and unit_minutes % size:
            continue
        return tier
    return "minute"


@dataclass(frozen=True)
class Row:
    """One verdict: a policy target x scope group x Type-P."""

    target: str
    scope: str
    per: str
    type_p: str
    statistic: str
    comparison: str
    baseline_source: str | None
    result: Comparison
    decision: Decision
    p_adj_pass: float | None = None
    p_adj_fail: float | None = None


@dataclass
class Evaluation:
    """All rows of a run plus what was left out and why."""

    params: Params
    rows: list[Row]
    exclusions: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


WindowKey = tuple[int, int, int, str]  # store, window, tier
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Rows:
    """Some rows of one columnar store read (ascending indices, so in key order): a group of
    rollups, without an object per rollup."""

    cols: RollupColumns
    idx: IntArray

    def __len__(self) -> int:
        return len(self.idx)

    @property
    def minutes(self) -> IntArray:
        return self.cols.minute[self.idx]

    @property
    def series(self) -> IntArray:
        return self.cols.series[self.idx]

    def where(self, keep: BoolArray) -> Rows:
        """The rows where ``keep`` (one flag per row) is true."""
        return Rows(self.cols, self.idx[keep])

    def of_series(self, keep: BoolArray) -> Rows:
        """The rows whose series ``keep`` (one flag per series of the read) is true."""
        return self.where(keep[self.series])

    def split(self, codes: IntArray) -> dict[int, Rows]:
        """The rows by ``codes`` (one per row), each part in key order, codes ascending."""
        if not len(codes):
            return {}
        order = np.argsort(codes, kind="stable")
        values, counts = np.unique(codes[order], return_counts=True)
        parts = np.split(self.idx[order], np.cumsum(counts)[:-1])
        return {int(v): Rows(self.cols, p) for v, p in zip(values, parts, strict=True)}

    def samples(self) -> int:
        """Packets that were samples (received + lost)."""
        return int(self.cols.received[self.idx].sum() + self.cols.lost[self.idx].sum())

    def heads(self) -> list[MinuteRollup]:
        """One label-only rollup per series of the read (path ends, method, Type-P)."""
        return [MinuteRollup(path, ss, sc, ds, dc, method, type_p, 0)
                for path, method, type_p, ss, sc, ds, dc in self.cols.labels]

    @staticmethod
    def joined(parts: Sequence[Rows]) -> Rows:
        """Rows of several reads as one (:func:`analyzer.stats.units.take_columns`)."""
        if len(parts) == 1:
            return parts[0]
        cols = take_columns([(p.cols, p.idx) for p in parts])
        return Rows(cols, np.arange(len(cols), dtype=np.int64))


class _Context:
    def __init__(self, store: ReadStore, inv: Inventory, params: Params,
                 baseline_store: ReadStore | None) -> None:
        self.store, self.inv, self.params = store, inv, params
        self.baseline_store = baseline_store
        self.topo = Topology(inv)
        self.domains = clockdomain.DomainIndex(inv)
        self._cache: dict[tuple[int, int, int, str, frozenset[str | None]], Rows] = {}
        self._plans: dict[WindowKey, dict[str | None, set[str]]] = {}
        self._tables: dict[tuple[int, int, bytes], UnitTables] = {}
        self.tiers_used: dict[str, set[str]] = {}
        self._scope: dict[tuple[str, str], bool] = {}
        self.exclusions: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self._seen: dict[tuple[str, str, str], set[int]] = {}
        self._known: dict[tuple[str, str], bool] = {}
        self.baseline_windows: set[bl.TimeWindow] = set()
        self.groupings = {tid: g for g in grp.groupings(inv) for tid in g.targets}
        self._sites = tuple(sorted(s.id for s in inv.sites if self.topo.city_of(s.id)))

    def city_of(self, site: str) -> str | None:
        city = self.topo.city_of(site)
        return city.id if city else None

    @staticmethod
    def _key(store: ReadStore, w: bl.TimeWindow, tier: str) -> WindowKey:
        return (id(store), w.start_ns, w.end_ns, tier)

    def plan(self, store: ReadStore, w: bl.TimeWindow, method: str | None, tier: str,
             series: Sequence[str]) -> None:
        """Say that a target will read this window with this method (None: all) and these
        delay series. A window is read once for all targets of a method, with the union of
        their series, and once for all methods that need the same series (each filtered read
        would scan the whole window again; one-way series are not read for RTT-only methods)."""
        plans = self._plans.setdefault(self._key(store, w, tier), {})
        plans.setdefault(method, set()).update(series)

    def read(self, store: ReadStore, w: bl.TimeWindow, method: str | None,
             tier: str = "minute") -> Rows:
        """The usable rows of ``method`` (None: all) in the window, from the read shared by
        the methods planned with the same series."""
        plans = self._plans.get(self._key(store, w, tier), {})
        if method in plans:
            series = plans[method]
            group = frozenset(m for m, s in plans.items() if s == series)
        else:  # not planned: all series, a read of its own
            series, group = set(SERIES), frozenset([method])
        only = method if len(group) == 1 else None
        key = (*self._key(store, w, tier), group)
        if key not in self._cache:
            q = Query(w.start_ns, w.end_ns, method=only) if tier == "minute" else \
                Query(w.start_ns, w.end_ns, method=only, tier=tier)
            cols = store.read_rollup_columns(q, [s for s in SERIES if s in series])
            self._cache[key] = Rows(cols, self._usable(cols, None if None in group
                                                       else group))
        rows = self._cache[key]
        if method is None or only is not None:
            return rows
        return rows.of_series(np.array([label[1] == method for label in rows.cols.labels],
                                       dtype=bool))

    def _usable(self, cols: RollupColumns, methods: frozenset[str | None] | None) -> IntArray:
        """Rows of ``methods`` (None: any) that are not traceroute and whose sites are in the
        inventory; notes error records and unknown sites (exclusions, once per rollup key)."""
        looked_at = np.array([label[1] != "traceroute" and (methods is None or label[1] in
                                                            methods)
                              for label in cols.labels], dtype=bool)
        known = np.array([self._known_ends(label[3], label[5]) for label in cols.labels],
                         dtype=bool)
        looked = looked_at[cols.series]
        self._note_exclusions(Rows(cols, np.flatnonzero(looked)), known)
        return np.flatnonzero(looked & known[cols.series])

    def _known_ends(self, src: str, dst: str) -> bool:
        """Whether both sites are in the inventory (once per site pair)."""
        known = self._known.get((src, dst))
        if known is None:
            known = self._known[(src, dst)] = self.topo.city_of(src) is not None and \
                self.topo.city_of(dst) is not None
        return known

    def _note_exclusions(self, rows: Rows, known: BoolArray) -> None:
        """Exclude the rows of unknown sites, else with error records, whose key was not
        seen before; every key of ``rows`` is seen afterwards."""
        cols = rows.cols
        for s, part in rows.split(rows.series).items():
            label = cols.labels[s]
            seen = self._seen.setdefault(label[:3], set())
            bad = part if not known[s] else part.where(cols.errors[part.idx] != 0)
            for i in bad.idx.tolist():
                if int(cols.minute[i]) not in seen:
                    self._exclude(label[:3], int(cols.sent[i]), int(cols.errors[i]), known[s])
            seen.update(part.minutes.tolist())

    def select(self, store: ReadStore, w: bl.TimeWindow, method: str | None,
               scope: PathScope, tier: str = "minute") -> Rows:
        scope_key = scope.model_dump_json()
        rows = self.read(store, w, method, tier)
        keep = np.zeros(len(rows.cols.labels), dtype=bool)
        for s, r in enumerate(rows.heads()):
            k = (scope_key, r.path_id)
            if k not in self._scope:
                ends = PathEnds(r.src_site, r.src_carrier, r.dst_site, r.dst_carrier)
                self._scope[k] = self.topo.in_scope(scope, ends)
            keep[s] = self._scope[k]
        return rows.of_series(keep)

    def grouped(self, store: ReadStore, w: bl.TimeWindow, g: grp.Grouping, tier: str,
                scope: PathScope, per: str, series: Sequence[str]
                ) -> dict[tuple[str, str], list[Rows]]:
        """Rows by (group, Type-P) of a grouped target (:mod:`analyzer.groups`): the group
        rows of the units built for its grouping, the path rows of the others; exclusions
        are noted from the path rows the grouping keeps for them."""
        cols, built = store.read_group_columns(
            g.id, Query(w.start_ns, w.end_ns, method=g.method, tier=tier), series)
        out: dict[tuple[str, str], list[Rows]] = {}
        cut = len(g.id) + 1
        for s, part in Rows(cols, np.arange(len(cols), dtype=np.int64)).split(
                cols.series).items():
            label = cols.labels[s]
            if label[0][cut - 1] == ":":
                out.setdefault((label[0][cut:], label[2]), []).append(part)
            else:  # a path row kept for exclusions
                self._usable(replace(take_columns([(cols, part.idx)]), labels=[
                    (lb[0][cut:], *lb[1:]) for lb in cols.labels]),
                    None if g.method is None else frozenset([g.method]))
        size = TIER_MINUTES[tier]
        first, last = w.start_ns // _NS_MIN, (w.end_ns - 1) // _NS_MIN
        units = range(first - first % size, last + 1, size)
        for sub in grp.unit_windows([u for u in units if u not in built], size, w):
            for key, rows in _groups(self, self.select(store, sub, g.method, scope, tier),
                                     per).items():
                out.setdefault(key, []).append(rows)
        return out

    def tables(self, rows: Rows, unit_minutes: int) -> UnitTables:
        """The unit tables of ``rows``, built once per evaluation (targets that select the
        same rows, e.g. a latency and a loss target of one scope, share them)."""
        key = (id(rows.cols), unit_minutes, rows.idx.tobytes())
        if key not in self._tables:
            self._tables[key] = UnitTables(rows.cols, rows.idx, unit_minutes)
        return self._tables[key]

    def _exclude(self, key: tuple[str, str, str], sent: int, errors: int, known: bool) -> None:
        """Count a left-out minute of a (path, method, Type-P)."""
        why = "error records (not samples)" if known else "site not in the inventory"
        path, method, type_p = key
        e = self.exclusions.setdefault((*key, why), {"path": path, "method": method,
                                                     "type_p": type_p, "reason": why,
                                                     "minutes": 0, "records": 0})
        e["minutes"] += 1
        e["records"] += errors if known else sent + errors


def row_seed(seed: int, *parts: str) -> int:
    """A per-row seed from the run seed and the row's identity (order-independent)."""
    digest = hashlib.sha256(":".join((str(seed), *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def busy_hours(rows: Rows, agg: Aggregation) -> Rows:
    """Keep rollups whose local hour (``agg.timezone``) is one of ``agg.busy_hours``."""
    if not _busy(agg):
        return rows
    hour = (local_minutes(rows.minutes, agg.timezone) // 60) % 24
    return rows.where(np.isin(hour, list(agg.busy_hours)))


def _groups(ctx: _Context, rows: Rows, per: str) -> dict[tuple[str, str], Rows]:
    """Rows by (group key, Type-P), keys sorted."""
    of_head = [(group_key(PathEnds(*label[3:7]), per, ctx.city_of), label[2])
               for label in rows.cols.labels]
    keys = sorted(set(of_head))
    code = {k: i for i, k in enumerate(keys)}
    of_series = np.array([code[k] for k in of_head], dtype=np.int64)
    return {keys[i]: part for i, part in rows.split(of_series[rows.series]).items()}


def path_ends(rows: Rows) -> list[PathEnds]:
    """The directed paths of a group of rows."""
    labels = rows.cols.labels
    return [PathEnds(*labels[s][3:7]) for s in np.unique(rows.series).tolist()]


def _reference_rows(ref: Rows, per: str, group: str, type_p: str) -> Rows:
    """The reference scope's rollups a group is compared with: the same Type-P and, when
    grouping by carrier pair or path, the same source carrier (its in-network paths)."""
    src = source_carrier(group, per)
    return ref.of_series(np.array([r.type_p == type_p and src in (None, r.src_carrier)
                                   for r in ref.heads()], dtype=bool))


class _TargetRun:
    """Evaluates one policy target."""

    def __init__(self, ctx: _Context, t: PolicyTarget) -> None:
        self.ctx, self.t, self.p = ctx, t, ctx.params
        self.method = t.method.value if t.method else None
        self.res: bl.ResolvedBaseline | str | None = None
        windows = [self.p.current]
        if t.comparison.kind == "relative":
            self.res = bl.resolve(t, ctx.inv, self.p.baseline, ctx.baseline_store is not None)
            if not isinstance(self.res, str) and self.res.window is not None:
                windows.append(self.res.window)
        self.tier = self.p.tier if self.p.tier != "auto" else choose_tier(
            windows, t.aggregation, self.p.unit_minutes)
        self.unit = max(self.p.unit_minutes, TIER_MINUTES[self.tier])
        ctx.tiers_used.setdefault(f"{self.tier} (bootstrap unit {self.unit} min)",
                                  set()).add(t.id)
        self.series = SERIES if STAT_MAP[t.statistic][0] == "owd" else ("rtt",)
        self.grouping = ctx.groupings.get(t.id) if self.tier in grp.GROUPED_TIERS else None
        for store, w in self._reads():
            ctx.plan(store, w, self.method, self.tier, self.series)

    def _reads(self) -> list[tuple[ReadStore, bl.TimeWindow]]:
        """The store windows this target reads: the current window, and the baseline's."""
        reads = [(self.ctx.store, self.p.current)]
        res = self.res
        if isinstance(res, bl.ResolvedBaseline) and res.kind != "declared" and \
                res.window is not None:
            store = self.ctx.baseline_store if res.separate_store else self.ctx.store
            if store is not None:
                reads.append((store, res.window))
        return reads

    def _select(self, store: ReadStore, w: bl.TimeWindow, scope: PathScope) -> Rows:
        return busy_hours(self.ctx.select(store, w, self.method, scope, self.tier),
                          self.t.aggregation)

    def _by_group(self, store: ReadStore, w: bl.TimeWindow) -> dict[tuple[str, str], Rows]:
        """The window's rows of the target's scope by (group, Type-P), keys sorted."""
        if self.grouping is None:
            return _groups(self.ctx, self._select(store, w, self.t.scope), self.t.per)
        parts = self.ctx.grouped(store, w, self.grouping, self.tier, self.t.scope, self.t.per,
                                 self.series)
        return {k: busy_hours(Rows.joined(parts[k]), self.t.aggregation)
                for k in sorted(parts)}

    def rows(self) -> list[Row]:
        kind = self.t.comparison.kind
        if kind == "relative":
            rows = self._relative(self._by_group(self.ctx.store, self.p.current))
        elif kind == "reference":
            rows = self._reference(self._select(self.ctx.store, self.p.current,
                                                self.t.scope))
        else:
            rows = [self._row(g, tp, rs, None, None) for (g, tp), rs in
                    self._by_group(self.ctx.store, self.p.current).items()]
        if not rows:
            rows = [self._empty("no data in the current window for this scope and method")]
        return self._holm(rows)

    def _relative(self, cur: dict[tuple[str, str], Rows]) -> list[Row]:
        res = self.res
        assert res is not None
        if isinstance(res, str):
            return [self._empty(res)]
        base_groups: dict[tuple[str, str], Rows] = {}
        if res.kind != "declared":
            store = self.ctx.baseline_store if res.separate_store else self.ctx.store
            assert store is not None
            assert res.window is not None
            if res.window != bl.TimeWindow(*bl.ALL_TIME) and not res.separate_store:
                self.ctx.baseline_windows.add(res.window)  # window notes: same store only
            base_groups = self._by_group(store, res.window)
        rows = []
        for (g, tp), rs in cur.items():
            if res.kind == "declared":
                rows.append(self._row(g, tp, rs, None, res))
                continue
            other = sorted(t for (gg, t) in base_groups if gg == g and t != tp)
            if (g, tp) not in base_groups:
                why = (f"different Type-P: baseline {', '.join(other)} vs current {tp}"
                       if other else "no baseline data for this group")
                rows.append(self._not_evaluable(g, tp, rs, why, res.source))
                continue
            rows.append(self._row(g, tp, rs, base_groups[(g, tp)], res))
        return rows

    def _reference(self, cur: Rows) -> list[Row]:
        ref_scope = self.t.comparison.reference
        assert ref_scope is not None
        ref = self._select(self.ctx.store, self.p.current, ref_scope)
        rows = []
        for (g, tp), rs in _groups(self.ctx, cur, self.t.per).items():
            refs = _reference_rows(ref, self.t.per, g, tp)
            if not refs:
                rows.append(self._not_evaluable(g, tp, rs, "no reference-scope data of the "
                                                "same Type-P", "reference scope"))
                continue
            rows.append(self._row(g, tp, rs, refs, None))
        return rows

    def _compare(self, g: str, tp: str, rows: Rows, other_rows: Rows | None,
                 res: bl.ResolvedBaseline | None) -> Comparison:
        c = self.t.comparison
        seed = row_seed(self.p.seed, self.t.id, g, tp)
        stat, reps, unit = self.t.statistic, self.p.replicates, self.unit
        cur = self.ctx.tables(rows, unit)
        other = None if other_rows is None else self.ctx.tables(other_rows, unit)
        if c.kind == "absolute":
            limit = c.threshold * (1e6 if c.threshold_unit == "ms" else 1)  # ms -> ns
            if STAT_MAP[stat][0] != "owd":
                return compare_absolute(cur, limit, stat, seed, reps, unit)
            tables, used = clockdomain.apply(self.ctx.domains, cur, rows.cols, rows.idx)
            result = compare_absolute(tables, limit, stat, seed, reps, unit)
            if not used:
                return result
            reason = f"{result.decision.reason}; {clockdomain.describe(used)}"
            return replace(result, decision=replace(result.decision, reason=reason),
                           details={**result.details, "clock_domains": [d.id for d in used]})
        theta = c.threshold
        if res is not None and res.kind == "declared":
            d, why = bl.declared_for(res, stat, path_ends(rows), self.ctx.topo.in_scope)
            return compare_declared(cur, None if d is None else (d.value, d.unit), theta, stat,
                                    seed, reps, unit, d.scope_label if d else None, why)
        assert other is not None
        return compare_ratio(cur, other, theta, stat, seed, reps, unit,
                             paired=c.kind == "reference")

    def _row(self, g: str, tp: str, cur: Rows, other: Rows | None,
             res: bl.ResolvedBaseline | None) -> Row:
        result = self._compare(g, tp, cur, other, res)
        source = res.source if res else ("reference scope" if other is not None else None)
        return Row(self.t.id, g, self.t.per, tp, self.t.statistic, self.t.comparison.kind,
                   source, result, result.decision)

    def _not_evaluable(self, g: str, tp: str, cur: Rows | None, why: str,
                       source: str | None) -> Row:
        samples = cur.samples() if cur is not None else 0
        result = Comparison(current_n=samples, decision=Decision(Verdict.NOT_EVALUABLE, why))
        return Row(self.t.id, g, self.t.per, tp, self.t.statistic, self.t.comparison.kind,
                   source, result, result.decision)

    def _empty(self, why: str) -> Row:
        return self._not_evaluable("-", "-", None, why, None)

    def _holm(self, rows: list[Row]) -> list[Row]:
        if self.t.per == "scope" or len(rows) < 2:
            return rows
        adjusted = holm_adjust([r.decision for r in rows])
        return [replace(r, decision=d, p_adj_pass=ap, p_adj_fail=af)
                for r, (d, ap, af) in zip(rows, adjusted, strict=True)]


def evaluate(store: ReadStore, inv: Inventory, params: Params,
             baseline_store: ReadStore | None = None,
             targets: Sequence[str] | None = None) -> Evaluation:
    """Evaluate every policy target of ``inv`` (or those named in ``targets``)."""
    ctx = _Context(store, inv, params, baseline_store)
    runs = [_TargetRun(ctx, t) for t in sorted(inv.policy_targets, key=lambda t: t.id)
            if (not targets or t.id in targets) and t.statistic in STAT_MAP]
    rows: list[Row] = []
    for run in runs:
        rows.extend(run.rows())
    exclusions = [ctx.exclusions[k] for k in sorted(ctx.exclusions)]
    windows = sorted(ctx.baseline_windows, key=lambda w: (w.start_ns, w.end_ns))
    return Evaluation(params, rows, exclusions,
                      window_notes(params.current, windows) + tier_notes(ctx.tiers_used))


def tier_notes(used: dict[str, set[str]]) -> list[str]:
    """Which store tier each target was read from, when not all from minute rollups."""
    if all(k.startswith("minute ") for k in used):
        return []
    return [f"read from {tier} rollups: {', '.join(sorted(ids))}"
            for tier, ids in sorted(used.items())]


def window_notes(current: bl.TimeWindow, baselines: Sequence[bl.TimeWindow]) -> list[str]:
    """Warnings about baseline windows: overlap with the current one, or a different
    weekday/hour mix (RFC 2330 §11.1: periodic behaviour biases samples)."""
    notes = []
    for w in baselines:
        if w.start_ns < current.end_ns and current.start_ns < w.end_ns:
            notes.append(f"baseline window {w.iso()} overlaps the current window")
        mix = mix_distance(w, current)
        if mix > 0.1:
            notes.append(f"baseline window {w.iso()} and the current window differ in "
                         f"weekday/hour mix (total variation {mix:.2f} > 0.10): periodic "
                         "behaviour may bias the ratio (RFC 2330 §11.1)")
    return notes


def mix_distance(a: bl.TimeWindow, b: bl.TimeWindow) -> float:
    """Total-variation distance between the hour-of-week mixes of two windows (UTC)."""
    def mix(w: bl.TimeWindow) -> dict[int, float]:
        first, last = w.start_ns // 3_600_000_000_000, (w.end_ns - 1) // 3_600_000_000_000
        hours = range(first, last + 1) if last - first < 24 * 7 * 520 else range(0)
        out: dict[int, float] = {}
        for h in hours:
            k = (h + 72) % 168  # 1970-01-01 was a Thursday: shift so 0 = Monday 00:00
            out[k] = out.get(k, 0) + 1
        total = sum(out.values()) or 1
        return {k: v / total for k, v in out.items()}
    ma, mb = mix(a), mix(b)
    return sum(abs(ma.get(k, 0) - mb.get(k, 0)) for k in set(ma) | set(mb)) / 2

