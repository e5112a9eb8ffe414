"""Reliability at the command line: help texts keep their units, a register given as a file works,
small event-based runs say what their F-N curve rests on, temporary folders go, progress is reported.
Bad inputs (exit code 2, a message naming file/key/row and the fix) are in test_bad_input_catalogue.py."""

from __future__ import annotations

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


# -- help texts keep their units -----------------------------------------------------------------


def test_help_keeps_units_and_section_names():
    res = runner.invoke(app, ["inspect", "conditional", "--help"])
    assert res.exit_code == 0 and "[km]" in res.output
    res = runner.invoke(app, ["events", "--help"])
    assert res.exit_code == 0 and "[event_based]" in res.output


# -- registers given as a file ------------------------------------------------------------------


@pytest.fixture()
def risk_file(tmp_path):
    cfg, out = _case(tmp_path, years=(2025, 2026, 2027, 2028))
    res = runner.invoke(app, ["run", str(cfg), "--out", str(out / "risk.zarr")])
    assert res.exit_code == 0, res.output
    return out / "risk.zarr"


def test_plan_accepts_a_register_file(tmp_path, risk_file):
    reg = tmp_path / "reg.db"
    assert runner.invoke(app, ["profiles", "update", str(risk_file), "--register", str(reg), "--run-id", "a"]).exit_code == 0
    caps = tmp_path / "caps.toml"
    caps.write_text("start_year = 2027\n[capacity]\nopname = 5\nbeoordeling = 5\nnormbesluit = 5\n"
                    "versterkingsbesluit = 5\nuitvoering = 5\n")
    res = runner.invoke(app, ["plan", str(reg), "--capacities", str(caps), "--out", str(tmp_path / "plan"), "--no-chart"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "plan").is_dir()


# -- event-based: honest small runs --------------------------------------------------------------


def test_events_summary_says_what_the_fn_curve_rests_on(tmp_path):
    # a weak source and strong buildings: no deaths in 10 simulated years, one realisation
    cfg, out = _case(tmp_path, cells=[(*CELL, 0.01)], curves={"URM": ((5.0, 8.0, 10.0), 0.3, (0.01, 0.1, 0.3))})
    res = runner.invoke(app, ["events", str(cfg), "--years-simulated", "10"])
    assert res.exit_code == 0, res.output
    assert "logic-tree realisations" in res.output and "simulated events per year" in res.output
    assert "F-N curve is empty" in res.output and "one logic-tree realisation" in res.output


def test_events_summary_counts_the_events_and_deaths_of_the_fn_curve(tmp_path):
    """A small run with deaths: the summary's count of sampled events with deaths and their deaths
    equals what the written event set holds, and the F-N curve is called rough (< 10 events)."""
    import xarray as xr

    cfg, out = _case(tmp_path, cells=[(*CELL, 2.0)], curves={"URM": ((0.05, 0.1, 0.2), 0.5, (0.01, 0.1, 0.3))})
    res = runner.invoke(app, ["events", str(cfg), "--years-simulated", "40", "--realisations", "2", "--out", str(out / "ev.zarr")])
    assert res.exit_code == 0, res.output
    d = xr.open_zarr(out / "ev.zarr")["event_deaths"].values
    n, deaths = int((d > 0).sum()), float(d.sum())
    assert 0 < n < 10
    text = " ".join(res.output.split())
    assert f"events with deaths (sampled) │ {n} ({deaths:g} deaths)" in text
    assert f"the F-N curve rests on {n} simulated event(s) with deaths" in text
    assert "F-N curve is empty" not in text and "one logic-tree realisation" not in text


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
    assert any(m.startswith("tables (1 zones x 1 GMM branch blocks): 1/1") for m in lines), lines
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


def test_steps_inside_tasks_on_threads_reach_the_total(caplog):
    """Steps reported from worker threads (step) and the steps a task skipped (task_steps) add up to
    the total: 3 tasks of 4 steps, one of which reports only 1 (the rest, e.g., read from a store)."""
    from hra.core import progress
    from hra.core.executor import Executor

    def task(n_done):
        with progress.task_steps(4):
            for _ in range(n_done):
                progress.step()
        return n_done

    with caplog.at_level("INFO", logger="hra"):
        with progress.step_progress(12, "blocks", enabled=False):
            with Executor("threads", workers=2) as ex:
                assert ex.map(task, [4, 1, 4], progress=False) == [4, 1, 4]
        progress.step()  # outside a step_progress block: not reported
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("blocks:")]
    assert lines[-1].startswith("blocks: 12/12 (") and len(lines) == 12
    assert all("ETA" in m for m in lines[:-1])
