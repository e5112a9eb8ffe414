"""GMM V7 + FCM V7 conditional tables: the grid path (hra.integration.condtables) against the closed-form sum
over the full finite-rupture mixture (hra.integration.engine.death_tables). Needs HRA_MODEL_DIR."""

from __future__ import annotations

import numpy as np
import pytest

from hra.integration import condtables
from hra.integration.engine import death_tables
from hra.inputs.modeldata import model_dir_or_skip


@pytest.fixture(scope="module")
def v7():
    from fragility.groningen import load_fcm
    from hra.gmm.registry import load_gmm

    md = model_dir_or_skip()
    fr = load_fcm("fcm-v7", md).to_fragility_model()
    return md, fr, load_gmm


@pytest.mark.parametrize("rupture", ["point", "finite"])
def test_grid_tables_match_the_closed_form(v7, rupture):
    md, fr, load_gmm = v7
    gmm = load_gmm("groningen-v7", md, rupture=rupture, quad_step=0.5, n_rrup=4)
    mag = np.array([2.0, 3.05, 3.6, 4.5, 5.5])
    r = np.exp(np.linspace(np.log(3.0), np.log(70.0), 48))
    t_sel = np.array([0, 7, 20, 34])
    branch = dict(gmm_median=2, gmm_tau=0, gmm_phi_ss=1, gmm_s2s=0)
    grid = condtables.rrup_death_tables(gmm, fr, t_sel, mag, r, 1001, branch, (False, True))
    for i, wd in enumerate((False, True)):
        mixes = gmm.ln_im_mixtures("AvgSa", mag, r, 1001, branch, wierde=wd)
        mixes2 = gmm.ln_im_mixtures("PGA", mag, r, 1001, branch, wierde=wd)
        for j in (0, 1, 2):
            want = death_tables(fr, t_sel, mixes[j], mixes2[j])[0]
            got = grid[j][i]
            ok = want > 1e-12
            assert ok.sum() > 500
            rel = np.abs(got[ok] / want[ok] - 1.0)
            if rupture == "point":  # same points: equal up to the float32 grid products (~1e-6) and the
                # tables' rounding to 16 significant bits (<= 2^-16 = 1.5e-5, kernels.round_table)
                assert rel.max() < 1e-5 + 2.0 ** -16
            else:  # ln P interpolated cubically in ln R_rup on the grid of step <= 0.1 (measured:
                # max 3.0e-3, p99 1.0e-3; the former linear interpolation on these 48 nodes needed 2 % / 0.5 %)
                assert rel.max() < 0.006 and np.quantile(rel, 0.99) < 0.002
            assert np.all(got[~ok] < 2e-12)


def test_grid_tables_do_not_depend_on_the_typologies_or_wierde_variants_asked(v7):
    """The table store's premise: a (site, typology) table is bit-identical whatever else is asked."""
    md, fr, load_gmm = v7
    gmm = load_gmm("groningen-v7", md, quad_step=0.5, n_rrup=4)
    mag = np.array([2.0, 3.05, 4.5, 5.5])
    r = np.exp(np.linspace(np.log(3.0), np.log(70.0), 24))
    branch = dict(gmm_median=2, gmm_tau=0, gmm_phi_ss=1, gmm_s2s=0)
    every = condtables.rrup_death_tables(gmm, fr, np.arange(len(fr.typologies)), mag, r, 1001, branch, (False, True))
    some = condtables.rrup_death_tables(gmm, fr, np.array([3, 20]), mag, r, 1001, branch, (True,))
    for j in every:
        assert np.array_equal(every[j][1][[3, 20]], some[j][0])
