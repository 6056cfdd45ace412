"""Read-only query functions for the dashboard: the one place between its pages and the store.

Everything here reads through the :class:`~analyzer.store.base.ReadStore` Protocol (no SQL) and the
inventory's :class:`~inventory.topology.Topology`, and returns plain dataclasses of numbers that
the dashboard's figure builders draw. A window's rollups are read once into a
:class:`~analyzer.viewindex.RollupIndex` (numpy columns of the store tier that serves it);
statistics are the analyzer's own over merged rollups (:mod:`analyzer.stats.units`), so they
carry the verdicts' definitions:

- delay percentiles: RFC 2330 §11.3 inverted-CDF percentiles of the *conditional* (arrived-only)
  sample (RFC 6703 §5.3), read from DDSketch buckets (relative error alpha, Masson et al. 2019);
- medians: RFC 7679 §5.2 (even N: mean of the two central values);
- loss ratio: lost / (received + lost), RFC 7680 §4.1, undefined for an empty sample.

Times are bucketed in the local time the inventory declares (:attr:`Inventory.timezone`, the
province's; a target's trend and busy hours in the target's own ``aggregation.timezone``)
through :mod:`analyzer.localtime`: policy is data, no zone is named here. Verdicts come from
the analyzer's evaluator (:mod:`analyzer.evaluate`); this module only reshapes them for
display and draws the trend of each target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from analyzer.clockdomain import DomainIndex
from analyzer.localtime import local_day_start, local_hour_of_day, local_label
from analyzer.stats.units import per_unit_statistic, table_from_columns
from analyzer.store.base import ReadStore
from analyzer.viewindex import (
    NS,
    NS_PER_DAY,
    NS_PER_HOUR,
    BoolArray,
    IntArray,
    Merged,
    PathKey,
    RollupIndex,
    Window,
    _opt,
    display_bucket,
    distribution,
    index_tier,
    load_index,
    statistic,
)
from inventory.schema import Inventory, PathScope, PolicyTarget, SiteKind
from inventory.topology import PathEnds, Topology
from ixmeter.core.heartbeat import set_aside_totals
from ixmeter.core.record import Result

if TYPE_CHECKING:
    from analyzer.evaluate import Evaluation

__all__ = [  # the re-exported index layer (analyzer.viewindex) and this module's own
    "CellPath",
    "MATRIX_STATISTICS",
    "Matrix",
    "Merged",
    "Minute",
    "NS",
    "NS_PER_DAY",
    "NS_PER_HOUR",
    "ProbeRow",
    "RollupIndex",
    "Route",
    "RouteHop",
    "Series",
    "VerdictRow",
    "Window",
    "cell_members",
    "cell_paths",
    "cells_in_scope",
    "display_bucket",
    "distribution",
    "evaluate",
    "group_of",
    "headline",
    "in_scope_mask",
    "index_tier",
    "inter_carrier_minutes",
    "key_ratios",
    "latest_route",
    "load_index",
    "local_day_start",
    "local_hour_of_day",
    "local_label",
    "matrix",
    "overall",
    "owd_series",
    "path_keys",
    "paths_of_cell",
    "probe_rows",
    "scope_keys",
    "series",
    "statistic",
    "statistic_method",
    "trend",
    "verdict_rows",
    "warm_matrices",
]

# --- live: minute by minute ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Minute:
    """One UTC minute of a group of paths merged: median RTT (ms, conditional: RFC 2330 §11.3,
    RFC 6703 §5.3), loss ratio (RFC 7680 §4.1) and the packets sent."""

    t_ns: int
    rtt_median_ms: float | None
    loss_ratio: float | None
    sent: int


def inter_carrier_minutes(store: ReadStore, topo: Topology, window: Window,
                          type_p: str = "icmp/v4") -> list[Minute]:
    """Per UTC minute of ``window``: the ICMP rollups of every inter-carrier path between
    inventory sites whose Type-P key starts with ``type_p`` (one IP version: different Type-P
    are not pooled, RFC 2330 §13), merged. What the demo's progress line and the dashboard's
    live chart show."""
    cols = store.read_rollup_columns(window.query(method="icmp"), ("rtt",))
    wanted = np.array([lb[4] != lb[6] and lb[2].startswith(type_p) and lb[3] in topo.sites
                       and lb[5] in topo.sites for lb in cols.labels] or [False], dtype=bool)
    rows = np.flatnonzero(wanted[cols.series]) if len(cols) else np.zeros(0, np.int64)
    m = Merged(np.zeros(0, np.int64), {"rtt": table_from_columns(cols, rows, "rtt")})
    t = m.tables["rtt"]
    return [Minute(int(minute) * 60 * NS, med, loss, int(sent)) for minute, med, loss, sent in
            zip(t.minutes.tolist(), _opt(m.values("rtt_median")), _opt(m.values("loss_ratio")),
                t.sent.tolist(), strict=True)]


# --- matrices -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Matrix:
    """A src x dst grid of a statistic in the baseline and current windows, and their ratio."""

    by: str  # "carrier" | "city"
    statistic: str
    rows: list[str]
    cols: list[str]
    baseline: list[list[float | None]]
    current: list[list[float | None]]
    change: list[list[float | None]]  # current / baseline
    samples: list[list[int]]  # current sample size N (RFC 2330 §11.3 asks for N)


def group_of(topo: Topology, ends: PathEnds, by: str) -> tuple[str, str] | None:
    """(row, column) of a path in a carrier x carrier or city x city matrix."""
    if by == "carrier":
        return ends.src_carrier, ends.dst_carrier
    sc, dc = topo.city_of(ends.src_site), topo.city_of(ends.dst_site)
    return (sc.id, dc.id) if sc and dc else None


def cell_members(topo: Topology, index: RollupIndex, by: str, method: str | None,
                 type_p: str | None = None) -> dict[tuple[str, str], IntArray]:
    """Key positions of each matrix cell (cached per index: computed once per data refresh)."""
    ck = ("cells", by, method, type_p)
    if ck not in index.cache:
        cells: dict[tuple[str, str], list[int]] = {}
        for i, k in enumerate(index.keys):
            if (method is None or k[1] == method) and (type_p is None or k[2] == type_p):
                g = group_of(topo, index.ends(i), by)
                if g is not None:
                    cells.setdefault(g, []).append(i)
        index.cache[ck] = {g: np.array(v, dtype=np.int64) for g, v in cells.items()}
    out: dict[tuple[str, str], IntArray] = index.cache[ck]
    return out


def _cell_values(topo: Topology, index: RollupIndex, by: str, stat: str, method: str,
                 type_p: str | None) -> tuple[dict[tuple[str, str], float | None],
                                              dict[tuple[str, str], int]]:
    """Each cell's statistic over the window and its N, cached per index."""
    ck = ("cell values", by, stat, method, type_p)
    if ck not in index.cache:
        cells = cell_members(topo, index, by, method, type_p)
        names = list(cells)
        merged = index.groups([cells[g] for g in names]) if names else None
        vals = _opt(merged.values(stat)) if merged else []
        ns = merged.received().tolist() if merged else []
        index.cache[ck] = (dict(zip(names, vals, strict=True)),
                           dict(zip(names, ns, strict=True)))
    out: tuple[dict[tuple[str, str], float | None], dict[tuple[str, str], int]] = index.cache[ck]
    return out


