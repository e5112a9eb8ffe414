"""The risk Dataset (the contract of docs/architecture.md §4.1): registry of variables, provenance, atomic writing.

Every output variable is declared once in :data:`VARIABLES` (dims, dtype, units, long_name,
cell_methods); :func:`build_dataset` fills attributes only from there and :func:`validate`
checks a Dataset against it. Files are written to a temporary path beside the target and then
renamed, so a failed or interrupted run never leaves a half-written output.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from hra.core.fileio import atomic_write, check_target
from hra.core.norm import LPR_NORM_PER_YEAR

CRS_WKT_NAME = "Amersfoort / RD New"
EPSG = 28992


class OutputError(OSError):
    """An output cannot be written; names the path and the fix."""


@dataclass(frozen=True)
class Variable:
    dims: tuple[str, ...]
    dtype: str
    units: str
    long_name: str
    cell_methods: str = ""
    standard_name: str = ""


VARIABLES: dict[str, Variable] = {
    "lpr_mean": Variable(("building", "year"), "float64", "yr-1",
                         "local personal risk: logic-tree mean (exact weighted mean over all branches)",
                         "realisation: mean"),
    "lpr_realisations": Variable(("building", "year", "realisation"), "float64", "yr-1",
                                 "local personal risk per logic-tree realisation"),
    "realisation_weight": Variable(("building", "realisation"), "float64", "1",
                                   "weight of each realisation (sums to 1 per building)"),
}
COORDS: dict[str, Variable] = {
    "building_id": Variable(("building",), "str", "", "building identifier"),
    "x_rd": Variable(("building",), "float64", "m", "x coordinate (RD New, EPSG:28992)", standard_name="projection_x_coordinate"),
    "y_rd": Variable(("building",), "float64", "m", "y coordinate (RD New, EPSG:28992)", standard_name="projection_y_coordinate"),
    "year": Variable(("year",), "int64", "1", "calendar year of the annual risk"),
    "building": Variable(("building",), "str", "", "building identifier (index: ds.sel(building=ID))"),
    "zone": Variable(("building",), "int64", "1", "site-response zone"),
    "wierde": Variable(("building",), "bool", "1", "building on a wierde (dwelling mound)"),
    "municipality": Variable(("building",), "str", "", "municipality"),
    "typology_candidate": Variable(("building", "candidate"), "str", "",
                                   "typology candidates of the building (empty: padding)"),
    "typology_probability": Variable(("building", "candidate"), "float64", "1",
                                     "probability of each typology candidate (0: padding)"),
    "node": Variable(("node",), "str", "", "logic-tree node"),
    "realisation_branch": Variable(("realisation", "node"), "str", "",
                                   "branch label of each logic-tree node that a stored realisation drew"),
}


def quantile_name(q: float) -> str:
    """Variable name of quantile ``q``: 0.5 -> lpr_p50, 0.9 -> lpr_p90, 0.975 -> lpr_p97_5."""
    pct = round(q * 100, 6)
    s = f"{pct:g}".replace(".", "_")
    return f"lpr_p{s}"


def quantile_variable(q: float) -> Variable:
    return Variable(("building", "year"), "float64", "yr-1",
                    f"local personal risk: weighted {q * 100:g}th percentile over the logic tree "
                    "(inverse weighted empirical CDF)")


def _attrs(v: Variable) -> dict[str, str]:
    a = {"units": v.units, "long_name": v.long_name}
    if v.cell_methods:
        a["cell_methods"] = v.cell_methods
    if v.standard_name:
        a["standard_name"] = v.standard_name
    return {k: val for k, val in a.items() if val != ""}


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("groningen-hra")
    except Exception:  # pragma: no cover - running from a source tree without install
        return "0+unknown"


#: Distributions whose versions every output records (those that shape the numbers or the files).
LIBRARIES = ("numpy", "scipy", "numba", "xarray", "dask", "pandas", "pydantic", "zarr", "netCDF4", "pyogrio",
             "shapely", "pyproj", "matplotlib", "jinja2")


def library_versions() -> dict[str, str]:
    """Python and the installed versions of the scientific libraries (``None`` if not installed)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None  # type: ignore[assignment]
    return out


