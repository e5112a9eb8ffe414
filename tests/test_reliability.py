"""Reliability at the command line: bad or unusual inputs give exit code 2 and a message naming the
file/key/row and the fix, without a traceback and without leaving anything behind; help texts keep
their units; registers that are locked, read-only or given as a file behave."""

from __future__ import annotations

import math
import sqlite3
import stat

import numpy as np
import pandas as pd
import pytest
import tomli_w
from typer.testing import CliRunner

from hra.cli import app
from tests.helpers import PARAMETRIC, write_buildings, write_fragility, write_rates

runner = CliRunner()

CELL = (250_000.0, 590_000.0)
CURVES = {"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3))}
BUILDINGS = [dict(id="B1", x=251_000.0, y=590_000.0, typology="URM"), dict(id="B2", x=252_000.0, y=591_000.0, typology="URM")]


def _case(tmp_path, *, gm=None, m_max=None, cells=None, curves=None, buildings=None, years=(2025,)):
    """Inputs and a run.toml in ``tmp_path/in``; returns (config path, output folder)."""
    d = tmp_path / "in"
    d.mkdir(parents=True, exist_ok=True)
    write_rates(d / "rates.csv", cells or [(*CELL, 0.5)], years)
    write_fragility(d / "fragility.csv", curves or CURVES)
    write_buildings(d / "buildings.csv", buildings or BUILDINGS)
    data = {
        "run": {"years": list(years), "seed": 7, "realisations": "all"},
        "source": {"rates": "rates.csv", "m_min": 1.5, "magnitude": {"b_value": 1.0, "m_max": m_max or [{"value": 5.0, "weight": 1.0}]}},
        "ground_motion": gm or dict(PARAMETRIC),
        "exposure": {"buildings": "buildings.csv"},
        "fragility": {"curves": "fragility.csv"},
        "compute": {"workers": 1, "scheduler": "synchronous", "progress": False},
    }
    cfg = d / "run.toml"
    cfg.write_text(tomli_w.dumps(data))
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return cfg, out


def _run_bad(args, *patterns, out=None):
    res = runner.invoke(app, args)
    text = res.output
    assert res.exit_code == 2, f"exit {res.exit_code}: {text}"
    assert "Traceback" not in text
    for p in patterns:
        assert p in text, f"{p!r} not in: {text}"
    if out is not None:
        assert list(out.iterdir()) == [], f"left behind: {list(out.iterdir())}"
    return text


# -- silent nonsense refused ----------------------------------------------------------------------


def test_nan_coefficient_is_refused(tmp_path):
    cfg, out = _case(tmp_path, gm=dict(PARAMETRIC, c0=math.nan))
    _run_bad(["run", str(cfg), "--out", str(out / "r.zarr")], "c0", "finite", out=out)


def test_infinite_m_max_is_refused(tmp_path):
    cfg, out = _case(tmp_path, m_max=[{"value": math.inf, "weight": 1.0}])
    _run_bad(["run", str(cfg), "--out", str(out / "r.zarr")], "m_max", "finite", out=out)


def test_fractional_year_in_rates(tmp_path):
    cfg, out = _case(tmp_path)
    df = pd.read_csv(cfg.parent / "rates.csv").astype(float)
    df.loc[len(df)] = [CELL[0] + 1000, CELL[1], 2026.5, 0.1]
    df.to_csv(cfg.parent / "rates.csv", index=False)
    _run_bad(["run", str(cfg), "--out", str(out / "r.zarr")], "rates.csv", "row 3", "'year'", "whole year", out=out)


def test_absurd_rate_is_refused(tmp_path):
    cfg, out = _case(tmp_path, cells=[(*CELL, 1e300)])
    _run_bad(["run", str(cfg), "--out", str(out / "r.zarr")], "rates.csv", "row 2", "'rate'", "unit", out=out)


def test_rates_in_degrees_are_refused(tmp_path):
    cfg, out = _case(tmp_path, cells=[(6.7, 53.3, 0.5)])
    _run_bad(["run", str(cfg), "--out", str(out / "r.zarr")], "rates.csv", "'y'", "RD New", "degrees", out=out)


def test_reversed_fragility_medians_are_refused(tmp_path):
    cfg, out = _case(tmp_path, curves={"URM": ((0.6, 0.4, 0.2), 0.5, (0.01, 0.1, 0.3))})
    _run_bad(["run", str(cfg), "--out", str(out / "r.zarr")], "fragility.csv", "'URM'", "CS1", "median", out=out)


def test_zero_rates_give_zero_lpr(tmp_path):
    cfg, out = _case(tmp_path, cells=[(*CELL, 0.0), (CELL[0] + 1000, CELL[1], 0.0)])
    res = runner.invoke(app, ["run", str(cfg), "--csv", str(out / "s.csv")])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out / "s.csv")
    assert np.all(df["lpr_mean_2025"] == 0.0)