def matrix(topo: Topology, base: RollupIndex, cur: RollupIndex, by: str, stat: str,
           method: str, type_p: str | None) -> Matrix:
    """Carrier x carrier or city x city matrix; a cell is the statistic of every path of the
    pair merged (the analyzer's statistic of the merged group, never a mean of paths)."""
    vb, _ = _cell_values(topo, base, by, stat, method, type_p)
    vc, nc = _cell_values(topo, cur, by, stat, method, type_p)
    order = ([c.id for c in topo.inv.carriers] if by == "carrier"
             else [c.id for c in topo.inv.cities])
    present = {g for pair in (*vb, *vc) for g in pair}
    labels = [x for x in order if x in present]
    grids: dict[str, list[list[float | None]]] = {"b": [], "c": [], "x": []}
    for row in labels:
        b = [vb.get((row, col)) for col in labels]
        c = [vc.get((row, col)) for col in labels]
        grids["b"].append(b)
        grids["c"].append(c)
        grids["x"].append([y / x if x and y is not None else None for x, y in zip(b, c,
                                                                                  strict=True)])
    samples = [[nc.get((row, col), 0) for col in labels] for row in labels]
    return Matrix(by, stat, labels, labels, grids["b"], grids["c"], grids["x"], samples)


MATRIX_STATISTICS = ("rtt_median", "rtt_p95", "loss_ratio", "owd_median")


