"""Event-based risk: consistency with the integration engine, correlation, chunking, F-N, outputs.

Independent references: the integration engine (quadrature, no sampling) for the per-building
expectation; the exponential correlation model for the simulated fields; hand-built death counts
for the F-N curve.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import hra
from hra.eventbased import kernels as ek
from hra.integration.engine import compute
from hra.chain import prepare
from hra.eventbased.catalogue import fixed_realisation
from hra.eventbased.risk import (EventRiskOptions, compute_event_based, event_based_dataset, fn_bootstrap, fn_curve,
                           _occupancy)
from hra.eventbased.gmf import BuildingGrid, FieldGrid, exponential_correlation
from hra.eventbased import adapters as es
from tests.helpers import make_config

CELL = (250_000.0, 590_000.0)
Z99 = stats.norm.ppf(0.995)


def weak_region(tmp, **kw):
    """12 cells (4 x 3 km, 0.5 events/yr each with M >= 1.5) and 12 weak buildings among them."""
    cells = [(CELL[0] + 1000 * i, CELL[1] + 1000 * j, 0.5) for i in range(4) for j in range(3)]
    curves = {"URM": ((0.05, 0.1, 0.2), 0.5, (0.01, 0.1, 0.3))}
    bld = [dict(id=f"B{i:02d}", x=CELL[0] + 700.0 * (i % 6) - 300, y=CELL[1] + 1100.0 * (i // 6) - 200, typology="URM",
                municipality=("West" if i % 6 < 3 else "East"), population_inside=1.0 + (i % 4))
           for i in range(12)]
    # uniform epicentres in a cell <-> 21 x 21 sub-cells in the integration engine
    src = {"subcell_radius_km": 100.0, "subcell_divisions": 21, "distance_nodes": 200}
    return make_config(tmp, cells=cells, curves=curves, buildings=bld, m_max=((5.0, 1.0),), source=src, **kw)


@pytest.fixture(scope="module")
def weak(tmp_path_factory):
    d = tmp_path_factory.mktemp("weak")
    cfg = weak_region(d)
    ref = compute(cfg)
    res = compute_event_based(cfg, EventRiskOptions(n_years_simulated=8000, bootstrap=200), progress=False)
    return cfg, ref, res


# -- consistency with the integration engine ------------------------------------------------------


def test_parametric_lpr_within_monte_carlo_interval(weak):
    """Single-branch tree, parametric GMM: every building's event-based LPR lies within its 99 %
    Monte-Carlo interval around the integration result; a 15 % bias would be detected."""
    cfg, ref, res = weak
    lpr, se, exact = res.lpr[:, 0], res.lpr_se[:, 0], ref.mean[:, 0]
    assert np.all(se / lpr < 0.06)  # the interval is narrow enough to mean something
    z = (lpr - exact) / se
    assert np.all(np.abs(z) < Z99), z
    assert np.sum(np.abs((lpr - 1.15 * exact) / se) > Z99) >= 9  # the test can fail
    assert res.events.n_events == pytest.approx(6 * 8000, rel=0.03)


def test_poisson_number_of_events(weak):
    _, _, res = weak
    mu = res.events.expected_counts.sum()
    assert mu == pytest.approx(12 * 0.5 * 8000)
    lo, hi = stats.poisson.ppf([0.0005, 0.9995], mu)
    assert lo <= res.events.n_events <= hi


def test_sampling_agrees_with_expectation(weak):
    """Sampled collapse rates and LPR agree with the conditional expectations (same events)."""
    _, _, res = weak
    acc = res.acc[:, 0]
    e_coll, s_coll = acc[:, ek.S_CS1], acc[:, ek.S_SCOLL]
    se = np.sqrt(acc[:, ek.S_SCOLL2])  # sampling adds Bernoulli noise on top of the same fields
    assert np.all(np.abs(s_coll - e_coll) < 4 * se)
    assert np.all(acc[:, ek.S_CS1] >= acc[:, ek.S_CS2]) and np.all(acc[:, ek.S_CS2] >= acc[:, ek.S_CS3])
    tot_s, tot_e = acc[:, ek.S_SDEATHS].sum(), acc[:, ek.S_DEATHS].sum()
    assert tot_s == pytest.approx(tot_e, rel=0.2)


def test_demo_model_one_fixed_realisation(tmp_path):
    """Demo GMM (non-linear zone AF, motion-dependent phi_S2S), 20 buildings, one realisation fixed to
    one branch of every node: the event-based LPR and collapse rate of every building lie within the
    99 % Monte-Carlo interval of that realisation's exact (integration) value."""
    cfg = hra.demo_config(20, seed=2, directory=tmp_path, realisations="all", years=(2025,))
    rng = np.random.default_rng(4)
    typ = ["URM_terraced_pre1920", "URM_farmhouse", "URM_detached_pre1945"]
    rows = [dict(id=f"D{i:02d}", x=246_500.0 + rng.uniform(-2500, 2500), y=596_500.0 + rng.uniform(-2500, 2500),
                 typology=typ[i % 3], zone=(1 if i % 2 else 5)) for i in range(20)]
    pd.DataFrame(rows).to_csv(tmp_path / "buildings.csv", index=False)
    # weaker than the demo set (medians x 0.35), so that many events contribute and 30,000 simulated
    # years give a Monte-Carlo error of a few per cent
    weak = pd.read_csv(tmp_path / "fragility.csv")
    weak["median_g"] *= 0.35
    weak.to_csv(tmp_path / "fragility.csv", index=False)
    cfg = cfg.with_updates(run={"keep_realisations": True, "typology_uncertainty": "mixture"})
    prep = prepare(cfg)
    branches = dict(source="elastic_plastic", m_max="Mmax=4.5", gmm_median="upper", gmm_sigma="high", gmm_site="high",
                    fragility="lower", consequence="x1.2")
    real = fixed_realisation(prep.tree, **branches)
    sizes = [n.size for n in prep.tree.nodes]
    u = int(np.ravel_multi_index(tuple(real.index[0]), sizes))
    exact_lpr = compute(cfg, prep=prep).realisations[:, 0, u]
    # collapse (CS >= CS1) rates from the same engine: death probability 1 in every state, always inside
    frag = pd.read_csv(tmp_path / "fragility.csv").assign(p_death=1.0, p_death_outside=1.0)
    frag.to_csv(tmp_path / "collapse.csv", index=False)
    ccfg = cfg.with_updates(fragility={"curves": str(tmp_path / "collapse.csv"), "consequence": [{"factor": 1.0, "weight": 1.0}]})
    cprep = prepare(ccfg)
    creal = fixed_realisation(cprep.tree, **{**branches, "consequence": "x1"})
    cu = int(np.ravel_multi_index(tuple(creal.index[0]), [n.size for n in cprep.tree.nodes]))
    exact_coll = compute(ccfg, prep=cprep).realisations[:, 0, cu]
    res = compute_event_based(cfg, EventRiskOptions(n_years_simulated=30000, realisations=real, bootstrap=0,
                                                    keep_event_table=False), prep=prep, progress=False)
    lpr, se = res.lpr[:, 0], res.lpr_se[:, 0]
    coll, cse = res.collapse_rate[:, 0], np.sqrt(res.acc[:, 0, ek.S_CS1SQ])
    assert np.all(se / lpr < 0.08) and np.all(cse / coll < 0.05), (se / lpr, cse / coll)
    z = (lpr - exact_lpr) / se
    zc = (coll - exact_coll) / cse
    assert np.all(np.abs(z) < Z99), z
    assert np.all(np.abs(zc) < Z99), zc
    assert np.mean(np.abs((coll - 1.15 * exact_coll) / cse) > Z99) > 0.5  # a 15 % bias would be detected
    assert np.mean(np.abs((lpr - 1.25 * exact_lpr) / se) > Z99) > 0.5
    # the branch choice matters: the tree-mean LPR differs from this realisation's
    assert np.all(compute(cfg, prep=prep).mean[:, 0] < 0.7 * exact_lpr)


