"""Importers on hand-written sample files (tests/analyzer/data), bad rows with their lines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from analyzer.importers.atlas import parse_atlas
from analyzer.importers.common import End, Mapping, Problem
from analyzer.importers.csv_format import parse_csv
from analyzer.importers.fping import parse_fping
from analyzer.importers.ping import parse_ping
from analyzer.store import open_store
from analyzer.store.base import Query
from ixmeter.cli import main
from ixmeter.record import Result, Status

DATA = Path(__file__).parent / "data"
T0 = 1_767_225_600 * 10**9
MS = 1_000_000


def _text(name: str) -> str:
    return (DATA / name).read_text()


def test_csv_good_rows() -> None:
    rs, problems = parse_csv(_text("good.csv"), "good.csv", Mapping())
    assert problems == []
    assert [r.status for r in rs] == [Status.RECEIVED, Status.LOST, Status.RECEIVED,
                                      Status.RECEIVED]
    assert rs[0].rtt_ns == 12_500_000
    assert rs[2].sent_at_ns == T0 + 2_500_000_000
    assert rs[0].path_id == "s1/A>s3/B"
    assert rs[3].type_p.key() == "udp/v4/44/dscp0/862"
    assert rs[0].probe_id == "import-s1-A"


def test_csv_bad_rows_with_line_numbers() -> None:
    rs, problems = parse_csv(_text("bad.csv"), "bad.csv", Mapping())
    assert len(rs) == 2
    assert [(p.line, p.reason.split(":")[0]) for p in problems] == [
        (3, "'yesterday' is not an ISO 8601 time (write e.g. 2026-01-05T00"),
        (5, "column 'rtt_ms'"), (6, "column 'dst_site' is empty")]
    assert str(problems[0]).startswith("bad.csv:3: ")


def test_csv_wrong_header() -> None:
    _, problems = parse_csv("a,b\n1,2\n", "x.csv", Mapping())
    assert problems[0].line == 1


def test_ping_with_timestamps_loss_and_duplicates() -> None:
    m = Mapping(src=End("s1", "A"), dst=End("s3", "B"))
    rs, problems = parse_ping(_text("ping_d.txt"), "ping_d.txt", m)
    assert problems == []
    assert [r.seq for r in rs] == [1, 2, 3, 4, 5]
    assert [r.status for r in rs] == [Status.RECEIVED, Status.RECEIVED, Status.LOST,
                                      Status.RECEIVED, Status.LOST]
    assert rs[0].sent_at_ns == T0  # receive stamp minus RTT
    assert rs[1].dup == 1
    assert rs[2].sent_at_ns == T0 + 2 * 10**9  # placed by the interval from the first reply
    assert rs[0].type_p.key() == "icmp/v4/64/dscp0"
    assert rs[0].reply_ttl == 62


def test_ping_v6_needs_a_start_time() -> None:
    m = Mapping(src=End("s1", "A"), dst=End("s3", "B"))
    _, problems = parse_ping(_text("ping_v6.txt"), "ping_v6.txt", m)
    assert problems
    m.start_ns = T0
    rs, problems = parse_ping(_text("ping_v6.txt"), "ping_v6.txt", m)
    assert problems == []
    assert [r.status for r in rs] == [Status.RECEIVED, Status.LOST, Status.RECEIVED]
    assert rs[2].sent_at_ns == T0 + 2 * 10**9
    assert rs[0].type_p.ip_version == 6
    assert rs[0].rtt_ns == 412_000


def test_fping_summary_lines() -> None:
    m = Mapping(src=End("s1", "A"), start_ns=T0, interval_ns=10**9,
                by_addr={"198.18.3.10": End("s3", "A", "198.18.3.10"),
                         "198.18.67.10": End("s3", "B", "198.18.67.10")})
    rs, problems = parse_fping(_text("fping.txt"), "fping.txt", m)
    assert problems == []
    assert len(rs) == 8
    assert [r.rtt_ns for r in rs[:4]] == [12_500_000, None, 13_100_000, 12_900_000]
    assert all(r.lost for r in rs[4:])
    assert rs[3].sent_at_ns == T0 + 3 * 10**9


def test_fping_unmapped_address_is_a_problem() -> None:
    m = Mapping(src=End("s1", "A"), start_ns=T0)
    _, problems = parse_fping(_text("fping.txt"), "fping.txt", m)
    assert [p.line for p in problems] == [2, 3]


def test_atlas_ping_results() -> None:
    m = Mapping(by_probe={"6001": End("s1", "A")}, dst=End("s3", "B"))
    rs, problems = parse_atlas(_text("atlas.json"), "atlas.json", m)
    assert [p.reason for p in problems] == ["result [2]: not a ping result (type != 'ping')"]
    assert [r.status for r in rs] == [Status.RECEIVED, Status.LOST, Status.RECEIVED,
                                      Status.ERROR, Status.RECEIVED]
    assert rs[2].dup == 1
    assert rs[0].type_p.size == 56
    assert rs[0].probe_id == "atlas-6001"
    assert rs[4].sent_at_ns == T0 + 61 * 10**9


def test_import_cli_all_or_nothing_then_partial_then_idempotent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "import.db")
    assert main(["import", "--db", db, "--format", "csv", str(DATA / "bad.csv")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv:3:" in err
    assert "nothing imported" in err
    assert main(["import", "--db", db, "--format", "csv", "--partial",
                 str(DATA / "bad.csv"), str(DATA / "good.csv")]) == 0
    assert "imported 6 results" in capsys.readouterr().out
    assert main(["import", "--db", db, "--format", "csv", str(DATA / "good.csv")]) == 0
    assert "imported 0 results" in capsys.readouterr().out
    store = open_store(db)
    got = list(store.read_results(Query(T0, T0 + 60 * 10**9)))
    store.close()
    assert len(got) == 6


def test_import_cli_ping_with_mapping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "ping.db")
    code = main(["import", "--db", db, "--format", "ping", "--src", "s1/A", "--dst", "s3/B",
                 str(DATA / "ping_d.txt")])
    assert code == 0
    assert "imported 5 results" in capsys.readouterr().out
    assert main(["import", "--db", db, "--format", "ping", "--src", "s1",
                 str(DATA / "ping_d.txt")]) == 2
    assert "SITE/CARRIER" in capsys.readouterr().err


ANY = Mapping(src=End("s1", "A"), dst=End("s3", "B"), start_ns=T0)


@pytest.mark.parametrize("parse", [parse_csv, parse_ping, parse_fping, parse_atlas])
def test_any_text_parses_or_reports_problems(
        parse: Callable[[str, str, Mapping], tuple[list[Result], list[Problem]]]) -> None:
    """Garbage never raises: it becomes problems (hypothesis over text and line shapes)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    lines = st.sampled_from([
        "sent_at,src_site,src_carrier,dst_site,dst_carrier,method,seq,rtt_ms",
        "2026-01-01T00:00:00Z,s1,A,s3,B,icmp,0,1e400", "2026-01-01T00:00:00Z,s1,A,s3,B,icmp,-1,",
        "PING 198.18.3.10 (198.18.3.10) 56(84) bytes of data.",
        "[1e400] 64 bytes from 198.18.3.10: icmp_seq=1 ttl=62 time=1e999 ms",
        "64 bytes from x: icmp_seq=99999999999 ttl=1 time=0.1 ms",
        "99999999999 packets transmitted, 0 received",
        "198.18.3.10 : 1e400 - nan", "a\rb,\"c", '"unterminated',
        "9999-12-31T00:00:00Z,s1,A,s3,B,icmp,0,1",
        "[99999999999999] 64 bytes from a: icmp_seq=1 ttl=1 time=1 ms",
        "198.18.3.10 : 1.2.3 " + "9" * 400,
        "64 bytes from x: icmp_seq=1 ttl=1 time=" + "9" * 400 + " ms",
        '{"type": "ping", "dst_addr": "198.18.3.10", "prb_id": 1, "timestamp": 1e400, '
        '"result": [{"rtt": 1e400}]}', '{"type": "ping", "dst_addr": 1, "prb_id": [], '
        '"timestamp": "x", "result": [1]}', "[", "]", "{}", "nan"])

    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(st.lists(st.one_of(lines, st.text(max_size=40)), max_size=6))
    def check(chunks: list[str]) -> None:
        results, problems = parse("\n".join(chunks), "f", ANY)
        assert isinstance(results, list)
        assert isinstance(problems, list)

    check()
