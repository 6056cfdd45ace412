"""Path: RTT (median, p95) and loss over time with the baseline band and the target line, the
delay distribution before and after, one-way delays with their clock error, and the latest
traceroute with whether it crosses the exchange point. The URL carries the selection
(``?by=carrier&src=CT&dst=CM`` from the matrix, or ``?path=<path id>``)."""

from __future__ import annotations

from typing import Any

import dash
import plotly.graph_objects as go
from dash import Input, Output, State, callback, dcc, html

from analyzer import views
from analyzer.views import RollupIndex
from dashboard import context, ids
from dashboard.common import fmt_value, graph, path_label, site_label, table, targets_on
from dashboard.figures import cdf_figure, loss_figure, owd_figure, rtt_figure
from dashboard.i18n import LANGS, t
from inventory.topology import PathEnds, Topology

dash.register_page(__name__, path="/path", name="path", order=2)  # type: ignore[no-untyped-call]


MAX_OPTIONS = 100  # a province has 15,000 paths: the list offers matches of what is typed


def layout(by: str | None = None, src: str | None = None, dst: str | None = None,
           path: str | None = None, **kwargs: Any) -> html.Div:
    c = context.get()
    cur = c.cur_index()
    if by in ("carrier", "city") and src and dst:
        paths = views.paths_of_cell(c.topo, cur, by, src, dst)
    else:
        paths = sorted({k[0] for k in cur.keys})
    value = path if path in paths else (paths[0] if paths else None)
    return html.Div([
        dcc.Store(id="pa-paths", data=paths if len(paths) <= MAX_OPTIONS else None),
        html.Div([html.Label(id="pa-select-label"),
                  dcc.Dropdown(id=ids.PA_SELECT, options=[value] if value else [], value=value,
                               clearable=False, className="control dd xwide")],
                 className="controls"),
        dcc.Loading(html.Div(id=ids.PA_BODY)),
    ], className="page")


@callback(Output("pa-select-label", "children"), Output(ids.PA_SELECT, "options"),
          Input(ids.LANG, "data"), Input("pa-paths", "data"),
          Input(ids.PA_SELECT, "search_value"), State(ids.PA_SELECT, "value"))
def _labels(lang: str, values: list[str] | None, search: str | None = None,
            value: str | None = None) -> tuple[str, list[dict[str, str]]]:
    """The paths offered: a cell's (from the matrix), or of all paths the first
    :data:`MAX_OPTIONS` whose id or names hold every word typed (and the one shown)."""
    c = context.get()
    if values is None:
        words = (search or "").lower().split()
        values = [value] if value else []
        for pid, hay in _searchable(c):
            if len(values) > MAX_OPTIONS:
                break
            if pid != value and all(w in hay for w in words):
                values.append(pid)
    return t("select_path", lang), [{"label": path_label(c.topo, v, lang), "value": v}
                                    for v in values]


def _searchable(c: context.Context) -> list[tuple[str, str]]:
    """Every path id with its id, its ends' names and cities in both languages, lower case
    (once per data refresh, in the index's cache)."""
    cur = c.cur_index()
    if "path search" not in cur.cache:
        words: dict[str, str] = {}
        for i, key in enumerate(cur.keys):
            e = cur.ends(i)
            cities = [city.name for city in (c.topo.city_of(e.src_site),
                                             c.topo.city_of(e.dst_site)) if city]
            words[key[0]] = " ".join([key[0], *(path_label(c.topo, key[0], lg) for lg in LANGS),
                                      *(n.zh + " " + n.en for n in cities)]).lower()
        cur.cache["path search"] = sorted(words.items())
    out: list[tuple[str, str]] = cur.cache["path search"]
    return out


def _targets(topo: Topology, path_id: str) -> dict[str, float]:
    """Thresholds of the relative policy targets whose scope holds this path, by statistic
    (the first target of each statistic)."""
    out: dict[str, float] = {}
    for tg in targets_on(topo, "relative", "", PathEnds.parse(path_id)):
        out.setdefault(tg.statistic, tg.comparison.threshold)
    return out


@callback(Output(ids.PA_BODY, "children"), Input(ids.PA_SELECT, "value"),
          Input(ids.LANG, "data"))
