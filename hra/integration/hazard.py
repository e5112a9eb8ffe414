"""Site hazard: hazard curves, uniform hazard spectra and hazard maps.

For a site at (x, y) in zone z, the annual rate of exceedance of intensity level a in year y
for one logic-tree combination (source branch s, b-value, Mmax, GMM branches g):

    lambda(a) = sum_r H[r, y, s] * sum_m P(M = m | b, Mmax) * P(IM > a | m, r, z, g)

with H the site's rate of M >= m_min events per hypocentral-distance node (the same one-pass
histogram as the risk engine), the magnitude sum the exact GR integration of
:meth:`hra.inputs.source.MagnitudeBins.integrate`, and P(IM > a | m, r) the survival function of the
model's Gaussian mixture of ln IM (surface, site amplification included).

**One logic tree for hazard and risk.** The GMM nodes are those the risk engine enumerates,
:func:`hra.chain.engine_gmm_tree`: for GMM V7/V6 the median node is replaced by the
magnitude-dependent weights w(M) (Bommer et al. 2021 eq. 9.8) through the same
:class:`hra.chain.MedianMap` (built by :func:`hra.chain.median_map_for`, mode
``[ground_motion] median_weights``): per magnitude node, a virtual branch takes the physical
median branch(es) of its ``mix`` before the magnitude integration. The mean curve is the weighted
mean of the rates (it equals the w(M) mixture exactly); fractile curves are weighted quantiles per
level over the enumerated combinations (inverse weighted empirical CDF, as
:func:`hra.core.logictree.weighted_quantile`). Annual probabilities of exceedance are
``1 - exp(-lambda)`` (Poisson).

**Component.** Hazard outputs default to the geometric-mean horizontal component (the chain's
hazard convention and the NPR 9998 one); ``component="arbitrary"`` adds the component-to-component
variance of GMM V7/V6 (the fragility functions' convention). Models with a single sigma ignore it.

**Speed.** All sites of a site-response zone share the ground-motion distribution per (M, R), so
the exceedance tables ``P(IM > a | m, r)`` are computed once per zone (sites are processed zone
by zone, so one zone's tables are in memory at a time). For models with mixtures at rupture
distances (GMM V7/V6) the tables use the grid path of :mod:`hra.integration.condtables`: the
mixtures on an (M, R_rup) grid (:func:`hra.integration.condtables.rrup_grid`: steps of at most
0.1 in ln R between the path-term hinges), the closed-form exceedance per component
(single-period IMs PGA and SA(T): the exact 1-D integral of
:meth:`hra.gmm.groningen_v7.GroningenV7.exceedance_rrup`), then R_rup given R_hyp by cubic
interpolation of ln P in ln R_rup. Per site only the distance histogram and a contraction with the tables remain.
With a strike model (``[ground_motion] rupture_strike``) the tables and the histogram have a
relative-azimuth axis beside the distance (:func:`hra.integration.kernels.distance_azimuth_histogram_k`;
interpolated between the azimuth nodes in harmonics or linearly, as in the risk engine).
For mean curves (maps) the (zone, IM) tables run as tasks on the ``[compute]`` executor.

With the one-hot w(M) map of GMM V7/V6 (``median_weights = "realisation"``, the default) a virtual
median branch takes one physical branch per magnitude node, so its magnitude integral is a sum
over bins of bin expectations of a (lower-edge branch, upper-edge branch) pair: the physical
tables are computed and interpolated over R_rup once (:func:`rrup_exceedance_tables`, in the
layout the interpolation writes), the bin expectations once per used (pair, bin) cell and group of
combinations that differ only in the median node
(:func:`hra.integration.kernels.magnitude_bin_expectations`), and what follows is linear: the
tree mean is one product of the cells with their weights summed over the group's combinations
(nothing is formed per combination), the per-combination tables (only for fractiles and
``keep_branches``) one product with the weights per virtual branch. The magnitude integration is
not linear in the tables (exponential interpolation within a bin), so it runs per azimuth node;
the harmonic projection acts on the site's histogram. Other median maps and models take the
generic path (per combination: the mixed tables, then
:meth:`~hra.inputs.source.MagnitudeBins.integrate`), the reference of the first in the tests.

The uniform hazard spectrum at return period T interpolates each curve log-log at rate 1/T;
the NPR 9998 spectral parameters fitted to it are in :func:`npr9998.site_spectrum.fit_npr_spectrum`
(``npr9998`` builds on ``hra``, never the reverse). :func:`hazard_map` computes the mean PGA at
return periods on a node grid over the field; :func:`write_hazard_map` writes it as a GeoPackage
and a PNG.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from hra.config import Config
from hra.core.executor import single_thread_blas
from hra.core.logictree import LogicTree
from hra.integration import condtables, kernels

log = logging.getLogger("hra")

DEFAULT_LEVELS_G = np.geomspace(1e-3, 3.0, 60)
COMPONENTS = ("geometric_mean", "arbitrary")


class HazardError(ValueError):
    """Bad hazard input (sites, IMs, return periods)."""


def normalize_imt(name: str) -> str:
    """Canonical IM name: ``"sa(0.30)"`` -> ``"SA(0.3)"``, ``"pga"`` -> ``"PGA"``, ``"avgsa"`` -> ``"AvgSa"``."""
    s = str(name).strip()
    m = re.fullmatch(r"(?i)sa\(\s*([0-9]*\.?[0-9]+)\s*s?\s*\)", s)
    if m:
        return f"SA({float(m.group(1)):g})"
    return {"pga": "PGA", "pgv": "PGV", "avgsa": "AvgSa"}.get(s.lower(), s)


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
    if len(df) == 0:
        raise HazardError("sites: no sites given")
    xy = pd.DataFrame({c: pd.to_numeric(df[c], errors="coerce") for c in ("x", "y")})
    bad = ~np.all(np.isfinite(xy.to_numpy(float)), axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise HazardError(f"sites row {i + 1} (id {df['id'].iloc[i]!r}): x, y must be finite numbers [m, EPSG:28992]")
    df[["x", "y"]] = xy
    return df.reset_index(drop=True)


def site_zones(cfg: Config, gmm, x: np.ndarray, y: np.ndarray, zone: np.ndarray | None = None,
               files: dict[str, str] | None = None) -> np.ndarray:
    """Site-response zone of each point: the given ``zone`` where present, else from the
    configured zonation (the V6 zip for GMM V7/V6, as :func:`hra.chain.assign_sites`)."""
    x = np.asarray(x, float)
    if gmm.zones is None:
        return np.zeros(x.size, dtype=np.int64)
    y = np.asarray(y, float)
    out = np.full(x.size, -1, dtype=np.int64)
    given = np.zeros(x.size, dtype=bool) if zone is None else np.isfinite(np.asarray(zone, float))
    if given.any():
        out[given] = np.asarray(zone, float)[given].astype(np.int64)
    if not given.all():
        from hra.chain import zone_source

        source = zone_source(cfg)
        if files is not None and source is not None and getattr(source, "path", None) is not None:
            from hra.chain import _sha256_cached

            files[f"zonation:{Path(source.path).name}"] = _sha256_cached(Path(source.path))
        if source is None:
            raise HazardError("sites without a zone and no zone polygons are configured; add a 'zone' column "
                              "or set [ground_motion] zones")
        out[~given] = source.assign(x[~given], y[~given], gmm.zones)
    return out


def _site_zones(cfg: Config, gmm, df: pd.DataFrame, files: dict[str, str] | None = None) -> np.ndarray:
    given = df["zone"].to_numpy(float) if "zone" in df.columns else None
    zone = site_zones(cfg, gmm, df["x"].to_numpy(float), df["y"].to_numpy(float), given, files)
    if gmm.zones is not None:
        bad = ~np.isin(zone, gmm.zones)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise HazardError(f"site {df['id'].iloc[i]!r} (row {i + 1}) lies in zone {zone[i]}, unknown to the GMM "
                              f"{gmm.name!r}; fix the zone column or leave it empty to use the zonation")
    return zone


# ------------------------------------------------------------------------------------------
# zone tables
# ------------------------------------------------------------------------------------------


def _exceedance(mix, ln_levels: np.ndarray) -> np.ndarray:
    """P(ln IM > ln a) (L, ...) of a mixture with arrays (..., q) (closed form per component)."""
    lead = mix.mean.shape[:-1]
    q = mix.mean.shape[-1]
    mean = np.ascontiguousarray(mix.mean.reshape(1, -1, q)) if len(lead) == 1 else np.ascontiguousarray(mix.mean)
    sd = np.ascontiguousarray(mix.sd.reshape(mean.shape))
    w = np.ascontiguousarray(mix.weight.reshape(mean.shape))
    out = np.empty((ln_levels.size,) + mean.shape[:2])
    kernels.lognormal_expectation(mean, sd, w, np.ascontiguousarray(ln_levels), np.zeros(ln_levels.size), out)
    return out.reshape((ln_levels.size,) + lead)


def _single_period(gmm, imt: str) -> bool:
    """True if the model gives the exact single-period exceedance for this IM (GMM V7/V6 PGA, SA(T))."""
    return hasattr(gmm, "exceedance_rrup") and (imt == "PGA" or imt.startswith("SA("))


def rrup_exceedance_tables(gmm, imt: str, levels_g: np.ndarray, mag_nodes: np.ndarray, r_hyp: np.ndarray, zone,
                           branches: list[dict]) -> tuple[np.ndarray, list[int]]:
    """P(IM > a | m, R_hyp) of one IM at a zone for physical GMM branches of a grid-path model
    (:func:`hra.integration.condtables.supports`), in the layout the R_rup interpolation writes.

    Returns ``p`` (m, r, J * B * L), C-contiguous: magnitude node m, distance row r (R_hyp node,
    azimuth node), column ``(j * B + b) * L + l`` for site-term branch ``js[j]``, physical branch
    ``branches[b]`` and level l; and ``js``, the site-term branch indices. The exceedances on the
    R_rup grid are stacked directly in the (m, g, J, B, L) layout that
    :func:`hra.integration.condtables._over_rrup` reads (one copy, no transposed stack).
    """
    levels_g = np.asarray(levels_g, float)
    ln_levels = np.log(levels_g)
    M, L, B = mag_nodes.size, ln_levels.size, len(branches)
    r_grid = condtables.rrup_grid(gmm, r_hyp)
    G = r_grid.size
    if _single_period(gmm, imt):
        res = gmm.exceedance_rrup(imt, mag_nodes, r_grid, zone, branches, levels_g)  # j -> (B, m, g, L)
        js = sorted(res)
        stack = np.empty((M, G, len(js), B, L))
        for k, j in enumerate(js):
            stack[:, :, k] = np.moveaxis(res.pop(j), 0, 2)
    else:
        stack = None
        js = []
        for ib, br in enumerate(branches):
            mixes = gmm.ln_im_mixtures_rrup(imt, mag_nodes, r_grid, zone, br, ln_im_floor=float(ln_levels.min()))
            if stack is None:
                js = sorted(mixes)
                stack = np.empty((M, G, len(js), B, L))
            for k, j in enumerate(js):
                stack[:, :, k, ib] = np.moveaxis(_exceedance(mixes[j], ln_levels), 0, -1)
    p = condtables._over_rrup(gmm, stack.reshape(M, G, -1), r_grid, mag_nodes, r_hyp)  # (m, r, J*B*L)
    return p, js


def physical_exceedance(gmm, imt: str, levels_g: np.ndarray, mag_nodes: np.ndarray, r_hyp: np.ndarray, zone,
                        branches: list[dict]) -> list[dict]:
    """P(IM > a | m, R_hyp) of one IM at a zone for physical GMM branches, arrays (m, r, level).

    ``branches`` give every node but gmm_s2s for models that compute their site-term branches
    together (GMM V7/V6): one dict per branch, site-term index -> array. Single-period IMs of
    GMM V7/V6 use the exact :meth:`~hra.gmm.groningen_v7.GroningenV7.exceedance_rrup` on the
    R_rup grid, other IMs of those models the mixtures at rupture distances, both then
    integrated over R_rup given R_hyp (:mod:`hra.integration.condtables`); other models their
    mixtures at the R_hyp nodes (``{None: array}``).
    """
    if condtables.supports(gmm):
        p, js = rrup_exceedance_tables(gmm, imt, levels_g, mag_nodes, r_hyp, zone, branches)
        M, R, L = mag_nodes.size, r_hyp.size * condtables.n_azimuth(gmm), np.size(levels_g)
        p = np.moveaxis(p.reshape(M, R, len(js), len(branches), L), (2, 3), (0, 1))  # (J, B, m, r, L) view
        return [{j: p[k, ib] for k, j in enumerate(js)} for ib in range(len(branches))]
    ln_levels = np.log(np.asarray(levels_g, float))
    out = []
    for br in branches:
        out.append({None: np.moveaxis(_exceedance(gmm.ln_im_mixture(imt, mag_nodes, r_hyp, zone, br), ln_levels), 0, -1)})
    return out


def zone_tables(gmm, imt: str, levels_g: np.ndarray, mag, r_hyp: np.ndarray, zone, median_map,
                keep_branches: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Exceedance tables of one zone and IM, integrated over magnitude, per engine GMM combination.

    Parameters
    ----------
    gmm
        Ground-motion model (its component fixed at construction).
    imt, levels_g
        IM and intensity levels [g].
    mag
        :class:`hra.inputs.source.MagnitudeBins`.
    r_hyp
        Hypocentral-distance nodes [km].
    zone
        Site-response zone (``None`` for zone-free models).
    median_map
        :class:`hra.chain.MedianMap` or ``None``; the GMM combinations g are those of
        :func:`hra.chain.engine_gmm_tree` (C order). A virtual median branch takes, at each
        magnitude node, the physical branch(es) of ``median_map.mix`` before the magnitude
        integration; for one-hot maps (``"realisation"``) the per-bin expectations of
        :meth:`~hra.inputs.source.MagnitudeBins.bin_expectations` are computed once per pair of
        physical branches at a bin's two nodes and shared by the virtual branches.
    keep_branches
        Also return the per-combination tables (float32).

    Returns
    -------
    mean : (b, x, r, level)
        P(IM > a) per event at each distance node, weighted mean over the GMM combinations [-].
    tab : (b, x, g, r, level) float32 or None
        Per engine GMM combination g.
    """
    one_hot = median_map is not None and bool(np.all((median_map.mix == 0) | (median_map.mix == 1)))
    if one_hot and condtables.supports(gmm):
        return _zone_tables_cells(gmm, imt, levels_g, mag, r_hyp, zone, median_map, keep_branches)
    return _zone_tables_generic(gmm, imt, levels_g, mag, r_hyp, zone, median_map, keep_branches)


