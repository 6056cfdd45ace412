"""Small layout helpers shared by the pages: graphs, verdict badges, labels of inventory ids."""

from __future__ import annotations

from typing import Any, cast

import plotly.graph_objects as go
from dash import dcc, html

from dashboard.figures import COLORS
from dashboard.i18n import name, t
from inventory.schema import PolicyTarget
from inventory.topology import PathEnds, Topology

# plotly.js fetches its world topojson from a CDN for any geo trace; point it at our own
# assets so nothing is ever fetched from outside (our map is a plain lon/lat figure anyway).
GRAPH_CONFIG: dict[str, Any] = {"topojsonURL": "/assets/topojson/", "displaylogo": False}


def graph(component_id: str | dict[str, Any], fig: go.Figure, **kw: Any) -> dcc.Graph:
    kw.setdefault("config", cast(Any, GRAPH_CONFIG))
    return dcc.Graph(id=component_id, figure=fig, **kw)


def badge(verdict: str, lang: str) -> html.Span:
    return html.Span(t(verdict, lang), className="badge",
                     style={"backgroundColor": COLORS.get(verdict, COLORS["na"])})


def carrier_label(topo: Topology, cid: str, lang: str) -> str:
    c = next((c for c in topo.inv.carriers if c.id == cid), None)
    return name(c.name, lang) if c else cid


def city_label(topo: Topology, cid: str, lang: str) -> str:
    c = topo.cities.get(cid)
    return name(c.name, lang) if c else cid


def site_label(topo: Topology, sid: str, lang: str) -> str:
    s = topo.sites.get(sid)
    return name(s.name, lang) if s else sid


def path_label(topo: Topology, path_id: str, lang: str) -> str:
    """A path id (:meth:`inventory.topology.PathEnds.parse`) as readable names."""
    e = PathEnds.parse(path_id)
    return (f"{site_label(topo, e.src_site, lang)} ({carrier_label(topo, e.src_carrier, lang)})"
            f" → {site_label(topo, e.dst_site, lang)} "
            f"({carrier_label(topo, e.dst_carrier, lang)})")


def targets_on(topo: Topology, kind: str, statistic: str,
               ends: PathEnds | None = None) -> list[PolicyTarget]:
    """The policy targets of comparison ``kind`` on statistics starting with ``statistic``
    (whose scope holds ``ends`` when given), in inventory order; each one's threshold is
    :attr:`inventory.schema.Comparison.threshold`."""
    return [tg for tg in topo.inv.policy_targets
            if tg.comparison.kind == kind and tg.statistic.startswith(statistic)
            and (ends is None or topo.in_scope(tg.scope, ends))]


def fmt_value(v: float | None, stat: str, digits: int = 2) -> str:
    if v is None:
        return "–"
    if stat == "loss_ratio":
        return f"{v * 100:.{digits + 1}f}%"
    return f"{v:.{digits}f}"


def table(header: list[str], rows: list[list[Any]], table_id: str | None = None,
          class_name: str = "data") -> html.Table:
    kw: dict[str, Any] = {"id": table_id} if table_id else {}
    return html.Table([html.Thead(html.Tr([html.Th(h) for h in header])),
                       html.Tbody([html.Tr([html.Td(c) for c in r]) for r in rows])],
                      className=class_name, **kw)
