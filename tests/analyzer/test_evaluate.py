"""End to end on a real SQLite store: inventory targets -> verdict rows, CLI and reports."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from analyzer.baselines import parse_window
from analyzer.evaluate import Params, Row, evaluate, mix_distance
from analyzer.stats.verdicts import Verdict
from analyzer.store import open_store
from analyzer.store.base import Store
from analyzer.synthetic.results import MIN_NS, STAMP_V4, T0, results
from inventory.loader import load
from ixmeter.cli import main
from ixmeter.core.record import Hop, Method, Result, Status, TimestampSource, TypeP
from ixmeter.core.wire import Batch

Rows = dict[tuple[str, str, str], Row]
INV = Path(__file__).parent / "data" / "mini.yaml"
DAY, HOUR = 1440 * MIN_NS, 60 * MIN_NS
BASELINE = "2026-01-01T00:00:00Z/2026-01-02T00:00:00Z"
CURRENT = "2026-01-02T00:00:00Z/2026-01-04T00:00:00Z"
BUSY = 12 * HOUR  # 20:00 Asia/Shanghai


def _put(store: Store, name: str, rs: list[Result]) -> None:
    store.write_batch(Batch(rs[0].probe_id, name, tuple(rs)), 0)


def _fill(db: Path | str) -> None:
    store = open_store(db)
    kw: dict[str, Any] = {"minutes": 60, "per_minute": 10, "spread": 0.1}
    big = TypeP("icmp", 4, 128)
    for day in (0, 1):  # baseline day, busy hour and the hour after
        t = T0 + day * HOUR * 3
        _put(store, f"b-ab-{day}", list(results("s1", "A", "s3", "B", start_ns=t,
                                                median_ms=30, seed=1 + day, **kw)))
        _put(store, f"b-ba-{day}", list(results("s1", "B", "s3", "A", start_ns=t,
                                                median_ms=30, seed=3 + day, **kw)))
        _put(store, f"b-big-{day}", list(results("s3", "A", "s1", "B", start_ns=t,
                                                 median_ms=30, seed=5 + day, **kw)))
    for day in (1, 2):  # current: two days, in the busy hours
        t = T0 + day * DAY + BUSY
        _put(store, f"c-ab-{day}", list(results("s1", "A", "s3", "B", start_ns=t,
                                                median_ms=3, seed=10 + day, **kw)))
        _put(store, f"c-ba-{day}", list(results("s1", "B", "s3", "A", start_ns=t,
                                                median_ms=9, seed=20 + day, **kw)))
        _put(store, f"c-big-{day}", list(results("s3", "A", "s1", "B", start_ns=t,
                                                 median_ms=3, type_p=big, seed=30 + day,
                                                 **kw)))
        _put(store, f"c-intra-{day}", list(results("s1", "A", "s2", "A", start_ns=t,
                                                   median_ms=2.5, seed=40 + day, **kw)))
        _put(store, f"c-owd-{day}", list(results("s1", "A", "s2", "B", start_ns=t,
                                                 median_ms=0.6, method=Method.STAMP,
                                                 type_p=STAMP_V4, one_way=True,
                                                 seed=50 + day, **kw)))
    trace = Result(probe_id="s1-a", method=Method.TRACEROUTE, src_site="s1", src_carrier="A",
                   dst_site="s3", dst_carrier="B", src_addr="198.18.1.10",
                   dst_addr="198.18.67.10", type_p=TypeP("udp", 4, 60), seq=0,
                   sent_at_ns=T0 + DAY + BUSY, status=Status.RECEIVED, tmax_ns=3 * 10**9,
                   ts_source=TimestampSource.KERNEL, rtt_ns=3_000_000,
                   hops=(Hop(1, "198.18.1.1", 1_000_000), Hop(2, None),
                         Hop(3, "198.18.67.10", 3_000_000)))
    _put(store, "trace", [trace])
    store.close()


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("evaluate") / "store.db"
    _fill(path)
    return path


@pytest.fixture(scope="module")
def rows(db: Path) -> Rows:
    store = open_store(db)
    ev = evaluate(store, load(INV), Params(parse_window(CURRENT), parse_window(BASELINE),
                                           seed=5))
    store.close()
    return {(r.target, r.scope, r.type_p): r for r in ev.rows}


def _verdict(rows: Rows, *key: str) -> Verdict:
    return rows[(key[0], key[1], key[2])].decision.verdict


def test_relative_latency_per_carrier_pair(rows: Rows) -> None:
    assert _verdict(rows, "latency", "A>B", "icmp/v4/64/dscp0") is Verdict.PASS
    assert _verdict(rows, "latency", "B>A", "icmp/v4/64/dscp0") is Verdict.FAIL


def test_mismatched_type_p_not_evaluable(rows: Rows) -> None:
    row = rows[("latency", "A>B", "icmp/v4/128/dscp0")]
    assert row.decision.verdict is Verdict.NOT_EVALUABLE
    assert "different Type-P" in row.decision.reason


def test_absolute_one_way_per_city_pair(rows: Rows) -> None:
    assert _verdict(rows, "owd-same-city", "c1>c1", "udp/v4/44/dscp0/862") is Verdict.PASS


def test_busy_hour_reference(rows: Rows) -> None:
    row = rows[("busy-reference", "A>B", "icmp/v4/64/dscp0")]
    assert row.decision.verdict is Verdict.PASS, row.decision.reason
    missing = rows[("busy-reference", "B>A", "icmp/v4/64/dscp0")]
    assert missing.decision.verdict is Verdict.NOT_EVALUABLE


def test_declared_baseline_row(rows: Rows) -> None:
    row = rows[("declared-latency", "all", "icmp/v4/64/dscp0")]
    assert str(row.baseline_source).startswith("declared: A plan")


def test_busy_hours_exclude_other_hours(db: Path) -> None:
    store = open_store(db)
    inv = load(INV)
    t = next(t for t in inv.policy_targets if t.id == "busy-reference")
    quiet = t.aggregation.model_copy(update={"busy_hours": [3]})
    inv2 = inv.model_copy(update={"policy_targets": [t.model_copy(update={"aggregation":
                                                                          quiet})]})
    ev = evaluate(store, inv2, Params(parse_window(CURRENT)))
    store.close()
    assert {r.decision.verdict for r in ev.rows} == {Verdict.NOT_EVALUABLE}


def test_window_mix_note() -> None:
    a, b = parse_window(BASELINE), parse_window(CURRENT)
    assert mix_distance(a, a) == 0
    assert mix_distance(a, b) > 0.1
    week = parse_window("2026-01-05T00:00:00Z/2026-01-12T00:00:00Z")
    assert mix_distance(week, replace(week, start_ns=week.start_ns + 7 * DAY,
                                      end_ns=week.end_ns + 7 * DAY)) == 0


def _analyze(db: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    code = main(["analyze", "--db", str(db), "--inventory", str(INV), "--baseline", BASELINE,
                 "--current", CURRENT, "--seed", "7", *extra])
    assert code == 0
    return capsys.readouterr().out


def test_analyze_json_is_byte_identical(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = _analyze(db, capsys, "--json")
    assert first == _analyze(db, capsys, "--json")
    doc = json.loads(first)
    v = next(x for x in doc["verdicts"] if x["target"] == "latency" and x["scope"] == "A>B"
             and x["type_p"] == "icmp/v4/64/dscp0")
    assert {"target", "scope", "statistic", "baseline", "current", "ratio", "verdict",
            "reason"} <= set(v)
    assert v["ratio"]["low"] <= v["ratio"]["point"] <= v["ratio"]["high"]
    assert v["bootstrap"]["replicates"] == 2000
    assert doc["provenance"]["parameters"]["seed"] == 7
    owd = next(x for x in doc["verdicts"] if x["target"] == "owd-same-city")
    assert "interval" in owd
    assert owd["interval"]["clock_error"] == 0.02


def test_analyze_table(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _analyze(db, capsys, "--target", "latency")
    assert "PASS" in out
    assert "FAIL" in out
    assert "owd-same-city" not in out


def test_analyze_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["analyze", "--db", str(tmp_path / "none.db"), "--current", "yesterday"])
    assert code == 2
    assert "FROM/TO" in capsys.readouterr().err


def test_report_writes_every_output_reproducibly(db: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    args = ["report", "--db", str(db), "--inventory", str(INV), "--baseline", BASELINE,
            "--current", CURRENT, "--seed", "7"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert "wrote report.json" in capsys.readouterr().out
    analyzed = _analyze(db, capsys, "--json")
    a, b = tmp_path / "a", tmp_path / "b"
    for name in ("report.json", "report.pdf", "report.html", "verdicts.csv", "metrics.csv",
                 "carrier_matrix.csv", "coverage.csv", "routes.csv", "exclusions.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "report.json").read_text() == analyzed
    assert (a / "report.pdf").read_bytes().startswith(b"%PDF")
    page = (a / "report.html").read_text()
    assert "<script" not in page
    assert 'src="http' not in page
    assert "Miettinen-Nurminen" in page
    assert "A,B," in (a / "carrier_matrix.csv").read_text().replace("baseline,", "")
    assert "current,s1/A>s3/B,traceroute,udp/v4/60/dscp0,A > * > s3,,1," in \
        (a / "routes.csv").read_text()
    metrics = (a / "metrics.csv").read_text().splitlines()
    assert "rtt_median_ms_conditional" in metrics[0]
    assert "rtt_p95_ms_inf" in metrics[0]
    assert any(line.startswith("current,icmp,icmp/v4/64/dscp0,carrier_pair,A>B,")
               for line in metrics)


def test_default_inventory_and_its_measured_baseline(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "hunan.db"
    store = open_store(db)
    base_t = T0 + 9 * DAY  # 2026-01-10, inside the inventory's baseline window
    cur_t = T0 + 59 * DAY  # 2026-03-01
    kw: dict[str, Any] = {"minutes": 30, "per_minute": 10, "spread": 0.1}
    _put(store, "b", list(results("cs-ixp", "CT", "yy-furongyun", "CU", start_ns=base_t,
                                  median_ms=25, **kw)))
    _put(store, "c", list(results("cs-ixp", "CT", "yy-furongyun", "CU", start_ns=cur_t,
                                  median_ms=2, **kw)))
    _put(store, "x", list(results("nowhere", "CT", "yy-furongyun", "CU", start_ns=cur_t,
                                  median_ms=2, **kw)))
    store.close()
    code = main(["analyze", "--db", str(db), "--current",
                 "2026-03-01T00:00:00+08:00/2026-03-02T00:00:00+08:00", "--json",
                 "--target", "hn-inter-carrier-latency"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    [row] = doc["verdicts"]
    assert (row["scope"], row["verdict"]) == ("CT>CU", "PASS")
    assert row["baseline"]["source"] == "before-direct-connect"
    assert doc["provenance"]["inventory"]["file"] == "hunan.yaml"
    assert doc["exclusions"] == [{"path": "nowhere/CT>yy-furongyun/CU", "method": "icmp",
                                  "type_p": "icmp/v4/64/dscp0", "reason":
                                  "site not in the inventory", "minutes": 30, "records": 300}]


def test_one_way_details_are_json_safe_and_in_ms(db: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(_analyze(db, capsys, "--json", "--target", "owd-same-city"))
    [row] = doc["verdicts"]
    dirs = row["details"]["directions"]
    assert dirs["fwd"]["verdict"] == "PASS"
    assert 0.2 < dirs["fwd"]["value"] < 0.4  # half of a 0.6 ms RTT, in ms


def test_coarser_units(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(_analyze(db, capsys, "--json", "--unit-minutes", "5",
                              "--target", "latency"))
    row = next(v for v in doc["verdicts"] if v["scope"] == "A>B"
               and v["type_p"] == "icmp/v4/64/dscp0")
    assert row["verdict"] == "PASS"
    assert row["bootstrap"]["block_minutes"] % 5 == 0
    assert doc["provenance"]["parameters"]["unit_minutes"] == 5
    assert main(["analyze", "--db", str(db), "--current", CURRENT, "--unit-minutes", "7"]) == 2
    assert "does not divide a day" in capsys.readouterr().err


def test_imported_baseline_in_a_separate_store(db: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["sent_at,src_site,src_carrier,dst_site,dst_carrier,method,seq,rtt_ms"]
    for i in range(600):  # 20 minutes x 30 packets around 100 ms, one lost in fifty
        t = f"2025-06-01T00:{i // 30:02d}:{i % 30 * 2:02d}Z"
        rtt = "" if i % 50 == 7 else f"{100 + (i % 7) * 0.1:.1f}"
        lines.append(f"{t},s1,A,s3,B,icmp,{i},{rtt}")
    old = tmp_path / "old-measurements.csv"
    old.write_text("\n".join(lines) + "\n")
    base_db = tmp_path / "base.db"
    assert main(["import", "--db", str(base_db), "--inventory", str(INV), "--format", "csv",
                 str(old)]) == 0
    capsys.readouterr()
    assert main(["analyze", "--db", str(db), "--inventory", str(INV), "--current", CURRENT,
                 "--baseline-db", str(base_db), "--target", "latency-imported", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    row = next(v for v in doc["verdicts"] if v["type_p"] == "icmp/v4/64/dscp0")
    assert row["baseline"]["n"] == 588
    assert row["baseline"]["source"] == "imported: old-measurements.csv"
    assert row["verdict"] == "PASS"  # 100 ms -> 3 and 9 ms: ratio < 0.1
    assert row["distribution"] == "conditional"


def test_window_notes() -> None:
    from analyzer.evaluate import window_notes

    cur = parse_window(CURRENT)
    overlapping = parse_window("2026-01-03T00:00:00Z/2026-01-05T00:00:00Z")
    notes = window_notes(cur, [overlapping, parse_window(BASELINE)])
    assert any("overlaps" in n for n in notes)
    assert any("weekday/hour mix" in n for n in notes)
    assert window_notes(cur, [replace(cur, start_ns=cur.start_ns - 7 * DAY,
                                      end_ns=cur.end_ns - 7 * DAY)]) == []
