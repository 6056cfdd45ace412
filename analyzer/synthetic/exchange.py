"""A synthetic before/after history of an exchange point over an inventory's sites: the
dashboard's demo data (``ixmeter dashboard --demo-data``), its tests and bench.dashboard_serve.

A store is filled through the real write path (``Store.write_batch``, batch ids
``synthetic-<burst>-<probe>``) with results shaped like the probes' own
(:class:`analyzer.synthetic.results.Stream`), but never passed off as measured: every result
comes from a probe id ``synthetic-<probe>`` with the timestamp source ``imported`` (not a kernel
stamp), so the dashboard labels every page over such a store SYNTHETIC
(``dashboard.context.Context.synthetic``). ``ixmeter dashboard --demo-data`` fills only a new,
empty store: generated data is never mixed with measurements.

The model is deliberately simple and stated here so nobody mistakes it for data:
- round trip = fibre distance (great circle x 1.5 at 200 km/ms, both ways) + 0.3 ms + jitter;
- *before* the exchange point, inter-carrier traffic detours via the Wuhan or Guangzhou hub
  (+ their distance + 8 ms); *after*, it crosses the Changsha exchange point (+ 1 ms), except
  CU>CM, which keeps part of its detour so that one carrier pair visibly fails its target;
- loss: 0.6 % inter-carrier before, 0.15 % after, 0.1 % intra-carrier;
- STAMP adds one-way delays (half the RTT each way, +/- 5 %) with a 50 µs clock-error bound;
- one traceroute per path per day whose hops name the hub or the exchange point's prefix;
- a burst of ``per_burst`` packets every ``every_s`` seconds, and every ``busy_every_s`` in the
  busy hours (20–22 local), so that busy-hour targets have data.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from analyzer.store.base import Store
from analyzer.synthetic.results import (
    ICMP_V4,
    STAMP_V4,
    SYNTHETIC_PREFIX,
    TRACE_V4,
    Stream,
    batch,
)
from analyzer.views import NS, NS_PER_DAY, NS_PER_HOUR, Window
from inventory.topology import PathEnds, Topology
from ixmeter.core.heartbeat import set_aside_counters
from ixmeter.core.record import Hop, Method, Result

DEFAULT_SITES = ("cs-yungu", "cz-ezone", "cs-cmcc")  # small: tests
SHOW_SITES = ("cs-yungu", "cs-cmcc", "cz-ezone", "cd-bigdata", "yz-huawei")  # --demo-data


@dataclass(frozen=True, slots=True)
class DemoPlan:
    """What to generate: which sites' probes, the two windows, burst spacing and size."""

    sites: Sequence[str]
    baseline: Window
    current: Window
    every_s: int = 4 * 3600
    per_burst: int = 8
    seed: int = 1
    busy_hours: Sequence[int] = (20, 21, 22)  # local hours with a burst every busy_every_s
    busy_every_s: int = 900


def _km(topo: Topology, a: str, b: str) -> float:
    """Great-circle distance between two sites (haversine, mean Earth radius 6371 km)."""
    sa, sb = topo.sites[a], topo.sites[b]
    lat1, lon1, lat2, lon2 = map(math.radians, (sa.lat or 0, sa.lon or 0, sb.lat or 0, sb.lon or 0))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * 6371 * math.asin(math.sqrt(h))


def _rtt_ms(topo: Topology, p: PathEnds, before: bool) -> float:
    base = 2 * 1.5 * _km(topo, p.src_site, p.dst_site) / 200 + 0.3
    if not p.inter_carrier:
        return base
    hub = "wh-ixp" if (topo.sites[p.src_site].lat or 0) > 27 else "gz-ixp"
    detour = 2 * 1.5 * (_km(topo, p.src_site, hub) + _km(topo, hub, p.dst_site)) / 200 + 8
    if before:
        return base + detour
    if (p.src_carrier, p.dst_carrier) == ("CU", "CM"):
        return base + 0.5 * detour
    return base + 1.0


def synthetic_id(topo: Topology, site: str, carrier: str) -> str:
    """``synthetic-<probe id>`` of the inventory probe at the path's source."""
    probe = topo.endpoint_at(site, carrier)
    return SYNTHETIC_PREFIX + (probe.id if probe else f"{site}-{carrier.lower()}")


def demo_paths(topo: Topology, sites: Sequence[str]) -> list[PathEnds]:
    return [p for p in topo.probe_paths if p.src_site in sites and p.dst_site in sites]


def _addr(topo: Topology, site: str, carrier: str) -> str:
    ep = topo.endpoint_at(site, carrier)
    return ep.addresses[0] if ep else "198.18.255.1"


def _stream(topo: Topology, p: PathEnds, method: Method = Method.ICMP) -> Stream:
    tp = {Method.ICMP: ICMP_V4, Method.STAMP: STAMP_V4, Method.TRACEROUTE: TRACE_V4}[method]
    return Stream(p.src_site, p.src_carrier, p.dst_site, p.dst_carrier, method, tp,
                  synthetic_id(topo, p.src_site, p.src_carrier),
                  _addr(topo, p.src_site, p.src_carrier), _addr(topo, p.dst_site, p.dst_carrier))


