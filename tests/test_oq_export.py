"""OpenQuake exporter format (no OpenQuake needed) and the Dost et al. (2004) / Bommer (2013) model.

The XML is parsed with xml.etree and its numbers are turned back into our parameters: rates from
the GR a-values, median/beta from OpenQuake's mean/stddev fragility parametrisation, distances
from the exported lon/lat on OpenQuake's sphere.
"""

from __future__ import annotations

import configparser
import math
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from hra.chain import prepare
from hra.gmm.dost2004 import COEFFICIENTS, G_M_S2, DostBommer2013, dost_ln_median, dost_log10_median
from hra.openquake.export import (LonLatMapping, NRML_NS, NRML_NS_SOURCES, aeqd_inverse, export_openquake, gr_a_value,
                           haversine_km, lognormal_mean_std)
from tests.helpers import make_config

NS = {"n": NRML_NS, "g": "http://www.opengis.net/gml"}
NS4 = {"n": NRML_NS_SOURCES, "g": "http://www.opengis.net/gml"}
CELL = (246_000.0, 596_000.0)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("oq")
    cells = [(CELL[0] + 1000 * i, CELL[1] + 1000 * j, 0.01 * (1 + i + j)) for i in range(3) for j in range(2)]
    curves = {"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3)), "RC": ((0.4, 0.7, 1.0), 0.6, (0.01, 0.08, 0.2))}
    bld = [dict(id="a", x=CELL[0] + 500, y=CELL[1], system_1="URM", s_probability_1=0.7, system_2="RC", s_probability_2=0.3,
                population_inside=2.5, municipality="Loppersum"),
           dict(id="b", x=CELL[0] + 9000, y=CELL[1] + 4000, system_1="RC", s_probability_1=1.0)]
    cfg = make_config(d / "hra", cells=cells, curves=curves, buildings=bld, m_max=((4.5, 0.6), (5.5, 0.4)),
                      rate_branches=[("low", 0.3, 0.5), ("high", 0.7, 1.5)])
    prep = prepare(cfg)
    exp = export_openquake(prep, d / "oq", mode="peer")
    return prep, exp


def test_source_models_reproduce_rates(exported):
    prep, exp = exported
    # one file per (source branch x b-value x Mmax), weights = products
    lt = ET.parse(exp.directory / "source_model_logic_tree.xml").getroot()
    branches = lt.findall(".//n:logicTreeBranch", NS)
    assert len(branches) == 4
    w = [float(b.find("n:uncertaintyWeight", NS).text) for b in branches]
    assert sum(w) == pytest.approx(1.0) and sorted(w) == pytest.approx(sorted([0.3 * 0.6, 0.3 * 0.4, 0.7 * 0.6, 0.7 * 0.4]))
    for br, (_, fname, weight, meta) in zip(branches, exp.source_branches):
        assert br.find("n:uncertaintyModel", NS).text == fname
        root = ET.parse(exp.directory / fname).getroot()
        srcs = root.findall(".//n:pointSource", NS4)
        assert len(srcs) == prep.rates.x.size
        mx = prep.m_max_node.values[meta["m_max"]]
        for i, s in enumerate(srcs):
            mfd = s.find("n:truncGutenbergRichterMFD", NS4)
            a, b = float(mfd.get("aValue")), float(mfd.get("bValue"))
            assert float(mfd.get("maxMag")) == mx and float(mfd.get("minMag")) == 1.5
            rate = 10**a * (10 ** (-b * 1.5) - 10 ** (-b * float(mfd.get("maxMag"))))
            assert rate == pytest.approx(prep.rates.rate[i, 0, meta["source"]], rel=1e-9)
            assert float(s.find(".//n:hypoDepth", NS4).get("depth")) == 3.0
            assert s.get("tectonicRegion") == "Induced"
    assert gr_a_value(1.0, 1.0, 1.5, 99.0) == pytest.approx(1.5)  # untruncated: 10^(a - b m_min) = rate


def test_peer_coordinates_preserve_planar_distances(exported):
    prep, exp = exported
    m = exp.mapping
    rng = np.random.default_rng(0)
    x = CELL[0] + rng.uniform(-30_000, 30_000, 50)
    y = CELL[1] + rng.uniform(-30_000, 30_000, 50)
    lon, lat = m(x, y)
    d_sphere = haversine_km(lon[:, None], lat[:, None], lon[None, :], lat[None, :])
    d_plane = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :]) / 1000.0
    off = d_plane > 1.0
    assert np.max(np.abs(d_sphere[off] / d_plane[off] - 1.0)) < 1e-4
    # distance from the centre is exact; geodetic mode is close to the true position
    lo, la = aeqd_inverse(np.array([3000.0]), np.array([4000.0]), m.lon0, m.lat0, 6371e3)
    assert haversine_km(lo, la, m.lon0, m.lat0)[0] == pytest.approx(5.0, rel=1e-12)
    g = LonLatMapping.for_points(x, y, "geodetic")
    gl, gt = g(x, y)
    # same places to within the sphere-vs-ellipsoid difference (0.3 % of the ~40 km from the centre)
    assert np.max(haversine_km(gl, gt, lon, lat)) < 0.15


