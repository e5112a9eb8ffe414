"""Groningen ground-motion model GMM-V7 (Bommer et al. 2021) with site response per zone.

Reference
---------
Bommer, J.J., Stafford, P.J., Ruigrok, E., Rodriguez-Marek, A., Ntinalexis, M., Kruiver, P.P.,
Edwards, B., Dost, B. & van Elk, J. (2021). *V7 Ground-Motion Model for Induced Seismicity in the
Groningen Gas Field.* NAM report, revision 1, October 2021. The equation numbers (9.x) below are
those of that report as cited by the public TNO implementation; the equations are restated in
docs/model-chain.md §3. Component-to-component variance: Stafford, P.J., Bommer, J.J. et al.
(2019) (docs/model-chain.md §3.2). Coefficient tables: TNO's transcription (EUPL-1.2), read at run time
from the model directory (:mod:`hra.inputs.modeldata`), never stored here.

Units
-----
The median tables give ln of Sa in **cm/s²**; everything this module returns is in **g**
(``ln g``), converted at the boundary with :data:`TABLE_G_CM_S2` = 981 cm/s² (the value the
tables and their site-amplification parameters use). The AF parameters ``f3``, ``xl``, ``xh`` are
in g and are always compared with the reference Sa **in g** (the public chain at ``dafa1a6``
compared ln Sa in cm/s² with ln xl, ln xh in g in its φ_S2S — docs/model-chain.md §8; not here).
Distances are km (R_rup for the equations; the engine interface takes R_hyp), periods s.

Model chain (per zone, period T, branch)
----------------------------------------
* reference (NS_B horizon, geometric mean) median ``ln Y = f_S(M) + f_P(R_rup, M, T)``, eq. 9.1-9.7;
* reference residual, arbitrary component: ``sigma^2 = tau^2 + phi_SS^2 + sigma_c2c^2(M, R, T)``,
  correlated across periods by the p2p matrix (applied to the total residual, as the chain does);
* surface: ``ln Sa = ln Y + ln AF(Y) + eps_S2S phi_S2S(Y) + delta_wierde(T)``,
  ``ln AF = clip(f1(M, R) + f2 ln((Y_g + f3)/f3), ln AFmin, ln AFmax)`` (eq. 9.12-9.14) and
  ``phi_S2S(Y_g)`` (eq. 9.15);
* IMs: ``ln AvgSa = mean over the 10 periods of ln Sa``, ``PGA = Sa(0.01 s)``, ``SA(T)`` at a tabulated period;
  arbitrary component by default, geometric mean with ``component="geometric_mean"`` (no c2c term).

Distribution of ln IM (the engine's :class:`~hra.gmm.base.GaussianMixture`)
----------------------------------------------------------------------------
:meth:`GroningenV7.ln_im_mixture` integrates deterministically, with no sampling, over

1. **R_rup given (M, R_hyp)**: a Gauss rule in ln R_rup (:func:`hra.gmm.rupture.rrup_quadrature`;
   up to ``n_rrup`` = 8 nodes, fewer where the spread of ln R_rup is small; azimuth-averaged, or
   per relative azimuth under a strike model ``rupture_strike`` (the engine's tables then get an
   azimuth axis, :mod:`hra.integration.condtables`); ``rupture="point"`` gives R_rup = R_hyp);
2. **the reference residual** (10 correlated periods). Let ``a`` be the IM's weights over the
   periods (1/10 each for AvgSa; the 0.01 s period alone for PGA) and
   ``X = a'(ln Y - mu)/s_A`` the standardised reference-horizon analogue of the IM (for AvgSa it
   is, to 99.9 %, the leading principal component of the residual). Its regression
   ``beta = Sigma a / s_A`` splits ``ln Y = mu + beta X + E`` with E independent of X.
   X is split again, ``X = c X1 + sqrt(1 - c^2) X2`` (``c^2 = quad_fraction`` = 0.98), and X1 is
   integrated on **uniform nodes** x in [-3.5, 6.25] with step 0.25 (40 nodes, weights
   proportional to phi(x): a trapezoid rule, spectrally accurate here).
   Given X1 = x_q every period is Gaussian, ``ln Y_i ~ N(mu_i + c beta_i x_q, v_i)``, and
   component q is the moment-matched Gaussian of ``ln IM | x_q``: its mean and variance are
   computed **exactly per period** by an inner Gauss-Hermite quadrature (``n_inner`` = 12 nodes)
   through the clipped non-linear AF and the motion-dependent phi_S2S, and **across periods** by
   Mehler's (Hermite) expansion of the covariance of two functions of correlated Gaussians,
   ``Cov(h_i, h_j) = sum_k E[h_i He_k] E[h_j He_k] rho_ij^k / k!`` (``n_hermite`` = 4 terms;
   k = 1 is the linearisation with the slope ``d ln Sa / d ln Y = 1 + f2 Y/(Y + f3)``, averaged
   over the component, 0 where ln AF is clipped).
   Why not plain Gauss-Hermite on the leading component with the rest linearised (c = 1): the
   residual left after conditioning on X is tiny for AvgSa and zero for PGA, so such a mixture is
   a comb of near-Dirac components and its P(IM > a) is a staircase (tens of % off at 1e-4..1e-6).
   Keeping a small part (2 %) of X inside each component makes the components overlap (width
   0.14 in X units against a node step 0.25 x c), while keeping the non-Gaussianity inside a
   component small; wider components (c^2 = 0.5..0.8 with 12-20 Gauss-Hermite nodes) were tried
   and fail in the tail by 5-60 % where ln AF is clipped (kinks);
3. **aleatory phi_S2S** (option ``s2s_mode="aleatory"``): adds ``E[phi_i phi_j] R_ij`` to each
   component's variance (R: p2p correlation of the site terms, ``s2s_p2p`` = consistent (the
   reference p2p matrix, TNO's recommendation and default), zero, or full).

Components: ``n_rrup x 40`` = 320 per (M, R_hyp) (40 for a point source); those of unused
R_rup nodes have weight 0 (on the demo 50 x 50 grid 3.9 R_rup nodes per cell carry weight). The three epistemic site-term branches share the quadrature
(``h = h0 + eps phi``): :meth:`GroningenV7.ln_im_mixtures` returns them together.

Accuracy, against brute-force Monte Carlo with 10^6 importance-sampled draws
(``tests/groningen/test_groningen_mixture_mc.py``): P(AvgSa > a) and P(PGA > a) within about 1 %
(plus MC noise of 0.2-1 %) for P = 1e-1 ... 1e-6, P(CS1) of V7 classes within 0.2 %.
Relative accuracy holds down to P ~ 1e-8 (the node range ends at x = 6.25). The R_rup rule is
within 1 % of a fine composite rule except for M >= 6 at R_hyp >= 40 km, where P(IM > a) at
1e-6 is off by up to 3 %.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Mapping

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from hra.core import fastmath
from hra.core._numba import jit
from hra.inputs import modeldata as md
from hra.gmm import rupture
from hra.gmm.base import GaussianMixture, GroundMotionModel
from hra.core.logictree import LogicTree, Node

#: Acceleration of gravity as the Groningen tables use it: Sa[g] = Sa[cm/s^2] / 981.
TABLE_G_CM_S2 = 981.0
LN_TABLE_G = math.log(TABLE_G_CM_S2)

#: Periods of GMM-V7 and of AvgSa. [s]
PERIODS = np.asarray(md.V7_PERIODS)
#: Period used as PGA. [s]
PGA_PERIOD = 0.01

#: Source-term hinge magnitude Mm (eq. 9.2).
MM_V7 = 4.75
#: Path-term hinge distances (eq. 9.3). [km]
RH_V7 = (3.0, 7.0, 12.0, 25.0)
#: Reference magnitude of the path-term M-scaling (eq. 9.4-9.7).
MR_V7 = 3.875
#: Periods up to which segments 1 and 2 use the tanh saturation (eq. 9.5, 9.6). [s]
TANH_TMAX_SEG1 = 0.2
TANH_TMAX_SEG2 = 0.5

#: Wierde (dwelling mound) ln factors on surface Sa, linear in T between these periods.
WIERDE_PERIODS = (0.01, 0.1, 0.2, 0.5, 1.0, 2.0)
WIERDE_LN_FACTORS = (0.2, 0.25, 0.35, 0.35, 0.1, 0.05)

#: Median-branch weights, Table 9.1 / eq. 9.8: w(M) = wL + (wH - wL)(clip(M, 3.6, 5.0) - 3.6)/1.4.
MEDIAN_WEIGHTS_LOW = (0.2, 0.3, 0.3, 0.2)
MEDIAN_WEIGHTS_HIGH = (0.1, 0.2, 0.3, 0.4)
MEDIAN_WEIGHT_MAGNITUDES = (3.6, 5.0)
TAU_WEIGHTS = (0.2, 0.6, 0.2)
PHI_SS_WEIGHTS = (0.5, 0.5)
#: Epistemic site-to-site branches: eps_S2S and weights (TNO: 0.185/0.63/0.185 would keep the
#: second moment; 0.2/0.6/0.2 is the conservative choice of the chain).
S2S_EPSILONS = (-1.645, 0.0, 1.645)
S2S_WEIGHTS = (0.2, 0.6, 0.2)

REFERENCE = (
    "Bommer et al. (2021), V7 Ground-Motion Model for Induced Seismicity in the Groningen Gas Field, "
    "NAM report rev. 1 (Oct 2021); c2c: Stafford et al. (2019); tables: TNO SHRA-Groningen-hazard-risk-models "
    f"@ {md.UPSTREAM_COMMIT[:7]} (EUPL-1.2)"
)


# ---------------------------------------------------------------------------------------------
# Equations (pure functions; coefficient arrays broadcast against the inputs)
# ---------------------------------------------------------------------------------------------


def source_term_v7(magnitude, m0, m1, m2, m3, m4):
    """Source term f_S(M), eq. 9.2 [ln cm/s^2].

    ``m0 + m1 (M - Mm) + m2 (M - Mm)^2`` for M < Mm = 4.75, else ``m0 + m3 (M - Mm) + m4 (M - Mm)^2``.
    """
    dm = np.asarray(magnitude, float) - MM_V7
    return np.where(dm < 0.0, m0 + m1 * dm + m2 * dm * dm, m0 + m3 * dm + m4 * dm * dm)


def path_segments_v7(rrup_km):
    """ln of the clipped distance ratios of the four path segments, eq. 9.3.

    ``g0 = ln clip(R/3, 1, 7/3)``, ``g1 = ln clip(R/7, 1, 12/7)``, ``g2 = ln clip(R/12, 1, 25/12)``,
    ``g3 = ln max(R/25, 1)``. R = rupture distance [km].
    """
    r = np.asarray(rrup_km, float)
    h0, h1, h2, h3 = RH_V7
    return (
        np.log(np.clip(r / h0, 1.0, h1 / h0)),
        np.log(np.clip(r / h1, 1.0, h2 / h1)),
        np.log(np.clip(r / h2, 1.0, h3 / h2)),
        np.log(np.maximum(r / h3, 1.0)),
    )


def path_slopes_v7(magnitude, period_s, c: Mapping[str, np.ndarray]):
    """Magnitude-dependent slopes r0..r3 of the four path segments, eq. 9.4-9.7.

    ``r_k = r_ka + r_kc tanh(r_kd (M - Mr))`` for M > Mr = 3.875 (segments 1 and 2 only for
    T <= 0.2 s and T <= 0.5 s), else ``r_ka + r_kb (M - Mr)``.
    """
    m = np.asarray(magnitude, float)
    T = np.asarray(period_s, float)
    dm = m - MR_V7
    above = dm > 0.0
    use_tanh = (above, above & (T <= TANH_TMAX_SEG1 + 1e-12), above & (T <= TANH_TMAX_SEG2 + 1e-12), above)
    out = []
    for k in range(4):
        lin = c[f"r{k}a"] + c[f"r{k}b"] * dm
        sat = c[f"r{k}a"] + c[f"r{k}c"] * np.tanh(c[f"r{k}d"] * dm)
        out.append(np.where(use_tanh[k], sat, lin))
    return out


def path_term_v7(rrup_km, magnitude, period_s, c: Mapping[str, np.ndarray]):
    """Path term f_P = sum_k r_k(M) g_k(R), eq. 9.3 [ln units]."""
    g = path_segments_v7(rrup_km)
    r = path_slopes_v7(magnitude, period_s, c)
    return r[0] * g[0] + r[1] * g[1] + r[2] * g[2] + r[3] * g[3]


def ln_median_reference_cms2_v7(magnitude, rrup_km, period_s, c: Mapping[str, np.ndarray]):
    """Median reference-horizon (NS_B) Sa, geometric-mean component, eq. 9.1. [ln cm/s^2]"""
    return source_term_v7(magnitude, c["m0"], c["m1"], c["m2"], c["m3"], c["m4"]) + path_term_v7(
        rrup_km, magnitude, period_s, c
    )


def c2c_variance(period_s, magnitude, rrup_km):
    """Component-to-component variance (arbitrary vs geometric-mean component).

    Stafford et al. (2019); V7 report eq. 9.10-9.11, with M* = clip(M, 3.6, 5.6),
    T* = clip(T, 0.1, 0.85)::

        s2(0.1)  = 0.026 + 1.03  (5.6 - M*) R^-2.22
        s2(0.85) = 0.045 + 5.315 (5.6 - M*) R^-2.92
        s2(T)    = s2(0.1) + [s2(0.85) - s2(0.1)] ln(T*/0.1) / ln(8.5)

    Parameters: period [s], magnitude [-], rupture distance [km]. Returns variance [ln units^2].
    """
    m = np.clip(np.asarray(magnitude, float), 3.6, 5.6)
    t = np.clip(np.asarray(period_s, float), 0.1, 0.85)
    r = np.asarray(rrup_km, float)
    v01 = 0.026 + 1.03 * (5.6 - m) * r**-2.22
    v085 = 0.045 + 5.315 * (5.6 - m) * r**-2.92
    return v01 + (v085 - v01) * np.log(t / 0.1) / np.log(0.85 / 0.1)


def m_ref1_v7(rrup_km, ma, mb):
    """Reference magnitude M_ref1(R) of the linear AF, eq. 9.14.

    ``clip(Ma + (Mb - Ma)(ln R - ln 3)/ln(60/3), min(Ma, Mb), max(Ma, Mb))``.
    """
    lnr = np.log(np.asarray(rrup_km, float))
    return np.clip(ma + (mb - ma) * (lnr - math.log(3.0)) / math.log(20.0), np.minimum(ma, mb), np.maximum(ma, mb))


def af_linear_v7(magnitude, rrup_km, c: Mapping[str, np.ndarray]):
    """Linear part f1 of ln AF, eq. 9.13 (as implemented by the chain; docs/model-chain.md §3.3)::

        f1 = a0 + a1 lnR + (b0 + b1 lnR)(min(M, Mr1) - Mr1) + a2 (lnR - ln Rref)^2
             + b2 (min(M, Mr1) - Mref2)^2 + a3 (max(M, Mr1) - Mr1)

    R = rupture distance [km]; returns ln units.
    """
    m = np.asarray(magnitude, float)
    lnr = np.log(np.asarray(rrup_km, float))
    mr1 = m_ref1_v7(rrup_km, c["Ma"], c["Mb"])
    mlo = np.minimum(m, mr1)
    return (
        c["a0"] + c["a1"] * lnr
        + (c["b0"] + c["b1"] * lnr) * (mlo - mr1)
        + c["a2"] * (lnr - np.log(c["Rref"])) ** 2
        + c["b2"] * (mlo - c["Mref2"]) ** 2
        + c["a3"] * (np.maximum(m, mr1) - mr1)
    )


def af_nonlinear(ln_sa_ref_g, f2, f3_g):
    """Non-linear part of ln AF, eq. 9.12: ``f2 ln((Y_g + f3)/f3)``, Y_g and f3 in g."""
    return f2 * np.log1p(np.exp(np.asarray(ln_sa_ref_g, float)) / f3_g)


def ln_af(f1, ln_sa_ref_g, f2, f3_g, af_min, af_max):
    """ln AF = clip(f1 + f2 ln((Y_g + f3)/f3), ln AFmin, ln AFmax), eq. 9.12. Y_g, f3 in g."""
    return np.clip(f1 + af_nonlinear(ln_sa_ref_g, f2, f3_g), np.log(af_min), np.log(af_max))


def phi_s2s(ln_sa_ref_g, s1, s2, xl_g, xh_g):
    """Site-to-site sd depending on the reference motion **in g**, eq. 9.15::

        phi_S2S = clip(s1 + (s2 - s1)(ln Y_g - ln xl)/ln(xh/xl), min(s1, s2), max(s1, s2))

    ``ln_sa_ref_g``: ln reference Sa [ln g]; xl, xh [g]. (The chain at ``dafa1a6`` passed ln Sa in
    cm/s^2 here, which makes phi_S2S = s2 for nearly every motion; docs/model-chain.md §8.)
    """
    y = np.asarray(ln_sa_ref_g, float)
    lo = np.minimum(s1, s2)
    hi = np.maximum(s1, s2)
    return np.clip(s1 + (s2 - s1) * (y - np.log(xl_g)) / np.log(xh_g / xl_g), lo, hi)


def wierde_ln_factor(period_s):
    """Additive ln factor on surface Sa for buildings on a wierde, linear in T (docs/model-chain.md §3.4)."""
    return np.interp(np.asarray(period_s, float), WIERDE_PERIODS, WIERDE_LN_FACTORS)


def median_weights_v7(magnitude) -> np.ndarray:
    """Magnitude-dependent weights of the 4 median branches, eq. 9.8 / Table 9.1.

    ``w(M) = wL + (wH - wL)(clip(M, 3.6, 5.0) - 3.6)/1.4``, wL = [0.2, 0.3, 0.3, 0.2],
    wH = [0.1, 0.2, 0.3, 0.4]. Returns shape (n_mag, 4); rows sum to 1.
    """
    m = np.clip(np.atleast_1d(np.asarray(magnitude, float)), *MEDIAN_WEIGHT_MAGNITUDES)
    lo = np.asarray(MEDIAN_WEIGHTS_LOW)
    hi = np.asarray(MEDIAN_WEIGHTS_HIGH)
    f = (m - MEDIAN_WEIGHT_MAGNITUDES[0]) / (MEDIAN_WEIGHT_MAGNITUDES[1] - MEDIAN_WEIGHT_MAGNITUDES[0])
    return lo + (hi - lo) * f[:, None]


# ---------------------------------------------------------------------------------------------
# The deterministic mixture integration (shared with GMM-V6)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SiteResponse:
    """Site-response coefficients of one zone at the periods of an IM, shape (P,) each.

    ``f2``, ``f3`` [g]: non-linear AF; ``af_min``, ``af_max``: clip bounds (linear units);
    ``s1``, ``s2``, ``xl``, ``xh`` [g]: phi_S2S(Y) (eq. 9.15); ``wierde``: additive ln factor.
    """

    f2: np.ndarray
    f3: np.ndarray
    af_min: np.ndarray
    af_max: np.ndarray
    s1: np.ndarray
    s2: np.ndarray
    xl: np.ndarray
    xh: np.ndarray
    wierde: np.ndarray


def surface_ln_sa(ln_ref_g, f1, site: SiteResponse, s2s_epsilon=0.0):
    """Surface ln Sa [ln g] from reference ln Sa [ln g] (per period on the last axis).

    ``ln Sa = ln Y + clip(f1 + f2 ln((Y+f3)/f3), ln AFmin, ln AFmax) + eps phi_S2S(Y) + delta_w``.
    ``s2s_epsilon`` broadcasts (scalar for the epistemic branches; per period for aleatory draws).
    """
    y = np.asarray(ln_ref_g, float)
    out = y + ln_af(f1, y, site.f2, site.f3, site.af_min, site.af_max) + site.wierde
    eps = np.asarray(s2s_epsilon, float)
    if np.any(eps != 0):
        out = out + eps * phi_s2s(y, site.s1, site.s2, site.xl, site.xh)
    return out



@jit
def _threshold_exceedance_kernel(g, y0, h, ln_levels, mu, sd, weight, out):  # pragma: no cover - compiled
    """P(g(Y) > c) for Y ~ N(mu_b, sd_b) with g tabulated at y0[p] + k h (p = points, k = nodes).

    g (P, N); ln_levels (L,) ascending; mu, sd (B, P); out (B, P, L) += weight * P. The set
    {y: g(y) > c} is the union of the intervals between the crossings of g with c (linear
    interpolation between nodes; open to -inf / +inf where g is above c at the first / last
    node): any shape of g, monotone or not. One pass over the nodes per point; the levels a
    node interval crosses are found by bisection.
    """
    P, N = g.shape
    B = mu.shape[0]
    L = ln_levels.shape[0]
    inv_sqrt2 = 1.0 / math.sqrt(2.0)
    start = np.empty(L)
    inside = np.zeros(L, dtype=np.bool_)
    for p in range(P):
        for l in range(L):
            inside[l] = g[p, 0] > ln_levels[l]
            start[l] = -np.inf
        for k in range(N - 1):
            g0 = g[p, k]
            g1 = g[p, k + 1]
            if g0 == g1:
                continue
            lo_g = min(g0, g1)
            hi_g = max(g0, g1)
            # levels c with lo_g <= c < hi_g change state in this interval
            l0 = np.searchsorted(ln_levels, lo_g, side="left")
            l1 = np.searchsorted(ln_levels, hi_g, side="left")
            for l in range(l0, l1):
                c = ln_levels[l]
                yc = y0[p] + h * (k + (c - g0) / (g1 - g0))
                if g1 > g0:  # crossing upwards: an interval opens
                    start[l] = yc
                    inside[l] = True
                else:  # downwards: the interval [start, yc] closes
                    for b in range(B):
                        zl = (start[l] - mu[b, p]) / sd[b, p]
                        zh = (yc - mu[b, p]) / sd[b, p]
                        out[b, p, l] += weight * 0.5 * (math.erfc(-zh * inv_sqrt2) - math.erfc(-zl * inv_sqrt2))
                    inside[l] = False
        for l in range(L):
            if inside[l]:
                for b in range(B):
                    zl = (start[l] - mu[b, p]) / sd[b, p]
                    out[b, p, l] += weight * 0.5 * math.erfc(zl * inv_sqrt2)


def _hermite_e(z: np.ndarray, kmax: int) -> np.ndarray:
    """Probabilists' Hermite polynomials He_0..He_kmax at z, shape (kmax+1, len(z))."""
    he = [np.ones_like(z), z]
    for k in range(1, kmax):
        he.append(z * he[k] - k * he[k - 1])
    return np.stack(he[: kmax + 1])


