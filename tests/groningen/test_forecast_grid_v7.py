"""A forecast on the PSDRA-2024 magnitude grid (0.1) with GMM V7 + FCM V7 (needs HRA_MODEL_DIR).

The same truncated Gutenberg-Richter law written at 0.05 and at 0.1 (Mmax 4.5 and 5.0: on the
midpoints of the 0.1 grid 2.95, 3.05, ..., as the chain's Mmax 4.0 ... 6.5 are on the PSDRA-2024
grid 1.45, 1.55, ...). ``[source] magnitude_subdivisions = 2`` splits every 0.1 bin at its midpoint
by its in-bin law (``hra.inputs.forecast.subdivide_bins``): the run must then equal the 0.05
file's, while the 0.1 file integrated on its own grid is measurably high; with
``magnitude_table_stride = 2`` as well the tables are computed at the 0.1 file's nodes (and the
V7 kinks) and the LPR stays within the stride's accuracy.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from hra.inputs.modeldata import model_dir_or_skip

CELLS = ((234_500.0, 573_500.0, 0.04), (238_500.0, 573_500.0, 0.02))  # x, y [m], rate of M >= 2.95 [yr^-1]
MMAX = (4.5, 5.0)
B_VALUE = 0.95


def _forecast(path, step, cells=None, psdra_dims=False):
    """The forecast file of ``cells`` ((x [m], rate of M >= 2.95 [yr^-1], b-value) on the row of
    ``CELLS``; default ``CELLS`` with ``B_VALUE``) on a magnitude grid of ``step`` from 2.95 to 5.55;
    ``psdra_dims``: also the PSDRA-2024 rate and magnitude-model dims (the same counts in each branch)."""
    from hra.inputs.forecast import gr_counts, write_forecast

    cells = [(x, rate, B_VALUE) for x, _, rate in CELLS] if cells is None else cells
    mags = np.round(2.95 + step * np.arange(int(round(2.6 / step)) + 1), 10)  # 2.95 ... 5.55
    arr = np.zeros((len(MMAX), mags.size, 1, len(cells), 1))
    for k, mx in enumerate(MMAX):
        for i, (_, rate, b) in enumerate(cells):
            arr[k, :, 0, i, 0] = gr_counts(mags, rate, b, mx)
    da = xr.DataArray(arr, dims=("branch_mmax", "magnitude", "time", "x", "y"),
                      coords=dict(branch_mmax=list(MMAX), magnitude=mags, time=np.array(["2025-07-01"], dtype="datetime64[ns]"),
                                  x=[c[0] for c in cells], y=[CELLS[0][1]]))
    if psdra_dims:
        da = da.expand_dims(branch_rate=["elastic", "elastic_plastic"], branch_mm=["linear_stress", "split_thickness"])
    return write_forecast(da, path)


def _config(tmp_path, forecast, **source):
    from hra.config import config_from_dict

    rows = [dict(id=f"b{i}", x=234_500.0 + dx, y=573_500.0 + dy, typology=t, zone=320)
            for i, (dx, dy, t) in enumerate([(2500.0, 1500.0, "URM3M_U"), (-800.0, 3200.0, "URM3M_U"),
                                              (1500.0, -500.0, "URM7L")])]
    pd.DataFrame(rows).to_csv(tmp_path / "b.csv", index=False)
    return config_from_dict({
        "run": {"years": [2025], "seed": 3, "realisations": 8},
        "source": {"forecast": str(forecast), "forecast_weights": {"branch_mmax": {"4.5": 0.6, "5.0": 0.4}},
                   "distance_nodes": 12, "max_distance_km": 10.0, "subcell_divisions": 1, **source},
        "ground_motion": {"model": "groningen-v7", "model_dir": str(model_dir_or_skip()), "quadrature": "fast",
                          "rupture_strike": "uniform"},
        "exposure": {"buildings": "b.csv"}, "fragility": {"model": "fcm-v7"},
        "compute": {"progress": False, "table_store": False},
    }, base_dir=tmp_path)


def test_psdra_2024_grid_subdivided_equals_the_finer_file(tmp_path):
    import hra
    from hra.chain import prepare
    from hra.integration import magnitudes

    f05 = _forecast(tmp_path / "m005.h5", 0.05)
    f10 = _forecast(tmp_path / "m010.h5", 0.1)
    runs = {name: hra.run(_config(tmp_path, f, **src), progress=False, write=False)
            for name, f, src in [("0.05", f05, {}), ("0.1", f10, {}), ("0.1 split", f10, {"magnitude_subdivisions": 2}),
                                 ("0.1 split, stride 2", f10, {"magnitude_subdivisions": 2, "magnitude_table_stride": 2})]}
    ref = runs["0.05"]
    for k in ("lpr_mean", "lpr_p50", "lpr_p90"):
        want = ref[k].values
        assert np.all(want > 1e-9), k
        np.testing.assert_allclose(runs["0.1 split"][k].values, want, rtol=1e-10, atol=0, err_msg=k)
        # measured: mean 4.4e-5, P50 5.4e-5, P90 3.2e-5
        np.testing.assert_allclose(runs["0.1 split, stride 2"][k].values, want, rtol=3e-4, atol=0, err_msg=k)
    high = runs["0.1"]["lpr_mean"].values / ref["lpr_mean"].values - 1.0
    assert np.all(high > 5e-3), high  # the in-bin rule on the 0.1 grid: measured +1.4 to +2.2 %
    # the stride's tables at the 0.1 file's own nodes (and GMM V7's kinks between them)
    prep = prepare(_config(tmp_path, f10, magnitude_subdivisions=2, magnitude_table_stride=2))
    nodes = prep.magnitude.nodes
    np.testing.assert_array_equal(nodes, np.round(2.95 + 0.05 * np.arange(nodes.size), 10))
    computed = set(np.round(nodes[magnitudes.gmm_plan(prep.gmm, nodes, 2).computed], 6))
    assert set(np.round(nodes[::2], 6)) <= computed and len(computed) < nodes.size


def test_subdivisions_only_with_a_forecast(tmp_path):
    from hra.config import ConfigError, config_from_dict

    with pytest.raises((ConfigError, ValueError), match="magnitude_subdivisions only applies to"):
        config_from_dict({"source": {"rates": "r.csv", "magnitude_subdivisions": 2,
                                     "magnitude": {"b_value": 1.0, "m_max": [{"value": 5.5, "weight": 1.0}]}},
                          "exposure": {"buildings": "b.csv"}}, base_dir=tmp_path)


#: Cells of :func:`test_magnitude_basis_rtol_with_the_v7_models` (x [m], rate of M >= 2.95 [yr^-1], b-value):
#: a different Gutenberg-Richter shape in each cell (b 0.9 ... 1.1), so that a branch's node masses need several
#: basis functions (exponentials of nearby decay rates: singular values falling by orders of magnitude; per
#: branch K = 5 at 1e-7, 6 at 1e-10).
SHAPED_CELLS = tuple((231_500.0 + 1000.0 * i, 0.01 + 0.005 * (i % 3), b) for i, b in enumerate(np.linspace(0.9, 1.1, 8)))


def test_magnitude_basis_rtol_with_the_v7_models(tmp_path):
    """``[source] magnitude_basis_rtol`` with GMM V7 + FCM V7 (the groningen-v7 preset's models): the
    default 1e-7 keeps fewer basis functions than 1e-10 and moves the LPR far less than the tables'
    16-bit precision (1.5e-5); the key is the one that counts (a looser tolerance moves it more)."""
    import hra
    from hra.chain import prepare

    path = _forecast(tmp_path / "shaped.h5", 0.05, SHAPED_CELLS)
    cfgs = {tol: _config(tmp_path, path, **({} if tol is None else {"magnitude_basis_rtol": tol})) for tol in (None, 1e-10)}
    k = {tol: prepare(cfg).magnitude.n_basis for tol, cfg in cfgs.items()}
    assert (k[None], k[1e-10]) == (5, 6), k
    runs = {tol: hra.run(cfg, progress=False, write=False) for tol, cfg in cfgs.items()}
    for name in ("lpr_mean", "lpr_p50", "lpr_p90"):
        want = runs[1e-10][name].values
        assert np.all(want > 1e-9), name
        # measured: mean 3.1e-10, P50 9.9e-11, P90 4.2e-10 (magnitude_basis_rtol = 1e-5: up to 8.7e-9)
        np.testing.assert_allclose(runs[None][name].values, want, rtol=2e-9, atol=0, err_msg=name)


def test_psdra_preset_stride_with_the_public_models(tmp_path):
    """``model = "psdra-2024"`` (GMM V7 x FCM TNO-2020) with a forecast computes the tables at every other
    magnitude node by default (``hra.config.PSDRA_2024_MAGNITUDE_TABLE_STRIDE``): its LPR against the same run
    with every node (``magnitude_table_stride = 1``, the reference) differs (the default takes effect), by
    no more than the stride's accuracy (docs/forecast.md: <= 3.7e-5 mean, <= 5.8e-4 P50/P90 on 20,000 field
    buildings)."""
    import hra
    from hra.config import config_from_dict

    path = _forecast(tmp_path / "m005.h5", 0.05, SHAPED_CELLS, psdra_dims=True)
    base = _config(tmp_path, path).model_dump(mode="json", exclude_none=True)
    data = {"model": "psdra-2024", "run": base["run"], "exposure": base["exposure"], "compute": base["compute"],
            "ground_motion": {k: v for k, v in base["ground_motion"].items() if k != "model"},
            "source": {k: base["source"][k] for k in ("forecast", "forecast_weights", "distance_nodes",
                                                         "max_distance_km", "subcell_divisions")}}
    cfg = config_from_dict(data, base_dir=tmp_path)
    assert cfg.fragility.model == "fcm-tno2020" and cfg.source.magnitude_table_stride == 2
    every = cfg.with_updates(source={"magnitude_table_stride": 1})
    runs = {s: hra.run(c, progress=False, write=False) for s, c in ((2, cfg), (1, every))}
    # measured: mean 7.7e-5, P50 3.5e-5, P90 1.2e-4 (12 distance nodes, 3 buildings; the field's 20,000: 3.7e-5 mean)
    for name, rtol in (("lpr_mean", 2e-4), ("lpr_p50", 1e-3), ("lpr_p90", 1e-3)):
        want, got = runs[1][name].values, runs[2][name].values
        assert np.all(want > 1e-9), name
        rel = np.abs(got / want - 1.0)
        assert rel.max() < rtol, (name, rel)
    assert not np.array_equal(runs[2]["lpr_mean"].values, runs[1]["lpr_mean"].values)


def test_psdra_preset_with_a_forecast_of_mmax_branches_only(tmp_path):
    """``model = "psdra-2024"`` with a forecast that has only the ``branch_mmax`` dim (one rate model, one
    magnitude model) runs with the public models (the preset's rate and magnitude-model weights dropped:
    ``hra.chain.forecast_weights_for``), and its mean LPR equals that of the same counts written with the
    PSDRA-2024 rate and magnitude-model dims (4 identical branches, whose weights sum to 1)."""
    import hra
    from hra.config import config_from_dict

    def run(path):
        base = _config(tmp_path, path).model_dump(mode="json", exclude_none=True)
        data = {"model": "psdra-2024", "run": base["run"], "exposure": base["exposure"], "compute": base["compute"],
                "ground_motion": {k: v for k, v in base["ground_motion"].items() if k != "model"},
                "source": {k: base["source"][k] for k in ("forecast", "forecast_weights", "distance_nodes",
                                                             "max_distance_km", "subcell_divisions")}}
        return hra.run(config_from_dict(data, base_dir=tmp_path), progress=False, write=False)

    only = run(_forecast(tmp_path / "mmax.h5", 0.05, SHAPED_CELLS))
    full = run(_forecast(tmp_path / "psdra.h5", 0.05, SHAPED_CELLS, psdra_dims=True))
    tree = json.loads(only.attrs["provenance"])["logic_tree"]
    assert [n for n in tree if n.startswith("branch_")] == ["branch_mmax"] and tree["branch_mmax"] == {"4.5": 0.6, "5.0": 0.4}
    want = full["lpr_mean"].values
    assert np.all(want > 1e-9)
    np.testing.assert_allclose(only["lpr_mean"].values, want, rtol=1e-12, atol=0)


def test_float32_tables_with_the_public_models(tmp_path, monkeypatch):
    """``[run] table_precision = "float32"`` with GMM V7 + FCM V7 and a forecast (8 source branches, two cells
    of one shape: factored rates, so the register tiles run; 200 realisations: branch segments of 8 or more
    combinations, so their full column blocks run, beside the masked tails of the shorter ones): the run equals, to the bit,
    the float64 run whose tables were rounded to float32 before the building pass; its mean equals the float64
    run's, its quantiles move by the rounding only."""
    import hra
    from hra.integration import engine

    path = _forecast(tmp_path / "m005.h5", 0.05, psdra_dims=True)
    weights = {"branch_rate": {"elastic": 0.5, "elastic_plastic": 0.5},
               "branch_mm": {"linear_stress": 0.3, "split_thickness": 0.7}, "branch_mmax": {"4.5": 0.6, "5.0": 0.4}}
    base = _config(tmp_path, path).with_updates(run={"realisations": 200}, source={"forecast_weights": weights})
    seen = []
    real = engine.make_static

    def rounded(prep, tables, sel, rates=None):
        st = real(prep, tables, sel, rates)
        seen.append((st.q.dtype, int(np.diff(st.s_start).max()), st.rates_basis.shape[0]))
        if st.q.dtype == np.float64 and seen_round:
            st.q[...] = st.q.astype(np.float32)
        return st

    seen_round = []
    monkeypatch.setattr(engine, "make_static", rounded)
    f64 = hra.run(base, progress=False, write=False)
    f32 = hra.run(base.with_updates(run={"table_precision": "float32"}), progress=False, write=False)
    seen_round.append(True)
    f64r = hra.run(base, progress=False, write=False)
    assert [s[0] for s in seen] == [np.float64, np.float32, np.float64]
    assert min(s[1] for s in seen) >= 8 and all(s[2] > 0 for s in seen)  # full tile blocks; factored rates (tiles)
    for k in ("lpr_mean", "lpr_p50", "lpr_p90"):
        np.testing.assert_array_equal(f32[k].values, f64r[k].values, err_msg=k)
    np.testing.assert_array_equal(f32["lpr_mean"].values, f64["lpr_mean"].values)
    q32 = np.stack([f32[k].values for k in ("lpr_p50", "lpr_p90")])
    q64 = np.stack([f64[k].values for k in ("lpr_p50", "lpr_p90")])
    assert np.all(q64 > 1e-12) and not np.array_equal(q32, q64)
    np.testing.assert_allclose(q32, q64, rtol=1e-6, atol=0)


