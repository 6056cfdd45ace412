"""Faults: the fault register (:mod:`analyzer.faults`) over local days, each fault with its
evidence day by day and the fields of the regulator's fault report form (docs/faults.md).
Read-only, like every page; registers are cached per day range."""

from __future__ import annotations

from datetime import date
from typing import Any

import dash
from dash import Input, Output, callback, dcc, html

from analyzer.fault_register import FAULT, Fault, Register, check_text, form_fields
from dashboard import context, ids
from dashboard.common import carrier_label, table
from dashboard.figures import COLORS
from dashboard.i18n import t

dash.register_page(__name__, path="/faults", name="faults", order=5)  # type: ignore[no-untyped-call]

_CACHE: dict[tuple[int, str, str], Register] = {}
STATE_COLORS = {FAULT: COLORS["FAIL"], "CLEAR": COLORS["PASS"]}


def layout(**kwargs: Any) -> html.Div:
    from analyzer.report.faults import local_days

    c = context.get()
    rules = c.topo.inv.fault_rules
    first, last = local_days(c.current.start_ns, c.current.end_ns,
                             rules[0].calendar.timezone if rules else c.tz)
    return html.Div([
        html.H2(id=ids.FA_TITLE),
        html.Div([html.Label(id=ids.FA_DAYS_LABEL),
                  dcc.DatePickerRange(id=ids.FA_DAYS, start_date=first.isoformat(),
                                      end_date=last.isoformat(),
                                      display_format="YYYY-MM-DD")], className="controls"),
        dcc.Loading(html.Div(id=ids.FA_BODY)),
        dcc.Dropdown(id=ids.FA_SELECT, className="control dd xwide"),
        html.Div(id=ids.FA_EVIDENCE),
    ], className="page")


@callback(Output(ids.FA_TITLE, "children"), Output(ids.FA_DAYS_LABEL, "children"),
          Output(ids.FA_SELECT, "placeholder"), Input(ids.LANG, "data"))
def _labels(lang: str) -> tuple[str, str, str]:
    return t("faults_title", lang), t("fault_days", lang), t("select_fault", lang)


def register(first: str, last: str) -> Register:
    """The register for local days ``first`` .. ``last`` (cached per context and range)."""
    from analyzer.faults import evaluate_faults

    c = context.get()
    key = (id(c), first, last)
    with c.lock:
        if key not in _CACHE:
            _CACHE[key] = evaluate_faults(c.store, c.topo.inv, date.fromisoformat(first),
                                          date.fromisoformat(last))
        return _CACHE[key]


def _status(f: Fault, lang: str) -> html.Span:
    text = t("fault_open", lang) if f.open else f"{t('fault_cleared', lang)} {f.cleared}"
    return html.Span(text, className="bad" if f.open else "good")


def _fault_key(f: Fault) -> str:
    s = f.series
    return "|".join((s.rule, s.segment, s.path, s.type_p, f.began))


@callback(Output(ids.FA_BODY, "children"), Output(ids.FA_SELECT, "options"),
          Output(ids.FA_SELECT, "value"), Input(ids.FA_DAYS, "start_date"),
          Input(ids.FA_DAYS, "end_date"), Input(ids.LANG, "data"))
def render(first: str | None, last: str | None, lang: str) -> tuple[list[Any], Any, Any]:
    c = context.get()
    if not c.topo.inv.fault_rules:
        return [html.P(t("no_fault_rules", lang), className="note")], [], None
    if not first or not last or last < first:
        return [], [], None
    reg = register(first[:10], last[:10])
    body: list[Any] = []
    if reg.synthetic:
        body.append(html.P(f"{t('synthetic_banner', lang)} ({reg.synthetic})", className="bad"))
    body += [html.H3(t("fault_rules", lang)), _rules_table(reg, lang),
             html.H3(t("faults", lang)), _faults_table(reg, lang)]
    body += [html.P(n, className="note") for n in reg.notes]
    options = [{"label": f"{f.series.rule} · {f.series.role} · {f.series.path} · "
                         f"{f.series.type_p} · {f.began}", "value": _fault_key(f)}
               for f in reg.faults]
    return body, options, (options[0]["value"] if options else None)


