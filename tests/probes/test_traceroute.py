"""Traceroute: hop classification by the inventory, route changes, real Paris traces.

Real traces run to 127.0.0.1 / ::1 on their own flow and on a pinger's, concurrently to a
silent destination in a namespace, and (root, testbed) across the
emulated carrier network, where the "direct" profile routes through the Changsha exchange point
and "baseline" detours through an out-of-province hub.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import socket
import struct
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import yaml
from hypothesis import given
from hypothesis import strategies as st

from inventory.loader import default_inventory, load
from inventory.schema import SiteKind
from inventory.topology import Topology
from ixmeter.core.record import ErrorKind, Hop, Method, Status, TimestampSource, TypeP
from probes.icmp import codec, trace_codec
from probes.icmp.pinger import open_pinger
from probes.methods.traceroute import (
    RouteWatch,
    TracerouteProber,
    classify,
    same_route,
    summarise,
    to_result,
)
from probes.scheduler import Job
from tests.conftest import require_tool
from tests.probes.test_icmp_pinger import inside as _inside


@pytest.fixture(scope="module")
def topo() -> Topology:
    return Topology(load(default_inventory()))


def test_classify_hops_by_inventory_prefixes(topo: Topology) -> None:
    hops = [Hop(1, "198.18.2.1", 100), Hop(2, "198.19.0.5", 200), Hop(3, None),
            Hop(4, "2001:2:0:2000::10", 400), Hop(5, "10.0.0.1", 500)]
    views = classify(hops, topo)
    assert [(v.carrier, v.site, v.kind) for v in views] == [
        ("CT", None, None), (None, "cs-ixp", SiteKind.EXCHANGE_POINT), (None, None, None),
        ("CM", "cs-yungu", SiteKind.DATA_CENTRE), (None, None, None)]


def test_route_via_exchange_point_vs_hub(topo: Topology) -> None:
    direct = summarise([Hop(1, "198.18.2.1"), Hop(2, "198.19.0.1"), Hop(3, "198.18.65.10")],
                       topo)
    assert direct.crosses_exchange
    assert not direct.detours
    assert direct.carriers == ("CT", "CM")
    detour = summarise([Hop(1, "198.18.2.1"), Hop(2, "2001:2:0:f100::1"),
                        Hop(3, "198.19.2.9"), Hop(4, "198.18.65.10")], topo)
    assert detour.hubs == ("wh-ixp", "gz-ixp")
    assert not detour.crosses_exchange


def test_route_changes_ignore_silent_hops() -> None:
    a = [Hop(1, "198.18.2.1"), Hop(2, "198.19.0.1"), Hop(3, "198.18.65.10")]
    assert same_route(a, [Hop(1, "198.18.2.1"), Hop(2, None), Hop(3, "198.18.65.10")])
    assert not same_route(a, [Hop(1, "198.18.2.1"), Hop(2, "198.19.1.1"), Hop(3, "x")])
    assert not same_route(a, a[:2])
    watch = RouteWatch()
    assert not watch.observe("p", a)
    assert not watch.observe("p", a)
    assert watch.observe("p", [Hop(1, "198.18.2.1"), Hop(2, "198.19.1.1"), Hop(3, "x")])
    assert watch.changes["p"] == 1
    # one lost answer just before the destination (it answered the next TTL): not a change
    assert same_route(a, [Hop(1, "198.18.2.1"), Hop(2, "198.19.0.1"), Hop(3, None),
                          Hop(4, "198.18.65.10")])
    assert not same_route(a, [Hop(1, "198.18.2.1"), Hop(2, "198.19.0.1"), Hop(3, "198.19.9.9"),
                              Hop(4, "198.18.65.10")])


@pytest.mark.parametrize("v6", [False, True])
def test_paris_probes_keep_every_hashed_field_constant_across_ttls(v6: bool) -> None:
    """Type, code, checksum and identifier are the same for every TTL of a trace; the
    sequence number (not hashed) says which TTL it is (IMC 2006 §3)."""
    probes = [trace_codec.echo(0x1234, 5, ttl, 64, v6=v6) for ttl in range(1, 31)]
    assert len({p[:6] for p in probes}) == 1
    assert len({p[6:8] for p in probes}) == 30
    if not v6:
        assert all(codec.checksum(p) == 0 for p in probes)  # and each is valid
    with pytest.raises(ValueError, match="minimum"):
        trace_codec.echo(1, 0, 1, codec.MIN_SIZE - 1, v6=v6)


def _v4(dst: str, payload: bytes, proto: int = 1) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 1, proto, 0,
                       bytes([198, 18, 2, 10]), ipaddress.ip_address(dst).packed) + payload


def test_match_time_exceeded_unreachable_and_echo_reply() -> None:
    dst = "198.18.68.10"
    probe = trace_codec.echo(0x1234, 7, 3, 64, v6=False)
    exceeded = bytes([11, 0, 0, 0, 0, 0, 0, 0]) + _v4(dst, probe)[:28]  # 8 octets quoted
    assert trace_codec.match(exceeded, "198.19.0.1", dst, 0x1234, v6=False) == \
        trace_codec.Answer(7, 3, False)
    assert trace_codec.match(exceeded, "198.19.0.1", dst, 0x1235, v6=False) is None
    assert trace_codec.match(exceeded, "198.19.0.1", "198.18.68.11", 0x1234, v6=False) is None
    unreachable = bytes([3, 1, 0, 0, 0, 0, 0, 0]) + _v4(dst, probe)
    assert trace_codec.match(unreachable, dst, dst, 0x1234, v6=False) == \
        trace_codec.Answer(7, 3, True)
    reply = bytes([0]) + probe[1:]
    assert trace_codec.match(reply, dst, dst, 0x1234, v6=False) == \
        trace_codec.Answer(7, 3, True)
    assert trace_codec.match(reply, "198.19.0.1", dst, 0x1234, v6=False) is None
    ping = bytes([0]) + codec.encode_echo(0x1234, 7 * 64 + 3, codec.payload_for(1, 2, 64))[1:]
    assert trace_codec.match(ping, dst, dst, 0x1234, v6=False) is None  # the pinger's, not ours


@given(st.binary(max_size=120), st.booleans())
def test_match_never_raises(data: bytes, v6: bool) -> None:
    dst = "::1" if v6 else "127.0.0.1"
    trace_codec.match(data, dst, dst, 0x1234, v6=v6)


def _job(dst: str, mode: str) -> Job:
    v = 6 if ":" in dst else 4
    return Job("route-watch", Method.TRACEROUTE, "p1", "s1", "CT", "s2", "CM", dst, dst,
               TypeP("icmp", v, 60, 0), 0.01, 1_000_000_000, "periodic",
               options={"mode": mode})


@pytest.mark.root
@pytest.mark.parametrize("mode", ["icmp", "flow"])
@pytest.mark.parametrize("dst", ["127.0.0.1", "::1"])
async def test_trace_to_loopback(dst: str, mode: str) -> None:
    prober = TracerouteProber(lambda r: None, ident_of=lambda job: 0x4242)
    async with trio.open_nursery() as nursery:
        await nursery.start(prober.run)
        result = await prober.trace(_job(dst, mode))
        nursery.cancel_scope.cancel()
    assert result.status is Status.RECEIVED
    assert result.method is Method.TRACEROUTE
    assert [(h.ttl, h.addr) for h in result.hops] == [(1, dst)]
    assert result.rtt_ns is not None


@pytest.mark.root
async def test_a_trace_follows_the_pingers_identifier_and_the_pinger_ignores_it() -> None:
    """The issue's finding: traces used UDP 33000->33434, not the measured flow. A trace of
    the ICMP flow carries the pinger's identifier; its echo replies reach the pinger's socket
    too and are not taken for the pinger's own."""
    seen: list[int] = []
    async with open_pinger(socket.AF_INET) as pinger:
        sniff = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        sniff.setblocking(False)
        prober = TracerouteProber(lambda r: None, ident_of=lambda job: pinger.flow_ident)
        async with trio.open_nursery() as nursery:
            await nursery.start(prober.run)
            result = await prober.trace(_job("127.0.0.1", "flow"))
            nursery.cancel_scope.cancel()
        with contextlib.suppress(BlockingIOError):
            while packet := sniff.recv(65535):
                if packet[20] == 8:  # echo requests: their identifiers
                    seen.append(int.from_bytes(packet[24:26], "big"))
        sniff.close()
    assert result.status is Status.RECEIVED
    assert seen
    assert seen == [pinger.flow_ident] * len(seen)
    assert not pinger.statistics().local_drops()


