"""What the demo will do, decided before anything runs: pure functions, no I/O beyond reading the
inventory file.

- :func:`demo_inventory`: the inventory cut down to the demo's sites, with the demo's probe rates
  and the testbed's clock domain;
- :func:`plan_timeline`: when the probes of both copies of the network start and stop, and the
  window of whole UTC minutes that holds what they measured (the store keeps one rollup per path
  and minute, and a window takes every minute it overlaps: docs/collector.md);
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

from ixmeter.core.errors import IxmeterError

NS = 1_000_000_000
MINUTE_NS = 60 * NS
# One carrier-neutral data centre in Changsha, one in Zhuzhou (Chang-Zhu-Tan cluster) and one in
# Chenzhou (Xiangnan cluster), three carriers each: intra-city, intra-cluster and inter-cluster
# paths, inter- and intra-carrier, on 9 hosts.
DEFAULT_SITES = ("cs-yungu", "zz-datalake", "cz-ezone")
# Both copies of the network are measured at once for 9 min 15 s. A delay verdict needs at
# least 10 one-minute units in each window (analyzer MIN_UNITS, docs/methodology.md "Minimum
# samples"): 9 min 15 s of data always touch 10 UTC minutes, and MIN_EDGE_S keeps the first
# and last of them at least 15 s long (docs/demo.md "Timing").
DEFAULT_DURATION_S = 555.0
MIN_DURATION_S = 30.0
MIN_EDGE_S = 15.0  # the first and last minute of a window hold at least this much data
START_LEAD_S = 1.0  # from planning to starting the probes
# Probe rates per directed path and IP version. ICMP feeds the loss and latency targets: at 2/s
# a directed carrier pair (9 paths here) sends about 10,000 echoes in 9 min 15 s, about 3x the
# ~3,300 that 1 % -> 0.1 % round-trip loss needs for a PASS at power 0.8 with independent
# losses (docs/methodology.md §3 "Sample sizes"), leaving room for bursty loss (phi ~2). Two
# copies of the network at these rates are about 860 probes/s on the machine in all.
DEMO_RATES = {"icmp": 2.0, "stamp": 1.0, "traceroute": 1 / 120}
# Every testbed namespace reads the one kernel clock: offset 0 between hosts. What remains is
# that clock's frequency error over a delay (at most 500 ppm, the kernel's MAXFREQ: 50 us over
# 100 ms), and the ns resolution of its stamps.
TESTBED_CLOCK_ERROR_MS = 0.05
TESTBED_CLOCK_BASIS = (
    "written by 'ixmeter demo': every host of the emulated network is a network namespace of "
    "one Linux kernel, and both ends stamp with its one CLOCK_REALTIME (kernel SO_TIMESTAMPING "
    "or clock_gettime), so the two ends' clocks cannot differ; the bound covers that clock's "
    "frequency error over a delay of up to 100 ms (at most 500 ppm, the kernel's MAXFREQ) "
    "and the stamps' resolution")


class DemoError(IxmeterError):
    """The demo cannot be planned or run as asked."""


@dataclass(frozen=True, slots=True)
class Timeline:
    """When the probes of both networks start and stop (UTC ns), and the window: the whole
    UTC minutes that hold what they measured. The baseline (detour) copy and the current
    (direct) copy are measured over the same window, each into its own store."""

    start_ns: int
    stop_ns: int

    @property
    def window(self) -> tuple[int, int]:
        return (self.start_ns // MINUTE_NS * MINUTE_NS,
                -(-self.stop_ns // MINUTE_NS) * MINUTE_NS)

    @property
    def baseline(self) -> tuple[int, int]:
        return self.window

    @property
    def current(self) -> tuple[int, int]:
        return self.window

    @property
    def end_ns(self) -> int:
        return self.stop_ns

    @property
    def minutes(self) -> int:
        """UTC minutes in the window (the analyzer's time units)."""
        a, b = self.window
        return (b - a) // MINUTE_NS

    def edges_s(self) -> tuple[float, float]:
        """Seconds of measurement in the window's first and last minute."""
        a, b = self.window
        if b - a == MINUTE_NS:
            return ((self.stop_ns - self.start_ns) / NS,) * 2
        return ((a + MINUTE_NS - self.start_ns) / NS, (self.stop_ns - (b - MINUTE_NS)) / NS)

    def phase(self, t_ns: int) -> str:
        """``warm-up`` (before the probes start), ``measuring`` or ``done``."""
        if t_ns < self.start_ns:
            return "warm-up"
        return "measuring" if t_ns < self.stop_ns else "done"


def plan_timeline(now_ns: int, duration_s: float, lead_s: float = START_LEAD_S) -> Timeline:
    """Start the probes ``lead_s`` from ``now_ns``, or at the next minute boundary when that
    minute would hold less than ``MIN_EDGE_S`` of data; stop them ``duration_s`` later, or at
    the following boundary when the last minute would hold less than ``MIN_EDGE_S``."""
    if not math.isfinite(duration_s) or duration_s < MIN_DURATION_S:
        raise DemoError(f"--duration {duration_s:g} is too short",
                        hint=f"give at least {MIN_DURATION_S:g} seconds")
    edge = int(MIN_EDGE_S * NS)
    start = now_ns + int(lead_s * NS)
    boundary = -(-start // MINUTE_NS) * MINUTE_NS
    if 0 < boundary - start < edge:
        start = boundary
    stop = start + int(duration_s * NS)
    last = stop % MINUTE_NS
    if 0 < last < edge and stop - last > start:
        stop += MINUTE_NS - last
    return Timeline(start, stop)


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
    """A copy of the inventory mapping with only the probes at ``sites``, every measurement
    spec's rate set from ``rates`` (by method) and the testbed's hosts declared as one clock
    domain (:data:`TESTBED_CLOCK_BASIS`); sites, cities and policy targets stay."""
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
    out["clock_domains"] = [{"id": "testbed-kernel-clock",
                             "probes": [p["id"] for p in out["probes"]],
                             "relative_error_ms": TESTBED_CLOCK_ERROR_MS,
                             "basis": TESTBED_CLOCK_BASIS}]
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
    header = ("# Written by 'ixmeter demo': the demo's sites, probe rates and the testbed's clock\n"
              "# domain; everything else as in the inventory it was made from.\n")
    path.write_text(header + yaml.safe_dump(data, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
