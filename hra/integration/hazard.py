"""Site hazard: hazard curves and uniform hazard spectra.

For a site at (x, y) in zone z, the annual rate of exceedance of intensity level a in year y
for one logic-tree combination (source branch s, b-value, Mmax, GMM branches g):

    lambda(a) = sum_r H[r, y, s] * sum_m P(M = m | b, Mmax) * P(IM > a | m, r, z, g)

with H the site's rate of M >= m_min events per hypocentral-distance node (the same one-pass
histogram as the risk engine), the magnitude sum the exact GR integration of
:meth:`hra.inputs.source.MagnitudeBins.integrate`, and P(IM > a | m, r) the survival function of the
model's Gaussian mixture of ln IM (surface, site amplification included). The logic tree is
enumerated: the mean curve is the weighted mean of the rates, fractile curves are weighted
quantiles per level (inverse weighted empirical CDF, :func:`hra.core.logictree.weighted_quantile`).
Annual probabilities of exceedance are ``1 - exp(-lambda)`` (Poisson).

The uniform hazard spectrum at return period T interpolates each curve log-log at rate 1/T;
the NPR 9998 spectral parameters fitted to it are in :func:`npr9998.site_spectrum.fit_npr_spectrum`
(``npr9998`` builds on ``hra``, never the reverse).
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from hra.integration import kernels
from hra.config import Config
from hra.core.logictree import LogicTree, weighted_quantile

DEFAULT_LEVELS_G = np.geomspace(1e-3, 3.0, 60)


class HazardError(ValueError):
    """Bad hazard input (sites, IMs, return periods)."""


def _sites_frame(sites) -> pd.DataFrame:
    if isinstance(sites, pd.DataFrame):
        df = sites.copy()
    else:
        df = pd.DataFrame(sites)
    for col in ("x", "y"):
        if col not in df.columns:
            raise HazardError(f"sites need columns x, y [m, EPSG:28992] (and optionally id, zone); missing {col!r}")
    if "id" not in df.columns:
        df["id"] = [f"site-{i + 1}" for i in range(len(df))]
    if not np.all(np.isfinite(df[["x", "y"]].to_numpy(float))):
        raise HazardError("sites: coordinates must be finite numbers")
    return df.reset_index(drop=True)


def _site_zones(cfg: Config, gmm, df: pd.DataFrame) -> np.ndarray:
    if gmm.zones is None:
        return np.zeros(len(df), dtype=np.int64)
    if "zone" in df.columns and df["zone"].notna().all():
        zone = df["zone"].to_numpy(np.int64)
    else:
        from hra.chain import _zone_polygons
        from hra.inputs.sites import assign_zones

        polys = _zone_polygons(cfg)
        if polys is None:
            raise HazardError("sites have no zone column and no zone polygons are configured; add a 'zone' column")
        zone = assign_zones(df["x"].to_numpy(float), df["y"].to_numpy(float), polys[0], polys[1])
    bad = ~np.isin(zone, gmm.zones)
    if bad.any():
        raise HazardError(f"site {df['id'].iloc[int(np.flatnonzero(bad)[0])]!r} lies in zone {zone[bad][0]}, unknown to the GMM")
    return zone


def hazard_curves(cfg: Config, sites, imts: Sequence[str] | None = None, levels_g: Sequence[float] | None = None,
                  quantiles: Sequence[float] | None = None) -> xr.Dataset:
    """Hazard curves at sites, logic-tree mean and quantiles, per year.

    Parameters
    ----------
    cfg
        Run configuration (source, ground motion; exposure and fragility are not used).
    sites
        DataFrame or mapping with columns ``x``, ``y`` [m, EPSG:28992], optional ``id``, ``zone``.
    imts
        Intensity measures (default: all the model provides).
    levels_g
        Intensity levels [g] (default: 60 log-spaced levels from 0.001 to 3 g).
    quantiles
        Fractiles (default: ``cfg.run.quantiles``).

    Returns
    -------
    xarray.Dataset with ``rate_mean`` and ``rate_pNN`` [yr^-1] and ``poe_mean`` (annual
    probability of exceedance) on dims (site, imt, year, level).
    """
    from hra.chain import make_gmm, prepare_source, require_rate_grid

    df = _sites_frame(sites)
    require_rate_grid(cfg, "hazard curves")
    sm = prepare_source(cfg)
    gmm = make_gmm(cfg)
    imts = list(imts or gmm.imts)
    for imt in imts:
        gmm.check_imt(imt)
    levels = np.asarray(levels_g if levels_g is not None else DEFAULT_LEVELS_G, dtype=float)
    if np.any(levels <= 0):
        raise HazardError("intensity levels must be > 0 g")
    quantiles = list(quantiles if quantiles is not None else cfg.run.quantiles)
    zones = _site_zones(cfg, gmm, df)
    src = cfg.source
    r = sm.distance_nodes_km
    rates = np.ascontiguousarray(sm.rates.rate.reshape(sm.rates.rate.shape[0], -1))
    Y, S = sm.rates.years.size, len(sm.rates.branches)
    tree = LogicTree((sm.rates.node, sm.b_node, sm.m_max_node)) + gmm.tree
    real = tree.enumerate()
    gtree = gmm.tree.enumerate()
    gnames = [n.name for n in gmm.tree.nodes]
    mag = sm.magnitude
    nb, nx = mag.prob.shape[:2]
    # exceedance tables per zone: (b, x, g, imt, level, r)
    tables: dict[int, np.ndarray] = {}
    for z in np.unique(zones):
        tab = np.empty((nb, nx, gtree.n, len(imts), levels.size, r.size))
        for g in range(gtree.n):
            branch = {nm: int(gtree.index[g, j]) for j, nm in enumerate(gnames)}
            for i, imt in enumerate(imts):
                mix = gmm.ln_im_mixture(imt, mag.nodes, r, None if gmm.zones is None else int(z), branch)
                exc = np.empty((levels.size, mag.n_nodes, r.size))
                kernels.lognormal_expectation(np.ascontiguousarray(mix.mean), np.ascontiguousarray(mix.sd),
                                              np.ascontiguousarray(mix.weight), np.log(levels), np.zeros(levels.size), exc)
                tab[:, :, g, i] = mag.integrate(np.moveaxis(exc, 1, -1))
        tables[int(z)] = tab
    n_site, n_imt, n_lev = len(df), len(imts), levels.size
    mean = np.empty((n_site, n_imt, Y, n_lev))
    qs = np.empty((len(quantiles), n_site, n_imt, Y, n_lev))
    hist = np.empty((r.size, Y * S))
    ln_r0, dln = float(np.log(r[0])), float(np.log(r[1] / r[0]))
    for i_site in range(n_site):
        hist[:] = 0.0
        kernels.distance_histogram(float(df["x"].iloc[i_site]), float(df["y"].iloc[i_site]), sm.rates.x, sm.rates.y, rates,
                                   src.depth_km, ln_r0, dln, r.size, src.max_distance_km, src.cell_size_m,
                                   src.subcell_radius_km * 1000.0, src.subcell_divisions, hist)
        h = hist.reshape(r.size, Y, S)
        tab = tables[int(zones[i_site])]
        # lam[y, s, b, x, g, i, l]
        lam = np.einsum("rys,bxgilr->ysbxgil", h, tab, optimize=True)
        flat = lam.reshape(Y, -1, n_imt, n_lev)  # combos in C order of (s, b, x, g) = tree order
        mean[i_site] = np.einsum("ycil,c->iyl", flat, real.weight)
        for y in range(Y):
            for i in range(n_imt):
                for lv in range(n_lev):
                    qs[:, i_site, i, y, lv] = weighted_quantile(flat[y, :, i, lv], real.weight, quantiles)
    coords = {
        "site_id": ("site", df["id"].astype(str).to_numpy()),
        "x_rd": ("site", df["x"].to_numpy(float), {"units": "m"}),
        "y_rd": ("site", df["y"].to_numpy(float), {"units": "m"}),
        "zone": ("site", zones),
        "imt": ("imt", np.array(imts, dtype=str)),
        "year": ("year", sm.rates.years),
        "level_g": ("level", levels, {"units": "g", "long_name": "intensity level"}),
    }
    data = {"rate_mean": (("site", "imt", "year", "level"), mean,
                          {"units": "yr-1", "long_name": "annual rate of exceedance: logic-tree mean", "cell_methods": "realisation: mean"}),
            "poe_mean": (("site", "imt", "year", "level"), -np.expm1(-mean),
                         {"units": "1", "long_name": "annual probability of exceedance (Poisson) of the mean rate"})}
    from hra.outputs import quantile_name

    for j, q in enumerate(quantiles):
        data[quantile_name(q).replace("lpr_", "rate_")] = (("site", "imt", "year", "level"), qs[j],
                                                          {"units": "yr-1", "long_name": f"annual rate of exceedance: weighted {q * 100:g}th percentile"})
    return xr.Dataset(data, coords=coords, attrs={"title": "Site hazard curves", "ground_motion_model": gmm.name,
                                                   "n_branches": int(real.n), "Conventions": "CF-1.10"})


def uniform_hazard_spectrum(hc: xr.Dataset, return_periods: Sequence[float] = (475, 2475), statistic: str = "rate_mean") -> xr.DataArray:
    """Intensity [g] at annual rate 1/T, by log-log interpolation of each curve; NaN outside the levels."""
    rp = np.asarray(return_periods, dtype=float)
    rates = hc[statistic].values  # (site, imt, year, level)
    lv = np.log(hc["level_g"].values)
    out = np.full(rates.shape[:3] + (rp.size,), np.nan)
    for idx in np.ndindex(*rates.shape[:3]):
        curve = rates[idx]
        ok = curve > 0
        if ok.sum() < 2:
            continue
        lr = np.log(curve[ok])[::-1]  # increasing
        x = lv[ok][::-1]
        for k, t in enumerate(rp):
            target = -np.log(t)
            if lr[0] <= target <= lr[-1]:
                out[idx + (k,)] = np.exp(np.interp(target, lr, x))
    da = xr.DataArray(out, dims=("site", "imt", "year", "return_period"),
                      coords={**{c: hc[c] for c in ("site_id", "imt", "year")}, "return_period": rp},
                      attrs={"units": "g", "long_name": f"uniform hazard intensity ({statistic})"})
    return da


_SA = re.compile(r"^SA\(([0-9.]+)\)$")


def spectral_periods(imts: Sequence[str]) -> tuple[np.ndarray, list[int]]:
    """Periods [s] of the SA(T) IMs (PGA taken as T = 0) and their positions in ``imts``."""
    periods, idx = [], []
    for i, name in enumerate(imts):
        m = _SA.match(str(name))
        if m:
            periods.append(float(m.group(1)))
            idx.append(i)
        elif name == "PGA" and 0.0 not in periods:
            periods.append(0.0)
            idx.append(i)
    order = np.argsort(periods)
    return np.asarray(periods)[order], [idx[i] for i in order]