#: log and exp without a libm call, so that the moments kernel's loop over the leading-factor nodes
#: vectorises (:mod:`hra.core.fastmath`: within 1 ulp).
log_fast = fastmath.log_fast
exp_fast = fastmath.exp_fast


@jit  # (numpy's error model: no zero-division checks in the loop; cached on disk like every kernel)
def _inner_moments_kernel(mu, sv, cb, xq, zl, wl, he, f1, f2, f3, lo, hi, s1, s2, lnxl, dlnx, smin, smax,
                          ch, cp, eh2, ehp, ep2):  # pragma: no cover - compiled
    # g = (M, R_rup) points, p = periods, q = leading-factor nodes, l = inner nodes, k = Hermite order.
    # For Y = mu + cb*x_q + sv*z (ln g): h0 = Y + clip(f1 + f2 ln(1 + e^Y/f3), lo, hi) and
    # phi = clip(s1 + (s2 - s1)(Y - ln xl)/ln(xh/xl)); accumulates E[h0 He_k], E[phi He_k],
    # E[h0^2], E[h0 phi], E[phi^2] over z ~ N(0, 1) (Gauss-Hermite nodes zl, weights wl).
    # Per (g, p) the inner node l is the outer loop and the leading nodes q the inner one: every
    # q accumulates its sums in ascending l (the order of a scalar loop over l), and the q loop
    # (branch-free: selects, exp_fast / log_fast) vectorises. No allocation inside the loops.
    G, P = mu.shape
    Q = xq.shape[0]
    L = zl.shape[0]
    K1 = he.shape[0]
    mq = np.empty(Q)
    emq = np.empty(Q)
    wh = np.empty(Q)
    wp = np.empty(Q)
    a2 = np.empty(Q)
    b2 = np.empty(Q)
    c2 = np.empty(Q)
    sh = np.empty((K1, Q))
    sp = np.empty((K1, Q))
    for g in range(G):
        for p in range(P):
            f1gp = f1[g, p]
            f2p = f2[p]
            inv_f3 = 1.0 / f3[p]
            lop = lo[p]
            hip = hi[p]
            s1p = s1[p]
            slope_phi = (s2[p] - s1[p]) / dlnx[p]
            lnxlp = lnxl[p]
            sminp = smin[p]
            smaxp = smax[p]
            svgp = sv[g, p]
            mugp = mu[g, p]
            cbgp = cb[g, p]
            for q in range(Q):
                m = mugp + cbgp * xq[q]
                mq[q] = m
                emq[q] = exp_fast(m)
                a2[q] = 0.0
                b2[q] = 0.0
                c2[q] = 0.0
            for k in range(K1):
                for q in range(Q):
                    sh[k, q] = 0.0
                    sp[k, q] = 0.0
            for l in range(L):
                zs = svgp * zl[l]
                ezl = exp_fast(zs) * inv_f3
                w = wl[l]
                for q in range(Q):
                    y = mq[q] + zs
                    # ln(1 + e^y / f3) as log(w), w = 1 + e^y / f3 rounded: within ~1e-16 absolute, all that
                    # ln AF needs (log1p_fast's relative accuracy for tiny e^y / f3 took a second division
                    # and the series: 11 % of the kernel)
                    la = f1gp + f2p * log_fast(1.0 + emq[q] * ezl)
                    la = lop if la < lop else la
                    la = hip if la > hip else la
                    h = y + la
                    ph = s1p + slope_phi * (y - lnxlp)
                    ph = sminp if ph < sminp else ph
                    ph = smaxp if ph > smaxp else ph
                    whq = w * h
                    wpq = w * ph
                    wh[q] = whq
                    wp[q] = wpq
                    a2[q] += whq * h
                    b2[q] += whq * ph
                    c2[q] += wpq * ph
                # their Hermite projections, accumulated per l
                for k in range(K1):
                    hk = he[k, l]
                    for q in range(Q):
                        sh[k, q] += wh[q] * hk
                        sp[k, q] += wp[q] * hk
            for q in range(Q):
                for k in range(K1):
                    ch[g, q, p, k] = sh[k, q]
                    cp[g, q, p, k] = sp[k, q]
                eh2[g, q, p] = a2[q]
                ehp[g, q, p] = b2[q]
                ep2[g, q, p] = c2[q]


