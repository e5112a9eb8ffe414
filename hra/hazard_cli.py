"""`hra hazard curves`: site hazard curves, uniform hazard spectra and NPR 9998 spectral parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

hazard_app = typer.Typer(help="Site hazard: curves, uniform hazard spectra, NPR 9998 spectral parameters.",
                         no_args_is_help=True)


@hazard_app.command("curves")
def curves_command(
    config: Path = typer.Argument(..., exists=True, dir_okay=False, help="Run configuration (TOML)."),
    sites: Path = typer.Option(..., "--sites", exists=True, dir_okay=False, help="CSV with id, x, y [m, RD New] (optional zone)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the curves (.nc or .zarr)."),
    return_periods: str = typer.Option("475,2475", help="Return periods for the UHS [yr], comma-separated."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Hazard curves (mean and fractiles) at sites, the UHS and the fitted NPR spectral parameters."""
    import numpy as np
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    import hra
    from hra.hazard import fit_npr_spectrum, hazard_curves, spectral_periods, uniform_hazard_spectrum
    from hra.outputs import write_dataset

    try:
        cfg = hra.load_config(config)
        rps = [float(x) for x in return_periods.split(",") if x.strip()]
        df = pd.read_csv(sites, encoding="utf-8-sig")
        hc = hazard_curves(cfg, df)
    except (ValueError, OSError, KeyError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2)
    uhs = uniform_hazard_spectrum(hc, rps)
    periods, idx = spectral_periods(list(hc["imt"].values))
    console = Console()
    table = Table(title="uniform hazard (mean curve) and NPR 9998 spectral parameters, first year")
    for col in ("site", "T_R [yr]", "PGA [g]", "a_g;S [g]", "p", "T_B [s]", "T_C [s]", "T_D [s]"):
        table.add_column(col)
    for s in range(hc.sizes["site"]):
        for k, rp in enumerate(rps):
            pga = uhs.sel(imt="PGA").values[s, 0, k] if "PGA" in hc["imt"].values else np.nan
            row = [str(hc["site_id"].values[s]), f"{rp:g}", f"{pga:.3f}"]
            if len(idx) >= 4 and np.all(np.isfinite(uhs.values[s, idx, 0, k])):
                fit = fit_npr_spectrum(periods, uhs.values[s, idx, 0, k])
                row += [f"{fit['ag_s_g']:.3f}", f"{fit['p']:.2f}", f"{fit['t_b']:.2f}", f"{fit['t_c']:.2f}", f"{fit['t_d']:.2f}"]
            else:
                row += ["-"] * 5
            table.add_row(*row)
    console.print(table)
    if out is not None:
        ds = hc.assign(uhs_g=uhs)
        write_dataset(ds, out, overwrite=overwrite)
        console.print(f"wrote {out}")
