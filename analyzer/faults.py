"""Fault rules (inventory data) judged day by day on the store's rollups: the fault register.

For each rule: the segments of its roles give the measured paths; for a rule that compares
with a reference, each path's reference is the reference-role paths at the same
interconnection point with the same destination end (test point and network) that stay in
that network (e.g. the regulator's PC/PD: "the other network's in-network packets from the
interconnection node to the destination test point"). The rule's calendar selects local days
and hours in its time zone; a test is ``test_minutes`` of local time holding at least
``min_samples`` samples (received + lost; error records are not samples), a day is judged
with at least ``min_tests`` tests, on the figures of its counted tests pooled
(:func:`analyzer.stats.units.weighted_statistic`: the mean is sum / n of the arrived packets,
RFC 6703 §5.2; the loss ratio lost / (received + lost), RFC 7680 §4.1; quantiles RFC 2330
§11.3). Each Type-P is its own series (RFC 2330 §13), and a reference is of the same Type-P.

The rollups are read from the coarsest store tier whose UTC units tile the rule's local tests
(:mod:`analyzer.localtime`), never a tier that would blur them, so the tier read does not
change what is selected or decided: sums, counts and sketch buckets of a local test are the
same from minute and hour rollups. Only reads the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from analyzer.conditions import STAT_NAMES, Check, judge, statistics, tests, uses_reference
from analyzer.fault_register import (
    CLEAR,
    FAULT,
    NOT_EVALUABLE,
    Day,
    Register,
    RuleInfo,
    Series,
    find_faults,
)
from analyzer.localtime import (
    day_label,
    day_number,
    day_start_ns,
    local_grain,
    local_minutes,
    serving_tier,
)
from analyzer.rollups.columns import RollupColumns
from analyzer.stats.units import IntArray, table_from_columns, weighted_statistic
from analyzer.store.base import Query, ReadStore
from inventory.schema import FaultRule, Inventory, Segment
from inventory.topology import PathEnds, Topology

NS_MIN = 60_000_000_000


@dataclass(frozen=True)
class DayFigures:
    """One series' figures on one local day, from its counted tests."""

    tests: int
    seen: int  # samples in the chosen hours, counted tests or not
    samples: int  # samples of the counted tests
    values: dict[str, float]  # statistic -> value (ns or ratio), NaN if undefined
    first_ns: int
    last_ns: int


@dataclass(frozen=True)
class _Target:
    segment: Segment
    path: PathEnds
    refs: tuple[str, ...]


def evaluate_faults(store: ReadStore, inv: Inventory, first: date, last: date,
                    tier: str = "auto", rules: Sequence[str] | None = None) -> Register:
    """Judge every fault rule of ``inv`` (or those named) on local days ``first`` ..
    ``last`` (inclusive, in each rule's time zone), reading ``tier`` (``auto``: the coarsest
    that serves each rule)."""
    topo = Topology(inv)
    reg = Register(first.isoformat(), last.isoformat(), [], [], [], synthetic=inv.synthetic)
    for rule in sorted(inv.fault_rules, key=lambda r: r.id):
        if rules and rule.id not in rules:
            continue
        run = _RuleRun(store, inv, topo, rule, day_number(first), day_number(last), tier)
        info, series = run.evaluate()
        reg.rules.append(info)
        reg.series.extend(series)
        for s in series:
            reg.faults.extend(find_faults(s, rule.calendar.consecutive_days))
        if info.tier_note:
            reg.notes.append(f"{rule.id}: {info.tier_note}; read from {info.tier} rollups")
    reg.notes.extend(_pending_notes(inv, reg))
    return reg


def _pending_notes(inv: Inventory, reg: Register) -> list[str]:
    used = {r.id for r in reg.rules}
    pending = [t for t in inv.thresholds if t.value is None]
    out = []
    for t in pending:
        needing = [r.id for r in inv.fault_rules if r.id in used
                   and t.id in _threshold_ids(r)]
        if needing:
            out.append(f"threshold {t.id} ({t.name.en}) has no value: {t.source}; "
                       f"{', '.join(needing)} cannot find faults that need it")
    return out


def _threshold_ids(rule: FaultRule) -> set[str]:
    return {c.above or c.at_least or c.above_reference_by or "" for c in tests(rule.condition)}


