"""GMM V7 + FCM V7 through the engine (needs the public model tables: HRA_MODEL_DIR)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hra.chain import MedianMap
from hra.inputs.modeldata import model_dir_or_skip

EDB = "tests/res/example_EDB.csv"


def test_median_map_realisations_reproduce_w_of_m():
    """Per magnitude node, the weighted virtual branches give exactly the w(M) mixture (eq. 9.8)."""
    from hra.gmm.groningen_v7 import median_weights_v7

    m = np.round(np.arange(1.5, 6.55, 0.1), 10)
    w = median_weights_v7(m)
    mm = MedianMap.build(w, "realisation")
    assert np.allclose(mm.weights.sum(), 1.0)
    assert np.all((mm.mix == 0) | (mm.mix == 1)) and np.all(mm.mix.sum(axis=2) == 1)
    np.testing.assert_allclose(np.einsum("v,vmk->mk", mm.weights, mm.mix), w, atol=1e-12)
    # each realisation is ordered consistently: a larger u never picks a lower branch at any M
    branch = mm.mix.argmax(axis=2)
    assert np.all(np.diff(branch, axis=0) >= 0)
    mix = MedianMap.build(w, "mixture")
    np.testing.assert_allclose(mix.mix[0], w)


@pytest.fixture(scope="module")
def v7_inputs(tmp_path_factory):
    model_dir = model_dir_or_skip()
    d = tmp_path_factory.mktemp("v7")
    edb = pd.read_csv(model_dir.parent.parent / EDB, encoding="utf-8-sig")
    site = edb[(edb.point_x == 234603) & (edb.point_y == 572797)].head(6)
    site.to_csv(d / "edb.csv", index=False)
    pd.DataFrame([dict(x=234_500.0, y=573_500.0, year=2025, rate=0.2)]).to_csv(d / "rates.csv", index=False)
    return d, model_dir, site


def _cfg(d, model_dir, mode):
    from hra.config import config_from_dict

    return config_from_dict({
        "run": {"years": [2025], "seed": 1, "realisations": 40},
        "source": {"rates": "rates.csv", "distance_nodes": 24, "magnitude": {"b_value": 1.0, "m_max": [{"value": 5.0, "weight": 1.0}]}},
        "ground_motion": {"model": "groningen-v7", "model_dir": str(model_dir), "rupture": "point", "quadrature": "fast",
                          "median_weights": mode},
        "exposure": {"buildings": "edb.csv"},
        "fragility": {"model": "fcm-v7"},
        "compute": {"progress": False},
    }, base_dir=d)


@pytest.mark.slow
def test_example_edb_runs_end_to_end_with_v7(v7_inputs):
    import hra

    d, model_dir, site = v7_inputs
    ds = hra.run(_cfg(d, model_dir, "realisation"), progress=False, write=False)
    assert list(ds["building_id"].values) == [str(i) for i in site["bag_building_id"]]
    assert set(ds["zone"].values) == {308}
    mean, p50, p90 = (ds[v].values[:, 0] for v in ("lpr_mean", "lpr_p50", "lpr_p90"))
    assert np.all(np.isfinite(mean)) and np.all(mean > 0) and np.all(p90 >= p50)
    # the w(M) mixture per event has the same tree mean (to the magnitude-integration accuracy)
    dm = hra.run(_cfg(d, model_dir, "mixture"), progress=False, write=False)
    np.testing.assert_allclose(dm["lpr_mean"].values, ds["lpr_mean"].values, rtol=2e-3)
    prov = __import__("json").loads(ds.attrs["provenance"])
    assert prov["ground_motion_model"] == "groningen-v7" and prov["fragility_model"] == "fcm-v7"
    # the dwelling-mound factor (+0.2675 on ln AvgSa): clearing wiede_flag lowers exactly the
    # wierde buildings' risk and leaves every other building bit-identical
    flag = site["wiede_flag"].to_numpy() == 1
    assert flag.any() and (~flag).any()
    flat = d / "flat"
    flat.mkdir(exist_ok=True)
    site.assign(wiede_flag=0).to_csv(flat / "edb.csv", index=False)
    (flat / "rates.csv").write_bytes((d / "rates.csv").read_bytes())
    df = hra.run(_cfg(flat, model_dir, "realisation"), progress=False, write=False)
    np.testing.assert_array_equal(df["lpr_mean"].values[~flag], ds["lpr_mean"].values[~flag])
    assert np.all(ds["lpr_mean"].values[flag] > 1.2 * df["lpr_mean"].values[flag])


def test_conditional_risk_against_hand_integration():
    """One event, V7 + FCM V7: P(CS1) and P(death inside) against an independent numerical integral.

    Reference: per GMM branch, the AvgSa distribution is taken from the model's own mixture CDF
    (validated against Monte Carlo in test_groningen_v7), and the fragility of one class is
    integrated on a fine ln AvgSa grid with the trapezoid rule, from the published b0, b1, sigma
    and DL_CS1 via scipy (no engine kernel involved).
    """
    import hra
    from fragility.groningen import load_fcm
    from hra.gmm.registry import load_gmm
    from scipy.stats import norm

    model_dir = model_dir_or_skip()
    res = hra.conditional_risk("groningen-v7", 5.0, 5.0, 308, "URM3M_U", model_dir=model_dir)
    gmm = load_gmm("groningen-v7", model_dir, rupture="point")
    fcm = load_fcm("fcm-v7", model_dir)
    t = fcm.typologies.index("URM3M_U")
    tree = gmm.tree.enumerate()
    names = [n.name for n in gmm.tree.nodes]
    w_m = gmm.median_weights(np.array([5.0]))[0]
    nominal = gmm.tree.node("gmm_median").weight_array
    grid = np.linspace(np.log(1e-4), np.log(20.0), 4001)
    p1 = 0.0
    for g in range(tree.n):
        branch = {nm: int(tree.index[g, j]) for j, nm in enumerate(names)}
        wg = tree.weight[g] / nominal[branch["gmm_median"]] * w_m[branch["gmm_median"]]
        mix = gmm.ln_im_mixture("AvgSa", np.array([5.0]), np.array([5.0]), 308, branch)
        mean, sd, wq = mix.mean[0, 0], np.maximum(mix.sd[0, 0], 1e-12), mix.weight[0, 0]
        pdf = (wq * norm.pdf((grid[:, None] - mean) / sd) / sd).sum(axis=1)
        for f, wf in enumerate(fcm.fragility_weights):
            dl = fcm.displacement_limit_m[t, f, 0]
            frag = norm.cdf((fcm.b0[t, f] + fcm.b1[t, f] * grid - np.log(dl)) / fcm.sigma[t, f])
            p1 += wg * wf * np.trapezoid(pdf * frag, grid)
    assert res["p_cs1"] == pytest.approx(p1, rel=2e-3)
    assert 0 < res["p_cs3"] <= res["p_cs1"] < 1
    assert res["lpr_event"] == pytest.approx(0.99 * res["p_death_inside"] + 0.01 * res["p_death_outside"])
