"""Engine tests against independent references (closed forms, brute force, second methods)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.integrate import quad
from scipy.stats import norm

import hra
from hra.core import random
from hra.integration import kernels
from hra.integration.engine import compute
from hra.core.logictree import weighted_quantile
from hra.inputs.source import magnitude_bins, truncated_gr_cdf, truncated_gr_pdf
from tests.helpers import PARAMETRIC, make_config

CURVES = {"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3))}
CELL = (250_000.0, 590_000.0)


def closed_form_lpr(rate, r_km, m_max, med=(0.15, 0.3, 0.6), beta=0.5, pdeath=(0.01, 0.1, 0.3), b=1.0, m_min=1.5, gm=PARAMETRIC):
    """docs/lpr.md §5: LPR = sum_k Pd_k int rate f(M) (Phi(z_k) - Phi(z_k+1)) dM, by adaptive quadrature."""
    sig = np.hypot(gm["tau"], gm["phi"])
    med, pdeath = np.asarray(med), np.asarray(pdeath)

    def integrand(m):
        mu = gm["c0"] + gm["c1"] * m + gm["c2"] * np.log(r_km) + gm["c3"] * r_km
        p = norm.cdf((mu - np.log(med)) / np.sqrt(sig**2 + beta**2))
        return rate * truncated_gr_pdf(m, b, m_min, m_max) * np.sum((p - np.append(p[1:], 0.0)) * pdeath)

    return quad(integrand, m_min, m_max, limit=200, epsabs=0, epsrel=1e-10)[0]


# -- closed form -------------------------------------------------------------------------------


@pytest.mark.parametrize("epi_km,m_max", [(4.0, 5.0), (10.0, 6.5), (25.0, 4.5)])
def test_single_source_closed_form(tmp_path, epi_km, m_max):
    cfg = make_config(tmp_path, cells=[(*CELL, 0.5)], curves=CURVES, m_max=((m_max, 1.0),),
                      buildings=[dict(id="B1", x=CELL[0] + epi_km * 1000, y=CELL[1], typology="URM")],
                      source={"subcell_radius_km": 0.0})
    res = compute(cfg)
    ref = closed_form_lpr(0.5, np.hypot(epi_km, 3.0), m_max)
    assert res.mean[0, 0] == pytest.approx(ref, rel=5e-3)
    # a single branch: every quantile equals the mean
    assert res.quantiles[0, 0] == pytest.approx([res.mean[0, 0]] * 2, rel=1e-12)


def test_building_inside_cell_uses_subcells(tmp_path):
    """Building 200 m from the centre of its own cell: the rate is spread over 5x5 sub-cells."""
    bx, by = CELL[0] + 200.0, CELL[1] - 100.0
    cfg = make_config(tmp_path, cells=[(*CELL, 0.2)], curves=CURVES,
                      buildings=[dict(id="B1", x=bx, y=by, typology="URM")])
    res = compute(cfg)
    n = 5
    offs = (np.arange(n) + 0.5) * 1000.0 / n - 500.0
    ref = 0.0
    for ox in offs:
        for oy in offs:
            d = np.hypot(CELL[0] + ox - bx, CELL[1] + oy - by) / 1000.0
            ref += closed_form_lpr(0.2 / n**2, np.hypot(d, 3.0), 5.0)
    assert res.mean[0, 0] == pytest.approx(ref, rel=5e-3)


# -- magnitude binning and rate conservation ---------------------------------------------------


@pytest.mark.parametrize("b", [0.8, 1.0, 1.3])
def test_gr_bins_conserve_rate_and_mean(b):
    mmax = np.array([4.0, 4.5, 5.0, 5.5, 6.0, 6.5])
    bins = magnitude_bins([b], mmax, 1.5, 0.05)
    for j, mx in enumerate(mmax):
        mass = bins.mass[0, j]
        assert mass.sum() == pytest.approx(1.0, abs=1e-13)
        assert mass[bins.nodes > mx + 1e-9].sum() == 0.0
        mean_ref = quad(lambda m: m * truncated_gr_pdf(m, b, 1.5, mx), 1.5, mx)[0]
        assert (mass * bins.nodes).sum() == pytest.approx(mean_ref, rel=1e-12)
        # probability above any edge is the exact truncated-GR survival there (to the split within a bin)
        e = 3.0
        assert mass[bins.nodes > e + 1e-9].sum() <= 1 - truncated_gr_cdf(e, b, 1.5, mx) + 1e-12


@pytest.mark.parametrize("lam", [0.0, 1.0, 2.302585092994046, 2.302585092994046 + 3e-7, 6.0, 9.0])
def test_magnitude_integration_is_exact_for_exponentials(lam):
    """E[e^(lam M)] over truncated GR (b = 1) by the bins' log-linear rule equals the quadrature of
    the density (exact for exponentials), including lam = beta = b ln 10 (the ``exprel`` limit)."""
    mmax = np.array([4.0, 5.5, 6.5])
    bins = magnitude_bins([1.0], mmax, 1.5, 0.1)
    got = bins.integrate(np.exp(lam * bins.nodes)[None, :])  # (b, Mmax, 1)
    for j, mx in enumerate(mmax):
        want = quad(lambda m: np.exp(lam * m) * truncated_gr_pdf(m, 1.0, 1.5, mx), 1.5, mx, epsabs=0, epsrel=1e-13,
                    limit=200)[0]
        assert got[0, j, 0] == pytest.approx(want, rel=1e-10)


def test_total_rate_conserved_end_to_end(tmp_path):
    """Everything collapses (tiny medians): LPR = sum of rates within range x P_death(CS3)."""
    cells = [(CELL[0] + dx, CELL[1] + dy, r) for dx, dy, r in [(0, 0, 0.3), (3000, 0, 0.2), (-5000, 4000, 0.7), (90_000, 0, 5.0)]]
    curves = {"X": ((1e-9, 2e-9, 3e-9), 0.1, (0.1, 0.2, 0.4))}
    cfg = make_config(tmp_path, cells=cells, curves=curves, m_max=((4.0, 0.5), (6.0, 0.5)),
                      buildings=[dict(id="B", x=CELL[0] + 100, y=CELL[1] + 50, typology="X")])
    res = compute(cfg)
    # the cell at 90 km is beyond 70 km; the death probability 0.4 as the tables hold it (rounded to
    # 16 significant bits: 0.4 = 0.8 x 2^-1, 0.8 x 2^16 = 52428.8 -> 52429: 52429 / 2^17 = 0.40000152587890625,
    # kernels.round_table)
    assert res.mean[0, 0] == pytest.approx((0.3 + 0.2 + 0.7) * 52429 / 2 ** 17, rel=1e-12)


# -- quadrature convergence --------------------------------------------------------------------


def test_demo_quadrature_converges():
    """Doubling the Gauss-Hermite points of the demo GMM (20 -> 40) changes the death tables by < 0.1 %."""
    from hra.integration.engine import _phys_death
    from hra.gmm.demo import DemoGMM
    from fragility.demo import CONSEQUENCE, demo_fragility_table
    from fragility.lognormal import read_fragility_csv
    import tempfile, os

    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "f.csv")
        demo_fragility_table().to_csv(p, index=False)
        fr = read_fragility_csv(p, "AvgSa", 0.99, CONSEQUENCE)
    mag = magnitude_bins([1.0], [5.0], 1.5, 0.1)
    r = np.exp(np.linspace(np.log(3.0), np.log(40.0), 12))
    tree = DemoGMM().tree.enumerate()
    names = [n.name for n in DemoGMM().tree.nodes]
    for g in range(tree.n):
        branch = {nm: int(tree.index[g, j]) for j, nm in enumerate(names)}
        a, b = (mag.integrate(np.moveaxis(_phys_death(DemoGMM(n), fr, 1, False, branch, mag, r, np.arange(8)), 3, -1))
                for n in (20, 40))
        rel = np.abs(a / b - 1.0)
        assert rel[b > 1e-12].max() < 1e-3


# -- weighted quantiles ------------------------------------------------------------------------


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e3, 1e3, allow_nan=False), st.integers(1, 6)), min_size=1, max_size=25),
       st.floats(0.001, 0.999))
def test_weighted_quantile_equals_replication(pairs, q):
    v = np.array([p[0] for p in pairs])
    w = np.array([p[1] for p in pairs], dtype=float)
    rep = np.repeat(v, w.astype(int))
    expected = np.quantile(rep, q, method="inverted_cdf")
    assert weighted_quantile(v, w, q) == expected
    assert weighted_quantile(v, w / 7.3, q) == expected  # scale invariance
    out = np.empty(1)
    kernels.weighted_quantiles(v.copy(), w / w.sum(), v.size, np.array([q]), np.empty(v.size, np.int64), out)
    assert out[0] == expected


def test_weighted_quantile_matches_numpy_weights():
    rng = np.random.default_rng(3)
    v, w = rng.lognormal(size=200), rng.random(200)
    for q in (0.1, 0.5, 0.9):
        assert weighted_quantile(v, w, q) == np.quantile(v, q, weights=w, method="inverted_cdf")


# -- logic tree: enumeration, Monte Carlo, exact mean ------------------------------------------

TREE_CURVES = {"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3)), "RC": ((0.4, 0.7, 1.0), 0.5, (0.01, 0.08, 0.2))}
TREE_BUILDINGS = [
    dict(id=f"B{i:03d}", x=CELL[0] + 1500.0 * (i % 7), y=CELL[1] + 1200.0 * (i // 7),
         system_1="URM", s_probability_1=(1.0 if i % 3 else 0.6), system_2=("" if i % 3 else "RC"),
         s_probability_2=(0.0 if i % 3 else 0.4))
    for i in range(23)
]


def tree_config(tmp_path, **kw):
    return make_config(
        tmp_path, cells=[(CELL[0] + 2000 * i, CELL[1] + 1000 * j, 0.05 * (1 + i + j)) for i in range(4) for j in range(3)],
        curves=TREE_CURVES, buildings=TREE_BUILDINGS, years=(2025, 2026), m_max=((4.5, 0.6), (5.5, 0.3), (6.5, 0.1)),
        b_value=[{"value": 0.9, "weight": 0.5}, {"value": 1.1, "weight": 0.5}],
        rate_branches=[("low", 0.4, 0.7), ("high", 0.6, 1.3)],
        frag_branches=[("lower", 0.17, 0.7), ("central", 0.66, 1.0), ("upper", 0.17, 1.4)],
        fragility={"consequence": [{"factor": 0.8, "weight": 0.25}, {"factor": 1.0, "weight": 0.5}, {"factor": 1.2, "weight": 0.25}]},
        **kw,
    )


def test_enumeration_mean_is_weighted_mean_of_realisations(tmp_path):
    cfg = tree_config(tmp_path, run={"keep_realisations": True})
    res = compute(cfg)
    w = res.realisation_weight
    assert np.allclose(w.sum(axis=1), 1.0)
    mean_from_real = np.einsum("byr,br->by", res.realisations, w)
    np.testing.assert_allclose(res.mean, mean_from_real, rtol=1e-10)
    for b in range(res.mean.shape[0]):
        for y in range(2):
            np.testing.assert_array_equal(res.quantiles[b, y], weighted_quantile(res.realisations[b, y], w[b], [0.5, 0.9]))


def test_mixture_and_epistemic_typology_have_same_mean(tmp_path):
    a = compute(tree_config(tmp_path))
    b = compute(tree_config(tmp_path, run={"typology_uncertainty": "mixture"}))
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12)
    uncertain = np.array([i % 3 == 0 for i in range(23)])
    # mixing typologies narrows the distribution: the epistemic P90 is not lower
    assert np.all(a.quantiles[uncertain, :, 1] >= b.quantiles[uncertain, :, 1] * (1 - 1e-12))


def test_monte_carlo_quantiles_approach_enumeration(tmp_path):
    exact = compute(tree_config(tmp_path))
    mc = compute(tree_config(tmp_path, realisations=4000))
    np.testing.assert_allclose(mc.mean, exact.mean, rtol=1e-12)  # the mean is always the exact tree mean
    np.testing.assert_allclose(mc.quantiles, exact.quantiles, rtol=0.15)


@pytest.fixture(scope="module")
def inproc_scheduler():
    """The address of a dask.distributed scheduler (an in-process one: threads, no spawn)."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


