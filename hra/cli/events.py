"""`hra events CONFIG`: event-based Monte-Carlo risk (collapse/fatality rates, F-N curve, top events)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hra.config import MAX_EVENT_REALISATIONS as MAX_REALISATIONS
from hra.config import MAX_YEARS_SIMULATED


def events_command(
    config: Path = typer.Argument(..., exists=True, dir_okay=False, help="Run configuration (TOML)."),
    years_simulated: Optional[int] = typer.Option(
        None, "--years-simulated", min=1, max=MAX_YEARS_SIMULATED, help="Simulated years per calendar year (default: [event_based] years_simulated, 10000)."),
    realisations: Optional[int] = typer.Option(
        None, "--realisations", min=1, max=MAX_REALISATIONS, help="Logic-tree realisations; simulated years are split over them "
        "(default: [event_based] realisations, 1)."),
    correlation_range_km: Optional[float] = typer.Option(
        None, "--correlation-range", min=0.0, help="Range of the within-event spatial correlation [km] "
        "(default: [event_based] correlation_range_km, 8.5)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Seed of the event streams (default: [event_based] seed, else [run] seed)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the event-based Dataset (.nc or .zarr; default: [event_based] output)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output (also: [output] overwrite)."),
) -> None:
    """Simulate event sets and ground-motion fields; print the F-N curve and the annual totals.

    Options come from the [event_based] section of CONFIG; those given on the command line override it.
    """
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    import hra
    from hra.eventbased.risk import EventRiskOptions, run_event_based
    from hra.cli.common import cli_errors
    from hra.outputs import check_output, write_dataset

    with cli_errors():
        cfg = hra.load_config(config)
        if out is None and cfg.event_based.output is not None:
            out = cfg.resolve(cfg.event_based.output)
        overwrite = overwrite or cfg.output.overwrite
        if out is not None:
            if Path(out).suffix not in (".zarr", ".nc"):
                raise ValueError(f"--out {out}: the event-based output must end in .zarr or .nc")
            check_output(out, overwrite)
        opts = EventRiskOptions.from_config(cfg, years_simulated=years_simulated, realisations=realisations,
                                            correlation_range_km=correlation_range_km, seed=seed)
        ds = run_event_based(cfg, opts, progress=None)
    years_simulated = opts.n_years_simulated
    console = Console()
    summary = Table(title=f"event-based risk: {years_simulated} simulated years")
    summary.add_column("quantity")
    summary.add_column("value", justify="right")
    for name in ("expected_fatalities", "expected_collapses"):
        if name in ds:
            summary.add_row(f"{name.replace('_', ' ')} per year", np.array2string(np.asarray(ds[name].values), precision=4))
    _basis(ds, opts, summary)
    console.print(summary)
    fn_vars = [v for v in ds.data_vars if v.startswith("fn_")]
    if fn_vars:
        fn = Table(title="F-N curve: annual frequency of N or more deaths")
        for v in fn_vars:
            fn.add_column(v)
        dim = ds[fn_vars[0]].dims[-1]
        fn.add_column(str(dim))
        n = ds.sizes[dim]
        for i in range(min(n, 12)):
            fn.add_row(*[f"{float(np.asarray(ds[v].isel({dim: i}).values).ravel()[0]):.3e}" for v in fn_vars],
                       str(ds[dim].values[i]) if dim in ds.coords else str(i))
        console.print(fn)
    for line in fn_warnings(ds, opts):
        typer.secho(f"warning: {line}", fg="yellow", err=True)
    if out is not None:
        with cli_errors():
            write_dataset(ds, out, overwrite=overwrite)
        console.print(f"wrote {out}")


def _basis(ds, opts, table) -> None:
    """What the figures rest on: simulated events, realisations, events with deaths."""
    import numpy as np

    n_real = opts.realisations if isinstance(opts.realisations, int) else int(ds.attrs.get("n_realisations", 0) or 0)
    table.add_row("logic-tree realisations", str(n_real or opts.realisations))
    if "n_events" in ds:
        table.add_row("simulated events per year", np.array2string(np.asarray(ds["n_events"].values)))
    if "event_deaths" in ds:
        d = np.asarray(ds["event_deaths"].values)
        table.add_row("events with deaths (sampled)", f"{int((d > 0).sum())} ({float(d.sum()):g} deaths)")


#: fewer sampled events with deaths than this: the F-N curve is called rough (relative error ~ 1/sqrt(n))
FEW_FN_EVENTS = 10


def fn_warnings(ds, opts) -> list[str]:
    """Warnings when the group risk rests on too little: an empty F-N curve, one resting on fewer
    than :data:`FEW_FN_EVENTS` sampled events with deaths, or a single realisation."""
    import numpy as np

    out = []
    empty = "fn_frequency" in ds and not np.any(np.asarray(ds["fn_frequency"].values) > 0)
    if empty:
        out.append(f"the F-N curve is empty: no simulated event caused a death in {opts.n_years_simulated} simulated "
                   f"years per calendar year (deaths {opts.fn_from}); simulate more years (--years-simulated) or set "
                   "[event_based] fn_from = \"expectation\"")
    elif "fn_frequency" in ds and "event_deaths" in ds and opts.fn_from == "sampling":
        n = int((np.asarray(ds["event_deaths"].values) > 0).sum())
        if n < FEW_FN_EVENTS:
            out.append(f"the F-N curve rests on {n} simulated event(s) with deaths: its frequencies are rough "
                       f"(relative error ~{100 / np.sqrt(n):.0f} %); simulate more years (--years-simulated)")
    if opts.realisations == 1:
        out.append("the group risk rests on one logic-tree realisation (one random branch of every node); give "
                   "--realisations N (the simulated years are split over them) to include the epistemic uncertainty")
    return out