def git_revision() -> dict[str, Any] | None:
    """``{"revision": sha, "dirty": bool}`` when the package itself is a git checkout, else ``None``.

    The checkout must be the directory holding the ``hra`` package (``<root>/hra``); an installed
    package that merely lies somewhere inside another repository gets ``None``.
    """
    import subprocess

    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        top = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        lines = top.stdout.split()
        if top.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != root:
            return None
        rev = lines[1]
        if len(rev) != 40 or any(c not in "0123456789abcdef" for c in rev):
            return None
        st = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "."],
                            capture_output=True, text=True, timeout=10)
        return {"revision": rev, "dirty": bool(st.stdout.strip()) if st.returncode == 0 else None}
    except Exception:
        return None


def provenance(config_sha256: str, files: dict[str, str], seed: int, n_realisations: int, exact: bool,
               start: _dt.datetime, end: _dt.datetime, extra: dict[str, Any] | None = None,
               config: Any = None) -> dict[str, Any]:
    """Provenance block of every output.

    Package version, git revision and dirty flag (only when the package is a git checkout), the
    config hash (:meth:`hra.config.Config.sha256`, without ``[output]`` and ``[compute]``), the
    SHA-256 of every input file and model table read (``input_sha256``, ``kind:name -> sha``),
    the versions of the scientific libraries, seed, realisations, times and, given ``config``,
    the full config as resolved (``config_toml``: TOML with the presets expanded and absolute paths).
    """
    git = git_revision()
    p = {
        "package": "groningen-hra",
        "package_version": package_version(),
        "git_revision": git["revision"] if git else None,
        "config_sha256": config_sha256,
        "input_sha256": dict(sorted(files.items())),
        "library_versions": library_versions(),
        "seed": int(seed),
        "n_realisations": int(n_realisations),
        "realisations": "enumerated" if exact else "monte-carlo",
        "start_time": start.isoformat(timespec="seconds"),
        "end_time": end.isoformat(timespec="seconds"),
    }
    if git:
        p["git_dirty"] = git["dirty"]
    if config is not None:
        p["config_toml"] = config.resolved_toml()
    if extra:
        p.update(extra)
    return p


def read_provenance(ds: xr.Dataset, where: str = "Dataset") -> dict[str, Any]:
    """The ``provenance`` attribute of an output as a dict; ValueError naming ``where`` if absent or not JSON."""
    text = ds.attrs.get("provenance")
    if text is None:
        raise ValueError(f"{where} has no 'provenance' attribute; use a file written by hra (run, events, hazard)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: the 'provenance' attribute is not JSON ({exc})") from None


def build_dataset(*, ids, x, y, years, mean, quantiles: dict[float, np.ndarray], zone=None, municipality=None,
                  realisations=None, realisation_weight=None, prov: dict[str, Any] | None = None,
                  attrs: dict[str, Any] | None = None, wierde=None, typology_candidates=None,
                  typology_probabilities=None, realisation_branches=None, nodes=None) -> xr.Dataset:
    """Assemble the risk Dataset from per-building arrays (docs/architecture.md §4.1).

    ``building`` is the index coordinate (the ids, so ``ds.sel(building="B12")`` works) and
    ``building_id`` the same ids as a plain coordinate. ``typology_candidates`` /
    ``typology_probabilities`` are (building, candidate) arrays (padding ``""`` / 0);
    ``realisation_branches`` (realisation, node) with ``nodes`` the node names.
    """
    ids = np.asarray(ids, dtype=str)
    coords: dict[str, Any] = {
        "building": ("building", ids),
        "building_id": ("building", ids),
        "x_rd": ("building", np.asarray(x, dtype=float)),
        "y_rd": ("building", np.asarray(y, dtype=float)),
        "year": ("year", np.asarray(years, dtype=np.int64)),
    }
    if zone is not None:
        coords["zone"] = ("building", np.asarray(zone, dtype=np.int64))
    if municipality is not None:
        coords["municipality"] = ("building", np.asarray(municipality, dtype=str))
    if wierde is not None:
        coords["wierde"] = ("building", np.asarray(wierde, dtype=bool))
    if typology_candidates is not None:
        coords["typology_candidate"] = (("building", "candidate"), np.asarray(typology_candidates, dtype=str))
        coords["typology_probability"] = (("building", "candidate"), np.asarray(typology_probabilities, dtype=float))
    if realisations is not None and realisation_branches is not None:
        coords["node"] = ("node", np.asarray(nodes, dtype=str))
        coords["realisation_branch"] = (("realisation", "node"), np.asarray(realisation_branches, dtype=str))
    data: dict[str, Any] = {"lpr_mean": (("building", "year"), np.asarray(mean, dtype=float))}
    for q, arr in quantiles.items():
        data[quantile_name(q)] = (("building", "year"), np.asarray(arr, dtype=float))
    if realisations is not None:
        data["lpr_realisations"] = (("building", "year", "realisation"), realisations)
        data["realisation_weight"] = (("building", "realisation"), realisation_weight)
    ds = xr.Dataset(data, coords=coords)
    for name in ds.data_vars:
        ds[name].attrs.update(_attrs(VARIABLES.get(name) or quantile_variable(_q_of(name))))
    for name in ds.coords:
        if name in COORDS:
            ds[name].attrs.update(_attrs(COORDS[name]))
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    ds.attrs.update({
        "title": "Local personal risk (LPR) per building and year",
        "Conventions": "CF-1.10",
        "institution": "groningen-hra",
        "source": f"groningen-hra {package_version()}",
        "crs_name": f"EPSG:{EPSG} ({CRS_WKT_NAME})",
        "norm_lpr_per_year": LPR_NORM_PER_YEAR,
        "quantiles": json.dumps(sorted(quantiles)),
        "history": f"[{now}] hra run",
    })
    add_crs(ds)
    if prov is not None:
        ds.attrs["provenance"] = json.dumps(prov, sort_keys=True, default=str)
    if attrs:
        ds.attrs.update(attrs)
    return ds