def statistic_method(stat: str) -> str:
    """The method a matrix statistic is read from: one-way delays from STAMP, else ICMP."""
    return "stamp" if stat.startswith("owd") else "icmp"


def warm_matrices(topo: Topology, base: RollupIndex, cur: RollupIndex,
                  scopes: Sequence[PathScope]) -> None:
    """Compute, once per data refresh, what the matrix page and its drill-down read: every
    cell of both levels for every statistic and Type-P, each path's statistics, and which keys
    lie in each target's scope."""
    for stat in MATRIX_STATISTICS:
        method = statistic_method(stat)
        for by in ("carrier", "city"):
            for type_p in cur.type_ps(method):
                matrix(topo, base, cur, by, stat, method, type_p)
                cell_members(topo, cur, by, method)
        _key_values(base, stat)
        _key_values(cur, stat)
    for index in (base, cur):
        for scope in scopes:
            in_scope_mask(topo, index, scope)


def in_scope_mask(topo: Topology, index: RollupIndex, scope: PathScope) -> BoolArray:
    """Per key: whether its directed path lies in ``scope`` (cached per index and scope)."""
    ck = ("scope", scope.model_dump_json())
    if ck not in index.cache:
        index.cache[ck] = np.array([topo.in_scope(scope, index.ends(i))
                                    for i in range(len(index.keys))], dtype=bool)
    out: BoolArray = index.cache[ck]
    return out


def cells_in_scope(topo: Topology, index: RollupIndex, m: Matrix, scope: PathScope,
                   method: str | None = None) -> list[list[bool]]:
    """Per matrix cell: whether any of its paths lies in ``scope`` (a target's)."""
    inside = in_scope_mask(topo, index, scope)
    cells = cell_members(topo, index, m.by, method)
    return [[bool(inside[cells[(r, c)]].any()) if (r, c) in cells else False for c in m.cols]
            for r in m.rows]


def paths_of_cell(topo: Topology, index: RollupIndex, by: str, row: str, col: str,
                  method: str | None = None) -> list[str]:
    """Path ids of one matrix cell, sorted."""
    pos = cell_members(topo, index, by, method).get((row, col), np.zeros(0, np.int64))
    return sorted({index.keys[i][0] for i in pos.tolist()})


@dataclass(frozen=True, slots=True)
class CellPath:
    """One path of a matrix cell as the drill-down lists it: its ends (site, carrier, city)
    and the cell's statistic for it in both windows."""

    path_id: str
    src_site: str
    src_carrier: str
    src_city: str
    dst_site: str
    dst_carrier: str
    dst_city: str
    baseline: float | None
    current: float | None
    change: float | None
    samples: int


def cell_paths(topo: Topology, base: RollupIndex, cur: RollupIndex, by: str, row: str,
               col: str, stat: str, method: str, type_p: str | None) -> list[CellPath]:
    """The paths of one cell with the statistic of each (per-key totals, computed once per
    refresh), sorted by path id."""
    vb = _key_values(base, stat)
    vc = _key_values(cur, stat)
    nc = cur.per_key().received()
    out: dict[str, CellPath] = {}
    for index in (cur, base):
        pos = cell_members(topo, index, by, method, type_p).get((row, col))
        for i in ([] if pos is None else pos.tolist()):
            key = index.keys[i]
            if key[0] in out:
                continue
            e = index.ends(i)
            bi, ci = base._by_key.get(key), cur._by_key.get(key)
            b = vb[bi] if bi is not None else None
            c = vc[ci] if ci is not None else None
            sc, dc = topo.city_of(e.src_site), topo.city_of(e.dst_site)
            out[key[0]] = CellPath(key[0], e.src_site, e.src_carrier, sc.id if sc else "",
                                   e.dst_site, e.dst_carrier, dc.id if dc else "", b, c,
                                   c / b if b and c is not None else None,
                                   int(nc[ci]) if ci is not None else 0)
    return [out[p] for p in sorted(out)]


def _key_values(index: RollupIndex, stat: str) -> list[float | None]:
    """The statistic of every key over the window (cached per index)."""
    ck = ("key values", stat)
    if ck not in index.cache:
        index.cache[ck] = _opt(index.per_key().values(stat)) if index.keys else []
    out: list[float | None] = index.cache[ck]
    return out