@contextlib.contextmanager
def _silent_namespace() -> Iterator[str]:
    """A throwaway namespace whose kernel answers no echo (loopback up)."""
    name = f"ixm-fleet-tr-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw",
                        "net.ipv4.icmp_echo_ignore_all=1"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.mark.root
async def test_traces_run_concurrently_and_a_silent_destination_costs_two_timeouts() -> None:
    """The issue's finding: traces ran one at a time, one probe per TTL, so a destination that
    ignores the probes cost at least 8 s and a queue of 8 filled. 16 traces to a destination
    that never answers, at once, with a 0.5 s hop timeout: all done in about 1 s."""
    with _silent_namespace() as name:
        with _inside(name):
            prober = TracerouteProber(lambda r: None, ident_of=lambda job: 0x4243)
            jobs = [dataclasses.replace(_job("127.0.0.1", "flow"), tmax_ns=500_000_000,
                                        spec_id=f"t{i}") for i in range(16)]
            prober.check(jobs)
        results = []
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            await nursery.start(prober.run)

            async def one(job: Job) -> None:
                results.append(await prober.trace(job))

            async with trio.open_nursery() as traces:
                for job in jobs:
                    traces.start_soon(one, job)
            nursery.cancel_scope.cancel()
        took = trio.current_time() - started
    assert [r.status for r in results] == [Status.LOST] * 16
    assert all(r.hops == () for r in results)
    assert took < 4.0  # two windows of 0.5 s each, concurrently (was >= 16 x 8 x 0.5 s)


