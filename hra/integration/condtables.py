"""Conditional collapse and death probabilities per event for models with many mixture components.

The engine's default (:func:`hra.integration.engine.death_tables`) evaluates, for every (M, R) point, every
mixture component and every fragility curve, ``Phi((mu_q - ln theta) / sqrt(s_q^2 + beta^2))``.
For GMM V7 this is 320 components x 35 typologies x 3 fragility branches x 3 states at each of
~5,000 (M, R_hyp) points and 72 GMM branches per site: hours per site. This module computes the
same quantities in three cheaper, deterministic steps:

1. **Mixtures on an (M, R_rup) grid.** The model gives the distribution of ln IM on a grid of
   rupture distances (:func:`rrup_grid`: for a finite rupture equal steps of at most 0.1 in
   ln R between the path-term kinks, 35 distances from 3 to 70 km; for a point source the
   engine's distance nodes; no R_rup quadrature yet: 40 components per point instead of up to
   320), skipping points whose motion cannot reach the weakest fragility curve
   (:meth:`~hra.gmm.groningen_v7.GroningenV7.ln_im_upper_bound`; the skipped probabilities
   are below 1e-20).
2. **Fragility by a matrix product.** The mixture density is tabulated on a uniform ln IM grid
   (step h <= min component sd / 1.5, at most 0.05) by :func:`hra.integration.kernels.mixture_density`, and
   ``P(CS >= k) = sum_j p(x_j) h Phi((x_j - ln theta) / beta)``, for all typologies, branches
   and states at once (BLAS). The trapezoid rule on the real line is spectrally accurate for
   these smooth integrands: the error is of order ``exp(-2 pi^2 (s/h)^2)`` (< 1e-16 here), i.e.
   the result equals the closed form per component to rounding. A wierde (dwelling mound)
   shift of ln IM is a shift of the fragility grid, so both variants of a zone share step 1.
3. **R_rup given R_hyp.** ``P(. | M, R_hyp) = sum_n w_n P(. | M, R_rup,n)`` with the model's
   R_rup quadrature (:meth:`rrup_nodes`), ``ln P`` interpolated cubically in ``ln R_rup``
   (4-point Lagrange inside each piece between kinks; :func:`hra.integration.kernels.lnr_interpolate_cubic`).
   ``ln P`` is smooth between kinks (for a Gaussian tail it is nearly quadratic in ln R, which
   a cubic reproduces), so the grid of step 0.1 is as accurate as the former linear
   interpolation on the engine's 96 distance nodes (step 0.033) at a third of the points:
   against the closed form over the full finite-rupture mixture (V7, 35 typologies x 3
   fragility branches, zones 1001 and 110) the largest relative error of P > 1e-12 is
   1.2e-3 (linear on 96 nodes: 2.0e-3), the 99th percentile 5.6e-4 (7.0e-4). Contributions
   below 1e-20 are dropped (more than half the entries of a zone's tables; they carry no
   information). For a point source the nodes are grid points and nothing is interpolated.
   With a strike model (``[ground_motion] rupture_strike``) this step runs once per
   relative-azimuth node of the model (:func:`azimuth_nodes`: 0, 45 and 90 degrees for the
   default sd of 30 degrees): the tables' distance axis becomes (R_hyp node, azimuth node);
   steps 1 and 2 are shared by all azimuths.

``tests/groningen/test_condtables.py`` checks the result against the direct closed-form sum
over the full finite-rupture mixture (:func:`hra.integration.engine.death_tables`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from hra.core.executor import single_thread_blas
from hra.integration import kernels
from hra.gmm.base import GaussianMixture

#: Density window and fragility cut-off, in standard deviations (Phi(-9.5) ~ 1e-21).
N_SD = 9.5
#: Largest ln-IM grid step; the step is also at most the smallest component sd / 1.5.
MAX_STEP = 0.05
#: Largest ln R step of the R_rup grid of finite ruptures (:func:`rrup_grid`).
RRUP_LN_STEP = 0.1
#: Precision of the grid products in :func:`rrup_death_tables` (:func:`grid_probabilities`'
#: ``dtype``): float32 halves their cost; its ~1e-6 relative rounding is far below the R_rup
#: interpolation's error (~1e-3) and the models' own uncertainty.
TABLE_PRODUCT_DTYPE = np.float32


def supports(gmm) -> bool:
    """True if the model offers mixtures at given rupture distances (the grid path)."""
    return hasattr(gmm, "ln_im_mixtures_rrup") and hasattr(gmm, "rrup_nodes")


def curve_floor(ln_median: np.ndarray, beta: np.ndarray) -> float:
    """Lowest ln IM at which any of the curves exceeds Phi(-N_SD); ``inf`` if there is none."""
    ok = np.isfinite(ln_median)
    if not ok.any():
        return np.inf
    return float(np.min(ln_median[ok] - N_SD * beta[ok]))


def grid_probabilities(mix: GaussianMixture, ln_median: np.ndarray, beta: np.ndarray,
                       shifts: tuple[float, ...] = (0.0,), max_shift: float | None = None,
                       floor: float | None = None, dtype=np.float64) -> list[np.ndarray]:
    """``E[Phi((ln IM + shift - ln_median_c) / beta_c)]`` per mixture row, for every curve c.

    Parameters
    ----------
    mix
        Mixture of ln IM [ln g], arrays (..., q).
    ln_median, beta
        Lognormal curves, (J,) each; ``-inf`` medians give 0.
    shifts
        Constant shifts of ln IM (wierde factors); one result per shift.
    max_shift
        Largest shift the grid allows for (default: ``max(shifts)``); fixing it makes the result
        for one shift independent of the other shifts asked for.
    floor
        Lowest ln IM of the grid before shifting [ln g] (default: :func:`curve_floor` of the
        curves given); fixing it (e.g. to the floor of every typology of the model) makes the
        result for one curve independent of the other curves asked for.
    dtype
        Precision of the matrix product (density x fragility): ``np.float64`` (default: equal
        to the closed form to ~1e-12) or ``np.float32`` (half the cost; relative error ~1e-6 of
        every probability above 1e-30, far below the other approximations of the tables; the
        density and the curves are computed in float64 and rounded). The result is float64.

    Returns
    -------
    list of arrays (..., J) in [0, 1], one per shift.
    """
    lead = mix.mean.shape[:-1]
    mean = mix.mean.reshape(-1, mix.mean.shape[-1])
    sd = mix.sd.reshape(mean.shape)
    w = mix.weight.reshape(mean.shape)
    ln_median = np.asarray(ln_median, float).reshape(-1)
    beta = np.asarray(beta, float).reshape(-1)
    J = ln_median.size
    outs = [np.zeros((mean.shape[0], J)) for _ in shifts]
    cols = np.flatnonzero(np.isfinite(ln_median))
    if cols.size == 0:
        return [o.reshape(lead + (J,)) for o in outs]
    base = curve_floor(ln_median, beta) if floor is None else min(floor, curve_floor(ln_median, beta))
    x_lo = base - (max(shifts) if max_shift is None else max(max_shift, *shifts))
    top = np.where(w > 0, mean + N_SD * sd, -np.inf)
    rows = np.flatnonzero(top.max(axis=1) >= x_lo)
    if rows.size == 0:
        return [o.reshape(lead + (J,)) for o in outs]
    relevant = (w[rows] > 0) & (top[rows] >= x_lo)
    x_hi = float(top[rows].max())
    s_min = float(sd[rows][relevant].min())
    h = min(MAX_STEP, max(s_min, 1e-3) / 1.5)
    nx = int(np.ceil((x_hi - x_lo) / h)) + 2
    x = x_lo + h * np.arange(nx)
    dtype = np.dtype(dtype)
    # the density in the product's precision (each row summed in float64 and rounded once)
    dens = np.zeros((rows.size, nx), dtype=dtype)
    all_rows = rows.size == mean.shape[0]
    # (every row kept, the usual case: the mixture's own arrays, no gathered copies)
    part = (lambda a: np.ascontiguousarray(a)) if all_rows else (lambda a: np.ascontiguousarray(a[rows]))
    kernels.mixture_density(part(mean), part(sd), part(w), x_lo, h, N_SD, dens)
    all_cols = cols.size == J
    for o, shift in zip(outs, shifts):
        g = ndtr((x[:, None] + shift - ln_median[None, cols]) / beta[None, cols])
        p = dens @ (g if dtype == np.float64 else g.astype(dtype))
        np.minimum(p, 1.0, out=p)  # in place: cheaper than np.clip, the same values
        np.maximum(p, 0.0, out=p)
        # plain slices where possible: a fancy (rows x cols) assignment costs more than the product
        if all_rows and all_cols:
            o[...] = p
        elif all_cols:
            o[rows] = p
        elif all_rows:
            o[:, cols] = p
        else:
            o[np.ix_(rows, cols)] = p
    return [o.reshape(lead + (J,)) for o in outs]


def rrup_grid(gmm, r_hyp: np.ndarray) -> np.ndarray:
    """The R_rup grid on which the mixtures are computed [km].

    Its ends are those of ``r_hyp`` and it holds the model's kink distances (``rrup_kinks_km``:
    hinges of the path term) inside that range, so that ln P is smooth between the kinks. A point
    source (``gmm.rupture == "point"``): the R_hyp nodes themselves plus the kinks (its R_rup
    nodes are grid points: nothing is interpolated). A finite rupture: between consecutive kinks
    (and ends) equal steps in ln R of at most :data:`RRUP_LN_STEP`, whatever ``r_hyp`` holds in
    between (the R_rup quadrature is interpolated cubically in ln R on it, :func:`_over_rrup`).
    """
    r_hyp = np.asarray(r_hyp, float)
    kinks = np.asarray(getattr(gmm, "rrup_kinks_km", ()), float)
    kinks = kinks[(kinks > r_hyp.min()) & (kinks < r_hyp.max())]
    if getattr(gmm, "rupture", "finite") != "point":
        ends = np.log(np.unique(np.concatenate([[r_hyp.min(), r_hyp.max()], kinks])))
        pieces = [np.linspace(a, b, max(1, int(np.ceil((b - a) / RRUP_LN_STEP - 1e-9))) + 1)[:-1]
                  for a, b in zip(ends[:-1], ends[1:])]
        grid = np.exp(np.concatenate(pieces + [ends[-1:]]))
        grid[0], grid[-1] = r_hyp.min(), r_hyp.max()
        for k in kinks:  # the kinks exactly (not exp(log(k)))
            grid[np.argmin(np.abs(grid - k))] = k
        return grid
    grid = np.unique(np.concatenate([r_hyp, kinks]))
    # drop R_hyp nodes closer than 1e-3 in ln R to a kink (keeps the intervals well-conditioned)
    near = np.zeros(grid.size, dtype=bool)
    for k in kinks:
        near |= (np.abs(np.log(grid / k)) < 1e-3) & (grid != k)
    return grid[~near]


def azimuth_nodes(gmm) -> np.ndarray | None:
    """The model's relative-azimuth nodes [degree] (a strike model with a finite rupture), or None."""
    a = getattr(gmm, "azimuth_nodes_deg", None)
    return None if a is None else np.asarray(a, float)


