"""Pure planning of the emulated network: which hosts exist, which routers, and each directed
path's route, per-link delays and impairments under a profile.

Routers are numbered from the inventory's own prefixes, so every hop maps back to its carrier
(``Topology.carrier_of_address``) or its exchange site (``Topology.site_of_address``):
  carrier routers: the last /24 (IPv4) and last /64 (IPv6) of the carrier's first prefixes,
  ``.<n>`` for the metro router of the n-th city, ``.<200 + n>`` for the core router of the
  n-th province; exchange routers: ``.<k>`` in the site's prefix for the k-th carrier.
"""

from __future__ import annotations

import ipaddress
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

from inventory.schema import Endpoint, Inventory, Selector, SiteKind
from inventory.topology import Topology
from ixmeter.core.errors import IxmeterError
from testbed.impair import Direction
from testbed.profiles import Override, Profile

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius


class PlanError(IxmeterError):
    """An inventory or host selection the testbed cannot build."""


@dataclass(frozen=True, slots=True)
class Host:
    """One emulated probe or target: a network namespace with the endpoint's addresses."""

    name: str
    namespace: str
    site: str
    carrier: str
    city: str
    addresses: tuple[str, ...]

    @property
    def v4(self) -> str | None:
        return next((a for a in self.addresses if ":" not in a), None)

    @property
    def v6(self) -> str | None:
        return next((a for a in self.addresses if ":" in a), None)


@dataclass(frozen=True, slots=True)
class Router:
    """A hop of an emulated route."""

    name: str
    carrier: str | None
    site: str | None
    lat: float
    lon: float
    v4: str
    v6: str


@dataclass(frozen=True, slots=True)
class PathPlan:
    """One directed path: its routers, per-link one-way delays and impairments.

    ``link_ms[i]`` is the delay of the link into ``hops[i]``; the last one leads to ``dst``.
    ``expiry_ms[t-1]`` is the round trip to hop t for a packet whose TTL expires there.
    """

    src: str
    dst: str
    hops: tuple[Router, ...]
    link_ms: tuple[float, ...]
    direction: Direction
    expiry_ms: tuple[float, ...] = ()

    @property
    def one_way_ms(self) -> float:
        return self.direction.delay_ms


def namespace_name(instance: str, host: str) -> str:
    """Network namespace of ``host`` in testbed ``instance`` (prefix ``ixm-`` for cleanup)."""
    return f"ixm-{instance}-{host}"


def select_hosts(inv: Inventory, instance: str, *, sites: Sequence[str] = (),
                 carriers: Sequence[str] = (), max_hosts: int | None = None) -> list[Host]:
    """The hosts to build: every probe and target, filtered by site and carrier, at most
    ``max_hosts`` of them, in inventory order."""
    topo = Topology(inv)
    unknown = [s for s in sites if s not in topo.sites]
    if unknown:
        raise PlanError(f"unknown site(s) {', '.join(unknown)}", hint="see the inventory's sites")
    sel = Selector(sites=list(sites), carriers=list(carriers))
    eps: Iterable[Endpoint] = [*inv.probes, *inv.targets]
    hosts = [_host(topo, ep, instance) for ep in eps if topo.selects(sel, ep.site, ep.carrier)]
    hosts = hosts[:max_hosts] if max_hosts is not None else hosts
    if len(hosts) < 2:
        raise PlanError(f"only {len(hosts)} host(s) selected; a network needs at least 2")
    return hosts


def _host(topo: Topology, ep: Endpoint, instance: str) -> Host:
    site = topo.sites[ep.site]
    return Host(ep.id, namespace_name(instance, ep.id), ep.site, ep.carrier, site.city,
                tuple(ep.addresses))


def _nth_address(prefixes: Sequence[str], version: int, n: int, last: bool) -> str:
    """Address ``n`` in the first prefix of ``version``, or in its last /24 (v4) or /64 (v6)."""
    nets = [ipaddress.ip_network(p) for p in prefixes]
    net = next((x for x in nets if x.version == version), None)
    if net is None:
        net = ipaddress.ip_network("198.18.255.0/24" if version == 4 else "2001:2:0:ffff::/64")
    sub = 24 if version == 4 else 64
    base = int(net.network_address)
    if last and net.prefixlen < sub:
        shift = net.max_prefixlen - sub
        base = int(net.broadcast_address) >> shift << shift
    return str(ipaddress.ip_address(base + n) if version == 6 else ipaddress.IPv4Address(base + n))


