"""Ground-motion fields of simulated events: residuals, spatial correlation, site terms.

For event ``e`` and building ``b`` in site-response zone ``z`` (see :mod:`hra.eventbased.adapters`):

    ln Y_ref(e, b) = ln median(M_e, R_eb) + tau eta_e + phi eps_e(b)
    ln IM(e, b)    = ln Y_ref + ln AF_z(Y_ref) + sd_S2S,z(Y_ref) xi_e,z

* ``eta_e`` ~ N(0, 1): the between-event residual, one per event;
* ``eps_e(b)`` ~ N(0, 1): the within-event residual, a Gaussian random field with the
  exponential correlation ``rho(d) = exp(-3 d / range)`` (Jayaram & Baker 2009, whose PGA model
  without Vs30 clustering has range b = 8.5 km: :data:`JB2009_PGA_RANGE_KM`);
* ``xi_e,z`` ~ N(0, 1): the site term, **shared by all buildings of zone z in event e**
  (``site_term="zone"``, default) or independent per building and event (``"building"``).
  Either choice leaves every building's marginal distribution equal to the model's mixture, which
  is what the integration engine uses; only the joint distribution (F-N curves) differs.

How the correlated field is drawn for up to 250k buildings (:class:`FieldGrid`)
-------------------------------------------------------------------------------
1. A **global grid** of nodes with spacing ``h`` (default range / 17, 500 m for the PGA range
   of 8.5 km) covers the exposure. Each building knows its grid cell and its position (fx, fy) in it.
2. Per event, the **window** of nodes around the epicentre within the cut-off distance
   (buildings farther than the cut-off cannot be damaged; see :mod:`hra.eventbased.risk`) is
   filled with a stationary field by **circulant embedding** (FFT): the window is embedded in a
   torus of ``P >= W + 3 range / h`` nodes per side whose covariance is the *periodised*
   exponential, ``c(n) = sum_images rho(|n + k P| h)``. The periodised covariance has a
   non-negative spectrum by construction (it samples the positive spectral density of the
   exponential model, aliased), so the embedding is exact up to the images beyond the first
   ring (< exp(-9) = 1.2e-4 in correlation) and rounding; negative eigenvalues of rounding
   size are set to 0. The field is normalised to unit variance exactly.
   ``field = Re FFT2( sqrt(lambda / N) (g1 + i g2) )`` with white noise g from a PCG64
   generator seeded by the event's key (so it depends only on the event, never on which
   buildings are asked; the direct path below draws it from the event's counter stream). Events that reach few nodes (<= 128 by default) skip the FFT: their
   nodes get the exact covariance factorised by Cholesky (:meth:`FieldGrid.direct_field`).
3. At a building, the field is **interpolated bilinearly** from its cell's four nodes and an
   independent **nugget** ``sqrt(1 - w' C w) nu_eb`` restores the unit variance exactly
   (w the bilinear weights, C the 4x4 node covariance). The correlation of two buildings is
   then exp(-3 d / range) to within the grid resolution (for two buildings in the same 500 m
   cell between 0.86, both at its centre, and 1, both at one node, instead of about 1: a
   slight under-correlation at the shortest distances; no building's marginal distribution
   changes). A finer ``grid_spacing_m`` reduces it at a higher cost per event.

Memory: one window (at most the exposure's grid, e.g. 240 x 200 nodes for a 60 x 50 km region)
and its FFT (complex, P x P) per event at a time; nothing of size (events x buildings) is kept.
Cost: one FFT per event that reaches a building (small windows for the many small events).

References
----------
Jayaram, N. & Baker, J.W. (2009). Correlation model for spatially distributed ground-motion
intensities. *Earthquake Engineering & Structural Dynamics* 38(15), 1687-1708,
doi:10.1002/eqe.922.

Dietrich, C.R. & Newsam, G.N. (1997). Fast and exact simulation of stationary Gaussian processes
through circulant embedding of the covariance matrix. *SIAM J. Sci. Comput.* 18(4), 1088-1107,
doi:10.1137/S1064827592240555.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hra.eventbased import kernels as ek

#: Jayaram & Baker (2009) range of the exponential model for PGA (T = 0), case 1 (no Vs30
#: clustering): b = 8.5 + 17.2 T km. [km]
JB2009_PGA_RANGE_KM = 8.5


def exponential_correlation(d_km, range_km: float) -> np.ndarray:
    """rho(d) = exp(-3 d / range); range <= 0 means no correlation (rho = 1 at d = 0 only)."""
    d = np.asarray(d_km, dtype=float)
    if range_km <= 0:
        return (d == 0).astype(float)
    return np.exp(-3.0 * d / range_km)


def field_rng(key) -> np.random.Generator:
    """Generator of the white noise of an event's field: PCG64 seeded with (event key, tag)."""
    return np.random.Generator(np.random.PCG64([int(key), int(ek.TAG_FIELD)]))


