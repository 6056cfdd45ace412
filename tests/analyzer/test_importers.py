"""Importers on hand-written sample files (tests/analyzer/data): each distortion of issue 16 has a
test here (real ping and fping output: test_import_real.py; RIPE Atlas: test_import_atlas.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analyzer.importers.common import End, Mapping, Parsed
from analyzer.importers.csv_format import parse_csv
from analyzer.importers.fping import parse_fping
from analyzer.importers.ping import parse_ping
from analyzer.store import open_store
from analyzer.store.base import Query
from ixmeter.cli import main
from ixmeter.core.record import ErrorKind, Status

DATA = Path(__file__).parent / "data"
INV = str(DATA / "mini.yaml")
T0 = 1_767_225_600 * 10**9
MS = 1_000_000
SITES = {"s1": frozenset({"A", "B"}), "s2": frozenset({"A", "B"}), "s3": frozenset({"A", "B"})}


def _text(name: str) -> str:
    return (DATA / name).read_text()


def _m(**kw: Any) -> Mapping:
    m = Mapping(src=End("s1", "A"), dst=End("s3", "B"), sites=SITES)
    for k, v in kw.items():
        setattr(m, k, v)
    return m


# --- csv ---------------------------------------------------------------------------------

def test_csv_good_rows() -> None:
    p = parse_csv(_text("good.csv"), "good.csv", _m())
    assert p.problems == []
    rs = p.results
    assert [r.status for r in rs] == [Status.RECEIVED, Status.LOST, Status.RECEIVED,
                                      Status.RECEIVED]
    assert rs[0].rtt_ns == 12_500_000
    assert rs[2].sent_at_ns == T0 + 2_500_000_000
    assert rs[0].path_id == "s1/A>s3/B"
    assert rs[3].type_p.key() == "udp/v4/44/dscp0/862"
    assert rs[0].probe_id == "import-s1-A"
    assert p.lines == [2, 3, 4, 5]


def test_csv_bad_rows_with_line_numbers() -> None:
    p = parse_csv(_text("bad.csv"), "bad.csv", _m())
    assert len(p.results) == 2
    assert [(x.line, x.reason.split(":")[0]) for x in p.problems] == [
        (3, "column 'sent_at'"), (5, "column 'rtt_ms'"), (6, "column 'dst_site' is empty")]
    assert str(p.problems[0]).startswith("bad.csv:3: ")


def test_csv_wrong_header() -> None:
    p = parse_csv("a,b\n1,2\n", "x.csv", _m())
    assert p.problems[0].line == 1


HEAD = "sent_at,src_site,src_carrier,dst_site,dst_carrier,method,seq,rtt_ms\n"


def test_csv_sites_and_carriers_must_be_in_the_inventory() -> None:
    text = HEAD + ("2026-01-01T00:00:00Z,nowhere,A,s3,B,icmp,0,1\n"
                   "2026-01-01T00:00:01Z,s1,ZZ,s3,B,icmp,1,1\n"
                   "2026-01-01T00:00:02Z,s1,A,s3,B,icmp,2,1\n")
    p = parse_csv(text, "x.csv", _m())
    assert [x.line for x in p.problems] == [2, 3]
    assert "site 'nowhere' is not in the inventory" in p.problems[0].reason
    assert "carrier 'ZZ'" in p.problems[1].reason
    assert len(p.results) == 1


def test_csv_time_without_offset_is_refused_unless_a_zone_is_given() -> None:
    text = HEAD + "2026-01-01T20:00:00,s1,A,s3,B,icmp,0,1\n"
    p = parse_csv(text, "x.csv", _m())
    assert p.results == []
    assert "no UTC offset" in p.problems[0].reason
    assert "--tz" in p.problems[0].reason
    p = parse_csv(text, "x.csv", _m(tz="Asia/Shanghai"))
    assert p.results[0].sent_at_ns == T0 + 12 * 3600 * 10**9  # 20:00 +08:00 = 12:00 UTC
    p = parse_csv(HEAD + "2026-03-08T02:30:00,s1,A,s3,B,icmp,0,1\n", "x.csv",
                  _m(tz="America/New_York"))
    assert "DST" in p.problems[0].reason


def test_csv_rtt_above_tmax_is_refused_not_cut() -> None:
    p = parse_csv(HEAD + "2026-01-01T00:00:00Z,s1,A,s3,B,icmp,0,4000\n", "x.csv", _m())
    assert p.results == []
    assert "Tmax" in p.problems[0].reason


def test_import_cli_all_or_nothing_then_partial_then_idempotent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "import.db")
    base = ["import", "--db", db, "--inventory", INV, "--format", "csv"]
    assert main([*base, str(DATA / "bad.csv")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv:3:" in err
    assert "nothing imported" in err
    assert main([*base, "--partial", str(DATA / "bad.csv"), str(DATA / "good.csv")]) == 0
    out = capsys.readouterr().out
    assert "imported 5 results" in out
    assert "1 repeated in the input" in out
    assert main([*base, str(DATA / "good.csv")]) == 0
    assert "imported 0 results" in capsys.readouterr().out
    store = open_store(db)
    got = list(store.read_results(Query(T0, T0 + 60 * 10**9)))
    store.close()
    assert len(got) == 5


def test_csv_duplicate_rows_are_stored_once_and_counted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    row = "2026-01-01T00:00:00Z,s1,A,s3,B,icmp,0,12.5\n"
    f = tmp_path / "dup.csv"
    f.write_text(HEAD + row + row + "2026-01-01T00:00:01Z,s1,A,s3,B,icmp,1,\n")
    db = str(tmp_path / "d.db")
    assert main(["import", "--db", db, "--inventory", INV, "--format", "csv", str(f)]) == 0
    assert "imported 2 results" in capsys.readouterr().out
    clash = tmp_path / "clash.csv"
    clash.write_text(HEAD + row + row.replace("12.5", "13.5"))
    assert main(["import", "--db", db, "--inventory", INV, "--format", "csv",
                 str(clash)]) == 2
    assert "clash.csv:3: same path, Type-P, seq and time as" in capsys.readouterr().err


def test_csv_unknown_site_fails_the_cli(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "x.csv"
    f.write_text(HEAD + "2026-01-01T00:00:00Z,s1,A,s9,B,icmp,0,12.5\n")
    assert main(["import", "--db", str(tmp_path / "x.db"), "--inventory", INV, "--format",
                 "csv", str(f)]) == 2
    assert "x.csv:2:" in capsys.readouterr().err


class _Recorder:
    """A real store whose write calls are counted."""

    def __init__(self, store: Any) -> None:
        self.store, self.calls = store, []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if name.startswith("write_batch"):
            def call(*a: Any, **kw: Any) -> Any:
                self.calls.append((name, len(a[0]) if name == "write_batches" else 1))
                return attr(*a, **kw)
            return call
        return attr


def test_one_import_is_one_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    import analyzer.importers.cli as cli
    import analyzer.store as stores

    recorders: list[_Recorder] = []
    real = stores.open_store

    def opened(target: Any, *a: Any) -> Any:
        recorders.append(_Recorder(real(target, *a)))
        return recorders[-1]

    monkeypatch.setattr(stores, "open_store", opened)
    monkeypatch.setattr(cli, "BATCH", 2)
    assert main(["import", "--db", str(tmp_path / "t.db"), "--inventory", INV, "--format",
                 "csv", str(DATA / "good.csv")]) == 0
    assert recorders[0].calls == [("write_batches", 2)]  # 4 results, 2 a batch: one call


# --- ping ---------------------------------------------------------------------------------

def test_ping_with_timestamps_loss_and_duplicates() -> None:
    p = parse_ping(_text("ping_d.txt"), "ping_d.txt", _m())
    assert p.problems == []
    rs = p.results
    assert [r.seq for r in rs] == [1, 2, 3, 4, 5]
    assert [r.status for r in rs] == [Status.RECEIVED, Status.RECEIVED, Status.LOST,
                                      Status.RECEIVED, Status.LOST]
    assert rs[0].sent_at_ns == T0  # receive stamp minus RTT
    assert rs[1].dup == 1
    assert rs[2].sent_at_ns == T0 + 2 * 10**9  # between its neighbours' send times
    assert rs[0].type_p.key() == "icmp/v4/64/dscp0"
    assert rs[0].reply_ttl == 62
    [check] = p.checks
    assert check.agrees
    assert check.line == 8


def test_ping_v6_needs_a_start_time() -> None:
    p = parse_ping(_text("ping_v6.txt"), "ping_v6.txt", _m())
    assert p.problems
    assert "--start" in p.problems[0].reason
    p = parse_ping(_text("ping_v6.txt"), "ping_v6.txt", _m(start_ns=T0))
    assert p.problems == []
    rs = p.results
    assert [r.status for r in rs] == [Status.RECEIVED, Status.LOST, Status.RECEIVED]
    assert rs[2].sent_at_ns == T0 + 2 * 10**9
    assert rs[0].type_p.ip_version == 6
    assert rs[0].rtt_ns == 412_000


PING = """PING 198.18.3.10 (198.18.3.10) 56(84) bytes of data.
64 bytes from 198.18.3.10: icmp_seq=1 ttl=62 time=20.1 ms
64 bytes from 198.18.3.10: icmp_seq=2 ttl=62 time=2O.1 ms
64 bytes from 198.18.3.10: icmp_seq=3 ttl=62 time=20.3 ms

