"""Benchmark: store read cost, and verdicts over a year x 500 paths read from the day tiers.

Two parts, both on a SQLite file in a temporary directory:

1. *Minute reads*: N minute rollups (60 ICMP results a minute, RTT and one-way sketches) written
   straight into ``rollups``, then ``read_rollups`` timed (sketches decoded lazily), then
   ``table_from_rollups`` (the analyzer's columnar units, decoding the RTT sketches), then the
   same read with every sketch decoded (what the eager reader paid), then
   ``read_rollup_columns`` of the RTT series (what ``evaluate`` reads).
2. *Year from tiers*: a baseline year and a current year of day tiers for P paths of the
   packaged inventory (inter- and intra-carrier ICMP paths, 86,400 probes a day each), written
   straight into ``rollups_day`` (not 263M minutes); then ``evaluate`` with the inventory's
   targets, as ``ixmeter analyze --db FILE --baseline Y1 --current Y2 --json`` runs it (the
   tier is chosen from the windows: day), timed end to end, with the process's peak RSS
   after it; then one window read both ways (``read_rollup_columns`` of the RTT series, and
   ``read_rollups``), for comparison. ``--json FILE`` keeps the verdict rows, to compare runs
   byte for byte.

    .venv/bin/python -m bench.store_tiers                 # 100k minutes, 100 paths (~1 min)
    .venv/bin/python -m bench.store_tiers --full          # 100k minutes, 500 paths
    .venv/bin/python -m bench.store_tiers --paths 50 --minutes 20000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyzer.baselines import TimeWindow  # noqa: E402
from analyzer.evaluate import Params, evaluate  # noqa: E402
from analyzer.report.jsonout import row_to_dict  # noqa: E402
from analyzer.rollups.rows import ROLLUP_COLUMNS, rollup_row  # noqa: E402
from analyzer.stats.units import table_from_rollups  # noqa: E402
from analyzer.store import Query, open_reader, open_store  # noqa: E402
from analyzer.store.writes import Writer  # noqa: E402
from analyzer.synthetic.province import inventory_paths  # noqa: E402
from analyzer.synthetic.results import results  # noqa: E402
from analyzer.synthetic.tiers import (  # noqa: E402
    DAY_MIN,
    MINUTE,
    PATH,
    Y0,
    YEAR,
    load_synthetic,
    write_year,
)
from bench.analyzer_year import minute_rollups  # noqa: E402
from inventory.loader import default_inventory, load  # noqa: E402
from tests.oracles import sketch_bytes  # noqa: E402


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t: tuple[float, float]) -> str:
    wall, cpu = time.perf_counter() - t[0], time.process_time() - t[1]
    return f"{wall:.2f} s wall, {cpu:.2f} s CPU"


def minute_reads(db: Path, n: int) -> None:
    tpl = minute_rollups(results("s1", "CT", "s2", "CM", minutes=30, per_minute=60,
                                 one_way=True, spread=0.3))
    rows = []
    for i in range(n):
        row = list(rollup_row(tpl[i % len(tpl)]))
        row[PATH], row[MINUTE] = f"p{i % 100}", Y0 + i // 100
        rows.append(row)
    store = open_store(db)
    assert isinstance(store, Writer)
    load_synthetic(store, "minute", rows, "synthetic minutes for bench.store_tiers")
    q = Query(0, 2**62)
    t = _clock()
    got = store.read_rollups(q)
    print(f"read_rollups, {len(got):,} minute rollups: {_since(t)}")
    t = _clock()
    table_from_rollups(got, "rtt")
    print(f"table_from_rollups (RTT sketches decoded here): {_since(t)}")
    t = _clock()
    for r in store.read_rollups(q):
        for d in (r.rtt, r.fwd, r.bwd):
            d.sketch.count  # noqa: B018 - force the decode, as the eager reader did
    print(f"read_rollups with all three sketches decoded: {_since(t)}")
    t = _clock()
    columns = store.read_rollup_columns(q, ("rtt",))
    print(f"read_rollup_columns (RTT), {len(columns):,} minute rollups: {_since(t)}")
    cols = [ROLLUP_COLUMNS.index(f"{d}_sketch") for d in ("rtt", "fwd", "bwd")]
    t = _clock()
    for row in store.db.execute(f"SELECT {', '.join(ROLLUP_COLUMNS)} FROM rollups").fetchall():
        for c in cols:
            sketch_bytes.decode(bytes(row[c]))
    print(f"fetch + the per-byte reference decoder (tests/oracles) on all three sketches, "
          f"one at a time, without building objects: {_since(t)}")
    store.close()


def year_analysis(db: Path, n_paths: int, seed: int, json_out: Path | None = None) -> None:
    paths = inventory_paths(n_paths)
    t = _clock()
    write_year(db, paths, seed, "synthetic year for bench.store_tiers", progress=100)
    print(f"wrote {len(paths)} paths x {YEAR} days x 2 windows of day tiers: {_since(t)}, "
          f"{db.stat().st_size / 2**20:.0f} MiB")
    ns = 60 * 10**9
    base = TimeWindow(Y0 * ns, (Y0 + YEAR * DAY_MIN) * ns)
    cur = TimeWindow(base.end_ns, base.end_ns + YEAR * DAY_MIN * ns)
    store = open_reader(db)
    print(f"RSS before reading: {_rss():.0f} MiB")
    t = _clock()
    ev = evaluate(store, load(default_inventory()), Params(cur, base, seed=seed))
    doc = json.dumps([row_to_dict(r) for r in ev.rows], sort_keys=True)
    print(f"evaluate (every inventory target, B = 2000, tier chosen: day): {_since(t)}; "
          f"{len(ev.rows)} rows, {len(doc):,} bytes of JSON")
    if json_out is not None:
        json_out.write_text(doc)
    for r in ev.rows:
        print(f"  {r.target} {r.scope} {r.decision.verdict.value}")
    print("  notes: " + " | ".join(ev.notes))
    print(f"peak RSS after evaluate: {_rss():.0f} MiB")
    del ev
    q = Query(cur.start_ns, cur.end_ns, tier="day")
    t = _clock()
    columns = store.read_rollup_columns(q, ("rtt",))
    print(f"read_rollup_columns(tier='day', RTT) of the current year, {len(columns):,} rows: "
          f"{_since(t)}")
    del columns
    t = _clock()
    rows = store.read_rollups(q)
    print(f"read_rollups(tier='day') of the current year, {len(rows):,} rows: {_since(t)}")
    store.close()


def _rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="500 paths (default 100)")
    ap.add_argument("--paths", type=int, default=None)
    ap.add_argument("--minutes", type=int, default=100_000, help="minute rollups to read")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None,
                    help="write the verdict rows as JSON here (to compare runs byte for byte)")
    args = ap.parse_args()
    n_paths = args.paths or (500 if args.full else 100)
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, "
          f"load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="ixmeter-tiers-") as tmp:
        year_analysis(Path(tmp) / "year.db", n_paths, args.seed, args.json)
        print(f"peak RSS so far (year analysis): {_rss():.0f} MiB")
        minute_reads(Path(tmp) / "minutes.db", args.minutes)
    print(f"peak RSS of the process: {_rss():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
