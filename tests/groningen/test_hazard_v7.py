"""Site hazard with the public GMM V7 (needs the model tables: HRA_MODEL_DIR).

The reference is an independent numerical integral written here with numpy/scipy from the
model's public functions only (median_sa_g, sigma_components, ln_af, phi_s2s, median_weights):
for every magnitude of a fine grid (Simpson rule against the truncated GR density) and every
source cell (exact hypocentral distance, point rupture), the probability that the surface PGA
exceeds a level is the normal probability mass of the reference motion ln Y on a fine grid of
ln Y where the surface motion ln Y + ln AF(Y) + eps phi_S2S(Y) exceeds it, summed over tau,
phi_SS and the site-term branches and over the four median branches with their w(M) *at that
magnitude* (Bommer et al. 2021 eq. 9.8).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import simpson
from scipy.special import ndtr

pytestmark = pytest.mark.models

SITES = pd.DataFrame({"id": ["Loppersum", "Garrelsweer"], "x": [246_500.0, 250_300.0], "y": [596_500.0, 590_200.0]})
CELLS = [(247_500.0, 594_500.0, 0.06), (244_500.0, 598_500.0, 0.03), (251_500.0, 591_500.0, 0.04)]
M_MAX = 5.0
LEVELS = np.geomspace(0.005, 1.5, 40)


@pytest.fixture(scope="module")
def v7_cfg(tmp_path_factory, model_dir):
    from hra.config import config_from_dict

    d = tmp_path_factory.mktemp("hz7")
    pd.DataFrame([dict(x=x, y=y, year=2025, rate=r) for x, y, r in CELLS]).to_csv(d / "rates.csv", index=False)
    pd.DataFrame([dict(id="B", x=SITES.x[0], y=SITES.y[0], typology="URM")]).to_csv(d / "b.csv", index=False)

    def make(**gm):
        return config_from_dict({
            "run": {"years": [2025], "quantiles": [0.1, 0.5, 0.9]},
            "source": {"rates": "rates.csv", "subcell_radius_km": 0.0, "max_distance_km": 40.0, "distance_nodes": 96,
                       "magnitude": {"b_value": 1.0, "m_max": [{"value": M_MAX, "weight": 1.0}]}},
            "ground_motion": {"model": "groningen-v7", "model_dir": str(model_dir), "rupture": "point", "quadrature": "fast", **gm},
            "exposure": {"buildings": "b.csv"},
            "fragility": {"model": "fcm-v7"},
            "compute": {"progress": False},
        }, base_dir=d)

    return make


@pytest.fixture(scope="module")
def hc(v7_cfg):
    from hra.integration.hazard import hazard_curves

    return hazard_curves(v7_cfg(), SITES, imts=["PGA"], levels_g=LEVELS, keep_branches=True)


def gr_pdf(m, b=1.0, m_min=1.5, m_max=M_MAX):
    beta = b * np.log(10.0)
    return beta * np.exp(-beta * (m - m_min)) / (1.0 - np.exp(-beta * (m_max - m_min)))


def independent_rates(gmm, zone, site, levels, median=None, tau=None, phi=None, s2s=None, component="sigma_gm", T=0.01):
    """lambda(a) [yr^-1] of surface Sa(T) (PGA: T = 0.01 s) at a site: the integral of the module docstring.

    ``tau``/``phi``/``s2s`` fix a branch (index) instead of averaging over it; ``median`` fixes
    the median branch at every magnitude. Returns ``(with w(M), with the nominal weights)``.
    """
    # T = 0.01 s: PGA in GMM V7
    m = np.linspace(1.5, M_MAX, 101)
    w_m = gmm.median_weights(m)  # (m, 4) eq. 9.8
    w_nominal = np.asarray(gmm.tree.node("gmm_median").weights)
    taus = range(3) if tau is None else [tau]
    phis = range(2) if phi is None else [phi]
    s2ss = range(3) if s2s is None else [s2s]
    w_tau = dict(enumerate(gmm.tree.node("gmm_tau").weights))
    w_phi = dict(enumerate(gmm.tree.node("gmm_phi_ss").weights))
    w_s2s = dict(enumerate(gmm.tree.node("gmm_s2s").weights))
    eps_s2s = dict(enumerate(gmm.tree.node("gmm_s2s").values))
    y = np.arange(-14.0, 2.0, 0.006)  # ln Y grid [ln g]
    ym = 0.5 * (y[1:] + y[:-1])
    lam_w = np.zeros(levels.size)
    lam_nom = np.zeros(levels.size)
    for cx, cy, rate in CELLS:
        r = np.hypot(np.hypot(cx - site[0], cy - site[1]) / 1000.0, 3.0)
        # exceedance indicator of the surface ln PGA at the ln Y cell midpoints, per site-term branch
        exceed = {j: (ym[None, :] + gmm.ln_af(zone, T, m[:, None], r, ym[None, :])
                      + eps_s2s[j] * gmm.phi_s2s(zone, T, ym[None, :]))[:, :, None] > np.log(levels)[None, None, :]
                  for j in s2ss}
        f = gr_pdf(m)
        # the probability mass of ln Y per cell of the grid, summed over the branches with their
        # weights: median with w(M) (and, for comparison, with the nominal weights), tau, phi_SS
        mass_w = np.zeros((m.size, ym.size))
        mass_nom = np.zeros((m.size, ym.size))
        for k in range(4):
            if median is not None and k != median:
                continue
            mu = np.log(gmm.median_sa_g(T, m, r, k))
            wk = np.ones(m.size) if median is not None else w_m[:, k]
            wk_nom = 1.0 if median is not None else w_nominal[k]
            for it in taus:
                for ip in phis:
                    sd = gmm.sigma_components(T, m, r, {"gmm_tau": it, "gmm_phi_ss": ip})[component]
                    mass = np.diff(ndtr((y[None, :] - mu[:, None]) / sd[:, None]), axis=1)  # (m, y)
                    w = (1.0 if tau is not None else w_tau[it]) * (1.0 if phi is not None else w_phi[ip])
                    mass_w += (w * wk)[:, None] * mass
                    mass_nom += w * wk_nom * mass
        for j in s2ss:
            wj = 1.0 if s2s is not None else w_s2s[j]
            p_w = wj * np.einsum("my,myl->ml", mass_w, exceed[j], optimize=True)
            p_nom = wj * np.einsum("my,myl->ml", mass_nom, exceed[j], optimize=True)
            lam_w += rate * simpson(f[:, None] * p_w, x=m, axis=0)
            lam_nom += rate * simpson(f[:, None] * p_nom, x=m, axis=0)
    return lam_w, lam_nom


def intensity_at(levels, rates, rp):
    lr = np.log(rates[::-1])
    return float(np.exp(np.interp(-np.log(rp), lr, np.log(levels[::-1]))))


@pytest.mark.parametrize("i_site", [0, 1])
def test_v7_mean_hazard_uses_w_of_m_against_independent_integral(hc, gmm_v7, i_site):
    from hra.gmm.groningen_v7 import GroningenV7

    gmm = GroningenV7(component="geometric_mean")
    zone = int(hc["zone"].values[i_site])
    site = (SITES.x[i_site], SITES.y[i_site])
    ref, nominal = independent_rates(gmm, zone, site, LEVELS)
    got = hc["rate_mean"].values[i_site, 0, 0]
    for rp in (475.0, 2475.0):
        a_ref, a_got = intensity_at(LEVELS, ref, rp), intensity_at(LEVELS, got, rp)
        assert a_got == pytest.approx(a_ref, rel=0.015), (rp, a_got, a_ref)
    # the nominal median weights (the former behaviour) give a different answer at 2475 yr (about
    # -1 % with Mmax 5.0 here), and the hazard is much closer to the w(M) integral than to that
    a_ref, a_nom, a_got = (intensity_at(LEVELS, c, 2475.0) for c in (ref, nominal, got))
    assert abs(a_nom / a_ref - 1) > 0.005
    assert abs(a_got / a_ref - 1) < 0.5 * abs(a_nom / a_ref - 1)


def test_v7_fractiles_are_weighted_quantiles_of_branch_curves(hc, gmm_v7):
    """Fractiles = weighted quantiles (inverse weighted empirical CDF) of the per-combination curves; the
    top virtual median branch (u near 1: the Upper branch at every magnitude) against the
    independent integral for that branch."""
    from hra.core.logictree import weighted_quantile
    from hra.gmm.groningen_v7 import GroningenV7

    br = hc["rate_branch"].values[0, 0, 0]  # (level, branch)
    w = hc["branch_weight"].values
    assert w.sum() == pytest.approx(1.0)
    for q in (0.1, 0.5, 0.9):
        ref = np.array([float(np.squeeze(weighted_quantile(br[l].astype(float), w, q))) for l in range(LEVELS.size)])
        np.testing.assert_allclose(hc[f"rate_p{int(q * 100)}"].values[0, 0, 0], ref, rtol=1e-6)
    np.testing.assert_allclose(br.astype(float) @ w, hc["rate_mean"].values[0, 0, 0], rtol=1e-4)
    # tree order: gmm_median (virtual, V), gmm_tau (3), gmm_phi_ss (2), gmm_s2s (3); source/b/Mmax single
    V = w.size // 18
    b = ((V - 1) * 3 + 1) * 6 + 0 * 3 + 1
    gmm = GroningenV7(component="geometric_mean")
    ref, _ = independent_rates(gmm, int(hc["zone"].values[0]), (SITES.x[0], SITES.y[0]), LEVELS, median=3, tau=1, phi=0, s2s=1)
    got = br[:, b].astype(float)
    for rp in (475.0, 2475.0):
        assert intensity_at(LEVELS, got, rp) == pytest.approx(intensity_at(LEVELS, ref, rp), rel=0.015)
    # and numpy's weighted inverted-CDF quantile where no cumulative weight falls on a step
    lv = LEVELS.size // 2
    np.testing.assert_allclose(hc["rate_p50"].values[0, 0, 0, lv],
                               np.quantile(br[lv].astype(float), 0.5, method="inverted_cdf", weights=w), rtol=1e-6)


def test_v7_provenance(hc):
    import json

    prov = json.loads(hc.attrs["provenance"])
    for key in ("package_version", "config_sha256", "input_sha256", "seed", "n_realisations", "start_time", "end_time",
                "ground_motion_model", "logic_tree"):
        assert key in prov
    assert prov["component"] == "geometric_mean" and hc.attrs["component"] == "geometric_mean"
    assert "gmm_median" in prov["logic_tree"] and prov["median_weights"] == "realisation"
    assert any(k.startswith("source:") for k in prov["input_sha256"])
    assert len(prov["logic_tree"]["gmm_median"]) == hc.attrs["n_branches"] // 18  # the virtual w(M) branches


@pytest.mark.parametrize("imt, period, component", [("SA(0.3)", 0.3, "geometric_mean"), ("PGA", 0.01, "arbitrary")])
def test_v7_spectral_and_arbitrary_component_against_independent_integral(v7_cfg, imt, period, component):
    """SA(T) at a model period, and the arbitrary component (sigma with the c2c term)."""
    from hra.gmm.groningen_v7 import GroningenV7
    from hra.integration.hazard import hazard_curves

    got = hazard_curves(v7_cfg(), SITES.iloc[:1], imts=[imt], levels_g=LEVELS, quantiles=[], component=component)
    assert got.attrs["component"] == component
    gmm = GroningenV7(component=component)
    sigma = "sigma_gm" if component == "geometric_mean" else "sigma_arbitrary"
    ref, _ = independent_rates(gmm, int(got["zone"].values[0]), (SITES.x[0], SITES.y[0]), LEVELS, component=sigma, T=period)
    for rp in (475.0, 2475.0):
        assert intensity_at(LEVELS, got["rate_mean"].values[0, 0, 0], rp) == pytest.approx(intensity_at(LEVELS, ref, rp), rel=0.015)


@pytest.mark.parametrize("imt", ["PGA", "AvgSa"])
def test_zone_tables_cell_path_equals_the_generic_path(v7_cfg, imt):
    """The one-hot w(M) path of ``zone_tables`` (bin expectations per (pair of physical median
    branches, bin), then linear products for the mean and the per-combination tables) against the
    generic path (each virtual branch's tables mixed per magnitude node, then
    ``MagnitudeBins.integrate``), for the exact single-period exceedance and the mixture path."""
    from hra.chain import make_gmm, median_map_for, prepare_source
    from hra.integration import hazard

    cfg = v7_cfg()
    sm = prepare_source(cfg)
    gmm = make_gmm(cfg)
    mm = median_map_for(cfg, gmm, sm.magnitude)
    assert np.all((mm.mix == 0) | (mm.mix == 1)) and mm.mix.shape[0] > 4  # one-hot, virtual branches
    levels = np.geomspace(0.01, 1.0, 12)
    zone = int(gmm.zones[0])
    r_hyp = sm.distance_nodes_km[::8]  # 12 of the 96 nodes: the paths do not depend on them
    args = (gmm, imt, levels, sm.magnitude, r_hyp, zone, mm)
    mean, tab = hazard.zone_tables(*args, keep_branches=True)
    mean_ref, tab_ref = hazard._zone_tables_generic(*args, keep_branches=True)
    big = mean_ref > 1e-12
    assert big.sum() > 0.3 * big.size
    np.testing.assert_allclose(mean[big], mean_ref[big], rtol=1e-10)
    np.testing.assert_allclose(mean[~big], mean_ref[~big], rtol=0, atol=1e-20)
    np.testing.assert_allclose(tab, tab_ref, rtol=3e-7, atol=1e-30)  # float32 tables: their rounding
    mean_only, none = hazard.zone_tables(*args, keep_branches=False)
    assert none is None
    np.testing.assert_array_equal(mean_only, mean)
