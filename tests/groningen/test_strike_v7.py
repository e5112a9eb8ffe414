"""The rupture strike model through the engine with GMM V7 + FCM V7 (needs HRA_MODEL_DIR).

``[ground_motion] rupture_strike = { mean_deg, sd_deg }``: one source cell, buildings placed at
a hypocentral-distance node and relative azimuths 0, 45, 90 degrees (nodes of the azimuth axis)
and 37.5 degrees (between nodes) from it; strike sd 30 degrees (3 azimuth nodes, harmonic
interpolation) and 1 degree (7 nodes, linear interpolation). The engine's mean LPR is compared with a direct
numerical integration that uses the rupture geometry itself, not the engine's azimuth tables:

    LPR = rate * E_M[ E_{R_rup | M, R_hyp, a0}[ D(M, R_rup) ] ]

with D(M, R) the tree-mean death probability per event of a **point** source at distance R (the
model with ``rupture="point"`` on a fine grid of 40 distances in [3, 4.5] km, ln D interpolated
in ln R) and
the expectation over R_rup by dense tensor quadrature over the strike deviation
(Gauss-Hermite), the rupture length (Gauss-Hermite in log10 L) and the hypocentre position
along the rupture (Gauss-Legendre), with the distance from the site to the rupture segment
computed in plane coordinates (no folding of the azimuth).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hra.inputs.modeldata import model_dir_or_skip

CELL = (234_500.0, 573_500.0)
STRIKE = -30.0
AZIMUTHS = (0.0, 45.0, 90.0, 37.5)
NODE = 3  # R_hyp node index of the buildings (4.17 km with 12 nodes from 3 to 10 km)


def _node_km(n_nodes=12, r_max=10.0, depth=3.0):
    return np.exp(np.linspace(math.log(depth), math.log(r_max), n_nodes))


def _setup(tmp_path, sd_deg, strike="gauss"):
    from hra.config import config_from_dict

    model_dir = model_dir_or_skip()
    r_hyp = _node_km()[NODE]
    d_m = math.sqrt(r_hyp**2 - 9.0) * 1000.0
    rows = []
    for i, a0 in enumerate(AZIMUTHS):
        beta = math.radians(STRIKE + a0)  # azimuth (from north) of the site seen from the cell
        rows.append(dict(id=f"b{i}", x=CELL[0] + d_m * math.sin(beta), y=CELL[1] + d_m * math.cos(beta),
                         typology="URM3M_U", zone=320))
    pd.DataFrame(rows).to_csv(tmp_path / "b.csv", index=False)
    pd.DataFrame([dict(x=CELL[0], y=CELL[1], year=2025, rate=0.05)]).to_csv(tmp_path / "rates.csv", index=False)
    gm = {"model": "groningen-v7", "model_dir": str(model_dir), "quadrature": "fast",
          **({} if strike == "base" else {"rupture_strike": "uniform" if strike == "uniform" else {"mean_deg": STRIKE, "sd_deg": sd_deg}})}
    return config_from_dict({
        "run": {"years": [2025], "seed": 3, "realisations": 8},
        "source": {"rates": "rates.csv", "distance_nodes": 12, "max_distance_km": 10.0, "m_min": 3.0, "subcell_divisions": 1,
                   "magnitude": {"b_value": 1.0, "m_max": [{"value": 5.5, "weight": 1.0}]}},
        "ground_motion": gm, "exposure": {"buildings": "b.csv"}, "fragility": {"model": "fcm-v7"},
        "compute": {"progress": False, "table_store": False},
    }, base_dir=tmp_path)


def _rrup_atoms(m, r_hyp, a0, sd_deg, depth=3.0):
    """R_rup atoms and weights from the plane geometry: the site at epicentral distance r_e and
    angle a0 - eps from the actual strike; the rupture the segment [-u L, (1 - u) L] on the strike line."""
    from numpy.polynomial.hermite_e import hermegauss
    from numpy.polynomial.legendre import leggauss

    from hra.gmm.rupture import SIGMA_LOG10_LENGTH, leonard_rupture_length_km

    ze, we = hermegauss(61) if sd_deg > 0 else (np.zeros(1), np.ones(1))
    zl, wl = hermegauss(24)
    xu, wu = leggauss(200)
    u, wu = (xu + 1) / 2, wu / 2
    ang = np.deg2rad(a0 - sd_deg * ze)[:, None, None]
    length = (leonard_rupture_length_km(m) * 10.0 ** (SIGMA_LOG10_LENGTH * zl))[None, :, None]
    r_e = math.sqrt(r_hyp**2 - depth**2)
    xs, ys = r_e * np.cos(ang), r_e * np.sin(ang)
    lo, hi = -u[None, None, :] * length, (1 - u[None, None, :]) * length
    dx = np.maximum(0.0, np.maximum(xs - hi, lo - xs))
    rr = np.sqrt(dx**2 + ys**2 + depth**2)
    w = (we / we.sum())[:, None, None] * (wl / wl.sum())[None, :, None] * wu[None, None, :]
    return rr.reshape(-1), np.broadcast_to(w, rr.shape).reshape(-1)


def _point_death(cfg, zone):
    """D(M, R) [-] of the point-source model on a fine grid of R in [3, 4.5] km (R_rup <= R_hyp), plus
    the engine's distance nodes (the "fast" mixture quadrature adapts to the whole distance range,
    which moves D by up to ~3 %: the same range as the engine's keeps that out of the comparison)."""
    from hra.chain import prepare
    from hra.gmm.groningen_v7 import GroningenV7
    from hra.integration.engine import EngineDeath, physical_death_tables

    prep = prepare(cfg)
    g = prep.gmm
    point = GroningenV7(cfg.ground_motion.model_dir, rupture="point", quad_step=g.quad_step, verify=False)
    r_fine = np.unique(np.concatenate([_node_km(), np.exp(np.linspace(math.log(3.0), math.log(4.5), 40))]))
    t = np.array([prep.fragility.typologies.index("URM3M_U")])
    death = physical_death_tables(point, prep.fragility, zone, [False], prep.magnitude, r_fine, t)
    ed = EngineDeath(point, prep.median_map, death, prep.magnitude.nodes.size)
    wf, wc = prep.fragility.fragility_node.weight_array, prep.fragility.consequence_node.weight_array
    d = np.einsum("tfcmr,f,c->mr", ed.tree_mean(0), wf, wc)  # (m, r) [-]
    return prep, r_fine, d


