"""Figure builders are pure: numbers in, go.Figure out, checked without a browser."""

from __future__ import annotations

import json

import plotly.graph_objects as go

from analyzer.views import Matrix, Series
from dashboard import figures, geo
from dashboard.figures import MapLink, MapPoint
from inventory.loader import default_inventory, load

T0 = 1_795_190_400 * 1_000_000_000  # 2026-11-21 00:00 +08:00
TZ = "Asia/Shanghai"  # the labels' zone (an inventory's province's)
H = 3_600 * 1_000_000_000
LABELS = {k: k for k in ("baseline_band", "median", "p95", "target_line", "baseline",
                         "current", "before", "after", "cdf", "forward", "backward", "title")}


def _series() -> Series:
    return Series([T0, T0 + H], [2.0, 2.5], [3.0, 4.0], [0.0, 0.01], [1.0, 1.2],
                  [1.1, 1.3], [0.05, None], [100, 90])


def test_map_draws_offline_with_plain_scatter() -> None:
    inv = load(default_inventory())
    (outline,) = geo.outlines(inv)
    lon_range, lat_range = geo.inventory_frame(inv)
    fig = figures.map_figure(
        [outline], [MapPoint("Changsha", "city", 112.9, 28.2)],
        [MapPoint("IXP", "exchange_point", 113.0, 28.26), MapPoint("DC", "data_centre", 112, 27)],
        [MapLink((112.0, 113.0), (27.0, 28.26), "ok", "a"),
         MapLink((112.0, 112.9), (27.0, 28.2), "bad", "b")],
        lon_range, lat_range, {"link_ok": "ok!", "link_bad": "bad!"})
    assert {tr.type for tr in fig.data} == {"scatter"}  # no geo, mapbox or tile layer
    layout = fig.to_plotly_json()["layout"]
    assert not {"geo", "mapbox", "map"} & set(layout)
    assert "http" not in json.dumps(fig.to_plotly_json()["data"], default=str)
    names = [tr.name for tr in fig.data]
    assert "ok!" in names
    assert "bad!" in names
    bad = next(tr for tr in fig.data if tr.name == "bad!")
    assert bad.line.color == figures.COLORS["bad"]
    assert fig.layout.yaxis.scaleanchor == "x"
    assert fig.layout.yaxis.scaleratio > 1
    assert len(fig.data[0].x) == len(outline) + 1  # closed ring
    two = figures.map_figure([outline, outline[:3]], [], [], [], lon_range, lat_range, {})
    assert len(two.data[0].x) == len(outline) + 1 + 1 + 4  # two rings split by a gap
    assert two.data[0].x[len(outline) + 1] is None


def test_heatmap_carries_cell_ids_for_clicks() -> None:
    m = Matrix("carrier", "rtt_median", ["CT", "CM"], ["CT", "CM"],
               [[4.0, 20.0], [21.0, 4.0]], [[4.0, 3.0], [2.5, 4.0]],
               [[1.0, 0.15], [0.12, 1.0]], [[10, 10], [10, 10]])
    fig = figures.heatmap_figure(m, "change", "t", ["电信", "移动"], ["电信", "移动"], "x", "y")
    hm = fig.data[0]
    assert isinstance(hm, go.Heatmap)
    assert hm.customdata[0][1] == "CT>CM"
    assert hm.text[0][1] == "0.15x"
    assert hm.zmid == 0.0  # log10(1.0): no target, diverging at "no change"
    cur = figures.heatmap_figure(m, "current", "t", ["a", "b"], ["a", "b"], "x", "y")
    assert cur.data[0].text[1][0] == "2.50"
    loss = Matrix("city", "loss_ratio", ["a"], ["a"], [[0.006]], [[None]], [[None]], [[0]])
    assert figures.heatmap_figure(loss, "baseline", "t", ["a"], ["a"], "x", "y"
                                  ).data[0].text[0][0] == "0.60%"


