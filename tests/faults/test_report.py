"""The fault register in the auditors' report: CSV figures and the HTML section."""

from __future__ import annotations

import csv
from pathlib import Path

from ixmeter.cli import main
from tests.faults.history import INVENTORY, write_plan
from tests.faults.test_known_truth import _plan

CURRENT = "2026-04-01T00:00:00+08:00/2026-04-07T00:00:00+08:00"


def test_report_carries_the_register(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    write_plan(db, _plan())
    out = tmp_path / "report"
    assert main(["report", "--db", str(db), "--inventory", str(INVENTORY), "--current",
                 CURRENT, "--out", str(out), "--no-pdf", "--replicates", "200"]) == 0
    with (out / "faults.csv").open(encoding="utf-8") as f:
        faults = list(csv.DictReader(f))
    assert [(r["rule"], r["path"], r["began"], r["cleared"]) for r in faults] == [
        ("r1", "ix/A>ix/B", "2026-04-02", "2026-04-05"), ("r1", "ix/B>ix/A", "2026-04-04", ""),
        ("r1-utc", "ix/A>ix/B", "2026-04-02", "2026-04-05"),
        ("r1-utc", "ix/B>ix/A", "2026-04-04", ""), ("r2", "ix/B>t1/A", "2026-04-02",
                                                    "2026-04-03")]
    assert all(r["data"] == "measured" for r in faults)
    with (out / "fault_days.csv").open(encoding="utf-8") as f:
        days = list(csv.DictReader(f))
    assert {r["state"] for r in days} == {"FAULT", "CLEAR", "NOT EVALUABLE"}
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<h2>Fault register</h2>" in page
    assert "loss_ratio 2.08 % &gt; 0.5 %" in page
    assert "SYNTHETIC" not in page