def _tree_layout(gmm, median_map):
    """The engine GMM combinations and the physical branches behind them (:func:`zone_tables`)."""
    import itertools

    from hra.chain import engine_gmm_tree

    pnames = [n.name for n in gmm.tree.nodes]
    psizes = {n.name: n.size for n in gmm.tree.nodes}
    eng_tree = engine_gmm_tree(gmm, median_map)
    eng = eng_tree.enumerate()
    enames = [n.name for n in eng_tree.nodes]
    grouped = condtables.supports(gmm)
    free = [nm for nm in pnames if not (grouped and nm == "gmm_s2s")]  # nodes of a physical branch
    keys = list(itertools.product(*[range(psizes[nm]) for nm in free]))
    idx_of = [{nm: int(eng.index[ge, j]) for j, nm in enumerate(enames)} for ge in range(eng.n)]
    return eng, free, keys, idx_of, grouped


def _zone_tables_generic(gmm, imt: str, levels_g: np.ndarray, mag, r_hyp: np.ndarray, zone, median_map,
                         keep_branches: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`zone_tables` for any model and median map: per engine combination, the virtual
    median branch mixed from the physical tables (:meth:`hra.chain.MedianMap.combine`), then
    :meth:`~hra.inputs.source.MagnitudeBins.integrate` (also the reference of the one-hot path)."""
    levels_g = np.asarray(levels_g, float)
    eng, free, keys, idx_of, grouped = _tree_layout(gmm, median_map)
    med = median_map.node if median_map is not None else None
    branches = [dict(zip(free, k)) for k in keys]
    phys = dict(zip(keys, physical_exceedance(gmm, imt, levels_g, mag.nodes, r_hyp, zone, branches)))
    nb, nx = mag.prob.shape[:2]
    R, L = r_hyp.size * condtables.n_azimuth(gmm), levels_g.size  # (R_hyp, azimuth) flattened
    mean = np.zeros((nb, nx, R, L))
    tab = np.empty((nb, nx, eng.n, R, L), dtype=np.float32) if keep_branches else None

    def exc(idx: dict, k: int | None) -> np.ndarray:
        key = tuple(k if nm == med else idx.get(nm, 0) for nm in free)
        j = idx.get("gmm_s2s", 0) if grouped else None
        return np.moveaxis(phys[key][j], 0, -1)  # (r, L, m)

    for ge, idx in enumerate(idx_of):
        if median_map is None:
            g = exc(idx, None)
        else:
            g = median_map.combine(idx.get(med, 0), lambda k: exc(idx, k), mag_axis=-1)
        t = mag.integrate(g)
        mean += eng.weight[ge] * t
        if tab is not None:
            tab[:, :, ge] = t
    return mean, tab


def _zone_tables_cells(gmm, imt: str, levels_g: np.ndarray, mag, r_hyp: np.ndarray, zone, median_map,
                       keep_branches: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`zone_tables` of a grid-path model (GMM V7/V6) with a one-hot median map.

    A virtual median branch v takes physical branch ``k(v, m)`` at magnitude node m, so its
    magnitude integral is ``sum_bins E_bin[k(v, i) at node i, k(v, i+1) at node i+1] P(bin)``:
    the bin expectations are computed once per used (pair of physical branches, bin) "cell" and
    per group of combinations that differ only in the median node
    (:func:`hra.integration.kernels.magnitude_bin_expectations`, read straight from the
    R_rup-interpolated tables of :func:`rrup_exceedance_tables`). The integration over the bins,
    the choice of the virtual branch and the tree mean are then linear: the mean is one product
    of the cells with their summed weights ``sum_v w_v P(bin)`` (nothing per combination), the
    per-combination tables (``keep_branches``) one product with the weights per virtual branch.
    """
    from hra.inputs.source import LN10, _exprel

    levels_g = np.asarray(levels_g, float)
    eng, free, keys, idx_of, _ = _tree_layout(gmm, median_map)
    med = median_map.node
    branches = [dict(zip(free, k)) for k in keys]
    p, js = rrup_exceedance_tables(gmm, imt, levels_g, mag.nodes, r_hyp, zone, branches)  # (m, r, J*B*L)
    nb, nx = mag.prob.shape[:2]
    R, L, B = p.shape[1], levels_g.size, len(keys)
    key_pos = {k: n for n, k in enumerate(keys)}
    kidx = median_map.mix.argmax(axis=2)  # (V, m): physical branch of virtual branch v at node m
    V, nbins = kidx.shape[0], mag.nodes.size - 1
    pairs = sorted({(int(a), int(b)) for a, b in zip(kidx[:, :-1].ravel(), kidx[:, 1:].ravel())})
    pair_of = {pr: n for n, pr in enumerate(pairs)}
    pidx = np.vectorize(lambda a, b: pair_of[(int(a), int(b))])(kidx[:, :-1], kidx[:, 1:])  # (V, bins)
    used = np.zeros((len(pairs), nbins), dtype=bool)
    used[pidx, np.broadcast_to(np.arange(nbins), pidx.shape)] = True
    cell_of = np.cumsum(used.ravel()).reshape(used.shape) - 1  # cell of (pair, bin), pair-major
    cell_pair, cell_bin = np.nonzero(used)  # (cells,), in the order of cell_of
    cell_bin = cell_bin.astype(np.int64)
    cell_lo = np.array([pairs[n][0] for n in cell_pair], dtype=np.int64)  # physical branch at the lower edge
    cell_hi = np.array([pairs[n][1] for n in cell_pair], dtype=np.int64)
    n_med = median_map.mix.shape[2]
    n_cells = cell_bin.size
    vcell = cell_of[pidx, np.arange(nbins)[None, :]]  # (V, bins): cell of virtual branch v's bin
    h = np.diff(mag.nodes)
    groups: dict[tuple, list[int]] = {}
    for ge, idx in enumerate(idx_of):
        groups.setdefault(tuple(sorted((k, v) for k, v in idx.items() if k != med)), []).append(ge)
    mean_xrl = np.zeros((nb, nx, R * L))
    tab = np.empty((nb, nx, eng.n, R, L), dtype=np.float32) if keep_branches else None
    e = np.empty((n_cells, R, L))
    e2 = e.reshape(n_cells, R * L)
    ln_tab = np.empty((n_med, p.shape[0], R, L))
    for rest, members in groups.items():
        idx0 = dict(rest)
        j = js.index(idx0.get("gmm_s2s", 0))

        # first column of each physical median branch's table in this group
        branch_col = np.array([(j * B + key_pos[tuple(k if nm == med else idx0.get(nm, 0) for nm in free)]) * L
                               for k in range(n_med)], dtype=np.int64)
        with np.errstate(divide="ignore"):
            for k, c0 in enumerate(branch_col):  # ln P of the group's tables (numpy's SIMD log)
                np.log(p[:, :, c0:c0 + L], out=ln_tab[k])
        v_of = np.array([idx_of[ge].get(med, 0) for ge in members])
        w_ge = eng.weight[members]
        for ib in range(nb):
            beta_h = mag.b_values[ib] * LN10 * h
            frac_hi = 1.0 / beta_h - 1.0 / np.expm1(beta_h)
            kernels.magnitude_bin_expectations(p, ln_tab, branch_col, cell_lo, cell_hi, cell_bin, beta_h, np.exp(-beta_h), frac_hi,
                                               1.0 / _exprel(-beta_h), e)
            prob = mag.prob[ib].T  # (bins, nx)
            # tree mean: the cells' weights summed over the group's combinations
            w_mean = np.zeros((n_cells, nx))
            np.add.at(w_mean, vcell[v_of].ravel(), (w_ge[:, None, None] * prob[None]).reshape(-1, nx))
            mean_xrl[ib] += w_mean.T @ e2  # (x, r*L)
            if tab is not None:
                w = np.zeros((n_cells, nx, V))
                for v in range(V):
                    w[vcell[v], :, v] = prob
                res = (w.reshape(n_cells, nx * V).T @ e2).reshape(nx, V, R, L)
                for ge, v in zip(members, v_of):
                    tab[ib, :, ge] = res[:, v]
    return mean_xrl.reshape(nb, nx, R, L), tab


def _zone_mean_task(task: tuple, static: tuple) -> tuple[np.ndarray, float]:
    """Executor task: the tree-mean table of one (zone, IM) and its time [s]."""
    gmm, levels, mag, r_hyp, median_map = static
    zone, imt = task
    t0 = time.perf_counter()
    mtab, _ = zone_tables(gmm, imt, levels, mag, r_hyp, zone, median_map, keep_branches=False)
    return mtab, time.perf_counter() - t0


# ------------------------------------------------------------------------------------------
# reduction
# ------------------------------------------------------------------------------------------


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, probs: Sequence[float]) -> np.ndarray:
    """Weighted quantiles along axis 0 of ``values`` (n, ...) -> (len(probs), ...).

    The inverse weighted empirical CDF of :func:`hra.core.logictree.weighted_quantile`
    (``Q(p) = min{v_i : F(v_i) >= p}``, relative tolerance 1e-12), vectorised over the other axes.
    """
    v = np.asarray(values)
    w = np.asarray(weights, dtype=float)
    order = np.argsort(v, axis=0, kind="stable")
    vs = np.take_along_axis(v, order, axis=0)
    cum = np.cumsum(w[order], axis=0)
    total = cum[-1]
    out = np.empty((len(probs),) + v.shape[1:], dtype=float)
    for k, p in enumerate(probs):
        pos = np.argmax(cum >= p * total * (1.0 - 1e-12), axis=0)
        out[k] = np.take_along_axis(vs, pos[None], axis=0)[0]
    return out


