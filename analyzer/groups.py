"""Target groups: the rows analysis reads instead of paths, kept in the store as evidence.

A policy target compares, per group of its scope (all of it, a directed carrier pair or a
directed city pair: :func:`inventory.topology.group_key`), the statistic of the group's *merged*
units: an hour or day unit of a group is the merge of that unit's rows of every path in the
group (exact for counts, sums, extremes and DDSketch buckets:
:func:`analyzer.rollups.rows.merge_rows`).
So the group's units can be merged once, when the path units are complete, rather than at every
analysis: a province's 15,000 paths become a few dozen groups, and a year's analysis reads
groups x units rather than paths x units.

A *grouping* is what decides membership: a target's method, scope and grouping, and the parts
of the inventory membership depends on (each site's city and kind, each city's province and
cluster). Its id is the SHA-256 of that definition, so an inventory edit that moves a path to
another group gives another id, and rows built for the old definition are simply not read.
:func:`build` writes, per grouping and unit, a row per (group, method, Type-P) and a *marker*
row saying the unit was built (``path_id`` ``ID:``), through :meth:`Writer.replace_groups`
(one write transaction and one *group* link of the hash chain); a fold or load that changes a
path unit deletes that unit's group rows in its own transaction, so a group row is either
exactly the merge of the path rows it stands for or absent. The analyzer reads a grouping's
rows for the units built for it and path rows for the rest (:mod:`analyzer.evaluate`).

Which targets: those grouped by scope, carrier pair or city pair with an absolute or relative
(measured or imported baseline) comparison. Grouped by path, compared with a reference scope or
a declared baseline (matched per path), or a one-way statistic where the inventory declares clock
domains (decided per path), a target reads paths.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from analyzer.baselines import TimeWindow
from analyzer.rollups.model import MinuteRollup
from analyzer.rollups.rows import ROLLUP_COLUMNS, merge_rows, rollup_row
from analyzer.rollups.tiers import unit_runs
from analyzer.stats.compare import STAT_MAP
from analyzer.store.schema import GROUP_TIERS, TIERS
from inventory.schema import Inventory, PathScope, PolicyTarget
from inventory.topology import PathEnds, Topology

GROUPED = ("scope", "carrier_pair", "city_pair")
GROUPED_TIERS = tuple(GROUP_TIERS)  # the path tiers that have group rows (hour, day)
SETTLE_MINUTES = 10  # a unit is grouped once it ended this long ago (late batches drop it again)
MAX_ROWS = 200_000  # path rows read per build transaction
ID_LEN = 16  # hex digits of a grouping id
_ERRORS = ROLLUP_COLUMNS.index("errors")
_HEAD = len(("path_id", "method", "type_p", "minute", "src_site", "src_carrier", "dst_site",
             "dst_carrier"))


@dataclass(frozen=True, slots=True)
class Grouping:
    """One membership rule: ``id`` (hex) digests the method, scope, grouping and topology."""

    id: str
    method: str | None
    per: str
    scope: PathScope
    targets: tuple[str, ...]

    @property
    def marker(self) -> str:
        """The ``path_id`` of the row saying a unit was built for this grouping."""
        return f"{self.id}:"


def grouped(t: PolicyTarget, inv: Inventory) -> bool:
    """Whether ``t`` is evaluated from group rows (module docstring)."""
    kind = t.comparison.kind
    if t.per not in GROUPED or kind not in ("absolute", "relative"):
        return False
    if STAT_MAP[t.statistic][0] == "owd" and inv.clock_domains:
        return False
    if kind == "relative":
        base = next((b for b in inv.baselines if b.id == t.baseline), None)
        return base is not None and base.kind != "declared"
    return True


def groupings(inv: Inventory) -> list[Grouping]:
    """The groupings of the inventory's grouped targets (targets sharing one, e.g. a latency
    and a loss target of one scope, share its rows), sorted by id."""
    topology = _topology(inv)
    found: dict[str, Grouping] = {}
    for t in inv.policy_targets:
        if not grouped(t, inv):
            continue
        method = t.method.value if t.method else None
        gid = grouping_id(method, t.per, t.scope, topology)
        old = found.get(gid)
        targets = (*old.targets, t.id) if old else (t.id,)
        found[gid] = Grouping(gid, method, t.per, t.scope, targets)
    return [found[k] for k in sorted(found)]


def grouping_of(t: PolicyTarget, inv: Inventory) -> Grouping | None:
    """The grouping whose rows ``t`` reads, if it is grouped."""
    return next((g for g in groupings(inv) if t.id in g.targets), None)


def grouping_id(method: str | None, per: str, scope: PathScope, topology: Any) -> str:
    text = json.dumps({"method": method, "per": per, "scope": scope.model_dump(mode="json"),
                       "topology": topology}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LEN]


def _topology(inv: Inventory) -> dict[str, Any]:
    """What membership depends on: each site's city and kind, each city's province and
    cluster."""
    return {"sites": {s.id: [s.city, s.kind] for s in inv.sites},
            "cities": {c.id: [c.province, c.cluster] for c in inv.cities}}


class Members:
    """Which group of each grouping a path belongs to (memoised per path ends)."""

    def __init__(self, inv: Inventory, gs: Sequence[Grouping]) -> None:
        self.topo, self.groupings = Topology(inv), gs
        self._of: dict[tuple[str, str, str, str, str], list[tuple[Grouping, str]]] = {}

    def of(self, method: str, ends: tuple[str, str, str, str]) -> list[tuple[Grouping, str]]:
        key = (method, *ends)
        if key not in self._of:
            self._of[key] = [(g, self._key(g, ends)) for g in self.groupings
                             if g.method in (None, method) and method != "traceroute"
                             and self.topo.in_scope(g.scope, PathEnds(*ends))]
        return self._of[key]

    def looked(self, method: str) -> list[Grouping]:
        """The groupings whose analysis looks at rows of ``method`` (and so notes their
        exclusions)."""
        return [g for g in self.groupings if g.method in (None, method)
                and method != "traceroute"]

    def known(self, ends: tuple[str, str, str, str]) -> bool:
        """Whether both sites are in the inventory (a city known)."""
        return self.topo.city_of(ends[0]) is not None and self.topo.city_of(ends[2]) is not None

    def _key(self, g: Grouping, ends: tuple[str, str, str, str]) -> str:
        return self.topo.group_of(PathEnds(*ends), g.per)


def group_rows(members: Members, rows: Sequence[Sequence[Any]], units: Sequence[int]
               ) -> list[tuple[Any, ...]]:
    """The group rows (:data:`ROLLUP_COLUMNS`) of stored path rows of ``units`` (sorted by
    key): per grouping, group, method, Type-P and unit the merge of its paths' rows in key
    order (:func:`analyzer.rollups.rows.merge_rows`); a copy, as ``GROUPING!PATH``, of
    each path row the grouping's analysis notes as an exclusion (error records, or a site not
    in the inventory); then a marker row per grouping and unit."""
    parts: dict[tuple[str, str, str, int], list[Sequence[Any]]] = {}
    flagged: list[tuple[Any, ...]] = []
    for row in rows:
        path, method, type_p, minute, *ends = row[:_HEAD]
        end4 = (ends[0], ends[1], ends[2], ends[3])
        for g, key in members.of(method, end4):
            parts.setdefault((f"{g.id}:{key}", method, type_p, int(minute)), []).append(row)
        if row[_ERRORS] or not members.known(end4):
            flagged += [(f"{g.id}!{path}", *row[1:len(ROLLUP_COLUMNS)])
                        for g in members.looked(method)]
    out = merge_rows([(*key, "", "", "", "", *row[_HEAD:len(ROLLUP_COLUMNS)])
                      for key in sorted(parts) for row in parts[key]])
    out += flagged
    out += [rollup_row(MinuteRollup(g.marker, "", "", "", "", "", "", unit))
            for g in members.groupings for unit in sorted(set(units))]
    return out


def build(writer: Any, inv: Inventory, tiers: Sequence[str] = ("day", "hour"),
          now_ns: int | None = None, settle_minutes: int = SETTLE_MINUTES,
          max_rows: int = MAX_ROWS, max_runs: int | None = None) -> int:
    """Build the group rows of every unit of ``tiers`` that ended ``settle_minutes`` before
    ``now_ns`` and is not built for every grouping (:class:`analyzer.store.writes.Writer`),
    at most ``max_rows`` path rows per write transaction and ``max_runs`` transactions (a
    collector builds a backlog a transaction at a time between ingests); folds what the
    writer holds first. Returns the group rows written."""
    gs = groupings(inv)
    if not gs:
        return 0
    writer.fold_pending()
    members = Members(inv, gs)
    now_min = (time.time_ns() if now_ns is None else now_ns) // 60_000_000_000
    todo = [(tier, units) for tier in tiers
            for units in _todo(writer, gs, tier, now_min - settle_minutes, max_rows)]
    written = 0
    for tier, units in todo[:max_runs]:
        written += writer.replace_groups(
            tier, units, lambda rows, u=units: group_rows(members, rows, u),
            f"target groups {', '.join(g.id for g in gs)}")
    return written


def _todo(writer: Any, gs: Sequence[Grouping], tier: str, ended_by: int, max_rows: int
          ) -> list[list[int]]:
    """Units of ``tier`` ended by minute ``ended_by`` not built for some grouping, in runs of
    at most ``max_rows`` path rows."""
    table, size = TIERS[tier]
    group_table = GROUP_TIERS[tier][0]
    counts = dict(writer.db.execute(f"SELECT minute, count(*) FROM {table} WHERE minute <= ? "
                                    "GROUP BY minute", (ended_by - size,)).fetchall())
    todo: set[int] = set()
    for g in gs:
        built = {int(r[0]) for r in writer.db.execute(
            f"SELECT minute FROM {group_table} WHERE path_id = ?", (g.marker,)).fetchall()}
        todo |= set(counts) - built
    out: list[list[int]] = [[]]
    rows = 0
    for unit in sorted(todo):
        if out[-1] and rows + counts[unit] > max_rows:
            out.append([])
            rows = 0
        out[-1].append(int(unit))
        rows += int(counts[unit])
    return [u for u in out if u]




def check(reader: Any, inv: Inventory, max_rows: int = MAX_ROWS) -> tuple[int, list[str]]:
    """Rebuild the stored group rows of the inventory's groupings from the stored path rows and
    compare them row by row (``ixmeter verify --deep --inventory``), read-only. Returns the
    group rows compared and the problems found."""
    gs = groupings(inv)
    members = Members(inv, gs)
    compared, problems = 0, []
    for tier, (group_table, size) in GROUP_TIERS.items():
        table = TIERS[tier][0]
        for units in _built(reader, gs, tier, max_rows):
            rows = _path_rows(reader, table, size, units)
            built = {(g.id, u) for g in gs for u in units if _has_marker(reader, g, tier, u)}
            want = {_key(r): r for r in group_rows(members, rows, units)
                    if (r[0][:ID_LEN], r[3]) in built}
            for row in _stored_groups(reader, group_table, gs, size, units):
                compared += 1
                mine = want.pop(_key(row), None)
                if mine is None or tuple(mine) != _plain(row):
                    problems.append(f"{group_table} row {row[0]} {row[1]} {row[2]} unit "
                                    f"{row[3]}: not the merge of its paths' stored rows")
            problems += [f"{group_table} row {r[0]} unit {r[3]}: missing (its paths' rows "
                         "are stored and the unit is marked built)" for r in want.values()]
    return compared, problems


def _key(row: Sequence[Any]) -> tuple[str, str, str, int]:
    return (row[0], row[1], row[2], int(row[3]))


def _plain(row: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)


def _built(reader: Any, gs: Sequence[Grouping], tier: str, max_rows: int) -> list[list[int]]:
    group_table = GROUP_TIERS[tier][0]
    marks = ", ".join("?" * len(gs))
    units = sorted({int(r[0]) for r in reader.db.execute(
        f"SELECT minute FROM {group_table} WHERE path_id IN ({marks})",
        [g.marker for g in gs]).fetchall()})
    step = max(1, max_rows // 20_000)
    return [units[i:i + step] for i in range(0, len(units), step)]


def _has_marker(reader: Any, g: Grouping, tier: str, unit: int) -> bool:
    return reader.db.execute(f"SELECT 1 FROM {GROUP_TIERS[tier][0]} WHERE path_id = ? AND "
                             "minute = ?", (g.marker, unit)).fetchone() is not None


def _path_rows(reader: Any, table: str, size: int, units: Sequence[int]) -> list[Any]:
    """The stored path rows of ``units``, in the order a build reads them."""
    rows: list[Any] = []
    for low, high in unit_runs(units, size):
        rows += reader.db.execute(
            f"SELECT {', '.join(ROLLUP_COLUMNS)} FROM {table} WHERE minute >= ? AND "
            "minute <= ?", (low, high)).fetchall()
    return sorted(rows, key=_key)


def _stored_groups(reader: Any, group_table: str, gs: Sequence[Grouping], size: int,
                   units: Sequence[int]) -> list[Any]:
    ids = {g.id for g in gs}
    rows: list[Any] = []
    for low, high in unit_runs(units, size):
        rows += [r for r in reader.db.execute(
            f"SELECT {', '.join(ROLLUP_COLUMNS)} FROM {group_table} WHERE minute >= ? AND "
            "minute <= ?", (low, high)).fetchall() if r[0][:ID_LEN] in ids]
    return rows


def unit_windows(units: Sequence[int], size: int, w: TimeWindow) -> Iterator[TimeWindow]:
    """Sorted unit minutes (units of ``size`` minutes) as windows of consecutive units
    (:func:`analyzer.rollups.tiers.unit_runs`), clipped to ``w``."""
    for first, last in unit_runs(units, size):
        yield TimeWindow(max(w.start_ns, first * _NS_MIN), min(w.end_ns, (last + size) * _NS_MIN))


_NS_MIN = 60_000_000_000
