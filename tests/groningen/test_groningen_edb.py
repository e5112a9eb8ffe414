"""EDB reading and validation, and assignment of the V6 site-response zones."""

from __future__ import annotations

import numpy as np
import pytest

from hra.inputs.edb import EDBError, assign_zones_v6, read_edb, read_zones_v6, typology_probabilities

HEADER = ("bag_building_id,point_x,point_y,main_use,secondary_use,system_1,s_probability_1,system_2,s_probability_2,"
          "community,wiede_flag,sum_pop_in_day")


def _write(tmp_path, rows, header=HEADER, bom=True):
    f = tmp_path / "edb.csv"
    text = header + "\n" + "\n".join(rows) + "\n"
    f.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8"))
    return f


def test_example_edb(upstream_tests_res, fcm_v7):
    df = read_edb(upstream_tests_res / "example_EDB.csv", typologies=fcm_v7.typologies)
    assert len(df) == 35 and df["id"].iloc[0] == "900000001"  # BOM stripped from the first header
    for c in ("id", "x", "y", "system_1", "s_probability_1", "system_10", "s_probability_10", "wierde", "municipality",
              "sum_pop_in_day", "sum_pop_runners_out_night"):
        assert c in df.columns
    assert df["x"].dtype == np.float64 and df["wierde"].dtype == bool
    assert int(df["wierde"].sum()) == 12
    assert (df["municipality"] == "").all()
    assert sorted(df["system_1"]) == sorted(fcm_v7.typologies)  # one building per V7 class
    P = typology_probabilities(df, fcm_v7.typologies)
    assert P.shape == (35, 35) and np.allclose(P.sum(1), 1.0) and np.allclose(P, np.eye(35)[[fcm_v7.typology_index(s) for s in df["system_1"]]])


def test_example_buildings_zones(upstream_tests_res, zonation_zip, gmm_v7):
    df = read_edb(upstream_tests_res / "example_EDB.csv")
    z = assign_zones_v6(df["x"].to_numpy(), df["y"].to_numpy(), zonation_zip, valid_zones=gmm_v7.zones)
    assert z.dtype == np.int64
    expect = np.where(df["x"] == 234603, 308, np.where(df["x"] == 254744, 3111, 322))
    assert np.array_equal(z, expect)
    assert sorted(set(z.tolist())) == [308, 322, 3111]
    # (234603, 572797) lies just outside every polygon (~76 m): the nearest one is 308
    ids, polys = read_zones_v6(zonation_zip)
    import shapely

    p = shapely.points(234603.0, 572797.0)
    assert not shapely.intersects(polys, p).any()
    assert ids[np.argmin(shapely.distance(polys, p))] == 308


def test_lakes_outside_and_boundary_tie(zonation_zip):
    import shapely

    ids, polys = read_zones_v6(zonation_zip)
    valid = ids[~np.isin(ids, [2813, 3411])]
    # a point inside a lake goes to the nearest zone with coefficients
    lake = polys[ids == 2813][0]
    c = shapely.point_on_surface(lake)
    z = assign_zones_v6([c.x], [c.y], zonation_zip)
    assert z[0] != 2813 and z[0] in valid
    others = polys[ids == z[0]][0]
    assert shapely.distance(others, c) == pytest.approx(np.min(shapely.distance(polys[~np.isin(ids, [2813, 3411])], c)))
    # far outside: nearest polygon
    z = assign_zones_v6([200000.0], [560000.0], zonation_zip)
    keep = ~np.isin(ids, [2813, 3411])
    assert z[0] == ids[keep][np.argmin(shapely.distance(polys[keep], shapely.points(200000.0, 560000.0)))]
    # on a shared boundary: lowest zone id
    tree = shapely.STRtree(polys[keep])
    kid = ids[keep]
    a, b = tree.query(polys[keep], predicate="touches")
    pair = next((i, j) for i, j in zip(a, b) if i < j and shapely.length(shapely.intersection(polys[keep][i].boundary, polys[keep][j].boundary)) > 1.0)
    line = shapely.intersection(polys[keep][pair[0]].boundary, polys[keep][pair[1]].boundary)
    pt = shapely.line_interpolate_point(shapely.line_merge(line) if line.geom_type == "MultiLineString" else line, 0.5, normalized=True)
    hits = kid[shapely.intersects(polys[keep], pt)]
    assert len(hits) >= 2
    assert assign_zones_v6([pt.x], [pt.y], zonation_zip)[0] == hits.min()


def test_validation_messages(tmp_path):
    ok = "1,234000,572000,,,URM2L,0.4,RC1L,0.6,Loppersum,1,2"
    df = read_edb(_write(tmp_path, [ok]))
    assert df["wierde"].tolist() == [True] and df["municipality"].tolist() == ["Loppersum"]
    assert df["s_probability_2"].tolist() == [0.6]

    with pytest.raises(EDBError, match=r"row 3 \(file line\), column 's_probability_\*'.*sum to 0.9.*Fix"):
        read_edb(_write(tmp_path, [ok, "2,234000,572000,,,URM2L,0.4,RC1L,0.5,,0,1"]))
    with pytest.raises(EDBError, match=r"row 3 \(file line\), column 'bag_building_id'.*repeats row 2"):
        read_edb(_write(tmp_path, [ok, ok]))
    with pytest.raises(EDBError, match=r"row 2 \(file line\), column 'point_y'.*not a finite number"):
        read_edb(_write(tmp_path, ["1,234000,inf,,,URM2L,1,,,,0,1"]))
    with pytest.raises(EDBError, match=r"column 'system_1'.*not in the fragility model"):
        read_edb(_write(tmp_path, ["1,234000,572000,,,XX9,1,,,,0,1"]), typologies=["URM2L"])
    with pytest.raises(EDBError, match=r"column 'system_2'.*probability 0.5 given without a typology"):
        read_edb(_write(tmp_path, ["1,234000,572000,,,URM2L,0.5,,0.5,,0,1"]))
    with pytest.raises(EDBError, match=r"column 'wiede_flag'.*not 0/1"):
        read_edb(_write(tmp_path, ["1,234000,572000,,,URM2L,1,,,,maybe,1"]))
    # the corrected spelling is accepted too; no BOM is fine
    f = _write(tmp_path, ["1,234000,572000,,,URM2L,1,,,,1,1"], header=HEADER.replace("wiede_flag", "wierde_flag"), bom=False)
    assert read_edb(f)["wierde"].tolist() == [True]
    with pytest.raises(EDBError, match="required column 'point_x' missing"):
        read_edb(_write(tmp_path, ["1,2"], header="bag_building_id,x"))
