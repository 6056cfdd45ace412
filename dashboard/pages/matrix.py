"""Matrix: carrier x carrier (3 x 3) and city x city (the inventory's cities) heat-maps of
latency and loss (baseline, current, change), each cell the analyzer's statistic of every path
of the pair merged. Clicking a cell lists its paths below (sortable, with a search box over
site, carrier, city and path id, in both languages); clicking a row opens the path page."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import dash
import dash_ag_grid as dag
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from analyzer import views
from dashboard import context, ids
from dashboard.common import carrier_label, city_label, graph, site_label, targets_on
from dashboard.figures import heatmap_figure
from dashboard.i18n import DEFAULT_LANG, t
from inventory.topology import Topology, split_pair

dash.register_page(__name__, path="/matrix", name="matrix", order=1)  # type: ignore[no-untyped-call]

STATS = views.MATRIX_STATISTICS


def layout(by: str = "carrier", stat: str = "rtt_median", **kwargs: Any) -> html.Div:
    stat = stat if stat in STATS else "rtt_median"
    by_options, stat_options, _, _ = _labels(DEFAULT_LANG)
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
        dcc.Store(id=ids.MX_CELL),
        html.Div([
            html.H2(id=ids.MX_DRILL_HEAD),
            dcc.Input(id=ids.MX_SEARCH, type="search", debounce=True, className="search",
                      placeholder=""),
            dag.AgGrid(id=ids.MX_PATHS, rowData=[], columnDefs=[],
                       getRowId="params.data.id", columnSize="autoSize",
                       defaultColDef={"sortable": True, "resizable": True},
                       dashGridOptions={"pagination": True, "paginationPageSize": 25,
                                        "paginationPageSizeSelector": [25, 100, 500],
                                        "domLayout": "autoHeight", "animateRows": False},
                       style={"height": None}, className="ag-theme-alpine"),
        ], id=ids.MX_DRILL, className="drill"),
    ], className="page")


@callback(Output(ids.MX_BY, "options"), Output(ids.MX_STAT, "options"),
          Output("mx-hint", "children"), Output(ids.MX_SEARCH, "placeholder"),
          Input(ids.LANG, "data"))
def _labels(lang: str) -> tuple[list[dict[str, str]], list[dict[str, str]], str, str]:
    return ([{"label": t("by_carrier", lang), "value": "carrier"},
             {"label": t("by_city", lang), "value": "city"}],
            [{"label": t(s, lang), "value": s} for s in STATS], t("click_cell", lang),
            t("search_paths", lang))


@callback(Output(ids.MX_TYPEP, "options"), Output(ids.MX_TYPEP, "value"),
          Input(ids.MX_STAT, "value"))
def _type_ps(stat: str | None) -> tuple[list[str], str | None]:
    c = context.get()
    options = c.cur_index().type_ps(views.statistic_method(stat or "rtt_median"))
    return options, options[0] if options else None


@callback(Output(ids.MX_BASE, "figure"), Output(ids.MX_CUR, "figure"),
          Output(ids.MX_CHANGE, "figure"), Input(ids.MX_BY, "value"),
          Input(ids.MX_STAT, "value"), Input(ids.MX_TYPEP, "value"), Input(ids.LANG, "data"))
def render(by: str, stat: str | None, type_p: str | None, lang: str) -> tuple[Any, Any, Any]:
    c = context.get()
    stat = stat or "rtt_median"
    with c.lock:
        m = views.matrix(c.topo, c.base_index(), c.cur_index(), by, stat,
                         views.statistic_method(stat), type_p)
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
            scope = views.cells_in_scope(c.topo, c.cur_index(), m, tg.scope,
                                         views.statistic_method(stat))
    return tuple(heatmap_figure(m, which, f"{t(which + '_short', lang)} · {title}", names,
                                names, *axes, target=theta, target_name=target_name,
                                in_scope=scope)
                 for which in ("baseline", "current", "change"))


def change_target(topo: Any, stat: str) -> tuple[float | None, str | None]:
    """The threshold on current/baseline of the relative policy target on ``stat`` (e.g.
    0.2 for "median RTT down by 80 %"), and its id; (None, None) when no target has one."""
    for tg in targets_on(topo, "relative", stat):
        if tg.statistic == stat:
            return tg.comparison.threshold, tg.id
    return None, None


def _clicked(click: Any) -> tuple[str, str] | None:
    if not click or not click.get("points"):
        return None
    try:
        return split_pair(str(click["points"][0].get("customdata") or ""))
    except ValueError:
        return None


@callback(Output(ids.MX_DRILL_HEAD, "children"), Output(ids.MX_PATHS, "rowData"),
          Output(ids.MX_PATHS, "columnDefs"), Output(ids.MX_CELL, "data"),
          Input(ids.MX_BASE, "clickData"), Input(ids.MX_CUR, "clickData"),
          Input(ids.MX_CHANGE, "clickData"), Input(ids.MX_BY, "value"),
          Input(ids.MX_STAT, "value"), Input(ids.MX_TYPEP, "value"), Input(ids.LANG, "data"),
          Input(ids.MX_SEARCH, "value"), State(ids.MX_CELL, "data"))
def drill(click_b: Any, click_c: Any, click_x: Any, by: str, stat: str | None,
          type_p: str | None, lang: str, search: str | None = None,
          cell: list[str] | None = None) -> tuple[Any, Any, Any, Any]:
    """The clicked cell's paths (the cell is kept while the language, the statistic or the
    search change; a new level forgets it)."""
    trigger = ctx.triggered_id
    clicks = {ids.MX_BASE: click_b, ids.MX_CUR: click_c, ids.MX_CHANGE: click_x}
    picked: tuple[str, str] | None = None
    if trigger in clicks:
        picked = _clicked(clicks[str(trigger)])
    elif cell and len(cell) == 3 and cell[0] == by:
        picked = (cell[1], cell[2])
    if picked is None:
        return t("pick_cell", lang), [], [], None
    head, rows, columns = cell_table(by, *picked, stat or "rtt_median", type_p, lang, search)
    return head, rows, columns, [by, *picked]


def cell_table(by: str, src: str, dst: str, stat: str, type_p: str | None, lang: str,
               search: str | None = None) -> tuple[str, list[dict[str, Any]],
                                                    list[dict[str, Any]]]:
    """A cell's heading, rows and columns: each path's ends, cities and the statistic in both
    windows, filtered by the search words (each must match an id or a name, either
    language)."""
    c = context.get()
    with c.lock:
        rows = views.cell_paths(c.topo, c.base_index(), c.cur_index(), by, src, dst, stat,
                                views.statistic_method(stat), type_p)
    label = carrier_label if by == "carrier" else city_label
    shown = [r for r in rows if _matches(c.topo, r, search)]
    head = (f"{t('cell_paths', lang)}: {label(c.topo, src, lang)} → {label(c.topo, dst, lang)}"
            f" · {t('shown_of', lang).format(shown=len(shown), total=len(rows))}"
            f" · {t('row_opens_path', lang)}")
    return head, [_row(c.topo, r, stat, lang) for r in shown], _columns(stat, lang)


_WORDS = ("path_id", "src_site", "src_carrier", "src_city", "dst_site", "dst_carrier",
          "dst_city")


def _matches(topo: Topology, r: views.CellPath, search: str | None) -> bool:
    if not search or not search.strip():
        return True
    hay = " ".join([r.path_id, r.src_site, r.src_carrier, r.src_city, r.dst_site,
                    r.dst_carrier, r.dst_city,
                    *(f(topo, x, lg) for lg in ("zh", "en")
                      for f, x in ((site_label, r.src_site), (site_label, r.dst_site),
                                   (carrier_label, r.src_carrier),
                                   (carrier_label, r.dst_carrier), (city_label, r.src_city),
                                   (city_label, r.dst_city)))]).lower()
    return all(word in hay for word in search.lower().split())


def _num(v: float | None, stat: str) -> float | None:
    if v is None:
        return None
    return round(v * 100, 4) if stat == "loss_ratio" else round(v, 3)


def _row(topo: Topology, r: views.CellPath, stat: str, lang: str) -> dict[str, Any]:
    return {"id": r.path_id, "path_id": r.path_id,
            "src_site": site_label(topo, r.src_site, lang),
            "src_carrier": carrier_label(topo, r.src_carrier, lang),
            "src_city": city_label(topo, r.src_city, lang),
            "dst_site": site_label(topo, r.dst_site, lang),
            "dst_carrier": carrier_label(topo, r.dst_carrier, lang),
            "dst_city": city_label(topo, r.dst_city, lang),
            "baseline": _num(r.baseline, stat), "current": _num(r.current, stat),
            "change": None if r.change is None else round(r.change, 3), "n": r.samples}


def _columns(stat: str, lang: str) -> list[dict[str, Any]]:
    unit = " (%)" if stat == "loss_ratio" else " (ms)"
    number = {"type": "numericColumn", "cellDataType": "number"}
    return [*({"headerName": t(k, lang), "field": k} for k in _WORDS),
            {"headerName": t("baseline_short", lang) + unit, "field": "baseline", **number},
            {"headerName": t("current_short", lang) + unit, "field": "current", **number},
            {"headerName": t("change_short", lang), "field": "change", **number},
            {"headerName": t("samples", lang), "field": "n", **number}]


@callback(Output(ids.MX_NAV, "href"), Input(ids.MX_PATHS, "cellClicked"),
          prevent_initial_call=True)
def open_path(clicked: dict[str, Any] | None) -> Any:
    """A click on a row of the drill-down opens ``/path?path=<path id>``."""
    if not clicked or not clicked.get("rowId"):
        return no_update
    return "/path?" + urlencode({"path": str(clicked["rowId"])})
