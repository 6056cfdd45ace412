"""The fault register in the auditors' report: over the local days of the report's current
window, the rules (``fault_rules.csv``), the faults (``faults.csv``) and every day of every
series (``fault_days.csv``), and an HTML section (docs/faults.md). Hooked into
:func:`analyzer.report.data.gather` and :func:`analyzer.report.html.render`."""

from __future__ import annotations

import html
from datetime import date
from typing import Any

from analyzer.baselines import TimeWindow
from analyzer.fault_register import Register, check_text, to_dict
from analyzer.localtime import local_datetime
from analyzer.store.base import ReadStore
from inventory.schema import Inventory

Rows = list[dict[str, Any]]


def local_days(start_ns: int, end_ns: int, tz: str) -> tuple[date, date]:
    """The first and last local dates the window [start_ns, end_ns) touches."""
    return local_datetime(start_ns, tz).date(), local_datetime(end_ns - 1, tz).date()


COLUMNS: dict[str, tuple[str, ...]] = {
    "fault_rules": ("rule", "article", "article_zh", "fault_class", "method", "type_p", "days",
                    "timezone", "tier", "series", "faults", "open", "not_evaluable", "data"),
    "faults": ("rule", "segment", "role", "interconnect", "direction", "path", "method",
               "type_p", "began", "confirmed", "last_fault_day", "cleared", "open", "gaps",
               "direction_zh", "test_time", "data"),
    "fault_days": ("rule", "segment", "path", "method", "type_p", "date", "state", "tests",
                   "samples", "checks", "reason", "data"),
}


def fault_figures(store: ReadStore, inv: Inventory, w: TimeWindow) -> dict[str, Rows]:
    """The register's figures for the report (none when the inventory has no fault rules)."""
    from analyzer.faults import evaluate_faults

    if not inv.fault_rules:  # no rules: the CSVs still come, with their headers
        return {name: [] for name in COLUMNS}
    first, last = local_days(w.start_ns, w.end_ns, inv.fault_rules[0].calendar.timezone)
    reg = evaluate_faults(store, inv, first, last)
    return figures(reg, {c.id: (c.name.zh, c.name.en) for c in inv.carriers})


def figures(reg: Register, names: dict[str, tuple[str, str]]) -> dict[str, Rows]:
    """``fault_rules``, ``faults`` and ``fault_days`` as flat rows."""
    doc = to_dict(reg, names)
    data = "synthetic" if reg.synthetic else "measured"
    method = {r.id: r.method for r in reg.rules}
    type_ps = {r.id: " ".join(sorted({s.type_p for s in reg.series if s.rule == r.id}))
               for r in reg.rules}
    rules = [{"rule": r["id"], "article": r["article"]["en"], "article_zh": r["article"]["zh"],
              "fault_class": r["fault_class"], "method": method[r["id"]],
              "type_p": type_ps[r["id"]], "days": f"{reg.first} .. {reg.last}",
              "timezone": r["timezone"], "tier": r["tier"], "series": r["series"],
              "faults": r["faults"], "open": r["open"],
              "not_evaluable": ", ".join(f"{k} {n}" for k, n in r["not_evaluable"].items()),
              "data": data} for r in doc["rules"]]
    faults = [{"rule": f["rule"], "segment": f["segment"], "role": f["role"],
               "interconnect": f["interconnect"], "direction": f["direction"],
               "path": f["path"], "method": method[f["rule"]], "type_p": f["type_p"],
               "began": ("<=" if f["began_on_or_before"] else "") + f["began"],
               "confirmed": f["confirmed"], "last_fault_day": f["last_fault_day"],
               "cleared": f["cleared"], "open": f["open"], "gaps": "; ".join(f["gaps"]),
               "direction_zh": f["form"]["direction"]["zh"],
               "test_time": f"{f['form']['test_time']['from']} .. {f['form']['test_time']['to']}",
               "data": data} for f in doc["faults"]]
    days = [{"rule": s.rule, "segment": s.segment, "path": s.path, "method": method[s.rule],
             "type_p": s.type_p,
             "date": d.date, "state": d.state, "tests": d.tests, "samples": d.samples,
             "checks": "; ".join(check_text(c) for c in d.checks), "reason": d.reason,
             "data": data} for s in reg.series for d in s.days]
    return {"fault_rules": rules, "faults": faults, "fault_days": days}


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _table(rows: Rows, keys: list[str]) -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{_e(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{_e(r[k])}</td>" for k in keys) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_section(fig: dict[str, Rows]) -> str:
    """The report's fault-register section: rules, faults, the evidence of each fault day."""
    rules = fig.get("fault_rules", [])
    if not rules:
        return ""
    banner = ("<p><b>SYNTHETIC DATA</b>: the fault register below is computed from synthetic "
              "results (the inventory says so), not from measurements.</p>"
              if any(r["data"] == "synthetic" for r in rules) else "")
    faults = fig.get("faults", [])
    evidence = [d for d in fig.get("fault_days", []) if d["state"] == "FAULT"]
    parts = [
        "<h2>Fault register</h2>", banner,
        "<p>The regulator's fault rules judged day by day (docs/faults.md); every day of every "
        "series is in <code>fault_days.csv</code>.</p>",
        _table(rules, ["rule", "article", "article_zh", "days", "tier", "series", "faults",
                       "open", "not_evaluable", "data"]),
        "<h3>Faults</h3>",
        _table(faults, ["rule", "role", "segment", "direction_zh", "path", "type_p", "began",
                        "last_fault_day", "cleared", "open", "gaps", "data"]),
        "<h3>Evidence (fault days)</h3>",
        _table(evidence, ["rule", "path", "type_p", "date", "tests", "checks"]),
    ]
    return "".join(parts)