def test_change_is_coloured_against_the_target() -> None:
    """A pair at 0.58x fails a 0.2 target: it must sit on the red side of the scale, a pair
    at 0.15x on the green side (issue 20: the scale was centred on 1.0)."""
    m = Matrix("carrier", "rtt_median", ["CT", "CM"], ["CT", "CM"], [[4.0, 20.0], [21.0, 4.0]],
               [[4.0, 3.0], [12.2, 4.0]], [[1.0, 0.15], [0.58, 1.0]], [[10, 10], [10, 10]])
    hm = figures.heatmap_figure(m, "change", "t", ["a", "b"], ["a", "b"], "x", "y",
                                target=0.2, target_name="target 0.2x").data[0]
    mid = hm.zmid
    assert mid == __import__("math").log10(0.2)
    assert hm.z[1][0] > mid  # 0.58x: above the target, red half (RdYlGn reversed)
    assert hm.z[0][1] < mid  # 0.15x: below it, green half
    assert hm.zmin <= hm.z[0][1]  # every cell inside the scale
    assert hm.z[1][1] <= hm.zmax
    assert hm.colorbar.ticktext == ("0.2x",)
    assert hm.text[1][0] == "0.58x"  # the text shows the ratio itself
    scoped = figures.heatmap_figure(m, "change", "t", ["a", "b"], ["a", "b"], "x", "y",
                                    target=0.2, in_scope=[[False, True], [True, False]])
    grey, coloured = scoped.data  # intra-carrier cells: outside an inter-carrier target
    assert coloured.z[0][0] is None
    assert coloured.z[0][1] is not None
    assert grey.z[0][0] == 0.0
    assert grey.z[0][1] is None


def test_time_axes_follow_the_resolution() -> None:
    for bucket, fmt in (("minute", "%H:%M"), ("hour", "%m-%d %H:%M"), ("day", "%Y-%m-%d")):
        axis = figures.time_axis(bucket)
        assert axis["tickformat"] == fmt
        assert axis["automargin"] is True
    tr = figures.trend_figure([T0, T0 + 60_000_000_000], [0.15, 0.14], 0.2, "r", "t", "PASS",
                              "minute", tz=TZ)
    assert tr.layout.xaxis.tickformat == "%H:%M"
    assert tr.layout.yaxis.range[1] >= 0.2  # the threshold is always on the chart


def test_labels_do_not_collide_on_the_province_map() -> None:
    """Xiangtan and Zhuzhou are 20 km apart and Changsha sits under the exchange point's
    star: every city label gets a spot that overlaps no other label and no city marker."""
    inv = load(default_inventory())
    lon_range, lat_range = geo.inventory_frame(inv)
    for lang in ("zh", "en"):
        cities = [MapPoint(getattr(c.name, lang), "city", c.lon, c.lat) for c in inv.cities]
        sites = [MapPoint(getattr(s.name, lang), s.kind.value, s.lon or 0, s.lat or 0)
                 for s in inv.sites if s.kind.value in ("exchange_point", "hub")]
        spots = figures.place_labels(cities, sites, lon_range, lat_range)
        scale = figures.map_scale(lon_range, lat_range)
        boxes = []
        for p, (name, gap) in zip(cities, spots, strict=True):
            spot = next(s for s in figures.LABEL_SPOTS if s[0] == name)
            width = sum(16 if ord(ch) > 0x2E80 else 0.55 * 16 for ch in p.label)
            boxes.append(figures._box_at(p, spot, width, 16 * 1.2, gap, scale))
        for i, a in enumerate(boxes):
            for j, b in enumerate(boxes):
                assert i == j or figures._overlap(a, b) == 0, (cities[i].label, cities[j].label)
            for q in [*cities, *sites]:
                cx, cy = q.lon * scale[0], q.lat * scale[1]
                r = 6 if q.kind == "city" else 10  # a star's size is 20 px
                mark = (cx - r, cy - r, cx + r, cy + r)
                assert figures._overlap(a, mark) == 0, (cities[i].label, q.label)


