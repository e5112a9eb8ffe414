"""The top-level model preset (``model = "groningen-v7"``) and the V7 demo region.

The preset tests need no model tables. The demo tests that write and read V7 inputs need the
public tables (``HRA_MODEL_DIR``) and skip without them; ``hra demo --model groningen-v7``
without a model directory must fail with a message that says how to get them.
"""

from __future__ import annotations

import logging
import tomllib

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hra.config import Config, ConfigError, config_from_dict, load_config

BASE = {
    "run": {"years": [2025], "seed": 1},
    "source": {"rates": "rates.csv", "magnitude": {"m_max": [{"value": 5.0, "weight": 1.0}]}},
    "exposure": {"buildings": "buildings.csv"},
}


# ------------------------------------------------------------------------------------------
# the preset
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset, gmm, fcm", [("groningen-v7", "groningen-v7", "fcm-v7"),
                                              ("groningen-v6", "groningen-v6", "fcm-v6")])
def test_preset_fills_in_ground_motion_and_fragility(preset, gmm, fcm):
    cfg = config_from_dict({**BASE, "model": preset}, check_paths=False)
    explicit = config_from_dict({**BASE, "ground_motion": {"model": gmm}, "fragility": {"model": fcm}}, check_paths=False)
    assert cfg.model == preset
    assert cfg.ground_motion == explicit.ground_motion and cfg.fragility == explicit.fragility
    assert cfg.ground_motion.quadrature == "standard" and cfg.ground_motion.rupture == "finite"
    assert cfg.fragility.curves is None and cfg.fragility.presence_inside is None


def test_preset_merges_sections_without_a_model_and_survives_updates(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('model = "groningen-v7"\n[run]\nyears = [2025]\n[source]\nrates = "r.csv"\n'
                    '[source.magnitude]\nm_max = [{ value = 5.0, weight = 1.0 }]\n[exposure]\nbuildings = "b.csv"\n'
                    '[ground_motion]\nquadrature = "fast"\nmodel_dir = "tables"\n'
                    '[fragility]\npresence_inside = 0.9\n')
    for name in ("r.csv", "b.csv"):  # the paths must exist when the file is loaded
        (tmp_path / name).write_text("x\n")
    (tmp_path / "tables").mkdir()
    cfg = load_config(toml)
    assert cfg.ground_motion.model == "groningen-v7" and cfg.ground_motion.quadrature == "fast"
    assert cfg.resolve(cfg.ground_motion.model_dir) == tmp_path / "tables"
    assert cfg.fragility.model == "fcm-v7" and cfg.fragility.presence_inside == 0.9
    # the same model named in the section is no conflict
    same = config_from_dict({**BASE, "model": "groningen-v7", "ground_motion": {"model": "groningen-v7"},
                             "fragility": {"model": "fcm-v7"}}, check_paths=False)
    assert same.ground_motion.model == "groningen-v7"
    # a copy with updates is validated again through the preset
    upd = cfg.with_updates(run={"realisations": 10}, ground_motion={"rupture": "point"})
    assert upd.model == "groningen-v7" and upd.ground_motion.rupture == "point" and upd.ground_motion.quadrature == "fast"
    assert upd.sha256() != cfg.sha256()
    assert Config.model_validate(cfg.model_dump()) == cfg


@pytest.mark.parametrize("section, key, text", [
    ({"ground_motion": {"model": "demo"}}, "[ground_motion.model]", '[ground_motion] model = "demo"'),
    ({"ground_motion": {"model": "groningen-v6"}}, "[ground_motion.model]", '"groningen-v6"'),
    ({"fragility": {"model": "fcm-tno2020"}}, "[fragility.model]", '[fragility] model = "fcm-tno2020"'),
    ({"fragility": {"curves": "fragility.csv"}}, "[fragility.curves]", "fragility.csv"),
])
def test_preset_conflicting_sections_are_refused(section, key, text):
    with pytest.raises(ConfigError) as err:
        config_from_dict({**BASE, "model": "groningen-v7", **section}, source="run.toml")
    msg = str(err.value)
    assert msg.startswith("invalid configuration in run.toml:")
    assert f"key {key}" in msg and text in msg
    assert 'top-level model = "groningen-v7"' in msg and "fix: remove" in msg


def test_preset_unknown_name_and_missing_sections():
    with pytest.raises(ConfigError, match=r"key \[model\]: Input should be 'groningen-v7', 'groningen-v6' or 'psdra-2024'"):
        config_from_dict({**BASE, "model": "groningen-v5"}, check_paths=False)
    with pytest.raises(ConfigError) as err:
        config_from_dict(BASE)
    assert 'key [ground_motion]: Field required; fix: add this section, or a top-level model = "groningen-v7"' in str(err.value)


def test_schema_documents_the_preset():
    from hra.cli import schema_markdown

    schema = Config.model_json_schema()
    assert "model" in schema["properties"]
    assert "ground_motion" not in schema["required"] and "fragility" not in schema["required"]
    assert {"run", "source", "exposure"} <= set(schema["required"])
    md = schema_markdown(schema)
    assert md.startswith("#### top-level keys")
    assert '| `model` | "groningen-v7" \\| "groningen-v6" \\| "psdra-2024" or none | none |' in md
    assert "#### `[model]`" not in md


# ------------------------------------------------------------------------------------------
# the V7 demo: no model tables
# ------------------------------------------------------------------------------------------


@pytest.fixture()
def _restore_logging():
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers)) for n in ("hra", "fragility", "npr9998")}
    yield
    for n, (level, handlers) in saved.items():
        logging.getLogger(n).setLevel(level)
        logging.getLogger(n).handlers[:] = handlers


