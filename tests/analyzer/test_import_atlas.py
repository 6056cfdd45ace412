"""RIPE Atlas results of several firmware versions (fixtures written in Atlas's documented
result format, v4 and v6, around the 4570 size rule), with ripe.atlas.sagan as the oracle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from analyzer.importers.atlas import parse_atlas
from analyzer.importers.common import End, Mapping
from ixmeter.cli import main
from ixmeter.core.record import Method, Status

DATA = Path(__file__).parent / "data"
INV = str(DATA / "mini.yaml")
V6 = "2001:2:0:3008::10"


def _m(**kw: Any) -> Mapping:
    m = Mapping(by_probe={"6001": End("s1", "A")},
                by_addr={"198.18.3.10": End("s3", "A", "198.18.3.10"),
                         V6: End("s3", "B", V6),
                         "198.18.67.10": End("s3", "B", "198.18.67.10")})
    for k, v in kw.items():
        setattr(m, k, v)
    return m


def _of(rs: list[Any], ts: int, af: int = 4) -> list[Any]:
    """The records of the result that started at ``ts`` (Unix s), of one address family."""
    return [r for r in rs if ts * 10**9 <= r.sent_at_ns < (ts + 60) * 10**9
            and r.type_p.ip_version == af]


def _docs(name: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = json.loads((DATA / name).read_text())
    return docs


def test_sizes_by_the_firmware_rule_one_type_p_per_measurement() -> None:
    p = parse_atlas((DATA / "atlas_ping.json").read_text(), "a.json", _m())
    assert p.problems == []
    v4 = {r.type_p.key() for r in p.results if r.type_p.ip_version == 4}
    assert v4 == {"icmp/v4/20/dscp0"}  # fw 4460/4560 size 20 and fw 4570+ size 12: one msm
    assert {r.type_p.key() for r in p.results if r.type_p.ip_version == 6} == {
        "icmp/v6/20/dscp0"}


def test_every_ping_result_agrees_with_its_own_summary() -> None:
    p = parse_atlas((DATA / "atlas_ping.json").read_text(), "a.json", _m())
    assert len(p.checks) == 6
    assert all(c.agrees for c in p.checks), [str(c) for c in p.checks]
    assert [c.line for c in p.checks] == [2, 4, 6, 8, 10, 12]


def test_source_address_and_reply_ttl_are_kept() -> None:
    rs = parse_atlas((DATA / "atlas_ping.json").read_text(), "a.json", _m()).results
    fw4560 = _of(rs, 1767225840)
    assert {r.src_addr for r in fw4560} == {"198.18.1.10"}
    assert [r.reply_ttl for r in fw4560] == [60, 59, 60]
    v6 = [r for r in rs if r.type_p.ip_version == 6]
    assert [r.src_addr for r in v6] == ["2001:2:0:1008::10", "2001:2:0:1008::10",
                                        "2001:2:0:1008::11"]
    assert [r.status for r in v6] == [Status.LOST, Status.RECEIVED, Status.RECEIVED]
    assert v6[1].path_id == "s1/A>s3/B"


def test_duplicate_after_a_timeout_counts_on_the_answered_packet() -> None:
    rs = parse_atlas((DATA / "atlas_ping.json").read_text(), "a.json", _m()).results
    fw4730 = _of(rs, 1767226320)
    assert [(r.status, r.dup) for r in fw4730] == [(Status.RECEIVED, 1), (Status.LOST, 0),
                                                   (Status.RECEIVED, 0)]


def test_errors_are_error_records() -> None:
    rs = parse_atlas((DATA / "atlas_ping.json").read_text(), "a.json", _m()).results
    last = _of(rs, 1767226560)
    assert [r.status for r in last] == [Status.ERROR, Status.LOST, Status.RECEIVED]
    assert "Network is unreachable" in (last[0].error_detail or "")


def test_against_sagan() -> None:
    """Packet size, family, RTTs, duplicates, source address and TTL as sagan reads them."""
    sagan = pytest.importorskip("ripe.atlas.sagan")
    rs = parse_atlas((DATA / "atlas_ping.json").read_text(), "a.json", _m()).results
    for doc in _docs("atlas_ping.json"):
        theirs = sagan.PingResult(doc)
        mine = _of(rs, doc["timestamp"], theirs.af)
        assert {r.type_p.size for r in mine} == {theirs.packet_size + 8}
        answered = [pk for pk in theirs.packets if pk.rtt is not None and not pk.dup]
        assert [r.rtt_ns for r in mine if r.rtt_ns is not None] == \
            [round(pk.rtt * 1e6) for pk in answered]
        assert sum(r.dup for r in mine) == sum(1 for pk in theirs.packets if pk.dup)
        assert [r.reply_ttl for r in mine if r.rtt_ns is not None] == \
            [pk.ttl for pk in answered]
        assert [r.src_addr for r in mine if r.rtt_ns is not None] == \
            [pk.source_address or "0.0.0.0" for pk in answered]


def test_size_option_is_honoured_and_checked() -> None:
    text = (DATA / "atlas_ping.json").read_text()
    p = parse_atlas(text, "a.json", _m(size=20))
    assert p.problems == []
    p = parse_atlas(text, "a.json", _m(size=56))
    assert len(p.problems) == 6
    assert "--size says 56" in p.problems[0].reason


def test_old_firmware_and_errors_are_located_by_index() -> None:
    text = (DATA / "atlas_mixed.json").read_text()
    p = parse_atlas(text, "m.json", _m())
    where = [(x.line, x.reason.split(":")[0]) for x in p.problems]
    assert where == [(2, "result [0]"), (4, "result [1]"), (5, "result [2]"),
                     (12, "result [4]")]
    reasons = [x.reason for x in p.problems]
    assert "give --size" in reasons[0]
    assert "firmware 1" in reasons[1]
    assert "summary" in reasons[1]
    assert "firmware 0" in reasons[2]
    assert "type 'dns'" in reasons[3]
    p = parse_atlas(text, "m.json", _m(size=20))
    old = [r for r in p.results if r.method is Method.ICMP]
    assert [r.rtt_ns for r in old] == [12_000_000, 12_100_000]
    assert {r.type_p.key() for r in old} == {"icmp/v4/20/dscp0"}


def test_traceroute_results_are_route_evidence() -> None:
    p = parse_atlas((DATA / "atlas_mixed.json").read_text(), "m.json", _m(size=20))
    traces = [r for r in p.results if r.method is Method.TRACEROUTE]
    assert len(traces) == 3  # three replies per hop: three Paris traces of one flow
    assert [[h.addr for h in t.hops] for t in traces] == [
        ["198.18.1.1", None, "198.18.67.10"], ["198.18.1.1", "198.18.64.1", "198.18.67.10"],
        ["198.18.1.1", None, None]]
    assert [t.status for t in traces] == [Status.RECEIVED, Status.RECEIVED, Status.LOST]
    assert traces[0].type_p.key() == "udp/v4/48/dscp0"
    assert traces[1].rtt_ns == 4_100_000


def test_json_lines_and_a_broken_array(tmp_path: Path) -> None:
    docs = _docs("atlas_ping.json")
    lines = "\n".join(json.dumps(d) for d in docs[:2]) + "\n{broken\n"
    p = parse_atlas(lines, "l.json", _m())
    assert [x.line for x in p.problems] == [3]
    assert len(p.results) == 6
    p = parse_atlas(json.dumps(docs[:2], indent=1)[:-3] + ",,]", "b.json", _m())
    assert p.problems[0].reason.startswith("not JSON")


def test_cli_imports_atlas_into_a_store(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "atlas.db")
    args = ["import", "--db", db, "--inventory", INV, "--format", "atlas", "--probe-map",
            "6001=s1/A", "--map", "198.18.3.10=s3/A", "--map", f"{V6}=s3/B", "--map",
            "198.18.67.10=s3/B"]
    assert main([*args, str(DATA / "atlas_ping.json")]) == 0
    out = capsys.readouterr().out
    assert "imported 18 results" in out
    assert main([*args, str(DATA / "atlas_mixed.json")]) == 2
    assert "atlas_mixed.json:4: result [1]: firmware 1" in capsys.readouterr().err


def test_imported_traceroutes_show_in_the_report_routes(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    from analyzer.baselines import parse_window
    from analyzer.report.data import route_rows
    from analyzer.store import open_store
    from inventory.loader import load
    from inventory.topology import Topology

    db = str(tmp_path / "routes.db")
    assert main(["import", "--db", db, "--inventory", INV, "--format", "atlas", "--partial",
                 "--size", "20", "--probe-map", "6001=s1/A", "--map", "198.18.3.10=s3/A",
                 "--map", "198.18.67.10=s3/B", str(DATA / "atlas_mixed.json")]) == 0
    capsys.readouterr()
    store = open_store(db)
    try:
        rows = route_rows(store, parse_window("2025-12-31T00:00:00Z/2026-01-02T00:00:00Z"),
                          Topology(load(Path(INV))))
    finally:
        store.close()
    assert [(r["path"], r["type_p"], r["route"], r["traces"]) for r in rows] == [
        ("s1/A>s3/B", "udp/v4/48/dscp0", "A > * > *", 1),
        ("s1/A>s3/B", "udp/v4/48/dscp0", "A > * > s3", 1),
        ("s1/A>s3/B", "udp/v4/48/dscp0", "A > B > s3", 1)]
