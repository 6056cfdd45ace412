"""Overview: every policy target with its verdict, ratio and CI and the trend of the verdict row
that sets its badge (at the window's resolution), the live inter-carrier chart of short
windows, and the map. Live (``--live``), a timer re-renders it when a new minute is in."""

from __future__ import annotations

import logging
from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from analyzer import views
from analyzer.views import RollupIndex, VerdictRow
from dashboard import context, geo, ids
from dashboard.common import badge, graph, targets_on
from dashboard.figures import MapLink, MapPoint, live_figure, map_figure, trend_figure
from dashboard.i18n import name, reason, t
from inventory.schema import PolicyTarget
from inventory.topology import Topology

dash.register_page(__name__, path="/", name="overview", order=0)  # type: ignore[no-untyped-call]


log = logging.getLogger(__name__)


LIVE_TICK_MS = 15_000  # how often a live page asks whether a new minute is in


def layout(**kwargs: Any) -> html.Div:
    live = context.get().live
    body = html.Div(id=ids.OV_BODY)
    return html.Div([
        dcc.Interval(id=ids.OV_TICK, interval=LIVE_TICK_MS, disabled=not live),
        dcc.Store(id=ids.OV_GEN),
        body if live else dcc.Loading(body),  # live: the last minute stays up while redrawn
    ], className="page")


@callback(Output(ids.OV_BODY, "children"), Output(ids.OV_GEN, "data"),
          Input(ids.LANG, "data"), Input(ids.OV_TICK, "n_intervals"), State(ids.OV_GEN, "data"))
def render(lang: str, _tick: int | None, shown: list[Any] | None) -> tuple[Any, Any]:
    ctx = context.get()
    stamp = [lang, ctx.generation()]
    if _tick and shown == stamp:
        return no_update, no_update  # the timer fired, but no new minute is in
    error = None
    with ctx.lock:
        base, cur = ctx.base_index(), ctx.cur_index()
        try:
            rows = ctx.verdicts()
        except Exception as exc:  # the page still shows the map and trends; say why not verdicts
            log.exception("evaluation failed")
            rows, error = [], f"{t('eval_failed', lang)}: {type(exc).__name__}: {exc}"
        cards = [_target_card(tg, [r for r in rows if r.target_id == tg.id], lang)
                 for tg in ctx.topo.inv.policy_targets]
        fig, map_note = province_map(ctx.topo, cur, base, lang)
        live = _live_chart(ctx, lang)
    return [
        *live,
        html.Div([html.H2(t("targets", lang)),
                  *([html.P(error, className="bad")] if error else []),
                  html.Div(cards, id=ids.OV_TARGETS, className="cards")],
                 className="col-targets"),
        html.Div([html.H2(t("map", lang)), graph(ids.OV_MAP, fig, style={"height": "700px"}),
                  html.P(map_note, className="note")], className="col-map"),
    ], stamp


def _live_chart(ctx: context.Context, lang: str) -> list[Any]:
    """Inter-carrier median RTT and loss minute by minute (windows up to 6 hours): the
    current store's and, when the baseline has a store of its own over the same window,
    the baseline's (the demo's two copies of the network)."""
    if views.display_bucket(ctx.current) != "minute":
        return []
    cur, base = ctx.live_minutes()
    labels = {k: t(k, lang) for k in ("live_title", "live_rtt", "live_loss", "baseline",
                                      "current", "baseline_net", "current_net")}
    fig = live_figure(cur, base, labels, tz=ctx.tz)
    note = t("live_note" if ctx.live else "minute_note", lang)
    return [html.Div([html.H2(labels["live_title"]),
                      graph(ids.OV_LIVE, fig, style={"height": "420px"}),
                      html.P(note, className="note")], className="col-live")]


def _target_card(tg: PolicyTarget, rows: list[VerdictRow], lang: str) -> html.Div:
    verdict = views.overall(rows)
    head = views.headline(rows)
    absolute = tg.comparison.kind == "absolute"
    unit = " ms" if absolute else ""
    threshold = tg.comparison.threshold
    if head is not None:
        est = f"{head.estimate:.3f}{unit}" if head.estimate is not None else "–"
        ci = f"[{head.ci_low or 0:.3f}, {head.ci_high or 0:.3f}]{unit}"
        detail = f"{t('value' if absolute else 'ratio', lang)} {est} · {t('ci', lang)} {ci}"
        group = f"{t('deciding_group', lang)}: {head.group} · {head.type_p}"
        why = reason(head.gate, lang)
    else:
        detail = t("NOT_EVALUABLE", lang)
        group = ""
        why = reason(rows[0].gate, lang) if rows else ""
    counts = " · ".join(f"{t(v, lang)} {sum(r.verdict == v for r in rows)}"
                        for v in (views.PASS, views.FAIL, views.INCONCLUSIVE,
                                  views.NOT_EVALUABLE) if any(r.verdict == v for r in rows))
    c = context.get()
    ts, vs = c.trend(tg.id)
    y_title = t(tg.statistic, lang) if absolute else t("ratio", lang)
    fig = trend_figure(ts, vs, threshold, y_title, f"{t('threshold', lang)} {threshold:g}{unit}",
                       verdict, views.display_bucket(c.current), tz=c.tz)
    trend_of = (f"{t('trend_of', lang)} {head.group} · {head.type_p}" if head is not None
                else t("trend_pooled", lang))
    return html.Div([
        html.Div([badge(verdict, lang), html.H3(name(tg.name, lang))], className="card-head"),
        html.P(detail, className="big"),
        html.P(f"{group} · {t('threshold', lang)} {threshold:g}{unit} · {counts}",
               className="small"),
        html.P(why, className="small reason"),
        html.P(trend_of, className="small"),
        graph({"type": "ov-trend", "id": tg.id}, fig, style={"height": "220px"},
              config={"displayModeBar": False, "topojsonURL": "/assets/topojson/"}),
    ], className="card", id=f"card-{tg.id}")


