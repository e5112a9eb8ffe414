"""`hra compare`, `hra report`, `hra export`: reviewing runs (thin wrappers over :mod:`hra.review`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hra.cli.common import OverwriteOpt, _abspath, _console, cli_errors

RunArg = Annotated[Path, typer.Argument(metavar="RUN", help="Output of `hra run` (.zarr or .nc).", show_default=False)]


def compare_command(
    old: Annotated[Path, typer.Argument(metavar="OLD", help="The earlier run (.zarr or .nc).", show_default=False)],
    new: Annotated[Path, typer.Argument(metavar="NEW", help="The later run (.zarr or .nc).", show_default=False)],
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Write the per-building comparison (all buildings) here.",
                                                show_default=False)] = None,
    attribution: Annotated[bool, typer.Option("--attribution/--no-attribution",
                                              help="Recompute the buildings that changed category with one input of OLD "
                                                   "swapped in at a time (source, models, exposure).")] = True,
    top: Annotated[int, typer.Option("--top", min=0, help="Buildings listed in the terminal.")] = 15,
    overwrite: OverwriteOpt = False,
) -> None:
    """Compare two runs: buildings added / removed / moved / retyped, changes of mean and P90, risk category and profile changes, and what caused each category change."""
    with cli_errors():
        from hra.review.compare import compare
        from hra.review.tables import ReviewError

        csv_path = _abspath(csv)
        if csv_path is not None:
            from hra.cli.common import check_writable

            check_writable(csv_path, overwrite)
        if not old.exists() or not new.exists():
            raise ReviewError(f"{old if not old.exists() else new} does not exist; give two outputs of `hra run`")
        cmp = compare(old, new, attribute=attribution)
        print_comparison(cmp, top=top)
        if csv_path is not None:
            cmp.to_csv(csv_path, overwrite=overwrite)
            _console().print(f"wrote {csv_path}", highlight=False, soft_wrap=True)


def print_comparison(cmp, top: int = 15, console=None) -> None:
    """The comparison as rich tables: counts, category transitions, the changed buildings."""
    from rich.table import Table

    con = console or _console()
    s = cmp.summary
    t = Table(title=f"{cmp.old_name} -> {cmp.new_name}", title_justify="left", show_header=False)
    t.add_column("what")
    t.add_column("buildings", justify="right")
    for label, key in (("in OLD", "old"), ("in NEW", "new"), ("added", "added"), ("removed", "removed"),
                       ("moved", "moved"), ("retyped", "retyped"), ("zone changed", "zone_changed"),
                       ("risk category changed", "category_changed"), ("profile changed", "profile_changed")):
        t.add_row(label, f"{s[key]:,}")
    con.print(t)
    if s["transitions"] or s["profile_transitions"]:
        t2 = Table(title="Changes of risk category (over the common years) and profile", title_justify="left")
        t2.add_column("change")
        t2.add_column("buildings", justify="right")
        for k, v in s["transitions"].items():
            t2.add_row(f"category {k}", f"{v:,}")
        for k, v in s["profile_transitions"].items():
            t2.add_row(f"profile {k}", f"{v:,}")
        con.print(t2)
    ch = cmp.changed
    if top and len(ch):
        t3 = Table(title=f"Buildings that changed (first {min(top, len(ch))} of {len(ch)}); attribution: change of the "
                         "deciding statistic each input brings [per year]", title_justify="left")
        for c in ("building", "category", "profile", "year", "stat", "source", "models", "exposure", "residual", "main"):
            t3.add_column(c, justify="right" if c in ("source", "models", "exposure", "residual") else "left")
        for _, r in ch.head(top).iterrows():
            def f(v):
                return "" if v != v else f"{v:+.2e}"
            t3.add_row(str(r["building_id"]), r["category_change"], r["profile_change"], r["attr_year"],
                       r["attr_statistic"].replace("lpr_", ""), f(r["attr_source"]), f(r["attr_models"]),
                       f(r["attr_exposure"]), f(r["attr_residual"]), r["attr_main"])
        con.print(t3)
    for n in cmp.notes:
        con.print(f"note: {n}", style="yellow", highlight=False, soft_wrap=True)


def report_command(
    run: RunArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.", show_default=False)] = Path("report.html"),
    compare_with: Annotated[Optional[Path], typer.Option("--compare", metavar="OLD",
                                                         help="Add the comparison with this earlier run.",
                                                         show_default=False)] = None,
    attribution: Annotated[bool, typer.Option("--attribution/--no-attribution",
                                              help="With --compare: attribute the category changes (recomputes).")] = True,
    top: Annotated[int, typer.Option("--top", min=1, help="Top buildings listed.")] = 20,
    explain_top: Annotated[int, typer.Option("--explain-top", min=0, help="The first N top buildings get an explanation line (each is recomputed; 0: none).")] = 5,
    overwrite: OverwriteOpt = False,
) -> None:
    """One self-contained HTML report of a run (provenance, categories and profiles per year, maps, LPR distribution, top buildings, and the comparison with --compare)."""
    with cli_errors():
        from hra.cli.common import check_writable
        from hra.review.report import write_report

        path = _abspath(out)
        check_writable(path, overwrite)
        write_report(run, path, compare_with=compare_with, top=top, attribute=attribution, overwrite=overwrite,
                     explain_top=explain_top)
        _console().print(f"wrote {path}", highlight=False, soft_wrap=True)


def export_command(
    run: RunArg,
    gpkg: Annotated[Optional[Path], typer.Option("--gpkg", help="GeoPackage to write (layer 'lpr').", show_default=False)] = None,
    geoparquet: Annotated[Optional[Path], typer.Option("--geoparquet", help="GeoParquet to write (needs pyarrow).",
                                                       show_default=False)] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """GIS files of a run: one point per building in EPSG:28992 with id, mean/P50/P90 per year, risk category, profile and municipality."""
    with cli_errors():
        from hra.review.export import export_gis
        from hra.review.tables import open_run

        if gpkg is None and geoparquet is None:
            raise typer.BadParameter("give --gpkg PATH and/or --geoparquet PATH", param_hint="'--gpkg' / '--geoparquet'")
        ds = open_run(run)
        for p in export_gis(ds, gpkg=_abspath(gpkg), geoparquet=_abspath(geoparquet), overwrite=overwrite):
            _console().print(f"wrote {p}", highlight=False, soft_wrap=True)
