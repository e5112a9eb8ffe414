"""A run's Dataset as a per-building table: statistics per year, risk category and profile."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import hra.core.fileio as fileio

log = logging.getLogger("hra")

#: The norm on the Local Personal Risk (Besluit versterking art. 3). [yr^-1]
NORM_LPR = 1e-5

#: Risk categories, high to low: mean above the norm; only the P90 above it; neither.
CATEGORIES = ("mean", "p90_only", "neither")


class ReviewError(ValueError):
    """A run file or comparison that cannot be reviewed; the message names the file and the fix."""


def open_run(path: str | Path) -> xr.Dataset:
    """Open a risk Dataset written by ``hra run`` (``.zarr`` directory or ``.nc`` file), loaded in memory.

    Raises
    ------
    ReviewError
        The path does not exist, cannot be read, or holds no ``lpr_mean`` / ``provenance``.
    """
    p = Path(path)
    fileio.recover(p.parent)  # an interrupted commit of this output: finish it first
    if not p.exists():
        raise ReviewError(f"run file {p} does not exist; give the output of `hra run` (a .zarr directory or .nc file)")
    try:
        ds = xr.open_zarr(p) if (p.is_dir() or p.suffix.lower() == ".zarr") else xr.open_dataset(p)
        ds = ds.load()
    except Exception as err:  # noqa: BLE001 - any reader failure becomes one clear message
        raise ReviewError(f"run file {p}: cannot read it as zarr or netCDF ({err}); give the output of `hra run`") from None
    if "lpr_mean" not in ds or "building_id" not in ds.coords:
        raise ReviewError(f"run file {p} holds no risk Dataset (no lpr_mean / building_id); give the output of `hra run`")
    if "provenance" not in ds.attrs:
        raise ReviewError(f"run file {p} has no 'provenance' attribute; write it with `hra run`")
    if "building" not in ds.indexes:  # files written before `building` became the index coordinate
        ds = ds.assign_coords(building=("building", np.asarray(ds["building_id"].values, dtype=str)))
    ds.encoding["source"] = str(p)
    return ds


def provenance_of(ds: xr.Dataset) -> dict[str, Any]:
    """The provenance attribute as a dict (``{}`` when it is not JSON)."""
    try:
        return json.loads(ds.attrs.get("provenance", "{}"))
    except json.JSONDecodeError:
        return {}


def norm_of(ds: xr.Dataset) -> float:
    return float(ds.attrs.get("norm_lpr_per_year", NORM_LPR))


def risk_category(mean: np.ndarray, p90: np.ndarray | None, norm: float = NORM_LPR) -> np.ndarray:
    """Category per element: ``"mean"`` (mean > norm), ``"p90_only"`` (P90 > norm, mean <= norm), ``"neither"``.

    Parameters
    ----------
    mean, p90
        LPR statistics of the same shape [yr^-1]; ``p90`` may be None (then no ``p90_only``).
    norm
        The norm [yr^-1].
    """
    mean = np.asarray(mean, dtype=float)
    hi = mean > norm
    p9 = np.zeros_like(hi) if p90 is None else (np.asarray(p90, dtype=float) > norm)
    return np.where(hi, "mean", np.where(p9, "p90_only", "neither")).astype(object)


def statistics(ds: xr.Dataset) -> list[str]:
    """The LPR statistics of a Dataset in order: ``lpr_mean`` then the quantiles."""
    qs = sorted((n for n in ds.data_vars if str(n).startswith("lpr_p") and ds[n].dims == ("building", "year")),
                key=lambda n: float(str(n)[5:].replace("_", ".")))
    return ["lpr_mean"] + [str(q) for q in qs]


def profiles(ds: xr.Dataset, rule: Any = "besluit-2019") -> pd.DataFrame | None:
    """Risk profiles (art. 4) of every building (:func:`hra.policy.profiles.assign_profiles`), or
    None when the Dataset lacks what the rule needs (a note is logged)."""
    from hra.policy.profiles import ProfileError, assign_profiles

    try:
        return assign_profiles(ds, rule)
    except ProfileError as exc:
        log.info("no risk profiles: %s", exc)
        return None


def risk_table(ds: xr.Dataset, rule: Any = "besluit-2019") -> pd.DataFrame:
    """One row per building: id, x_rd, y_rd [m], zone, wierde, municipality, ``<stat>_<year>`` for every
    statistic and year [yr^-1], ``category_<year>`` and ``category`` (over all years: the highest
    mean and P90) and ``profile`` / ``decisive_statistic`` / ``decisive_year`` (empty when the
    Dataset lacks what the profile rule needs)."""
    n = ds.sizes["building"]
    cols: dict[str, Any] = {"building_id": np.asarray(ds["building_id"].values, dtype=str),
                            "x_rd": ds["x_rd"].values.astype(float), "y_rd": ds["y_rd"].values.astype(float)}
    for c in ("zone", "wierde", "municipality"):
        if c in ds.coords:
            cols[c] = ds[c].values
    if "typology_candidate" in ds.coords:
        cand = ds["typology_candidate"].values
        prob = ds["typology_probability"].values
        cols["typologies"] = [";".join(f"{c}:{p:.4g}" for c, p in zip(cr, pr) if c) for cr, pr in zip(cand, prob)]
    years = [int(y) for y in ds["year"].values]
    for s in statistics(ds):
        v = ds[s].transpose("building", "year").values
        for i, y in enumerate(years):
            cols[f"{s}_{y}"] = v[:, i]
    norm = norm_of(ds)
    mean = ds["lpr_mean"].transpose("building", "year").values
    p90 = ds["lpr_p90"].transpose("building", "year").values if "lpr_p90" in ds else None
    cat = risk_category(mean, p90, norm)
    for i, y in enumerate(years):
        cols[f"category_{y}"] = cat[:, i]
    cols["category"] = risk_category(mean.max(axis=1), None if p90 is None else p90.max(axis=1), norm)
    prof = profiles(ds)
    if prof is not None:
        cols["profile"] = prof["profile"].to_numpy(object)
        cols["decisive_statistic"] = prof["decisive_statistic"].to_numpy(object)
        cols["decisive_year"] = prof["decisive_year"].to_numpy(np.int64)
    else:
        cols["profile"] = np.full(n, "", dtype=object)
    return pd.DataFrame(cols)