def n_azimuth(gmm) -> int:
    """Length of the tables' azimuth axis (1 without a strike model)."""
    a = azimuth_nodes(gmm)
    return 1 if a is None else int(a.size)


def azimuth_harmonics(gmm) -> int:
    """Number K of cosine harmonics ``cos(2 k a0)``, k < K, that carry the engine tables' azimuth
    axis (K = the number of azimuth nodes, interpolated exactly in those harmonics:
    :func:`hra.gmm.groningen_v7.strike_azimuth_nodes`), or 0 (nodes with linear interpolation)."""
    a = azimuth_nodes(gmm)
    return 0 if a is None or not getattr(gmm, "azimuth_harmonic", False) else int(a.size)


def azimuth_projection(gmm) -> np.ndarray | None:
    """(K, K) map of tables at the K azimuth nodes onto the coefficients of the K harmonics
    ``cos(2 k a0)`` that interpolate them (:func:`azimuth_harmonics`), or None (nodes kept)."""
    k = azimuth_harmonics(gmm)
    if k == 0:
        return None
    basis = np.cos(2.0 * np.deg2rad(azimuth_nodes(gmm))[:, None] * np.arange(k)[None, :])  # (A, K)
    return np.linalg.inv(basis)


def n_azimuth_rows(gmm) -> int:
    """Length of the azimuth axis of the engine's tables (nodes or harmonics: the same number)."""
    return n_azimuth(gmm)


