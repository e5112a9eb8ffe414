"""Tables at every other magnitude node (``[source] magnitude_table_stride = 2``), the others
interpolated in ln P: the plan, the expansion against closed forms, and a run against stride 1."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hra.integration import kernels, magnitudes

CHAIN = np.round(1.45 + 0.05 * np.arange(103), 10)
V7_KINKS = (3.6, 3.875, 4.75, 5.6)


def test_plan_computes_every_other_node_the_last_and_the_kinks():
    plan = magnitudes.stride_plan(CHAIN, 2, V7_KINKS)
    comp = set(plan.computed.tolist())
    assert set(range(0, 103, 2)) <= comp and 102 in comp
    # on the 0.05 grid 3.6, 4.75 and 5.6 are nodes (43, 66, 83); 3.875 lies between nodes 48 and 49
    around = {43, 66, 83, 48, 49}
    assert around <= comp and comp == set(range(0, 103, 2)) | around | {102}
    other = np.setdiff1d(np.arange(103), plan.computed)
    # a Lagrange rule: weights sum to 1, and no stencil reaches across a kink
    np.testing.assert_allclose(plan.weights[other].sum(axis=1), 1.0, rtol=0, atol=1e-12)
    for m in other:
        st = CHAIN[plan.computed[plan.src[m, :plan.n_used[m]]]]
        for k in V7_KINKS:
            assert (st <= k + 1e-9).all() or (st >= k - 1e-9).all(), (m, st, k)
    assert (plan.n_used[other] == 4).all()  # every piece has >= 4 computed nodes
    # the 0.1 grid of a rate grid: 4.75 between 4.7 and 4.8, both computed, no stencil across it
    grid = np.round(3.0 + 0.1 * np.arange(26), 10)
    p01 = magnitudes.stride_plan(grid, 2, V7_KINKS)
    assert {17, 18, 8, 9, 6} <= set(p01.computed.tolist())  # 4.7, 4.8; 3.8, 3.9 (3.875); 3.6
    for m in np.setdiff1d(np.arange(26), p01.computed):
        st = grid[p01.computed[p01.src[m, :p01.n_used[m]]]]
        assert all((st <= k + 1e-9).all() or (st >= k - 1e-9).all() for k in V7_KINKS), (m, st)
    assert magnitudes.gmm_plan(object(), CHAIN, 1) is None
    with pytest.raises(ValueError, match="magnitude_table_stride"):
        magnitudes.stride_plan(CHAIN, 3)


def test_expand_reproduces_ln_p_cubic_between_the_kinks():
    """ln P cubic in M on each piece (a different cubic on each side of a kink at a node): the
    interpolated nodes equal exp(cubic) to float32 rounding (the expansion's ln P, sums and exp are
    float32: |ln P| <= ~15 here, ~1e-6 relative), the computed ones are copied bit for bit."""
    nodes = CHAIN
    kinks = (3.6, 4.75)
    plan = magnitudes.stride_plan(nodes, 2, kinks)
    rng = np.random.default_rng(5)
    R = 7
    ln_p = np.empty((3, nodes.size, R))
    for row in range(3):
        for r in range(R):
            start = -12.0 + rng.normal()  # continuous, a new cubic from each kink on (slopes jump there)
            for lo, hi in ((nodes[0], 3.6), (3.6, 4.75), (4.75, nodes[-1])):
                sel = (nodes >= lo - 1e-9) & (nodes <= hi + 1e-9)
                c = rng.normal(size=3) * np.array([1.5, 0.3, 0.1])
                x = nodes[sel] - lo
                ln_p[row, sel, r] = start + c[0] * x + c[1] * x**2 + c[2] * x**3
                start = ln_p[row, sel, r][-1]
    full = np.exp(np.minimum(ln_p, 0.0))
    sub = full[:, plan.computed, :]
    out = magnitudes.expand(sub, plan, rounded=False)
    np.testing.assert_array_equal(out[:, plan.computed, :], sub)
    np.testing.assert_allclose(out, full, rtol=1e-5)
    # rounded: every value of 16 significant bits (round_table is idempotent on them), float32 in
    r32 = magnitudes.expand(kernels.round_table(sub), plan, rounded=True)
    assert r32.dtype == np.float32
    np.testing.assert_array_equal(kernels.round_table(r32), r32)
    np.testing.assert_allclose(r32, full, rtol=3e-5)


def test_expand_into_a_given_array_equals_a_new_one():
    """``expand(..., out=)`` (a stored entry expanded into its place in a zone's tables) writes the
    values ``expand`` returns, and refuses an array of another shape or a non-contiguous one."""
    nodes = CHAIN[:41]
    plan = magnitudes.stride_plan(nodes, 2, (3.6,))
    rng = np.random.default_rng(11)
    sub = np.exp(-rng.uniform(0.0, 40.0, size=(3, 2, plan.computed.size, 5))).astype(np.float32)
    want = magnitudes.expand(sub, plan)
    dest = np.full((4, 3, 2, nodes.size, 5), np.nan, dtype=np.float32)
    got = magnitudes.expand(sub, plan, out=dest[1])
    assert got is dest[1] or np.shares_memory(got, dest)
    np.testing.assert_array_equal(dest[1], want)
    assert np.isnan(dest[[0, 2, 3]]).all()  # nothing written beside its place
    with pytest.raises(ValueError, match="C-contiguous array of shape"):
        magnitudes.expand(sub, plan, out=np.empty((3, 2, nodes.size - 1, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="C-contiguous array of shape"):
        magnitudes.expand(sub, plan, out=np.empty((3, 2, 5, nodes.size), dtype=np.float32).swapaxes(-1, -2))


def test_expand_zeros_fall_back_to_linear_p():
    plan = magnitudes.stride_plan(np.arange(9) * 0.1 + 3.0, 2)  # computed 0, 2, 4, 6, 8
    sub = np.array([[[0.0], [0.0], [1e-6], [4e-6], [8e-6]]])  # a zero in the stencil of nodes 1 and 3
    out = magnitudes.expand(sub, plan, rounded=False)[0, :, 0]
    assert out[1] == 0.0  # between two zeros
    assert out[3] == pytest.approx(0.5e-6)  # linear between 0 and 1e-6
    x, y = np.array([0.4, 0.6, 0.8]) - 0.4, np.log([1e-6, 4e-6, 8e-6])
    assert out[5] == pytest.approx(2.5e-6, rel=1e-15)  # its stencil (2, 4, 6, 8) holds node 2's zero: linear
    st = plan.computed[plan.src[7, :plan.n_used[7]]]
    assert set(st.tolist()) == {2, 4, 6, 8}  # shifted at the end: still 4 nodes, one of them 0: linear
    assert out[7] == pytest.approx(6e-6, rel=1e-15)
    plan3 = magnitudes.stride_plan(np.arange(5) * 0.1 + 3.0, 2)  # computed 0, 2, 4: a quadratic at most
    out3 = magnitudes.expand(np.array([[[1e-6], [4e-6], [8e-6]]]), plan3, rounded=False)[0, :, 0]
    assert plan3.n_used[3] == 3
    np.testing.assert_allclose(out3[3], np.exp(np.polyval(np.polyfit(x, y, 2), 0.3)), rtol=1e-5)  # float32's ln P
    # a float32 subnormal (below 1.2e-38: no normal logarithm in float32) counts as a zero: linear in P there
    sub = np.array([[[1e-40], [1e-40], [1e-6], [4e-6], [8e-6]]], dtype=np.float32)
    out = magnitudes.expand(sub, plan, rounded=False)[0, :, 0]
    assert out[1] == np.float32(1e-40) and out[3] == pytest.approx(0.5 * (np.float32(1e-40) + np.float32(1e-6)), rel=1e-7)


def test_float32_log_and_exp_within_an_ulp():
    """The float32 twins of the expansion and the R_rup interpolation (:func:`hra.core.fastmath.logf_fast`,
    :func:`hra.core.fastmath.expf_fast`) against numpy in float64: within 1.5 float32 ulps (of the
    result, or of 1 for ln near 0) over float32's normal range; exp is 0 below -87, exact at 0."""
    import numba

    from hra.core.fastmath import EXPF_MIN, expf_fast, logf_fast

    @numba.njit
    def both(x, y, lx, ey):
        for i in range(x.size):
            lx[i] = logf_fast(x[i])
        for i in range(y.size):
            ey[i] = expf_fast(y[i])

    rng = np.random.default_rng(4)
    x = np.concatenate([np.exp(rng.uniform(-87.3, 88.7, 50000)), rng.uniform(0.5, 2.0, 20000),
                        kernels.round_table(rng.uniform(1e-12, 1.0, 5000)).astype(np.float64),
                        [1.0, 2.0, 0.5, np.sqrt(0.5), np.finfo(np.float32).tiny, np.finfo(np.float32).max]]
                       ).astype(np.float32)
    y = np.concatenate([rng.uniform(-87.0, 88.0, 50000), rng.uniform(-1.0, 1.0, 20000),
                        [0.0, -0.0, -87.0, 88.0, -0.5 * math.log(2.0), 0.5 * math.log(2.0)]]).astype(np.float32)
    lx, ey = np.empty_like(x), np.empty_like(y)
    both(x, y, lx, ey)
    ulp = float(np.finfo(np.float32).eps)
    want = np.log(x.astype(np.float64))
    assert np.max(np.abs(lx - want) / np.maximum(np.abs(want), 1.0)) <= 1.5 * ulp
    want = np.exp(y.astype(np.float64))
    assert np.max(np.abs(ey / want - 1.0)) <= 1.5 * ulp
    assert expf_fast(np.float32(0.0)) == 1.0 and logf_fast(np.float32(1.0)) == 0.0
    below = np.array([-87.01, -100.0, -1e30], dtype=np.float32)
    ey = np.empty_like(below)
    both(x[:0], below, lx[:0], ey)
    assert np.all(ey == 0.0) and EXPF_MIN == np.float32(-87.0)


def test_run_with_stride_2_against_every_node_and_the_closed_form(tmp_path):
    """The forecast closed-form case of ``test_forecast`` (parametric GMM, per-cell b-values, 8 source
    branches, 2 years; stride 1 is within 0.5 % of quad there): stride 2 moves the LPR by less than
    1e-3 but does move it (the odd nodes are interpolated), and a table store gives the same bits cold
    and warm, in entries of their own (stride 1 does not read them)."""
    import hra
    import hra.chain
    from hra.integration import tablestore
    from hra.integration.tablestore import TableStore
    from tests.test_forecast import X0, Y0, _config, _forecast_array
    from hra.inputs.forecast import write_forecast

    fc = write_forecast(_forecast_array(), tmp_path / "ssm.h5")
    bld = [dict(id="B1", x=X0 + 1000.0, y=Y0 + 500.0, typology="URM"), dict(id="B2", x=X0 + 9000.0, y=Y0 + 3000.0, typology="URM")]
    store = tmp_path / "tables"
    runs = {}
    for stride, name in ((1, "s1"), (2, "cold"), (2, "warm")):
        cfg = _config(tmp_path / name, fc, bld, source={"magnitude_table_stride": stride})
        cfg = cfg.model_copy(update={"compute": cfg.compute.model_copy(update={"table_store": store})})
        runs[name] = hra.run(cfg, progress=False, write=False)
    cfg = _config(tmp_path / "none", fc, bld, source={"magnitude_table_stride": 2})
    cfg = cfg.model_copy(update={"compute": cfg.compute.model_copy(update={"table_store": False})})
    runs["none"] = hra.run(cfg, progress=False, write=False)
    s1, cold, warm, none = (runs[k]["lpr_mean"].values for k in ("s1", "cold", "warm", "none"))
    np.testing.assert_array_equal(cold, warm)
    np.testing.assert_array_equal(cold, none)  # the stored entries expanded as read: the same bits
    for q in ("lpr_p50", "lpr_p90"):
        np.testing.assert_array_equal(runs["cold"][q].values, runs["warm"][q].values)
        np.testing.assert_array_equal(runs["cold"][q].values, runs["none"][q].values)
    rel = np.abs(cold / s1 - 1.0)
    assert 0.0 < rel.max() < 1e-3, rel
    sets = {e.key: e for e in TableStore(store).info()}
    assert len(sets) == 2  # stride 1 and 2: two model keys
    # a stride-2 entry holds the computed magnitude nodes only (the stride-1 entry: every node)
    ts = TableStore(store)
    prep = {k: hra.chain.prepare(_config(tmp_path / k, fc, bld, source={"magnitude_table_stride": s}))
            for k, s in (("s1", 1), ("cold", 2))}
    for name, p in prep.items():
        handle = tablestore.handle_for(p, ts)
        zone, wierde = p.sites[0]
        tabs = ts.read(handle.key, zone, wierde, p.fragility.typologies[0])
        m_stored = {d.shape[-2] for d in tabs.values()}
        want = magnitudes.computed_nodes(p.gmm, p.magnitude).size
        assert m_stored == {want}, (name, m_stored, want)
        assert (want < p.magnitude.nodes.size) == (name == "cold")


def test_log_fast_equals_log_to_rounding():
    """:func:`hra.core.fastmath.log_fast` (vectorised; ``log1p_fast``'s ln): within an ulp of numpy's log
    (of the value's magnitude for results near 0) over the normal range, table values included."""
    import numba

    from hra.core.fastmath import log_fast

    @numba.njit
    def many(x, out):
        for i in range(x.size):
            out[i] = log_fast(x[i])

    rng = np.random.default_rng(3)
    x = np.concatenate([np.logspace(-307, 308, 60001), rng.uniform(0.5, 2.0, 20000), rng.uniform(1e-20, 1.0, 20000),
                        kernels.round_table(rng.uniform(1e-12, 1.0, 5000)).astype(np.float64),
                        [np.sqrt(2) * (1 - 1e-16), np.sqrt(2), 1.0, 2.0, 0.5, 1.7e308, 2.3e-308]])
    got = np.empty_like(x)
    many(x, got)
    want = np.log(x)
    assert np.max(np.abs(got - want) / np.spacing(np.maximum(np.abs(want), 1.0))) <= 1.0
    assert log_fast(1.0) == 0.0 and log_fast(2.0) == np.log(2.0)
