"""Derived views of an inventory: endpoints, directed paths and scope matching.

Pure functions over a validated :class:`~inventory.schema.Inventory`; used by the testbed (which
hosts to build), the probe (whom to measure), the analyzer (which paths a policy target covers)
and the dashboard (carrier and city matrices).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property

from inventory.schema import (
    City,
    Endpoint,
    Inventory,
    MeasurementSpec,
    PathScope,
    Probe,
    Segment,
    Selector,
    Site,
)
from ixmeter.core.record import parse_path_id, path_id


@dataclass(frozen=True, slots=True)
class PathEnds:
    """A directed path between two (site, carrier) ends."""

    src_site: str
    src_carrier: str
    dst_site: str
    dst_carrier: str

    @classmethod
    def parse(cls, path_id: str) -> PathEnds:
        """The path of a path id (:func:`ixmeter.core.record.parse_path_id`); ValueError if it is
        not one."""
        return cls(*parse_path_id(path_id))

    @property
    def inter_carrier(self) -> bool:
        return self.src_carrier != self.dst_carrier

    @property
    def id(self) -> str:
        """The path id (:func:`ixmeter.core.record.path_id`), as results and rollups carry it."""
        return path_id(self.src_site, self.src_carrier, self.dst_site, self.dst_carrier)

    @property
    def carrier_pair(self) -> str:
        """The carrier-pair key ``CT>CM`` (:func:`pair_key`)."""
        return pair_key(self.src_carrier, self.dst_carrier)


def pair_key(src: str, dst: str) -> str:
    """The key of an ordered pair (carrier pair ``CT>CM``, city pair ``changsha>zhuzhou``):
    verdict groups, fault-register segments and reports name pairs this way."""
    return f"{src}>{dst}"


PER_VALUES: tuple[str, ...] = ("scope", "carrier_pair", "city_pair", "path")


def group_key(ends: PathEnds, per: str, city_of: Callable[[str], str | None]) -> str:
    """The verdict group of a directed path under a policy target's ``per``: the path id, the
    directed carrier pair (``CT>CM``), the directed city pair (``changsha>zhuzhou``; a site
    without a city stands for itself) or the whole scope (``all``). ``city_of`` maps a site
    to its city id. The one definition the analyzer's groups and the dashboard's trends use."""
    if per == "path":
        return ends.id
    if per == "carrier_pair":
        return ends.carrier_pair
    if per == "city_pair":
        return pair_key(city_of(ends.src_site) or ends.src_site,
                        city_of(ends.dst_site) or ends.dst_site)
    if per == "scope":
        return "all"
    raise ValueError(f"unknown grouping {per!r}; known: {', '.join(PER_VALUES)}")


def source_carrier(group: str, per: str) -> str | None:
    """The source carrier a group key names (carrier pair or path), else None."""
    if per == "path":
        return PathEnds.parse(group).src_carrier
    if per == "carrier_pair":
        return split_pair(group)[0]
    return None


def split_pair(key: str) -> tuple[str, str]:
    """The two members of a :func:`pair_key`."""
    src, sep, dst = key.partition(">")
    if not sep:
        raise ValueError(f"not a pair key {key!r}: expected SRC>DST")
    return src, dst


class Topology:
    """Indexes over one inventory."""

    def __init__(self, inv: Inventory) -> None:
        self.inv = inv
        self.sites: dict[str, Site] = {s.id: s for s in inv.sites}
        self.cities: dict[str, City] = {c.id: c for c in inv.cities}
        self.endpoints: dict[str, Endpoint] = {e.id: e for e in [*inv.probes, *inv.targets]}

    def city_of(self, site_id: str) -> City | None:
        site = self.sites.get(site_id)
        return self.cities.get(site.city) if site else None

    def city_id(self, site_id: str) -> str | None:
        city = self.city_of(site_id)
        return city.id if city else None

    def group_of(self, ends: PathEnds, per: str) -> str:
        """:func:`group_key` with this inventory's cities."""
        return group_key(ends, per, self.city_id)

    def province_of(self, site_id: str) -> str | None:
        city = self.city_of(site_id)
        return city.province if city else None

    def endpoint_at(self, site_id: str, carrier: str) -> Endpoint | None:
        """The first endpoint of ``carrier`` at ``site_id``, if any."""
        for ep in self.endpoints.values():
            if ep.site == site_id and ep.carrier == carrier:
                return ep
        return None

    def selects(self, sel: Selector, site_id: str, carrier: str) -> bool:
        """True if the end (site, carrier) matches every non-empty list of ``sel``."""
        site = self.sites.get(site_id)
        city = self.city_of(site_id)
        return all((
            not sel.carriers or carrier in sel.carriers,
            not sel.sites or site_id in sel.sites,
            not sel.kinds or (site is not None and site.kind in sel.kinds),
            not sel.cities or (site is not None and site.city in sel.cities),
            not sel.provinces or (city is not None and city.province in sel.provinces),
        ))

    def in_scope(self, scope: PathScope, path: PathEnds) -> bool:
        """Does the directed ``path`` belong to ``scope``?"""
        src_city, dst_city = self.city_of(path.src_site), self.city_of(path.dst_site)
        if src_city is None or dst_city is None:
            return False
        return all((
            _relation(scope.carriers, path.src_carrier == path.dst_carrier, "intra", "inter"),
            _relation(scope.cities, src_city.id == dst_city.id, "same", "different"),
            _relation(scope.clusters, _same_cluster(src_city, dst_city), "same", "different"),
            scope.within_province is None
            or src_city.province == dst_city.province == scope.within_province,
            self.selects(scope.sources, path.src_site, path.src_carrier),
            self.selects(scope.destinations, path.dst_site, path.dst_carrier),
        ))

    def spec_paths(self, spec: MeasurementSpec) -> Iterator[tuple[Probe, Endpoint]]:
        """(probe, destination endpoint) pairs a spec measures; never a probe to itself."""
        for probe in self.inv.probes:
            if spec.method not in probe.methods:
                continue
            if not self.selects(spec.sources, probe.site, probe.carrier):
                continue
            for dst in self.endpoints.values():
                if dst.id != probe.id and self.selects(spec.destinations, dst.site, dst.carrier):
                    yield probe, dst

    @cached_property
    def probe_paths(self) -> list[PathEnds]:
        """Every directed path between two probes at different (site, carrier) ends."""
        ends = sorted({(p.site, p.carrier) for p in self.inv.probes})
        return [PathEnds(s, sc, d, dc) for s, sc in ends for d, dc in ends if (s, sc) != (d, dc)]

    @cached_property
    def endpoint_paths(self) -> list[PathEnds]:
        """Every directed path from a probe's end to another endpoint's end (probe or
        answer-only target): what the probes can measure."""
        sources = sorted({(p.site, p.carrier) for p in self.inv.probes})
        ends = sorted({(e.site, e.carrier) for e in self.endpoints.values()})
        return [PathEnds(s, sc, d, dc) for s, sc in sources for d, dc in ends
                if (s, sc) != (d, dc)]

    def segment_paths(self, segment: Segment) -> list[PathEnds]:
        """The measurable directed paths a segment covers, in path order."""
        return [p for p in self.endpoint_paths if self.in_scope(segment.paths, p)]

    def carrier_of_address(self, address: str) -> str | None:
        """Map an address (a traceroute hop) to a carrier by the inventory's prefixes."""
        ip = ipaddress.ip_address(address)
        for carrier in self.inv.carriers:
            if any(ip in ipaddress.ip_network(p) for p in carrier.prefixes):
                return carrier.id
        return None

    def site_of_address(self, address: str) -> str | None:
        """Map an address to a site (exchange point, hub) by the sites' prefixes or endpoints."""
        ip = ipaddress.ip_address(address)
        for site in self.sites.values():
            if any(ip in ipaddress.ip_network(p) for p in site.prefixes):
                return site.id
        for ep in self.endpoints.values():
            if address in ep.addresses:
                return ep.site
        return None


def _relation(wanted: str, same: bool, same_word: str, other_word: str) -> bool:
    return wanted == "any" or wanted == (same_word if same else other_word)


def _same_cluster(a: City, b: City) -> bool:
    if a.id == b.id:
        return True
    return a.cluster is not None and a.cluster == b.cluster
