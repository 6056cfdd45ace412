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
    return "\n".join(lines)