# ------------------------------------------------------------------------------------------
# hazard curves
# ------------------------------------------------------------------------------------------


@single_thread_blas()
def hazard_curves(cfg: Config, sites, imts: Sequence[str] | None = None, levels_g: Sequence[float] | None = None,
                  quantiles: Sequence[float] | None = None, component: str = "geometric_mean",
                  years: Sequence[int] | None = None, progress: bool | None = None,
                  keep_branches: bool = False) -> xr.Dataset:
    """Hazard curves at sites, logic-tree mean and quantiles, per year.

    The annual rate of exceedance of each intensity level at each site's surface, from the
    config's source (rate grid, magnitude law) and ground-motion model including site response,
    for every branch of the source and GMM logic tree (enumerated), reduced to the weighted
    mean and weighted quantiles (docs/lpr.md §2, §4).

    Parameters
    ----------
    cfg
        Run configuration (source, ground motion; exposure and fragility are not used).
    sites
        DataFrame or mapping with columns ``x``, ``y`` [m, EPSG:28992], optional ``id`` and
        ``zone`` (default: from the model's zonation).
    imts
        Intensity measures, e.g. ``["PGA", "SA(0.3)"]`` (default: all the model provides; GMM
        V7/V6: AvgSa, PGA and SA(T) at the tabulated periods 0.01-1 s).
    levels_g
        Intensity levels, > 0 (default: 60 log-spaced levels from 0.001 to 3 g). [g]
    quantiles
        Quantile probabilities in (0, 1) (default: ``cfg.run.quantiles``; ``[]`` for the mean only,
        much faster). [-]
    component
        ``"geometric_mean"`` (default) or ``"arbitrary"`` horizontal component (GMM V7/V6).
    years
        Subset of ``[run] years`` (default: all). [yr]
    progress
        Progress bar on a terminal / log lines (default: ``[compute] progress``, else whether
        stderr is a terminal).
    keep_branches
        Also return ``rate_branch`` (site, imt, year, level, branch) and ``branch_weight``:
        the rate of every enumerated logic-tree combination (small cases only).

    Returns
    -------
    xarray.Dataset
        ``rate_mean`` and ``rate_pNN`` (one per quantile) [yr^-1] and ``poe_mean``, the annual
        probability of exceedance 1 - exp(-rate_mean) [-], on dims (site, imt, year, level);
        coordinates ``site_id``, ``x_rd``, ``y_rd`` [m], ``zone``, ``imt``, ``year`` and
        ``level_g`` [g]; the attribute ``provenance`` as the risk Dataset.

    Raises
    ------
    HazardError
        Bad sites, an intensity measure the model does not provide, or a level <= 0.

    Examples
    --------
    >>> import hra
    >>> cfg = hra.demo_config(n_buildings=10, realisations=10, years=(2025,))
    >>> sites = {"id": ["A"], "x": [245_000.0], "y": [590_000.0], "zone": [3]}
    >>> hc = hra.hazard_curves(cfg, sites, imts=["PGA"], levels_g=[0.05, 0.1, 0.2])  # doctest: +SKIP
    >>> hc["rate_mean"].sel(imt="PGA", year=2025).dims  # doctest: +SKIP
    ('site', 'level')
    """
    import hra.outputs as outputs
    from hra.chain import engine_gmm_tree, make_gmm, median_map_for, prepare_source, require_rate_grid
    from hra.core.progress import progress_bar

    start = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.perf_counter()
    if component not in COMPONENTS:
        raise HazardError(f"component must be one of {COMPONENTS}, got {component!r}")
    df = _sites_frame(sites)
    require_rate_grid(cfg, "hazard curves")
    sm = prepare_source(cfg)
    gmm = make_gmm(cfg, component=component)
    imts = [normalize_imt(i) for i in (imts or gmm.imts)]
    for imt in imts:
        try:
            gmm.check_imt(imt)
        except KeyError as exc:
            raise HazardError(str(exc).strip("'\"")) from None
    if len(set(imts)) != len(imts):
        raise HazardError(f"IMs given twice: {imts}")
    levels = np.asarray(levels_g if levels_g is not None else DEFAULT_LEVELS_G, dtype=float)
    if levels.ndim != 1 or levels.size < 2 or np.any(~np.isfinite(levels)) or np.any(levels <= 0) or np.any(np.diff(levels) <= 0):
        raise HazardError("intensity levels must be >= 2 increasing finite values > 0 g")
    quantiles = list(quantiles if quantiles is not None else cfg.run.quantiles)
    if any(not 0.0 <= q <= 1.0 for q in quantiles):
        raise HazardError(f"quantiles must lie in [0, 1], got {quantiles}")
    all_years = np.asarray(sm.rates.years)
    if years is None:
        y_sel = np.arange(all_years.size)
    else:
        missing = [y for y in years if int(y) not in all_years]
        if missing:
            raise HazardError(f"year(s) {missing} not in [run] years {list(all_years)}")
        y_sel = np.array([int(np.flatnonzero(all_years == int(y))[0]) for y in years])
    if progress is None:
        progress = cfg.compute.progress if cfg.compute.progress is not None else sys.stderr.isatty()
    zone_files: dict[str, str] = {}
    zones = _site_zones(cfg, gmm, df, zone_files)
    median_map = median_map_for(cfg, gmm, sm.magnitude)
    src = cfg.source
    r = sm.distance_nodes_km
    rates = np.ascontiguousarray(sm.rates.rate.reshape(sm.rates.rate.shape[0], -1))
    Yall, S = all_years.size, len(sm.rates.branches)
    Y = y_sel.size
    tree = LogicTree((sm.rates.node, sm.b_node, sm.m_max_node)) + engine_gmm_tree(gmm, median_map)
    real = tree.enumerate()
    w_s = sm.rates.node.weight_array
    w_b, w_x = sm.b_node.weight_array, sm.m_max_node.weight_array
    need_branches = bool(quantiles) or keep_branches
    n_site, n_imt, n_lev = len(df), len(imts), levels.size
    mean = np.empty((n_site, n_imt, Y, n_lev))
    qs = np.empty((len(quantiles), n_site, n_imt, Y, n_lev))
    branches = np.empty((n_site, n_imt, Y, n_lev, real.n), dtype=np.float32) if keep_branches else None
    n_a = condtables.n_azimuth(gmm)  # a strike model: the distance axis is (R_hyp node, azimuth node)
    strike_deg = float(gmm.rupture_strike[0]) if n_a > 1 else 0.0
    harmonic = condtables.azimuth_harmonics(gmm) > 0
    proj = condtables.azimuth_projection(gmm)
    hist = np.empty((r.size * n_a, Yall * S))
    ln_r0, dln = float(np.log(r[0])), float(np.log(r[1] / r[0]))
    t_tables = 0.0
    zone_key = zones if gmm.zones is not None else np.zeros(n_site, dtype=np.int64)
    order = np.argsort(zone_key, kind="stable")
    uniq = np.unique(zone_key)
    # mean curves only: the (zone, IM) tables are independent tasks, run on the [compute]
    # executor (dask processes) when there are enough of them; the tables do not depend on
    # where they run, so neither do the results
    pre: dict = {}
    parallel = False
    workers = cfg.compute.n_workers
    if not need_branches and (workers > 1 or cfg.compute.scheduler is not None) \
            and uniq.size * n_imt >= 2 * workers:
        from hra.core.executor import Executor

        tasks = [(None if gmm.zones is None else int(z), imt) for z in uniq for imt in imts]
        if condtables.supports(gmm):
            condtables.warm_rrup_cache(gmm, sm.magnitude.nodes, r)
        with Executor.from_config(cfg.compute, progress) as ex:
            parallel = ex.parallel
            res = ex.map(_zone_mean_task, tasks, label="hazard tables (zone x IM)",
                         shared={"static": (gmm, levels, sm.magnitude, r, median_map)})
        pre = {t: m for t, (m, _) in zip(tasks, res)}
        t_tables += sum(dt for _, dt in res)
    # progress: per site and IM (a bar, or log lines), and, as log lines with an ETA, per (zone, IM)
    # table computed here (the tables cost most: the site bar waits for each zone's table)
    n_here = uniq.size * n_imt - len(pre)
    with progress_bar(n_site * n_imt, "hazard (site x IM)", progress) as advance, \
            progress_bar(n_here, "hazard tables (zone x IM)", enabled=False) as table_done:
        for z in uniq:
            members = order[zone_key[order] == z]
            hs = {}
            for i_site in members:
                hist[:] = 0.0
                kernels.distance_azimuth_histogram_k(
                    float(df["x"].iloc[i_site]), float(df["y"].iloc[i_site]), sm.rates.x, sm.rates.y, rates, src.depth_km,
                    ln_r0, dln, r.size, n_a, 1, strike_deg, harmonic, src.max_distance_km, src.cell_size_m,
                    src.subcell_radius_km * 1000.0, src.subcell_divisions, hist, src.distance_interpolation == "cubic")
                h = hist
                if harmonic:  # harmonic rows -> weights of the tables' azimuth nodes (sum_k h_k (P q)_k = sum_a (P'h)_a q_a)
                    h = np.einsum("ka,rkv->rav", proj, hist.reshape(r.size, n_a, -1)).reshape(hist.shape)
                hs[i_site] = h.reshape(r.size * n_a, Yall, S)[:, y_sel].copy()
            for i, imt in enumerate(imts):
                zarg = None if gmm.zones is None else int(z)
                if (zarg, imt) in pre:
                    mtab, tab = pre.pop((zarg, imt)), None
                else:
                    tz = time.perf_counter()
                    mtab, tab = zone_tables(gmm, imt, levels, sm.magnitude, r, zarg, median_map, keep_branches=need_branches)
                    t_tables += time.perf_counter() - tz
                    log.debug("hazard: zone %s %s tables in %.1f s", z, imt, time.perf_counter() - tz)
                    table_done()
                for i_site in members:
                    h = hs[i_site]
                    mean[i_site, i] = np.einsum("rys,bxrl,s,b,x->yl", h, mtab, w_s, w_b, w_x, optimize=True)
                    if need_branches:
                        # lam[y, (s, b, x, g), l] in the C order of the tree (source, b, Mmax, GMM nodes)
                        lam = np.einsum("rys,bxgrl->ysbxgl", h.astype(np.float32), tab, optimize=True)
                        flat = lam.reshape(Y, real.n, n_lev)
                        if quantiles:
                            qs[:, i_site, i] = weighted_quantiles(np.moveaxis(flat, 1, 0), real.weight, quantiles)
                        if keep_branches:
                            branches[i_site, i] = np.moveaxis(flat, 1, 2)
                    advance()
    end = _dt.datetime.now(_dt.timezone.utc)
    coords = {
        "site": ("site", df["id"].astype(str).to_numpy()),
        "site_id": ("site", df["id"].astype(str).to_numpy()),
        "x_rd": ("site", df["x"].to_numpy(float), {"units": "m", "standard_name": "projection_x_coordinate"}),
        "y_rd": ("site", df["y"].to_numpy(float), {"units": "m", "standard_name": "projection_y_coordinate"}),
        "zone": ("site", np.asarray(zones, dtype=np.int64)),
        "imt": ("imt", np.array(imts, dtype=str)),
        "year": ("year", all_years[y_sel]),
        "level": ("level", np.asarray(levels, float), {"units": "g", "long_name": "intensity level (index: hc.sel(level=0.1, method='nearest'))"}),
        "level_g": ("level", levels, {"units": "g", "long_name": "intensity level"}),
    }
    data = {"rate_mean": (("site", "imt", "year", "level"), mean,
                          {"units": "yr-1", "long_name": "annual rate of exceedance: logic-tree mean", "cell_methods": "realisation: mean"}),
            "poe_mean": (("site", "imt", "year", "level"), -np.expm1(-mean),
                         {"units": "1", "long_name": "annual probability of exceedance (Poisson) of the mean rate"})}
    for j, q in enumerate(quantiles):
        data[outputs.quantile_name(q).replace("lpr_", "rate_")] = (
            ("site", "imt", "year", "level"), qs[j],
            {"units": "yr-1", "long_name": f"annual rate of exceedance: weighted {q * 100:g}th percentile"})
    if keep_branches:
        data["rate_branch"] = (("site", "imt", "year", "level", "branch"), branches,
                               {"units": "yr-1", "long_name": "annual rate of exceedance per logic-tree combination"})
        data["branch_weight"] = (("branch",), real.weight, {"units": "1", "long_name": "weight of the combination"})
    files = dict(sm.files)
    for name, digest in getattr(gmm, "file_checksums", {}).items():
        files[f"gmm:{name}"] = digest
    files.update(zone_files)
    comp = getattr(gmm, "component", "as defined by the model (single sigma)")
    prov = outputs.provenance(
        cfg.sha256(), files, cfg.run.seed, real.n, True, start, end, config=cfg,
        extra={
            "ground_motion_model": gmm.name, "ground_motion_reference": getattr(gmm, "reference", None),
            "ground_motion_verified": bool(getattr(gmm, "verified", False)),
            "logic_tree": {n.name: dict(zip(n.labels, n.weights)) for n in tree.nodes},
            "median_weights": getattr(cfg.ground_motion, "median_weights", None) if median_map is not None else None,
            "component": comp,
            "timings_s": {"tables": round(t_tables, 3), "total": round(time.perf_counter() - t0, 3)},
            "workers": int(workers) if parallel else 1,
            "config_file": str(cfg.source_file) if cfg.source_file else None,
        },
    )
    now = end.isoformat(timespec="seconds")
    attrs = {"title": "Site hazard curves", "Conventions": "CF-1.10", "institution": "groningen-hra",
             "source": f"groningen-hra {outputs.package_version()}", "crs": f"EPSG:{outputs.EPSG} ({outputs.CRS_WKT_NAME})",
             "ground_motion_model": gmm.name, "component": comp, "n_branches": int(real.n),
             "quantiles": json.dumps(sorted(quantiles)), "history": f"[{now}] hra hazard curves",
             "provenance": json.dumps(prov, sort_keys=True, default=str)}
    return xr.Dataset(data, coords=coords, attrs=attrs)

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


