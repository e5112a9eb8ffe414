"""`hra hazard curves` and `hra hazard map`: site hazard curves, uniform hazard spectra and hazard
maps (the NPR 9998 fit: `npr9998 site-spectrum`)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

hazard_app = typer.Typer(rich_markup_mode=None, help="Site hazard: curves, uniform hazard spectra and maps.",
                         no_args_is_help=True)

COMPONENT_HELP = "Horizontal component: geometric_mean (default; hazard and NPR 9998 convention) or arbitrary (GMM V7/V6)."


def _fail(exc) -> None:
    typer.secho(f"error: {exc}", fg="red", err=True)
    raise typer.Exit(2)


def _floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a comma-separated list of numbers") from None
    if not vals or any(v <= 0 for v in vals):
        raise ValueError(f"{what}: give positive numbers, got {text!r}")
    return vals


def _imts(values: Optional[List[str]]) -> Optional[list[str]]:
    """``--imt`` values, repeatable and/or comma lists; commas inside SA(...) are not separators."""
    if not values:
        return None
    out = []
    for v in values:
        out += [p.strip() for p in v.replace("),", ");").replace(",", ";").split(";") if p.strip()]
    return out


@hazard_app.command("curves")
def curves_command(
    config: Path = typer.Argument(..., exists=True, dir_okay=False, help="Run configuration (TOML)."),
    sites: Path = typer.Option(..., "--sites", exists=True, dir_okay=False, help="CSV with id, x, y [m, RD New] (optional zone)."),
    imt: Optional[List[str]] = typer.Option(None, "--imt", help="IM, e.g. PGA or SA(0.3); repeatable or a comma list (default: all the model gives)."),
    component: str = typer.Option("geometric_mean", "--component", help=COMPONENT_HELP),
    year: Optional[List[int]] = typer.Option(None, "--year", help="Year(s) of [run] years (repeatable; default: all)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the curves and UHS (.nc or .zarr)."),
    return_periods: str = typer.Option("475,2475", help="Return periods for the UHS [yr], comma-separated."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Hazard curves (mean and fractiles) at sites and the uniform hazard spectra (mean curve).

    The NPR 9998 spectral parameters fitted to the UHS: `npr9998 site-spectrum CONFIG --sites FILE`.
    """
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    import hra
    from hra.cli.common import cli_errors
    from hra.integration.hazard import hazard_curves, uniform_hazard_spectrum
    from hra.outputs import check_output, write_dataset

    with cli_errors():
        if out is not None:
            check_output(out, overwrite)
        cfg = hra.load_config(config)
        rps = _floats(return_periods, "--return-periods")
        df = pd.read_csv(sites, encoding="utf-8-sig")
        try:
            hc = hazard_curves(cfg, df, imts=_imts(imt), component=component, years=year or None, progress=progress)
        except ValueError as exc:
            if str(exc).startswith(("sites", "site ")):
                raise ValueError(f"{sites}: {exc}") from None
            raise
    uhs = uniform_hazard_spectrum(hc, rps)
    imts = [str(v) for v in hc["imt"].values]
    console = Console()
    table = Table(title=f"uniform hazard spectrum (mean curve, {hc.attrs['component']}), {int(hc['year'].values[0])} [g]")
    for col in ["site", "T_R [yr]"] + imts:
        table.add_column(col)
    for s in range(hc.sizes["site"]):
        for k, rp in enumerate(rps):
            table.add_row(str(hc["site_id"].values[s]), f"{rp:g}", *[f"{uhs.values[s, i, 0, k]:.4f}" for i in range(len(imts))])
    console.print(table)
    if out is not None:
        ds = hc.assign(uhs_g=uhs)
        with cli_errors():
            write_dataset(ds, out, overwrite=overwrite)
        console.print(f"wrote {out}")


@hazard_app.command("map")
def map_command(
    config: Path = typer.Argument(..., exists=True, dir_okay=False, help="Run configuration (TOML)."),
    spacing_m: float = typer.Option(1000.0, "--spacing-m", help="Grid spacing [m] (nodes over the field, RD New)."),
    out: Optional[Path] = typer.Option(None, "--out", help="GeoPackage of the nodes (.gpkg), one column per return period."),
    png: Optional[Path] = typer.Option(None, "--png", help="PNG map (RD New axes)."),
    imt: str = typer.Option("PGA", "--imt", help="Intensity measure."),
    return_periods: str = typer.Option("475,2475", "--return-periods", help="Return periods [yr], comma-separated."),
    year: Optional[int] = typer.Option(None, "--year", help="Year of the rates (default: the first of [run] years)."),
    component: str = typer.Option("geometric_mean", "--component", help=COMPONENT_HELP),
    netcdf: Optional[Path] = typer.Option(None, "--curves", help="Also write the curves and intensities (.nc or .zarr)."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
) -> None:
    """Hazard map: mean intensity at return periods on a node grid over the field (GeoPackage and PNG)."""
    from rich.console import Console

    import hra
    from hra.integration.hazard import hazard_map, write_hazard_map
    from hra.outputs import write_dataset

    try:
        if out is None and png is None and netcdf is None:
            raise ValueError("give at least one of --out FILE.gpkg, --png FILE.png, --curves FILE.nc")
        if out is not None and out.suffix.lower() != ".gpkg":
            raise ValueError(f"--out {out}: the map is written as a GeoPackage; give a .gpkg file name")
        for p in (out, png, netcdf):
            if p is not None and p.exists() and not overwrite:
                raise ValueError(f"{p} exists; pass --overwrite to replace it")
        cfg = hra.load_config(config)
        rps = _floats(return_periods, "--return-periods")
        ds = hazard_map(cfg, spacing_m, imt, rps, year=year, component=component, progress=progress)
        written = write_hazard_map(ds, out, png, overwrite=overwrite)
        if netcdf is not None:
            written.append(write_dataset(ds, netcdf, overwrite=overwrite))
    except (ValueError, OSError, KeyError) as exc:
        _fail(exc)
    console = Console()
    v = ds["intensity_g"].values
    for k, rp in enumerate(ds["return_period"].values):
        console.print(f"{ds['imt'].values[0]} at {rp:g} yr: {v[:, k].min():.3f} - {v[:, k].max():.3f} g over {v.shape[0]} nodes")
    console.print("wrote " + ", ".join(str(p) for p in written))