def render(path_id: str | None, lang: str) -> list[Any]:
    c = context.get()
    if not path_id:
        return [html.P(t("no_paths", lang), className="big")]
    with c.lock:
        base, cur = c.base_index(), c.cur_index()
        route = views.latest_route(c.store, c.topo, path_id, c.current)
    bucket = views.display_bucket(c.current)
    return [
        html.H2(path_label(c.topo, path_id, lang), id=ids.PA_HEADER),
        html.Div([
            graph(ids.PA_RTT, _rtt(c.topo, base, cur, path_id, bucket, lang)),
            graph(ids.PA_LOSS, _loss(c.topo, base, cur, path_id, bucket, lang)),
            graph(ids.PA_CDF, _cdf(base, cur, path_id, lang)),
            graph(ids.PA_OWD, _owd(c.topo, cur, path_id, bucket, lang)),
        ], className="grid2"),
        html.Div(_route(c.topo, route, lang, c.tz), id=ids.PA_ROUTE),
    ]


def _labels_for(lang: str, title: str) -> dict[str, str]:
    keys = ("baseline_band", "median", "p95", "target_line", "baseline", "current", "before",
            "after", "cdf", "forward", "backward", "clock_bound", "off_scale")
    return {"title": t(title, lang), **{k: t(k, lang) for k in keys}}


def _rtt(topo: Topology, base: RollupIndex, cur: RollupIndex, path_id: str, bucket: str,
         lang: str) -> go.Figure:
    keys = views.path_keys(cur, path_id, "icmp")
    b = base.group_total(views.path_keys(base, path_id, "icmp"))
    bm = views.statistic(b, "rtt_median") if b else None
    bp = views.statistic(b, "rtt_p95") if b else None
    theta = _targets(topo, path_id).get("rtt_median")
    target = bm * theta if bm is not None and theta is not None else None
    return rtt_figure(views.series(cur, keys, bucket), bm, bp, target,
                      _labels_for(lang, "rtt_series"), bucket, tz=cur.tz)


def _loss(topo: Topology, base: RollupIndex, cur: RollupIndex, path_id: str, bucket: str,
          lang: str) -> go.Figure:
    keys = views.path_keys(cur, path_id, "icmp")
    b = base.group_total(views.path_keys(base, path_id, "icmp"))
    bl = views.statistic(b, "loss_ratio") if b else None
    theta = _targets(topo, path_id).get("loss_ratio")
    target = bl * theta if bl is not None and theta is not None else None
    return loss_figure(views.series(cur, keys, bucket), bl, target,
                       _labels_for(lang, "loss_series"), bucket, tz=cur.tz)


def _cdf(base: RollupIndex, cur: RollupIndex, path_id: str, lang: str) -> go.Figure:
    b = base.group_total(views.path_keys(base, path_id, "icmp"))
    a = cur.group_total(views.path_keys(cur, path_id, "icmp"))
    empty: tuple[list[float], list[float]] = ([], [])
    return cdf_figure(views.distribution(b) if b else empty,
                      views.distribution(a) if a else empty, _labels_for(lang, "delay_dist"))


def _owd(topo: Topology, cur: RollupIndex, path_id: str, bucket: str, lang: str) -> go.Figure:
    limits = [tg.comparison.threshold for tg in
              targets_on(topo, "absolute", "owd", PathEnds.parse(path_id))
              if tg.comparison.threshold_unit == "ms"]
    return owd_figure(views.owd_series(cur, topo, path_id, bucket), _labels_for(lang, "owd"),
                      bucket, min(limits) if limits else None, tz=cur.tz)


def _route(topo: Topology, route: views.Route | None, lang: str, tz: str) -> list[Any]:
    head = html.H3(t("route", lang))
    if route is None:
        return [head, html.P(t("no_route", lang))]
    verdict = t("crosses_ixp" if route.crosses_exchange else "not_crosses_ixp", lang)
    sites = ", ".join(site_label(topo, s, lang) for s in route.exchange_sites)
    rows = [[h.ttl, h.addr or "*", fmt_value(h.rtt_ms, "rtt"), h.carrier or "",
             site_label(topo, h.site, lang) if h.site else ""] for h in route.hops]
    when = views.local_label(route.sent_at_ns, tz)
    return [head, html.P(f"{verdict}{': ' + sites if sites else ''} · {when}",
                         className="big " + ("good" if route.crosses_exchange else "bad")),
            table([t("hop", lang), t("address", lang), "RTT (ms)", t("carrier", lang),
                   t("site", lang)], rows, "pa-route-table")]