def crs_attrs() -> dict[str, Any]:
    """CF grid-mapping attributes of RD New (EPSG:28992): oblique stereographic on Bessel 1841.

    The parameters are those of EPSG:28992; ``crs_wkt`` (WKT2, from pyproj) carries the datum
    shift as well, and GDAL/QGIS read it first.
    """
    a: dict[str, Any] = {
        "grid_mapping_name": "oblique_stereographic",
        "latitude_of_projection_origin": 52.15616055555555,
        "longitude_of_projection_origin": 5.38763888888889,
        "scale_factor_at_projection_origin": 0.9999079,
        "false_easting": 155000.0, "false_northing": 463000.0,
        "semi_major_axis": 6377397.155, "inverse_flattening": 299.1528128,
        "longitude_of_prime_meridian": 0.0,
        "epsg_code": f"EPSG:{EPSG}", "long_name": CRS_WKT_NAME,
    }
    try:
        from pyproj import CRS

        a["crs_wkt"] = CRS.from_epsg(EPSG).to_wkt()
        a["spatial_ref"] = a["crs_wkt"]
    except Exception:  # pragma: no cover - pyproj is a dependency
        pass
    return a


def add_crs(ds: xr.Dataset, dim: str = "building") -> xr.Dataset:
    """Add the CF ``crs`` grid-mapping variable (in place, as a scalar coordinate) and point every
    variable on ``dim`` at it.

    ``x_rd``/``y_rd`` are the projection coordinates (``standard_name`` projection_x/y_coordinate;
    xarray writes them into each variable's ``coordinates`` attribute); the variables get
    ``grid_mapping = "crs"``.
    """
    ds.coords["crs"] = xr.DataArray(np.int32(0), attrs=crs_attrs())  # a coordinate: the results stay the data_vars
    for name in ds.data_vars:
        if dim in ds[name].dims:
            ds[name].attrs["grid_mapping"] = "crs"
    return ds


def _q_of(name: str) -> float:
    return float(name[len("lpr_p"):].replace("_", ".")) / 100.0


def validate(ds: xr.Dataset) -> None:
    """Check a risk Dataset against the contract; raises ValueError naming what is wrong."""
    for c in ("building_id", "x_rd", "y_rd", "year"):
        if c not in ds.coords:
            raise ValueError(f"risk Dataset lacks coordinate {c!r}")
    if "lpr_mean" not in ds:
        raise ValueError("risk Dataset lacks lpr_mean")
    for name in ds.data_vars:
        spec = VARIABLES.get(name) or (quantile_variable(_q_of(name)) if name.startswith("lpr_p") else None)
        if spec is None:
            continue
        if tuple(ds[name].dims) != spec.dims:
            raise ValueError(f"{name} has dims {ds[name].dims}, expected {spec.dims}")
        for k in ("units", "long_name"):
            if k not in ds[name].attrs:
                raise ValueError(f"{name} lacks attribute {k!r}")
    if "provenance" not in ds.attrs:
        raise ValueError("risk Dataset lacks the provenance attribute")
    json.loads(ds.attrs["provenance"])


