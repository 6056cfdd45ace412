"""Benchmark: dashboard first page and callbacks over N paths x D days of rollups.

One year x 500 paths of *minute* rollups is 263M rows: no Python dashboard reads that per page
view, and ``Store.read_rollups`` has no coarser tier yet. So this bench fills a real SQLite store
(through ``Store.write_batch``) with one rollup per path and local day, i.e. the shape of a
*day tier* (what the store should serve for long windows; see docs/dashboard.md), and times,
server-side, with the data cache cold:

- first page: ``create_app``, ``GET /`` and ``/_dash-layout``, then the overview callback (both
  windows' indexes, the analyzer's evaluation with B = 2000, trends, the map) and the JSON
  encoding of its output; the one-off import of the analyzer's statistics stack (scipy) is
  timed apart as process start-up (``ixmeter dashboard`` pays it, and warms the caches,
  before it starts serving);
- the same first page with the data already loaded, which is what ``ixmeter dashboard`` serves
  (it warms up before it listens);
- each interactive callback, warm (median of 3): language switch, matrix (4 statistics x 2
  groupings), path page (incl. the traceroute read), probes;
- report generation (HTML, not an interactive callback) for the record.

Browser rendering is not included (the headless-Chromium tests check the pages draw).

    .venv/bin/python -m bench.dashboard_load                # 100 paths x 60 days (~1 min)
    .venv/bin/python -m bench.dashboard_load --full         # 500 paths x 365 days
    .venv/bin/python -m bench.dashboard_load --paths 200 --days 120
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NS = 1_000_000_000
DAY = 86_400 * NS
START = 1_767_196_800 * NS  # 2026-01-01 00:00 +08:00


def _fill(db: Path, n_paths: int, days: int, per_day: int) -> tuple[Any, Any, int]:
    from analyzer.store import open_store
    from dashboard.demo import ICMP_V4, _addr, _rtt_ms
    from inventory.loader import default_inventory, load
    from inventory.topology import Topology
    from ixmeter.record import Method, Result, Status, TimestampSource
    from ixmeter.wire import Batch

    topo = Topology(load(default_inventory()))
    paths = sorted(topo.probe_paths, key=lambda p: p.id)[:n_paths]
    store = open_store(db)
    rng = random.Random(7)
    n = 0
    for d in range(days):
        before = d < days // 2
        t0 = START + d * DAY + 12 * 3600 * NS
        by_probe: dict[str, list[Result]] = {}
        for p in paths:
            ep = topo.endpoint_at(p.src_site, p.src_carrier)
            pid = ep.id if ep else "?"
            rtt = _rtt_ms(topo, p, before)
            for i in range(per_day):
                by_probe.setdefault(pid, []).append(Result(
                    probe_id=pid, method=Method.ICMP, src_site=p.src_site,
                    src_carrier=p.src_carrier, dst_site=p.dst_site, dst_carrier=p.dst_carrier,
                    src_addr=_addr(topo, p.src_site, p.src_carrier),
                    dst_addr=_addr(topo, p.dst_site, p.dst_carrier), type_p=ICMP_V4,
                    seq=d * per_day + i, sent_at_ns=t0 + i * NS, status=Status.RECEIVED,
                    tmax_ns=3 * NS, ts_source=TimestampSource.KERNEL,
                    rtt_ns=int(rtt * 1e6 * rng.lognormvariate(0, 0.08))))
        for pid, results in by_probe.items():
            store.write_batch(Batch(pid, f"b-{d}-{pid}", tuple(results)), t0)
            n += len(results)
    for ep in topo.inv.probes:
        store.record_heartbeat(ep.id, START + days * DAY, 0, "bench")
    return store, topo, n


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


def run(n_paths: int, days: int, per_day: int) -> dict[str, float]:
    from analyzer.views import Window, local_label
    from dashboard.app import create_app
    from dashboard.context import Context

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        store, topo, n = _fill(Path(tmp) / "bench.db", n_paths, days, per_day)
        out["fill_s"] = time.perf_counter() - t
        half = START + (days // 2) * DAY
        ctx = Context(store, topo, Window(START, half), Window(half, START + days * DAY),
                      now_ns=lambda: START + days * DAY)

        def first_page() -> int:
            t = time.perf_counter()
            app = create_app(ctx)
            client = app.server.test_client()
            for url in ("/", "/_dash-layout", "/_dash-dependencies"):
                client.get(url).close()
            out["first_page_shell_s"] = time.perf_counter() - t
            return _json(_page("overview").render("zh", None, None))

        t = time.perf_counter()
        import scipy.stats  # noqa: F401

        import analyzer.evaluate  # noqa: F401  (scipy & co.: process start-up, paid once)
        import analyzer.report.html  # noqa: F401
        out["startup_imports_s"] = time.perf_counter() - t
        out["first_page_s"], size = _timed(first_page)
        out["first_page_kb"] = size / 1024
        out["first_page_warm_s"], _ = _timed(first_page)  # as served by `ixmeter dashboard`
        out["index_s"], _ = _timed(lambda: (ctx._indexes.clear(), ctx.base_index(),
                                            ctx.cur_index()))
        out["evaluation_s"], _ = _timed(lambda: (ctx._evaluations.clear(), ctx.evaluation()))
        cb: dict[str, float] = {}
        cb["language switch (overview)"], _ = _timed(
            lambda: _json(_page("overview").render("en", None, None)), 3)
        m = _page("matrix")
        for by in ("carrier", "city"):
            for stat in ("rtt_median", "rtt_p95", "loss_ratio", "owd_median"):
                cb[f"matrix {by} {stat}"], _ = _timed(
                    lambda by=by, stat=stat: _json(m.render(by, stat, m._type_ps(stat)[1],
                                                            "zh")), 3)
        path_id = ctx.cur_index().select("icmp")[0][0]
        cb["path page"], _ = _timed(lambda: _json(_page("path").render(path_id, "zh")), 3)
        cb["probes page"], _ = _timed(lambda: _json(_page("probes").render("zh")), 3)
        out["slowest_callback_s"] = max(cb.values())
        d = [local_label(w, "%Y-%m-%d") for w in (START, half - 1, half, START + days * DAY - 1)]
        out["report_html_s"], _ = _timed(lambda: _page("reports").generate(1, *d, "html", "en"))
        store.close()
    out["results"] = n
    out["rollups"] = n_paths * days
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for k, v in cb.items():
        print(f"  callback {k:<32} {v * 1000:8.1f} ms")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=100)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--per-day", type=int, default=2, help="results per path and day")
    parser.add_argument("--full", action="store_true", help="500 paths x 365 days")
    args = parser.parse_args()
    paths, days = (500, 365) if args.full else (args.paths, args.days)
    print(f"dashboard_load: {paths} paths x {days} days (one rollup per path and day)")
    out = run(paths, days, args.per_day)
    for k, v in out.items():
        print(f"  {k:<41} {v:10.3f}" if isinstance(v, float) else f"  {k:<41} {v:10d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