def test_forecast_tables_with_the_public_models(tmp_path, monkeypatch):
    """The forecast tables of the table store (``hra.integration.forecaststore``) with ``model = "psdra-2024"``
    (GMM V7 x FCM TNO-2020, the strike model, float32 tables, stride 2), two zones in two zone groups: the
    first run stores the physical and the forecast tables; a rerun reads the forecast tables only (the
    physical tables are never asked for: the test makes that an error), reads them ahead of its groups
    (their files, not the physical ones), and gives the results of a run without a store to the bit."""
    import hra
    from hra.config import config_from_dict
    from hra.integration import engine, tablestore
    from hra.integration.tablestore import FORECAST_DIR

    path = _forecast(tmp_path / "m005.h5", 0.05, SHAPED_CELLS, psdra_dims=True)
    rows = [dict(id=f"b{i}", x=231_500.0 + 900.0 * i, y=573_500.0 + 1700.0 * (i % 3), typology=t, zone=z)
            for i, (t, z) in enumerate([("URM3M_U", 320), ("URM7L", 320), ("URM3M_U", 309), ("RC3H", 309),
                                        ("URM7L", 309)])]
    pd.DataFrame(rows).to_csv(tmp_path / "two.csv", index=False)
    base = _config(tmp_path, path).model_dump(mode="json", exclude_none=True)
    run = {k: v for k, v in base["run"].items() if k != "table_precision"}  # (the preset's: float32)
    data = {"model": "psdra-2024", "run": run, "exposure": {"buildings": "two.csv"},
            "ground_motion": {k: v for k, v in base["ground_motion"].items() if k != "model"},
            "source": {k: base["source"][k] for k in ("forecast", "forecast_weights", "distance_nodes",
                                                         "max_distance_km", "subcell_divisions")},
            "compute": {"progress": False, "table_store": "store", "table_memory_gb": 1e-6, "workers": 1}}
    cfg = config_from_dict(data, base_dir=tmp_path)
    assert cfg.run.table_precision == "float32" and cfg.source.magnitude_table_stride == 2
    asked = []

    class Recording(tablestore.ReadAhead):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            asked.append([self.folders(g) for g in self.groups])

    monkeypatch.setattr(tablestore, "ReadAhead", Recording)
    ref = hra.run(cfg.with_updates(compute={"table_store": False}), progress=False, write=False)
    first = hra.run(cfg, progress=False, write=False)
    store = tmp_path / "store"
    entries = sorted(p.relative_to(store / FORECAST_DIR).parts[1:] for p in (store / FORECAST_DIR).rglob("*")
                     if p.is_file() and p.name != "forecast.json")
    assert entries == [("z309-w0", "RC3H"), ("z309-w0", "URM3M_U"), ("z309-w0", "URM7L"),
                       ("z320-w0", "URM3M_U"), ("z320-w0", "URM7L")]

    def refuse(*args, **kw):
        raise AssertionError("the physical tables were asked for")

    monkeypatch.setattr(engine, "death_table_groups", refuse)
    again = hra.run(cfg, progress=False, write=False)
    for k in ("lpr_mean", "lpr_p50", "lpr_p90"):
        assert np.all(ref[k].values > 1e-12), k
        np.testing.assert_array_equal(first[k].values, ref[k].values, err_msg=k)
        np.testing.assert_array_equal(again[k].values, ref[k].values, err_msg=k)
    assert len(asked) == 2 and all(len(a) == 2 for a in asked)  # two zone groups, read ahead in both runs
    assert all(f.split(os.sep)[-3] != FORECAST_DIR for g in asked[0] for f in g)  # the first run: the physical tables
    assert all(f.split(os.sep)[-3] == FORECAST_DIR for g in asked[1] for f in g)  # the rerun: the forecast tables
