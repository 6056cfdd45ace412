"""Offline geography for the map: the inventory's province outlines and the frame around them.

Outlines are data: a province's optional ``outline`` in the inventory (WGS-84 ``[lon, lat]``
vertices, validated by :class:`inventory.schema.Province`), with its provenance noted next to it
in the YAML. The map frame is computed, never written down: the bounding box of every outline
vertex, city and site, widened by a margin. No tile server, topojson or network is used: the
map is a plain lon/lat scatter figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from inventory.schema import Inventory

Ring = Sequence[tuple[float, float]]

# Frame margin around the outermost point, in degrees (~40 km): room for a hub's star and its
# label at the frame's edge.
FRAME_MARGIN_DEG = 0.4


def outlines(inv: Inventory) -> list[Ring]:
    """Every province outline the inventory gives, in its order."""
    return [p.outline for p in inv.provinces if p.outline]


def frame(rings: Iterable[Ring], points: Iterable[tuple[float, float]],
          margin: float = FRAME_MARGIN_DEG) -> tuple[tuple[float, float], tuple[float, float]]:
    """(lon range, lat range): the bounding box of the rings' vertices and the (lon, lat)
    points, each side moved out by ``margin`` degrees. An empty map gets the whole world."""
    every = [*(v for ring in rings for v in ring), *points]
    if not every:
        return (-180.0, 180.0), (-90.0, 90.0)
    lons = [v[0] for v in every]
    lats = [v[1] for v in every]
    return ((max(-180.0, min(lons) - margin), min(180.0, max(lons) + margin)),
            (max(-90.0, min(lats) - margin), min(90.0, max(lats) + margin)))


def inventory_frame(inv: Inventory) -> tuple[tuple[float, float], tuple[float, float]]:
    """The map frame of an inventory: its outlines, cities and sites (with coordinates)."""
    points = [(c.lon, c.lat) for c in inv.cities]
    points += [(s.lon, s.lat) for s in inv.sites if s.lon is not None and s.lat is not None]
    return frame(outlines(inv), points)


def contains(polygon: Ring, lon: float, lat: float) -> bool:
    """Point in polygon by ray casting (even-odd rule) in the lon/lat plane; the ring closes
    itself (a repeated first vertex at the end adds a zero-length edge, which never counts)."""
    inside = False
    n = len(polygon)
    for i in range(n):
        (x1, y1), (x2, y2) = polygon[i], polygon[(i + 1) % n]
        if (y1 > lat) != (y2 > lat):
            x = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
            if x > lon:
                inside = not inside
    return inside
