"""The benchmark scripts stay runnable: ``benchmarks/field_scale.py --quick`` end to end.

No timing assertions (figures depend on the machine); the test checks that every phase runs, that
the synthetic inputs are what the script says (buildings, zones, the 24-branch layout reduced to
the quick mode's branches) and that the warm run (tables from the store) gives the cold run's
results bit for bit.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hra.inputs import modeldata as md

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_field_scale_quick(tmp_path):
    model_dir = md.model_dir_or_skip()
    out = tmp_path / "figures.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "field_scale.py"), "--quick", "--model-dir",
                           str(model_dir), "--workdir", str(tmp_path / "work"), "--json", str(out),
                           "--phases", "read,cold,warm,new-forecast"],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    res = json.loads(out.read_text())
    ph = {r["phase"]: r for r in res["phases"]}
    assert set(ph) == {"read", "cold", "warm", "new-forecast"}
    assert ph["read"]["buildings"] == 200 and ph["read"]["zones_found"] == 1
    assert ph["cold"]["buildings"] == 200 and ph["cold"]["zones"] == 1
    assert ph["cold"]["digest"] == ph["warm"]["digest"]  # tables from the store: the same results
    assert 0.0 < ph["cold"]["mean_lpr"] <= ph["cold"]["max_lpr"] < 1e-3 and math.isfinite(ph["cold"]["max_lpr"])
    assert res["inputs"]["forecast"]["branches"] == 4  # 2 rate x 2 magnitude models x the quick mode's 1 Mmax
    assert "warm results identical to cold: yes" in proc.stdout
    # the cold run stored both kinds of tables; the warm run read the forecast tables, the new-forecast run (its
    # forecast tables removed first) the physical ones, and stored the forecast tables again: the same results
    assert ph["new-forecast"]["digest"] == ph["cold"]["digest"] and "new-forecast results identical to cold: yes" in proc.stdout
    for phase in ("cold", "warm", "new-forecast"):
        assert ph[phase]["store_gb"] > 0 and ph[phase]["forecast_store_gb"] > 0, ph[phase]
    assert "extrapolation to 250,000 buildings x 160 zones" in proc.stdout
    for phase in ("cold", "warm"):  # both runs extrapolated, from the engine's stage CPU seconds and from wall seconds
        # (the warm run reads the forecast tables: its table stage may take < 1 ms)
        assert ph[phase]["tables_cpu_s"] > (0 if phase == "cold" else -1e-9) and ph[phase]["buildings_cpu_s"] > 0
        # the chunks' own thread time (the engine's) is part of the building pass's process CPU (the rest after prepare)
        # (the quick case's 200 buildings: a few ms; positivity is tested against a known cost in test_zone_groups)
        assert 0 <= ph[phase]["chunks_cpu_s"] <= ph[phase]["buildings_cpu_s"] + 0.1
        assert f"{phase} from CPU seconds" in proc.stdout and f"{phase} from wall seconds" in proc.stdout
    head = (tmp_path / "work" / "edb.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert head.startswith("bag_building_id,point_x,point_y,") and "s_probability_10" in head
    # the same work folder: benchmarks/building_pass.py times one chunk of it and its variants, and writes a perf map
    out = tmp_path / "pass.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "building_pass.py"), "--workdir", str(tmp_path / "work"),
                           "--buildings", "60", "--repeats", "1", "--perf-map", "--json", str(out)],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    bp = json.loads(out.read_text())
    us = bp["us_per_building"]
    assert bp["buildings"] == 60 and bp["q_dtype"] == "float32"  # the psdra-2024 preset's tables
    assert set(us) == {"as run", "no quantiles", "one candidate", "no cells in range", "float64 tables"}
    assert all(v > 0 for v in us.values())
    assert ("contraction ~" in proc.stdout) == (bp["mean_candidates"] > 1.0)
    pm = Path(bp["perf_map"])  # (kernels loaded from numba's cache expose no entry points: the map may be empty)
    assert pm.exists() and len(pm.read_text().splitlines()) == bp["perf_map_symbols"]
    pm.unlink()


def _field_scale_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("field_scale", ROOT / "benchmarks" / "field_scale.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_field_scale_magnitude_step_writes_the_psdra_2024_grid(tmp_path):
    """``--magnitude-step 0.1`` writes the 52-point grid of the PSDRA-2024 forecasts (0.05: the SSM's 103
    points), the same truncated GR law: at the magnitudes both grids share the counts are the same bits,
    and a Mmax between two 0.1 points keeps no count above it."""
    import shapely
    import xarray as xr

    fs = _field_scale_module()
    outline = shapely.box(240_000.0, 590_000.0, 246_000.0, 596_000.0)
    counts = {}
    for step in (0.05, 0.1):
        path = tmp_path / f"forecast_{step}.h5"
        fs.synthetic_forecast(path, outline, 2000.0, [2025], ["4.0", "6.5"], magnitude_step=step)
        with xr.open_dataset(path, group="forecast") as ds:
            counts[step] = ds["forecast"].load()
    m05, m10 = counts[0.05]["magnitude"].values, counts[0.1]["magnitude"].values
    assert m05.size == 103 and m10.size == 52
    assert m10[0] == 1.45 and m10[-1] == 6.55 and np.allclose(np.diff(m10), 0.1)
    np.testing.assert_array_equal(counts[0.1].values, counts[0.05].sel(magnitude=m10).values)
    low = counts[0.1].sel(branch_mmax=4.0)
    assert float(low.sel(magnitude=4.05).max()) == 0.0 and float(low.sel(magnitude=3.95).max()) > 0.0
    with pytest.raises(SystemExit):  # only the two grids of the SSM files
        fs.main(["--magnitude-step", "0.2", "--phases", "read"])


def test_field_scale_passes_the_magnitude_options_to_the_run(tmp_path):
    """``--magnitude-table-stride`` and ``--magnitude-subdivisions`` reach the run's ``[source]``,
    ``--table-precision`` its ``[run]`` and ``--store-kinds`` its ``[compute] table_store_kinds``; left out,
    they are not written (the run then has the psdra-2024 preset's stride 2, one subdivision and float32
    tables, and the store holds both kinds of tables)."""
    import hra

    model_dir = str(md.model_dir_or_skip())
    fs = _field_scale_module()
    base = {**fs.QUICK, "quick": True, "seed": 1, "workers": 1, "model_dir": model_dir,
            "field_outline": fs.default_outline(model_dir)}
    for i, (opts, want) in enumerate([({}, {}),
                                      ({"magnitude_table_stride": 1}, {"magnitude_table_stride": 1}),
                                      ({"magnitude_table_stride": 2, "magnitude_subdivisions": 2},
                                       {"magnitude_table_stride": 2, "magnitude_subdivisions": 2})]):
        wd = tmp_path / f"w{i}"
        fs.write_inputs({**base, **opts, "workdir": str(wd)})
        cfg = hra.load_config(wd / "field.toml")
        got = {k: getattr(cfg.source, k) for k in ("magnitude_table_stride", "magnitude_subdivisions")}
        assert got == {"magnitude_table_stride": 2, "magnitude_subdivisions": 1, **want}
        assert ("magnitude_" in (wd / "field.toml").read_text()) == bool(want)
        assert cfg.run.table_precision == "float32" and "table_precision" not in (wd / "field.toml").read_text()
        assert cfg.compute.table_store_kinds == ["physical", "forecast"]  # the default: both
    wd = tmp_path / "w64"
    fs.write_inputs({**base, "table_precision": "float64", "store_kinds": ["forecast"], "workdir": str(wd)})
    cfg = hra.load_config(wd / "field.toml")
    assert cfg.run.table_precision == "float64" and cfg.compute.table_store_kinds == ["forecast"]


def test_field_scale_drop_caches_writes_the_proc_file_or_says_why(tmp_path):
    """``--drop-caches``: the page cache, dentries and inodes dropped (``3`` written to the proc file) before
    a cold or warm phase; where that file cannot be written (not root, not Linux) the reason, and no error."""
    fs = _field_scale_module()
    proc = tmp_path / "drop_caches"
    proc.write_text("")
    assert fs.drop_page_cache(str(proc)) is None
    assert proc.read_text() == "3\n"
    why = fs.drop_page_cache(str(tmp_path / "missing" / "drop_caches"))
    assert why is not None and "page cache not dropped" in why and "drop_caches" in why


def test_field_scale_drops_the_page_cache_before_the_cold_and_warm_phases_only(tmp_path, monkeypatch):
    """``main(["--drop-caches", ...])``: the page cache is dropped right before each cold and warm phase (not
    before reading the EDB), each such phase records whether it was (``page_cache_dropped``), and where the
    drop fails the phase still runs; without the option nothing is dropped and nothing recorded."""
    import hra.api

    fs = _field_scale_module()
    events: list[str] = []
    outcomes = iter([None, "page cache not dropped (test)"])  # cold: dropped; warm: refused
    monkeypatch.setattr(hra.api, "demo_model_dir", lambda *a, **k: tmp_path)
    monkeypatch.setattr(fs, "default_outline", lambda model_dir: None)
    monkeypatch.setattr(fs, "machine", lambda: {"cpu": "test", "isa": "-", "llvm_cpu": "-", "dgemm_gflops_1thread": 0,
                                                "sum_gb_per_s": 0})
    monkeypatch.setattr(fs, "write_inputs", lambda opts: {})
    monkeypatch.setattr(fs, "drop_page_cache", lambda: (events.append("drop"), next(outcomes))[1])
    monkeypatch.setattr(fs, "spawn_case", lambda script, case, label: (events.append(case[0]), {"phase": case[0]})[1])
    got = {}
    monkeypatch.setattr(fs, "finish", lambda res, report, path: got.update(res) or 0)
    assert fs.main(["--phases", "read,cold,warm", "--drop-caches", "--workdir", str(tmp_path)]) == 0
    assert events == ["read", "drop", "cold", "drop", "warm"]
    assert [p.get("page_cache_dropped") for p in got["phases"]] == [None, True, False]
    events.clear()
    assert fs.main(["--phases", "read,cold,warm", "--workdir", str(tmp_path)]) == 0
    assert events == ["read", "cold", "warm"]
    assert all("page_cache_dropped" not in p for p in got["phases"])
