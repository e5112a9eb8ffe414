"""Seismicity forecast of the seismic source model (SSM): reading, validation, magnitude basis.

The public chain's SSM writes its forecast as an HDF5/netCDF file: the variable ``forecast`` of
the group ``forecast`` (or a group ``forecast/forecast`` holding one variable), with dims

    (branch_rate, branch_mm, branch_mmax, magnitude, time, x, y)     each branch_* dim optional

and values = the expected number of events with M >= ``magnitude`` in the cell (centre ``x``,
``y`` [m, EPSG:28992]) per time step (one year): a complementary cumulative count per cell,
non-increasing in magnitude. This module is config-independent: :func:`read_forecast` reads and
validates, :func:`branch_nodes` matches branch labels to weights, :func:`node_masses` and
:func:`magnitude_basis` turn each cell's own tabulated distribution into what the engine needs.

Magnitude integration (why it is exact and cheap)
-------------------------------------------------
The engine integrates ground motion and fragility on magnitude *nodes* (the forecast's grid) and
needs, per building, the rates seen at each distance node. With one magnitude law for all cells
the law factors out of the building pass; here every cell has its own law. Two steps keep the
integration exact and the per-building pass small:

1. **Node masses** (:func:`node_masses`). The rate in bin ``[m_i, m_i+1)`` is the difference of
   the counts, ``p_i = N(m_i) - N(m_i+1)`` (exact: no rate lost at bin edges or above Mmax; the
   count at the top node stays there). Inside the bin the density is taken exponential,
   ``exp(-beta_i m)``, with the local ``beta_i`` from the neighbouring bins' densities
   (centred; one-sided at the ends of the support), so a Gutenberg-Richter tabulation, truncated
   at a grid node, is reproduced *exactly* in every bin. Each bin's rate is split between its two
   edge nodes at its exact centroid: the zeroth and first moments of every bin are exact, so a
   table that is linear in M within a bin is integrated exactly; for a smooth table the error is
   ``~ (lambda h)^2 / 12`` of the bin's contribution (``lambda = d ln g / dM``; 0.1-0.3 % for
   h = 0.05 and the steepest fragility tails). On the PSDRA-2024 forecasts' 0.1 grid, whose Mmax
   values also fall inside bins, the LPR comes out ~2.5 % high; :func:`subdivide_bins` first splits
   every bin at its midpoint there (``[source] magnitude_subdivisions = 2``).
2. **A small basis per source branch** (:func:`magnitude_basis`, :func:`branch_bases`). The
   node masses of all cells and years of one branch are rows of one matrix; they share the
   branch's truncation (Mmax), so they span a space of small dimension K (1 for one GR law in all
   cells; ~10 for b-values 0.7-1.3 that differ per cell; all 6 Mmax branches together would need
   ~34). A truncated SVD of the row-normalised, column-scaled matrix (every magnitude counts
   equally in relative terms, so the rare large events are represented as precisely as the
   frequent small ones) gives ``masses ~= coef @ basis`` with a relative residual of ~``rtol``
   (the functions' default 1e-10; an engine run takes ``[source] magnitude_basis_rtol``, 1e-7:
   above the rounding of a file written in float32, whose noise a tighter basis would keep as
   ~100 more functions, and ~1e-8 (mean) / 5e-7 (P50/P90) of the LPR on the field benchmark,
   ``docs/forecast.md``). The tables of a combination with source branch s are integrated against the K basis
   rows of s (:class:`ForecastMagnitude`) and each building's distance histogram carries K
   coefficients per (year, branch) instead of ~100 magnitude bins: ``LPR = sum_r sum_k H[r, k]
   Q[r, k]``, linear, so it equals the per-cell integral up to the residual.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hra.core._numba import jit
from hra.core.logictree import Node

#: The dimensions of the forecast variable: optional branch dims first, then the required ones.
BRANCH_DIMS = ("branch_rate", "branch_mm", "branch_mmax")
REQUIRED_DIMS = ("magnitude", "time", "x", "y")


class ForecastError(ValueError):
    """Bad forecast file or weights; the message names the file, the dimension/label and the fix."""


@dataclass(frozen=True)
class Forecast:
    """A validated forecast for the selected years (cells with no events in any branch dropped).

    ``counts[c, y, s, m]``: expected number of events with M >= ``magnitudes[m]`` in cell c in year
    ``years[y]`` for the flattened branch s (C order over ``branch_dims``) [yr^-1].
    """

    path: Path
    x: np.ndarray  # (c,) [m]
    y: np.ndarray  # (c,) [m]
    years: np.ndarray  # (n_years,)
    magnitudes: np.ndarray  # (m,) [magnitude]
    counts: np.ndarray  # (c, y, s, m) [yr^-1]
    branch_dims: tuple[str, ...]
    branch_labels: tuple[tuple[str, ...], ...]
    cell_size_m: float
    n_cells_file: int  # cells in the file's x-y grid
    all_years: np.ndarray  # every year of the file

    @property
    def n_branches(self) -> int:
        return int(np.prod([len(v) for v in self.branch_labels])) if self.branch_labels else 1

    def branch_names(self) -> tuple[str, ...]:
        """Flattened branch labels ``"elastic/linear_stress/4.0"`` (C order over the branch dims)."""
        if not self.branch_dims:
            return ("forecast",)
        grids = np.meshgrid(*[np.array(v, dtype=object) for v in self.branch_labels], indexing="ij")
        return tuple("/".join(str(g.ravel()[i]) for g in grids) for i in range(self.n_branches))

    def total_rate(self) -> np.ndarray:
        """Total rate of M >= the lowest magnitude per year and branch [yr^-1], shape (y, s)."""
        return self.counts[..., 0].sum(axis=0)


# ---------------------------------------------------------------------------------------------
# reading and validation
# ---------------------------------------------------------------------------------------------


def open_forecast(path: str | Path):
    """The forecast variable of ``path`` as an :class:`xarray.DataArray` (loaded into memory).

    Accepts the variable ``forecast`` of the group ``forecast``, a group ``forecast/forecast``
    holding one variable, or (plain netCDF) a root variable ``forecast``.
    """
    with _forecast_variable(path) as da:
        return da.load()


@contextlib.contextmanager
def _forecast_variable(path: str | Path):
    """The forecast variable of ``path``, lazy (nothing read yet), while its file is open.

    The groups and errors of :func:`open_forecast`; :func:`read_forecast` reads the coordinates
    first and then only the selected years' counts, straight into one array (no second copy).
    """
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise ForecastError(f"forecast file {path} does not exist; check [source] forecast in the config")
    if not _is_hdf5(path):
        raise ForecastError(f"{path}: not an HDF5/netCDF-4 file; give the SSM forecast file (.h5/.nc)")
    for group in ("forecast", "forecast/forecast", None):
        try:
            ds = xr.open_dataset(path, group=group, engine="netcdf4")
        except (OSError, KeyError) as exc:
            if group is not None and "group" in str(exc).lower():
                continue  # no such group
            raise ForecastError(f"{path}: cannot be read as HDF5/netCDF ({exc}); give an SSM forecast file") from None
        with ds:
            if "forecast" in ds.data_vars:
                yield ds["forecast"]
                return
            if group == "forecast/forecast" and len(ds.data_vars) == 1:
                yield next(iter(ds.data_vars.values()))
                return
    raise ForecastError(
        f"{path}: no variable 'forecast' (looked in group 'forecast', group 'forecast/forecast' and the root); "
        "fix: write the counts as variable 'forecast' of group 'forecast'")


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(8)
    return head == b"\x89HDF\r\n\x1a\n"


def _year_of(values: np.ndarray, path: Path) -> np.ndarray:
    """Integer years of a ``time`` coordinate: integers, datetimes or decimal years."""
    v = np.asarray(values)
    if np.issubdtype(v.dtype, np.datetime64):
        return v.astype("datetime64[Y]").astype(np.int64) + 1970
    if v.dtype == object:  # cftime dates
        try:
            return np.array([int(t.year) for t in v], dtype=np.int64)
        except AttributeError:
            raise ForecastError(f"{path}: coordinate 'time' holds {v[:3]!r}...; use integer years, dates or decimal years") from None
    if np.issubdtype(v.dtype, np.number):
        return np.floor(v.astype(float) + 1e-9).astype(np.int64)
    raise ForecastError(f"{path}: coordinate 'time' of type {v.dtype} is not years; use integer years, dates or decimal years")


def _labels(da, dim: str) -> tuple[str, ...]:
    if dim in da.coords:
        vals = np.asarray(da[dim].values)
        if vals.dtype.kind == "S":
            vals = vals.astype(str)
        out = []
        for v in vals.tolist():
            out.append(str(v))
        return tuple(out)
    return tuple(str(i) for i in range(da.sizes[dim]))


def _spacing(v: np.ndarray, name: str, path: Path) -> float:
    u = np.unique(v)
    if u.size < 2:
        return float("nan")
    d = np.diff(u)
    return float(d.min())


def read_forecast(path: str | Path, years: list[int] | None = None) -> Forecast:
    """Read and validate a forecast file, keeping ``years`` (all of the file's years if None).

    Errors (:class:`ForecastError`) name the file, the dimension, label, cell or year and the fix:
    missing variable or dims, unknown dims, a magnitude grid that does not increase, NaN or
    negative counts, counts that increase with magnitude, years not in the file, repeated years.
    """
    path = Path(path)
    with _forecast_variable(path) as da:
        dims = tuple(da.dims)
        missing = [d for d in REQUIRED_DIMS if d not in dims]
        if missing:
            raise ForecastError(f"{path}: variable 'forecast' has dims {dims}, missing {missing}; it needs dims "
                                f"(branch_rate, branch_mm, branch_mmax, magnitude, time, x, y), branch dims optional")
        unknown = [d for d in dims if d not in REQUIRED_DIMS + BRANCH_DIMS]
        if unknown:
            raise ForecastError(f"{path}: variable 'forecast' has unknown dim(s) {unknown}; allowed are "
                                f"{list(BRANCH_DIMS + REQUIRED_DIMS)}; fix: rename or drop them")
        for d in REQUIRED_DIMS:
            if d not in da.coords:
                raise ForecastError(f"{path}: dim {d!r} has no coordinate values; fix: write coordinate {d!r}")
        bdims = tuple(d for d in BRANCH_DIMS if d in dims)
        da = da.transpose(*bdims, "magnitude", "time", "x", "y")
        mags = np.asarray(da["magnitude"].values, dtype=float)
        if mags.size < 2 or not np.all(np.diff(mags) > 0):
            raise ForecastError(f"{path}: coordinate 'magnitude' must increase strictly (got {mags[:6]}...); fix the grid")
        t_years = _year_of(da["time"].values, path)
        u, cnt = np.unique(t_years, return_counts=True)
        if (cnt > 1).any():
            raise ForecastError(f"{path}: coordinate 'time' has several steps in year {int(u[cnt > 1][0])}; "
                                "the forecast needs one step per year")
        if years is None:
            sel_years = np.sort(t_years)
        else:
            sel_years = np.asarray(sorted(years), dtype=np.int64)
            miss = sorted(set(sel_years.tolist()) - set(t_years.tolist()))
            if miss:
                raise ForecastError(f"{path}: no forecast for year(s) {miss}; the file has years "
                                    f"{sorted(t_years.tolist())}; fix [run] years")
        t_index = np.array([int(np.flatnonzero(t_years == yy)[0]) for yy in sel_years], dtype=np.int64)
        labels = tuple(_labels(da, d) for d in bdims)
        xs = np.asarray(da["x"].values, dtype=float)
        ys = np.asarray(da["y"].values, dtype=float)
        nb = int(np.prod([len(v) for v in labels])) if labels else 1
        nm, nt, nx, ny = mags.size, sel_years.size, xs.size, ys.size

        def where(idx) -> str:
            s, m, t, i, j = idx
            br = ""
            if bdims:
                sub = np.unravel_index(s, [len(v) for v in labels])
                br = ", " + ", ".join(f"{d}={labels[k][sub[k]]}" for k, d in enumerate(bdims))
            return f"cell (x={xs[i]:g}, y={ys[j]:g}), year {sel_years[t]}, magnitude {mags[m]:g}{br}"

        # cells: (x, y) grid points with any event, in (x, y) order (flat indices ``keep``)
        counts, keep = _read_counts(da, bdims, labels, t_index, nx * ny)
        if counts is None:  # a bad count somewhere: the whole-array checks word the error
            vals = np.asarray(da.isel(time=t_index).values, dtype=float)  # (*b, m, t, x, y)
            counts, keep = _counts_reference(vals.reshape(nb, nm, nt, nx, ny), mags, where, path)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    dx, dy = _spacing(xs, "x", path), _spacing(ys, "y", path)
    sp = [d for d in (dx, dy) if np.isfinite(d)]
    if not sp:
        raise ForecastError(f"{path}: a single cell gives no spacing; fix: write at least two x or y values")
    if len(sp) == 2 and abs(dx - dy) > 1e-6 * max(dx, dy):
        raise ForecastError(f"{path}: cell spacing differs in x ({dx:g} m) and y ({dy:g} m); the engine needs square cells")
    return Forecast(path=path, x=gx.ravel()[keep], y=gy.ravel()[keep], years=sel_years, magnitudes=mags,
                    counts=counts, branch_dims=bdims, branch_labels=labels, cell_size_m=float(min(sp)),
                    n_cells_file=nx * ny, all_years=np.sort(t_years))


def _raise_bad_counts(arr: np.ndarray, mags: np.ndarray, where, path: Path) -> None:
    """The error for the first NaN, else negative, else increasing count of ``arr`` (b, m, t, x, y)."""
    bad = np.argwhere(~np.isfinite(arr))
    if bad.size:
        raise ForecastError(f"{path}: NaN/infinite count at {where(bad[0])}; fix: write 0 where no events are expected")
    bad = np.argwhere(arr < 0)
    if bad.size:
        raise ForecastError(f"{path}: negative count {arr[tuple(bad[0])]:g} at {where(bad[0])}; counts must be >= 0")
    inc = np.diff(arr, axis=1) > 1e-12 * np.maximum(np.abs(arr[:, :-1]), 1e-300)
    bad = np.argwhere(inc)
    if bad.size:
        b0 = bad[0]
        raise ForecastError(f"{path}: the count increases with magnitude at {where(b0)} -> {mags[b0[1] + 1]:g}; "
                            "values must be the expected number of events with M >= magnitude (non-increasing in M)")


def _counts_reference(arr: np.ndarray, mags: np.ndarray, where, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Checks and counts of ``arr`` (b, m, t, x, y) with whole-array numpy operations: the error
    for the first bad count in C order (NaN first, then negative, then increasing), else the
    counts (c, t, s, m) of the cells with events and their flat (x, y) indices."""
    _raise_bad_counts(arr, mags, where, path)
    nb, nm, nt, nx, ny = arr.shape
    arr = np.moveaxis(arr, (3, 4), (0, 1)).reshape(nx * ny, nb, nm, nt)
    keep = np.flatnonzero(arr.reshape(nx * ny, -1).max(axis=1) > 0)
    return np.ascontiguousarray(np.transpose(arr[keep], (0, 3, 1, 2))), keep


def _read_counts(da, bdims: tuple[str, ...], labels, t_index: np.ndarray,
                 n_cells: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The counts (c, t, s, m) of the cells with events and their flat (x, y) indices, read one
    (branch, year) slab at a time and checked on the way (one pass, no copy of the whole file);
    ``(None, None)`` if a count is bad (the caller words the error with :func:`_counts_reference`).

    The cells with events are those with a positive count at the lowest magnitude (the largest
    count where counts do not increase); the pass confirms it at every magnitude.
    """
    shape = [len(v) for v in labels]
    nb = int(np.prod(shape)) if shape else 1
    low = np.asarray(da.isel(magnitude=0, time=t_index).values, dtype=float)  # (*b, t, x, y)
    with np.errstate(invalid="ignore"):
        cells = np.flatnonzero((low.reshape(-1, n_cells) > 0).any(axis=0))
    nm, nt = da.sizes["magnitude"], t_index.size
    counts = np.empty((cells.size, nt, nb, nm))
    active = np.zeros(n_cells, dtype=np.bool_)
    for s in range(nb):
        sel = {d: int(i) for d, i in zip(bdims, np.unravel_index(s, shape))} if shape else {}
        for t in range(nt):
            slab = np.ascontiguousarray(da.isel({**sel, "time": int(t_index[t])}).values, dtype=float)  # (m, x, y)
            if not _check_gather(slab.reshape(nm, n_cells), cells, counts, s, t, active):
                return None, None
    if not np.array_equal(np.flatnonzero(active), cells):
        return None, None
    return counts, cells


@jit
def _check_gather(a, cells, out, s, t, active):
    """Check the counts ``a[m, cell]`` of one (branch, year) (finite, >= 0, non-increasing in m
    within the tolerance of :func:`_raise_bad_counts`), mark the cells with a positive count in
    ``active`` and copy those of ``cells`` to ``out[:, t, s, :]`` (by tiles of 64 cells). False
    if a count is bad."""
    nm, nc = a.shape
    bad = False
    for m in range(nm):
        for c in range(nc):
            v = a[m, c]
            bad |= not (np.isfinite(v) and v >= 0.0)
            if m + 1 < nm:
                bad |= a[m + 1, c] - v > 1e-12 * max(abs(v), 1e-300)
            if v > 0.0:
                active[c] = True
    if bad:
        return False
    n = cells.size
    for i0 in range(0, n, 64):
        i1 = min(i0 + 64, n)
        for m in range(nm):
            for i in range(i0, i1):
                out[i, t, s, m] = a[m, cells[i]]
    return True

def _same_label(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a)))
    except ValueError:
        return False


def branch_nodes(fc: Forecast, weights: dict[str, dict[str, float]]) -> tuple[Node, ...]:
    """Logic-tree nodes of the forecast's branch dims, weights matched by dim and label.

    Numeric labels match by value (``"4"`` = ``4.0``). A dim with one label needs no weight.
    Errors name the dim, the label and the fix: a label without a weight, a weight without a
    label, weights of a dim the file does not have, weights not summing to 1.
    """
    where = f"{fc.path}"
    extra = [d for d in weights if d not in fc.branch_dims]
    if extra:
        raise ForecastError(f"{where}: [source.forecast_weights] {extra[0]} is given but the forecast has no dim "
                            f"{extra[0]!r} (its branch dims: {list(fc.branch_dims)}); fix: remove those weights")
    nodes = []
    for dim, labels in zip(fc.branch_dims, fc.branch_labels):
        given = weights.get(dim)
        if given is None:
            if len(labels) == 1:
                nodes.append(Node(dim, labels, (1.0,)))
                continue
            raise ForecastError(f"{where}: dim {dim!r} has labels {list(labels)} but no weights; fix: add "
                                f"[source.forecast_weights] {dim} = {{ {', '.join(repr(l) + ' = ...' for l in labels)} }}")
        w = []
        used = set()
        for lab in labels:
            match = [k for k in given if _same_label(str(k), lab)]
            if not match:
                raise ForecastError(f"{where}: label {lab!r} of dim {dim!r} has no weight in [source.forecast_weights] "
                                    f"{dim} (weights given for {list(given)}); fix: add {lab!r} = weight")
            used.add(match[0])
            w.append(float(given[match[0]]))
        unused = [k for k in given if k not in used]
        if unused:
            raise ForecastError(f"{where}: [source.forecast_weights] {dim} gives a weight for {unused[0]!r}, which is "
                                f"not a label of dim {dim!r} (labels: {list(labels)}); fix: remove it or correct the label")
        total = sum(w)
        if abs(total - 1.0) > 1e-6:
            raise ForecastError(f"{where}: weights of dim {dim!r} sum to {total:.6g}; they must sum to 1")
        try:
            values = tuple(float(v) for v in labels)
        except ValueError:
            values = None
        nodes.append(Node(dim, labels, tuple(w), values))
    return tuple(nodes)


# ---------------------------------------------------------------------------------------------
# magnitude representation (pure functions)
# ---------------------------------------------------------------------------------------------


def _centroid_fraction(x: np.ndarray) -> np.ndarray:
    """Centroid of the density exp(-x u) on u in [0, 1]: 1/x - 1/expm1(x) (1/2 at x = 0)."""
    x = np.asarray(x, dtype=float)
    small = np.abs(x) < 1e-6
    xs = np.where(small, 1.0, x)
    with np.errstate(over="ignore", invalid="ignore"):
        big = 1.0 / xs - 1.0 / np.expm1(xs)
    big = np.where(x > 700, 1.0 / xs, big)
    big = np.where(x < -700, 1.0 + 1.0 / xs, big)
    return np.where(small, 0.5 - x / 12.0, big)


def local_beta(magnitudes: np.ndarray, bin_rates: np.ndarray) -> np.ndarray:
    """Local exponential decay rate ``beta`` (= b ln 10) of the density in every bin [1/magnitude].

    From the neighbouring bins' mean densities ``d = p / h``: centred
    ``ln(d_{i-1} / d_{i+1}) / (c_{i+1} - c_{i-1})`` where both neighbours carry events, one-sided
    at the ends of the support, 0 (uniform) for an isolated bin. Exact for a GR law on a uniform grid.
    """
    m = np.asarray(magnitudes, dtype=float)
    h = np.diff(m)
    c = 0.5 * (m[:-1] + m[1:])
    p = np.asarray(bin_rates, dtype=float)
    pos = p > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        lnd = np.where(pos, np.log(np.where(pos, p, 1.0) / h), 0.0)
    n = p.shape[-1]
    beta = np.zeros_like(p)
    if n < 2:
        return beta
    lo_ok = np.zeros_like(pos)
    hi_ok = np.zeros_like(pos)
    lo_ok[..., 1:] = pos[..., :-1]
    hi_ok[..., :-1] = pos[..., 1:]
    lnd_lo = np.zeros_like(lnd)
    lnd_hi = np.zeros_like(lnd)
    lnd_lo[..., 1:] = lnd[..., :-1]
    lnd_hi[..., :-1] = lnd[..., 1:]
    c_lo = np.concatenate([[c[0] - 1.0], c[:-1]])
    c_hi = np.concatenate([c[1:], [c[-1] + 1.0]])
    both = lo_ok & hi_ok
    beta = np.where(both, (lnd_lo - lnd_hi) / (c_hi - c_lo), beta)
    beta = np.where(lo_ok & ~hi_ok, (lnd_lo - lnd) / (c - c_lo), beta)
    beta = np.where(hi_ok & ~lo_ok, (lnd - lnd_hi) / (c_hi - c), beta)
    return np.where(pos, beta, 0.0)


#: The coarsest magnitude step whose in-bin integration error needs no warning (the SSM's own grid) [magnitude].
FINE_MAGNITUDE_STEP = 0.05


def coarse_grid_advice(magnitudes: np.ndarray) -> str | None:
    """What to do about a magnitude grid coarser than :data:`FINE_MAGNITUDE_STEP` (``None`` for a fine
    one): integrated on its own grid the LPR comes out high (~2.5 % on the PSDRA-2024 grid of 0.1,
    ``docs/forecast.md``); :func:`subdivide_bins` removes that. Logged by a run, printed by
    ``hra forecast info``."""
    step = float(np.diff(np.asarray(magnitudes, dtype=float)).max())
    if step <= FINE_MAGNITUDE_STEP + 1e-9:
        return None
    return (f"magnitude step {step:.3g}: integrated on that grid the LPR comes out high (~2.5 % on the PSDRA-2024 "
            "grid of 0.1, docs/forecast.md); fix: set [source] magnitude_subdivisions = 2 (each bin split at its "
            "midpoint; with magnitude_table_stride = 2 the tables stay at the file's nodes)")


def subdivide_bins(magnitudes: np.ndarray, counts: np.ndarray, n: int = 2,
                   block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """The counts on a grid ``n`` times finer, each bin split by its own in-bin exponential law.

    Parameters
    ----------
    magnitudes : (m,) increasing grid [magnitude]
    counts : (..., m) expected number of events with M >= magnitude, non-increasing [yr^-1]
    n : sub-bins per bin (1: the inputs unchanged)
    block : rows computed together (bounds the scratch memory; no effect on the result)

    Returns
    -------
    ``(magnitudes', counts')``, shapes ``((m - 1) n + 1,)`` and ``(..., (m - 1) n + 1)``. The bin
    ``[m_i, m_i+1)`` of rate ``p_i = N(m_i) - N(m_i+1)`` has the density ``exp(-beta_i m)`` on
    ``[m_i, m_i + s_i)``, so the count above a sub-node ``m_i + u`` (``u = j h / n``) is

        N(m_i + u) = N(m_i+1) + p_i (e^{-beta u} - e^{-beta s}) / (1 - e^{-beta s})   (0 for u >= s)

    ``beta_i`` is :func:`local_beta`'s (the rule :func:`node_masses` takes inside a bin) and
    ``s_i = h`` except in the top bin of a truncated law: where the counts end in that bin (zero at
    its upper node) with two bins below it carrying events, the law is taken to go on from the bin
    below without a jump in density (beta from the two bins below) and to stop where the top bin's
    rate is used up,

        s = -ln(1 - (p_i / p_i-1) expm1(beta h)) / beta      (the whole bin when p_i is larger),

    the bin below getting the same beta (the centred estimate would use the top bin's diluted
    density). A Gutenberg-Richter law truncated anywhere (the chain's Mmax 4.0 ... 6.5 lie on the
    midpoints of the PSDRA-2024 grid 1.45, 1.55, ...) gives the counts it has on the finer grid
    (:func:`gr_counts`), to rounding. The file's nodes keep their counts to the bit and every bin
    its rate.

    Why: :func:`node_masses` integrates a table that is linear in M within each bin exactly, and a
    smooth table ``g`` with an error of ~``(lambda h)^2 / 12`` of the bin's contribution
    (``lambda = d ln g / dM``). On the PSDRA-2024 grid (h = 0.1) that puts the LPR ~2.5 % high
    (``docs/forecast.md``); on the sub-nodes (h = 0.05) a quarter of it. With ``[source]
    magnitude_table_stride = 2`` the tables are computed at the file's own nodes (and the model's
    kinks in M) and interpolated in ln P to the midpoints (:mod:`hra.integration.magnitudes`), so
    the finer grid costs little more than the file's.
    """
    m = np.asarray(magnitudes, dtype=float)
    c = np.asarray(counts, dtype=float)
    if n == 1:
        return m, c
    if n < 1 or int(n) != n:
        raise ValueError(f"subdivide_bins: n must be a positive integer, got {n!r}")
    n = int(n)
    h = np.diff(m)
    mid = 0.5 * (m[:-1] + m[1:])
    j = np.arange(1, n, dtype=float) / n  # the sub-nodes inside a bin, as fractions of h
    m_out = np.empty((m.size - 1) * n + 1)
    # the sub-nodes to 12 decimals (a 0.1 grid's midpoints are then the 0.05 grid's values), the file's as they are
    sub_m = np.round(m[:-1, None] + h[:, None] * j, 12)  # (bins, n - 1)
    m_out[:-1] = np.concatenate([m[:-1, None], sub_m], axis=1).ravel()
    m_out[-1] = m[-1]
    u = sub_m - m[:-1, None]  # the sub-nodes' offsets in their bins (as placed) [magnitude]
    rows = c.reshape(-1, m.size)
    out = np.empty((rows.shape[0], m_out.size))
    nb = h.size
    for r0 in range(0, rows.shape[0], block):
        r = rows[r0:r0 + block]
        k = r.shape[0]
        p = np.maximum(r[:, :-1] - r[:, 1:], 0.0)
        beta = local_beta(m, p)
        width = np.broadcast_to(h, p.shape).copy()
        if nb >= 3:
            pos = p > 0
            t = nb - 1 - np.argmax(pos[:, ::-1], axis=1)  # the top bin with events
            idx = np.arange(k)
            tt = np.maximum(t, 2)
            top = pos.any(axis=1) & (t >= 2) & (r[idx, np.minimum(t + 1, nb)] == 0) & pos[idx, tt - 1] & pos[idx, tt - 2]
            rr, tt = idx[top], t[top]
            p2, p1, pt = p[rr, tt - 2], p[rr, tt - 1], p[rr, tt]
            b = np.log((p2 / h[tt - 2]) / (p1 / h[tt - 1])) / (mid[tt - 1] - mid[tt - 2])
            x1, xt = b * h[tt - 1], b * h[tt]
            flat = np.abs(x1) < 1e-9
            bs = np.where(flat, 1.0, b)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                # the density at the top bin's lower node over beta, and what the bin could hold up to its upper node
                f_b = np.where(flat, p1 / h[tt - 1] * h[tt], p1 / np.expm1(np.where(flat, 1.0, x1)))  # f(m_t) / beta
                cap = np.where(flat, f_b, f_b * -np.expm1(-np.where(flat, 1.0, xt)))
                s = np.where(flat, pt / f_b * h[tt], -np.log1p(-pt / f_b) / bs)
            cut = pt < cap
            rr, tt, b, s = rr[cut], tt[cut], b[cut], s[cut]
            beta[rr, tt] = b
            beta[rr, tt - 1] = b
            width[rr, tt] = np.minimum(s, h[tt])
        # share of a bin's rate above its sub-node j: the exponential on [0, s) at the relative offset a = u / s
        a = np.minimum(u / width[..., None], 1.0)  # (rows, bins, n - 1)
        x = (beta * width)[..., None]
        xa = np.abs(np.where(np.abs(x) < 1e-9, 1.0, x))
        with np.errstate(over="ignore", invalid="ignore"):
            above = np.exp(-xa * a) * np.expm1(-xa * (1.0 - a)) / np.expm1(-xa)  # x > 0
            below = np.exp(-xa * (1.0 - a)) * np.expm1(-xa * a) / np.expm1(-xa)  # x < 0: the mirror image
        frac = np.where(np.abs(x) < 1e-9, 1.0 - a, np.where(x > 0, above, 1.0 - below))
        # a law that ends on a sub-node (within rounding) leaves it no count: a count of ~1e-22 there would
        # be a bin with events to node_masses, whose local beta would then take its density
        frac[a >= 1.0 - 1e-9] = 0.0
        sub = np.empty((k, nb, n))
        sub[..., 0] = r[:, :-1]  # the file's nodes: their counts to the bit
        sub[..., 1:] = r[:, 1:, None] + p[..., None] * frac
        out[r0:r0 + k, :-1] = sub.reshape(k, -1)
        out[r0:r0 + k, -1] = r[:, -1]
    return m_out, out.reshape(c.shape[:-1] + (m_out.size,))


def node_masses(magnitudes: np.ndarray, counts: np.ndarray, block: int = 2048) -> np.ndarray:
    """Rates at the magnitude nodes that integrate each bin's zeroth and first moment exactly.

    Parameters
    ----------
    magnitudes : (m,) increasing grid [magnitude]
    counts : (..., m) expected number of events with M >= magnitude, non-increasing [yr^-1]
    block : rows computed together (bounds the scratch memory; no effect on the result)

    Returns
    -------
    (..., m) rates [yr^-1]: bin ``i`` (rate ``counts_i - counts_i+1``, exponential shape of local
    ``beta_i``) split between nodes i and i+1 at its centroid; the count at the top node stays
    there. Sums to ``counts[..., 0]``; ``sum masses * g`` is exact for g linear within each bin.

    The same numbers, to the bit, as :func:`local_beta` and :func:`_centroid_fraction` applied to
    whole arrays (:func:`_node_masses_reference`): the arithmetic runs row by row in numba in the
    same order, the logarithm and ``expm1`` stay numpy's, on blocks of rows that fit the cache.
    """
    m = np.asarray(magnitudes, dtype=float)
    n = np.asarray(counts, dtype=float)
    if n.shape[-1] < 3 or n.size == 0:
        return _node_masses_reference(m, n)
    rows = np.ascontiguousarray(n.reshape(-1, n.shape[-1]))
    h = np.diff(m)
    c = 0.5 * (m[:-1] + m[1:])
    out = np.empty_like(rows)
    nb = h.size
    p = np.empty((min(block, rows.shape[0]), nb))
    lnd = np.empty_like(p)
    x = np.empty_like(p)
    e = np.empty_like(p)
    for r0 in range(0, rows.shape[0], block):
        r = rows[r0:r0 + block]
        k = r.shape[0]
        _bin_rates(r, h, p[:k], lnd[:k])  # p, and the argument of the log
        np.log(lnd[:k], out=lnd[:k])
        _bin_shapes(p[:k], lnd[:k], c, h, x[:k], e[:k])  # beta h, and the argument of expm1
        with np.errstate(over="ignore"):
            np.expm1(e[:k], out=e[:k])
        _split_bins(r, p[:k], x[:k], e[:k], out[r0:r0 + k])
    return out.reshape(n.shape)


def _node_masses_reference(m: np.ndarray, n: np.ndarray) -> np.ndarray:
    """:func:`node_masses` with whole-array numpy operations (the reference of its fast path)."""
    p = np.maximum(n[..., :-1] - n[..., 1:], 0.0)
    beta = local_beta(m, p)
    h = np.diff(m)
    f = _centroid_fraction(beta * h)
    out = np.zeros_like(n)
    out[..., :-1] += p * (1.0 - f)
    out[..., 1:] += p * f
    out[..., -1] += n[..., -1]
    return out


@jit
def _bin_rates(n, h, p, arg):
    """Bin rates ``p = max(n_i - n_i+1, 0)`` and ``arg = p / h`` (1 / h where p = 0: log's argument)."""
    for r in range(n.shape[0]):
        for i in range(h.size):
            d = n[r, i] - n[r, i + 1]
            if d < 0.0:
                d = 0.0
            p[r, i] = d
            arg[r, i] = (d if d > 0.0 else 1.0) / h[i]


@jit
def _bin_shapes(p, lnd, c, h, x, arg):
    """``x = beta h`` (:func:`local_beta` from the log densities ``lnd``) and the argument of expm1
    of :func:`_centroid_fraction` (``x``, 1 where ``|x| < 1e-6``)."""
    nb = h.size
    for r in range(p.shape[0]):
        for i in range(nb):
            beta = 0.0
            if p[r, i] > 0.0:
                lo = i > 0 and p[r, i - 1] > 0.0
                hi = i + 1 < nb and p[r, i + 1] > 0.0
                if lo and hi:
                    beta = (lnd[r, i - 1] - lnd[r, i + 1]) / (c[i + 1] - c[i - 1])
                elif lo:
                    beta = (lnd[r, i - 1] - lnd[r, i]) / (c[i] - c[i - 1])
                elif hi:
                    beta = (lnd[r, i] - lnd[r, i + 1]) / (c[i + 1] - c[i])
            v = beta * h[i]
            x[r, i] = v
            arg[r, i] = 1.0 if abs(v) < 1e-6 else v


@jit
def _split_bins(n, p, x, em1, out):
    """Node masses from the bin rates ``p``, ``x = beta h`` and ``em1 = expm1(x)`` (the centroid
    fraction of :func:`_centroid_fraction`; the sums in the order of :func:`_node_masses_reference`)."""
    nb = p.shape[1]
    for r in range(p.shape[0]):
        prev = 0.0
        for i in range(nb):
            v = x[r, i]
            if abs(v) < 1e-6:
                f = 0.5 - v / 12.0
            elif v > 700:
                f = 1.0 / v
            elif v < -700:
                f = 1.0 + 1.0 / v
            else:
                f = 1.0 / v - 1.0 / em1[r, i]
            o = 0.0
            o += p[r, i] * (1.0 - f)
            if i > 0:
                o += prev
            out[r, i] = o
            prev = p[r, i] * f
        o = 0.0
        o += prev
        o += n[r, nb]
        out[r, nb] = o


@dataclass(frozen=True)
class MagnitudeBasis:
    """``masses[n, :] ~= coef[n, :] @ basis`` for every row n (cell, year, branch)."""

    basis: np.ndarray  # (K, m) [-]
    coef: np.ndarray  # (n, K) [yr^-1]
    residual: float  # max relative residual of a row (in the scaled norm) [-]


def magnitude_basis(masses: np.ndarray, rtol: float = 1e-10, block: int = 20000) -> MagnitudeBasis:
    """A small shared basis of the node-mass rows (truncated SVD of the scaled rows, by blocks).

    Rows are divided by their sum and columns scaled by their largest normalised value, so every
    magnitude node counts equally in relative terms; singular vectors above ``rtol`` times the
    largest are kept (a tall-skinny QR by blocks of ``block`` rows keeps memory bounded).
    Columns without mass in any row (nodes above the branch's Mmax) are left out of the
    factorisation (their basis entries are 0, as they are in exact arithmetic), and BLAS runs on
    one thread, so the basis is the same to the bit whatever the machine's number of cores.
    """
    from hra.core.executor import single_thread_blas

    a = np.asarray(masses, dtype=float)
    n, m = a.shape
    with single_thread_blas():
        tot = a.sum(axis=1)
        norm = np.where(tot > 0, tot, 1.0)
        scale = np.zeros(m)
        for s in range(0, n, block):
            scale = np.maximum(scale, (a[s:s + block] / norm[s:s + block, None]).max(axis=0))
        cols = np.flatnonzero(scale > 0)
        if cols.size == 0:
            return MagnitudeBasis(np.zeros((1, m)), np.zeros((n, 1)), 0.0)
        if cols.size < m:
            a, scale = a[:, cols], scale[cols]
        rs = []
        for s in range(0, n, block):
            blk = a[s:s + block] / norm[s:s + block, None] / scale
            rs.append(np.linalg.qr(blk, mode="r") if blk.shape[0] >= cols.size else blk)
        r = np.vstack(rs)
        _, sv, vt = np.linalg.svd(r, full_matrices=False)
        if sv.size == 0 or sv[0] == 0:
            return MagnitudeBasis(np.zeros((1, m)), np.zeros((n, 1)), 0.0)
        k = max(1, int((sv > rtol * sv[0]).sum()))
        v = vt[:k]  # orthonormal rows in the scaled space
        coef = np.empty((n, k))
        res = 0.0
        for s in range(0, n, block):
            blk = a[s:s + block] / scale
            c = blk @ v.T
            coef[s:s + block] = c
            rel = np.abs(c @ v - blk).max(axis=1) / np.maximum(np.abs(blk).max(axis=1), 1e-300)
            res = max(res, float(rel.max(initial=0.0)))
    basis = np.zeros((k, m))
    basis[:, cols] = v * scale[None, :]
    return MagnitudeBasis(basis, coef, res)


def branch_bases(masses: np.ndarray, rtol: float = 1e-10) -> tuple[np.ndarray, np.ndarray, float]:
    """One :func:`magnitude_basis` per source branch, padded to a common size K.

    Parameters
    ----------
    masses : (n, S, m) node masses of n rows (cells x years) for each of S branches [yr^-1]

    Returns
    -------
    basis (S, K, m), coef (n, S, K) with ``masses[:, s] ~= coef[:, s] @ basis[s]``, and the
    largest relative residual. Within one branch the truncation (Mmax) is shared, so only the
    per-cell shape varies: K is the number of shapes of one branch (1 for one GR law in all
    cells), not of all branches together.
    """
    from hra.core.executor import single_thread_blas

    n, S, m = masses.shape
    with single_thread_blas():  # one limit for all branches
        parts = [magnitude_basis(np.ascontiguousarray(masses[:, s]), rtol) for s in range(S)]
    K = max(p.basis.shape[0] for p in parts)
    basis = np.zeros((S, K, m))
    coef = np.zeros((n, S, K))
    for s, p in enumerate(parts):
        basis[s, :p.basis.shape[0]] = p.basis
        coef[:, s, :p.basis.shape[0]] = p.coef
    return basis, coef, max(p.residual for p in parts)


@dataclass(frozen=True)
class ForecastMagnitude:
    """The magnitude integration of a forecast, with the interface of
    :class:`hra.inputs.source.MagnitudeBins` the table builder uses (``nodes``, ``integrate``).

    ``integrate(g)`` returns, for values ``g[..., r, m]`` at the nodes, the integrals against the
    K basis rows of every source branch s, the basis index appended to the distance axis: shape
    ``(S, 1) + g.shape[:-2] + (R * K,)`` with index ``r * K + k`` (the source branch takes the
    place of the rate grid's b-value axis, a single "Mmax" axis keeps the table layout).
    """

    nodes: np.ndarray  # (m,) [magnitude]
    basis: np.ndarray  # (S, K, m)
    #: the death tables computed at every ``table_stride``-th node (``[source] magnitude_table_stride``)
    table_stride: int = 1

    per_branch = True  # tables are per source branch (the engine keys its tables and tree mean by s)

    @property
    def n_nodes(self) -> int:
        return int(self.nodes.size)

    @property
    def n_basis(self) -> int:
        return int(self.basis.shape[1])

    def integrate(self, g: np.ndarray, branches: np.ndarray | None = None) -> np.ndarray:
        """Integrals of ``g[..., r, m]`` against the basis of every branch (or of ``branches`` only,
        in that order): shape ``(S or len(branches), 1) + g.shape[:-2] + (R * K,)``. Linear in g."""
        g = np.asarray(g, dtype=float)
        basis = self.basis if branches is None else self.basis[np.asarray(branches, dtype=np.int64)]
        out = np.einsum("...m,skm->s...k", g, basis)  # (S, ..., r, K)
        return out.reshape((basis.shape[0],) + g.shape[:-2] + (g.shape[-2] * self.n_basis,))[:, None]


# ---------------------------------------------------------------------------------------------
# writing (synthetic forecasts for tests, benchmarks and examples)
# ---------------------------------------------------------------------------------------------


#: The chain's magnitude grid: 1.45 to 6.55 in steps of 0.05 (bin edges and centres interleaved).
CHAIN_MAGNITUDES = np.round(1.45 + 0.05 * np.arange(103), 10)


def gr_counts(magnitudes: np.ndarray, rate, b_value, m_max, m_min: float | None = None) -> np.ndarray:
    """Expected number of events with M >= m of a Gutenberg-Richter law truncated at ``m_max``.

    ``N(m) = rate (10^{-b (m - m_min)} - 10^{-b (m_max - m_min)}) / (1 - 10^{-b (m_max - m_min)})``
    for m_min <= m <= m_max, 0 above m_max. ``rate``, ``b_value`` and ``m_max`` broadcast
    together (shape ``S``); returns shape ``S + (n_magnitudes,)``.

    Parameters
    ----------
    magnitudes : (m,) grid [magnitude]; m_min defaults to its first value
    rate : events with M >= m_min [yr^-1]
    b_value : GR b-value [-]
    m_max : truncation magnitude [magnitude]
    """
    m = np.asarray(magnitudes, dtype=float)
    m0 = float(m[0] if m_min is None else m_min)
    rate, b, mx = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (rate, b_value, m_max)))
    beta = (b * np.log(10.0))[..., None]
    top = np.exp(-beta * (mx[..., None] - m0))
    n = (np.exp(-beta * (np.clip(m, m0, None) - m0)) - top) / (1.0 - top)
    n = np.where(m <= mx[..., None] + 1e-9, np.clip(n, 0.0, None), 0.0)
    return rate[..., None] * n


