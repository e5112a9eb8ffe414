"""Site-response zones: building -> zone, zone files, and RD New <-> WGS84 helpers.

Zone assignment (:func:`assign_zones`)
--------------------------------------
A building gets the id of the zone polygon it lies in. Polygons are tested with vectorised
``shapely.intersects_xy`` on prepared geometries, so a point **on** a polygon boundary counts as
inside that polygon (``contains`` would leave it out of both neighbours).

*Tie rule.* A point covered by more than one polygon (on a shared boundary, or where polygons
overlap) gets the **lowest zone id** among them. Polygons are processed in ascending id order and a
point keeps the first zone it falls in, so the result depends neither on the order of the polygons
nor on the order of the points.

*Outside all polygons.* A point outside every polygon gets the zone of the **nearest** polygon
(planar distance in metres, ``STRtree.query_nearest``); equidistant polygons are again resolved by
the lowest id. How many points needed this and the largest distance are reported in a
``logging.INFO`` line of the ``hra.inputs.sites`` logger: a large distance usually means the buildings
and the zones are not in the same coordinate system.

Zone sources (:class:`ZoneSource`): where the zones of buildings or sites without a zone come
from, polygons with ids or the GMM V6/V7 zonation zip; one object for the engines and the hazard.

Zone files (:func:`read_zones`) are GeoJSON or GeoPackage files read with pyogrio (no geopandas
needed). Polygons are returned in RD New [m, EPSG:28992]; files in another declared CRS are
transformed with pyproj.

Coordinates: RD New (Amersfoort / RD New, EPSG:28992) in metres everywhere in the engine;
:func:`rd_to_wgs84` and :func:`wgs84_to_rd` convert to and from WGS84 longitude/latitude
(EPSG:4326) with a cached ``pyproj.Transformer`` (``always_xy=True``; thread-safe since pyproj 3.1).
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon

log = logging.getLogger(__name__)

RD_NEW = "EPSG:28992"
WGS84 = "EPSG:4326"

_POLYGONAL = (Polygon, MultiPolygon)


class ZoneFileError(ValueError):
    """A zone file cannot be used; the message names the file, the field and the fix."""


# --------------------------------------------------------------------------------------------
# Coordinate transforms
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _transformer(src: str, dst: str):
    from pyproj import Transformer

    return Transformer.from_crs(src, dst, always_xy=True)


def rd_to_wgs84(x, y) -> tuple[np.ndarray, np.ndarray]:
    """RD New to WGS84.

    Parameters
    ----------
    x, y
        Easting and northing. [m, EPSG:28992]

    Returns
    -------
    lon, lat
        Longitude and latitude. [degrees, EPSG:4326]
    """
    lon, lat = _transformer(RD_NEW, WGS84).transform(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return np.asarray(lon), np.asarray(lat)


def wgs84_to_rd(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """WGS84 to RD New.

    Parameters
    ----------
    lon, lat
        Longitude and latitude. [degrees, EPSG:4326]

    Returns
    -------
    x, y
        Easting and northing. [m, EPSG:28992]
    """
    x, y = _transformer(WGS84, RD_NEW).transform(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return np.asarray(x), np.asarray(y)


# --------------------------------------------------------------------------------------------
# Zone assignment
# --------------------------------------------------------------------------------------------


def _check_polygons(polygons: Sequence, zone_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    geoms = np.empty(len(polygons), dtype=object)
    for i, g in enumerate(polygons):
        geoms[i] = g
    ids_in = np.asarray(zone_ids)
    if geoms.size == 0:
        raise ValueError("assign_zones: no zone polygons given")
    if ids_in.shape != (geoms.size,):
        raise ValueError(f"assign_zones: {geoms.size} polygons but zone_ids has shape {ids_in.shape}")
    if ids_in.dtype.kind not in "iu":
        as_float = ids_in.astype(np.float64) if ids_in.dtype.kind in "fb" else None
        if as_float is None or not np.all(np.isfinite(as_float)) or np.any(np.round(as_float) != as_float):
            raise ValueError(f"assign_zones: zone ids must be integers, got {ids_in[:5].tolist()}...")
    ids = ids_in.astype(np.int64)
    for i, g in enumerate(geoms):
        if not isinstance(g, _POLYGONAL):
            raise ValueError(f"assign_zones: polygon {i} (zone {ids[i]}) is a {type(g).__name__}, not a Polygon or MultiPolygon")
        if g.is_empty:
            raise ValueError(f"assign_zones: polygon {i} (zone {ids[i]}) is empty")
        if not g.is_valid:
            raise ValueError(
                f"assign_zones: polygon {i} (zone {ids[i]}) is invalid ({shapely.is_valid_reason(g)}); repair it, e.g. with shapely.make_valid"
            )
    return geoms, ids


def assign_zones(
    x,
    y,
    polygons: Sequence[Polygon | MultiPolygon],
    zone_ids: Sequence[int],
) -> np.ndarray:
    """Site-response zone of each point.

    Parameters
    ----------
    x, y
        Point coordinates, same shape. [m, EPSG:28992]
    polygons
        Zone polygons (Polygon or MultiPolygon, valid, non-empty), in the same CRS as the points.
    zone_ids
        Integer id of each polygon; several polygons may share an id.

    Returns
    -------
    numpy.ndarray
        int64, the shape of ``x``: the zone id of every point.

    Notes
    -----
    A point on a polygon's boundary is inside it. Where several polygons cover a point (shared
    boundary, overlap) the lowest zone id wins; a point outside all polygons gets the zone of the
    nearest one (ties: lowest id), and the count and largest distance of those are logged at INFO
    level. The result is independent of the order of the points and of the polygons.

    Examples
    --------
    >>> from shapely import box
    >>> assign_zones([5.0, 10.0, 25.0], [5.0, 5.0, 5.0], [box(0, 0, 10, 10), box(10, 0, 20, 10)], [2, 1]).tolist()
    [2, 1, 1]
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"assign_zones: x has shape {x.shape} but y has shape {y.shape}")
    shape = x.shape
    x = x.ravel()
    y = y.ravel()
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"assign_zones: {int(bad.sum())} point(s) have non-finite coordinates (first at position {i}: x={x[i]}, y={y[i]})")
    geoms, ids = _check_polygons(polygons, zone_ids)

    n = x.size
    unassigned = np.iinfo(np.int64).max
    zone = np.full(n, unassigned, dtype=np.int64)
    order = np.argsort(ids, kind="stable")
    bounds = shapely.bounds(geoms)  # (p, 4): xmin, ymin, xmax, ymax
    for p in order:
        free = np.flatnonzero(zone == unassigned)
        if free.size == 0:
            break
        xmin, ymin, xmax, ymax = bounds[p]
        fx, fy = x[free], y[free]
        cand = free[(fx >= xmin) & (fx <= xmax) & (fy >= ymin) & (fy <= ymax)]
        if cand.size == 0:
            continue
        g = geoms[p]
        shapely.prepare(g)
        hit = shapely.intersects_xy(g, x[cand], y[cand])
        zone[cand[hit]] = ids[p]

    outside = np.flatnonzero(zone == unassigned)
    if outside.size:
        tree = shapely.STRtree(geoms)
        pts = shapely.points(x[outside], y[outside])
        (pi, gi), dist = tree.query_nearest(pts, all_matches=True, return_distance=True)
        nearest = np.full(outside.size, unassigned, dtype=np.int64)
        np.minimum.at(nearest, pi, ids[gi])
        zone[outside] = nearest
        log.info(
            "assign_zones: %d of %d points lie outside all %d zone polygons and got the nearest zone; "
            "largest distance %.1f m",
            outside.size,
            n,
            geoms.size,
            float(dist.max()),
        )
    return zone.reshape(shape)


