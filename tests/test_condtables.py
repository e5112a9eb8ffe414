"""The grid path of the conditional tables (hra.integration.condtables) against closed forms."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from hra.integration import condtables, kernels
from hra.gmm.base import GaussianMixture


def _closed_form(mix, ln_med, beta, shift=0.0):
    s = np.sqrt(mix.sd[..., None] ** 2 + beta**2)
    return np.sum(mix.weight[..., None] * ndtr((mix.mean[..., None] + shift - ln_med) / s), axis=-2)


def test_grid_probabilities_equal_the_closed_form_per_component():
    rng = np.random.default_rng(3)
    n, q = 40, 25
    mean = rng.uniform(-9.0, 1.0, (n, q))
    sd = rng.uniform(0.05, 0.4, (n, q))
    w = rng.uniform(0, 1, (n, q))
    w[:, :3] = 0.0  # zero-weight components are ignored
    w /= w.sum(axis=1, keepdims=True)
    mix = GaussianMixture(mean[:, None], sd[:, None], w[:, None])
    ln_med = np.array([-1.5, -0.5, 0.3, 1.2, -np.inf])
    beta = np.array([0.22, 0.5, 0.9, 0.3, 0.4])
    got, got_w = condtables.grid_probabilities(mix, ln_med, beta, (0.0, 0.27))
    want = _closed_form(mix, ln_med[:4], beta[:4])
    want_w = _closed_form(mix, ln_med[:4], beta[:4], 0.27)
    ok = want > 1e-14
    assert ok.sum() > 100
    np.testing.assert_allclose(got[..., :4][ok], want[ok], rtol=1e-9)
    np.testing.assert_allclose(got_w[..., :4][want_w > 1e-14], want_w[want_w > 1e-14], rtol=1e-9)
    assert np.all(got[..., 4] == 0.0)  # a curve with median 0 (no chimney) contributes nothing
    # the result for one shift does not depend on the other shifts asked for (bit-identical)
    alone = condtables.grid_probabilities(mix, ln_med, beta, (0.0,), max_shift=0.27)[0]
    assert np.array_equal(alone, got)


def test_float32_grid_products_match_float64_to_1e_5():
    """The tables' float32 products against the float64 path (itself pinned to the closed form above)."""
    rng = np.random.default_rng(5)
    n, q = 60, 40
    mean = rng.uniform(-12.0, 1.0, (n, 1)) + rng.normal(0.0, 0.5, (n, q))  # weak to strong rows
    sd = rng.uniform(0.05, 0.6, (n, q))
    w = rng.uniform(0, 1, (n, q))
    w /= w.sum(axis=1, keepdims=True)
    mix = GaussianMixture(mean[:, None], sd[:, None], w[:, None])
    ln_med = np.array([-6.5, -1.5, -0.5, 0.3, 1.2])
    beta = np.array([0.3, 0.22, 0.5, 0.9, 0.3])
    want = condtables.grid_probabilities(mix, ln_med, beta, (0.0, 0.27))
    got = condtables.grid_probabilities(mix, ln_med, beta, (0.0, 0.27), dtype=np.float32)
    assert condtables.TABLE_PRODUCT_DTYPE == np.float32
    for g, v in zip(got, want):
        assert g.dtype == np.float64
        ok = v > 1e-30
        assert ok.sum() > 200 and (v[ok] < 1e-12).sum() > 10  # the deep tail is checked too
        np.testing.assert_allclose(g[ok], v[ok], rtol=1e-5)
        assert np.all(g[~ok] < 1e-29)


