"""Finite-rupture distance: the rupture distance R_rup given magnitude and hypocentral distance.

The Groningen chain computes ground motion with the rupture distance R_rup, while the seismicity
model gives hypocentres (docs/model-chain.md §2, following NAM's "finite rupture simulation" note):

* the rupture is a **vertical line** of length L along strike, with its top edge at the
  hypocentre depth d = 3 km (no down-dip width), so R_rup >= d;
* L follows Leonard (2010, 2012): log10 M0 = 1.5 M + 9.1 (M0 in N·m); log10 M0 = 3 log10 L + 6.1
  below the hinge L_h = 5.5 km, and log10 M0 = 2.5 log10 L + b2 above it, with b2 chosen for
  continuity; the scatter is lognormal with sigma(log10 L) = 0.19 (median L: 0.56 km at M3.5,
  1.78 km at M4.5, 3.16 km at M5.0);
* the hypocentre sits at a uniform position along the rupture: offset o = u L, u ~ U(0, 1);
* for epicentral distance r_e = sqrt(R_hyp^2 - d^2) and azimuth alpha of the site relative to
  the strike, ``R_rup = sqrt((r_e sin a)^2 + max(r_e cos a - o, 0)^2 + d^2)``.

The magnitude is the one the GMM uses (the chain uses KNMI ML as M throughout).

Because o is uniform on (0, L), the rupture segment is distributed symmetrically about the
hypocentre, so R_rup depends on the azimuth only through |sin a| and |cos a|: any azimuth folds
into [0, 90] degrees.

**Azimuth and strike.** The TNO chain uses one field-wide strike (mean -30 degrees, N30W) with a
Gaussian uncertainty of 30 degrees, and the source-to-site azimuth of every cell/node pair
(:func:`relative_azimuth_deg`). Here the site's azimuth a0, seen from the epicentre relative to
the *mean* strike, is given; the actual strike deviates by eps ~ N(0, sd), so the azimuth
relative to the actual strike is ``a = fold(a0 - eps)`` with density on [0, 90] degrees

    f(a | a0, sd) = sum_k [phi((a - a0 - 180 k) / sd) + phi((a + a0 - 180 k) / sd)] / sd

(:func:`folded_azimuth_rule`; sd = 0: a fixed strike). ``azimuth_deg=None`` averages R_rup
uniformly over the azimuth (an unknown strike; ``rupture_strike = "uniform"``).
``point_source=True`` gives R_rup = R_hyp.

Instead of the chain's Monte Carlo (100 to 10^6 samples binned on a grid) the distribution is
returned as a small **Gauss quadrature rule in ln R_rup** (nodes and weights, exact for
polynomials in ln R_rup of degree 2n-1 under a fine deterministic discretisation of
(azimuth, length, offset)), built by the Stieltjes procedure. :func:`sample_rrup` is the
brute-force sampler used to verify it.

References
----------
Leonard, M. (2010). Earthquake fault scaling: self-consistent relating of rupture length, width,
average displacement, and moment release. BSSA 100(5A), 1971-1988. doi:10.1785/0120090189
(erratum BSSA 102(6), 2797, 2012, doi:10.1785/0120120249).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import leggauss

#: Hypocentre (= top of rupture) depth. [km]
DEFAULT_DEPTH_KM = 3.0
#: Lognormal scatter of the rupture length. [log10 units]
SIGMA_LOG10_LENGTH = 0.19
#: Leonard (2010): log10 M0 = MW_POWER * M + MW_SCALE [M0 in N m].
MW_POWER = 1.5
MW_SCALE = 9.1
#: Leonard (2010) small-rupture branch: log10 M0 = A1 log10 L + B1 [L in m].
LEONARD_A1 = 3.0
LEONARD_B1 = 6.1
#: Leonard (2010) large-rupture branch slope and the hinge length. [L in m]
LEONARD_A2 = 2.5
HINGE_LENGTH_M = 5500.0


def leonard_rupture_length_km(magnitude: np.ndarray | float) -> np.ndarray:
    """Median rupture length from Leonard (2010, 2012) with the chain's hinge.

    ``log10 M0 = 1.5 M + 9.1``; ``log10 L = (log10 M0 - 6.1) / 3`` below the hinge moment
    ``log10 M0_h = 3 log10(5500) + 6.1`` and ``(log10 M0 - b2) / 2.5`` above it, with
    ``b2 = log10 M0_h - (2.5/3)(log10 M0_h - 6.1)``.

    Parameters
    ----------
    magnitude
        Moment magnitude (the chain uses ML). [-]

    Returns
    -------
    Median rupture length. [km]
    """
    m = np.asarray(magnitude, dtype=float)
    log_m0 = MW_POWER * m + MW_SCALE
    log_m0_hinge = LEONARD_A1 * np.log10(HINGE_LENGTH_M) + LEONARD_B1
    b2 = log_m0_hinge - (LEONARD_A2 / LEONARD_A1) * (log_m0_hinge - LEONARD_B1)
    log_l_m = np.where(log_m0 > log_m0_hinge, (log_m0 - b2) / LEONARD_A2, (log_m0 - LEONARD_B1) / LEONARD_A1)
    return 10.0 ** (log_l_m - 3.0)


def epicentral_distance_km(r_hyp_km: np.ndarray | float, depth_km: float = DEFAULT_DEPTH_KM) -> np.ndarray:
    """``r_e = sqrt(max(R_hyp^2 - d^2, 0))``. [km]"""
    r = np.asarray(r_hyp_km, dtype=float)
    return np.sqrt(np.maximum(r * r - depth_km * depth_km, 0.0))


def rupture_distance_km(
    r_hyp_km: np.ndarray | float,
    azimuth_deg: np.ndarray | float,
    offset_km: np.ndarray | float,
    depth_km: float = DEFAULT_DEPTH_KM,
) -> np.ndarray:
    """Distance from a site to a vertical line rupture whose top end is the hypocentre's depth.

    ``R_rup = sqrt((r_e sin a)^2 + max(r_e |cos a| - o, 0)^2 + d^2)``.

    Parameters
    ----------
    r_hyp_km
        Hypocentral distance. [km]
    azimuth_deg
        Azimuth of the site relative to the strike (0 = along strike). [degree]
    offset_km
        Along-strike extent of the rupture towards the site from the hypocentre, in [0, L]. [km]
    depth_km
        Hypocentre depth. [km]

    Returns
    -------
    Rupture distance. [km]
    """
    a = np.deg2rad(np.asarray(azimuth_deg, dtype=float))
    r_e = epicentral_distance_km(r_hyp_km, depth_km)
    normal = r_e * np.abs(np.sin(a))
    parallel = np.maximum(r_e * np.abs(np.cos(a)) - np.asarray(offset_km, dtype=float), 0.0)
    return np.sqrt(normal**2 + parallel**2 + depth_km**2)


def relative_azimuth_deg(dx_m: np.ndarray, dy_m: np.ndarray, strike_deg: float = -30.0) -> np.ndarray:
    """Azimuth of the site seen from the epicentre relative to the strike, folded into [0, 90].

    ``a = (strike - atan2(dx, dy)) mod 180``, folded: ``min(a, 180 - a)``; ``dx, dy`` are the
    easting/northing differences site - epicentre (RD New, m). The chain's field-wide strike is
    -30 degrees (N30W).
    """
    az = np.rad2deg(np.arctan2(np.asarray(dx_m, float), np.asarray(dy_m, float)))
    a = np.mod(strike_deg - az, 180.0)
    return np.minimum(a, 180.0 - a)


@dataclass(frozen=True)
class RuptureQuadrature:
    """Quadrature rule of R_rup given (M, R_hyp).

    ``nodes_km[i, j, k]`` and ``weights[i, j, k]`` for magnitude i, hypocentral distance j and
    node k; the weights sum to 1 over k. Nodes with zero weight (degenerate distributions, e.g.
    small magnitudes) sit at the distribution's mean and are harmless.
    """

    nodes_km: np.ndarray
    weights: np.ndarray

    @property
    def n_nodes(self) -> int:
        return int(self.nodes_km.shape[-1])


def fold_azimuth_deg(azimuth_deg: np.ndarray | float) -> np.ndarray:
    """Fold an azimuth relative to the strike into [0, 90]: ``a mod 180``, then ``min(a, 180 - a)``. [degree]"""
    a = np.mod(np.asarray(azimuth_deg, dtype=float), 180.0)
    return np.minimum(a, 180.0 - a)


def folded_azimuth_density(a_deg: np.ndarray, azimuth_deg: float, strike_sd_deg: float) -> np.ndarray:
    """Density on [0, 90] degrees of ``fold(a0 - eps)``, eps ~ N(0, sd^2) (a wrapped and folded Gaussian).

    ``f(a) = sum_k [phi((a - a0 - 180 k)/sd) + phi((a + a0 - 180 k)/sd)] / sd`` [1/degree], the sum
    over the preimages ``+-a + 180 k`` of a under the fold (:func:`fold_azimuth_deg`).

    Parameters
    ----------
    a_deg
        Folded azimuths in [0, 90]. [degree]
    azimuth_deg
        a0, the site's azimuth relative to the mean strike. [degree]
    strike_sd_deg
        Standard deviation of the strike, > 0. [degree]
    """
    a = np.asarray(a_deg, dtype=float)
    sd = float(strike_sd_deg)
    kmax = int(np.ceil(6.0 * sd / 180.0)) + 1
    out = np.zeros_like(a)
    for k in range(-kmax, kmax + 1):
        for sign in (-1.0, 1.0):
            z = (a + sign * azimuth_deg - 180.0 * k) / sd
            out += np.exp(-0.5 * z * z)
    return out / (sd * np.sqrt(2.0 * np.pi))


#: Below this strike sd the rule is Gauss-Hermite in eps (folded node by node). [degree]
HERMITE_BELOW_SD_DEG = 4.0


def folded_azimuth_rule(azimuth_deg: float | None, strike_sd_deg: float | None = None,
                        n_azimuth: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature rule of the azimuth relative to the actual strike, folded into [0, 90]. [degree]

    * ``azimuth_deg=None``: uniform on [0, 90] (``n_azimuth`` Gauss-Legendre nodes);
    * ``strike_sd_deg`` None or 0: the single node ``fold(a0)``;
    * sd < :data:`HERMITE_BELOW_SD_DEG`: ``fold(a0 - sd z_i)`` at ``n_azimuth`` Gauss-Hermite
      nodes z_i (probabilists');
    * otherwise composite Gauss-Legendre (8 nodes per panel, panels of at most min(sd, 30) degrees)
      on [0, 90] with the weights times :func:`folded_azimuth_density`.

    Returns
    -------
    nodes_deg, weights
        Weights sum to 1.
    """
    if azimuth_deg is None:
        xa, wa = leggauss(n_azimuth)
        return (xa + 1.0) * 45.0, wa / 2.0
    sd = 0.0 if strike_sd_deg is None else float(strike_sd_deg)
    if sd <= 0.0:
        return np.atleast_1d(fold_azimuth_deg(float(azimuth_deg))), np.array([1.0])
    if sd < HERMITE_BELOW_SD_DEG:
        z, wz = hermegauss(n_azimuth)
        return fold_azimuth_deg(float(azimuth_deg) - sd * z), wz / wz.sum()
    n_panel = int(np.ceil(90.0 / min(sd, 30.0)))
    xg, wg = leggauss(8)
    edges = np.linspace(0.0, 90.0, n_panel + 1)
    half = np.diff(edges)[:, None] / 2.0
    nodes = (edges[:-1, None] + half * (xg[None, :] + 1.0)).reshape(-1)
    w = (half * wg[None, :]).reshape(-1) * folded_azimuth_density(nodes, float(azimuth_deg), sd)
    return nodes, w / w.sum()