def _output(result) -> str:
    try:
        err = result.stderr
    except (ValueError, AttributeError):
        err = ""
    return result.output + (err or "")


def test_cli_demo_v7_without_model_dir_says_how_to_get_the_tables(tmp_path, monkeypatch, _restore_logging):
    from hra.cli import app

    monkeypatch.delenv("HRA_MODEL_DIR", raising=False)
    out = tmp_path / "demo" / "risk.zarr"
    res = CliRunner().invoke(app, ["demo", "--model", "groningen-v7", "-n", "50", "--out", str(out)],
                             catch_exceptions=False)
    text = " ".join(_output(res).split())
    assert res.exit_code == 2, text
    assert "HRA_MODEL_DIR" in text and "hra models fetch" in text and "--model-dir" in text
    assert "Traceback" not in text
    assert not out.parent.exists()  # failed before writing anything
    # --model-dir is refused for the illustrative demo models
    res = CliRunner().invoke(app, ["demo", "--model-dir", str(tmp_path), "-n", "50", "--out", str(out)])
    assert res.exit_code == 2 and "--model-dir" in _output(res)


def test_demo_config_v7_without_model_dir_raises(tmp_path, monkeypatch):
    import hra
    from hra.inputs.modeldata import ModelDataError

    monkeypatch.delenv("HRA_MODEL_DIR", raising=False)
    with pytest.raises(ModelDataError, match="HRA_MODEL_DIR") as err:
        hra.demo_config(n_buildings=20, directory=tmp_path / "d", model="groningen-v7")
    assert "hra models fetch" in str(err.value)
    assert not (tmp_path / "d").exists()
    with pytest.raises(ModelDataError, match="does not hold the V7 tables"):
        hra.demo_config(n_buildings=20, directory=tmp_path / "d", model="groningen-v7", model_dir=tmp_path)
    with pytest.raises(ValueError, match="not a demo model"):
        hra.demo_config(n_buildings=20, directory=tmp_path / "d", model="groningen-v5")


