"""What the demo will do, decided before anything runs: pure functions, no I/O beyond reading the
inventory file.

- :func:`demo_inventory`: the inventory cut down to the demo's sites, with the demo's probe rates;
- :func:`plan_timeline`: the baseline window, the profile switch, the settling interval left out
  and the current window, on whole UTC minutes (the store keeps one rollup per path and minute, and
  a window takes every minute it overlaps: docs/collector.md);
- :func:`iso_window`: a window as the analyzer's ``FROM/TO`` argument.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from ixmeter.errors import IxmeterError

NS = 1_000_000_000
MINUTE_NS = 60 * NS
# One carrier-neutral data centre in Changsha, one in Zhuzhou (Chang-Zhu-Tan cluster) and one in
# Chenzhou (Xiangnan cluster), three carriers each: intra-city, intra-cluster and inter-cluster
# paths, inter- and intra-carrier, on 9 hosts.
DEFAULT_SITES = ("cs-yungu", "zz-datalake", "cz-ezone")
# 10 min baseline + 1 min settling + 10 min current: a delay verdict needs at least 10 minutes in
# each window (analyzer MIN_UNITS, docs/methodology.md "Minimum samples").
DEFAULT_DURATION_S = 1260.0
MIN_DURATION_S = 30.0
SETTLE_FROM_S = 180.0  # runs at least this long leave the switch minute out
WARMUP_S = 5.0  # first packets (ARP/ND, docs/stamp.md) fall before the baseline window
# Probe rates per directed path and IP version. ICMP feeds the loss and latency targets: at 2/s a
# directed carrier pair (9 paths here) sends 10,800 echoes in a 10 min window, about 3x the
# ~3,300 that 1 % -> 0.1 % round-trip loss needs for a PASS at power 0.8 with independent losses
# (docs/methodology.md §3 "Sample sizes"), leaving room for bursty loss (dispersion phi ~2).
DEMO_RATES = {"icmp": 2.0, "stamp": 1.0, "traceroute": 1 / 120}


class DemoError(IxmeterError):
    """The demo cannot be planned or run as asked."""


@dataclass(frozen=True, slots=True)
class Timeline:
    """Times in UTC ns: baseline window, the switch, settling left out, current window."""

    baseline: tuple[int, int]
    switch_ns: int
    current: tuple[int, int]

    @property
    def end_ns(self) -> int:
        return self.current[1]

    @property
    def settle(self) -> tuple[int, int]:
        return (self.baseline[1], self.current[0])

    def phase(self, t_ns: int) -> str:
        """``warm-up``, ``baseline``, ``settling``, ``current`` or ``done`` at ``t_ns``."""
        if t_ns < self.baseline[0]:
            return "warm-up"
        if t_ns < self.baseline[1]:
            return "baseline"
        if t_ns < self.current[0]:
            return "settling"
        return "current" if t_ns < self.current[1] else "done"


def plan_timeline(now_ns: int, duration_s: float, warmup_s: float = WARMUP_S) -> Timeline:
    """Split ``duration_s`` into baseline, settling and current phases.

    From ``SETTLE_FROM_S`` on, each phase is a whole number of minutes and the minute around the
    switch is left out (the profile changes in its middle); shorter runs switch on a minute
    boundary and leave nothing out. The switch minute is the first boundary at least
    ``warmup_s`` + one phase after ``now_ns``, so the baseline starts after the warm-up.
    """
    if not math.isfinite(duration_s) or duration_s < MIN_DURATION_S:
        raise DemoError(f"--duration {duration_s:g} is too short",
                        hint=f"give at least {MIN_DURATION_S:g} seconds")
    settle_ns = MINUTE_NS if duration_s >= SETTLE_FROM_S else 0
    half_ns = int((duration_s * NS - settle_ns) / 2)
    if settle_ns:
        half_ns = max(MINUTE_NS, half_ns // MINUTE_NS * MINUTE_NS)
    earliest = now_ns + int(warmup_s * NS) + half_ns
    start_of_switch = -(-earliest // MINUTE_NS) * MINUTE_NS
    return Timeline(baseline=(start_of_switch - half_ns, start_of_switch),
                    switch_ns=start_of_switch + settle_ns // 2,
                    current=(start_of_switch + settle_ns, start_of_switch + settle_ns + half_ns))


def iso(t_ns: int) -> str:
    """``2026-11-23T22:14:00Z`` (whole seconds are enough: windows start on seconds)."""
    return datetime.fromtimestamp(t_ns // NS, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_window(window: tuple[int, int]) -> str:
    """The analyzer's ``FROM/TO`` form of a window."""
    return f"{iso(window[0])}/{iso(window[1])}"


def clock(t_ns: int) -> str:
    return datetime.fromtimestamp(t_ns / NS, tz=UTC).strftime("%H:%M:%S")


def demo_inventory(source: dict[str, Any], sites: Sequence[str],
                   rates: dict[str, float] | None = None) -> dict[str, Any]:
    """A copy of the inventory mapping with only the probes at ``sites`` and every measurement
    spec's rate set from ``rates`` (by method); sites, cities and policy targets stay."""
    rates = DEMO_RATES if rates is None else rates
    known = {s.get("id") for s in source.get("sites", [])}
    unknown = [s for s in sites if s not in known]
    if unknown:
        raise DemoError(f"unknown site(s) {', '.join(unknown)}",
                        hint="use site ids from the inventory, e.g. " + ",".join(DEFAULT_SITES))
    out = copy.deepcopy(source)
    out["probes"] = [p for p in source.get("probes", []) if p.get("site") in sites]
    if len(out["probes"]) < 2:
        raise DemoError(f"the site(s) {', '.join(sites)} hold {len(out['probes'])} probe(s)",
                        hint="choose sites with at least two probes between them")
    specs = []
    for spec in source.get("specs", []):
        method = spec.get("method")
        if method in rates:
            specs.append({**spec, "rate_pps": rates[method]})
    out["specs"] = specs
    out["targets"] = []
    return out


def read_inventory(path: str | Path) -> dict[str, Any]:
    """The inventory file as a plain mapping (validated later by ``inventory.loader.load``)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DemoError(f"cannot read inventory {path}: {exc}") from None
    if not isinstance(data, dict):
        raise DemoError(f"inventory {path}: expected a mapping")
    return data


def write_inventory(data: dict[str, Any], path: Path) -> None:
    header = ("# Written by 'ixmeter demo': the demo's sites and probe rates; everything else as\n"
              "# in the inventory it was made from.\n")
    path.write_text(header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
