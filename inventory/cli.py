"""``ixmeter inventory check FILE...``: validate inventories and print a summary."""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from inventory.loader import load_many
from inventory.schema import Inventory
from inventory.topology import Topology


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="inventory_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate inventory files and summarise them",
                           description="Validate inventory files. Exit 1 with one line per "
                           "problem (file:line: field: what is wrong) if any is invalid.")
    check.add_argument("files", nargs="+", metavar="FILE", help="inventory YAML files")


def run(args: argparse.Namespace) -> int:
    inventories, problems = load_many(args.files)
    for problem in problems:
        print(problem, file=sys.stderr)
    for inv in inventories:
        print(summary(inv))
    return 1 if problems else 0


def summary(inv: Inventory) -> str:
    """A human summary: counts per kind, path counts, targets."""
    topo = Topology(inv)
    kinds = Counter(site.kind.value for site in inv.sites)
    paths = topo.probe_paths
    inter = sum(p.inter_carrier for p in paths)
    lines = [
        f"inventory {inv.name}: OK",
        f"  carriers: {len(inv.carriers)} ({', '.join(c.id for c in inv.carriers)})",
        f"  cities: {len(inv.cities)}",
        "  sites: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(kinds.items())),
        f"  probes: {len(inv.probes)}, answer-only targets: {len(inv.targets)}",
        f"  directed probe paths: {len(paths)} ({inter} inter-carrier, {len(paths) - inter} "
        "intra-carrier)",
        f"  measurement specs: {len(inv.specs)}, baselines: {len(inv.baselines)}",
        f"  policy targets: {len(inv.policy_targets)}",
    ]
    for target in inv.policy_targets:
        n = sum(topo.in_scope(target.scope, p) for p in paths)
        lines.append(f"    {target.id}: {target.statistic}, {target.comparison.kind}, {n} paths")
    return "\n".join(lines + _fault_lines(inv, topo))


def _fault_lines(inv: Inventory, topo: Topology) -> list[str]:
    """Segments by role and interconnection point; fault rules, the paths each judges and the
    thresholds still to be filled in."""
    if not inv.segments and not inv.fault_rules:
        return []
    roles: Counter[str] = Counter()
    for seg in inv.segments:
        roles[seg.role] += len(topo.segment_paths(seg))
    points = sorted({s.interconnect for s in inv.segments})
    lines = [f"  segments: {len(inv.segments)} at {', '.join(points)}; paths by role: "
             + ", ".join(f"{r} {n}" for r, n in sorted(roles.items())),
             f"  fault rules: {len(inv.fault_rules)}"]
    pending = {t.id for t in inv.thresholds if t.value is None}
    for rule in inv.fault_rules:
        n = sum(roles[r] for r in set(rule.segments))
        lines.append(f"    {rule.id} ({rule.article.en}): {n} paths ({', '.join(rule.segments)})")
    if pending:
        lines.append(f"  thresholds to be filled in: {', '.join(sorted(pending))}")
    return lines