@pytest.mark.parametrize("chunk,workers,executor", [
    (1, 1, "synchronous"), (7, 1, "threads"), (1000, 1, "synchronous"), (7, 2, "threads"), (3, 3, "threads"),
    (1000, 2, "threads"), (7, 2, "processes"), (7, 2, "scheduler"),
])
def test_results_independent_of_chunks_workers_and_executor(tmp_path, chunk, workers, executor, request):
    """Bit-identical results whatever the chunk size, the number of workers and where the tasks run
    (serially, threads, worker processes, an external dask scheduler)."""
    base = compute(tree_config(tmp_path / "a", realisations=300, run={"keep_realisations": True},
                               compute={"chunk_buildings": 5, "executor": "synchronous"}))
    comp = {"chunk_buildings": chunk, "workers": workers, "executor": executor}
    if executor == "scheduler":
        comp = {"chunk_buildings": chunk, "workers": workers, "scheduler": request.getfixturevalue("inproc_scheduler")}
    other = compute(tree_config(tmp_path / "b", realisations=300, run={"keep_realisations": True}, compute=comp))
    np.testing.assert_array_equal(base.mean, other.mean)
    np.testing.assert_array_equal(base.quantiles, other.quantiles)
    np.testing.assert_array_equal(base.realisations, other.realisations)
    assert base.mean.min() > 0 and base.mean.shape[0] == len(TREE_BUILDINGS)