def test_log1p_fast_equals_log1p_to_rounding():
    import numba

    from hra.core.fastmath import LOG1P_SERIES_MAX, log1p_fast

    @numba.njit
    def many(u, out):  # (also the loop the moments kernel vectorises)
        for i in range(u.size):
            out[i] = log1p_fast(u[i])

    rng = np.random.default_rng(7)
    u = np.concatenate([np.logspace(-300, 300, 60001), rng.uniform(0.0, 10.0, 20000), rng.uniform(0.4, 0.42, 1000),
                        [LOG1P_SERIES_MAX * (1 - 1e-12), LOG1P_SERIES_MAX, np.sqrt(2) - 1, 5.0, 1e300, 1.7e308]])
    got = np.empty_like(u)
    many(u, got)
    want = np.log1p(u)
    assert np.max(np.abs(got - want) / np.spacing(want)) <= 1.0  # within one unit in the last place
    assert log1p_fast(0.0) == 0.0 and log1p_fast(1.0) == np.log(2.0)


def test_mixture_density_is_a_normalised_density():
    mean = np.array([[0.0, 1.0, -2.0]])
    sd = np.array([[0.1, 0.3, 0.001]])  # the last one is narrower than the grid: two-node deposit
    w = np.array([[0.5, 0.3, 0.2]])
    h = 0.05
    out = np.zeros((1, 200))
    kernels.mixture_density(mean, sd, w, -4.0, h, 9.5, out)
    x = -4.0 + h * np.arange(200)
    assert abs(out.sum() - 1.0) < 1e-12
    np.testing.assert_allclose(out @ x, w @ mean.ravel(), atol=1e-12)


def test_lnr_interpolation_is_exact_for_power_laws():
    """ln P linear in ln R (P = c R^-a) is reproduced exactly between grid points."""
    grid = np.geomspace(3.0, 70.0, 20)
    a = np.array([2.0, 5.5])
    ln_p = (np.log(0.3) - a[None, None, :] * np.log(grid)[None, :, None]).repeat(2, axis=0)  # (m=2, g, j=2)
    nodes = np.array([[[3.0, 4.1, 9.9], [69.0, 70.0, 12.5]]] * 2)  # (m, r=2, n=3)
    w = np.array([[[0.2, 0.5, 0.3], [0.6, 0.0, 0.4]]] * 2)
    out = np.empty((2, 2, 2))
    kernels.lnr_interpolate(ln_p, np.log(grid), np.log(nodes), w, out)
    want = np.einsum("mrn,mrnj->mrj", w, 0.3 * nodes[..., None] ** -a)
    np.testing.assert_allclose(out, want, rtol=1e-12)


