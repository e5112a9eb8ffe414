"""The one-building LPR (hra.building_lpr) and the hazard curves with the model = "groningen-v7" preset.

Two defects of the review: building_lpr rebuilt the config with a temporary [fragility] curves
file, which the preset refuses, and left its temporary folder behind; hazard_curves handed the
engine's tagged ("v6-zip", path) zone source to the polygon assignment.
"""

from __future__ import annotations

import tempfile
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import hra
from hra.chain import make_gmm, zone_source
from hra.config import config_from_dict
from hra.inputs.edb import assign_zones_v6
from tests.helpers import write_rates

pytestmark = pytest.mark.models

#: A building near Loppersum and its own fragility on AvgSa (the V7 intensity measure).
X, Y = 245_300.0, 596_200.0
FRAG = SimpleNamespace(median_g=(0.12, 0.25, 0.5), beta=(0.45, 0.45, 0.45), p_death_inside=(0.0, 0.02, 0.2),
                       p_death_outside=(0.0, 0.01, 0.05), imt="AvgSa")


def _common(tmp_path, model_dir) -> dict:
    rates = write_rates(tmp_path / "rates.csv", [(X + 1500.0 * i, Y - 1000.0 * j, 0.02) for i in range(-2, 3) for j in range(-1, 2)],
                        years=(2025, 2026))
    return {
        "run": {"years": [2025, 2026], "seed": 11, "realisations": 40, "quantiles": [0.5, 0.9]},
        "source": {"rates": str(rates), "cell_size_m": 1000.0, "m_min": 1.5, "depth_km": 3.0, "max_distance_km": 20.0,
                   "distance_nodes": 16, "magnitude": {"b_value": 1.0, "m_max": [{"value": 5.0, "weight": 1.0}]}},
        "compute": {"executor": "synchronous", "progress": False},
    }


@pytest.fixture(scope="module")
def preset_cfg(tmp_path_factory, model_dir):
    d = tmp_path_factory.mktemp("preset")
    data = _common(d, model_dir)
    pd.DataFrame([dict(id="A", x=X, y=Y, typology="URM1F_B")]).to_csv(d / "buildings.csv", index=False)
    data.update({"model": "groningen-v7", "ground_motion": {"quadrature": "fast", "model_dir": str(model_dir)},
                 "exposure": {"buildings": str(d / "buildings.csv")}})
    return config_from_dict(data, base_dir=d)


def test_building_lpr_with_the_v7_preset_equals_a_run_of_the_building(tmp_path, model_dir, preset_cfg, monkeypatch):
    """hra.building_lpr on a preset config equals hra.run of a one-building exposure file (no zone
    column) with the building's own curves as the fragility (GMM V7 named in full, presence inside
    0.99 as the preset's FCM), and leaves no temporary folder behind."""
    tmp_root = tmp_path / "tmp"
    tmp_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_root))
    out = hra.building_lpr(preset_cfg, X, Y, FRAG)
    assert list(tmp_root.iterdir()) == []  # no hra-building-* folder, nothing written

    d = tmp_path / "ref"
    d.mkdir()
    rows = [dict(typology="building", state=f"CS{k + 1}", median_g=FRAG.median_g[k], beta=FRAG.beta[k],
                 p_death=FRAG.p_death_inside[k], p_death_outside=FRAG.p_death_outside[k]) for k in range(3)]
    pd.DataFrame(rows).to_csv(d / "fragility.csv", index=False)
    pd.DataFrame([dict(id="building", x=X, y=Y, typology="building")]).to_csv(d / "buildings.csv", index=False)
    ref_data = _common(d, model_dir)
    ref_data.update({"ground_motion": {"model": "groningen-v7", "quadrature": "fast", "model_dir": str(model_dir)},
                     "fragility": {"curves": str(d / "fragility.csv"), "presence_inside": 0.99},
                     "exposure": {"buildings": str(d / "buildings.csv")}})
    ds = hra.run(config_from_dict(ref_data, base_dir=d), progress=False, write=False)

    np.testing.assert_array_equal(out["year"], [2025, 2026])
    assert np.all(np.isfinite(out["lpr_mean"])) and out["lpr_mean"].min() > 0
    np.testing.assert_allclose(out["lpr_mean"], ds["lpr_mean"].values[0], rtol=1e-12)
    np.testing.assert_allclose(out["lpr_p50"], ds["lpr_p50"].values[0], rtol=1e-12)
    np.testing.assert_allclose(out["lpr_p90"], ds["lpr_p90"].values[0], rtol=1e-12)
    assert out["lpr_p90"][0] > out["lpr_p50"][0]
    # the zone the engine found is that of the V6 zonation
    zonation = zone_source(preset_cfg)
    assert int(ds["zone"].values[0]) == int(assign_zones_v6([X], [Y], zonation.path, make_gmm(preset_cfg).zones)[0])


def test_npr_risk_verdict_with_the_v7_preset(preset_cfg):
    from npr9998 import BuildingFragility
    from npr9998.assess import risk_verdict

    frag = BuildingFragility(median_g=FRAG.median_g, beta=FRAG.beta, p_death_inside=FRAG.p_death_inside,
                             p_death_outside=FRAG.p_death_outside, imt="AvgSa")
    verdict = risk_verdict(preset_cfg, X, Y, frag)
    assert np.all(np.isfinite(np.asarray(verdict.lpr_mean))) and np.all(np.asarray(verdict.lpr_mean) > 0)


