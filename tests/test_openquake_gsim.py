"""Our GMMs as OpenQuake GSIMs (hra.openquake): medians and sigmas from inside hazardlib equal ours.

Runs where openquake is importable (OpenQuake's own venv with this project installed); skipped
in the project venv, where openquake is not installed.
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
