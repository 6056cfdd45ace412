"""Probes: health (last heartbeat), spool depth, batches set aside and data coverage per probe
(``Store.probe_health()`` and the current window's rollups)."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, callback, dcc, html

from analyzer import views
from dashboard import context, ids
from dashboard.common import carrier_label, graph, site_label, table
from dashboard.figures import COLORS, coverage_figure
from dashboard.i18n import t

dash.register_page(__name__, path="/probes", name="probes", order=3)  # type: ignore[no-untyped-call]


def layout(**kwargs: Any) -> html.Div:
    return html.Div(dcc.Loading(html.Div(id=ids.PR_BODY)), className="page")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _set_aside(r: views.ProbeRow, lang: str) -> Any:
    """Batches (results) the probe set aside as never acceptable; highlighted when any."""
    if r.last_seen_ns is None:
        return "–"
    if not r.set_aside_batches:
        return "0"
    return html.Span(f"{r.set_aside_batches} ({r.set_aside_results})", className="set-aside",
                     title=t("set_aside_hint", lang),
                     style={"color": COLORS["bad"], "fontWeight": "bold"})


@callback(Output(ids.PR_BODY, "children"), Input(ids.LANG, "data"))
def render(lang: str) -> list[Any]:
    c = context.get()
    with c.lock:
        rows = views.probe_rows(c.store, c.topo, c.cur_index(), c.now_ns())
    body = [[r.probe_id, site_label(c.topo, r.site, lang), carrier_label(c.topo, r.carrier, lang),
             html.Span(t(r.status, lang), className=f"st st-{r.status}"),
             (views.local_label(r.last_seen_ns, c.tz) + f" ({_age(r.age_s)})") if r.last_seen_ns
             else "–", "–" if r.spool_depth is None else r.spool_depth, _set_aside(r, lang),
             r.results, f"{r.coverage * 100:.0f}%", r.version or "–"] for r in rows]
    header = [t(k, lang) for k in ("probe", "site", "carrier", "status", "last_seen",
                                   "spool_depth", "set_aside", "results", "coverage",
                                   "version")]
    fig = coverage_figure([r.probe_id for r in rows], [r.coverage for r in rows],
                          [r.status for r in rows], t("coverage", lang))
    return [html.H2(t("probes", lang)), table(header, body, ids.PR_TABLE),
            graph(ids.PR_COVERAGE, fig)]
