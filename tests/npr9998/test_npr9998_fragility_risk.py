"""Building-specific fragility and the risk verdict.

Independent reference for the risk: a power-law hazard curve H(a) = k0 a^-k [1/yr] and a
lognormal fragility (median theta, dispersion beta) give the closed form (Cornell et al. 2002)

    lambda(CS >= j) = integral P(CS >= j | a) |dH/da| da = H(theta_j) exp(k^2 beta_j^2 / 2)

and with exclusive collapse states and the 0.99 inside / 0.01 outside presence split
(docs/lpr.md §1, docs/model-chain.md §4.4):

    LPR = sum_j [0.99 P_death,in(j) + 0.01 P_death,out(j)] * (lambda(CS >= j) - lambda(CS >= j+1)).

The fake ``lpr_function`` below computes that; one test checks the closed form against
numerical quadrature, so the fake is itself verified.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.special import ndtr

import npr9998 as n
from npr9998.assess import RiskVerdict


def power_law_lpr(fragility: n.BuildingFragility, k0: float, k: float) -> float:
    lam = [k0 * m**-k * math.exp(0.5 * k * k * b * b) for m, b in zip(fragility.median_g, fragility.beta)] + [0.0]
    p = [0.99 * pi + 0.01 * po for pi, po in zip(fragility.p_death_inside, fragility.p_death_outside)]
    return sum(p[j] * (lam[j] - lam[j + 1]) for j in range(3))


def make_fake_lpr(k0: float, k: float, calls: list | None = None):
    """An hra.building_lpr stand-in: two years, second at 80 % of the rate; P50/P90 = 0.8/1.5 x mean."""

    def fake(cfg, x_rd, y_rd, fragility, zone=None):
        if calls is not None:
            calls.append((cfg, x_rd, y_rd, fragility, zone))
        m = power_law_lpr(fragility, k0, k)
        mean = np.array([m, 0.8 * m])
        return {"year": np.array([2025, 2026]), "lpr_mean": mean, "lpr_p50": 0.8 * mean, "lpr_p90": 1.5 * mean}

    return fake


def test_power_law_closed_form_matches_quadrature():
    frag = n.BuildingFragility((0.3, 0.45, 0.6), (0.4, 0.4, 0.4), (0.002, 0.02, 0.2), (0.001, 0.01, 0.05), "AvgSa")
    k0, k = 1e-5, 3.0
    closed = power_law_lpr(frag, k0, k)

    def integrand(ln_a):
        a = math.exp(ln_a)
        dens = k * k0 * a**-k  # |dH/d ln a|
        pe = ndtr((ln_a - np.log(frag.median_g)) / np.asarray(frag.beta))
        ps = pe - np.append(pe[1:], 0.0)
        p = 0.99 * np.asarray(frag.p_death_inside) + 0.01 * np.asarray(frag.p_death_outside)
        return float(np.dot(p, ps)) * dens

    num, _ = integrate.quad(integrand, math.log(1e-4), math.log(50.0), limit=400, epsabs=0, epsrel=1e-10)
    assert num == pytest.approx(closed, rel=1e-6)


def test_fragility_medians_reproduce_the_limit_displacements(stiff_curve, two_storey, spectrum):
    der = n.derive_building_fragility(stiff_curve, two_storey, spectrum, p_death_inside=(0.002, 0.02, 0.2), p_death_outside=(0.001, 0.01, 0.05), imt="AGS")
    f = der.fragility
    assert f.imt == "AGS" and f.beta == pytest.approx((0.4, 0.4, 0.4))
    assert der.limit_displacements_m == pytest.approx((0.06, 0.09, 0.12))
    assert der.extrapolated == (False, True, True)
    # the N2 demand of the scaled spectrum reaches each limit
    for lam, d_ls, med in zip(der.scale_factors, der.limit_displacements_m, f.median_g):
        r = n.n2_method(stiff_curve, two_storey, spectrum.scaled(lam))
        assert r.d_t_m == pytest.approx(d_ls, rel=1e-9)
        assert med == pytest.approx(lam * 0.2)  # AGS: a_g;S of the scaled spectrum
    # the unity check at scale 1 is 0.396437; the CS1 factor is where UC = 1.
    # Hand: short-period branch, d_t = Gamma d_y* (1 + (q_u(lam) - 1) T_C/T*), q_u = 1.315336 lam:
    # 0.06 = 1.238095 * 0.0145385 * (1 + (1.315336 lam - 1) * 1.019406)  (if d_t <= 3 d_et)
    # -> 1 + (1.315336 lam - 1) 1.019406 = 3.333333 -> lam = (2.333333/1.019406 + 1)/1.315336 = 2.500433
    assert der.scale_factors[0] == pytest.approx(2.500433, rel=1e-5)


def test_fragility_imts(stiff_curve, two_storey, spectrum):
    kw = dict(p_death_inside=(0.002, 0.02, 0.2), p_death_outside=(0.001, 0.01, 0.05))
    base = n.derive_building_fragility(stiff_curve, two_storey, spectrum, imt="AGS", **kw)
    lam = base.scale_factors[0]
    # AvgSa of the reference spectrum: geometric mean of S_e at the 10 V7 periods
    sa = [0.2 * (1 + 0.01 / 0.1 * 1.5), 0.5, 0.5, 0.5, 0.5, 0.5 * 0.4 / 0.5, 0.5 * 0.4 / 0.6, 0.5 * 0.4 / 0.7, 0.5 * 0.4 / 0.85, 0.5 * 0.4 / 1.0]
    avg = math.exp(sum(math.log(x) for x in sa) / 10)
    assert n.derive_building_fragility(stiff_curve, two_storey, spectrum, **kw).fragility.median_g[0] == pytest.approx(lam * avg)
    assert n.derive_building_fragility(stiff_curve, two_storey, spectrum, imt="PGA", **kw).fragility.median_g[0] == pytest.approx(lam * 0.2 * 1.15)
    f = n.derive_building_fragility(stiff_curve, two_storey, spectrum, imt="SA(T*)", **kw).fragility
    assert f.imt == "SA(0.392)" and f.median_g[0] == pytest.approx(lam * 0.5)
    assert n.derive_building_fragility(stiff_curve, two_storey, spectrum, imt="SA(1.0)", **kw).fragility.median_g[0] == pytest.approx(lam * 0.2)
    with pytest.raises(n.NPRInputError, match="unknown intensity measure"):
        n.derive_building_fragility(stiff_curve, two_storey, spectrum, imt="PGV", **kw)


def test_building_fragility_validation():
    with pytest.raises(n.NPRInputError, match="must not decrease"):
        n.BuildingFragility((0.5, 0.4, 0.6), (0.4,) * 3, (0.0,) * 3, (0.0,) * 3, "AvgSa")
    with pytest.raises(n.NPRInputError, match="percentages"):
        n.BuildingFragility((0.3, 0.4, 0.6), (0.4,) * 3, (2.0, 20.0, 20.0), (0.0,) * 3, "AvgSa")
    f = n.BuildingFragility((0.3, 0.4, 0.6), (0.4,) * 3, (0.0,) * 3, (0.0,) * 3, "AvgSa")
    ps = f.probability_of_state([0.3, 10.0])
    assert ps.shape == (2, 3) and ps[1].sum() == pytest.approx(1.0)


def test_risk_verdict_calls_the_engine_function_and_compares_with_norm(stiff_curve, two_storey, spectrum):
    frag = n.derive_building_fragility(stiff_curve, two_storey, spectrum, p_death_inside=(0.002, 0.02, 0.2), p_death_outside=(0.001, 0.01, 0.05)).fragility
    calls: list = []
    v = n.risk_verdict("CFG", 233000.0, 582000.0, frag, zone=7, lpr_function=make_fake_lpr(1e-6, 3.0, calls))
    assert calls == [("CFG", 233000.0, 582000.0, frag, 7)]
    assert v.years == (2025, 2026) and v.governing_year == 2025
    assert v.lpr_mean_max == pytest.approx(power_law_lpr(frag, 1e-6, 3.0))
    assert v.voldoet == (v.lpr_mean_max <= 1e-5)
    with pytest.raises(n.NPRInputError, match="x_rd"):
        n.risk_verdict("CFG", float("nan"), 582000.0, frag, lpr_function=make_fake_lpr(1e-6, 3.0))
    with pytest.raises(RuntimeError, match="lpr_p90"):
        n.risk_verdict("CFG", 1.0, 2.0, frag, lpr_function=lambda *a, **k: {"year": [2025], "lpr_mean": [1e-6], "lpr_p50": [1e-6]})


def test_risk_verdict_imports_hra_lazily(monkeypatch, stiff_curve, two_storey, spectrum):
    import sys
    import types

    frag = n.BuildingFragility((0.3, 0.4, 0.6), (0.4,) * 3, (0.002, 0.02, 0.2), (0.001, 0.01, 0.05), "AvgSa")
    fake_hra = types.ModuleType("hra")
    fake_hra.building_lpr = make_fake_lpr(1e-6, 3.0)
    monkeypatch.setitem(sys.modules, "hra", fake_hra)
    assert n.assess.risk_verdict(None, 1.0, 2.0, frag).lpr_mean_max == pytest.approx(power_law_lpr(frag, 1e-6, 3.0))
    monkeypatch.setitem(sys.modules, "hra", types.ModuleType("hra"))  # an engine without building_lpr
    with pytest.raises(RuntimeError, match="lpr_function"):
        n.risk_verdict(None, 1.0, 2.0, frag)


def test_risk_classification():
    assert RiskVerdict((2025,), (2e-5,), (1e-5,), (3e-5,)).classification == "verhoogd"
    assert RiskVerdict((2025,), (5e-6,), (4e-6,), (1.2e-5,)).classification == "licht verhoogd"
    assert RiskVerdict((2025,), (5e-6,), (4e-6,), (8e-6,)).classification == "normaal"


@pytest.mark.parametrize("typology", ["urm_terraced_pre1920", "urm_detached_cavity", "calcium_silicate_terraced", "farmhouse", "rc_frame", "timber_frame"])
def test_risk_verdict_agrees_with_npr_verdict_in_clear_cases(typology):
    """A hazard curve H(a) = k0 a^-3 calibrated so that the IM of the 2475-yr spectrum has
    H = 1/2475: a building far on the safe side of NPR 9998 (UC < 0.5) meets the 1e-5 norm and
    one far on the unsafe side (UC > 2) does not. Clear cases are made by varying a_g;S."""
    cat = n.load_catalogue()
    t = cat.typology(typology)
    structure = t.structure()
    curve = t.pushover(structure)
    outcomes = []
    for ag in (0.02, 0.04, 0.08, 0.8, 1.5, 3.0):
        sp = n.SpectrumParameters(ag, 2.5, 0.1, 0.4, 1.5, return_period_yr=2475)
        r = n.n2_method(curve, structure, sp)
        if 0.5 <= r.unity_check <= 2.0:
            continue
        der = n.derive_building_fragility(curve, structure, sp, p_death_inside=t.p_death_inside, p_death_outside=t.p_death_outside)
        k = 3.0
        k0 = der.im_reference_g**k / 2475.0
        v = n.risk_verdict(None, 1.0, 2.0, der.fragility, lpr_function=make_fake_lpr(k0, k))
        assert v.voldoet == r.passes, (ag, r.unity_check, v.lpr_mean_max)
        outcomes.append(r.passes)
    assert True in outcomes and False in outcomes  # at least one clear pass and one clear fail


def test_building_fragility_fields_are_the_contract():
    import dataclasses

    assert [f.name for f in dataclasses.fields(n.BuildingFragility)] == ["median_g", "beta", "p_death_inside", "p_death_outside", "imt"]
    import inspect

    assert list(inspect.signature(n.assess.risk_verdict).parameters)[:5] == ["cfg", "x_rd", "y_rd", "fragility", "zone"]