def test_exposure_assets(exported):
    prep, exp = exported
    df = pd.read_csv(exp.directory / "exposure.csv")
    assert list(df.columns[:7]) == ["id", "lon", "lat", "taxonomy", "number", "structural", "night"]
    assert df["id"].is_unique
    per_building = df.groupby("building")["number"].sum()
    assert per_building.to_dict() == pytest.approx({"a": 1.0, "b": 1.0})
    a = df[df["building"] == "a"].set_index("taxonomy")
    assert a.loc["URM", "number"] == pytest.approx(0.7) and a.loc["RC", "night"] == pytest.approx(0.3 * 2.5)
    assert df.loc[df["building"] == "b", "night"].iloc[0] == 1.0  # unknown population: one occupant
    root = ET.parse(exp.directory / "exposure.xml").getroot()
    em = root.find("n:exposureModel", NS)
    assert em.find("n:assets", NS).text.strip() == "exposure.csv"
    assert em.find("n:occupancyPeriods", NS).text.strip() == "night"
    assert em.find(".//n:costType", NS).get("name") == "structural"


def test_fragility_mean_stddev_parametrisation(exported):
    prep, exp = exported
    root = ET.parse(exp.directory / "fragility.xml").getroot()
    fm = root.find("n:fragilityModel", NS)
    assert fm.find("n:limitStates", NS).text.split() == ["CS1", "CS2", "CS3"]
    fr = prep.fragility
    funcs = fm.findall("n:fragilityFunction", NS)
    assert [f.get("id") for f in funcs] == list(fr.typologies)
    for t, f in enumerate(funcs):
        assert f.get("format") == "continuous" and f.get("shape") == "logncdf"
        imls = f.find("n:imls", NS)
        assert imls.get("imt") == "PGA" and float(imls.get("minIML")) <= 1e-3 and float(imls.get("maxIML")) >= 10
        for k, p in enumerate(f.findall("n:params", NS)):
            mean, std = float(p.get("mean")), float(p.get("stddev"))
            beta = math.sqrt(math.log1p((std / mean) ** 2))
            median = mean / math.sqrt(1 + (std / mean) ** 2)
            assert beta == pytest.approx(fr.beta[t, 0, k], rel=1e-8)
            assert median == pytest.approx(fr.median_g[t, 0, k], rel=1e-8)
    m, s = lognormal_mean_std(1.0, 0.5)
    assert m == pytest.approx(math.exp(0.125)) and s == pytest.approx(m * math.sqrt(math.exp(0.25) - 1))
    cons = pd.read_csv(exp.directory / "consequences.csv")
    col = cons[cons["consequence"] == "collapsed"]
    assert (col[["CS1", "CS2", "CS3"]].to_numpy() == 1.0).all()
    fat = cons[(cons["consequence"] == "fatalities") & (cons["risk_id"] == "URM")]
    assert fat[["CS1", "CS2", "CS3"]].to_numpy()[0] == pytest.approx([0.01, 0.1, 0.3])