def test_event_split_reproduces_marginal_mixture():
    """Adapters: sampling eta, eps, xi through the site table gives the mixture's mean and sd."""
    from hra.gmm.demo import DemoGMM
    from hra.gmm.dost2004 import DostBommer2013
    from hra.gmm.parametric import ParametricGMM

    cases = [(DemoGMM(), "AvgSa", 1, {"gmm_median": 2, "gmm_sigma": 1, "gmm_site": 0}),
             (DemoGMM(), "PGA", 5, {}),
             (ParametricGMM(-5.0, 1.2, -1.5, 0.0, 0.3, 0.5), "PGA", None, {}),
             (DostBommer2013(), "PGA", None, {})]
    for gmm, imt, zone, br in cases:
        for m, r in ((3.5, 5.0), (5.0, 12.0)):
            me, se_, mm, sm = es.marginal_check(gmm, imt, m, r, zone, br, n=100_000, seed=1)
            assert me == pytest.approx(mm, abs=0.02) and se_ == pytest.approx(sm, rel=0.02), (gmm.name, imt, m, r)
    with pytest.raises(NotImplementedError, match="event_terms"):
        es.event_terms(type("Other", (), {"name": "other"})(), "PGA", [3.0], [5.0], {})


# -- ground-motion fields ---------------------------------------------------------------------------


