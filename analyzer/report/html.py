"""Self-contained HTML report: inline CSS and SVG charts, no scripts, no external files.

Every heading and label is in Chinese and English, the ``--lang`` one first; each target is
named as the inventory names it, with its source document, and its one-line verdict comes
first. Method names and citations come from :mod:`analyzer.methods`, the ones this run used
marked."""

from __future__ import annotations

import html
import json
from typing import Any

from analyzer.methods import METHODS
from analyzer.report.data import COLUMNS, ReportData
from analyzer.report.faults import html_section as faults_section  # hook: issue 17
from inventory.topology import pair_key

LABELS: dict[str, tuple[str, str]] = {  # key -> (zh, en)
    "title": ("ixmeter 判定报告", "ixmeter verdict report"),
    "targets": ("各目标判定", "Verdict per target"),
    "summary": ("概要", "Summary"),
    "current": ("当前窗口", "Current window"),
    "baseline": ("基线窗口", "Baseline window"),
    "verdicts": ("判定明细", "Verdicts"),
    "why": ("理由", "Why"),
    "before_after": ("前后对比", "Before and after"),
    "matrix": ("运营商矩阵", "Carrier matrix"),
    "metrics": ("按运营商对的指标", "Metrics by carrier pair"),
    "routes": ("路由证据（traceroute）", "Route evidence (traceroute)"),
    "coverage": ("各探针数据覆盖（两个窗口）", "Data coverage per probe (both windows)"),
    "exclusions": ("排除项及原因", "Exclusions and why"),
    "methodology": ("方法与出处", "Methodology"),
    "used": ("本次使用", "used here"),
    "provenance": ("来源与复现", "Provenance"),
    "none": ("（无）", "(none)"),
    "source": ("依据文件", "Source document"),
    "median_chart": ("各运营商对的往返时延中位数", "Median RTT by carrier pair"),
    "loss_chart": ("各运营商对的丢包率", "Loss ratio by carrier pair"),
    "legend": ("灰色：基线；蓝色：当前", "grey baseline, blue current"),
    "cond_note": ("标注 conditional 的时延只计到达的分组（RFC 6703 §5.3）；inf 把丢失分组计为"
                  "无穷大（RFC 7679 §5.1）。全部数据见 metrics.csv。",
                  "Delay columns marked conditional use arrived packets only (RFC 6703 §5.3); "
                  "inf counts lost packets as +infinity (RFC 7679 §5.1). Every figure: "
                  "metrics.csv."),
    "reproduce": ("复现：用这些参数运行 ixmeter analyze --json，逐字节得到 report.json"
                  "（docs/auditor.md）。",
                  "Reproduce: ixmeter analyze --json with these parameters gives report.json "
                  "byte for byte (docs/auditor.md)."),
}
_CSS = """body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;
margin:1em 0}td,th{border:1px solid #bbb;padding:.2em .5em;font-size:.85em;max-width:28em;
overflow-wrap:break-word}svg{display:block;margin:1em 0}th{background:#eee}
.PASS{background:#d6f5d6}.FAIL{background:#f8d0d0}.INCONCLUSIVE{background:#fff3c4}
.NOT.EVALUABLE{background:#e4e4e4}code{font-size:.85em}.alt{color:#555}"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def label(key: str, lang: str) -> str:
    """A label in ``lang`` and, after it, the other language."""
    zh, en = LABELS[key]
    first, second, other = (zh, en, "en") if lang == "zh" else (en, zh, "zh")
    return f'{_e(first)} <span class="alt" lang="{other}">/ {_e(second)}</span>'


def text(key: str, lang: str) -> str:
    """A label in ``lang`` only (plain text, for the PDF and SVG titles)."""
    return LABELS[key][0 if lang == "zh" else 1]


def _table(rows: list[dict[str, Any]], keys: tuple[str, ...] | list[str], lang: str,
           cls_key: str | None = None) -> str:
    if not rows:
        return f"<p>{label('none', lang)}</p>"
    head = "".join(f"<th>{_e(k)}</th>" for k in keys)
    body = []
    for r in rows:
        cls = f' class="{_e(r[cls_key])}"' if cls_key else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{_e(r.get(k))}</td>" for k in keys) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def bar_chart(title: str, pairs: list[tuple[str, float | None, float | None]],
              unit: str, legend: str) -> str:
    """Grouped bars (baseline grey, current blue) as inline SVG."""
    values = [v for _, a, b in pairs for v in (a, b) if isinstance(v, int | float)]
    if not values:
        return ""
    top = max(values) or 1.0
    bar, gap = 22, 18
    width = max(640, 60 + (2 * bar + gap) * len(pairs))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="210" '
             f'role="img"><title>{_e(title)}</title>']
    for i, (name, before, after) in enumerate(pairs):
        x = 50 + i * (2 * bar + gap)
        for j, (v, colour) in enumerate(((before, "#999"), (after, "#36c"))):
            if isinstance(v, int | float):
                h = 150 * v / top
                parts.append(f'<rect x="{x + j * bar}" y="{185 - h:.1f}" width="{bar - 2}" '
                             f'height="{h:.1f}" fill="{colour}"><title>{_e(name)}: '
                             f'{v} {unit}</title></rect>')
        parts.append(f'<text x="{x}" y="200" font-size="11">{_e(name)}</text>')
    parts.append(f'<text x="4" y="16" font-size="13">{_e(title)}: {_e(legend)}'
                 f' (top of scale {top:.4g} {unit})</text>')
    parts.append('<line x1="45" y1="185" x2="100%" y2="185" stroke="#444"/></svg>')
    return "".join(parts)


def pairs(matrix: list[dict[str, Any]], key: str) -> list[tuple[str, Any, Any]]:
    """(``method type_p src>dst``, baseline value, current value) for the charts."""
    out: dict[str, list[Any]] = {}
    for r in matrix:
        name = f"{r['type_p']} {pair_key(r['src_carrier'], r['dst_carrier'])}"
        slot = out.setdefault(name, [None, None])
        slot[1 if r["window"] == "current" else 0] = r[key]
    return [(k, v[0], v[1]) for k, v in sorted(out.items())]


_SHORT = ("window", "method", "type_p", "group", "sent", "lost", "loss_ratio", "loss_periods",
          "rtt_n", "rtt_min_ms_conditional", "rtt_median_ms_conditional",
          "rtt_mean_ms_conditional", "rtt_p95_ms_conditional", "rtt_p99_ms_conditional",
          "rtt_max_ms_conditional", "rtt_pdv_p99_ms_conditional", "rtt_p95_ms_inf")


def short_metrics(row: dict[str, Any]) -> dict[str, Any]:
    return {k.replace("_conditional", " (cond.)").replace("_inf", " (loss=+inf)"): row[k]
            for k in _SHORT}


def target_line(t: dict[str, Any], lang: str) -> str:
    """``id — name: VERDICT (groups); source document`` in ``lang`` (plain text)."""
    name = (t.get("name_zh") if lang == "zh" else t.get("name_en")) or ""
    doc = (t.get("document_zh") if lang == "zh" else t.get("document_en")) or ""
    source = f"{doc} ({t.get('issuer')}, {t.get('year')}" + (
        f", {t['reference']})" if t.get("reference") else ")") if doc else ""
    return f"{t['target']} — {name}: {t['verdict']} ({t['groups']}); {source}"


def _targets(rows: list[dict[str, Any]], lang: str) -> str:
    other = "en" if lang == "zh" else "zh"
    items = "".join(f'<li class="{_e(t["verdict"])}"><b>{_e(target_line(t, lang))}</b><br>'
                    f'<span class="alt" lang="{other}">{_e(target_line(t, other))}</span></li>'
                    for t in rows)
    return f"<ol>{items}</ol>" if items else f"<p>{label('none', lang)}</p>"


def methodology_rows(data: ReportData, lang: str) -> list[dict[str, Any]]:
    """Every registered method, the ones behind this report's rows marked."""
    used = {(v.get("method") or {}).get("id") for v in data.document.get("verdicts", [])}
    used |= {"rtt", "loss", "percentiles", "sketch", "decision", "target-summary"}
    return [{"id": m.id, "method": m.name(lang), "alt": m.name("en" if lang == "zh" else "zh"),
             "definition": m.definition, "source": m.citation,
             "used": "✓" if m.id in used else ""} for m in METHODS.values()]