def test_v7_demo_exposure_is_deterministic_and_shares_the_demo_locations():
    from hra.demo.exposure import synthetic_exposure
    from hra.demo.groningen import DEMO_TO_V6_ZONE, V7_TYPOLOGIES, synthetic_exposure_groningen

    a = synthetic_exposure_groningen(3000, seed=3)
    pd.testing.assert_frame_equal(a, synthetic_exposure_groningen(3000, seed=3))
    assert not a.equals(synthetic_exposure_groningen(3000, seed=4))
    base = synthetic_exposure(3000, seed=3)
    assert (a["id"] == base["id"]).all() and np.array_equal(a["x"], base["x"]) and np.array_equal(a["y"], base["y"])
    assert (a["zone"].to_numpy() == base["zone"].map(DEMO_TO_V6_ZONE).to_numpy()).all()
    systems = a[[f"system_{i}" for i in range(1, 11)]].to_numpy()
    probs = a[[f"s_probability_{i}" for i in range(1, 11)]].to_numpy()
    assert set(systems[systems != ""]) <= set(V7_TYPOLOGIES)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    assert np.all((systems != "") == (probs > 0))
    cents = probs * 100
    np.testing.assert_allclose(cents, np.round(cents), atol=1e-9)  # whole percentages
    n_cand = (systems != "").sum(axis=1)
    assert n_cand.min() == 1 and n_cand.max() >= 8 and 0.35 < (n_cand > 1).mean() < 0.55
    assert np.all(probs[:, 0] == probs.max(axis=1))  # the primary class first
    for row in systems:  # no class twice in one building
        named = row[row != ""]
        assert len(set(named)) == len(named)
    assert 0.01 < a["wierde"].mean() < 0.04


# ------------------------------------------------------------------------------------------
# the V7 demo with the model tables
# ------------------------------------------------------------------------------------------


def test_demo_zone_mapping_is_the_v6_zone_at_each_seed_point(model_dir, zonation_zip, gmm_v7):
    from hra.demo.groningen import DEMO_TO_V6_ZONE
    from hra.demo.region import _ZONES
    from hra.inputs.edb import assign_zones_v6
    from hra.inputs.modeldata import load_gmm_v7_tables

    x = np.array([z[2] for z in _ZONES])
    y = np.array([z[3] for z in _ZONES])
    found = assign_zones_v6(x, y, zonation_zip, gmm_v7.zones)
    assert dict(zip([z[0] for z in _ZONES], found.tolist())) == DEMO_TO_V6_ZONE
    zones = np.array(list(DEMO_TO_V6_ZONE.values()))
    assert len(set(zones)) == 8 and np.isin(zones, gmm_v7.zones).all()
    # distinct site response: the linear AF at 10 km and the non-linearity differ between the 8 zones
    af = pd.read_csv(model_dir / "V7" / "gmpeSurfaceAmplificationModel_20211010_v7.csv", encoding="utf-8-sig")
    af = af[af["Zone"].isin(zones)]
    lin = (af["a0"] + af["a1"] * np.log(10.0)).groupby(af["Zone"]).mean()
    assert lin.round(3).nunique() == 8 and lin.max() - lin.min() > 0.3
    assert af.groupby("Zone")["f3"].mean().round(4).nunique() == 8
    assert load_gmm_v7_tables(model_dir) is not None


def test_v7_typologies_are_the_fcm_classes(fcm_v7):
    from hra.demo.groningen import V7_TYPOLOGIES

    assert tuple(fcm_v7.typologies) == V7_TYPOLOGIES


@pytest.fixture(scope="module")
def v7_demo(tmp_path_factory):
    import hra
    from hra.inputs.modeldata import model_dir_or_skip

    model_dir_or_skip()
    d = tmp_path_factory.mktemp("v7demo")
    cfg = hra.demo_config(n_buildings=3000, seed=2, directory=d, model="groningen-v7")
    return d, cfg