@dataclass(frozen=True)
class MixtureMoments:
    """Per (point g, leading node q, period p) moments of the surface ln Sa (no site term) and of
    phi_S2S, with ``rho`` (g, P, P) the periods' correlation given the leading node.

    ``ch[..., k] = E[h0 He_k(Z)]``, ``cp[..., k] = E[phi He_k(Z)]`` (Z: the period's standardised
    conditional residual), ``eh2 = E[h0^2]``, ``ehp = E[h0 phi]``, ``ep2 = E[phi^2]``; ``weights``
    (Q,) are the leading-node weights.
    """

    ch: np.ndarray
    cp: np.ndarray
    eh2: np.ndarray
    ehp: np.ndarray
    ep2: np.ndarray
    rho: np.ndarray
    weights: np.ndarray


def leading_nodes(step: float = 0.25, x_range: tuple[float, float] = (-3.5, 6.25)) -> tuple[np.ndarray, np.ndarray]:
    """Uniform nodes on the standardised leading factor and weights proportional to phi(x).

    A trapezoid rule for a normal density: spectrally accurate for the smooth, Gaussian-like
    integrands met here. The mass outside ``x_range`` (3e-5 below -4, 2e-11 above 6.6) is
    spread proportionally over the nodes (weights renormalised): P(IM > a) keeps its relative
    accuracy in the upper tail, which is what hazard and fragility need.
    """
    n = int(round((x_range[1] - x_range[0]) / step)) + 1
    x = np.linspace(x_range[0], x_range[1], n)
    w = np.exp(-0.5 * x * x)
    return x, w / w.sum()