--- 198.18.3.10 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 2003ms
rtt min/avg/max/mdev = 20.100/20.200/20.300/0.082 ms
"""


def test_ping_unreadable_reply_is_refused_never_lost() -> None:
    p = parse_ping(PING, "p.txt", _m(start_ns=T0))
    assert [(x.line, "2O.1" in x.reason) for x in p.problems] == [(3, True)]
    assert [(r.seq, r.status) for r in p.results] == [(1, Status.RECEIVED),
                                                      (3, Status.RECEIVED)]
    assert not p.checks[0].agrees
    assert "refused" in p.checks[0].why


def test_ping_truncated_reply_without_seq_stores_no_losses() -> None:
    text = PING.replace("64 bytes from 198.18.3.10: icmp_seq=2 ttl=62 time=2O.1 ms",
                        "64 bytes from 198.18.3.10: icmp_se")
    p = parse_ping(text, "p.txt", _m(start_ns=T0))
    assert not any(r.lost for r in p.results)
    assert any("which packets were lost is unknown" in x.reason for x in p.problems)


def test_ping_d_lost_packets_between_their_neighbours_real_send_times() -> None:
    """ping -i 0.2 really sends every ~204 ms: a lost packet is placed between the real send
    times of the packets around it, never before the one that preceded it."""
    lines = ["PING 198.18.3.10 (198.18.3.10) 56(84) bytes of data."]
    for seq in range(1, 101):
        if seq % 10 == 0 and seq < 100:
            continue
        recv = T0 + (seq - 1) * 204 * MS + 20 * MS
        lines.append(f"[{recv // 10**9}.{recv % 10**9 // 1000:06d}] 64 bytes from "
                     f"198.18.3.10: icmp_seq={seq} ttl=62 time=20.0 ms")
    lines += ["", "--- 198.18.3.10 ping statistics ---",
              "100 packets transmitted, 91 received, 9% packet loss, time 20196ms",
              "rtt min/avg/max/mdev = 20.000/20.000/20.000/0.000 ms"]
    p = parse_ping("\n".join(lines), "p.txt", _m(interval_ns=200 * MS))
    assert p.problems == []
    assert p.checks[0].agrees
    by_seq = {r.seq: r.sent_at_ns for r in p.results}
    assert by_seq[90] == T0 + 89 * 204 * MS
    assert all(by_seq[s] < by_seq[s + 1] for s in range(1, 100))


def test_ping_v6_host_name_and_errors() -> None:
    text = """PING far6.test(far6.test (2001:2:0:3008::10)) 56 data bytes
