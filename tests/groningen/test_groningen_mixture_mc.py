"""The deterministic ln-IM mixture of GMM-V7/V6 against brute-force Monte Carlo.

The Monte Carlo draws everything the mixture integrates: the finite rupture (length, offset,
azimuth; :func:`hra.gmm.rupture.sample_rrup`), the 10 correlated reference residuals (Cholesky of the
p2p matrix) and, for an aleatory site term, the correlated site residuals; it maps every draw
through the exact non-linear site response (:meth:`GroningenV7.surface_ln_sa_g`). Nothing is
linearised. To resolve P down to 1e-6 with 10^6 draws it uses defensive mixture importance
sampling: the standard normals are shifted by theta * d for theta in {0, 1.5, 3, 4.5, 5.5}
(equal shares), d the IM's steepest direction, and each draw is weighted by
1 / mean_j exp(theta_j d'u - theta_j^2 / 2) (unbiased for every threshold).

Criterion: |P_mixture / P_MC - 1| <= 1 % + 2.5 standard errors of the MC estimate (the MC
standard error is 0.2-1 %), for P(IM > a) at a = the mixture's 1e-1 ... 1e-6 quantiles, and for
P(CS1) of V7 fragility classes (closed form per component: Phi((m - ln A50)/sqrt(s^2 + beta^2))).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr

from hra.gmm import rupture as ru
from hra.gmm.groningen_v6 import GroningenV6
from hra.gmm.groningen_v7 import GroningenV7

LEVELS = 10.0 ** -np.arange(1, 7)


def mc_ln_im(model, imt, M, r_hyp, zone, branch, n, seed, thetas=(0.0, 1.5, 3.0, 4.5, 5.5)):
    """Importance-sampled brute-force draws of ln IM and their weights (module docstring)."""
    rng = np.random.default_rng(seed)
    idx, a = model._im_definition(imt)
    P = len(idx)
    per = model.tables.periods[idx]
    rr = ru.sample_rrup(M, r_hyp, n, rng) if model.rupture == "finite" else np.full(n, float(r_hyp))
    mu, sd = model._reference(idx, np.full(n, float(M)), rr, branch)
    L = np.linalg.cholesky(model.tables.p2p[np.ix_(idx, idx)])
    eps, s2s_corr = model._s2s_setup(branch, idx)
    # steepest direction of ln IM in the standard-normal space, 3 sd above the median motion
    mu0, sd0 = mu.mean(0), sd.mean(0)
    y0 = mu0 + 3.0 * sd0 * (L @ (L.T @ a)) / np.sqrt(a @ L @ L.T @ a)
    e0 = 0.0 if eps is None else eps
    r0 = np.median(rr)
    dy = 1e-4
    slope = (model.surface_ln_sa_g(zone, M, r0, (y0 + dy)[None], e0, periods=per)[0]
             - model.surface_ln_sa_g(zone, M, r0, y0[None], e0, periods=per)[0]) / dy
    d = L.T @ (sd0 * a * slope)
    if eps is None:
        Ls = np.linalg.cholesky(s2s_corr + 1e-10 * np.eye(P))
        d = np.concatenate([d, Ls.T @ (model.phi_s2s(zone, per, y0) * a)])
    d = d / np.linalg.norm(d)
    th = np.asarray(thetas, float)
    u = rng.standard_normal((n, d.size)) + th[np.arange(n) % th.size][:, None] * d
    w = 1.0 / np.mean(np.exp(th[None, :] * (u @ d)[:, None] - 0.5 * th[None, :] ** 2), axis=1)
    lny = mu + sd * (u[:, :P] @ L.T)
    e = eps if eps is not None else u[:, P:] @ Ls.T
    srf = model.surface_ln_sa_g(zone, np.full(n, float(M)), rr, lny, e, periods=per)
    return srf @ a, w


def mixture_quantiles(gm, probs):
    """ln IM at which the mixture (one grid point) has exceedance probability ``probs`` (bisection)."""
    m, s, w = gm.mean[0, 0], gm.sd[0, 0], gm.weight[0, 0]
    lo, hi = np.full(len(probs), m.min() - 10 * s.max()), np.full(len(probs), m.max() + 10 * s.max())
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        sf = (w * ndtr(-(mid[:, None] - m) / s)).sum(-1)
        lo, hi = np.where(sf > probs, mid, lo), np.where(sf > probs, hi, mid)
    return 0.5 * (lo + hi)


def check_against_mc(model, imt, M, r_hyp, zone, branch, n, seed, fcm=None, classes=()):
    gm = model.ln_im_mixture(imt, [M], [r_hyp], zone, branch)
    gm.check()
    ln_im, w = mc_ln_im(model, imt, M, r_hyp, zone, branch, n, seed)
    x = mixture_quantiles(gm, LEVELS)
    exc = w[None, :] * (ln_im[None, :] > x[:, None])
    p_mc = exc.mean(1)
    se = exc.std(1) / np.sqrt(n) / p_mc
    err = LEVELS / p_mc - 1.0
    assert np.all(np.abs(err) <= 0.01 + 2.5 * se), (imt, M, r_hyp, zone, np.round(100 * err, 2), np.round(100 * se, 2))
    for c in classes:
        t = fcm.typology_index(c)
        med, beta = fcm.median_g[t, 1, 0], fcm.beta[t, 1, 0]
        v = w * ndtr((ln_im - np.log(med)) / beta)
        p_mc, se = v.mean(), v.std() / np.sqrt(n)
        p_mix = float((gm.weight * ndtr((gm.mean - np.log(med)) / np.sqrt(gm.sd**2 + beta**2))).sum())
        assert abs(p_mix / p_mc - 1) <= 0.01 + 2.5 * se / p_mc, (c, p_mix, p_mc, se)
    return err


def test_avgsa_and_pga_epistemic_finite_rupture(model_dir, fcm_v7):
    """M 5.5 at 4 km in zone 308 (strongly non-linear), upper branches, eps_S2S = +1.645."""
    m = GroningenV7(model_dir)
    br = {"gmm_median": 3, "gmm_tau": 2, "gmm_phi_ss": 1, "gmm_s2s": 2}
    check_against_mc(m, "AvgSa", 5.5, 4.0, 308, br, 1_000_000, 11, fcm_v7, ("URM3M_U", "RC1L", "PC3H"))
    check_against_mc(m, "PGA", 5.5, 4.0, 308, br, 500_000, 12)


def test_avgsa_aleatory_site_term(model_dir, fcm_v7):
    """M 5.0 at 5 km in zone 322 with an aleatory, p2p-correlated site term."""
    m = GroningenV7(model_dir, s2s_mode="aleatory")
    br = {"gmm_median": 2, "gmm_tau": 1, "gmm_phi_ss": 1}
    check_against_mc(m, "AvgSa", 5.0, 5.0, 322, br, 1_000_000, 13, fcm_v7, ("URM3M_U", "URM1F_B"))


def test_v6_point_source(model_dir):
    m = GroningenV6(model_dir, rupture="point")
    check_against_mc(m, "AvgSa", 6.0, 4.0, 3111, {"gmm_median": 3, "gmm_phi_ss": 1}, 300_000, 14)


def test_mixture_is_deterministic(model_dir):
    a = GroningenV7(model_dir).ln_im_mixture("AvgSa", [4.5], [7.0], 322, {"gmm_median": 1, "gmm_tau": 1, "gmm_phi_ss": 0, "gmm_s2s": 0})
    b = GroningenV7(model_dir).ln_im_mixture("AvgSa", [4.5], [7.0], 322, {"gmm_median": 1, "gmm_tau": 1, "gmm_phi_ss": 0, "gmm_s2s": 0})
    assert np.array_equal(a.mean, b.mean) and np.array_equal(a.sd, b.sd) and np.array_equal(a.weight, b.weight)


@pytest.mark.parametrize("imt", ["AvgSa", "PGA"])
def test_grid_evaluation_equals_pointwise(model_dir, imt):
    """A grid call equals the point calls (no cross-talk between grid cells or chunks)."""
    m = GroningenV7(model_dir)
    br = {"gmm_median": 0, "gmm_tau": 0, "gmm_phi_ss": 1, "gmm_s2s": 2}
    M, R = np.array([3.0, 5.2, 6.4]), np.array([3.0, 9.0, 33.0])
    grid = m.ln_im_mixture(imt, M, R, 3111, br)
    for i, mm in enumerate(M):
        for j, rr in enumerate(R):
            one = m.ln_im_mixture(imt, [mm], [rr], 3111, br)
            assert np.allclose(one.mean[0, 0], grid.mean[i, j], rtol=0, atol=1e-12)
            assert np.allclose(one.sd[0, 0], grid.sd[i, j], rtol=0, atol=1e-12)
