"""Benchmark: the dashboard's first page and callbacks over a generated province's day tiers.

The bench makes a province-shaped inventory (Hunan's 14 prefecture-level cities, N sites with
all three carriers, one probe per carrier and site, P directed probe paths of the full mesh
drawn at random) and fills a real SQLite store with one *day-tier* rollup per path and UTC day
(``Writer.load_rows``: the shape the store keeps for a year; 86,400 probes a day each, a few
synthetic days per path and window drawn again and again; same-city paths also as STAMP with
one-way delays). The first half of the days is the baseline window, the second the current
one, both on UTC day boundaries so the dashboard reads the day tier. Then it times,
server-side (Flask test client and direct callback calls; no browser):

- warm-up, each part apart (what ``ixmeter dashboard`` pays once before it listens): reading
  both windows' columns and building the per-path totals (index), the analyzer's evaluation
  of every policy target (B = 2000; the lead's part, timed apart), the targets' trends, the
  matrix cells and drill-down figures;
- the first page as served after warm-up (``GET /``, the layout and the overview callback);
- each interactive callback, warm (median of 3): language switch, matrix (4 statistics x 2
  levels), a cell's drill-down list and its search, the path page, the probes page.

    .venv/bin/python -m bench.dashboard_load                # 30 probes, 500 paths, 60 days
    .venv/bin/python -m bench.dashboard_load --province     # 150 probes, 15,000 paths, a year
    .venv/bin/python -m bench.dashboard_load --sites 4 --paths 60 --days 8   # smoke
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NS = 1_000_000_000
DAY_MIN = 1440
START_MIN = 1_767_225_600 // 60  # 2026-01-01T00:00Z: windows on UTC day boundaries
PER_DAY = 86_400  # one probe a second
TEMPLATES = 4  # synthetic days per path and window, drawn again for every day

# Hunan's 14 prefecture-level divisions: id, zh, en, lat, lon (city centres, approximate) and a
# city cluster (Chang-Zhu-Tan is the provincial plan's; the other groupings are assumed).
HUNAN_CITIES = (
    ("changsha", "长沙", "Changsha", 28.228, 112.939, "changzhutan"),
    ("zhuzhou", "株洲", "Zhuzhou", 27.827, 113.134, "changzhutan"),
    ("xiangtan", "湘潭", "Xiangtan", 27.829, 112.944, "changzhutan"),
    ("hengyang", "衡阳", "Hengyang", 26.894, 112.572, "xiangnan"),
    ("chenzhou", "郴州", "Chenzhou", 25.770, 113.015, "xiangnan"),
    ("yongzhou", "永州", "Yongzhou", 26.420, 111.613, "xiangnan"),
    ("yueyang", "岳阳", "Yueyang", 29.357, 113.129, "dongting"),
    ("changde", "常德", "Changde", 29.031, 111.699, "dongting"),
    ("yiyang", "益阳", "Yiyang", 28.554, 112.355, "dongting"),
    ("shaoyang", "邵阳", "Shaoyang", 27.239, 111.467, "xiangxi"),
    ("loudi", "娄底", "Loudi", 27.700, 111.994, "xiangxi"),
    ("huaihua", "怀化", "Huaihua", 27.570, 110.001, "xiangxi"),
    ("zhangjiajie", "张家界", "Zhangjiajie", 29.117, 110.479, "xiangxi"),
    ("xiangxi", "湘西", "Xiangxi", 28.314, 109.739, "xiangxi"),
)
CARRIER_OCTET = {"CT": 0, "CM": 64, "CU": 128}  # the inventory's emulated /18 per carrier


def province_inventory(n_sites: int) -> dict[str, Any]:
    """The packaged inventory's carriers, specs, baseline and policy targets over generated
    sites: ``n_sites`` data centres spread over the 14 cities (a third in Changsha), each with
    all three carriers and one probe per carrier. Segments and fault rules (tied to the
    packaged sites) are left out."""
    from inventory.loader import default_inventory

    doc = yaml.safe_load(default_inventory().read_text(encoding="utf-8"))
    cities = [{"id": c, "name": {"zh": zh, "en": en}, "province": "HN", "lat": lat,
               "lon": lon, "cluster": cl} for c, zh, en, lat, lon, cl in HUNAN_CITIES]
    sites: list[dict[str, Any]] = []
    probes: list[dict[str, Any]] = []
    for i in range(n_sites):
        c = HUNAN_CITIES[0] if i % 3 == 0 else HUNAN_CITIES[1 + (i // 3 * 2 + i % 3) % 13]
        n = sum(s["city"] == c[0] for s in sites) + 1
        sid = f"{c[0]}-dc{n}"
        sites.append({"id": sid, "kind": "data_centre", "city": c[0],
                      "name": {"zh": f"{c[1]}数据中心{n}", "en": f"{c[2]} data centre {n}"},
                      "lat": round(c[3] + 0.05 * math.sin(n * 2.1), 3),
                      "lon": round(c[4] + 0.05 * math.cos(n * 2.1), 3),
                      "carriers": list(CARRIER_OCTET)})
        for carrier, octet in CARRIER_OCTET.items():
            probes.append({"id": f"{sid}-{carrier.lower()}", "site": sid, "carrier": carrier,
                           "addresses": [f"198.18.{octet + i // 200}.{10 + i % 200}"]})
    keep = ("version", "provinces", "carriers", "specs", "baselines", "policy_targets")
    return {**{k: doc[k] for k in keep}, "name": "hunan-province-bench", "synthetic":
            "generated province for bench.dashboard_load", "cities": cities, "sites": sites,
            "probes": probes, "targets": []}


def fill(db: Path, topo: Any, n_paths: int, days: int, seed: int = 7) -> tuple[Any, int]:
    """Day tiers for ``n_paths`` directed probe paths over ``days`` UTC days (the first half
    the baseline: inter-carrier 20-40 ms, loss 1 %; then inter-carrier 8-30 % of it, loss
    0.4 %; intra-carrier 4-8 ms throughout). Returns the store and the rows written."""
    from analyzer.rollups.rows import ROLLUP_COLUMNS, rollup_row
    from analyzer.store import open_store
    from analyzer.store.writes import Writer
    from bench.synthetic_tiers import MeshPath, day_template

    minute_at = ROLLUP_COLUMNS.index("minute")
    all_paths = topo.probe_paths
    paths = sorted(random.Random(seed).sample(all_paths, min(n_paths, len(all_paths))),
                   key=lambda p: p.id)
    rng = np.random.default_rng(seed)
    store = open_store(db)
    assert isinstance(store, Writer)
    half = days // 2
    rows: list[list[Any]] = []
    written = 0
    for k, p in enumerate(paths):
        inter = p.src_carrier != p.dst_carrier
        same_city = topo.city_of(p.src_site) == topo.city_of(p.dst_site)
        base_ms = rng.uniform(20, 40) if inter else rng.uniform(4, 8)
        cur_ms = base_ms * (rng.uniform(0.08, 0.3) if inter else 1)
        for ms, loss, span in ((base_ms, 0.01, range(half)), (cur_ms, 0.004, range(half, days))):
            for method in ("icmp", "stamp") if same_city else ("icmp",):
                owd_ms = 1.4 if method == "stamp" and not inter else ms
                tpls = []
                for _ in range(TEMPLATES):
                    tpls.append(rollup_row(day_template(rng, MeshPath(
                        p.src_site, p.src_carrier, p.dst_site, p.dst_carrier, method),
                        owd_ms, loss)))
                for d in span:
                    row = list(tpls[int(rng.integers(TEMPLATES))])
                    row[minute_at] = START_MIN + d * DAY_MIN
                    rows.append(row)
        if len(rows) > 200_000 or k == len(paths) - 1:
            rows.sort(key=lambda r: (r[0], r[1], r[2], r[minute_at]))
            written += store.load_rows("day", rows, "synthetic province for bench.dashboard_load")
            rows = []
    for ep in topo.inv.probes:
        store.record_heartbeat(ep.id, (START_MIN + days * DAY_MIN) * 60 * NS, 0, "bench")
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


def run(n_sites: int, n_paths: int, days: int) -> tuple[dict[str, float], dict[str, float]]:
    from analyzer.views import MATRIX_STATISTICS, Window
    from dashboard.app import create_app
    from dashboard.context import Context
    from inventory.loader import load
    from inventory.topology import Topology

    out: dict[str, float] = {}
    cb: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ixmeter-dashload-") as tmp:
        inv_path = Path(tmp) / "province.yaml"
        inv_path.write_text(yaml.safe_dump(province_inventory(n_sites), allow_unicode=True),
                            encoding="utf-8")
        topo = Topology(load(inv_path))
        t = time.perf_counter()
        store, rows = fill(Path(tmp) / "bench.db", topo, n_paths, days)
        out["fill_s"] = time.perf_counter() - t
        out["day_rollups"] = rows
        from analyzer import groups

        ns_end = (START_MIN + days * DAY_MIN) * 60 * NS
        t = time.perf_counter()  # what the collector does as each day ends
        out["group_rows"] = groups.build(store, topo.inv, now_ns=ns_end)
        out["group_build_s"] = time.perf_counter() - t
        out["probes"] = len(topo.inv.probes)
        ns = 60 * NS
        half = (START_MIN + days // 2 * DAY_MIN) * ns
        ctx = Context(store, topo, Window(START_MIN * ns, half),
                      Window(half, (START_MIN + days * DAY_MIN) * ns),
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
            "city", "changsha", "changsha", "rtt_median", tp, "zh", "dc2 移动")), 3)
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
    parser.add_argument("--sites", type=int, default=10, help="sites (3 probes each)")
    parser.add_argument("--paths", type=int, default=500)
    parser.add_argument("--days", type=int, default=60, help="baseline and current halves")
    parser.add_argument("--province", action="store_true",
                        help="50 sites (150 probes), 15,000 paths, 365 days")
    args = parser.parse_args(argv)
    sites, paths, days = (50, 15_000, 365) if args.province else (args.sites, args.paths,
                                                                   args.days)
    print(f"dashboard_load: {sites * 3} probes, {paths} paths x {days} days of day tiers; "
          f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, "
          f"load average {os.getloadavg()[0]:.1f}")
    out, cb = run(sites, paths, days)
    for k, v in cb.items():
        print(f"  callback {k:<36} {v * 1000:8.1f} ms")
    for k, v in out.items():
        print(f"  {k:<45} {v:10.3f}" if isinstance(v, float) else f"  {k:<45} {v:10d}")
    print(f"  load average after: {os.getloadavg()[0]:.1f}")
    return out


if __name__ == "__main__":
    main()
    sys.exit(0)