[1767225600.000412] 64 bytes from far6.test (2001:2:0:3008::10): icmp_seq=1 ttl=64 time=0.412 ms
[1767225601.100000] From 2001:2:0:3008::1 icmp_seq=2 Destination unreachable: Address unreachable
[1767225602.000398] 64 bytes from far6.test (2001:2:0:3008::10): icmp_seq=3 ttl=64 time=0.398 ms

--- far6.test ping statistics ---
3 packets transmitted, 2 received, +1 errors, 33.3333% packet loss, time 2003ms
rtt min/avg/max/mdev = 0.398/0.405/0.412/0.007 ms
"""
    p = parse_ping(text, "p6.txt", _m())
    assert p.problems == []
    assert p.checks[0].agrees, str(p.checks[0])
    rs = p.results
    assert [r.status for r in rs] == [Status.RECEIVED, Status.ERROR, Status.RECEIVED]
    assert rs[1].error is ErrorKind.OTHER
    assert "Address unreachable" in (rs[1].error_detail or "")
    assert rs[0].dst_addr == "2001:2:0:3008::10"
    assert rs[0].type_p.key() == "icmp/v6/64/dscp0"


def test_ping_source_address_and_sequence_wrap() -> None:
    lines = ["PING 198.18.3.10 (198.18.3.10) from 198.18.1.10 eth0: 56(84) bytes of data."]
    for n in (65535, 65536, 65537):
        lines.append(f"64 bytes from 198.18.3.10: icmp_seq={n % 65536} ttl=62 time=1.00 ms")
    p = parse_ping("\n".join(lines), "p.txt", _m(start_ns=T0))
    got = [r for r in p.results if not r.lost]
    assert [r.seq for r in got] == [65535, 65536, 65537]
    assert got[0].src_addr == "198.18.1.10"
    assert any(not c.agrees for c in p.checks)  # no statistics lines: said so


def test_ping_sequence_number_beyond_16_bits_is_refused_not_expanded() -> None:
    """A seq ping cannot print (e.g. 99999999999) is a refused line, not 10^11 lost packets
    (the hypothesis test below once ran the machine out of memory on it)."""
    lines = ["PING 198.18.3.10 (198.18.3.10) 56(84) bytes of data.",
             "64 bytes from 198.18.3.10: icmp_seq=1 ttl=62 time=1.00 ms",
             "64 bytes from 198.18.3.10: icmp_seq=99999999999 ttl=62 time=1.00 ms",
             "From 198.18.3.1 icmp_seq=65536 Destination Host Unreachable"]
    p = parse_ping("\n".join(lines), "p.txt", _m(start_ns=T0))
    assert [r.seq for r in p.results] == [1]
    assert [x.line for x in p.problems] == [3, 4]
    assert all("16 bits" in x.reason for x in p.problems)


def test_ping_size_conflict_with_option_is_refused() -> None:
    p = parse_ping(_text("ping_d.txt"), "ping_d.txt", _m(size=128))
    assert p.results == []
    assert "--size says 128" in p.problems[0].reason


def test_import_cli_ping_with_mapping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "ping.db")
    code = main(["import", "--db", db, "--inventory", INV, "--format", "ping", "--src", "s1/A",
                 "--dst", "s3/B", str(DATA / "ping_d.txt")])
    assert code == 0
    captured = capsys.readouterr()
    assert "imported 5 results" in captured.out
    assert "agrees with the tool's summary" in captured.out
    assert main(["import", "--db", db, "--inventory", INV, "--format", "ping", "--src", "s1",
                 str(DATA / "ping_d.txt")]) == 2
    assert "SITE/CARRIER" in capsys.readouterr().err
    assert main(["import", "--db", db, "--inventory", INV, "--format", "ping", "--src", "s9/A",
                 "--dst", "s3/B", str(DATA / "ping_d.txt")]) == 2
    assert "not a site/carrier of the inventory" in capsys.readouterr().err


# --- fping --------------------------------------------------------------------------------

def _fping_m(**kw: Any) -> Mapping:
    return _m(start_ns=T0, interval_ns=10**9, dst=None,
              by_addr={"198.18.3.10": End("s3", "A", "198.18.3.10"),
                       "198.18.67.10": End("s3", "B", "198.18.67.10")}, **kw)


def test_fping_summary_lines() -> None:
    p = parse_fping(_text("fping.txt"), "fping.txt", _fping_m())
    assert p.problems == []
    rs = p.results
    assert len(rs) == 8
    assert [r.rtt_ns for r in rs[:4]] == [12_500_000, None, 13_100_000, 12_900_000]
    assert all(r.lost for r in rs[4:])
    assert rs[3].sent_at_ns == T0 + 3 * 10**9


def test_fping_unmapped_address_is_a_problem() -> None:
    p = parse_fping(_text("fping.txt"), "fping.txt", _m(start_ns=T0, dst=None))
    assert sorted(x.line for x in p.problems) == [1, 3]


def test_fping_host_name_only_and_unreachable_are_refused() -> None:
    text = "far4.test : 0.019 0.027\n198.18.3.10 is unreachable\n"
    p = parse_fping(text, "f.txt", _fping_m())
    assert [x.line for x in p.problems] == [1, 2]
    assert "-A" in p.problems[0].reason
    assert "retries" in p.problems[1].reason


def test_fping_per_packet_lines_disagreeing_with_C_line() -> None:
    text = ("198.18.3.10 : [0], 64 bytes, 12.5 ms (12.5 avg, 0% loss)\n"
            "198.18.3.10 : [1], 64 bytes, 12.7 ms (12.6 avg, 0% loss)\n"
            "198.18.3.10 : 12.5 13.0\n")
    p = parse_fping(text, "f.txt", _fping_m())
    assert [r.seq for r in p.results] == [0]
    assert "differ between the per-packet lines and the -C line" in p.problems[0].reason


# --- every parser: garbage is problems, never an exception ---------------------------------

ANY = Mapping(src=End("s1", "A"), dst=End("s3", "B"), start_ns=T0)


@pytest.mark.parametrize("fmt", ["csv", "ping", "fping", "atlas"])
def test_any_text_parses_or_reports_problems(fmt: str) -> None:
    """Garbage never raises: it becomes problems (hypothesis over text and line shapes)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from analyzer.importers.cli import parser_for

    parse: Callable[[str, str, Mapping], Parsed] = parser_for(fmt)
    lines = st.sampled_from([
        "sent_at,src_site,src_carrier,dst_site,dst_carrier,method,seq,rtt_ms",
        "2026-01-01T00:00:00Z,s1,A,s3,B,icmp,0,1e400", "2026-01-01T00:00:00Z,s1,A,s3,B,icmp,-1,",
        "PING 198.18.3.10 (198.18.3.10) 56(84) bytes of data.",
        "PING far6.test(far6.test (2001:2:0:3008::10)) 56 data bytes",
        "[1e400] 64 bytes from 198.18.3.10: icmp_seq=1 ttl=62 time=1e999 ms",
        "64 bytes from x: icmp_seq=99999999999 ttl=1 time=0.1 ms",
        "64 bytes from x: icmp_seq=1 ttl=1 time=0.1 ms (DUP!)",
        "From 198.18.3.1 icmp_seq=2 Destination Host Unreachable",
        "99999999999 packets transmitted, 0 received",
        "rtt min/avg/max/mdev = 1/2/3/4 ms",
        "198.18.3.10 : 1e400 - nan", "a\rb,\"c", '"unterminated',
        "198.18.3.10 : [99999999999], 64 bytes, 1.0 ms (1.0 avg, 0% loss)",
        "198.18.3.10 : duplicate for [0], 64 bytes, 1.0 ms",
        "198.18.3.10 : xmt/rcv/%loss = 3/9/0%, min/avg/max = 1/2/3",
        "9999-12-31T00:00:00Z,s1,A,s3,B,icmp,0,1",
        "[99999999999999] 64 bytes from a: icmp_seq=1 ttl=1 time=1 ms",
        "198.18.3.10 : 1.2.3 " + "9" * 400,
        "64 bytes from x: icmp_seq=1 ttl=1 time=" + "9" * 400 + " ms",
        '{"type": "ping", "fw": 5000, "dst_addr": "198.18.3.10", "prb_id": 1, '
        '"timestamp": 1e400, "result": [{"rtt": 1e400}]}',
        '{"type": "ping", "fw": 4500, "dst_addr": 1, "prb_id": [], "timestamp": "x", '
        '"result": [1]}', '{"type": "traceroute", "fw": 5000, "dst_addr": "198.18.3.10", '
        '"prb_id": 1, "timestamp": 1, "size": 40, "result": [{"hop": 1, "result": [1]}]}',
        "[", "]", "{}", "nan", "[{}, ", ","])

    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(st.lists(st.one_of(lines, st.text(max_size=40)), max_size=6))
    def check(chunks: list[str]) -> None:
        out = parse("\n".join(chunks), "f", ANY)
        assert len(out.results) == len(out.lines)
        assert isinstance(out.problems, list)

    check()
