"""The schematic outline is WGS-84 and agrees with the inventory's site coordinates."""

from __future__ import annotations

from dashboard import geo
from inventory.topology import Topology


def test_every_in_province_site_is_inside_the_outline(topo: Topology) -> None:
    for site in topo.sites.values():
        city = topo.cities[site.city]
        inside = geo.contains(geo.HUNAN_OUTLINE, site.lon or 0, site.lat or 0)
        assert inside == (city.province == "HN"), site.id


def test_cities_inside_and_neighbours_outside(topo: Topology) -> None:
    for city in topo.cities.values():
        assert geo.contains(geo.HUNAN_OUTLINE, city.lon, city.lat) == (city.province == "HN")


def test_outline_is_in_wgs84_range_and_frame() -> None:
    lons = [p[0] for p in geo.HUNAN_OUTLINE]
    lats = [p[1] for p in geo.HUNAN_OUTLINE]
    assert 108.5 < min(lons) < max(lons) < 114.5
    assert 24.4 < min(lats) < max(lats) < 30.3
    assert geo.LON_RANGE[0] < min(lons)
    assert max(lons) < geo.LON_RANGE[1]
    assert geo.LAT_RANGE[0] < min(lats)
    assert max(lats) < geo.LAT_RANGE[1]


def test_contains_square() -> None:
    sq = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
    assert geo.contains(sq, 0.5, 0.5)
    assert not geo.contains(sq, 1.5, 0.5)
