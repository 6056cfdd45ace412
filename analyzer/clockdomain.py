"""Clock domains: one-way delays between probes that read one clock.

A one-way delay is T2 - T1 read from two clocks, so its error is the *relative* offset of the
two clocks (RFC 7679 §3.7.1 "synchronization", §3.7.3 error bound). A result carries the sum of
each end's absolute error against UTC and the S bits (RFC 4656 §4.1.2), which say nothing about
two hosts that read the same clock (the testbed's namespaces, one kernel clock) or one PTP
grandmaster: they may be unsynchronised to UTC and still agree with each other. The inventory
declares such probes as a :class:`~inventory.schema.ClockDomain` with a relative error bound and
its basis; for a path whose two ends are probes of one domain the analyzer uses that bound in
place of the results' own, and does not count their S bits (docs/methodology.md §5, "Clock
domains"). Paths outside every domain keep their own bound and gates.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace

import numpy as np

from analyzer.rollups.columns import RollupColumns
from analyzer.stats.units import IntArray, UnitTable
from inventory.schema import ClockDomain, Inventory

ONE_WAY = ("fwd", "bwd")


class DomainIndex:
    """Which clock domain each (site, carrier) probe end belongs to."""

    def __init__(self, inv: Inventory) -> None:
        probes = {p.id: (p.site, p.carrier) for p in inv.probes}
        self._ends: dict[tuple[str, str], ClockDomain] = {}
        for dom in inv.clock_domains:
            for pid in dom.probes:
                if pid in probes:
                    self._ends[probes[pid]] = dom

    def __bool__(self) -> bool:
        return bool(self._ends)

    def of_path(self, src_site: str, src_carrier: str, dst_site: str,
                dst_carrier: str) -> ClockDomain | None:
        """The domain holding both ends of the path, or None."""
        a = self._ends.get((src_site, src_carrier))
        b = self._ends.get((dst_site, dst_carrier))
        return a if a is not None and a is b else None


class _DomainTables(Mapping[str, UnitTable]):
    """Unit tables whose one-way series carry the domain's bound and uncounted S bits."""

    def __init__(self, tables: Mapping[str, UnitTable], error_ns: float, unsynced: int) -> None:
        self._tables, self._error, self._unsynced = tables, error_ns, unsynced

    def __getitem__(self, which: str) -> UnitTable:
        t = self._tables[which]
        if which not in ONE_WAY:
            return t
        return replace(t, clock_error_ns=self._error, unsynced=self._unsynced)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)


def apply(index: DomainIndex, tables: Mapping[str, UnitTable], cols: RollupColumns,
          rows: IntArray) -> tuple[Mapping[str, UnitTable], list[ClockDomain]]:
    """``tables`` (of ``rows`` of ``cols``) with the one-way error bound and unsynchronised
    count recomputed: a series whose two ends are in one domain contributes the domain's
    relative bound and no unsynchronised samples; any other series its own bound and count.
    Returns the tables unchanged and no domain when no series is in a domain."""
    if not index or not len(rows):
        return tables, []
    domains: list[ClockDomain | None] = [index.of_path(lb[3], lb[4], lb[5], lb[6])
                                         for lb in cols.labels]
    used = sorted({d.id: d for s in np.unique(cols.series[rows]).tolist()
                   if (d := domains[s]) is not None}.values(), key=lambda d: d.id)
    if not used:
        return tables, []
    inside = np.array([d is not None for d in domains], dtype=bool)
    outside = rows[~inside[cols.series[rows]]]
    own = cols.clock_error_max_ns[outside]
    own_max = float(np.nanmax(own)) if len(own) and not np.all(np.isnan(own)) else 0.0
    error = max(own_max, *(d.relative_error_ms * 1e6 for d in used))
    return _DomainTables(tables, error, int(cols.unsynced[outside].sum())), used


def describe(used: Sequence[ClockDomain]) -> str:
    """The note a verdict's reason carries when a clock domain's bound was used."""
    parts = [f"{d.id} (relative bound {_ms(d.relative_error_ms)} ms)" for d in used]
    return ("clock domain " + ", ".join(parts) +
            ": its relative error bound replaces each end's absolute bound and S bit")


def _ms(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else str(v)
