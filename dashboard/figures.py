"""Figure builders: pure functions ``data -> go.Figure``, no store, no Dash, no clock.

Every builder takes already-computed numbers (from :mod:`analyzer.views`) and already-translated
labels, so each one is unit-tested without a browser. Fonts are large for a projector.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

from analyzer.views import Matrix, Series, local_label

FONT = 18
COLORS = {
    "PASS": "#1a7f37", "FAIL": "#c62828", "INCONCLUSIVE": "#b26a00", "NOT_EVALUABLE": "#6e7781",
    "ok": "#1a7f37", "bad": "#c62828", "na": "#8c959f",
    "baseline": "#8c959f", "current": "#0b5cad", "p95": "#7aa7d9", "target": "#c62828",
}
KIND_SYMBOL = {"data_centre": "square", "computing_centre": "diamond",
               "exchange_point": "star", "hub": "star-open", "edge": "circle"}


def _base_layout(fig: go.Figure, title: str = "", height: int = 420) -> go.Figure:
    fig.update_layout(
        title={"text": title, "font": {"size": FONT + 4}},
        font={"size": FONT}, height=height, template="plotly_white",
        margin={"l": 70, "r": 30, "t": 70 if title else 30, "b": 60},
        legend={"orientation": "h", "y": -0.2, "font": {"size": FONT - 2}},
    )
    return fig


def _times(t_ns: Sequence[int]) -> list[str]:
    """Bucket starts as Asia/Shanghai wall-clock labels (the axis shows local time)."""
    return [local_label(t) for t in t_ns]


# --- overview -------------------------------------------------------------------------------


def trend_figure(t_ns: Sequence[int], values: Sequence[float | None], threshold: float,
                 y_title: str, threshold_name: str, verdict: str) -> go.Figure:
    """A small daily trend of one policy target with its threshold line."""
    fig = go.Figure(go.Scatter(x=_times(t_ns), y=list(values), mode="lines+markers",
                               line={"color": COLORS.get(verdict, COLORS["current"]), "width": 3},
                               name=y_title))
    fig.add_hline(y=threshold, line={"color": COLORS["target"], "dash": "dash"},
                  annotation_text=threshold_name, annotation_font_size=FONT - 4)
    _base_layout(fig, height=220)
    fig.update_layout(margin={"l": 60, "r": 20, "t": 10, "b": 40}, showlegend=False)
    fig.update_yaxes(title_text=y_title, rangemode="tozero", title_font_size=FONT - 4)
    return fig


@dataclass(frozen=True, slots=True)
class MapPoint:
    label: str
    kind: str  # a SiteKind value or "city"
    lon: float
    lat: float


@dataclass(frozen=True, slots=True)
class MapLink:
    lon: tuple[float, float]
    lat: tuple[float, float]
    status: str  # "ok" | "bad" | "na"
    label: str


def map_figure(outline: Sequence[tuple[float, float]], cities: Sequence[MapPoint],
               sites: Sequence[MapPoint], links: Sequence[MapLink],
               lon_range: tuple[float, float], lat_range: tuple[float, float],
               labels: dict[str, str]) -> go.Figure:
    """The province as a plain lon/lat figure: outline, links by status, cities, sites.

    No geo base map, no tiles, no topojson: it draws with no network at all. The y axis is
    scaled by 1/cos(mid-latitude) so distances look right (equirectangular projection).
    """
    fig = go.Figure()
    xs, ys = zip(*outline, strict=True) if outline else ((), ())
    fig.add_trace(go.Scatter(x=[*xs, xs[0]] if xs else [], y=[*ys, ys[0]] if ys else [],
                             mode="lines", fill="toself", fillcolor="rgba(11,92,173,0.06)",
                             line={"color": "#57606a", "width": 2}, hoverinfo="skip",
                             name=labels.get("outline", "outline"), showlegend=False))
    for status in ("na", "ok", "bad"):
        _add_links(fig, [lk for lk in links if lk.status == status], status, labels)
    fig.add_trace(go.Scatter(
        x=[c.lon for c in cities], y=[c.lat for c in cities], mode="markers+text",
        text=[c.label for c in cities], textposition="bottom center",
        textfont={"size": FONT - 2, "color": "#24292f"},
        marker={"size": 7, "color": "#24292f"}, name=labels.get("city", "city"),
        hoverinfo="text"))
    for kind in KIND_SYMBOL:
        pts = [s for s in sites if s.kind == kind]
        if pts:
            fig.add_trace(go.Scatter(
                x=[p.lon for p in pts], y=[p.lat for p in pts], mode="markers",
                text=[p.label for p in pts], hoverinfo="text", name=labels.get(kind, kind),
                marker={"symbol": KIND_SYMBOL[kind], "size": 20 if "star" in KIND_SYMBOL[kind]
                        else 12, "color": "#d4a72c" if kind == "exchange_point" else "#0b5cad",
                        "line": {"width": 1.5, "color": "#24292f"}}))
    _base_layout(fig, height=700)
    mid = math.radians((lat_range[0] + lat_range[1]) / 2)
    fig.update_xaxes(range=list(lon_range), visible=False)
    fig.update_yaxes(range=list(lat_range), visible=False, scaleanchor="x",
                     scaleratio=1 / math.cos(mid), constrain="domain")
    fig.update_xaxes(constrain="domain")
    fig.update_layout(margin={"l": 10, "r": 10, "t": 10, "b": 10}, dragmode="pan",
                      legend={"orientation": "v", "y": 0.02, "x": 0.01, "yanchor": "bottom",
                              "bgcolor": "rgba(255,255,255,0.85)"})
    return fig


def _add_links(fig: go.Figure, links: Sequence[MapLink], status: str,
               labels: dict[str, str]) -> None:
    if not links:
        return
    x: list[float | None] = []
    y: list[float | None] = []
    for lk in links:
        x += [lk.lon[0], lk.lon[1], None]
        y += [lk.lat[0], lk.lat[1], None]
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", hoverinfo="skip",
                             name=labels.get(f"link_{status}", status),
                             line={"color": COLORS[status], "width": 3 if status == "bad" else 2},
                             opacity=0.8))


# --- matrix ---------------------------------------------------------------------------------


def _fmt(v: float | None, stat: str) -> str:
    if v is None:
        return "–"
    return f"{v * 100:.2f}%" if stat == "loss_ratio" else f"{v:.2f}"


def heatmap_figure(m: Matrix, which: str, title: str, row_labels: Sequence[str],
                   col_labels: Sequence[str], x_title: str, y_title: str) -> go.Figure:
    """One of the matrix's three grids: ``which`` is "baseline", "current" or "change".
    Cell ``customdata`` carries ``"row|column"`` ids so a click can open the path page."""
    z = {"baseline": m.baseline, "current": m.current, "change": m.change}[which]
    stat = "ratio" if which == "change" else m.statistic
    text = [[_fmt(v, stat) if stat != "ratio" else ("–" if v is None else f"{v:.2f}x")
             for v in row] for row in z]
    custom = [[f"{r}|{c}" for c in m.cols] for r in m.rows]
    colorscale = "RdYlGn_r" if which == "change" else "Blues"
    fig = go.Figure(go.Heatmap(
        z=z, x=list(col_labels), y=list(row_labels), text=text, texttemplate="%{text}",
        textfont={"size": FONT}, customdata=custom, colorscale=colorscale,
        zmid=1.0 if which == "change" else None, hoverongaps=False,
        hovertemplate="%{y} → %{x}: %{text}<extra></extra>", xgap=3, ygap=3))
    _base_layout(fig, title, height=420)
    fig.update_xaxes(title_text=x_title, side="bottom", type="category")
    fig.update_yaxes(title_text=y_title, autorange="reversed", type="category")
    return fig


# --- path -----------------------------------------------------------------------------------


def rtt_figure(cur: Series, base_median: float | None, base_p95: float | None,
               target: float | None, labels: dict[str, str]) -> go.Figure:
    """Median and p95 RTT per bucket, the baseline band (median..p95) and the target line."""
    x = _times(cur.t_ns)
    fig = go.Figure()
    if base_median is not None and base_p95 is not None and x:
        fig.add_trace(go.Scatter(x=[x[0], x[-1], x[-1], x[0]],
                                 y=[base_median, base_median, base_p95, base_p95],
                                 fill="toself", fillcolor="rgba(140,149,159,0.25)",
                                 mode="lines", line={"width": 0}, name=labels["baseline_band"],
                                 hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=x, y=cur.median_ms, mode="lines+markers", name=labels["median"],
                             line={"color": COLORS["current"], "width": 3}))
    fig.add_trace(go.Scatter(x=x, y=cur.p95_ms, mode="lines", name=labels["p95"],
                             line={"color": COLORS["p95"], "width": 2, "dash": "dot"}))
    if target is not None:
        fig.add_hline(y=target, line={"color": COLORS["target"], "dash": "dash", "width": 2},
                      annotation_text=labels["target_line"], annotation_font_size=FONT - 4)
    _base_layout(fig, labels["title"])
    fig.update_yaxes(title_text="ms", rangemode="tozero")
    return fig


def loss_figure(cur: Series, base_loss: float | None, target: float | None,
                labels: dict[str, str]) -> go.Figure:
    """Loss ratio per bucket (RFC 7680 §4.1), in percent, with baseline and target lines."""
    pct = [None if v is None else v * 100 for v in cur.loss]
    fig = go.Figure(go.Bar(x=_times(cur.t_ns), y=pct, name=labels["current"],
                           marker_color=COLORS["current"]))
    if base_loss is not None:
        fig.add_hline(y=base_loss * 100, line={"color": COLORS["baseline"], "width": 2},
                      annotation_text=labels["baseline"], annotation_font_size=FONT - 4)
    if target is not None:
        fig.add_hline(y=target * 100, line={"color": COLORS["target"], "dash": "dash"},
                      annotation_text=labels["target_line"], annotation_font_size=FONT - 4,
                      annotation_position="bottom right")
    _base_layout(fig, labels["title"])
    fig.update_yaxes(title_text="%", rangemode="tozero")
    return fig


def cdf_figure(before: tuple[Sequence[float], Sequence[float]],
               after: tuple[Sequence[float], Sequence[float]],
               labels: dict[str, str]) -> go.Figure:
    """Empirical CDFs of the delay before and after (sketch bucket values, log x axis)."""
    fig = go.Figure()
    for (xs, ys), name, color in ((before, labels["before"], COLORS["baseline"]),
                                  (after, labels["after"], COLORS["current"])):
        fig.add_trace(go.Scatter(x=list(xs), y=list(ys), mode="lines", name=name,
                                 line={"shape": "hv", "color": color, "width": 3}))
    _base_layout(fig, labels["title"])
    fig.update_xaxes(title_text="ms", type="log")
    fig.update_yaxes(title_text=labels["cdf"], range=[0, 1.02])
    return fig


def owd_figure(cur: Series, labels: dict[str, str]) -> go.Figure:
    """Median one-way delay each way per bucket, error bars = the clock-error bound
    (RFC 7679 §3.7.3)."""
    x = _times(cur.t_ns)
    err = [e or 0.0 for e in cur.clock_error_ms]
    fig = go.Figure()
    for ys, name, color in ((cur.fwd_ms, labels["forward"], COLORS["current"]),
                            (cur.bwd_ms, labels["backward"], "#8250df")):
        fig.add_trace(go.Scatter(x=x, y=ys, mode="markers+lines", name=name,
                                 line={"color": color, "width": 2},
                                 error_y={"type": "data", "array": err, "visible": True}))
    _base_layout(fig, labels["title"])
    fig.update_yaxes(title_text="ms", rangemode="tozero")
    return fig


# --- probes ---------------------------------------------------------------------------------


def coverage_figure(probe_ids: Sequence[str], coverage: Sequence[float],
                    statuses: Sequence[str], title: str) -> go.Figure:
    """Share of the window's hours with data, per probe, coloured by health."""
    color = {"ok": COLORS["ok"], "late": COLORS["INCONCLUSIVE"], "silent": COLORS["bad"],
             "unknown": COLORS["na"]}
    fig = go.Figure(go.Bar(x=[c * 100 for c in coverage], y=list(probe_ids), orientation="h",
                           marker_color=[color.get(s, COLORS["na"]) for s in statuses]))
    _base_layout(fig, title, height=max(360, 26 * len(probe_ids) + 120))
    fig.update_xaxes(title_text="%", range=[0, 100])
    fig.update_yaxes(autorange="reversed", tickfont={"size": FONT - 4})
    return fig
