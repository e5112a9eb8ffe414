"""The npr9998 command line (typer.testing.CliRunner), writing into tmp_path."""

from __future__ import annotations

import csv
import json
import sys
import types

import pytest
from typer.testing import CliRunner

from npr9998.cli import app

runner = CliRunner()

BUILDING = """
[building]
id = "B-001"
consequence_class = "CC2"
structural_system = "urm"
floor_area_m2 = 180.0
x_rd = 233000.0
y_rd = 582000.0

[hazard]
ag_s_g = 0.2
p = 2.5
t_b_s = 0.1
t_c_s = 0.4
t_d_s = 2.0

[capacity]
pushover = "pushover.csv"
masses_t = [50.0, 40.0]
mode_shape = [0.5, 1.0]
level_heights_m = [3.0, 6.0]
displacement_capacity = "ultimate"
"""

PUSHOVER = "roof_displacement_m,base_shear_kn\n0,0\n0.012,240\n0.03,300\n0.06,300\n"
HAZARD = "location_id,return_period_yr,ag_s_g,p,t_b_s,t_c_s,t_d_s\nL7,475,0.1,2.5,0.1,0.4,2.0\nL7,2475,0.2,2.5,0.1,0.4,2.0\n"

BATCH_HEADER = "building_id,consequence_class,typology,structural_system,floor_area_m2,hazard_file,location_id,ag_s_g,p,t_b_s,t_c_s,t_d_s,pushover,masses_t,mode_shape,level_heights_m,displacement_capacity,method,base_shear_capacity_kn,total_mass_t,n_storeys,period_s,x_rd,y_rd\n"
BATCH_ROWS = [
    "P1,CC2,,urm,180,hazard.csv,L7,,,,,,pushover.csv,50;40,0.5;1.0,3;6,ultimate,n2,,,,,233000,582000",
    "T1,CC1B,urm_terraced_pre1920,,110,,,0.2,2.5,0.1,0.4,2.0,,,,,,csm,,,,,233100,582100",
    "L1,CC2,,urm,,,,0.2,2.5,0.1,0.4,2.0,,,,,,lateral_force,300,90,2,0.3,233200,582200",
]