def project_azimuth(gmm, q: np.ndarray, axis: int, n_r: int, n_basis: int = 1) -> np.ndarray:
    """Tables whose ``axis`` is (distance node, azimuth node, basis) flattened onto the harmonics of
    :func:`azimuth_projection` along the azimuth: the same axis with K instead of A azimuth rows
    (unchanged without a projection)."""
    proj = azimuth_projection(gmm)
    if proj is None:
        return q
    q = np.moveaxis(q, axis, -1)
    lead = q.shape[:-1]
    x = q.reshape(lead + (n_r, proj.shape[1], n_basis))
    y = np.einsum("ka,...rab->...rkb", proj, x)
    return np.moveaxis(y.reshape(lead + (n_r * proj.shape[0] * n_basis,)), -1, axis)


def warm_rrup_cache(gmm, mag_nodes: np.ndarray, r_hyp: np.ndarray) -> None:
    """Compute the model's R_rup quadratures (per azimuth node with a strike model) into its cache
    once, so that they travel with the model to every zone task instead of being redone there."""
    if azimuth_nodes(gmm) is None:
        gmm.rrup_nodes(mag_nodes, r_hyp)
        return
    for a0 in azimuth_nodes(gmm):  # (the azimuth-averaged rule is not used by the tables then)
        gmm.rrup_nodes(mag_nodes, r_hyp, azimuth_deg=float(a0))