def test_field_correlation_and_unit_variance():
    """Interpolated field + nugget: unit variance at any position, correlation exp(-3d/range) at
    distances beyond the grid spacing, for the FFT and the direct (Cholesky) paths."""
    grid = FieldGrid(0.0, 0.0, 500.0, 60, 60, 8.5)
    rng = np.random.default_rng(0)
    px, py = rng.uniform(1000, 20000, 40), rng.uniform(1000, 20000, 40)
    bg = BuildingGrid.build(grid, px, py)
    n_f = 1500
    vals = {"fft": np.empty((n_f, px.size)), "direct": np.empty((n_f, px.size))}
    ci0, cj0 = 0, 0
    nwx = nwy = 45
    li, lj = bg.gi - ci0, bg.gj - cj0
    nodes = np.unique(np.concatenate([li + lj * nwx, li + 1 + lj * nwx, li + (lj + 1) * nwx, li + 1 + (lj + 1) * nwx]))
    for k in range(n_f):
        key = np.uint64(ek.event_key(np.uint64(99), k))
        for path in ("fft", "direct"):
            if path == "fft":
                f, c10, c01, c11 = grid.field(key, nwx, nwy)
            else:
                f, c10, c01, c11 = grid.direct_field(key, nodes, nwx, nwy)
            a, b = bg.fx, bg.fy
            w = np.stack([(1 - a) * (1 - b), a * (1 - b), (1 - a) * b, a * b])
            corner = np.stack([f[li, lj], f[li + 1, lj], f[li, lj + 1], f[li + 1, lj + 1]])
            var = ((w**2).sum(0) + 2 * c10 * (w[0] * w[1] + w[2] * w[3]) + 2 * c01 * (w[0] * w[2] + w[1] * w[3])
                   + 2 * c11 * (w[0] * w[3] + w[1] * w[2]))
            nug = np.array([ek.counter_normal(np.uint64(key), np.uint64(i), 0) for i in range(px.size)])
            vals[path][k] = (w * corner).sum(0) + np.sqrt(1 - var) * nug
    d = np.hypot(px[:, None] - px[None, :], py[:, None] - py[None, :]) * 1e-3
    iu = np.triu_indices(px.size, 1)
    for path, v in vals.items():
        assert np.all(np.abs(v.var(0) - 1) < 0.12), path  # 1500 draws: sd of a variance ~0.037
        c = np.corrcoef(v.T)[iu]
        rho = exponential_correlation(d[iu], 8.5)
        far = d[iu] > 1.0
        err = c[far] - rho[far]
        assert abs(err.mean()) < 0.02 and np.sqrt((err**2).mean()) < 0.06, (path, err.mean())
    # the test can fail: against a 3x shorter range the error is large
    c = np.corrcoef(vals["fft"].T)[iu]
    assert np.sqrt(((c - exponential_correlation(d[iu], 2.8)) ** 2).mean()) > 0.1


def test_correlation_widens_the_fn_curve(tmp_path):
    """Same events, same between-event residuals, same marginals: correlated within-event fields make
    the deaths per event more dispersed (heavier F-N tail) while the expected total stays the same."""
    cfg = weak_region(tmp_path)
    a = compute_event_based(cfg, EventRiskOptions(n_years_simulated=3000, bootstrap=0), progress=False)
    b = compute_event_based(cfg, EventRiskOptions(n_years_simulated=3000, bootstrap=0, correlation_range_km=0.0),
                            progress=False)
    da, db = a.event_stats[:, ek.E_DEATHS_EXP], b.event_stats[:, ek.E_DEATHS_EXP]
    assert da.var() > 1.1 * db.var()
    t = np.quantile(db, 0.999)
    rate = a.events.event_rate()
    assert fn_curve(da, rate, [t])[0] > fn_curve(db, rate, [t])[0]
    assert da.sum() == pytest.approx(db.sum(), rel=0.05)


# -- determinism ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk,workers,executor", [(7, 1, "synchronous"), (100_000, 1, "threads"),
                                                    (500, 2, "threads"), (500, 3, "threads")])
