"""GIS output of a run: one point per building in EPSG:28992 (GeoPackage via pyogrio, GeoParquet via pyarrow).

Columns: ``building_id``, ``municipality``, ``zone``, ``wierde``, ``lpr_mean_<year>``,
``lpr_p50_<year>``, ``lpr_p90_<year>`` (every statistic of the run, wide) [yr^-1],
``category_<year>``, ``category`` (over all years), ``profile`` (art. 4 risk profile; empty
when the run lacks what the rule needs), ``x_rd``, ``y_rd`` [m]. Files are written to a temporary
path beside the target and renamed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from hra.review.tables import ReviewError, provenance_of, risk_table

#: The layer name in the GeoPackage.
LAYER = "lpr"
EPSG = 28992


def _check_target(path: Path, overwrite: bool, suffixes: tuple[str, ...]) -> None:
    from hra.outputs import check_output as check

    if path.suffix.lower() not in suffixes:
        raise ReviewError(f"{path}: a {'/'.join(suffixes)} file is expected; give a path ending in {suffixes[0]}")
    check(path, overwrite)


def _atomic(path: Path, write) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix=path.suffix, dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    os.unlink(tmp)  # GDAL creates the file itself
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def gis_table(ds: xr.Dataset, rule: Any = "besluit-2019") -> pd.DataFrame:
    """The attribute table of the GIS layers (see the module docstring); x_rd, y_rd are the point."""
    t = risk_table(ds, rule)
    for c in ("zone",):
        if c in t:
            t[c] = t[c].astype(np.int64)
    if "wierde" in t:
        t["wierde"] = t["wierde"].astype(bool)
    for c in ("decisive_statistic", "decisive_year"):
        if c in t:
            t = t.drop(columns=c)
    return t


def _field_arrays(t: pd.DataFrame) -> tuple[list[str], list[np.ndarray]]:
    names, arrays = [], []
    for c in t.columns:
        v = t[c].to_numpy()
        if v.dtype == object or v.dtype.kind in "US":
            v = np.asarray([("" if x is None else str(x)) for x in v], dtype=object)
        names.append(str(c))
        arrays.append(v)
    return names, arrays


def write_gpkg(ds: xr.Dataset, path: str | os.PathLike, overwrite: bool = False, rule: Any = "besluit-2019") -> Path:
    """Write the run as a GeoPackage point layer ``lpr`` in EPSG:28992 (atomic)."""
    import pyogrio.raw
    import shapely

    path = Path(path)
    _check_target(path, overwrite, (".gpkg",))
    t = gis_table(ds, rule)
    geom = shapely.to_wkb(shapely.points(t["x_rd"].to_numpy(float), t["y_rd"].to_numpy(float)))
    names, arrays = _field_arrays(t)
    prov = provenance_of(ds)
    meta = {"title": "Local personal risk (LPR) per building", "config_sha256": str(prov.get("config_sha256", "")),
            "package_version": str(prov.get("package_version", "")), "norm_lpr_per_year": str(ds.attrs.get("norm_lpr_per_year", 1e-5))}

    def write(tmp: str) -> None:
        pyogrio.raw.write(tmp, geom, arrays, names, layer=LAYER, driver="GPKG", geometry_type="Point",
                          crs=f"EPSG:{EPSG}", layer_metadata=meta)

    return _atomic(path, write)


def write_geoparquet(ds: xr.Dataset, path: str | os.PathLike, overwrite: bool = False, rule: Any = "besluit-2019") -> Path:
    """Write the run as GeoParquet 1.0 (WKB points, EPSG:28992 PROJJSON in the ``geo`` metadata); needs pyarrow."""
    if importlib.util.find_spec("pyarrow") is None:
        raise ReviewError("--geoparquet needs the package pyarrow, which is not installed; install pyarrow "
                          "(pip install pyarrow) or write a GeoPackage with --gpkg")
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely
    from pyproj import CRS

    path = Path(path)
    _check_target(path, overwrite, (".parquet", ".geoparquet"))
    t = gis_table(ds, rule)
    x, y = t["x_rd"].to_numpy(float), t["y_rd"].to_numpy(float)
    t = t.assign(geometry=shapely.to_wkb(shapely.points(x, y)))
    table = pa.Table.from_pandas(t, preserve_index=False)
    geo = {"version": "1.0.0", "primary_column": "geometry",
           "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Point"],
                                    "crs": json.loads(CRS.from_epsg(EPSG).to_json()),
                                    "bbox": [float(x.min()), float(y.min()), float(x.max()), float(y.max())] if x.size else []}}}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"geo": json.dumps(geo).encode()})
    return _atomic(path, lambda tmp: pq.write_table(table, tmp))


def export_gis(ds: xr.Dataset, gpkg: str | os.PathLike | None = None, geoparquet: str | os.PathLike | None = None,
               overwrite: bool = False, rule: Any = "besluit-2019") -> list[Path]:
    """Write the GeoPackage and/or GeoParquet of a run; returns the written paths.

    Both targets are checked before either is written.

    Parameters
    ----------
    ds
        The risk Dataset of ``hra run`` (:func:`hra.review.tables.open_run` opens a written one).
    gpkg, geoparquet
        Output files (``.gpkg``; ``.parquet`` needs pyarrow): one point per building in RD New
        [m, EPSG:28992] with id, zone, municipality, ``lpr_mean_YYYY``, ``lpr_p50_YYYY``,
        ``lpr_p90_YYYY`` [yr^-1], category and profile.
    overwrite
        Replace existing files.
    rule
        Profile rule (:func:`hra.policy.profiles.load_rule`).

    Returns
    -------
    list of pathlib.Path
        The files written.

    Examples
    --------
    >>> import hra, xarray as xr
    >>> ds = xr.open_zarr("risk.zarr")  # doctest: +SKIP
    >>> hra.export_gis(ds, gpkg="risk.gpkg")  # doctest: +SKIP
    [PosixPath('risk.gpkg')]
    """
    if gpkg is None and geoparquet is None:
        raise ReviewError("nothing to export: give --gpkg PATH and/or --geoparquet PATH")
    if gpkg is not None:
        _check_target(Path(gpkg), overwrite, (".gpkg",))
    if geoparquet is not None:
        _check_target(Path(geoparquet), overwrite, (".parquet", ".geoparquet"))
        if importlib.util.find_spec("pyarrow") is None:
            raise ReviewError("--geoparquet needs the package pyarrow, which is not installed; install pyarrow "
                              "(pip install pyarrow) or write a GeoPackage with --gpkg")
    out = []
    if gpkg is not None:
        out.append(write_gpkg(ds, gpkg, overwrite, rule))
    if geoparquet is not None:
        out.append(write_geoparquet(ds, geoparquet, overwrite, rule))
    return out
