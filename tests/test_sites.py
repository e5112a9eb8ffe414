"""Tests of hra.inputs.sites: zone assignment (inside, outside, boundaries, order), zone files, RD <-> WGS84."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely import box

from hra.inputs.sites import ZoneFileError, assign_zones, rd_to_wgs84, read_zones, wgs84_to_rd

# Four 1 km squares meeting at (1000, 1000), ids deliberately not in geometric order:
#   +------+------+
#   |  4   |  2   |
#   +------+------+   plus zone 9, a square overlapping zones 1 and 3
#   |  3   |  1   |
#   +------+------+
SQUARES = [box(1000, 0, 2000, 1000), box(1000, 1000, 2000, 2000), box(0, 0, 1000, 1000), box(0, 1000, 1000, 2000)]
SQUARE_IDS = [1, 2, 3, 4]


def test_points_inside():
    z = assign_zones([1500, 1500, 500, 500], [500, 1500, 500, 1500], SQUARES, SQUARE_IDS)
    assert z.dtype == np.int64
    assert z.tolist() == [1, 2, 3, 4]


def test_shared_boundary_goes_to_lowest_id():
    # on the edge 3|1 (x = 1000), on the edge 4|3 (y = 1000), on the centre corner shared by all four
    x = [1000.0, 500.0, 1000.0, 1500.0]
    y = [500.0, 1000.0, 1000.0, 1000.0]
    expected = [1, 3, 1, 1]
    assert assign_zones(x, y, SQUARES, SQUARE_IDS).tolist() == expected
    # same answer whatever the order of the polygons
    assert assign_zones(x, y, SQUARES[::-1], SQUARE_IDS[::-1]).tolist() == expected


def test_outer_boundary_and_overlap():
    overlap = box(500, 0, 1500, 500)
    polys, ids = SQUARES + [overlap], SQUARE_IDS + [0]
    # (500, 250) is in zone 3 and in zone 0 -> 0; (2000, 500) lies on zone 1's outer edge only
    assert assign_zones([500, 2000, 500], [250, 500, 1500], polys, ids).tolist() == [0, 1, 4]


def test_outside_goes_to_nearest_and_is_logged(caplog):
    with caplog.at_level(logging.INFO, logger="hra.inputs.sites"):
        z = assign_zones([2600.0, -300.0, 1200.0], [500.0, 1900.0, 2100.0], SQUARES, SQUARE_IDS)
    assert z.tolist() == [1, 4, 2]
    messages = [r.getMessage() for r in caplog.records if r.name == "hra.inputs.sites"]
    assert any(re.search(r"3 of 3 points lie outside all 4 zone polygons.*largest distance 600\.0 m", m) for m in messages)


def test_outside_equidistant_goes_to_lowest_id():
    # (1000, -100) is 100 m from zones 1 and 3
    assert assign_zones([1000.0], [-100.0], SQUARES, SQUARE_IDS).tolist() == [1]


def test_multipolygon_and_shape_preserved():
    mp = shapely.MultiPolygon([box(0, 0, 1, 1), box(5, 5, 6, 6)])
    z = assign_zones(np.array([[0.5, 5.5], [3.0, 0.2]]), np.array([[0.5, 5.5], [3.0, 0.9]]), [mp, box(2, 2, 4, 4)], [7, 8])
    assert z.shape == (2, 2)
    assert z.tolist() == [[7, 7], [8, 7]]


def test_bad_inputs():
    with pytest.raises(ValueError, match="non-finite"):
        assign_zones([np.nan], [0.0], SQUARES, SQUARE_IDS)
    with pytest.raises(ValueError, match="4 polygons but zone_ids"):
        assign_zones([0.0], [0.0], SQUARES, [1, 2])
    with pytest.raises(ValueError, match="integers"):
        assign_zones([0.0], [0.0], SQUARES, [1.5, 2, 3, 4])
    with pytest.raises(ValueError, match="LineString"):
        assign_zones([0.0], [0.0], [shapely.LineString([(0, 0), (1, 1)])], [1])
    with pytest.raises(ValueError, match="invalid"):
        bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
        assign_zones([0.0], [0.0], [bowtie], [1])
    with pytest.raises(ValueError, match="no zone polygons"):
        assign_zones([0.0], [0.0], [], [])


# coordinates on a 250 m lattice, so that many points fall exactly on edges and corners
_coord = st.integers(min_value=-4, max_value=12).map(lambda k: 250.0 * k)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    points=st.lists(st.tuples(_coord, _coord), min_size=1, max_size=40),
    data=st.data(),
)
def test_order_independence(points, data):
    polys = SQUARES + [box(500, 0, 1500, 500)]
    ids = SQUARE_IDS + [0]
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    z = assign_zones(x, y, polys, ids)
    perm = np.array(data.draw(st.permutations(range(len(points)))), dtype=np.int64)
    np.testing.assert_array_equal(assign_zones(x[perm], y[perm], polys, ids), z[perm])
    pperm = data.draw(st.permutations(range(len(polys))))
    np.testing.assert_array_equal(assign_zones(x, y, [polys[i] for i in pperm], [ids[i] for i in pperm]), z)
    assert set(z.tolist()) <= set(ids)


# --------------------------------------------------------------------------------------------
# Zone files
# --------------------------------------------------------------------------------------------


def _feature(zone, coords, **props):
    return {"type": "Feature", "properties": {"zone": zone, **props}, "geometry": {"type": "Polygon", "coordinates": [coords]}}


def _ring(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


RD_CRS = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::28992"}}


def _write_geojson(path, features, crs=RD_CRS):
    fc = {"type": "FeatureCollection", "features": features}
    if crs is not None:
        fc["crs"] = crs
    path.write_text(json.dumps(fc))
    return path


def test_read_geojson_rd(tmp_path):
    p = _write_geojson(
        tmp_path / "zones.geojson",
        [_feature(2, _ring(240000, 590000, 250000, 600000)), _feature(1, _ring(250000, 590000, 260000, 600000))],
    )
    polys, ids = read_zones(p, "zone")
    assert ids == [2, 1]
    assert polys[0].equals(box(240000, 590000, 250000, 600000))
    assert assign_zones([245000, 250000], [595000, 595000], polys, ids).tolist() == [2, 1]


def test_read_geojson_without_crs_in_metres_is_taken_as_rd(tmp_path, caplog):
    p = _write_geojson(tmp_path / "zones.geojson", [_feature(5, _ring(240000, 590000, 250000, 600000))], crs=None)
    with caplog.at_level(logging.WARNING, logger="hra.inputs.sites"):
        polys, ids = read_zones(p, "zone")
    assert polys[0].equals(box(240000, 590000, 250000, 600000))
    assert "taking them as RD New" in caplog.text


def test_read_geojson_in_wgs84_is_transformed(tmp_path):
    lon0, lat0, lon1, lat1 = 6.70, 53.30, 6.80, 53.40
    p = _write_geojson(tmp_path / "zones.geojson", [_feature(3, _ring(lon0, lat0, lon1, lat1))], crs=None)
    polys, ids = read_zones(p, "zone")
    xs, ys = wgs84_to_rd([lon0, lon1], [lat0, lat1])
    first = np.asarray(polys[0].exterior.coords)[0]
    np.testing.assert_allclose(first, [xs[0], ys[0]], atol=1e-6)
    assert 240_000 < polys[0].centroid.x < 260_000 and 585_000 < polys[0].centroid.y < 605_000


def test_read_geopackage(tmp_path):
    import pyogrio.raw

    p = tmp_path / "zones.gpkg"
    geoms = [box(0, 300000, 1000, 301000), box(1000, 300000, 2000, 301000)]
    pyogrio.raw.write(
        p, shapely.to_wkb(np.array(geoms, dtype=object)), [np.array([11, 12])], ["zone_id"], geometry_type="Polygon", crs="EPSG:28992", driver="GPKG"
    )
    polys, ids = read_zones(p, "zone_id")
    assert ids == [11, 12]
    assert polys[1].equals(geoms[1])


def test_read_zones_errors(tmp_path):
    missing = tmp_path / "none.geojson"
    with pytest.raises(ZoneFileError, match=re.escape(f"{missing}: zone file not found")):
        read_zones(missing, "zone")
    p = _write_geojson(tmp_path / "z.geojson", [_feature(1, _ring(0, 300000, 10, 300010))])
    with pytest.raises(ZoneFileError, match=re.escape(f"{p}: field 'Zone' not found") + r".*Did you mean 'zone'\?"):
        read_zones(p, "Zone")
    for bad in ("A", 1.5):
        q = _write_geojson(tmp_path / f"bad_{bad}.geojson", [_feature(1, _ring(0, 300000, 10, 300010)), _feature(bad, _ring(10, 300000, 20, 300010))])
        with pytest.raises(ZoneFileError, match=re.escape(f"{q}: field 'zone' of feature 2") + ".*not an integer zone id"):
            read_zones(q, "zone")
    q = tmp_path / "line.geojson"
    q.write_text(json.dumps({"type": "FeatureCollection", "crs": RD_CRS, "features": [
        {"type": "Feature", "properties": {"zone": 1}, "geometry": {"type": "LineString", "coordinates": [[0, 300000], [5, 300005]]}}]}))
    with pytest.raises(ZoneFileError, match=re.escape(f"{q}: feature 1 (zone 1 in field 'zone') is a LineString")):
        read_zones(q, "zone")


def test_read_zones_string_ids_that_are_integers(tmp_path):
    p = _write_geojson(tmp_path / "z.geojson", [_feature("7", _ring(0, 300000, 10, 300010)), _feature(" 8", _ring(10, 300000, 20, 300010))])
    assert read_zones(p, "zone")[1] == [7, 8]


# --------------------------------------------------------------------------------------------
# RD New <-> WGS84
# --------------------------------------------------------------------------------------------


def test_amersfoort_origin():
    lon, lat = rd_to_wgs84(155000.0, 463000.0)
    assert lon == pytest.approx(5.38721, abs=1e-4)
    assert lat == pytest.approx(52.15517, abs=1e-4)


def test_round_trip_below_a_millimetre():
    x, y = np.meshgrid(np.linspace(1000, 299000, 13), np.linspace(290000, 628000, 13))
    lon, lat = rd_to_wgs84(x, y)
    assert lon.shape == x.shape
    xb, yb = wgs84_to_rd(lon, lat)
    assert np.max(np.abs(xb - x)) < 1e-3
    assert np.max(np.abs(yb - y)) < 1e-3
    # Loppersum lies where it should
    lon_l, lat_l = rd_to_wgs84(246000.0, 596000.0)
    assert 6.7 < lon_l < 6.8 and 53.3 < lat_l < 53.4


def test_zone_source_polygons_and_checks():
    from shapely.geometry import box

    from hra.inputs.sites import ZoneSource

    src = ZoneSource.from_polygons([box(0, 0, 10, 10), box(10, 0, 20, 10)], [7, 3])
    assert src.kind == "polygons" and "2 zone polygons" in src.describe()
    # inside, on the shared boundary (lowest id), outside (nearest polygon)
    assert src.assign([5.0, 10.0, 25.0], [5.0, 5.0, 5.0]).tolist() == [7, 3, 3]
    with pytest.raises(ValueError, match="one id per polygon"):
        ZoneSource.from_polygons([box(0, 0, 1, 1)], [1, 2])
    with pytest.raises(ValueError, match="Geological_zones_V6.zip"):
        ZoneSource("v6-zip")


def test_zone_source_of_the_demo_model_is_its_polygons(tmp_path):
    from hra.chain import zone_source
    from hra.demo.region import zones
    from tests.helpers import make_config

    cfg = make_config(tmp_path, cells=[(240_000.0, 590_000.0, 0.1)], curves={"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3))},
                      buildings=[dict(id="B", x=240_000.0, y=590_000.0, typology="URM")], gm={"model": "demo"})
    src = zone_source(cfg)
    polys, ids, _ = zones()
    assert src.kind == "polygons" and list(src.zone_ids) == [int(i) for i in ids]
    assert zone_source(make_config(tmp_path / "p", cells=[(240_000.0, 590_000.0, 0.1)],
                                   curves={"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3))},
                                   buildings=[dict(id="B", x=240_000.0, y=590_000.0, typology="URM", zone=1)])) is None