def key_ratios(base: RollupIndex, cur: RollupIndex, stat: str) -> dict[PathKey, float | None]:
    """current/baseline of ``stat`` per key of the current window (None without both)."""
    vb, vc = _key_values(base, stat), _key_values(cur, stat)
    out: dict[PathKey, float | None] = {}
    for i, key in enumerate(cur.keys):
        bi = base._by_key.get(key)
        b, c = (vb[bi] if bi is not None else None), vc[i]
        out[key] = c / b if b and c is not None else None
    return out


# --- one path -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Series:
    """Per-bucket statistics of one path (or a group) in one window. Times are bucket starts."""

    t_ns: list[int]
    median_ms: list[float | None]
    p95_ms: list[float | None]
    loss: list[float | None]
    fwd_ms: list[float | None]
    bwd_ms: list[float | None]
    clock_error_ms: list[float | None]
    n: list[int]


def series(index: RollupIndex, keys: Sequence[PathKey], bucket: str = "hour") -> Series:
    m = index.buckets(keys, bucket)
    fwd = (_opt(per_unit_statistic(m.tables[w], "median") / 1e6) for w in ("fwd", "bwd"))
    clock: list[float | None] = ([None] * len(m) if m.clock_error_ns is None
                                 else _opt(m.clock_error_ns / 1e6))
    return Series((m.t_ns).tolist(), _opt(m.values("rtt_median")), _opt(m.values("rtt_p95")),
                  _opt(m.values("loss_ratio")), next(fwd), next(fwd), clock,
                  m.received().tolist())


def owd_series(index: RollupIndex, topo: Topology, path_id: str,
               bucket: str = "hour") -> Series:
    """One-way delays of a path per bucket, with the clock-error bound the analyzer uses: a
    clock domain's relative bound when both ends are in one (:mod:`analyzer.clockdomain`),
    else the results' own (RFC 7679 §3.7.3)."""
    se = series(index, path_keys(index, path_id, "stamp"), bucket)
    e = PathEnds.parse(path_id)
    dom = DomainIndex(topo.inv).of_path(e.src_site, e.src_carrier, e.dst_site, e.dst_carrier)
    if dom is None:
        return se
    return replace(se, clock_error_ms=[dom.relative_error_ms] * len(se.t_ns))


def path_keys(index: RollupIndex, path_id: str, method: str | None = None,
              type_p: str | None = None) -> list[PathKey]:
    return [k for k in index.select(method, type_p) if k[0] == path_id]


@dataclass(frozen=True, slots=True)
class RouteHop:
    ttl: int
    addr: str | None
    rtt_ms: float | None
    carrier: str | None
    site: str | None
    site_kind: str | None


@dataclass(frozen=True, slots=True)
class Route:
    """The latest traceroute of a path and whether it crosses an in-province exchange point."""

    sent_at_ns: int
    hops: list[RouteHop]
    crosses_exchange: bool
    exchange_sites: list[str]


def latest_route(store: ReadStore, topo: Topology, path_id: str, window: Window) -> Route | None:
    """From results with ``method="traceroute"`` (``Result.hops``); hop owners from the
    inventory's carrier and site prefixes."""
    last: Result | None = None
    for r in store.read_results(window.query([path_id], "traceroute")):
        if r.hops and (last is None or r.sent_at_ns >= last.sent_at_ns):
            last = r
    if last is None:
        return None
    hops = [_route_hop(topo, h.ttl, h.addr, h.rtt_ns) for h in last.hops]
    xs = [h.site for h in hops if h.site and h.site_kind == SiteKind.EXCHANGE_POINT.value]
    return Route(last.sent_at_ns, hops, bool(xs), sorted(set(xs)))


def _route_hop(topo: Topology, ttl: int, addr: str | None, rtt_ns: int | None) -> RouteHop:
    if addr is None:
        return RouteHop(ttl, None, None, None, None, None)
    site = topo.site_of_address(addr)
    kind = topo.sites[site].kind.value if site in topo.sites else None
    rtt_ms = None if rtt_ns is None else rtt_ns / 1e6
    return RouteHop(ttl, addr, rtt_ms, topo.carrier_of_address(addr), site, kind)


# --- probes ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeRow:
    """A probe's health (ReadStore.probe_health) and its data coverage in the current window."""

    probe_id: str
    site: str
    carrier: str
    last_seen_ns: int | None
    age_s: float | None
    spool_depth: int | None
    results: int
    coverage: float  # share of the window's units (minutes or hours) with a rollup from it
    status: str  # "ok" | "late" | "silent" | "unknown"
    version: str | None
    set_aside_batches: int = 0  # batches the probe set aside as never acceptable (heartbeat)
    set_aside_results: int = 0  # the results in them


