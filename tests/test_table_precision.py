"""``[run] table_precision``: the per-combination tables q of the building pass in float32.

Independent reference: the float64 run whose tables q are rounded to float32 before the building pass
(``engine.make_static`` patched). The kernels widen each float32 value to float64 as they read it
(exactly), so the float32 run must equal that run to the bit, on every path of the contraction: the
register tiles of factored forecast rates (:func:`hra.integration.kernels._tile_contract`), the row
blocks of a rate grid (:func:`hra.integration.kernels._contract_rows`) and the gathered drawn pairs of
several typology candidates over several years. Against the plain float64 run the mean LPR is
identical (it uses the float64 tree-mean tables) and the realisations' quantiles move by the rounding
only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from test_forecast import X0, Y0, _config, _forecast_array  # noqa: E402

import hra  # noqa: E402
from hra.config import config_from_dict  # noqa: E402
from hra.inputs.forecast import write_forecast  # noqa: E402
from hra.integration import engine  # noqa: E402


def _rounded_q(monkeypatch):
    """Patch the building pass's tables to float64 copies of their float32 rounding; returns the list of
    the tables' dtypes the runs handed over (to check what each run used)."""
    seen = []
    real = engine.make_static

    def rounded(prep, tables, sel, rates=None):
        st = real(prep, tables, sel, rates)
        seen.append(st.q.dtype)
        if st.q.dtype == np.float64:
            st.q[...] = st.q.astype(np.float32)
        return st

    monkeypatch.setattr(engine, "make_static", rounded)
    return seen


def _three_runs_agree(base, monkeypatch):
    """The run of ``base`` (float64) in float32, in float64 and in float64 with its tables rounded to
    float32 (:func:`_rounded_q`): float32 is the rounded run to the bit, the mean equals float64's, the
    quantiles differ from float64's by the rounding only."""
    assert base.run.table_precision == "float64"
    f64 = hra.run(base, progress=False, write=False)
    f32 = hra.run(base.with_updates(run={"table_precision": "float32"}), progress=False, write=False)
    seen = _rounded_q(monkeypatch)
    f64r = hra.run(base, progress=False, write=False)
    assert seen == [np.float64]
    _check(f32, f64r, f64)


def _check(f32, f64_rounded, f64, names=("lpr_mean", "lpr_p50", "lpr_p90")):
    for k in names:
        np.testing.assert_array_equal(f32[k].values, f64_rounded[k].values, err_msg=k)
    np.testing.assert_array_equal(f32["lpr_mean"].values, f64["lpr_mean"].values)
    q32 = np.stack([f32[k].values for k in ("lpr_p50", "lpr_p90")])
    q64 = np.stack([f64[k].values for k in ("lpr_p50", "lpr_p90")])
    assert np.all(q64 > 0)
    assert not np.array_equal(q32, q64)  # the option takes effect
    np.testing.assert_allclose(q32, q64, rtol=1e-6, atol=0)  # float32 rounding, ~6e-8 per value


def test_float32_tables_of_a_forecast_are_the_rounded_float64_tables(tmp_path, monkeypatch):
    """The forecast path (factored rates: register tiles over the 8 source branches' columns)."""
    fc = write_forecast(_forecast_array(), tmp_path / "ssm.h5")
    bld = [dict(id=f"B{i}", x=X0 + 1100.0 * i, y=Y0 + 700.0 * i, typology="URM") for i in range(6)]
    _three_runs_agree(_config(tmp_path / "a", fc, bld), monkeypatch)


def test_float32_tables_of_a_rate_grid_are_the_rounded_float64_tables(tmp_path, monkeypatch):
    """The rate-grid path (one building at a time, row blocks), Monte Carlo draws of several typology
    candidates over 3 years (the drawn pairs gathered: ``sparse``) and of one candidate (dense)."""
    base = hra.demo_config(120, seed=4, directory=tmp_path, realisations=300, years=(2025, 2026, 2027), workers=1)
    _three_runs_agree(base, monkeypatch)
    # (the demo's buildings have one typology candidate or several: both paths ran)
    prep = engine.prepare(base)
    n_cand = (prep.buildings.typology_index >= 0).sum(axis=1)
    assert (n_cand == 1).any() and (n_cand > 1).any()
    # the zone groups' memory budget counts q at its precision (4 bytes a value less), qbar at float64
    sel = engine.select_realisations(prep)
    p32 = engine.prepare(base.with_updates(run={"table_precision": "float32"}))
    R = prep.distance_nodes_km.size
    assert engine.table_bytes_per_row(prep, sel) == 8 * R * (sel.combo_model.size + 1)
    assert engine.table_bytes_per_row(p32, sel) == R * (4 * sel.combo_model.size + 8)


def test_psdra_preset_takes_float32_tables_with_a_forecast_unless_told():
    """``model = "psdra-2024"`` with a forecast defaults ``[run] table_precision`` to float32
    (``hra.config.PSDRA_2024_TABLE_PRECISION``); a given precision is kept; other presets and rate grids keep
    float64; the precision is part of the config hash (it changes the quantiles)."""
    from hra.config import PSDRA_2024_TABLE_PRECISION

    assert PSDRA_2024_TABLE_PRECISION == "float32"
    base = {"exposure": {"buildings": "b.csv"}}

    def cfg(model, source, run=None):
        return config_from_dict({"model": model, "source": source, "run": {"years": [2025], **(run or {})}, **base},
                                check_paths=False)

    assert cfg("psdra-2024", {"forecast": "f.h5"}).run.table_precision == "float32"
    assert cfg("psdra-2024", {"forecast": "f.h5"}, {"table_precision": "float64"}).run.table_precision == "float64"
    assert cfg("groningen-v7", {"forecast": "f.h5"}).run.table_precision == "float64"
    rates = {"rates": "r.csv", "magnitude": {"b_value": 1.0, "m_max": [{"value": 5.0, "weight": 1.0}]}}
    assert cfg("psdra-2024", rates).run.table_precision == "float64"
    c = cfg("psdra-2024", {"forecast": "f.h5"})
    assert c.model_dump()["run"]["table_precision"] == "float32"
    assert c.with_updates(run={"seed": 3}).run.table_precision == "float32"
    assert c.sha256() != c.with_updates(run={"table_precision": "float64"}).sha256()


def test_buffer_pool_q_array_reuses_its_memory_for_either_precision():
    """One q buffer per slot, in bytes: a float32 q of the same shape takes half of a float64 one's memory,
    and a larger array gets a fresh buffer."""
    pool = engine.BufferPool()
    a = pool.q_array((10, 4, 3), 0, np.float64)
    b = pool.q_array((10, 4, 3), 0, np.float32)
    assert a.dtype == np.float64 and b.dtype == np.float32 and b.shape == (10, 4, 3)
    assert b.flags.c_contiguous and np.shares_memory(a, b)
    c = pool.q_array((20, 4, 3), 0, np.float32)  # 960 bytes: the same buffer
    assert np.shares_memory(a, c)
    d = pool.q_array((21, 4, 3), 0, np.float64)  # larger: fresh
    assert not np.shares_memory(a, d)