def test_hazard_curves_with_the_v7_preset_find_the_zones(model_dir, preset_cfg, caplog):
    """Sites without a zone column get their zones from the V6 zonation (one ZoneSource for the
    engine and the hazard alike); the curves are finite and decreasing."""
    cfg = preset_cfg
    sites = pd.DataFrame({"id": ["loppersum", "groningen-city"], "x": [X, 233_500.0], "y": [Y, 582_000.0]})
    with caplog.at_level("INFO", logger="hra"):
        hc = hra.hazard_curves(cfg, sites, imts=["AvgSa"], levels_g=[0.01, 0.05, 0.2])
    msgs = [r.getMessage() for r in caplog.records]  # progress per (zone, IM) table, with an ETA
    assert any(m.startswith("hazard tables (zone x IM): 1/2 (") and "ETA" in m for m in msgs), msgs
    assert any(m.startswith("hazard tables (zone x IM): 2/2 (") for m in msgs), msgs
    zonation = zone_source(cfg)
    assert zonation.kind == "v6-zip"
    gmm = make_gmm(cfg)
    expected = assign_zones_v6(sites["x"].to_numpy(), sites["y"].to_numpy(), zonation.path, gmm.zones)
    np.testing.assert_array_equal(hc["zone"].values, expected)
    assert np.all(np.isin(expected, gmm.zones))
    for var in ("rate_mean", "rate_p50", "rate_p90"):
        vals = hc[var].values  # (site, imt, year, level)
        assert np.all(np.isfinite(vals)) and np.all(vals[:, :, :, 0] > 0), var
        assert np.all(np.diff(vals, axis=-1) <= 0), var


@pytest.fixture(scope="module")
def v7_invariance(tmp_path_factory, model_dir):
    """A small V7 case (fast quadrature) over two zones, one building on a wierde, and its serial
    result with one building per chunk (the reference of :func:`test_v7_bit_identical_across_executors`)."""
    d = tmp_path_factory.mktemp("v7inv")
    data = _common(d, model_dir)
    data["source"].update({"distance_nodes": 8, "max_distance_km": 12.0})  # small tables: a fast test
    # zones 1032 and 2111 (V6 zonation), the third building on a wierde
    xs = [X, X + 4000.0, X + 4000.0]
    ys = [Y, Y - 3000.0, Y - 3000.0]
    typ = ["URM1F_B", "URM4L", "URM4L"]
    pd.DataFrame([dict(id=f"b{i}", x=x, y=y, typology=t, wierde=int(i == 2))
                  for i, (x, y, t) in enumerate(zip(xs, ys, typ))]).to_csv(d / "buildings.csv", index=False)
    data["run"]["keep_realisations"] = True
    data["compute"]["table_store"] = False  # every run computes its tables (none read from a store)
    data.update({"model": "groningen-v7", "ground_motion": {"quadrature": "fast", "model_dir": str(model_dir)},
                 "exposure": {"buildings": str(d / "buildings.csv")}})
    cfg = config_from_dict(data, base_dir=d)
    serial = hra.run(cfg.with_updates(compute={"executor": "synchronous", "chunk_buildings": 1}), progress=False, write=False)
    return cfg, serial


@pytest.mark.parametrize("executor, workers, chunk", [("threads", 2, 2), ("processes", 2, 3)])
def test_v7_bit_identical_across_executors(v7_invariance, executor, workers, chunk, caplog):
    """The V7 preset gives the serial result to the bit whatever runs the tasks (2 threads sharing
    the model objects and their caches, 2 worker processes each with its own copy), and whatever
    the chunk size: each zone's tables are one task whose sums run in a fixed order (the physical
    GMM branches sorted, :func:`hra.integration.engine.physical_death_tables`), results are put
    back in input order, and each building's LPR comes from its own chunk row alone."""
    cfg, serial = v7_invariance
    with caplog.at_level("INFO", logger="hra"):
        other = hra.run(cfg.with_updates(compute={"executor": executor, "workers": workers, "chunk_buildings": chunk}),
                        progress=False, write=False)
    lines = [r.getMessage() for r in caplog.records]
    if executor == "threads":  # progress inside the zone tasks: per GMM branch block, with an ETA
        n = make_gmm(cfg).tree.n_combinations
        label = f"tables (2 zones x {n} GMM branch blocks): "
        steps = [m for m in lines if m.startswith(label)]
        assert n > 1 and len(steps) >= 5 and "ETA" in steps[0] and steps[-1].startswith(f"{label}{2 * n}/{2 * n} ("), lines
    else:  # worker processes: a line per finished zone
        assert any(m.startswith("tables (zones): 2/2 (") for m in lines), lines
    assert np.unique(serial["zone"].values).size == 2  # several table tasks
    for v in ("lpr_mean", "lpr_p50", "lpr_p90", "lpr_realisations"):
        np.testing.assert_array_equal(serial[v].values, other[v].values)
    assert serial["lpr_mean"].values.min() > 0
