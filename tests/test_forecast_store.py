"""The forecast tables of the table store (:mod:`hra.integration.forecaststore`).

A forecast run stores, per (site, typology), the tables the building pass reads (q per selected model
combination and the tree mean qbar, integrated against the forecast's magnitude basis); a rerun with the
same basis, models and selection reads them instead of its table stage. Independent reference: the same
run without any table store (``table_store = false``), which computes every table: a run that reads the
forecast tables must give its results to the bit, and one whose key inputs changed must not read them.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from helpers import PARAMETRIC, write_buildings, write_fragility  # noqa: E402
from test_forecast import X0, Y0, _forecast_array  # noqa: E402

import hra  # noqa: E402
from hra.cli import app  # noqa: E402
from hra.config import config_from_dict  # noqa: E402
from hra.inputs.forecast import write_forecast  # noqa: E402
from hra.integration import engine, forecaststore, pagecache, tablestore  # noqa: E402
from hra.integration.forecaststore import ForecastTables  # noqa: E402
from hra.integration.tablestore import FORECAST_DIR  # noqa: E402

CURVES = {"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3)), "RC": ((0.3, 0.6, 1.2), 0.6, (0.005, 0.05, 0.2))}
WEIGHTS = {"branch_rate": {"low": 0.5, "high": 0.5}, "branch_mm": {"stress": 0.3, "thickness": 0.7},
           "branch_mmax": {"4.5": 0.6, "5.5": 0.4}}
OUTPUTS = ("lpr_mean", "lpr_p50", "lpr_p90")


def _config(tmp: Path, forecast: Path, store, *, run=None, compute=None):
    tmp.mkdir(parents=True, exist_ok=True)
    frag = write_fragility(tmp / "fragility.csv", CURVES)
    bld = write_buildings(tmp / "buildings.csv", [dict(id=f"B{i}", x=X0 + 1100.0 * i, y=Y0 + 700.0 * i,
                                                       typology="URM" if i % 3 else "RC") for i in range(7)])
    return config_from_dict({
        "run": {"years": [2025, 2026], "seed": 7, "realisations": 40, **(run or {})},
        "source": {"forecast": str(forecast), "forecast_weights": WEIGHTS, "depth_km": 3.0,
                   "subcell_radius_km": 0.0, "distance_nodes": 60},
        "ground_motion": dict(PARAMETRIC),
        "exposure": {"buildings": str(bld)},
        "fragility": {"curves": str(frag)},
        "compute": {"workers": 1, "executor": "synchronous", "progress": False, "table_store": store,
                    **(compute or {})},
    }, base_dir=tmp)


@pytest.fixture
def case(tmp_path):
    fc = write_forecast(_forecast_array(), tmp_path / "ssm.h5")
    return tmp_path, fc


def _run(cfg):
    return hra.run(cfg, progress=False, write=False)


def _same(a, b):
    for k in OUTPUTS:
        np.testing.assert_array_equal(a[k].values, b[k].values, err_msg=k)


def _entries(root: Path) -> list[Path]:
    return sorted(p for p in (root / FORECAST_DIR).rglob("*") if p.is_file() and p.name != "forecast.json")


def _no_table_stage(monkeypatch):
    """Make any computing or reading of physical tables fail: a run must then take every table from the
    forecast tables."""
    def refuse(*args, **kw):
        raise AssertionError("the physical tables were asked for")

    monkeypatch.setattr(engine, "death_table_groups", refuse)


def test_a_rerun_reads_the_forecast_tables_to_the_bit(case, monkeypatch):
    tmp, fc = case
    store = tmp / "store"
    cfg = _config(tmp / "a", fc, str(store))
    ref = _run(cfg.with_updates(compute={"table_store": False}))
    first = _run(cfg)  # computes and stores the physical and the forecast tables
    _same(first, ref)
    files = _entries(store)
    assert [f.name for f in files] == ["RC", "URM"]  # one entry per (site, typology)
    assert all(f.read_bytes().startswith(forecaststore.MAGIC) for f in files)
    _no_table_stage(monkeypatch)
    again = _run(cfg)
    _same(again, ref)
    # the quantiles and outputs are not part of the key: a run asking for others reads the same tables
    other = _run(cfg.with_updates(run={"quantiles": [0.1, 0.5, 0.9]}))
    np.testing.assert_array_equal(other["lpr_mean"].values, ref["lpr_mean"].values)


def _key(cfg) -> str:
    prep = engine.prepare(cfg)
    sel = engine.select_realisations(prep)
    return engine.store_handle(prep, sel, tablestore.store_for_config(cfg)).forecast.key


def test_the_key_follows_what_the_tables_depend_on(case, tmp_path):
    tmp, fc = case
    store = str(tmp / "store")
    base = _config(tmp / "a", fc, store)
    # another forecast with other b-values: another magnitude basis
    arr = _forecast_array()
    arr.values[:, 0, 0] = 0.0  # the first magnitude model's low-Mmax branch without events
    other_fc = write_forecast(arr, tmp / "other.h5")
    keys = {
        "base": _key(base),
        "again": _key(base),
        "quantiles": _key(base.with_updates(run={"quantiles": [0.1, 0.9]})),
        "realisations": _key(base.with_updates(run={"realisations": 3})),  # fewer of the 8 combinations
        "seed": _key(base.with_updates(run={"seed": 8})),
        "precision": _key(base.with_updates(run={"table_precision": "float32"})),
        "distance nodes": _key(base.with_updates(source={"distance_nodes": 61})),
        "forecast": _key(_config(tmp / "b", other_fc, store)),
        "tau": _key(base.with_updates(ground_motion={"tau": 0.31})),
    }
    assert keys["again"] == keys["base"] and keys["quantiles"] == keys["base"]
    # (more realisations that select the same combinations in the same order: the same tables, the same key)
    assert _key(base.with_updates(run={"realisations": 41})) == keys["base"]
    changed = {k: v for k, v in keys.items() if k not in ("base", "again", "quantiles")}
    assert len(set(changed.values()) | {keys["base"]}) == len(changed) + 1, keys


def test_changed_selection_does_not_read_other_tables(case):
    """A run whose key differs computes its own tables (and equals the run without a store)."""
    tmp, fc = case
    store = str(tmp / "store")
    cfg = _config(tmp / "a", fc, store)
    _run(cfg)
    changed = cfg.with_updates(run={"realisations": 25, "table_precision": "float32"})
    _same(_run(changed), _run(changed.with_updates(compute={"table_store": False})))
    assert len(list((tmp / "store" / FORECAST_DIR).iterdir())) == 2  # two forecast keys


def test_an_unreadable_entry_is_removed_and_computed_again(case, caplog):
    tmp, fc = case
    store = tmp / "store"
    cfg = _config(tmp / "a", fc, str(store))
    ref = _run(cfg)
    victim = _entries(store)[0]
    good = victim.read_bytes()
    victim.write_bytes(good[:len(good) // 2])  # cut short
    with caplog.at_level(logging.WARNING, logger="hra"):
        again = _run(cfg)
    _same(again, ref)
    assert "unreadable forecast entry" in caplog.text
    assert victim.read_bytes() == good  # written again, the same bytes


@pytest.mark.parametrize("kinds", [["forecast"], ["physical"], []])
def test_table_store_kinds(case, monkeypatch, kinds):
    tmp, fc = case
    store = tmp / "store"
    cfg = _config(tmp / "a", fc, str(store), compute={"table_store_kinds": kinds})
    ref = _run(cfg.with_updates(compute={"table_store": False}))
    _same(_run(cfg), ref)
    physical = [p for p in store.iterdir() if p.name != FORECAST_DIR] if store.is_dir() else []
    assert bool(physical) == ("physical" in kinds)
    assert bool(_entries(store) if store.is_dir() else []) == ("forecast" in kinds)
    if kinds == ["forecast"]:
        _no_table_stage(monkeypatch)
        _same(_run(cfg), ref)


def test_worker_processes_store_and_read_the_same_tables(case):
    """Worker processes return their tables (float64 q from the zone task, float32 in the run): the stored
    forecast tables hold the run's values, and a rerun on processes reads them to the same bits."""
    tmp, fc = case
    store = tmp / "store"
    cfg = _config(tmp / "a", fc, str(store), run={"table_precision": "float32"},
                  compute={"executor": "processes", "workers": 2, "chunk_buildings": 3})
    ref = _run(cfg.with_updates(compute={"table_store": False, "executor": "synchronous"}))
    _same(_run(cfg), ref)
    assert len(_entries(store)) == 2
    _same(_run(cfg), ref)
    _same(_run(cfg.with_updates(compute={"executor": "synchronous"})), ref)


