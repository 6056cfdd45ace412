"""Figure builders: pure functions ``data -> go.Figure``, no store, no Dash, no clock.

Every builder takes already-computed numbers (from :mod:`analyzer.views`) and already-translated
labels, so each one is unit-tested without a browser. Fonts are large for a projector.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go

from analyzer.localtime import local_label
from analyzer.views import Matrix, Minute, Series
from inventory.topology import pair_key

FONT = 18
COLORS = {
    "PASS": "#1a7f37", "FAIL": "#c62828", "INCONCLUSIVE": "#b26a00", "NOT_EVALUABLE": "#6e7781",
    "ok": "#1a7f37", "warn": "#d4a72c", "bad": "#c62828", "na": "#8c959f",
    "baseline": "#8c959f", "current": "#0b5cad", "p95": "#7aa7d9", "target": "#c62828",
}
COLORWAY = ["#0b5cad", "#8250df", "#1a7f37", "#b26a00", "#c62828", "#57606a"]
KIND_SYMBOL = {"data_centre": "square", "computing_centre": "diamond",
               "exchange_point": "star", "hub": "star-open", "edge": "circle"}


_AXIS = {"gridcolor": "#e5e9ef", "linecolor": "#8c959f", "zeroline": False, "automargin": True}
# Numeric tick formats (read the same in zh and en) at the data's resolution.
TICK_FORMATS = {"minute": "%H:%M", "hour": "%m-%d %H:%M", "day": "%Y-%m-%d"}


STEP_MS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}


def time_axis(bucket: str = "hour", points: int = 0) -> dict[str, Any]:
    """A date axis whose ticks say what one point is (a minute, an hour, a day), never
    clipped (automargin) and never repeated: ticks a whole number of buckets apart, about
    eight of them for ``points`` buckets."""
    axis: dict[str, Any] = {"type": "date", "tickformat": TICK_FORMATS.get(bucket, "%m-%d"),
                            "automargin": True}
    step = STEP_MS.get(bucket)
    if step is not None and points:
        axis["dtick"] = step * max(1, math.ceil(points / 8))
    elif step is not None:
        axis["dtick"] = step if bucket == "day" else None
        axis["nticks"] = 8
    return {k: v for k, v in axis.items() if v is not None}


def _fig(data: Sequence[Any], title: str = "", height: int = 420,
         shapes: Sequence[dict[str, Any]] = (), **layout: Any) -> go.Figure:
    """Build a figure in one go from plain dicts, with our own light style.

    Assembling the layout first and constructing once keeps a figure at ~2 ms; plotly's
    incremental ``update_layout``/``add_hline`` and its default template cost 10-100 ms each,
    and every callback builds several figures. ``shapes`` are horizontal lines from
    :func:`_hline` (shape + annotation)."""
    lay: dict[str, Any] = {
        "template": "none", "paper_bgcolor": "white", "plot_bgcolor": "white",
        "font": {"size": FONT, "color": "#1f2328"}, "colorway": COLORWAY,
        "hoverlabel": {"font": {"size": FONT - 2}}, "height": height,
        "title": {"text": title, "font": {"size": FONT + 4}, "x": 0.02, "y": 0.98,
                  "yanchor": "top", "yref": "container"},
        "margin": {"l": 70, "r": 30, "t": 100 if title else 40, "b": 40},
        "legend": {"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom",
                   "font": {"size": FONT - 2}, "bgcolor": "rgba(255,255,255,0.8)"},
        "shapes": [s["shape"] for s in shapes],
        "annotations": [s["annotation"] for s in shapes if s["annotation"]["text"]],
    }
    for axis in ("xaxis", "yaxis"):
        lay[axis] = {**_AXIS, **layout.pop(axis, {})}
    lay.update(layout)
    return go.Figure(data=list(data), layout=lay)


def _hline(y: float, color: str, text: str = "", dash: str = "dash",
           bottom: bool = False) -> dict[str, Any]:
    """A horizontal line across the plot at ``y`` with a small label at its right end."""
    return {"shape": {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y",
                      "y0": y, "y1": y, "line": {"color": color, "dash": dash, "width": 2}},
            "annotation": {"xref": "paper", "x": 1, "xanchor": "right", "yref": "y", "y": y,
                           "yanchor": "top" if bottom else "bottom", "text": text,
                           "showarrow": False, "font": {"size": FONT - 4, "color": color}}}


def _times(t_ns: Sequence[int], tz: str) -> list[str]:
    """Bucket starts as wall-clock labels in ``tz`` (the axis shows local time: the zone the
    inventory declares)."""
    return [local_label(t, tz) for t in t_ns]


# --- overview -------------------------------------------------------------------------------


def trend_figure(t_ns: Sequence[int], values: Sequence[float | None], threshold: float,
                 y_title: str, threshold_name: str, verdict: str,
                 bucket: str = "day", *, tz: str) -> go.Figure:
    """A small trend of one policy target (one point per ``bucket``: minute, hour or day)
    with its threshold line; the y axis always shows the threshold."""
    line = {"type": "scatter", "x": _times(t_ns, tz), "y": list(values), "mode": "lines+markers",
            "line": {"color": COLORS.get(verdict, COLORS["current"]), "width": 3},
            "marker": {"size": 6}, "name": y_title}
    top = max([threshold, *(v for v in values if v is not None)]) * 1.15
    return _fig([line], height=220, shapes=[_hline(threshold, COLORS["target"], threshold_name)],
                margin={"l": 60, "r": 20, "t": 10, "b": 10}, showlegend=False,
                xaxis=time_axis(bucket, len(t_ns)),
                yaxis={"title": {"text": y_title, "font": {"size": FONT - 4}},
                       "range": [0, top]})


def live_figure(cur: Sequence[Minute], base: Sequence[Minute] | None,
                labels: dict[str, str], *, tz: str) -> go.Figure:
    """Inter-carrier median RTT (top) and loss (bottom) minute by minute: the current
    store's, and the baseline store's over the same minutes when there is one."""
    data: list[dict[str, Any]] = []
    series = [(cur, labels["current_net"] if base is not None else labels["current"],
               COLORS["current"])]
    if base is not None:
        series.insert(0, (base, labels["baseline_net"], COLORS["baseline"]))
    for minutes, name, color in series:
        x = _times([m.t_ns for m in minutes], tz)
        data.append({"type": "scatter", "x": x, "y": [m.rtt_median_ms for m in minutes],
                     "mode": "lines+markers", "name": name, "legendgroup": name,
                     "line": {"color": color, "width": 3}, "yaxis": "y"})
        data.append({"type": "bar", "x": x,
                     "y": [None if m.loss_ratio is None else m.loss_ratio * 100
                           for m in minutes], "name": name, "legendgroup": name,
                     "showlegend": False, "marker": {"color": color}, "yaxis": "y2"})
    return _fig(data, height=420, margin={"l": 70, "r": 20, "t": 40, "b": 10},
                barmode="group", xaxis=time_axis("minute", max(len(cur), len(base or ()))),
                yaxis={"title": {"text": labels["live_rtt"]}, "domain": [0.42, 1.0],
                       "rangemode": "tozero"},
                yaxis2={**_AXIS, "title": {"text": labels["live_loss"]},
                        "domain": [0.0, 0.32], "rangemode": "tozero", "anchor": "x"})


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
    status: str  # "ok" | "warn" | "bad" | "na"
    label: str


def map_figure(outlines: Sequence[Sequence[tuple[float, float]]], cities: Sequence[MapPoint],
               sites: Sequence[MapPoint], links: Sequence[MapLink],
               lon_range: tuple[float, float], lat_range: tuple[float, float],
               labels: dict[str, str]) -> go.Figure:
    """The province as a plain lon/lat figure: outlines, links by status, cities, sites.

    No geo base map, no tiles, no topojson: it draws with no network at all. The y axis is
    scaled by 1/cos(mid-latitude) so distances look right (equirectangular projection).
    Each outline is drawn as a closed ring; several are one trace, split by gaps.
    """
    x: list[float | None] = []
    y: list[float | None] = []
    for outline in outlines:
        ring = [*outline, outline[0]]
        x += [*(p[0] for p in ring), None]
        y += [*(p[1] for p in ring), None]
    data: list[dict[str, Any]] = [{
        "type": "scatter", "x": x[:-1], "y": y[:-1],
        "mode": "lines", "fill": "toself", "fillcolor": "rgba(11,92,173,0.06)",
        "line": {"color": "#57606a", "width": 2}, "hoverinfo": "skip", "showlegend": False,
        "name": labels.get("outline", "outline")}]
    for status in ("na", "ok", "warn", "bad"):
        data += _links([lk for lk in links if lk.status == status], status, labels)
    spots = place_labels(cities, sites, lon_range, lat_range)
    ax, ay = label_anchors(cities, spots, lon_range, lat_range)
    data.append({
        "type": "scatter", "x": [c.lon for c in cities], "y": [c.lat for c in cities],
        "mode": "markers", "text": [c.label for c in cities],
        "marker": {"size": 7, "color": "#24292f"}, "name": labels.get("city", "city"),
        "hoverinfo": "text"})
    data.append({
        "type": "scatter", "x": ax, "y": ay, "mode": "text", "text": [c.label for c in cities],
        "textposition": [name for name, _ in spots], "hoverinfo": "skip", "showlegend": False,
        "textfont": {"size": FONT - 2, "color": "#24292f"}, "name": "labels"})
    for kind, symbol in KIND_SYMBOL.items():
        pts = [s for s in sites if s.kind == kind]
        if pts:
            data.append({
                "type": "scatter", "x": [p.lon for p in pts], "y": [p.lat for p in pts],
                "mode": "markers", "text": [p.label for p in pts], "hoverinfo": "text",
                "name": labels.get(kind, kind),
                "marker": {"symbol": symbol, "size": 20 if "star" in symbol else 12,
                           "color": "#d4a72c" if kind == "exchange_point" else "#0b5cad",
                           "line": {"width": 1.5, "color": "#24292f"}}})
    mid = math.radians((lat_range[0] + lat_range[1]) / 2)
    return _fig(data, height=700, margin={"l": 10, "r": 10, "t": 10, "b": 10}, dragmode="pan",
                xaxis={"range": list(lon_range), "visible": False, "constrain": "domain"},
                yaxis={"range": list(lat_range), "visible": False, "scaleanchor": "x",
                       "scaleratio": 1 / math.cos(mid), "constrain": "domain"},
                legend={"orientation": "v", "y": 0.02, "x": 0.01, "yanchor": "bottom",
                        "bgcolor": "rgba(255,255,255,0.85)", "font": {"size": FONT - 2}})


MAP_HEIGHT_PX = 700
# Where a label may sit around its point: (plotly textposition, x and y direction).
LABEL_SPOTS = (("bottom center", 0, -1), ("top center", 0, 1), ("middle right", 1, 0),
               ("middle left", -1, 0), ("bottom right", 1, -1), ("top right", 1, 1),
               ("bottom left", -1, -1), ("top left", -1, 1))
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


def _box_at(p: MapPoint, spot: tuple[str, int, int], width: float, height: float, gap: float,
            scale: tuple[float, float]) -> Box:
    sx, sy = scale
    cx, cy = p.lon * sx, p.lat * sy
    _, dx, dy = spot
    x0 = cx - width / 2 if dx == 0 else (cx + gap if dx > 0 else cx - gap - width)
    y0 = cy - height / 2 if dy == 0 else (cy + gap if dy > 0 else cy - gap - height)
    return (x0, y0, x0 + width, y0 + height)


def _overlap(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


MAP_MIN_WIDTH_PX = 600  # the narrowest plot area the overview's map column gives


def map_scale(lon_range: tuple[float, float], lat_range: tuple[float, float],
              height_px: int = MAP_HEIGHT_PX - 20,
              width_px: int = MAP_MIN_WIDTH_PX) -> tuple[float, float]:
    """Pixels per degree of longitude and latitude at the map's smallest drawing: the axes
    keep the 1/cos(mid-latitude) aspect, so the scale is set by the height or, in a narrow
    column, by the width (labels are then relatively larger: placing them there is safe for
    every wider drawing too)."""
    aspect = math.cos(math.radians(sum(lat_range) / 2))
    per_lat = min(height_px / (lat_range[1] - lat_range[0]),
                  width_px / (lon_range[1] - lon_range[0]) / aspect)
    return per_lat * aspect, per_lat


def place_labels(points: Sequence[MapPoint], obstacles: Sequence[MapPoint],
                 lon_range: tuple[float, float], lat_range: tuple[float, float],
                 font_px: float = FONT - 2) -> list[tuple[str, float]]:
    """A (textposition, gap in px) per point so that no two labels overlap and no label
    covers a point or a site marker, greedily: the most crowded point first, each at the first
    free spot of :data:`LABEL_SPOTS`, close (7 px) or, past a big marker such as a hub's star
    drawn on the point, farther (16 px); the least covered spot when none is free."""
    scale = map_scale(lon_range, lat_range)
    x0, y0 = lon_range[0] * scale[0], lat_range[0] * scale[1]
    x1, y1 = lon_range[1] * scale[0], lat_range[1] * scale[1]
    marks: list[Box] = []
    for o in [*points, *obstacles]:
        cx, cy = o.lon * scale[0], o.lat * scale[1]
        r = 6.0 if o.kind == "city" else 12.0
        marks.append((cx - r, cy - r, cx + r, cy + r))

    def crowd(p: MapPoint) -> float:
        return -sum(1 for q in points if q is not p and abs(q.lon - p.lon) < 0.6 and
                    abs(q.lat - p.lat) < 0.4)

    placed: list[Box] = []
    out: dict[int, tuple[str, float]] = {}
    for i in sorted(range(len(points)), key=lambda i: crowd(points[i])):
        p = points[i]
        width = sum(font_px if ord(ch) > 0x2E80 else 0.55 * font_px for ch in p.label)
        best: tuple[float, str, float, Box] | None = None
        for gap in LABEL_GAPS:
            for spot in LABEL_SPOTS:
                box = _box_at(p, spot, width, font_px * 1.2, gap, scale)
                inside = _overlap(box, (x0, y0, x1, y1))
                cost = sum(_overlap(box, b) for b in [*placed, *marks]) + \
                    (box[2] - box[0]) * (box[3] - box[1]) - inside  # outside the plot: clipped
                if best is None or cost < best[0]:
                    best = (cost, spot[0], gap, box)
                if cost == 0:
                    break
            if best is not None and best[0] == 0:
                break
        assert best is not None
        placed.append(best[3])
        out[i] = (best[1], best[2])
    return [out[i] for i in range(len(points))]


LABEL_GAPS = (7.0, 16.0)


def label_anchors(points: Sequence[MapPoint], spots: Sequence[tuple[str, float]],
                  lon_range: tuple[float, float], lat_range: tuple[float, float]
                  ) -> tuple[list[float], list[float]]:
    """Where each label's text trace is anchored: the point moved by its gap in its spot's
    direction (degrees at the map's smallest scale, so at least that many pixels when
    drawn larger)."""
    sx, sy = map_scale(lon_range, lat_range)
    direction = {name: (dx, dy) for name, dx, dy in LABEL_SPOTS}
    xs, ys = [], []
    for p, (name, gap) in zip(points, spots, strict=True):
        dx, dy = direction[name]
        xs.append(p.lon + dx * (gap - 3) / sx)
        ys.append(p.lat + dy * (gap - 3) / sy)
    return xs, ys


def _links(links: Sequence[MapLink], status: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    if not links:
        return []
    x: list[float | None] = []
    y: list[float | None] = []
    for lk in links:
        x += [lk.lon[0], lk.lon[1], None]
        y += [lk.lat[0], lk.lat[1], None]
    return [{"type": "scatter", "x": x, "y": y, "mode": "lines", "hoverinfo": "skip",
             "name": labels.get(f"link_{status}", status), "opacity": 0.8,
             "line": {"color": COLORS[status], "width": 3 if status == "bad" else 2}}]


# --- matrix ---------------------------------------------------------------------------------


def _fmt(v: float | None, stat: str) -> str:
    if v is None:
        return "–"
    if stat == "ratio":
        return f"{v:.2f}x"
    return f"{v * 100:.2f}%" if stat == "loss_ratio" else f"{v:.2f}"


def heatmap_figure(m: Matrix, which: str, title: str, row_labels: Sequence[str],
                   col_labels: Sequence[str], x_title: str, y_title: str,
                   target: float | None = None, target_name: str = "",
                   in_scope: Sequence[Sequence[bool]] | None = None) -> go.Figure:
    """One of the matrix's three grids: ``which`` is "baseline", "current" or "change".
    Cell ``customdata`` carries ``"row|column"`` ids so a click can open the path page.

    The change grid is coloured against ``target`` (the policy threshold on the ratio, e.g.
    0.2 for "down by 80 %"): diverging at the target, green below it (meets), red above it,
    on a log scale so 0.1x and 10x are as far from 1x. Without a target it diverges at 1.0
    (no change). Cells outside the target's scope (``in_scope`` false, e.g. intra-carrier
    pairs of an inter-carrier target) are grey: the target says nothing about them."""
    z = {"baseline": m.baseline, "current": m.current, "change": m.change}[which]
    stat = "ratio" if which == "change" else m.statistic
    heat: dict[str, Any] = {
        "type": "heatmap", "z": z, "x": list(col_labels), "y": list(row_labels),
        "text": [[_fmt(v, stat) for v in row] for row in z], "texttemplate": "%{text}",
        "textfont": {"size": FONT}, "customdata": [[pair_key(r, c) for c in m.cols]
                                                   for r in m.rows],
        "colorscale": "Blues", "hoverongaps": False,
        "hovertemplate": "%{y} → %{x}: %{text}<extra></extra>", "xgap": 3, "ygap": 3}
    traces: list[dict[str, Any]] = [heat]
    if which == "change":
        mid = target if target else 1.0
        heat.update(change_colours(z, mid))
        heat["colorbar"] = {"title": {"text": target_name or f"{mid:g}x"},
                            "tickvals": [math.log10(mid)], "ticktext": [f"{mid:g}x"]}
        if target and in_scope is not None:
            out = [[not ok for ok in row] for row in in_scope]
            heat["z"] = [[v if ok else None for v, ok in zip(row, oks, strict=True)]
                         for row, oks in zip(heat["z"], in_scope, strict=True)]
            traces.insert(0, {**heat, "z": [[0.0 if o else None for o in row] for row in out],
                              "colorscale": [[0, "#d0d7de"], [1, "#d0d7de"]],
                              "showscale": False, "zmid": None, "zmin": 0, "zmax": 1})
    return _fig(traces, title, xaxis={"title": {"text": x_title}, "type": "category"},
                yaxis={"title": {"text": y_title}, "autorange": "reversed",
                       "type": "category"})


def change_colours(z: Sequence[Sequence[float | None]], mid: float) -> dict[str, Any]:
    """Heatmap colour settings for ratios: log10 of each ratio (the text shows the ratio
    itself), a green-to-red scale whose middle is ``mid``, symmetric around it."""
    logs = [[math.log10(v) if v else None for v in row] for row in z]
    centre = math.log10(mid)
    spread = max([abs(v - centre) for row in logs for v in row if v is not None] + [0.3])
    return {"z": logs, "colorscale": "RdYlGn_r", "zmid": centre,
            "zmin": centre - spread, "zmax": centre + spread}


# --- path -----------------------------------------------------------------------------------


def rtt_figure(cur: Series, base_median: float | None, base_p95: float | None,
               target: float | None, labels: dict[str, str],
               bucket: str = "hour", *, tz: str) -> go.Figure:
    """Median and p95 RTT per bucket, the baseline band (median..p95) and the target line."""
    x = _times(cur.t_ns, tz)
    data: list[dict[str, Any]] = []
    if base_median is not None and base_p95 is not None and x:
        data.append({"type": "scatter", "x": [x[0], x[-1], x[-1], x[0]],
                     "y": [base_median, base_median, base_p95, base_p95], "fill": "toself",
                     "fillcolor": "rgba(140,149,159,0.25)", "mode": "lines",
                     "line": {"width": 0}, "name": labels["baseline_band"],
                     "hoverinfo": "skip"})
    data.append({"type": "scatter", "x": x, "y": cur.median_ms, "mode": "lines+markers",
                 "name": labels["median"], "line": {"color": COLORS["current"], "width": 3}})
    data.append({"type": "scatter", "x": x, "y": cur.p95_ms, "mode": "lines",
                 "name": labels["p95"],
                 "line": {"color": COLORS["p95"], "width": 2, "dash": "dot"}})
    shapes = [] if target is None else [_hline(target, COLORS["target"],
                                               labels["target_line"])]
    return _fig(data, labels["title"], shapes=shapes, xaxis=time_axis(bucket, len(x)),
                yaxis={"title": {"text": "ms"}, "rangemode": "tozero"})


def loss_figure(cur: Series, base_loss: float | None, target: float | None,
                labels: dict[str, str], bucket: str = "hour", *, tz: str) -> go.Figure:
    """Loss ratio per bucket (RFC 7680 §4.1), in percent, with baseline and target lines."""
    pct = [None if v is None else v * 100 for v in cur.loss]
    bars = {"type": "bar", "x": _times(cur.t_ns, tz), "y": pct, "name": labels["current"],
            "marker": {"color": COLORS["current"]}}
    shapes = []
    if base_loss is not None:
        shapes.append(_hline(base_loss * 100, COLORS["baseline"], labels["baseline"], "solid"))
    if target is not None:
        shapes.append(_hline(target * 100, COLORS["target"], labels["target_line"],
                             bottom=True))
    return _fig([bars], labels["title"], shapes=shapes, xaxis=time_axis(bucket, len(cur.t_ns)),
                yaxis={"title": {"text": "%"}, "rangemode": "tozero"})


def cdf_figure(before: tuple[Sequence[float], Sequence[float]],
               after: tuple[Sequence[float], Sequence[float]],
               labels: dict[str, str]) -> go.Figure:
    """Empirical CDFs of the delay before and after (sketch bucket values, log x axis)."""
    data = [{"type": "scatter", "x": list(xs), "y": list(ys), "mode": "lines", "name": name,
             "line": {"shape": "hv", "color": color, "width": 3}}
            for (xs, ys), name, color in ((before, labels["before"], COLORS["baseline"]),
                                          (after, labels["after"], COLORS["current"]))]
    return _fig(data, labels["title"], xaxis={"title": {"text": "ms"}, "type": "log"},
                yaxis={"title": {"text": labels["cdf"]}, "range": [0, 1.02]})


def owd_figure(cur: Series, labels: dict[str, str], bucket: str = "hour",
               target: float | None = None, *, tz: str) -> go.Figure:
    """Median one-way delay each way per bucket, each with a band of +- the clock-error bound
    (RFC 7679 §3.7.3; a clock domain's relative bound where the path has one). The y axis
    follows the data (and the target), never the band: a bound larger than the data's
    scale (unsynchronised clocks: seconds) is drawn off scale and named in the legend."""
    x = _times(cur.t_ns, tz)
    err = [e or 0.0 for e in cur.clock_error_ms]
    values = [v for ys in (cur.fwd_ms, cur.bwd_ms) for v in ys if v is not None]
    top = max([*values, target or 0.0, 0.1]) * 1.3
    worst = max(err, default=0.0)
    band_name = f"{labels['clock_bound']} ±{_fmt_ms(worst)}" + (
        f" ({labels['off_scale']})" if worst > top else "")
    data: list[dict[str, Any]] = []
    for ys, name, color in ((cur.fwd_ms, labels["forward"], COLORS["current"]),
                            (cur.bwd_ms, labels["backward"], "#8250df")):
        pts = [(t, y, e) for t, y, e in zip(x, ys, err, strict=True) if y is not None]
        if pts:
            data.append({"type": "scatter", "mode": "lines", "hoverinfo": "skip",
                         "x": [p[0] for p in pts] + [p[0] for p in reversed(pts)],
                         "y": [p[1] + p[2] for p in pts] + [p[1] - p[2] for p in reversed(pts)],
                         "fill": "toself", "fillcolor": _rgba(color, 0.15),
                         "line": {"width": 0}, "name": band_name, "legendgroup": "band",
                         "showlegend": color == COLORS["current"]})
        data.append({"type": "scatter", "x": x, "y": ys, "mode": "markers+lines",
                     "name": name, "line": {"color": color, "width": 2}})
    shapes = [] if target is None else [_hline(target, COLORS["target"],
                                               labels.get("target_line", ""))]
    return _fig(data, labels["title"], shapes=shapes, xaxis=time_axis(bucket, len(x)),
                yaxis={"title": {"text": "ms"}, "range": [0, top]})


def _fmt_ms(v: float) -> str:
    return f"{v:.3g} ms" if v < 1000 else f"{v / 1000:.3g} s"


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


# --- probes ---------------------------------------------------------------------------------


def coverage_figure(probe_ids: Sequence[str], coverage: Sequence[float],
                    statuses: Sequence[str], title: str) -> go.Figure:
    """Share of the window's hours with data, per probe, coloured by health."""
    color = {"ok": COLORS["ok"], "late": COLORS["INCONCLUSIVE"], "silent": COLORS["bad"],
             "unknown": COLORS["na"]}
    bars = {"type": "bar", "x": [c * 100 for c in coverage], "y": list(probe_ids),
            "orientation": "h",
            "marker": {"color": [color.get(s, COLORS["na"]) for s in statuses]}}
    return _fig([bars], title, height=max(360, 26 * len(probe_ids) + 120),
                xaxis={"title": {"text": "%"}, "range": [0, 100]},
                yaxis={"autorange": "reversed", "tickfont": {"size": FONT - 4}})