def _good_size(n: int) -> int:
    """Smallest size >= n of the form 2^a * {4, 5, 6, 7} (at most 25 % padding, few distinct
    sizes, so that the spectra cache stays small; all are fast FFT lengths)."""
    n = max(int(n), 4)
    best = None
    for m in (4, 5, 6, 7):
        size = m
        while size < n:
            size *= 2
        best = size if best is None else min(best, size)
    return int(best)


@dataclass
class FieldGrid:
    """Global node grid for correlated within-event fields (see the module docstring).

    Nodes at ``(x0 + i h, y0 + j h)``, ``i < nx``, ``j < ny``; cells ``(i, j)`` span nodes i..i+1.
    """

    x0: float
    y0: float
    h: float  # [m]
    nx: int
    ny: int
    range_km: float
    _spectra: dict = field(default_factory=dict, repr=False)
    _chol: dict = field(default_factory=dict, repr=False)

    @classmethod
    def for_points(cls, x: np.ndarray, y: np.ndarray, range_km: float, spacing_m: float | None = None) -> "FieldGrid":
        """Grid covering points ``x, y`` [m] with spacing ``spacing_m`` (default range / 17)."""
        h = float(spacing_m) if spacing_m else max(range_km * 1000.0 / 17.0, 1.0)
        x0 = math.floor(float(np.min(x)) / h) * h - h
        y0 = math.floor(float(np.min(y)) / h) * h - h
        nx = int(math.floor((float(np.max(x)) - x0) / h)) + 3
        ny = int(math.floor((float(np.max(y)) - y0) / h)) + 3
        return cls(x0, y0, h, nx, ny, float(range_km))

    @property
    def n_cells(self) -> tuple[int, int]:
        return self.nx - 1, self.ny - 1

    def locate(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Cell indices (gi, gj) and fractional positions (fx, fy) in [0, 1) of points."""
        u = (np.asarray(x, float) - self.x0) / self.h
        v = (np.asarray(y, float) - self.y0) / self.h
        gi = np.clip(np.floor(u).astype(np.int64), 0, self.nx - 2)
        gj = np.clip(np.floor(v).astype(np.int64), 0, self.ny - 2)
        return gi, gj, np.clip(u - gi, 0.0, 1.0), np.clip(v - gj, 0.0, 1.0)

    def window(self, ex: float, ey: float, radius_m: float) -> tuple[int, int, int, int]:
        """Cells ``[ci0, ci1) x [cj0, cj1)`` within ``radius_m`` (box) of (ex, ey); may be empty."""
        ncx, ncy = self.n_cells
        ci0 = max(int(math.floor((ex - radius_m - self.x0) / self.h)), 0)
        ci1 = min(int(math.floor((ex + radius_m - self.x0) / self.h)) + 1, ncx)
        cj0 = max(int(math.floor((ey - radius_m - self.y0) / self.h)), 0)
        cj1 = min(int(math.floor((ey + radius_m - self.y0) / self.h)) + 1, ncy)
        return ci0, max(ci1, ci0), cj0, max(cj1, cj0)

    def spectrum(self, nwx: int, nwy: int) -> tuple[np.ndarray, float, float, float]:
        """sqrt(eigenvalues / N) of the embedding for a window of nwx x nwy nodes, and the
        window covariances at lags (1, 0), (0, 1), (1, 1) (unit variance). Cached by torus size."""
        got = self._spectra.get((nwx, nwy))
        if got is not None:
            return got
        pad = int(math.ceil(3.0 * self.range_km * 1000.0 / self.h))
        px, py = _good_size(nwx + pad), _good_size(nwy + pad)
        key = (px, py)
        got = self._spectra.get(key)
        if got is not None:
            self._spectra[(nwx, nwy)] = got
            return got
        from scipy.fft import fft2

        ix = np.arange(px)
        iy = np.arange(py)
        mx = ix - px * np.round(ix / px)  # minimal images in [-P/2, P/2]
        my = iy - py * np.round(iy / py)
        c = np.zeros((px, py))
        for kx in (-1, 0, 1):
            for ky in (-1, 0, 1):
                dx = (mx + kx * px)[:, None] * self.h
                dy = (my + ky * py)[None, :] * self.h
                c += exponential_correlation(np.hypot(dx, dy) * 1e-3, self.range_km)
        c00 = c[0, 0]
        lam = fft2(c).real / c00
        lam[lam < 0] = 0.0
        root = np.sqrt(lam / (px * py))
        out = (root, float(c[1, 0] / c00), float(c[0, 1] / c00), float(c[1, 1] / c00))
        self._spectra[key] = out
        self._spectra[(nwx, nwy)] = out
        return out

    def lag_correlations(self) -> tuple[float, float, float]:
        """Exact correlations of nodes at lags (1, 0), (0, 1), (1, 1)."""
        got = self._spectra.get("lags")
        if got is None:
            h = self.h * 1e-3
            c = exponential_correlation(np.array([h, h, h * math.sqrt(2.0)]), self.range_km)
            got = self._spectra["lags"] = (float(c[0]), float(c[1]), float(c[2]))
        return got

    def direct_field(self, key: np.uint64, nodes: np.ndarray, nwx: int, nwy: int, ci0: int = 0,
                     cj0: int = 0) -> tuple[np.ndarray, float, float, float]:
        """Field at the listed window nodes only, by Cholesky factorisation of their exact covariance.

        ``nodes`` are window-relative flat indices ``li + lj * nwx`` in ascending order (window
        origin at global node (ci0, cj0)); the returned window array (nwx, nwy) holds the field
        there and 0 elsewhere. Used when an event reaches few nodes (cheaper than the FFT of the
        whole window). The values depend only on the event key and the node set, which depends
        only on the event and the full exposure, so they do not depend on chunking or building
        order either. Factors are cached by node set (small exposures repeat them).
        """
        li = nodes % nwx
        lj = nodes // nwx
        gid = (li + ci0) + (lj + cj0) * self.nx
        ck = gid.tobytes()
        chol = self._chol.get(ck)
        if chol is None:
            fi, fj = li.astype(float), lj.astype(float)
            d = np.hypot(fi[:, None] - fi[None, :], fj[:, None] - fj[None, :]) * self.h * 1e-3
            cov = exponential_correlation(d, self.range_km)
            try:
                chol = np.linalg.cholesky(cov)
            except np.linalg.LinAlgError:  # pragma: no cover - near-singular: add a jitter
                chol = np.linalg.cholesky(cov + 1e-10 * np.eye(cov.shape[0]))
            if len(self._chol) >= 512:
                self._chol.clear()
            self._chol[ck] = chol
        g = np.empty(nodes.size)
        ek.fill_normals(np.uint64(key), ek.TAG_FIELD, g)
        out = np.zeros(nwx * nwy)
        out[nodes] = chol @ g
        return out.reshape(nwy, nwx).T.copy(), *self.lag_correlations()

    def field(self, key: np.uint64, nwx: int, nwy: int) -> tuple[np.ndarray, float, float, float]:
        """Unit-variance correlated field on a window of ``nwx x nwy`` nodes, drawn from the
        counter stream of ``key``; returns (field (nwx, nwy), c10, c01, c11)."""
        from scipy.fft import fft2

        root, c10, c01, c11 = self.spectrum(nwx, nwy)
        px, py = root.shape
        noise = field_rng(key).standard_normal((2, px, py))
        z = fft2(root * (noise[0] + 1j * noise[1]), workers=1)
        return np.ascontiguousarray(z.real[:nwx, :nwy]), c10, c01, c11


@dataclass
class BuildingGrid:
    """Buildings bucketed by field-grid cell (CSR), with their bilinear positions."""

    grid: FieldGrid
    gi: np.ndarray
    gj: np.ndarray
    fx: np.ndarray
    fy: np.ndarray
    cell_start: np.ndarray  # (n_cells + 1,)
    cell_order: np.ndarray  # (b,)
    sat: np.ndarray  # summed-area table of counts (ncx + 1, ncy + 1)

    @classmethod
    def build(cls, grid: FieldGrid, x: np.ndarray, y: np.ndarray) -> "BuildingGrid":
        gi, gj, fx, fy = grid.locate(x, y)
        ncx, ncy = grid.n_cells
        cell = gi + gj * ncx
        order = np.argsort(cell, kind="stable").astype(np.int64)
        counts = np.bincount(cell, minlength=ncx * ncy)
        start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        sat = np.zeros((ncx + 1, ncy + 1), dtype=np.int64)
        sat[1:, 1:] = counts.reshape(ncy, ncx).T.cumsum(0).cumsum(1)
        return cls(grid, gi, gj, fx, fy, start, order, sat)

    def count(self, ci0: int, ci1: int, cj0: int, cj1: int) -> int:
        return int(ek.window_count(self.sat, ci0, ci1, cj0, cj1))