def render(data: ReportData, lang: str = "zh") -> str:
    """The whole report as one HTML page, both languages (``lang`` first)."""
    doc, fig = data.document, data.figures
    prov = doc["provenance"]
    params = prov["parameters"]
    matrix = fig.get("carrier_matrix", [])
    charts = bar_chart(text("median_chart", lang), pairs(matrix, "rtt_median_ms"), "ms",
                       text("legend", lang)) + \
        bar_chart(text("loss_chart", lang), pairs(matrix, "loss_ratio"), "",
                  text("legend", lang))
    notes = "".join(f"<li>{_e(n)}</li>" for n in doc.get("notes", []))
    shown = [k for k in COLUMNS["verdicts"] if k not in ("reason", "more_samples", "citation")]
    reasons = "".join(f"<li><b>{_e(r['target'])} {_e(r['scope'])} {_e(r['type_p'])}: "
                      f"{_e(r['verdict'])}</b>: {_e(r['reason'])}</li>"
                      for r in fig.get("verdicts", []))
    h = {k: label(k, lang) for k in LABELS}
    metrics = [short_metrics(r) for r in fig.get("metrics", []) if r["per"] == "carrier_pair"]
    return f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="utf-8"><title>{_e(text('title', lang))}</title>
<style>{_CSS}</style></head><body>
<h1>{h['title']}</h1>
<h2>{h['targets']}</h2>{_targets(fig.get('targets', []), lang)}
<h2>{h['summary']}</h2>
<p>{h['current']}: <code>{_e(params['current'])}</code>; {h['baseline']}:
<code>{_e(params['baseline'])}</code>.</p><ul>{notes}</ul>
<h2>{h['verdicts']}</h2>{_table(fig.get('verdicts', []), shown, lang, 'verdict')}
<h3>{h['why']}</h3><ol>{reasons}</ol>
<h2>{h['before_after']}</h2>{charts}
<h2>{h['matrix']}</h2>{_table(matrix, COLUMNS['carrier_matrix'], lang)}
<h2>{h['metrics']}</h2><p>{label('cond_note', lang)}</p>
{_table(metrics, list(metrics[0]) if metrics else [], lang)}
<h2>{h['routes']}</h2>{_table(fig.get('routes', []), COLUMNS['routes'], lang)}
<h2>{h['coverage']}</h2>{_table(fig.get('coverage', []), COLUMNS['coverage'], lang)}
<h2>{h['exclusions']}</h2>{_table(fig.get('exclusions', []), COLUMNS['exclusions'], lang)}
{faults_section(fig)}
<h2>{h['methodology']}</h2>
{_table(methodology_rows(data, lang), ('id', 'method', 'alt', 'definition', 'source', 'used'),
        lang)}
<h2>{h['provenance']}</h2>
<table><tr><td>software</td><td>{_e(prov['software'])}</td></tr>
<tr><td>inventory</td><td>{_e(prov['inventory']['file'])} sha256
<code>{_e(prov['inventory']['sha256'])}</code></td></tr>
<tr><td>store chain head</td><td><code>{_e(prov['store_chain_head']['head'])}</code>
(length {_e(prov['store_chain_head']['length'])})</td></tr>
<tr><td>parameters</td><td><code>{_e(json.dumps(params, sort_keys=True))}</code></td></tr>
</table>
<p>{label('reproduce', lang)}</p>
</body></html>
"""
