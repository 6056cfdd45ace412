"""The figures of a report, gathered once: a line per target, verdicts, carrier matrices and
metrics before and after, route evidence from traceroute, data coverage per probe end in both
windows, exclusions. Each is a list of flat rows with the columns of :data:`COLUMNS` (the CSV
of that figure, written with its header even when empty), built from the store through the
analyzer's own query functions. Rows of different method or Type-P (RFC 2330 §13) are never
merged: every figure row names both."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from analyzer.baselines import TimeWindow, iso_ns
from analyzer.evaluate import Evaluation
from analyzer.metrics import Metrics, carrier_matrix, metrics_by, ms
from analyzer.report.faults import COLUMNS as FAULT_COLUMNS
from analyzer.report.jsonout import num, row_to_dict
from analyzer.rollups.model import MinuteRollup
from analyzer.store.base import Query, ReadStore
from inventory.schema import SiteKind
from inventory.topology import Topology

MAX_TRACES = 20_000
_DELAYS = ("min", "median", "mean", "p95", "p99", "max", "pdv_p99")
COLUMNS: dict[str, tuple[str, ...]] = {
    "targets": ("target", "verdict", "groups", "method", "type_p", "name_zh", "name_en",
                "document_zh", "document_en", "issuer", "year", "reference"),
    "verdicts": ("target", "scope", "method", "type_p", "statistic", "unit", "baseline_n",
                 "baseline_value", "baseline_source", "current_n", "current_value", "point",
                 "low", "high", "threshold", "verdict", "interval_method", "citation",
                 "reason", "more_samples"),
    "carrier_matrix": ("window", "method", "type_p", "src_carrier", "dst_carrier", "samples",
                       "rtt_median_ms", "rtt_p95_ms", "rtt_mean_ms", "loss_ratio", "label"),
    "metrics": ("window", "method", "type_p", "per", "group", "minutes", "sent", "received",
                "lost", "loss_ratio", "loss_periods", "errors", "duplicated", "reordered",
                "tmax_ms", "rtt_n",
                *(f"rtt_{n}_ms_conditional" for n in _DELAYS),
                *(f"rtt_{n}_ms_inf" for n in ("median", "p95", "p99")),
                *(f"{d}_{s}" for d in ("fwd", "bwd")
                  for s in ("median_ms_conditional", "p99_ms_conditional", "clock_error_ms")),
                "unsynced"),
    "coverage": ("window", "src_site", "src_carrier", "method", "type_p", "minutes_with_data",
                 "window_minutes", "coverage", "sent", "errors"),
    "routes": ("window", "path", "method", "type_p", "route", "exchange_points", "traces",
               "last_seen"),
    "exclusions": ("path", "method", "type_p", "reason", "minutes", "records"),
    **FAULT_COLUMNS,
}


@dataclass
class ReportData:
    """Every figure as (name, rows); rows are dicts with the columns of :data:`COLUMNS`."""

    document: dict[str, Any]
    figures: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def target_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per target: its verdict, groups per verdict, name and source document."""
    sources = document["provenance"].get("targets", {})
    out = []
    for t in document.get("targets", []):
        name, doc = t.get("name") or {}, t.get("document") or {}
        title = doc.get("title") or {}
        type_ps = sorted({v["type_p"] for v in document["verdicts"]
                          if v["target"] == t["target"] and v["type_p"] != "-"})
        out.append({"target": t["target"], "verdict": t["verdict"],
                    "groups": ", ".join(f"{v} {n}" for v, n in t["groups"].items()),
                    "method": sources.get(t["target"], {}).get("method") or "any",
                    "type_p": " ".join(type_ps),
                    "name_zh": name.get("zh"), "name_en": name.get("en"),
                    "document_zh": title.get("zh"), "document_en": title.get("en"),
                    "issuer": doc.get("issuer"), "year": doc.get("year"),
                    "reference": doc.get("reference")})
    return out


def verdict_rows(ev: Evaluation, sources: dict[str, Any] | None = None
                 ) -> list[dict[str, Any]]:
    """One row per verdict; ``sources`` (``provenance.targets``) gives each target's method."""
    out = []
    for row in ev.rows:
        d = row_to_dict(row)
        iv = d.get("ratio") or d.get("interval") or {}
        method = d["method"] or {}
        target = (sources or {}).get(row.target, {})
        out.append({"target": d["target"], "scope": d["scope"],
                    "method": target.get("method") or "any",
                    "type_p": d["type_p"], "statistic": d["statistic"], "unit": d["unit"],
                    "baseline_n": d["baseline"]["n"], "baseline_value": d["baseline"]["value"],
                    "baseline_source": _source(d), "current_n": d["current"]["n"],
                    "current_value": d["current"]["value"], "point": iv.get("point"),
                    "low": iv.get("low"), "high": iv.get("high"), "threshold": d["threshold"],
                    "verdict": d["verdict"], "interval_method": method.get("en"),
                    "citation": method.get("citation"), "reason": d["reason"],
                    "more_samples": d["more_samples"]})
    return out