def test_building_far_from_every_source_warns(tmp_path, caplog):
    import hra

    far = [dict(id="FAR", x=150_000.0, y=450_000.0, typology="URM")]
    cfg, _ = _case(tmp_path, buildings=BUILDINGS + far)
    with caplog.at_level("WARNING", logger="hra"):
        ds = hra.run(hra.load_config(cfg), progress=False, write=False)
    assert "1 of 3 buildings lie farther than" in caplog.text and "'FAR'" in caplog.text
    assert float(ds.lpr_mean.values[2, 0]) == 0.0 and float(ds.lpr_mean.values[0, 0]) > 0.0


# -- outputs that would destroy inputs ------------------------------------------------------------


def test_output_equal_to_an_input_is_refused(tmp_path):
    cfg, out = _case(tmp_path)
    before = (cfg.parent / "buildings.csv").read_bytes()
    _run_bad(["run", str(cfg), "--csv", str(cfg.parent / "buildings.csv"), "--overwrite"], "is an input", out=out)
    assert (cfg.parent / "buildings.csv").read_bytes() == before
    _run_bad(["run", str(cfg), "--csv", str(cfg), "--overwrite"], "is an input")


def test_csv_into_a_directory_fails_before_computing(tmp_path):
    cfg, out = _case(tmp_path)
    (out / "adir").mkdir()
    _run_bad(["run", str(cfg), "--out", str(out / "r.zarr"), "--csv", str(out / "adir"), "--overwrite"], "directory")
    assert not (out / "r.zarr").exists()


# -- help texts keep their units -----------------------------------------------------------------


def test_help_keeps_units_and_section_names():
    res = runner.invoke(app, ["inspect", "conditional", "--help"])
    assert res.exit_code == 0 and "[km]" in res.output
    res = runner.invoke(app, ["events", "--help"])
    assert res.exit_code == 0 and "[event_based]" in res.output


# -- registers -----------------------------------------------------------------------------------


@pytest.fixture()
def risk_file(tmp_path):
    cfg, out = _case(tmp_path, years=(2025, 2026, 2027, 2028))
    res = runner.invoke(app, ["run", str(cfg), "--out", str(out / "risk.zarr")])
    assert res.exit_code == 0, res.output
    return out / "risk.zarr"