def test_live_figure_draws_both_networks_minute_by_minute() -> None:
    from analyzer.views import Minute

    m = 60_000_000_000
    base = [Minute(T0 + i * m, 38.5, 0.01, 1000) for i in range(3)]
    cur = [Minute(T0 + i * m, 5.2, 0.001, 1000) for i in range(3)]
    labels = {k: k for k in ("live_rtt", "live_loss", "baseline", "current", "baseline_net",
                             "current_net")}
    fig = figures.live_figure(cur, base, labels, tz=TZ)
    lines = [tr for tr in fig.data if tr.type == "scatter"]
    assert [tr.name for tr in lines] == ["baseline_net", "current_net"]
    assert list(lines[0].y) == [38.5] * 3
    bars = [tr for tr in fig.data if tr.type == "bar"]
    assert list(bars[1].y) == [0.1] * 3  # percent
    assert fig.layout.xaxis.tickformat == "%H:%M"
    alone = figures.live_figure(cur, None, labels, tz=TZ)
    assert [tr.name for tr in alone.data if tr.type == "scatter"] == ["current"]


def test_rtt_figure_has_band_series_and_target() -> None:
    fig = figures.rtt_figure(_series(), 18.0, 20.0, 3.6, LABELS, tz=TZ)
    names = [tr.name for tr in fig.data]
    assert names == ["baseline_band", "median", "p95"]
    assert list(fig.data[0].y) == [18.0, 18.0, 20.0, 20.0]
    assert any(s.y0 == 3.6 for s in fig.layout.shapes)
    assert fig.data[1].x[0] == "2026-11-21 00:00"  # Asia/Shanghai labels
    utc = figures.rtt_figure(_series(), None, None, None, LABELS, tz="UTC")
    assert utc.data[0].x[0] == "2026-11-20 16:00"  # the zone given, none built in
    assert fig.layout.font.size >= 18


def test_rtt_figure_without_baseline_or_target() -> None:
    fig = figures.rtt_figure(_series(), None, None, None, LABELS, tz=TZ)
    assert [tr.name for tr in fig.data] == ["median", "p95"]
    assert not fig.layout.shapes


def test_loss_figure_in_percent() -> None:
    fig = figures.loss_figure(_series(), 0.006, 0.003, LABELS, tz=TZ)
    assert list(fig.data[0].y) == [0.0, 1.0]
    assert sorted(s.y0 for s in fig.layout.shapes) == [0.3, 0.6]


def test_cdf_and_owd_figures() -> None:
    cdf = figures.cdf_figure(([1.0, 2.0], [0.5, 1.0]), ([0.5], [1.0]), LABELS)
    assert [tr.name for tr in cdf.data] == ["before", "after"]
    assert cdf.layout.xaxis.type == "log"
    owd = figures.owd_figure(_series(), {**LABELS, "clock_bound": "E", "off_scale": "off"}, tz=TZ)
    assert [tr.name for tr in owd.data if tr.mode != "lines"] == ["forward", "backward"]
    band = owd.data[0]
    assert band.fill == "toself"
    assert band.name == "E ±0.05 ms"
    assert list(band.y[:2]) == [1.05, 1.2]  # value + E, then back along value - E


def test_owd_axis_follows_the_data_not_an_unsynchronised_bound() -> None:
    """An unsynchronised clock's bound (16 s) must not flatten 1 ms of data to a line."""
    se = Series([T0, T0 + H], [2.0, 2.5], [3.0, 4.0], [0.0, 0.0], [1.0, 1.2], [1.1, 1.3],
                [16_000.0, 16_000.0], [100, 90])
    owd = figures.owd_figure(se, {**LABELS, "clock_bound": "E", "off_scale": "off scale"},
                             target=3.0, tz=TZ)
    assert owd.layout.yaxis.range[1] < 10  # the data (and the 3 ms target) set the scale
    assert "16 s (off scale)" in owd.data[0].name


def test_trend_and_coverage() -> None:
    tr = figures.trend_figure([T0], [0.15], 0.2, "ratio", "target 0.2", "PASS", tz=TZ)
    assert tr.data[0].line.color == figures.COLORS["PASS"]
    assert tr.layout.shapes[0].y0 == 0.2
    cov = figures.coverage_figure(["a", "b"], [1.0, 0.25], ["ok", "silent"], "c")
    assert list(cov.data[0].x) == [100.0, 25.0]
    assert list(cov.data[0].marker.color) == [figures.COLORS["ok"], figures.COLORS["bad"]]
