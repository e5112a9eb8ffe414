"""`hra hazard curves`: site hazard curves and uniform hazard spectra (the NPR 9998 fit: `npr9998 site-spectrum`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

hazard_app = typer.Typer(rich_markup_mode=None, help="Site hazard: curves and uniform hazard spectra.",
                         no_args_is_help=True)


@hazard_app.command("curves")
def curves_command(
    config: Path = typer.Argument(..., exists=True, dir_okay=False, help="Run configuration (TOML)."),
    sites: Path = typer.Option(..., "--sites", exists=True, dir_okay=False, help="CSV with id, x, y [m, RD New] (optional zone)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the curves (.nc or .zarr)."),
    return_periods: str = typer.Option("475,2475", help="Return periods for the UHS [yr], comma-separated."),
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
        rps = [float(x) for x in return_periods.split(",") if x.strip()]
        df = pd.read_csv(sites, encoding="utf-8-sig")
        hc = hazard_curves(cfg, df)
    uhs = uniform_hazard_spectrum(hc, rps)
    imts = [str(v) for v in hc["imt"].values]
    console = Console()
    table = Table(title=f"uniform hazard spectrum (mean curve), {int(hc['year'].values[0])} [g]")
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
