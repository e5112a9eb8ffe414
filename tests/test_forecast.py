"""`[source] forecast`: the SSM forecast reader (hra/inputs/forecast.py) and its use by the engine.

Independent references:

* closed form: LPR = sum_c rate_c * int f_c(M) sum_k Pd_k (Phi(z_k) - Phi(z_k+1)) dM with the
  parametric GMM and lognormal fragility, integrated with ``scipy.integrate.quad`` per cell
  (own b-value and Mmax per cell and branch); mean and P90 over the branch weights;
* the rate-grid path: a GR tabulation written as a forecast equals the same rate grid with
  ``[source.magnitude]`` (to 1e-9 with the same in-bin rule, see ``_linear_rule``);
* ``hra.inputs.source.MagnitudeBins.mass`` (the GR law's exact bin masses) for node_masses.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tomli_w
import xarray as xr
from scipy.integrate import quad
from scipy.stats import norm
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from helpers import PARAMETRIC, make_config, write_buildings, write_fragility  # noqa: E402

import hra  # noqa: E402
from hra.cli import app  # noqa: E402
from hra.config import ConfigError, config_from_dict  # noqa: E402
from hra.core.logictree import weighted_quantile  # noqa: E402
from hra.inputs.forecast import (CHAIN_MAGNITUDES, gr_counts, magnitude_basis,  # noqa: E402
                                 node_masses, read_forecast, write_forecast)
from hra.inputs.source import MagnitudeBins, magnitude_bins  # noqa: E402

X0, Y0 = 250_000.0, 590_000.0
CURVES = {"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3))}
M = CHAIN_MAGNITUDES
RATE = {"low": 1.0, "high": 2.0}  # branch_rate: factor on the cell rates
B_VALUES = {"stress": [0.8, 1.0, 1.2], "thickness": [1.1, 0.9, 1.0]}  # branch_mm: b-value per cell
MMAX = [4.5, 5.5]
WEIGHTS = {"branch_rate": {"low": 0.5, "high": 0.5}, "branch_mm": {"stress": 0.3, "thickness": 0.7},
           "branch_mmax": {"4.5": 0.6, "5.5": 0.4}}
CELLS = [(0, 0, 0.02), (1, 0, 0.05), (2, 1, 0.03)]  # (ix, iy, rate of M >= 1.45) on a 4 km grid
YEARS = {2025: 1.0, 2026: 1.5}  # year factor on the rates


def _forecast_array(cells=CELLS, spacing=4000.0, time=None, mags=M) -> xr.DataArray:
    """Per-cell truncated GR counts, dims (branch_rate, branch_mm, branch_mmax, magnitude, time, x, y)."""
    nx = ny = 3
    arr = np.zeros((len(RATE), len(B_VALUES), len(MMAX), mags.size, len(YEARS), nx, ny))
    for c, (ix, iy, rate) in enumerate(cells):
        for i, fr in enumerate(RATE.values()):
            for j, bs in enumerate(B_VALUES.values()):
                for k, mx in enumerate(MMAX):
                    for t, fy in enumerate(YEARS.values()):
                        arr[i, j, k, :, t, ix, iy] = gr_counts(mags, rate * fr * fy, bs[c], mx)
    return _as_forecast(arr, mags, spacing, time)


def _as_forecast(arr: np.ndarray, mags, spacing: float, time=None) -> xr.DataArray:
    """Counts (branch_rate, branch_mm, branch_mmax, magnitude, time, x, y) as the forecast's DataArray: the
    test's branch labels, ``YEARS`` (datetime) unless ``time`` is given, cell centres from (X0, Y0)."""
    if time is None:
        time = np.array([f"{y}-01-01" for y in YEARS], dtype="datetime64[ns]")
    nx, ny = arr.shape[-2:]
    return xr.DataArray(arr, dims=("branch_rate", "branch_mm", "branch_mmax", "magnitude", "time", "x", "y"),
                        coords=dict(branch_rate=list(RATE), branch_mm=list(B_VALUES), branch_mmax=MMAX, magnitude=mags,
                                    time=time, x=X0 + spacing * np.arange(nx), y=Y0 + spacing * np.arange(ny)))


def _config(tmp: Path, forecast: Path, buildings, *, weights=WEIGHTS, years=tuple(YEARS), source=None, output=None,
            run=None, write_toml=False):
    tmp.mkdir(parents=True, exist_ok=True)
    frag = write_fragility(tmp / "fragility.csv", CURVES)
    bld = write_buildings(tmp / "buildings.csv", buildings)
    data = {
        "run": {"years": list(years), "seed": 7, "realisations": "all", **(run or {})},
        "source": {"forecast": str(forecast), "forecast_weights": weights, "depth_km": 3.0,
                   "subcell_radius_km": 0.0, "distance_nodes": 200, **(source or {})},
        "ground_motion": dict(PARAMETRIC),
        "exposure": {"buildings": str(bld)},
        "fragility": {"curves": str(frag)},
        "compute": {"workers": 1, "scheduler": "synchronous", "progress": False},
    }
    if output:
        data["output"] = output
    if write_toml:
        path = tmp / "run.toml"
        path.write_text(tomli_w.dumps(data))
        return path
    return config_from_dict(data, base_dir=tmp)


def _closed_form_lpr(r_km: float, rate: float, b: float, m_max: float, m_min: float = 1.45) -> float:
    """rate * int_{m_min}^{m_max} f(M) sum_k Pd_k (Phi(z_k) - Phi(z_k+1)) dM (quad)."""
    g = PARAMETRIC
    med, beta, pdk = CURVES["URM"]
    bt = b * np.log(10.0)
    norm_c = -np.expm1(-bt * (m_max - m_min))

    def integrand(m):
        ln_im = g["c0"] + g["c1"] * m + g["c2"] * np.log(r_km) + g["c3"] * r_km
        s = np.sqrt(g["tau"] ** 2 + g["phi"] ** 2 + beta ** 2)
        pexc = [norm.cdf((ln_im - np.log(mk)) / s) for mk in med] + [0.0]
        death = sum(pdk[k] * (pexc[k] - pexc[k + 1]) for k in range(3))
        return bt * np.exp(-bt * (m - m_min)) / norm_c * death

    return rate * quad(integrand, m_min, m_max, limit=200, epsabs=0, epsrel=1e-10)[0]


# ---------------------------------------------------------------------------------------------
# magnitude representation
# ---------------------------------------------------------------------------------------------


def test_node_masses_reproduce_gr_bins_exactly():
    """A GR tabulation gives the exact bin masses of hra.inputs.source.magnitude_bins (centroid split)."""
    for b, mx in [(0.8, 4.5), (1.0, 5.5), (1.3, 6.5)]:
        masses = node_masses(M, gr_counts(M, 1.0, b, mx))
        ref = magnitude_bins(np.array([b]), np.array([mx]), 1.45, 0.05)
        n = ref.nodes.size
        np.testing.assert_allclose(ref.nodes, M[:n], atol=1e-12)
        np.testing.assert_allclose(masses[:n], ref.mass[0, 0], rtol=1e-9, atol=1e-13)  # counts O(1): differences round at 1e-14
        assert np.all(masses[n:] == 0.0)
        assert masses.sum() == pytest.approx(1.0, rel=1e-13)


