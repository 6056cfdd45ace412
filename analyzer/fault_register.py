"""The fault register: what the fault rules found, day by day, and the faults (pure).

A rule is judged on each local day of each series (rule x segment x path x Type-P): FAULT
(the condition holds), CLEAR (it does not) or NOT EVALUABLE (no data, too few tests, a
threshold still to be filled in, no reference figure). A fault is confirmed when
``consecutive_days`` consecutive calendar days are FAULT; a day that is not judged breaks a run
that is not yet confirmed ("no data on 2026-04-02"). Once confirmed a fault stays open until a
day is judged CLEAR (the day it is cleared); days not judged meanwhile are listed as gaps, since
missing data does not show that a fault has gone. It began on the first day of its run.

:func:`to_dict` gives the JSON document of ``ixmeter faults --json`` (sorted keys, delays in
ms, loss as a ratio, no "now"), with the fields the regulator's fault report form asks for
(Annex 1, 网间通信障碍申告单: fault class, interconnection direction, description, test time,
test record); the tester and their telephone are left for the reporting party.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from analyzer.conditions import Check
from analyzer.localtime import local_label
from inventory.topology import pair_key

FAULT, CLEAR, NOT_EVALUABLE = "FAULT", "CLEAR", "NOT EVALUABLE"
SCHEMA = 1


@dataclass(frozen=True, slots=True)
class Day:
    """One rule judged on one local day of one series. Figures in the store's units (ns,
    ratio); ``kind`` says why a day is NOT EVALUABLE: ``no_data``, ``few_tests``,
    ``pending`` (a threshold to be filled in), ``no_reference``, ``undefined``."""

    date: str
    state: str
    reason: str
    kind: str = ""
    tests: int = 0
    samples: int = 0
    values: tuple[tuple[str, float | None], ...] = ()
    reference: tuple[tuple[str, float | None], ...] | None = None
    reference_tests: int = 0
    checks: tuple[Check, ...] = ()
    first_ns: int | None = None  # start of the day's first test
    last_ns: int | None = None  # end of its last test


@dataclass(frozen=True, slots=True)
class Series:
    """A rule applied to one measured path of one segment, for one Type-P, day by day."""

    rule: str
    segment: str
    role: str
    interconnect: str
    path: str
    src: tuple[str, str]  # (site, carrier)
    dst: tuple[str, str]
    type_p: str
    reference_paths: tuple[str, ...]
    days: tuple[Day, ...]

    @property
    def direction(self) -> str:
        return pair_key(self.src[1], self.dst[1])


@dataclass(frozen=True, slots=True)
class Fault:
    """A confirmed fault of one series: its run of FAULT days, gaps, whether still open."""

    series: Series
    began: str
    confirmed: str
    last_fault_day: str
    cleared: str | None
    began_on_or_before: bool  # the run starts at the first day evaluated
    days: tuple[Day, ...]
    gaps: tuple[str, ...]

    @property
    def open(self) -> bool:
        return self.cleared is None


@dataclass(frozen=True)
class RuleInfo:
    """A rule as the register shows it: what it is, where it is written, how it was read."""

    id: str
    name: tuple[str, str]  # zh, en
    fault_class: str
    article: tuple[str, str]
    document: tuple[str, str]
    timezone: str
    consecutive_days: int
    tier: str
    tier_note: str | None = None
    method: str = "icmp"  # the measurement method whose rollups the rule reads


@dataclass
class Register:
    """Every rule's series and faults over local days ``first`` .. ``last`` (inclusive)."""

    first: str
    last: str
    rules: list[RuleInfo]
    series: list[Series]
    faults: list[Fault]
    notes: list[str] = field(default_factory=list)
    synthetic: str | None = None

    def open_faults(self) -> list[Fault]:
        return [f for f in self.faults if f.open]


def find_faults(series: Series, consecutive_days: int) -> list[Fault]:
    """The faults of one series, its days in order (one per calendar day). Evaluated from
    ``consecutive_days - 1`` days before the listed ones, every fault found is confirmed on a
    listed day."""
    faults: list[Fault] = []
    run: list[Day] = []
    current: dict[str, Any] | None = None
    for day in series.days:
        if day.state == FAULT:
            run.append(day)
            if current is not None:
                current["days"].append(day)
            elif len(run) >= consecutive_days:
                current = {"days": list(run), "gaps": [], "confirmed": day.date,
                           "edge": run[0] is series.days[0]}
            continue
        run = []
        if current is None:
            continue
        if day.state == CLEAR:
            faults.append(_fault(series, current, day.date))
            current = None
        else:
            current["gaps"].append(day.reason)
    if current is not None:
        faults.append(_fault(series, current, None))
    return faults


