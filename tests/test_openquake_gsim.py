"""Our GMMs as OpenQuake GSIMs (hra.openquake): medians and sigmas from inside hazardlib equal ours.

Runs where openquake is importable (OpenQuake's own venv with this project installed); skipped
in the project venv, where openquake is not installed. The GMM-V7 tests also need the public model
tables ($HRA_MODEL_DIR) and skip without them.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openquake.hazardlib")

from openquake.hazardlib import valid  # noqa: E402
from openquake.hazardlib.contexts import simple_cmaker  # noqa: E402
from openquake.hazardlib.gsim.base import registry  # noqa: E402
from openquake.hazardlib.imt import from_string  # noqa: E402

import hra.openquake as hoq  # noqa: E402
from hra.gmm.demo import MEDIAN_NODE, SIGMA_LEVELS, demo_reference_ln_median, imt_offset  # noqa: E402
from hra.gmm.dost2004 import COEFFICIENTS, LN10, dost_ln_median  # noqa: E402

MAGS = np.array([2.0, 3.5, 4.5, 5.5, 6.5])
DISTS = np.array([3.0, 5.0, 12.0, 30.0, 70.0])


def _oq_mean_stds(gsim, imts):
    cm = simple_cmaker([gsim], imts, mags=[f"{m:.2f}" for m in MAGS])
    ctx = cm.new_ctx(MAGS.size * DISTS.size)
    mm, rr = np.meshgrid(MAGS, DISTS, indexing="ij")
    ctx.mag = mm.ravel()
    ctx.rhypo = rr.ravel()
    ctx.rrup = rr.ravel()
    out = cm.get_mean_stds([ctx])  # (4, G, M, N): mean, sig, tau, phi
    return out[:, 0], mm.ravel(), rr.ravel()


def test_registered_with_project_prefix():
    assert registry["GroningenHraDost2004"] is hoq.GroningenHraDost2004
    assert registry["GroningenHraDemo"] is hoq.GroningenHraDemo
    g = valid.gsim("[GroningenHraDemo]\ngmm_median = 2\ngmm_sigma = 1")
    assert g.gmm_median == 2 and g.gmm_sigma == 1


def test_dost_plugin_reproduces_our_model_and_the_builtin():
    res, mm, rr = _oq_mean_stds(hoq.GroningenHraDost2004(), ["PGA", "PGV"])
    for i, imt in enumerate(("PGA", "PGV")):
        np.testing.assert_allclose(res[0, i], dost_ln_median(imt, mm, rr), rtol=0, atol=1e-12)
        c = COEFFICIENTS[imt]
        np.testing.assert_allclose(res[1, i], c.sigma * LN10)
        np.testing.assert_allclose(res[2, i], c.tau * LN10)
        np.testing.assert_allclose(res[3, i], c.phi * LN10)
    # OpenQuake's own implementation of the same paper (independent code): same numbers
    builtin, _, _ = _oq_mean_stds(registry["DostEtAl2004BommerAdaptation"](), ["PGA", "PGV"])
    np.testing.assert_allclose(res, builtin, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("median,sigma", [(1, 0), (2, 1), (0, 0)])
def test_demo_plugin_reproduces_reference_part(median, sigma):
    imts = ["PGA", "SA(0.3)", "AvgSA"]
    res, mm, rr = _oq_mean_stds(hoq.GroningenHraDemo(gmm_median=median, gmm_sigma=sigma), imts)
    for i, imt in enumerate(("PGA", "SA(0.3)", "AvgSa")):
        ref = np.array([demo_reference_ln_median([m], [r], MEDIAN_NODE.values[median] + imt_offset(imt))[0, 0]
                        for m, r in zip(mm, rr)])
        np.testing.assert_allclose(res[0, i], ref, rtol=0, atol=1e-12)
        tau, phi = SIGMA_LEVELS[sigma]
        np.testing.assert_allclose(res[2, i], tau)
        np.testing.assert_allclose(res[3, i], phi)
        np.testing.assert_allclose(res[1, i], np.hypot(tau, phi))
    assert from_string("AvgSA").string.startswith("AvgSA")


# -- GMM-V7 reference horizon (needs the public model tables) ----------------------------------------

V7_MAGS = np.array([2.0, 3.5, 4.75, 5.5, 6.5])
V7_DISTS = np.array([3.0, 5.0, 7.0, 12.0, 25.0, 60.0])


@pytest.fixture(scope="module")
def v7():
    from hra.inputs.modeldata import model_dir_or_skip
    from hra.gmm.groningen_v7 import GroningenV7

    model_dir = model_dir_or_skip()
    return model_dir, GroningenV7(model_dir)


def _oq_v7(gsim, imts):
    cm = simple_cmaker([gsim], imts, mags=[f"{m:.2f}" for m in V7_MAGS])
    ctx = cm.new_ctx(V7_MAGS.size * V7_DISTS.size)
    mm, rr = np.meshgrid(V7_MAGS, V7_DISTS, indexing="ij")
    ctx.mag = mm.ravel()
    ctx.rrup = rr.ravel()
    ctx.rhypo = rr.ravel() + 1.0  # must not be used
    return cm.get_mean_stds([ctx])[:, 0], mm.ravel(), rr.ravel()


@pytest.mark.models
@pytest.mark.parametrize("median,tau,phi_ss,component", [(0, 0, 0, "geometric_mean"), (1, 1, 0, "geometric_mean"),
                                                          (3, 2, 1, "arbitrary"), (2, 1, 1, "arbitrary")])
def test_v7_reference_plugin_reproduces_our_model(v7, median, tau, phi_ss, component):
    """Medians (ln g, geometric mean, NS_B) and tau / phi / sigma from inside hazardlib equal
    GroningenV7's, at tabulated periods, between them (log-T interpolation) and for PGA."""
    model_dir, gmm = v7
    # tables from $HRA_MODEL_DIR (set where this runs: the fixture skips otherwise); OpenQuake cuts
    # absolute paths in GSIM arguments down to their basename, so a logic tree cannot carry one
    gsim = valid.gsim(f'[GroningenHraV7Reference]\ngmm_median = {median}\ngmm_tau = {tau}\ngmm_phi_ss = {phi_ss}\n'
                      f'component = "{component}"')
    imts = ["PGA", "SA(0.01)", "SA(0.1)", "SA(0.25)", "SA(0.45)", "SA(0.85)", "SA(1.0)"]
    periods = [0.01, 0.01, 0.1, 0.25, 0.45, 0.85, 1.0]
    res, mm, rr = _oq_v7(gsim, imts)
    branch = {"gmm_median": median, "gmm_tau": tau, "gmm_phi_ss": phi_ss}
    for i, t in enumerate(periods):
        np.testing.assert_allclose(res[0, i], gmm.ln_median_sa_g(t, mm, rr, branch), rtol=0, atol=1e-12)
        sc = gmm.sigma_components(t, mm, rr, branch)
        np.testing.assert_allclose(res[2, i], sc["tau"], rtol=1e-12)
        if component == "arbitrary":
            np.testing.assert_allclose(res[1, i], sc["sigma_arbitrary"], rtol=1e-12)
            np.testing.assert_allclose(res[3, i], np.hypot(sc["phi_ss"], sc["sigma_c2c"]), rtol=1e-12)
        else:
            np.testing.assert_allclose(res[1, i], sc["sigma_gm"], rtol=1e-12)
            np.testing.assert_allclose(res[3, i], sc["phi_ss"], rtol=1e-12)
    np.testing.assert_allclose(res[:, 0], res[:, 1])  # PGA = Sa(0.01 s)
    # independent anchors: tau of the branch (docs/model-chain.md §3.2) and an interpolated period lies
    # between its neighbours in ln T
    assert np.allclose(res[2], {0: 0.2362, 1: 0.3498, 2: 0.484}[tau], atol=5e-4)
    lo, hi = gmm.ln_median_sa_g(0.2, mm, rr, branch), gmm.ln_median_sa_g(0.3, mm, rr, branch)
    f = np.log(0.25 / 0.2) / np.log(0.3 / 0.2)
    np.testing.assert_allclose(res[0, 3], (1 - f) * lo + f * hi, atol=1e-12)