# --------------------------------------------------------------------------------------------
# Zone files
# --------------------------------------------------------------------------------------------


def _zone_ids_from_field(values: np.ndarray, path: Path, id_field: str) -> np.ndarray:
    """Integer ids from an attribute column; raise naming file, field and feature."""
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if values.dtype.kind == "b":
        raise ZoneFileError(f"{path}: field {id_field!r} is boolean, not an integer zone id. Fix: use a field holding whole numbers")
    out = np.empty(values.size, dtype=np.int64)
    for i, v in enumerate(values):
        try:
            if v is None:
                raise ValueError("empty")
            f = float(str(v).strip()) if not isinstance(v, (int, float, np.number)) else float(v)
            if not np.isfinite(f) or f != round(f):
                raise ValueError("not whole")
            out[i] = int(round(f))
        except (ValueError, TypeError):
            raise ZoneFileError(
                f"{path}: field {id_field!r} of feature {i + 1} (first feature = 1) is {v!r}, not an integer zone id. "
                "Fix: give every zone a whole-number id in that field"
            ) from None
    return out


def _to_rd(geoms: np.ndarray, crs: str | None, path: Path) -> np.ndarray:
    """Polygons in RD New; transform from the file's CRS when it declares another one."""
    if crs is None:
        log.info("read_zones: %s declares no CRS; taking coordinates as RD New (EPSG:28992)", path)
        return geoms
    from pyproj import CRS

    src = CRS.from_user_input(crs)
    if src.equals(CRS.from_epsg(28992), ignore_axis_order=True):
        return geoms
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
    if src.is_geographic and (max(abs(xmin), abs(xmax)) > 180 or max(abs(ymin), abs(ymax)) > 90):
        # GDAL reports EPSG:4326 for any GeoJSON without a "crs" member (RFC 7946); metre-sized
        # coordinates there are RD New written without declaring it.
        log.warning(
            "read_zones: %s says %s but its coordinates (%.0f..%.0f, %.0f..%.0f) are not degrees; taking them as RD New (EPSG:28992)",
            path, crs, xmin, xmax, ymin, ymax,
        )
        return geoms
    t = _transformer(src.to_string(), RD_NEW)
    log.info("read_zones: transforming %s from %s to RD New (EPSG:28992)", path, crs)
    return shapely.transform(geoms, t.transform, interleaved=False)


