"""`hra models check|fetch`: the public Groningen model tables (never committed to this project)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

models_app = typer.Typer(rich_markup_mode=None, help="Check or download the public Groningen model tables (GMM/FCM V6, V7, TNO-2020).",
                         no_args_is_help=True)


@models_app.command("check")
def check_command(
    model_dir: Optional[Path] = typer.Argument(None, help="Folder holding V6/, V7/, TNO2020/ (default: $HRA_MODEL_DIR)."),
    versions: str = typer.Option("V6,V7,TNO2020", help="Comma-separated model versions to check."),
) -> None:
    """Verify that every expected table is present with the registered SHA-256."""
    from rich.console import Console
    from rich.table import Table

    from hra.cli.common import cli_errors
    from hra.inputs.modeldata import check_model_dir, resolve_model_dir

    from hra.inputs.modeldata import expected_files

    vers = [v.strip() for v in versions.split(",") if v.strip()]
    with cli_errors():
        path = resolve_model_dir(model_dir)
        problems = check_model_dir(path, vers, strict=False)
    console = Console()
    table = Table(title=f"model tables in {path}")
    table.add_column("file")
    table.add_column("status")
    for rel in expected_files(vers):
        bad = [p for p in problems if str(path / rel) in p]
        table.add_row(rel, "[red]" + ("missing" if bad and "missing" in bad[0] else "SHA-256 mismatch") + "[/red]" if bad else "ok")
    console.print(table)
    if problems:
        for p in problems:
            typer.secho(f"error: {p}", fg="red", err=True)
        raise typer.Exit(2)


@models_app.command("fetch")
def fetch_command(dest: Path = typer.Argument(..., help="Folder to download into (created).")) -> None:
    """Download the tables from the public repository at the pinned commit, with SHA-256 checks (pooch)."""
    from hra.inputs.modeldata import fetch_models

    path = fetch_models(dest)
    typer.echo(f"model tables in {path}; export HRA_MODEL_DIR={path}")