# ------------------------------------------------------------------------------------------
# atomic writing
# ------------------------------------------------------------------------------------------


_OVERWRITE_HINT = "set [output] overwrite = true (--overwrite)"


def check_not_input(outputs: list[Path | None], inputs: list[Path | None]) -> None:
    """Refuse an output path that is one of the run's inputs (``--csv buildings.csv --overwrite``
    would otherwise replace the exposure, or the config itself)."""
    ins = {Path(p).resolve(): Path(p) for p in inputs if p is not None}
    for out in outputs:
        if out is not None and Path(out).resolve() in ins:
            raise OutputError(f"output {out} is an input of this run ({ins[Path(out).resolve()]}); choose another output path")


def check_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Fail early (:class:`OutputError`) when an output cannot be written (see :func:`hra.core.fileio.check_target`)."""
    path = check_target(path, overwrite, error=OutputError, overwrite_hint=_OVERWRITE_HINT)
    if path.is_dir() and path.suffix != ".zarr":
        raise OutputError(f"cannot write {path}: it is a folder; give a file name (e.g. {path / 'risk_summary.csv'})")
    if path.is_dir() and not (path / ".zgroup").exists() and not (path / "zarr.json").exists() and any(path.iterdir()):
        raise OutputError(f"cannot replace {path}: it is a non-empty folder that is not a zarr store; choose another output path")
    return path


def write_dataset(ds: xr.Dataset, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the Dataset to .zarr or .nc atomically (temporary path beside the target, then rename)."""
    path = Path(path)
    if path.suffix not in (".zarr", ".nc"):
        raise OutputError(f"{path}: unknown output format {path.suffix!r}; use .zarr or .nc")
    atomic_write(path, lambda tmp: write_dataset_plain(ds, tmp), overwrite, error=OutputError,
                 overwrite_hint=_OVERWRITE_HINT)
    return path


def write_dataset_plain(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write the Dataset to ``path`` (.zarr or .nc by suffix) directly: for a path that is already
    a temporary one (:class:`hra.core.fileio.OutputSet`); :func:`write_dataset` is the atomic form."""
    path = Path(path)
    if path.suffix == ".zarr":
        import zarr

        # zarr format 2: consolidated metadata and fixed-width strings are specified there
        kw = {"zarr_format": 2} if int(zarr.__version__.split(".")[0]) >= 3 else {}
        ds.to_zarr(path, mode="w", consolidated=True, **kw)
    elif path.suffix == ".nc":
        enc = {v: {"zlib": True, "complevel": 4} for v in ds.data_vars}
        ds.to_netcdf(path, encoding=enc)
    else:
        raise OutputError(f"{path}: unknown output format {path.suffix!r}; use .zarr or .nc")
    return path


def write_csv_plain(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write the CSV summary (:func:`summary_frame`) to ``path`` directly (see :func:`write_dataset_plain`)."""
    summary_frame(ds).to_csv(path, index=False, float_format="%.6e")
    return Path(path)


def summary_frame(ds: xr.Dataset):
    """Per-building CSV table: id, coordinates, zone, municipality, each statistic per year."""
    import pandas as pd

    cols: dict[str, Any] = {"building_id": ds["building_id"].values, "x_rd": ds["x_rd"].values, "y_rd": ds["y_rd"].values}
    for c in ("zone", "municipality"):
        if c in ds.coords:
            cols[c] = ds[c].values
    stats = ["lpr_mean"] + sorted(n for n in ds.data_vars if n.startswith("lpr_p"))
    for name in stats:
        for i, yr in enumerate(ds["year"].values):
            cols[f"{name}_{int(yr)}"] = ds[name].values[:, i]
    return pd.DataFrame(cols)


def write_csv_summary(ds: xr.Dataset, path: str | os.PathLike, overwrite: bool = False) -> Path:
    path = Path(path)
    atomic_write(path, lambda tmp: write_csv_plain(ds, tmp), overwrite,
                 error=OutputError, overwrite_hint=_OVERWRITE_HINT)
    return path