def _reference(prep, r_fine, d, sd_deg):
    """rate * E_M E_Rrup[D(M, R_rup)] per azimuth."""
    r_hyp = _node_km()[NODE]
    out = []
    for a0 in AZIMUTHS:
        g_m = np.empty(prep.magnitude.nodes.size)
        for i, m in enumerate(prep.magnitude.nodes):
            rr, w = _rrup_atoms(m, r_hyp, a0, sd_deg)
            with np.errstate(divide="ignore"):
                lnd = np.interp(np.log(rr), np.log(r_fine), np.log(np.maximum(d[i], 1e-300)))
            g_m[i] = np.sum(w * np.exp(lnd))
        out.append(0.05 * float(prep.magnitude.integrate(g_m)[0, 0]))
    return np.array(out)


@pytest.mark.slow
def test_engine_lpr_against_direct_integration_over_strike(tmp_path):
    import hra

    got = {}
    for sd_deg in (30.0, 1.0):
        d = tmp_path / f"sd{sd_deg:g}"
        d.mkdir()
        cfg = _setup(d, sd_deg)
        ds = hra.run(cfg, progress=False, write=False)
        assert set(int(z) for z in ds["zone"].values) == {320}
        got[sd_deg] = ds["lpr_mean"].values[:, 0]
        if sd_deg == 30.0:
            # the same numbers with one building per chunk on 2 worker threads
            other = cfg.with_updates(compute={"chunk_buildings": 1, "workers": 2, "executor": "threads"})
            ds2 = hra.run(other, progress=False, write=False)
            for k in ("lpr_mean", "lpr_p50", "lpr_p90"):
                np.testing.assert_array_equal(ds2[k].values, ds[k].values, err_msg=k)
            # hra explain (physical tables at the azimuth nodes, the building's harmonic histogram
            # mapped back onto them) sums to the run's mean
            e = hra.explain(cfg, "b3")
            assert e.lpr_mean == pytest.approx(got[sd_deg][3], rel=1e-9)
            assert sum(r["lpr"] for r in e.splits["magnitude_distance"]) == pytest.approx(e.lpr_mean, rel=1e-12)
    prep, r_fine, dpoint = _point_death(cfg, 320)
    for sd_deg, lpr in got.items():
        ref = _reference(prep, r_fine, dpoint, sd_deg)
        # measured: within 0.5 % at 0, 45, 90 and 37.5 degrees, for sd 30 (nodes 0, 45, 90 with
        # harmonic interpolation) and sd 1 (nodes every 15 degrees, linear interpolation)
        np.testing.assert_allclose(lpr, ref, rtol=1e-2, err_msg=f"sd {sd_deg}")
    # the azimuth matters: along strike (0) the rupture reaches towards the site (x2.6 for sd 1,
    # x1.7 for sd 30 against 90 degrees), and a wider strike law smooths it
    assert got[1.0][0] > 2.0 * got[1.0][2] and 1.3 * got[30.0][2] < got[30.0][0] < got[1.0][0]


