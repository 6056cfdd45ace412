"""Read-only query functions for the dashboard: the one place between its pages and the store.

Everything here reads through the :class:`~analyzer.store.base.ReadStore` Protocol (no SQL) and the
inventory's :class:`~inventory.topology.Topology`, and returns plain dataclasses of numbers that
the dashboard's figure builders draw. Statistics are taken from merged minute rollups
(:func:`analyzer.rollup.merge`), so they carry the rollups' definitions:

- delay percentiles: RFC 2330 §11.3 inverted-CDF percentiles of the *conditional* (arrived-only)
  sample (RFC 6703 §5.3), read from a DDSketch (relative error alpha, Masson et al. 2019);
- medians: RFC 7679 §5.2 (even N: mean of the two central values);
- loss ratio: mean of the loss indicators, RFC 7680 §4.1, undefined for an empty sample.

Times are bucketed in Asia/Shanghai local time (days start at 00:00 +08:00), the time zone the
policy documents use. Verdicts come from the analyzer's evaluator (:mod:`analyzer.evaluate`);
this module only reshapes them for display and draws the daily trend of each target.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from analyzer.clockdomain import DomainIndex
from analyzer.rollup import MinuteRollup, merge
from analyzer.store.base import Query, ReadStore
from inventory.schema import Inventory, PathScope, PolicyTarget, SiteKind
from inventory.topology import PathEnds, Topology
from ixmeter.heartbeat import set_aside_totals
from ixmeter.record import Result

if TYPE_CHECKING:
    from analyzer.evaluate import Evaluation

TZ = ZoneInfo("Asia/Shanghai")
NS = 1_000_000_000
NS_PER_HOUR = 3600 * NS
NS_PER_DAY = 24 * NS_PER_HOUR
_TZ_OFFSET_NS = 8 * NS_PER_HOUR  # Asia/Shanghai has had no DST since 1991
PathKey = tuple[str, str, str]  # (path_id, method, type_p)


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open time window [start_ns, end_ns), UTC nanoseconds."""

    start_ns: int
    end_ns: int

    def query(self, path_ids: Sequence[str] = (), method: str | None = None) -> Query:
        return Query(self.start_ns, self.end_ns, tuple(path_ids), method)

    @property
    def days(self) -> float:
        return (self.end_ns - self.start_ns) / NS_PER_DAY

    @classmethod
    def from_local_dates(cls, start: str, end: str) -> Window:
        """Window from two ISO dates read in Asia/Shanghai; ``end`` is inclusive (whole day)."""
        s = datetime.fromisoformat(start[:10]).replace(tzinfo=TZ)
        e = datetime.fromisoformat(end[:10]).replace(tzinfo=TZ)
        return cls(int(s.timestamp()) * NS, int(e.timestamp()) * NS + NS_PER_DAY)


def local_hour_start(t_ns: int) -> int:
    """Start (UTC ns) of the Asia/Shanghai hour containing ``t_ns``."""
    return t_ns - t_ns % NS_PER_HOUR


def local_day_start(t_ns: int) -> int:
    """Start (UTC ns) of the Asia/Shanghai day containing ``t_ns``."""
    return t_ns - (t_ns + _TZ_OFFSET_NS) % NS_PER_DAY


def local_hour_of_day(t_ns: int) -> int:
    return ((t_ns + _TZ_OFFSET_NS) % NS_PER_DAY) // NS_PER_HOUR