def _write(tmp_path, rows=BATCH_ROWS):
    (tmp_path / "pushover.csv").write_text(PUSHOVER)
    (tmp_path / "hazard.csv").write_text(HAZARD)
    (tmp_path / "building.toml").write_text(BUILDING)
    (tmp_path / "batch.csv").write_text(BATCH_HEADER + "\n".join(rows) + "\n")


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_assess_writes_json_csv_and_report(tmp_path):
    _write(tmp_path)
    out = tmp_path / "out"
    res = runner.invoke(app, ["assess", str(tmp_path / "building.toml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "PROVISIONAL" in res.output
    doc = json.loads((out / "results.json").read_text())
    assert doc["schema"] == "npr9998-results/1" and doc["n_buildings"] == 1 and doc["provisional"] is True
    b = doc["buildings"][0]
    # hand-worked N2 example of test_npr9998_methods.py
    assert b["unity_check"] == pytest.approx(0.396437, rel=1e-5)
    assert b["assessment"]["d_t_m"] == pytest.approx(0.0237862, rel=1e-5)
    assert b["verdict"] == "voldoet" and b["normbesluit"]["category"] == ""
    assert b["tables"]["edition"] and b["tables"]["table_version"] and len(b["tables"]["tables_sha256"]) == 64
    assert len(b["fragility"]["fragility"]["median_g"]) == 3
    rows = _csv(out / "results.csv")
    assert list(rows[0])[:8] == ["building_id", "verdict", "unity_check", "category", "budget_low", "budget_high", "edition", "table_version"]
    assert rows[0]["building_id"] == "B-001" and float(rows[0]["unity_check"]) == pytest.approx(0.396437, rel=1e-5)
    rep = out / "reports" / "B-001"
    text = (rep / "report.md").read_text()
    assert "voldoet" in text and "NOT A NORMBESLUIT" in text and "0.3924" in text  # T*
    for png in ("spectrum.png", "adrs.png"):
        assert (rep / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.rglob("*.tmp-*"))  # atomic writes leave nothing behind


def test_batch_three_methods(tmp_path):
    _write(tmp_path)
    out = tmp_path / "out"
    res = runner.invoke(app, ["batch", str(tmp_path / "batch.csv"), "--out", str(out), "--no-report"])
    assert res.exit_code == 0, res.output
    rows = {r["building_id"]: r for r in _csv(out / "results.csv")}
    assert set(rows) == {"P1", "T1", "L1"}
    assert float(rows["P1"]["unity_check"]) == pytest.approx(0.396437, rel=1e-5)  # hazard file, 2475 yr row
    assert rows["T1"]["method"] == "capacity spectrum" and rows["T1"]["typology"] == "urm_terraced_pre1920"
    assert float(rows["L1"]["unity_check"]) == pytest.approx(0.980665, rel=1e-6)  # hand value of the lateral force test
    assert not (out / "reports").exists()
    doc = json.loads((out / "results.json").read_text())
    t1 = next(b for b in doc["buildings"] if b["building_id"] == "T1")
    assert t1["capacity"]["source"].startswith("catalogue typology urm_terraced_pre1920")


def test_batch_bad_rows_are_all_reported_with_row_and_column(tmp_path):
    rows = list(BATCH_ROWS)
    rows[1] = rows[1].replace("CC1B", "CC9")
    rows[2] = rows[2].replace(",0.3,", ",fast,")
    _write(tmp_path, rows)
    res = runner.invoke(app, ["batch", str(tmp_path / "batch.csv"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    # row 3: unknown class is found when the row is assessed; row 4: not a number, found on reading
    assert "row 4" in res.output and "'period_s'" in res.output and "not a number" in res.output
    rows[2] = BATCH_ROWS[2]
    _write(tmp_path, rows)
    res = runner.invoke(app, ["batch", str(tmp_path / "batch.csv"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "CC9" in res.output and "row 3" in res.output and "consequence_class" in res.output
    assert not (tmp_path / "out" / "results.csv").exists()


def test_batch_keep_going_records_errors(tmp_path):
    rows = list(BATCH_ROWS)
    rows[1] = rows[1].replace("urm_terraced_pre1920", "igloo")
    _write(tmp_path, rows)
    out = tmp_path / "out"
    res = runner.invoke(app, ["batch", str(tmp_path / "batch.csv"), "--out", str(out), "--no-report", "--keep-going"])
    assert res.exit_code == 2
    assert {r["building_id"] for r in _csv(out / "results.csv")} == {"P1", "L1"}
    errs = _csv(out / "errors.csv")
    assert errs[0]["building_id"] == "T1" and errs[0]["row"] == "3" and "igloo" in errs[0]["error"]


def test_assess_bad_building_file(tmp_path):
    _write(tmp_path)
    (tmp_path / "building.toml").write_text(BUILDING.replace("mode_shape = [0.5, 1.0]", "mode_shape = [0.5, 1.0]\nmodeshape = [1]"))
    res = runner.invoke(app, ["assess", str(tmp_path / "building.toml"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "capacity.modeshape" in res.output and "building.toml" in res.output
    (tmp_path / "building.toml").write_text(BUILDING.replace("masses_t = [50.0, 40.0]", "masses_t = [50.0, -40.0]"))
    res = runner.invoke(app, ["assess", str(tmp_path / "building.toml"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "storey mass 2" in res.output


def test_risk_verdict_only_with_hra_config(tmp_path, monkeypatch):
    _write(tmp_path)
    seen = {}

    def building_lpr(cfg, x_rd, y_rd, fragility, zone=None):
        seen["args"] = (cfg, x_rd, y_rd, fragility.imt)
        return {"year": [2025, 2026], "lpr_mean": [2e-6, 3e-6], "lpr_p50": [1e-6, 2e-6], "lpr_p90": [5e-6, 2e-5]}

    fake = types.ModuleType("hra")
    fake.load_config = lambda path: {"config": str(path)}
    fake.building_lpr = building_lpr
    monkeypatch.setitem(sys.modules, "hra", fake)
    out = tmp_path / "out"
    res = runner.invoke(app, ["assess", str(tmp_path / "building.toml"), "--out", str(out), "--no-report"])
    assert res.exit_code == 0 and "args" not in seen  # no --hra-config: no risk verdict
    (tmp_path / "run.toml").write_text("[run]\n")
    res = runner.invoke(app, ["assess", str(tmp_path / "building.toml"), "--out", str(out), "--hra-config", str(tmp_path / "run.toml"),
                                "--overwrite"])
    assert res.exit_code == 0, res.output
    assert seen["args"] == ({"config": str(tmp_path / "run.toml")}, 233000.0, 582000.0, "AvgSa")
    b = json.loads((out / "results.json").read_text())["buildings"][0]
    assert b["risk"]["lpr_mean_max"] == pytest.approx(3e-6) and b["risk"]["classification"] == "licht verhoogd"
    row = _csv(out / "results.csv")[0]
    assert float(row["lpr_mean_max"]) == pytest.approx(3e-6) and row["risk_voldoet"] == "true"
    assert "Risk (HRA engine)" in (out / "reports" / "B-001" / "report.md").read_text()


def test_tables_command(tmp_path):
    res = runner.invoke(app, ["tables"])
    assert res.exit_code == 0 and "provisional: True" in res.output and "CC1A" in res.output
    (tmp_path / "t.toml").write_text('edition = "x"\n')
    res = runner.invoke(app, ["tables", str(tmp_path / "t.toml")])
    assert res.exit_code == 2 and "add this key" in res.output


def test_assess_from_hra_needs_config_and_one_hazard_form(tmp_path):
    _write(tmp_path)
    b = BUILDING.replace("[hazard]\nag_s_g = 0.2\np = 2.5\nt_b_s = 0.1\nt_c_s = 0.4\nt_d_s = 2.0\n", "[hazard]\nfrom_hra = true\n")
    assert "from_hra" in b
    (tmp_path / "building.toml").write_text(b)
    res = runner.invoke(app, ["assess", str(tmp_path / "building.toml"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "--hra-config" in res.output and "Traceback" not in res.output
    (tmp_path / "building.toml").write_text(BUILDING.replace("[hazard]\n", "[hazard]\nfrom_hra = true\n"))
    res = runner.invoke(app, ["assess", str(tmp_path / "building.toml"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "exactly one" in res.output
