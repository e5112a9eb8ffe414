"""The ``hra`` command line: a thin Typer app over the Python API (docs/architecture.md §4 and §5).

The CLI only parses, calls :mod:`hra` and prints; every computation lives in the API.

Commands::

    hra demo   [--buildings N] [--seed S] [--realisations N|all] [--out PATH] [--workers N] [--processes] [--scheduler ADDR]
    hra run    CONFIG.toml [--out PATH] [--csv PATH] [--workers N] [--processes] [--scheduler ADDR] [--overwrite] [--realisations N|all]
    hra info     RUN.zarr [--json]                      (provenance)
    hra compare  OLD.zarr NEW.zarr [--csv out.csv]
    hra report   RUN.zarr -o report.html [--compare OLD.zarr]
    hra export   RUN.zarr --gpkg PATH [--geoparquet PATH]
    hra config schema [--format json|markdown]
    hra config check  CONFIG.toml [--read-inputs]
    hra explain RUN.zarr --building ID [--year Y] [--json]
    hra tables build CONFIG.toml [--all-zones] | info | clear [--store PATH] [--older-than DAYS]
    hra forecast info FILE                   (an SSM forecast file: dims, branches, cells, years, rates)
    hra profiles ... / hra plan ...          (mounted from hra.cli.profiles when it is importable)

Exit codes: 0 ok; 2 usage or input error (bad option, invalid config, bad input file, output not
writable: the message is printed in red, without a traceback); 1 runtime error (``-v`` shows the
traceback); 130 interrupted.

Progress: a rich bar on a terminal (the engine draws it when stderr is a TTY), plain log lines
otherwise (CI, cluster logs). ``--progress/--no-progress`` forces either.

Adding a command or a group: write it in its own module of :mod:`hra.cli` as a function or a
``typer.Typer()``, reuse the shared options of :mod:`hra.cli.common` (``OutOpt``, ``WorkersOpt``,
...), wrap the body in ``with cli_errors():`` for the exit-code convention, and register it below.
"""

from __future__ import annotations

import logging
from typing import Annotated, Optional

import typer

from hra.cli.common import _STATE, _quiet_library_warnings, _version_callback, setup_logging
from hra.cli.config import config_app
from hra.cli.events import events_command
from hra.cli.explain import explain_command
from hra.cli.forecast import forecast_app
from hra.cli.hazard import hazard_app
from hra.cli.info import info_command
from hra.cli.inspect import inspect_app
from hra.cli.review import compare_command, export_command, report_command
from hra.cli.models import models_app
from hra.cli.profiles import plan_command, profiles_app
from hra.cli.run import demo_command, run_command
from hra.cli.tables import tables_app

app = typer.Typer(
    rich_markup_mode=None,
    name="hra",
    help="Groningen seismic hazard and risk: Local Personal Risk (LPR) per building and year.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def main(
    ctx: typer.Context,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug log lines; tracebacks of runtime errors.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")] = False,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version_callback, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """Groningen seismic hazard and risk engine.

    Local Personal Risk (LPR) per building and year, with its logic-tree distribution (mean, P50, P90) against the norm of 1e-5 per year.
    """
    ctx.obj = {"verbose": verbose, "quiet": quiet}
    _STATE.update(ctx.obj)
    _quiet_library_warnings()
    setup_logging(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)


app.command("demo")(demo_command)
app.command("run")(run_command)
app.add_typer(config_app, name="config")
app.add_typer(profiles_app, name="profiles")     # hra profiles update|show|...
app.command("plan")(plan_command)                # hra plan
app.add_typer(models_app, name="models")         # hra models check|fetch
app.add_typer(hazard_app, name="hazard")         # hra hazard curves
app.add_typer(inspect_app, name="inspect")       # hra inspect conditional
app.command("events")(events_command)            # hra events CONFIG (event-based)
app.command("explain")(explain_command)          # hra explain RUN --building ID
app.add_typer(tables_app, name="tables")         # hra tables build|info|clear
app.command("info")(info_command)                # hra info RUN.zarr (provenance)
app.command("compare")(compare_command)          # hra compare OLD.zarr NEW.zarr
app.command("report")(report_command)            # hra report RUN.zarr -o report.html
app.command("export")(export_command)            # hra export RUN.zarr --gpkg PATH
app.add_typer(forecast_app, name="forecast")     # hra forecast info FILE


if __name__ == "__main__":  # python -m hra.cli.main
    app()
