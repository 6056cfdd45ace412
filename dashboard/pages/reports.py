"""Reports: choose the baseline and current windows, generate, download.

The download is the policy-target verdict table of :func:`analyzer.views.preview_verdicts`
(JSON or CSV), clearly labelled as a preview; when the analyzer's report writer
(``analyzer.report``) is installed the auditor's report should be generated there instead.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from analyzer import views
from analyzer.views import VerdictRow, Window
from dashboard import context, ids
from dashboard.common import badge, fmt_value, table
from dashboard.i18n import t
from ixmeter import __version__

dash.register_page(__name__, path="/reports", name="reports", order=4)  # type: ignore[no-untyped-call]

NOTE = ("PREVIEW verdict table from the ixmeter dashboard (day-block bootstrap); "
        "not the auditor's report.")


def _dates(w: Window) -> tuple[str, str]:
    return (views.local_label(w.start_ns, "%Y-%m-%d"),
            views.local_label(w.end_ns - 1, "%Y-%m-%d"))


def layout(**kwargs: Any) -> html.Div:
    c = context.get()
    (bs, be), (cs, ce) = _dates(c.baseline), _dates(c.current)
    return html.Div([
        html.H2(id="rp-title"),
        html.Div([
            html.Label(id="rp-base-label"),
            dcc.DatePickerRange(id=ids.RP_BASE, start_date=bs, end_date=be,
                                display_format="YYYY-MM-DD"),
            html.Label(id="rp-cur-label"),
            dcc.DatePickerRange(id=ids.RP_CUR, start_date=cs, end_date=ce,
                                display_format="YYYY-MM-DD"),
            dcc.RadioItems(id=ids.RP_FORMAT, options=["json", "csv"], value="json",
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


def report_rows(rows: list[VerdictRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def to_json(rows: list[VerdictRow], base: Window, cur: Window, generated_ns: int) -> str:
    doc = {"kind": "ixmeter-verdict-preview", "note": NOTE, "software": f"ixmeter {__version__}",
           "generated_at": views.local_label(generated_ns, "%Y-%m-%dT%H:%M:%S+08:00"),
           "baseline": {"start_ns": base.start_ns, "end_ns": base.end_ns},
           "current": {"start_ns": cur.start_ns, "end_ns": cur.end_ns},
           "rows": report_rows(rows)}
    return json.dumps(doc, ensure_ascii=False, indent=1)


def to_csv(rows: list[VerdictRow]) -> str:
    out = io.StringIO()
    fields = list(VerdictRow.__dataclass_fields__)
    out.write(f"# {NOTE}\n")
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    writer.writerows(report_rows(rows))
    return out.getvalue()


@callback(Output(ids.RP_DOWNLOAD, "data"), Output(ids.RP_TABLE, "children"),
          Output(ids.RP_STATUS, "children"), Input(ids.RP_GENERATE, "n_clicks"),
          State(ids.RP_BASE, "start_date"), State(ids.RP_BASE, "end_date"),
          State(ids.RP_CUR, "start_date"), State(ids.RP_CUR, "end_date"),
          State(ids.RP_FORMAT, "value"), State(ids.LANG, "data"), prevent_initial_call=True)
def generate(n: int, bs: str, be: str, cs: str, ce: str, fmt: str,
             lang: str) -> tuple[Any, Any, Any]:
    if not n or not (bs and be and cs and ce):
        return no_update, no_update, no_update
    c = context.get()
    base, cur = Window.from_local_dates(bs, be), Window.from_local_dates(cs, ce)
    rows = c.verdicts(base, cur)
    now = c.now_ns()
    stamp = datetime.fromtimestamp(now / 1e9, views.TZ).strftime("%Y%m%d-%H%M%S")
    content = to_json(rows, base, cur, now) if fmt == "json" else to_csv(rows)
    data = dict(content=content, filename=f"ixmeter-verdicts-preview-{stamp}.{fmt}")
    header = [t(k, lang) for k in ("targets", "group", "type_p", "estimate", "ci",
                                   "threshold", "verdict", "n")]
    body = [[r.target_id, r.group, r.type_p,
             fmt_value(r.estimate, r.statistic if r.kind == "absolute" else "ratio", 3),
             "–" if r.ci_low is None else f"[{r.ci_low:.3f}, {r.ci_high:.3f}]",
             f"{r.threshold:g}", badge(r.verdict, lang), f"{r.n_baseline} / {r.n_current}"]
            for r in rows]
    return data, table(header, body, "rp-result"), f"{t('report_ready', lang)}: {len(rows)}"
