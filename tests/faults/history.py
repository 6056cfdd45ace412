"""Known-truth histories for the fault-rule tests: exact delays and loss counts per local hour
(:func:`analyzer.synthetic.results.write_hours`, 240 samples an hour, a jitter of 0-6 us that
averages out exactly over 7 packets), written through ``Store.write_batches``."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from analyzer.synthetic.results import HourPlan, write_hours

INVENTORY = Path(__file__).with_name("faults.yaml")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def write_plan(db: str | Path, plan: HourPlan, name: str = "known") -> None:
    """One batch per path and day, all in one transaction (a SQLite file or a PostgreSQL
    URL)."""
    write_hours(db, plan, SHANGHAI, name)


def days(first: date, n: int) -> list[date]:
    return [date.fromordinal(first.toordinal() + k) for k in range(n)]