def test_failed_update_creates_no_register(tmp_path):
    bad = tmp_path / "nothing.zarr"
    reg = tmp_path / "reg.db"
    res = runner.invoke(app, ["profiles", "update", str(bad), "--register", str(reg)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert not reg.exists()


def test_locked_register_names_the_lock(tmp_path, risk_file, monkeypatch):
    from hra.policy import register as register_mod

    reg = tmp_path / "reg.db"
    assert runner.invoke(app, ["profiles", "update", str(risk_file), "--register", str(reg), "--run-id", "a"]).exit_code == 0
    monkeypatch.setattr(register_mod, "SQLITE_LOCK_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(reg, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another writer holds the lock
    try:
        text = _run_bad(["profiles", "update", str(risk_file), "--register", str(reg), "--run-id", "b"], "locked", "nothing was changed")
        assert str(reg) in text
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # after the lock is gone the same update goes through
    assert runner.invoke(app, ["profiles", "update", str(risk_file), "--register", str(reg), "--run-id", "a"]).exit_code == 0


def test_read_only_register(tmp_path, risk_file):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only files")
    reg = tmp_path / "reg.db"
    assert runner.invoke(app, ["profiles", "update", str(risk_file), "--register", str(reg), "--run-id", "a"]).exit_code == 0
    reg.chmod(stat.S_IRUSR)
    _run_bad(["profiles", "update", str(risk_file), "--register", str(reg), "--run-id", "b"], "read-only")


def test_plan_accepts_a_register_file(tmp_path, risk_file):
    reg = tmp_path / "reg.db"
    assert runner.invoke(app, ["profiles", "update", str(risk_file), "--register", str(reg), "--run-id", "a"]).exit_code == 0
    caps = tmp_path / "caps.toml"
    caps.write_text("start_year = 2027\n[capacity]\nopname = 5\nbeoordeling = 5\nnormbesluit = 5\n"
                    "versterkingsbesluit = 5\nuitvoering = 5\n")
    res = runner.invoke(app, ["plan", str(reg), "--capacities", str(caps), "--out", str(tmp_path / "plan"), "--no-chart"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "plan").is_dir()


# -- event-based: bounds, output suffix, honest small runs --------------------------------------


def test_events_out_suffix_checked_before_simulating(tmp_path):
    cfg, out = _case(tmp_path)
    _run_bad(["events", str(cfg), "--out", str(out / "ev.txt"), "--years-simulated", "10"], ".zarr or .nc", out=out)


@pytest.mark.parametrize("args", [["--years-simulated", "1000000000000"], ["--realisations", "1000000000000"]])
def test_events_huge_counts_refused(tmp_path, args):
    cfg, out = _case(tmp_path)
    _run_bad(["events", str(cfg), *args], args[0], out=out)


@pytest.mark.parametrize("key,value,pattern", [("fn_thresholds", [-1.0, 0.0], "at least 1"),
                                               ("fn_thresholds", [5.0, 2.0], "increasing"),
                                               ("grid_spacing_m", 0.001, "grid_spacing_m")])
def test_event_options_validated(tmp_path, key, value, pattern):
    import tomllib

    cfg, out = _case(tmp_path)
    data = tomllib.loads(cfg.read_text())
    data["event_based"] = {key: value}
    cfg.write_text(tomli_w.dumps(data))
    _run_bad(["events", str(cfg)], pattern, out=out)


def test_events_summary_says_what_the_fn_curve_rests_on(tmp_path):
    # a weak source and strong buildings: no deaths in 10 simulated years, one realisation
    cfg, out = _case(tmp_path, cells=[(*CELL, 0.01)], curves={"URM": ((5.0, 8.0, 10.0), 0.3, (0.01, 0.1, 0.3))})
    res = runner.invoke(app, ["events", str(cfg), "--years-simulated", "10"])
    assert res.exit_code == 0, res.output
    assert "logic-tree realisations" in res.output and "simulated events per year" in res.output
    assert "F-N curve is empty" in res.output and "one logic-tree realisation" in res.output


# -- paths checked once, at load --------------------------------------------------------------------


@pytest.mark.parametrize("key,section", [("rates", "source"), ("buildings", "exposure"), ("curves", "fragility")])
def test_folder_given_as_input_file_names_the_key(tmp_path, key, section):
    import tomllib

    cfg, out = _case(tmp_path)
    (cfg.parent / "adir").mkdir()
    data = tomllib.loads(cfg.read_text())
    data[section][key] = "adir"
    cfg.write_text(tomli_w.dumps(data))
    _run_bad(["run", str(cfg), "--out", str(out / "r.zarr")], f"key [{section}.{key}]", "is a folder", "fix:", out=out)


def test_missing_input_names_the_key_and_the_config_folder(tmp_path):
    import tomllib

    cfg, out = _case(tmp_path)
    data = tomllib.loads(cfg.read_text())
    data["exposure"]["buildings"] = "nothere.csv"
    cfg.write_text(tomli_w.dumps(data))
    _run_bad(["run", str(cfg)], "key [exposure.buildings]", "does not exist", "folder of the config", out=out)


def test_config_that_is_a_folder(tmp_path):
    _run_bad(["run", str(tmp_path)], "is a folder", "TOML")


def test_model_table_hash_mismatch_names_the_command(tmp_path, monkeypatch):
    import shutil

    from hra.inputs import modeldata as md

    try:
        src = md.resolve_model_dir()
    except md.ModelDataError:
        pytest.skip("no model tables (HRA_MODEL_DIR)")
    dst = tmp_path / "res"
    shutil.copytree(src / "V7", dst / "V7")
    f = dst / "V7" / "gmpe_sigmas_NS_B_20211010_v7.csv"
    f.write_text(f.read_text().replace("0.2362", "0.2363", 1))
    with pytest.raises(md.ModelDataError) as info:
        md.load_gmm_v7_tables(dst)
    assert "hra models fetch" in str(info.value) and "verify = false" in str(info.value)


def test_demo_config_temp_folder_is_removed_at_exit(tmp_path):
    import subprocess
    import sys

    code = "import hra; cfg = hra.demo_config(50, realisations=2, years=(2025,)); print(cfg.base_dir)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    from pathlib import Path

    folder = Path(res.stdout.strip().splitlines()[-1])
    assert folder.name.startswith("hra-demo-") and not folder.exists()


# -- progress ------------------------------------------------------------------------------------


def test_table_stage_reports_progress_with_one_worker(tmp_path, caplog):
    import hra

    cfg, _ = _case(tmp_path, cells=[(*CELL, 0.5)], buildings=BUILDINGS)
    cfg = hra.load_config(cfg).with_updates(compute={"workers": 1, "progress": False})
    with caplog.at_level("INFO", logger="hra"):
        hra.run(cfg, progress=False, write=False)
    lines = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("tables (zones): 1/1") for m in lines), lines
    assert any(m.startswith("buildings: ") for m in lines)


def test_progress_lines_give_an_eta(caplog):
    from hra.core.progress import progress_bar

    with caplog.at_level("INFO", logger="hra"):
        with progress_bar(4, "steps", enabled=False) as advance:
            for _ in range(4):
                advance()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("steps:")]
    assert lines[0].startswith("steps: 1/4 (") and "ETA" in lines[0]
    assert lines[-1].startswith("steps: 4/4 (") and "ETA" not in lines[-1]
