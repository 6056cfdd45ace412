"""Storage per path per day of each kind of evidence, and per year at province scale.

Writes a probe's results through the store's writer (one batch every 10 s, ICMP and STAMP at
1/s each on every path, rollups folded as the collector folds them) into SQLite and, as root,
a throwaway PostgreSQL; then measures each table's rows and bytes (SQLite ``dbstat`` after
``VACUUM``; PostgreSQL ``pg_total_relation_size`` after ``VACUUM FULL``: table, indexes and
TOAST), per path per day: raw results (``blobs`` and ``streams``), minute, hour and day rollups,
and the chain's links (kept for ever, one per batch). From those it gives storage per year for
a province (``--province-paths`` paths, 100 paths per probe) under a retention policy.

    .venv/bin/python -m bench.store_retention            # 4 paths, one day: ~691,000 results
    .venv/bin/python -m bench.store_retention --smoke    # 2 paths, one hour
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from analyzer.store import open_store
from analyzer.store.schema import TIERS
from analyzer.store.writes import Writer
from analyzer.synthetic.varied import T0, make_results
from ixmeter.core.wire import Batch

BATCH_S = 10  # a probe uploads a batch every 10 s
PATHS_PER_PROBE = 100
KINDS = ("raw results", "minute rollups", "hour rollups", "day rollups", "chain links")
_TABLES = {"raw results": ("blobs", "streams"), "minute rollups": (TIERS["minute"][0],),
           "hour rollups": (TIERS["hour"][0],), "day rollups": (TIERS["day"][0],),
           "chain links": ("links",)}
_ROWS = {"raw results": "blobs", "minute rollups": TIERS["minute"][0],
         "hour rollups": TIERS["hour"][0], "day rollups": TIERS["day"][0],
         "chain links": "links"}


def batches(paths: int, hours: float) -> list[Batch]:
    """One probe's batches: every path measured by ICMP and STAMP at 1/s each."""
    ends = tuple(("csx-a", "CT", f"dst{k:03d}", ("CT", "CM", "CU")[k % 3]) for k in range(paths))
    out, day = [], T0 - T0 % (86_400 * 10**9)  # from a UTC midnight: whole hours and days
    for k in range(int(hours * 3600 / BATCH_S)):
        start = day + k * BATCH_S * 10**9
        results = [r for j, path in enumerate(ends) for r in make_results(
            "p1", 2 * BATCH_S, seed=k * paths + j, start_ns=start, gap_ns=500_000_000,
            seq0=2 * BATCH_S * k, paths=(path,))]
        out.append(Batch("p1", f"b{k}", tuple(results)))
    return out


def write(target: str, data: list[Batch]) -> float:
    store = open_store(target)
    began = time.perf_counter()
    try:
        for b in data:
            store.write_batch(b, time.time_ns())
    finally:
        store.close()  # folds what it holds
    return time.perf_counter() - began


def measure(target: str) -> dict[str, tuple[int, int]]:
    """(rows, bytes) of each kind of evidence in the store."""
    store = open_store(target)
    assert isinstance(store, Writer)
    db = store.db
    try:
        if db.dialect == "sqlite":
            db.execute("VACUUM")
            size = {str(t): int(n) for t, n in db.execute(
                "SELECT m.tbl_name, SUM(s.pgsize) FROM dbstat s JOIN sqlite_master m "
                "ON m.name = s.name GROUP BY m.tbl_name").fetchall()}
        else:
            tables = [t for names in _TABLES.values() for t in names]
            for t in tables:
                db.execute(f"VACUUM FULL {t}")
            size = {t: int(db.execute("SELECT pg_total_relation_size(?)", (t,)).fetchone()[0])
                    for t in tables}
        return {kind: (int(db.execute(f"SELECT COUNT(*) FROM {_ROWS[kind]}").fetchone()[0]),
                       sum(size.get(t, 0) for t in _TABLES[kind])) for kind in KINDS}
    finally:
        store.close()


def per_path_day(found: dict[str, tuple[int, int]], paths: int, hours: float
                 ) -> dict[str, tuple[float, float]]:
    """Rows and bytes per path per day; a day row per path and method whatever the hours;
    links (one per batch of a probe) shared by the probe's ``PATHS_PER_PROBE`` paths."""
    out = {}
    for kind, (rows, size) in found.items():
        days = math.ceil(hours / 24) if kind == "day rollups" else hours / 24
        share = PATHS_PER_PROBE if kind == "chain links" else paths
        out[kind] = (rows / share / days, size / share / days)
    return out


def per_year(per_day: dict[str, tuple[float, float]], paths: int,
             keep: dict[str, float | None]) -> dict[str, float]:
    """Bytes a province keeps after a year of ``paths`` paths, each kind kept ``keep`` days
    (None: for ever)."""
    return {kind: per_day[kind][1] * paths * min(365.0, keep[kind] or 365.0) for kind in KINDS}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=4)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--smoke", action="store_true", help="2 paths, one hour; SQLite only")
    ap.add_argument("--province-paths", type=int, default=15_000)
    ap.add_argument("--raw-days", type=float, default=7.0)
    ap.add_argument("--minute-days", type=float, default=31.0)
    ap.add_argument("--hour-days", type=float, default=366.0)
    args = ap.parse_args()
    paths, hours = (2, 1.0) if args.smoke else (args.paths, args.hours)
    data = batches(paths, hours)
    n = sum(len(b.results) for b in data)
    print(f"{paths} paths x ICMP + STAMP at 1/s each, {hours:g} h: {n:,} results in "
          f"{len(data):,} batches (one per {BATCH_S} s)")
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("SQLite", str(Path(tmp) / "s.db"), None)]
        if not args.smoke:
            targets.append(("PostgreSQL", "", _cluster()))
        for name, target, cluster in targets:
            if cluster is not None:
                target = cluster.new_database()
            try:
                took = write(target, data)
                _report(name, per_path_day(measure(target), paths, hours), took, n, args)
            finally:
                if cluster is not None:
                    cluster.stop()
    return 0


def _cluster() -> Any:
    from tests.store.pgcluster import PgCluster, PgUnavailable

    try:
        return PgCluster().start()
    except PgUnavailable as exc:
        print(f"PostgreSQL skipped: {exc}")
        return None


def _report(name: str, per_day: dict[str, tuple[float, float]], took: float, n: int,
            args: argparse.Namespace) -> None:
    keep = {"raw results": args.raw_days, "minute rollups": args.minute_days,
            "hour rollups": args.hour_days, "day rollups": None, "chain links": None}
    print(f"\n{name}: written in {took:.1f} s ({n / took:,.0f} results/s)")
    print(f"{'per path per day':18} {'rows':>10} {'bytes':>12} {'B/row':>8}   kept (days)  "
          f"{args.province_paths:,} paths, after a year")
    year = per_year(per_day, args.province_paths, keep)
    for kind in KINDS:
        rows, size = per_day[kind]
        kept = "for ever" if keep[kind] is None else f"{keep[kind]:g}"
        print(f"{kind:18} {rows:10,.1f} {size:12,.0f} {size / max(rows, 1e-9):8,.0f}   "
              f"{kept:>11}  {year[kind] / 2**30:10,.1f} GiB")
    total = sum(year.values())
    every = sum(per_day[k][1] for k in KINDS) * args.province_paths * 365
    print(f"{'total':18} {'':10} {'':12} {'':8}   {'':11}  {total / 2**30:10,.1f} GiB "
          f"(keeping everything: {every / 2**30:,.0f} GiB a year)")


if __name__ == "__main__":
    raise SystemExit(main())