def write_forecast(counts, path: str | Path) -> Path:
    """Write a forecast DataArray as the SSM file layout (variable ``forecast`` of group
    ``forecast``, netCDF-4/HDF5), through a temporary file renamed into place."""
    import os
    import tempfile

    path = Path(path)
    da = counts.rename("forecast")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        da.to_dataset().to_netcdf(tmp, group="forecast", engine="netcdf4", mode="w")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def factor_years(rates: np.ndarray, n_years: int, n_src: int, rtol: float = 1e-13) -> tuple[np.ndarray, np.ndarray] | None:
    """Per source branch, the years of the building pass's rates as a few time components.

    The rates of branch s, as a matrix over (year) x (cell, basis function), are
    ``rates[c, k, y, s] = sum_t year[y, t, s] coef[c, k, t, s]`` with ``year[:, :, s]`` the left singular
    vectors of that matrix (orthonormal columns) and ``coef = year^T rates`` (t < T). A forecast whose map
    of one branch only scales from year to year has T = 1 (every year a multiple of one map); a map that
    changes shape needs more components, at most the number of years. The building pass
    (:func:`hra.integration.kernels.chunk_lpr`) then contracts each building's histogram with the
    tables once per time component instead of once per year, and forms each year's value as
    ``A[y, u] = sum_t year[y, t, s(u)] A_t[u]``: the same sums, since the contraction is linear in the
    rates (exact up to the truncation below).

    T is the largest numerical rank over the branches: singular values above ``rtol`` times the
    branch's largest, and the reconstruction checked element-wise, ``max |rates - year coef| <= rtol *
    max |rates|`` (a branch that fails keeps all its years). Branches of lower rank are padded with
    zero components (the building pass skips their all-zero rates).

    Parameters
    ----------
    rates
        (cells, K * Y * S) rates [yr^-1] per cell; column ``(k * Y + y) * S + s`` is basis function k,
        year y, source branch s (K = 1 for a rate grid).
    n_years, n_src
        Y and S.
    rtol
        Largest element-wise deviation relative to the largest rate [-].

    Returns
    -------
    ``(coef (cells, K * T * S), year (Y, T, S))`` (same column layout with T in place of Y), or None
    where T = Y (nothing to gain: the rates are used as they are).

    Examples
    --------
    >>> import numpy as np
    >>> from hra.inputs.forecast import factor_years
    >>> rng = np.random.default_rng(0)
    >>> base = rng.uniform(size=(50, 2, 1, 3))                  # (cells, K, 1, S)
    >>> decline = np.array([1.0, 0.9, 0.81])[:, None]           # (Y, 1): every map scaled per year
    >>> rates = (base * decline[None, None, :, :]).reshape(50, -1)  # (cells, K * Y * S)
    >>> coef, year = factor_years(rates, n_years=3, n_src=3)
    >>> coef.shape, year.shape
    ((50, 6), (3, 1, 3))
    >>> back = np.einsum("ytS,cktS->ckyS", year, coef.reshape(50, 2, 1, 3)).reshape(50, -1)
    >>> bool(np.abs(back - rates).max() <= 1e-13 * rates.max())
    True
    """
    a = np.asarray(rates, dtype=float)
    n_c, n_col = a.shape
    if n_years <= 1 or n_col % (n_years * n_src):
        return None
    n_k = n_col // (n_years * n_src)
    top = float(np.abs(a).max()) if a.size else 0.0
    if top == 0.0:
        return None
    r4 = a.reshape(n_c, n_k, n_years, n_src)
    comps = []
    for s in range(n_src):
        m = np.ascontiguousarray(np.transpose(r4[:, :, :, s], (2, 0, 1))).reshape(n_years, -1)  # (Y, c * K)
        u, sv, _ = np.linalg.svd(m, full_matrices=False)  # sv.size = min(Y, c * K)
        if sv[0] == 0.0:
            comps.append(u[:, :1])  # a branch without rates: one zero component
            continue
        t = sv.size
        for r in range(1, sv.size):
            if sv[r] <= rtol * sv[0]:
                t = r
                break
        left = u[:, :t]
        if t >= n_years or np.abs(m - left @ (left.T @ m)).max() > rtol * top:
            return None
        comps.append(left)
    n_t = max(c.shape[1] for c in comps)
    year = np.zeros((n_years, n_t, n_src))
    coef = np.zeros((n_c, n_k, n_t, n_src))
    for s, left in enumerate(comps):
        t = left.shape[1]
        year[:, :t, s] = left
        coef[:, :, :t, s] = np.einsum("yt,cky->ckt", left, r4[:, :, :, s])
    return np.ascontiguousarray(coef.reshape(n_c, -1)), year