def _rules_table(reg: Register, lang: str) -> html.Table:
    rows = []
    for r in reg.rules:
        mine = [s for s in reg.series if s.rule == r.id]
        faults = [f for f in reg.faults if f.series.rule == r.id]
        judged = sum(d.state != "NOT EVALUABLE" for s in mine for d in s.days)
        total = sum(len(s.days) for s in mine)
        rows.append([r.id, r.name[1] if lang == "en" else r.name[0],
                     r.article[1] if lang == "en" else r.article[0], r.fault_class, len(mine),
                     f"{len(faults)} ({sum(f.open for f in faults)} {t('fault_open', lang)})",
                     f"{total - judged} / {total}", r.tier])
    header = [t(k, lang) for k in ("fault_rule", "fault_rules", "article", "fault_class",
                                   "series", "faults", "not_judged", "tier_read")]
    return table(header, rows, ids.FA_RULES)


def _faults_table(reg: Register, lang: str) -> html.Table | html.P:
    if not reg.faults:
        return html.P(t("no_faults", lang), className="note")
    c = context.get()
    rows = [[f.series.rule, f"{f.series.role} {f.series.segment}",
             f"{carrier_label(c.topo, f.series.src[1], lang)} → "
             f"{carrier_label(c.topo, f.series.dst[1], lang)}", f.series.path, f.series.type_p,
             ("≤ " if f.began_on_or_before else "") + f.began, f.last_fault_day,
             _status(f, lang)] for f in reg.faults]
    header = [t(k, lang) for k in ("fault_rule", "segment", "direction", "path", "type_p",
                                   "began", "last_fault_day", "fault_status")]
    return table(header, rows, ids.FA_TABLE)


@callback(Output(ids.FA_EVIDENCE, "children"), Input(ids.FA_SELECT, "value"),
          Input(ids.FA_DAYS, "start_date"), Input(ids.FA_DAYS, "end_date"),
          Input(ids.LANG, "data"))
def evidence(key: str | None, first: str | None, last: str | None, lang: str) -> list[Any]:
    if not key or not first or not last:
        return []
    reg = register(first[:10], last[:10])
    fault = next((f for f in reg.faults if _fault_key(f) == key), None)
    if fault is None:
        return []
    c = context.get()
    rule = next(r for r in reg.rules if r.id == fault.series.rule)
    names = {x.id: (x.name.zh, x.name.en) for x in c.topo.inv.carriers}
    form = form_fields(fault, rule, names)
    pick = 1 if lang == "en" else 0
    lang_key = "en" if lang == "en" else "zh"
    form_rows = [[t("fault_class", lang), form["fault_class"][lang_key]],
                 [t("direction", lang), form["direction"][lang_key]],
                 [t("description", lang), form["description"]],
                 [t("test_time", lang), f"{form['test_time']['from']} – "
                                        f"{form['test_time']['to']} ({rule.timezone})"],
                 [t("test_record", lang), form["test_record"]],
                 [t("tester", lang), t("to_fill", lang)]]
    days = [[d.date, html.Span(t(d.state, lang) if d.state in STATE_COLORS else d.state,
                               style={"color": STATE_COLORS.get(d.state, COLORS["na"])}),
             d.tests, d.samples, "; ".join(check_text(x) for x in d.checks) or d.reason]
            for d in fault.series.days]
    out: list[Any] = [html.H3(f"{t('evidence', lang)}: {rule.article[pick]} · "
                              f"{fault.series.path} · {fault.series.type_p}"),
                      table([t(k, lang) for k in ("date", "fault_status", "tests", "samples",
                                                  "checks")], days, "fa-days-table")]
    if fault.gaps:
        out.append(html.P(f"{t('gaps', lang)}: " + "; ".join(fault.gaps), className="note"))
    out += [html.H3(t("fault_form", lang)), table(["", ""], form_rows, "fa-form")]
    return out
