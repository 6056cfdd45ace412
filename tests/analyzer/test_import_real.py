"""Importers on real iputils ping and fping output, produced in this test run.

The tools run in a network namespace of this process's own (``ixm-imp-<pid>``), against
addresses on its loopback, v4 and v6, by address and by host name (``/etc/netns/<ns>/hosts``).
An iptables/ip6tables ``statistic`` rule drops 30 % of the echo requests inside the namespace,
so the runs have losses; nothing leaves it. Imported counts, loss and min/avg/max must equal
each tool's own summary lines (parsed here independently of the importers).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.importers.common import End, Mapping, Parsed
from analyzer.importers.fping import parse_fping
from analyzer.importers.ping import parse_ping
from ixmeter.core.record import Status

V4, V6 = "198.18.3.10", "2001:2:0:3008::10"
NAMES = {"far4.test": V4, "far6.test": V6}
TOOLS = ("ip", "iptables", "ip6tables", "ping", "fping")
DROP = "0.3"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespace and iptables"),
    pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                       reason=f"needs {', '.join(TOOLS)} (make test installs them as root)"),
]


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Every tool's output (stdout and stderr together), by run name."""
    ns = f"ixm-imp-{os.getpid()}"
    etc = Path("/etc/netns") / ns
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "hosts").write_text("".join(f"{a} {n}\n" for n, a in NAMES.items()))
    _sh("ip", "netns", "add", ns)
    try:
        run = ("ip", "netns", "exec", ns)
        _sh(*run, "ip", "link", "set", "lo", "up")
        _sh(*run, "ip", "addr", "add", f"{V4}/32", "dev", "lo")
        _sh(*run, "ip", "-6", "addr", "add", f"{V6}/128", "dev", "lo", "nodad")
        for tool, proto, kind in (("iptables", "icmp", "--icmp-type"),
                                  ("ip6tables", "icmpv6", "--icmpv6-type")):
            _sh(*run, tool, "-A", "INPUT", "-p", proto, kind, "echo-request", "-m",
                "statistic", "--mode", "random", "--probability", DROP, "-j", "DROP")
        yield _run_tools(run)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        shutil.rmtree(etc, ignore_errors=True)


