"""Benchmark: the dashboard's first page and callbacks over a generated province's day tiers.

The bench generates bench.province's province (``analyzer.synthetic.province``: Hunan's 14
prefecture-level cities over the packaged inventory, N probes per carrier, a mesh of P directed
paths, inter-carrier ones ICMP, intra-carrier ones STAMP with one-way delays) and fills a real
SQLite store with one *day-tier* rollup per path and UTC day (``analyzer.synthetic.tiers``,
``Writer.load_rows``: the shape the store keeps for a year; 86,400 probes a day each, four
synthetic days per path and window drawn again and again). The first half of the days is the
baseline window, the second the current one, both on UTC day boundaries so the dashboard reads
the day tier. Then it times,
server-side (Flask test client and direct callback calls; no browser):

- warm-up, each part apart (what ``ixmeter dashboard`` pays once before it listens): reading
  both windows' columns and building the per-path totals (index), the analyzer's evaluation
  of every policy target (B = 2000; the lead's part, timed apart), the targets' trends, the
  matrix cells and drill-down figures;
- the first page as served after warm-up (``GET /``, the layout and the overview callback);
- each interactive callback, warm (median of 3): language switch, matrix (4 statistics x 2
  levels), a cell's drill-down list and its search, the path page, the probes page.

    .venv/bin/python -m bench.dashboard_load                # 39 probes, 500 paths, 60 days
    .venv/bin/python -m bench.dashboard_load --province     # 150 probes, 15,000 paths, a year
    .venv/bin/python -m bench.dashboard_load --paths 60 --days 8   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NS = 1_000_000_000
DAY_MIN = 1440
START_MIN = 1_767_225_600 // 60  # 2026-01-01T00:00Z: windows on UTC day boundaries
TEMPLATES = 4  # synthetic days per path and window, drawn again for every day


def fill(db: Path, province: Any, half: int, seed: int = 7) -> tuple[Any, int]:
    """Day tiers of ``half`` UTC days of baseline and ``half`` of current window for every
    path of the province (:func:`analyzer.synthetic.tiers.write_year`), a heartbeat for every
    probe; the store and the rows written."""
    from analyzer.store import open_store
    from analyzer.synthetic.tiers import write_year

    written, _ = write_year(db, province.all_paths, seed,
                            "synthetic province for bench.dashboard_load", province.same_city,
                            chunk=200_000, first_min=START_MIN, days=half,
                            templates=TEMPLATES)
    store = open_store(db)
    for probe in province.probes:
        store.record_heartbeat(probe.id, (START_MIN + 2 * half * DAY_MIN) * 60 * NS, 0, "bench")
    return store, written


def _timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def _json(obj: Any) -> int:
    import plotly.utils

    return len(json.dumps(obj, cls=plotly.utils.PlotlyJSONEncoder))


def _page(name: str) -> Any:
    import dash

    for page in dash.page_registry.values():
        if page["module"].rsplit(".", 1)[-1] == name:
            return sys.modules[page["module"]]
    raise KeyError(name)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(per_carrier: int, n_paths: int, days: int
        ) -> tuple[dict[str, float], dict[str, float]]:
    from analyzer.synthetic.province import generate
    from analyzer.views import MATRIX_STATISTICS, Window
    from dashboard.app import create_app
    from dashboard.context import Context
    from inventory.loader import load
    from inventory.topology import Topology

    out: dict[str, float] = {}
    cb: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ixmeter-dashload-") as tmp:
        province = generate(n_paths, per_carrier=per_carrier)
        inv_path = province.write(Path(tmp))
        topo = Topology(load(inv_path))
        half = days // 2
        days = 2 * half
        t = time.perf_counter()
        store, rows = fill(Path(tmp) / "bench.db", province, half)
        out["fill_s"] = time.perf_counter() - t
        out["day_rollups"] = rows
        from analyzer import groups

        ns_end = (START_MIN + days * DAY_MIN) * 60 * NS
        t = time.perf_counter()  # what the collector does as each day ends
        out["group_rows"] = groups.build(store, topo.inv, now_ns=ns_end)
        out["group_build_s"] = time.perf_counter() - t
        out["probes"] = len(topo.inv.probes)
        ns = 60 * NS
        mid = (START_MIN + half * DAY_MIN) * ns
        ctx = Context(store, topo, Window(START_MIN * ns, mid),
                      Window(mid, (START_MIN + days * DAY_MIN) * ns),
                      now_ns=lambda: (START_MIN + days * DAY_MIN) * ns, inventory_path=inv_path)
        t = time.perf_counter()
        import scipy.stats  # noqa: F401

        import analyzer.evaluate  # noqa: F401  (scipy & co.: process start-up, paid once)
        out["startup_imports_s"] = time.perf_counter() - t
        rss_before = _rss_mb()
        out["warm_index_s"], _ = _timed(lambda: (ctx.base_index(), ctx.cur_index()))
        out["rss_index_mb"] = _rss_mb() - rss_before  # the columns of both windows
        out["warm_evaluation_s"], _ = _timed(ctx.evaluation)
        out["rss_after_evaluation_mb"] = _rss_mb()
        verdicts = [r.verdict for r in ctx.verdicts()]
        print("  verdict rows: " + ", ".join(f"{v} {verdicts.count(v)}"
                                             for v in sorted(set(verdicts))))
        out["warm_figures_s"], _ = _timed(ctx.warm)  # trends, matrix cells (rest cached)

        def first_page() -> int:
            app = create_app(ctx)
            client = app.server.test_client()
            for url in ("/", "/_dash-layout", "/_dash-dependencies"):
                client.get(url).close()
            return _json(_page("overview").render("zh", None, None))

        out["first_page_warm_s"], size = _timed(first_page, 3)
        out["first_page_kb"] = size / 1024
        cb["language switch (overview)"], _ = _timed(
            lambda: _json(_page("overview").render("en", None, None)), 3)
        m = _page("matrix")

        def matrix(by: str, stat: str) -> int:
            return _json(m.render(by, stat, m._type_ps(stat)[1], "zh"))

        for by in ("carrier", "city"):
            for stat in MATRIX_STATISTICS:
                cb[f"matrix {by} {stat}"], _ = _timed(partial(matrix, by, stat), 3)
        tp = m._type_ps("rtt_median")[1]
        cb["drill-down: a city cell's paths"], _ = _timed(lambda: _json(m.cell_table(
            "city", "changsha", "changsha", "rtt_median", tp, "zh")), 3)
        cb["drill-down: search"], _ = _timed(lambda: _json(m.cell_table(
            "city", "changsha", "changsha", "rtt_median", tp, "zh", "yungu 移动")), 3)
        out["drill_down_rows"] = len(m.cell_table("city", "changsha", "changsha", "rtt_median",
                                                  tp, "zh")[1])
        path_id: str = ctx.cur_index().select("icmp")[0][0]
        pa = _page("path")
        cb["path page"], _ = _timed(lambda: _json(pa.render(path_id, "zh")), 3)
        cb["path page: layout and path list"], _ = _timed(lambda: _json(
            (pa.layout(path=path_id), pa._labels("zh", None, None, path_id))), 3)
        cb["path page: path search"], _ = _timed(lambda: _json(
            pa._labels("en", None, "changsha cm", path_id)), 3)
        cb["probes page"], _ = _timed(lambda: _json(_page("probes").render("zh")), 3)
        out["slowest_callback_s"] = max(cb.values())
        out["paths"] = len(ctx.cur_index().keys)
        store.close()
    out["max_rss_mb"] = _rss_mb()
    return out, cb


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-carrier", type=int, default=13,
                        help="probes per carrier (at least the packaged inventory's)")
    parser.add_argument("--paths", type=int, default=500)
    parser.add_argument("--days", type=int, default=60, help="baseline and current halves")
    parser.add_argument("--province", action="store_true",
                        help="50 probes per carrier, 15,000 paths, 364 days")
    args = parser.parse_args(argv)
    per_carrier, paths, days = (50, 15_000, 364) if args.province else (
        args.per_carrier, args.paths, args.days)
    print(f"dashboard_load: {per_carrier} probes per carrier, {paths} paths x {days} days of "
          "day tiers; "
          f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, "
          f"load average {os.getloadavg()[0]:.1f}")
    out, cb = run(per_carrier, paths, days)
    for k, v in cb.items():
        print(f"  callback {k:<36} {v * 1000:8.1f} ms")
    for k, v in out.items():
        print(f"  {k:<45} {v:10.3f}" if isinstance(v, float) else f"  {k:<45} {v:10d}")
    print(f"  load average after: {os.getloadavg()[0]:.1f}")
    return out


if __name__ == "__main__":
    main()
    sys.exit(0)
