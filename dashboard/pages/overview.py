"""Overview: every policy target with its verdict, ratio and CI, its daily trend, and the map."""

from __future__ import annotations

import logging
from typing import Any

import dash
from dash import Input, Output, callback, dcc, html

from analyzer import views
from analyzer.views import RollupIndex, VerdictRow
from dashboard import context, geo, ids
from dashboard.common import badge, graph
from dashboard.figures import MapLink, MapPoint, map_figure, trend_figure
from dashboard.i18n import name, t
from inventory.schema import PolicyTarget
from inventory.topology import Topology

dash.register_page(__name__, path="/", name="overview", order=0)  # type: ignore[no-untyped-call]


log = logging.getLogger(__name__)


def layout(**kwargs: Any) -> html.Div:
    return html.Div(dcc.Loading(html.Div(id=ids.OV_BODY)), className="page")


@callback(Output(ids.OV_BODY, "children"), Input(ids.LANG, "data"))
def render(lang: str) -> list[Any]:
    ctx = context.get()
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
        fig = province_map(ctx.topo, cur, base, lang)
    return [
        html.Div([html.H2(t("targets", lang)),
                  *([html.P(error, className="bad")] if error else []),
                  html.Div(cards, id=ids.OV_TARGETS, className="cards")],
                 className="col-targets"),
        html.Div([html.H2(t("map", lang)), graph(ids.OV_MAP, fig, style={"height": "700px"}),
                  html.P(t("map_note", lang), className="note")], className="col-map"),
    ]


def _headline(rows: list[VerdictRow]) -> VerdictRow | None:
    """The group that decides: the highest upper confidence limit (higher is worse for every
    comparison kind: ratio <= theta, value < T, ratio <= at-most)."""
    ev = [r for r in rows if r.ci_high is not None and r.verdict != views.NOT_EVALUABLE]
    return max(ev, key=lambda r: r.ci_high or 0.0) if ev else None


def _target_card(tg: PolicyTarget, rows: list[VerdictRow], lang: str) -> html.Div:
    verdict = views.overall(rows)
    head = _headline(rows)
    absolute = tg.comparison.kind == "absolute"
    unit = " ms" if absolute else ""
    threshold = next((r.threshold for r in rows if r.threshold is not None), _theta(tg))
    if head is not None:
        est = f"{head.estimate:.3f}{unit}" if head.estimate is not None else "–"
        ci = f"[{head.ci_low or 0:.3f}, {head.ci_high or 0:.3f}]{unit}"
        detail = f"{t('value' if absolute else 'ratio', lang)} {est} · {t('ci', lang)} {ci}"
        group = f"{t('group', lang)}: {head.group}"
    else:
        detail, group = t("NOT_EVALUABLE", lang), rows[0].gate if rows else ""
    counts = " · ".join(f"{t(v, lang)} {sum(r.verdict == v for r in rows)}"
                        for v in (views.PASS, views.FAIL, views.INCONCLUSIVE,
                                  views.NOT_EVALUABLE) if any(r.verdict == v for r in rows))
    ts, vs = context.get().trend(tg.id)
    fig = trend_figure(ts, vs, threshold, t(tg.statistic, lang) if absolute else
                       t("ratio", lang), f"{t('threshold', lang)} {threshold:g}{unit}", verdict)
    return html.Div([
        html.Div([badge(verdict, lang), html.H3(name(tg.name, lang))], className="card-head"),
        html.P(detail, className="big"),
        html.P(f"{group} · {t('threshold', lang)} {threshold:g}{unit} · {counts}",
               className="small"),
        graph({"type": "ov-trend", "id": tg.id}, fig, style={"height": "220px"},
              config={"displayModeBar": False, "topojsonURL": "/assets/topojson/"}),
    ], className="card", id=f"card-{tg.id}")


def _theta(tg: PolicyTarget) -> float:
    c = tg.comparison
    if c.kind == "relative":
        return 1 - (c.reduction or 0.0)
    if c.kind == "reference":
        return c.at_most_ratio or 0.0
    return c.below_ms if c.below_ms is not None else c.below_ratio or 0.0


def _latency_theta(topo: Topology) -> float:
    for tg in topo.inv.policy_targets:
        if tg.comparison.kind == "relative" and tg.statistic.startswith("rtt"):
            return 1 - (tg.comparison.reduction or 0.0)
    return 1.0


def province_map(topo: Topology, cur: RollupIndex, base: RollupIndex, lang: str) -> Any:
    """Sites, cities and measured site-to-site links, coloured by the median-RTT ratio
    (current/baseline) of their inter-carrier paths against the latency target: green when all
    meet it, amber when some do, red when none does, grey without a baseline."""
    theta = _latency_theta(topo)
    pairs: dict[tuple[str, str], list[float | None]] = {}
    for key in cur.select("icmp"):
        src, dst = key[0].split(">")
        (ss, sc), (ds, dc) = src.split("/"), dst.split("/")
        if ss == ds:
            continue
        ratio: float | None = None
        if sc != dc and key in base.units:
            b = views.statistic(base.total(key), "rtt_median")
            c = views.statistic(cur.total(key), "rtt_median")
            ratio = c / b if b and c is not None else None
        pairs.setdefault((min(ss, ds), max(ss, ds)), []).append(ratio)
    links = []
    for (a, b_), ratios in sorted(pairs.items()):
        known = [r for r in ratios if r is not None]
        status = ("na" if not known else "ok" if max(known) <= theta
                  else "bad" if min(known) > theta else "warn")
        sa, sb = topo.sites[a], topo.sites[b_]
        links.append(MapLink((sa.lon or 0, sb.lon or 0), (sa.lat or 0, sb.lat or 0), status,
                             f"{a}–{b_}"))
    sites = [MapPoint(name(s.name, lang), s.kind.value, s.lon or 0, s.lat or 0)
             for s in topo.sites.values()]
    cities = [MapPoint(name(c.name, lang), "city", c.lon, c.lat) for c in topo.inv.cities]
    labels = {k: t(k, lang) for k in ("city", "data_centre", "exchange_point",
                                      "computing_centre", "hub", "edge", "link_ok",
                                      "link_warn", "link_bad", "link_na")}
    return map_figure(geo.HUNAN_OUTLINE, cities, sites, links, geo.LON_RANGE, geo.LAT_RANGE,
                      labels)


