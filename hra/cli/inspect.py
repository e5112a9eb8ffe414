"""`hra inspect conditional`: one link of the chain for one event, as a table (SodM's check)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

inspect_app = typer.Typer(rich_markup_mode=None, help="Inspect components of the model chain.", no_args_is_help=True)


@inspect_app.command("conditional")
def conditional_command(
    model: str = typer.Option("groningen-v7", help="groningen-v7, groningen-v6 or demo."),
    magnitude: float = typer.Option(..., "--magnitude", "-m", help="Magnitude [ML]."),
    rrup_km: float = typer.Option(..., "--rrup", help="Rupture distance [km]."),
    zone: int = typer.Option(..., "--zone", help="Site-response zone (ID_V6; demo: 1..8)."),
    typology: str = typer.Option(..., "--typology", help="Structural system, e.g. URM3M_U."),
    wierde: bool = typer.Option(False, "--wierde", help="Building on a dwelling mound."),
    model_dir: Optional[Path] = typer.Option(None, help="Model tables (default $HRA_MODEL_DIR)."),
    fcm: Optional[str] = typer.Option(None, help="fcm-v7, fcm-v6, fcm-tno2020 (default: paired with the GMM)."),
) -> None:
    """Logic-tree mean P(>=CS1), P(>=CS3), P(death inside/outside) and the event LPR."""
    from rich.console import Console
    from rich.table import Table

    from hra.cli.common import cli_errors
    from hra.integration.conditional import conditional_risk

    with cli_errors():
        res = conditional_risk(model, magnitude, rrup_km, zone, typology, wierde, model_dir, fcm)
    table = Table(title=f"{model}: M {magnitude:g}, R_rup {rrup_km:g} km, zone {zone}, {typology}{', wierde' if wierde else ''}")
    table.add_column("quantity")
    table.add_column("logic-tree mean", justify="right")
    for key, label in (("p_cs1", "P(CS >= 1)"), ("p_cs3", "P(CS >= 3)"), ("p_death_inside", "P(death | inside)"),
                       ("p_death_outside", "P(death | outside)"), ("lpr_event", "LPR contribution of the event")):
        table.add_row(label, f"{res[key]:.4e}")
    table.caption = f"{res['n_branches']} GMM x FCM branches; median weights w(M)"
    Console().print(table)
