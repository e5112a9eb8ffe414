"""The `hra` command line (hra/cli/main.py): commands, overrides, exit codes, atomic outputs.

A tiny parametric region (one site, a handful of buildings) keeps every run below a second; one
test runs `hra demo` end to end on a small demo region (the README's first command).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w
import xarray as xr
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from helpers import make_config  # noqa: E402

import hra  # noqa: E402
from hra.cli import summary  # noqa: E402
from hra.cli import app  # noqa: E402

SECTIONS = ("run", "source", "ground_motion", "exposure", "fragility", "output", "compute")


@pytest.fixture(autouse=True)
def _restore_logging():
    """The CLI configures the hra loggers; give other tests in this process their loggers back."""
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers), logging.getLogger(n).propagate)
             for n in ("hra", "fragility", "npr9998")}
    yield
    for n, (level, handlers, propagate) in saved.items():
        lg = logging.getLogger(n)
        lg.setLevel(level)
        lg.handlers[:] = handlers
        lg.propagate = propagate


def invoke(*args: str):
    runner = CliRunner()
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _out(result) -> str:
    """stdout and stderr together (click >= 8.2 keeps them apart, older versions mix them)."""
    text = result.output
    try:
        err = result.stderr
    except (ValueError, AttributeError):
        err = ""
    return text if err and err in text else text + (err or "")


@pytest.fixture()
def region(tmp_path: Path) -> Path:
    """A tiny region: two source cells, 12 buildings, one typology; run.toml with relative paths."""
    cfg = make_config(
        tmp_path,
        cells=[(240_000.0, 590_000.0, 0.1), (241_000.0, 590_000.0, 0.05)],
        buildings=[dict(id=f"B{i:02d}", x=239_000.0 + 300.0 * i, y=590_400.0, typology="URM") for i in range(12)],
        curves={"URM": ((0.2, 0.4, 0.6), 0.5, (0.01, 0.1, 0.3))},
        years=(2025, 2026),
        m_max=((4.5, 0.5), (5.5, 0.5)),
    )
    data = cfg.model_dump(mode="json", exclude={"base_dir", "source_file"}, exclude_none=True)
    data["source"]["rates"] = "rates.csv"
    data["exposure"]["buildings"] = "buildings.csv"
    data["fragility"]["curves"] = "fragility.csv"
    with open(tmp_path / "run.toml", "wb") as fh:
        tomli_w.dump(data, fh)
    return tmp_path / "run.toml"


# ------------------------------------------------------------------------------------------
# hra config
# ------------------------------------------------------------------------------------------


def test_config_schema_is_json_with_all_sections():
    res = invoke("config", "schema")
    assert res.exit_code == 0
    schema = json.loads(res.stdout)
    for s in SECTIONS:
        assert s in schema["properties"], s
    assert "RunSection" in schema["$defs"]
    assert schema == hra.config.config_json_schema()


def test_config_schema_markdown_lists_every_key():
    res = invoke("config", "schema", "--format", "markdown")
    assert res.exit_code == 0
    md = res.stdout
    schema = hra.config.config_json_schema()
    for name, d in schema["$defs"].items():
        if name in ("WeightedValue", "ConsequenceBranch"):
            continue
        for key in d.get("properties", {}):
            assert f"`{key}`" in md, (name, key)
    assert "#### `[source.magnitude]`" in md
    assert '#### `[ground_motion] model = "parametric"`' in md
    # a default_factory default is shown although the JSON schema has none
    assert '`[{"factor": 1.0, "weight": 1.0}]`' in md


def test_readme_config_reference_is_the_schema_markdown():
    """The README's config reference is ``hra config schema --format markdown`` as the code gives it today
    (regenerate it after changing ``hra/config.py``): a key or description changed in the code and not in
    the README fails here."""
    res = invoke("config", "schema", "--format", "markdown")
    assert res.exit_code == 0
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    begin = "<!-- BEGIN CONFIG REFERENCE (hra config schema --format markdown) -->\n"
    inside = readme[readme.index(begin) + len(begin):readme.index("<!-- END CONFIG REFERENCE -->")]
    assert inside.strip() == res.stdout.strip()


def test_config_check_good(region: Path):
    res = invoke("config", "check", region)
    assert res.exit_code == 0, _out(res)
    assert "valid" in res.stdout
    assert "parametric" in res.stdout


def test_config_check_read_inputs(region: Path):
    res = invoke("config", "check", "--read-inputs", region)
    assert res.exit_code == 0, _out(res)
    assert "12" in res.stdout  # buildings


def test_config_check_bad_key_names_file_and_key(region: Path):
    bad = region.with_name("bad.toml")
    bad.write_text(region.read_text().replace("cell_size_m", "cel_size_m"))
    res = invoke("config", "check", bad)
    assert res.exit_code == 2
    out = _out(res)
    assert str(bad) in out
    assert "source.cel_size_m" in out
    assert "Traceback" not in out


def test_config_check_bad_value_names_key(region: Path):
    bad = region.with_name("bad.toml")
    bad.write_text(region.read_text().replace('realisations = "all"', "realisations = 0"))
    res = invoke("config", "check", bad)
    assert res.exit_code == 2
    assert "run.realisations" in _out(res)


def test_config_check_missing_input_file(region: Path):
    (region.parent / "buildings.csv").unlink()
    res = invoke("config", "check", region)
    assert res.exit_code == 2
    out = _out(res)
    assert "exposure.buildings" in out and "buildings.csv" in out


def test_config_check_missing_config(tmp_path: Path):
    res = invoke("config", "check", tmp_path / "nope.toml")
    assert res.exit_code == 2
    assert "nope.toml" in _out(res)


# ------------------------------------------------------------------------------------------
# hra run
# ------------------------------------------------------------------------------------------


def test_run_writes_outputs_equal_to_api(region: Path, tmp_path: Path):
    out = tmp_path / "res" / "risk.zarr"
    out.parent.mkdir()
    csv = tmp_path / "res" / "summary.csv"
    res = invoke("run", region, "--out", out, "--csv", csv)
    assert res.exit_code == 0, _out(res)
    ds = xr.open_zarr(out)
    assert ds["lpr_mean"].dims == ("building", "year")
    expected = hra.run(hra.load_config(region), progress=False, write=False)
    np.testing.assert_allclose(ds["lpr_mean"].values, expected["lpr_mean"].values, rtol=1e-12)
    np.testing.assert_allclose(ds["lpr_p90"].values, expected["lpr_p90"].values, rtol=1e-12)
    table = pd.read_csv(csv)
    assert len(table) == 12 and "lpr_mean_2025" in table.columns
    # the summary: categories, the top building by mean LPR, run time
    top = str(expected["building_id"].values[int(np.argmax(expected["lpr_mean"].values[:, 0]))])
    assert "Buildings per risk category" in res.stdout
    assert top in res.stdout
    assert "run time" in res.stdout
    assert "CPU: tables" in res.stdout  # the stages' CPU seconds (threads executor, the default)
    prov = json.loads(ds.attrs["provenance"])
    assert prov["timings_s"]["tables_cpu_s"] > 0 and prov["timings_s"]["buildings_cpu_s"] >= 0  # (12 buildings: < 1 ms)
    # a second run without --overwrite refuses and leaves the first output alone
    before = sorted(p.name for p in out.rglob("*"))
    res2 = invoke("run", region, "--out", out)
    assert res2.exit_code == 2
    assert "already exists" in _out(res2)
    assert sorted(p.name for p in out.rglob("*")) == before
    res3 = invoke("run", region, "--out", out, "--overwrite")
    assert res3.exit_code == 0, _out(res3)


def test_run_realisations_override(region: Path, tmp_path: Path):
    out = tmp_path / "mc.nc"
    res = invoke("run", region, "--out", out, "--realisations", "40")
    assert res.exit_code == 0, _out(res)
    with xr.open_dataset(out) as ds:
        prov = json.loads(ds.attrs["provenance"])
    assert prov["n_realisations"] == 40 and prov["realisations"] == "monte-carlo"
    res = invoke("run", region, "--realisations", "zero")
    assert res.exit_code == 2


def test_run_relative_out_is_relative_to_cwd(region: Path, tmp_path: Path, monkeypatch):
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    res = invoke("run", region, "--out", "risk.zarr")
    assert res.exit_code == 0, _out(res)
    assert (work / "risk.zarr").is_dir()
    assert not (region.parent / "risk.zarr").exists()


def test_workers_and_scheduler_are_exclusive(region: Path, tmp_path: Path):
    out = tmp_path / "x.zarr"
    res = invoke("run", region, "--out", out, "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786")
    assert res.exit_code == 2
    assert "mutually exclusive" in _out(res)
    assert not out.exists()
    res = invoke("run", region, "--out", out, "--processes", "--scheduler", "tcp://127.0.0.1:8786")
    assert res.exit_code == 2 and "mutually exclusive" in _out(res)
    assert not out.exists()


def test_executor_options_set_the_compute_keys():
    from hra.cli.common import _compute_updates

    assert _compute_updates(None, None, None) == {}
    assert _compute_updates(2, None, None) == {"scheduler": None, "workers": 2}
    assert _compute_updates(3, None, True) == {"scheduler": None, "workers": 3, "executor": "processes"}
    assert _compute_updates(None, None, False) == {"scheduler": None, "executor": "threads"}
    assert _compute_updates(None, "tcp://h:8786", None) == {"scheduler": "tcp://h:8786"}


def test_output_parent_is_a_file(region: Path, tmp_path: Path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    res = invoke("run", region, "--out", blocker / "risk.zarr")
    assert res.exit_code == 2
    out = _out(res)
    assert "blocker" in out and "not a directory" in out
    assert "Traceback" not in out
    assert blocker.read_text() == "not a directory"


def test_output_directory_missing(region: Path, tmp_path: Path):
    res = invoke("run", region, "--out", tmp_path / "nowhere" / "risk.zarr")
    assert res.exit_code == 2
    assert "does not exist" in _out(res)
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write into read-only directories")
def test_output_directory_not_writable(region: Path, tmp_path: Path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        res = invoke("run", region, "--out", ro / "risk.zarr", "--csv", ro / "s.csv")
        assert res.exit_code == 2
        assert "not writable" in _out(res)
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_bad_output_suffix_is_a_config_error(region: Path, tmp_path: Path):
    res = invoke("run", region, "--out", tmp_path / "risk.txt")
    assert res.exit_code == 2
    out = _out(res)
    assert "output.path" in out and ".zarr or .nc" in out


def test_input_error_exit_2_without_traceback(region: Path):
    (region.parent / "rates.csv").write_text("x,y,year\n1,2,2025\n")
    res = invoke("run", region)
    assert res.exit_code == 2
    out = _out(res)
    assert "rate" in out and "Traceback" not in out


def test_runtime_error_exit_1(region: Path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(hra.api, "run", boom)
    res = invoke("run", region)
    assert res.exit_code == 1
    assert "worker lost" in _out(res)


# ------------------------------------------------------------------------------------------
# summary and command structure
# ------------------------------------------------------------------------------------------


def test_category_counts_by_hand():
    mean = np.array([[2e-5, 5e-6], [5e-6, 5e-6], [1e-6, 2e-5], [1e-7, 1e-7]])
    p90 = np.array([[3e-5, 2e-5], [2e-5, 8e-6], [3e-6, 4e-5], [1e-6, 1e-6]])
    ds = xr.Dataset({"lpr_mean": (("building", "year"), mean), "lpr_p90": (("building", "year"), p90)},
                    coords={"year": [2025, 2026]})
    rows = summary.category_counts(ds)
    assert [r["year"] for r in rows] == ["2025", "2026", "any year"]
    assert [(r["mean"], r["p90_only"], r["neither"]) for r in rows] == [(1, 1, 2), (1, 1, 2), (2, 1, 1)]
    assert all(r["mean"] + r["p90_only"] + r["neither"] == 4 for r in rows)


def test_help_lists_commands():
    res = invoke("--help")
    assert res.exit_code == 0
    for c in ("demo", "run", "config"):
        assert c in res.stdout
    groups = {g.name for g in app.registered_groups}
    assert "config" in groups
    try:
        import hra.cli.profiles  # noqa: F401
    except ImportError:  # mounted only once it exists
        return
    assert "profiles" in groups


# ------------------------------------------------------------------------------------------
# hra demo (the README's first command, on a small region)
# ------------------------------------------------------------------------------------------


def test_demo_end_to_end(tmp_path: Path):
    out = tmp_path / "demo" / "risk.zarr"
    res = invoke("demo", "--buildings", "300", "--realisations", "50", "--out", out)
    assert res.exit_code == 0, _out(res)
    ds = xr.open_zarr(out)
    assert ds.sizes["building"] == 300 and ds.sizes["year"] == 7
    assert json.loads(ds.attrs["provenance"])["n_realisations"] == 50
    table = pd.read_csv(out.parent / "risk_summary.csv")
    assert len(table) == 300
    run_toml = out.parent / "demo-inputs" / "run.toml"
    assert run_toml.is_file()
    assert "Highest mean LPR in 2025" in res.stdout
    assert invoke("config", "check", run_toml).exit_code == 0


def test_demo_unwritable_leaves_nothing(tmp_path: Path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    res = invoke("demo", "--buildings", "10", "--out", blocker / "sub" / "risk.zarr")
    assert res.exit_code == 2
    assert "Traceback" not in _out(res)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]
