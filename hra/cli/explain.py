"""``hra explain RUN --building ID [--year Y] [--json]``: why a building has its LPR (hra.explain)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from hra.cli.common import _console, cli_errors


def explain_command(
    run: Annotated[Path, typer.Argument(help="A run's output (.zarr or .nc; recomputed from the config its "
                                            "provenance records) or a config .toml.", show_default=False)],
    building: Annotated[list[str], typer.Option("--building", "-b", help="Building id (repeat for several).",
                                                show_default=False)],
    year: Annotated[Optional[int], typer.Option("--year", "-y", help="Year to explain (default: the year that "
                                                "decides the building's risk profile).", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the splits as JSON (one object per building; "
                                          "a list for several).")] = False,
) -> None:
    """Split a building's mean LPR by magnitude x distance, source cell, typology, collapse state and
    inside/outside; mean LPR per branch of every logic-tree node; the risk profile's decisive year."""
    with cli_errors():
        from hra.review.explain import explain

        res = explain(run, list(building), year=year)
        if as_json:
            out = [e.to_dict() for e in res]
            typer.echo(json.dumps(out[0] if len(out) == 1 else out, indent=1))
            return
        for e in res:
            print_explanation(e)


def _pct(v: float, total: float) -> str:
    return f"{100.0 * v / total:.1f}" if total > 0 else "-"


def print_explanation(e, console=None) -> None:
    """The explanation as rich tables: profile, magnitude x distance, cells, typology, states, tornado."""
    from rich.table import Table

    console = console or _console()
    total = e.lpr_mean
    prof = e.profile or {}
    console.print(f"[bold]Building {e.building}[/bold], {e.year}: mean LPR {total:.3e} per year")
    if prof:
        console.print(f"risk profile: [bold]{prof.get('profile') or 'none'}[/bold] - {prof.get('explanation', '')}")
    # magnitude x distance, in rows of half a magnitude unit (the JSON has the engine's bins)
    md = e.splits["magnitude_distance"]
    dist = sorted({(r["r_lo_km"], r["r_hi_km"]) for r in md if r["lpr"] > 0}, key=lambda x: x[0])
    grid: dict[float, dict] = {}
    for r in md:
        row = grid.setdefault(math.floor(r["m_lo"] * 2 + 1e-9) / 2, {})
        key = (r["r_lo_km"], r["r_hi_km"])
        row[key] = row.get(key, 0.0) + r["lpr"]
    t = Table(title="Mean LPR by magnitude x hypocentral distance (km), % of the total", title_justify="left")
    t.add_column("magnitude")
    for lo, hi in dist:
        t.add_column(f"{lo:g}-{hi:g}" if hi is not None else f">{lo:g}", justify="right")
    t.add_column("all", justify="right")
    for m in sorted(grid):
        row = grid[m]
        t.add_row(f"{m:.1f}-{m + 0.5:.1f}", *[_pct(row.get(d, 0.0), total) for d in dist],
                  _pct(sum(row.values()), total))
    console.print(t)
    t = Table(title="Source cells (largest contributions)", title_justify="left")
    for c in ("cell", "distance (km)", "LPR per yr", "share %"):
        t.add_column(c, justify="left" if c == "cell" else "right")
    for r in e.splits["source_cell"]:
        t.add_row(r["label"], "" if r["distance_km"] is None else f"{r['distance_km']:.1f}", f"{r['lpr']:.3e}",
                  _pct(r["lpr"], total))
    console.print(t)
    for name, title in (("typology", "Typology candidates"), ("state", "Collapse states"),
                        ("inside_outside", "Where the person is")):
        t = Table(title=title, title_justify="left")
        t.add_column(name)
        if name == "typology":
            t.add_column("probability", justify="right")
        t.add_column("LPR per yr", justify="right")
        t.add_column("share %", justify="right")
        for r in e.splits[name]:
            extra = [f"{r['probability']:.3f}"] if name == "typology" else []
            t.add_row(r["label"], *extra, f"{r['lpr']:.3e}", _pct(r["lpr"], total))
        console.print(t)
    t = Table(title="Logic-tree nodes: mean LPR per yr given the lowest / highest branch (widest first)",
              title_justify="left")
    for c in ("node", "low branch", "low", "high branch", "high", "high / low"):
        t.add_column(c, justify="left" if "branch" in c or c == "node" else "right")
    for r in e.tornado():
        ratio = f"{r['high'] / r['low']:.2f}" if r["low"] > 0 else "-"
        t.add_row(r["node"], r["low_branch"], f"{r['low']:.3e}", r["high_branch"], f"{r['high']:.3e}", ratio)
    console.print(t)
