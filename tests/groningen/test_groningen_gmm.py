"""GMM-V7 / V6 equations: worked value, independent verification tables, weights, units, registry."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import ndtr

from hra.gmm import groningen_v7 as g7
from hra.gmm.base import GaussianMixture
from hra.gmm.registry import GMM_REGISTRY, LAZY_MODULES, available_gmms, load_gmm, register_gmm

DATA = Path(__file__).resolve().parents[1] / "data" / "groningen_v7"
CENTRAL = {"gmm_median": 2, "gmm_tau": 1, "gmm_phi_ss": 0, "gmm_s2s": 1}


def _rows(name):
    with open(DATA / name, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------- worked value §7


def test_worked_value_model_spec_section_8(model_dir):
    """T = 0.01 s, M = 5.0, CentralUpper, R = 4.243 km -> 0.09500 g (docs/model-chain.md §7), step by step."""
    t = g7.GroningenV7(model_dir).tables
    c = {k: v[2][0] for k, v in t.median.items()}  # level3 = CentralUpper, T = 0.01 s
    f_s = g7.source_term_v7(5.0, c["m0"], c["m1"], c["m2"], c["m3"], c["m4"])
    assert f_s == pytest.approx(4.954904 + 0.594982 * 0.25 - 0.099724 * 0.0625, abs=2e-6)
    assert f_s == pytest.approx(5.09742, abs=1e-5)
    g = g7.path_segments_v7(4.243)
    assert g[0] == pytest.approx(math.log(4.243 / 3.0), rel=1e-12)  # 0.346658 (docs/model-chain.md §7 notes the rounded 0.34657)
    assert g[1] == g[2] == g[3] == 0.0  # R < 7 km: the other segments vanish
    r = g7.path_slopes_v7(5.0, 0.01, c)
    assert r[0] == pytest.approx(-2.398631 + 2.789147 * math.tanh(0.253656 * 1.125), abs=2e-6)
    assert r[0] == pytest.approx(-1.62363, abs=1e-5)
    f_p = g7.path_term_v7(4.243, 5.0, 0.01, c)
    assert f_p == pytest.approx(r[0] * g[0], rel=1e-12)
    assert f_p == pytest.approx(-0.56271, abs=2e-4)  # spec value uses g0 = 0.34657
    ln_y = g7.ln_median_reference_cms2_v7(5.0, 4.243, 0.01, c)
    assert ln_y == pytest.approx(4.53471, abs=2e-4)
    assert math.exp(ln_y) == pytest.approx(93.20, abs=0.02)  # cm/s^2
    y_g = g7.median_sa_g(0.01, 5.0, 4.243, "CentralUpper", model_dir)
    assert y_g == pytest.approx(math.exp(ln_y) / 981.0, rel=1e-12)
    assert y_g == pytest.approx(0.09500, rel=2e-4)


# ---------------------------------------------------------------------------- verification tables


def test_v7_median_table(gmm_v7):
    rows = _rows("GMMV7_MEDIAN.csv")
    assert len(rows) > 100 and {r["result_type"] for r in rows} == {"MEDIAN_SA_G"}
    got = np.array([gmm_v7.median_sa_g(float(r["period"]), float(r["rup_mag"]), float(r["dist_rrup"]), r["branch"])
                    for r in rows])
    assert np.allclose(got, [float(r["value"]) for r in rows], rtol=1e-9, atol=0)


def test_v7_sigma_table(gmm_v7):
    for r in _rows("GMMV7_SIGMA.csv"):
        br = {"gmm_tau": 1, "gmm_phi_ss": 0}
        if r["branch"]:
            parts = dict(p.split("=") for p in r["branch"].split(";"))
            br = {"gmm_tau": parts["tau"], "gmm_phi_ss": parts["phi_ss"]}
        s = gmm_v7.sigma_components(float(r["period"]), float(r["rup_mag"]), float(r["dist_rrup"]), br)
        key = {"SIGMA_C2C": "sigma_c2c", "SIGMA_ARBITRARY": "sigma_arbitrary"}[r["result_type"]]
        assert float(s[key]) == pytest.approx(float(r["value"]), rel=1e-9), r


def test_v7_site_table(gmm_v7):
    rows = _rows("GMMV7_SITE.csv")
    for r in rows:
        z, T, M, R = int(r["site_zone"]), float(r["period"]), float(r["rup_mag"]), float(r["dist_rrup"])
        y = math.log(float(r["sa_ref_g"]))
        got = gmm_v7.ln_af(z, T, M, R, y) if r["result_type"] == "LN_AF" else gmm_v7.phi_s2s(z, T, y)
        assert float(got) == pytest.approx(float(r["value"]), rel=1e-9, abs=1e-12), r


def test_v6_median_table(model_dir):
    m6 = load_gmm("groningen-v6", model_dir)
    rows = _rows("GMMV6_MEDIAN.csv")
    got = np.array([m6.median_sa_g(float(r["period"]), float(r["rup_mag"]), float(r["dist_rrup"]), r["branch"]) for r in rows])
    assert np.allclose(got, [float(r["value"]) for r in rows], rtol=1e-9, atol=0)


# ---------------------------------------------------------------------------- units and physics


def test_phi_s2s_uses_reference_sa_in_g(gmm_v7):
    """phi_S2S(Y) moves between s1 (Y <= xl) and s2 (Y >= xh) with Y in g.

    The chain's bug compared ln(Y in cm/s^2) with ln xl, ln xh in g, which puts every
    Y >~ 0.0005 g on s2; these assertions fail with it."""
    c = gmm_v7._af_at(1737, gmm_v7._period_indices([0.01]))
    s1, s2, xl, xh = (float(c[k][0]) for k in ("s1", "s2", "xl", "xh"))
    assert abs(s1 - s2) > 0.09  # zone 1737 at 0.01 s: s1 = 0.383, s2 = 0.286
    y_mid = 0.5 * (math.log(xl) + math.log(xh))  # ln g
    assert float(gmm_v7.phi_s2s(1737, 0.01, y_mid)) == pytest.approx(0.5 * (s1 + s2), rel=1e-12)
    assert float(gmm_v7.phi_s2s(1737, 0.01, math.log(0.5 * xl))) == pytest.approx(s1)
    assert float(gmm_v7.phi_s2s(1737, 0.01, math.log(2 * xh))) == pytest.approx(s2)
    buggy = g7.phi_s2s(y_mid + math.log(981.0), s1, s2, xl, xh)  # what cm/s^2 would give
    assert float(buggy) == pytest.approx(s2) and abs(buggy - 0.5 * (s1 + s2)) > 0.02
    # end to end: weak motion (Y << xl), the +1.645 site branch shifts ln PGA by 1.645 * s1, not s2
    br = dict(CENTRAL)
    lo = gmm_v7.ln_im_mixture("PGA", [3.0], [25.0], 1737, {**br, "gmm_s2s": 1})
    hi = gmm_v7.ln_im_mixture("PGA", [3.0], [25.0], 1737, {**br, "gmm_s2s": 2})
    assert np.exp((lo.weight * lo.mean).sum()) < 0.2 * xl
    shift = float((hi.weight * hi.mean).sum() - (lo.weight * lo.mean).sum())
    assert shift == pytest.approx(1.645 * s1, rel=0.02)
    assert abs(shift - 1.645 * s2) > 0.1


def test_af_clipping_and_nonlinearity(gmm_v7):
    c = gmm_v7._af_at(308, gmm_v7._period_indices([0.01]))
    y = np.log(np.geomspace(1e-4, 10.0, 400))
    la = gmm_v7.ln_af(308, 0.01, 6.0, 3.0, y)
    assert np.all(la >= np.log(c["AFmin"][0]) - 1e-12) and np.all(la <= np.log(c["AFmax"][0]) + 1e-12)
    assert la[0] > la[-1]  # de-amplification at strong motion (f2 < 0)


def test_c2c_variance_limits():
    # Stafford et al. (2019): 0.026 at T <= 0.1 s and 0.045 at T >= 0.85 s for M >= 5.6
    assert float(g7.c2c_variance(0.01, 6.0, 10.0)) == pytest.approx(0.026)
    assert float(g7.c2c_variance(1.0, 6.0, 10.0)) == pytest.approx(0.045)
    v = g7.c2c_variance(np.array([0.1, 0.3, 0.85]), 4.0, 5.0)
    assert v[0] < v[1] < v[2]


def test_sigma_components_and_tree(gmm_v7):
    s = gmm_v7.sigma_components(0.01, 4.0, 5.0, {"gmm_tau": "Upper", "gmm_phi_ss": "Lower"})
    assert float(s["tau"]) == pytest.approx(0.484) and float(s["phi_ss"]) == pytest.approx(0.437)
    assert float(s["sigma_arbitrary"]) ** 2 == pytest.approx(0.484**2 + 0.437**2 + float(s["sigma_c2c"]) ** 2)
    assert float(s["sigma_gm"]) < float(s["sigma_arbitrary"])
    tree = gmm_v7.tree
    assert tree.names == ("gmm_median", "gmm_tau", "gmm_phi_ss", "gmm_s2s")
    assert tree.node("gmm_median").weights == (0.2, 0.3, 0.3, 0.2)
    assert tree.node("gmm_tau").weights == (0.2, 0.6, 0.2)
    assert tree.node("gmm_phi_ss").weights == (0.5, 0.5)
    assert tree.node("gmm_s2s").weights == (0.2, 0.6, 0.2) and tree.node("gmm_s2s").values == (-1.645, 0.0, 1.645)
    assert tree.n_combinations == 72
    with pytest.raises(KeyError, match="lake"):
        gmm_v7.ln_im_mixture("AvgSa", [4.0], [5.0], 2813, CENTRAL)
    with pytest.raises(KeyError, match="outside the model's range"):
        gmm_v7.median_sa_g(2.0, 5.0, 5.0, 0)
    with pytest.raises(KeyError, match="does not provide IM"):
        gmm_v7.ln_im_mixture("PGV", [4.0], [5.0], 308, CENTRAL)


def test_median_weights_eq_9_8(gmm_v7):
    w = gmm_v7.median_weights([3.0, 3.6, 4.3, 5.0, 6.0])
    assert np.allclose(w.sum(1), 1.0)
    assert np.allclose(w[0], [0.2, 0.3, 0.3, 0.2]) and np.allclose(w[1], w[0])
    assert np.allclose(w[2], [0.15, 0.25, 0.3, 0.3])
    assert np.allclose(w[3], [0.1, 0.2, 0.3, 0.4]) and np.allclose(w[4], w[3])
    assert np.allclose(gmm_v7.branch_weights("gmm_median", [4.3]), w[2:3])
    assert np.allclose(gmm_v7.branch_weights("gmm_tau", [4.3, 6.0]), [[0.2, 0.6, 0.2]] * 2)


def test_mean_over_median_branches_is_the_w_of_m_mixture(gmm_v7):
    """The median branches combined with w(M) are one mixture per event: its distribution is the
    w(M)-weighted mean of the branch distributions (and not the nominal-weight mean)."""
    M = np.array([3.0, 4.3, 5.5])
    R = np.array([4.0, 12.0])
    other = {"gmm_tau": 1, "gmm_phi_ss": 1, "gmm_s2s": 1}
    mix = gmm_v7.median_mixture("AvgSa", M, R, 308, other)
    mix.check()
    branches = [gmm_v7.ln_im_mixture("AvgSa", M, R, 308, {**other, "gmm_median": b}) for b in range(4)]
    w = gmm_v7.median_weights(M)
    x = np.log([0.01, 0.1, 0.5])
    expect = sum(w[None, :, b, None] * br.cdf(x) for b, br in enumerate(branches))  # cdf: (x, M, R)
    assert np.allclose(mix.cdf(x), expect, atol=1e-13)
    mean = (mix.weight * mix.mean).sum(-1)
    assert np.allclose(mean, sum(w[:, b, None] * (br.weight * br.mean).sum(-1) for b, br in enumerate(branches)))
    nominal = sum(0.25 * np.array([0.8, 1.2, 1.2, 0.8])[b] * br.cdf(x) for b, br in enumerate(branches))
    assert not np.allclose(mix.cdf(x)[:, 2], nominal[:, 2], atol=1e-4)  # axis 1 = M  # M 5.5: w(M) differs from the nominal weights


def test_wierde_shifts_every_component(gmm_v7):
    a = gmm_v7.ln_im_mixture("AvgSa", [4.0, 5.0], [5.0], 3111, CENTRAL)
    b = gmm_v7.ln_im_mixture("AvgSa", [4.0, 5.0], [5.0], 3111, CENTRAL, wierde=True)
    assert np.allclose(b.mean - a.mean, 0.2675, atol=1e-12)  # mean of the 10 wierde ln factors
    assert np.allclose(b.sd, a.sd)
    p = gmm_v7.ln_im_mixture("PGA", [4.0], [5.0], 3111, CENTRAL, wierde=True)
    q = gmm_v7.ln_im_mixture("PGA", [4.0], [5.0], 3111, CENTRAL)
    assert np.allclose(p.mean - q.mean, 0.2)
    assert np.allclose(g7.wierde_ln_factor(g7.PERIODS),
                       [0.2, 0.25, 0.35, 0.35, 0.35, 0.35, 0.30, 0.25, 0.175, 0.10])


def test_s2s_branches_share_one_quadrature(gmm_v7):
    M, R = np.array([4.5]), np.array([6.0])
    allb = gmm_v7.ln_im_mixtures("AvgSa", M, R, 322, CENTRAL)
    assert sorted(allb) == [0, 1, 2]
    for j in range(3):
        one = gmm_v7.ln_im_mixture("AvgSa", M, R, 322, {**CENTRAL, "gmm_s2s": j})
        assert np.array_equal(one.mean, allb[j].mean) and np.array_equal(one.sd, allb[j].sd)
    m = [float((allb[j].weight * allb[j].mean).sum()) for j in range(3)]
    assert m[0] < m[1] < m[2]


def test_epistemic_mixtures_equal_the_moment_formulas(gmm_v7):
    """The compiled pass for the eps_S2S branches (:func:`g7.epistemic_mixtures`) against the
    numpy formulas (:func:`g7._quadratic_forms` + :func:`g7.mixture_from_moments`), component by
    component, for AvgSa (10 periods, the Mehler cross terms) and PGA, with a wierde shift."""
    M = np.array([2.5, 4.0, 5.5, 6.5])
    R = np.array([3.0, 8.0, 25.0, 60.0])
    mm, rr = np.meshgrid(M, R, indexing="ij")
    mm, rr = mm.ravel(), rr.ravel()
    for imt in ("AvgSa", "PGA"):
        idx, a = gmm_v7._im_definition(imt)
        mu, sd = gmm_v7._reference(idx, mm, rr, CENTRAL)
        c = gmm_v7._af_at(308, idx)
        site = gmm_v7.site_response(308, idx, wierde=True)
        mom = g7.surface_moments(mu, sd, gmm_v7.tables.p2p[np.ix_(idx, idx)], a, gmm_v7._f1(c, mm[:, None], rr[:, None]),
                                 site, gmm_v7._x_nodes, gmm_v7._x_weights, gmm_v7.quad_fraction, gmm_v7.n_inner,
                                 gmm_v7.n_hermite)
        shift = float(site.wierde @ a)
        assert shift != 0.0
        eps = (-1.645, 0.0, 1.645)
        mean, sdv = g7.epistemic_mixtures(mom, a, eps, shift)
        assert mean.shape == sdv.shape == (3, mm.size, gmm_v7.n_quad)
        for e, ee in enumerate(eps):
            want_m, want_s = g7.mixture_from_moments(mom, a, ee, shift=shift)
            np.testing.assert_allclose(mean[e], want_m, rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(sdv[e], want_s, rtol=1e-11, atol=1e-13)
            assert np.all(sdv[e] > 0)


def test_mixture_shape_and_components(gmm_v7):
    M = np.linspace(2.0, 6.5, 4)
    R = np.array([3.0, 10.0, 40.0])
    gm = gmm_v7.ln_im_mixture("AvgSa", M, R, 308, CENTRAL)
    assert isinstance(gm, GaussianMixture)
    gm.check()
    assert gm.mean.shape == (4, 3, gmm_v7.n_rrup * gmm_v7.n_quad) == (4, 3, 320)
    # the median of the mixture is close to the surface median at the median reference motion
    med_ref = np.log(gmm_v7.median_sa_g(0.01, 3.0, 10.0, 2))
    pga = gmm_v7.ln_im_mixture("PGA", [3.0], [10.0], 308, CENTRAL, wierde=False)
    la = gmm_v7.ln_af(308, 0.01, 3.0, 10.0, med_ref)
    assert float(pga.cdf(med_ref + la)[0, 0]) == pytest.approx(0.5, abs=0.03)


def test_quadrature_convergence(model_dir, fcm_v7):
    """Refining each quadrature setting changes P(CS1) by < 1 % (for P(CS1) > 1e-7)."""
    M, R = np.array([4.5, 5.5, 6.0]), np.array([4.0, 12.0])
    br = {"gmm_median": 3, "gmm_tau": 2, "gmm_phi_ss": 1, "gmm_s2s": 2}
    t = fcm_v7.typology_index("RC1L")
    med, beta = fcm_v7.median_g[t, 1, 0], fcm_v7.beta[t, 1, 0]

    def pcs1(m):
        gm = m.ln_im_mixture("AvgSa", M, R, 308, br)
        return (gm.weight * ndtr((gm.mean - np.log(med)) / np.sqrt(gm.sd**2 + beta**2))).sum(-1)

    base = pcs1(g7.GroningenV7(model_dir))
    assert base.min() > 1e-7
    for kw in ({"quad_step": 0.125}, {"n_rrup": 10}, {"n_inner": 24, "n_hermite": 6}, {"quad_fraction": 0.99, "quad_step": 0.18}):
        fine = pcs1(g7.GroningenV7(model_dir, **kw))
        assert np.max(np.abs(base / fine - 1)) < 0.01, kw


# ---------------------------------------------------------------------------- V6 and registry


def test_v6_structure(model_dir):
    m6 = load_gmm("groningen-v6", model_dir)
    assert m6.name == "groningen-v6" and m6.s2s_mode == "aleatory"
    assert m6.tree.names == ("gmm_median", "gmm_phi_ss")
    assert m6.tree.node("gmm_median").weights == (0.1, 0.3, 0.3, 0.3)
    assert np.allclose(m6.median_weights([3.0, 6.0]), [[0.1, 0.3, 0.3, 0.3]] * 2)
    # tau follows the median level
    for lev in range(4):
        s = m6.sigma_components(0.5, 4.0, 10.0, {"gmm_median": lev, "gmm_phi_ss": 0})
        assert float(s["tau"]) == pytest.approx(m6.tables.tau[lev, 12])
    gm = m6.ln_im_mixture("AvgSa", [4.0, 5.5], [4.0, 15.0], 308, {"gmm_median": 1, "gmm_phi_ss": 1})
    gm.check()
    e = load_gmm("groningen-v6", model_dir, s2s_mode="epistemic")
    assert e.tree.names == ("gmm_median", "gmm_phi_ss", "gmm_s2s")


def test_registry():
    assert {"groningen-v7", "groningen-v6"} <= set(GMM_REGISTRY)
    assert {"parametric", "demo"} <= set(LAZY_MODULES) and "parametric" in available_gmms()
    with pytest.raises(KeyError, match="unknown ground-motion model"):
        load_gmm("groningen-v9")
    with pytest.raises(ValueError, match="already registered"):
        register_gmm("groningen-v7", lambda model_dir=None, **kw: None)


def test_load_gmm_by_name(model_dir):
    m = load_gmm("groningen-v7", model_dir, s2s_mode="aleatory", rupture="point")
    assert isinstance(m, g7.GroningenV7) and m.s2s_mode == "aleatory" and m.rupture == "point"
    assert "gmm_s2s" not in m.tree.names
    assert m.ln_im_mixture("PGA", [4.0], [5.0], 308, {"gmm_median": 0, "gmm_tau": 0, "gmm_phi_ss": 0}).n_components == m.n_quad