def spectral_imts(gmm) -> list[str]:
    """The model's PGA and SA(T) IMs (the NPR 9998 spectrum); SA at the PGA period is left out
    when the model defines PGA as that period (GMM V7/V6: PGA = Sa(0.01 s))."""
    pga_period = getattr(gmm, "pga_period_s", 0.01 if hasattr(gmm, "exceedance_rrup") else None)
    out = []
    for name in gmm.imts:
        m = _SA.match(str(name))
        if name == "PGA" or (m and (pga_period is None or abs(float(m.group(1)) - pga_period) > 1e-9)):
            out.append(str(name))
    return out


# ------------------------------------------------------------------------------------------
# hazard map
# ------------------------------------------------------------------------------------------

MAP_LEVELS_G = np.geomspace(2e-3, 2.0, 40)


def hazard_grid(cfg: Config, spacing_m: float = 1000.0, year: int | None = None) -> pd.DataFrame:
    """Nodes of a square grid over the field: multiples of ``spacing_m`` [m, RD New] inside the
    bounding box of the source cells with a positive rate (``year``: default the first of
    ``[run] years``) and inside the site-response zonation where the model has one.

    Returns a DataFrame ``id, x, y`` (ids ``"x_y"`` in m).
    """
    from hra.chain import make_gmm, zone_source
    from hra.inputs.source import read_rate_grid

    if not spacing_m > 0:
        raise HazardError(f"spacing_m must be > 0, got {spacing_m}")
    rg = read_rate_grid(cfg.resolve(cfg.source.rates), cfg.run.years)
    years = np.asarray(rg.years)
    if year is not None and int(year) not in years:
        raise HazardError(f"year {year} not in [run] years {list(years)}")
    iy = 0 if year is None else int(np.flatnonzero(years == int(year))[0])
    active = (rg.rate[:, iy] > 0).reshape(rg.rate.shape[0], -1).any(axis=1)
    half = cfg.source.cell_size_m / 2.0
    x0, x1 = rg.x[active].min() - half, rg.x[active].max() + half
    y0, y1 = rg.y[active].min() - half, rg.y[active].max() + half
    xs = np.arange(np.ceil(x0 / spacing_m), np.floor(x1 / spacing_m) + 1) * spacing_m
    ys = np.arange(np.ceil(y0 / spacing_m), np.floor(y1 / spacing_m) + 1) * spacing_m
    gx, gy = (a.ravel() for a in np.meshgrid(xs, ys))
    gmm = make_gmm(cfg)
    if gmm.zones is not None:
        import shapely

        source = zone_source(cfg)
        if source is not None:
            if source.kind == "v6-zip":
                from hra.inputs.edb import read_zones_v6

                ids, geoms = read_zones_v6(source.path)
                geoms = geoms[np.isin(ids, gmm.zones)]
            else:
                geoms = np.asarray(source.polygons, dtype=object)
            inside = shapely.contains_xy(shapely.union_all(geoms), gx, gy)
            gx, gy = gx[inside], gy[inside]
    if gx.size == 0:
        raise HazardError(f"no grid node at {spacing_m:g} m spacing lies inside the field; use a smaller spacing_m")
    return pd.DataFrame({"id": [f"{int(a)}_{int(b)}" for a, b in zip(gx, gy)], "x": gx, "y": gy})


