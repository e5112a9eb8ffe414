"""The bad-input catalogue: every case runs through the command line and must give exit code 2, a
message naming the file, key or row and the fix, no traceback, and leave nothing behind.

One table, ``CASES``: an id, the mutation of a small valid case (a function that breaks the
inputs and returns the command line), and the words the message must hold. The inputs are a tiny
parametric region (closed-form ground motion, two buildings, one source cell) written to
``tmp_path``, so each case runs in well under a second; what the command would write goes to
``tmp_path/out``. "Nothing left behind" compares the listing (path, size, mtime) of the whole
``tmp_path`` tree before and after the command, so inputs are also proven untouched.

The README's Troubleshooting table lists the most common of these errors and their fixes.
A few controls (not errors) close the file: zero rates give LPR 0, a building far from every
source or a rate grid far outside the field warn, and a good run writes its outputs.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import tomli_w
from typer.testing import CliRunner

from hra.cli import app
from npr9998.cli import app as npr_app
from tests.helpers import PARAMETRIC, write_buildings, write_fragility, write_rates

runner = CliRunner()

CELL = (250_000.0, 590_000.0)
CURVES = {"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3))}
BUILDINGS = [dict(id="B1", x=251_000.0, y=590_000.0, typology="URM"), dict(id="B2", x=252_000.0, y=591_000.0, typology="URM")]

#: words of a fix hint: every message must tell the user what to do, not only what is wrong
FIX_WORDS = re.compile(r"(?i)\bfix\b|remove|choose|give |use |pass |set |add |correct|check|rename|delete|"
                       r"must|expected|should|needs|convert|create|install|run `|close|wait|restore|point|one of")


class Inputs:
    """A small valid case in ``root/in`` (run.toml, rates.csv, buildings.csv, fragility.csv) and an
    empty output folder ``root/out``; the mutations change it before the command runs."""

    def __init__(self, root: Path, monkeypatch):
        self.root = root
        self.monkeypatch = monkeypatch
        self.dir = root / "in"
        self.dir.mkdir(parents=True)
        self.out = root / "out"
        self.out.mkdir()
        self.cleanup: list[Callable[[], None]] = []
        write_rates(self.dir / "rates.csv", [(*CELL, 0.5)])
        write_fragility(self.dir / "fragility.csv", CURVES)
        write_buildings(self.dir / "buildings.csv", BUILDINGS)
        self.data = {
            "run": {"years": [2025], "seed": 7, "realisations": "all"},
            "source": {"rates": "rates.csv", "m_min": 1.5,
                       "magnitude": {"b_value": 1.0, "m_max": [{"value": 5.0, "weight": 1.0}]}},
            "ground_motion": dict(PARAMETRIC),
            "exposure": {"buildings": "buildings.csv"},
            "fragility": {"curves": "fragility.csv"},
            "compute": {"workers": 1, "executor": "synchronous", "progress": False},
        }
        self.write_config()

    @property
    def config(self) -> Path:
        return self.dir / "run.toml"

    def write_config(self) -> None:
        self.config.write_text(tomli_w.dumps(self.data))

    def set(self, dotted: str, value) -> None:
        """Set (or with ``value=None`` remove) a config key ``section.key``."""
        *path, key = dotted.split(".")
        d = self.data
        for p in path:
            d = d.setdefault(p, {})
        if value is None:
            d.pop(key, None)
        else:
            d[key] = value
        self.write_config()

    def csv(self, name: str, mutate: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
        p = self.dir / name
        mutate(pd.read_csv(p)).to_csv(p, index=False)

    def run_args(self, *extra: str) -> list[str]:
        return ["run", str(self.config), "--out", str(self.out / "r.zarr"), "--csv", str(self.out / "r.csv"), *extra]


# -- mutations -------------------------------------------------------------------------------------


def key(dotted, value, command="run"):
    """Set a config key and run ``hra run`` (or ``hra events``)."""
    def mutate(inp: Inputs):
        inp.set(dotted, value)
        return inp.run_args() if command == "run" else ["events", str(inp.config), "--years-simulated", "10"]
    return mutate


def table(name, fn, *extra):
    """Change one input table and run."""
    def mutate(inp: Inputs):
        inp.csv(name, fn)
        return inp.run_args(*extra)
    return mutate


def rows(name, new_rows):
    """Replace an input table by ``new_rows`` (list of dicts) and run."""
    return table(name, lambda d: pd.DataFrame(new_rows))


def fragility(curves):
    def mutate(inp: Inputs):
        write_fragility(inp.dir / "fragility.csv", curves)
        return inp.run_args()
    return mutate


def rate_cells(cells):
    def mutate(inp: Inputs):
        write_rates(inp.dir / "rates.csv", cells)
        return inp.run_args()
    return mutate


def with_rows(df, *new):
    return pd.concat([df, pd.DataFrame(list(new))], ignore_index=True)


def input_as_folder(section, name):
    def mutate(inp: Inputs):
        (inp.dir / "adir").mkdir()
        inp.set(f"{section}.{name}", "adir")
        return inp.run_args()
    return mutate


def raw(make_args):
    """Any command line; ``make_args(inp)`` may also write files."""
    return make_args


def _config_text(text):
    def mutate(inp: Inputs):
        inp.config.write_text(text)
        return inp.run_args()
    return mutate


def _edb(inp: Inputs):
    """An EDB-layout exposure file (system_1 / s_probability_1 ... columns) without the y column."""
    pd.DataFrame([dict(id="B1", x=251_000.0, system_1="URM", s_probability_1=1.0)]).to_csv(inp.dir / "buildings.csv", index=False)
    return inp.run_args()


def _edb_sum(inp: Inputs):
    write_fragility(inp.dir / "fragility.csv", dict(CURVES, URM2=((0.2, 0.4, 0.8), 0.5, (0.01, 0.1, 0.3))))
    pd.DataFrame([dict(id="B1", x=251_000.0, y=590_000.0, system_1="URM", s_probability_1=0.5,
                       system_2="URM2", s_probability_2=0.3)]).to_csv(inp.dir / "buildings.csv", index=False)
    return inp.run_args()


def _output_is_input(inp: Inputs):
    return ["run", str(inp.config), "--csv", str(inp.dir / "buildings.csv"), "--overwrite"]


def _csv_is_folder(inp: Inputs):
    (inp.out / "adir").mkdir()
    return ["run", str(inp.config), "--out", str(inp.out / "r.zarr"), "--csv", str(inp.out / "adir"), "--overwrite"]


def _output_exists(inp: Inputs):
    (inp.out / "r.zarr").mkdir()
    return inp.run_args()


def _output_parent_is_file(inp: Inputs):
    (inp.out / "blocker").write_text("a file where a folder should be")
    return ["run", str(inp.config), "--out", str(inp.out / "blocker" / "r.zarr")]


# model tables ------------------------------------------------------------------------------------


def _tampered_v7(inp: Inputs):
    from hra.inputs import modeldata as md

    try:
        src = md.resolve_model_dir()
    except md.ModelDataError:
        pytest.skip("no model tables (HRA_MODEL_DIR)")
    dst = inp.root / "res" / "V7"
    dst.mkdir(parents=True)
    for f in (src / "V7").iterdir():  # links to the real tables, one of them changed
        if f.name == "gmpe_sigmas_NS_B_20211010_v7.csv":
            (dst / f.name).write_text(f.read_text().replace("0.2362", "0.2363", 1))
        else:
            (dst / f.name).symlink_to(f)
    return ["models", "check", str(dst.parent), "--versions", "V7"]


def _no_model_dir(inp: Inputs):
    inp.monkeypatch.delenv("HRA_MODEL_DIR", raising=False)
    return ["models", "check", "--versions", "V7"]


# registers ---------------------------------------------------------------------------------------


def _risk_file(inp: Inputs) -> Path:
    """A small risk file (one run of the valid case, written outside ``out``)."""
    path = inp.root / "risk.zarr"
    res = runner.invoke(app, ["run", str(inp.config), "--out", str(path)])
    assert res.exit_code == 0, res.output
    return path


def _register(inp: Inputs) -> tuple[Path, Path]:
    years = [2025, 2026, 2027, 2028]  # a profile needs the short and the long horizon
    write_rates(inp.dir / "rates.csv", [(*CELL, 0.5)], years)
    inp.set("run.years", years)
    risk = _risk_file(inp)
    reg = inp.root / "reg.db"
    res = runner.invoke(app, ["profiles", "update", str(risk), "--register", str(reg), "--run-id", "a"])
    assert res.exit_code == 0, res.output
    return risk, reg


def _register_locked(inp: Inputs):
    from hra.policy import register as register_mod

    risk, reg = _register(inp)
    inp.monkeypatch.setattr(register_mod, "SQLITE_LOCK_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(reg, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another writer holds the lock

    def release():
        holder.execute("ROLLBACK")
        holder.close()
    inp.cleanup.append(release)
    return ["profiles", "update", str(risk), "--register", str(reg), "--run-id", "b"]


def _register_read_only(inp: Inputs):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only files")
    risk, reg = _register(inp)
    reg.chmod(stat.S_IRUSR)
    inp.cleanup.append(lambda: reg.chmod(stat.S_IRUSR | stat.S_IWUSR))
    return ["profiles", "update", str(risk), "--register", str(reg), "--run-id", "b"]


def _register_not_a_register(inp: Inputs):
    return ["profiles", "show", "B1", "--register", str(inp.dir / "buildings.csv")]


def _update_from_a_bad_risk_file(inp: Inputs):
    return ["profiles", "update", str(inp.root / "nothing.zarr"), "--register", str(inp.out / "reg.db")]


# npr9998 -----------------------------------------------------------------------------------------


def _npr_inputs(inp: Inputs) -> Path:
    from tests.npr9998.test_npr9998_cli import BUILDING, PUSHOVER

    (inp.dir / "pushover.csv").write_text(PUSHOVER)
    (inp.dir / "building.toml").write_text(BUILDING)
    return inp.dir / "building.toml"


def _npr_out_is_file(inp: Inputs):
    b = _npr_inputs(inp)
    (inp.out / "results.txt").write_text("not a folder")
    return ["assess", str(b), "--out", str(inp.out / "results.txt")]


def _npr_out_exists(inp: Inputs):
    b = _npr_inputs(inp)
    (inp.out / "res").mkdir()
    (inp.out / "res" / "results.json").write_text("{}")
    return ["assess", str(b), "--out", str(inp.out / "res")]


def _npr_bad_building(inp: Inputs):
    b = _npr_inputs(inp)
    b.write_text(b.read_text().replace("mode_shape = [0.5, 1.0]", "mode_shape = [0.5, 1.0]\nmodeshape = [1]"))
    return ["assess", str(b), "--out", str(inp.out / "res")]


def _npr_negative_mass(inp: Inputs):
    b = _npr_inputs(inp)
    b.write_text(b.read_text().replace("masses_t = [50.0, 40.0]", "masses_t = [50.0, -40.0]"))
    return ["assess", str(b), "--out", str(inp.out / "res")]


# hra events --------------------------------------------------------------------------------------


def _events(*args):
    def mutate(inp: Inputs):
        return ["events", str(inp.config), *[a.format(out=inp.out) for a in args]]
    return mutate


# forecasts ---------------------------------------------------------------------------------------


def _forecast(mutate=None, weights=None, file=None, years=(2025, 2026)):
    """A forecast file (the test_forecast layout) instead of the rate grid, broken by ``mutate``."""
    def make(inp: Inputs):
        import xarray as xr

        from hra.inputs.forecast import write_forecast
        from tests.test_forecast import WEIGHTS, _forecast_array

        p = inp.dir / "ssm.h5"
        if file is not None:
            file(p, xr)
        else:
            da = _forecast_array()
            write_forecast(mutate(da) if mutate else da, p)
        src = dict(inp.data["source"])
        src.pop("rates")
        src.pop("magnitude")
        inp.data["source"] = {**src, "forecast": "ssm.h5", "forecast_weights": weights or WEIGHTS}
        inp.data["run"]["years"] = list(years)
        inp.write_config()
        return inp.run_args()
    return make


def _fc_set(value, **where):
    def mutate(da):
        da = da.copy()
        loc = {k: (da[k].values[v] if isinstance(v, int) else v) for k, v in where.items()}
        da.loc[loc] = value
        return da
    return mutate


def _fc_weights(**change):
    from tests.test_forecast import WEIGHTS

    return {**WEIGHTS, **change}


# -- the catalogue ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    mutate: Callable[[Inputs], list[str]]
    words: tuple[str, ...]
    cli: str = "hra"


C = Case
CASES = [
    # config
    C("config-unknown-key", key("run.seeed", 3), ("run.toml", "key [run.seeed]", "remove it or check its spelling")),
    C("config-bad-type", key("run.seed", "x"), ("key [run.seed]", "got 'x'", "fix:")),
    C("config-mmax-weights", key("source.magnitude.m_max", [{"value": 4.5, "weight": 0.5}, {"value": 5.5, "weight": 0.4}]),
      ("m_max", "sum to 0.9")),
    C("config-quantile-out-of-range", key("run.quantiles", [0.5, 1.5]), ("run.quantiles", "1.5")),
    C("config-scheduler-nonsense", key("compute.scheduler", "nonsense"), ("compute.scheduler", "nonsense")),
    C("config-executor-nonsense", key("compute.executor", "gpu"), ("compute.executor", "gpu")),
    C("config-m-max-inf", key("source.magnitude.m_max", [{"value": math.inf, "weight": 1.0}]), ("m_max", "finite")),
    C("config-years-empty", key("run.years", []), ("run.years",)),
    C("config-nan-coefficient", key("ground_motion.c0", math.nan), ("c0", "finite")),
    C("config-negative-sigma", key("ground_motion.phi", -0.5), ("phi",)),
    C("config-toml-syntax", _config_text("[run]\nyears = [2025\n"), ("run.toml", "line")),
    C("config-is-a-folder", raw(lambda inp: ["run", str(inp.dir)]), ("is a folder", "TOML")),
    C("config-missing", raw(lambda inp: ["run", str(inp.dir / "nope.toml")]), ("nope.toml",)),
    C("config-rates-is-a-folder", input_as_folder("source", "rates"), ("key [source.rates]", "is a folder", "fix:")),
    C("config-buildings-is-a-folder", input_as_folder("exposure", "buildings"), ("key [exposure.buildings]", "is a folder", "fix:")),
    C("config-curves-is-a-folder", input_as_folder("fragility", "curves"), ("key [fragility.curves]", "is a folder", "fix:")),
    C("config-input-missing", key("exposure.buildings", "nothere.csv"),
      ("key [exposure.buildings]", "does not exist", "folder of the config")),
    # rate grids
    C("rates-nan", table("rates.csv", lambda d: d.assign(rate=np.nan)), ("rates.csv", "row 2", "'rate'")),
    C("rates-negative", table("rates.csv", lambda d: d.assign(rate=-0.1)), ("rates.csv", "row 2", "'rate'", "negative")),
    C("rates-fractional-year", table("rates.csv", lambda d: with_rows(d.astype(float), dict(x=CELL[0] + 1000, y=CELL[1], year=2026.5, rate=0.1))),
      ("rates.csv", "row 3", "'year'", "whole year")),
    C("rates-in-degrees", rate_cells([(6.7, 53.3, 0.5)]), ("rates.csv", "'y'", "RD New", "degrees")),
    C("rates-absurd", rate_cells([(*CELL, 1e300)]), ("rates.csv", "row 2", "'rate'", "unit")),
    C("rates-missing-column", table("rates.csv", lambda d: d.drop(columns=["year"])), ("rates.csv", "year")),
    C("rates-branch-weights", raw(lambda inp: (write_rates(inp.dir / "rates.csv", [(*CELL, 0.5)], branches=[("a", 0.5, 1.0), ("b", 0.4, 1.2)]),
                                               inp.run_args())[1]), ("rates.csv", "'weight'", "sum to 0.9")),
    # forecasts
    C("forecast-missing-variable", _forecast(file=lambda p, xr: xr.Dataset({"rates": ("x", [1.0])}).to_netcdf(p, group="forecast")),
      ("ssm.h5", "no variable 'forecast'", "group 'forecast'")),
    C("forecast-missing-dim", _forecast(lambda da: da.isel(magnitude=0, drop=True)), ("ssm.h5", "missing ['magnitude']", "it needs dims")),
    C("forecast-label-without-weight", _forecast(weights=_fc_weights(branch_mm={"stress": 1.0})),
      ("label 'thickness' of dim 'branch_mm' has no weight", "fix: add 'thickness'")),
    C("forecast-weights-sum", _forecast(weights=_fc_weights(branch_mm={"stress": 0.3, "thickness": 0.6})),
      ("forecast_weights", "branch_mm", "sum to 0.9")),
    C("forecast-weight-without-label", _forecast(weights=_fc_weights(branch_mmax={"4.5": 0.5, "5.5": 0.3, "6.0": 0.2})),
      ("branch_mmax gives a weight for '6.0'", "not a label of dim 'branch_mmax'")),
    C("forecast-weight-for-missing-dim", _forecast(lambda da: da.isel(branch_rate=[0]).assign_coords(branch_rate=["only"])
                                                   .squeeze("branch_rate", drop=True)),
      ("branch_rate is given but the forecast has no dim 'branch_rate'",)),
    C("forecast-nan-count", _forecast(_fc_set(np.nan, magnitude=10, x=0, y=0)),
      ("ssm.h5", "NaN", "cell (x=250000, y=590000)", "magnitude 1.95", "branch_rate=low")),
    C("forecast-year-missing", _forecast(years=[2025, 2030]), ("no forecast for year(s) [2030]", "the file has years [2025, 2026]")),
    C("forecast-negative-count", _forecast(_fc_set(-1.0, magnitude=-1, x=0, y=0)), ("ssm.h5", "negative count", "counts must be >= 0")),
    C("forecast-increasing-counts", _forecast(_fc_set(1.0, magnitude=50, x=0, y=0)), ("ssm.h5", "increases with magnitude", "non-increasing")),
    # exposure
    C("exposure-missing-column", table("buildings.csv", lambda d: d.drop(columns=["y"])), ("buildings.csv", "'y'")),
    C("exposure-nan-coordinate", table("buildings.csv", lambda d: d.assign(x=[251_000.0, np.nan])), ("buildings.csv", "row 3", "'x'")),
    C("exposure-duplicate-ids", table("buildings.csv", lambda d: d.assign(id=["B1", "B1"])), ("buildings.csv", "B1", "rows 2 and 3")),
    C("exposure-unknown-typology", table("buildings.csv", lambda d: d.assign(typology=["URM", "URN"])), ("buildings.csv", "row 3", "URN")),
    C("exposure-empty-file", raw(lambda inp: ((inp.dir / "buildings.csv").write_text(""), inp.run_args())[1]), ("buildings.csv", "empty")),
    C("exposure-in-degrees", table("buildings.csv", lambda d: d.assign(x=[6.7, 6.8], y=[53.3, 53.3])),
      ("buildings.csv", "RD New")),
    C("exposure-edb-missing-column", _edb, ("buildings.csv", "'y'")),
    C("exposure-edb-probabilities", _edb_sum, ("buildings.csv", "row 2", "s_probability_1", "0.8")),
    # fragility
    C("fragility-nan-median", table("fragility.csv", lambda d: d.assign(median_g=[np.nan, 0.3, 0.6])), ("fragility.csv", "median")),
    C("fragility-reversed-medians", fragility({"URM": ((0.6, 0.4, 0.2), 0.5, (0.01, 0.1, 0.3))}),
      ("fragility.csv", "'URM'", "CS1", "median")),
    C("fragility-missing-state", table("fragility.csv", lambda d: d[d.state != "CS2"]), ("fragility.csv", "CS2", "URM")),
    C("fragility-negative-beta", table("fragility.csv", lambda d: d.assign(beta=-0.5)), ("fragility.csv", "beta")),
    C("fragility-p-death-above-one", table("fragility.csv", lambda d: d.assign(p_death=[0.01, 0.1, 1.3])), ("fragility.csv", "p_death")),
    # outputs
    C("output-is-an-input", _output_is_input, ("buildings.csv", "is an input")),
    C("output-csv-is-a-folder", _csv_is_folder, ("adir", "is a folder", "give a file name")),
    C("output-exists", _output_exists, ("r.zarr", "already exists", "--overwrite")),
    C("output-parent-is-a-file", _output_parent_is_file, ("blocker", "not a directory")),
    # model tables
    C("models-sha-mismatch", _tampered_v7, ("gmpe_sigmas_NS_B_20211010_v7.csv", "SHA-256", "hra models fetch")),
    C("models-no-directory", _no_model_dir, ("HRA_MODEL_DIR", "hra models fetch")),
    C("models-directory-missing", raw(lambda inp: ["models", "check", str(inp.root / "nowhere")]), ("nowhere", "does not exist")),
    # registers
    C("register-locked", _register_locked, ("reg.db", "locked", "nothing was changed")),
    C("register-read-only", _register_read_only, ("reg.db", "read-only")),
    C("register-not-a-register", _register_not_a_register, ("buildings.csv", "register")),
    C("register-bad-risk-file", _update_from_a_bad_risk_file, ("nothing.zarr",)),
    # npr9998
    C("npr9998-out-is-a-file", _npr_out_is_file, ("results.txt", "not a folder"), cli="npr9998"),
    C("npr9998-out-exists", _npr_out_exists, ("res", "already", "--overwrite"), cli="npr9998"),
    C("npr9998-unknown-key", _npr_bad_building, ("building.toml", "capacity.modeshape"), cli="npr9998"),
    C("npr9998-negative-mass", _npr_negative_mass, ("storey mass 2",), cli="npr9998"),
    # hra events
    C("events-out-suffix", _events("--out", "{out}/ev.txt", "--years-simulated", "10"), ("ev.txt", ".zarr or .nc")),
    C("events-huge-years", _events("--years-simulated", "1000000000000"), ("--years-simulated",)),
    C("events-huge-realisations", _events("--realisations", "1000000000000"), ("--realisations",)),
    C("events-fn-thresholds-negative", key("event_based.fn_thresholds", [-1.0, 0.0], "events"), ("fn_thresholds", "at least 1")),
    C("events-fn-thresholds-decreasing", key("event_based.fn_thresholds", [5.0, 2.0], "events"), ("fn_thresholds", "increasing")),
    C("events-grid-spacing-tiny", key("event_based.grid_spacing_m", 0.001, "events"), ("grid_spacing_m",)),
]


def _listing(root: Path) -> set:
    return {(str(p.relative_to(root)), p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns if p.is_file() else 0)
            for p in root.rglob("*") if not p.is_symlink()}


def test_catalogue_has_forty_distinct_cases():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) >= 40


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(tmp_path, monkeypatch, case):
    inp = Inputs(tmp_path, monkeypatch)
    try:
        args = case.mutate(inp)
        before = _listing(tmp_path)
        res = runner.invoke(npr_app if case.cli == "npr9998" else app, args)
        after = _listing(tmp_path)
    finally:
        for undo in inp.cleanup:
            undo()
    text = res.output
    assert res.exit_code == 2, f"exit {res.exit_code}: {text}"
    assert "Traceback" not in text and re.search(r"(?im)^error: ", text), text
    flat = " ".join(text.split())
    for w in case.words:
        assert w in flat, f"{w!r} not in: {flat}"
    assert FIX_WORDS.search(flat), f"no fix hint in: {flat}"
    assert after == before, f"left behind or changed: {sorted(after ^ before)}"


def test_model_table_hash_mismatch_when_loading_names_the_command(tmp_path):
    """The loader's own check (not only `hra models check`): a changed table names `hra models fetch`."""
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


