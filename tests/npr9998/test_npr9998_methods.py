"""Assessment methods: N2 hand-worked examples with every intermediate quantity, the
capacity-spectrum method, the lateral force method, and monotonicity.

N2 example 1 (short period, inelastic), EN 1998-1 Annex B step by step
------------------------------------------------------------------------
Building: storey masses m = (50, 40) t, mode shape Phi = (0.5, 1.0), levels at 3 m and 6 m.
Pushover: (0, 0), (0.012 m, 240 kN), (0.030 m, 300 kN), (0.060 m, 300 kN).
Spectrum: a_g;S = 0.2 g, p = 2.5, T_B = 0.1 s, T_C = 0.4 s, T_D = 2.0 s, 5 % (eta = 1).

B.2  m* = 50*0.5 + 40*1.0 = 65 t
     sum m Phi^2 = 50*0.25 + 40*1 = 52.5 t
     Gamma = 65 / 52.5 = 1.238095
B.3  MDOF area to d_m = 0.06 m: 0.5*0.012*240 + 0.018*270 + 0.03*300 = 1.44 + 4.86 + 9.00 = 15.3 kN m
     F_y = 300 kN, d_y = 2*(0.06 - 15.3/300) = 0.018 m   (SDOF: divide both by Gamma)
     F_y* = 300/1.238095 = 242.3077 kN, d_y* = 0.018/1.238095 = 0.0145385 m
B.4  T* = 2 pi sqrt(m* d_y*/F_y*) = 2 pi sqrt(65 * 0.018/300) = 2 pi sqrt(0.0039) = 0.392385 s
B.5  T* < T_C: S_e(T*) = plateau = 0.5 g
     d_et* = 0.5 * 9.80665 * 0.0039 = 0.0191230 m          ((T*/2 pi)^2 = 0.0039 s^2)
     q_u = S_e m*/F_y* = 0.5 * 9.80665 * 65 / 242.3077 = 1.315336 > 1 -> inelastic
     d_t* = d_et*/q_u * (1 + (q_u - 1) T_C/T*) = 0.014538 * (1 + 0.315336 * 1.019406) = 0.0192119 m
     check: d_et*/q_u = d_y* (EPP); d_et* <= d_t* = 1.0047 d_et* <= 3 d_et*
B.6  d_t = Gamma d_t* = 1.238095 * 0.0192119 = 0.0237862 m
NC:  ultimate displacement 0.06 m -> unity check 0.0237862/0.06 = 0.396437 -> passes.

N2 example 2 (equal displacement)
---------------------------------
Pushover exactly bilinear (0,0), (0.05 m, 200 kN), (0.15 m, 200 kN); same building/spectrum.
     area = 0.5*0.05*200 + 0.1*200 = 25 kN m; d_y = 2*(0.15 - 25/200) = 0.05 m (the curve itself)
     d_y*/F_y* = 0.05/200 = 2.5e-4 m/kN;  T* = 2 pi sqrt(65 * 2.5e-4) = 2 pi sqrt(0.01625) = 0.800952 s > T_C
     S_e(T*) = 0.5 * 0.4/0.800952 = 0.249703 g
     d_et* = 0.249703 * 9.80665 * 0.01625 = 0.0397922 m = d_t*   (B.10, T* >= T_C)
     q_u = 0.249703 * 9.80665 * 65 / (200/1.238095) = 0.985330
     d_t = 1.238095 * 0.0397922 = 0.0492665 m; UC = 0.0492665/0.15 = 0.328443
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npr9998 as n


def test_n2_short_period_hand_worked(stiff_curve, two_storey, spectrum):
    r = n.n2_method(stiff_curve, two_storey, spectrum)
    assert r.gamma == pytest.approx(1.238095, rel=1e-6)
    assert r.m_star_t == pytest.approx(65.0)
    assert r.f_y_star_kn == pytest.approx(242.3077, rel=1e-6)
    assert r.d_y_star_m == pytest.approx(0.0145385, rel=1e-5)
    assert r.e_m_star_knm == pytest.approx(15.3 / 1.238095**2, rel=1e-6)
    assert r.t_star_s == pytest.approx(0.392385, rel=1e-5)
    assert r.se_t_star_g == pytest.approx(0.5)
    assert r.d_et_star_m == pytest.approx(0.0191230, rel=1e-5)
    assert r.q_u == pytest.approx(1.315336, rel=1e-6)
    assert r.d_t_star_m == pytest.approx(0.0192119, rel=1e-5)
    assert r.d_t_m == pytest.approx(0.0237862, rel=1e-5)
    assert r.regime == "short-period inelastic" and not r.capped
    assert r.unity_check == pytest.approx(0.396437, rel=1e-5)
    assert r.passes
    assert r.governing.startswith("roof displacement vs ultimate")
    assert r.performance_point_sd_m == r.d_t_star_m
    assert r.performance_point_sa_g == pytest.approx(242.3077 / (65 * 9.80665), rel=1e-6)
    # every result records the tables used
    assert r.provisional is True and r.edition and r.table_version


def test_n2_equal_displacement_hand_worked(soft_curve, two_storey, spectrum):
    r = n.n2_method(soft_curve, two_storey, spectrum)
    assert r.d_y_star_m == pytest.approx(0.05 / 1.238095, rel=1e-6)
    assert r.t_star_s == pytest.approx(0.800952, rel=1e-6)
    assert r.se_t_star_g == pytest.approx(0.249703, rel=1e-5)
    assert r.d_et_star_m == pytest.approx(0.0397922, rel=1e-5)
    assert r.q_u == pytest.approx(0.985330, rel=1e-5)
    assert r.d_t_star_m == r.d_et_star_m
    assert r.regime == "equal displacement"
    assert r.d_t_m == pytest.approx(0.0492665, rel=1e-5)
    assert r.unity_check == pytest.approx(0.328443, rel=1e-5)


def test_n2_target_displacement_cap_and_elastic_branches():
    # T* = 0.1 s, T_C = 0.4 s, S_e = 1.0 g, F_y*/m* = 0.1 g -> q_u = 10
    # d_et* = 1.0 * 9.80665 * (0.1/2pi)^2 = 0.00248405 m
    # uncapped d_t* = d_et*/10 * (1 + 9 * 4) = 3.7 d_et* = 0.00919100 m > 3 d_et* = 0.00745216 m -> capped
    d_et, q_u, d_t, regime, capped = n.n2_target_displacement(1.0, 0.1, 0.4, 0.1 * 9.80665 * 10.0, 10.0)
    assert d_et == pytest.approx(0.00248405, rel=1e-5)
    assert q_u == pytest.approx(10.0)
    assert d_t == pytest.approx(0.00745216, rel=1e-5) and capped
    d_t_nocap = n.n2_target_displacement(1.0, 0.1, 0.4, 0.1 * 9.80665 * 10.0, 10.0, cap_factor=None)[2]
    assert d_t_nocap == pytest.approx(0.00919100, rel=1e-5)
    # strong system: q_u = 0.5 <= 1 -> elastic, d_t* = d_et*
    d_et, q_u, d_t, regime, capped = n.n2_target_displacement(1.0, 0.1, 0.4, 2.0 * 9.80665 * 10.0, 10.0)
    assert regime == "elastic" and d_t == d_et and q_u == pytest.approx(0.5)


def test_n2_drift_check_and_governing(stiff_curve, two_storey, spectrum):
    # drift limit 0.003 on H = 6 m: capacity 0.018 m < 0.06 m -> the drift check governs
    r = n.n2_method(stiff_curve, two_storey, spectrum, displacement_capacity="governing", drift_limit=0.003)
    assert len(r.checks) == 2
    assert r.governing == "roof drift vs near-collapse drift limit"
    assert r.unity_check == pytest.approx(0.0237862 / 6.0 / 0.003, rel=1e-5)
    assert not r.passes
    # explicit capacity in metres
    r2 = n.n2_method(stiff_curve, two_storey, spectrum, displacement_capacity=0.02)
    assert r2.unity_check == pytest.approx(0.0237862 / 0.02, rel=1e-5)
    with pytest.raises(n.NPRInputError, match="unknown displacement capacity"):
        n.n2_method(stiff_curve, two_storey, spectrum, displacement_capacity="collapse")
    with pytest.raises(n.NPRInputError, match="level heights"):
        n.n2_method(stiff_curve, n.StructureModel([50.0, 40.0], [0.5, 1.0]), spectrum, displacement_capacity="drift", drift_limit=0.01)


def test_n2_iteration_converges_to_self_consistent_idealisation(stiff_curve, two_storey, spectrum):
    r = n.n2_method(stiff_curve, two_storey, spectrum.scaled(0.6), iterate=True)
    assert r.iterations > 1
    # at convergence the idealisation ends at the target displacement (B.5(5))
    assert r.d_m_star_m == pytest.approx(r.d_t_star_m, rel=1e-5)


def test_atc40_and_fema440_effective_damping_hand_values():
    # ATC-40, EPP at mu = 2: beta_0 = 0.637 * (1 - 1/2) = 0.3185
    #  A: kappa = 1.13 - 0.51*0.5 = 0.875 -> 0.875*0.3185 + 0.05 = 0.3286875
    #  B: kappa = 0.845 - 0.446*0.5 = 0.622 -> 0.248107
    #  C: kappa = 0.33 -> 0.155105
    assert n.atc40_effective_damping(2.0, "A") == pytest.approx(0.3286875)
    assert n.atc40_effective_damping(2.0, "B") == pytest.approx(0.248107)
    assert n.atc40_effective_damping(2.0, "C") == pytest.approx(0.155105)
    # mu = 1.2: beta_0 = 0.637/6 = 0.106167 below both thresholds: A 1.0 -> 0.156167; B 0.67 -> 0.121132
    assert n.atc40_effective_damping(1.2, "A") == pytest.approx(0.1561667, rel=1e-6)
    assert n.atc40_effective_damping(1.2, "B") == pytest.approx(0.1211317, rel=1e-6)
    assert n.atc40_effective_damping(1.0, "B") == pytest.approx(0.05)
    # FEMA 440: mu = 2: beta = 4.9 - 1.1 + 5 = 8.8 %, T_eff/T_0 = 0.2 - 0.038 + 1 = 1.162
    assert n.fema440_effective_parameters(2.0) == pytest.approx((0.088, 1.162))
    # mu = 5: beta = 14 + 0.32*4 + 5 = 20.28 %, ratio = 0.28 + 0.13*4 + 1 = 1.80
    assert n.fema440_effective_parameters(5.0) == pytest.approx((0.2028, 1.80))
    # mu = 9: ratio = 0.89*(sqrt(8/1.35) - 1) + 1 = 2.276547; beta = 19*(4.12/5.12^2)*ratio^2 + 5 = 20.4762 %
    b, r = n.fema440_effective_parameters(9.0)
    assert r == pytest.approx(2.276547, rel=1e-6) and b == pytest.approx(0.204762, rel=1e-5)


@pytest.mark.parametrize("procedure", ["atc40", "fema440"])
def test_csm_performance_point_is_self_consistent(stiff_curve, two_storey, spectrum, procedure):
    sp = spectrum.scaled(2.0)
    r = n.capacity_spectrum_method(stiff_curve, two_storey, sp, procedure=procedure, behaviour_type="B")
    assert not r.elastic and r.mu > 1
    # on the EPP plateau, and the damped demand at the period used equals d_p*
    assert r.sa_p_g == pytest.approx(r.f_y_star_kn / (r.m_star_t * 9.80665))
    assert float(sp.sd_m(r.period_used_s, damping=r.beta_eff)) == pytest.approx(r.sd_p_star_m, rel=1e-8)
    if procedure == "atc40":
        assert r.period_used_s == pytest.approx(2 * math.pi * math.sqrt(r.sd_p_star_m / (r.sa_p_g * 9.80665)))
        assert r.beta_eff == pytest.approx(n.atc40_effective_damping(r.mu, "B"))
    assert r.d_t_m == pytest.approx(r.gamma * r.sd_p_star_m)
    assert r.eta == pytest.approx(n.damping_correction(r.beta_eff))


def test_csm_elastic_case(stiff_curve, two_storey, spectrum):
    sp = spectrum.scaled(0.2)  # plateau 0.1 g < a_y = 0.38 g
    r = n.capacity_spectrum_method(stiff_curve, two_storey, sp)
    assert r.elastic and r.mu == 1.0 and r.beta_eff == 0.05
    assert r.sd_p_star_m == pytest.approx(float(sp.sd_m(r.t_star_s)))


def test_csm_beyond_curve_fails(stiff_curve, two_storey, spectrum):
    r = n.capacity_spectrum_method(stiff_curve, two_storey, spectrum.scaled(8.0))
    assert r.beyond_curve and not r.passes


def test_lateral_force_hand_values(spectrum):
    # S_d(0.3 s) = 0.2 * 2.5/1.5 = 0.333333 g; two storeys -> lambda = 1
    # F_b = 0.333333 * 9.80665 * 90 t = 294.1995 kN; V_R = 300 kN -> UC = 0.980665
    r = n.lateral_force_method(spectrum, total_mass_t=90.0, period_s=0.3, q=1.5, base_shear_capacity_kn=300.0, n_storeys=2)
    assert r.sd_g == pytest.approx(1 / 3) and r.lambda_factor == 1.0
    assert r.f_b_kn == pytest.approx(294.1995)
    assert r.unity_check == pytest.approx(0.980665) and r.passes and r.applicable
    # three storeys and T1 <= 2 T_C: lambda = 0.85 -> 250.069575 kN
    r3 = n.lateral_force_method(spectrum, total_mass_t=90.0, period_s=0.3, q=1.5, base_shear_capacity_kn=300.0, n_storeys=3)
    assert r3.lambda_factor == 0.85 and r3.f_b_kn == pytest.approx(250.069575)
    # T1 = 1.0 s > 2 T_C: lambda = 1; S_d = 0.333333 * 0.4 = 0.133333 g -> 117.6798 kN
    r4 = n.lateral_force_method(spectrum, total_mass_t=90.0, period_s=1.0, q=1.5, base_shear_capacity_kn=300.0, n_storeys=3)
    assert r4.lambda_factor == 1.0 and r4.f_b_kn == pytest.approx(117.6798)
    # T1 = 1.9 s > 4 T_C = 1.6 s: outside the range of application
    assert not n.lateral_force_method(spectrum, total_mass_t=90.0, period_s=1.9, q=1.5, base_shear_capacity_kn=300.0, n_storeys=3).applicable
    assert n.fundamental_period_estimate(16.0) == pytest.approx(0.4)  # 0.05 * 16^0.75 = 0.05 * 8
    with pytest.raises(n.NPRInputError, match="total_mass_t"):
        n.lateral_force_method(spectrum, total_mass_t=-1.0, period_s=0.3, q=1.5, base_shear_capacity_kn=300.0, n_storeys=2)


def test_results_serialise(stiff_curve, two_storey, spectrum):
    import json

    for r in (
        n.n2_method(stiff_curve, two_storey, spectrum),
        n.capacity_spectrum_method(stiff_curve, two_storey, spectrum),
        n.lateral_force_method(spectrum, total_mass_t=90.0, period_s=0.3, q=1.5, base_shear_capacity_kn=300.0, n_storeys=2),
    ):
        d = json.loads(json.dumps(r.to_dict()))
        assert {"demand", "capacity", "unity_check", "passes", "governing", "edition", "table_version", "checks"} <= set(d)


# --- monotonicity -------------------------------------------------------------------------

curves = st.tuples(
    st.floats(0.002, 0.03),  # d_1 (end of the elastic branch) [m]
    st.floats(50.0, 2000.0),  # V_1 [kN]
    st.floats(1.0, 1.5),  # V_peak / V_1
    st.floats(1.5, 8.0),  # d_u / d_1
    st.floats(0.7, 1.0),  # V_u / V_peak
)


def _curve(c):
    d1, v1, r_peak, r_du, r_vu = c
    dp = d1 * (1 + 0.5 * (r_du - 1))
    return n.PushoverCurve.from_points([d1, dp, d1 * r_du], [v1, v1 * r_peak, v1 * r_peak * r_vu])


@settings(max_examples=60, deadline=None, derandomize=True)
@given(c=curves, strength=st.floats(1.0, 3.0), scale=st.floats(0.05, 3.0), masses=st.lists(st.floats(10.0, 200.0), min_size=1, max_size=4))
def test_n2_more_strength_never_fails_where_less_passes(c, strength, scale, masses):
    k = len(masses)
    structure = n.StructureModel(masses, np.arange(1, k + 1) / k, 3.0 * np.arange(1, k + 1))
    sp = n.SpectrumParameters(0.2 * scale, 2.5, 0.1, 0.4, 2.0)
    weak = _curve(c)
    strong = weak.scaled(force_factor=strength)
    for cap in ("ultimate", "governing"):
        r_weak = n.n2_method(weak, structure, sp, displacement_capacity=cap, drift_limit=0.01)
        r_strong = n.n2_method(strong, structure, sp, displacement_capacity=cap, drift_limit=0.01)
        assert r_strong.unity_check <= r_weak.unity_check * (1 + 1e-9)
        if r_weak.passes:
            assert r_strong.passes


@settings(max_examples=60, deadline=None, derandomize=True)
@given(c=curves, s1=st.floats(0.05, 3.0), factor=st.floats(1.0, 3.0))
def test_n2_more_demand_never_passes_where_less_fails(c, s1, factor):
    structure = n.StructureModel([50.0, 40.0], [0.5, 1.0], [3.0, 6.0])
    sp = n.SpectrumParameters(0.2 * s1, 2.5, 0.1, 0.4, 2.0)
    curve = _curve(c)
    lo = n.n2_method(curve, structure, sp)
    hi = n.n2_method(curve, structure, sp.scaled(factor))
    assert hi.unity_check >= lo.unity_check * (1 - 1e-9)
    if not lo.passes:
        assert not hi.passes


@settings(max_examples=40, deadline=None, derandomize=True)
@given(v_r=st.floats(10.0, 5000.0), more=st.floats(1.0, 5.0), t1=st.floats(0.05, 2.0))
def test_lateral_force_more_capacity_never_fails_where_less_passes(v_r, more, t1):
    sp = n.SpectrumParameters(0.2, 2.5, 0.1, 0.4, 2.0)
    lo = n.lateral_force_method(sp, total_mass_t=100.0, period_s=t1, q=1.5, base_shear_capacity_kn=v_r, n_storeys=3)
    hi = n.lateral_force_method(sp, total_mass_t=100.0, period_s=t1, q=1.5, base_shear_capacity_kn=v_r * more, n_storeys=3)
    assert hi.unity_check <= lo.unity_check
    if lo.passes:
        assert hi.passes


def test_strength_drop_capacity_and_idealisation_end(two_storey, spectrum):
    # peak 300 kN at 0.03 m, then down to 200 kN at 0.07 m (linear).
    # 20 % drop (240 kN): d = 0.03 + 60/100*0.04 = 0.054 m;  40 % drop (180 kN): never -> last point 0.07 m
    c = n.PushoverCurve.from_points([0.012, 0.03, 0.07], [240.0, 300.0, 200.0])
    r20 = n.n2_method(c, two_storey, spectrum, displacement_capacity="strength_drop")
    assert r20.capacity == pytest.approx(0.054)
    assert r20.d_m_star_m == pytest.approx(0.054 / two_storey.gamma)  # idealised up to the NC point
    r40 = n.n2_method(c, two_storey, spectrum, displacement_capacity="strength_drop", strength_drop=0.4)
    assert r40.capacity == pytest.approx(0.07) and r40.d_m_star_m == pytest.approx(0.07 / two_storey.gamma)