#: Largest deviation of the factored rates from the rates, relative to the largest rate
#: (:func:`compress_rates`): rounding level, so the LPR changes by ~1e-13 relative at most.
RATES_FACTOR_RTOL = 1e-13


def compress_rates(rates: np.ndarray, rtol: float = RATES_FACTOR_RTOL,
                   max_fraction: float = 0.125) -> tuple[np.ndarray, np.ndarray] | None:
    """A low-rank factor ``rates ~= left @ basis`` that the building pass uses for its histogram.

    A forecast's rates per (cell, basis function x year x source branch) (e.g. 3,946 cells x 1,512
    columns: 9 x 7 x 24) vary across cells by a few spatial patterns, so the matrix has a small
    numerical rank (21 for the field benchmark's forecast). The histogram of a building (rates summed
    per distance x azimuth node, ~6 axpys of the row length per cell) is then taken over the J
    columns of ``left`` and expanded once per non-empty node row with ``basis``: the per-cell work
    falls by the factor (columns / J). The factor comes from a seeded randomized range finder
    (Gaussian test matrix from a fixed seed, QR, J doubled until the check passes, then trimmed to
    the fewest singular components that pass), so it is the same in every run of the same rates;
    it is accepted only if the largest element-wise deviation ``max |rates - left @ basis| <= rtol
    * max |rates|`` (checked on the whole matrix, not estimated) and J <= ``max_fraction`` x
    columns, else ``None`` (the rates are used as they are). Used by
    :func:`hra.integration.engine.static_rates` for the building pass.

    Parameters
    ----------
    rates
        (cells, columns) non-negative rates [yr^-1] (any unit: the factor is linear).
    rtol
        Largest element-wise deviation relative to the largest rate [-].
    max_fraction
        Largest J / columns for which the factor pays [-].

    Returns
    -------
    (left (cells, J), basis (J, columns)) or None.

    Examples
    --------
    >>> import numpy as np
    >>> from hra.inputs.forecast import compress_rates
    >>> rng = np.random.default_rng(0)
    >>> rates = rng.uniform(size=(500, 3)) @ rng.uniform(size=(3, 400))  # rank 3
    >>> left, basis = compress_rates(rates)
    >>> left.shape, basis.shape, bool(np.abs(left @ basis - rates).max() <= 1e-13 * rates.max())
    ((500, 3), (3, 400), True)
    >>> compress_rates(rng.uniform(size=(500, 40))) is None  # full rank: kept as it is
    True
    """
    from hra.core.executor import single_thread_blas

    with single_thread_blas():  # the same bits whatever the BLAS threads (deterministic factor)
        return _compress_rates(np.ascontiguousarray(rates, dtype=float), rtol, max_fraction)