#: main's results before the strike model (commit ccd6173: cubic R_rup interpolation, float32 grid products,
#: azimuth averaged) for the case of :func:`_setup` (the buildings at azimuths 0, 45, 90, 37.5 of the table
#: above: uniform azimuth, so equal to rounding). lpr_p50 re-derived after the vectorised exp of the R_rup
#: interpolation (kernels._exp_fast): it moved by <= 2.4e-16 relative (last bits; was 4.5139457977973756e-07,
#: 4.51394579779739e-07, 4.5139457977975503e-07, 4.5139457977973846e-07); mean and P90 unchanged.
#: lpr_mean re-derived when the table stage began to stream the physical tables per group of GMM branches
#: (the tree mean summed in another order): within 9.1e-16 relative of the former values (was
#: 1.4046728376339554e-06, 1.4046728376339596e-06, 1.4046728376340024e-06, 1.404672837633958e-06).
#: All three re-derived when the physical tables were rounded to float32 (table format 5, the store's
#: precision): mean within 2.8e-10, P50 8.9e-9, P90 1.6e-9 relative of the former values (were
#: mean 1.4046728376339564e-06, 1.4046728376339607e-06, 1.4046728376340036e-06, 1.4046728376339592e-06;
#: P50 4.5139457977973746e-07, 4.513945797797389e-07, 4.51394579779755e-07, 4.5139457977973836e-07;
#: P90 6.566109283408999e-06, 6.566109283409018e-06, 6.566109283409214e-06, 6.566109283409011e-06).
#: All three re-derived when the physical tables were rounded to 16 significant bits (table format 7,
#: <= 1.5e-5 per table value): mean within 1.6e-7, P50 8.0e-7, P90 1.2e-6 relative of the former values
#: (were mean 1.4046728372488425e-06, 1.4046728372488468e-06, 1.4046728372488895e-06, 1.404672837248845e-06;
#: P50 4.5139457574111883e-07, 4.513945757411203e-07, 4.5139457574113635e-07, 4.5139457574111973e-07;
#: P90 6.5661092935122e-06, 6.56610929351222e-06, 6.566109293512415e-06, 6.566109293512213e-06).
#: lpr_mean re-derived when the R_rup interpolation began to sum in float32 (``kernels.lnr_interpolate_cubic``,
#: ~1e-7 relative per table value before the tables' 16-bit rounding): within 1.6e-8 relative of the former
#: values (were 1.4046726112249128e-06, 1.404672611224917e-06, 1.40467261122496e-06, 1.4046726112249153e-06);
#: P50 and P90 unchanged to the bit.
UNIFORM_BEFORE = {
    "lpr_mean": [1.4046726329995748e-06, 1.404672632999579e-06, 1.4046726329996218e-06, 1.4046726329995773e-06],
    "lpr_p50": [4.5139493643594296e-07, 4.5139493643594444e-07, 4.513949364359605e-07, 4.5139493643594386e-07],
    "lpr_p90": [6.5661013012823365e-06, 6.566101301282356e-06, 6.566101301282552e-06, 6.566101301282349e-06],
}


def test_uniform_strike_keeps_the_former_engine(tmp_path):
    """``rupture_strike = "uniform"`` keeps the former azimuth-averaged engine: the same numbers to 1e-9.

    (To the bit on the machine that derived them, an AVX2 processor; another vector width sums some terms
    in another order, and a table value at a rounding boundary of the tables' 16 bits then goes the other
    way: 2.9e-13 relative with float64 kernels, 1.7e-10 (the mean; P50 and P90 the same bits) on an
    AVX-512 processor since the R_rup interpolation and the magnitude expansion sum in float32. Any change
    of the model moves them by > 1e-8.)"""
    import hra

    # (the former engine's linear distance rule; the cubic default moves these by ~3e-15 here)
    cfg = _setup(tmp_path, 0.0, strike="uniform").with_updates(source={"distance_interpolation": "linear"})
    ds = hra.run(cfg, progress=False, write=False)
    for k, want in UNIFORM_BEFORE.items():
        np.testing.assert_allclose(ds[k].values[:, 0], want, rtol=1e-9, atol=0, err_msg=k)


