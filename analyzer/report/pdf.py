"""PDF report with reportlab (``server`` extra). ``rl_config.invariant = 1`` fixes the document
id and dates, so the same data gives the same bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from analyzer.report.data import ReportData
from analyzer.report.html import METHODOLOGY, short_metrics

_COLOURS = {"PASS": "#d6f5d6", "FAIL": "#f8d0d0", "INCONCLUSIVE": "#fff3c4",
            "NOT EVALUABLE": "#e4e4e4"}
_VERDICT_COLS = ("target", "scope", "statistic", "baseline_value", "current_value", "point",
                 "low", "high", "threshold", "verdict")


def _cell(x: Any) -> str:
    return "" if x is None else str(x)


def write_pdf(data: ReportData, path: Path) -> None:
    """Summary, verdict table, charts, carrier matrix, routes, coverage, exclusions,
    methodology and provenance on A4 landscape pages."""
    from reportlab import rl_config

    rl_config.invariant = 1
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7, leading=8)
    doc, fig = data.document, data.figures
    prov = doc["provenance"]
    story: list[Any] = [Paragraph("ixmeter verdict report", styles["Title"]),
                        Paragraph(escape(f"Current {prov['parameters']['current']}; baseline "
                                         f"{prov['parameters']['baseline']}"), styles["Normal"])]
    for note in doc.get("notes", []):
        story.append(Paragraph(escape(f"Note: {note}"), small))

    def section(title: str, rows: list[dict[str, Any]], cols: tuple[str, ...] | None = None,
                colour_key: str | None = None) -> None:
        story.extend([Spacer(1, 8), Paragraph(escape(title), styles["Heading2"])])
        if not rows:
            story.append(Paragraph("(none)", small))
            return
        keys = list(cols or rows[0])
        table_rows = [[Paragraph(escape(k), small) for k in keys]]
        table_rows += [[Paragraph(escape(_cell(r.get(k))), small) for k in keys] for r in rows]
        style = [("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                 ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee"))]
        if colour_key:
            for i, r in enumerate(rows, start=1):
                colour = _COLOURS.get(str(r.get(colour_key)))
                if colour:
                    style.append(("BACKGROUND", (0, i), (-1, i), colors.HexColor(colour)))
        width = (landscape(A4)[0] - 2 * 72) / len(keys)  # default 1-inch margins
        table = Table(table_rows, colWidths=[width] * len(keys), repeatRows=1)
        table.setStyle(TableStyle(style))
        story.append(table)

    section("Verdicts", fig.get("verdicts", []), _VERDICT_COLS, "verdict")
    story.append(Paragraph("Reasons:", styles["Heading3"]))
    for r in fig.get("verdicts", []):
        story.append(Paragraph(escape(f"{r['target']} {r['scope']} {r['type_p']}: {r['verdict']}: "
                                      f"{r['reason']}"), small))
    story.extend(_chart(fig.get("carrier_matrix", [])))
    section("Carrier matrix", fig.get("carrier_matrix", []))
    pairs = [short_metrics(r) for r in fig.get("metrics", []) if r["per"] == "carrier_pair"]
    section("Metrics by carrier pair (cond. = arrived only, RFC 6703 §5.3; loss=+inf, "
            "RFC 7679 §5.1)", pairs)
    section("Route evidence (traceroute)", fig.get("routes", []))
    section("Data coverage per probe", fig.get("coverage", []))
    section("Exclusions and why", fig.get("exclusions", []))
    section("Methodology", [{"item": a, "definition": b} for a, b in METHODOLOGY])
    section("Provenance", [{"software": prov["software"],
                            "inventory sha256": prov["inventory"]["sha256"],
                            "chain head": prov["store_chain_head"]["head"],
                            "seed": prov["parameters"]["seed"]}])
    SimpleDocTemplate(str(path), pagesize=landscape(A4), title="ixmeter verdict report",
                      author="ixmeter", creator="ixmeter", subject="",
                      invariant=1).build(story)


def _chart(matrix: list[dict[str, Any]]) -> list[Any]:
    """Before/after median RTT per carrier pair as a grouped bar chart."""
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors

    pairs = sorted({f"{r['src_carrier']}>{r['dst_carrier']}" for r in matrix})
    if not pairs:
        return []
    series = []
    for window in ("baseline", "current"):
        by = {f"{r['src_carrier']}>{r['dst_carrier']}": r["rtt_median_ms"] for r in matrix
              if r["window"] == window}
        series.append([float(by.get(p) or 0.0) for p in pairs])
    drawing = Drawing(700, 200)
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 40, 30, 620, 150
    chart.data = series
    chart.categoryAxis.categoryNames = pairs
    chart.categoryAxis.labels.fontSize = 6
    chart.bars[0].fillColor = colors.HexColor("#999999")
    chart.bars[1].fillColor = colors.HexColor("#3366cc")
    drawing.add(chart)
    drawing.add(String(40, 188, "Median RTT (ms) by carrier pair: grey baseline, blue current",
                       fontSize=8))
    return [drawing]