#: ln R_rup nodes and weights of the R_rup rules, stacked over the azimuth nodes (:func:`_stacked_rules`),
#: keyed by the ids of the rules (kept in the value, so an id cannot be reused while cached).
_STACKED: dict = {}


def _stacked_rules(gmm, mag_nodes: np.ndarray, r_hyp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(m, r * A, n) ln R_rup nodes and weights of the model's R_rup quadratures given (M, R_hyp),
    row ``r * A + a`` for azimuth node a (A = 1 without a strike model; rules with fewer nodes
    padded with weight 0), computed once per set of rules."""
    az = azimuth_nodes(gmm)
    rules = (gmm.rrup_nodes(mag_nodes, r_hyp),) if az is None else tuple(
        gmm.rrup_nodes(mag_nodes, r_hyp, azimuth_deg=float(a0)) for a0 in az)
    key = tuple(id(q) for q in rules)
    hit = _STACKED.get(key)
    if hit is not None and all(x is y for x, y in zip(hit[0], rules)):
        return hit[1], hit[2]
    n = max(q.weights.shape[-1] for q in rules)
    shape = (mag_nodes.size, r_hyp.size, len(rules), n)
    ln_nodes, weights = np.zeros(shape), np.zeros(shape)
    for a, q in enumerate(rules):
        k = q.weights.shape[-1]
        ln_nodes[:, :, a, :k] = np.log(q.nodes_km)
        ln_nodes[:, :, a, k:] = ln_nodes[:, :, a, :1]
        weights[:, :, a, :k] = q.weights
    ln_nodes = ln_nodes.reshape(shape[0], -1, n)
    weights = weights.reshape(shape[0], -1, n)
    if len(_STACKED) >= 8:
        _STACKED.clear()
    _STACKED[key] = (rules, ln_nodes, weights)
    return ln_nodes, weights


def _ln_grid(p_grid: np.ndarray) -> np.ndarray:
    """ln P of grid probabilities, C order whatever the layout of ``p_grid`` (P clamped at 1e-300)."""
    ln_p = np.empty(p_grid.shape)
    np.maximum(p_grid, 1e-300, out=ln_p)
    np.log(ln_p, out=ln_p)
    return ln_p


def _over_rrup(gmm, p_grid: np.ndarray, r_grid: np.ndarray, mag_nodes: np.ndarray, r_hyp: np.ndarray) -> np.ndarray:
    """(m, g, J) on the R_rup grid -> (m, r, J) given R_hyp (cubic interpolation of ln P in ln R
    between the model's kinks, :func:`hra.integration.kernels.lnr_interpolate_cubic`, float32 sums:
    ~1e-7 relative, values below float32's range 0).

    With a strike model (:func:`azimuth_nodes`) the distance axis is (R_hyp node r, azimuth node a)
    flattened, ``r * A + a``: one R_rup quadrature per relative azimuth a0 (the mixtures on the
    grid, ``p_grid``, do not depend on it), all in one kernel call (:func:`_stacked_rules`)."""
    ln_p = _ln_grid(p_grid)
    kinks = np.asarray(getattr(gmm, "rrup_kinks_km", ()), float)
    ln_nodes, weights = _stacked_rules(gmm, mag_nodes, r_hyp)
    out = np.empty((mag_nodes.size, ln_nodes.shape[1], p_grid.shape[-1]))
    kernels.lnr_interpolate_cubic(ln_p, np.log(r_grid), np.isin(r_grid, kinks), ln_nodes, weights, out)
    return out


#: Magnitude nodes per block of :func:`_death_over_rrup` (1: the block of P(CS >= k) given R_hyp stays
#: in the cache between the interpolation that writes it and the death kernel that reads it).
DEATH_M_BLOCK = 1


def _death_coef(fragility, t_sel, p: float) -> np.ndarray:
    """(t, c, k) death weight of collapse state k: ``p dPd_in + (1 - p) dPd_out``."""
    d_in = np.diff(fragility.p_death_inside[t_sel], axis=-1, prepend=0.0)  # (t, c, k)
    d_out = np.diff(fragility.p_death_outside[t_sel], axis=-1, prepend=0.0)
    return np.ascontiguousarray(p * d_in + (1.0 - p) * d_out)


def _death_over_rrup(gmm, fragility, t_sel, p_grid: np.ndarray, d_grid: np.ndarray | None, r_grid: np.ndarray,
                     mag_nodes: np.ndarray, r_hyp: np.ndarray, dtype=np.float64, rounded: bool = True) -> np.ndarray:
    """Death tables (t, f, c, m, r) from P(CS >= k) on the R_rup grid ``p_grid`` (m, g,
    t * f * k) and the direct deaths' ``d_grid`` (m, g, t * c) or ``None``: :func:`_over_rrup` of
    both then :func:`death_from_exceedance` rounded to the tables' precision, the same values, computed
    :data:`DEATH_M_BLOCK` magnitudes at a time (the interpolation writes a block in the
    (m, j, r) layout, ``lnr_interpolate_cubic(..., j_major=True)``, and
    :func:`hra.integration.kernels.death_from_nested` reads it while it is in the cache: no
    full-size intermediate tables). ``dtype``: of the result, float64 or float32 (the values are
    float32's of 16 significant bits either way, :func:`hra.integration.kernels.round_table`; with
    ``rounded=False`` not rounded, float64: :func:`hra.review.explain`'s parts of a table, whose sum it
    rounds)."""
    t_sel = np.atleast_1d(np.asarray(t_sel))
    p = fragility.presence_inside
    coef = _death_coef(fragility, t_sel, p)
    T, C, K = coef.shape
    F = fragility.median_g.shape[1]
    M = mag_nodes.size
    kinks = np.asarray(getattr(gmm, "rrup_kinks_km", ()), float)
    ln_r, kink = np.log(r_grid), np.isin(r_grid, kinks)
    ln_nodes, weights = _stacked_rules(gmm, mag_nodes, r_hyp)
    R = ln_nodes.shape[1]
    ln_p = _ln_grid(p_grid)
    use_direct = d_grid is not None and p < 1.0
    ln_d = _ln_grid(d_grid) if use_direct else None
    death = np.empty((T, F, C, M, R), dtype=dtype)
    nb = DEATH_M_BLOCK
    pbuf = np.empty((nb, T * F * K, R))
    dbuf = np.empty((nb, T * C, R)) if use_direct else np.empty((0, 0, 0, 0))
    for m0 in range(0, M, nb):
        m1 = min(M, m0 + nb)
        n = m1 - m0
        kernels.lnr_interpolate_cubic(ln_p[m0:m1], ln_r, kink, ln_nodes[m0:m1], weights[m0:m1], pbuf[:n], True)
        if use_direct:
            kernels.lnr_interpolate_cubic(ln_d[m0:m1], ln_r, kink, ln_nodes[m0:m1], weights[m0:m1], dbuf[:n], True)
        kernels.death_from_nested(pbuf[:n].reshape(n, T, F, K, R), coef,
                                  dbuf[:n].reshape(n, T, C, R) if use_direct else dbuf, float(1.0 - p), rounded,
                                  death, m0)
    return death


def death_from_exceedance(fragility, t_sel, pexc: np.ndarray, direct: np.ndarray | None,
                          presence_inside: float | None = None, round_f32: bool = False) -> np.ndarray:
    """Death probability per event (t, f, c, m, r) from P(CS >= k) (t, f, k, m, r), nested by the
    kernel (``round_f32``: each value rounded to the physical tables' precision,
    :func:`hra.integration.kernels.round_table`: 16 significant bits, a float32 value).

    ``p sum_k P(CS >= k)(Pd_in,k - Pd_in,k-1) + (1 - p)[same outside + P_direct]`` (the exclusive
    collapse states of :func:`hra.integration.engine.death_tables`); ``direct`` (t, c, m, r) or ``None``.
    """
    p = fragility.presence_inside if presence_inside is None else presence_inside
    coef = _death_coef(fragility, t_sel, p)
    T, F, K, M, R = pexc.shape
    # one compiled pass from the (m, t, f, k, r) layout (lnr_interpolate_cubic's j_major; pexc a
    # moved view of it: no copy) straight into (t, f, c, m, r): no transposed copies
    src = np.ascontiguousarray(np.moveaxis(pexc, 3, 0))
    use_direct = direct is not None and p < 1.0
    dsrc = np.ascontiguousarray(np.moveaxis(direct, 2, 0)) if use_direct else np.empty((0, 0, 0, 0))
    death = np.empty((T, F, coef.shape[1], M, R))
    kernels.death_from_nested(src, coef, dsrc, float(1.0 - p), bool(round_f32), death)
    return death


@single_thread_blas()
def rrup_death_tables(gmm, fragility, t_sel, mag_nodes: np.ndarray, r_hyp: np.ndarray, zone, branch,
                      wierde: tuple[bool, ...] = (False,), dtype=np.float64,
                      rounded: bool = True) -> dict[int, list[np.ndarray]]:
    """Death tables (t, f, c, m, r) of one physical GMM combination at R_hyp nodes ``r_hyp``.

    Returns s2s-branch index -> one table per entry of ``wierde`` (building on a dwelling mound
    or not: a shift of ln IM by :meth:`wierde_shift`), rounded to the physical tables' precision
    (:func:`hra.integration.kernels.round_table`: 16 significant bits, float32 values), as ``dtype``
    arrays (float64, or float32: the same values in half the bytes; ``rounded=False``: not rounded, for
    float64 tables only). The mixtures are computed on the R_rup grid
    of :func:`rrup_grid` and integrated over R_rup given each R_hyp node (:func:`_over_rrup`). With a
    strike model the last axis is (R_hyp node, relative-azimuth node) flattened (:func:`_over_rrup`).
    """
    t_sel = np.atleast_1d(np.asarray(t_sel))
    T = t_sel.size
    F, K = fragility.median_g.shape[1:]
    C = fragility.p_death_inside.shape[1]
    shifts_im = tuple(gmm.wierde_shift(fragility.imt) if wd else 0.0 for wd in wierde)
    # the grids never depend on which wierde variants or typologies are asked for (bit-identical
    # tables for a site and typology whatever else its task computes; the table store relies on
    # it): the floor is that of every typology of the model and allows for the wierde shift
    floor_all = curve_floor(np.log(fragility.median_g).reshape(-1), fragility.beta.reshape(-1))
    floor = floor_all - max(0.0, gmm.wierde_shift(fragility.imt))
    r_grid = rrup_grid(gmm, r_hyp)
    mixes = gmm.ln_im_mixtures_rrup(fragility.imt, mag_nodes, r_grid, zone, branch, ln_im_floor=floor)
    direct_mixes = None
    use_direct = fragility.direct_imt is not None and fragility.presence_inside < 1.0
    if use_direct:
        dmed = fragility.direct_median_g[t_sel].reshape(-1)
        ln_dmed = np.where(dmed > 0, np.log(np.where(dmed > 0, dmed, 1.0)), -np.inf)
        dbeta = fragility.direct_beta[t_sel].reshape(-1)
        shifts_d = tuple(gmm.wierde_shift(fragility.direct_imt) if wd else 0.0 for wd in wierde)
        dmed_all = fragility.direct_median_g.reshape(-1)
        dfloor = curve_floor(np.where(dmed_all > 0, np.log(np.where(dmed_all > 0, dmed_all, 1.0)), -np.inf),
                             fragility.direct_beta.reshape(-1))
        if np.isfinite(dfloor) and np.isfinite(curve_floor(ln_dmed, dbeta)):
            direct_mixes = gmm.ln_im_mixtures_rrup(fragility.direct_imt, mag_nodes, r_grid, zone, branch,
                                                   ln_im_floor=dfloor - max(0.0, gmm.wierde_shift(fragility.direct_imt)))
    # the probabilities on the grid are computed for the curves of *every* typology of the model,
    # then the asked ones taken: a BLAS product's rounding may depend on the matrix shapes, and
    # a typology's table must not depend on which others are asked for
    n_all = fragility.median_g.shape[0]
    everything = T == n_all and np.array_equal(t_sel, np.arange(n_all))

    def pick(p: np.ndarray, width: int) -> np.ndarray:
        if everything:
            return p
        return np.ascontiguousarray(p.reshape(p.shape[:-1] + (n_all, width))[..., t_sel, :].reshape(p.shape[:-1] + (-1,)))

    ln_med_all = np.log(fragility.median_g).reshape(-1)
    beta_all = fragility.beta.reshape(-1)
    if direct_mixes is not None:
        ln_dmed_all = np.where(dmed_all > 0, np.log(np.where(dmed_all > 0, dmed_all, 1.0)), -np.inf)
    out: dict[int, list[np.ndarray]] = {}
    for j, mix in mixes.items():
        p_grid = [pick(p, F * K) for p in grid_probabilities(
            mix, ln_med_all, beta_all, shifts_im, max(0.0, gmm.wierde_shift(fragility.imt)), floor_all,
            dtype=TABLE_PRODUCT_DTYPE)]
        d_grid = ([pick(p, C) for p in grid_probabilities(
            direct_mixes[j], ln_dmed_all, fragility.direct_beta.reshape(-1), shifts_d,
            max(0.0, gmm.wierde_shift(fragility.direct_imt)), dfloor, dtype=TABLE_PRODUCT_DTYPE)]
                  if direct_mixes is not None
                  else [None] * len(shifts_im))
        tables = []
        for pg, dg in zip(p_grid, d_grid):
            tables.append(_death_over_rrup(gmm, fragility, t_sel, pg, dg, r_grid, mag_nodes, r_hyp, dtype, rounded))
        out[j] = tables
    return out
