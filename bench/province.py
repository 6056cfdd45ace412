"""Benchmark: a province (150 probes, up to 15,000 paths): a year's analysis as it grows, and a
real-rate upload run through several collectors into PostgreSQL.

    .venv/bin/python -m bench.province                  # growth 1,500/5,000/15,000 + 10 min
    .venv/bin/python -m bench.province --smoke          # ~100 paths, 5 s of real rate
    .venv/bin/python -m bench.province --sizes 1500,5000 --no-rate
    .venv/bin/python -m bench.province --no-growth --minutes 10 --collectors 2 --rate 15000
    .venv/bin/python -m bench.province --sizes 1500 --out /tmp/prov   # keep the inventory

The inventory is generated (``analyzer.synthetic.province``: Hunan's 14 cities, 50 probes per
carrier, a mesh of ``--sizes`` paths) and written as YAML to ``--out`` (default: a temporary
directory); it passes ``ixmeter inventory check``.

*Growth* (one table): for each size and each store (SQLite file, PostgreSQL database of a
throwaway cluster), in a process of its own each: (1) a baseline year and a current year of
day tiers for every path, and hour tiers of the fault rules' busy hours for the paths from
the exchange point, written with ``Writer.load_rows`` (analyzer.synthetic.tiers); write time,
rows, store size; (2) ``ixmeter analyze --json`` with the generated inventory, both years as
windows: every policy target, as an operator runs it; its wall time and peak RSS (the child's
own, from ``wait4``); (3) one path's page: a fresh process reading one path's two years of day
rows (``read_rollups``). A size whose analysis would need more than ``--max-rss-gib``
(extrapolated linearly from the two sizes before it on that store) is not analysed: its line
says what it would need. Sizes run one after another, never two at once.

*Real rate* (``bench.province_rate``): see that module.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyzer.synthetic.province import EXCHANGE, MeshPath, Province, generate  # noqa: E402
from analyzer.synthetic.tiers import DAY_MIN, NS_MIN, Y0, YEAR, write_year  # noqa: E402
from bench import province_rate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30


def _iso(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%MZ")


BASELINE = f"{_iso(Y0)}/{_iso(Y0 + YEAR * DAY_MIN)}"
CURRENT = f"{_iso(Y0 + YEAR * DAY_MIN)}/{_iso(Y0 + 2 * YEAR * DAY_MIN)}"


def busy_hours_utc(province: Province) -> tuple[int, ...]:
    """The UTC hours of the fault rules' busy hours (their calendar's local hours)."""
    from inventory.schema import Inventory

    hours: set[int] = set()
    for rule in Inventory.model_validate(province.inventory).fault_rules:
        cal = rule.calendar  # its zone: the rule's own, or its province's (the inventory's rule)
        offset = datetime.fromtimestamp(Y0 * 60, ZoneInfo(cal.timezone)).utcoffset()
        hours.update((h - int((offset or timedelta(0)).total_seconds()) // 3600) % 24
                     for h in cal.hours)
    return tuple(sorted(hours))


# -- workers: each measurement in a process of its own ----------------------------------------
def worker_write(db: str, n_paths: int, seed: int) -> dict[str, Any]:
    province = generate(n_paths, seed)
    hours = busy_hours_utc(province)
    def busy(p: MeshPath) -> tuple[int, ...]:
        return hours if p.src_site == EXCHANGE else ()

    start = time.perf_counter()
    days, hour_rows = write_year(db, province.all_paths, seed,
                                 f"synthetic province year for bench.province ({n_paths} paths)",
                                 province.same_city, busy)
    return {"seconds": time.perf_counter() - start, "day_rows": days, "hour_rows": hour_rows}


def worker_groups(db: str, inventory: str) -> dict[str, Any]:
    """The target-group rows of every ended unit (what the collector builds as each hour and
    day ends; here the two years at once)."""
    from analyzer import groups
    from analyzer.store import open_store
    from inventory.loader import load

    start = time.perf_counter()
    store = open_store(db)
    rows = groups.build(store, load(inventory), now_ns=(Y0 + 2 * YEAR * DAY_MIN + DAY_MIN)
                        * NS_MIN)
    store.close()
    return {"seconds": time.perf_counter() - start, "rows": rows}


def worker_page(db: str, path_id: str) -> dict[str, Any]:
    from analyzer.store import Query, open_reader

    start = time.perf_counter()
    store = open_reader(db)
    rows = store.read_rollups(Query(Y0 * NS_MIN, (Y0 + 2 * YEAR * DAY_MIN) * NS_MIN,
                                    path_ids=[path_id], tier="day"))
    store.close()
    return {"seconds": time.perf_counter() - start, "rows": len(rows)}


def _child(args: list[str], out: Path | None = None) -> tuple[float, float, int]:
    """Run a child (stdout to ``out``), return (wall s, its own peak RSS in GiB, exit code)."""
    start = time.perf_counter()
    with open(out or os.devnull, "wb") as sink:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=sink, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.stderr.write(err.decode(errors="replace")[-3000:])
    return time.perf_counter() - start, usage.ru_maxrss * 1024 / GIB, proc.returncode


def _worker(kind: str, db: str, extra: list[str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        _wall, _rss, code = _child([sys.executable, "-m", "bench.province", "--worker", kind,
                                    "--db", db, *extra], Path(f.name))
        if code:
            raise RuntimeError(f"worker {kind} failed ({code})")
        result: dict[str, Any] = json.loads(Path(f.name).read_text())
    return result


# -- the growth table ----------------------------------------------------------------------------
@dataclass
class Line:
    store: str
    paths: int
    write_s: float = 0
    group_s: float = 0
    rows: int = 0
    size_gib: float = 0
    eval_s: float | None = None
    rss_gib: float | None = None
    verdicts: str = ""
    page_s: float = 0
    note: str = ""

    def cells(self) -> list[str]:
        ev = "-" if self.eval_s is None else f"{self.eval_s:.1f} s"
        rss = "-" if self.rss_gib is None else f"{self.rss_gib:.2f} GiB"
        if not self.rows:  # not written
            return [self.store, f"{self.paths:,}", "-", "-", "-", "-", ev, rss, "-", self.note]
        return [self.store, f"{self.paths:,}", f"{self.write_s:.0f} s", f"{self.group_s:.0f} s",
                f"{self.rows:,}",
                f"{self.size_gib:.2f} GiB", ev, rss, f"{self.page_s:.2f} s",
                self.verdicts or self.note]


HEAD = ["store", "paths", "write", "target groups built", "rows (day + hour)", "store size",
        "analyze (all targets)", "analyze peak RSS", "one path's page",
        "verdicts (PASS/FAIL/other) or why not run"]


@dataclass
class Growth:
    out: Path
    max_rss_gib: float
    seed: int
    lines: list[Line] = field(default_factory=list)

    def measure(self, store: str, db: str, n: int, size_of: Any) -> Line:
        province = generate(n, self.seed)
        inventory = province.write(self.out / f"paths-{n}")
        line = Line(store, len(province.all_paths))
        need = self._predicted(store, line.paths)
        if need is not None and need["rss_gib"] > self.max_rss_gib:
            line.note = (f"skipped: would need ~{need['rss_gib']:.1f} GiB and "
                         f"~{need['eval_s']:.0f} s to analyse, ~{need['write_s']:.0f} s to "
                         f"write, ~{need['size_gib']:.1f} GiB of store (extrapolated from "
                         f"{need['from']}) > --max-rss-gib {self.max_rss_gib:g}")
        else:
            w = _worker("write", db, ["--paths", str(n), "--seed", str(self.seed)])
            line.write_s, line.rows = w["seconds"], w["day_rows"] + w["hour_rows"]
            line.group_s = _worker("groups", db, ["--inventory", str(inventory)])["seconds"]
            line.size_gib = size_of() / GIB
            line.page_s = _worker("page", db, ["--path-id", province.all_paths[0].id])["seconds"]
            self._analyze(line, db, inventory)
        self.lines.append(line)
        print("| " + " | ".join(line.cells()) + " |", flush=True)
        return line

    def _analyze(self, line: Line, db: str, inventory: Path) -> None:
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            wall, rss, code = _child(
                [sys.executable, "-m", "ixmeter.cli", "analyze", "--db", db, "--inventory",
                 str(inventory), "--baseline", BASELINE, "--current", CURRENT,
                 "--seed", str(self.seed), "--json"], Path(f.name))
            if code:
                line.note = f"analyze failed (exit {code})"
                return
            doc = json.loads(Path(f.name).read_text())
        line.eval_s, line.rss_gib = wall, rss
        verdicts = [r["verdict"] for r in doc["verdicts"]]
        line.verdicts = (f"{verdicts.count('PASS')}/{verdicts.count('FAIL')}/"
                         f"{len(verdicts) - verdicts.count('PASS') - verdicts.count('FAIL')}")

    def _predicted(self, store: str, paths: int) -> dict[str, Any] | None:
        """Write time, store size, analysis time and peak RSS of ``paths``, linear through
        the two largest analysed sizes of this store; None with fewer than two."""
        done = [x for x in self.lines if x.store == store and x.rss_gib is not None]
        if len(done) < 2:
            return None
        a, b = done[-2], done[-1]
        k = (paths - b.paths) / (b.paths - a.paths)
        out: dict[str, Any] = {name: getattr(b, name) + k * (getattr(b, name) - getattr(a, name))
                               for name in ("write_s", "size_gib", "eval_s", "rss_gib")}
        out["from"] = f"{a.paths:,} and {b.paths:,} paths"
        return out

    def table(self) -> str:
        rows = [HEAD, ["---"] * len(HEAD), *(x.cells() for x in self.lines)]
        return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def growth(sizes: list[int], stores: list[str], out: Path, max_rss_gib: float, seed: int
           ) -> Growth:
    g = Growth(out, max_rss_gib, seed)
    print(f"growth: windows baseline {BASELINE}, current {CURRENT}; one row per size and store "
          "as it finishes", flush=True)
    print("| " + " | ".join(HEAD) + " |\n|" + "---|" * len(HEAD), flush=True)
    from tests.store.pgcluster import PgUnavailable

    for store in stores:
        try:
            with _store_factory(store, out) as new:
                for n in sizes:
                    db, size_of, drop = new(n)
                    try:
                        g.measure(store, db, n, size_of)
                    finally:
                        drop()
        except PgUnavailable as exc:
            print(f"{store}: skipped: {exc}", flush=True)
    return g


@contextmanager
def _store_factory(store: str, out: Path) -> Iterator[Any]:
    """``new(n) -> (db, size_of, drop)`` for one store kind; PostgreSQL in a throwaway
    cluster (durable: fsync on, like a real one), stopped at the end."""
    if store == "sqlite":
        def new_sqlite(n: int) -> tuple[str, Any, Any]:
            path = out / f"year-{n}.db"
            return str(path), lambda: _sqlite_size(path), lambda: _unlink_sqlite(path)

        yield new_sqlite
        return
    from tests.store.pgcluster import PgCluster

    cluster = PgCluster(durable=True).start()
    try:
        def new_pg(n: int) -> tuple[str, Any, Any]:
            url = cluster.new_database()
            return url, lambda: province_rate.pg_size(url), lambda: _drop(cluster.url, url)

        yield new_pg
    finally:
        cluster.stop()


def _sqlite_size(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def _unlink_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def _drop(admin: str, url: str) -> None:
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {url.rsplit('/', 1)[1]}")


# -- entry point --------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true",
                    help="~100 paths, SQLite and PostgreSQL; 6 s of real rate at 300 results/s "
                         "(the suite runs it)")
    ap.add_argument("--sizes", default="1500,5000,15000", help="paths per size, comma-separated")
    ap.add_argument("--stores", default="sqlite,postgres")
    ap.add_argument("--out", type=Path, default=None,
                    help="keep the generated inventories and SQLite files here")
    ap.add_argument("--max-rss-gib", type=float, default=6.0,
                    help="do not analyse a size predicted to need more (default 6: the machine "
                         "is shared)")
    ap.add_argument("--no-growth", action="store_true")
    ap.add_argument("--no-rate", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    province_rate.add_arguments(ap)
    ap.add_argument("--worker", choices=("write", "groups", "page"), help=argparse.SUPPRESS)
    ap.add_argument("--inventory", help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--paths", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--path-id", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker == "write":
        print(json.dumps(worker_write(args.db, args.paths, args.seed)))
        return 0
    if args.worker == "groups":
        print(json.dumps(worker_groups(args.db, args.inventory)))
        return 0
    if args.worker == "page":
        print(json.dumps(worker_page(args.db, args.path_id)))
        return 0
    if args.smoke:
        args.sizes, args.rate, args.minutes, args.batch_seconds = "100", 300, 6 / 60, 2
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="ixmeter-province-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        if not args.no_growth:
            g = growth([int(x) for x in args.sizes.split(",")], args.stores.split(","), out,
                       args.max_rss_gib, args.seed)
            print(f"\ngrowth table (load average now "
                  f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}):\n{g.table()}", flush=True)
        if not args.no_rate:
            province_rate.run(args, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
