"""Spectra: values hand-computed at every branch and at the corners.

Reference spectrum (fixture ``spectrum``): a_g;S = 0.2 g, p = 2.5, T_B = 0.1 s, T_C = 0.4 s,
T_D = 2.0 s, 5 % damping so eta = sqrt(10 / (5 + 5)) = 1.

Hand computation of S_e (npr9998.elastic_spectrum):
  T = 0      : 0.2 * (1 + 0)                          = 0.2
  T = 0.05   : 0.2 * (1 + 0.05/0.1 * (1*2.5 - 1))     = 0.2 * 1.75 = 0.35
  T = T_B    : 0.2 * (1 + 1 * 1.5) = 0.5  and plateau 0.2 * 1 * 2.5 = 0.5 (continuous)
  T = 0.25   : plateau                                 = 0.5
  T = T_C    : 0.5 and 0.5 * 0.4/0.4 = 0.5 (continuous)
  T = 1.0    : 0.5 * 0.4 / 1.0                         = 0.2
  T = T_D    : 0.5 * 0.4 / 2.0 = 0.1 and 0.5 * 0.4 * 2.0 / 2.0**2 = 0.1 (continuous)
  T = 3.0    : 0.5 * 0.4 * 2.0 / 9                     = 0.0444444...
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npr9998 as n
from npr9998.spectrum import G

SHAPE = (0.2, 2.5, 0.1, 0.4, 2.0)

HAND = [
    (0.0, 0.2),
    (0.05, 0.35),
    (0.1, 0.5),
    (0.25, 0.5),
    (0.4, 0.5),
    (1.0, 0.2),
    (2.0, 0.1),
    (3.0, 0.2 * 2.5 * 0.4 * 2.0 / 9.0),
]


@pytest.mark.parametrize("period, expected", HAND)
def test_elastic_spectrum_hand_values(period, expected):
    assert n.elastic_spectrum(period, *SHAPE) == pytest.approx(expected, rel=1e-12)


def test_elastic_spectrum_array_in_array_out_scalar_in_float_out():
    t = np.array([p for p, _ in HAND])
    out = n.elastic_spectrum(t, *SHAPE)
    assert isinstance(out, np.ndarray) and out.shape == t.shape
    np.testing.assert_allclose(out, [e for _, e in HAND], rtol=1e-12)
    assert isinstance(n.elastic_spectrum(0.3, *SHAPE), float)
    # keyword form of the public contract
    assert n.elastic_spectrum(period_s=0.3, ag_s_g=0.2, p=2.5, t_b=0.1, t_c=0.4, t_d=2.0, damping=0.05) == pytest.approx(0.5)


@pytest.mark.parametrize("corner", [0.1, 0.4, 2.0])
def test_elastic_spectrum_continuous_at_corners(corner):
    eps = 1e-9
    lo, hi = n.elastic_spectrum([corner - eps, corner + eps], *SHAPE)
    assert lo == pytest.approx(hi, rel=1e-7)


def test_damping_correction_hand_values():
    # eta = sqrt(10 / (5 + xi[%])): 10 % -> sqrt(10/15) = 0.816497; 2 % -> sqrt(10/7) = 1.195229
    assert n.damping_correction(0.05) == pytest.approx(1.0)
    assert n.damping_correction(0.10) == pytest.approx(math.sqrt(10 / 15))
    assert n.damping_correction(0.02) == pytest.approx(math.sqrt(10 / 7))
    # 30 %: sqrt(10/35) = 0.5345 < 0.55 -> floor 0.55 (EN 1998-1 §3.2.2.2(3))
    assert n.damping_correction(0.30) == pytest.approx(0.55)


def test_elastic_spectrum_with_damping_hand_values():
    eta = math.sqrt(10 / 15)  # 10 % damping
    # plateau: 0.2 * 0.816497 * 2.5 = 0.408248
    assert n.elastic_spectrum(0.3, *SHAPE, damping=0.10) == pytest.approx(0.2 * eta * 2.5)
    # first branch at T = 0.05: 0.2 * (1 + 0.5 * (2.5 eta - 1)) = 0.304124
    assert n.elastic_spectrum(0.05, *SHAPE, damping=0.10) == pytest.approx(0.2 * (1 + 0.5 * (2.5 * eta - 1)))
    # PGA is not reduced by damping: S_e(0) = a_g;S
    assert n.elastic_spectrum(0.0, *SHAPE, damping=0.10) == pytest.approx(0.2)
    # eta floor: 30 % damping -> plateau 0.2 * 0.55 * 2.5 = 0.275
    assert n.elastic_spectrum(0.3, *SHAPE, damping=0.30) == pytest.approx(0.275)


def _en1998_type1(t, ag, s, tb, tc, td, eta=1.0):
    """EN 1998-1 eqs. 3.2-3.5 written out independently, with the fixed 2.5."""
    if t <= tb:
        return ag * s * (1 + t / tb * (eta * 2.5 - 1))
    if t <= tc:
        return ag * s * eta * 2.5
    if t <= td:
        return ag * s * eta * 2.5 * tc / t
    return ag * s * eta * 2.5 * tc * td / t**2


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    t=st.floats(0.0, 6.0),
    ag=st.floats(0.01, 0.5),
    s=st.floats(1.0, 1.8),
    tb=st.floats(0.05, 0.3),
    dtc=st.floats(0.05, 0.6),
    dtd=st.floats(0.2, 2.0),
    xi=st.floats(0.01, 0.3),
)
def test_reduces_to_en1998_with_ags_equal_ag_s_and_p_equal_2_5(t, ag, s, tb, dtc, dtd, xi):
    tc, td = tb + dtc, tb + dtc + dtd
    eta = max(math.sqrt(10 / (5 + 100 * xi)), 0.55)
    expected = _en1998_type1(t, ag, s, tb, tc, td, eta)
    assert n.elastic_spectrum(t, ag * s, 2.5, tb, tc, td, damping=xi) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_displacement_spectrum_hand_values():
    # S_De(1 s) = 0.2 g * 9.80665 * (1/2pi)^2 = 1.96133 * 0.0253303 = 0.0496811 m
    assert n.elastic_displacement_spectrum(1.0, *SHAPE) == pytest.approx(0.2 * 9.80665 / (4 * math.pi**2))
    assert n.elastic_displacement_spectrum(1.0, *SHAPE) == pytest.approx(0.0496811, rel=1e-6)
    # beyond T_D: S_e T^2 = 0.5 * 0.4 * 2 = 0.4 g s^2 -> S_De = 0.4 * 9.80665 / 39.4784 = 0.0993621 m for all T
    for t in (2.5, 3.0, 5.0):
        assert n.elastic_displacement_spectrum(t, *SHAPE) == pytest.approx(0.0993621, rel=1e-6)
    assert n.elastic_displacement_spectrum(0.0, *SHAPE) == 0.0


def test_adrs_points_lie_on_radial_period_lines():
    t = np.array([0.2, 0.5, 1.0])
    sd, sa = n.adrs(t, *SHAPE)
    # S_a [g] * g = (2 pi / T)^2 S_d
    np.testing.assert_allclose(sa * G, (2 * np.pi / t) ** 2 * sd, rtol=1e-12)


def test_design_spectrum_hand_values():
    # q = 1.5, beta = 0.2: floor = 0.2 * 0.2 = 0.04 g
    q = 1.5
    cases = [
        (0.0, 0.2 * 2 / 3),  # 0.13333
        (0.05, 0.2 * (2 / 3 + 0.5 * (2.5 / 1.5 - 2 / 3))),  # 0.2 * 1.16667 = 0.23333
        (0.1, 0.2 * 2.5 / 1.5),  # 0.33333
        (0.4, 0.2 * 2.5 / 1.5),
        (1.0, 0.2 * 2.5 / 1.5 * 0.4),  # 0.13333
        (2.0, 0.2 * 2.5 / 1.5 * 0.4 / 2.0),  # 0.066667
        (3.0, 0.04),  # 0.33333 * 0.8 / 9 = 0.0296 < 0.04: lower bound
        (4.0, 0.04),  # 0.0167 < 0.04
    ]
    for t, expected in cases:
        assert n.design_spectrum(t, *SHAPE, q=q) == pytest.approx(expected, rel=1e-12), t
    assert n.design_spectrum(4.0, *SHAPE, q=q, beta=0.0) == pytest.approx(0.2 * 2.5 / 1.5 * 0.4 * 2.0 / 16)


def test_spectrum_parameters_and_scaling(spectrum):
    assert spectrum.sa_g(0.3) == pytest.approx(0.5)
    assert spectrum.scaled(2.0).sa_g(1.0) == pytest.approx(0.4)
    assert spectrum.scaled(2.0).return_period_yr == 2475


@pytest.mark.parametrize(
    "args, word",
    [
        ((0.2, 2.5, 0.5, 0.4, 2.0), "T_B <= T_C"),
        ((0.2, 2.5, 0.0, 0.4, 2.0), "T_B <= T_C"),
        ((-0.1, 2.5, 0.1, 0.4, 2.0), "ag_s_g"),
        ((0.2, 0.0, 0.1, 0.4, 2.0), "plateau factor"),
        ((0.2, float("nan"), 0.1, 0.4, 2.0), "finite"),
    ],
)
def test_bad_spectrum_parameters_are_rejected(args, word):
    with pytest.raises(n.NPRInputError, match=word):
        n.elastic_spectrum(0.3, *args)


def test_bad_period_and_damping_are_rejected():
    with pytest.raises(n.NPRInputError, match="periods"):
        n.elastic_spectrum(-0.1, *SHAPE)
    with pytest.raises(n.NPRInputError, match="fraction"):
        n.elastic_spectrum(0.3, *SHAPE, damping=5.0)
    with pytest.raises(n.NPRInputError, match="q"):
        n.design_spectrum(0.3, *SHAPE, q=0.8)


def test_hazard_record_csv_and_return_period_selection(tmp_path):
    f = tmp_path / "webtool.csv"
    f.write_text("location_id;TR;agS;p;TB;TC;TD\nL1;475;0,10;2,5;0,1;0,4;2,0\nL1;2475;0,20;2,5;0,1;0,4;2,0\nL2;2475;0,30;2,4;0,1;0,35;1,5\n")
    rec = n.load_hazard_record(f, "L1")
    assert rec.return_periods == (475.0, 2475.0)
    sp = rec.spectrum_for(2475, importance_factor=1.2)
    assert sp.ag_s_g == pytest.approx(0.24) and sp.importance_factor == 1.2 and sp.return_period_yr == 2475
    with pytest.raises(n.NPRInputError, match="975 yr is required"):
        rec.spectrum_for(975)
    with pytest.raises(n.NPRInputError, match="no location was chosen"):
        n.load_hazard_record(f)


def test_hazard_record_bad_row_names_file_row_and_column(tmp_path):
    f = tmp_path / "webtool.csv"
    f.write_text("return_period_yr,ag_s_g,p,t_b_s,t_c_s,t_d_s\n2475,0.2,2.5,0.1,0.4,2.0\n4975,0.3,abc,0.1,0.4,2.0\n")
    with pytest.raises(n.NPRInputError) as exc:
        n.load_hazard_record(f)
    msg = str(exc.value)
    assert "webtool.csv" in msg and "row 3" in msg and "'p'" in msg and "Fix:" in msg


def test_public_signature_of_elastic_spectrum_is_the_contract():
    import inspect

    sig = inspect.signature(n.elastic_spectrum)
    assert list(sig.parameters) == ["period_s", "ag_s_g", "p", "t_b", "t_c", "t_d", "damping"]
    assert sig.parameters["damping"].default == 0.05