class _RuleRun:
    """One rule over a range of local days."""

    def __init__(self, store: ReadStore, inv: Inventory, topo: Topology, rule: FaultRule,
                 first: int, last: int, tier: str) -> None:
        cal = rule.calendar
        self.store, self.inv, self.topo, self.rule, self.cal = store, inv, topo, rule, cal
        self.days = range(first - (cal.consecutive_days - 1), last + 1)
        self.start = day_start_ns(self.days[0], cal.timezone)
        self.end = day_start_ns(self.days[-1] + 1, cal.timezone)
        self.tier, self.tier_note = serving_tier(tier, [(self.start, self.end)], cal.timezone,
                                                 cal.test_minutes)
        self.unit = local_grain(cal.test_minutes, self.start, self.end, cal.timezone)
        self.stats = sorted(statistics(rule.condition))
        self.thresholds = {t.id: t for t in inv.thresholds}
        self.relative = uses_reference(rule.condition)
        self._refs: dict[tuple[tuple[str, ...], str], dict[int, DayFigures]] = {}

    def info(self) -> RuleInfo:
        r = self.rule
        return RuleInfo(r.id, (r.name.zh, r.name.en), r.fault_class, (r.article.zh,
                        r.article.en), (r.document.title.zh, r.document.title.en),
                        self.cal.timezone, self.cal.consecutive_days, self.tier,
                        self.tier_note, r.method.value)

    def targets(self) -> list[_Target]:
        """The measured paths of the rule's segments, each with its reference paths."""
        out = []
        for seg in self.inv.segments:
            if seg.role not in self.rule.segments:
                continue
            for path in self.topo.segment_paths(seg):
                out.append(_Target(seg, path, self._references(seg, path)))
        return out

    def _references(self, seg: Segment, path: PathEnds) -> tuple[str, ...]:
        refs = set()
        for other in self.inv.segments:
            if other.role not in self.rule.reference or other.interconnect != seg.interconnect:
                continue
            for p in self.topo.segment_paths(other):
                if (p.dst_site, p.dst_carrier) == (path.dst_site, path.dst_carrier) and \
                        not p.inter_carrier and p != path:
                    refs.add(p.id)
        return tuple(sorted(refs))

    def evaluate(self) -> tuple[RuleInfo, list[Series]]:
        targets = self.targets()
        ids = sorted({t.path.id for t in targets} | {r for t in targets for r in t.refs})
        cols = self.store.read_rollup_columns(
            Query(self.start, self.end, tuple(ids), self.rule.method.value, tier=self.tier),
            ["rtt"]) if ids else None
        rows = _rows_by_series(cols) if cols is not None else {}
        series = []
        for t in targets:
            type_ps = sorted(tp for (p, tp) in rows if p == t.path.id) or ["-"]
            for tp in type_ps:
                series.append(self._series(t, tp, cols, rows))
        return self.info(), series

    def _series(self, t: _Target, type_p: str, cols: RollupColumns | None,
                rows: dict[tuple[str, str], IntArray]) -> Series:
        own = self._daily(cols, [rows[(t.path.id, type_p)]] if (t.path.id, type_p) in rows
                          else [])
        ref = self._reference_days(t.refs, type_p, cols, rows) if self.relative else {}
        days = tuple(self._judge(d, own.get(d), ref.get(d), t) for d in self.days)
        p = t.path
        return Series(self.rule.id, t.segment.id, t.segment.role, t.segment.interconnect,
                      p.id, (p.src_site, p.src_carrier), (p.dst_site, p.dst_carrier), type_p,
                      t.refs, days)

    def _reference_days(self, refs: tuple[str, ...], type_p: str, cols: RollupColumns | None,
                        rows: dict[tuple[str, str], IntArray]) -> dict[int, DayFigures]:
        """The pooled reference paths' days (computed once per reference set and Type-P:
        several crossing paths into one test point share it)."""
        key = (refs, type_p)
        if key not in self._refs:
            self._refs[key] = self._daily(cols, [rows[(r, type_p)] for r in refs
                                                 if (r, type_p) in rows])
        return self._refs[key]

    def _daily(self, cols: RollupColumns | None, parts: list[IntArray]
               ) -> dict[int, DayFigures]:
        """The figures of each local day with data, from the rows ``parts`` (merged)."""
        if cols is None or not parts:
            return {}
        rows = np.sort(np.concatenate(parts))
        if not len(rows):
            return {}
        table = table_from_columns(cols, rows, "rtt", self.unit)
        cal = self.cal
        local = local_minutes(table.minutes, cal.timezone)
        day, minute_of_day = local // 1440, local % 1440
        chosen = np.isin(minute_of_day // 60, cal.hours) if cal.hours else \
            np.ones(len(local), dtype=bool)
        test = local // cal.test_minutes
        test_ids, at = np.unique(test[chosen], return_inverse=True)
        samples = np.bincount(at, weights=table.sent[chosen], minlength=len(test_ids))
        counted = np.zeros(len(local), dtype=bool)
        counted[np.flatnonzero(chosen)] = samples[at] >= cal.min_samples
        test_day = test_ids * cal.test_minutes // 1440
        out = {}
        days = np.unique(day[chosen])
        weights = ((day[None, :] == days[:, None]) & counted[None, :]).astype(np.float64)
        values = {s: weighted_statistic(table, weights, STAT_NAMES[s]) for s in self.stats}
        for i, d in enumerate(days.tolist()):
            mine = test_day == d
            used = np.flatnonzero(weights[i] > 0)
            first = int(table.minutes[used].min()) if len(used) else 0
            last = int(table.minutes[used].max()) + self.unit if len(used) else 0
            out[d] = DayFigures(
                int((samples[mine] >= cal.min_samples).sum()), int(samples[mine].sum()),
                int(weights[i] @ table.sent),
                {s: float(v[i]) for s, v in values.items()}, first * NS_MIN, last * NS_MIN)
        return out

    def _judge(self, d: int, own: DayFigures | None, ref: DayFigures | None,
               t: _Target) -> Day:
        label = day_label(d)
        cal = self.cal
        if own is None or own.seen == 0:
            hours = f" in hours {_hours(cal.hours)}" if cal.hours else ""
            return Day(label, NOT_EVALUABLE, f"no data on {label}{hours}", "no_data")
        if own.tests < cal.min_tests:
            why = (f"{own.tests} test(s) of {cal.test_minutes} min with at least "
                   f"{cal.min_samples} samples on {label}, needs {cal.min_tests}")
            return Day(label, NOT_EVALUABLE, why, "few_tests", own.tests, own.samples,
                       _pairs(own.values))
        reference, no_ref = None, ""
        if self.relative:
            reference, no_ref = self._reference(label, ref, t)
        outcome, checks = judge(self.rule.condition, own.values, reference, self.thresholds,
                                no_ref)
        state = {True: FAULT, False: CLEAR, None: NOT_EVALUABLE}[outcome]
        reason = "; ".join(dict.fromkeys(c.why for c in checks if c.why)) \
            if outcome is None else ""
        kind = "" if outcome is not None else _kind(checks)
        return Day(label, state, reason, kind, own.tests, own.samples, _pairs(own.values),
                   _pairs(reference) if reference is not None else None,
                   ref.tests if ref is not None else 0, tuple(checks), own.first_ns,
                   own.last_ns)

    def _reference(self, label: str, ref: DayFigures | None, t: _Target
                   ) -> tuple[dict[str, float] | None, str]:
        roles = "/".join(self.rule.reference)
        if not t.refs:
            return None, (f"no {roles} path at {t.segment.interconnect} to "
                          f"{t.path.dst_site}/{t.path.dst_carrier} in the inventory")
        if ref is None or ref.tests < self.cal.min_tests:
            n = 0 if ref is None else ref.tests
            return None, (f"in-network reference ({roles}): {n} test(s) on {label}, needs "
                          f"{self.cal.min_tests}")
        return ref.values, ""


def _kind(checks: Sequence[Check]) -> str:
    """Why a day is not judged, the most fundamental first: a threshold without a value, no
    reference figure, or a statistic undefined."""
    missing = {c.missing for c in checks}
    for what, kind in (("threshold", "pending"), ("reference", "no_reference")):
        if what in missing:
            return kind
    return "undefined"


def _hours(hours: Sequence[int]) -> str:
    """Local hours as ``20:00-23:00`` runs."""
    runs: list[list[int]] = []
    for h in sorted(hours):
        if runs and runs[-1][1] == h:
            runs[-1][1] = h + 1
        else:
            runs.append([h, h + 1])
    return ", ".join(f"{a:02d}:00-{b:02d}:00" for a, b in runs)


def _pairs(values: dict[str, float]) -> tuple[tuple[str, float | None], ...]:
    return tuple((k, None if np.isnan(v) else v) for k, v in sorted(values.items()))


def _rows_by_series(cols: RollupColumns) -> dict[tuple[str, str], IntArray]:
    """Row indices (ascending) of each (path, Type-P) of a read."""
    out: dict[tuple[str, str], IntArray] = {}
    if not len(cols):
        return out
    order = np.argsort(cols.series, kind="stable")
    values, starts = np.unique(cols.series[order], return_index=True)
    for v, part in zip(values.tolist(), np.split(order, starts[1:]), strict=True):
        label = cols.labels[v]
        key = (label[0], label[2])
        out[key] = np.sort(np.concatenate([out[key], part])) if key in out else part
    return out
