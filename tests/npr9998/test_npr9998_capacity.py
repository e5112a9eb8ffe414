"""Capacity curves: validation rules, SDOF transformation, equal-energy bilinear idealisation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import npr9998 as n


def test_sdof_transformation_hand_values(two_storey, stiff_curve):
    # m* = 50*0.5 + 40*1.0 = 65 t; sum m Phi^2 = 50*0.25 + 40 = 52.5 t; Gamma = 65/52.5 = 1.238095
    assert two_storey.m_star_t == pytest.approx(65.0)
    assert two_storey.gamma == pytest.approx(65.0 / 52.5)
    sdof = n.sdof_transformation(stiff_curve, two_storey)
    np.testing.assert_allclose(sdof.base_shear_kn, stiff_curve.base_shear_kn / (65 / 52.5))
    np.testing.assert_allclose(sdof.roof_displacement_m, stiff_curve.roof_displacement_m / (65 / 52.5))


def test_bilinear_idealisation_hand_values(stiff_curve):
    # E_m = 0.5*0.012*240 + 0.018*(240+300)/2 + 0.03*300 = 1.44 + 4.86 + 9.0 = 15.3 kN m
    # F_y = 300 kN; d_y = 2*(0.06 - 15.3/300) = 2*(0.06 - 0.051) = 0.018 m
    b = n.bilinear_idealisation(stiff_curve)
    assert b.e_m_knm == pytest.approx(15.3)
    assert b.f_y_kn == pytest.approx(300.0)
    assert b.d_y_m == pytest.approx(0.018)
    assert b.d_m_m == pytest.approx(0.06)
    # idealised up to d_m = 0.03 m: E = 6.3, F_y = 300, d_y = 2*(0.03 - 0.021) = 0.018 m
    b2 = n.bilinear_idealisation(stiff_curve, 0.03)
    assert b2.e_m_knm == pytest.approx(6.3) and b2.d_y_m == pytest.approx(0.018)
    # an exactly bilinear curve is its own idealisation
    b3 = n.bilinear_idealisation(n.PushoverCurve.from_points([0.05, 0.15], [200.0, 200.0]))
    assert b3.d_y_m == pytest.approx(0.05) and b3.f_y_kn == pytest.approx(200.0)


@st.composite
def concave_curves(draw):
    """Concave polylines from the origin (slopes non-increasing), truncated before V < 0."""
    k = draw(st.integers(2, 8))
    dd = draw(st.lists(st.floats(1e-4, 0.05), min_size=k, max_size=k))
    slopes = sorted(draw(st.lists(st.floats(-3e3, 3e4), min_size=k, max_size=k)), reverse=True)
    assume(slopes[0] > 100.0)
    d = np.concatenate([[0.0], np.cumsum(dd)])
    v = np.concatenate([[0.0], np.cumsum(np.asarray(slopes) * np.asarray(dd))])
    neg = np.nonzero(v < 0)[0]
    if neg.size:
        d, v = d[: neg[0]], v[: neg[0]]
    assume(d.size >= 2 and v.max() > 0)
    return n.PushoverCurve.from_points(d, v)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(curve=concave_curves(), frac=st.floats(0.05, 1.0))
def test_bilinear_conserves_energy(curve, frac):
    """Area under the curve up to d_m equals the bilinear area F_y (d_m - d_y/2)."""
    d_m = max(frac * curve.ultimate_displacement_m, curve.roof_displacement_m[1] * 1e-3)
    b = n.bilinear_idealisation(curve, d_m)
    # independent area: trapezoid on the polyline cut at d_m
    d, v = curve.roof_displacement_m, curve.base_shear_kn
    keep = d < d_m
    dd = np.append(d[keep], d_m)
    vv = np.append(v[keep], np.interp(d_m, d, v))
    area = float(np.sum(0.5 * (vv[1:] + vv[:-1]) * np.diff(dd)))
    assert b.e_m_knm == pytest.approx(area, rel=1e-9)
    assert b.energy_knm == pytest.approx(area, rel=1e-9)
    assert 0 < b.d_y_m <= b.d_m_m * (1 + 1e-9)
    assert b.f_y_kn == pytest.approx(max(vv.max(), 0.0))


def test_origin_is_prepended_and_queries():
    c = n.PushoverCurve.from_points([0.01, 0.02, 0.04], [100.0, 150.0, 110.0])
    assert c.roof_displacement_m[0] == 0 and c.base_shear_kn[0] == 0
    assert c.peak_shear_kn == 150.0 and c.ultimate_displacement_m == 0.04
    # 20 % drop: level 120 kN between (0.02, 150) and (0.04, 110): d = 0.02 + 30/40*0.02 = 0.035 m
    assert c.displacement_at_strength_drop(0.2) == pytest.approx(0.035)
    # no 50 % drop: last point
    assert c.displacement_at_strength_drop(0.5) == pytest.approx(0.04)


def test_pushover_csv_reading_with_aliases_and_decimal_comma(tmp_path):
    f = tmp_path / "po.csv"
    f.write_text("# exported by a FE program\nd_m;V_kN\n0,0;0,0\n0,012;240\n0,03;300\n0,06;300\n")
    c = n.load_pushover_csv(f)
    np.testing.assert_allclose(c.roof_displacement_m, [0, 0.012, 0.03, 0.06])
    np.testing.assert_allclose(c.base_shear_kn, [0, 240, 300, 300])


@pytest.mark.parametrize(
    "body, words",
    [
        ("roof_displacement_m,base_shear_kn\n0,0\n0.02,100\n0.02,120\n", ["row 4", "not increasing"]),
        ("roof_displacement_m,base_shear_kn\n0,0\n0.02,100\n0.01,120\n", ["row 4", "not increasing", "sort"]),
        ("roof_displacement_m,base_shear_kn\n0,0\n0.02,100\n0.03,-5\n", ["row 4", "negative base shear"]),
        ("roof_displacement_m,base_shear_kn\n0,10\n0.02,100\n", ["row 2", "zero displacement"]),
        ("roof_displacement_m,base_shear_kn\n0,0\n0.02,abc\n", ["row 3", "'base_shear_kn'", "not a number"]),
        ("roof_displacement_m,base_shear_kn\n0,0\n-0.01,5\n", ["row 3", "negative roof displacement"]),
        ("displacement,force\n0,0\n", ["required column", "roof_displacement_m"]),
        ("roof_displacement_m,base_shear_kn\n0,0\n0.01,0\n", ["peak base shear"]),
    ],
)
def test_bad_pushover_files_give_clear_errors(tmp_path, body, words):
    f = tmp_path / "po.csv"
    f.write_text(body)
    with pytest.raises(n.NPRInputError) as exc:
        n.load_pushover_csv(f)
    msg = str(exc.value)
    assert "po.csv" in msg and "Fix:" in msg
    for w in words:
        assert w in msg


@pytest.mark.parametrize(
    "masses, phi, heights, words",
    [
        ([50.0, -40.0], [0.5, 1.0], None, ["storey mass 2", "> 0"]),
        ([50.0, 40.0], [0.5, 2.0], None, ["not normalised", "divide"]),
        ([50.0, 40.0], [1.0], None, ["mode-shape"]),
        ([50.0, 40.0], [0.5, 1.0], [6.0, 3.0], ["increasing"]),
    ],
)
def test_bad_structure_inputs(masses, phi, heights, words):
    with pytest.raises(n.NPRInputError) as exc:
        n.StructureModel(masses, phi, heights, source="b.toml")
    for w in words:
        assert w in str(exc.value)
    assert "b.toml" in str(exc.value)


def test_degrading_curve_idealisation_is_refused_with_advice():
    # peak 100 kN at 0.01 m, falling linearly to 1 kN at 0.3 m:
    # area = 0.5*0.01*100 + 0.29*(100+1)/2 = 15.145 >= F_y d_m/2 = 100*0.3/2 = 15 -> still valid
    c = n.PushoverCurve.from_points([0.01, 0.3], [100.0, 1.0])
    b = n.bilinear_idealisation(c)  # 15.145 >= 15: still valid
    assert b.d_y_m <= b.d_m_m
    # sharp drop to 20 kN at 0.02 m: area = 0.5 + 0.01*60 + 0.28*10.5 = 4.04 < 15 -> d_y* > d_m*, refused
    c2 = n.PushoverCurve.from_points([0.01, 0.02, 0.3], [100.0, 20.0, 1.0])
    with pytest.raises(n.NPRInputError, match="strength_drop"):
        n.bilinear_idealisation(c2)