@pytest.mark.models
def test_v7_reference_plugin_registration_and_errors(v7):
    model_dir, gmm = v7
    assert registry["GroningenHraV7Reference"] is hoq.GroningenHraV7Reference
    g = valid.gsim("[GroningenHraV7Reference]\ngmm_median = 3")
    assert g.branch == {"gmm_median": 3, "gmm_tau": 1, "gmm_phi_ss": 0} and g.component == "geometric_mean"
    assert hoq.GroningenHraV7Reference(model_dir=str(model_dir)).model_dir == str(model_dir)
    assert g.REQUIRES_DISTANCES == frozenset({"rrup"})
    with pytest.raises(ValueError, match="gmm_tau"):
        hoq.GroningenHraV7Reference(gmm_tau=3, model_dir=str(model_dir))
    with pytest.raises(ValueError, match="component"):
        hoq.GroningenHraV7Reference(component="rotd50", model_dir=str(model_dir))
    with pytest.raises(ValueError, match="0.01 <= T <= 1"):
        _oq_v7(hoq.GroningenHraV7Reference(model_dir=str(model_dir)), ["SA(2.0)"])
    # a wrong median branch is a different model: the comparison above could fail
    other, mm, rr = _oq_v7(hoq.GroningenHraV7Reference(gmm_median=0, model_dir=str(model_dir)), ["PGA"])
    assert np.abs(other[0, 0] - gmm.ln_median_sa_g(0.01, mm, rr, {"gmm_median": 3})).max() > 0.1
