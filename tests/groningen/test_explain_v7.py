"""hra.explain and [logic_tree] with the public GMM V7 x FCM V7 (example EDB buildings, one source
cell, point ruptures, fast quadrature): the splits sum to the run's mean, chimneys and outside
death appear, and fixing / re-weighting the magnitude-dependent median node acts at every magnitude."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hra
from hra.inputs.modeldata import model_dir_or_skip
from hra.integration.engine import compute

EDB = "tests/res/example_EDB.csv"
SUMMING = ("magnitude", "magnitude_distance", "source_cell", "typology", "state", "inside_outside")


@pytest.fixture(scope="module")
def v7_cfg(tmp_path_factory):
    from hra.config import config_from_dict

    model_dir = model_dir_or_skip()
    d = tmp_path_factory.mktemp("v7x")
    edb = pd.read_csv(model_dir.parent.parent / EDB, encoding="utf-8-sig")
    site = edb[(edb.point_x == 234603) & (edb.point_y == 572797)].head(3).copy()
    site.loc[site.index[0], "system_1"] = "RC3L"  # a typology with the chimney (direct outside) term
    site.to_csv(d / "edb.csv", index=False)
    pd.DataFrame([dict(x=234_500.0, y=573_500.0, year=2025, rate=0.2),
                  dict(x=236_500.0, y=571_500.0, year=2025, rate=0.1)]).to_csv(d / "rates.csv", index=False)
    return config_from_dict({
        "model": "groningen-v7",
        "run": {"years": [2025], "seed": 1, "realisations": 40},
        "source": {"rates": "rates.csv", "distance_nodes": 24,
                   "magnitude": {"b_value": 1.0, "m_max": [{"value": 4.5, "weight": 0.5}, {"value": 5.5, "weight": 0.5}]}},
        "ground_motion": {"model_dir": str(model_dir), "rupture": "point", "quadrature": "fast"},
        "exposure": {"buildings": "edb.csv"},
        "compute": {"workers": 1, "scheduler": "synchronous", "progress": False},
    }, base_dir=d)


@pytest.mark.slow
def test_v7_explain_sums_to_the_run_mean(v7_cfg):
    res = compute(v7_cfg)
    bid = str(res.prep.buildings.ids[0])
    e = hra.explain(v7_cfg, bid)
    assert e.lpr_mean == pytest.approx(res.mean[0, 0], rel=1e-9)
    for name in SUMMING:
        assert sum(r["lpr"] for r in e.splits[name]) == pytest.approx(e.lpr_mean, rel=1e-12), name
    io = {r["label"]: r["lpr"] for r in e.splits["inside_outside"]}
    assert io["inside"] > io["outside"] > 0 and io["chimney"] > 0  # FCM V7: presence 0.99, chimney term
    # physical median branches, each fixed at every magnitude, increase Lower -> Upper
    med = [r["lpr"] for r in e.splits["node:gmm_median"]]
    assert [r["label"] for r in e.splits["node:gmm_median"]] == ["Lower", "CentralLower", "CentralUpper", "Upper"]
    assert np.all(np.diff(med) > 0)
    assert len(e.splits["source_cell"]) == 2


@pytest.mark.slow
def test_v7_fix_and_reweight_the_median_node(v7_cfg):
    """fix = {gmm_median = k} gives the explain's conditional mean of branch k; constant weights w
    give sum_k w_k mean_k exactly (linearity), which w(M) does not."""
    cfg = v7_cfg.with_updates(run={"realisations": "all"})
    bid = str(compute(cfg).prep.buildings.ids[0])
    e = hra.explain(cfg, bid)
    rows = e.splits["node:gmm_median"]
    fixed = []
    for r in rows:
        m = compute(cfg.with_updates(logic_tree={"fix": {"gmm_median": r["label"]}})).mean[0, 0]
        assert m == pytest.approx(r["lpr"], rel=1e-9)
        fixed.append(m)
    w = {"Lower": 0.1, "CentralLower": 0.2, "CentralUpper": 0.3, "Upper": 0.4}
    rw = compute(cfg.with_updates(logic_tree={"weights": {"gmm_median": w}})).mean[0, 0]
    assert rw == pytest.approx(sum(w[r["label"]] * f for r, f in zip(rows, fixed)), rel=1e-9)
