"""``ixmeter faults``: the fault register over local days, as a table or a JSON document; with
``--watch``, a daily evaluation after each rule's hours that serves open faults as Prometheus
metrics (:mod:`analyzer.faults_watch`). Reads the store only."""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ixmeter.core.errors import IxmeterError

if TYPE_CHECKING:
    from analyzer.fault_register import Register
    from analyzer.store.base import ReadStore
    from inventory.schema import Inventory

TIERS = ("auto", "minute", "hour", "day")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", required=True, help="store: SQLite file or postgresql:// URL")
    parser.add_argument("--from", dest="first", metavar="YYYY-MM-DD",
                        help="first local day (in each rule's time zone); required unless "
                             "--watch")
    parser.add_argument("--to", dest="last", metavar="YYYY-MM-DD",
                        help="last local day, inclusive (default: the --from day)")
    parser.add_argument("--inventory", metavar="FILE",
                        help="inventory YAML with the fault rules (default: the packaged "
                             "province seed)")
    parser.add_argument("--rule", action="append", default=[], metavar="ID",
                        help="judge only this fault rule (repeatable)")
    parser.add_argument("--tier", choices=TIERS, default="auto",
                        help="rollup tier to read (default auto: the coarsest that tiles each "
                             "rule's local tests; a tier that cannot is replaced by a finer "
                             "one, and the output says so)")
    parser.add_argument("--json", action="store_true", help="print the JSON document")
    watch = parser.add_argument_group("daily evaluation (--watch)")
    watch.add_argument("--watch", action="store_true",
                       help="evaluate every day after each rule's hours and serve the open "
                            "faults as Prometheus metrics until Ctrl-C")
    watch.add_argument("--metrics", default="127.0.0.1:9464", metavar="HOST:PORT",
                       help="where --watch serves /metrics (default 127.0.0.1:9464)")
    watch.add_argument("--lookback-days", type=int, default=14, metavar="N",
                       help="days each evaluation covers, ending with the last complete day "
                            "(default 14)")
    watch.add_argument("--grace-minutes", type=int, default=30, metavar="M",
                       help="wait this long after a rule's last hour for uploads (default 30)")
    watch.add_argument("--interval", type=float, default=60.0, metavar="SECONDS",
                       help="how often --watch checks whether a day is due (default 60)")


def parse_day(text: str, flag: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise IxmeterError(f"{flag} {text!r} is not a date",
                           hint="write a local date, e.g. 2026-04-01") from None


def load_inventory(path: str | None) -> tuple[Inventory, Path]:
    from inventory.loader import default_inventory, load

    inv_path = Path(path) if path else default_inventory()
    inv = load(inv_path)
    if not inv.fault_rules:
        raise IxmeterError(f"{inv_path} has no fault rules",
                           hint="add 'fault_rules' (docs/methodology.md, fault rules)")
    return inv, inv_path


def open_existing(db: str) -> ReadStore:
    from analyzer.store import is_postgres_url, open_reader

    if not is_postgres_url(db) and not Path(db).exists():
        raise IxmeterError(f"no store at {db!r}", hint="give the collector's --db file")
    return open_reader(db)


def carrier_names(inv: Inventory) -> dict[str, tuple[str, str]]:
    return {c.id: (c.name.zh, c.name.en) for c in inv.carriers}


def provenance(store: ReadStore, inv_path: Path, tier: str) -> dict[str, Any]:
    """Software, inventory hash and the store's chain head: what the register was computed
    from."""
    from analyzer.report.jsonout import sha256_file
    from ixmeter.core import __version__

    head = store.chain_head()
    return {"software": f"ixmeter {__version__}",
            "inventory": {"file": inv_path.name, "sha256": sha256_file(inv_path)},
            "store_chain_head": {"length": head.length, "head": head.head},
            "parameters": {"tier": tier}}


def register(args: argparse.Namespace) -> tuple[Register, dict[str, Any]]:
    """The register the arguments ask for, and its JSON document."""
    from analyzer.fault_register import to_dict
    from analyzer.faults import evaluate_faults

    if not args.first:
        raise IxmeterError("--from is required", hint="e.g. --from 2026-04-01 --to 2026-04-30")
    first = parse_day(args.first, "--from")
    last = parse_day(args.last, "--to") if args.last else first
    if last < first:
        raise IxmeterError(f"--to {last} is before --from {first}")
    inv, inv_path = load_inventory(args.inventory)
    unknown = sorted(set(args.rule) - {r.id for r in inv.fault_rules})
    if unknown:
        raise IxmeterError(f"unknown fault rule {unknown[0]!r}",
                           hint="known: " + ", ".join(r.id for r in inv.fault_rules))
    store = open_existing(args.db)
    try:
        with store.snapshot():  # the register and the chain head it quotes: one state
            reg = evaluate_faults(store, inv, first, last, args.tier, args.rule or None)
            doc = to_dict(reg, carrier_names(inv), provenance(store, inv_path, args.tier))
    finally:
        store.close()
    return reg, doc


def run(args: argparse.Namespace) -> int:
    from analyzer.fault_register import table
    from analyzer.report.jsonout import dumps

    if args.watch:
        from analyzer.faults_watch import run_watch

        return run_watch(args, load_inventory(args.inventory)[0],
                         lambda: open_existing(args.db))
    reg, doc = register(args)
    sys.stdout.write(dumps(doc) if args.json else table(reg))
    return 0