def test_route_change_is_an_event_with_the_hops_before_and_after(
        caplog: pytest.LogCaptureFixture) -> None:
    watch = RouteWatch()
    a = [Hop(1, "198.18.2.1"), Hop(2, "198.19.0.1"), Hop(3, "198.18.65.10")]
    b = [Hop(1, "198.18.2.1"), Hop(2, "198.19.2.9"), Hop(3, "198.18.65.10")]
    watch.observe("icmp:p:198.18.65.10", a)
    assert watch.observe("icmp:p:198.18.65.10", b)
    [event] = watch.events
    assert (event.before, event.after) == (tuple(a), tuple(b))
    assert "before [198.18.2.1 198.19.0.1 198.18.65.10] after [198.18.2.1 198.19.2.9" in \
        caplog.text


def test_without_cap_net_raw_the_probe_says_so_at_start(tmp_path: Path) -> None:
    """The issue's finding: without CAP_NET_RAW every trace was a send_error record and
    nothing said so at start-up."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop a capability")
    config = tmp_path / "probe.yaml"
    (tmp_path / "probe.key").write_text("ab" * 32)
    config.write_text(yaml.safe_dump({
        "probe_id": "p1", "key_file": "probe.key", "collector_url": "http://127.0.0.1:9",
        "spool": "spool.db", "site": "s1", "carrier": "CT", "addresses": ["127.0.0.1"],
        "specs": [{"id": "trace", "method": "traceroute", "rate_pps": 1, "size": 64}],
        "targets": [{"spec": "trace", "dst_addr": "127.0.0.1", "dst_site": "s2",
                     "dst_carrier": "CM"}]}))
    capsh = require_tool("capsh")  # Debian: libcap2-bin
    done = subprocess.run([capsh, "--drop=cap_net_raw", "--", "-c",
                           f"{sys.executable} -m ixmeter.cli probe run --config {config} "
                           "--duration 2"], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parents[2], check=False)
    assert done.returncode == 2, done.stderr
    assert "traceroute" in done.stderr
    assert "CAP_NET_RAW" in done.stderr


TRACE = """
import json, socket, sys, trio
from probes.methods.traceroute import TraceSocket, run_trace

