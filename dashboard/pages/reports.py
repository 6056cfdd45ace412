"""Reports: choose the baseline and current windows, generate, download the auditor's report.

The report is the analyzer's own (:mod:`analyzer.report`): the same evaluation, provenance and
JSON document as ``ixmeter analyze --json`` / ``ixmeter report`` for the same store, inventory
and windows, as HTML (with its figures), PDF (``analyzer.report.pdf``, what ``ixmeter report``
writes as report.pdf), canonical JSON, or the verdict table as CSV.
"""

from __future__ import annotations

import base64
from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from analyzer import views
from analyzer.views import Window
from dashboard import context, ids
from dashboard.common import badge, table
from dashboard.i18n import reason, t
from ixmeter.core import __version__

dash.register_page(__name__, path="/reports", name="reports", order=4)  # type: ignore[no-untyped-call]

FORMATS = ("html", "pdf", "json", "csv")


def _dates(w: Window, tz: str) -> tuple[str, str]:
    return (views.local_label(w.start_ns, tz, "%Y-%m-%d"),
            views.local_label(w.end_ns - 1, tz, "%Y-%m-%d"))


def layout(**kwargs: Any) -> html.Div:
    c = context.get()
    (bs, be), (cs, ce) = _dates(c.baseline, c.tz), _dates(c.current, c.tz)
    return html.Div([
        html.H2(id="rp-title"),
        html.Div([
            html.Label(id="rp-base-label"),
            dcc.DatePickerRange(id=ids.RP_BASE, start_date=bs, end_date=be,
                                display_format="YYYY-MM-DD"),
            html.Label(id="rp-cur-label"),
            dcc.DatePickerRange(id=ids.RP_CUR, start_date=cs, end_date=ce,
                                display_format="YYYY-MM-DD"),
            dcc.RadioItems(id=ids.RP_FORMAT, options=list(FORMATS), value="html",
                           inline=True, className="control"),
            html.Button(id=ids.RP_GENERATE, n_clicks=0, className="button"),
        ], className="controls"),
        html.P(id=ids.RP_STATUS, className="note"),
        dcc.Download(id=ids.RP_DOWNLOAD),
        dcc.Loading(html.Div(id=ids.RP_TABLE)),
    ], className="page")


@callback(Output("rp-title", "children"), Output("rp-base-label", "children"),
          Output("rp-cur-label", "children"), Output(ids.RP_GENERATE, "children"),
          Input(ids.LANG, "data"))
def _labels(lang: str) -> tuple[str, str, str, str]:
    return (t("report_note", lang), t("baseline", lang), t("current", lang),
            t("generate", lang))


def report_content(c: context.Context, base: Window, cur: Window, fmt: str,
                   lang: str = "zh") -> str | bytes:
    """The analyzer's report for two windows in one format (html, pdf, json or csv), in the
    page's language (the HTML holds both, ``lang`` first)."""
    from analyzer.report.csvout import to_csv
    from analyzer.report.data import COLUMNS, gather, verdict_rows
    from analyzer.report.html import render
    from analyzer.report.jsonout import document, dumps, provenance

    with c.lock:
        ev = c.evaluation(base, cur)
        if fmt == "csv":
            return to_csv(verdict_rows(ev), COLUMNS["verdicts"])
        doc = document(ev, provenance(c.store, c.inventory_path, c.topo.inv, ev, __version__,
                                      c.baseline_store))
        if fmt == "json":
            return dumps(doc)
        data = gather(c.store, ev, doc, c.topo, c.baseline_store)
        return _pdf(data, lang) if fmt == "pdf" else render(data, lang)


def _pdf(data: Any, lang: str) -> bytes:
    """The report module's own PDF, written to a temporary file and read back."""
    import tempfile
    from pathlib import Path

    from analyzer.report.pdf import write_pdf

    with tempfile.TemporaryDirectory(prefix="ixmeter-pdf-") as tmp:
        path = Path(tmp) / "report.pdf"
        write_pdf(data, path, lang)
        return path.read_bytes()


@callback(Output(ids.RP_DOWNLOAD, "data"), Output(ids.RP_TABLE, "children"),
          Output(ids.RP_STATUS, "children"), Input(ids.RP_GENERATE, "n_clicks"),
          State(ids.RP_BASE, "start_date"), State(ids.RP_BASE, "end_date"),
          State(ids.RP_CUR, "start_date"), State(ids.RP_CUR, "end_date"),
          State(ids.RP_FORMAT, "value"), State(ids.LANG, "data"), prevent_initial_call=True)
def generate(n: int, bs: str, be: str, cs: str, ce: str, fmt: str,
             lang: str) -> tuple[Any, Any, Any]:
    if not n or not (bs and be and cs and ce) or fmt not in FORMATS:
        return no_update, no_update, no_update
    c = context.get()
    base, cur = Window.from_local_dates(bs, be, c.tz), Window.from_local_dates(cs, ce, c.tz)
    content = report_content(c, base, cur, fmt, lang if lang in ("zh", "en") else "zh")
    name = f"ixmeter-report-{bs}_{be}-vs-{cs}_{ce}.{fmt}"
    download = dict(content=base64.b64encode(content).decode(), filename=name, base64=True) \
        if isinstance(content, bytes) else dict(content=content, filename=name)
    rows = c.verdicts(base, cur)
    header = [t(k, lang) for k in ("targets", "group", "type_p", "estimate", "ci",
                                   "threshold", "verdict", "gate", "n")]
    body = [[r.target_id, r.group, r.type_p,
             "–" if r.estimate is None
             else f"{r.estimate:.3f}{' ms' if r.unit == 'ms' else ''}",
             "–" if r.ci_low is None or r.ci_high is None
             else f"[{r.ci_low:.3f}, {r.ci_high:.3f}]",
             "–" if r.threshold is None else f"{r.threshold:g}", badge(r.verdict, lang),
             reason(r.gate, lang), f"{r.n_baseline} / {r.n_current}"] for r in rows]
    return (download, table(header, body, "rp-result"),
            f"{t('report_ready', lang)}: {name}")
