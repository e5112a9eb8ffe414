"""`hra info RUN.zarr`: the provenance of an output, as a reviewer reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from hra.cli.common import _console, cli_errors


def info_command(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="An output of hra (risk .zarr/.nc, hazard or event-based Dataset).",
                                        show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the provenance as JSON.")] = False,
    config: Annotated[bool, typer.Option("--config/--no-config", help="Print the resolved config (TOML).")] = True,
) -> None:
    """Provenance of a run: version, git revision, config hash, hashes of every input and model table, library versions, seed, realisations, timings and the resolved config."""
    with cli_errors():
        from rich.table import Table

        from hra.review.info import open_output, provenance_rows

        ds = open_output(run)
        prov = json.loads(ds.attrs["provenance"])
        if as_json:
            typer.echo(json.dumps(prov, indent=2, sort_keys=True))
            return
        con = _console()
        t = Table(title=f"Provenance of {run}", title_justify="left", show_header=False)
        t.add_column("key", style="bold")
        t.add_column("value", overflow="fold")
        for k, v in provenance_rows(prov, ds):
            t.add_row(k, v)
        con.print(t)
        files = prov.get("input_sha256", {})
        tf = Table(title="Inputs and model tables read (SHA-256)", title_justify="left")
        tf.add_column("input", overflow="fold")
        tf.add_column("sha256", overflow="fold")
        for k, v in files.items():
            tf.add_row(k, v)
        con.print(tf)
        libs = prov.get("library_versions", {})
        if libs:
            con.print("libraries: " + ", ".join(f"{k} {v}" for k, v in libs.items() if v), highlight=False, soft_wrap=True)
        if config and prov.get("config_toml"):
            con.print("\nresolved config (TOML):", style="bold")
            con.print(prov["config_toml"], markup=False, highlight=False, soft_wrap=True)