def _source(d: dict[str, Any]) -> str | None:
    source = d["baseline"]["source"]
    scope = (d.get("details") or {}).get("declared_scope")
    return f"{source} (declared for {scope})" if source and scope else source


def _by_stream(rollups: list[MinuteRollup]) -> dict[tuple[str, str], list[MinuteRollup]]:
    """Rollups by (method, Type-P), sorted: figures never merge across either."""
    out: dict[tuple[str, str], list[MinuteRollup]] = {}
    for r in rollups:
        out.setdefault((r.method, r.type_p), []).append(r)
    return dict(sorted(out.items()))


def matrix_rows(rollups: list[MinuteRollup], window: str) -> list[dict[str, Any]]:
    """Direction-aware carrier matrix per method and Type-P (RFC 6703 §3.1: loss and delay
    together)."""
    out = []
    for (method, type_p), part in _by_stream(rollups).items():
        for (src, dst), m in carrier_matrix(part).items():
            out.append({"window": window, "method": method, "type_p": type_p,
                        "src_carrier": src, "dst_carrier": dst,
                        "samples": m.received + m.lost, "rtt_median_ms": ms(m.rtt.median),
                        "rtt_p95_ms": ms(m.rtt.p95), "rtt_mean_ms": ms(m.rtt.mean),
                        "loss_ratio": num(m.loss_ratio), "label": "conditional"})
    return out


def metrics_row(window: str, method: str, type_p: str, per: str, m: Metrics) -> dict[str, Any]:
    """One group's metrics as a flat row; each delay column names its distribution
    (``conditional``: arrived only, RFC 6703 §5.3; ``inf``: loss as +inf, RFC 7679 §5.1)."""
    row: dict[str, Any] = {"window": window, "method": method, "type_p": type_p, "per": per,
                           "group": m.key, "minutes": m.minutes, "sent": m.sent,
                           "received": m.received, "lost": m.lost,
                           "loss_ratio": num(m.loss_ratio), "loss_periods": m.loss_periods,
                           "errors": m.errors, "duplicated": m.duplicated,
                           "reordered": m.reordered, "tmax_ms": ms(m.tmax_ns), "rtt_n": m.rtt.n}
    for name in _DELAYS:
        row[f"rtt_{name}_ms_conditional"] = ms(getattr(m.rtt, name))
    for name in ("median", "p95", "p99"):
        row[f"rtt_{name}_ms_inf"] = ms(getattr(m.rtt, f"inf_{name}"))
    for d in (m.fwd, m.bwd):
        row[f"{d.kind}_median_ms_conditional"] = ms(d.median)
        row[f"{d.kind}_p99_ms_conditional"] = ms(d.p99)
        row[f"{d.kind}_clock_error_ms"] = ms(d.clock_error_ns)
    row["unsynced"] = m.unsynced
    return row


def metrics_rows(rollups: list[MinuteRollup], window: str,
                 city_of: Any) -> list[dict[str, Any]]:
    """Metrics per method and Type-P, by carrier pair, city pair and over everything."""
    return [metrics_row(window, method, type_p, per, m)
            for (method, type_p), part in _by_stream(rollups).items()
            for per in ("carrier_pair", "city_pair", "scope")
            for m in metrics_by(part, per, city_of)]


