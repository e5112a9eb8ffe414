"""hra.explain / hra explain: every split sums to the mean, the parametric single-source case
against closed forms per magnitude bin, per cell and per collapse state (adaptive quadrature),
conditional node means against runs with the branch fixed, and the CLI's JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import norm
from typer.testing import CliRunner

import hra
from hra.integration.engine import compute
from hra.inputs.source import truncated_gr_pdf
from tests.helpers import PARAMETRIC, make_config

CURVES = {"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3))}
CELL = (250_000.0, 590_000.0)
SUMMING = ("magnitude", "magnitude_distance", "source_cell", "typology", "state", "inside_outside")


def state_terms(rate, r_km, m_lo, m_hi, m_max, med=(0.15, 0.3, 0.6), beta=0.5, pdeath=(0.01, 0.1, 0.3), gm=PARAMETRIC):
    """Closed form (design: LPR = sum_k Pd_k int rate f(M) P(CS = k | M, R) dM) over [m_lo, m_hi],
    per collapse state k, by adaptive quadrature."""
    sig = np.hypot(gm["tau"], gm["phi"])
    med, pdeath = np.asarray(med), np.asarray(pdeath)

    def integrand(m, k):
        mu = gm["c0"] + gm["c1"] * m + gm["c2"] * np.log(r_km) + gm["c3"] * r_km
        p = np.append(norm.cdf((mu - np.log(med)) / np.sqrt(sig**2 + beta**2)), 0.0)
        return rate * truncated_gr_pdf(m, 1.0, 1.5, m_max) * (p[k] - p[k + 1]) * pdeath[k]

    hi = min(m_hi, m_max)
    if hi <= m_lo:
        return np.zeros(3)
    return np.array([quad(integrand, m_lo, hi, args=(k,), epsabs=0, epsrel=1e-10, limit=200)[0] for k in range(3)])


def _sums(e):
    for name in SUMMING:
        total = sum(r["lpr"] for r in e.splits[name])
        assert total == pytest.approx(e.lpr_mean, rel=1e-12, abs=1e-300), name


def test_parametric_two_cells_against_closed_form(tmp_path):
    """Two point sources at 10 and 25 km epicentral distance: the magnitude split per bin, the cell
    split and the state split against adaptive quadrature of the closed form."""
    cells = [(CELL[0], CELL[1], 0.5), (CELL[0] + 15_000.0, CELL[1], 0.8)]
    b = dict(id="B1", x=CELL[0] - 10_000.0, y=CELL[1], typology="URM")
    cfg = make_config(tmp_path, cells=cells, curves=CURVES, m_max=((5.5, 1.0),), buildings=[b],
                      source={"subcell_radius_km": 0.0})
    e = hra.explain(cfg, "B1", year=2025)
    res = compute(cfg)
    assert e.lpr_mean == pytest.approx(res.mean[0, 0], rel=1e-12)  # the run's own number
    _sums(e)
    r1, r2 = np.hypot(10.0, 3.0), np.hypot(25.0, 3.0)
    # cells: each cell's closed form; the nearer first, with its distance
    c1 = state_terms(0.5, r1, 1.5, 5.5, 5.5).sum()
    c2 = state_terms(0.8, r2, 1.5, 5.5, 5.5).sum()
    rows = e.splits["source_cell"]
    assert [r["distance_km"] for r in rows] == pytest.approx([10.0, 25.0])
    assert rows[0]["lpr"] == pytest.approx(c1, rel=5e-3) and rows[1]["lpr"] == pytest.approx(c2, rel=5e-3)
    assert rows[0]["share"] + rows[1]["share"] == pytest.approx(1.0, rel=1e-12)
    # magnitude bins carrying > 1 % of the total, each against the quadrature over the bin
    ref_total = c1 + c2
    checked = 0
    for r in e.splits["magnitude"]:
        assert r["label"].startswith(f"{r['m_lo']:.2f}")
        ref = (state_terms(0.5, r1, r["m_lo"], r["m_hi"], 5.5) + state_terms(0.8, r2, r["m_lo"], r["m_hi"], 5.5)).sum()
        if ref > 0.01 * ref_total:
            assert r["lpr"] == pytest.approx(ref, rel=2e-2), r["label"]
            checked += 1
        else:
            assert abs(r["lpr"] - ref) < 2e-3 * ref_total
    assert checked >= 10
    # magnitude x distance: everything from the two distance bins of the cells (10.4 and 25.2 km)
    by_r = {}
    for r in e.splits["magnitude_distance"]:
        by_r[r["r_lo_km"]] = by_r.get(r["r_lo_km"], 0.0) + r["lpr"]
    assert set(by_r) == {10.0, 20.0}
    assert by_r[10.0] == pytest.approx(c1, rel=5e-3) and by_r[20.0] == pytest.approx(c2, rel=5e-3)
    # collapse states; curves without outside death: all inside
    ks = state_terms(0.5, r1, 1.5, 5.5, 5.5) + state_terms(0.8, r2, 1.5, 5.5, 5.5)
    st = {r["label"]: r["lpr"] for r in e.splits["state"]}
    for k in range(3):
        assert st[f"CS{k + 1}"] == pytest.approx(ks[k], rel=5e-3)
    io = {r["label"]: r["lpr"] for r in e.splits["inside_outside"]}
    assert io["inside"] == pytest.approx(e.lpr_mean, rel=1e-12) and io["outside"] == 0 and io["chimney"] == 0


def test_node_means_equal_runs_with_the_branch_fixed(tmp_path):
    """node:<name> rows (from the engine's per-combination tables) against independent runs with
    [logic_tree] fix; their weighted sum is the mean; typology candidates and outside death."""
    cfg = make_config(
        tmp_path, cells=[(*CELL, 0.4), (CELL[0] + 3000.0, CELL[1] + 2000.0, 0.3)],
        curves={"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3)), "RC": ((0.3, 0.6, 1.0), 0.6, (0.005, 0.05, 0.2))},
        m_max=((4.5, 0.6), (5.5, 0.4)), years=(2025, 2026),
        buildings=[dict(id="B1", x=CELL[0] + 1200.0, y=CELL[1] - 800.0, typology="URM")],
        rate_branches=[("low", 0.3, 0.5), ("high", 0.7, 1.5)], frag_branches=[("weak", 0.5, 0.8), ("strong", 0.5, 1.2)],
        fragility={"presence_inside": 0.8})
    e = hra.explain(cfg, "B1", year=2026)
    _sums(e)
    for node in ("source", "m_max", "fragility"):
        rows = e.splits[f"node:{node}"]
        assert sum(r["weight"] * r["lpr"] for r in rows) == pytest.approx(e.lpr_mean, rel=1e-12)
        for r in rows:
            fixed = compute(cfg.with_updates(logic_tree={"fix": {node: r["label"]}}))
            assert r["lpr"] == pytest.approx(fixed.mean[0, 1], rel=1e-12), (node, r["label"])
    io = {r["label"]: r["lpr"] for r in e.splits["inside_outside"]}
    assert io["outside"] == 0.0  # p_death_outside defaults to 0 in the curves


def test_typology_candidates_split(tmp_path):
    """A building with two typology candidates: the typology rows are p_j x LPR of that typology."""
    curves = {"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3)), "RC": ((0.3, 0.6, 1.0), 0.6, (0.005, 0.05, 0.2))}
    b = dict(id="B1", x=CELL[0] + 5000.0, y=CELL[1], system_1="URM", s_probability_1=0.3, system_2="RC",
             s_probability_2=0.7)
    cfg = make_config(tmp_path, cells=[(*CELL, 0.5)], curves=curves, buildings=[b])
    e = hra.explain(cfg, "B1")
    _sums(e)
    typ = {r["label"]: r for r in e.splits["typology"]}
    assert typ["URM"]["probability"] == pytest.approx(0.3) and typ["RC"]["probability"] == pytest.approx(0.7)
    for t, p in (("URM", 0.3), ("RC", 0.7)):
        one = make_config(tmp_path / t, cells=[(*CELL, 0.5)], curves=curves,
                          buildings=[dict(id="B1", x=b["x"], y=b["y"], typology=t)])
        assert typ[t]["lpr"] == pytest.approx(p * compute(one).mean[0, 0], rel=1e-12)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    cfg = hra.demo_config(n_buildings=12, seed=3, realisations=60, years=(2025, 2026, 2027, 2028), workers=1,
                          directory=d, output=d / "run.zarr")
    cfg = cfg.with_updates(compute={"scheduler": "synchronous", "progress": False})
    ds = hra.run(cfg, progress=False)
    return d, cfg, ds


def test_demo_explain_from_the_written_run(demo_run):
    """From the .zarr alone (the resolved config in its provenance, the TOML removed): the total
    equals the run's mean, the splits sum, the profile is the run's."""
    d, cfg, ds = demo_run
    (d / "run.toml").rename(d / "run.toml.bak")
    try:
        i = int(np.argmax(ds["lpr_mean"].values[:, 0]))
        bid = str(ds["building_id"].values[i])
        e = hra.explain(d / "run.zarr", [bid])[0]
    finally:
        (d / "run.toml.bak").rename(d / "run.toml")
    yi = [int(y) for y in ds["year"].values].index(e.year)
    assert e.lpr_mean == pytest.approx(float(ds["lpr_mean"].values[i, yi]), rel=1e-10)
    _sums(e)
    assert e.profile["decisive_year"] == e.year
    assert e.profile["lpr_p90"][e.year] == pytest.approx(float(ds["lpr_p90"].values[i, yi]))
    from hra.policy.profiles import assign_profiles

    assert e.profile["profile"] == assign_profiles(ds).iloc[i]["profile"]
    names = {n.name for n in __import__("hra.chain", fromlist=["prepare"]).prepare(cfg).tree.nodes}
    assert {k[5:] for k in e.splits if k.startswith("node:")} == names
    # the tornado: the m_max node moves a building far more than the consequence factor
    tor = {r["node"]: r for r in e.tornado()}
    assert tor["m_max"]["range"] > tor["consequence"]["range"] > 0


def test_cli_json_and_errors(demo_run):
    from hra.cli.main import app

    d, cfg, ds = demo_run
    bid = str(ds["building_id"].values[0])
    r = CliRunner().invoke(app, ["explain", str(d / "run.zarr"), "--building", bid, "--year", "2026", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert set(out) == {"building", "year", "lpr_mean", "splits"} and out["building"] == bid and out["year"] == 2026
    assert out["lpr_mean"] == pytest.approx(float(ds["lpr_mean"].sel(year=2026).values[0]), rel=1e-10)
    for name in SUMMING:
        assert sum(x["lpr"] for x in out["splits"][name]) == pytest.approx(out["lpr_mean"], rel=1e-12)
        assert all(isinstance(x["label"], str) and isinstance(x["lpr"], float) for x in out["splits"][name])
    assert "node:gmm_median" in out["splits"]
    r = CliRunner().invoke(app, ["explain", str(d / "run.zarr"), "--building", bid])
    assert r.exit_code == 0 and "Collapse states" in r.stdout
    r = CliRunner().invoke(app, ["explain", str(d / "run.zarr"), "--building", "NOPE"])
    assert r.exit_code == 2 and "NOPE" in r.output
    r = CliRunner().invoke(app, ["explain", str(d / "run.zarr"), "--building", bid, "--year", "1990"])
    assert r.exit_code == 2 and "1990" in r.output


def test_magnitude_distance_split_by_cell_distance_with_the_cubic_rule(tmp_path):
    """With ``distance_interpolation = "cubic"`` a cell's rate is spread over four distance nodes
    (signed weights), yet the magnitude x distance split still puts each cell's share in the bin of
    its own distance: the two cells of the closed-form case give exactly two bins, each its cell's
    closed form, and the splits sum to the run's mean."""
    cells = [(CELL[0], CELL[1], 0.5), (CELL[0] + 15_000.0, CELL[1], 0.8)]
    b = dict(id="B1", x=CELL[0] - 10_000.0, y=CELL[1], typology="URM")
    cfg = make_config(tmp_path, cells=cells, curves=CURVES, m_max=((5.5, 1.0),), buildings=[b],
                      source={"subcell_radius_km": 0.0, "distance_interpolation": "cubic", "distance_nodes": 48})
    e = hra.explain(cfg, "B1", year=2025)
    assert e.lpr_mean == pytest.approx(compute(cfg).mean[0, 0], rel=1e-12)
    _sums(e)
    by_r = {}
    for r in e.splits["magnitude_distance"]:
        by_r[r["r_lo_km"]] = by_r.get(r["r_lo_km"], 0.0) + r["lpr"]
    assert set(by_r) == {10.0, 20.0}
    r1, r2 = np.hypot(10.0, 3.0), np.hypot(25.0, 3.0)
    assert by_r[10.0] == pytest.approx(state_terms(0.5, r1, 1.5, 5.5, 5.5).sum(), rel=5e-3)
    assert by_r[20.0] == pytest.approx(state_terms(0.8, r2, 1.5, 5.5, 5.5).sum(), rel=5e-3)


def test_explain_with_tables_at_every_other_magnitude(tmp_path):
    """``[source] magnitude_table_stride = 2``: the explanation's total is the run's LPR and every split
    sums to it (the interpolated tables' parts share the run's interpolated totals), and the run is
    not the stride-1 run (the odd nodes are interpolated), within 1e-3 of it."""
    kw = dict(cells=[(*CELL, 0.4), (CELL[0] + 3000.0, CELL[1] + 2000.0, 0.3)], curves=CURVES,
              m_max=((4.5, 0.6), (5.5, 0.4)), buildings=[dict(id="B1", x=CELL[0] + 1200.0, y=CELL[1] - 800.0, typology="URM")],
              fragility={"presence_inside": 0.8})
    cfg = make_config(tmp_path / "s2", source={"magnitude_table_stride": 2}, **kw)
    e = hra.explain(cfg, "B1", year=2025)
    run = compute(cfg).mean[0, 0]
    assert e.lpr_mean == pytest.approx(run, rel=1e-12)
    _sums(e)
    every = compute(make_config(tmp_path / "s1", **kw)).mean[0, 0]
    assert run != every and run == pytest.approx(every, rel=1e-3)