def hazard_map(cfg: Config, spacing_m: float = 1000.0, imt: str = "PGA", return_periods: Sequence[float] = (475.0, 2475.0),
               year: int | None = None, component: str = "geometric_mean", levels_g: Sequence[float] | None = None,
               sites=None, progress: bool | None = None) -> xr.Dataset:
    """Mean-hazard intensity at return periods on a node grid over the field.

    Parameters
    ----------
    cfg
        Run configuration.
    spacing_m
        Grid spacing [m] (:func:`hazard_grid`); ignored when ``sites`` are given.
    imt
        Intensity measure (default PGA).
    return_periods
        Return periods [yr].
    year
        Year of the rates (default: the first of ``[run] years``).
    component, progress
        As :func:`hazard_curves`.
    levels_g
        Intensity levels of the curves [g] (default: 40 levels from 0.002 to 2 g).

    Returns
    -------
    The :func:`hazard_curves` Dataset (mean curves only) with ``intensity_g`` (site, return_period) [g].
    """
    year = int(cfg.run.years[0]) if year is None else int(year)
    df = hazard_grid(cfg, spacing_m, year) if sites is None else _sites_frame(sites)
    hc = hazard_curves(cfg, df, imts=[imt], levels_g=MAP_LEVELS_G if levels_g is None else levels_g, quantiles=[],
                       component=component, years=[year], progress=progress)
    uhs = uniform_hazard_spectrum(hc, return_periods)
    ds = hc.assign(intensity_g=(("site", "return_period"), uhs.values[:, 0, 0, :],
                                {"units": "g", "long_name": f"mean-hazard {normalize_imt(imt)} at the return period"}))
    ds = ds.assign_coords(return_period=("return_period", np.asarray(return_periods, float), {"units": "yr"}))
    ds.attrs.update({"title": f"Hazard map: mean {normalize_imt(imt)} at return periods", "spacing_m": float(spacing_m)})
    return ds


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def _column(rp: float, imt: str) -> str:
    return f"{normalize_imt(imt).lower().replace('(', '_').replace(')', '').replace('.', 'p')}_{int(rp)}yr_g"


