"""The embedded demo region: a synthetic gas-field outline, towns and site-response zones.

Everything here is written by this project for demonstrations and tests. It sits roughly where the
Groningen field is (RD New x 230-270 km, y 565-615 km) and uses real town names at approximate
real locations, but it is **not** data: the field outline is a smooth made-up curve, the town
weights are rough population shares, and the eight zones are Voronoi cells of fixed seed points
named after typical soils of the region, not a site-response zonation.

All coordinates are RD New [m, EPSG:28992].

* :func:`field_outline` - the field, a smooth irregular 40-vertex polygon;
* :func:`towns` - towns with location, population share, radius and municipality;
* :func:`zones` - 8 site-response zones (ids 1..8) that together cover :func:`region_bounds`;
* :func:`region_bounds` - the field's bounding box with a 15 km margin, rounded out to whole km.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import MultiPoint, Polygon

#: Margin around the field outline's bounding box for :func:`region_bounds`. [m]
REGION_MARGIN_M = 15_000.0

# Field outline: r(theta) = 1 + sum_k a_k cos(k theta + phi_k), scaled by semi-axes, rotated.
# Centre, semi-axes [m], rotation [deg, anticlockwise], and harmonics (k, a_k, phi_k [rad]),
# chosen by hand to give a blob elongated north-south, bulging towards Delfzijl in the east.
_OUTLINE_CENTRE_M = (249_000.0, 588_500.0)
_OUTLINE_SEMI_AXES_M = (14_500.0, 20_500.0)
_OUTLINE_ROTATION_DEG = -12.0
_OUTLINE_HARMONICS = ((2, 0.07, 0.6), (3, 0.08, -1.2), (4, 0.04, 2.1), (5, 0.025, 0.3))
_OUTLINE_VERTICES = 40


@dataclass(frozen=True)
class Town:
    """A town of the demo region.

    Attributes
    ----------
    name
        Town name.
    x, y
        Approximate town centre. [m, EPSG:28992]
    weight
        Share of the region's town buildings (weights of all towns sum to 1). [-]
    radius_m
        Standard deviation of the 2-D Gaussian of its buildings around the centre. [m]
    municipality
        Municipality (as of 2021).
    """

    name: str
    x: float
    y: float
    weight: float
    radius_m: float
    municipality: str


# Approximate real town centres, rough population shares, cluster radii, municipality (2021).
_TOWNS: tuple[Town, ...] = (
    Town("Groningen", 233_800.0, 582_000.0, 0.36, 3_000.0, "Groningen"),
    Town("Ten Boer", 242_000.0, 588_600.0, 0.04, 700.0, "Groningen"),
    Town("Hoogezand", 243_500.0, 575_400.0, 0.12, 1_600.0, "Midden-Groningen"),
    Town("Slochteren", 246_400.0, 580_900.0, 0.03, 700.0, "Midden-Groningen"),
    Town("Siddeburen", 253_100.0, 582_300.0, 0.03, 600.0, "Midden-Groningen"),
    Town("Zuidbroek", 251_600.0, 572_200.0, 0.03, 700.0, "Midden-Groningen"),
    Town("Loppersum", 246_100.0, 596_100.0, 0.03, 600.0, "Eemsdelta"),
    Town("Appingedam", 253_700.0, 593_700.0, 0.08, 1_100.0, "Eemsdelta"),
    Town("Delfzijl", 259_700.0, 594_400.0, 0.11, 1_500.0, "Eemsdelta"),
    Town("Middelstum", 239_200.0, 599_800.0, 0.02, 600.0, "Eemsdelta"),
    Town("Winsum", 228_600.0, 595_000.0, 0.04, 800.0, "Het Hogeland"),
    Town("Bedum", 236_200.0, 591_200.0, 0.05, 900.0, "Het Hogeland"),
    Town("Uithuizen", 241_200.0, 606_900.0, 0.03, 800.0, "Het Hogeland"),
    Town("Scheemda", 258_300.0, 574_700.0, 0.03, 700.0, "Oldambt"),
)

# Site-response zones: (id, name, Voronoi seed x, seed y [m]).
_ZONES: tuple[tuple[int, str, float, float], ...] = (
    (1, "Holocene clay on peat", 247_000.0, 590_000.0),
    (2, "Pleistocene sand", 238_000.0, 569_000.0),
    (3, "Tidal flat deposits", 246_000.0, 612_000.0),
    (4, "Peat on Pleistocene sand", 255_000.0, 577_000.0),
    (5, "Holocene tidal channel fill", 262_000.0, 592_000.0),
    (6, "Boulder clay (glacial till)", 227_000.0, 582_000.0),
    (7, "Salt-marsh clay (wierden area)", 233_000.0, 601_000.0),
    (8, "Reclaimed polder clay", 267_000.0, 607_000.0),
)


@functools.lru_cache(maxsize=1)
def _outline() -> Polygon:
    cx, cy = _OUTLINE_CENTRE_M
    a, b = _OUTLINE_SEMI_AXES_M
    rot = math.radians(_OUTLINE_ROTATION_DEG)
    theta = np.arange(_OUTLINE_VERTICES) * (2.0 * math.pi / _OUTLINE_VERTICES)
    r = np.ones_like(theta)
    for k, amp, phase in _OUTLINE_HARMONICS:
        r += amp * np.cos(k * theta + phase)
    u = a * r * np.cos(theta)
    v = b * r * np.sin(theta)
    x = cx + u * math.cos(rot) - v * math.sin(rot)
    y = cy + u * math.sin(rot) + v * math.cos(rot)
    # round to 10 m: the vertices are then exact decimal numbers, identical on every platform
    return Polygon(np.column_stack([np.round(x, -1), np.round(y, -1)]))


def field_outline() -> Polygon:
    """Outline of the demo gas field.

    Returns
    -------
    shapely.Polygon
        A smooth, irregular, valid polygon of 40 vertices (rounded to 10 m), about 30 km east-west
        by 42 km north-south around (249 km, 588.5 km). [m, EPSG:28992]
    """
    return _outline()


def towns() -> list[Town]:
    """Towns of the demo region (name, RD location, population share, radius, municipality).

    Returns
    -------
    list of Town
        14 towns; weights sum to 1. Coordinates [m, EPSG:28992].
    """
    return list(_TOWNS)


def region_bounds() -> tuple[float, float, float, float]:
    """Bounding box of the demo region.

    Returns
    -------
    tuple of float
        ``(xmin, ymin, xmax, ymax)``: the field outline's bounds widened by 15 km and rounded
        outwards to whole kilometres. [m, EPSG:28992]
    """
    xmin, ymin, xmax, ymax = _outline().bounds
    km = 1000.0
    return (
        math.floor((xmin - REGION_MARGIN_M) / km) * km,
        math.floor((ymin - REGION_MARGIN_M) / km) * km,
        math.ceil((xmax + REGION_MARGIN_M) / km) * km,
        math.ceil((ymax + REGION_MARGIN_M) / km) * km,
    )


@functools.lru_cache(maxsize=1)
def _zone_polygons() -> tuple[Polygon, ...]:
    frame = shapely.box(*region_bounds())
    seeds = [shapely.Point(sx, sy) for _, _, sx, sy in _ZONES]
    cells = list(shapely.voronoi_polygons(MultiPoint(seeds), extend_to=frame).geoms)
    out = []
    for seed in seeds:
        # match cells to seeds explicitly: GEOS does not promise the cells in input order
        (cell,) = [c for c in cells if c.contains(seed)]
        clipped = shapely.normalize(cell.intersection(frame))
        if not isinstance(clipped, Polygon) or not clipped.is_valid:
            raise RuntimeError("demo zone construction failed")  # cannot happen for the fixed seeds
        out.append(clipped)
    return tuple(out)


def zones() -> tuple[list[Polygon], list[int], list[str]]:
    """Site-response zones of the demo region.

    Eight Voronoi cells of fixed seed points, clipped to :func:`region_bounds`; together they cover
    that box without gaps (neighbours share their edges exactly).

    Returns
    -------
    polygons, ids, names
        Zone polygons [m, EPSG:28992], their ids 1..8, and a descriptive soil name for each.
    """
    return list(_zone_polygons()), [z[0] for z in _ZONES], [z[1] for z in _ZONES]
