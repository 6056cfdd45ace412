"""Self-contained HTML report: inline CSS and SVG charts, no scripts, no external files."""

from __future__ import annotations

import html
import json
from typing import Any

from analyzer.report.data import ReportData
from analyzer.report.faults import html_section as faults_section  # hook: issue 17

METHODOLOGY = [
    ("Round-trip delay", "RFC 2681 §2, statistics conditional on arrival (RFC 6703 §5.3)"),
    ("One-way delay", "RFC 7679 §3.4, clock-error bound E per §3.7.3"),
    ("Packet loss", "RFC 7680 §2.4 and §4.1; round-trip loss RFC 6673 §4.3"),
    ("Loss periods", "RFC 3357 §4.1"),
    ("Percentiles", "RFC 2330 §11.3 inverted CDF; median RFC 7679 §5.2; loss=+inf RFC 7679 §5.1"),
    ("Delay variation", "PDV = D(i) - D(min), RFC 5481 §4.2"),
    ("Quantile sketch", "DDSketch, Masson, Rim and Lee, PVLDB 12(12) 2019, alpha = 0.005"),
    ("Latency ratio CI", "minute-block bootstrap (Carlstein 1986), block length by Politis and "
     "White 2004 / Patton, Politis and White 2009, percentile interval, B >= 2000, seeded"),
    ("Loss ratio CI", "Miettinen-Nurminen score interval (Stat. Med. 1985), counts divided by "
     "the Pearson dispersion of per-minute losses"),
    ("Decision rule", "PASS if the 95% CI lies inside the target (TOST, one-sided 0.025), FAIL "
     "if outside, INCONCLUSIVE otherwise"),
    ("Multiplicity", "Holm 1979 step-down over per-pair lists"),
    ("Clock gates", "RFC 7679 §3.5 and §3.7.3; RFC 4656 §4.1.2 S bit; clock-free RTT_net bound"),
]
_CSS = """body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;
margin:1em 0}td,th{border:1px solid #bbb;padding:.2em .5em;font-size:.85em;max-width:28em;
overflow-wrap:break-word}svg{display:block;margin:1em 0}th{background:#eee}
.PASS{background:#d6f5d6}.FAIL{background:#f8d0d0}.INCONCLUSIVE{background:#fff3c4}
.NOT.EVALUABLE{background:#e4e4e4}code{font-size:.85em}"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _table(rows: list[dict[str, Any]], cls_key: str | None = None) -> str:
    if not rows:
        return "<p>(none)</p>"
    keys = list(rows[0])
    head = "".join(f"<th>{_e(k)}</th>" for k in keys)
    body = []
    for r in rows:
        cls = f' class="{_e(r[cls_key])}"' if cls_key else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{_e(r[k])}</td>" for k in keys) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def bar_chart(title: str, pairs: list[tuple[str, float | None, float | None]],
              unit: str) -> str:
    """Grouped bars (baseline grey, current blue) as inline SVG."""
    values = [v for _, a, b in pairs for v in (a, b) if isinstance(v, int | float)]
    if not values:
        return ""
    top = max(values) or 1.0
    bar, gap = 22, 18
    width = max(640, 60 + (2 * bar + gap) * len(pairs))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="210" '
             f'role="img"><title>{_e(title)}</title>']
    for i, (label, before, after) in enumerate(pairs):
        x = 50 + i * (2 * bar + gap)
        for j, (v, colour) in enumerate(((before, "#999"), (after, "#36c"))):
            if isinstance(v, int | float):
                h = 150 * v / top
                parts.append(f'<rect x="{x + j * bar}" y="{185 - h:.1f}" width="{bar - 2}" '
                             f'height="{h:.1f}" fill="{colour}"><title>{_e(label)}: '
                             f'{v} {unit}</title></rect>')
        parts.append(f'<text x="{x}" y="200" font-size="11">{_e(label)}</text>')
    parts.append(f'<text x="4" y="16" font-size="13">{_e(title)}: grey baseline, blue current'
                 f' (top of scale {top:.4g} {unit})</text>')
    parts.append('<line x1="45" y1="185" x2="100%" y2="185" stroke="#444"/></svg>')
    return "".join(parts)


def _pairs(matrix: list[dict[str, Any]], key: str) -> list[tuple[str, Any, Any]]:
    out: dict[str, list[Any]] = {}
    for r in matrix:
        label = f"{r['src_carrier']}>{r['dst_carrier']}"
        slot = out.setdefault(label, [None, None])
        slot[0 if r["window"] == "baseline" else 1] = r[key]
    return [(k, v[0], v[1]) for k, v in sorted(out.items())]


_SHORT = ("window", "group", "sent", "lost", "loss_ratio", "loss_periods", "rtt_n",
          "rtt_min_ms_conditional", "rtt_median_ms_conditional", "rtt_mean_ms_conditional",
          "rtt_p95_ms_conditional", "rtt_p99_ms_conditional", "rtt_max_ms_conditional",
          "rtt_pdv_p99_ms_conditional", "rtt_p95_ms_inf")


def short_metrics(row: dict[str, Any]) -> dict[str, Any]:
    return {k.replace("_conditional", " (cond.)").replace("_inf", " (loss=+inf)"): row[k]
            for k in _SHORT}


def render(data: ReportData) -> str:
    """The whole report as one HTML page."""
    doc, fig = data.document, data.figures
    prov = doc["provenance"]
    counts: dict[str, int] = {}
    for v in doc["verdicts"]:
        counts[v["verdict"]] = counts.get(v["verdict"], 0) + 1
    summary = ", ".join(f"{k}: {n}" for k, n in sorted(counts.items()))
    params = prov["parameters"]
    meth = "".join(f"<tr><td>{_e(a)}</td><td>{_e(b)}</td></tr>" for a, b in METHODOLOGY)
    matrix = fig.get("carrier_matrix", [])
    charts = bar_chart("Median RTT by carrier pair", _pairs(matrix, "rtt_median_ms"), "ms") + \
        bar_chart("Loss ratio by carrier pair", _pairs(matrix, "loss_ratio"), "")
    notes = "".join(f"<li>{_e(n)}</li>" for n in doc.get("notes", []))
    verdicts = [{k: v for k, v in r.items() if k not in ("reason", "more_samples")}
                for r in fig.get("verdicts", [])]
    reasons = "".join(f"<li><b>{_e(r['target'])} {_e(r['scope'])} {_e(r['type_p'])}: "
                      f"{_e(r['verdict'])}</b>: {_e(r['reason'])}</li>"
                      for r in fig.get("verdicts", []))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ixmeter report</title>
<style>{_CSS}</style></head><body>
<h1>ixmeter verdict report</h1>
<h2>Summary</h2>
<p>Current window <code>{_e(params['current'])}</code>, baseline
<code>{_e(params['baseline'])}</code>. Verdicts: {_e(summary)}.</p><ul>{notes}</ul>
<h2>Verdicts</h2>{_table(verdicts, 'verdict')}
<h3>Why</h3><ol>{reasons}</ol>
<h2>Before and after</h2>{charts}
<h2>Carrier matrix</h2>{_table(matrix)}
<h2>Metrics by carrier pair</h2>
<p>Delay columns marked <code>conditional</code> use arrived packets only (RFC 6703 §5.3);
<code>inf</code> counts lost packets as +infinity (RFC 7679 §5.1). Every figure: metrics.csv.</p>
{_table([short_metrics(r) for r in fig.get('metrics', []) if r['per'] == 'carrier_pair'])}
<h2>Route evidence (traceroute)</h2>{_table(fig.get('routes', []))}
<h2>Data coverage per probe</h2>{_table(fig.get('coverage', []))}
<h2>Exclusions and why</h2>{_table(fig.get('exclusions', []))}
{faults_section(fig)}
<h2>Methodology</h2><table>{meth}</table>
<h2>Provenance</h2>
<table><tr><td>software</td><td>{_e(prov['software'])}</td></tr>
<tr><td>inventory</td><td>{_e(prov['inventory']['file'])} sha256
<code>{_e(prov['inventory']['sha256'])}</code></td></tr>
<tr><td>store chain head</td><td><code>{_e(prov['store_chain_head']['head'])}</code>
(length {_e(prov['store_chain_head']['length'])})</td></tr>
<tr><td>parameters</td><td><code>{_e(json.dumps(params, sort_keys=True))}</code></td></tr>
</table>
<p>Reproduce: <code>ixmeter analyze --json</code> with these parameters gives
<code>report.json</code> byte for byte (docs/auditor.md).</p>
</body></html>
"""
