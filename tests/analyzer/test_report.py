"""The report tells the truth: methods as the code ran them, both languages, target names and
source documents with a verdict line first, every CSV with its header, method and Type-P, and
coverage of both windows; the methods table of docs/methodology.md is the registry's."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from analyzer.methods import METHODS, markdown_table
from ixmeter.cli import main
from tests.analyzer.test_evaluate import BASELINE, CURRENT, INV, _fill

DOCS = Path(__file__).parents[2] / "docs" / "methodology.md"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report-store") / "store.db"
    _fill(path)
    return path


@pytest.fixture(scope="module")
def report(db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert main(["report", "--db", str(db), "--inventory", str(INV), "--baseline", BASELINE,
                 "--current", CURRENT, "--seed", "7", "--out", str(out / "zh")]) == 0
    assert main(["report", "--db", str(db), "--inventory", str(INV), "--baseline", BASELINE,
                 "--current", CURRENT, "--seed", "7", "--lang", "en", "--out",
                 str(out / "en")]) == 0
    return out


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_loss_interval_named_as_the_code_computes_it(report: Path) -> None:
    doc = json.loads((report / "zh" / "report.json").read_text())
    loss = [v for v in doc["verdicts"] if v["statistic"] == "loss_ratio" and v["method"]]
    assert loss
    assert {v["method"]["id"] for v in loss} <= {"loss-ratio-score", "wilson",
                                                 "zero-loss-bound"}
    page = (report / "zh" / "report.html").read_text()
    assert "Pearson dispersion of per-minute losses" not in page
    assert METHODS["loss-ratio-score"].citation in page
    for v in doc["verdicts"]:
        if v["method"]:
            assert v["method"]["citation"] == METHODS[v["method"]["id"]].citation


def test_both_languages_target_names_documents_and_a_line_per_target_first(
        report: Path) -> None:
    for lang, first, second in (("zh", "各目标判定", "Verdict per target"),
                                ("en", "Verdict per target", "各目标判定")):
        page = (report / lang / "report.html").read_text()
        assert f'<html lang="{lang}">' in page
        assert page.index(first) < page.index(second)
        assert "Latency down 80%" in page  # the inventory's names, both languages
        assert "时延" in page
        assert "A plan" in page
        assert "文件" in page
        assert page.index("latency — ") < page.index("<table>")
    targets = _csv(report / "zh" / "targets.csv")
    row = next(t for t in targets if t["target"] == "latency")
    assert (row["name_en"], row["document_en"], row["issuer"]) == ("Latency down 80%",
                                                                   "A plan", "Someone")
    assert row["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE", "NOT EVALUABLE")
    assert row["method"] == "icmp"


def test_every_csv_has_a_header_method_and_type_p(report: Path) -> None:
    from analyzer.report.data import COLUMNS

    for name, columns in COLUMNS.items():
        text = (report / "zh" / f"{name}.csv").read_text()
        assert text.splitlines()[0] == ",".join(columns), name
        assert "method" in columns, name
        assert "type_p" in columns, name
    assert _csv(report / "zh" / "exclusions.csv") == []  # empty, but with its header
    metrics = _csv(report / "zh" / "metrics.csv")
    assert {m["type_p"] for m in metrics} >= {"icmp/v4/64/dscp0", "icmp/v4/128/dscp0"}


def test_coverage_of_both_windows(report: Path) -> None:
    coverage = _csv(report / "zh" / "coverage.csv")
    assert {c["window"] for c in coverage} == {"baseline", "current"}


def test_pdf_in_each_language_is_reproducible(report: Path, db: Path, tmp_path: Path) -> None:
    assert main(["report", "--db", str(db), "--inventory", str(INV), "--baseline", BASELINE,
                 "--current", CURRENT, "--seed", "7", "--lang", "en", "--out",
                 str(tmp_path)]) == 0
    assert (tmp_path / "report.pdf").read_bytes() == (report / "en" / "report.pdf").read_bytes()
    assert (report / "zh" / "report.pdf").read_bytes() != (report / "en" /
                                                           "report.pdf").read_bytes()
    assert b"STSong-Light" in (report / "zh" / "report.pdf").read_bytes()


def test_methodology_doc_carries_the_registry_table() -> None:
    text = DOCS.read_text()
    start, end = "<!-- methods:start -->\n", "<!-- methods:end -->"
    assert text[text.index(start) + len(start):text.index(end)] == markdown_table()


def test_analyze_help_says_95_percent(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    out = capsys.readouterr().out
    assert "95% intervals" in out
    assert "%%" not in out


def test_analyze_table_starts_with_a_line_per_target(
        db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "--db", str(db), "--inventory", str(INV), "--baseline", BASELINE,
                 "--current", CURRENT, "--target", "latency"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("latency — Latency down 80%: ")
    assert first.endswith("A plan (Someone, 2024)")