def _units_by_source(cur: RollupIndex) -> dict[tuple[str, str], int]:
    """Per source end (site, carrier): how many of the window's tier units hold a rollup of
    one of its paths (numpy over the columns; cached per index)."""
    if "units by source" not in cur.cache:
        cur.cache["units by source"] = _count_units_by_source(cur)
    out: dict[tuple[str, str], int] = cur.cache["units by source"]
    return out


def _count_units_by_source(cur: RollupIndex) -> dict[tuple[str, str], int]:
    ends = sorted({(lb[3], lb[4]) for lb in cur.cols.labels})
    code = {e: i for i, e in enumerate(ends)}
    of_series = np.array([code[(lb[3], lb[4])] for lb in cur.cols.labels] or [0], np.int64)
    pairs = np.unique(of_series[cur.cols.series] * (1 << 40) + cur.cols.minute)
    counts = np.bincount(pairs >> 40, minlength=len(ends))
    return {e: int(counts[i]) for i, e in enumerate(ends)}


def probe_rows(store: ReadStore, topo: Topology, cur: RollupIndex, now_ns: int,
               late_after_s: float = 600.0) -> list[ProbeRow]:
    """One row per inventory probe (and any unknown probe the collector has seen)."""
    health = {h.probe_id: h for h in store.probe_health()}
    units = _units_by_source(cur)
    n_units = max(1, math.ceil((cur.window.end_ns - cur.window.start_ns) / cur.unit_ns))
    rows = []
    ids = [p.id for p in topo.inv.probes] + sorted(set(health) - {p.id for p in topo.inv.probes})
    for pid in ids:
        ep = topo.endpoints.get(pid)
        h = health.get(pid)
        site, carrier = (ep.site, ep.carrier) if ep else ("?", "?")
        seen = h.last_seen_ns if h else None
        age = (now_ns - seen) / NS if seen is not None else None
        status = ("unknown" if h is None else "silent" if age is None
                  else "ok" if age <= late_after_s else "late")
        cov = units.get((site, carrier), 0) / n_units
        aside = set_aside_totals(h.counters if h else None)
        rows.append(ProbeRow(pid, site, carrier, seen, age, h.spool_depth if h else None,
                             h.results if h else 0, min(cov, 1.0), status,
                             h.version if h else None, *aside))
    return rows


# --- policy-target verdicts (from the analyzer's evaluator) --------------------------------

PASS, FAIL, INCONCLUSIVE, NOT_EVALUABLE = "PASS", "FAIL", "INCONCLUSIVE", "NOT_EVALUABLE"


@dataclass(frozen=True, slots=True)
class VerdictRow:
    """One policy target x group x Type-P as the dashboard shows it: estimate, 95% CI and
    verdict from :func:`analyzer.evaluate.evaluate` (methodology §4); delays in ms."""

    target_id: str
    group: str
    type_p: str
    statistic: str
    kind: str  # relative | absolute | reference (the target's comparison)
    unit: str  # unit of estimate, CI and threshold: "ratio" or "ms"
    baseline: float | None
    current: float | None
    estimate: float | None  # ratio (relative/reference) or the statistic (absolute)
    ci_low: float | None
    ci_high: float | None
    threshold: float | None
    verdict: str  # PASS | FAIL | INCONCLUSIVE | NOT_EVALUABLE
    gate: str  # the rule or gate that decided
    n_baseline: int | None
    n_current: int | None


def _num(x: object) -> float | None:
    return float(x) if isinstance(x, int | float) else None


def evaluate(store: ReadStore, inv: Inventory, base: Window, cur: Window,
             replicates: int = 2000, baseline_store: ReadStore | None = None) -> Evaluation:
    """Run the analyzer's evaluator over the two windows (every policy target); the baseline
    window is read from ``baseline_store`` when given (``--baseline-db``)."""
    from analyzer.baselines import TimeWindow
    from analyzer.evaluate import Params
    from analyzer.evaluate import evaluate as run

    params = Params(current=TimeWindow(cur.start_ns, cur.end_ns),
                    baseline=TimeWindow(base.start_ns, base.end_ns), replicates=replicates)
    return run(store, inv, params, baseline_store)


