"""Tests of the embedded demo region (hra.demo.region) and its synthetic exposure (hra.demo.exposure)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

from hra.demo.exposure import DEMO_TYPOLOGIES, synthetic_exposure
from hra.demo.region import field_outline, region_bounds, towns, zones
from hra.inputs.exposure import RD_X_RANGE_M, RD_Y_RANGE_M, exposure_arrays, read_exposure, validate_exposure, write_exposure

MUNICIPALITIES = {"Groningen", "Eemsdelta", "Midden-Groningen", "Het Hogeland", "Oldambt"}


@pytest.fixture(scope="module")
def demo() -> pd.DataFrame:
    return synthetic_exposure(20_000, seed=1)


# --------------------------------------------------------------------------------------------
# Region
# --------------------------------------------------------------------------------------------


def test_field_outline():
    outline = field_outline()
    assert isinstance(outline, shapely.Polygon) and outline.is_valid
    assert len(outline.exterior.coords) - 1 == 40
    xmin, ymin, xmax, ymax = outline.bounds
    assert 228_000 <= xmin and xmax <= 272_000 and 562_000 <= ymin and ymax <= 618_000
    assert outline.contains(shapely.Point(246_000, 596_000))  # Loppersum, near the field's centre of activity


def test_towns():
    ts = towns()
    names = {t.name for t in ts}
    assert {"Groningen", "Loppersum", "Appingedam", "Delfzijl", "Slochteren", "Hoogezand", "Middelstum", "Winsum",
            "Ten Boer", "Siddeburen", "Zuidbroek", "Uithuizen"} <= names
    assert {t.municipality for t in ts} == MUNICIPALITIES
    assert sum(t.weight for t in ts) == pytest.approx(1.0, abs=1e-12)
    assert all(t.weight > 0 and t.radius_m > 0 for t in ts)
    box = shapely.box(*region_bounds())
    assert all(box.contains(shapely.Point(t.x, t.y)) for t in ts)
    loppersum = next(t for t in ts if t.name == "Loppersum")
    assert abs(loppersum.x - 246_000) < 1_000 and abs(loppersum.y - 596_000) < 1_000


def test_region_bounds_contain_field_with_margin():
    xmin, ymin, xmax, ymax = region_bounds()
    assert all(v % 1000 == 0 for v in (xmin, ymin, xmax, ymax))
    assert shapely.box(xmin, ymin, xmax, ymax).contains(field_outline().buffer(15_000, quad_segs=4).envelope)


def test_zones_cover_the_region_without_overlap():
    polys, ids, names = zones()
    assert ids == list(range(1, 9))
    assert len(set(names)) == 8 and all(names)
    frame = shapely.box(*region_bounds())
    union = shapely.union_all(polys)
    assert union.symmetric_difference(frame).area < 1.0  # [m^2]
    assert sum(p.area for p in polys) == pytest.approx(frame.area, rel=1e-12)
    for i in range(8):
        for j in range(i + 1, 8):
            assert polys[i].intersection(polys[j]).area < 1e-6
    again, _, _ = zones()
    assert all(a.equals_exact(b, tolerance=0) for a, b in zip(polys, again))


# --------------------------------------------------------------------------------------------
# Synthetic exposure
# --------------------------------------------------------------------------------------------


def test_deterministic_by_seed():
    a = synthetic_exposure(3_000, seed=7)
    b = synthetic_exposure(3_000, seed=7)
    pd.testing.assert_frame_equal(a, b)
    c = synthetic_exposure(3_000, seed=8)
    assert not np.array_equal(a["x"].to_numpy(), c["x"].to_numpy())
    assert (a["system_1"] != c["system_1"]).any()


@pytest.mark.parametrize("n", [1, 999, 1_000, 2_345])
def test_n_respected(n):
    df = synthetic_exposure(n, seed=2)
    assert len(df) == n
    assert df["id"].is_unique
    assert df["id"].iloc[0] == "DEMO-000001" and df["id"].iloc[-1] == f"DEMO-{n:06d}"


def test_bad_arguments():
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="n_buildings"):
            synthetic_exposure(bad)
    with pytest.raises(ValueError, match="seed"):
        synthetic_exposure(10, seed=-1)


def test_layout_is_the_normalised_one(demo):
    pd.testing.assert_frame_equal(validate_exposure(demo, known_typologies=DEMO_TYPOLOGIES), demo)
    assert list(demo.columns[:7]) == ["id", "x", "y", "zone", "municipality", "population_inside", "wierde"]
    assert demo["zone"].dtype == "Int64"


def test_in_zones_and_rd_box(demo):
    assert demo["zone"].between(1, 8).all()
    assert set(demo["zone"].unique()) == set(range(1, 9))
    assert demo["x"].between(*RD_X_RANGE_M).all() and demo["y"].between(*RD_Y_RANGE_M).all()
    xmin, ymin, xmax, ymax = region_bounds()
    assert demo["x"].between(xmin, xmax).all() and demo["y"].between(ymin, ymax).all()


def test_probabilities(demo):
    probs = demo[[c for c in demo.columns if c.startswith("s_probability_")]].to_numpy()
    assert probs.shape[1] == 3
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(np.abs(probs * 100 - np.round(probs * 100)) < 1e-9)  # whole percentages
    n_cand = (probs > 0).sum(axis=1)
    uncertain = (n_cand > 1).mean()
    assert 0.28 < uncertain < 0.32
    assert set(np.unique(n_cand)) == {1, 2, 3}
    # the first candidate is the most likely one, and candidates are distinct
    assert np.all(probs[:, 0] >= probs[:, 1]) and np.all(probs[:, 1] >= probs[:, 2])
    sys2, sys3 = demo["system_2"].to_numpy(), demo["system_3"].to_numpy()
    assert not np.any((sys2 != "") & (sys2 == demo["system_1"].to_numpy()))
    assert not np.any((sys3 != "") & ((sys3 == sys2) | (sys3 == demo["system_1"].to_numpy())))
    arr = exposure_arrays(demo, list(DEMO_TYPOLOGIES))
    np.testing.assert_allclose(arr.typology_prob.sum(axis=1), 1.0, atol=1e-12)


def test_typology_mix_and_attributes(demo):
    share = demo["system_1"].value_counts(normalize=True)
    assert set(share.index) == set(DEMO_TYPOLOGIES)
    assert share[[t for t in DEMO_TYPOLOGIES if t.startswith("URM_")]].sum() > 0.6
    assert set(demo["municipality"]) == MUNICIPALITIES
    pop = demo["population_inside"]
    assert pop.notna().all() and (pop > 0).all() and 1.5 < pop.mean() < 4.0
    # wierden are rare and only in the countryside (~1 % of the 20 % rural buildings)
    assert 0 < demo["wierde"].sum() < 0.01 * len(demo)
    # farmhouses lie further from town centres than terraced houses
    t = towns()
    tx, ty = np.array([v.x for v in t]), np.array([v.y for v in t])
    d = np.min(np.hypot(demo["x"].to_numpy()[:, None] - tx, demo["y"].to_numpy()[:, None] - ty), axis=1)
    farm = demo["system_1"].to_numpy() == "URM_farmhouse"
    terraced = demo["system_1"].to_numpy() == "URM_terraced_pre1920"
    assert np.median(d[farm]) > 2 * np.median(d[terraced])


def test_write_and_read_back(tmp_path):
    df = synthetic_exposure(1_000, seed=3)
    path = write_exposure(df, tmp_path / "demo.csv")
    back = read_exposure(path, known_typologies=DEMO_TYPOLOGIES)
    pd.testing.assert_frame_equal(back, df)