def test_node_masses_first_moment_exact_for_any_shape():
    """Per bin: zeroth moment = count difference; the whole first moment equals the in-bin
    exponential's (checked against quad of the piecewise-exponential density)."""
    counts = np.array([10.0, 6.0, 3.0, 2.5, 0.5, 0.1, 0.0])
    m = np.array([1.5, 1.6, 1.7, 1.8, 1.95, 2.1, 2.2])
    masses = node_masses(m, counts)
    assert masses.sum() == pytest.approx(10.0)
    from hra.inputs.forecast import local_beta

    p = -np.diff(counts)
    beta = local_beta(m, p)
    first = 0.0
    for i in range(p.size):
        if p[i] == 0:
            continue
        lo, hi = m[i], m[i + 1]
        z = quad(lambda x: np.exp(-beta[i] * (x - lo)), lo, hi)[0]
        first += p[i] * quad(lambda x: x * np.exp(-beta[i] * (x - lo)), lo, hi)[0] / z
    assert (masses * m).sum() == pytest.approx(first, rel=1e-12)


def test_subdivide_bins_gives_the_gr_law_on_the_finer_grid():
    """A GR law on the PSDRA-2024 grid (0.1) split into 2 or 3 sub-bins gives the counts of the same law
    on the finer grid (:func:`gr_counts`) to rounding, with the truncation on a node of the finer grid
    (4.0 and 5.5: the 0.1 grid's midpoints, as the chain's Mmax are), between its nodes (4.02), on a node
    of the file's grid (4.05), at the top node or beyond the grid (its count stays at the top node); the
    file's own nodes keep their counts to the bit, and no count is left above the truncation."""
    from hra.inputs.forecast import subdivide_bins

    m10 = M[::2]  # 1.45, 1.55, ..., 6.55
    b = np.array([0.7, 1.0, 1.3])[:, None]
    mx = np.array([4.0, 4.02, 4.05, 5.5, 6.55, 8.0])[None, :]
    counts = gr_counts(m10, 2.0, b, mx)  # (3, 6, 52)
    for n in (2, 3):
        mf, cf = subdivide_bins(m10, counts, n)
        assert mf.size == 51 * n + 1 and cf.shape == (3, 6, mf.size)
        np.testing.assert_array_equal(mf[::n], m10)
        np.testing.assert_allclose(mf, np.linspace(1.45, 6.55, mf.size), rtol=0, atol=1e-12)
        np.testing.assert_array_equal(cf[..., ::n], counts)
        want = gr_counts(mf, 2.0, b, mx)
        np.testing.assert_allclose(cf, want, rtol=0, atol=1e-14)
        assert np.array_equal(cf == 0.0, want == 0.0)  # nothing above Mmax, not even 1e-22
    np.testing.assert_array_equal(subdivide_bins(M, gr_counts(M[::2], 1.0, 1.0, 4.0) * 0 + 1.0, 1)[1], 1.0)
    # the 0.05 grid: its midpoints are the SSM file's nodes, so 0.1 split in 2 is that grid to the bit
    assert np.array_equal(subdivide_bins(m10, counts, 2)[0], M)
    with pytest.raises(ValueError, match="positive integer"):
        subdivide_bins(m10, counts, 0)