def test_job_files(exported):
    _, exp = exported
    for kind in ("classical_damage", "event_based_damage"):
        cp = configparser.ConfigParser()
        cp.read(exp.directory / f"job_{kind}.ini")
        flat = {k: v for sec in cp.sections() for k, v in cp[sec].items()}
        assert flat["calculation_mode"] == kind
        assert flat["risk_investigation_time"] == "1" and flat["investigation_time"] == "1"
        for key in ("exposure_file", "source_model_logic_tree_file", "gsim_logic_tree_file", "structural_fragility_file"):
            assert (exp.directory / flat[key]).exists(), key
        levels = eval(flat["intensity_measure_types_and_levels"])["PGA"]
        assert len(levels) >= 60 and min(levels) <= 1e-3 and max(levels) >= 4.0
    cp = configparser.ConfigParser()
    cp.read(exp.directory / "job_event_based_damage.ini")
    assert cp["event_based"]["ses_seed"] == "42"
    gl = ET.parse(exp.directory / "gsim_logic_tree.xml").getroot()
    assert gl.find(".//n:uncertaintyModel", NS).text == "DostEtAl2004BommerAdaptation"
    assert gl.find(".//n:logicTreeBranchSet", NS).get("applyToTectonicRegionType") == "Induced"


# -- Dost et al. (2004) with the Bommer et al. (2013) adaptation ---------------------------------


def test_dost_bommer_hand_values():
    """log10 PGA[m/s^2] = c0 + c1 M + c1e (M - 4.5)^2 + c2 R + c3 log10 R, by hand."""
    c = COEFFICIENTS["PGA"]
    lg = -1.6090 + 0.6140 * 3.5 - 0.1116 * 1.0 - 0.00139 * 3.0 - 1.33 * math.log10(3.0)
    assert dost_log10_median(3.5, 3.0, c) == pytest.approx(lg, abs=1e-12)
    assert lg == pytest.approx(-0.2099, abs=5e-4)  # 0.617 m/s^2 = 0.063 g
    assert math.exp(dost_ln_median("PGA", 3.5, 3.0)) == pytest.approx(10**lg / G_M_S2, rel=1e-12)
    assert math.exp(dost_ln_median("PGV", 4.5, 10.0)) == pytest.approx(
        10 ** (-1.3972 + 0.7105 * 4.5 - 0.00139 * 10 - 1.33), rel=1e-12)
    g = DostBommer2013()
    tau, phi, sigma = g.sigma_ln("PGA")
    assert tau == pytest.approx(0.1476 * math.log(10)) and phi == pytest.approx(0.2952 * math.log(10))
    assert sigma == pytest.approx(0.33 * math.log(10)) and math.hypot(tau, phi) == pytest.approx(sigma, rel=2e-4)
    mix = g.ln_im_mixture("PGA", np.array([3.5, 5.0]), np.array([3.0, 20.0]), None, {})
    assert mix.mean.shape == (2, 2, 1) and mix.mean[0, 0, 0] == pytest.approx(dost_ln_median("PGA", 3.5, 3.0))
    assert np.all(mix.sd == sigma) and g.tree.n_combinations == 1
    # magnitude saturation of the Bommer adaptation: the quadratic term bends the scaling above 4.5
    slope_lo = dost_log10_median(4.0, 10.0, c) - dost_log10_median(3.0, 10.0, c)
    slope_hi = dost_log10_median(6.0, 10.0, c) - dost_log10_median(5.0, 10.0, c)
    assert slope_hi < slope_lo
    from hra.gmm.registry import load_gmm

    assert isinstance(load_gmm("dost2004-bommer2013"), DostBommer2013)
