"""The app without a browser: the shell serves, every page lays out, callbacks return figures,
and the report is a labelled preview in JSON or CSV."""

from __future__ import annotations

import json
import sys
from types import ModuleType
from typing import Any

import dash
import plotly.graph_objects as go
import pytest
from dash import Dash, html

from dashboard import context
from dashboard.app import create_app
from dashboard.context import Context


@pytest.fixture(scope="module")
def app(ctx: Context) -> Dash:
    return create_app(ctx)


def _page(name: str) -> ModuleType:
    for page in dash.page_registry.values():
        if page["module"].rsplit(".", 1)[-1] == name:
            return sys.modules[page["module"]]
    raise AssertionError(f"page {name} not registered")


def _find(component: Any, cls: type) -> list[Any]:
    """Every component of type ``cls`` in a layout tree (figures in dcc.Graph included)."""
    if isinstance(component, list | tuple):
        return [x for c in component for x in _find(c, cls)]
    out = [component] if isinstance(component, cls) else []
    children = getattr(component, "children", None)
    if isinstance(children, list | tuple):
        for c in children:
            out += _find(c, cls)
    elif children is not None and not isinstance(children, str | int | float):
        out += _find(children, cls)
    return out


def test_shell_and_pages_are_served(app: Dash) -> None:
    client = app.server.test_client()
    for path in ("/", "/matrix", "/path", "/probes", "/reports", "/_dash-layout",
                 "/assets/style.css"):
        response = client.get(path)
        response.close()
        assert response.status_code == 200, path
    assert {p["path"] for p in dash.page_registry.values()} >= {
        "/", "/matrix", "/path", "/probes", "/reports"}


def test_every_layout_builds(app: Dash) -> None:
    for name in ("overview", "matrix", "path", "probes", "reports"):
        assert _page(name).layout() is not None
    assert _page("path").layout(by="carrier", src="CT", dst="CM") is not None
    assert _page("path").layout(path="no/such>path/x") is not None


def test_overview_in_both_languages(app: Dash, ctx: Context) -> None:
    zh, stamp = _page("overview").render("zh", None, None)
    en, _ = _page("overview").render("en", None, None)
    assert stamp == ["zh", -1]  # not live: the data is final
    assert _page("overview").render("zh", 3, stamp) == (dash.no_update, dash.no_update)
    assert "政策目标" in str(zh)
    assert "Policy targets" in str(en)
    for tg in ctx.topo.inv.policy_targets:
        assert tg.name.en in str(en)
        assert tg.name.zh in str(zh)
    from dash import dcc
    graphs = _find(en, dcc.Graph)
    assert len(graphs) == len(ctx.topo.inv.policy_targets) + 1  # trends + the map


def test_matrix_callbacks(app: Dash) -> None:
    m = _page("matrix")
    figs = m.render("carrier", "rtt_median", "icmp/v4/64/dscp0", "en")
    assert len(figs) == 3
    assert all(isinstance(f, go.Figure) for f in figs)
    assert figs[2].data[0].customdata[0][1] == "CT|CM"
    options, value = m._type_ps("owd_median")
    assert value is not None
    assert value.startswith("udp/")


def test_path_and_probe_pages(app: Dash) -> None:
    body = _page("path").render("cs-yungu/CT>cs-cmcc/CM", "en")
    text = str(body)
    assert "Crosses the exchange point" in text
    assert "Changsha National Internet Backbone Direct-Connect Point" in text
    assert "No path data" in str(_page("path").render(None, "en"))
    probes = _page("probes").render("zh")
    assert "cs-cmcc-cm" in str(probes)
    assert "延迟" in str(probes)
    assert "已搁置批次（结果数）" in str(probes)
    [aside] = [s for s in _find(probes, html.Span) if s.className == "set-aside"]
    assert aside.children == "1 (40)"  # cs-cmcc-cm's refused batch, highlighted
    assert "Set aside: batches (results)" in str(_page("probes").render("en"))


def test_report_is_the_analyzers(app: Dash, ctx: Context) -> None:
    from analyzer.views import local_label

    gen = _page("reports").generate
    dates = [local_label(w, "%Y-%m-%d") for w in (
        ctx.baseline.start_ns, ctx.baseline.end_ns - 1, ctx.current.start_ns,
        ctx.current.end_ns - 1)]
    data, table, status = gen(1, *dates, "json", "en")
    doc = json.loads(data["content"])
    assert data["filename"].endswith(".json")
    assert doc["provenance"]["parameters"]["replicates"] == ctx.replicates
    assert {v["target"] for v in doc["verdicts"]} == {
        t.id for t in ctx.topo.inv.policy_targets}
    html_data, _, _ = gen(1, *dates, "html", "zh")
    assert html_data["content"].lstrip().lower().startswith("<!doctype html")
    csv_data, _, _ = gen(1, *dates, "csv", "zh")
    assert csv_data["content"].splitlines()[0].startswith("target,")
    assert gen(0, *dates, "csv", "zh")[0] is dash.no_update


def test_context_must_be_configured() -> None:
    saved = context._current
    context._current = None
    try:
        with pytest.raises(Exception, match="no data source"):
            context.get()
    finally:
        context._current = saved


def test_language_from_the_url() -> None:
    from dashboard import app as shell

    assert shell._lang_from_url("?lang=en") == "en"
    assert shell._lang_from_url("?x=1&lang=zh") == "zh"
    assert shell._lang_from_url("?lang=fr") is dash.no_update
    assert shell._lang_from_url(None) is dash.no_update
