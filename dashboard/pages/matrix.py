"""Matrix: carrier x carrier and city x city heat-maps of latency and loss (baseline, current,
change). Clicking a cell opens the path page with the selection in the URL."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import dash
from dash import Input, Output, callback, ctx, dcc, html, no_update

from analyzer import views
from dashboard import context, ids
from dashboard.common import carrier_label, city_label, graph
from dashboard.figures import heatmap_figure
from dashboard.i18n import DEFAULT_LANG, t

dash.register_page(__name__, path="/matrix", name="matrix", order=1)  # type: ignore[no-untyped-call]

STATS = ("rtt_median", "rtt_p95", "loss_ratio", "owd_median")


def _method(stat: str) -> str:
    return "stamp" if stat.startswith("owd") else "icmp"


def layout(by: str = "carrier", stat: str = "rtt_median", **kwargs: Any) -> html.Div:
    stat = stat if stat in STATS else "rtt_median"
    by_options, stat_options, _ = _labels(DEFAULT_LANG)
    type_ps, type_p = _type_ps(stat)
    return html.Div([
        dcc.Location(id=ids.MX_NAV, refresh="callback-nav"),
        html.Div([
            dcc.RadioItems(id=ids.MX_BY, value=by if by in ("carrier", "city") else "carrier",
                           options=by_options, inline=True, className="control"),
            dcc.Dropdown(id=ids.MX_STAT, value=stat, options=stat_options, clearable=False,
                         className="control dd"),
            dcc.Dropdown(id=ids.MX_TYPEP, value=type_p, options=type_ps, clearable=False,
                         className="control dd wide"),
        ], className="controls"),
        html.P(id="mx-hint", className="note"),
        dcc.Loading(html.Div([
            graph(ids.MX_BASE, {}), graph(ids.MX_CUR, {}), graph(ids.MX_CHANGE, {}),
        ], className="grid3")),
    ], className="page")


@callback(Output(ids.MX_BY, "options"), Output(ids.MX_STAT, "options"),
          Output("mx-hint", "children"), Input(ids.LANG, "data"))
def _labels(lang: str) -> tuple[list[dict[str, str]], list[dict[str, str]], str]:
    return ([{"label": t("by_carrier", lang), "value": "carrier"},
             {"label": t("by_city", lang), "value": "city"}],
            [{"label": t(s, lang), "value": s} for s in STATS], t("click_cell", lang))


@callback(Output(ids.MX_TYPEP, "options"), Output(ids.MX_TYPEP, "value"),
          Input(ids.MX_STAT, "value"))
def _type_ps(stat: str | None) -> tuple[list[str], str | None]:
    c = context.get()
    options = c.cur_index().type_ps(_method(stat or "rtt_median"))
    return options, options[0] if options else None


@callback(Output(ids.MX_BASE, "figure"), Output(ids.MX_CUR, "figure"),
          Output(ids.MX_CHANGE, "figure"), Input(ids.MX_BY, "value"),
          Input(ids.MX_STAT, "value"), Input(ids.MX_TYPEP, "value"), Input(ids.LANG, "data"))
def render(by: str, stat: str | None, type_p: str | None, lang: str) -> tuple[Any, Any, Any]:
    c = context.get()
    stat = stat or "rtt_median"
    with c.lock:
        m = views.matrix(c.topo, c.base_index(), c.cur_index(), by, stat,
                         _method(stat), type_p)
    label = carrier_label if by == "carrier" else city_label
    names = [label(c.topo, x, lang) for x in m.rows]
    axes = (t("destination", lang), t("source", lang))
    title = t(stat, lang)
    theta, target_id = change_target(c.topo, stat)
    target_name = f"{t('threshold', lang)} {theta:g}x" if theta is not None else ""
    scope = None
    if target_id is not None:
        tg = next(x for x in c.topo.inv.policy_targets if x.id == target_id)
        with c.lock:
            scope = views.cells_in_scope(c.topo, c.cur_index(), m, tg.scope, _method(stat))
    return tuple(heatmap_figure(m, which, f"{t(which + '_short', lang)} · {title}", names,
                                names, *axes, target=theta, target_name=target_name,
                                in_scope=scope)
                 for which in ("baseline", "current", "change"))


def change_target(topo: Any, stat: str) -> tuple[float | None, str | None]:
    """The threshold on current/baseline of the relative policy target on ``stat`` (e.g.
    0.2 for "median RTT down by 80 %"), and its id; (None, None) when no target has one."""
    for tg in topo.inv.policy_targets:
        if tg.statistic == stat and tg.comparison.kind == "relative" and tg.comparison.reduction:
            return 1 - tg.comparison.reduction, tg.id
    return None, None


@callback(Output(ids.MX_NAV, "href"), Input(ids.MX_BASE, "clickData"),
          Input(ids.MX_CUR, "clickData"), Input(ids.MX_CHANGE, "clickData"),
          Input(ids.MX_BY, "value"), prevent_initial_call=True)
def open_cell(click_b: Any, click_c: Any, click_x: Any, by: str) -> Any:
    """Navigate to ``/path?by=...&src=...&dst=...`` for the clicked cell."""
    if ctx.triggered_id == ids.MX_BY:
        return no_update
    click = {ids.MX_BASE: click_b, ids.MX_CUR: click_c, ids.MX_CHANGE: click_x}.get(
        str(ctx.triggered_id))
    if not click or not click.get("points"):
        return no_update
    cell = str(click["points"][0].get("customdata") or "")
    if "|" not in cell:
        return no_update
    src, dst = cell.split("|", 1)
    return "/path?" + urlencode({"by": by, "src": src, "dst": dst})
