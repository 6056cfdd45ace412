"""After the measurement: the analysis (current window from the current copy's store, baseline
from the baseline copy's), the auditor's report and the verdict table (the ``ixmeter report`` /
``ixmeter analyze`` machinery, one evaluation for both); and the live dashboard over both
stores, started before the probes and served until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ixmeter.demo.plan import Timeline, iso_window

if TYPE_CHECKING:
    from analyzer.evaluate import Evaluation
    from ixmeter.demo.procs import Children
    from ixmeter.demo.runner import Outcome, Run


@dataclass(frozen=True)
class Analysis:
    """What the analysis produced: the evaluation, the report folder and the command that
    reproduces it."""

    evaluation: Evaluation
    report_dir: Path
    files: list[str]
    command: str


def report_argv(measured: Outcome, out: Path) -> list[str]:
    """``ixmeter report`` arguments that rebuild the demo's report (docs/auditor.md): the
    current window from the current copy's store, the same window of the baseline copy's."""
    t = measured.timeline
    return ["--db", str(measured.current_db), "--baseline-db", str(measured.baseline_db),
            "--inventory", str(measured.inventory), "--baseline", iso_window(t.baseline),
            "--current", iso_window(t.current), "--out", str(out)]


def analyze(measured: Outcome, out: Path) -> Analysis:
    """Evaluate every policy target, write report.json/html/pdf and the CSV files to ``out``
    (what ``ixmeter report`` does with :func:`report_argv`)."""
    from analyzer.cli import report as report_cli

    argv = report_argv(measured, out)
    parser = argparse.ArgumentParser(prog="ixmeter report")
    report_cli.configure(parser)
    ev, files = report_cli.write(parser.parse_args(argv))
    command = "ixmeter report " + " ".join(shlex.quote(a) for a in argv)
    return Analysis(ev, out, files, command)


def verdict_table(ev: Evaluation) -> str:
    """The ``ixmeter analyze`` table, then a one-line count of verdicts per target."""
    from analyzer.cli.analyze import table

    counts: dict[str, Counter[str]] = {}
    for row in ev.rows:
        counts.setdefault(row.target, Counter())[row.decision.verdict.value] += 1
    summary = ["", "verdicts per target:"]
    for target in sorted(counts):
        parts = ", ".join(f"{n} {v}" for v, n in sorted(counts[target].items()))
        summary.append(f"  {target}: {parts}")
    return table(ev) + "\n".join(summary) + "\n"


def demo_notes(ev: Evaluation) -> list[str]:
    """Plain words under the table: where the numbers come from, and why rows are NOT
    EVALUABLE or INCONCLUSIVE in a demo."""
    from analyzer.stats.verdicts import Verdict

    verdicts = {row.decision.verdict for row in ev.rows}
    reasons = " ".join(row.decision.reason for row in ev.rows)
    notes = ["the verdicts come only from the results stored in the two stores over the "
             "window; the testbed profiles' figures are never read by the analysis",
             "baseline and current are two copies of the emulated network measured over the "
             "same minutes (docs/demo.md), so there is no hour-of-week difference between them",
             "one-way delays are judged with the testbed's clock domain (all hosts read one "
             "kernel clock; docs/methodology.md §5)"]
    if "time units, needs" in reasons:
        notes.append("a delay verdict needs at least 10 one-minute units in each window "
                     "(docs/methodology.md): the default --duration 555 gives 10")
    if Verdict.INCONCLUSIVE in verdicts:
        notes.append("INCONCLUSIVE = the 95% interval still contains the threshold: with loss "
                     "near 1% a carrier pair needs thousands of packets per window to decide "
                     "(docs/methodology.md §3); a longer --duration narrows the interval")
    if "no data in the current window" in reasons:
        notes.append("'no data' rows: the target's method was not measured, or it keeps only "
                     "its busy hours (local time) and the demo ran outside them")
    return notes


def dashboard_argv(run: Run, timeline: Timeline, port: int) -> list[str]:
    """``ixmeter dashboard`` over both stores, its windows the demo's, refreshing live."""
    from ixmeter.demo.procs import ixmeter_argv

    base, cur = run.networks
    return ixmeter_argv("dashboard", "--db", str(cur.db), "--baseline-db", str(base.db),
                        "--inventory", str(run.inventory),
                        "--baseline", iso_window(timeline.baseline),
                        "--current", iso_window(timeline.current), "--port", str(port),
                        "--live")


def start_dashboard(run: Run, timeline: Timeline, port: int, children: Children) -> None:
    """Start the dashboard before the probes, so it is up from the first minute."""
    children.start("dashboard", "dashboard", dashboard_argv(run, timeline, port),
                   run.out / "run" / "dashboard.log")
    run.say(f"dashboard (live, refreshed every minute): http://127.0.0.1:{port}/")


def wait_dashboard(children: Children, port: int) -> None:
    """Keep serving until Ctrl-C (or until the dashboard exits on its own)."""
    print(f"dashboard on http://127.0.0.1:{port}/ (Ctrl-C stops it and ends the demo)",
          flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        while any(c.alive() for c in children.children):
            time.sleep(0.5)
    dead = [c for c in children.children if not c.alive()]
    if dead:
        print(f"the dashboard exited: {dead[0].tail() or 'no output'}", file=sys.stderr)
    print("dashboard stopped; the demo is over", file=sys.stderr)
