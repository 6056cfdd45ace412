"""One CSV file per figure of the report (same rows as the HTML and PDF tables), each with its
header line even when it has no rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def to_csv(rows: list[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows -> CSV text with a header: ``columns`` (required when there may be no rows), else
    the first row's keys."""
    fields = list(columns) if columns is not None else list(rows[0]) if rows else []
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="raise")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_all(figures: dict[str, list[dict[str, Any]]], out: Path) -> list[Path]:
    from analyzer.report.data import COLUMNS

    paths = []
    for name in sorted(figures):
        path = out / f"{name}.csv"
        path.write_text(to_csv(figures[name], COLUMNS[name]), encoding="utf-8")
        paths.append(path)
    return paths
