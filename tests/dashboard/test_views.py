"""analyzer.views on a real SQLite store filled with synthetic results."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from analyzer import views
from analyzer.stats.units import point_statistic, table_from_rollups
from analyzer.views import NS, Window
from dashboard.context import Context
from inventory.schema import Inventory
from inventory.topology import Topology


@pytest.mark.parametrize(("tz", "iso"), [("Asia/Shanghai", "2026-01-05T00:00:00+08:00"),
                                         ("America/Sao_Paulo", "2026-01-05T00:00:00-03:00"),
                                         ("Asia/Kolkata", "2026-01-05T00:00:00+05:30")])
def test_local_days_and_windows(tz: str, iso: str) -> None:
    w = Window.from_local_dates("2026-01-05", "2026-01-06", tz)
    assert datetime.fromtimestamp(w.start_ns / NS, ZoneInfo(tz)).isoformat() == iso
    assert w.days == 2
    t = w.start_ns + 5 * views.NS_PER_HOUR + 123
    assert views.local_day_start(t, tz) == w.start_ns
    assert views.local_hour_of_day(t, tz) == 5
    assert views.local_label(w.start_ns, tz) == "2026-01-05 00:00"
    assert views.local_label(w.end_ns - 1, tz, "%Y-%m-%d") == "2026-01-06"


def test_index_buckets_merge_to_the_same_total(ctx: Context) -> None:
    cur = ctx.cur_index()
    assert cur.tier == "hour"  # 3 local days: +08:00 midnights are not UTC day boundaries
    key = cur.select("icmp")[0]
    days = cur.buckets([key], "day")
    hours = cur.buckets([key], "hour")
    total = cur.group_total([key])
    assert total is not None
    sent = total.tables["rtt"].sent.sum()
    assert days.tables["rtt"].sent.sum() == hours.tables["rtt"].sent.sum() == sent
    assert len(days) == 3
    assert all(views.local_day_start(t, ctx.tz) == t for t in days.t_ns.tolist())
    with pytest.raises(ValueError, match="minute buckets"):
        cur.buckets([key], "minute")


def test_statistics_are_the_analyzers(ctx: Context) -> None:
    """A group's statistic is the analyzer's point statistic of the same rollups merged
    (analyzer.stats.units), not a second implementation."""
    cur = ctx.cur_index()
    keys = cur.select("icmp")[:5]
    m = cur.group_total(keys)
    assert m is not None
    table = table_from_rollups(r for r in ctx.store.read_rollups(
        ctx.current.query(tier="hour")) if (r.path_id, r.method, r.type_p) in keys)
    for name, stat in (("rtt_median", "median"), ("rtt_p95", "p95")):
        assert views.statistic(m, name) == pytest.approx(point_statistic(table, stat) / 1e6)
    assert views.statistic(m, "loss_ratio") == pytest.approx(
        point_statistic(table, "loss_ratio"))


def test_carrier_matrix_shows_the_drop(ctx: Context, topo: Topology) -> None:
    m = views.matrix(topo, ctx.base_index(), ctx.cur_index(), "carrier",
                     "rtt_median", "icmp", "icmp/v4/64/dscp0")
    assert m.rows == m.cols == ["CT", "CM", "CU"]
    ct, cm, cu = 0, 1, 2
    assert m.change[ct][cm] is not None
    assert m.change[ct][cm] < 0.2
    assert m.change[cu][cm] is not None
    assert m.change[cu][cm] > 0.4
    assert m.change[ct][ct] == pytest.approx(1.0, abs=0.1)  # intra-carrier unchanged
    assert all(n > 0 for row in m.samples for n in row)


def test_city_matrix_and_cell_paths(ctx: Context, topo: Topology) -> None:
    cur = ctx.cur_index()
    m = views.matrix(topo, ctx.base_index(), cur, "city", "loss_ratio", "icmp", None)
    assert set(m.rows) == {"changsha", "chenzhou"}
    paths = views.paths_of_cell(topo, cur, "carrier", "CT", "CM")
    assert paths
    assert all(p.split(">")[0].endswith("/CT") and p.endswith("/CM") for p in paths)


def test_cell_paths_are_the_cells(ctx: Context, topo: Topology) -> None:
    base, cur = ctx.base_index(), ctx.cur_index()
    m = views.matrix(topo, base, cur, "city", "rtt_median", "icmp", "icmp/v4/64/dscp0")
    rows = views.cell_paths(topo, base, cur, "city", "changsha", "chenzhou", "rtt_median",
                            "icmp", "icmp/v4/64/dscp0")
    assert rows
    assert all((r.src_city, r.dst_city) == ("changsha", "chenzhou") for r in rows)
    assert {r.path_id for r in rows} == set(
        views.paths_of_cell(topo, cur, "city", "changsha", "chenzhou", "icmp"))
    assert sum(r.samples for r in rows) == m.samples[0][1]  # the cell merges exactly these
    assert all(r.change is not None for r in rows)


def test_statistics_and_distribution(ctx: Context) -> None:
    cur = ctx.cur_index()
    total = cur.group_total(cur.select("icmp")[:1])
    assert total is not None
    med, p95 = views.statistic(total, "rtt_median"), views.statistic(total, "rtt_p95")
    assert med is not None
    assert p95 is not None
    assert p95 >= med
    xs, ys = views.distribution(total)
    assert xs == sorted(xs)
    assert ys[-1] == pytest.approx(1.0)
    stamp = cur.group_total(cur.select("stamp")[:1])
    assert stamp is not None
    assert views.statistic(stamp, "owd_median") is not None
    with pytest.raises(ValueError, match="not shown"):
        views.statistic(total, "nonsense")


def test_series_hourly(ctx: Context) -> None:
    cur = ctx.cur_index()
    path_id = cur.select("stamp")[0][0]
    se = views.series(cur, views.path_keys(cur, path_id, "stamp"), "hour")
    assert len(se.t_ns) == 24  # 3 days: every 4 hours, and every busy hour (20-22)
    assert all(e == pytest.approx(0.05) for e in se.clock_error_ms)
    assert all(f is not None for f in se.fwd_ms)


def test_route_crosses_the_exchange_point_after_only(ctx: Context, topo: Topology) -> None:
    path_id = "cs-yungu/CT>cs-cmcc/CM"
    after = views.latest_route(ctx.store, topo, path_id, ctx.current)
    before = views.latest_route(ctx.store, topo, path_id, ctx.baseline)
    assert after is not None
    assert after.crosses_exchange
    assert after.exchange_sites == ["cs-ixp"]
    assert before is not None
    assert not before.crosses_exchange
    assert any(h.site == "wh-ixp" for h in before.hops)
    assert views.latest_route(ctx.store, topo, "cs-yungu/CT>cs-yungu/CT", ctx.current) is None


def test_probe_rows(ctx: Context, topo: Topology) -> None:
    rows = {r.probe_id: r for r in views.probe_rows(ctx.store, topo, ctx.cur_index(),
                                                    ctx.now_ns())}
    made = {pid for pid in rows if pid.startswith("synthetic-")}
    assert len(rows) == len(topo.inv.probes) + len(made)  # generated probes: apart, by name
    assert all(rows[p.id].status == "unknown" for p in topo.inv.probes)  # no real probe wrote
    late = rows["synthetic-cs-cmcc-cm"]
    assert late.status == "late"
    assert late.spool_depth == 17
    assert (late.set_aside_batches, late.set_aside_results) == (1, 40)
    assert rows["synthetic-cs-yungu-ct"].set_aside_batches == 0
    assert rows["synthetic-cs-yungu-ct"].status == "ok"
    assert rows["cs-yungu-ct"].coverage > 0  # the generated paths start at its site
    assert rows["cs-ixp-ct"].status == "unknown"
    assert rows["cs-ixp-ct"].coverage == 0
    assert all(0 <= r.coverage <= 1 for r in rows.values())


def test_verdicts_from_the_evaluator(ctx: Context) -> None:
    rows = ctx.verdicts()
    by = {(r.target_id, r.group): r for r in rows}
    lat = by[("hn-inter-carrier-latency", "CU>CM")]
    assert lat.verdict == views.FAIL
    assert lat.kind == "relative"
    assert lat.unit == "ratio"
    assert lat.estimate is not None
    assert lat.estimate > 0.4
    assert lat.ci_low is not None
    assert lat.ci_high is not None
    assert lat.ci_low <= lat.estimate <= lat.ci_high
    ct_cm = by[("hn-inter-carrier-latency", "CT>CM")]
    assert ct_cm.verdict in (views.PASS, views.INCONCLUSIVE)  # 3 days: the CI may be wide
    assert ct_cm.estimate is not None
    assert ct_cm.estimate < 0.2
    assert views.overall([r for r in rows if r.target_id == "hn-inter-carrier-latency"]) \
        == views.FAIL
    owd = by[("sd-intra-city-owd", "changsha>changsha")]
    assert owd.verdict == views.PASS
    assert owd.unit == "ms"
    assert owd.estimate is not None
    assert owd.estimate < 1.0
    assert {r.verdict for r in rows} <= {views.PASS, views.FAIL, views.INCONCLUSIVE,
                                        views.NOT_EVALUABLE}


def test_overall_is_intersection_union() -> None:
    def row(verdict: str) -> views.VerdictRow:
        return views.VerdictRow("t", "g", "tp", "rtt_median", "relative", "ratio", None, None,
                                None, None, None, 0.2, verdict, "", 0, 0)

    assert views.overall([]) == views.NOT_EVALUABLE
    assert views.overall([row(views.NOT_EVALUABLE)]) == views.NOT_EVALUABLE
    assert views.overall([row(views.PASS), row(views.NOT_EVALUABLE)]) == views.PASS
    assert views.overall([row(views.PASS), row(views.INCONCLUSIVE)]) == views.INCONCLUSIVE
    assert views.overall([row(views.PASS), row(views.FAIL)]) == views.FAIL


def test_verdicts_not_evaluable_without_baseline(ctx: Context) -> None:
    empty = Window(0, 60 * NS)
    rows = ctx.verdicts(empty, ctx.current)
    rel = [r for r in rows if r.kind == "relative"]
    assert rel
    assert all(r.verdict == views.NOT_EVALUABLE for r in rel)


def test_trend_is_daily(ctx: Context, topo: Topology) -> None:
    tg = topo.inv.policy_targets[0]
    ts, vs = views.trend(topo, tg, ctx.base_index(), ctx.cur_index())
    assert len(ts) == 3
    assert all(v is not None and 0 < v < 1 for v in vs)


def test_an_inventory_in_another_zone_buckets_in_its_own(ctx: Context, topo: Topology) -> None:
    """The same store seen through an inventory whose province is at UTC-3: days start at
    its midnights (03:00 UTC), busy hours and trends count its local hours; nothing is
    +08:00 in code."""
    tz = "America/Sao_Paulo"
    data = topo.inv.model_dump(by_alias=True)
    data["provinces"] = [{**p, "timezone": tz} for p in data["provinces"]]
    for t in data["policy_targets"]:
        t["aggregation"].pop("timezone")
    other = Context(ctx.store, Topology(Inventory.model_validate(data)), ctx.baseline,
                    ctx.current, now_ns=ctx.now_ns)
    assert other.tz == tz
    here, there = ctx.cur_index(), other.cur_index()
    key = here.select("icmp")[0]
    days, local_days = here.buckets([key], "day"), there.buckets([key], "day")
    assert all(views.local_day_start(t, tz) == t for t in local_days.t_ns.tolist())
    assert all(t % views.NS_PER_DAY == 3 * views.NS_PER_HOUR for t in local_days.t_ns.tolist())
    assert not set(days.t_ns.tolist()) & set(local_days.t_ns.tolist())
    assert local_days.tables["rtt"].sent.sum() == days.tables["rtt"].sent.sum()
    # one busy hour: the local hour of a UTC hour with data, there (UTC-3) and here (UTC+8)
    utc = int(here.cols.minute[here.rows_of([key])[0]] // 60 % 24)
    for index, local in ((there, (utc - 3) % 24), (here, (utc + 8) % 24)):
        rows = index.rows_of([key], [local])
        assert len(rows)
        assert set((index.cols.minute[rows] // 60 % 24).tolist()) == {utc}
    target = next(t for t in other.topo.inv.policy_targets if t.per == "carrier_pair")
    ts, _ = views.trend(other.topo, target, other.base_index(), there, None, "day")
    assert ts
    assert all(views.local_day_start(t, tz) == t for t in ts)
