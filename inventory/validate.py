"""Cross-reference checks that a schema alone cannot express.

Each check returns ``(location, message)`` pairs; the loader maps locations to lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from inventory.schema import Condition, Endpoint, Inventory, PathScope, Selector

Loc = tuple[str | int, ...]
Issue = tuple[Loc, str]


def cross_check(inv: Inventory) -> list[Issue]:
    """Every cross-reference problem in ``inv``, in file order."""
    issues: list[Issue] = []
    for check in (_duplicates, _cities, _sites, _endpoints, _addresses, _specs, _targets,
                  _segments, _fault_rules, _clock_domains):
        issues.extend(check(inv))
    return issues


def _dupes(section: str, items: Sequence[Any],
           seen: dict[str, str] | None = None) -> Iterator[Issue]:
    seen = {} if seen is None else seen
    for i, item in enumerate(items):
        if item.id in seen:
            yield (section, i, "id"), f"duplicate id {item.id!r} (first in {seen[item.id]})"
        else:
            seen[item.id] = f"{section}[{i}]"


def _duplicates(inv: Inventory) -> Iterator[Issue]:
    for section in ("carriers", "cities", "sites", "specs", "baselines", "policy_targets",
                    "segments", "thresholds", "fault_rules", "clock_domains"):
        yield from _dupes(section, getattr(inv, section))
    endpoints: dict[str, str] = {}
    yield from _dupes("probes", inv.probes, endpoints)
    yield from _dupes("targets", inv.targets, endpoints)


def _cities(inv: Inventory) -> Iterator[Issue]:
    provinces = {p.id for p in inv.provinces}
    for i, city in enumerate(inv.cities):
        if city.province not in provinces:
            yield ("cities", i, "province"), f"unknown province {city.province!r}"


def _sites(inv: Inventory) -> Iterator[Issue]:
    carriers = {c.id for c in inv.carriers}
    cities = {c.id for c in inv.cities}
    for i, site in enumerate(inv.sites):
        if site.city not in cities:
            yield ("sites", i, "city"), f"unknown city {site.city!r}"
        for j, carrier in enumerate(site.carriers):
            if carrier not in carriers:
                yield ("sites", i, "carriers", j), f"unknown carrier {carrier!r}"


def _endpoint_issues(section: str, items: Sequence[Endpoint], inv: Inventory) -> Iterator[Issue]:
    carriers = {c.id for c in inv.carriers}
    sites = {s.id: s for s in inv.sites}
    for i, ep in enumerate(items):
        site = sites.get(ep.site)
        if site is None:
            yield (section, i, "site"), f"unknown site {ep.site!r}"
        if ep.carrier not in carriers:
            yield (section, i, "carrier"), f"unknown carrier {ep.carrier!r}"
        elif site is not None and ep.carrier not in site.carriers:
            yield (section, i, "carrier"), (
                f"site {site.id!r} lacks carrier {ep.carrier!r} "
                f"(present: {', '.join(site.carriers)})")


def _endpoints(inv: Inventory) -> Iterator[Issue]:
    yield from _endpoint_issues("probes", inv.probes, inv)
    yield from _endpoint_issues("targets", inv.targets, inv)


def _addresses(inv: Inventory) -> Iterator[Issue]:
    seen: dict[str, str] = {}
    for section, items in (("probes", inv.probes), ("targets", inv.targets)):
        for i, ep in enumerate(items):
            for j, addr in enumerate(ep.addresses):
                if addr in seen:
                    yield (section, i, "addresses", j), (
                        f"address {addr} already used by {seen[addr]}")
                seen.setdefault(addr, ep.id)


def _selector_issues(loc: Loc, sel: Selector, inv: Inventory) -> Iterator[Issue]:
    known = {"carriers": {c.id for c in inv.carriers}, "sites": {s.id for s in inv.sites},
             "cities": {c.id for c in inv.cities}, "provinces": {p.id for p in inv.provinces}}
    for field, ids in known.items():
        for j, value in enumerate(getattr(sel, field)):
            if value not in ids:
                yield (*loc, field, j), f"unknown {field[:-1]} {value!r}"


def _specs(inv: Inventory) -> Iterator[Issue]:
    for i, spec in enumerate(inv.specs):
        yield from _selector_issues(("specs", i, "sources"), spec.sources, inv)
        yield from _selector_issues(("specs", i, "destinations"), spec.destinations, inv)


def _scope_issues(loc: Loc, scope: PathScope, inv: Inventory) -> Iterable[Issue]:
    issues = list(_selector_issues((*loc, "sources"), scope.sources, inv))
    issues += _selector_issues((*loc, "destinations"), scope.destinations, inv)
    if scope.within_province and scope.within_province not in {p.id for p in inv.provinces}:
        issues.append(((*loc, "within_province"), f"unknown province {scope.within_province!r}"))
    return issues


def _targets(inv: Inventory) -> Iterator[Issue]:
    baselines = {b.id for b in inv.baselines}
    for i, target in enumerate(inv.policy_targets):
        yield from _scope_issues(("policy_targets", i, "scope"), target.scope, inv)
        ref = target.comparison.reference
        if ref is not None:
            yield from _scope_issues(("policy_targets", i, "comparison", "reference"), ref, inv)
        if target.baseline is not None and target.baseline not in baselines:
            yield ("policy_targets", i, "baseline"), f"unknown baseline {target.baseline!r}"


def _segments(inv: Inventory) -> Iterator[Issue]:
    sites = {s.id for s in inv.sites}
    for i, seg in enumerate(inv.segments):
        if seg.interconnect not in sites:
            yield ("segments", i, "interconnect"), f"unknown site {seg.interconnect!r}"
        yield from _scope_issues(("segments", i, "paths"), seg.paths, inv)


def _fault_rules(inv: Inventory) -> Iterator[Issue]:
    roles = {s.role for s in inv.segments}
    for i, rule in enumerate(inv.fault_rules):
        loc: Loc = ("fault_rules", i)
        for field in ("segments", "reference"):
            for j, role in enumerate(getattr(rule, field)):
                if role not in roles:
                    yield (*loc, field, j), (f"no segment has role {role!r} (roles: "
                                            f"{', '.join(sorted(roles)) or 'none'})")
        relative = list(_tests(rule.condition, (*loc, "condition")))
        if any(c.above_reference_by for _, c in relative) and not rule.reference:
            yield (*loc, "reference"), ("the condition compares with the reference: name the "
                                        "reference segment roles")
        if rule.reference and not any(c.above_reference_by for _, c in relative):
            yield (*loc, "reference"), "reference roles given but no test uses them"
        yield from _threshold_issues(relative, inv)


def _tests(cond: Condition, loc: Loc) -> Iterator[tuple[Loc, Condition]]:
    """Every statistic test of a condition tree, with its location."""
    for key in ("all_of", "any_of"):
        for j, child in enumerate(getattr(cond, key) or []):
            yield from _tests(child, (*loc, key, j))
    if cond.statistic is not None:
        yield loc, cond


def _threshold_issues(tests: list[tuple[Loc, Condition]], inv: Inventory) -> Iterator[Issue]:
    """Each test names a known threshold of the right unit: ms for a delay statistic,
    percent for the loss ratio and for a margin over the reference."""
    known = {t.id: t for t in inv.thresholds}
    for loc, c in tests:
        for key in ("above", "at_least", "above_reference_by"):
            tid = getattr(c, key)
            if tid is None:
                continue
            th = known.get(tid)
            if th is None:
                yield (*loc, key), f"unknown threshold {tid!r}"
                continue
            want = "percent" if key == "above_reference_by" or c.statistic == "loss_ratio" \
                else "ms"
            if th.unit != want:
                yield (*loc, key), (f"threshold {tid!r} is in {th.unit}; {c.statistic} "
                                    f"{key.replace('_', ' ')} needs one in {want}")


def _clock_domains(inv: Inventory) -> Iterator[Issue]:
    """Every probe of a clock domain exists, and belongs to one domain only."""
    probes = {p.id for p in inv.probes}
    seen: dict[str, str] = {}
    for i, dom in enumerate(inv.clock_domains):
        for j, pid in enumerate(dom.probes):
            loc: Loc = ("clock_domains", i, "probes", j)
            if pid not in probes:
                yield loc, f"unknown probe {pid!r}"
            elif pid in seen:
                yield loc, f"probe {pid!r} is already in clock domain {seen[pid]!r}"
            else:
                seen[pid] = dom.id
