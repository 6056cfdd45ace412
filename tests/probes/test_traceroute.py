"""Traceroute: hop classification by the inventory, route changes, real Paris traces.

Real traces run to 127.0.0.1 / ::1 in ICMP, UDP and TCP mode, and (root, testbed) across the
emulated carrier network, where the "direct" profile routes through the Changsha exchange point
and "baseline" detours through an out-of-province hub.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import struct
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inventory.loader import default_inventory, load
from inventory.schema import SiteKind
from inventory.topology import Topology
from ixmeter.record import Hop, Method, Status, TypeP
from probes.methods.traceroute import (
    ICMP_ID,
    SPORT,
    Flow,
    RouteWatch,
    TracerouteProber,
    build_probe,
    classify,
    match_answer,
    same_route,
    summarise,
)
from probes.scheduler import Job


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


@pytest.mark.parametrize("mode", ["icmp", "udp", "tcp"])
@pytest.mark.parametrize("v6", [False, True])
def test_paris_flow_fields_constant_across_ttls(mode: str, v6: bool) -> None:
    dst = "2001:2::1" if v6 else "198.18.0.1"
    a, b = (build_probe(dst, ttl, v6=v6, mode=mode, size=60, dport=None) for ttl in (1, 9))
    la, lb = a.payload, b.payload  # the L4 header and payload
    assert bytes(la) == bytes(lb)  # ports, ICMP id/seq/checksum, TCP seq: all identical


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown traceroute mode"):
        build_probe("127.0.0.1", 1, v6=False, mode="gre", size=60, dport=None)


def _job(dst: str, mode: str) -> Job:
    v = 6 if ":" in dst else 4
    port = None if mode == "icmp" else (33434 if mode == "udp" else 9)
    return Job("route-watch", Method.TRACEROUTE, "p1", "s1", "CT", "s2", "CM", dst, dst,
               TypeP(mode, v, 60, 0, port), 0.01, 1_000_000_000, "periodic",
               options={"mode": mode})


@pytest.mark.root
@pytest.mark.parametrize("mode", ["icmp", "udp", "tcp"])
@pytest.mark.parametrize("dst", ["127.0.0.1", "::1"])
async def test_trace_to_loopback(dst: str, mode: str) -> None:
    prober = TracerouteProber(lambda r: None)
    try:
        result = await prober.trace(_job(dst, mode))
    finally:
        prober.tracer.close()
    assert result.status is Status.RECEIVED
    assert result.method is Method.TRACEROUTE
    assert [(h.ttl, h.addr) for h in result.hops] == [(1, dst)]
    assert result.rtt_ns is not None


TRACE = """
import json, sys
from probes.methods.traceroute import Tracer
t = Tracer()
hops, reached = t.trace(sys.argv[1], v6=":" in sys.argv[1], mode=sys.argv[2], hop_timeout_s=1.0)
print(json.dumps({"hops": [[h.ttl, h.addr] for h in hops], "reached": reached}))
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
@pytest.mark.parametrize(("family", "mode"), [(4, "icmp"), (6, "udp"), (4, "tcp")])
def test_trace_across_testbed_exchange_then_hub(testbed: object, topo: Topology, family: int,
                                                mode: str) -> None:
    tb = testbed
    dst = tb.hosts["cz-ezone-cm"].address(family)  # type: ignore[attr-defined]

    def route() -> tuple[list[Hop], bool]:
        out = tb.python("cs-yungu-ct", TRACE, dst, mode, timeout=120)  # type: ignore[attr-defined]
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


def _v4_header(dst: str, proto: int, ip_id: int) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 48, ip_id, 0, 1, proto, 0,
                       bytes([198, 18, 2, 10]), ipaddress.ip_address(dst).packed)


def test_match_time_exceeded_quoting_our_udp_flow() -> None:
    flow = Flow("198.18.68.10", False, "udp", 33434)
    quoted = _v4_header(flow.dst, 17, 3) + struct.pack("!HHHH", SPORT, 33434, 40, 0)
    msg = bytes([11, 0, 0, 0, 0, 0, 0, 0]) + quoted
    assert match_answer(flow, "198.19.0.1", socket.IPPROTO_ICMP, msg) == (True, False, 3)
    other = _v4_header(flow.dst, 17, 3) + struct.pack("!HHHH", SPORT + 1, 33434, 40, 0)
    assert not match_answer(flow, "198.19.0.1", 1, msg[:8] + other)[0]
    unreachable = bytes([3, 3, 0, 0, 0, 0, 0, 0]) + quoted
    assert match_answer(flow, flow.dst, 1, unreachable) == (True, True, 3)


def test_match_echo_reply_and_tcp_reset() -> None:
    icmp = Flow("::1", True, "icmp", 0)
    reply = bytes([129, 0, 0, 0]) + ICMP_ID.to_bytes(2, "big") + b"\0\1"
    assert match_answer(icmp, "::1", socket.IPPROTO_ICMPV6, reply) == (True, True, None)
    assert not match_answer(icmp, "::2", socket.IPPROTO_ICMPV6, reply)[0]
    tcp = Flow("127.0.0.1", False, "tcp", 80)
    rst = struct.pack("!HH", 80, SPORT) + bytes(16)
    assert match_answer(tcp, "127.0.0.1", socket.IPPROTO_TCP, rst) == (True, True, None)


@given(st.binary(max_size=120), st.sampled_from(["icmp", "udp", "tcp"]), st.booleans(),
       st.sampled_from([socket.IPPROTO_ICMP, socket.IPPROTO_ICMPV6, socket.IPPROTO_TCP]))
def test_match_answer_never_raises(data: bytes, mode: str, v6: bool, proto: int) -> None:
    flow = Flow("::1" if v6 else "127.0.0.1", v6, mode, 80)
    match_answer(flow, flow.dst, proto, data)
