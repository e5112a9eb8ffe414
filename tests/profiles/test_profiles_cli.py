"""CLI: `hra profiles ...` and `hra plan`, mounted on a fresh Typer app as hra/cli/main.py does."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from hra.cli.profiles import plan_command, profiles_app

HIGH = (2e-5, 1.5e-5, 4e-5)
LICHT = (2e-6, 1e-6, [2e-5, 2e-5, 2e-5, 1e-6, 1e-6, 1e-6])
LOW = (1e-7, 1e-7, 1e-7)


@pytest.fixture
def app():
    a = typer.Typer()
    a.add_typer(profiles_app, name="profiles")
    a.command("plan")(plan_command)
    return a


@pytest.fixture
def runner():
    return CliRunner()


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.filterwarnings("ignore:Consolidated metadata")
def test_update_show_export_plan_end_to_end(app, runner, tmp_path, make_ds):
    reg = f"sqlite:///{tmp_path / 'reg.db'}"
    muni = {"A": "X", "B": "X", "C": "Y"}
    z = tmp_path / "risk2025.zarr"
    make_ds({"A": HIGH, "B": LICHT, "C": LOW}, tag="2025", municipality=muni).to_zarr(z)
    nc = tmp_path / "risk2026.nc"
    make_ds({"A": LOW, "B": LICHT, "C": HIGH}, tag="2026", municipality=muni).to_netcdf(nc)

    r = _ok(runner.invoke(app, ["profiles", "update", str(z), "--register", reg, "--run-id", "2025"]))
    assert "run 2025: 3 buildings (3 new)" in r.output
    r = _ok(runner.invoke(app, ["profiles", "update", str(nc), "--register", reg, "--rule", "besluit-2019",
                                "--run-id", "2026"]))
    assert "kept by the ratchet (art. 4.5): 1" in r.output
    r = _ok(runner.invoke(app, ["profiles", "update", str(nc), "--register", reg, "--run-id", "2026"]))
    assert "nothing changed" in r.output

    r = _ok(runner.invoke(app, ["profiles", "show", "A", "--register", reg, "--json"]))
    info = json.loads(r.stdout)
    assert {"building_id", "computed", "applied", "history"} <= set(info)
    assert (info["building_id"], info["computed"], info["applied"]) == ("A", "normaal", "verhoogd")
    assert [{k: h[k] for k in ("run", "computed", "applied")} for h in info["history"]] == [
        {"run": "2025", "computed": "verhoogd", "applied": "verhoogd"},
        {"run": "2026", "computed": "normaal", "applied": "verhoogd"}]
    r = _ok(runner.invoke(app, ["profiles", "show", "A", "--register", reg]))
    assert "ratchet" in r.output

    out_csv = tmp_path / "profiles.csv"
    _ok(runner.invoke(app, ["profiles", "export", "--register", reg, "--out", str(out_csv)]))
    exp = pd.read_csv(out_csv, dtype={"building_id": str})
    assert exp.set_index("building_id")["applied_profile"].to_dict() == {
        "A": "verhoogd", "B": "licht_verhoogd", "C": "verhoogd"}

    caps = tmp_path / "cap.toml"
    caps.write_text("start_year = 2027\n[capacity]\nopname = 1\nbeoordeling = 1\nnormbesluit = 1\n"
                    "versterkingsbesluit = 1\nuitvoering = 1\n[capacity_global]\nopname = 1\n")
    for source, chart in ((str(out_csv), "--chart"), (reg, "--no-chart")):  # profile CSV or the register itself
        out = tmp_path / ("plan_csv" if source == str(out_csv) else "plan_reg")
        r = _ok(runner.invoke(app, ["plan", source, "--capacities", str(caps), "--out", str(out), chart]))
        assert "NOT feasible" in r.output and "2027 opname: planned 2, capacity 1, overload 1" in r.output
        sched = pd.read_csv(out / "schedule.csv", dtype={"building_id": str})
        assert sched[["municipality", "building_id", "opname"]].values.tolist() == [
            ["X", "A", 2027], ["X", "B", 2028], ["Y", "C", 2027]]
        assert (out / "plan.png").exists() == (chart == "--chart")
    assert (tmp_path / "plan_csv" / "plan.png").read_bytes()[:4] == b"\x89PNG"
    r = runner.invoke(app, ["plan", str(out_csv), "--capacities", str(caps), "--out", str(tmp_path / "p3"),
                            "--strict", "--no-chart"])
    assert r.exit_code == 1  # --strict: not feasible (art. 6.3)


def test_errors_exit_2_with_clear_messages(app, runner, tmp_path, make_ds):
    reg = str(tmp_path / "reg.db")
    r = runner.invoke(app, ["profiles", "show", "A", "--register", reg])
    assert r.exit_code == 2 and "does not exist; run `hra profiles update" in r.output
    nc = tmp_path / "r.nc"
    make_ds({"A": HIGH}).to_netcdf(nc)
    _ok(runner.invoke(app, ["profiles", "update", str(nc), "--register", reg]))
    r = runner.invoke(app, ["profiles", "show", "NOPE", "--register", reg, "--json"])
    assert r.exit_code == 2 and "building 'NOPE' is not in register" in r.output
    r = runner.invoke(app, ["profiles", "update", str(nc), "--register", reg, "--short", "2025-2027",
                            "--long", "2027-2030", "--run-id", "x"])
    assert r.exit_code == 2 and "overlap" in r.output
    r = runner.invoke(app, ["profiles", "update", str(tmp_path / "missing.zarr"), "--register", reg])
    assert r.exit_code == 2 and "missing.zarr does not exist" in r.output
    caps = tmp_path / "cap.csv"
    caps.write_text("scope,municipality,stage,year,capacity\ndefault,,opname,,-1\n")
    r = runner.invoke(app, ["plan", f"sqlite:///{reg}", "--capacities", str(caps), "--start-year", "2026",
                            "--out", str(tmp_path / "p")])
    assert r.exit_code == 2 and "row 2, column 'capacity': -1 is negative" in r.output


def test_optout_and_adjust_commands(app, runner, tmp_path, make_ds):
    reg = str(tmp_path / "reg.db")
    nc = tmp_path / "r.nc"
    make_ds({"A": LICHT, "B": HIGH}, connected_group={"A": "g", "B": "g"}).to_netcdf(nc)
    _ok(runner.invoke(app, ["profiles", "update", str(nc), "--register", reg]))
    parties = tmp_path / "parties.csv"
    parties.write_text("building_id,role,name\nA,owner,Ann\nB,owner,Bob\nB,resident,Bea\n")
    _ok(runner.invoke(app, ["profiles", "parties", str(parties), "--register", reg]))
    r = _ok(runner.invoke(app, ["profiles", "optout", "request", "A", "--register", reg, "--owner", "Ann",
                                "--on", "2025-03-03"]))
    assert "window 2025-03-03 .. 2025-04-14" in r.output and "notify connected_resident: Bea" in r.output
    r = runner.invoke(app, ["profiles", "optout", "decide", "1", "--register", reg, "--by", "college",
                            "--on", "2025-04-01"])
    assert r.exit_code == 2 and "from 2025-04-15 on" in r.output
    _ok(runner.invoke(app, ["profiles", "optout", "decide", "1", "--register", reg, "--by", "college",
                            "--on", "2025-04-15"]))
    _ok(runner.invoke(app, ["profiles", "adjust", "A", "--register", reg, "--profile", "verhoogd",
                            "--reason", "bouwkundige staat", "--author", "gemeente"]))
    info = json.loads(_ok(runner.invoke(app, ["profiles", "show", "A", "--register", reg, "--json"])).stdout)
    assert info["applied"] == "verhoogd" and info["computed"] == "licht_verhoogd"
    assert info["optouts"][0]["status"] == "granted" and info["in_plan"] is False
