"""Figure builders are pure: numbers in, go.Figure out, checked without a browser."""

from __future__ import annotations

import json

import plotly.graph_objects as go

from analyzer.views import Matrix, Series
from dashboard import figures, geo
from dashboard.figures import MapLink, MapPoint

T0 = 1_795_190_400 * 1_000_000_000  # 2026-11-21 00:00 +08:00
H = 3_600 * 1_000_000_000
LABELS = {k: k for k in ("baseline_band", "median", "p95", "target_line", "baseline",
                         "current", "before", "after", "cdf", "forward", "backward", "title")}


def _series() -> Series:
    return Series([T0, T0 + H], [2.0, 2.5], [3.0, 4.0], [0.0, 0.01], [1.0, 1.2],
                  [1.1, 1.3], [0.05, None], [100, 90])


def test_map_draws_offline_with_plain_scatter() -> None:
    fig = figures.map_figure(
        geo.HUNAN_OUTLINE, [MapPoint("Changsha", "city", 112.9, 28.2)],
        [MapPoint("IXP", "exchange_point", 113.0, 28.26), MapPoint("DC", "data_centre", 112, 27)],
        [MapLink((112.0, 113.0), (27.0, 28.26), "ok", "a"),
         MapLink((112.0, 112.9), (27.0, 28.2), "bad", "b")],
        geo.LON_RANGE, geo.LAT_RANGE, {"link_ok": "ok!", "link_bad": "bad!"})
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
    outline = fig.data[0]
    assert len(outline.x) == len(geo.HUNAN_OUTLINE) + 1  # closed ring


def test_heatmap_carries_cell_ids_for_clicks() -> None:
    m = Matrix("carrier", "rtt_median", ["CT", "CM"], ["CT", "CM"],
               [[4.0, 20.0], [21.0, 4.0]], [[4.0, 3.0], [2.5, 4.0]],
               [[1.0, 0.15], [0.12, 1.0]], [[10, 10], [10, 10]])
    fig = figures.heatmap_figure(m, "change", "t", ["电信", "移动"], ["电信", "移动"], "x", "y")
    hm = fig.data[0]
    assert isinstance(hm, go.Heatmap)
    assert hm.customdata[0][1] == "CT|CM"
    assert hm.text[0][1] == "0.15x"
    assert hm.zmid == 1.0
    cur = figures.heatmap_figure(m, "current", "t", ["a", "b"], ["a", "b"], "x", "y")
    assert cur.data[0].text[1][0] == "2.50"
    loss = Matrix("city", "loss_ratio", ["a"], ["a"], [[0.006]], [[None]], [[None]], [[0]])
    assert figures.heatmap_figure(loss, "baseline", "t", ["a"], ["a"], "x", "y"
                                  ).data[0].text[0][0] == "0.60%"


def test_rtt_figure_has_band_series_and_target() -> None:
    fig = figures.rtt_figure(_series(), 18.0, 20.0, 3.6, LABELS)
    names = [tr.name for tr in fig.data]
    assert names == ["baseline_band", "median", "p95"]
    assert list(fig.data[0].y) == [18.0, 18.0, 20.0, 20.0]
    assert any(s.y0 == 3.6 for s in fig.layout.shapes)
    assert fig.data[1].x[0] == "2026-11-21 00:00"  # Asia/Shanghai labels
    assert fig.layout.font.size >= 18


def test_rtt_figure_without_baseline_or_target() -> None:
    fig = figures.rtt_figure(_series(), None, None, None, LABELS)
    assert [tr.name for tr in fig.data] == ["median", "p95"]
    assert not fig.layout.shapes


def test_loss_figure_in_percent() -> None:
    fig = figures.loss_figure(_series(), 0.006, 0.003, LABELS)
    assert list(fig.data[0].y) == [0.0, 1.0]
    assert sorted(s.y0 for s in fig.layout.shapes) == [0.3, 0.6]


def test_cdf_and_owd_figures() -> None:
    cdf = figures.cdf_figure(([1.0, 2.0], [0.5, 1.0]), ([0.5], [1.0]), LABELS)
    assert [tr.name for tr in cdf.data] == ["before", "after"]
    assert cdf.layout.xaxis.type == "log"
    owd = figures.owd_figure(_series(), LABELS)
    assert [tr.name for tr in owd.data] == ["forward", "backward"]
    assert list(owd.data[0].error_y.array) == [0.05, 0.0]


def test_trend_and_coverage() -> None:
    tr = figures.trend_figure([T0], [0.15], 0.2, "ratio", "target 0.2", "PASS")
    assert tr.data[0].line.color == figures.COLORS["PASS"]
    assert tr.layout.shapes[0].y0 == 0.2
    cov = figures.coverage_figure(["a", "b"], [1.0, 0.25], ["ok", "silent"], "c")
    assert list(cov.data[0].x) == [100.0, 25.0]
    assert list(cov.data[0].marker.color) == [figures.COLORS["ok"], figures.COLORS["bad"]]
