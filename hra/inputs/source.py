"""Seismic source model: rate grids and magnitude-frequency distributions.

* A **rate grid** gives, per source cell (centre x, y in RD New metres), year and source branch,
  the annual number of events with M >= m_min in the cell.
* The **magnitude** distribution is a Gutenberg-Richter law truncated at Mmax (a logic-tree node),
  with b-value per branch (another node). It is integrated in bins whose probabilities are the
  exact differences of the truncated CDF, so no rate is lost at bin edges or above Mmax; each bin
  is represented by the conditional mean magnitude within it (exact for the first moment).

Truncated GR (Cornell & Vanmarcke 1969; Bourne & Oates 2017 use its untruncated form):

    F(m) = (1 - 10^{-b (m - m_min)}) / (1 - 10^{-b (m_max - m_min)}),   m_min <= m <= m_max.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hra.core.logictree import Node

log = logging.getLogger("hra")

#: Upper bound of a plausible cell rate of M >= m_min events [yr^-1]: the whole Groningen field has had
#: at most ~10^2 events per year above M 1.5; a larger value in one cell is a unit error.
MAX_CELL_RATE_PER_YEAR = 1.0e4

#: Plausible RD New (EPSG:28992) cell centres [m]: the Netherlands with a wide margin (sources may lie
#: beyond the exposure's bounds); degrees or kilometres fall outside and are refused.
RD_X_RANGE_M = (-100_000.0, 400_000.0)
RD_Y_RANGE_M = (200_000.0, 700_000.0)

#: The Groningen gas field with a margin of ~25 km (RD New [m]): source cells with events outside it
#: are accepted (a study region elsewhere) but warned about, as they usually mean shifted coordinates.
FIELD_X_RANGE_M = (200_000.0, 295_000.0)
FIELD_Y_RANGE_M = (540_000.0, 640_000.0)

LN10 = np.log(10.0)


def _warn_outside_field(path, x: np.ndarray, y: np.ndarray) -> None:
    """Log a warning when source cells [m, RD New] lie outside the Groningen field (with a margin)."""
    out = ((x < FIELD_X_RANGE_M[0]) | (x > FIELD_X_RANGE_M[1]) | (y < FIELD_Y_RANGE_M[0]) | (y > FIELD_Y_RANGE_M[1]))
    if out.any():
        i = int(np.flatnonzero(out)[0])
        log.warning("%s: %d of %d source cells lie outside the Groningen field (RD New x %g..%g m, y %g..%g m), "
                    "e.g. (%g, %g); check the coordinates (RD New metres) if the region is Groningen",
                    path, int(out.sum()), out.size, *FIELD_X_RANGE_M, *FIELD_Y_RANGE_M, x[i], y[i])


class SourceError(ValueError):
    """Bad source-model input; the message names the file, row/column and the fix."""


# ---------------------------------------------------------------------------------------------
# Magnitude model (pure functions)
# ---------------------------------------------------------------------------------------------


def truncated_gr_cdf(m: np.ndarray, b_value: float, m_min: float, m_max: float) -> np.ndarray:
    """CDF of the truncated Gutenberg-Richter law, F(m) in [0, 1].

    Parameters
    ----------
    m : magnitudes [magnitude]
    b_value : GR b-value [-]
    m_min, m_max : truncation magnitudes [magnitude]
    """
    beta = b_value * LN10
    mm = np.clip(np.asarray(m, dtype=float), m_min, m_max)
    return -np.expm1(-beta * (mm - m_min)) / -np.expm1(-beta * (m_max - m_min))


def truncated_gr_pdf(m: np.ndarray, b_value: float, m_min: float, m_max: float) -> np.ndarray:
    """Density of the truncated GR law [1/magnitude], zero outside [m_min, m_max]."""
    beta = b_value * LN10
    m = np.asarray(m, dtype=float)
    dens = beta * np.exp(-beta * (m - m_min)) / -np.expm1(-beta * (m_max - m_min))
    return np.where((m >= m_min) & (m <= m_max), dens, 0.0)


def _partial_first_moment(m: np.ndarray, beta: float, m_min: float) -> np.ndarray:
    """int_{m_min}^{m} x beta exp(-beta (x - m_min)) dx (untruncated, unnormalised)."""
    e = np.exp(-beta * (m - m_min))
    return (m_min + 1.0 / beta) - e * (m + 1.0 / beta)


def _exprel(x: np.ndarray) -> np.ndarray:
    """``(e^x - 1) / x`` (1 at 0), as :func:`scipy.special.exprel` to ~1 ulp but several times
    faster on large arrays: ``expm1(x) / x``, and ``1 + x/2 + x^2/6`` where ``|x| < 1e-5``
    (truncation < 1e-16 relative)."""
    x = np.asarray(x, dtype=float)
    small = np.abs(x) < 1e-5
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = np.expm1(x) / np.where(small, 1.0, x)
    return np.where(small, 1.0 + x * (0.5 + x / 6.0), out)


@dataclass(frozen=True)
class MagnitudeBins:
    """Discretised magnitude distributions of all (b-value, Mmax) branches on common nodes.

    ``nodes`` are the common bin edges (from ``m_min``, every ``bin_width``, plus each Mmax
    exactly). Each bin's exact probability sits at its exact conditional mean magnitude
    (centroid) and is split linearly between the bin's two edge nodes, so for every branch
    ``mass[i_b, i_mx, :]`` sums to 1, reproduces the mean magnitude exactly, and puts no mass
    below m_min or above that branch's Mmax. Ground motion is evaluated only at ``nodes``.
    """

    nodes: np.ndarray  # (n_nodes,) [magnitude]
    mass: np.ndarray  # (n_b, n_mx, n_nodes) [-]
    prob: np.ndarray  # (n_b, n_mx, n_nodes - 1) exact bin probabilities [-]
    b_values: np.ndarray  # (n_b,)
    #: the death tables computed at every ``table_stride``-th node (``[source] magnitude_table_stride``)
    table_stride: int = 1

    @property
    def n_nodes(self) -> int:
        return int(self.nodes.size)

    def integrate(self, g: np.ndarray) -> np.ndarray:
        """E[g(M)] per (b, Mmax) branch for values ``g[..., m]`` >= 0 given at the nodes.

        Within each bin, g is interpolated log-linearly (exponentially) between its edge values
        and integrated against the exact GR density of the bin:

            E_bin[g] = g_lo * exprel((lambda - beta) h) / exprel(-beta h),
            lambda h = ln(g_hi / g_lo),  beta = b ln 10,  exprel(x) = (e^x - 1) / x,

        exact when g is exponential in M (collapse probabilities in their tails nearly are);
        where an edge value is 0 the bin falls back to linear interpolation (the ``mass``
        weights). Returns an array of shape ``(n_b, n_mx) + g.shape[:-1]``.
        """
        g = np.asarray(g, dtype=float)
        out = np.empty((self.b_values.size, self.prob.shape[1]) + g.shape[:-1])
        for ib, e_bin in enumerate(self._bin_expectations(g)):
            for ix in range(self.prob.shape[1]):
                out[ib, ix] = e_bin @ self.prob[ib, ix]
        return out

    def bin_terms(self, g: np.ndarray) -> np.ndarray:
        """The terms of :meth:`integrate` per magnitude bin: ``E_bin[g] P(bin)`` for the bins
        ``[nodes[i], nodes[i+1]]``, shape ``(n_b, n_mx) + g.shape[:-1] + (n_nodes - 1,)``; their sum
        over the last axis is :meth:`integrate` (to rounding). Used to disaggregate by magnitude."""
        g = np.asarray(g, dtype=float)
        out = np.empty((self.b_values.size, self.prob.shape[1]) + g.shape[:-1] + (self.nodes.size - 1,))
        for ib, e_bin in enumerate(self._bin_expectations(g)):
            for ix in range(self.prob.shape[1]):
                out[ib, ix] = e_bin * self.prob[ib, ix]
        return out

    def bin_constants(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per b-value and bin, shape (n_b, n_nodes - 1) each: ``beta h`` (beta = b ln 10, h the
        bin width), ``exp(-beta h)``, the linear fallback's upper-edge weight and
        ``1 / exprel(-beta h)``: the constants of :meth:`bin_expectations`' rule, for compiled
        kernels (:func:`hra.integration.kernels.magnitude_integrate_picked`)."""
        beta_h = self.b_values[:, None] * LN10 * np.diff(self.nodes)[None, :]
        frac_hi = 1.0 / beta_h - 1.0 / np.expm1(beta_h)
        return beta_h, np.exp(-beta_h), frac_hi, 1.0 / _exprel(-beta_h)

    def _bin_expectations(self, g: np.ndarray):
        """E_bin[g] per bin (g.shape[:-1] + (n_bins,)) for each b-value, in turn."""
        for ib in range(self.b_values.size):
            yield self.bin_expectations(g[..., :-1], g[..., 1:], ib)

    def bin_expectations(self, lo: np.ndarray, hi: np.ndarray, ib: int, bins=slice(None)) -> np.ndarray:
        """E_bin[g] of the bins ``bins`` (default: all) for b-value branch ``ib`` from g at their
        lower and upper nodes, ``lo`` and ``hi`` (..., n_bins): the rule of :meth:`integrate`
        (which is ``bin_expectations(g[..., :-1], g[..., 1:], ib) @ prob[ib, ix]``)."""
        lo = np.asarray(lo, dtype=float)
        hi = np.asarray(hi, dtype=float)
        h = np.diff(self.nodes)[bins]
        pos = (lo > 0) & (hi > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            lam_h = np.where(pos, np.log(np.where(pos, hi, 1.0) / np.where(pos, lo, 1.0)), 0.0)
        beta_h = self.b_values[ib] * LN10 * h
        # linear fallback: weight of the upper edge = (centroid - lo) / h for this b-value
        frac_hi = 1.0 / beta_h - 1.0 / np.expm1(beta_h)
        lin = lo * (1.0 - frac_hi) + hi * frac_hi
        ex = lo * _exprel(lam_h - beta_h) / _exprel(-beta_h)
        return np.where(pos, ex, lin)


def magnitude_bins(
    b_values: np.ndarray, m_max: np.ndarray, m_min: float, bin_width: float
) -> MagnitudeBins:
    """Discretise the truncated GR laws of all (b, Mmax) branches on common nodes.

    Parameters
    ----------
    b_values : b-value per branch [-]
    m_max : Mmax per branch [magnitude]
    m_min : lower magnitude of the rates [magnitude]
    bin_width : bin width [magnitude]
    """
    b_values = np.atleast_1d(np.asarray(b_values, dtype=float))
    m_max = np.atleast_1d(np.asarray(m_max, dtype=float))
    top = float(m_max.max())
    n = int(np.ceil((top - m_min) / bin_width - 1e-9))
    edges = m_min + bin_width * np.arange(n + 1)
    edges = np.unique(np.round(np.concatenate([edges[edges < top - 1e-9], m_max, [top]]), 12))
    mass = np.zeros((b_values.size, m_max.size, edges.size))
    prob = np.zeros((b_values.size, m_max.size, edges.size - 1))
    lo, hi = edges[:-1], edges[1:]
    for ib, b in enumerate(b_values):
        beta = b * LN10
        for im, mx in enumerate(m_max):
            a = np.clip(lo, m_min, mx)
            c = np.clip(hi, m_min, mx)
            p = truncated_gr_cdf(c, b, m_min, mx) - truncated_gr_cdf(a, b, m_min, mx)
            prob[ib, im] = p
            mom = _partial_first_moment(c, beta, m_min) - _partial_first_moment(a, beta, m_min)
            norm = -np.expm1(-beta * (mx - m_min))
            safe = np.where(p > 0, p, 1.0)
            cen = np.where(p > 0, (mom / norm) / safe, lo)
            frac_hi = np.clip((cen - lo) / (hi - lo), 0.0, 1.0)
            np.add.at(mass[ib, im], np.arange(lo.size), p * (1.0 - frac_hi))
            np.add.at(mass[ib, im], np.arange(lo.size) + 1, p * frac_hi)
    return MagnitudeBins(edges, mass, prob, b_values)


# ---------------------------------------------------------------------------------------------
# Rate grids (I/O and validation)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RateGrid:
    """Source cells and their annual rates of M >= m_min.

    ``rate[c, y, s]`` for cell c, year index y (order of ``years``), source branch s [yr^-1].
    """

    x: np.ndarray
    y: np.ndarray
    years: np.ndarray
    branches: tuple[str, ...]
    branch_weights: np.ndarray
    rate: np.ndarray

    @property
    def node(self) -> Node:
        return Node("source", self.branches, tuple(float(w) for w in self.branch_weights))


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if not path.exists():
        raise SourceError(f"source rate file {path} does not exist; check [source] rates in the config")
    if suffix in (".csv", ".txt"):
        try:
            df = pd.read_csv(path, encoding="utf-8-sig")
        except pd.errors.EmptyDataError:
            raise SourceError(f"{path}: the file is empty; it needs columns x, y, year, rate") from None
    elif suffix in (".nc", ".zarr"):
        import xarray as xr

        ds = xr.open_zarr(path) if suffix == ".zarr" else xr.open_dataset(path)
        if "rate" not in ds:
            raise SourceError(f"{path}: no variable 'rate' (dims x, y, year [, branch]); add it")
        df = ds["rate"].to_dataframe().reset_index()
        if "weight" in ds:
            w = ds["weight"].to_dataframe().reset_index()
            df = df.merge(w, on="branch")
    else:
        raise SourceError(f"{path}: unknown rate-file type {suffix!r}; use .csv, .nc or .zarr")
    return df


def read_rate_grid(path: str | Path, years: list[int]) -> RateGrid:
    """Read and validate a rate grid for the given years.

    Columns: ``x``, ``y`` (cell centre [m, EPSG:28992]), ``year`` (int), ``rate`` (events/yr with
    M >= m_min in the cell, >= 0), optional ``branch`` (label) and ``weight`` (branch weight, the
    same on every row of a branch; weights sum to 1).
    """
    path = Path(path)
    df = _read_table(path)
    df.columns = [str(c).strip() for c in df.columns]
    if len(df) == 0:
        raise SourceError(f"{path}: the file has no data rows; it needs columns x, y, year, rate")
    for col in ("x", "y", "year", "rate"):
        if col not in df.columns:
            raise SourceError(f"{path}: missing column {col!r}; the rate grid needs columns x, y, year, rate")
    for col in ("x", "y", "rate"):
        vals = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(vals))
        if bad.size:
            r = int(bad[0]) + 2
            raise SourceError(f"{path}: row {r} (line {r} of the file), column {col!r}: not a finite number; fix the value")
        df[col] = vals
    neg = np.flatnonzero(df["rate"].to_numpy() < 0)
    if neg.size:
        r = int(neg[0]) + 2
        raise SourceError(f"{path}: row {r}, column 'rate': negative rate {df['rate'].iloc[neg[0]]}; rates must be >= 0")
    huge = np.flatnonzero(df["rate"].to_numpy() > MAX_CELL_RATE_PER_YEAR)
    if huge.size:
        r = int(huge[0]) + 2
        raise SourceError(f"{path}: row {r}, column 'rate': {df['rate'].iloc[huge[0]]:g} events per year in one cell is "
                          f"beyond any induced-seismicity rate (limit {MAX_CELL_RATE_PER_YEAR:g}/yr); the rate is the annual "
                          "number of events with M >= m_min in the cell: check its unit")
    for col, (lo, hi) in (("x", RD_X_RANGE_M), ("y", RD_Y_RANGE_M)):
        out = np.flatnonzero((df[col].to_numpy() < lo) | (df[col].to_numpy() > hi))
        if out.size:
            r = int(out[0]) + 2
            raise SourceError(f"{path}: row {r}, column {col!r}: {df[col].iloc[out[0]]:g} lies far outside the Netherlands in RD New "
                              f"({lo:g}..{hi:g} m); cell centres must be RD New (EPSG:28992) metres, not degrees or km")
    if "branch" not in df.columns:
        df["branch"] = "default"
        df["weight"] = 1.0
    elif "weight" not in df.columns:
        raise SourceError(f"{path}: column 'branch' given without column 'weight'; add the branch weights")
    df["branch"] = df["branch"].astype(str)
    wt = df.groupby("branch", sort=False)["weight"].agg(["min", "max"])
    bad_w = wt[(wt["max"] - wt["min"]).abs() > 1e-12]
    if len(bad_w):
        raise SourceError(f"{path}: branch {bad_w.index[0]!r} has different weights on different rows; use one weight per branch")
    branches = tuple(wt.index.astype(str))
    weights = wt["min"].to_numpy(dtype=float)
    if abs(weights.sum() - 1.0) > 1e-6:
        raise SourceError(f"{path}: column 'weight': source-branch weights sum to {weights.sum():.6g}; they must sum to 1")
    df["year"] = pd.to_numeric(df["year"], errors="coerce")
    yv = df["year"].to_numpy(dtype=float)
    bad_y = np.flatnonzero(~np.isfinite(yv) | (yv != np.round(yv)))
    if bad_y.size:
        r = int(bad_y[0]) + 2
        raise SourceError(f"{path}: row {r}, column 'year': {yv[bad_y[0]]:g} is not a whole year; "
                          "give the calendar year of the rate as an integer (e.g. 2026)")
    missing = sorted(set(years) - set(int(y) for y in df["year"].dropna().unique()))
    if missing:
        raise SourceError(f"{path}: no rates for year(s) {missing}; add rows for them or change [run] years")
    df = df[df["year"].isin(years)]
    dup = df.duplicated(subset=["x", "y", "year", "branch"], keep=False)
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        r = int(df.index[i]) + 2
        raise SourceError(f"{path}: row {r}: cell ({df['x'].iloc[i]:g}, {df['y'].iloc[i]:g}) repeated for the same year and branch; merge the rows")
    cells = df[["x", "y"]].drop_duplicates().sort_values(["x", "y"]).reset_index(drop=True)
    cells["c"] = np.arange(len(cells))
    df = df.merge(cells, on=["x", "y"])
    yi = {y: i for i, y in enumerate(years)}
    bi = {b: i for i, b in enumerate(branches)}
    rate = np.zeros((len(cells), len(years), len(branches)))
    rate[df["c"].to_numpy(), df["year"].map(yi).to_numpy(), df["branch"].map(bi).to_numpy()] = df["rate"].to_numpy()
    keep = rate.reshape(len(cells), -1).max(axis=1) > 0
    if not keep.any():  # no seismicity at all: LPR 0 everywhere (keep one cell so the arrays are not empty)
        log.warning("%s: every rate of the selected years is 0: every LPR will be 0", path)
        keep[0] = True
    _warn_outside_field(path, cells["x"].to_numpy(float)[keep], cells["y"].to_numpy(float)[keep])
    return RateGrid(
        x=cells["x"].to_numpy(float)[keep],
        y=cells["y"].to_numpy(float)[keep],
        years=np.asarray(years, dtype=np.int64),
        branches=branches,
        branch_weights=weights,
        rate=np.ascontiguousarray(rate[keep]),
    )


def magnitude_nodes(b_values: list[tuple[float, float]] | float, m_max: list[tuple[float, float]]) -> tuple[Node, Node]:
    """Logic-tree nodes ``b_value`` and ``m_max`` from (value, weight) pairs."""
    if isinstance(b_values, (int, float)):
        bnode = Node("b_value", (f"b={b_values:g}",), (1.0,), (float(b_values),))
    else:
        bnode = Node(
            "b_value", tuple(f"b={v:g}" for v, _ in b_values), tuple(w for _, w in b_values), tuple(v for v, _ in b_values)
        )
    mnode = Node("m_max", tuple(f"Mmax={v:g}" for v, _ in m_max), tuple(w for _, w in m_max), tuple(v for v, _ in m_max))
    return bnode, mnode