def coverage_rows(rollups: list[MinuteRollup], w: TimeWindow,
                  window: str = "current") -> list[dict[str, Any]]:
    """Minutes with data per source end (one probe per site and carrier), method and Type-P."""
    minutes = max(1, (w.end_ns - w.start_ns) // 60_000_000_000)
    seen: dict[tuple[str, str, str, str], set[int]] = {}
    sent: Counter[tuple[str, str, str, str]] = Counter()
    errors: Counter[tuple[str, str, str, str]] = Counter()
    for r in rollups:
        key = (r.src_site, r.src_carrier, r.method, r.type_p)
        seen.setdefault(key, set()).add(r.minute)
        sent[key] += r.sent
        errors[key] += r.errors
    return [{"window": window, "src_site": k[0], "src_carrier": k[1], "method": k[2],
             "type_p": k[3], "minutes_with_data": len(seen[k]), "window_minutes": minutes,
             "coverage": num(len(seen[k]) / minutes), "sent": sent[k], "errors": errors[k]}
            for k in sorted(seen)]


def route_rows(store: ReadStore, w: TimeWindow, topo: Topology,
               window: str = "current") -> list[dict[str, Any]]:
    """Per path and Type-P, the distinct hop sequences traceroute saw (the probe's own or
    imported RIPE Atlas traces), each hop mapped to a site or carrier by the inventory's
    prefixes, and the exchange points crossed (route evidence)."""
    routes: dict[tuple[str, str], Counter[str]] = {}
    last: dict[tuple[str, str, str], int] = {}
    crossed: dict[str, str] = {}
    for i, r in enumerate(store.read_results(Query(w.start_ns, w.end_ns, method="traceroute"))):
        if i >= MAX_TRACES:
            break
        labels = [_hop_label(h.addr, topo) for h in r.hops]
        hops = " > ".join(labels) or "(no hops)"
        key = (r.path_id, r.type_p.key())
        routes.setdefault(key, Counter())[hops] += 1
        last[(*key, hops)] = r.sent_at_ns
        crossed[hops] = " ".join(dict.fromkeys(
            x for x in labels if x in topo.sites and topo.sites[x].kind
            is SiteKind.EXCHANGE_POINT))
    return [{"window": window, "path": p, "method": "traceroute", "type_p": tp, "route": route,
             "exchange_points": crossed[route], "traces": n,
             "last_seen": iso_ns(last[(p, tp, route)])}
            for (p, tp) in sorted(routes) for route, n in sorted(routes[(p, tp)].items())]


def _hop_label(addr: str | None, topo: Topology) -> str:
    if addr is None:
        return "*"
    try:
        site = topo.site_of_address(addr)
        carrier = topo.carrier_of_address(addr)
    except ValueError:
        return addr
    return site or carrier or addr


def exclusion_rows(ev: Evaluation) -> list[dict[str, Any]]:
    return [{k: e.get(k) for k in COLUMNS["exclusions"]} for e in ev.exclusions]


def _window(store: ReadStore, w: TimeWindow, label: str, topo: Topology,
            city_of: Any) -> dict[str, list[dict[str, Any]]]:
    rollups = [r for r in store.read_rollups(Query(w.start_ns, w.end_ns))
               if r.method != "traceroute"]
    return {"carrier_matrix": matrix_rows(rollups, label),
            "metrics": metrics_rows(rollups, label, city_of),
            "coverage": coverage_rows(rollups, w, label),
            "routes": route_rows(store, w, topo, label)}


def baseline_windows(ev: Evaluation, topo: Topology) -> list[tuple[str, TimeWindow]]:
    """The baseline windows of this store the evaluated targets read: ``--baseline``, or each
    target's measured inventory baseline (labelled ``baseline`` or, if several,
    ``baseline FROM/TO``)."""
    from analyzer import baselines as bl

    ids = {r.target for r in ev.rows}
    found: set[TimeWindow] = set()
    if ev.params.baseline is not None:
        found.add(ev.params.baseline)
    for t in topo.inv.policy_targets:
        if t.id in ids and t.comparison.kind == "relative":
            res = bl.resolve(t, topo.inv, ev.params.baseline)
            if isinstance(res, bl.ResolvedBaseline) and res.kind == "measured" and res.window:
                found.add(res.window)
    ordered = sorted(found, key=lambda w: (w.start_ns, w.end_ns))
    if len(ordered) == 1:
        return [("baseline", ordered[0])]
    return [(f"baseline {w.iso()}", w) for w in ordered]


def gather(store: ReadStore, ev: Evaluation, document: dict[str, Any],
           topo: Topology, baseline_store: ReadStore | None = None) -> ReportData:
    """All figures of the report for the evaluation's windows (baseline first; the baseline
    windows from ``baseline_store`` when the baseline was read from another store)."""
    def city_of(site: str) -> str | None:
        city = topo.city_of(site)
        return city.id if city else None

    p = ev.params
    figures: dict[str, list[dict[str, Any]]] = {
        "targets": target_rows(document),
        "verdicts": verdict_rows(ev, document["provenance"].get("targets")),
        "carrier_matrix": [], "metrics": [], "coverage": [], "routes": []}
    windows = [(label, w, baseline_store or store) for label, w in baseline_windows(ev, topo)]
    for label, w, source in [*windows, ("current", p.current, store)]:
        for name, rows in _window(source, w, label, topo, city_of).items():
            figures[name].extend(rows)
    figures["exclusions"] = exclusion_rows(ev)
    # --- hook: the fault register (issue 17, analyzer/report/faults.py) ---
    from analyzer.report.faults import fault_figures
    figures.update(fault_figures(store, topo.inv, p.current))
    # --- end of hook ---
    return ReportData(document, figures)
