"""After the measurement: the analysis over the two measured windows, the auditor's report and the
verdict table (the ``ixmeter report`` / ``ixmeter analyze`` machinery, one evaluation for both),
then the dashboard over the same store and windows."""

from __future__ import annotations

import argparse
import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ixmeter.demo.plan import DEFAULT_DURATION_S, Timeline, iso_window

if TYPE_CHECKING:
    from analyzer.evaluate import Evaluation


@dataclass(frozen=True)
class Analysis:
    """What the analysis produced: the evaluation, the report folder and the command that
    reproduces it."""

    evaluation: Evaluation
    report_dir: Path
    files: list[str]
    command: str


def report_argv(db: Path, inventory: Path, timeline: Timeline, out: Path) -> list[str]:
    """``ixmeter report`` arguments that rebuild the demo's report (docs/auditor.md)."""
    return ["--db", str(db), "--inventory", str(inventory),
            "--baseline", iso_window(timeline.baseline),
            "--current", iso_window(timeline.current), "--out", str(out)]


def analyze(db: Path, inventory: Path, timeline: Timeline, out: Path) -> Analysis:
    """Evaluate every policy target, write report.json/html/pdf and the CSV files to ``out``
    (what ``ixmeter report`` does with :func:`report_argv`)."""
    from analyzer.report import cli as report_cli

    argv = report_argv(db, inventory, timeline, out)
    parser = argparse.ArgumentParser(prog="ixmeter report")
    report_cli.configure(parser)
    ev, files = report_cli.write(parser.parse_args(argv))
    command = "ixmeter report " + " ".join(shlex.quote(a) for a in argv)
    return Analysis(ev, out, files, command)


def verdict_table(ev: Evaluation) -> str:
    """The ``ixmeter analyze`` table, then a one-line count of verdicts per target."""
    from analyzer.cli_analyze import table

    counts: dict[str, Counter[str]] = {}
    for row in ev.rows:
        counts.setdefault(row.target, Counter())[row.decision.verdict.value] += 1
    summary = ["", "verdicts per target:"]
    for target in sorted(counts):
        parts = ", ".join(f"{n} {v}" for v, n in sorted(counts[target].items()))
        summary.append(f"  {target}: {parts}")
    return table(ev) + "\n".join(summary) + "\n"


def demo_notes(ev: Evaluation, duration_s: float) -> list[str]:
    """Plain words under the table: why rows are NOT EVALUABLE or INCONCLUSIVE in a demo."""
    from analyzer.verdicts import Verdict

    verdicts = {row.decision.verdict for row in ev.rows}
    reasons = " ".join(row.decision.reason for row in ev.rows)
    notes = ["the verdicts come only from the results stored during the two windows; the "
             "testbed profiles' figures are never read by the analysis"]
    if "time units, needs" in reasons or duration_s < DEFAULT_DURATION_S:
        notes.append("a delay verdict needs at least 10 one-minute units in each window "
                     "(docs/methodology.md): run with --duration 1260 or more for the latency "
                     "and one-way delay targets")
    if Verdict.INCONCLUSIVE in verdicts:
        notes.append("INCONCLUSIVE = the 95% interval still contains the threshold: with loss "
                     "near 1% a carrier pair needs thousands of packets per window to decide "
                     "(docs/methodology.md §3); a longer --duration narrows the interval")
    if any("weekday/hour mix" in n for n in ev.notes):
        notes.append("the hour-mix note is expected here: the two windows are minutes apart, "
                     "and the emulated network has no daily cycle")
    if "no data in the current window" in reasons:
        notes.append("'no data' rows: the target's method was not measured, or it keeps only "
                     "its busy hours (local time) and the demo ran outside them")
    return notes


def serve_dashboard(db: Path, inventory: Path, timeline: Timeline, port: int,
                    host: str = "127.0.0.1") -> None:
    """The dashboard over the demo's store, its windows set to the two measured phases;
    returns on Ctrl-C."""
    from analyzer.store import open_reader
    from analyzer.views import Window
    from dashboard.app import create_app
    from dashboard.context import Context
    from inventory.loader import load
    from inventory.topology import Topology

    store = open_reader(db)
    try:
        ctx = Context(store, Topology(load(inventory)), Window(*timeline.baseline),
                      Window(*timeline.current), inventory_path=inventory)
        app = create_app(ctx)
        print(f"dashboard on http://{host}:{port}/ (Ctrl-C stops it and ends the demo)",
              flush=True)
        app.run(host=host, port=port, debug=False)
    finally:
        store.close()