async def main():
    v6 = ":" in sys.argv[1]
    sock = TraceSocket(socket.AF_INET6 if v6 else socket.AF_INET, "")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sock.receive_loop)
        hops, reached = await run_trace(sock, sys.argv[1], 0x6978, hop_timeout_s=1.0)
        nursery.cancel_scope.cancel()
    print(json.dumps({"hops": [[h.ttl, h.addr] for h in hops], "reached": reached}))

trio.run(main)
"""


@pytest.fixture(scope="module")
def testbed() -> Iterator[object]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    api = pytest.importorskip("testbed.api")
    with api.Testbed.up(default_inventory(), "direct", sites=["cs-yungu", "cz-ezone"],
                        instance=f"tr{os.getpid() % 100000}") as bed:
        yield bed


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.parametrize("family", [4, 6])
def test_trace_across_testbed_exchange_then_hub(testbed: object, topo: Topology,
                                                family: int) -> None:
    tb = testbed
    dst = tb.hosts["cz-ezone-cm"].address(family)  # type: ignore[attr-defined]

    def route() -> tuple[list[Hop], bool]:
        out = tb.python("cs-yungu-ct", TRACE, dst, timeout=120)  # type: ignore[attr-defined]
        data = json.loads(out.stdout)
        return [Hop(t, a) for t, a in data["hops"]], data["reached"]

    hops, reached = route()
    assert reached
    assert hops[-1].addr == dst
    assert summarise(hops, topo).crosses_exchange
    watch = RouteWatch()
    watch.observe("p", hops)
    try:
        tb.set_profile("baseline")  # type: ignore[attr-defined]
        hops2, reached2 = route()
    finally:
        tb.set_profile("direct")  # type: ignore[attr-defined]
    assert reached2
    view = summarise(hops2, topo)
    assert view.detours
    assert not view.crosses_exchange
    assert watch.observe("p", hops2)


def test_a_hop_answering_after_tmax_keeps_its_address_not_its_rtt() -> None:
    """The hop's RTT is measured after the wait, so it can pass Tmax by microseconds: that
    reply is route evidence but no delay sample (RFC 7680 §2.4), and a destination that
    answered only after Tmax makes the trace LOST, its hops kept."""
    job = Job("trace", Method.TRACEROUTE, "p1", "s1", "CT", "s2", "CM", "198.18.1.10",
              "198.18.65.10", TypeP("udp", 4, 60), 0.1, 1_000_000_000)
    sent = 1_790_000_000_000_000_000
    late = (Hop(1, "198.18.1.1", 2_000), Hop(2, "198.18.65.10", 1_000_000_050))
    lost = to_result(job, 1, sent, late, reached=True)
    assert lost.status is Status.LOST
    assert lost.hops == (Hop(1, "198.18.1.1", 2_000), Hop(2, "198.18.65.10", None))
    ok = to_result(job, 2, sent, (Hop(1, "198.18.65.10", 900_000_000),), reached=True)
    assert (ok.status, ok.rtt_ns) == (Status.RECEIVED, 900_000_000)


def test_a_probe_s_own_error_text_never_makes_its_record_invalid() -> None:
    job = Job("trace", Method.TRACEROUTE, "p1", "s1", "CT", "s2", "CM", "198.18.1.10",
              "198.18.65.10", TypeP("udp", 4, 60), 0.1, 1_000_000_000)
    text = "sendto failed:\n\x00 " + "x" * 5000
    r = job.result(1, 1_790_000_000_000_000_000, Status.ERROR, TimestampSource.USER,
                   error=ErrorKind.SEND_ERROR, error_detail=text)
    assert r.error_detail is not None
    assert r.error_detail.startswith("sendto failed:\\n\\x00 ")
    assert len(r.error_detail) <= 1024