def _results(topo: Topology, p: PathEnds, t0: int, before: bool, plan: DemoPlan,
             rng: random.Random) -> Iterator[Result]:
    rtt = _rtt_ms(topo, p, before)
    loss = 0.001 if not p.inter_carrier else 0.006 if before else 0.0015
    streams = (_stream(topo, p, Method.ICMP), _stream(topo, p, Method.STAMP))
    for i in range(plan.per_burst):
        sent = t0 + i * NS
        seq = (t0 // NS) % 1_000_000 + i
        for stream in streams:
            if rng.random() < loss:
                yield stream.result(seq, sent, None)
                continue
            ns = int(rtt * 1e6 * rng.lognormvariate(0, 0.08))
            extra: dict[str, Any] = {}
            if stream.method is Method.STAMP:
                fwd = int(ns / 2 * rng.uniform(0.95, 1.05))
                extra = dict(fwd_ns=fwd, bwd_ns=ns - fwd, clock_error_ns=50_000,
                             src_synced=True, dst_synced=True)
            yield stream.result(seq, sent, ns, **extra)


def _trace(topo: Topology, p: PathEnds, t: int, before: bool) -> Result:
    dst = _addr(topo, p.dst_site, p.dst_carrier)
    hub = ("198.19.1.1" if (topo.sites[p.src_site].lat or 0) > 27 else "198.19.2.1") if before \
        else "198.19.0.1"
    mid = [hub] if p.inter_carrier else []
    addrs = [_addr(topo, p.src_site, p.src_carrier).rsplit(".", 1)[0] + ".1", *mid, None, dst]
    rtt = _rtt_ms(topo, p, before)
    hops = tuple(Hop(i + 1, a, None if a is None else int(rtt * 1e6 * (i + 1) / len(addrs)))
                 for i, a in enumerate(addrs))
    return _stream(topo, p, Method.TRACEROUTE).result(t // NS % 1_000_000, t, int(rtt * 1e6),
                                                       hops=hops)


def fill(store: Store, topo: Topology, plan: DemoPlan, now_ns: int) -> int:
    """Write the plan's results batch by batch (one batch per probe and burst); heartbeats
    for every probe but the last, which stays silent; the first is late, with a backlog and
    one batch set aside. Returns the number of results."""
    rng = random.Random(plan.seed)
    paths = demo_paths(topo, plan.sites)
    total = 0
    for window, before in ((plan.baseline, True), (plan.current, False)):
        for t0 in _burst_times(window, plan):
            by_probe: dict[str, list[Result]] = {}
            for p in paths:
                for r in _results(topo, p, t0, before, plan, rng):
                    by_probe.setdefault(r.probe_id, []).append(r)
                if (t0 - window.start_ns) % NS_PER_DAY < plan.every_s * NS:
                    tr = _trace(topo, p, t0 + 30 * NS, before)
                    by_probe.setdefault(tr.probe_id, []).append(tr)
            for pid, results in by_probe.items():
                store.write_batch(batch(results, f"{t0}-{pid}"), t0 + 60 * NS)
                total += len(results)
    probes = sorted({SYNTHETIC_PREFIX + p.id for p in topo.inv.probes if p.site in plan.sites})
    for i, pid in enumerate(probes[:-1]):
        late = i == 0
        store.record_heartbeat(pid, now_ns - (2 * NS_PER_HOUR if late else 30 * NS),
                               17 if late else 0, "0.1.0", set_aside_counters(
                                   {"refused": (1, 40)} if late else {}))
    return total


def _burst_times(window: Window, plan: DemoPlan) -> list[int]:
    """Every ``every_s`` through the window, and every ``busy_every_s`` in the busy hours."""
    times = set(range(window.start_ns, window.end_ns - plan.per_burst * NS, plan.every_s * NS))
    for t in range(window.start_ns, window.end_ns - plan.per_burst * NS,
                   plan.busy_every_s * NS):
        if ((t + 8 * NS_PER_HOUR) % NS_PER_DAY) // NS_PER_HOUR in plan.busy_hours:
            times.add(t)
    return sorted(times)


def default_plan(topo: Topology, now_ns: int, days: int = 3,
                 sites: Sequence[str] = DEFAULT_SITES) -> DemoPlan:
    """Baseline: the inventory's first measured baseline window (its first ``days`` days);
    current: the last ``days`` whole local days before ``now_ns``."""
    start = None
    for b in topo.inv.baselines:
        if b.kind == "measured" and b.window is not None:
            start = int(b.window.start.timestamp()) * NS
            break
    end = now_ns - (now_ns + 8 * NS_PER_HOUR) % NS_PER_DAY
    cur = Window(end - days * NS_PER_DAY, end)
    base = Window(start, start + days * NS_PER_DAY) if start is not None else \
        Window(cur.start_ns - 60 * NS_PER_DAY, cur.start_ns - (60 - days) * NS_PER_DAY)
    return DemoPlan(sites, base, cur)
