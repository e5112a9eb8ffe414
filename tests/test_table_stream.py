"""The table stage streams the physical death tables a group of GMM branches at a time and, for a
forecast, integrates them over magnitude by matrix products (:func:`hra.integration.engine.zone_tables`).

Reference: the definition summed term by term (numpy einsum over explicit loops), on synthetic
physical tables of a V7-shaped tree (4 medians mixed per magnitude by a :class:`hra.chain.MedianMap`,
2 tau, 3 eps_S2S) and a signed magnitude basis."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from hra.chain import MedianMap, engine_gmm_tree
from hra.core.logictree import LogicTree, Node
from hra.integration import engine

T_ALL, F, C, M, R = 3, 2, 2, 11, 5
S, K = 3, 4


def _node(name, n, rng):
    w = rng.uniform(0.2, 1.0, n)
    w /= w.sum()
    return Node(name, tuple(f"{name}{i}" for i in range(n)), tuple(float(x) for x in w))


def _setup(mode, strike=False):
    """A V7-shaped tree; ``strike``: a wide strike law with 3 azimuth nodes carried by 3 harmonics
    (the tables' r axis (distance node, azimuth node), q's (distance node, harmonic))."""
    rng = np.random.default_rng(12)
    tree = LogicTree((_node("gmm_median", 4, rng), _node("gmm_tau", 2, rng), _node("gmm_s2s", 3, rng)))
    gmm = (SimpleNamespace(tree=tree, zones=None, azimuth_nodes_deg=np.array([0.0, 45.0, 90.0]), azimuth_harmonic=True)
           if strike else SimpleNamespace(tree=tree, zones=None))
    n_a = 3 if strike else 1
    w_m = rng.uniform(0.05, 1.0, (M, 4))
    mm = MedianMap.build(w_m / w_m.sum(axis=1, keepdims=True), mode=mode)
    tables = {}
    for g in range(tree.n_combinations):
        key = tuple(int(v) for v in tree.enumerate().index[g])
        tables[key] = rng.uniform(0.0, 1e-3, (T_ALL, F, C, M, R * n_a))
    mag = SimpleNamespace(nodes=np.linspace(2.0, 6.0, M), per_branch=True, n_basis=K,
                          basis=rng.normal(0.0, 1.0, (S, K, M)))  # signed, like the forecast's basis
    return gmm, mm, tables, mag, rng


@pytest.mark.parametrize("mode, strike", [("realisation", False), ("mixture", False), ("realisation", True)])
def test_forecast_tables_equal_the_definition_and_stream(monkeypatch, mode, strike):
    """Also with a strike law: each combination's table (distance node, azimuth node, basis) onto the
    harmonics by the projection of :func:`hra.integration.condtables.project_azimuth`."""
    from hra.integration import condtables

    gmm, mm, tables, mag, rng = _setup(mode, strike)
    n_a = 3 if strike else 1
    calls = []

    def fake_physical(gmm_, fragility, zone, wierdes, mag_, r_nodes, t_sel, keys=None, **kw):
        calls.append(list(keys))
        return [{k: tables[k][np.asarray(t_sel)] for k in keys} for _ in wierdes]

    monkeypatch.setattr(engine, "physical_death_tables", fake_physical)
    eng = engine_gmm_tree(gmm, mm).enumerate()
    G = eng.n
    sizes = (S, 1, G, F, C)
    weights = (np.full(S, 1.0 / S), np.ones(1), eng.weight, np.array([0.3, 0.7]), np.array([0.6, 0.4]))
    needed = np.sort(rng.choice(int(np.prod(sizes)), size=40, replace=False))
    t_sels = [np.array([0, 2]), np.array([1])]
    out = engine.zone_tables(gmm, None, 0, [False, True], mag, np.arange(R) + 3.0, t_sels, needed, sizes,
                             weights, mm, False)
    # into given q arrays, with work buffers taken from a pool (a second zone reuses the first's): the same bits
    pool = engine.BufferPool()
    for _ in range(2):
        dest = [np.full((t.size, R * n_a * K, needed.size), np.nan) for t in t_sels]
        again = engine.zone_tables(gmm, None, 0, [False, True], mag, np.arange(R) + 3.0, t_sels, needed, sizes,
                                   weights, mm, False, None, dest, pool)
        assert all(q2 is d and np.array_equal(q2, q) and np.array_equal(qb2, qb) for (q2, qb2), d, (q, qb)
                   in zip(again, dest, out))
        assert len(pool._free) == 1
    calls = calls[:len(calls) // 3]
    # streaming: one median's tables (3 eps_S2S) per call, every physical table exactly once
    assert all(len(k) == 3 and len({kk[0] for kk in k}) == 1 for k in calls)
    assert sorted(k for ks in calls for k in ks) == sorted(tables)
    # the definition: engine combination ge -> sum_j w_{v,j}(m) D_(j, tau, s2s), then sum_m phi_{s,k}(m)
    eidx = eng.index  # (G, 3): virtual median, tau, s2s (the "mixture" mode has no median node left)

    def eng_death(ge):
        v, tau, s2s = (int(x) for x in eidx[ge]) if mode == "realisation" else (0, *(int(x) for x in eidx[ge]))
        return sum(tables[(j, tau, s2s)] * mm.mix[v, :, j][:, None] for j in range(4))  # (t, f, c, m, r)

    ib, _, ig, jf, jc = np.unravel_index(needed, sizes)
    mean = np.zeros((T_ALL, R * n_a, K, S))
    for ge in range(G):
        mean += eng.weight[ge] * np.einsum("tfcmr,skm,f,c->trks", eng_death(ge), mag.basis, weights[3], weights[4])

    def project(a):  # (t, (r, a, k), ...) onto the harmonics
        return condtables.project_azimuth(gmm, a, 1, R, K) if strike else a

    for (q, qbar), t in zip(out, t_sels):
        assert q.shape == (t.size, R * n_a * K, needed.size) and qbar.shape == (t.size, R * n_a * K, S)
        for u in range(needed.size):
            ref = np.einsum("tmr,km->trk", eng_death(ig[u])[t, jf[u], jc[u]], mag.basis[ib[u]]).reshape(t.size, -1)
            ref = project(ref[..., None])[..., 0]
            np.testing.assert_allclose(q[:, :, u], ref, rtol=1e-12, atol=1e-15 * np.abs(ref).max())
        ref = project(mean[t].reshape(t.size, R * n_a * K, S))
        np.testing.assert_allclose(qbar, ref, rtol=1e-12, atol=1e-15 * np.abs(ref).max())


def test_physical_groups_of_a_v7_shaped_tree():
    gmm, mm, tables, _, _ = _setup("realisation")
    groups = engine.physical_groups(gmm, "gmm_median")
    assert len(groups) == 2 and all(len(g) == 12 and len({k[1] for k in g}) == 1 for g in groups)
    split = engine.physical_groups(gmm, "gmm_median", split_median=True)
    assert [len(g) for g in split] == [3] * 8
    assert [(g[0][1], g[0][0]) for g in split] == [(t, j) for t in range(2) for j in range(4)]  # tau-major
    assert sorted(k for g in split for k in g) == sorted(tables)


@pytest.mark.parametrize("mode", ["realisation", "mixture"])
def test_rate_grid_tables_equal_the_definition(monkeypatch, mode):
    """Rate grid, large tree (``exact_mean=False``): with the one-hot map each combination's tables
    are integrated over magnitude by one compiled pass that reads the physical median tables where
    the map picks them (:func:`hra.integration.kernels.magnitude_integrate_picked`); the mixture map
    takes the generic path. Reference: ``MagnitudeBins.integrate`` of the combination's table
    mixed per magnitude node by the definition, with zeros in the tables (the linear fallback)."""
    from hra.inputs.source import magnitude_bins

    gmm, mm, tables, _, rng = _setup(mode)
    for d in tables.values():  # some zero edges: those bins fall back to linear interpolation
        d[rng.uniform(size=d.shape) < 0.05] = 0.0
    mag = magnitude_bins(np.array([0.9, 1.1]), np.array([5.0, 6.0]), 2.0, 0.45)  # unequal bins
    assert mag.nodes.size == M

    def fake_physical(gmm_, fragility, zone, wierdes, mag_, r_nodes, t_sel, keys=None, **kw):
        return [{k: tables[k][np.asarray(t_sel)] for k in keys} for _ in wierdes]

    monkeypatch.setattr(engine, "physical_death_tables", fake_physical)
    eng = engine_gmm_tree(gmm, mm).enumerate()
    sizes = (2, 2, eng.n, F, C)
    weights = (np.array([0.4, 0.6]), np.array([0.7, 0.3]), eng.weight, np.array([0.3, 0.7]), np.array([0.6, 0.4]))
    needed = np.sort(rng.choice(int(np.prod(sizes)), size=40, replace=False))
    t_sels = [np.array([0, 2]), np.array([1])]
    out = engine.zone_tables(gmm, None, 0, [False, True], mag, np.arange(R) + 3.0, t_sels, needed, sizes,
                             weights, mm, False)
    eidx = eng.index

    def eng_death(ge):
        v, tau, s2s = (int(x) for x in eidx[ge]) if mode == "realisation" else (0, *(int(x) for x in eidx[ge]))
        return sum(tables[(j, tau, s2s)] * mm.mix[v, :, j][:, None] for j in range(4))  # (t, f, c, m, r)

    ib, ix, ig, jf, jc = np.unravel_index(needed, sizes)
    for (q, _), t in zip(out, t_sels):
        assert q.shape == (t.size, R, needed.size)
        for u in range(needed.size):
            e = mag.integrate(np.moveaxis(eng_death(ig[u])[t, jf[u], jc[u]], 1, -1))  # (b, x, t, r)
            np.testing.assert_allclose(q[:, :, u], e[ib[u], ix[u]], rtol=1e-11, atol=0)


def test_buffer_pool_q_array_reuses_its_memory():
    """The tables' q of the next zone group in the previous group's memory where it fits, else fresh."""
    pool = engine.BufferPool()
    a = pool.q_array((4, 3, 5))
    assert a.shape == (4, 3, 5) and a.dtype == np.float64 and a.flags.c_contiguous
    ptr = a.__array_interface__["data"][0]
    b = pool.q_array((2, 3, 5))  # smaller: the same memory
    assert b.shape == (2, 3, 5) and b.__array_interface__["data"][0] == ptr
    c = pool.q_array((5, 3, 5))  # larger: a new buffer, kept for the next call
    assert c.shape == (5, 3, 5) and c.base.nbytes == 75 * 8  # (the buffer is bytes: q may be float32)
    assert pool.q_array((5, 3, 5)).__array_interface__["data"][0] == c.__array_interface__["data"][0]