def test_forecast_tables_are_not_written_where_they_do_not_fit(case, monkeypatch, caplog):
    tmp, fc = case
    store = tmp / "store"
    cfg = _config(tmp / "a", fc, str(store))
    prep = engine.prepare(cfg)
    sel = engine.select_realisations(prep)
    handle = engine.store_handle(prep, sel, tablestore.store_for_config(cfg))
    _, need = engine.store_bytes_needed(prep, handle)
    _, need_f = engine.forecast_bytes_needed(prep, sel, handle)
    assert need > 0 and need_f > 0
    free = tablestore.STORE_RESERVE_BYTES + need + need_f / 2  # room for the physical tables only
    monkeypatch.setattr(tablestore.TableStore, "free_bytes", lambda self: int(free))
    with caplog.at_level(logging.WARNING, logger="hra"):
        _run(cfg)
    assert "the forecast tables are not stored" in caplog.text
    assert not _entries(store) and any(p.name != FORECAST_DIR for p in store.iterdir())


def test_entry_file_round_trip_and_checks(tmp_path):
    ft = ForecastTables(tmp_path, "k" * 32, "float32")
    rng = np.random.default_rng(1)
    q = rng.random((12, 5)).astype(np.float32)
    qbar = rng.random((12, 3))
    assert ft.write(110, True, "URM/x", q, qbar)
    path = ft.entry_path(110, True, "URM/x")
    assert os.path.dirname(path).endswith("z110-w1") and os.path.isfile(path)
    q2, qbar2 = np.empty_like(q), np.empty_like(qbar)
    assert ft.read(110, True, "URM/x", q2, qbar2)
    np.testing.assert_array_equal(q2, q)
    np.testing.assert_array_equal(qbar2, qbar)
    assert not ft.read(110, False, "URM/x", q2, qbar2)  # absent
    # another shape than the run expects: unreadable, removed
    assert not ft.read(110, True, "URM/x", np.empty((12, 6), np.float32), qbar2)
    assert not os.path.exists(path)
    # a file of another entry under this name (its header names another typology): removed
    assert ft.write(110, True, "RC", q, qbar)
    os.replace(ft.entry_path(110, True, "RC"), path)
    assert not ft.read(110, True, "URM/x", q2, qbar2) and not os.path.exists(path)