def test_subdivide_bins_any_density_slope_and_blocks():
    """A density that grows with M (negative beta: exp(+0.8 m) truncated at 5.0), a uniform one, and
    rows with empty and isolated bins: the counts against the closed form where there is one, the bin
    rates kept, non-increasing, the same bits on any block size."""
    from hra.inputs.forecast import subdivide_bins

    m = np.round(np.arange(3.0, 5.51, 0.1), 10)
    g = 0.8
    grow = np.where(m <= 5.0 + 1e-9, (np.exp(g * 5.0) - np.exp(g * np.minimum(m, 5.0))) / g, 0.0)
    flat = np.clip(5.0 - m, 0.0, None)
    mf, cf = subdivide_bins(m, np.stack([grow, flat]), 2)
    np.testing.assert_allclose(cf[0], np.where(mf <= 5.0 + 1e-9, (np.exp(g * 5.0) - np.exp(g * np.minimum(mf, 5.0))) / g, 0),
                               rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(cf[1], np.clip(5.0 - mf, 0.0, None), rtol=0, atol=1e-13)
    rng = np.random.default_rng(11)
    inc = rng.exponential(size=(300, m.size)) * (rng.uniform(size=(300, m.size)) < 0.6)
    rows = np.cumsum(inc[:, ::-1], axis=1)[:, ::-1]
    mf, cf = subdivide_bins(m, rows, 2)
    np.testing.assert_array_equal(cf[:, ::2], rows)
    assert np.all(np.diff(cf, axis=1) <= 0.0)
    for block in (1, 7):
        assert np.array_equal(subdivide_bins(m, rows, 2, block=block)[1], cf)


def test_basis_small_and_exact():
    """Per-cell b-values 0.7..1.3 (every cell different) x 6 Mmax: few basis rows, tiny residual."""
    b = np.linspace(0.7, 1.3, 200)
    counts = gr_counts(M, 1.0, b[:, None], np.array([4.0, 4.5, 5.0, 5.5, 6.0, 6.5])[None, :]).reshape(-1, M.size)
    masses = node_masses(M, counts)
    mb = magnitude_basis(masses)
    assert mb.basis.shape[0] <= 40
    recon = mb.coef @ mb.basis
    # every node mass, also the smallest (M ~ 6.5) ones, to 1e-8 relative
    pos = masses > 1e-300
    assert np.max(np.abs(recon[pos] / masses[pos] - 1.0)) < 1e-6
    assert np.abs(recon - masses).max() < 1e-10 * masses.max()


def test_branch_bases_one_shape_per_gr_branch():
    """One GR law per branch in every cell (any rates): one basis row per branch; per-cell b-values
    within a branch (fixed Mmax): a few rows, not the shared basis of all Mmax truncations."""
    from hra.inputs.forecast import branch_bases

    rates = np.linspace(0.01, 0.3, 50)
    counts = gr_counts(M, rates[:, None], np.array([0.9, 1.1, 1.0])[None, :], np.array([4.5, 5.5, 6.5])[None, :])
    basis, coef, res = branch_bases(node_masses(M, counts))
    assert basis.shape[:2] == (3, 1) and res < 1e-12
    b = np.linspace(0.7, 1.3, 100)
    mx = np.array([4.0, 4.5, 5.0, 5.5, 6.0, 6.5])
    masses = node_masses(M, gr_counts(M, 1.0, b[:, None], mx[None, :]))
    basis, coef, res = branch_bases(masses)
    shared = magnitude_basis(masses.reshape(-1, M.size))
    assert basis.shape[1] <= 12 < shared.basis.shape[0]
    np.testing.assert_allclose(np.einsum("nsk,skm->nsm", coef, basis), masses, rtol=0, atol=1e-9 * masses.max())


def test_default_basis_rtol_sits_above_float32_rounding():
    """The engine's magnitude-basis tolerance (``[source] magnitude_basis_rtol``, default 1e-7) is above the
    rounding of counts written in float32 (~6e-8 relative): such a file gets the float64 file's basis size,
    where 1e-10 keeps the rounding noise (a basis of nearly every node); the default's factor still gives
    every node mass of every cell to 2e-5 relative, the smallest (M ~ 6.5, 1e-6 of the largest) included:
    the order of the tables' own rounding (16 significant bits, 1.5e-5)."""
    from hra.config import SourceSection
    from hra.inputs.forecast import branch_bases

    rtol = SourceSection.model_fields["magnitude_basis_rtol"].default
    assert rtol == 1e-7
    b = np.linspace(0.8, 1.2, 300)
    counts = gr_counts(M, 1.0, b[:, None], np.array([4.5, 6.5])[None, :])  # (cells, Mmax branch, M)
    masses = node_masses(M, counts)
    masses32 = node_masses(M, counts.astype(np.float32).astype(np.float64))
    basis, coef, res = branch_bases(masses, rtol)
    k = basis.shape[1]
    assert 3 <= k <= 8 and res < 1e-5
    assert branch_bases(masses32, rtol)[0].shape[1] == k
    assert branch_bases(masses32, 1e-10)[0].shape[1] > 3 * k
    assert branch_bases(masses, 1e-10)[0].shape[1] > k  # (the tighter basis of the float64 file: a real cut)
    recon = np.einsum("nsk,skm->nsm", coef, basis)
    pos = masses > 0
    assert np.max(np.abs(recon[pos] / masses[pos] - 1.0)) < 2e-5


def test_node_masses_blocks_equal_the_whole_array_version_to_the_bit():
    """The row-block numba path gives the whole-array numpy version's numbers to the bit: GR rows,
    random non-increasing rows with empty and isolated bins, and bins so steep that expm1 overflows
    (beta h > 700) or nearly so, on any block size."""
    from hra.inputs.forecast import _node_masses_reference

    rng = np.random.default_rng(5)
    m = np.sort(rng.uniform(1.4, 6.6, 30))
    inc = rng.exponential(size=(400, m.size)) * (rng.uniform(size=(400, m.size)) < 0.5)
    rows = [np.cumsum(inc[:, ::-1], axis=1)[:, ::-1], gr_counts(m, 0.3, rng.uniform(0.6, 1.4, 50), 5.0)]
    steep = np.zeros((3, m.size))
    steep[0, :3] = [2e300, 1e300, 1e-300]  # beta h ~ 1380: expm1 overflows
    steep[1, 1:4] = [1e-300, 1e-300, 0.0]  # an isolated bin after an empty one
    steep[2, :3] = [1.0, 1.0 - 1e-12, 0.0]
    counts = np.concatenate(rows + [steep])
    ref = _node_masses_reference(m, counts)
    for block in (1, 7, 4096):
        assert np.array_equal(node_masses(m, counts, block=block), ref)
    assert np.array_equal(node_masses(m, counts.reshape(3, -1, m.size)), ref.reshape(3, -1, m.size))


def test_basis_leaves_out_empty_columns():
    """Nodes above every row's Mmax are left out of the factorisation: the basis is 0 there, the
    rank and the factored masses are those of the matrix without those columns, and the factor
    reproduces the masses (relative to each row's largest mass, and at each node)."""
    b = np.linspace(0.7, 1.3, 60)
    masses = node_masses(M, gr_counts(M, 1.0, b, 5.0))
    empty = masses.max(axis=0) == 0
    assert 20 < empty.sum() < M.size - 20
    mb = magnitude_basis(masses)
    inner = magnitude_basis(masses[:, ~empty])
    assert np.all(mb.basis[:, empty] == 0.0) and mb.basis.shape[0] == inner.basis.shape[0] <= 12
    recon = mb.coef @ mb.basis
    np.testing.assert_allclose(recon[:, ~empty], inner.coef @ inner.basis, rtol=0, atol=1e-14 * masses.max())
    assert np.abs(recon - masses).max() < 1e-9 * masses.max() and mb.residual < 1e-9
    pos = masses > 0
    assert np.max(np.abs(recon[pos] / masses[pos] - 1.0)) < 1e-6


# ---------------------------------------------------------------------------------------------
# the engine against closed forms and the rate-grid path
# ---------------------------------------------------------------------------------------------


def test_closed_form_mean_and_p90(tmp_path):
    """Per-cell b-values x 2 rate x 2 magnitude x 2 Mmax branches, 2 years (datetime time axis):
    mean and P90 of the engine within 0.5 % of quad over the closed form."""
    fc = write_forecast(_forecast_array(), tmp_path / "ssm.h5")
    bx, by = X0 + 1000.0, Y0 + 500.0
    cfg = _config(tmp_path, fc, [dict(id="B1", x=bx, y=by, typology="URM")])
    ds = hra.run(cfg, progress=False, write=False)
    prov = json.loads(ds.attrs["provenance"])
    from hra.chain import sha256_file

    assert prov["input_sha256"]["source:ssm.h5"] == sha256_file(fc)
    assert {"branch_rate", "branch_mm", "branch_mmax"} <= set(prov["logic_tree"])
    assert prov["logic_tree"]["branch_mmax"] == {"4.5": 0.6, "5.5": 0.4}
    for t, (year, fy) in enumerate(YEARS.items()):
        vals, wts = [], []
        for rlab, fr in RATE.items():
            for mlab, bs in B_VALUES.items():
                for mx in MMAX:
                    lpr = 0.0
                    for c, (ix, iy, rate) in enumerate(CELLS):
                        d2 = (X0 + 4000.0 * ix - bx) ** 2 + (Y0 + 4000.0 * iy - by) ** 2
                        lpr += _closed_form_lpr(np.sqrt(d2 * 1e-6 + 9.0), rate * fr * fy, bs[c], mx)
                    vals.append(lpr)
                    wts.append(WEIGHTS["branch_rate"][rlab] * WEIGHTS["branch_mm"][mlab] * WEIGHTS["branch_mmax"][f"{mx}"])
        vals, wts = np.array(vals), np.array(wts)
        mean = float(vals @ wts)
        p90 = float(weighted_quantile(vals, wts, 0.9))
        assert ds["lpr_mean"].values[0, t] == pytest.approx(mean, rel=5e-3)
        assert ds["lpr_p90"].values[0, t] == pytest.approx(p90, rel=5e-3)
        assert len(set(np.round(vals / vals.max(), 3))) == vals.size  # distinct values: P90 is a real test


def _linear_rule(self: MagnitudeBins, g):
    """MagnitudeBins.integrate with the forecast's in-bin rule (linear in M at the bin centroid)."""
    return np.einsum("bxm,...m->bx...", self.mass, np.asarray(g, dtype=float))


@pytest.mark.parametrize("typology_uncertainty", ["epistemic"])
def test_gr_forecast_equals_rate_grid(tmp_path, monkeypatch, typology_uncertainty):
    """A GR tabulation (b-value per branch, same in all cells; 2 Mmax) as a forecast gives the LPR of
    the same rate grid + [source.magnitude]: to 1e-9 with the same in-bin rule, and within the
    rule's O((lambda h)^2) difference (< 0.5 %) with the rate grid's exponential rule."""
    cells = [(X0 + 1000.0 * i, Y0 + 1000.0 * j, 0.01 * (1 + i + 2 * j)) for i in range(4) for j in range(3)]
    buildings = [dict(id=f"B{i}", x=X0 + 700.0 * i + 300.0, y=Y0 + 400.0 * i + 100.0, typology="URM") for i in range(4)]
    b_vals, mmax = [0.9, 1.1], [4.5, 5.5]
    years = (2025, 2026)
    grid = make_config(tmp_path / "grid", cells=cells, buildings=buildings, curves=CURVES, years=years,
                       b_value=[(0.9, 0.5), (1.1, 0.5)], m_max=[(4.5, 0.6), (5.5, 0.4)],
                       source={"m_min": 1.45, "distance_nodes": 96, "magnitude": {"b_value": [{"value": 0.9, "weight": 0.5},
                                                                        {"value": 1.1, "weight": 0.5}],
                                                            "m_max": [{"value": 4.5, "weight": 0.6},
                                                                      {"value": 5.5, "weight": 0.4}],
                                                            "bin_width": 0.05}},
                       run={"keep_realisations": True})
    xs, ys = np.unique([c[0] for c in cells]), np.unique([c[1] for c in cells])
    arr = np.zeros((2, 2, M.size, 2, xs.size, ys.size))
    for x, y, rate in cells:
        ix, iy = int(np.searchsorted(xs, x)), int(np.searchsorted(ys, y))
        for j, b in enumerate(b_vals):
            for k, mx in enumerate(mmax):
                arr[j, k, :, :, ix, iy] = gr_counts(M, rate, b, mx)[:, None]
    da = xr.DataArray(arr, dims=("branch_mm", "branch_mmax", "magnitude", "time", "x", "y"),
                      coords=dict(branch_mm=["b0.9", "b1.1"], branch_mmax=mmax, magnitude=M,
                                  time=np.array([2025.0, 2026.0]), x=xs, y=ys))  # decimal years
    fc = write_forecast(da, tmp_path / "gr.h5")
    fcfg = _config(tmp_path / "fc", fc, buildings, years=years,
                   weights={"branch_mm": {"b0.9": 0.5, "b1.1": 0.5}, "branch_mmax": {"4.5": 0.6, "5.5": 0.4}},
                   source={"subcell_radius_km": 2.5, "distance_nodes": 96}, run={"keep_realisations": True})
    ds_f = hra.run(fcfg, progress=False, write=False)
    ds_g_exp = hra.run(grid, progress=False, write=False)
    monkeypatch.setattr(MagnitudeBins, "integrate", _linear_rule)
    ds_g = hra.run(grid, progress=False, write=False)
    for var in ("lpr_mean", "lpr_p50", "lpr_p90", "lpr_realisations"):
        np.testing.assert_allclose(ds_f[var].values, ds_g[var].values, rtol=1e-9, err_msg=var)
    np.testing.assert_allclose(ds_f["lpr_mean"].values, ds_g_exp["lpr_mean"].values, rtol=5e-3)
    assert ds_f["lpr_mean"].values.min() > 0


def test_chunking_does_not_change_results(tmp_path):
    fc = write_forecast(_forecast_array(), tmp_path / "ssm.h5")
    bld = [dict(id=f"B{i}", x=X0 + 1500.0 * i, y=Y0 + 900.0 * i, typology="URM") for i in range(5)]
    a = hra.run(_config(tmp_path / "a", fc, bld), progress=False, write=False)
    cfg = _config(tmp_path / "b", fc, bld).with_updates(compute={"chunk_buildings": 2})
    b = hra.run(cfg, progress=False, write=False)
    np.testing.assert_array_equal(a["lpr_mean"].values, b["lpr_mean"].values)
    np.testing.assert_array_equal(a["lpr_p90"].values, b["lpr_p90"].values)


def test_monte_carlo_draws_forecast_branches(tmp_path):
    """MC draws over the branch_* nodes converge to the enumerated mean (exact mean is always exact)."""
    fc = write_forecast(_forecast_array(), tmp_path / "ssm.h5")
    bld = [dict(id="B1", x=X0 + 1000.0, y=Y0 + 500.0, typology="URM")]
    full = hra.run(_config(tmp_path / "a", fc, bld), progress=False, write=False)
    mc = hra.run(_config(tmp_path / "b", fc, bld, run={"realisations": 400}), progress=False, write=False)
    np.testing.assert_allclose(mc["lpr_mean"].values, full["lpr_mean"].values, rtol=1e-12)
    assert mc["lpr_p90"].values[0, 0] == pytest.approx(full["lpr_p90"].values[0, 0], rel=0.35)


# ---------------------------------------------------------------------------------------------
# reader: layouts, years, labels
# ---------------------------------------------------------------------------------------------


def test_group_path_and_integer_years(tmp_path):
    da = _forecast_array(time=np.array(list(YEARS)))
    p = tmp_path / "g.h5"
    da.rename("counts").to_dataset().to_netcdf(p, group="forecast/forecast", engine="netcdf4")
    fc = read_forecast(p, [2026])
    assert fc.years.tolist() == [2026]
    assert fc.counts.shape == (3, 1, 8, M.size)
    assert fc.branch_labels[2] == ("4.5", "5.5")
    np.testing.assert_allclose(fc.total_rate()[0].reshape(2, 2, 2)[:, 0, 0], [0.1 * 1.5, 0.2 * 1.5])


def test_one_pass_reader_equals_the_whole_array_checks(tmp_path):
    """The slab-by-slab reader (years chosen out of order in a file whose steps are not sorted)
    gives the counts and cells of the whole-array numpy path; a cell whose lowest-magnitude
    counts are 0 but that has a (tiny, within the tolerance) count above it is kept as well."""
    from hra.inputs.forecast import _counts_reference

    da = _forecast_array().isel(time=[1, 0])  # steps 2026, 2025
    da[dict(x=2, y=2, magnitude=slice(3, 5), time=0)] = 1e-313  # below the 1e-12 relative tolerance
    p = write_forecast(da, tmp_path / "f.h5")
    fc = read_forecast(p, [2026, 2025])
    raw = da.isel(time=[1, 0]).values.reshape(8, M.size, 2, 3, 3)
    counts, keep = _counts_reference(raw, M, None, p)
    assert np.array_equal(fc.counts, counts) and keep.tolist() == [0, 3, 7, 8]
    np.testing.assert_array_equal(fc.x, X0 + 4000.0 * (keep // 3))
    assert fc.years.tolist() == [2025, 2026]


def test_bad_counts_first_by_kind_then_order(tmp_path):
    """A NaN anywhere is reported before an earlier negative count; a count increasing by less
    than 1e-12 relative passes, by more fails, naming the cell, year, magnitude and branch."""
    da = _forecast_array()
    da[dict(branch_rate=0, x=0, y=0, magnitude=-1, time=0)] = -1.0
    da[dict(branch_rate=1, branch_mmax=1, x=1, y=0, magnitude=7, time=1)] = np.nan
    from hra.inputs.forecast import ForecastError

    with pytest.raises(ForecastError,
                       match=r"NaN/infinite count at cell \(x=254000, y=590000\), year 2026, magnitude 1.8, "
                             r"branch_rate=high, branch_mm=stress, branch_mmax=5.5"):
        read_forecast(write_forecast(da, tmp_path / "a.h5"))
    da = _forecast_array()
    v = float(da[0, 0, 0, 10, 0, 1, 0])
    da[dict(branch_rate=0, branch_mm=0, branch_mmax=0, x=1, y=0, magnitude=11, time=0)] = v * (1 + 0.5e-12)
    read_forecast(write_forecast(da, tmp_path / "b.h5"))
    da[dict(branch_rate=0, branch_mm=0, branch_mmax=0, x=1, y=0, magnitude=11, time=0)] = v * (1 + 2e-12)
    with pytest.raises(ForecastError, match=r"increases with magnitude at cell \(x=254000, "
                       r"y=590000\), year 2025, magnitude 1.95.* -> 2"):
        read_forecast(write_forecast(da, tmp_path / "c.h5"))


def test_psdra_preset_weights():
    from hra.config import PSDRA_2024_FORECAST_WEIGHTS

    base = {"run": {"years": [2025]}, "exposure": {"buildings": "b.csv"}}
    cfg = config_from_dict({"model": "psdra-2024", "source": {"forecast": "f.h5"}, **base}, check_paths=False)
    assert cfg.ground_motion.model == "groningen-v7" and cfg.fragility.model == "fcm-tno2020"
    assert cfg.source.forecast_weights == PSDRA_2024_FORECAST_WEIGHTS
    mine = {"branch_mm": {"linear_stress": 0.5, "split_thickness": 0.5}}
    cfg = config_from_dict({"model": "psdra-2024", "source": {"forecast": "f.h5", "forecast_weights": mine}, **base},
                           check_paths=False)
    assert cfg.source.forecast_weights["branch_mm"] == mine["branch_mm"]
    assert cfg.source.forecast_weights["branch_mmax"] == PSDRA_2024_FORECAST_WEIGHTS["branch_mmax"]
    assert sum(PSDRA_2024_FORECAST_WEIGHTS["branch_mmax"].values()) == pytest.approx(1.0)


def test_psdra_preset_weights_of_dims_the_file_lacks_are_dropped(tmp_path):
    """A forecast with only some of the PSDRA-2024 branch dims (here Mmax) runs under ``model = "psdra-2024"``:
    the preset's weights of the dims the file lacks are dropped (not taken as the config's, whose error
    would name weights the user never wrote); a weight the config changes for such a dim is still refused."""
    from hra.chain import prepare_forecast
    from hra.config import PSDRA_2024_FORECAST_WEIGHTS
    from hra.inputs.forecast import ForecastError

    mmax_only = _forecast_array().isel(branch_rate=0, branch_mm=0, drop=True)
    path = write_forecast(mmax_only, tmp_path / "mmax.h5")
    mine = {"branch_mmax": WEIGHTS["branch_mmax"]}

    def prepared(model, weights):
        data = {"model": model, "run": {"years": list(YEARS)}, "exposure": {"buildings": "b.csv"},
                "source": {"forecast": str(path), "forecast_weights": weights}}
        return prepare_forecast(config_from_dict(data, base_dir=tmp_path, check_paths=False))

    got = prepared("psdra-2024", mine)
    ref = prepared("groningen-v7", mine)  # no preset: the file's one dim and its weights
    assert [(n.name, n.labels, n.weights) for n in got.forecast.nodes] == [("branch_mmax", ("4.5", "5.5"), (0.6, 0.4))]
    assert [(n.name, n.labels, n.weights) for n in got.forecast.nodes] == [(n.name, n.labels, n.weights)
                                                                            for n in ref.forecast.nodes]
    np.testing.assert_array_equal(got.magnitude.basis, ref.magnitude.basis)
    # the config's own weights for a dim the file lacks: refused, naming that dim
    changed = {**mine, "branch_mm": {"linear_stress": 0.5, "split_thickness": 0.5}}
    assert changed["branch_mm"] != PSDRA_2024_FORECAST_WEIGHTS["branch_mm"]
    with pytest.raises(ForecastError, match=r"branch_mm is given but the forecast has no dim 'branch_mm'"):
        prepared("psdra-2024", changed)
    # the preset's Mmax defaults name labels this file does not have: its own weights are needed, and said so
    with pytest.raises(ForecastError, match=r"branch_mmax gives a weight for '4.0'"):
        prepared("psdra-2024", {})


def test_prepare_reads_the_source_beside_the_buildings_and_raises_its_error_first(tmp_path, monkeypatch):
    """``prepare`` prepares the source (a forecast: read, checksum, basis) in a thread while it reads the
    models, the buildings and their sites; the files keep their order (source first), and where both the
    forecast and the exposure are bad the forecast's error is raised, as when it was read first."""
    import threading

    import hra.chain as chain
    from hra.inputs.forecast import ForecastError

    fc = write_forecast(_forecast_array(), tmp_path / "ssm.h5")
    bld = [dict(id=f"B{i}", x=X0 + 1500.0 * i, y=Y0, typology="URM") for i in range(3)]
    seen = []
    real = chain.prepare_source

    def spy(cfg):
        seen.append(threading.current_thread().name)
        return real(cfg)

    monkeypatch.setattr(chain, "prepare_source", spy)
    prep = chain.prepare(_config(tmp_path, fc, bld))
    assert seen and seen[0].startswith("hra-prepare-source")
    assert list(prep.files)[0] == "source:ssm.h5" and "exposure:buildings.csv" in prep.files
    # both bad: an unknown typology in the exposure, a forecast that is not HDF5
    bad_fc = tmp_path / "bad.h5"
    bad_fc.write_text("not a forecast")
    bad_b = [dict(id="B0", x=X0, y=Y0, typology="NO_SUCH_CLASS")]
    with pytest.raises(ForecastError, match="bad.h5"):
        chain.prepare(_config(tmp_path / "both", bad_fc, bad_b))
    with pytest.raises(ValueError, match="NO_SUCH_CLASS"):  # the exposure's own error where the forecast is good
        chain.prepare(_config(tmp_path / "exposure", fc, bad_b))


def test_psdra_preset_computes_the_tables_at_every_other_magnitude_node_unless_told():
    """``model = "psdra-2024"`` with a forecast defaults ``[source] magnitude_table_stride`` to 2 (the
    annual run); a given stride is kept, and neither another preset nor a rate grid gets it."""
    from hra.config import PSDRA_2024_MAGNITUDE_TABLE_STRIDE

    base = {"run": {"years": [2025]}, "exposure": {"buildings": "b.csv"}}
    assert PSDRA_2024_MAGNITUDE_TABLE_STRIDE == 2

    def stride(model, source):
        return config_from_dict({"model": model, "source": source, **base}, check_paths=False).source.magnitude_table_stride

    assert stride("psdra-2024", {"forecast": "f.h5"}) == 2
    assert stride("psdra-2024", {"forecast": "f.h5", "magnitude_table_stride": 1}) == 1
    assert stride("groningen-v7", {"forecast": "f.h5"}) == 1
    rates = {"rates": "r.csv", "magnitude": {"b_value": 1.0, "m_max": [{"value": 5.0, "weight": 1.0}]}}
    assert stride("psdra-2024", rates) == 1
    # the dumped config (provenance, with_updates) says it, and keeps it
    cfg = config_from_dict({"model": "psdra-2024", "source": {"forecast": "f.h5"}, **base}, check_paths=False)
    assert cfg.model_dump()["source"]["magnitude_table_stride"] == 2
    assert cfg.with_updates(run={"seed": 3}).source.magnitude_table_stride == 2


def test_a_coarse_magnitude_grid_warns_and_subdivided_gives_the_finer_file(tmp_path, caplog):
    """A forecast on the PSDRA-2024 step (0.1; Mmax 4.5 and 5.5 on its bin midpoints) warns that its LPR
    comes out high and names the fix; with ``magnitude_subdivisions = 2`` it does not, and the engine gets
    the node masses of the same law written at 0.05 (to rounding) on that grid's nodes."""
    from hra.chain import prepare_forecast

    f10 = write_forecast(_forecast_array(mags=M[::2]), tmp_path / "m010.h5")
    f05 = write_forecast(_forecast_array(), tmp_path / "m005.h5")
    bld = [dict(id="B1", x=X0 + 1000.0, y=Y0 + 500.0, typology="URM")]
    with caplog.at_level("WARNING", logger="hra"):
        prepare_forecast(_config(tmp_path / "a", f10, bld))
    assert "magnitude step 0.1" in caplog.text and "magnitude_subdivisions = 2" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="hra"):
        fine = prepare_forecast(_config(tmp_path / "b", f10, bld, source={"magnitude_subdivisions": 2}))
        ref = prepare_forecast(_config(tmp_path / "c", f05, bld))
    assert "magnitude step" not in caplog.text
    np.testing.assert_array_equal(fine.magnitude.nodes, ref.magnitude.nodes)
    def masses(src):  # coef (c, K, Y * S) x basis (S, K, m) -> (c, Y, S, m)
        c = src.forecast.coef
        return np.einsum("ckys,skm->cysm", c.reshape(c.shape[0], c.shape[1], -1, src.magnitude.basis.shape[0]),
                         src.magnitude.basis)

    got, want = masses(fine), masses(ref)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * want.max())


def test_rates_and_forecast_exclude_each_other(tmp_path):
    data = {"run": {"years": [2025]}, "exposure": {"buildings": "b.csv"}, "ground_motion": dict(PARAMETRIC),
            "fragility": {"curves": "f.csv"},
            "source": {"forecast": "f.h5", "rates": "r.csv", "magnitude": {"m_max": [{"value": 5, "weight": 1}]}}}
    with pytest.raises(ConfigError, match=r"\[source\] rates and \[source\] forecast exclude each other"):
        config_from_dict(data)
    data["source"] = {"forecast": "f.h5", "magnitude": {"m_max": [{"value": 5, "weight": 1}]}}
    with pytest.raises(ConfigError, match=r"remove \[source.magnitude\]"):
        config_from_dict(data)


def _continuous_b_forecast(n: int = 6, spacing: float = 2000.0) -> xr.DataArray:
    """An n x n grid whose cells each have their own b-value (0.8-1.2, continuous: a basis of several
    shapes per branch), 2 x 2 x 2 branches as ``_forecast_array``, 2 years."""
    bvals = {"stress": np.linspace(0.8, 1.2, n * n), "thickness": np.linspace(1.15, 0.85, n * n)}
    arr = np.zeros((len(RATE), 2, len(MMAX), M.size, len(YEARS), n, n))
    rate = 0.02 + 0.03 * np.arange(n * n) / (n * n)
    for i, fr in enumerate(RATE.values()):
        for j, bs in enumerate(bvals.values()):
            for k, mx in enumerate(MMAX):
                for t, fy in enumerate(YEARS.values()):
                    g = gr_counts(M, rate * fr * fy, bs, mx)  # (cells, M)
                    arr[i, j, k, :, t] = g.T.reshape(M.size, n, n)
    return _as_forecast(arr, M, spacing)


def test_basis_rtol_moves_the_lpr_far_less_than_the_tables_precision(tmp_path):
    """The default magnitude-basis tolerance (1e-7) against 1e-10 on a forecast whose cells each have their
    own b-value: a smaller basis (K), and every building's mean, P50 and P90 within 2e-6 relative (the
    tables keep 16 significant bits: 1.5e-5); ``magnitude_basis_rtol`` belongs to a forecast only."""
    from hra.integration import engine

    fc = write_forecast(_continuous_b_forecast(), tmp_path / "ssm.h5")
    bld = [dict(id=f"B{i}", x=X0 + 1700.0 * i, y=Y0 + 900.0 * (i % 3), typology="URM") for i in range(6)]
    run = {"realisations": 300, "quantiles": [0.5, 0.9]}
    loose = engine.compute(_config(tmp_path / "a", fc, bld, run=run))
    tight = engine.compute(_config(tmp_path / "b", fc, bld, run=run, source={"magnitude_basis_rtol": 1e-10}))
    k_loose, k_tight = loose.prep.magnitude.n_basis, tight.prep.magnitude.n_basis
    assert 2 <= k_loose < k_tight
    assert tight.mean.min() > 0
    np.testing.assert_allclose(loose.mean, tight.mean, rtol=2e-6, atol=0)
    np.testing.assert_allclose(loose.quantiles, tight.quantiles, rtol=2e-6, atol=0)
    assert not np.array_equal(loose.mean, tight.mean)  # (the two bases do differ)
    data = {"run": {"years": [2025]}, "exposure": {"buildings": "b.csv"}, "ground_motion": dict(PARAMETRIC),
            "fragility": {"curves": "f.csv"}, "source": {"rates": "r.csv", "magnitude_basis_rtol": 1e-8,
                                                        "magnitude": {"m_max": [{"value": 5, "weight": 1}]}}}
    with pytest.raises(ConfigError, match=r"magnitude_basis_rtol only applies to \[source\] forecast"):
        config_from_dict(data)


def test_forecast_q_rows_without_a_product_are_zeros(tmp_path, monkeypatch):
    """The per-combination sums of a forecast zone are not zeroed before the products are added
    (``kernels.add_rows_scattered``'s ``fresh`` rows): every q value is still defined, and the basis
    functions a source branch does not have (its basis shorter than K) give q rows of exact zeros. The
    table stage's work buffers are filled with NaN where a call takes undefined memory (``_scratch``
    without ``zeros``): a value read before it is written would show."""
    from hra.chain import prepare
    from hra.integration import engine

    fc = write_forecast(_continuous_b_forecast(), tmp_path / "ssm.h5")
    bld = [dict(id=f"B{i}", x=X0 + 1700.0 * i, y=Y0 + 900.0 * (i % 3), typology="URM") for i in range(6)]
    prep = prepare(_config(tmp_path, fc, bld, run={"realisations": 300, "quantiles": [0.5, 0.9]}))
    sel = engine.select_realisations(prep)
    real = engine._scratch

    def poisoned(work, name, shape, zeros=False, dtype=np.float64):
        out = real(work, name, shape, zeros, dtype)
        if not zeros and np.issubdtype(out.dtype, np.floating):
            out.fill(np.nan)
        return out

    monkeypatch.setattr(engine, "_scratch", poisoned)
    q = engine.build_tables(prep, sel).q
    assert np.isfinite(q).all()
    basis = prep.magnitude.basis  # (S, K, m)
    S, K = basis.shape[:2]
    missing = [(s, k) for s in range(S) for k in range(K) if not basis[s, k].any()]
    assert missing  # (the loose basis: some branches have fewer than K functions)
    q = q.reshape(q.shape[0], -1, K, q.shape[-1])  # (rows, r, k, combination)
    for s, k in missing:
        us = np.flatnonzero(sel.combo_s == s)
        assert us.size and not q[:, :, k][..., us].any()
    assert q.any()


# ---------------------------------------------------------------------------------------------
# bad files (exit 2, file, cell and fix): the forecast-* cases of tests/test_bad_input_catalogue.py
# ---------------------------------------------------------------------------------------------


def _set(da, value, **where):
    da = da.copy()
    da.loc[where] = value
    return da


def test_forecast_info(tmp_path):
    fc = write_forecast(_forecast_array(), tmp_path / "ssm.h5")
    res = CliRunner().invoke(app, ["forecast", "info", str(fc)])
    assert res.exit_code == 0, res.output
    out = res.output
    for s in ["branch_rate: 2 (low, high)", "branch_mmax: 2 (4.5, 5.5)", "branches: 8", "103 values, 1.45 to 6.55",
              "cells: 3 with events of 9", "spacing 4000 m", "years: 2025, 2026", "low/stress/4.5"]:
        assert s in out, (s, out)
    # total rate of the (high, *, *) branches in 2026: 2 x 1.5 x sum of cell rates
    assert f"{2 * 1.5 * 0.10:.4g}" in out
    assert "magnitude_subdivisions" not in out  # the SSM's 0.05 grid: nothing to say
    coarse = write_forecast(_forecast_array(mags=M[::2]), tmp_path / "m010.h5")
    res = CliRunner().invoke(app, ["forecast", "info", str(coarse)])
    assert res.exit_code == 0 and "52 values, 1.45 to 6.55 (step 0.1)" in res.output
    assert "magnitude_subdivisions = 2" in " ".join(res.output.split())
    bad = tmp_path / "bad.h5"
    write_forecast(_set(_forecast_array(), -1.0, magnitude=M[-1], x=X0, y=Y0), bad)
    res = CliRunner().invoke(app, ["forecast", "info", str(bad)])
    assert res.exit_code == 2 and "negative count" in res.output


def test_config_check_and_other_paths(tmp_path):
    """`hra config check --read-inputs` reads the forecast; the rate-grid-only paths refuse it clearly."""
    fc = write_forecast(_forecast_array(), tmp_path / "ssm.h5")
    toml = _config(tmp_path / "in", fc, [dict(id="B1", x=X0, y=Y0, typology="URM")], write_toml=True)
    res = CliRunner().invoke(app, ["config", "check", "--read-inputs", str(toml)])
    assert res.exit_code == 0, res.output
    assert "forecast" in res.output and "8 branch(es)" in res.output
    from hra.chain import EngineError
    from hra.integration.hazard import hazard_curves
    import pandas as pd

    with pytest.raises(EngineError, match=r"hazard curves does not take \[source\] forecast yet"):
        hazard_curves(hra.load_config(toml), pd.DataFrame(dict(id=["s"], x=[X0], y=[Y0])))


def test_tree_mean_table_is_the_mean_of_the_combination_tables(tmp_path):
    """The forecast's tree-mean table (integrated once, per source branch) equals the weighted mean
    of the per-combination tables of the enumerated tree (linear magnitude integration)."""
    from hra.chain import prepare
    from hra.integration.engine import build_tables, model_factors, select_realisations

    fc = write_forecast(_forecast_array(), tmp_path / "ssm.h5")
    cfg = _config(tmp_path, fc, [dict(id="B1", x=X0, y=Y0, typology="URM")],
                  ).with_updates(fragility={"curves": str(tmp_path / "frag2.csv")})
    write_fragility(tmp_path / "frag2.csv", CURVES, branches=[("lo", 0.3, 0.8), ("hi", 0.7, 1.2)])
    prep = prepare(cfg)
    sel = select_realisations(prep)
    assert model_factors(prep)[0][0] == 8 and sel.realisations.exact
    tab = build_tables(prep, sel)
    K = prep.forecast.n_basis
    assert tab.qbar.shape == (1, prep.distance_nodes_km.size * K, 8)
    w_s = np.asarray(prep.rates.branch_weights)
    for s in range(8):
        us = np.flatnonzero(sel.combo_s == s)
        ref = tab.q[:, :, us] @ sel.combo_w[us] / w_s[s]
        np.testing.assert_allclose(tab.qbar[:, :, s], ref, rtol=1e-10, atol=1e-14 * np.abs(ref).max())


def test_forecast_product_plans_are_made_once_and_reused(tmp_path, monkeypatch):
    """The products' weights and BLAS blocks of each table slice (``engine._ForecastPlans``: from the
    forecast's basis and the tree alone) are worked out in the first zone task and reused by the next
    zones and groups of the run (the pool's work buffers), with the same tables to the bit; a new
    forecast basis gets plans of its own."""
    from hra.chain import prepare
    from hra.integration import engine

    fc = write_forecast(_forecast_array(), tmp_path / "ssm.h5")
    cfg = _config(tmp_path, fc, [dict(id="B1", x=X0, y=Y0, typology="URM")])
    prep = prepare(cfg)
    sel = engine.select_realisations(prep)
    made = []
    plan = engine._ForecastPlans._plan
    monkeypatch.setattr(engine._ForecastPlans, "_plan", lambda self, *a: made.append(1) or plan(self, *a))
    pool = engine.BufferPool()
    first = engine.build_tables(prep, sel, pool=pool)
    q1, qbar1, n_made = first.q.copy(), first.qbar.copy(), len(made)
    assert n_made > 0
    second = engine.build_tables(prep, sel, pool=pool)  # the next group of a run: the same pool
    assert len(made) == n_made
    assert np.array_equal(second.q, q1) and np.array_equal(second.qbar, qbar1)
    fresh = engine.build_tables(prep, sel)  # a pool of its own: plans made again, the same bits
    assert len(made) == 2 * n_made and np.array_equal(fresh.q, q1)
    from dataclasses import replace as dc_replace

    other = dc_replace(prep, magnitude=dc_replace(prep.magnitude, basis=prep.magnitude.basis * 2.0))
    doubled = engine.build_tables(other, sel, pool=pool)  # another basis: new plans, twice the products
    assert len(made) == 3 * n_made
    np.testing.assert_allclose(doubled.q, 2.0 * q1, rtol=1e-14, atol=0.0)


def test_factored_rates_give_the_same_lpr(tmp_path, monkeypatch):
    """The building pass takes a forecast's rates in factored form: every year's map of a branch is one map
    scaled (the test forecast), so the years are one time component per branch
    (:func:`hra.inputs.forecast.factor_years`), and the cells' rates a factor
    (:func:`hra.inputs.forecast.compress_rates`: a 3 x 3 grid has rank <= 9 of 2 x 2 x 2 x K x 1 columns); the
    reference is the same run with the rates as they are (both switched off): equal to ~1e-13."""
    from hra.integration import engine

    fc = write_forecast(_forecast_array(), tmp_path / "ssm.h5")
    bld = [dict(id=f"B{i}", x=X0 + 1300.0 * i, y=Y0 + 700.0 * i, typology="URM") for i in range(6)]
    cfg = _config(tmp_path / "a", fc, bld, run={"realisations": 300})
    prep = engine.prepare(cfg)
    rates, basis, n_k, _, year = engine.static_rates(prep)
    full = prep.forecast.coef.reshape(prep.forecast.coef.shape[0], -1)
    n_c, n_y, n_s = full.shape[0], len(YEARS), len(prep.rates.branches)
    assert year.shape == (n_y, 1, n_s) and n_k == prep.forecast.n_basis
    assert 0 < basis.shape[0] <= basis.shape[1] // 8
    back = np.einsum("ytS,cktS->ckyS", year, (rates @ basis).reshape(n_c, n_k, 1, n_s)).reshape(n_c, -1)
    assert np.abs(back - full).max() <= 2e-13 * full.max()
    got = engine.compute(cfg, prep=prep)
    monkeypatch.setattr(engine.forecast, "compress_rates", lambda *a, **k: None)
    monkeypatch.setattr(engine.forecast, "factor_years", lambda *a, **k: None)
    rates, basis, _, _, year = engine.static_rates(prep)
    assert basis.shape == (0, 0) and year.shape == (0, 0, 0) and np.array_equal(rates, full)
    ref = engine.compute(cfg, prep=prep)
    assert ref.mean.max() > 0
    np.testing.assert_allclose(got.mean, ref.mean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(got.quantiles, ref.quantiles, rtol=1e-12, atol=0)


def test_factor_years_is_exact_pads_and_declines():
    """Time components per branch: exact for maps that scale or mix two shapes over the years, padded
    with zeros to the largest rank, and None where a branch needs every year."""
    from hra.inputs.forecast import factor_years

    rng = np.random.default_rng(5)
    n_c, n_k, n_y, n_s = 300, 3, 6, 2
    maps = rng.uniform(size=(n_c, n_k, 1, n_s)) * 1e-3
    rates = maps * np.stack([0.9 ** np.arange(n_y), 0.8 ** np.arange(n_y)], axis=1)[None, None]  # (c, k, y, s)
    rates[..., 1] += rng.uniform(size=(n_c, n_k, 1)) * 1e-3 * np.linspace(0.1, 1.0, n_y)  # branch 1: rank 2
    coef, year = factor_years(rates.reshape(n_c, -1), n_y, n_s)
    assert year.shape == (n_y, 2, n_s) and coef.shape == (n_c, n_k * 2 * n_s)
    c4 = coef.reshape(n_c, n_k, 2, n_s)
    assert np.all(year[:, 1, 0] == 0.0) and np.all(c4[:, :, 1, 0] == 0.0)  # branch 0: one component, padded
    back = np.einsum("ytS,cktS->ckyS", year, c4)
    assert np.abs(back - rates).max() <= 1e-13 * rates.max()
    np.testing.assert_allclose(year[:, :, 1].T @ year[:, :, 1], np.eye(2), atol=1e-14)  # orthonormal components
    # every year its own map: nothing to gain
    assert factor_years(rng.uniform(size=(n_c, n_k * n_y * n_s)), n_y, n_s) is None
    assert factor_years(rates.reshape(n_c, -1)[:, :n_k * n_s], 1, n_s) is None  # one year


def test_compress_rates_is_exact_deterministic_or_declines():
    from hra.inputs.forecast import compress_rates

    rng = np.random.default_rng(3)
    rates = rng.uniform(size=(700, 5)) @ rng.uniform(size=(5, 600)) * 1e-4  # rank 5
    left, basis = compress_rates(rates)
    assert left.shape == (700, 5) and basis.shape == (5, 600)  # trimmed to the rank
    assert np.abs(left @ basis - rates).max() <= 1e-13 * rates.max()
    again = compress_rates(rates)
    assert np.array_equal(again[0], left) and np.array_equal(again[1], basis)  # the same bits each run
    assert compress_rates(rng.uniform(size=(700, 60))) is None  # full rank: the rates as they are
    assert compress_rates(np.zeros((4, 16))) is None


def test_gemm_blocks_drop_only_zero_terms():
    """engine._gemm_blocks: a table slice's BLAS products split by the magnitude range of each
    combination's weights (a basis ends at its branch's Mmax) cover every row and every non-zero weight,
    and their products equal the unsplit product to rounding (and an einsum reference) - the split only
    leaves out zero terms."""
    from hra.integration import engine

    rng = np.random.default_rng(12)
    n, K, m, N = 6, 4, 40, 300
    wm = rng.uniform(0.1, 1.0, size=(n, K, m))
    ends = np.array([12, 40, 15, 38, 40, 13])  # each combination's last magnitude (its Mmax)
    for i, e in enumerate(ends):
        wm[i, :, e:] = 0.0
    wm[2, 3] = 0.0  # a basis function without weight (its row is left out)
    live = wm.any(axis=2)
    d = rng.uniform(0, 1e-3, size=(m, N)).astype(np.float32).astype(np.float64)
    blocks = engine._gemm_blocks(wm, live)
    assert len(blocks) == 2  # the short-Mmax combinations apart: 2 x (rows x 40) -> fewer products
    assert sorted(np.concatenate([g for g, _, _ in blocks]).tolist()) == list(range(n))
    full = np.matmul(wm[live], d)  # rows (n, k) in combination-major order
    ref = np.einsum("nkm,mr->nkr", wm, d)[live]
    got = np.empty_like(full)
    row_of = np.cumsum(live.ravel()).reshape(live.shape) - 1
    for g, lo, hi in blocks:
        assert not wm[g][:, :, :lo].any() and not wm[g][:, :, hi:].any()  # no weight left out
        assert live[g].sum() >= 2
        got[row_of[g][live[g]]] = np.matmul(np.ascontiguousarray(wm[g][:, :, lo:hi][live[g]]), d[lo:hi])
    # the zero terms left out: the same sums up to the BLAS kernel's order of summation (the same bits
    # with OpenBLAS's large-matrix kernels, as on the V7 field zone; its small-matrix path may differ)
    scale = np.abs(full).max(axis=1, keepdims=True)
    assert np.abs(got - full).max() <= 1e-15 * scale.max()
    np.testing.assert_allclose(got, ref, rtol=1e-13)
    # one combination: one block over everything
    assert [(g.tolist(), lo, hi) for g, lo, hi in engine._gemm_blocks(wm[:1], live[:1])] == [([0], 0, m)]
