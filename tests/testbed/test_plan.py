"""Route computation and delay plausibility on the shipped Hunan inventory."""

from __future__ import annotations

import pytest

from inventory.loader import default_inventory, load
from inventory.schema import Inventory, Selector
from inventory.topology import Topology
from testbed.plan import (
    PlanError,
    great_circle_km,
    namespace_name,
    plan_paths,
    select_hosts,
)
from testbed.profiles import BUILTIN, Override, Profile


@pytest.fixture(scope="module")
def inv() -> Inventory:
    return load(default_inventory())


def _paths(inv: Inventory, profile: Profile, sites: list[str]):  # type: ignore[no-untyped-def]
    return plan_paths(inv, select_hosts(inv, "t", sites=sites), profile)


def test_select_hosts_subset_and_names(inv: Inventory) -> None:
    assert len(select_hosts(inv, "main")) == 39
    hosts = select_hosts(inv, "t", sites=["cs-yungu", "cz-ezone"], carriers=["CT", "CM"])
    assert [h.name for h in hosts] == ["cs-yungu-ct", "cs-yungu-cm", "cz-ezone-ct", "cz-ezone-cm"]
    assert hosts[0].namespace == namespace_name("t", "cs-yungu-ct") == "ixm-t-cs-yungu-ct"
    assert hosts[0].v4 == "198.18.2.10"
    assert hosts[0].v6 == "2001:2:0:1001::10"
    assert len(select_hosts(inv, "t", max_hosts=5)) == 5


def test_select_hosts_rejects_unknown_or_tiny(inv: Inventory) -> None:
    with pytest.raises(PlanError, match="unknown site"):
        select_hosts(inv, "t", sites=["nowhere"])
    with pytest.raises(PlanError, match="at least 2"):
        select_hosts(inv, "t", sites=["cs-tianyi-zn"])


def test_great_circle_changsha_wuhan() -> None:
    # Changsha - Wuhan is about 295 km as the crow flies.
    assert 280 < great_circle_km(28.228, 112.939, 30.593, 114.305) < 310


@pytest.mark.parametrize(("profile", "exchange_sites"),
                         [("baseline", {"wh-ixp", "gz-ixp"}), ("direct", {"cs-ixp"})])
def test_inter_carrier_routes_cross_the_right_exchange(inv: Inventory, profile: str,
                                                       exchange_sites: set[str]) -> None:
    topo = Topology(inv)
    paths = _paths(inv, BUILTIN[profile], ["cs-yungu", "cz-ezone"])
    for (src, dst), p in paths.items():
        src_c, dst_c = src.rsplit("-", 1)[1].upper(), dst.rsplit("-", 1)[1].upper()
        sites = {topo.site_of_address(h.v4) for h in p.hops} - {None}
        assert sites == {topo.site_of_address(h.v6) for h in p.hops} - {None}
        if src_c == dst_c:
            assert not sites
        else:
            assert sites <= exchange_sites
            assert len(sites) == 1
        carriers = [topo.carrier_of_address(h.v4) for h in p.hops]
        assert carriers[0] == src_c
        assert carriers[-1] == dst_c


def test_hub_differs_by_carrier_pair(inv: Inventory) -> None:
    topo = Topology(inv)
    paths = _paths(inv, BUILTIN["baseline"], ["cs-yungu"])
    hubs = {(s, d): {topo.site_of_address(h.v4) for h in p.hops} - {None}
            for (s, d), p in paths.items()}
    assert hubs[("cs-yungu-ct", "cs-yungu-cm")] == hubs[("cs-yungu-cm", "cs-yungu-ct")]
    assert len({frozenset(v) for v in hubs.values()}) == 2  # Wuhan and Guangzhou both used


def test_delays_are_plausible(inv: Inventory) -> None:
    base = _paths(inv, BUILTIN["baseline"], ["cs-yungu", "cs-panyun", "cz-ezone"])
    direct = _paths(inv, BUILTIN["direct"], ["cs-yungu", "cs-panyun", "cz-ezone"])
    rtt = {k: p.one_way_ms + base[(k[1], k[0])].one_way_ms for k, p in base.items()}
    rtt_d = {k: p.one_way_ms + direct[(k[1], k[0])].one_way_ms for k, p in direct.items()}
    assert 20 < rtt[("cs-yungu-ct", "cs-panyun-cm")] < 60  # tens of ms through a hub
    assert rtt_d[("cs-yungu-ct", "cs-panyun-cm")] < 2  # same city through Changsha
    assert 2 < rtt_d[("cs-yungu-ct", "cz-ezone-cm")] < 10  # Changsha - Chenzhou: a few ms
    assert rtt[("cs-yungu-ct", "cs-panyun-ct")] < 1  # intra-carrier, intra-city: sub-ms
    for k in rtt:
        if k[0][-2:] != k[1][-2:]:
            assert rtt_d[k] < 0.5 * rtt[k]


def test_expiry_round_trips_grow_along_the_route(inv: Inventory) -> None:
    for p in _paths(inv, BUILTIN["baseline"], ["cs-yungu", "cz-ezone"]).values():
        assert len(p.expiry_ms) == len(p.hops)
        assert list(p.expiry_ms) == sorted(p.expiry_ms)
        assert p.expiry_ms[-1] <= 2 * p.one_way_ms + 50


def test_override_sets_total_delay_and_loss(inv: Inventory) -> None:
    prof = Profile(name="x", overrides=[Override(
        src=Selector(sites=["cs-yungu"], carriers=["CT"]),
        dst=Selector(sites=["cz-ezone"], carriers=["CM"]),
        one_way_ms=15.0, one_way=True, loss={"rate": 0.1})])  # type: ignore[arg-type]
    paths = _paths(inv, prof, ["cs-yungu", "cz-ezone"])
    fwd, back = paths[("cs-yungu-ct", "cz-ezone-cm")], paths[("cz-ezone-cm", "cs-yungu-ct")]
    assert fwd.one_way_ms == pytest.approx(15.0)
    assert sum(fwd.link_ms) == pytest.approx(15.0)
    assert fwd.direction.loss.rate == 0.1
    assert back.one_way_ms < 5
    assert back.direction.loss.rate == 0.0
