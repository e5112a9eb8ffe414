"""Stochastic event sets: Poisson occurrence, truncated GR magnitudes, locations, determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from hra.chain import prepare
from hra.eventbased.catalogue import (EVENT_COLUMNS, EventSetError, event_set_for, fixed_realisation, simulate_catalogue,
                        truncated_gr_sample)
from hra.inputs.source import truncated_gr_cdf
from tests.helpers import make_config

CELL = (250_000.0, 590_000.0)
CURVES = {"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3))}
CELLS = [(CELL[0] + 1000 * i, CELL[1] + 1000 * j, 0.02 * (1 + i + 2 * j)) for i in range(4) for j in range(3)]


@pytest.fixture(scope="module")
def prep(tmp_path_factory):
    d = tmp_path_factory.mktemp("events")
    cfg = make_config(d, cells=CELLS, curves=CURVES, buildings=[dict(id="B", x=CELL[0], y=CELL[1], typology="URM")],
                      years=(2025, 2026), m_max=((4.5, 0.5), (6.0, 0.5)),
                      b_value=[{"value": 0.8, "weight": 0.5}, {"value": 1.2, "weight": 0.5}],
                      rate_branches=[("low", 0.4, 0.5), ("high", 0.6, 1.5)])
    return prepare(cfg)


def test_counts_match_source_rates(prep):
    """Events per (year, realisation) are Poisson with mean sum(rate) x T (two-sided 99.9 % bounds),
    and per cell the counts pass a chi-square test against the rate shares."""
    es = event_set_for(prep, 20_000, realisations=4, seed=11)
    T = es.years_per_realisation
    assert T == 5000
    ev = es.events
    for iy, year in enumerate(es.years):
        for r in range(es.realisations.n):
            n = int(((ev["year"] == year) & (ev["realisation"] == r)).sum())
            s = es.realisations.column("source")[r]
            mu = prep.rates.rate[:, iy, s].sum() * T
            assert es.expected_counts[iy, r] == pytest.approx(mu)
            lo, hi = stats.poisson.ppf([0.0005, 0.9995], mu)
            assert lo <= n <= hi, (year, r, n, mu)
    # per cell, pooled over (year, realisation) with the same source branch
    sub = ev[(ev["year"] == 2025)]
    counts = np.bincount(sub["cell"], minlength=len(prep.rates.x))
    expected = sum(prep.rates.rate[:, 0, es.realisations.column("source")[r]] for r in range(es.realisations.n)) * T
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert stats.chi2.sf(chi2, counts.size - 1) > 1e-3
    # the test can fail: 5 % more rate is detected on the total count
    total, mu_tot = len(ev), es.expected_counts.sum()
    assert abs(total - mu_tot) < 3.3 * np.sqrt(mu_tot)
    assert abs(total - 1.05 * mu_tot) > 3.3 * np.sqrt(mu_tot)


def test_magnitudes_follow_truncated_gr(prep):
    es = event_set_for(prep, 16_000, realisations="all", seed=3)
    ev = es.events
    bnode, mnode = prep.b_node, prep.m_max_node
    checked = 0
    for r in range(es.realisations.n):
        m = ev.loc[ev["realisation"] == r, "magnitude"].to_numpy()
        b = bnode.values[es.realisations.column("b_value")[r]]
        mx = mnode.values[es.realisations.column("m_max")[r]]
        assert m.min() >= 1.5 and m.max() <= mx
        p = stats.kstest(m, lambda x: truncated_gr_cdf(x, b, 1.5, mx)).pvalue
        assert p > 1e-3, (r, b, mx, p)
        checked += 1
        # and the wrong law is rejected
        assert stats.kstest(m, lambda x: truncated_gr_cdf(x, b * 1.15, 1.5, mx)).pvalue < 1e-3
    assert checked == 8  # 2 source x 2 b-value x 2 Mmax branches (one branch on the other nodes)
    assert np.allclose(es.realisations.weight.sum(), 1.0)


@settings(max_examples=50, derandomize=True, deadline=None)
@given(st.floats(0.0, 1.0, exclude_max=True), st.floats(0.5, 1.6), st.floats(3.5, 7.0))
def test_gr_inversion_stays_in_range(u, b, mx):
    m = truncated_gr_sample(np.array([u]), b, 1.5, mx)[0]
    assert 1.5 <= m <= mx + 1e-12
    assert truncated_gr_cdf(m, b, 1.5, mx) == pytest.approx(u, abs=1e-9)


def test_locations_within_cells_and_depths():
    rng = np.random.default_rng(1)
    cx, cy = np.array([1000.0, 5000.0]), np.array([2000.0, 2000.0])
    cat = simulate_catalogue(rng, cx, cy, np.array([3.0, 1.0]), 2000, 1.0, 1.5, 5.0, 1000.0, "uniform",
                             [(2.5, 0.25), (3.0, 0.75)])
    dx = cat["x"] - cx[cat["cell"]]
    dy = cat["y"] - cy[cat["cell"]]
    assert np.all(np.abs(dx) <= 500.0) and np.all(np.abs(dy) <= 500.0)
    assert stats.kstest(dx / 1000.0 + 0.5, "uniform").pvalue > 1e-3
    assert abs((cat["depth_km"] == 2.5).mean() - 0.25) < 4 * np.sqrt(0.25 * 0.75 / cat["depth_km"].size)
    assert np.all(np.diff(cat["sim_year"]) >= 0)  # sorted by replica year
    c2 = simulate_catalogue(np.random.default_rng(1), cx, cy, np.array([3.0, 1.0]), 2000, 1.0, 1.5, 5.0, 1000.0, "centre")
    assert np.all(c2["x"] == cx[c2["cell"]]) and np.all(c2["depth_km"] == 3.0)
    with pytest.raises(EventSetError, match="weights summing to 1"):
        simulate_catalogue(rng, cx, cy, np.ones(2), 10, 1.0, 1.5, 5.0, 1000.0, "uniform", [(2.0, 0.5)])


def test_catalogues_are_keyed_by_year_and_realisation(prep):
    """A (year, realisation) catalogue does not change with the other years or realisations in the set."""
    a = event_set_for(prep, 3 * 2000, realisations=3, seed=5)
    b = event_set_for(prep, 5 * 2000, realisations=5, seed=5, years=[2026])
    for r in range(3):
        ea = a.select(2026, r).reset_index(drop=True)
        eb = b.select(2026, r).reset_index(drop=True)
        assert len(ea) > 100
        assert ea.equals(eb)
    again = event_set_for(prep, 3 * 2000, realisations=3, seed=5)
    assert again.events.equals(a.events)
    other = event_set_for(prep, 3 * 2000, realisations=3, seed=6)
    assert not other.events["magnitude"].equals(a.events["magnitude"])
    assert list(a.events.columns) == list(EVENT_COLUMNS)
    assert a.events["event_id"].is_unique
    ids = a.events["event_id"].to_numpy()
    assert np.all(ids // 10**13 == a.events["year"].to_numpy())
    assert np.all(ids // 10**8 % 10**5 == a.events["realisation"].to_numpy())


def test_fixed_realisation_and_errors(prep):
    real = fixed_realisation(prep.tree, m_max="Mmax=6", source="high")
    es = event_set_for(prep, 1000, realisations=real, seed=1)
    assert es.realisations.n == 1 and es.events["magnitude"].max() > 4.5
    assert es.event_rate()[0] == pytest.approx(1e-3)
    with pytest.raises(EventSetError, match="multiple"):
        event_set_for(prep, 1001, realisations=2)
    with pytest.raises(EventSetError, match="unknown node"):
        fixed_realisation(prep.tree, gmm="x")
    ds = es.to_xarray()
    assert ds["x"].attrs["units"] == "m" and ds.attrs["crs"].startswith("EPSG:28992")
    assert es.branch_table()["m_max"].iloc[0] == "Mmax=6"
