"""The sans-IO forwarder: routing, TTL handling, Time Exceeded timing, loss and counters."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6TimeExceeded, IPv6

from inventory.loader import default_inventory, load
from testbed.forwarder import Forwarder
from testbed.plan import plan_paths, select_hosts
from testbed.profiles import BUILTIN, PathClass, Profile

MS = 1_000_000


def _forwarder(profile: Profile) -> Forwarder:
    inv = load(default_inventory())
    hosts = select_hosts(inv, "t", sites=["cs-yungu", "cz-ezone"])
    return Forwarder(hosts, plan_paths(inv, hosts, profile), profile)


def _echo(ttl: int, v6: bool = False) -> bytes:
    if v6:
        return bytes(IPv6(src="2001:2:0:1001::10", dst="2001:2:0:2000::10", hlim=ttl)
                     / ICMPv6EchoRequest())
    return bytes(IP(src="198.18.2.10", dst="198.18.65.10", ttl=ttl) / ICMP())


@pytest.mark.parametrize("v6", [False, True])
def test_delivered_after_one_way_delay_with_ttl_lowered(v6: bool) -> None:
    fwd = _forwarder(BUILTIN["direct"].model_copy(update={"inter": BUILTIN["direct"].intra}))
    src, dst = fwd.index["cs-yungu-ct"], fwd.index["cs-yungu-cm"]
    path = fwd._paths[(src, dst)].plan
    fwd.receive(src, _echo(64, v6), 0)
    deadline = fwd.next_deadline()
    assert deadline is not None
    assert abs(deadline - path.one_way_ms * MS) <= 0.05 * MS  # jitter sigma 10 us, clipped
    assert fwd.pop_due(deadline - 1) == []
    [(to, pkt)] = fwd.pop_due(deadline)
    assert to == dst
    hops = len(path.hops)
    assert (IPv6(pkt).hlim if v6 else IP(pkt).ttl) == 64 - hops


@pytest.mark.parametrize("v6", [False, True])
def test_expiry_answers_from_the_hop_after_its_round_trip(v6: bool) -> None:
    fwd = _forwarder(BUILTIN["baseline"])
    src, dst = fwd.index["cs-yungu-ct"], fwd.index["cs-yungu-cm"]
    path = fwd._paths[(src, dst)].plan
    for ttl in range(1, len(path.hops) + 1):
        fwd.receive(src, _echo(ttl, v6), 0)
        deadline = fwd.next_deadline()
        assert deadline is not None
        assert deadline >= path.expiry_ms[ttl - 1] * MS
        [(to, pkt)] = fwd.pop_due(10**12)
        hop = path.hops[ttl - 1]
        assert to == src
        if v6:
            assert IPv6(pkt).src == hop.v6
            assert IPv6(pkt).haslayer(ICMPv6TimeExceeded)
        else:
            assert IP(pkt).src == hop.v4
            assert IP(pkt)[ICMP].type == 11
    assert fwd.statistics().expired == len(path.hops)


def test_unroutable_and_malformed_counted_not_forwarded() -> None:
    fwd = _forwarder(BUILTIN["direct"])
    fwd.receive(0, bytes(IP(src="198.18.2.10", dst="192.0.2.1") / ICMP()), 0)
    fwd.receive(0, b"\x45\x00", 0)
    stats = fwd.statistics()
    assert (stats.unroutable, stats.malformed, stats.queued) == (1, 1, 0)


def test_loss_counts_are_reproducible() -> None:
    prof = BUILTIN["baseline"]
    counts = []
    for _ in range(2):
        fwd = _forwarder(prof)
        src, pkt = fwd.index["cs-yungu-ct"], _echo(64)
        for i in range(3000):
            fwd.receive(src, pkt, i * MS)
        counts.append(fwd.statistics().lost)
    assert counts[0] == counts[1] > 0


def test_profile_switch_keeps_packets_in_flight() -> None:
    fwd = _forwarder(BUILTIN["baseline"])
    src = fwd.index["cs-yungu-ct"]
    fwd.receive(src, _echo(64), 0)
    inter = BUILTIN["baseline"].inter.model_copy(update={"loss": BUILTIN["direct"].intra.loss})
    fwd.set_paths(plan_paths(load(default_inventory()), fwd.hosts,
                             BUILTIN["direct"].model_copy(update={"inter": inter})),
                  BUILTIN["direct"])
    fwd.receive(src, _echo(64), 0)
    out = fwd.pop_due(10**12)
    assert len(out) == 2
    assert fwd.profile.name == "direct"


def test_advance_counts_delay_from_before_the_read() -> None:
    flat = PathClass()
    prof = BUILTIN["direct"].model_copy(update={"inter": flat, "intra": flat})
    inv = load(default_inventory())
    hosts = select_hosts(inv, "t", sites=["cs-yungu"])
    plain = Forwarder(hosts, plan_paths(inv, hosts, prof), prof)
    early = Forwarder(hosts, plan_paths(inv, hosts, prof), prof, advance_ns=10_000)
    for fwd in (plain, early):
        fwd.receive(0, _echo(64), 5 * MS)
    assert plain.next_deadline() is not None
    assert early.next_deadline() == plain.next_deadline() - 10_000  # type: ignore[operator]