def local_label(t_ns: int, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return datetime.fromtimestamp(t_ns / NS, TZ).strftime(fmt)


# --- statistics of one merged rollup -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stats:
    """Summary of one merged rollup. Delays in ms; ``None`` where the sample is empty."""

    sent: int
    received: int
    lost: int
    loss_ratio: float | None
    rtt_median_ms: float | None
    rtt_p95_ms: float | None
    rtt_mean_ms: float | None
    fwd_median_ms: float | None
    bwd_median_ms: float | None
    clock_error_ms: float | None
    unsynced: int


def _ms(v: float | None) -> float | None:
    return None if v is None else v / 1e6


def stats_of(r: MinuteRollup) -> Stats:
    """Median and p95 are conditional percentiles (RFC 2330 §11.3, RFC 6703 §5.3)."""
    return Stats(
        r.sent, r.received, r.lost, r.loss_ratio,
        _ms(r.rtt.sketch.median()), _ms(r.rtt.sketch.quantile(0.95)), _ms(r.rtt.mean),
        _ms(r.fwd.sketch.median()), _ms(r.bwd.sketch.median()),
        _ms(r.clock_error_max_ns), r.unsynced,
    )


def statistic(r: MinuteRollup, name: str) -> float | None:
    """One named statistic (inventory.schema.KNOWN_STATISTICS); delays in ms, loss as a ratio.
    ``owd_median`` is the larger of the two directions' medians (RFC 7679 §5.2)."""
    if name == "rtt_median":
        return _ms(r.rtt.sketch.median())
    if name == "rtt_p95":
        return _ms(r.rtt.sketch.quantile(0.95))
    if name == "rtt_p99":
        return _ms(r.rtt.sketch.quantile(0.99))
    if name == "rtt_mean":
        return _ms(r.rtt.mean)
    if name == "rtt_min":
        return _ms(r.rtt.min)
    if name == "loss_ratio":
        return r.loss_ratio
    if name == "owd_median":
        meds = [m for m in (r.fwd.sketch.median(), r.bwd.sketch.median()) if m is not None]
        return _ms(max(meds)) if meds else None
    raise ValueError(f"statistic {name!r} is not shown by the dashboard")


def distribution(r: MinuteRollup, which: str = "rtt") -> tuple[list[float], list[float]]:
    """Empirical CDF of a merged sketch: bucket representative values (ms) and F(x)."""
    sk = getattr(r, which).sketch
    if sk.count == 0:
        return [], []
    xs, ys, seen = [], [], sk.zero
    if sk.zero:
        xs.append(0.0)
        ys.append(seen / sk.count)
    for k in sorted(sk.buckets):
        seen += sk.buckets[k]
        xs.append(sk.value(k) / 1e6)
        ys.append(seen / sk.count)
    return xs, ys


# --- an index of one window's rollups, bucketed by local hour ------------------------------


MINUTE_WINDOW_NS = 6 * NS_PER_HOUR  # windows up to this long are indexed by minute


def display_bucket(window: Window) -> str:
    """The time resolution a window is drawn at: ``minute`` up to 6 hours (a live demo),
    ``hour`` up to 14 days, else ``day`` (a year)."""
    length = window.end_ns - window.start_ns
    if length <= MINUTE_WINDOW_NS:
        return "minute"
    return "hour" if length <= 14 * NS_PER_DAY else "day"


@dataclass
class RollupIndex:
    """One window's rollups merged per (path, method, Type-P) and time unit: a UTC minute for
    windows up to :data:`MINUTE_WINDOW_NS`, else a local hour (``unit_ns``).

    Built once per window by :func:`load_index` and then queried many times, so the dashboard's
    callbacks never re-read the store for the same window.
    """

    window: Window
    unit_ns: int = NS_PER_HOUR
    units: dict[PathKey, dict[int, MinuteRollup]] = field(default_factory=dict)
    _totals: dict[PathKey, MinuteRollup] = field(default_factory=dict)
    _groups: dict[tuple[PathKey, ...], MinuteRollup | None] = field(default_factory=dict)
    _buckets: dict[tuple[tuple[PathKey, ...], str, tuple[int, ...]],
                   list[tuple[int, MinuteRollup]]] = field(default_factory=dict)

    def select(self, method: str | None = None, type_p: str | None = None) -> list[PathKey]:
        return sorted(k for k in self.units
                      if (method is None or k[1] == method) and (type_p is None or k[2] == type_p))

    def total(self, key: PathKey) -> MinuteRollup:
        if key not in self._totals:
            self._totals[key] = merge(self.units[key].values())
        return self._totals[key]

    def group_total(self, keys: Iterable[PathKey]) -> MinuteRollup | None:
        """Merged total of several keys (cached: a matrix asks for the same cells again)."""
        group = tuple(k for k in keys if k in self.units)
        if group not in self._groups:
            self._groups[group] = merge(self.total(k) for k in group) if group else None
        return self._groups[group]

    def buckets(self, keys: Iterable[PathKey], bucket: str = "hour",
                hours: Sequence[int] = ()) -> list[tuple[int, MinuteRollup]]:
        """Merged rollups per minute (minute-indexed windows only), local hour or local day
        (sorted), optionally only some local hours. Cached: several targets share one scope
        (latency and loss of the same paths)."""
        ck = (tuple(keys), bucket, tuple(hours))
        if ck not in self._buckets:
            self._buckets[ck] = self._merge_buckets(ck[0], bucket, ck[2])
        return self._buckets[ck]

    def _merge_buckets(self, keys: Sequence[PathKey], bucket: str,
                       hours: Sequence[int]) -> list[tuple[int, MinuteRollup]]:
        if bucket == "minute" and self.unit_ns != 60 * NS:
            raise ValueError("minute buckets of an hour-indexed window")
        out: dict[int, list[MinuteRollup]] = {}
        for k in keys:
            for u, r in self.units.get(k, {}).items():
                if hours and local_hour_of_day(u) not in hours:
                    continue
                t = u if bucket == "minute" else local_hour_start(u) if bucket == "hour" \
                    else local_day_start(u)
                out.setdefault(t, []).append(r)
        return [(t, merge(out[t])) for t in sorted(out)]

    def type_ps(self, method: str | None = None) -> list[str]:
        return sorted({k[2] for k in self.select(method)})


def load_index(store: ReadStore, window: Window, path_ids: Sequence[str] = ()) -> RollupIndex:
    """Read a window's minute rollups and fold them into minute or local-hour units."""
    unit = 60 * NS if window.end_ns - window.start_ns <= MINUTE_WINDOW_NS else NS_PER_HOUR
    index = RollupIndex(window, unit)
    pending: dict[tuple[PathKey, int], list[MinuteRollup]] = {}
    for r in store.read_rollups(window.query(path_ids)):
        t = r.minute * 60 * NS
        pending.setdefault(((r.path_id, r.method, r.type_p), t - t % unit), []).append(r)
    for (key, t), parts in pending.items():
        index.units.setdefault(key, {})[t] = parts[0] if len(parts) == 1 else merge(parts)
    return index


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
    by_minute: dict[int, list[MinuteRollup]] = {}
    for r in store.read_rollups(window.query(method="icmp")):
        if r.src_carrier != r.dst_carrier and r.type_p.startswith(type_p) and \
                r.src_site in topo.sites and r.dst_site in topo.sites:
            by_minute.setdefault(r.minute, []).append(r)
    out = []
    for m in sorted(by_minute):
        merged = merge(by_minute[m])
        out.append(Minute(m * 60 * NS, statistic(merged, "rtt_median"), merged.loss_ratio,
                          merged.sent))
    return out


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


def group_of(topo: Topology, key: PathKey, by: str) -> tuple[str, str] | None:
    """(row, column) of a path in a carrier x carrier or city x city matrix."""
    src, dst = key[0].split(">")
    (s_site, s_car), (d_site, d_car) = src.split("/"), dst.split("/")
    if by == "carrier":
        return s_car, d_car
    sc, dc = topo.city_of(s_site), topo.city_of(d_site)
    return (sc.id, dc.id) if sc and dc else None


def matrix(topo: Topology, base: RollupIndex, cur: RollupIndex, by: str, stat: str,
           method: str, type_p: str | None) -> Matrix:
    """Carrier x carrier or city x city matrix; cells merge every path of the pair."""
    groups: dict[tuple[str, str], list[PathKey]] = {}
    for key in sorted(set(base.select(method, type_p)) | set(cur.select(method, type_p))):
        g = group_of(topo, key, by)
        if g is not None:
            groups.setdefault(g, []).append(key)
    order = ([c.id for c in topo.inv.carriers] if by == "carrier"
             else [c.id for c in topo.inv.cities])
    present = {g for pair in groups for g in pair}
    labels = [x for x in order if x in present]
    grids: dict[str, list[list[float | None]]] = {"b": [], "c": [], "x": []}
    samples: list[list[int]] = []
    for row in labels:
        rb, rc, rx, rn = [], [], [], []
        for col in labels:
            keys = groups.get((row, col), [])
            b, c = base.group_total(keys), cur.group_total(keys)
            vb = statistic(b, stat) if b else None
            vc = statistic(c, stat) if c else None
            rb.append(vb)
            rc.append(vc)
            rx.append(vc / vb if vb and vc is not None else None)
            rn.append(c.received if c else 0)
        grids["b"].append(rb)
        grids["c"].append(rc)
        grids["x"].append(rx)
        samples.append(rn)
    return Matrix(by, stat, labels, labels, grids["b"], grids["c"], grids["x"], samples)


def cells_in_scope(topo: Topology, index: RollupIndex, m: Matrix, scope: PathScope,
                   method: str | None = None) -> list[list[bool]]:
    """Per matrix cell: whether any of its paths lies in ``scope`` (a target's)."""
    out = []
    for row in m.rows:
        line = []
        for col in m.cols:
            ok = False
            for pid in paths_of_cell(topo, index, m.by, row, col, method):
                src, dst = pid.split(">")
                (ss, sc), (ds, dc) = src.split("/"), dst.split("/")
                if topo.in_scope(scope, PathEnds(ss, sc, ds, dc)):
                    ok = True
                    break
            line.append(ok)
        out.append(line)
    return out


def paths_of_cell(topo: Topology, index: RollupIndex, by: str, row: str, col: str,
                  method: str | None = None) -> list[str]:
    """Path ids of one matrix cell, sorted."""
    return sorted({k[0] for k in index.select(method) if group_of(topo, k, by) == (row, col)})


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
    rows = [(t, stats_of(r)) for t, r in index.buckets(keys, bucket)]
    return Series([t for t, _ in rows], [s.rtt_median_ms for _, s in rows],
                  [s.rtt_p95_ms for _, s in rows], [s.loss_ratio for _, s in rows],
                  [s.fwd_median_ms for _, s in rows], [s.bwd_median_ms for _, s in rows],
                  [s.clock_error_ms for _, s in rows], [s.received for _, s in rows])


def owd_series(index: RollupIndex, topo: Topology, path_id: str,
               bucket: str = "hour") -> Series:
    """One-way delays of a path per bucket, with the clock-error bound the analyzer uses: a
    clock domain's relative bound when both ends are in one (:mod:`analyzer.clockdomain`),
    else the results' own (RFC 7679 §3.7.3)."""
    se = series(index, path_keys(index, path_id, "stamp"), bucket)
    src, dst = path_id.split(">")
    (ss, sc), (ds, dc) = src.split("/"), dst.split("/")
    dom = DomainIndex(topo.inv).of_path(ss, sc, ds, dc)
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
    return RouteHop(ttl, addr, _ms(rtt_ns), topo.carrier_of_address(addr), site, kind)


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


def probe_rows(store: ReadStore, topo: Topology, cur: RollupIndex, now_ns: int,
               late_after_s: float = 600.0) -> list[ProbeRow]:
    """One row per inventory probe (and any unknown probe the collector has seen)."""
    health = {h.probe_id: h for h in store.probe_health()}
    hours_by_end: dict[tuple[str, str], set[int]] = {}
    for key, per in cur.units.items():
        site, carrier = key[0].split(">")[0].split("/")
        hours_by_end.setdefault((site, carrier), set()).update(per)
    n_hours = max(1, math.ceil((cur.window.end_ns - cur.window.start_ns) / cur.unit_ns))
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
        cov = len(hours_by_end.get((site, carrier), ())) / n_hours
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
    sc = scope if scope is not None else target.scope
    out = []
    for key in index.select(m):
        src, dst = key[0].split(">")
        (ss, sca), (ds, dca) = src.split("/"), dst.split("/")
        if topo.in_scope(sc, PathEnds(ss, sca, ds, dca)):
            out.append(key)
    return out


def _busy(target: PolicyTarget) -> list[int]:
    agg = target.aggregation
    return list(agg.busy_hours) if agg.window == "busy_hours" else []


def group_of_key(topo: Topology, key: PathKey, per: str) -> str:
    """The verdict group a path belongs to under a target's ``per`` (the same keys as
    :func:`analyzer.metrics.group_key`): ``CT>CM``, ``changsha>zhuzhou``, the path, ``all``."""
    src, dst = key[0].split(">")
    (ss, sc), (ds, dc) = src.split("/"), dst.split("/")
    if per == "carrier_pair":
        return f"{sc}>{dc}"
    if per == "city_pair":
        a, b = topo.city_of(ss), topo.city_of(ds)
        return f"{a.id if a else ss}>{b.id if b else ds}"
    return key[0] if per == "path" else "all"


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

    def in_group(index: RollupIndex, scope: PathScope | None = None) -> list[PathKey]:
        keys = scope_keys(topo, target, index, scope)
        if group is None:
            return keys
        return [k for k in keys if k[2] == group[1] and
                (scope is not None or group_of_key(topo, k, target.per) == group[0])]

    denom: float | None = 1.0
    if comp.kind == "relative":
        b = base.group_total(in_group(base))
        denom = statistic(b, stat) if b else None
    ref = {t: statistic(r, stat) for t, r in
           cur.buckets(in_group(cur, comp.reference), bucket, busy)
           } if comp.kind == "reference" else {}
    ts, vs = [], []
    for t, r in cur.buckets(in_group(cur), bucket, busy):
        v = statistic(r, stat)
        d = ref.get(t) if comp.kind == "reference" else denom
        ts.append(t)
        vs.append(v / d if v is not None and d else None)
    return ts, vs
