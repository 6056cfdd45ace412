"""One CSV file per figure of the report (same rows as the HTML and PDF tables)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Rows with identical keys -> CSV text with a header (empty string for no rows)."""
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_all(figures: dict[str, list[dict[str, Any]]], out: Path) -> list[Path]:
    paths = []
    for name in sorted(figures):
        path = out / f"{name}.csv"
        path.write_text(to_csv(figures[name]), encoding="utf-8")
        paths.append(path)
    return paths
