"""``ixmeter analyze``: verdicts for every policy target, as a table or a JSON document.

Same store, same arguments, same seed: byte-identical JSON (no "now" in it).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ixmeter.core.errors import IxmeterError

if TYPE_CHECKING:
    from analyzer.evaluate import Evaluation, Params
    from analyzer.store.base import ReadStore


def add_common(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``analyze`` and ``report``."""
    parser.add_argument("--db", required=True, help="store: SQLite file or postgresql:// URL")
    parser.add_argument("--current", required=True, metavar="FROM/TO",
                        help="current window, ISO 8601 (e.g. 2026-03-01T00:00Z/2026-03-29T00:00Z)")
    parser.add_argument("--baseline", metavar="FROM/TO",
                        help="baseline window (default: each target's inventory baseline)")
    parser.add_argument("--baseline-db", metavar="DB",
                        help="separate store holding the baseline data (imported, or measured "
                             "apart)")
    parser.add_argument("--inventory", metavar="FILE",
                        help="inventory YAML (default: the packaged province seed)")
    parser.add_argument("--seed", type=int, default=None,
                        help="bootstrap seed (default 20260101); recorded in the output")
    parser.add_argument("--replicates", type=int, default=2000,
                        help="bootstrap replicates B for the 95%% intervals (>= 2000 for a "
                             "report; default 2000)")
    parser.add_argument("--unit-minutes", type=int, default=1, metavar="N",
                        help="merge minute rollups into units of N minutes before the block "
                             "bootstrap (60 or 1440 for long windows; default 1)")
    parser.add_argument("--target", action="append", default=[], metavar="ID",
                        help="evaluate only this policy target (repeatable)")


def configure(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--json", action="store_true", help="print the JSON document")


@contextmanager
def opened_stores(args: argparse.Namespace) -> Iterator[tuple[ReadStore, ReadStore | None]]:
    """The store (and ``--baseline-db``) opened read-only, each in one snapshot for as long as
    the caller reads: the figures and the chain head quoted with them come from one state."""
    from analyzer.store import open_reader

    _params(args)  # argument errors first, before any store is opened
    for db in (args.db, args.baseline_db):
        if db and not Path(db).exists() and "://" not in db:
            raise IxmeterError(f"no store at {db!r}", hint="give the collector's --db file")
    with ExitStack() as stack:
        store = open_reader(args.db)
        stack.callback(store.close)
        stack.enter_context(store.snapshot())
        base = None
        if args.baseline_db:
            base = open_reader(args.baseline_db)
            stack.callback(base.close)
            stack.enter_context(base.snapshot())
        yield store, base


def run_evaluation(args: argparse.Namespace, store: ReadStore, base_store: ReadStore | None
                   ) -> tuple[Evaluation, dict[str, Any]]:
    """Load the inventory and evaluate; return the evaluation and provenance."""
    from analyzer.evaluate import evaluate
    from analyzer.report.jsonout import provenance
    from inventory.loader import default_inventory, load
    from ixmeter.core import __version__

    params = _params(args)
    inv_path = Path(args.inventory) if args.inventory else default_inventory()
    inv = load(inv_path)
    ev = evaluate(store, inv, params, base_store, args.target or None)
    return ev, provenance(store, inv_path, inv, ev, __version__, base_store)


def _params(args: argparse.Namespace) -> Params:
    """The evaluation parameters, or the one-line error of a bad argument."""
    from analyzer import baselines
    from analyzer.evaluate import DEFAULT_SEED, Params

    if args.unit_minutes < 1 or 1440 % args.unit_minutes:
        raise IxmeterError(f"--unit-minutes {args.unit_minutes} does not divide a day",
                           hint="use 1, 5, 15, 60 or 1440")
    if args.replicates < 100:
        raise IxmeterError(f"--replicates {args.replicates} is too few",
                           hint="use at least 2000 for a report")
    return Params(current=baselines.parse_window(args.current),
                  baseline=baselines.parse_window(args.baseline) if args.baseline else None,
                  seed=DEFAULT_SEED if args.seed is None else args.seed,
                  replicates=args.replicates, unit_minutes=args.unit_minutes)


def run(args: argparse.Namespace) -> int:
    from analyzer.report.jsonout import document, dumps

    with opened_stores(args) as (store, base_store):
        ev, prov = run_evaluation(args, store, base_store)
    doc = document(ev, prov)
    if args.json:
        sys.stdout.write(dumps(doc))
    else:
        sys.stdout.write(target_lines(doc) + table(ev))
    return 0


def target_lines(doc: dict[str, Any]) -> str:
    """One line per target (its verdict, name and source document, in English), then a blank
    line: what a reader needs first."""
    from analyzer.report.data import target_rows
    from analyzer.report.html import target_line

    lines = [target_line(t, "en") for t in target_rows(doc)]
    return "\n".join(lines) + "\n\n" if lines else ""


def table(ev: Evaluation) -> str:
    """A plain-text table: one line per verdict, then notes."""
    from analyzer.report.jsonout import row_to_dict

    head = ("target", "scope", "type-P", "statistic", "baseline", "current", "ratio/interval",
            "verdict")
    lines = [head]
    for row in ev.rows:
        d = row_to_dict(row)
        iv = d.get("ratio") or d.get("interval") or {}
        span = f"{iv.get('point')} [{iv.get('low')}, {iv.get('high')}]" if iv else "-"
        lines.append((d["target"], d["scope"], d["type_p"], d["statistic"],
                      str(d["baseline"]["value"]), str(d["current"]["value"]), span,
                      d["verdict"]))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
           for line in lines]
    for row in ev.rows:
        out.append(f"- {row.target} {row.scope} {row.type_p}: {row.decision.verdict.value}: "
                   f"{row.decision.reason}")
    out.extend(f"note: {n}" for n in ev.notes)
    return "\n".join(out) + "\n"