def read_zones(
    path: str | os.PathLike, id_field: str, layer: str | int | None = None
) -> tuple[list[Polygon | MultiPolygon], list[int]]:
    """Read site-response zone polygons and their integer ids from a GeoJSON or GeoPackage file.

    Parameters
    ----------
    path
        ``.geojson``/``.json`` or ``.gpkg`` file (anything GDAL reads works).
    id_field
        Attribute field holding the integer zone id.
    layer
        Layer name or index; required when the file has more than one layer.

    Returns
    -------
    polygons, ids
        Polygons (RD New [m, EPSG:28992]) and their zone ids, in file order; pass them to
        :func:`assign_zones`.

    Raises
    ------
    ZoneFileError
        Missing file, unknown layer or field, non-integer or missing ids, non-polygon or invalid
        geometries; the message names the file, the field and the fix.
    """
    import pyogrio
    import pyogrio.raw

    path = Path(path)
    if not path.is_file():
        raise ZoneFileError(f"{path}: zone file not found. Fix: check the path (relative paths are taken from the working directory)")
    try:
        layers = pyogrio.list_layers(path)
    except Exception as exc:  # noqa: BLE001 - GDAL errors come in several classes
        raise ZoneFileError(f"{path}: cannot be opened as a vector file ({exc}). Fix: give a GeoJSON or GeoPackage file") from None
    if layer is None and len(layers) > 1:
        names = ", ".join(repr(str(nm)) for nm in layers[:, 0])
        raise ZoneFileError(f"{path}: has {len(layers)} layers ({names}). Fix: say which one holds the zones (layer=...)")
    try:
        info = pyogrio.read_info(path, layer=layer)
    except Exception as exc:  # noqa: BLE001
        raise ZoneFileError(f"{path}: cannot read layer {layer!r} ({exc}). Fix: check the layer name") from None
    fields = [str(f) for f in info["fields"]]
    if id_field not in fields:
        close = difflib.get_close_matches(id_field, fields, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ZoneFileError(
            f"{path}: field {id_field!r} not found (fields: {', '.join(map(repr, fields)) or 'none'}).{hint} "
            "Fix: name the field that holds the integer zone id"
        )
    meta, _, wkb, field_data = pyogrio.raw.read(path, layer=layer, columns=[id_field])
    if len(wkb) == 0:
        raise ZoneFileError(f"{path}: has no features. Fix: give a file with one polygon per zone (field {id_field!r})")
    geoms = shapely.from_wkb(wkb)
    ids = _zone_ids_from_field(np.asarray(field_data[0]), path, id_field)
    for i, g in enumerate(geoms):
        if g is None or g.is_empty:
            raise ZoneFileError(f"{path}: feature {i + 1} (zone {ids[i]} in field {id_field!r}) has no geometry. Fix: draw its polygon or remove it")
        if not isinstance(g, _POLYGONAL):
            raise ZoneFileError(
                f"{path}: feature {i + 1} (zone {ids[i]} in field {id_field!r}) is a {g.geom_type}, not a polygon. Fix: keep only (multi)polygons"
            )
        if not g.is_valid:
            raise ZoneFileError(
                f"{path}: feature {i + 1} (zone {ids[i]} in field {id_field!r}) is an invalid polygon ({shapely.is_valid_reason(g)}). "
                "Fix: repair it (QGIS 'Fix geometries', or shapely.make_valid)"
            )
    geoms = _to_rd(geoms, meta.get("crs"), path)
    return list(geoms), [int(v) for v in ids]


# --------------------------------------------------------------------------------------------
# Zone source: where the zones of points without a zone come from
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneSource:
    """Where the site-response zones of points without a zone come from: polygons with zone ids
    (a zone file, the demo region) or the GMM V6/V7 zonation (``Geological_zones_V6.zip``).

    One object for every caller (the risk engines through :func:`hra.chain.assign_sites`, the
    hazard curves); build it with :meth:`from_polygons` or :meth:`v6_zonation`.

    Attributes
    ----------
    kind
        ``"polygons"`` or ``"v6-zip"``.
    polygons, zone_ids
        The polygons (RD New [m, EPSG:28992]) and their integer zone ids (kind ``"polygons"``).
    path
        The file they come from (the zone file, or the V6 zonation zip); ``None`` for polygons
        held in memory.

    Examples
    --------
    >>> from shapely.geometry import box
    >>> src = ZoneSource.from_polygons([box(0, 0, 10, 10), box(10, 0, 20, 10)], [2, 1])
    >>> src.assign([5.0, 15.0], [5.0, 5.0]).tolist()
    [2, 1]
    """

    kind: Literal["polygons", "v6-zip"]
    polygons: tuple = ()
    zone_ids: tuple[int, ...] = ()
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.kind == "polygons":
            if len(self.polygons) == 0 or len(self.polygons) != len(self.zone_ids):
                raise ValueError(f"ZoneSource: {len(self.polygons)} polygons and {len(self.zone_ids)} zone ids; "
                                 "give one id per polygon")
        elif self.kind == "v6-zip":
            if self.path is None:
                raise ValueError("ZoneSource: kind 'v6-zip' needs the path of Geological_zones_V6.zip")
        else:
            raise ValueError(f"ZoneSource: kind {self.kind!r} is not 'polygons' or 'v6-zip'")

    @classmethod
    def from_polygons(cls, polygons: Sequence, zone_ids: Sequence[int], path: str | os.PathLike | None = None) -> "ZoneSource":
        """Polygons (RD New [m]) with their zone ids, e.g. from :func:`read_zones`."""
        return cls("polygons", tuple(polygons), tuple(int(z) for z in zone_ids), None if path is None else Path(path))

    @classmethod
    def from_file(cls, path: str | os.PathLike, id_field: str = "zone") -> "ZoneSource":
        """The polygons of a GeoJSON/GeoPackage zone file (:func:`read_zones`)."""
        polygons, ids = read_zones(path, id_field)
        return cls.from_polygons(polygons, ids, path)

    @classmethod
    def v6_zonation(cls, zip_path: str | os.PathLike) -> "ZoneSource":
        """The GMM V6/V7 zonation ``Geological_zones_V6.zip`` (field ``ID_V6``)."""
        return cls("v6-zip", path=Path(zip_path))

    def describe(self) -> str:
        """What the zones come from, for messages."""
        if self.kind == "v6-zip":
            return f"the V6 zonation {self.path}"
        return f"the zone polygons of {self.path}" if self.path is not None else f"{len(self.polygons)} zone polygons"

    def assign(self, x, y, valid_zones: Sequence[int] | None = None) -> np.ndarray:
        """Zone of each point (int64).

        Parameters
        ----------
        x, y
            Location of the points. [m, EPSG:28992]
        valid_zones
            Zones with ground-motion coefficients: the V6 zonation gives a point in a zone
            without coefficients (a lake) the nearest valid zone (:func:`hra.inputs.edb.assign_zones_v6`);
            polygons ignore it (the caller checks the zones found).
        """
        if self.kind == "v6-zip":
            from hra.inputs.edb import assign_zones_v6

            return assign_zones_v6(x, y, self.path, valid_zones)
        return assign_zones(x, y, self.polygons, self.zone_ids)