def _fault(series: Series, c: dict[str, Any], cleared: str | None) -> Fault:
    days: list[Day] = c["days"]
    return Fault(series, days[0].date, c["confirmed"], days[-1].date, cleared, c["edge"],
                 tuple(days), tuple(c["gaps"]))


# --- display ------------------------------------------------------------------------------


def _num(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.6g}")


def display(statistic: str, value: float | None) -> float | None:
    """A figure in display units: ms for delays, a ratio for loss (6 significant digits)."""
    if value is None:
        return None
    return _num(value if statistic == "loss_ratio" else value / 1e6)


def fmt(statistic: str, value: float | None) -> str:
    """A figure as text: ``41.2 ms`` or ``0.62 %``."""
    if value is None:
        return "n/a"
    if statistic == "loss_ratio":
        return f"{value * 100:.3g} %"
    return f"{value / 1e6:.4g} ms"


def check_text(c: Check) -> str:
    """``rtt_mean 41.2 ms > 35 ms [a2-delay]``, or against the reference ``rtt_mean 41.2 ms
    > in-network 30 ms x (1 + 25 %) = 37.5 ms [a2-margin]``; the threshold id in brackets."""
    value = fmt(c.statistic, c.value)
    if c.holds is None:
        return f"{c.statistic} {value} {c.relation}: unknown ({c.why})"
    verb = "" if c.holds else "not "
    if c.relation.startswith("> reference"):
        return (f"{c.statistic} {value} {verb}> in-network {fmt(c.statistic, c.reference)} "
                f"{c.relation.removeprefix('> reference ')} = {fmt(c.statistic, c.limit)} "
                f"[{c.threshold}]")
    return f"{c.statistic} {value} {verb}{c.relation} {fmt(c.statistic, c.limit)} [{c.threshold}]"


def local_time(ns: int | None, tz: str) -> str | None:
    return None if ns is None else local_label(ns, tz)


def _day_dict(d: Day) -> dict[str, Any]:
    return {"date": d.date, "state": d.state, "reason": d.reason, "kind": d.kind or None,
            "tests": d.tests, "samples": d.samples,
            "values": {s: display(s, v) for s, v in d.values},
            "reference": None if d.reference is None else
            {s: display(s, v) for s, v in d.reference},
            "reference_tests": d.reference_tests,
            "checks": [{"statistic": c.statistic, "relation": c.relation,
                        "threshold": c.threshold, "source": c.source,
                        "limit": display(c.statistic, c.limit),
                        "value": display(c.statistic, c.value),
                        "reference": display(c.statistic, c.reference),
                        "holds": c.holds, "why": c.why or None} for c in d.checks]}


def _series_key(s: Series) -> dict[str, Any]:
    return {"rule": s.rule, "segment": s.segment, "role": s.role,
            "interconnect": s.interconnect, "path": s.path, "direction": s.direction,
            "type_p": s.type_p, "reference_paths": list(s.reference_paths)}