# -- controls: unusual but valid inputs -------------------------------------------------------------


def test_zero_rates_give_zero_lpr(tmp_path, monkeypatch):
    inp = Inputs(tmp_path, monkeypatch)
    write_rates(inp.dir / "rates.csv", [(*CELL, 0.0), (CELL[0] + 1000, CELL[1], 0.0)])
    res = runner.invoke(app, ["run", str(inp.config), "--csv", str(inp.out / "s.csv")])
    assert res.exit_code == 0, res.output
    assert np.all(pd.read_csv(inp.out / "s.csv")["lpr_mean_2025"] == 0.0)


def test_building_far_from_every_source_warns(tmp_path, monkeypatch, caplog):
    import hra

    inp = Inputs(tmp_path, monkeypatch)
    write_buildings(inp.dir / "buildings.csv", BUILDINGS + [dict(id="FAR", x=150_000.0, y=450_000.0, typology="URM")])
    with caplog.at_level("WARNING", logger="hra"):
        ds = hra.run(hra.load_config(inp.config), progress=False, write=False)
    assert "1 of 3 buildings lie farther than" in caplog.text and "'FAR'" in caplog.text
    assert float(ds.lpr_mean.values[2, 0]) == 0.0 and float(ds.lpr_mean.values[0, 0]) > 0.0


def test_sources_outside_the_field_warn(tmp_path, monkeypatch, caplog):
    """A rate grid shifted 100 km (a wrong false origin) is accepted, with a warning naming the file."""
    import hra

    inp = Inputs(tmp_path, monkeypatch)
    write_rates(inp.dir / "rates.csv", [(CELL[0] - 100_000.0, CELL[1], 0.5), (*CELL, 0.5)])
    with caplog.at_level("WARNING", logger="hra"):
        hra.run(hra.load_config(inp.config), progress=False, write=False)
    assert "rates.csv: 1 of 2 source cells lie outside the Groningen field" in caplog.text and "(150000, 590000)" in caplog.text


def test_good_run_writes_both_outputs(tmp_path, monkeypatch):
    """The control of the catalogue: the same inputs, unbroken, exit 0 and write both outputs."""
    import xarray as xr

    from hra.outputs import validate

    inp = Inputs(tmp_path, monkeypatch)
    res = runner.invoke(app, inp.run_args())
    assert res.exit_code == 0, res.output
    assert sorted(os.listdir(inp.out)) == ["r.csv", "r.zarr"]
    validate(xr.open_zarr(inp.out / "r.zarr").load())
    assert tomllib.loads(inp.config.read_text())["run"]["seed"] == 7