def test_building_order_does_not_matter(tmp_path):
    a = compute(tree_config(tmp_path / "a", realisations=200))
    import pandas as pd

    cfg_b = tree_config(tmp_path / "b", realisations=200)
    bpath = tmp_path / "b" / "buildings.csv"
    pd.read_csv(bpath).iloc[::-1].to_csv(bpath, index=False)
    b = compute(cfg_b)
    np.testing.assert_array_equal(a.quantiles, b.quantiles[::-1])
    np.testing.assert_allclose(a.mean, b.mean[::-1], rtol=1e-14)


# -- properties ----------------------------------------------------------------------------------


def _one(tmp_path, rate=0.5, epi_km=5.0, med_scale=1.0, name="p"):
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    curves = {"URM": (tuple(m * med_scale for m in (0.15, 0.3, 0.6)), 0.5, (0.01, 0.1, 0.3))}
    cx, cy = 180_000.0, 500_000.0  # room for buildings up to 60 km east inside the RD New box
    cfg = make_config(d, cells=[(cx, cy, rate)], curves=curves, buildings=[dict(id="B", x=cx + epi_km * 1000, y=cy, typology="URM")],
                      source={"subcell_radius_km": 0.0})
    return compute(cfg).mean[0, 0]


@settings(max_examples=8, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.floats(0.01, 2.0), st.floats(1.05, 3.0), st.floats(0.5, 20.0), st.floats(1.1, 3.0), st.floats(0.3, 3.0))
def test_lpr_monotone(tmp_path, rate, rate_factor, epi, dist_factor, med):
    base = _one(tmp_path, rate, epi, med)
    assert _one(tmp_path, rate * rate_factor, epi, med) > base  # more events, more risk
    assert _one(tmp_path, rate, epi * dist_factor, med) < base  # farther, less risk
    assert _one(tmp_path, rate, epi, med / 1.3) > base  # weaker building, more risk