def surface_moments(
    mu_ref_g: np.ndarray,
    sd_ref: np.ndarray,
    corr: np.ndarray,
    im_weights: np.ndarray,
    f1: np.ndarray,
    site: SiteResponse,
    x_nodes: np.ndarray,
    x_weights: np.ndarray,
    quad_fraction: float,
    n_inner: int = 16,
    n_hermite: int = 4,
) -> MixtureMoments:
    """Conditional moments of the surface ln Sa per leading node (module docstring, step 2).

    Parameters
    ----------
    mu_ref_g, sd_ref
        Reference median [ln g] and total sd of the arbitrary component [ln units], (G, P).
    corr
        Period-to-period correlation of the reference residual, (P, P).
    im_weights
        a, the weights of ln Sa(T_p) in ln IM, (P,).
    f1
        Linear ln AF, (G, P).
    site
        The zone's AF and phi_S2S coefficients at the P periods.
    x_nodes, x_weights
        Nodes and weights on the standardised leading factor X1 (:func:`leading_nodes`).
    quad_fraction
        c^2: the share of the IM's reference variance carried by the nodes; the rest stays
        inside each component.
    """
    mu = np.ascontiguousarray(mu_ref_g, dtype=float)
    sd = np.asarray(sd_ref, float)
    G, P = mu.shape
    a = np.asarray(im_weights, float)
    cov = sd[:, :, None] * np.asarray(corr, float)[None] * sd[:, None, :]
    sa = cov @ a
    s_a = np.sqrt(sa @ a)
    beta = sa / s_a[:, None]
    cov_c = cov - quad_fraction * beta[:, :, None] * beta[:, None, :]
    v = np.maximum(np.einsum("gii->gi", cov_c), 1e-300)
    sv = np.sqrt(v)
    rho = cov_c / (sv[:, :, None] * sv[:, None, :])
    cb = math.sqrt(quad_fraction) * beta
    zl, wl = hermegauss(n_inner)
    wl = wl / wl.sum()
    he = _hermite_e(zl, n_hermite)
    Q = len(x_nodes)
    K1 = n_hermite + 1
    ch = np.empty((G, Q, P, K1))
    cp = np.empty((G, Q, P, K1))
    eh2 = np.empty((G, Q, P))
    ehp = np.empty((G, Q, P))
    ep2 = np.empty((G, Q, P))
    f = lambda x: np.ascontiguousarray(np.asarray(x, float))  # noqa: E731
    _inner_moments_kernel(
        mu, f(sv), f(cb), f(x_nodes), f(zl), f(wl), f(he), f(np.broadcast_to(f1, (G, P))),
        f(site.f2), f(site.f3), f(np.log(site.af_min)), f(np.log(site.af_max)), f(site.s1), f(site.s2),
        f(np.log(site.xl)), f(np.log(np.asarray(site.xh) / np.asarray(site.xl))),
        f(np.minimum(site.s1, site.s2)), f(np.maximum(site.s1, site.s2)),
        ch, cp, eh2, ehp, ep2,
    )
    return MixtureMoments(ch, cp, eh2, ehp, ep2, rho, np.asarray(x_weights, float) / np.sum(x_weights))


def _quadratic_forms(mom: MixtureMoments, a: np.ndarray, need_phi: bool) -> dict[str, np.ndarray]:
    """Off-diagonal Mehler quadratic forms per Hermite order k (shared by all eps values).

    ``hh[k] = sum_{i != j} a_i a_j E[h_i He_k] E[h_j He_k] rho_ij^k / k!`` (k >= 1), likewise
    ``hp`` (h with phi) and ``pp`` (phi with phi, k >= 0), each (K1, G, Q).
    """
    P = a.size
    K1 = mom.ch.shape[-1]
    off = 1.0 - np.eye(P)
    G, Q = mom.ch.shape[:2]
    hh = np.zeros((K1, G, Q))
    hp = np.zeros((K1, G, Q))
    pp = np.zeros((K1, G, Q))
    rk = np.ones_like(mom.rho)
    fact = 1.0
    for k in range(K1):
        if k > 0:
            rk = rk * mom.rho
            fact *= k
        Mk = rk * off / fact  # (G,P,P)
        ah = mom.ch[..., k] * a  # (G,Q,P)
        ap = mom.cp[..., k] * a
        if k > 0:
            ahM = np.matmul(ah, Mk)
            hh[k] = np.sum(ahM * ah, axis=-1)
            hp[k] = np.sum(ahM * ap, axis=-1)
        else:
            ahM = None
        if need_phi or k > 0:
            pp[k] = np.sum(np.matmul(ap, Mk) * ap, axis=-1)
    return {"hh": hh, "hp": hp, "pp": pp}


@jit
def _epistemic_mixture_kernel(ch, cp, eh2, ehp, ep2, rho, a, eps, shift, mean, sd):  # pragma: no cover - compiled
    # :func:`_quadratic_forms` and :func:`mixture_from_moments` fused for epistemic site terms:
    # per point g the Mehler weights rho_ij^k / k! (i != j) once, then per leading node q the
    # forms hh, hp, pp (k >= 1) and, for every eps_e, the component mean and sd (E, G, Q).
    G, Q, P, K1 = ch.shape
    E = eps.shape[0]
    mk = np.empty((K1, P, P))
    a2 = np.empty(P)
    for i in range(P):
        a2[i] = a[i] * a[i]
    ah = np.empty(P)
    ap = np.empty(P)
    for g in range(G):
        for i in range(P):
            for j in range(P):
                r = rho[g, i, j]
                v = 1.0
                fact = 1.0
                for k in range(K1):
                    if k > 0:
                        v *= r
                        fact *= k
                    mk[k, i, j] = 0.0 if i == j else v / fact
        for q in range(Q):
            hh = 0.0
            hp = 0.0
            pp = 0.0
            for k in range(1, K1):
                for i in range(P):
                    ah[i] = ch[g, q, i, k] * a[i]
                    ap[i] = cp[g, q, i, k] * a[i]
                for i in range(P):
                    sh = 0.0
                    sp = 0.0
                    for j in range(P):
                        sh += mk[k, i, j] * ah[j]
                        sp += mk[k, i, j] * ap[j]
                    hh += ah[i] * sh
                    hp += ah[i] * sp
                    pp += ap[i] * sp
            for e in range(E):
                ee = eps[e]
                m = 0.0
                var = 0.0
                for i in range(P):
                    c0 = ch[g, q, i, 0] + ee * cp[g, q, i, 0]
                    m += c0 * a[i]
                    vp = eh2[g, q, i] + 2.0 * ee * ehp[g, q, i] + ee * ee * ep2[g, q, i] - c0 * c0
                    if vp > 0.0:
                        var += vp * a2[i]
                var += hh + 2.0 * ee * hp + ee * ee * pp
                mean[e, g, q] = m + shift
                sd[e, g, q] = math.sqrt(var) if var > 0.0 else 0.0


