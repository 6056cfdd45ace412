"""``ixmeter report``: HTML, PDF, a CSV per figure and the JSON of an analysis, in one folder.

The JSON (``report.json``) is the same document ``ixmeter analyze --json`` prints for the same
store and arguments, so an auditor can reproduce it byte for byte (docs/auditor.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ixmeter.core.errors import IxmeterError

if TYPE_CHECKING:
    from analyzer.evaluate import Evaluation


def configure(parser: argparse.ArgumentParser) -> None:
    from analyzer.cli.analyze import add_common

    add_common(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--no-pdf", action="store_true", help="skip the PDF")
    parser.add_argument("--lang", choices=("zh", "en"), default="zh",
                        help="language of the PDF, and the one first in the HTML (which has "
                             "both); default zh")


def run(args: argparse.Namespace) -> int:
    _ev, files = write(args)
    print(f"wrote {', '.join(files)} to {args.out}")
    return 0


def write(args: argparse.Namespace) -> tuple[Evaluation, list[str]]:
    """Evaluate and write the report folder; the evaluation and the files written."""
    from analyzer.cli.analyze import opened_stores, run_evaluation
    from analyzer.report.csvout import write_all
    from analyzer.report.data import gather
    from analyzer.report.html import render
    from analyzer.report.jsonout import document, dumps
    from inventory.loader import default_inventory, load
    from inventory.topology import Topology

    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IxmeterError(f"cannot create {out}: {exc.strerror}") from None
    with opened_stores(args) as (store, base_store):
        ev, prov = run_evaluation(args, store, base_store)
        doc = document(ev, prov)
        data = gather(store, ev, doc, Topology(load(args.inventory or default_inventory())),
                      base_store)
    (out / "report.json").write_text(dumps(doc), encoding="utf-8")
    (out / "report.html").write_text(render(data, args.lang), encoding="utf-8")
    files = ["report.json", "report.html"]
    if not args.no_pdf:
        from analyzer.report.pdf import write_pdf

        write_pdf(data, out / "report.pdf", args.lang)
        files.append("report.pdf")
    return ev, files + [Path(p).name for p in write_all(data.figures, out)]