@settings(max_examples=40, derandomize=True, deadline=None)
@given(st.floats(-6, 1), st.floats(0.0, 1.0), st.lists(st.floats(0.05, 3.0), min_size=3, max_size=3), st.floats(0.0, 0.8))
def test_p_exceed_non_increasing_in_state(mean, sd, medians, beta):
    """P(CS >= k) from death_table never increases with k, even for crossing curves."""
    m = np.full((1, 1, 1), mean)
    s = np.full((1, 1, 1), sd)
    w = np.ones((1, 1, 1))
    betas = np.array([[[beta, beta * 0.5 + 0.1, beta * 1.5]]])
    pexc = np.empty((1, 1, 3, 1, 1))
    death = np.empty((1, 1, 1, 1, 1))
    kernels.death_table(m, s, w, np.log(np.array(medians)).reshape(1, 1, 3), betas, np.full((1, 1, 3), 0.1),
                        np.zeros((1, 1, 3)), 1.0, pexc, death)
    p = pexc[0, 0, :, 0, 0]
    assert np.all(np.diff(p) <= 1e-15)
    assert 0.0 <= death[0, 0, 0, 0, 0] <= 0.1 + 1e-15


def test_counter_uniform_is_uniform_and_keyed():
    key = np.uint64(12345)
    u = np.array([random.counter_uniform(key, np.uint64(99), i) for i in range(20000)])
    assert 0.0 <= u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01
    v = np.array([random.counter_uniform(key, np.uint64(100), i) for i in range(20000)])
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.03


