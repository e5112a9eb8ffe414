"""The provenance of an output in rows a reviewer reads (``hra info``, the HTML report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xarray as xr

import hra.core.fileio as fileio
from hra.review.tables import ReviewError


def open_output(path: str | Path) -> xr.Dataset:
    """Any output of hra (risk, hazard, event-based; ``.zarr`` or ``.nc``) with its ``provenance``."""
    p = Path(path)
    fileio.recover(p.parent)  # an interrupted commit of this output: finish it first
    if not p.exists():
        raise ReviewError(f"{p} does not exist; give an output of hra (a .zarr directory or .nc file)")
    try:
        ds = xr.open_zarr(p) if (p.is_dir() or p.suffix.lower() == ".zarr") else xr.open_dataset(p)
    except Exception as err:  # noqa: BLE001
        raise ReviewError(f"{p}: cannot read it as zarr or netCDF ({err}); give an output of hra") from None
    if "provenance" not in ds.attrs:
        raise ReviewError(f"{p} has no 'provenance' attribute; it was not written by hra (or by a version before 0.1)")
    return ds


def provenance_rows(prov: dict[str, Any], ds: xr.Dataset | None = None) -> list[tuple[str, str]]:
    """(label, value) rows: package, git, config hash, models, seed, realisations, times, timings."""
    rows = [("package", f"{prov.get('package', 'groningen-hra')} {prov.get('package_version', '?')}")]
    rev = prov.get("git_revision")
    if rev:
        dirty = prov.get("git_dirty")
        rows.append(("git revision", rev + (" (uncommitted changes)" if dirty else "" if dirty is False else " (dirty: unknown)")))
    else:
        rows.append(("git revision", "n/a (not a git checkout)"))
    rows.append(("config sha256", str(prov.get("config_sha256", "?"))))
    if prov.get("config_file"):
        rows.append(("config file", str(prov["config_file"])))
    for key, label in (("calculation", "calculation"), ("ground_motion_model", "ground-motion model"),
                       ("fragility_model", "fragility model"), ("typology_uncertainty", "typology uncertainty")):
        if prov.get(key) is not None:
            rows.append((label, str(prov[key])))
    rows.append(("seed", str(prov.get("seed", "?"))))
    rows.append(("realisations", f"{prov.get('n_realisations', '?')} ({prov.get('realisations', '?')})"))
    if ds is not None and "building" in ds.sizes:
        rows.append(("buildings", f"{ds.sizes['building']:,}"))
    if ds is not None and "year" in ds.coords:
        yrs = [int(y) for y in ds["year"].values]
        rows.append(("years", f"{yrs[0]}-{yrs[-1]}" if len(yrs) > 1 else str(yrs[0])))
    rows.append(("start / end (UTC)", f"{prov.get('start_time', '?')} / {prov.get('end_time', '?')}"))
    tim = prov.get("timings_s") or {}
    if tim:
        rows.append(("timings [s]", ", ".join(f"{k[:-2] if k.endswith('_s') else k} {v:g}" for k, v in tim.items())))
    tree = prov.get("logic_tree") or {}
    if tree:
        rows.append(("logic tree", "; ".join(f"{n}: {len(b)} branches" for n, b in tree.items())))
    return rows
