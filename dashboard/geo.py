"""Offline geography for the province map: a schematic outline of Hunan, in WGS-84.

The outline is a hand-drawn schematic polygon of 38 vertices, traced for this project from the
province's well-known extent (about 108.8–114.3 °E, 24.6–30.1 °N) and its neighbours' county
seats; its error is of the order of 20 km. It is no official boundary (the map says so) and it
comes from no third-party data set, so it carries no licence terms beyond the project's own.
``tests/dashboard/test_geo.py`` checks it against the inventory: every in-province site falls
inside, the Wuhan and Guangzhou hubs outside. No tile server, topojson or network is used: the
map is a plain lon/lat scatter figure.
"""

from __future__ import annotations

from collections.abc import Sequence

# (lon, lat), clockwise from the Chongqing/Hubei corner in the north-west.
HUNAN_OUTLINE: tuple[tuple[float, float], ...] = (
    (109.30, 29.05), (109.50, 29.60), (110.10, 29.80), (110.60, 30.10), (111.20, 29.95),
    (111.70, 29.90), (112.10, 29.85), (112.60, 29.75), (112.90, 29.50), (113.15, 29.48),
    (113.50, 29.75), (113.95, 29.45), (114.10, 28.80), (114.25, 28.30), (113.90, 27.40),
    (114.05, 26.90), (114.05, 26.40), (114.15, 26.00), (113.95, 25.50), (113.60, 25.05),
    (113.30, 24.95), (112.80, 24.95), (112.25, 25.10), (111.90, 24.75), (111.40, 24.65),
    (111.20, 25.10), (111.05, 25.40), (111.00, 25.90), (110.60, 26.05), (110.30, 25.95),
    (109.70, 25.90), (109.40, 26.40), (109.30, 26.60), (108.80, 27.30), (109.25, 27.75),
    (109.20, 28.10), (109.20, 28.55), (109.25, 29.00),
)

# Map frame: Hunan plus the Wuhan and Guangzhou hubs.
LON_RANGE = (108.3, 114.9)
LAT_RANGE = (22.7, 31.0)


def contains(polygon: Sequence[tuple[float, float]], lon: float, lat: float) -> bool:
    """Point in polygon by ray casting (even-odd rule) in the lon/lat plane."""
    inside = False
    n = len(polygon)
    for i in range(n):
        (x1, y1), (x2, y2) = polygon[i], polygon[(i + 1) % n]
        if (y1 > lat) != (y2 > lat):
            x = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
            if x > lon:
                inside = not inside
    return inside