def verdict_rows(ev: Evaluation) -> list[VerdictRow]:
    """Display rows of an evaluation, in the auditor's report units (delays in ms)."""
    from analyzer.report.jsonout import row_to_dict

    out = []
    for row in ev.rows:
        d = row_to_dict(row)
        iv = d.get("ratio") or d.get("interval") or {}
        out.append(VerdictRow(
            d["target"], d["scope"], d["type_p"], d["statistic"], d["comparison"],
            "ms" if d["comparison"] == "absolute" else "ratio", _num(d["baseline"]["value"]),
            _num(d["current"]["value"]), _num(iv.get("point")), _num(iv.get("low")),
            _num(iv.get("high")), _num(d["threshold"]), d["verdict"].replace(" ", "_"),
            d["reason"], d["baseline"]["n"], d["current"]["n"]))
    return out


def headline(rows: Sequence[VerdictRow]) -> VerdictRow | None:
    """The row that sets a target's badge: among the evaluable rows, a FAIL before an
    INCONCLUSIVE before a PASS (:func:`overall`), and within the same verdict the highest
    upper confidence limit (higher is worse for every comparison kind: ratio <= theta,
    value < T, ratio <= at-most)."""
    rank = {FAIL: 0, INCONCLUSIVE: 1, PASS: 2}
    ev = [r for r in rows if r.verdict in rank and r.ci_high is not None]
    if not ev:
        return None
    return min(ev, key=lambda r: (rank[r.verdict], -(r.ci_high or 0.0)))


def overall(rows: Sequence[VerdictRow]) -> str:
    """'All groups meet the target' is an intersection-union test (Berger 1982): PASS only if
    every evaluable group passes; any FAIL fails."""
    verdicts = {r.verdict for r in rows} - {NOT_EVALUABLE}
    if not verdicts:
        return NOT_EVALUABLE
    if FAIL in verdicts:
        return FAIL
    return PASS if verdicts == {PASS} else INCONCLUSIVE


def scope_keys(topo: Topology, target: PolicyTarget, index: RollupIndex,
               scope: PathScope | None = None) -> list[PathKey]:
    """Keys of the target's method whose directed path lies in ``scope`` (default: its own)."""
    m = target.method.value if target.method is not None else None
    inside = in_scope_mask(topo, index, scope if scope is not None else target.scope)
    return sorted(k for k, ok in zip(index.keys, inside.tolist(), strict=True)
                  if ok and (m is None or k[1] == m))


def _busy(target: PolicyTarget) -> list[int]:
    agg = target.aggregation
    return list(agg.busy_hours) if agg.window == "busy_hours" else []


def trend(topo: Topology, target: PolicyTarget, base: RollupIndex, cur: RollupIndex,
          group: tuple[str, str] | None = None, bucket: str = "day"
          ) -> tuple[list[int], list[float | None]]:
    """A target's value per ``bucket`` (minute, hour or day) over the current window:
    current/baseline (relative; the baseline over its whole window), the statistic (absolute)
    or scope/reference (reference). ``group`` = (group key, Type-P) restricts it to the verdict
    row that sets the target's badge; None pools the whole scope."""
    comp = target.comparison
    stat = target.statistic
    busy = _busy(target)
    tz = target.aggregation.timezone

    def in_group(index: RollupIndex, scope: PathScope | None = None) -> list[PathKey]:
        keys = scope_keys(topo, target, index, scope)
        if group is None:
            return keys
        return [k for k in keys if k[2] == group[1] and
                (scope is not None or
                 topo.group_of(index.ends(index._by_key[k]), target.per) == group[0])]

    denom: float | None = 1.0
    if comp.kind == "relative":
        b = base.group_total(in_group(base))
        denom = statistic(b, stat) if b else None
    ref: dict[int, float | None] = {}
    if comp.kind == "reference":
        r = cur.buckets(in_group(cur, comp.reference), bucket, busy, tz)
        ref = dict(zip(r.t_ns.tolist(), _opt(r.values(stat)), strict=True))
    m = cur.buckets(in_group(cur), bucket, busy, tz)
    ts, vs = m.t_ns.tolist(), _opt(m.values(stat))
    out = []
    for t, v in zip(ts, vs, strict=True):
        d = ref.get(t) if comp.kind == "reference" else denom
        out.append(v / d if v is not None and d else None)
    return ts, out