def _discrete_measure(m: float, r_hyp: np.ndarray, azimuth_deg: float | None, depth_km: float,
                      sigma_log10_length: float, n_azimuth: int, n_length: int, n_offset: int,
                      strike_sd_deg: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fine deterministic discretisation of R_rup | (M, R_hyp): atoms (n_r, A) and weights (n_r, A).

    Azimuth: :func:`folded_azimuth_rule` (uniform on [0, 90] degrees, a fixed value, or the
    folded Gaussian of a strike with sd ``strike_sd_deg`` about ``azimuth_deg``); ln L:
    Gauss-Hermite; offset: the part of (0, L) where the closest rupture point moves
    (u < r_e cos a / L) by Gauss-Legendre, the rest (where the closest point is the
    perpendicular foot) as one atom.
    """
    if azimuth_deg is None:  # (the uniform rule in radians as before: bit-identical atoms)
        xa, wa = leggauss(n_azimuth)
        alpha = (xa + 1.0) * (np.pi / 4.0)
        w_alpha = wa / 2.0
    elif strike_sd_deg is None or strike_sd_deg <= 0.0:
        alpha = np.array([np.deg2rad(float(azimuth_deg))])
        w_alpha = np.array([1.0])
    else:
        a_deg, w_alpha = folded_azimuth_rule(azimuth_deg, strike_sd_deg, n_azimuth)
        alpha = np.deg2rad(a_deg)
    z, wz = hermegauss(n_length)
    wz = wz / wz.sum()
    xu, wu = leggauss(n_offset)
    xu = (xu + 1.0) / 2.0
    wu = wu / 2.0
    length = leonard_rupture_length_km(m) * 10.0 ** (sigma_log10_length * z)  # (nz,)

    r_e = epicentral_distance_km(r_hyp, depth_km)[:, None, None]  # (nr,1,1)
    p = r_e * np.abs(np.cos(alpha))[None, :, None]  # (nr,na,1)
    nrm = r_e * np.abs(np.sin(alpha))[None, :, None]
    L = length[None, None, :]  # (1,1,nz)
    uc = np.minimum(1.0, p / L)  # (nr,na,nz) moving fraction of offsets
    w_base = w_alpha[None, :, None] * wz[None, None, :]
    # moving part: u = uc * xu
    par = np.maximum(p[..., None] - (uc[..., None] * xu) * L[..., None], 0.0)  # (nr,na,nz,nu)
    r_mov = np.sqrt(nrm[..., None] ** 2 + par**2 + depth_km**2)
    w_mov = (w_base * uc)[..., None] * wu
    r_atom = np.sqrt(nrm**2 + depth_km**2) * np.ones_like(uc)
    w_atom = w_base * (1.0 - uc)
    n_r = r_hyp.shape[0]
    atoms = np.concatenate([r_mov.reshape(n_r, -1), r_atom.reshape(n_r, -1)], axis=1)
    weights = np.concatenate([w_mov.reshape(n_r, -1), w_atom.reshape(n_r, -1)], axis=1)
    return atoms, weights


def gauss_rule_from_measure(x: np.ndarray, w: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n-point Gauss rule of a discrete measure (Stieltjes procedure + Golub-Welsch), batched.

    Parameters
    ----------
    x, w
        Atoms and non-negative weights, shape (..., A); weights need not be normalised.
    n
        Number of nodes.

    Returns
    -------
    nodes, weights
        Shape (..., n); weights sum to 1. Where the measure has fewer than n distinct atoms the
        extra nodes get zero weight (placed at the mean).
    """
    x = np.asarray(x, float)
    w = np.asarray(w, float)
    w = w / w.sum(axis=-1, keepdims=True)
    mean = np.sum(w * x, axis=-1, keepdims=True)
    sd = np.sqrt(np.maximum(np.sum(w * (x - mean) ** 2, axis=-1, keepdims=True), 0.0))
    scale = np.maximum(np.abs(mean), 1.0)
    degenerate = sd[..., 0] <= 1e-12 * scale[..., 0]
    sd_safe = np.where(sd > 1e-12 * scale, sd, 1.0)
    y = (x - mean) / sd_safe
    shape = x.shape[:-1]
    a = np.zeros(shape + (n,))
    b = np.zeros(shape + (n,))
    p_prev = np.zeros_like(y)
    p = np.ones_like(y)
    norm_prev = np.ones(shape)
    alive = ~degenerate
    for k in range(n):
        norm = np.sum(w * p * p, axis=-1)
        if k > 0:
            ok = alive & (norm > 1e-11 * norm_prev)
            b[..., k] = np.where(ok, norm / np.where(norm_prev > 0, norm_prev, 1.0), 0.0)
            alive = ok
        a[..., k] = np.where(alive, np.sum(w * y * p * p, axis=-1) / np.where(norm > 0, norm, 1.0), 0.0)
        p_next = np.where(alive[..., None], (y - a[..., k, None]) * p - b[..., k, None] * p_prev, 0.0)
        p_prev, p = p, p_next
        norm_prev = np.where(alive, norm, norm_prev)
    J = np.zeros(shape + (n, n))
    idx = np.arange(n)
    J[..., idx, idx] = a
    off = np.sqrt(b[..., 1:])
    J[..., idx[:-1], idx[1:]] = off
    J[..., idx[1:], idx[:-1]] = off
    lam, vec = np.linalg.eigh(J)
    wts = vec[..., 0, :] ** 2
    wts = wts / wts.sum(axis=-1, keepdims=True)
    nodes = mean + sd_safe * lam
    # zero-weight nodes of a decoupled Jacobi block: park them at the mean
    nodes = np.where(wts < 1e-15, mean, nodes)
    nodes = np.clip(nodes, x.min(axis=-1, keepdims=True), x.max(axis=-1, keepdims=True))
    if np.any(degenerate):
        nodes[degenerate] = mean[degenerate]
        wd = np.zeros(n)
        wd[0] = 1.0
        wts[degenerate] = wd
    return nodes, wts


def nodes_needed(sd_log_rrup: np.ndarray, n_max: int, collapse_sd: float = 0.002) -> np.ndarray:
    """Number of Gauss nodes for a given spread of ln R_rup (at most ``n_max``).

    A k-node Gauss rule integrates exp(kappa s) (s: the deviation of ln R_rup, sd sigma_s) with a
    relative error of about (kappa sigma_s)^(2k)/(2k)!; the steepest ground-motion tails met here
    have kappa ~ 20 per ln-unit of distance (ln-IM slope ~2.5 per ln R times a tail z/sigma ~ 8),
    and the linear AF has kinks in R where M_ref1(R) crosses M, which slow convergence. The
    thresholds (checked against a fine composite rule, P(IM > a) down to 1e-6): 1 node below
    ``collapse_sd``, 2 below 0.01, 3 below 0.025, 4 below 0.05, 5 below 0.08, 6 below 0.12,
    else ``n_max``.
    """
    sd = np.asarray(sd_log_rrup, float)
    k = np.select([sd < collapse_sd, sd < 0.01, sd < 0.025, sd < 0.05, sd < 0.08, sd < 0.12], [1, 2, 3, 4, 5, 6], n_max)
    return np.minimum(k, n_max).astype(int)


def rrup_quadrature(
    magnitude: np.ndarray | float,
    r_hyp_km: np.ndarray | float,
    n_nodes: int = 8,
    azimuth_deg: float | None = None,
    point_source: bool = False,
    depth_km: float = DEFAULT_DEPTH_KM,
    sigma_log10_length: float = SIGMA_LOG10_LENGTH,
    n_azimuth: int = 24,
    n_length: int = 16,
    n_offset: int = 12,
    collapse_sd: float = 0.002,
    strike_sd_deg: float | None = None,
) -> RuptureQuadrature:
    """Quadrature nodes and weights of R_rup given (M, R_hyp), on the grid magnitude x distance.

    A Gauss rule in ln R_rup (``n_nodes`` nodes) for the distribution of the chain's finite-rupture
    model (module docstring): vertical line rupture, Leonard (2010) length with
    sigma(log10 L) = 0.19, hypocentre at the top, uniform along-strike offset.

    Parameters
    ----------
    magnitude
        Magnitudes, shape (n_mag,). [-]
    r_hyp_km
        Hypocentral distances, shape (n_dist,), each >= ``depth_km``. [km]
    n_nodes
        Number of quadrature nodes per (M, R_hyp).
    azimuth_deg
        Azimuth a0 of the site seen from the epicentre relative to the (mean) strike [degree];
        ``None`` (default) averages uniformly over the azimuth.
    point_source
        If True, R_rup = R_hyp (one node of weight 1).
    depth_km
        Hypocentre depth. [km]
    sigma_log10_length
        Lognormal scatter of the rupture length. [log10 units]
    n_azimuth, n_length, n_offset
        Resolution of the underlying deterministic discretisation.
    collapse_sd
        Where sd(ln R_rup) is below this, one node at the mean of ln R_rup carries all the
        weight; above it the number of nodes grows with the spread (:func:`nodes_needed`), up
        to ``n_nodes``; unused nodes get weight 0.
    strike_sd_deg
        Standard deviation of the strike about its mean [degree] (with ``azimuth_deg``): the
        azimuth relative to the actual strike is ``fold(a0 - eps)``, eps ~ N(0, sd^2)
        (:func:`folded_azimuth_rule`); ``None`` or 0: a fixed strike.

    Returns
    -------
    RuptureQuadrature
        ``nodes_km`` and ``weights`` of shape (n_mag, n_dist, n_nodes) (n_nodes = 1 for a point source).
    """
    mags = np.atleast_1d(np.asarray(magnitude, dtype=float))
    r = np.atleast_1d(np.asarray(r_hyp_km, dtype=float))
    if np.any(r < depth_km - 1e-9):
        raise ValueError(f"hypocentral distance must be >= the hypocentre depth {depth_km} km; got min {r.min()}")
    r = np.maximum(r, depth_km)
    if point_source:
        nodes = np.broadcast_to(r[None, :, None], (mags.size, r.size, 1)).copy()
        return RuptureQuadrature(nodes, np.ones_like(nodes))
    nodes = np.empty((mags.size, r.size, n_nodes))
    weights = np.empty_like(nodes)
    for i, m in enumerate(mags):
        atoms, w = _discrete_measure(m, r, azimuth_deg, depth_km, sigma_log10_length, n_azimuth, n_length, n_offset,
                                     strike_sd_deg)
        lt = np.log(atoms)
        wn = w / w.sum(axis=-1, keepdims=True)
        mean = np.sum(wn * lt, axis=-1)
        sd = np.sqrt(np.maximum(np.sum(wn * lt * lt, axis=-1) - mean**2, 0.0))
        n_need = nodes_needed(sd, n_nodes, collapse_sd)
        t = np.repeat(mean[:, None], n_nodes, axis=1)
        wt = np.zeros((r.size, n_nodes))
        wt[:, 0] = 1.0
        for k in np.unique(n_need):
            if k <= 1:
                continue
            rows = n_need == k
            tk, wk = gauss_rule_from_measure(lt[rows], w[rows], int(k))
            t[rows, :k] = tk
            wt[rows, :k] = wk
            wt[rows, k:] = 0.0
        nodes[i] = np.exp(t)
        weights[i] = wt
    return RuptureQuadrature(nodes, weights)


def rrup_log_moments(
    magnitude: np.ndarray | float,
    r_hyp_km: np.ndarray | float,
    azimuth_deg: float | None = None,
    depth_km: float = DEFAULT_DEPTH_KM,
    sigma_log10_length: float = SIGMA_LOG10_LENGTH,
    n_azimuth: int = 24,
    n_length: int = 16,
    n_offset: int = 12,
    strike_sd_deg: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of ln R_rup given (M, R_hyp), shape (n_mag, n_dist) each
    (arguments as :func:`rrup_quadrature`)."""
    mags = np.atleast_1d(np.asarray(magnitude, dtype=float))
    r = np.maximum(np.atleast_1d(np.asarray(r_hyp_km, dtype=float)), depth_km)
    mean = np.empty((mags.size, r.size))
    sd = np.empty_like(mean)
    for i, m in enumerate(mags):
        atoms, w = _discrete_measure(m, r, azimuth_deg, depth_km, sigma_log10_length, n_azimuth, n_length, n_offset,
                                     strike_sd_deg)
        t = np.log(atoms)
        mean[i] = np.sum(w * t, axis=-1)
        sd[i] = np.sqrt(np.maximum(np.sum(w * t * t, axis=-1) - mean[i] ** 2, 0.0))
    return mean, sd


def sample_rrup(
    magnitude: float,
    r_hyp_km: float,
    n: int,
    rng: np.random.Generator,
    azimuth_deg: float | None = None,
    depth_km: float = DEFAULT_DEPTH_KM,
    sigma_log10_length: float = SIGMA_LOG10_LENGTH,
) -> np.ndarray:
    """Brute-force Monte Carlo draws of R_rup for one (M, R_hyp) (for verification).

    Length ``L = L_med(M) 10^(sigma z)``, offset ``u L`` with u ~ U(0, 1), azimuth uniform on
    [0, 90] degrees (or fixed). Returns ``n`` rupture distances. [km]
    """
    length = leonard_rupture_length_km(magnitude) * 10.0 ** (sigma_log10_length * rng.standard_normal(n))
    offset = length * rng.random(n)
    az = rng.random(n) * 90.0 if azimuth_deg is None else np.full(n, float(azimuth_deg))
    return rupture_distance_km(r_hyp_km, az, offset, depth_km)
