"""PDF report with reportlab (``server`` extra), in one language (``--lang``; Chinese with
reportlab's built-in CID font STSong-Light, no font file). ``rl_config.invariant = 1`` fixes
the document id and dates, so the same data gives the same bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from analyzer.report.data import COLUMNS, ReportData
from analyzer.report.html import methodology_rows, short_metrics, target_line, text

_COLOURS = {"PASS": "#d6f5d6", "FAIL": "#f8d0d0", "INCONCLUSIVE": "#fff3c4",
            "NOT EVALUABLE": "#e4e4e4"}
_VERDICT_COLS = ("target", "scope", "type_p", "statistic", "baseline_value", "current_value",
                 "point", "low", "high", "threshold", "verdict", "interval_method")
CJK_FONT = "STSong-Light"


def _cell(x: Any) -> str:
    return "" if x is None else str(x)


def _styles(lang: str) -> Any:
    from reportlab.lib.styles import getSampleStyleSheet

    styles = getSampleStyleSheet()
    if lang == "zh":
        from reportlab.pdfbase import pdfmetrics
        from reportlab.pdfbase.cidfonts import UnicodeCIDFont

        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
        for name in ("Title", "Normal", "BodyText", "Heading2", "Heading3"):
            styles[name].fontName = CJK_FONT
    return styles


def write_pdf(data: ReportData, path: Path, lang: str = "zh") -> None:
    """A line per target, verdict table, charts, carrier matrix, metrics, routes, coverage,
    exclusions, methodology and provenance on A4 landscape pages, in ``lang``."""
    from reportlab import rl_config

    rl_config.invariant = 1
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = _styles(lang)
    small = styles["BodyText"].clone("small", fontSize=7, leading=8)
    doc, fig = data.document, data.figures
    prov = doc["provenance"]
    story: list[Any] = [Paragraph(escape(text("title", lang)), styles["Title"]),
                        Paragraph(escape(text("targets", lang)), styles["Heading2"])]
    story += [Paragraph(escape(target_line(t, lang)), styles["Normal"])
              for t in fig.get("targets", [])]
    story.append(Paragraph(escape(f"{text('current', lang)}: {prov['parameters']['current']}; "
                                  f"{text('baseline', lang)}: {prov['parameters']['baseline']}"),
                           styles["Normal"]))
    for note in doc.get("notes", []):
        story.append(Paragraph(escape(f"Note: {note}"), small))

    def section(title: str, rows: list[dict[str, Any]], cols: tuple[str, ...] | None = None,
                colour_key: str | None = None) -> None:
        story.extend([Spacer(1, 8), Paragraph(escape(title), styles["Heading2"])])
        if not rows:
            story.append(Paragraph(escape(text("none", lang)), small))
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

    section(text("verdicts", lang), fig.get("verdicts", []), _VERDICT_COLS, "verdict")
    story.append(Paragraph(escape(text("why", lang)), styles["Heading3"]))
    for r in fig.get("verdicts", []):
        story.append(Paragraph(escape(f"{r['target']} {r['scope']} {r['type_p']}: {r['verdict']}: "
                                      f"{r['reason']}"), small))
    story.extend(_chart(fig.get("carrier_matrix", []), text("median_chart", lang) + ": "
                        + text("legend", lang)))
    section(text("matrix", lang), fig.get("carrier_matrix", []), COLUMNS["carrier_matrix"])
    pairs = [short_metrics(r) for r in fig.get("metrics", []) if r["per"] == "carrier_pair"]
    section(text("metrics", lang), pairs)
    story.append(Paragraph(escape(text("cond_note", lang)), small))
    section(text("routes", lang), fig.get("routes", []), COLUMNS["routes"])
    section(text("coverage", lang), fig.get("coverage", []), COLUMNS["coverage"])
    section(text("exclusions", lang), fig.get("exclusions", []), COLUMNS["exclusions"])
    section(text("methodology", lang), methodology_rows(data, lang),
            ("id", "method", "definition", "source", "used"))
    section(text("provenance", lang), [{"software": prov["software"],
                            "inventory sha256": prov["inventory"]["sha256"],
                            "chain head": prov["store_chain_head"]["head"],
                            "seed": prov["parameters"]["seed"]}])
    SimpleDocTemplate(str(path), pagesize=landscape(A4), title=text("title", lang),
                      author="ixmeter", creator="ixmeter", subject="",
                      invariant=1).build(story)


def _chart(matrix: list[dict[str, Any]], title: str) -> list[Any]:
    """Before/after median RTT per Type-P and carrier pair as a grouped bar chart."""
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors

    from analyzer.report.html import pairs as chart_pairs

    found = chart_pairs(matrix, "rtt_median_ms")
    if not found:
        return []
    names = [name for name, _, _ in found]
    series = [[float(before or 0.0) for _, before, _ in found],
              [float(after or 0.0) for _, _, after in found]]
    drawing = Drawing(700, 200)
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 40, 30, 620, 150
    chart.data = series
    chart.categoryAxis.categoryNames = names
    chart.categoryAxis.labels.fontSize = 6
    chart.bars[0].fillColor = colors.HexColor("#999999")
    chart.bars[1].fillColor = colors.HexColor("#3366cc")
    drawing.add(chart)
    drawing.add(String(40, 188, title, fontSize=8,
                       fontName=CJK_FONT if any(ord(c) > 127 for c in title) else "Helvetica"))
    return [drawing]
