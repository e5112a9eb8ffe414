"""The building histogram's distance rule (``[source] distance_interpolation``), end to end.

Independent references: a death table that is a cubic polynomial in ln R is reproduced exactly
by the cubic (4-point Lagrange) rule wherever the source lies between the nodes, but not by the
linear one (closed form at the building's exact distance); and on a smooth table the cubic rule with
half the nodes is closer to the finely resolved answer than the linear rule with all of them
(the h^4 against h^2 orders).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hra.integration import kernels

DEPTH_KM, R_MAX_KM = 3.0, 40.0


def _lpr_of(table_of_ln_r, n_r: int, cubic: bool, d_km: np.ndarray, rate: np.ndarray) -> float:
    """sum_c rate_c * interpolated table at R_hyp(c) through the kernel's histogram (one building at the
    origin, one source cell per distance, no sub-cells)."""
    r = np.exp(np.linspace(math.log(DEPTH_KM), math.log(R_MAX_KM), n_r))
    hist = np.zeros((n_r, 1))
    kernels.distance_histogram(0.0, 0.0, d_km * 1000.0, np.zeros_like(d_km), rate[:, None].copy(), DEPTH_KM,
                               math.log(r[0]), math.log(r[1] / r[0]), n_r, R_MAX_KM, 1000.0, 0.0, 1, hist, cubic)
    return float(hist[:, 0] @ table_of_ln_r(np.log(r)))


def _exact(table_of_ln_r, d_km, rate) -> float:
    return float(rate @ table_of_ln_r(np.log(np.sqrt(d_km**2 + DEPTH_KM**2))))


def test_cubic_rule_reproduces_a_cubic_table_exactly_and_linear_does_not():
    rng = np.random.default_rng(3)
    d_km = rng.uniform(0.0, 39.0, 200)  # the first and last intervals included (quadratic there)
    rate = rng.uniform(0.1, 1.0, 200)

    def cubic(x):
        return 1.0 + 0.3 * x - 0.2 * x**2 + 0.05 * x**3

    def quadratic(x):
        return 2.0 - 0.4 * x + 0.1 * x**2

    for n_r in (12, 40):
        # a quadratic is exact everywhere, also in the end intervals' 3-point rule
        assert _lpr_of(quadratic, n_r, True, d_km, rate) == pytest.approx(_exact(quadratic, d_km, rate), rel=1e-12)
        inner = (np.sqrt(d_km**2 + DEPTH_KM**2) > np.exp(math.log(DEPTH_KM) + math.log(R_MAX_KM / DEPTH_KM) / (n_r - 1)))
        inner &= np.sqrt(d_km**2 + DEPTH_KM**2) < R_MAX_KM * math.exp(-math.log(R_MAX_KM / DEPTH_KM) / (n_r - 1))
        got = _lpr_of(cubic, n_r, True, d_km[inner], rate[inner])
        assert got == pytest.approx(_exact(cubic, d_km[inner], rate[inner]), rel=1e-12)
        lin = _lpr_of(cubic, n_r, False, d_km[inner], rate[inner])
        assert abs(lin / _exact(cubic, d_km[inner], rate[inner]) - 1) > 1e-5  # linear: O(h^2), visibly off


def test_cubic_with_half_the_nodes_beats_linear_on_a_steep_table():
    """A table falling like R^-6 (ln q linear in ln R, as a collapse probability with distance): the
    error of 24-node cubic is smaller than that of 48-node linear; both converge at their order."""
    rng = np.random.default_rng(4)
    d_km = rng.uniform(0.0, 38.0, 300)
    rate = rng.uniform(0.1, 1.0, 300)

    def steep(x):
        return np.exp(-6.0 * x)

    exact = _exact(steep, d_km, rate)
    err = {(n, c): abs(_lpr_of(steep, n, c, d_km, rate) / exact - 1) for n in (24, 48, 96) for c in (False, True)}
    assert err[(24, True)] < err[(48, False)]
    assert 3.0 < err[(48, False)] / err[(96, False)] < 6.0  # h^2 (intervals 47 -> 95: x4.1 asymptotically)
    assert err[(48, True)] / err[(96, True)] > 8.0  # h^4 (h^3 in the quadratic end intervals)