def epistemic_mixtures(mom: MixtureMoments, im_weights: np.ndarray, s2s_epsilons, shift: float = 0.0
                       ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`mixture_from_moments` for several epistemic eps_S2S values at once (one compiled pass).

    Returns means and sds of shape (E, G, Q); equal to ``mixture_from_moments(mom, a, eps_e,
    shift=shift)`` for each ``eps_e`` up to rounding (the same sums in another order).
    """
    f = lambda x: np.ascontiguousarray(np.asarray(x, float))  # noqa: E731
    eps = f(np.atleast_1d(s2s_epsilons))
    G, Q = mom.ch.shape[:2]
    mean = np.empty((eps.size, G, Q))
    sd = np.empty((eps.size, G, Q))
    _epistemic_mixture_kernel(f(mom.ch), f(mom.cp), f(mom.eh2), f(mom.ehp), f(mom.ep2), f(mom.rho), f(im_weights),
                              eps, float(shift), mean, sd)
    return mean, sd


def mixture_from_moments(
    mom: MixtureMoments,
    im_weights: np.ndarray,
    s2s_epsilon: float | None,
    s2s_corr: np.ndarray | None = None,
    shift: float = 0.0,
    forms: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Component means and sds (G, Q) of ln IM for one site-term treatment.

    ``s2s_epsilon``: epistemic eps_S2S (``h = h0 + eps phi`` at every period), or ``None`` for
    an aleatory site term with period correlation ``s2s_corr`` (identity if ``None``).
    ``shift``: constant added to every mean (the wierde factor, a' delta_w). The covariance of
    two periods is Mehler's expansion ``sum_{k>=1} E[h_i He_k] E[h_j He_k] rho_ij^k / k!``;
    ``forms`` (from :func:`_quadratic_forms`) may be passed to share work across eps values.
    """
    a = np.asarray(im_weights, float)
    P = a.size
    aleatory = s2s_epsilon is None
    eps = 0.0 if aleatory else float(s2s_epsilon)
    if forms is None:
        forms = _quadratic_forms(mom, a, aleatory)
    c0 = mom.ch[..., 0] + eps * mom.cp[..., 0]
    mean = c0 @ a + shift
    var_p = mom.eh2 + 2.0 * eps * mom.ehp + eps * eps * mom.ep2 - c0**2
    var = np.maximum(var_p, 0.0) @ (a * a)
    var = var + np.sum(forms["hh"][1:] + 2.0 * eps * forms["hp"][1:] + eps * eps * forms["pp"][1:], axis=0)
    if aleatory:
        R = np.eye(P) if s2s_corr is None else np.asarray(s2s_corr, float)
        var = var + mom.ep2 @ (a * a * np.diag(R))
        # E[phi_i phi_j] R_ij for i != j: Mehler from k = 0, with R folded into the forms
        Roff = R * (1.0 - np.eye(P))
        if np.any(Roff != 0):
            K1 = mom.cp.shape[-1]
            rk = np.ones_like(mom.rho)
            fact = 1.0
            for k in range(K1):
                if k > 0:
                    rk = rk * mom.rho
                    fact *= k
                ap = mom.cp[..., k] * a
                var = var + np.sum(np.matmul(ap, rk * Roff / fact) * ap, axis=-1)
    return mean, np.sqrt(np.maximum(var, 0.0))


# ---------------------------------------------------------------------------------------------
# The model class
# ---------------------------------------------------------------------------------------------


def _period_interp(table_periods: np.ndarray, period_s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices and log-T weights for interpolation between tabulated periods; no extrapolation."""
    T = np.asarray(period_s, float)
    tp = np.asarray(table_periods, float)
    if np.any(T < tp[0] - 1e-12) or np.any(T > tp[-1] + 1e-12):
        raise KeyError(
            f"period(s) {np.unique(T[(T < tp[0] - 1e-12) | (T > tp[-1] + 1e-12)])} s outside the model's range "
            f"[{tp[0]}, {tp[-1]}] s; the model does not extrapolate"
        )
    Tc = np.clip(T, tp[0], tp[-1])
    i1 = np.clip(np.searchsorted(tp, Tc, side="left"), 0, len(tp) - 1)
    exact = np.isclose(tp[i1], Tc, rtol=0, atol=1e-9)
    i0 = np.where(exact, i1, np.maximum(i1 - 1, 0))
    frac = np.where(exact, 0.0, (np.log(Tc) - np.log(tp[i0])) / np.where(i1 > i0, np.log(tp[i1]) - np.log(tp[i0]), 1.0))
    return i0, i1, frac


def _branch_index(branch, key: str, labels: tuple[str, ...]) -> int:
    if isinstance(branch, Mapping):
        if key not in branch:
            raise KeyError(f"branch mapping lacks node {key!r}; give an index for each of the model's tree nodes")
        branch = branch[key]
    if isinstance(branch, str):
        if branch not in labels:
            raise KeyError(f"unknown {key} branch {branch!r}; labels are {labels}")
        return labels.index(branch)
    i = int(branch)
    if not 0 <= i < len(labels):
        raise KeyError(f"{key} branch index {i} out of range 0..{len(labels) - 1} ({labels})")
    return i


#: Most azimuth nodes interpolated in harmonics (a wider strike law needs fewer).
MAX_HARMONIC_NODES = 4


def strike_azimuth_nodes(sd_deg: float, n_linear: int = 7) -> tuple[np.ndarray, bool]:
    """Relative-azimuth nodes [degree] of the tables for a strike sd ``sd_deg``, and whether the
    tables are interpolated between them in cosine harmonics.

    The folded Gaussian of the strike damps harmonic k of the geometry, ``cos(2 k a0)``, by
    ``exp(-2 k^2 s^2)`` (s = sd in radians). So K = max(2, ceil(1.5 / s)) harmonics leave out
    terms damped below ~1 %: where K <= :data:`MAX_HARMONIC_NODES` (sd >= ~21.5 degrees) the
    nodes are K equally spaced azimuths on [0, 90] and the engine interpolates exactly through them
    in span{cos(2 k a0), k < K} (sd 30: nodes 0, 45, 90; on GMM V7 tables within 0.2 % of the
    azimuth mean against the values at 15-degree nodes). A narrower law (or a fixed strike) keeps
    ``n_linear`` nodes with linear interpolation.
    """
    if sd_deg > 0.0:
        k = max(2, int(math.ceil(1.5 / math.radians(sd_deg))))
        if k <= MAX_HARMONIC_NODES:
            return np.linspace(0.0, 90.0, k), True
    return np.linspace(0.0, 90.0, int(n_linear)), False


class GroningenV7(GroundMotionModel):
    """GMM-V7 (Bommer et al. 2021) at the surface of a site-response zone; IMs AvgSa, PGA and SA(T) (0.01-1 s).

    Parameters
    ----------
    model_dir
        Directory of the public model tables (default ``$HRA_MODEL_DIR``; see :mod:`hra.inputs.modeldata`).
    s2s_mode
        ``"epistemic"`` (default for V7; 3 branches eps_S2S = -1.645/0/+1.645, weights 0.2/0.6/0.2, same
        eps at all periods) or ``"aleatory"`` (lognormal site term integrated in each mixture).
    s2s_p2p
        Aleatory only: period correlation of the site terms, ``"consistent"`` (the reference p2p
        matrix; default), ``"zero"`` or ``"full"``.
    rupture
        ``"finite"`` (default; R_rup | M, R_hyp by :func:`hra.gmm.rupture.rrup_quadrature`) or ``"point"``.
    component
        Horizontal component of the residual: ``"arbitrary"`` (default; the fragility functions'
        convention: ``sigma^2 = tau^2 + phi_SS^2 + sigma_c2c^2``) or ``"geometric_mean"`` (without
        the component-to-component term; the convention of hazard outputs and of NPR 9998).
    azimuth_deg
        Fixed source-to-site azimuth relative to strike [degree]; ``None`` averages uniformly.
    rupture_strike
        ``(mean_deg, sd_deg)``: a field-wide strike ~ N(mean, sd^2) [degree] (the chain's
        ``(-30, 30)``; the config default); the R_rup quadrature then depends on the relative
        azimuth a0 of the site seen from the source cell w.r.t. the mean strike, tabulated at
        :attr:`azimuth_nodes_deg` (:func:`strike_azimuth_nodes`: 3 nodes with harmonic
        interpolation for sd 30, else ``n_azimuth_nodes`` equally spaced nodes on [0, 90]).
        ``None`` (the default of this class): R_rup averaged uniformly over the azimuth.
    n_rrup, quad_step, quad_range, quad_fraction, n_inner, n_hermite
        Quadrature settings (module docstring); the defaults meet 1 % against Monte Carlo.
    verify
        Check the tables' SHA-256 against :data:`hra.inputs.modeldata.MODEL_FILES`.
    """

    name = "groningen-v7"
    reference = REFERENCE
    #: Spectral periods offered as ``SA(T)`` IMs (0.01-1 s; PGA = Sa(0.01 s)). [s]
    max_sa_period_s = 1.0
    verified = True
    #: The engine keys sites by (zone, wierde): the model has a wierde (dwelling-mound) factor.
    uses_wierde = True
    requires = frozenset({"mag", "rhypo", "zone"})
    #: Default treatment of the site-to-site term.
    default_s2s_mode = "epistemic"
    #: Rupture distances where the median has a kink (path-term hinges, eq. 9.3). [km]
    rrup_kinks_km = RH_V7[1:]
    #: Magnitudes where the model's terms have a kink: the c2c variance's clip (3.6, 5.6; eq. 9.10), the
    #: path slopes' switch to tanh (3.875, eq. 9.4-9.7) and the source-term hinge (4.75, eq. 9.2); no
    #: interpolation in M crosses them (:mod:`hra.integration.magnitudes`).
    magnitude_kinks = (3.6, MR_V7, MM_V7, 5.6)
    #: Column names of the site-response table for the SiteResponse fields.
    _site_columns = {"f2": "f2", "f3": "f3", "af_min": "AFmin", "af_max": "AFmax", "s1": "s1", "s2": "s2",
                     "xl": "xl", "xh": "xh"}

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        s2s_mode: str | None = None,
        s2s_p2p: str = "consistent",
        rupture: str = "finite",
        azimuth_deg: float | None = None,
        component: str = "arbitrary",
        n_rrup: int = 8,
        quad_step: float = 0.25,
        quad_range: tuple[float, float] = (-3.5, 6.25),
        quad_fraction: float = 0.98,
        n_inner: int = 12,
        n_hermite: int = 4,
        verify: bool = True,
        rupture_strike: tuple[float, float] | None = None,
        n_azimuth_nodes: int = 7,
    ) -> None:
        s2s_mode = self.default_s2s_mode if s2s_mode is None else s2s_mode
        if s2s_mode not in ("epistemic", "aleatory"):
            raise ValueError(f"s2s_mode must be 'epistemic' or 'aleatory', got {s2s_mode!r}")
        if s2s_p2p not in ("consistent", "zero", "full"):
            raise ValueError(f"s2s_p2p must be 'consistent', 'zero' or 'full', got {s2s_p2p!r}")
        if rupture not in ("finite", "point"):
            raise ValueError(f"rupture must be 'finite' or 'point', got {rupture!r}")
        if component not in ("arbitrary", "geometric_mean"):
            raise ValueError(f"component must be 'arbitrary' or 'geometric_mean', got {component!r}")
        if not 0.0 < quad_fraction <= 1.0:
            raise ValueError("quad_fraction must lie in (0, 1]")
        if not (quad_step > 0 and quad_range[0] < 0 < quad_range[1]):
            raise ValueError("quad_step must be > 0 and quad_range must bracket 0")
        self.tables = self._load_tables(model_dir, verify)
        self.s2s_mode = s2s_mode
        self.s2s_p2p = s2s_p2p
        self.rupture = rupture
        self.component = component
        self.azimuth_deg = azimuth_deg
        if rupture_strike is not None:
            mean_deg, sd_deg = (float(v) for v in rupture_strike)
            if not (-180.0 <= mean_deg <= 180.0 and sd_deg >= 0.0):
                raise ValueError(f"rupture_strike needs mean_deg in [-180, 180] and sd_deg >= 0, got {rupture_strike!r}")
            rupture_strike = (mean_deg, sd_deg)
        if rupture_strike is not None and azimuth_deg is not None:
            raise ValueError("azimuth_deg (a fixed relative azimuth) and rupture_strike exclude each other")
        self.rupture_strike = rupture_strike
        #: Relative-azimuth nodes of the tables [degree], or None (no azimuth axis), and whether the
        #: tables are interpolated between them in the harmonics cos(2 k a0) (k < number of nodes)
        #: instead of linearly (:func:`strike_azimuth_nodes`).
        self.azimuth_nodes_deg, self.azimuth_harmonic = (
            strike_azimuth_nodes(rupture_strike[1], int(n_azimuth_nodes))
            if rupture_strike is not None and rupture == "finite" else (None, False))
        self.n_rrup = int(n_rrup)
        self.quad_step = float(quad_step)
        self.quad_range = (float(quad_range[0]), float(quad_range[1]))
        self.quad_fraction = float(quad_fraction)
        self.n_inner = int(n_inner)
        self.n_hermite = int(n_hermite)
        self._x_nodes, self._x_weights = leading_nodes(self.quad_step, self.quad_range)
        self._rrup_cache: dict = {}
        self._mix_cache: tuple | None = None
        self._zone_index = {int(z): i for i, z in enumerate(self.tables.zones)}

    # -- tables and tree ----------------------------------------------------------------------

    @staticmethod
    def _load_tables(model_dir, verify):
        return md.load_gmm_v7_tables(model_dir, verify=verify)

    @property
    def file_checksums(self) -> dict[str, str]:
        """SHA-256 of every model table read (path relative to the model dir -> hex digest)."""
        return dict(self.tables.sha256)

    @property
    def periods(self) -> np.ndarray:
        return self.tables.periods

    @property
    def imts(self) -> tuple[str, ...]:
        """``AvgSa``, ``PGA`` and ``SA(T)`` at the tabulated periods up to :attr:`max_sa_period_s`."""
        per = [float(t) for t in self.tables.periods if t <= self.max_sa_period_s + 1e-9]
        return ("AvgSa", "PGA") + tuple(f"SA({t:g})" for t in per)

    @property
    def avgsa_periods(self) -> np.ndarray:
        """The 10 periods whose geometric mean is AvgSa. [s]"""
        return np.asarray(md.V7_PERIODS)

    @property
    def tree(self) -> LogicTree:
        """Nodes gmm_median (nominal weights wL; see :meth:`median_weights`), gmm_tau, gmm_phi_ss,
        and gmm_s2s when the site term is epistemic."""
        nodes = [
            Node("gmm_median", md.MEDIAN_LEVELS, MEDIAN_WEIGHTS_LOW),
            Node("gmm_tau", md.TAU_LEVELS_V7, TAU_WEIGHTS),
            Node("gmm_phi_ss", md.PHI_SS_LEVELS, PHI_SS_WEIGHTS),
        ]
        if self.s2s_mode == "epistemic":
            nodes.append(Node("gmm_s2s", ("minus1.645", "zero", "plus1.645"), S2S_WEIGHTS, S2S_EPSILONS))
        return LogicTree(tuple(nodes))

    @property
    def zones(self) -> np.ndarray:
        return self.tables.zones.copy()

    def median_weights(self, magnitude) -> np.ndarray:
        """Magnitude-dependent median-branch weights w(M), shape (n_mag, 4) (eq. 9.8)."""
        return median_weights_v7(magnitude)

    def branch_weights(self, node: str, magnitude) -> np.ndarray:
        """Weights of a node's branches per magnitude, (n_mag, n_branches): w(M) for gmm_median,
        the constant node weights otherwise. Hook for engines that honour M-dependent weights."""
        m = np.atleast_1d(np.asarray(magnitude, float))
        if node == "gmm_median":
            return self.median_weights(m)
        return np.broadcast_to(self.tree.node(node).weight_array, (m.size, self.tree.node(node).size)).copy()

    # -- reference horizon --------------------------------------------------------------------

    def _median_coefs(self, level: int, idx) -> dict[str, np.ndarray]:
        return {k: v[level][idx] for k, v in self.tables.median.items()}

    def _ln_median_ref_g_at(self, idx, magnitude, rrup_km, level: int):
        c = self._median_coefs(level, idx)
        T = self.tables.periods[idx]
        return ln_median_reference_cms2_v7(magnitude, rrup_km, T, c) - LN_TABLE_G

    def ln_median_sa_g(self, period_s, magnitude, rrup_km, branch) -> np.ndarray:
        """ln of the median reference (NS_B) Sa, geometric mean [ln g]; log-T interpolation
        between tabulated periods, no extrapolation. Inputs broadcast together."""
        level = _branch_index(branch, "gmm_median", md.MEDIAN_LEVELS)
        T, m, r = np.broadcast_arrays(np.asarray(period_s, float), np.asarray(magnitude, float), np.asarray(rrup_km, float))
        i0, i1, f = _period_interp(self.tables.periods, T)
        y0 = self._ln_median_ref_g_at(i0, m, r, level)
        y1 = self._ln_median_ref_g_at(i1, m, r, level)
        return (1.0 - f) * y0 + f * y1

    def median_sa_g(self, period_s, magnitude, rrup_km, branch) -> np.ndarray:
        """Median reference-horizon (NS_B) Sa, geometric-mean component. [g]

        Parameters
        ----------
        period_s
            Spectral period(s) in [0.01, 1] s (0.01 s = PGA). [s]
        magnitude
            Magnitude (ML as used by the chain). [-]
        rrup_km
            Rupture distance. [km]
        branch
            Median branch: index 0..3, label (Lower, CentralLower, CentralUpper, Upper) or a
            mapping with key ``gmm_median``.
        """
        return np.exp(self.ln_median_sa_g(period_s, magnitude, rrup_km, branch))

    def _tau_phi(self, branch) -> tuple[np.ndarray, np.ndarray]:
        it = _branch_index(branch, "gmm_tau", md.TAU_LEVELS_V7)
        ip = _branch_index(branch, "gmm_phi_ss", md.PHI_SS_LEVELS)
        return self.tables.tau[it], self.tables.phi_ss[ip]

    def sigma_components(self, period_s, magnitude, rrup_km, branch) -> dict[str, np.ndarray]:
        """Standard deviations of the reference residual [ln units] (docs/model-chain.md §3.2).

        Returns a dict with ``tau``, ``phi_ss``, ``sigma_c2c`` (sqrt of the c2c variance,
        Stafford et al. 2019), ``sigma_gm`` = sqrt(tau^2 + phi_SS^2) (geometric mean, hazard) and
        ``sigma_arbitrary`` = sqrt(tau^2 + phi_SS^2 + sigma_c2c^2) (fragility). ``branch`` maps
        ``gmm_tau`` and ``gmm_phi_ss`` to indices. Inputs broadcast; periods are interpolated
        linearly in ln T (variances), no extrapolation.
        """
        tau_t, phi_t = self._tau_phi(branch)
        T, m, r = np.broadcast_arrays(np.asarray(period_s, float), np.asarray(magnitude, float), np.asarray(rrup_km, float))
        i0, i1, f = _period_interp(self.tables.periods, T)
        tau2 = (1 - f) * tau_t[i0] ** 2 + f * tau_t[i1] ** 2
        phi2 = (1 - f) * phi_t[i0] ** 2 + f * phi_t[i1] ** 2
        c2c = c2c_variance(T, m, r)
        return {
            "tau": np.sqrt(tau2),
            "phi_ss": np.sqrt(phi2),
            "sigma_c2c": np.sqrt(c2c),
            "sigma_gm": np.sqrt(tau2 + phi2),
            "sigma_arbitrary": np.sqrt(tau2 + phi2 + c2c),
        }

    # -- site response ------------------------------------------------------------------------

    def _zone_row(self, zone) -> int:
        if zone is None:
            raise KeyError(f"{self.name} is site-dependent: give a site-response zone (ID_V6)")
        z = int(zone)
        if z not in self._zone_index:
            extra = " (a lake without coefficients: assign the nearest zone, see hra.inputs.edb.assign_zones_v6)" if z in md.LAKE_ZONES else ""
            raise KeyError(f"zone {z} has no site-response coefficients in {self.name}{extra}")
        return self._zone_index[z]

    def _af_at(self, zone, idx) -> dict[str, np.ndarray]:
        iz = self._zone_row(zone)
        return {k: v[iz][idx] for k, v in self.tables.af.items()}

    def _f1(self, c, magnitude, rrup_km):
        return af_linear_v7(magnitude, rrup_km, c)

    def site_response(self, zone, idx, wierde: bool = False) -> SiteResponse:
        c = self._af_at(zone, idx)
        T = self.tables.periods[idx]
        w = wierde_ln_factor(T) if wierde else np.zeros(np.shape(T))
        k = self._site_columns
        return SiteResponse(c[k["f2"]], c[k["f3"]], c[k["af_min"]], c[k["af_max"]], c[k["s1"]], c[k["s2"]],
                            c[k["xl"]], c[k["xh"]], np.asarray(w, float))

    def ln_af(self, zone, period_s, magnitude, rrup_km, ln_sa_ref_g) -> np.ndarray:
        """Median ln AF at a tabulated period given the realised reference Sa [ln g] (eq. 9.12-9.14)."""
        idx = self._period_indices(period_s)
        c = self._af_at(zone, idx)
        f1 = self._f1(c, magnitude, rrup_km)
        k = self._site_columns
        return ln_af(f1, ln_sa_ref_g, c[k["f2"]], c[k["f3"]], c[k["af_min"]], c[k["af_max"]])

    def phi_s2s(self, zone, period_s, ln_sa_ref_g) -> np.ndarray:
        """phi_S2S at a tabulated period given the realised reference Sa **in g** [ln g] (eq. 9.15)."""
        idx = self._period_indices(period_s)
        c = self._af_at(zone, idx)
        k = self._site_columns
        return phi_s2s(ln_sa_ref_g, c[k["s1"]], c[k["s2"]], c[k["xl"]], c[k["xh"]])

    def _period_indices(self, period_s) -> np.ndarray:
        T = np.asarray(period_s, float)
        tp = self.tables.periods
        idx = np.abs(tp[None, :] - T.reshape(-1, 1)).argmin(axis=1)
        if not np.allclose(tp[idx], T.reshape(-1), rtol=0, atol=1e-9):
            raise KeyError(f"period(s) {T} s not tabulated; site response exists at {list(tp)} s")
        return idx.reshape(T.shape)

    def surface_ln_sa_g(self, zone, magnitude, rrup_km, ln_sa_ref_g, s2s_epsilon=0.0, wierde=False, periods=None):
        """Surface ln Sa [ln g] at the AvgSa periods (last axis) from reference realisations [ln g].

        The exact non-linear map used by the mixture; ``magnitude`` and ``rrup_km`` broadcast
        against ``ln_sa_ref_g[..., 0]``. For Monte-Carlo verification.
        """
        per = self.avgsa_periods if periods is None else np.asarray(periods, float)
        idx = self._period_indices(per)
        c = self._af_at(zone, idx)
        f1 = self._f1(c, np.asarray(magnitude, float)[..., None], np.asarray(rrup_km, float)[..., None])
        return surface_ln_sa(ln_sa_ref_g, f1, self.site_response(zone, idx, wierde), s2s_epsilon)

    # -- the distribution of ln IM ------------------------------------------------------------

    def rrup_nodes(self, magnitude, distance_km, azimuth_deg: float | None = None) -> rupture.RuptureQuadrature:
        """R_rup quadrature given (M, R_hyp) (cached per grid).

        ``azimuth_deg``: the site's azimuth relative to the mean strike of ``rupture_strike``
        [degree] (ignored without a strike model); ``None`` averages uniformly over the azimuth
        (the azimuth-free callers)."""
        m = np.atleast_1d(np.asarray(magnitude, float))
        r = np.atleast_1d(np.asarray(distance_km, float))
        strike = self.rupture_strike if self.azimuth_nodes_deg is not None else None
        a0 = None if strike is None or azimuth_deg is None else float(azimuth_deg)
        key = (m.tobytes(), r.tobytes(), a0, None if a0 is None else strike)
        q = self._rrup_cache.get(key)
        if q is None:
            if len(self._rrup_cache) > 8 + (0 if strike is None else 2 * len(self.azimuth_nodes_deg)):
                self._rrup_cache = {}
            if a0 is None:
                q = rupture.rrup_quadrature(
                    m, r, n_nodes=self.n_rrup, azimuth_deg=self.azimuth_deg, point_source=self.rupture == "point"
                )
            else:
                q = rupture.rrup_quadrature(m, r, n_nodes=self.n_rrup, azimuth_deg=a0, strike_sd_deg=strike[1])
            self._rrup_cache[key] = q
        return q

    def _im_definition(self, imt: str) -> tuple[np.ndarray, np.ndarray]:
        self.check_imt(imt)
        if imt == "AvgSa":
            idx = self._period_indices(self.avgsa_periods)
            return idx, np.full(idx.size, 1.0 / idx.size)
        if imt.startswith("SA("):
            return self._period_indices([float(imt[3:-1])]), np.ones(1)
        return self._period_indices([PGA_PERIOD]), np.ones(1)

    def _s2s_setup(self, branch, idx) -> tuple[float | None, np.ndarray | None]:
        if self.s2s_mode == "epistemic":
            return S2S_EPSILONS[_branch_index(branch, "gmm_s2s", ("minus1.645", "zero", "plus1.645"))], None
        P = len(idx)
        if self.s2s_p2p == "zero":
            return None, np.eye(P)
        if self.s2s_p2p == "full":
            return None, np.ones((P, P))
        return None, self.tables.p2p[np.ix_(idx, idx)]

    def _reference(self, idx, m, r, branch):
        """(mu [ln g], sd) at points m, r (...,) for periods idx -> (..., P); sd of the
        :attr:`component` (arbitrary: with the c2c variance; geometric mean: without)."""
        level = _branch_index(branch, "gmm_median", md.MEDIAN_LEVELS)
        T = self.tables.periods[idx]
        mu = self._ln_median_ref_g_at(idx, m[..., None], r[..., None], level)
        tau_t, phi_t = self._tau_phi(branch)
        var = np.broadcast_to(tau_t[idx] ** 2 + phi_t[idx] ** 2, mu.shape)
        if self.component == "arbitrary":
            var = var + c2c_variance(T, m[..., None], r[..., None])
        return mu, np.sqrt(var)

    @property
    def n_quad(self) -> int:
        """Number of leading-factor nodes (components per R_rup node)."""
        return int(self._x_nodes.size)

    def _treatments(self, branch, idx) -> dict[int, tuple[float | None, np.ndarray | None]]:
        """Site-term treatments: s2s branch index -> (eps, p2p correlation of an aleatory term)."""
        if self.s2s_mode == "epistemic":
            return {j: (e, None) for j, e in enumerate(S2S_EPSILONS)}
        return {0: (None, self._s2s_setup(branch, idx)[1])}

    def _point_mixtures(self, imt, mm, rr, zone, branch, wierde: bool = False):
        """Component means and sds (G, Q) of ln IM at points (mm, rr) = (M, R_rup), (G,) each,
        for every site-term treatment: dict s2s index -> (mean, sd)."""
        idx, a = self._im_definition(imt)
        mu, sd = self._reference(idx, mm, rr, branch)
        c = self._af_at(zone, idx)
        f1 = self._f1(c, mm[:, None], rr[:, None])
        site = self.site_response(zone, idx, wierde)
        shift = float(site.wierde @ a)
        corr = self.tables.p2p[np.ix_(idx, idx)]
        treatments = self._treatments(branch, idx)
        G = mm.size
        Q = self.n_quad
        means = {j: np.empty((G, Q)) for j in treatments}
        sds = {j: np.empty((G, Q)) for j in treatments}
        chunk = max(1, 2_000_000 // (Q * len(idx) * max(self.n_inner, 1)))
        for s in range(0, G, chunk):
            e = min(G, s + chunk)
            mom = surface_moments(
                mu[s:e], sd[s:e], corr, a, f1[s:e], site, self._x_nodes, self._x_weights,
                self.quad_fraction, self.n_inner, self.n_hermite,
            )
            if self.s2s_mode == "epistemic":  # one compiled pass for the eps_S2S branches
                keys = list(treatments)
                mean_e, sd_e = epistemic_mixtures(mom, a, [treatments[j][0] for j in keys], shift)
                for n, j in enumerate(keys):
                    means[j][s:e], sds[j][s:e] = mean_e[n], sd_e[n]
                continue
            forms = _quadratic_forms(mom, a, self.s2s_mode == "aleatory")
            for j, (eps, R) in treatments.items():
                means[j][s:e], sds[j][s:e] = mixture_from_moments(mom, a, eps, R, shift, forms)
        return {j: (means[j], sds[j]) for j in treatments}

    def wierde_shift(self, imt) -> float:
        """The wierde factor on ln IM (``a' delta_w``): a constant shift of every component. [ln units]"""
        idx, a = self._im_definition(imt)
        return float(wierde_ln_factor(self.tables.periods[idx]) @ a)

    def ln_im_upper_bound(self, imt, magnitude, rrup_km, zone, branch, n_sd: float = 9.5) -> np.ndarray:
        """A bound ``u`` with P(ln IM > u | M, R_rup) < Phi(-n_sd) (wierde factor excluded). [ln g]

        ``a'ln Y`` is exactly Gaussian (mean ``a'mu``, sd ``s_A``); ln AF <= ln AFmax and the
        site term adds at most ``|eps| phi_S2S <= 1.645 max(s1, s2)`` per period (epistemic) or a
        Gaussian of sd <= ``a'max(s1, s2)`` (aleatory), hence
        ``u = a'mu + a'ln AFmax + n_sd s_A + (1.645 or n_sd) a'max(s1, s2)``. Used by the engine to
        skip (M, R) points whose collapse probabilities are below 1e-20.
        """
        m = np.asarray(magnitude, float)
        r = np.asarray(rrup_km, float)
        idx, a = self._im_definition(imt)
        mu, sd = self._reference(idx, m.reshape(-1), r.reshape(-1), branch)
        corr = self.tables.p2p[np.ix_(idx, idx)]
        cov = sd[:, :, None] * corr[None] * sd[:, None, :]
        s_a = np.sqrt(np.einsum("gij,i,j->g", cov, a, a))
        site = self.site_response(zone, idx, False)
        phi_max = float(a @ np.maximum(site.s1, site.s2))
        k = 1.645 if self.s2s_mode == "epistemic" else n_sd
        u = mu @ a + float(a @ np.log(site.af_max)) + n_sd * s_a + k * phi_max
        return u.reshape(m.shape)

    def exceedance_rrup(self, imt, magnitude, rrup_km, zone, branches, levels_g, wierde: bool = False,
                        y_step: float = 0.02, n_sd: float = 9.5, n_aleatory: int = 16) -> dict[int, np.ndarray]:
        """P(IM > a | M, R_rup) of a single-period IM (``PGA``, ``SA(T)``) at the surface, exactly.

        For one period the surface motion is a deterministic function of the reference motion,
        ``ln Sa = g(ln Y)`` (:func:`surface_ln_sa`: non-linear AF, motion-dependent phi_S2S; not
        always monotone), and ``ln Y ~ N(mu, sd)`` (the median branch, tau, phi_SS and the
        :attr:`component`). So ``P(Sa > a) = P(ln Y in {y: g(y) > ln a})``: g is tabulated on a
        grid of ln Y (step ``y_step`` over ``mu +- n_sd sd`` of all branches), its crossings with
        ln a are located by linear interpolation and the normal probability of the intervals is
        summed (no mixture quadrature). g does not depend on the median or sigma branch, so all
        ``branches`` share it. An aleatory site term is integrated by ``n_aleatory``-point
        Gauss-Hermite quadrature.

        Parameters
        ----------
        imt
            ``"PGA"`` or ``"SA(T)"``.
        magnitude, rrup_km
            (n_mag,) and (n_r,) spanning a grid. [-], [km]
        zone
            Site-response zone.
        branches
            Mappings with gmm_median, gmm_tau, gmm_phi_ss (as :meth:`ln_im_mixture`).
        levels_g
            Intensity levels. [g]

        Returns
        -------
        dict
            gmm_s2s branch index (0 only for an aleatory site term) -> P, (n_branch, n_mag, n_r, n_level).
        """
        idx, a = self._im_definition(imt)
        if idx.size != 1:
            raise ValueError(f"exceedance_rrup needs a single-period IM (PGA, SA(T)), got {imt!r}")
        m = np.atleast_1d(np.asarray(magnitude, float))
        r = np.atleast_1d(np.asarray(rrup_km, float))
        ln_levels = np.log(np.atleast_1d(np.asarray(levels_g, float)))
        mm = np.broadcast_to(m[:, None], (m.size, r.size)).reshape(-1)
        rr = np.broadcast_to(r[None, :], (m.size, r.size)).reshape(-1)
        mus, sds = [], []
        for br in branches:
            mu_b, sd_b = self._reference(idx, mm, rr, br)
            mus.append(mu_b[:, 0])
            sds.append(sd_b[:, 0])
        mu = np.ascontiguousarray(mus)
        sd = np.ascontiguousarray(sds)
        lo = (mu - n_sd * sd).min(axis=0)
        n = int(np.ceil(((mu + n_sd * sd).max(axis=0) - lo).max() / y_step)) + 2
        y = lo[:, None] + y_step * np.arange(n)[None, :]
        c = self._af_at(zone, idx)
        f1 = self._f1(c, mm[:, None], rr[:, None])  # (P, 1)
        site = self.site_response(zone, idx, wierde)
        if self.s2s_mode == "epistemic":
            treatments = {j: [(e, 1.0)] for j, e in enumerate(S2S_EPSILONS)}
        else:
            x, w = hermegauss(n_aleatory)
            treatments = {0: list(zip(x, w / w.sum()))}
        out = {}
        for j, nodes in treatments.items():
            acc = np.zeros((len(mus), mm.size, ln_levels.size))
            for eps, wt in nodes:
                g = surface_ln_sa(y[..., None], f1[:, None, :], site, eps)[..., 0]
                _threshold_exceedance_kernel(np.ascontiguousarray(g), np.ascontiguousarray(lo), float(y_step),
                                             np.ascontiguousarray(ln_levels), mu, sd, float(wt), acc)
            out[j] = np.clip(acc, 0.0, 1.0).reshape(len(mus), m.size, r.size, ln_levels.size)
        return out

    def ln_im_mixtures_rrup(self, imt, magnitude, rrup_km, zone, branch, wierde: bool = False,
                            ln_im_floor: float | None = None) -> dict[int, GaussianMixture]:
        """Mixtures of ln IM at given **rupture** distances (no R_rup quadrature), every s2s branch.

        ``magnitude`` (n_mag,) and ``rrup_km`` (n_r,) span a grid; returns s2s index ->
        :class:`GaussianMixture` of shape (n_mag, n_r, n_quad). With ``ln_im_floor``, grid points
        whose :meth:`ln_im_upper_bound` lies below it are not computed: their components get
        weight 0 (mean = floor - 50, sd = 1), so P(IM > floor) = 0 there (true value < 1e-20).
        The engine's tables integrate these over R_rup given R_hyp by interpolation in ln R_rup.
        """
        m = np.atleast_1d(np.asarray(magnitude, float))
        r = np.atleast_1d(np.asarray(rrup_km, float))
        self._zone_row(zone)
        mm = np.broadcast_to(m[:, None], (m.size, r.size)).reshape(-1)
        rr = np.broadcast_to(r[None, :], (m.size, r.size)).reshape(-1)
        live = np.ones(mm.size, dtype=bool)
        if ln_im_floor is not None:
            live = self.ln_im_upper_bound(imt, mm, rr, zone, branch) >= ln_im_floor
        Q = self.n_quad
        shape = (m.size, r.size, Q)
        w = np.where(live[:, None], self._x_weights[None, :], 0.0)
        out = {}
        parts = self._point_mixtures(imt, mm[live], rr[live], zone, branch, wierde) if live.any() else None
        for j in self._treatments(branch, self._im_definition(imt)[0]):
            mean = np.full((mm.size, Q), (ln_im_floor if ln_im_floor is not None else 0.0) - 50.0)
            sd = np.ones((mm.size, Q))
            if parts is not None:
                mean[live], sd[live] = parts[j]
            out[j] = GaussianMixture(mean.reshape(shape), sd.reshape(shape), w.reshape(shape))
        return out

    def ln_im_mixtures(self, imt, magnitude, distance_km, zone, branch, wierde: bool = False) -> dict[int, GaussianMixture]:
        """:meth:`ln_im_mixture` for every gmm_s2s branch at once (index -> mixture).

        The reference-motion quadrature is shared by the three epistemic site-term branches
        (``h = h0 + eps phi``), so this costs about one branch. ``branch`` needs gmm_median,
        gmm_tau and gmm_phi_ss; with an aleatory site term the dict has the single key 0.
        """
        m = np.atleast_1d(np.asarray(magnitude, float))
        rh = np.atleast_1d(np.asarray(distance_km, float))
        self._im_definition(imt)
        self._zone_row(zone)
        q = self.rrup_nodes(m, rh)
        K = q.n_nodes
        # only the (M, R_rup) nodes that carry weight are computed; zero-weight components copy
        # the first node of their (M, R_hyp) cell
        mm_all = np.broadcast_to(m[:, None, None], q.nodes_km.shape).reshape(-1)
        rr_all = q.nodes_km.reshape(-1)
        w_all = q.weights.reshape(-1)
        live = w_all > 0
        live[::K] = True
        sel = np.flatnonzero(live)
        parts = self._point_mixtures(imt, mm_all[sel], rr_all[sel], zone, branch, wierde)
        Q = self.n_quad
        # scatter back: position of each live node, and a fill index for dead ones
        src = np.cumsum(live) - 1  # for live entries: row in the computed arrays
        first = np.repeat(src[::K], K)
        src = np.where(live, src, first)
        shape = (m.size, rh.size, K * Q)
        w = (q.weights[..., None] * self._x_weights).reshape(shape)
        return {j: GaussianMixture(mean[src].reshape(shape), sd[src].reshape(shape), w) for j, (mean, sd) in parts.items()}

    def ln_im_mixture(self, imt, magnitude, distance_km, zone, branch, wierde: bool = False) -> GaussianMixture:
        """Distribution of ln IM at the surface of ``zone`` [ln g], of the model's :attr:`component`.

        Parameters
        ----------
        imt
            ``"AvgSa"`` (geometric mean of Sa at the 10 periods 0.01-1 s), ``"PGA"`` (Sa(0.01 s))
            or ``"SA(T)"`` at a tabulated period T <= 1 s.
        magnitude
            Magnitudes, shape (n_mag,). [-]
        distance_km
            **Hypocentral** distances, shape (n_dist,), >= 3 km. [km]
        zone
            Site-response zone (ID_V6).
        branch
            Index per tree node: gmm_median, gmm_tau, gmm_phi_ss (and gmm_s2s when epistemic).
        wierde
            Building on a wierde: adds the wierde ln factors (a shift of every component mean).

        Returns
        -------
        GaussianMixture
            ``n_rrup * n_quad`` components per (M, R_hyp) (``n_quad`` for a point source).
        """
        m = np.atleast_1d(np.asarray(magnitude, float))
        rh = np.atleast_1d(np.asarray(distance_km, float))
        j = 0
        if self.s2s_mode == "epistemic":
            j = _branch_index(branch, "gmm_s2s", ("minus1.645", "zero", "plus1.645"))
        key = (imt, m.tobytes(), rh.tobytes(), int(zone) if zone is not None else None, bool(wierde),
               _branch_index(branch, "gmm_median", md.MEDIAN_LEVELS), *self._sigma_key(branch))
        cached = self._mix_cache  # read once: safe when threads share the model (worst case: recomputed)
        if cached is None or cached[0] != key:
            cached = (key, self.ln_im_mixtures(imt, m, rh, zone, branch, wierde))
            self._mix_cache = cached
        return cached[1][j]

    def median_mixture(self, imt, magnitude, distance_km, zone, branch, wierde: bool = False) -> GaussianMixture:
        """The four median branches combined with their magnitude-dependent weights w(M).

        ``sum_b w_b(M) f_b(ln IM)``: the distribution to use when the median branches are treated
        as one mixture per event (eq. 9.8 weights, no rate multipliers). ``branch`` gives the other
        nodes; its ``gmm_median`` entry, if any, is ignored. Components: 4 x :meth:`ln_im_mixture`'s.
        """
        m = np.atleast_1d(np.asarray(magnitude, float))
        wm = self.median_weights(m)  # (n_mag, 4)
        parts = []
        for b in range(len(md.MEDIAN_LEVELS)):
            br = dict(branch)
            br["gmm_median"] = b
            parts.append(self.ln_im_mixture(imt, m, distance_km, zone, br, wierde))
        mean = np.concatenate([p.mean for p in parts], axis=-1)
        sd = np.concatenate([p.sd for p in parts], axis=-1)
        w = np.concatenate([p.weight * wm[:, b, None, None] for b, p in enumerate(parts)], axis=-1)
        return GaussianMixture(mean, sd, w)

    def _sigma_key(self, branch) -> tuple[int, ...]:
        return (_branch_index(branch, "gmm_tau", md.TAU_LEVELS_V7), _branch_index(branch, "gmm_phi_ss", md.PHI_SS_LEVELS))


def median_sa_g(period_s, magnitude, rrup_km, branch, model_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Median reference-horizon (NS_B) Sa of GMM-V7, geometric-mean component. [g]

    Eq. 9.1-9.7 of Bommer et al. (2021), converted from cm/s^2 with 981 cm/s^2 per g.
    ``period_s`` [s] in 0.01-1 s (log-T interpolation between tabulated periods), ``magnitude``
    [-], ``rrup_km`` [km] broadcast together; ``branch`` is the median level (0..3 or its label).
    Tables from ``model_dir`` or ``$HRA_MODEL_DIR``.
    """
    return _model_for(model_dir).median_sa_g(period_s, magnitude, rrup_km, branch)


def sigma_components(period_s, magnitude, rrup_km, branch, model_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Reference-residual standard deviations of GMM-V7 (see :meth:`GroningenV7.sigma_components`)."""
    return _model_for(model_dir).sigma_components(period_s, magnitude, rrup_km, branch)


_MODELS: dict[str, GroningenV7] = {}


def _model_for(model_dir) -> GroningenV7:
    key = str(md.resolve_model_dir(model_dir).resolve())
    if key not in _MODELS:
        _MODELS[key] = GroningenV7(key)
    return _MODELS[key]