def test_independent_of_chunks_and_workers(weak, chunk, workers, executor):
    cfg, _, base = weak
    cfg2 = cfg.with_updates(compute={"workers": workers, "executor": executor})
    other = compute_event_based(cfg2, EventRiskOptions(n_years_simulated=8000, event_chunk=chunk, bootstrap=200),
                                progress=False)
    np.testing.assert_array_equal(base.event_stats, other.event_stats)
    # the per-building sums add the events in another order with other chunks and worker counts
    np.testing.assert_allclose(base.acc, other.acc, rtol=1e-12, atol=0)


def test_threads_and_processes_give_identical_results(weak):
    """With the same chunks and workers, where the tasks run changes nothing, to the bit."""
    cfg, _, _ = weak
    opts = EventRiskOptions(n_years_simulated=8000, event_chunk=500, bootstrap=0)
    res = {ex: compute_event_based(cfg.with_updates(compute={"workers": 2, "executor": ex}), opts, progress=False)
           for ex in ("threads", "processes")}
    np.testing.assert_array_equal(res["threads"].event_stats, res["processes"].event_stats)
    np.testing.assert_array_equal(res["threads"].acc, res["processes"].acc)
    assert res["threads"].acc.max() > 0


def test_building_order_does_not_matter(tmp_path, weak):
    cfg, _, base = weak
    bpath = tmp_path / "buildings.csv"
    df = pd.read_csv(cfg.resolve(cfg.exposure.buildings)).iloc[::-1]
    df.to_csv(bpath, index=False)
    cfg2 = cfg.with_updates(exposure={"buildings": str(bpath)})
    other = compute_event_based(cfg2, EventRiskOptions(n_years_simulated=8000, bootstrap=0), progress=False)
    np.testing.assert_array_equal(base.event_stats[:, :5], other.event_stats[:, :5])
    np.testing.assert_allclose(base.acc, other.acc[::-1], rtol=1e-12)


# -- F-N, occupancy, Dataset ---------------------------------------------------------------------------


def test_fn_curve_and_bootstrap_by_hand():
    deaths = np.array([0, 1, 3, 12, 0, 2, 40])
    rate = np.full(7, 0.01)
    f = fn_curve(deaths, rate, [1, 2, 10, 50])
    np.testing.assert_allclose(f, [0.05, 0.04, 0.02, 0.0])
    rng = np.random.default_rng(0)
    lo, hi = fn_bootstrap(deaths, rate, np.zeros(7, int), np.arange(7) % 5, 100, [1, 2, 10, 50], 300, 0.9, rng)
    assert np.all(lo <= f + 1e-15) and np.all(f <= hi + 1e-15) and hi[0] > lo[0] and hi[-1] == 0.0


def test_occupancy_rule():
    n_in, n_out = _occupancy(np.array([2.0, np.nan]), 0.8)
    np.testing.assert_allclose(n_in, [2.0, 0.8])
    np.testing.assert_allclose(n_out, [0.5, 0.2])


def test_dataset_outputs(weak):
    cfg, _, res = weak
    ds = event_based_dataset(res)
    for name, var in ds.data_vars.items():
        assert "units" in var.attrs and "long_name" in var.attrs, name
    prov = json.loads(ds.attrs["provenance"])
    assert prov["calculation"] == "event-based" and prov["seed"] == 7 and prov["n_years_simulated"] == 8000
    # expected fatalities per building = persons x LPR-type death probability (presence 1: inside only)
    pop = ds["population_inside"].values
    np.testing.assert_allclose(ds["fatality_rate"].values[:, 0], pop * ds["lpr_event"].values[:, 0], rtol=1e-12)
    assert float(ds["expected_fatalities"][0]) == pytest.approx(float(ds["fatality_rate"].sum()))
    m = ds["municipality_collapses"].sum("municipality_index")
    np.testing.assert_allclose(m.values, ds["expected_collapses"].values)
    assert set(ds["municipality_name"].values) == {"West", "East"}
    fn = ds["fn_frequency"].values[0]
    assert np.all(np.diff(fn) <= 0) and np.all(ds["fn_lower"].values[0] <= fn + 1e-15)
    assert np.all(fn <= ds["fn_upper"].values[0] + 1e-15)
    ref = ds["group_risk_reference"].values
    assert np.isnan(ref[0]) and ref[list(ds["fn_n"].values).index(10.0)] == pytest.approx(1e-5)
    top = ds["top_event_deaths"].values[0]
    assert np.all(np.diff(top[np.isfinite(top)]) <= 0)
    assert top[0] == ds["event_deaths"].max()
    assert int(ds["n_events"][0]) == res.events.n_events
    import importlib.util

    if importlib.util.find_spec("netCDF4") or importlib.util.find_spec("h5netcdf"):  # netCDF3 has no int64
        ds.to_netcdf(cfg.base_dir / "eb.nc")  # serialisable as written


