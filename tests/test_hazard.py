"""Site hazard against the closed form of the parametric model and a brute-force sum."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import norm

from hra.integration.hazard import hazard_curves, spectral_periods, uniform_hazard_spectrum
from npr9998.site_spectrum import fit_npr_spectrum
from hra.inputs.source import truncated_gr_pdf
from tests.helpers import PARAMETRIC, make_config

CELL = (250_000.0, 590_000.0)
CURVES = {"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3))}


def closed_form_rate(level_g, rate, r_km, m_max, b=1.0, m_min=1.5, gm=PARAMETRIC):
    """lambda(a) = rate * int f(M) Phi((mu(M, R) - ln a) / sigma) dM (docs/lpr.md §5 model)."""
    sig = np.hypot(gm["tau"], gm["phi"])

    def f(m):
        mu = gm["c0"] + gm["c1"] * m + gm["c2"] * np.log(r_km) + gm["c3"] * r_km
        return truncated_gr_pdf(m, b, m_min, m_max) * norm.sf((np.log(level_g) - mu) / sig)

    return rate * quad(f, m_min, m_max, limit=200, epsabs=0, epsrel=1e-10)[0]


def test_hazard_curve_closed_form(tmp_path):
    cfg = make_config(tmp_path, cells=[(*CELL, 0.4)], curves=CURVES, buildings=[dict(id="B", x=CELL[0], y=CELL[1], typology="URM")],
                      m_max=((5.5, 1.0),), source={"subcell_radius_km": 0.0})
    levels = np.array([0.005, 0.02, 0.05, 0.1, 0.3])
    hc = hazard_curves(cfg, {"x": [CELL[0] + 6000.0], "y": [CELL[1]]}, levels_g=levels)
    got = hc["rate_mean"].values[0, 0, 0]
    ref = np.array([closed_form_rate(a, 0.4, np.hypot(6.0, 3.0), 5.5) for a in levels])
    np.testing.assert_allclose(got, ref, rtol=5e-3)
    np.testing.assert_allclose(hc["poe_mean"].values[0, 0, 0], -np.expm1(-ref), rtol=5e-3)


def test_hazard_brute_force_sum_over_cells_and_tree(tmp_path):
    """Several cells, two Mmax branches: mean curve = weighted sum over branches and cells of the closed form."""
    cells = [(CELL[0] + dx, CELL[1] + dy, r) for dx, dy, r in [(0, 0, 0.2), (7000, 3000, 0.5), (-12000, 5000, 0.3)]]
    cfg = make_config(tmp_path, cells=cells, curves=CURVES, buildings=[dict(id="B", x=CELL[0], y=CELL[1], typology="URM")],
                      m_max=((4.5, 0.7), (6.0, 0.3)), source={"subcell_radius_km": 0.0})
    site = (CELL[0] + 2500.0, CELL[1] - 4000.0)
    levels = np.array([0.01, 0.05, 0.2])
    hc = hazard_curves(cfg, {"x": [site[0]], "y": [site[1]], "id": ["S"]}, levels_g=levels, quantiles=[0.5, 0.9])
    per_branch = []
    for mmax in (4.5, 6.0):
        lam = np.zeros(levels.size)
        for x, y, rate in cells:
            r = np.hypot(np.hypot(x - site[0], y - site[1]) / 1000.0, 3.0)
            lam += [closed_form_rate(a, rate, r, mmax) for a in levels]
        per_branch.append(lam)
    mean = 0.7 * per_branch[0] + 0.3 * per_branch[1]
    np.testing.assert_allclose(hc["rate_mean"].values[0, 0, 0], mean, rtol=5e-3)
    np.testing.assert_allclose(hc["rate_p50"].values[0, 0, 0], per_branch[0], rtol=5e-3)  # P50 = the 0.7 branch
    np.testing.assert_allclose(hc["rate_p90"].values[0, 0, 0], per_branch[1], rtol=5e-3)  # P90 = the 0.3 branch


def test_uhs_interpolates_curve(tmp_path):
    cfg = make_config(tmp_path, cells=[(*CELL, 0.4)], curves=CURVES, buildings=[dict(id="B", x=CELL[0], y=CELL[1], typology="URM")],
                      m_max=((6.0, 1.0),))
    hc = hazard_curves(cfg, {"x": [CELL[0] + 3000.0], "y": [CELL[1]]}, levels_g=np.geomspace(1e-3, 3, 80))
    uhs = uniform_hazard_spectrum(hc, [475.0])
    a = float(uhs.values[0, 0, 0, 0])
    lam = closed_form_rate(a, 0.4, np.hypot(3.0, 3.0), 6.0)
    assert lam == pytest.approx(1 / 475.0, rel=0.01)


def test_fit_npr_spectrum_recovers_parameters():
    from npr9998 import elastic_spectrum

    t = np.array([0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0, 1.5, 2.0, 3.0])
    true = dict(ag_s_g=0.18, p=2.6, t_b=0.12, t_c=0.45, t_d=1.8)
    sa = elastic_spectrum(t, true["ag_s_g"], true["p"], true["t_b"], true["t_c"], true["t_d"])
    fit = fit_npr_spectrum(t, sa)
    assert fit["ag_s_g"] == pytest.approx(true["ag_s_g"], rel=0.02)
    assert fit["t_b"] == pytest.approx(true["t_b"], rel=0.05)
    assert fit["p"] == pytest.approx(true["p"], rel=0.03)
    assert fit["t_c"] == pytest.approx(true["t_c"], rel=0.03)
    assert fit["t_d"] == pytest.approx(true["t_d"], rel=0.05)
    assert fit["rms_ln"] < 0.02


def test_demo_spectral_imts(tmp_path):
    import hra

    cfg = hra.demo_config(200, seed=2, directory=tmp_path, realisations=10)
    hc = hazard_curves(cfg, {"x": [246_500.0], "y": [596_500.0], "id": ["Loppersum"]}, levels_g=np.geomspace(0.005, 2, 30))
    periods, idx = spectral_periods(list(hc["imt"].values))
    assert periods[0] == 0.0 and periods[-1] == 1.0
    uhs = uniform_hazard_spectrum(hc, [475.0]).values[0, idx, 0, 0]
    assert np.all(np.isfinite(uhs))
    assert uhs.max() > 1.5 * uhs[0]  # a spectral plateau above PGA
    fit = fit_npr_spectrum(periods, uhs)
    assert 1.0 <= fit["p"] <= 5.0 and fit["t_b"] <= fit["t_c"]


# ------------------------------------------------------------------------------------------
# reduction, IM names, map, command line
# ------------------------------------------------------------------------------------------


def test_weighted_quantiles_vectorised_equals_logictree_definition():
    from hra.core.logictree import weighted_quantile
    from hra.integration.hazard import weighted_quantiles

    rng = np.random.default_rng(3)
    v = rng.lognormal(size=(37, 5, 4))
    v[5] = v[6]  # ties
    w = rng.random(37)
    got = weighted_quantiles(v, w, [0.1, 0.5, 0.9])
    for i in range(5):
        for j in range(4):
            np.testing.assert_array_equal(got[:, i, j], weighted_quantile(v[:, i, j], w, [0.1, 0.5, 0.9]))


def test_normalize_imt():
    from hra.integration.hazard import normalize_imt

    assert normalize_imt("sa(0.30)") == "SA(0.3)" and normalize_imt(" SA(1.0) ") == "SA(1)"
    assert normalize_imt("pga") == "PGA" and normalize_imt("avgsa") == "AvgSa"


TWO_CELLS = [(250_000.0, 590_000.0, 0.3), (256_000.0, 590_000.0, 0.5)]


def _map_config(tmp_path):
    return make_config(tmp_path, cells=TWO_CELLS, curves=CURVES, buildings=[dict(id="B", x=CELL[0], y=CELL[1], typology="URM")],
                       m_max=((6.0, 1.0),), source={"subcell_radius_km": 0.0})


def test_hazard_map_against_closed_form(tmp_path):
    """Grid nodes over the cells' box; the mean PGA at 475 / 2475 yr solves lambda(a) = 1/T of the
    closed form summed over the cells (root found here with scipy)."""
    import pyogrio.raw
    from scipy.optimize import brentq

    from hra.integration.hazard import hazard_map, write_hazard_map

    cfg = _map_config(tmp_path)
    ds = hazard_map(cfg, spacing_m=1000.0, return_periods=(475.0, 2475.0), progress=False)
    x, y = ds["x_rd"].values, ds["y_rd"].values
    assert x.min() == 250_000.0 and x.max() == 256_000.0 and set(y) == {590_000.0}  # multiples of 1 km in the box
    for i in (0, 3, 6):
        def lam(a):
            return sum(closed_form_rate(a, rate, np.hypot(np.hypot(cx - x[i], cy - y[i]) / 1000.0, 3.0), 6.0)
                       for cx, cy, rate in TWO_CELLS)
        for k, rp in enumerate((475.0, 2475.0)):
            ref = brentq(lambda a: np.log(lam(a) * rp), 1e-3, 1.9)
            assert ds["intensity_g"].values[i, k] == pytest.approx(ref, rel=0.01)
    written = write_hazard_map(ds, tmp_path / "map.gpkg", tmp_path / "map.png")
    assert [p.name for p in written] == ["map.gpkg", "map.png"] and (tmp_path / "map.png").stat().st_size > 1000
    meta, _, geom, fields = pyogrio.raw.read(tmp_path / "map.gpkg")
    assert meta["crs"].endswith("28992") and list(meta["fields"]) == ["site_id", "zone", "pga_475yr_g", "pga_2475yr_g"]
    np.testing.assert_allclose(fields[2], ds["intensity_g"].values[:, 0])
    with pytest.raises(ValueError, match="exists"):
        write_hazard_map(ds, tmp_path / "map.gpkg")


def test_hazard_commands_imt_component_map_and_errors(tmp_path):
    import pandas as pd
    import xarray as xr
    from typer.testing import CliRunner

    from hra.cli import app
    from tests.test_cli_extras import _write_toml

    runner = CliRunner()
    toml = _write_toml(_map_config(tmp_path), tmp_path / "run.toml")
    pd.DataFrame([dict(id="S1", x=253_000.0, y=590_000.0)]).to_csv(tmp_path / "sites.csv", index=False)
    base = ["hazard", "curves", str(toml), "--sites", str(tmp_path / "sites.csv")]
    ok = runner.invoke(app, base + ["--imt", "pga", "--out", str(tmp_path / "c.nc"), "--no-progress"])
    assert ok.exit_code == 0, ok.output
    with xr.open_dataset(tmp_path / "c.nc") as ds:
        assert list(ds["imt"].values) == ["PGA"] and "provenance" in ds.attrs
    bad = runner.invoke(app, base + ["--imt", "SA(0.3)"])
    assert bad.exit_code == 2 and "SA(0.3)" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(app, base + ["--component", "vertical"])
    assert bad.exit_code == 2 and "component" in bad.output
    m = ["hazard", "map", str(toml), "--spacing-m", "2000", "--out", str(tmp_path / "m.gpkg"), "--png", str(tmp_path / "m.png"),
         "--no-progress"]
    res = runner.invoke(app, m)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "m.gpkg").exists() and (tmp_path / "m.png").exists() and "PGA at 475 yr" in res.output
    again = runner.invoke(app, m)
    assert again.exit_code == 2 and "--overwrite" in again.output
    wrong = runner.invoke(app, ["hazard", "map", str(toml), "--out", str(tmp_path / "m.shp")])
    assert wrong.exit_code == 2 and ".gpkg" in wrong.output


def test_hazard_progress_log_lines(tmp_path, caplog):
    import logging

    cfg = _map_config(tmp_path)
    with caplog.at_level(logging.INFO, logger="hra"):
        hazard_curves(cfg, {"x": [251_000.0, 252_000.0], "y": [590_000.0, 590_000.0]}, levels_g=[0.01, 0.1], progress=False)
    msgs = [r.getMessage() for r in caplog.records]
    assert any("hazard (site x IM): 2/2" in m for m in msgs), msgs
    assert any(m.startswith("hazard tables (zone x IM): 1/1 (") for m in msgs), msgs  # one zone, PGA


def test_hazard_map_same_with_two_worker_processes(tmp_path):
    """Mean curves: the (zone, IM) tables as executor tasks on 2 dask processes give the same numbers."""
    import json

    import hra
    from hra.integration.hazard import hazard_map

    cfg = hra.demo_config(50, seed=1, directory=tmp_path, realisations=10)
    cfg = cfg.with_updates(ground_motion={"quadrature_points": 4}, run={"years": [2025]})
    levels = np.geomspace(0.005, 2, 12)
    one = cfg.with_updates(compute={"workers": 1, "scheduler": "synchronous"})
    serial = hazard_map(one, spacing_m=6000.0, imt="PGA", levels_g=levels, progress=False)
    assert np.unique(serial["zone"].values).size >= 4
    two = cfg.with_updates(compute={"workers": 2, "scheduler": "local"})
    par = hazard_map(two, spacing_m=6000.0, imt="PGA", levels_g=levels, progress=False)
    assert json.loads(par.attrs["provenance"])["workers"] == 2 and json.loads(serial.attrs["provenance"])["workers"] == 1
    np.testing.assert_allclose(serial["rate_mean"].values, par["rate_mean"].values, rtol=1e-12)
    np.testing.assert_allclose(serial["intensity_g"].values, par["intensity_g"].values, rtol=1e-12)


def test_hazard_curves_bad_sites_file_names_file_and_row(tmp_path):
    import pandas as pd
    from typer.testing import CliRunner

    from hra.cli import app
    from tests.test_cli_extras import _write_toml

    toml = _write_toml(_map_config(tmp_path), tmp_path / "run.toml")
    pd.DataFrame({"id": ["A", "B"], "x": [253_000.0, "oops"], "y": [590_000.0, 590_000.0]}).to_csv(tmp_path / "s.csv", index=False)
    res = CliRunner().invoke(app, ["hazard", "curves", str(toml), "--sites", str(tmp_path / "s.csv")])
    assert res.exit_code == 2 and "s.csv" in res.output and "row 2" in res.output and "'B'" in res.output