def test_cubic_lnr_interpolation_is_exact_for_piecewise_cubics_in_ln_r():
    """ln P a different cubic in ln R on each side of a kink (a grid point): reproduced exactly
    between grid points (4-point Lagrange inside each piece, never across the kink); a stencil
    touching a screened point (ln P = ln 1e-300) falls back to the linear interpolation. (To float32
    rounding: the kernel sums in float32, ~1e-7 relative; 1e-6 allowed.)"""
    grid = np.concatenate([np.geomspace(3.0, 12.0, 7), np.geomspace(12.0, 70.0, 9)[1:]])
    x = np.log(grid)
    xk = np.log(12.0)

    def lnp(t):  # continuous at the kink, slopes and curvatures differ
        left = -2.0 - 0.8 * (t - xk) + 0.3 * (t - xk) ** 2 - 0.2 * (t - xk) ** 3
        right = -2.0 - 3.1 * (t - xk) - 0.7 * (t - xk) ** 2 + 0.25 * (t - xk) ** 3
        return np.where(t <= xk, left, right)

    ln_p = lnp(x)[None, :, None].repeat(2, axis=2)  # (m=1, g, j=2)
    ln_p[0, -1, 1] = np.log(1e-300)  # column 1: the last point screened
    nodes = np.array([[[3.3, 7.7, 11.9], [12.5, 40.0, 66.0]]])  # (m, r=2, n=3)
    w = np.array([[[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]])
    out = np.empty((1, 2, 2))
    kernels.lnr_interpolate_cubic(ln_p, x, np.isin(grid, [12.0]), np.log(nodes), w, out)
    want = np.einsum("mrn,mrn->mr", w, np.exp(lnp(np.log(nodes))))
    np.testing.assert_allclose(out[..., 0], want, rtol=1e-6)
    np.testing.assert_allclose(out[0, 0, 1], want[0, 0], rtol=1e-6)  # stencils away from the screened point
    # 66 km lies in the last interval, next to the screened point: linear in ln R, towards 1e-300
    i = np.searchsorted(x, np.log(66.0)) - 1
    f = (np.log(66.0) - x[i]) / (x[i + 1] - x[i])
    lin = 0.6 * np.exp(lnp(np.log(12.5))) + 0.1 * np.exp(lnp(np.log(40.0))) + 0.3 * np.exp(ln_p[0, i, 1] + f * (ln_p[0, i + 1, 1] - ln_p[0, i, 1]))
    np.testing.assert_allclose(out[0, 1, 1], lin, rtol=1e-6)


def test_over_rrup_stacks_the_azimuth_rules_in_the_r_times_a_layout():
    """With a strike model the A rules (here of 3 and 2 nodes: padded) go through one kernel call:
    row ``r * A + a`` of the result is rule a at R_hyp node r, equal to the closed form
    ``sum_n w_n P(R_n)`` of a ln P that is cubic in ln R (reproduced exactly by the interpolation);
    P below float32's range is 0 and P = 0 on the grid (ln 1e-300) adds nothing."""
    from hra.gmm.rupture import RuptureQuadrature

    grid = np.geomspace(3.0, 70.0, 30)

    def lnp(t, j):  # a different cubic per column; column 2 is 0 everywhere
        return -1.5 - (0.9 + 0.2 * j) * (t - 1.0) + 0.05 * (t - 1.0) ** 2 - 0.01 * (t - 1.0) ** 3

    M, R = 2, 4
    rng = np.random.default_rng(5)
    rules = []
    for n in (3, 2):
        nodes = rng.uniform(3.0, 70.0, (M, R, n))
        w = rng.uniform(0.1, 1.0, (M, R, n))
        rules.append(RuptureQuadrature(nodes, w / w.sum(axis=-1, keepdims=True)))
    rules[1].weights[1, 3] *= 1e-295  # a sum below float32's range (1.4e-45): 0

    class Model:
        azimuth_nodes_deg = np.array([0.0, 90.0])
        rrup_kinks_km = ()

        def rrup_nodes(self, m, r, azimuth_deg=None):
            return rules[int(azimuth_deg) // 90]

    p_grid = np.stack([np.exp(lnp(np.log(grid), j)) for j in range(2)] + [np.zeros(30)], axis=-1)
    p_grid = np.repeat(p_grid[None], M, axis=0)  # (m, g, j=3)
    got = condtables._over_rrup(Model(), p_grid, grid, np.arange(M, dtype=float), np.arange(R, dtype=float))
    assert got.shape == (M, R * 2, 3)
    for a, q in enumerate(rules):
        for j in range(2):
            want = np.sum(q.weights * np.exp(lnp(np.log(q.nodes_km), j)), axis=-1)  # (m, r)
            want[want < 1.4e-45] = 0.0
            np.testing.assert_allclose(got[:, a::2, j], want, rtol=1e-6, atol=0.0)  # float32 sums (~1e-7)
    assert got[1, 3 * 2 + 1, 0] == 0.0 and np.all(got[..., 2] == 0.0)


def test_single_thread_blas_is_reentrant_and_restores_the_limit():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    before = blas_threads()
    from hra.core.executor import single_thread_blas

    with single_thread_blas():
        with single_thread_blas():
            assert set(blas_threads()) <= {1}
        assert set(blas_threads()) <= {1}  # the inner exit keeps the outer caller's limit
    assert blas_threads() == before


def test_death_over_rrup_blocked_equals_the_whole_table_path_to_the_bit():
    """The physical tables computed a block of magnitudes at a time (:func:`condtables._death_over_rrup`:
    R_rup interpolation in the (m, j, r) layout, then the death kernel, which nests P(CS >= k)) equal
    the whole-table path (:func:`condtables._over_rrup` in the (m, r, j) layout, nested with numpy,
    :func:`condtables.death_from_exceedance`) and the closed sum over k to the bit, with and without the
    direct deaths, with a strike model's two azimuth rules."""
    from types import SimpleNamespace

    from hra.gmm.rupture import RuptureQuadrature

    rng = np.random.default_rng(7)
    M, R, G, T, F, K, C = 5, 3, 12, 2, 3, 4, 3
    grid = np.geomspace(3.0, 70.0, G)
    rules = [RuptureQuadrature(rng.uniform(3.0, 70.0, (M, R, n)), rng.dirichlet(np.ones(n), (M, R))) for n in (3, 2)]

    class Model:
        azimuth_nodes_deg = np.array([0.0, 90.0])
        rrup_kinks_km = (grid[5],)

        def rrup_nodes(self, m, r, azimuth_deg=None):
            return rules[int(azimuth_deg) // 90]

    p_grid = rng.uniform(0.0, 1.0, (M, G, T * F * K)) ** 4  # not nested: the kernel nests
    p_grid[:, :, 5] = 1e-30  # below the interpolation's 1e-20: nothing added
    d_grid = rng.uniform(0.0, 0.05, (M, G, T * C))
    p_in = rng.uniform(0.0, 0.5, (T, C, K))
    for presence in (0.7, 1.0):
        frag = SimpleNamespace(presence_inside=presence, median_g=np.ones((T, F, K)),
                               p_death_inside=np.sort(p_in, axis=-1), p_death_outside=np.sort(0.3 * p_in, axis=-1))
        got = condtables._death_over_rrup(Model(), frag, np.arange(T), p_grid, d_grid, grid, np.arange(M, dtype=float),
                                          np.arange(R, dtype=float))
        assert got.shape == (T, F, C, M, 2 * R) and np.array_equal(got, got.astype(np.float32))
        assert not np.any(got.astype(np.float32).view(np.uint32) & 0xFF)  # 16 significant bits: a zero low byte
        got32 = condtables._death_over_rrup(Model(), frag, np.arange(T), p_grid, d_grid, grid,
                                            np.arange(M, dtype=float), np.arange(R, dtype=float), dtype=np.float32)
        assert got32.dtype == np.float32 and np.array_equal(got32, got)  # the same values, half the bytes
        pexc = condtables._over_rrup(Model(), p_grid, grid, np.arange(M, dtype=float), np.arange(R, dtype=float))
        direct = condtables._over_rrup(Model(), d_grid, grid, np.arange(M, dtype=float), np.arange(R, dtype=float))
        pexc = pexc.reshape(M, 2 * R, T, F, K)
        for k in range(K - 2, -1, -1):
            np.maximum(pexc[..., k], pexc[..., k + 1], out=pexc[..., k])
        want = condtables.death_from_exceedance(frag, np.arange(T), np.moveaxis(pexc, (0, 1), (3, 4)),
                                                np.moveaxis(direct.reshape(M, 2 * R, T, C), (0, 1), (2, 3)),
                                                round_f32=True)
        assert np.array_equal(got, want)
        # the closed sum over k, in k order, + (1 - p) P_direct, rounded once
        coef = condtables._death_coef(frag, np.arange(T), presence)
        for t, f, c, m, r in [(0, 0, 0, 0, 0), (1, 2, 2, 4, 5), (0, 1, 2, 2, 3), (1, 0, 1, 3, 1)]:
            s = 0.0
            for k in range(K):
                s += pexc[m, r, t, f, k] * coef[t, c, k]
            if presence < 1.0:
                s += (1.0 - presence) * direct[m, r, t * C + c]
            # rounded to 16 significant bits (the frexp twin of kernels.round_table)
            mant, ex = np.frexp(s)
            assert got[t, f, c, m, r] == float(np.ldexp(np.round(mant * 2.0 ** 16), ex - 16))