def _run_tools(run: tuple[str, ...]) -> dict[str, str]:
    argvs = {
        "ping_d_v4": ["ping", "-D", "-c", "80", "-i", "0.2", "-W", "1", V4],
        "ping_v6": ["ping", "-6", "-c", "30", "-i", "0.2", "-W", "1", V6],
        "ping_d_name6": ["ping", "-D", "-c", "30", "-i", "0.2", "-W", "1", "far6.test"],
        "ping_name4": ["ping", "-c", "30", "-i", "0.2", "-W", "1", "far4.test"],
        "fping_C": ["fping", "-C", "40", "-p", "100", "-t", "500", V4, V6],
        "fping_Dc": ["fping", "-D", "-c", "40", "-p", "100", "-t", "500", V4, V6],
        "fping_e": ["fping", "-e", "-r", "10", V4, V6],
    }
    procs = {k: subprocess.Popen([*run, *argv], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
             for k, argv in argvs.items()}
    return {k: p.communicate(timeout=120)[0] for k, p in procs.items()}


def _mapping(**kw: object) -> Mapping:
    m = Mapping(src=End("s1", "A"), by_addr={V4: End("s3", "A", V4), V6: End("s3", "B", V6)},
                start_ns=1_767_225_600 * 10**9, interval_ns=200_000_000)
    for k, v in kw.items():
        setattr(m, k, v)
    return m


def _ping_summary(text: str) -> tuple[int, int, float, float, float]:
    sent, got = map(int, re.search(r"(\d+) packets transmitted, (\d+) received", text).groups())
    trio = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/", text)
    assert trio is not None
    low, avg, high = map(float, trio.groups())
    return sent, got, low, avg, high


def _assert_like_summary(p: Parsed, sent: int, got: int, low: float, avg: float, high: float,
                         slack_ms: float) -> None:
    rtts = [r.rtt_ns / 1e6 for r in p.results if r.rtt_ns is not None]
    assert len(p.results) == sent
    assert len(rtts) == got
    assert sum(r.lost for r in p.results) == sent - got
    assert abs(min(rtts) - low) <= slack_ms
    assert abs(max(rtts) - high) <= slack_ms
    assert abs(sum(rtts) / len(rtts) - avg) <= slack_ms


@pytest.mark.parametrize("run", ["ping_d_v4", "ping_v6", "ping_d_name6", "ping_name4"])
def test_ping_equals_its_own_summary(outputs: dict[str, str], run: str) -> None:
    text = outputs[run]
    p = parse_ping(text, run, _mapping(dst=End("s3", "A")))
    assert p.problems == [], text
    [check] = p.checks
    assert check.agrees, str(check)
    sent, got, low, avg, high = _ping_summary(text)
    assert 0 < got < sent, "the statistic rule should have dropped some packets"
    _assert_like_summary(p, sent, got, low, avg, high, 0.0011)
    assert {r.type_p.ip_version for r in p.results} == {6 if "6" in run else 4}
    assert {r.type_p.size for r in p.results} == {64}
    seqs = [r.seq for r in p.results]
    assert seqs == list(range(1, sent + 1))


def test_ping_d_places_lost_packets_between_their_neighbours(outputs: dict[str, str]) -> None:
    """ping's real cadence drifts from -i; a lost packet lies between the real send times."""
    p = parse_ping(outputs["ping_d_v4"], "ping", _mapping(dst=End("s3", "A")))
    times = [r.sent_at_ns for r in p.results]
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    got = [r for r in p.results if not r.lost]
    gaps = [(b.sent_at_ns - a.sent_at_ns) / (b.seq - a.seq)
            for a, b in zip(got, got[1:], strict=False)]
    assert sum(gaps) / len(gaps) > 200_000_000  # the real cadence is slower than -i 0.2


def test_a_garbled_reply_is_refused_not_lost(outputs: dict[str, str]) -> None:
    text = outputs["ping_d_v4"]
    line = next(x for x in text.splitlines() if " bytes from " in x)
    seq = int(re.search(r"icmp_seq=(\d+)", line).group(1))
    garbled = text.replace(line, re.sub(r"time=(\d)", r"time=\1O", line))
    p = parse_ping(garbled, "ping", _mapping(dst=End("s3", "A")))
    assert [pr.line for pr in p.problems] == [text.splitlines().index(line) + 1]
    assert seq not in {r.seq for r in p.results}
    assert sum(r.lost for r in p.results) == _ping_summary(text)[0] - _ping_summary(text)[1]
    assert not p.checks[0].agrees
    assert "refused" in p.checks[0].why


def test_fping_c_and_dc_equal_their_summaries(outputs: dict[str, str]) -> None:
    c = parse_fping(outputs["fping_C"], "fping_C", _mapping())
    assert c.problems == [], outputs["fping_C"]
    d = parse_fping(outputs["fping_Dc"], "fping_Dc", _mapping())
    assert d.problems == [], outputs["fping_Dc"]
    assert len(d.checks) == 2
    assert all(ch.agrees for ch in d.checks), [str(ch) for ch in d.checks]
    for addr in (V4, V6):
        summary = re.search(re.escape(addr) + r"\s+: xmt/rcv/%loss = (\d+)/(\d+)/\d+%, "
                            r"min/avg/max = ([\d.]+)/([\d.]+)/([\d.]+)", outputs["fping_Dc"])
        assert summary is not None
        sent, got = int(summary.group(1)), int(summary.group(2))
        low, avg, high = map(float, summary.groups()[2:])
        mine = Parsed(results=[r for r in d.results if r.dst_addr == addr])
        _assert_like_summary(mine, sent, got, low, avg, high, 0.0011)
        values = re.search(re.escape(addr) + r"\s+:((?: +(?:[\d.]+|-))+)$",
                           outputs["fping_C"], re.M)
        assert values is not None
        mine_c = [r for r in c.results if r.dst_addr == addr]
        assert [None if v == "-" else round(float(v) * 1e6) for v in values.group(1).split()] \
            == [r.rtt_ns for r in mine_c]
        times = [r.sent_at_ns for r in d.results if r.dst_addr == addr]
        assert times == sorted(times)


def test_fping_e_alive_lines(outputs: dict[str, str]) -> None:
    p = parse_fping(outputs["fping_e"], "fping_e", _mapping())
    assert p.problems == [], outputs["fping_e"]
    assert {r.dst_addr for r in p.results} == {V4, V6}
    assert all(r.status is Status.RECEIVED for r in p.results)