class Routers:
    """Every router of the emulated network, derived from the inventory."""

    def __init__(self, inv: Inventory) -> None:
        self.topo = Topology(inv)
        self.inv = inv
        self._cities = sorted(c.id for c in inv.cities)
        self._provinces = sorted(p.id for p in inv.provinces)
        self._carriers = [c.id for c in inv.carriers]
        self._cache: dict[tuple[str, str, str], Router] = {}

    def metro(self, carrier: str, city: str) -> Router:
        key = ("metro", carrier, city)
        if key not in self._cache:
            self._cache[key] = self._metro(carrier, city)
        return self._cache[key]

    def _metro(self, carrier: str, city: str) -> Router:
        c = self.topo.cities[city]
        n = self._cities.index(city) + 1
        return self._carrier_router(f"{carrier}-{city}", carrier, n, c.lat, c.lon)

    def core(self, carrier: str, province: str) -> Router:
        key = ("core", carrier, province)
        if key not in self._cache:
            self._cache[key] = self._core(carrier, province)
        return self._cache[key]

    def _core(self, carrier: str, province: str) -> Router:
        lat, lon = self.core_position(province)
        n = 200 + self._provinces.index(province) + 1
        return self._carrier_router(f"{carrier}-core-{province}", carrier, n, lat, lon)

    def core_position(self, province: str) -> tuple[float, float]:
        """Where a province's core routers sit: its exchange point, else its cities' centroid."""
        for site in self.topo.sites.values():
            city = self.topo.cities.get(site.city)
            if site.kind == SiteKind.EXCHANGE_POINT and city and city.province == province:
                return site.lat or city.lat, site.lon or city.lon
        cities = [c for c in self.topo.cities.values() if c.province == province]
        if not cities:
            raise PlanError(f"province {province} has no city")
        return sum(c.lat for c in cities) / len(cities), sum(c.lon for c in cities) / len(cities)

    def exchange(self, site_id: str, carrier: str) -> Router:
        key = ("exchange", site_id, carrier)
        if key not in self._cache:
            self._cache[key] = self._exchange(site_id, carrier)
        return self._cache[key]

    def _exchange(self, site_id: str, carrier: str) -> Router:
        site = self.topo.sites[site_id]
        k = self._carriers.index(carrier) + 1
        return Router(f"{site_id}-{carrier}", carrier, site_id, site.lat or 0.0, site.lon or 0.0,
                      _nth_address(site.prefixes, 4, k, last=False),
                      _nth_address(site.prefixes, 6, k, last=False))

    def _carrier_router(self, name: str, carrier: str, n: int, lat: float, lon: float) -> Router:
        prefixes = next(c.prefixes for c in self.inv.carriers if c.id == carrier)
        return Router(name, carrier, None, lat, lon, _nth_address(prefixes, 4, n, last=True),
                      _nth_address(prefixes, 6, n, last=True))

    def hub_for(self, a: str, b: str, profile: Profile) -> str:
        """The hub two carriers meet at under a hub profile: carrier pairs take turns."""
        hubs = profile.hubs or sorted(s.id for s in self.topo.sites.values()
                                      if s.kind == SiteKind.HUB)
        if not hubs:
            raise PlanError("profile routes through a hub but the inventory has no hub site")
        pairs = list(combinations(self._carriers, 2))
        key = (a, b) if (a, b) in pairs else (b, a)
        return hubs[pairs.index(key) % len(hubs)]

    def ixp(self, profile: Profile) -> str:
        if profile.ixp:
            return profile.ixp
        for site in self.topo.sites.values():
            if site.kind == SiteKind.EXCHANGE_POINT:
                return site.id
        raise PlanError("profile routes through an exchange point but the inventory has none")


