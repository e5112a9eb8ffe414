"""`hra models`, `hra hazard`, `hra inspect` through the command line."""

from __future__ import annotations


import pandas as pd
import tomli_w
import xarray as xr
from typer.testing import CliRunner

from hra.cli import app
from tests.helpers import make_config

runner = CliRunner()


def _write_toml(cfg, path):
    data = cfg.model_dump(mode="json", exclude={"base_dir", "source_file"})

    def clean(d):
        return {k: clean(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}

    with open(path, "wb") as fh:
        tomli_w.dump(clean(data), fh)
    return path


def test_models_check_passes_on_the_published_tables():
    """(A changed table: the models-sha-mismatch case of tests/test_bad_input_catalogue.py.)"""
    from hra.inputs.modeldata import model_dir_or_skip

    src = model_dir_or_skip()
    ok = runner.invoke(app, ["models", "check", str(src), "--versions", "V7"])
    assert ok.exit_code == 0, ok.output


def test_hazard_curves_command(tmp_path):
    cfg = make_config(tmp_path, cells=[(250_000.0, 590_000.0, 0.4)], curves={"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3))},
                      buildings=[dict(id="B", x=250_000.0, y=590_000.0, typology="URM")], m_max=((6.0, 1.0),))
    toml = _write_toml(cfg, tmp_path / "run.toml")
    pd.DataFrame([dict(id="S1", x=253_000.0, y=590_000.0)]).to_csv(tmp_path / "sites.csv", index=False)
    res = runner.invoke(app, ["hazard", "curves", str(toml), "--sites", str(tmp_path / "sites.csv"),
                              "--out", str(tmp_path / "hazard.nc"), "--return-periods", "475"])
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(tmp_path / "hazard.nc")
    assert ds["rate_mean"].dims == ("site", "imt", "year", "level") and "uhs_g" in ds
    assert "S1" in res.output


def test_inspect_conditional_demo():
    res = runner.invoke(app, ["inspect", "conditional", "--model", "demo", "-m", "4.5", "--rrup", "5",
                              "--zone", "1", "--typology", "URM_terraced_pre1920"])
    assert res.exit_code == 0, res.output
    assert "P(CS >= 1)" in res.output
    bad = runner.invoke(app, ["inspect", "conditional", "--model", "demo", "-m", "4.5", "--rrup", "5",
                              "--zone", "1", "--typology", "NOPE"])
    assert bad.exit_code == 2 and "NOPE" in bad.output


def test_events_command(tmp_path):
    cfg = make_config(tmp_path, cells=[(250_000.0, 590_000.0, 2.0)], curves={"URM": ((0.05, 0.1, 0.2), 0.5, (0.01, 0.1, 0.3))},
                      buildings=[dict(id=f"B{i}", x=250_000.0 + 500 * i, y=590_000.0, typology="URM") for i in range(5)],
                      m_max=((5.5, 1.0),))
    toml = _write_toml(cfg, tmp_path / "run.toml")
    res = runner.invoke(app, ["events", str(toml), "--years-simulated", "200", "--out", str(tmp_path / "eb.nc")])
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(tmp_path / "eb.nc")
    assert ds.sizes["building"] == 5 and "F-N" in res.output
    bad = runner.invoke(app, ["events", str(toml), "--years-simulated", "200", "--out", str(tmp_path / "eb.nc")])
    assert bad.exit_code == 2 and "already exists" in bad.output