def form_fields(f: Fault, rule: RuleInfo, names: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """The fault report form's fields (Annex 1, 网间通信障碍申告单) for one fault;
    ``names`` maps carrier ids to (zh, en) names."""
    s = f.series
    src, dst = names.get(s.src[1], (s.src[1],) * 2), names.get(s.dst[1], (s.dst[1],) * 2)
    first = min((d.first_ns for d in f.days if d.first_ns is not None), default=None)
    last = max((d.last_ns for d in f.days if d.last_ns is not None), default=None)
    evidence = "; ".join(f"{d.date}: " + ", ".join(check_text(c) for c in d.checks)
                         for d in f.days)
    return {
        "fault_class": {"zh": f"{rule.fault_class}类障碍", "en": f"class {rule.fault_class}"},
        "direction": {"zh": f"{src[0]}→{dst[0]}", "en": f"{src[1]} -> {dst[1]}"},
        "description": (f"{rule.article[1]}: segment {s.role} {s.segment} at "
                        f"{s.interconnect}, path {s.path} ({s.type_p}), from {f.began}"
                        f"{'' if f.open else ' to ' + f.last_fault_day}: {evidence}"),
        "test_time": {"from": local_time(first, rule.timezone),
                      "to": local_time(last, rule.timezone), "timezone": rule.timezone},
        "test_record": "the days, tests and figures above; the store's chain head in "
                       "'provenance' fixes the rollups they were computed from",
        "tester": None, "tester_phone": None,
    }


def to_dict(reg: Register, names: dict[str, tuple[str, str]],
            provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """The register as a JSON-ready document (byte-reproducible with :func:`dumps`)."""
    rules = {r.id: r for r in reg.rules}
    return {
        "schema": SCHEMA, "synthetic": reg.synthetic, "days": {"from": reg.first,
                                                              "to": reg.last},
        "rules": [_rule_dict(r, reg) for r in reg.rules],
        "faults": [{**_series_key(f.series), "began": f.began, "confirmed": f.confirmed,
                    "began_on_or_before": f.began_on_or_before,
                    "last_fault_day": f.last_fault_day, "cleared": f.cleared, "open": f.open,
                    "gaps": list(f.gaps), "days": [_day_dict(d) for d in f.days],
                    "form": form_fields(f, rules[f.series.rule], names)}
                   for f in reg.faults],
        "series": [{**_series_key(s), "days": [_day_dict(d) for d in s.days]}
                   for s in reg.series],
        "notes": list(reg.notes), "provenance": provenance or {},
    }


def _rule_dict(r: RuleInfo, reg: Register) -> dict[str, Any]:
    mine = [s for s in reg.series if s.rule == r.id]
    states = Counter(d.state for s in mine for d in s.days)
    kinds = Counter(d.kind for s in mine for d in s.days if d.kind)
    faults = [f for f in reg.faults if f.series.rule == r.id]
    return {"id": r.id, "name": {"zh": r.name[0], "en": r.name[1]},
            "fault_class": r.fault_class, "article": {"zh": r.article[0], "en": r.article[1]},
            "document": {"zh": r.document[0], "en": r.document[1]}, "timezone": r.timezone,
            "consecutive_days": r.consecutive_days, "tier": r.tier, "tier_note": r.tier_note,
            "series": len(mine), "day_states": dict(sorted(states.items())),
            "not_evaluable": dict(sorted(kinds.items())), "faults": len(faults),
            "open": sum(f.open for f in faults)}


def table(reg: Register) -> str:
    """The register as plain text: a banner if synthetic, one line per rule, one line per
    fault with its evidence, then notes."""
    out = []
    if reg.synthetic:
        out.append(f"SYNTHETIC DATA: {reg.synthetic}")
    out.append(f"fault register, local days {reg.first} .. {reg.last}")
    for r in reg.rules:
        rd = _rule_dict(r, reg)
        ne = ", ".join(f"{k} {n}" for k, n in rd["not_evaluable"].items()) or "none"
        out.append(f"{r.id} ({r.article[1]}, class {r.fault_class}): {rd['series']} series, "
                   f"{rd['faults']} faults ({rd['open']} open); days "
                   + ", ".join(f"{k} {n}" for k, n in rd["day_states"].items())
                   + f"; not evaluable: {ne}; read from {r.tier} rollups")
    head = ("rule", "segment", "direction", "path", "type-P", "began", "last", "status")
    lines: list[Sequence[str]] = [head]
    for f in reg.faults:
        s = f.series
        status = "OPEN" if f.open else f"cleared {f.cleared}"
        began = ("<=" if f.began_on_or_before else "") + f.began
        lines.append((s.rule, f"{s.role} {s.segment}", s.direction, s.path, s.type_p, began,
                      f.last_fault_day, status))
    if reg.faults:
        widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
        out.extend("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                   for line in lines)
        for f in reg.faults:
            for day in f.days:
                out.append(f"- {f.series.rule} {f.series.path} {f.series.type_p} {day.date}: "
                           + "; ".join(check_text(c) for c in day.checks))
            out.extend(f"  gap: {g}" for g in f.gaps)
    else:
        out.append("no faults")
    out.extend(f"note: {n}" for n in reg.notes)
    return "\n".join(out) + "\n"