# -- demo ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_region_exercises_every_category(tmp_path):
    cfg = hra.demo_config(3000, seed=1, directory=tmp_path, realisations=200)
    ds = hra.run(cfg, progress=False, write=False)
    p90 = (ds["lpr_p90"] > 1e-5).mean("building").values
    mean = (ds["lpr_mean"] > 1e-5).mean("building").values
    assert 0.003 < p90[0] < 0.05  # of the order of 1 % in the first year
    assert mean[0] < p90[0]  # fewer by mean
    assert p90[-1] < p90[0]  # declining
    assert (ds["lpr_mean"].values >= 0).all()


def test_building_lpr_equals_exposure_run(tmp_path):
    """hra.building_lpr with a typology's own curves reproduces that building's exposure-run result."""
    from types import SimpleNamespace

    cfg = tree_config(tmp_path)
    ref = compute(cfg)
    b = TREE_BUILDINGS[1]  # single typology URM
    med, beta, pdeath = TREE_CURVES["URM"]
    cfg1 = cfg.with_updates(fragility={"curves": str(tmp_path / "one.csv")})
    # one fragility branch only, so compare against a run with the same single branch
    from tests.helpers import write_fragility

    write_fragility(tmp_path / "one.csv", TREE_CURVES)
    ref1 = compute(cfg1)
    frag = SimpleNamespace(median_g=med, beta=(beta,) * 3, p_death_inside=pdeath, p_death_outside=(0, 0, 0), imt="PGA")
    out = hra.building_lpr(cfg1, b["x"], b["y"], frag)
    np.testing.assert_allclose(out["lpr_mean"], ref1.mean[1], rtol=1e-12)
    np.testing.assert_allclose(out["lpr_p90"], ref1.quantiles[1, :, 1], rtol=1e-12)
    assert ref.mean[1, 0] != pytest.approx(ref1.mean[1, 0])  # fragility branches matter: the test can tell
    with pytest.raises(ValueError, match="AvgSa"):
        hra.building_lpr(cfg1, b["x"], b["y"], SimpleNamespace(**{**frag.__dict__, "imt": "AvgSa"}))


def test_dost2004_model_from_config(tmp_path):
    """[ground_motion] model = "dost2004-bommer2013" runs through the engine; one Gaussian, so the
    single-source LPR equals the closed form with the model's own median and sigma."""
    from hra.gmm.dost2004 import DostBommer2013

    cfg = make_config(tmp_path, cells=[(*CELL, 0.5)], curves=CURVES, m_max=((5.0, 1.0),),
                      buildings=[dict(id="B1", x=CELL[0] + 4000.0, y=CELL[1], typology="URM")],
                      gm={"model": "dost2004-bommer2013"}, source={"subcell_radius_km": 0.0})
    res = compute(cfg)
    gmm = DostBommer2013()
    r = np.hypot(4.0, 3.0)
    mix_probe = gmm.ln_im_mixture("PGA", np.array([4.0]), np.array([r]), None, {})
    sig = float(mix_probe.sd[0, 0, 0])
    med, pdeath = np.array([0.15, 0.3, 0.6]), np.array([0.01, 0.1, 0.3])

    def integrand(m):
        mu = gmm.ln_im_mixture("PGA", np.array([m]), np.array([r]), None, {}).mean[0, 0, 0]
        p = norm.cdf((mu - np.log(med)) / np.sqrt(sig**2 + 0.5**2))
        return 0.5 * truncated_gr_pdf(m, 1.0, 1.5, 5.0) * np.sum((p - np.append(p[1:], 0.0)) * pdeath)

    ref = quad(integrand, 1.5, 5.0, limit=200, epsrel=1e-10)[0]
    assert res.mean[0, 0] == pytest.approx(ref, rel=5e-3)
