"""Outlines are inventory data in WGS-84 and agree with its coordinates; the map frame is
computed from the outlines, cities and sites."""

from __future__ import annotations

import pytest

from dashboard import geo
from inventory.topology import Topology


def _outlined(topo: Topology) -> dict[str, geo.Ring]:
    return {p.id: p.outline for p in topo.inv.provinces if p.outline}


def test_the_seed_outlines_a_province(topo: Topology) -> None:
    assert geo.outlines(topo.inv) == list(_outlined(topo).values())
    assert len(geo.outlines(topo.inv)) == 1


def test_every_site_is_inside_its_own_provinces_outline_only(topo: Topology) -> None:
    """Every site of an outlined province falls inside its outline; every other site (the
    hubs of the neighbouring provinces) outside."""
    for pid, ring in _outlined(topo).items():
        for site in topo.sites.values():
            city = topo.cities[site.city]
            inside = geo.contains(ring, site.lon or 0, site.lat or 0)
            assert inside == (city.province == pid), site.id
    assert any(topo.province_of(s) != pid for s in topo.sites)  # some are outside


def test_cities_inside_and_neighbours_outside(topo: Topology) -> None:
    for pid, ring in _outlined(topo).items():
        for city in topo.cities.values():
            assert geo.contains(ring, city.lon, city.lat) == (city.province == pid)


def test_frame_holds_outlines_cities_and_sites_with_a_margin(topo: Topology) -> None:
    (lon0, lon1), (lat0, lat1) = geo.inventory_frame(topo.inv)
    m = geo.FRAME_MARGIN_DEG
    points = [v for ring in geo.outlines(topo.inv) for v in ring]
    points += [(c.lon, c.lat) for c in topo.cities.values()]
    points += [(s.lon or 0, s.lat or 0) for s in topo.sites.values()]
    assert lon0 == pytest.approx(min(p[0] for p in points) - m)
    assert lon1 == pytest.approx(max(p[0] for p in points) + m)
    assert lat0 == pytest.approx(min(p[1] for p in points) - m)
    assert lat1 == pytest.approx(max(p[1] for p in points) + m)


def test_frame_stays_on_the_globe_and_an_empty_map_is_the_world() -> None:
    assert geo.frame([[(179.9, 0.0), (179.8, 1.0), (179.7, 0.0)]], [(0.0, 89.9)]) == (
        (-0.4, 180.0), (-0.4, 90.0))
    assert geo.frame([], []) == ((-180.0, 180.0), (-90.0, 90.0))


def test_contains_square_open_or_closed() -> None:
    sq = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
    assert geo.contains(sq, 0.5, 0.5)
    assert not geo.contains(sq, 1.5, 0.5)
    closed = (*sq, sq[0])
    assert geo.contains(closed, 0.5, 0.5)
    assert not geo.contains(closed, -0.5, 0.5)