def test_demo_config_v7_writes_valid_inputs(v7_demo, gmm_v7, fcm_v7):
    from hra.demo.groningen import DEMO_TO_V6_ZONE
    from hra.demo.source import YEARS
    from hra.chain import prepare
    from hra.inputs.exposure import read_exposure

    d, cfg = v7_demo
    toml = tomllib.loads((d / "run.toml").read_text())
    assert toml["model"] == "groningen-v7" and "ground_motion" not in toml and "fragility" not in toml
    assert not (d / "fragility.csv").exists()
    assert [b["value"] for b in toml["source"]["magnitude"]["m_max"]] == [4.0, 4.5, 5.0, 5.5, 6.0, 6.5]
    assert cfg.model == "groningen-v7" and cfg.ground_motion.model == "groningen-v7" and cfg.fragility.model == "fcm-v7"
    assert cfg.run.years == list(YEARS) and cfg.run.realisations == 1000

    b = read_exposure(d / "buildings.csv", known_typologies=list(fcm_v7.typologies))  # every class a V7 class
    assert len(b) == 3000
    systems = b[[c for c in b.columns if c.startswith("system_")]].to_numpy()
    assert set(systems[systems != ""]) <= set(fcm_v7.typologies)
    assert len(set(systems[systems != ""])) >= 30
    assert set(b["zone"]) == set(DEMO_TO_V6_ZONE.values()) and np.isin(b["zone"], gmm_v7.zones).all()
    assert set(b["wierde"]) == {True, False}

    prep = prepare(cfg)
    assert prep.gmm.name == "groningen-v7" and prep.fragility.name.startswith("fcm-v7")
    assert {z for z, _ in prep.sites} == set(DEMO_TO_V6_ZONE.values()) and len(prep.sites) <= 16
    assert {w for _, w in prep.sites} == {True, False}
    sizes = {n.name: n.size for n in prep.tree.nodes}
    assert sizes["source"] == 2 and sizes["m_max"] == 6
    assert (sizes["gmm_tau"], sizes["gmm_phi_ss"], sizes["gmm_s2s"]) == (3, 2, 3)
    assert (sizes["fragility"], sizes["consequence"]) == (3, 3)


def test_demo_config_v7_with_explicit_model_dir(tmp_path, model_dir, monkeypatch):
    import hra

    monkeypatch.delenv("HRA_MODEL_DIR", raising=False)
    cfg = hra.demo_config(n_buildings=30, directory=tmp_path, model="groningen-v7", model_dir=model_dir)
    toml = tomllib.loads((tmp_path / "run.toml").read_text())
    assert toml["ground_motion"] == {"model_dir": str(model_dir.resolve())}
    assert cfg.ground_motion.model == "groningen-v7" and cfg.resolve(cfg.ground_motion.model_dir) == model_dir.resolve()


@pytest.mark.slow
def test_v7_demo_tiny_end_to_end(v7_demo, tmp_path):
    """A handful of demo buildings in one zone, one year, fast quadrature, point rupture."""
    import json

    import hra
    from hra.config import load_config

    d, _ = v7_demo
    b = pd.read_csv(d / "buildings.csv", keep_default_na=False)
    pick = b[(b["zone"] == 2109) & (b["wierde"].astype(str).isin(["0", "False"]))].head(5)
    assert len(pick) == 5
    pick.to_csv(tmp_path / "buildings.csv", index=False)
    (tmp_path / "rates.csv").write_bytes((d / "rates.csv").read_bytes())
    (tmp_path / "run.toml").write_text((d / "run.toml").read_text())
    cfg = load_config(tmp_path / "run.toml").with_updates(
        run={"years": [2025], "realisations": 20},
        source={"distance_nodes": 24, "magnitude": {"b_value": 1.0, "m_max": [{"value": 5.0, "weight": 1.0}]}},
        ground_motion={"quadrature": "fast", "rupture": "point"},
        compute={"workers": 1, "progress": False},
    )
    ds = hra.run(cfg, progress=False, write=False)
    assert list(ds["building_id"].values) == list(pick["id"].astype(str))
    assert set(ds["zone"].values) == {2109}
    mean, p50, p90 = (ds[v].values[:, 0] for v in ("lpr_mean", "lpr_p50", "lpr_p90"))
    assert np.all(np.isfinite(mean)) and np.all(mean > 0) and np.all(p90 >= p50)
    prov = json.loads(ds.attrs["provenance"])
    assert prov["ground_motion_model"] == "groningen-v7" and prov["fragility_model"].startswith("fcm-v7")