def _latency_theta(topo: Topology) -> float:
    """The threshold of the first relative target on median RTT (1 without one)."""
    on = targets_on(topo, "relative", "rtt_median")
    return on[0].comparison.threshold if on else 1.0


# Beyond this many measured site pairs the map draws one link per city pair: the seed's 19
# sites give at most 171 site pairs, each worth a line; a province's 128 give thousands, an
# unreadable mesh and the bulk of the first page (0.66 s against 0.08 s; docs/dashboard.md).
MAP_SITE_PAIRS_MAX = 300


def link_status(ratios: list[float | None], theta: float) -> str:
    """A link's colour from the median-RTT ratios (current/baseline) of its inter-carrier
    paths against the latency target ``theta``: "ok" when all meet it, "bad" when none does,
    "warn" when some do, "na" without a ratio (no inter-carrier path or no baseline)."""
    known = [r for r in ratios if r is not None]
    return ("na" if not known else "ok" if max(known) <= theta
            else "bad" if min(known) > theta else "warn")


def map_links(topo: Topology, cur: RollupIndex, base: RollupIndex
              ) -> tuple[str, list[MapLink]]:
    """("site" or "city", the links): the measured links of the current window, per site pair,
    or per city pair when there are more than :data:`MAP_SITE_PAIRS_MAX` site pairs (paths
    within one city are then not drawn: a city is a point). Each is coloured by
    :func:`link_status` over its ICMP paths."""
    theta = _latency_theta(topo)
    by_key = views.key_ratios(base, cur, "rtt_median")
    by_sites: dict[tuple[str, str], list[float | None]] = {}
    for i, key in enumerate(cur.keys):
        e = cur.ends(i)
        if key[1] != "icmp" or e.src_site == e.dst_site:
            continue
        ratio = by_key[key] if e.src_carrier != e.dst_carrier else None
        by_sites.setdefault((min(e.src_site, e.dst_site), max(e.src_site, e.dst_site)),
                            []).append(ratio)
    per, where = "site", {sid: (s.lon or 0, s.lat or 0) for sid, s in topo.sites.items()}
    pairs = by_sites
    if len(by_sites) > MAP_SITE_PAIRS_MAX:
        per = "city"
        where = {cid: (c.lon, c.lat) for cid, c in topo.cities.items()}
        pairs = {}
        for (a, b_), ratios in by_sites.items():
            ca, cb = topo.sites[a].city, topo.sites[b_].city
            if ca != cb:
                pairs.setdefault((min(ca, cb), max(ca, cb)), []).extend(ratios)
    return per, [MapLink((where[a][0], where[b_][0]), (where[a][1], where[b_][1]),
                         link_status(ratios, theta), f"{a}–{b_}")
                 for (a, b_), ratios in sorted(pairs.items())]


def province_map(topo: Topology, cur: RollupIndex, base: RollupIndex, lang: str
                 ) -> tuple[Any, str]:
    """The map (outlines, cities, sites and the measured links of :func:`map_links` in the
    frame of the inventory's outlines, cities and sites) and its note, which says what a link
    stands for."""
    sites = [MapPoint(name(s.name, lang), s.kind.value, s.lon or 0, s.lat or 0)
             for s in topo.sites.values()]
    cities = [MapPoint(name(c.name, lang), "city", c.lon, c.lat) for c in topo.inv.cities]
    labels = {k: t(k, lang) for k in ("city", "data_centre", "exchange_point",
                                      "computing_centre", "hub", "edge", "link_ok",
                                      "link_warn", "link_bad", "link_na")}
    lon_range, lat_range = geo.inventory_frame(topo.inv)
    per, links = map_links(topo, cur, base)
    fig = map_figure(geo.outlines(topo.inv), cities, sites, links, lon_range, lat_range, labels)
    return fig, f"{t('map_per_' + per, lang)} · {t('map_note', lang)}"