def route(routers: Routers, profile: Profile, src: Host, dst: Host) -> list[Router]:
    """Routers from ``src`` to ``dst``: the source carrier's, the exchange (for inter-carrier
    paths), the destination carrier's. Core routers appear only away from the exchange city."""
    topo = routers.topo
    src_city, dst_city = topo.cities[src.city], topo.cities[dst.city]
    if src.carrier == dst.carrier:
        hops = [routers.metro(src.carrier, src.city)]
        if src.city != dst.city:
            if src_city.province != dst_city.province:
                hops.append(routers.core(src.carrier, src_city.province))
                hops.append(routers.core(src.carrier, dst_city.province))
            hops.append(routers.metro(dst.carrier, dst.city))
        return hops
    site = routers.hub_for(src.carrier, dst.carrier, profile) if profile.exchange == "hub" \
        else routers.ixp(profile)
    x_city = topo.sites[site].city
    out = [routers.metro(src.carrier, src.city)]
    if src.city != x_city:
        out.append(routers.core(src.carrier, src_city.province))
    out += [routers.exchange(site, src.carrier), routers.exchange(site, dst.carrier)]
    if dst.city != x_city:
        out.append(routers.core(dst.carrier, dst_city.province))
    out.append(routers.metro(dst.carrier, dst.city))
    return out


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance on a sphere of the IUGG mean Earth radius."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def link_delays(profile: Profile, points: Sequence[tuple[float, float]],
                interconnect: int | None) -> list[float]:
    """One-way delay (ms) of each link along ``points``: fibre distance plus per-hop delay;
    link index ``interconnect`` also gets the profile's interconnect delay."""
    out = []
    for i, (a, b) in enumerate(zip(points, points[1:], strict=False)):
        km = great_circle_km(*a, *b) * profile.route_factor
        ms = km / profile.fibre_km_per_ms + profile.hop_ms
        out.append(ms + (profile.interconnect_ms if i == interconnect else 0.0))
    return out


def _matching(topo: Topology, overrides: Sequence[Override], src: Host,
              dst: Host) -> list[Override]:
    out = []
    for ov in overrides:
        fwd = topo.selects(ov.src, src.site, src.carrier) and topo.selects(ov.dst, dst.site,
                                                                            dst.carrier)
        back = not ov.one_way and topo.selects(ov.src, dst.site, dst.carrier) and topo.selects(
            ov.dst, src.site, src.carrier)
        if fwd or back:
            out.append(ov)
    return out


def plan_path(routers: Routers, profile: Profile, src: Host, dst: Host) -> PathPlan:
    """Route, link delays and impairments of the directed path ``src`` -> ``dst``."""
    topo = routers.topo
    hops = route(routers, profile, src, dst)
    site_pos = [(topo.sites[h.site].lat or 0.0, topo.sites[h.site].lon or 0.0) for h in (src, dst)]
    points = [site_pos[0], *((h.lat, h.lon) for h in hops), site_pos[1]]
    inter = src.carrier != dst.carrier
    ix = next((i for i in range(1, len(hops)) if hops[i - 1].site and hops[i].site), None)
    links = link_delays(profile, points, ix if inter else None)
    cls = profile.inter if inter else profile.intra
    jitter, loss = cls.jitter, cls.loss
    reorder, duplicate = profile.reorder, profile.duplicate
    for ov in _matching(topo, profile.overrides, src, dst):
        if ov.one_way_ms is not None:
            scale = ov.one_way_ms / sum(links)
            links = [x * scale for x in links]
        jitter, loss = ov.jitter or jitter, ov.loss or loss
        reorder = ov.reorder if ov.reorder is not None else reorder
        duplicate = ov.duplicate if ov.duplicate is not None else duplicate
    direction = Direction(sum(links), jitter.model(), loss.model(), reorder,
                          profile.reorder_ms, duplicate)
    return PathPlan(src.name, dst.name, tuple(hops), tuple(links), direction)


def with_expiry(fwd: PathPlan, back: PathPlan) -> PathPlan:
    """``fwd`` with the round trip to each of its hops: forward to hop t, then the return
    path's links from that router back to the source."""
    n = len(fwd.hops)
    same = [h.name for h in back.hops] == [h.name for h in reversed(fwd.hops)]
    out = []
    for t in range(1, n + 1):
        there = sum(fwd.link_ms[:t])
        home = sum(back.link_ms[n - t + 1:]) if same else there
        out.append(there + home)
    return PathPlan(fwd.src, fwd.dst, fwd.hops, fwd.link_ms, fwd.direction, tuple(out))


def plan_paths(inv: Inventory, hosts: Sequence[Host],
               profile: Profile) -> dict[tuple[str, str], PathPlan]:
    """Every directed path between the selected hosts under ``profile``."""
    routers = Routers(inv)
    raw = {(a.name, b.name): plan_path(routers, profile, a, b)
           for a in hosts for b in hosts if a.name != b.name}
    return {key: with_expiry(p, raw[(key[1], key[0])]) for key, p in raw.items()}


def path_seed(profile: Profile, src: str, dst: str) -> random.Random:
    """The RNG of one directed path: a function of the profile seed and the path only, so a
    run is reproducible whatever order packets arrive in."""
    return random.Random(f"{profile.seed}/{profile.name}/{src}>{dst}")