def _compress_rates(a: np.ndarray, rtol: float, max_fraction: float) -> tuple[np.ndarray, np.ndarray] | None:
    n_c, n_col = a.shape
    top = float(np.abs(a).max()) if a.size else 0.0
    j_max = int(max_fraction * n_col)
    if top == 0.0 or j_max < 1:
        return None
    rng = np.random.default_rng(20240517)
    j = min(8, j_max)
    while True:
        omega = rng.standard_normal((n_col, j))
        q, _ = np.linalg.qr(a @ omega)
        basis = q.T @ a
        if np.abs(a - q @ basis).max() <= rtol * top:
            # trim to the numerical rank: the SVD of the small (j, columns) basis, fewest components
            # that still pass the check (the expansion per node row costs J axpys)
            u, sv, vt = np.linalg.svd(basis, full_matrices=False)
            for r in range(1, sv.size):
                left = q @ u[:, :r]
                trimmed = sv[:r, None] * vt[:r]
                if sv[r] <= rtol * sv[0] and np.abs(a - left @ trimmed).max() <= rtol * top:
                    return np.ascontiguousarray(left), np.ascontiguousarray(trimmed)
            return np.ascontiguousarray(q), np.ascontiguousarray(basis)
        if j >= j_max:
            return None
        j = min(2 * j, j_max)