# -- [event_based] configuration ----------------------------------------------------------------------


def test_event_based_section_runs_and_overrides(tmp_path):
    """The [event_based] section sets the options of a run (here: years, correlation, bootstrap);
    EventRiskOptions.from_config lets explicit values win."""
    from hra.config import config_from_dict

    cfg = weak_region(tmp_path)
    data = cfg.model_dump(mode="json", exclude={"base_dir", "source_file"})
    data["event_based"] = {"years_simulated": 600, "realisations": 1, "correlation_range_km": 0.0, "bootstrap": 0,
                           "location": "centre", "fn_thresholds": [1, 2, 5], "keep_event_table": False}
    cfg2 = config_from_dict(data, base_dir=tmp_path)
    opts = EventRiskOptions.from_config(cfg2)
    assert (opts.n_years_simulated, opts.correlation_range_km, opts.location) == (600, 0.0, "centre")
    assert opts.fn_thresholds == (1.0, 2.0, 5.0)
    ds = hra_events(cfg2)
    assert int(ds.attrs["n_years_simulated"]) == 600 and ds.sizes["fn_n"] == 3 and "event_id" not in ds.coords
    assert json.loads(ds.attrs["provenance"])["event_options"]["correlation_range_km"] == 0.0
    assert EventRiskOptions.from_config(cfg2, years_simulated=1200, seed=None).n_years_simulated == 1200
    assert EventRiskOptions.from_config(cfg).n_years_simulated == 10_000  # defaults without the section


def test_event_options_derive_from_the_config_section():
    """One schema: EventRiskOptions is the [event_based] section plus the options only the API sets."""
    from hra.config import EventBasedSection
    from hra.eventbased.gmf import JB2009_PGA_RANGE_KM
    from hra.eventbased.risk import EventRiskError

    assert issubclass(EventRiskOptions, EventBasedSection)
    section, opts = EventBasedSection(), EventRiskOptions()
    for name in set(EventBasedSection.model_fields) - {"fn_thresholds", "output"}:
        assert getattr(opts, name) == getattr(section, name), name
    assert section.correlation_range_km == JB2009_PGA_RANGE_KM
    assert EventRiskOptions(n_years_simulated=600).years_simulated == 600 == EventRiskOptions(years_simulated=600).n_years_simulated
    with pytest.raises(ValueError, match="rates"):
        EventRiskOptions(rates="sampled")
    with pytest.raises(EventRiskError, match="multiple of realisations"):
        EventRiskOptions.from_config(None, years_simulated=1001, realisations=2)


def hra_events(cfg):
    from hra.eventbased.risk import run_event_based

    return run_event_based(cfg, progress=False)


def test_event_based_section_bad_keys_are_refused(tmp_path):
    from hra.config import ConfigError, config_from_dict

    data = weak_region(tmp_path).model_dump(mode="json", exclude={"base_dir", "source_file"})
    for bad, words in (({"years_simulatd": 10}, ["event_based.years_simulatd", "Extra inputs are not permitted",
                                                 "check its spelling"]),
                       ({"rates": "sampled"}, ["event_based.rates", "allowed values"]),
                       ({"years_simulated": 1001, "realisations": 2}, ["event_based", "multiple of realisations"]),
                       ({"output": "eb.csv"}, ["event_based.output", ".zarr or .nc"])):
        with pytest.raises(ConfigError) as err:
            config_from_dict({**data, "event_based": bad}, base_dir=tmp_path, source="run.toml")
        msg = str(err.value)
        assert "run.toml" in msg and all(w in msg for w in words), msg