def write_hazard_map(ds: xr.Dataset, gpkg: str | Path | None = None, png: str | Path | None = None,
                     overwrite: bool = False) -> list[Path]:
    """Write a :func:`hazard_map` Dataset as a GeoPackage of points (EPSG:28992; one column per
    return period, e.g. ``pga_475yr_g``) and/or a PNG (one panel per return period, RD New axes
    in km). Each file is written to a temporary path beside the target and renamed."""
    import os
    import tempfile

    imt = str(ds["imt"].values[0])
    x, y = ds["x_rd"].values, ds["y_rd"].values
    rps = ds["return_period"].values
    written = []
    for target in (gpkg, png):
        if target is not None and Path(target).exists() and not overwrite:
            raise HazardError(f"{target} exists; pass overwrite (--overwrite) to replace it")
    if gpkg is not None:
        import pyogrio.raw
        import shapely

        gpkg = Path(gpkg)
        if gpkg.suffix.lower() != ".gpkg":
            raise HazardError(f"{gpkg}: the map is written as a GeoPackage; give a .gpkg file name")
        fields = ["site_id", "zone"] + [_column(rp, imt) for rp in rps]
        data = [ds["site_id"].values.astype(object), ds["zone"].values.astype(np.int64)] + \
               [ds["intensity_g"].values[:, k].astype(float) for k in range(rps.size)]
        fd, tmp = tempfile.mkstemp(suffix=".gpkg", prefix=f".{gpkg.name}.", dir=gpkg.parent)
        os.close(fd)
        os.unlink(tmp)
        try:
            pyogrio.raw.write(tmp, shapely.to_wkb(shapely.points(x, y)), data, fields, layer="hazard_map", driver="GPKG",
                              geometry_type="Point", crs="EPSG:28992")
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, gpkg)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        written.append(gpkg)
    if png is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        png = Path(png)
        spacing = float(ds.attrs.get("spacing_m", 1000.0))
        fig, axes = plt.subplots(1, rps.size, figsize=(5.2 * rps.size, 5.6), squeeze=False, constrained_layout=True)
        for k, ax in enumerate(axes[0]):
            v = ds["intensity_g"].values[:, k]
            sc = ax.scatter(x / 1000.0, y / 1000.0, c=v, marker="s", s=max(4.0, 60.0 * spacing / 1000.0), cmap="viridis",
                            linewidths=0)
            fig.colorbar(sc, ax=ax, shrink=0.8, label=f"{imt} [g]")
            ax.set_aspect("equal")
            ax.set_xlabel("x RD New [km]")
            ax.set_ylabel("y RD New [km]")
            ax.set_title(f"mean {imt}, {rps[k]:g} yr return period, {int(ds['year'].values[0])}")
        fd, tmp = tempfile.mkstemp(suffix=".png", prefix=f".{png.name}.", dir=png.parent)
        os.close(fd)
        try:
            fig.savefig(tmp, dpi=120, format="png")
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, png)
        finally:
            plt.close(fig)
            if os.path.exists(tmp):
                os.unlink(tmp)
        written.append(png)
    return written
