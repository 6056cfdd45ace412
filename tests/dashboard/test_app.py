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
    assert figs[2].data[0].customdata[0][1] == "CT>CM"
    options, value = m._type_ps("owd_median")
    assert value is not None
    assert value.startswith("udp/")


def test_matrix_drill_down_lists_and_searches(app: Dash) -> None:
    m = _page("matrix")
    head, rows, cols = m.cell_table("carrier", "CT", "CM", "rtt_median", "icmp/v4/64/dscp0",
                                    "en")
    assert "China Telecom → China Mobile" in head
    assert rows
    assert all(r["path_id"].split(">")[0].endswith("/CT") for r in rows)
    assert all(r["id"] == r["path_id"] for r in rows)  # the row id a click opens
    assert {c["field"] for c in cols} >= {"path_id", "src_city", "current", "change"}
    assert all(r["current"] < r["baseline"] for r in rows if r["current"] is not None)
    city = rows[0]["src_city"]
    _, zh_rows, _ = m.cell_table("carrier", "CT", "CM", "rtt_median", "icmp/v4/64/dscp0",
                                 "zh", city.lower())  # an English name, in the Chinese page
    assert zh_rows
    assert len(zh_rows) <= len(rows)
    _, none, _ = m.cell_table("carrier", "CT", "CM", "rtt_median", "icmp/v4/64/dscp0", "en",
                              "no-such-site")
    assert none == []
    _, loss, cols = m.cell_table("city", "changsha", "changsha", "loss_ratio", None, "zh")
    assert loss
    assert any("(%)" in c["headerName"] for c in cols)
    options = _page("path")._labels("en", None, "chenzhou", None)[1]
    assert options
    assert len(options) <= _page("path").MAX_OPTIONS + 1
    topo = context.get().topo
    for o in options:  # matched by a city's name: one end is in Chenzhou
        cities = {topo.city_of(end.split("/")[0]) for end in o["value"].split(">")}
        assert "chenzhou" in {c.id for c in cities if c}


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
    dates = [local_label(w, ctx.tz, "%Y-%m-%d") for w in (
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


def test_generated_data_is_labelled_on_every_page(app: Dash, ctx: Context) -> None:
    """The fixture store holds analyzer.synthetic.exchange's generated results: probe ids
    synthetic-*,
    and the shell's banner says so in both languages."""
    from dashboard import app as shell

    assert ctx.synthetic() is not None
    _, _, _, zh, style = shell._label_shell("zh")
    assert zh.startswith("合成数据，并非实测")
    assert style == {"display": "block"}
    _, _, _, en, _ = shell._label_shell("en")
    assert en.startswith("SYNTHETIC DATA, not measurements: results of generated probes")


def test_every_verdict_reason_has_a_chinese_form(ctx: Context) -> None:
    from dashboard.i18n import reason, translated

    for row in ctx.verdicts():
        assert translated(row.gate), row.gate
        zh = reason(row.gate, "zh")
        assert "95% CI" not in zh
        assert "too few samples" not in zh
        assert reason(row.gate, "en") == row.gate


def test_a_card_trends_the_row_that_sets_its_badge(ctx: Context) -> None:
    """The latency card FAILs on CU>CM (its detour is kept): its trend is CU>CM's, above the
    0.2 target, not the pooled scope that sits below it."""
    from analyzer import views

    rows = [r for r in ctx.verdicts() if r.target_id == "hn-inter-carrier-latency"]
    head = views.headline(rows)
    assert head is not None
    assert (head.verdict, head.group) == (views.FAIL, "CU>CM")
    _, values = ctx.trend("hn-inter-carrier-latency")
    assert min(v for v in values if v is not None) > 0.2
    tg = next(t for t in ctx.topo.inv.policy_targets if t.id == "hn-inter-carrier-latency")
    _, pooled = views.trend(ctx.topo, tg, ctx.base_index(), ctx.cur_index(), None, "day")
    assert min(v for v in pooled if v is not None) < min(v for v in values if v is not None)


def test_report_pdf_is_the_report_modules(app: Dash, ctx: Context) -> None:
    import base64

    from analyzer.views import local_label

    dates = [local_label(w, ctx.tz, "%Y-%m-%d") for w in (
        ctx.baseline.start_ns, ctx.baseline.end_ns - 1, ctx.current.start_ns,
        ctx.current.end_ns - 1)]
    data, _, status = _page("reports").generate(1, *dates, "pdf", "en")
    assert data["filename"].endswith(".pdf")
    assert data["base64"] is True
    assert base64.b64decode(data["content"]).startswith(b"%PDF")


def test_live_context_rereads_once_a_minute(ctx: Context) -> None:
    from dataclasses import replace

    clock = [ctx.current.end_ns - 5 * 60 * 10**9]
    live = replace(ctx, live=True, now_ns=lambda: clock[0], _indexes={}, _evaluations={},
                   _trends={})
    first = live.cur_index()
    assert live.cur_index() is first  # same minute: cached
    clock[0] += 60 * 10**9
    assert live.cur_index() is not first  # a new minute: read again
    clock[0] = ctx.current.end_ns + 10 * 60 * 10**9
    final = live.cur_index()
    assert live.generation() == -1
    clock[0] += 60 * 10**9
    assert live.cur_index() is final  # after the window (and its settling): final


def test_map_links_per_site_pair_or_per_city_pair(app: Dash, ctx: Context,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The seed's map draws a link per measured site pair; past MAP_SITE_PAIRS_MAX site pairs
    one per city pair, coloured by the same rule over the union of its site pairs' paths."""
    ov = _page("overview")
    topo, cur, base = ctx.topo, ctx.cur_index(), ctx.base_index()
    per, by_site = ov.map_links(topo, cur, base)
    assert per == "site"
    assert 0 < len(by_site) <= ov.MAP_SITE_PAIRS_MAX
    monkeypatch.setattr(ov, "MAP_SITE_PAIRS_MAX", len(by_site) - 1)
    per, by_city = ov.map_links(topo, cur, base)
    assert per == "city"
    ends = {(lk.lon, lk.lat): lk.status for lk in by_city}
    city_of = {(s.lon, s.lat): topo.cities[s.city] for s in topo.sites.values()}
    expected: dict[tuple[Any, Any], set[str]] = {}
    for lk in by_site:
        a, b = (city_of[(lk.lon[i], lk.lat[i])] for i in (0, 1))
        if a.id != b.id:
            a, b = sorted((a, b), key=lambda c: c.id)
            expected.setdefault(((a.lon, b.lon), (a.lat, b.lat)), set()).add(lk.status)
    assert by_city
    assert set(ends) == set(expected)  # one link per city pair, none within a city
    for where, statuses in expected.items():
        known = statuses - {"na"}
        want = ("na" if not known else next(iter(known)) if len(known) == 1 else "warn")
        assert ends[where] == want, where
    fig, note = ov.province_map(topo, cur, base, "en")
    assert "between two cities" in note


def test_link_status_rule(app: Dash) -> None:
    status = _page("overview").link_status
    assert status([0.5, 0.6, None], 0.8) == "ok"
    assert status([0.5, 0.9], 0.8) == "warn"
    assert status([0.9, 1.2], 0.8) == "bad"
    assert status([None, None], 0.8) == status([], 0.8) == "na"