def test_events_command_reads_the_section(tmp_path):
    """`hra events CONFIG`: [event_based] gives the options and the output; --years-simulated overrides."""
    import tomli_w
    import xarray as xr
    from typer.testing import CliRunner

    from hra.cli import app

    cfg = weak_region(tmp_path)
    data = cfg.model_dump(mode="json", exclude={"base_dir", "source_file"})
    data["event_based"] = {"years_simulated": 300, "bootstrap": 0, "output": "eb.nc"}

    def clean(d):
        return {k: clean(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}

    toml = tmp_path / "run.toml"
    toml.write_bytes(tomli_w.dumps(clean(data)).encode())
    runner = CliRunner()
    res = runner.invoke(app, ["events", str(toml)])
    assert res.exit_code == 0, res.output
    assert int(xr.open_dataset(tmp_path / "eb.nc").attrs["n_years_simulated"]) == 300
    res = runner.invoke(app, ["events", str(toml), "--years-simulated", "200", "--out", str(tmp_path / "eb2.nc")])
    assert res.exit_code == 0, res.output
    assert int(xr.open_dataset(tmp_path / "eb2.nc").attrs["n_years_simulated"]) == 200
    data["event_based"]["corelation_range_km"] = 3.0
    toml.write_bytes(tomli_w.dumps(clean(data)).encode())
    bad = runner.invoke(app, ["events", str(toml)])
    assert bad.exit_code == 2 and "event_based.corelation_range_km" in bad.output


# -- GMM V7 / V6 (needs the public model tables: HRA_MODEL_DIR) ---------------------------------------


@pytest.fixture(scope="module")
def model_dir():
    from hra.inputs.modeldata import model_dir_or_skip

    return model_dir_or_skip()


@pytest.mark.models
@pytest.mark.parametrize("version", ["groningen-v7", "groningen-v6"])
def test_groningen_event_kernel_af_equals_the_model(model_dir, version):
    """The kernel's restatement of the linear AF (f1) plus the non-linear, clipped term gives the
    model's own ln AF (GroningenV7/V6.ln_af) at random zones, periods, M, R and reference motions."""
    from hra.eventbased.groningen import f1_linear, site_arrays
    from hra.gmm.registry import load_gmm

    gmm = load_gmm(version, model_dir)
    rng = np.random.default_rng(3)
    per = np.asarray(gmm.avgsa_periods)
    tp = np.asarray(gmm.tables.periods)
    idx = np.array([int(np.argmin(np.abs(tp - t))) for t in per])
    zones = rng.choice(gmm.tables.zones, 12, replace=False)
    sa = site_arrays(gmm, [(int(z), False) for z in zones], idx)
    worst = 0.0
    for s, z in enumerate(zones):
        for _ in range(20):
            p = int(rng.integers(per.size))
            m, r, y = rng.uniform(1.5, 6.5), np.exp(rng.uniform(np.log(3.0), np.log(70.0))), rng.uniform(-9.0, 1.0)
            la = f1_linear(sa.kind, sa.f1c[s, p], m, np.log(r)) + sa.f2[s, p] * np.log1p(np.exp(y) * sa.inv_f3[s, p])
            la = min(max(la, sa.lnlo[s, p]), sa.lnhi[s, p])
            worst = max(worst, abs(la - float(gmm.ln_af(int(z), per[p], m, r, y))))
    assert worst < 1e-12


def _brute_force_spectrum(gmm, imt, m, r_hyp, zone, branch, wierde, n, rng):
    """Independent draws from the model's definition, with its public functions: R_rup by the
    rupture sampler, 10 reference residuals with covariance sigma_p sigma_q rho_pq, surface by
    GroningenV7.surface_ln_sa_g; returns ln IM and ln Sa(0.01 s)."""
    from hra.gmm.rupture import sample_rrup

    per = np.asarray(gmm.avgsa_periods)
    rr = sample_rrup(m, r_hyp, n, rng) if gmm.rupture == "finite" else np.full(n, r_hyp)
    mu = gmm.ln_median_sa_g(per[None, :], m, rr[:, None], branch)
    sd = gmm.sigma_components(per[None, :], m, rr[:, None], branch)["sigma_arbitrary"]
    tp = np.asarray(gmm.tables.periods)
    idx = np.array([int(np.argmin(np.abs(tp - t))) for t in per])
    L = np.linalg.cholesky(np.asarray(gmm.tables.p2p)[np.ix_(idx, idx)])
    y = mu + sd * (rng.standard_normal((n, per.size)) @ L.T)
    if gmm.s2s_mode == "epistemic":
        eps = gmm.tree.node("gmm_s2s").values[branch["gmm_s2s"]]
    else:  # aleatory, "consistent": site terms correlated like the reference residual
        eps = rng.standard_normal((n, per.size)) @ L.T
    h = gmm.surface_ln_sa_g(zone, m, rr, y, eps, wierde)
    return (h.mean(axis=1) if imt == "AvgSa" else h[:, 0]), h[:, 0]


@pytest.mark.models
@pytest.mark.parametrize("version,rupture,m,r,zone,wierde,branch", [
    ("groningen-v7", "finite", 5.2, 4.0, 308, True, {"gmm_median": 3, "gmm_tau": 2, "gmm_phi_ss": 1, "gmm_s2s": 2}),
    ("groningen-v7", "point", 3.6, 9.0, 1001, False, {"gmm_median": 0, "gmm_tau": 1, "gmm_phi_ss": 0, "gmm_s2s": 0}),
    ("groningen-v6", "point", 4.6, 5.0, 308, False, {"gmm_median": 2, "gmm_phi_ss": 1}),
])
def test_groningen_event_simulation_reproduces_the_model(model_dir, version, rupture, m, r, zone, wierde, branch):
    """Per building, the event simulation (one rupture per event, between-event vector, within-event
    vector split along AvgSa, non-linear AF per period) draws ln AvgSa and ln PGA from the model's
    distribution: against independent brute-force draws of the model's definition (mean, sd, tail
    probabilities at the 90 / 99 / 99.9 % levels of the brute force) and against the integration
    engine's mixture (GroningenV7.ln_im_mixture)."""
    from scipy.special import ndtr

    from hra.eventbased.groningen import simulate_marginal
    from hra.gmm.registry import load_gmm

    gmm = load_gmm(version, model_dir, rupture=rupture)
    n = 300_000
    a_sim, p_sim = simulate_marginal(gmm, "AvgSa", m, r, zone, branch, n=n, seed=5, wierde=wierde)
    rng = np.random.default_rng(9)
    a_bf, p_bf = _brute_force_spectrum(gmm, "AvgSa", m, r, zone, branch, wierde, n, rng)
    for imt, sim, bf in (("AvgSa", a_sim, a_bf), ("PGA", p_sim, p_bf)):
        assert sim.mean() == pytest.approx(bf.mean(), abs=0.006), imt  # sd of a mean: 0.0015-0.002
        assert sim.std() == pytest.approx(bf.std(), rel=0.012), imt
        qs = np.quantile(bf, [0.9, 0.99, 0.999])
        p_s = np.array([(sim > q).mean() for q in qs])
        # 3.5-4 sd of the difference of the two samples (each ~5.8 % at 0.999, 1.8 % at 0.99)
        assert np.all(np.abs(p_s / [0.1, 0.01, 0.001] - 1) < [0.035, 0.09, 0.35]), (imt, p_s)
        mix = gmm.ln_im_mixture(imt, np.array([m]), np.array([r]), zone, branch, wierde=wierde)
        p_mix = np.array([(mix.weight[0, 0] * ndtr((mix.mean[0, 0] - q) / mix.sd[0, 0])).sum() for q in qs])
        assert np.all(np.abs(p_s / p_mix - 1) < [0.04, 0.1, 0.3]), (imt, p_s, p_mix)
    # the comparison can fail: another tau branch (or no wierde) is detected
    if version == "groningen-v7":
        other = dict(branch, gmm_tau=(branch["gmm_tau"] + 1) % 3)
        a_o, _ = simulate_marginal(gmm, "AvgSa", m, r, zone, other, n=n, seed=5, wierde=wierde)
        assert abs(a_o.std() / a_bf.std() - 1) > 0.03


@pytest.mark.models
def test_median_branch_per_event_follows_the_engine(model_dir):
    """Realisation mode: at the magnitude nodes every virtual branch picks the engine's physical
    median branch (MedianMap.mix); mixture mode: per-event draws have the w(M) frequencies."""
    from hra.chain import MedianMap
    from hra.eventbased.groningen import physical_median_branches
    from hra.gmm.groningen_v7 import GroningenV7

    gmm = GroningenV7(model_dir)
    nodes = np.round(np.arange(1.5, 6.55, 0.1), 10)
    mm = MedianMap.build(gmm.median_weights(nodes), "realisation")
    for v in range(mm.weights.size):
        np.testing.assert_array_equal(physical_median_branches(gmm, mm, "realisation", v, nodes), mm.mix[v].argmax(axis=1))
    mix = MedianMap.build(gmm.median_weights(nodes), "mixture")
    u = np.random.default_rng(1).random(200_000)
    for m in (3.0, 4.3, 5.5):
        k = physical_median_branches(gmm, mix, "mixture", 0, np.full(u.size, m), u)
        np.testing.assert_allclose(np.bincount(k, minlength=4) / u.size, gmm.median_weights([m])[0], atol=0.004)


def _v7_region(tmp, model_dir, seed=5, presence=0.5, years=(2025,)):
    """One source cell (1 event/yr with M >= 4.5, Mmax 5.5) and 5 FCM-V7 buildings within 3 km,
    one on a wierde; point source at the cell centre in both engines; presence 0.5 so that the
    chimney (PGA) term carries most of the strong URM7L building's LPR."""
    from hra.config import config_from_dict

    typ = ["URM3M_U", "URM3L", "URM4L", "RC1L", "URM7L"]
    pd.DataFrame([dict(id=f"G{i}", x=234_600.0 + 900 * i, y=572_800.0 + 300 * (i % 2), typology=typ[i], zone=308,
                       wierde=int(i == 1)) for i in range(5)]).to_csv(tmp / "buildings.csv", index=False)
    pd.DataFrame([dict(x=235_500.0, y=573_500.0, year=y, rate=1.0) for y in years]).to_csv(tmp / "rates.csv", index=False)
    return config_from_dict({
        "run": {"years": list(years), "seed": seed, "realisations": 4, "keep_realisations": True},
        "source": {"rates": "rates.csv", "m_min": 4.5, "distance_nodes": 64, "max_distance_km": 15.0,
                   "subcell_radius_km": 0.0, "magnitude": {"b_value": 0.9, "m_max": [{"value": 5.5, "weight": 1.0}]}},
        "ground_motion": {"model": "groningen-v7", "model_dir": str(model_dir), "rupture": "finite", "quadrature": "fast"},
        "exposure": {"buildings": "buildings.csv"},
        "fragility": {"model": "fcm-v7", "presence_inside": presence},
        "compute": {"progress": False, "workers": 1, "executor": "synchronous"},
        "event_based": {"years_simulated": 60_000, "realisations": 4, "location": "centre", "bootstrap": 0,
                        "keep_event_table": False},
    }, base_dir=tmp)


@pytest.mark.models
@pytest.mark.slow
def test_groningen_v7_event_based_lpr_matches_integration(tmp_path, model_dir):
    """GMM V7 + FCM V7 (finite ruptures, epistemic site terms, w(M) median branches per realisation,
    chimney deaths outside): every building's event-based LPR over 4 logic-tree realisations
    (60,000 simulated years, ~60,000 events) lies within its 99 % Monte-Carlo interval around the
    integration engine's mean of the same 4 realisations (hra.run, keep_realisations)."""
    cfg = _v7_region(tmp_path, model_dir)
    ds = hra.run(cfg, progress=False, write=False)
    exact = (ds["lpr_realisations"].values[:, 0, :] * ds["realisation_weight"].values).sum(axis=1)
    res = compute_event_based(cfg, progress=False)
    assert res.events.realisations.n == 4 and res.events.n_events == pytest.approx(60_000, rel=0.02)
    lpr, se = res.lpr[:, 0], res.lpr_se[:, 0]
    assert np.all(se / lpr < 0.07), se / lpr
    z = (lpr - exact) / se
    assert np.all(np.abs(z) < Z99), (lpr, exact, z)
    assert np.mean(np.abs((lpr - 1.15 * exact) / se) > Z99) >= 0.6  # a 15 % bias would be detected
    # the chimney term is in: URM7L's LPR is far above what its collapses alone can give (the
    # simulated rates of CS = k times the largest death probabilities given CS = k)
    fr = res.prep.fragility
    t = fr.typologies.index("URM7L")
    ge = res.acc[4, 0, [ek.S_CS1, ek.S_CS2, ek.S_CS3]]
    eq = ge - np.append(ge[1:], 0.0)
    structural = eq @ (0.5 * fr.p_death_inside[t].max(axis=0) + 0.5 * fr.p_death_outside[t].max(axis=0))
    assert lpr[4] > 5 * structural, (lpr[4], structural)


@pytest.mark.models
def test_groningen_event_based_is_chunk_and_worker_independent(tmp_path, model_dir):
    cfg = _v7_region(tmp_path, model_dir, presence=0.99)
    prep = prepare(cfg)
    opts = dict(n_years_simulated=2000, realisations=4, location="uniform", bootstrap=0, keep_event_table=False)
    base = compute_event_based(cfg, EventRiskOptions(event_chunk=100_000, **opts), prep=prep, progress=False)
    assert base.lpr[:, 0].min() > 0
    small = compute_event_based(cfg, EventRiskOptions(event_chunk=7, **opts), prep=prep, progress=False)
    np.testing.assert_array_equal(base.event_stats, small.event_stats)
    np.testing.assert_allclose(base.acc, small.acc, rtol=1e-12, atol=0)
    cfg2 = cfg.with_updates(compute={"workers": 2, "executor": "threads"})
    par = compute_event_based(cfg2, EventRiskOptions(event_chunk=150, **opts), progress=False)
    np.testing.assert_array_equal(base.event_stats, par.event_stats)
    np.testing.assert_allclose(base.acc, par.acc, rtol=1e-12, atol=0)
