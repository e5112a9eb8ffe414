"""Provenance a reviewer can follow (issue 15 item 5): config hash, resolved config, library versions,
git revision, per-building records, realisation branch labels, index coordinates, CF crs."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pytest

import hra
from hra.config import config_from_dict
from hra.integration.engine import compute
from hra.outputs import git_revision, library_versions
from tests.helpers import make_config

CURVES = {"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3)), "RC": ((0.4, 0.8, 1.6), 0.5, (0.005, 0.05, 0.2))}
CELL = (250_000.0, 590_000.0)
BUILDINGS = [dict(id="B1", x=CELL[0] + 3000, y=CELL[1], typology="URM"),
             dict(id="B2", x=CELL[0], y=CELL[1] + 6000, typology="RC", municipality="Loppersum"),
             dict(id="B12", x=CELL[0] - 9000, y=CELL[1], typology="URM", wierde=1)]


def _cfg(tmp_path, **kw):
    return make_config(tmp_path, cells=[(*CELL, 0.5)], curves=CURVES, buildings=BUILDINGS, years=(2025, 2026), **kw)


def _prov(ds):
    return json.loads(ds.attrs["provenance"])


def test_config_hash_leaves_out_output_and_compute(tmp_path):
    cfg = _cfg(tmp_path)
    a = hra.run(cfg.with_updates(output={"path": str(tmp_path / "a.zarr")}), progress=False)
    b = hra.run(cfg.with_updates(output={"path": str(tmp_path / "sub.nc"), "csv": str(tmp_path / "b.csv"), "overwrite": True},
                                 compute={"chunk_buildings": 1, "workers": 2}), progress=False)
    assert _prov(a)["config_sha256"] == _prov(b)["config_sha256"] == cfg.sha256()
    # what decides the numbers does change it
    assert cfg.with_updates(run={"seed": 8}).sha256() != cfg.sha256()
    assert cfg.with_updates(source={"depth_km": 4.0}).sha256() != cfg.sha256()


def test_resolved_config_reproduces_the_run(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path)
    ds = hra.run(cfg, progress=False, write=False)
    text = _prov(ds)["config_toml"]
    data = tomllib.loads(text)
    assert Path(data["source"]["rates"]).is_absolute() and Path(data["exposure"]["buildings"]).is_absolute()
    monkeypatch.chdir(tmp_path.parent)  # absolute paths: valid from anywhere
    again = config_from_dict(data, base_dir="/")
    assert again.sha256() != "" and again.resolved_toml() == text
    np.testing.assert_array_equal(compute(again).mean, ds["lpr_mean"].values)


def test_input_hashes_and_library_versions(tmp_path):
    cfg = _cfg(tmp_path)
    prov = _prov(hra.run(cfg, progress=False, write=False))
    for kind, name in (("source", "rates.csv"), ("exposure", "buildings.csv"), ("fragility", "fragility.csv")):
        assert prov["input_sha256"][f"{kind}:{name}"] == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
    libs = prov["library_versions"]
    import numba
    import scipy
    import xarray

    assert libs["numpy"] == np.__version__ and libs["scipy"] == scipy.__version__
    assert libs["numba"] == numba.__version__ and libs["xarray"] == xarray.__version__
    assert set(library_versions()) >= {"python", "dask", "pydantic", "zarr"}


def test_git_revision_only_for_a_checkout(tmp_path, monkeypatch):
    import hra.outputs as out

    root = Path(out.__file__).resolve().parent.parent
    rev = git_revision()
    if (root / ".git").exists():
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        assert rev["revision"] == head and isinstance(rev["dirty"], bool)
    # a package that is no checkout (installed copy): no revision, even inside another repository
    fake = tmp_path / "site" / "hra"
    fake.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.setattr(out, "__file__", str(fake / "outputs.py"))
    assert git_revision() is None
    prov = out.provenance("x", {}, 1, 1, True, *([__import__("datetime").datetime.now()] * 2))
    assert prov["git_revision"] is None and "git_dirty" not in prov


def test_per_building_records_and_index(tmp_path):
    cfg = _cfg(tmp_path)
    ds = hra.run(cfg.with_updates(output={"path": str(tmp_path / "r.zarr")}), progress=False)
    from hra.review.tables import open_run

    back = open_run(tmp_path / "r.zarr")
    for d in (ds, back):
        one = d.sel(building="B12")
        assert float(one["lpr_mean"].sel(year=2025)) == float(ds["lpr_mean"].values[2, 0])
        assert bool(one["wierde"]) and not bool(d.sel(building="B1")["wierde"])
        assert str(d.sel(building="B2")["municipality"].values) == "Loppersum"
        assert list(d["typology_candidate"].sel(building="B2").values) == ["RC"]
        assert d["typology_probability"].sel(building="B2").values.tolist() == [1.0]
    # the CF grid mapping: a CF reader recovers RD New
    from pyproj import CRS

    assert ds["crs"].attrs["grid_mapping_name"] == "oblique_stereographic"
    assert ds["lpr_mean"].attrs["grid_mapping"] == "crs"
    assert CRS.from_cf(dict(back["crs"].attrs)).to_epsg() == 28992


def test_realisation_branch_labels(tmp_path):
    """Enumerated tree with two source branches (rates x1, x2): LPR is linear in the rate, so the
    realisation labelled 'hi' is twice the one labelled 'lo' with the same model branches."""
    cfg = make_config(tmp_path, cells=[(*CELL, 0.5)], curves=CURVES, buildings=BUILDINGS, run={"keep_realisations": True},
                      rate_branches=[("lo", 0.5, 1.0), ("hi", 0.5, 2.0)],
                      frag_branches=[("weak", 0.3, 0.8), ("strong", 0.7, 1.25)], m_max=((4.5, 0.5), (5.5, 0.5)))
    ds = hra.run(cfg, progress=False, write=False)
    lab = ds["realisation_branch"]
    assert list(ds["node"].values[:3]) == ["source", "b_value", "m_max"]
    key = [tuple(r[1:]) for r in lab.values]
    assert len(set(map(tuple, lab.values))) == lab.shape[0] == 8
    val = ds["lpr_realisations"].sel(building="B1", year=2025).values
    for i, r in enumerate(lab.values):
        if r[0] == "hi":
            j = [k for k in range(len(key)) if key[k] == key[i] and lab.values[k][0] == "lo"][0]
            assert val[i] == pytest.approx(2.0 * val[j], rel=1e-12)
    # the weights are those of the labelled branches
    w = {"lo": 0.5, "hi": 0.5, "weak": 0.3, "strong": 0.7, "Mmax=4.5": 0.5, "Mmax=5.5": 0.5}
    expect = [np.prod([w.get(x, 1.0) for x in r]) for r in lab.values]
    np.testing.assert_allclose(ds["realisation_weight"].sel(building="B1").values, expect, rtol=1e-12)


def test_hazard_provenance_and_level_index(tmp_path):
    cfg = _cfg(tmp_path)
    hc = hra.hazard_curves(cfg, {"x": [CELL[0] + 3000], "y": [CELL[1]], "id": ["S1"]}, levels_g=[0.05, 0.1, 0.2])
    prov = _prov(hc)
    assert prov["config_sha256"] == cfg.sha256() and "config_toml" in prov
    assert prov["input_sha256"]["source:rates.csv"] == hashlib.sha256((tmp_path / "rates.csv").read_bytes()).hexdigest()
    assert float(hc["rate_mean"].sel(site="S1", level=0.1, year=2025).values.item()) == float(hc["rate_mean"].values[0, 0, 0, 1])
