"""The rupture strike model of the finite-rupture distance (hra.gmm.rupture) and its config key.

The quadrature of R_rup given (M, R_hyp, relative azimuth a0) under a strike ~ N(mean, sd^2) is
checked against an independent dense integration written here from the geometry: the site at
epicentral distance r_e and angle a0 - eps from the actual strike (eps ~ N(0, sd^2), no folding),
the rupture the segment [-u L, (1 - u) L] on the strike line (u ~ U(0, 1), log10 L Gaussian
about Leonard's median), R_rup the distance from the site to that segment at the hypocentre depth.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import leggauss
from scipy.special import ndtr

from hra.gmm import rupture as ru


def dense_rrup(m, r_hyp, a0, sd_deg, depth=3.0):
    """Atoms and weights of R_rup by a tensor rule: Gauss-Hermite in eps (61) and log10 L (32),
    Gauss-Legendre in u (160)."""
    ze, we = hermegauss(61) if sd_deg > 0 else (np.zeros(1), np.ones(1))
    zl, wl = hermegauss(32)
    xu, wu = leggauss(160)
    u, wu = (xu + 1) / 2, wu / 2
    ang = np.deg2rad(a0 - sd_deg * ze)[:, None, None]
    length = (10 ** (0.5 * m + 1.0 - 3.0) * 10.0 ** (0.19 * zl))[None, :, None]  # Leonard below the hinge [km]
    r_e = math.sqrt(r_hyp**2 - depth**2)
    xs, ys = r_e * np.cos(ang), r_e * np.sin(ang)
    dx = np.maximum(0.0, np.maximum(xs - (1 - u) * length, -u * length - xs))
    rr = np.sqrt(dx**2 + ys**2 + depth**2)
    w = (we / we.sum())[:, None, None] * (wl / wl.sum())[None, :, None] * wu[None, None, :]
    return rr.reshape(-1), np.broadcast_to(w, rr.shape).reshape(-1)


def p_exceed(m, rr, level=0.0):
    """A simple ln-linear GMM: ln IM = -1 + (M - 5) - 1.5 ln(R / 5), sigma 0.6; P(ln IM > level)."""
    return ndtr((-1 + (m - 5.0) - 1.5 * np.log(rr / 5.0) - level) / 0.6)


CASES = [  # (M, R_hyp [km], a0 [deg], sd [deg]); M <= 5.4 keeps Leonard's small-rupture branch
    (5.4, 4.0, 0.0, 30.0), (5.4, 6.0, 45.0, 30.0), (5.2, 5.0, 90.0, 30.0), (5.4, 3.5, 20.0, 2.0),
    (5.0, 4.5, 80.0, 10.0), (5.4, 5.0, 60.0, 0.0),
]


@pytest.mark.parametrize("m, r_hyp, a0, sd", CASES)
def test_quadrature_against_dense_integration_over_strike(m, r_hyp, a0, sd):
    assert ru.leonard_rupture_length_km(m) == pytest.approx(10 ** (0.5 * m - 2.0))
    rr, w = dense_rrup(m, r_hyp, a0, sd)
    q = ru.rrup_quadrature(m, r_hyp, n_nodes=8, azimuth_deg=a0, strike_sd_deg=sd)
    x, wq = q.nodes_km[0, 0], q.weights[0, 0]
    lr, lq = np.log(rr), np.log(x)
    mean, mq = np.sum(w * lr), np.sum(wq * lq)
    sd_ref, sq = np.sqrt(np.sum(w * (lr - mean) ** 2)), np.sqrt(np.sum(wq * (lq - mq) ** 2))
    assert mq == pytest.approx(mean, abs=2e-4)
    assert sq == pytest.approx(sd_ref, rel=5e-3, abs=2e-4)
    for level in (-1.0, 0.0, 1.0, 2.0):  # P(IM > a) from ~0.9 down to ~1e-3
        assert np.sum(wq * p_exceed(m, x, level)) == pytest.approx(np.sum(w * p_exceed(m, rr, level)), rel=3e-3)


def test_the_strike_law_moves_r_rup_and_uniform_is_the_former_rule():
    # along strike the rupture reaches towards the site: shorter R_rup than perpendicular
    along = ru.rrup_log_moments(5.4, 5.0, azimuth_deg=0.0, strike_sd_deg=30.0)[0]
    across = ru.rrup_log_moments(5.4, 5.0, azimuth_deg=90.0, strike_sd_deg=30.0)[0]
    assert along < across - 0.03
    # "uniform" (azimuth None) ignores the sd and gives the former azimuth-averaged rule exactly
    a = ru.rrup_quadrature([4.0, 5.0], [3.5, 6.0], azimuth_deg=None, strike_sd_deg=30.0)
    b = ru.rrup_quadrature([4.0, 5.0], [3.5, 6.0])
    assert np.array_equal(a.nodes_km, b.nodes_km) and np.array_equal(a.weights, b.weights)
    # sd 0 is a fixed strike: the fixed-azimuth rule
    c = ru.rrup_quadrature(5.0, 5.0, azimuth_deg=30.0, strike_sd_deg=0.0)
    d = ru.rrup_quadrature(5.0, 5.0, azimuth_deg=30.0)
    assert np.array_equal(c.nodes_km, d.nodes_km)


@pytest.mark.parametrize("a0, sd", [(0.0, 30.0), (37.0, 30.0), (90.0, 10.0), (10.0, 120.0)])
def test_folded_azimuth_rule_is_the_folded_gaussian(a0, sd):
    """Means of |sin a| and |cos a|^3 under the rule against a dense trapezoid sum over eps (unfolded)."""
    nodes, w = ru.folded_azimuth_rule(a0, sd)
    assert np.all((nodes >= 0) & (nodes <= 90)) and w.sum() == pytest.approx(1.0)
    z = np.linspace(-9.0, 9.0, 200_001)
    wz = np.exp(-0.5 * z * z)
    wz /= wz.sum()
    for f in (lambda a: np.abs(np.sin(np.deg2rad(a))), lambda a: np.abs(np.cos(np.deg2rad(a))) ** 3):
        assert np.sum(w * f(nodes)) == pytest.approx(np.sum(wz * f(a0 - sd * z)), abs=2e-4)
    assert np.allclose(ru.fold_azimuth_deg([-30.0, 100.0, 190.0, 270.0]), [30.0, 80.0, 10.0, 90.0])


def test_config_rupture_strike():
    from pydantic import ValidationError

    from hra.config import GroundMotionGroningen, RuptureStrike

    gm = GroundMotionGroningen(model="groningen-v7")
    assert gm.rupture_strike == RuptureStrike(mean_deg=-30.0, sd_deg=30.0)
    assert GroundMotionGroningen(model="groningen-v6", rupture_strike="uniform").rupture_strike == "uniform"
    assert GroundMotionGroningen(model="groningen-v7", rupture_strike={"mean_deg": 10, "sd_deg": 0}).rupture_strike.sd_deg == 0
    for bad in ({"mean_deg": -30, "sd_deg": -1}, {"mean_deg": 200, "sd_deg": 30}, "normal", {"mean": -30}):
        with pytest.raises(ValidationError):
            GroundMotionGroningen(model="groningen-v7", rupture_strike=bad)
    # the presets get the Gaussian default; a bad value is a config error naming the key
    from hra.config import ConfigError, config_from_dict

    base = {"run": {"years": [2025]}, "source": {"rates": "r.csv", "magnitude": {"b_value": 1.0, "m_max": [{"value": 5.0, "weight": 1.0}]}},
            "exposure": {"buildings": "b.csv"}}
    for preset in ("groningen-v7", "groningen-v6", "psdra-2024"):
        cfg = config_from_dict(dict(base, model=preset), check_paths=False)
        assert cfg.ground_motion.rupture_strike == RuptureStrike(mean_deg=-30.0, sd_deg=30.0), preset
    with pytest.raises(ConfigError, match="rupture_strike"):
        config_from_dict(dict(base, model="groningen-v7", ground_motion={"rupture_strike": {"mean_deg": 0, "sd_deg": -5}}),
                         check_paths=False)


@pytest.mark.parametrize("a0, sd", [(0.0, 2.0), (45.0, 2.0), (90.0, 2.0), (20.0, 30.0)])
def test_event_based_ruptures_follow_the_strike_model(a0, sd):
    """The event simulation's ruptures (strike ~ N(mean, sd^2) per event, the kernel's distance to
    the line) against the integration's quadrature for a site at relative azimuth a0: mean of
    ln R_rup and P(IM > a) within 4.5 Monte-Carlo standard errors (40,000 events)."""
    from types import SimpleNamespace

    from hra.core.random import event_key, seed_key
    from hra.eventbased.groningen import RUP_LINE, SpectralStatic, rupture_distance2

    m, r_hyp, mean_deg, n = 5.4, 4.5, -30.0, 40_000
    keys = np.array([event_key(seed_key(11), i) for i in range(n)], dtype=np.uint64)
    rups = SpectralStatic.ruptures(SimpleNamespace(rup_mode=RUP_LINE, strike=(mean_deg, sd)), keys, np.full(n, m))
    r_e = math.sqrt(r_hyp**2 - 9.0)
    beta = math.radians(mean_deg + a0)  # site azimuth from north, seen from the epicentre
    dx, dy = r_e * math.sin(beta), r_e * math.cos(beta)
    assert ru.relative_azimuth_deg(dx, dy, mean_deg) == pytest.approx(a0)
    rr = np.sqrt([rupture_distance2(dx * c + dy * s_, dx * s_ - dy * c, r_e, 9.0, RUP_LINE, length, plus, 0.0, 1.0,
                                    np.uint64(0), np.uint64(0)) for length, c, s_, plus in rups])
    q = ru.rrup_quadrature(m, r_hyp, n_nodes=8, azimuth_deg=a0, strike_sd_deg=sd)
    x, w = q.nodes_km[0, 0], q.weights[0, 0]
    for f in (np.log, lambda r: p_exceed(m, r, 0.5)):
        v = f(rr)
        assert abs(np.sum(w * f(x)) - v.mean()) <= 4.5 * v.std() / math.sqrt(n) + 1e-12, (a0, sd)
    # and the uniform strike (rupture_strike = "uniform") is the former draw: another law here
    if sd < 5 and a0 in (0.0, 90.0):
        uni = ru.rrup_quadrature(m, r_hyp, n_nodes=8)
        assert abs(np.sum(uni.weights[0, 0] * np.log(uni.nodes_km[0, 0])) - np.log(rr).mean()) > 0.01


def test_openquake_nodal_planes_discretise_the_strike_law():
    from hra.openquake.export import nodal_plane_strikes, source_model_xml

    planes = nodal_plane_strikes((-30.0, 30.0))
    p = np.array([a for a, _ in planes])
    dev = (np.array([s for _, s in planes]) - 330.0 + 180.0) % 360.0 - 180.0  # about N30W = 330
    assert math.fsum(float(f"{x:.10g}") for x in p) == pytest.approx(1.0, abs=1e-12)
    assert np.sum(p * dev) == pytest.approx(0.0, abs=1e-9)
    assert np.sqrt(np.sum(p * dev**2)) == pytest.approx(30.0, rel=1e-5)
    assert nodal_plane_strikes(None) == [(1.0, 0.0)] and nodal_plane_strikes((-30.0, 0.0)) == [(1.0, 330.0)]
    xml = source_model_xml(np.array([6.7]), np.array([53.3]), np.array([0.1]), 1.0, 1.5, 5.0, nodal_planes=planes)
    assert xml.count("<nodalPlane ") == 5 and 'strike="330.000000"' in xml