def test_read_ahead_lists_the_forecast_entry_files(tmp_path):
    ft = ForecastTables(tmp_path, "k" * 32, "float64")
    for t in ("A", "B"):
        assert ft.write(7, False, t, np.ones((2, 2)), np.ones((2, 1)))
    folders = ft.site_folders([7])
    meta, chunks = pagecache.site_files(folders[0])
    assert meta == [] and [os.path.basename(c) for c in chunks] == ["A", "B"]
    assert pagecache.site_files(folders[1]) == ([], [])  # (no wierde site)
    assert pagecache.will_need(folders) == (2 if hasattr(os, "posix_fadvise") else 0)


def test_cli_info_and_clear_show_and_remove_the_forecast_tables(case):
    tmp, fc = case
    store = tmp / "store"
    _run(_config(tmp / "a", fc, str(store)))
    runner = CliRunner()
    res = runner.invoke(app, ["tables", "info", "--store", str(store)])
    assert res.exit_code == 0, res.output
    assert "forecast tables" in res.output and "2 entries" in res.output
    assert "magnitude basis of 8 branches" in res.output
    assert "source:ssm.h5" in res.output
    res = runner.invoke(app, ["tables", "clear", "--store", str(store), "--older-than", "1"])
    assert res.exit_code == 0 and "removed 0 entries" in res.output  # all used just now
    res = runner.invoke(app, ["tables", "clear", "--store", str(store), "--stale"])
    assert "removed 0 entries" in res.output
    res = runner.invoke(app, ["tables", "clear", "--store", str(store)])
    assert res.exit_code == 0 and "removed 4 entries" in res.output, res.output  # 2 physical + 2 forecast
    assert not (store / FORECAST_DIR).exists() or not any((store / FORECAST_DIR).iterdir())


def test_stale_forecast_keys_are_cleared_with_stale(case):
    tmp, fc = case
    store = tmp / "store"
    _run(_config(tmp / "a", fc, str(store)))
    (key_dir,) = (store / FORECAST_DIR).iterdir()
    desc = key_dir / "forecast.json"
    desc.write_text(desc.read_text().replace('"forecast_format_version": 1', '"forecast_format_version": 0'))
    sets = forecaststore.info(store)
    assert [s.stale for s in sets] == [True]
    assert forecaststore.clear(store, stale=True)[0] == 2
    assert forecaststore.info(store) == []



def test_the_demo_model_with_a_forecast(tmp_path, monkeypatch):
    """The demo region's own models (its GMM with 8 site-response zones, its fragility) on a
    24-branch forecast of the demo rate grid (``benchmarks/forecast_v7.py``'s): several zones and sites, a rerun
    reads every zone's forecast tables, never the physical ones, and gives the run without a store to the bit."""
    import importlib.util

    from hra.config import PSDRA_2024_FORECAST_WEIGHTS

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("forecast_v7", root / "benchmarks" / "forecast_v7.py")
    fv7 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fv7)
    demo = hra.demo_config(n_buildings=150, model="demo", directory=tmp_path, realisations=60, years=(2025,))
    fv7.synthetic_forecast(tmp_path / "ssm.h5", (2025,))
    dump = demo.model_dump(mode="json", exclude_none=True)
    cfg = config_from_dict({
        "run": {"years": [2025], "seed": 1, "realisations": 60, "quantiles": [0.5, 0.9]},
        "source": {"forecast": "ssm.h5", "forecast_weights": PSDRA_2024_FORECAST_WEIGHTS},
        "ground_motion": dump["ground_motion"], "fragility": dump["fragility"],
        "exposure": {"buildings": "buildings.csv"},
        "compute": {"workers": 1, "executor": "synchronous", "progress": False, "table_store": "store"},
    }, base_dir=tmp_path)
    ref = _run(cfg.with_updates(compute={"table_store": False}))
    first = _run(cfg)
    sites = {p.parent.name for p in _entries(tmp_path / "store")}
    assert len(sites) == 8, sites  # the demo region's 8 site-response zones (its GMM has no wierde term)
    _no_table_stage(monkeypatch)
    again = _run(cfg)
    assert np.all(ref["lpr_mean"].values > 0)
    _same(first, ref)
    _same(again, ref)
