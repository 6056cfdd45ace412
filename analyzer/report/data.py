"""The figures of a report, gathered once: verdicts, carrier matrices before and after, route
evidence from traceroute, data coverage per probe end, exclusions. Each is a list of flat rows
(the CSV of that figure), built from the store through the analyzer's own query functions."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from analyzer.baselines import TimeWindow, iso_ns
from analyzer.evaluate import Evaluation
from analyzer.metrics import Metrics, carrier_matrix, metrics_by, ms
from analyzer.report.jsonout import num, row_to_dict
from analyzer.rollup import MinuteRollup
from analyzer.store.base import Query, ReadStore
from inventory.topology import Topology

MAX_TRACES = 20_000


@dataclass
class ReportData:
    """Every figure as (name, rows); rows are dicts of plain values with the same keys."""

    document: dict[str, Any]
    figures: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def verdict_rows(ev: Evaluation) -> list[dict[str, Any]]:
    out = []
    for row in ev.rows:
        d = row_to_dict(row)
        iv = d.get("ratio") or d.get("interval") or {}
        out.append({"target": d["target"], "scope": d["scope"], "type_p": d["type_p"],
                    "statistic": d["statistic"], "unit": d["unit"],
                    "baseline_n": d["baseline"]["n"], "baseline_value": d["baseline"]["value"],
                    "current_n": d["current"]["n"], "current_value": d["current"]["value"],
                    "point": iv.get("point"), "low": iv.get("low"), "high": iv.get("high"),
                    "threshold": d["threshold"], "verdict": d["verdict"],
                    "reason": d["reason"], "more_samples": d["more_samples"]})
    return out


def matrix_rows(rollups: list[MinuteRollup], window: str) -> list[dict[str, Any]]:
    """Direction-aware carrier matrix (RFC 6703 §3.1: loss and delay together)."""
    out = []
    for (src, dst), m in carrier_matrix(rollups).items():
        out.append({"window": window, "src_carrier": src, "dst_carrier": dst,
                    "samples": m.received + m.lost, "rtt_median_ms": ms(m.rtt.median),
                    "rtt_p95_ms": ms(m.rtt.p95), "rtt_mean_ms": ms(m.rtt.mean),
                    "loss_ratio": num(m.loss_ratio), "label": "conditional"})
    return out


def metrics_row(window: str, per: str, m: Metrics) -> dict[str, Any]:
    """One group's metrics as a flat row; each delay column names its distribution
    (``conditional``: arrived only, RFC 6703 §5.3; ``inf``: loss as +inf, RFC 7679 §5.1)."""
    row: dict[str, Any] = {"window": window, "per": per, "group": m.key, "minutes": m.minutes,
                           "sent": m.sent, "received": m.received, "lost": m.lost,
                           "loss_ratio": num(m.loss_ratio), "loss_periods": m.loss_periods,
                           "errors": m.errors, "duplicated": m.duplicated,
                           "reordered": m.reordered, "tmax_ms": ms(m.tmax_ns), "rtt_n": m.rtt.n}
    for name in ("min", "median", "mean", "p95", "p99", "max", "pdv_p99"):
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
    """Metrics per carrier pair, city pair and over everything, for one window."""
    return [metrics_row(window, per, m) for per in ("carrier_pair", "city_pair", "scope")
            for m in metrics_by(rollups, per, city_of)]


def coverage_rows(rollups: list[MinuteRollup], w: TimeWindow) -> list[dict[str, Any]]:
    """Minutes with data per source end (one probe per site and carrier), per method."""
    minutes = max(1, (w.end_ns - w.start_ns) // 60_000_000_000)
    seen: dict[tuple[str, str, str], set[int]] = {}
    sent: Counter[tuple[str, str, str]] = Counter()
    errors: Counter[tuple[str, str, str]] = Counter()
    for r in rollups:
        key = (r.src_site, r.src_carrier, r.method)
        seen.setdefault(key, set()).add(r.minute)
        sent[key] += r.sent
        errors[key] += r.errors
    return [{"src_site": k[0], "src_carrier": k[1], "method": k[2],
             "minutes_with_data": len(seen[k]), "window_minutes": minutes,
             "coverage": num(len(seen[k]) / minutes), "sent": sent[k], "errors": errors[k]}
            for k in sorted(seen)]


def route_rows(store: ReadStore, w: TimeWindow, topo: Topology,
               window: str = "current") -> list[dict[str, Any]]:
    """Per path, the distinct hop sequences traceroute saw, each hop mapped to a carrier or
    site by the inventory's prefixes (route evidence: which exchange the path crossed)."""
    routes: dict[str, Counter[str]] = {}
    last: dict[tuple[str, str], int] = {}
    for i, r in enumerate(store.read_results(Query(w.start_ns, w.end_ns, method="traceroute"))):
        if i >= MAX_TRACES:
            break
        hops = " > ".join(_hop_label(h.addr, topo) for h in r.hops) or "(no hops)"
        routes.setdefault(r.path_id, Counter())[hops] += 1
        last[(r.path_id, hops)] = r.sent_at_ns
    return [{"window": window, "path": p, "route": route, "traces": n,
             "last_seen": iso_ns(last[(p, route)])}
            for p in sorted(routes) for route, n in sorted(routes[p].items())]


def _hop_label(addr: str | None, topo: Topology) -> str:
    if addr is None:
        return "*"
    try:
        site = topo.site_of_address(addr)
        carrier = topo.carrier_of_address(addr)
    except ValueError:
        return addr
    return site or carrier or addr


def gather(store: ReadStore, ev: Evaluation, document: dict[str, Any],
           topo: Topology) -> ReportData:
    """All figures of the report for the evaluation's windows."""
    p = ev.params
    cur = [r for r in store.read_rollups(Query(p.current.start_ns, p.current.end_ns))
           if r.method != "traceroute"]
    figures: dict[str, list[dict[str, Any]]] = {"verdicts": verdict_rows(ev)}
    matrix = matrix_rows([r for r in cur if r.method == "icmp"] or cur, "current")
    if p.baseline is not None:
        base = [r for r in store.read_rollups(Query(p.baseline.start_ns, p.baseline.end_ns))
                if r.method != "traceroute"]
        matrix = matrix_rows([r for r in base if r.method == "icmp"] or base,
                             "baseline") + matrix
    figures["carrier_matrix"] = matrix

    def city_of(site: str) -> str | None:
        city = topo.city_of(site)
        return city.id if city else None

    icmp_cur = [r for r in cur if r.method == "icmp"] or cur
    figures["metrics"] = metrics_rows(icmp_cur, "current", city_of)
    if p.baseline is not None:
        figures["metrics"] = metrics_rows([r for r in base if r.method == "icmp"] or base,
                                          "baseline", city_of) + figures["metrics"]
    figures["coverage"] = coverage_rows(cur, p.current)
    figures["routes"] = route_rows(store, p.current, topo)
    if p.baseline is not None:
        figures["routes"] = route_rows(store, p.baseline, topo, "baseline") + figures["routes"]
    figures["exclusions"] = [dict(e) for e in ev.exclusions]
    # --- hook: the fault register (issue 17, analyzer/report/faults.py) ---
    from analyzer.report.faults import fault_figures
    figures.update(fault_figures(store, topo.inv, p.current))
    # --- end of hook ---
    return ReportData(document, figures)
