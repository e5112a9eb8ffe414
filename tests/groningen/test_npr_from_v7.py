"""Issue #14 item 2 end to end: a real site gets its NPR 9998 spectrum from the V7 hazard.

``npr9998 assess`` with ``[hazard] from_hra = true`` and ``--hra-config`` of a V7 preset config
(the V7 demo, fast quadrature to keep it short) fits the NPR spectrum to the mean uniform hazard
spectrum (geometric mean, PGA and SA(T) at the V7 periods) at the building's location. The
reference is the second path: :func:`hra.hazard_curves` at the same point for the same IMs, its
uniform hazard spectrum at the building's return period, and the fit of that by
:func:`npr9998.site_spectrum.fit_npr_spectrum`: the assessment must use exactly those parameters,
and the fitted NPR shape must reproduce the hazard's spectral values within the fit's own rms
(so a wrong site, zone, component or return period in the wiring fails the test).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import hra
from hra.chain import make_gmm
from hra.integration.hazard import spectral_imts, spectral_periods, uniform_hazard_spectrum
from npr9998.cli import app
from npr9998.site_spectrum import fit_npr_spectrum
from npr9998.spectrum import elastic_spectrum
from tests.npr9998.test_npr9998_cli import BUILDING, _write


def test_assess_from_hra_with_the_v7_preset_uses_the_fitted_uniform_hazard_spectrum(tmp_path, model_dir):
    cfg = hra.demo_config(n_buildings=50, directory=tmp_path / "hra", model="groningen-v7", years=(2025,),
                          realisations=20, workers=1, model_dir=model_dir)
    cfg = cfg.with_updates(ground_motion={"quadrature": "fast"})
    toml = tmp_path / "hra" / "run.toml"
    text = toml.read_text()
    assert 'model = "groningen-v7"' in text
    toml.write_text(text.replace("[ground_motion]\n", '[ground_motion]\nquadrature = "fast"\n', 1)
                    if "[ground_motion]\n" in text else text + '\n[ground_motion]\nquadrature = "fast"\n')
    b = pd.read_csv(tmp_path / "hra" / "buildings.csv").iloc[0]
    _write(tmp_path)
    building = BUILDING.replace("x_rd = 233000.0\ny_rd = 582000.0", f"x_rd = {b['x']}\ny_rd = {b['y']}")
    building = building.replace("[hazard]\nag_s_g = 0.2\np = 2.5\nt_b_s = 0.1\nt_c_s = 0.4\nt_d_s = 2.0\n",
                                "[hazard]\nfrom_hra = true\n")
    (tmp_path / "building.toml").write_text(building)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["assess", str(tmp_path / "building.toml"), "--out", str(out),
                                   "--hra-config", str(toml), "--no-report"])
    assert res.exit_code == 0, res.output
    used = json.loads((out / "results.json").read_text())["buildings"][0]["spectrum"]
    rp = float(used["return_period_yr"])

    # the second path: hazard curves at the point, the UHS at the return period, its NPR fit
    imts = spectral_imts(make_gmm(cfg))
    assert "PGA" in imts and "SA(0.3)" in imts and len(imts) >= 4
    site = pd.DataFrame({"id": ["b"], "x": [float(b["x"])], "y": [float(b["y"])]})
    hc = hra.hazard_curves(cfg, site, imts=imts, quantiles=[], component="geometric_mean", years=[2025],
                           progress=False)
    uhs = uniform_hazard_spectrum(hc, [rp])
    periods, idx = spectral_periods(list(hc["imt"].values))
    vals = np.asarray(uhs.values[0, idx, 0, 0], float)
    fit = fit_npr_spectrum(periods, vals)
    for key, name in (("ag_s_g", "ag_s_g"), ("p", "p"), ("t_b", "t_b_s"), ("t_c", "t_c_s"), ("t_d", "t_d_s")):
        assert used[name] == pytest.approx(fit[key], rel=1e-9), name
    # the fitted shape reproduces the hazard's spectrum within the fit's rms (and the fit is close)
    shape = np.array([elastic_spectrum(t, fit["ag_s_g"], fit["p"], fit["t_b"], fit["t_c"], fit["t_d"]) for t in periods])
    resid = np.log(shape / vals)
    assert np.sqrt(np.mean(resid ** 2)) == pytest.approx(fit["rms_ln"], rel=1e-3)
    assert fit["rms_ln"] < 0.25 and 0.0 < fit["ag_s_g"] < 1.0
