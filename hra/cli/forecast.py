"""`hra forecast info FILE`: what a seismic-source-model forecast file holds (hra.inputs.forecast)."""

from __future__ import annotations

from pathlib import Path

import typer

from hra.cli.common import cli_errors

forecast_app = typer.Typer(help="Seismicity forecasts of the seismic source model (SSM).", no_args_is_help=True)


@forecast_app.command("info")
def info_command(
    file: Path = typer.Argument(..., help="Forecast file (HDF5/netCDF, variable 'forecast' of group 'forecast')."),
) -> None:
    """Dims, branches, cells (count, spacing, extent), years and total rates (M >= lowest magnitude)
    per year and branch of a forecast file; validates it like `hra run` does (exit 2 on a bad file)."""
    import numpy as np
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from hra.inputs.forecast import coarse_grid_advice, read_forecast

    with cli_errors():
        fc = read_forecast(file)
    console = Console()
    m = fc.magnitudes
    dims = [*fc.branch_dims, "magnitude", "time", "x", "y"]
    console.print(f"[bold]{escape(str(file))}[/bold]")
    out = lambda text: console.print(text, markup=False, highlight=False)  # noqa: E731
    out(f"dims: {', '.join(dims)}")
    for d, labels in zip(fc.branch_dims, fc.branch_labels):
        out(f"  {d}: {len(labels)} ({', '.join(labels)})")
    out(f"branches: {fc.n_branches}")
    steps = np.unique(np.round(np.diff(m), 9))
    out(f"magnitude: {m.size} values, {m[0]:g} to {m[-1]:g}"
                  + (f" (step {steps[0]:g})" if steps.size == 1 else " (uneven steps)"))
    advice = coarse_grid_advice(m)  # e.g. the PSDRA-2024 grid (0.1)
    if advice is not None:
        out(f"  {advice}")
    out(f"cells: {fc.x.size} with events of {fc.n_cells_file} in the grid; spacing {fc.cell_size_m:g} m; "
                  f"extent x {fc.x.min() - fc.cell_size_m / 2:.0f} to {fc.x.max() + fc.cell_size_m / 2:.0f}, "
                  f"y {fc.y.min() - fc.cell_size_m / 2:.0f} to {fc.y.max() + fc.cell_size_m / 2:.0f} [m, EPSG:28992]"
                  if fc.x.size else f"cells: none with events of {fc.n_cells_file} in the grid")
    out(f"years: {', '.join(str(int(y)) for y in fc.years)}")
    table = Table(title=escape(f"total rate of M >= {m[0]:g} [events/yr]"))
    table.add_column("branch")
    for y in fc.years:
        table.add_column(str(int(y)), justify="right")
    tot = fc.total_rate()  # (y, s)
    for s, name in enumerate(fc.branch_names()):
        table.add_row(name, *[f"{tot[iy, s]:.4g}" for iy in range(fc.years.size)])
    console.print(table)