def test_table_store_key_includes_the_strike_model(tmp_path):
    """Tables of one strike model are never read for another: the store key differs."""
    from hra.chain import prepare
    from hra.integration import tablestore

    keys = set()
    for sd, mean, mode in ((30.0, STRIKE, "gauss"), (1.0, STRIKE, "gauss"), (30.0, -20.0, "gauss"), (0.0, 0.0, "uniform")):
        cfg = _setup(tmp_path, sd, strike=mode)
        if mode == "gauss":
            cfg = cfg.with_updates(ground_motion={"rupture_strike": {"mean_deg": mean, "sd_deg": sd}})
        prep = prepare(cfg)
        keys.add(tablestore.model_key(tablestore.model_description(
            prep.gmm, prep.fragility, prep.magnitude.nodes, prep.distance_nodes_km, cfg, prep.files)))
    assert len(keys) == 4


def test_hazard_curves_carry_the_strike_model(tmp_path):
    """Hazard curves (PGA) of the sites of :func:`_setup`: with sd 2 the site along strike (0) has more
    hazard than the one across (90); with a very wide strike law (sd 10^4: the folded Gaussian is
    uniform) both equal the uniform-azimuth curve (the azimuth axis of tables and histograms is wired
    consistently: any mix-up of the (distance, azimuth) layout would break this)."""
    from hra.integration.hazard import hazard_curves

    levels = np.geomspace(0.01, 1.0, 12)
    _setup(tmp_path, 2.0)
    sites = pd.read_csv(tmp_path / "b.csv")[["id", "x", "y", "zone"]].iloc[[0, 2]]  # one zone: 320

    def curves(sd, mode="gauss"):
        hc = hazard_curves(_setup(tmp_path, sd, strike=mode), sites, imts=["PGA"], levels_g=levels, quantiles=[])
        return hc["rate_mean"].values.reshape(2, -1)

    narrow, wide, uni = curves(2.0), curves(1.0e4), curves(0.0, "uniform")
    np.testing.assert_allclose(uni[0], uni[1], rtol=1e-9)  # the same zone and distance
    assert np.all(narrow[0] > narrow[1]) and narrow[0, 3] > 1.2 * narrow[1, 3]
    np.testing.assert_allclose(wide, uni, rtol=2e-3)


def test_magnitude_table_stride_with_gmm_v7(tmp_path):
    """``[source] magnitude_table_stride = 2`` with GMM V7 + FCM V7 (rate grid, nodes 3.0-5.5 at 0.1, the
    V7 kinks 3.6, 3.875 and 4.75 inside: the tables at 16 of 26 nodes): the mean, P50 and P90 of the case above within 3e-4 of the
    tables at every node (the pins), yet not equal to them (the odd nodes are interpolated), and
    ``hra explain`` sums to the run's mean."""
    import hra
    from hra.chain import prepare
    from hra.integration import magnitudes

    cfg = _setup(tmp_path, 0.0, strike="uniform").with_updates(
        source={"distance_interpolation": "linear", "magnitude_table_stride": 2})
    prep = prepare(cfg)
    plan = magnitudes.gmm_plan(prep.gmm, prep.magnitude.nodes, prep.magnitude.table_stride)
    computed = prep.magnitude.nodes[plan.computed]
    # the kinks: 3.6 on a node; 3.875 and 4.75 between nodes, with both neighbours computed
    assert {3.6, 3.8, 3.9, 4.7, 4.8} <= set(np.round(computed, 6)) and plan.computed.size < prep.magnitude.nodes.size
    ds = hra.run(cfg, progress=False, write=False)
    for k, want in UNIFORM_BEFORE.items():
        got = ds[k].values[:, 0]
        np.testing.assert_allclose(got, want, rtol=3e-4, atol=0, err_msg=k)  # measured: 3.8e-5, 5.9e-5, 5.0e-5
        assert np.max(np.abs(got / np.asarray(want) - 1.0)) > 1e-9, k
    e = hra.explain(cfg, "b3")
    assert e.lpr_mean == pytest.approx(float(ds["lpr_mean"].values[3, 0]), rel=1e-9)
    assert sum(r["lpr"] for r in e.splits["magnitude"]) == pytest.approx(e.lpr_mean, rel=1e-12)
