"""``npr9998`` command line: assess one building, a batch of buildings, or check a table file.

Commands (exit codes: 0 ok, 2 input/config error, 1 runtime error)::

    npr9998 assess BUILDING.toml [--out DIR] [--tables FILE] [--decision-tables FILE]
                                 [--catalogue FILE] [--hra-config FILE] [--no-report]
    npr9998 batch BUILDINGS.csv  [--out DIR] [same options] [--keep-going]
    npr9998 tables [FILE]        # validate and summarise an NPR 9998 table file
    npr9998 site-spectrum HRA_CONFIG.toml --sites SITES.csv [--return-periods 475,2475] [--csv OUT]
                                 # the NPR spectrum (a_g;S, p, T_B, T_C, T_D) fitted to the HRA's hazard

The command line only parses, calls the Python API (:mod:`npr9998.assess`,
:mod:`npr9998.report`) and prints; the risk verdict is made only when ``--hra-config`` is given.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from hra.cli.common import cli_errors
from npr9998.errors import NPRInputError, ProvisionalTableWarning

app = typer.Typer(
    rich_markup_mode=None,
    name="npr9998",
    help="NPR 9998 assessment of individual buildings (spectra, N2 / capacity spectrum / lateral force, building fragility, normbesluit).",
    no_args_is_help=True,
    add_completion=False,
)

_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False)

OUT_OPT = typer.Option(Path("npr9998-results"), "--out", "-o", help="Output folder (results.json, results.csv, reports/).")
OVERWRITE_OPT = typer.Option(False, "--overwrite", help="Replace the results of an existing output folder.")
#: what assess and batch write into the output folder
RESULT_NAMES = ("results.json", "results.csv", "errors.csv", "reports")


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse an output that is a file, or a folder holding results without ``--overwrite``, before
    anything is computed (so nothing is half-written)."""
    if out.exists() and not out.is_dir():
        raise NPRInputError(f"--out {out}: is a file, not a folder. Fix: give a folder for results.json, "
                            "results.csv and reports/ (created if missing)")
    held = [n for n in RESULT_NAMES if (out / n).exists()] if out.is_dir() else []
    if held and not overwrite:
        raise NPRInputError(f"--out {out}: already holds results ({', '.join(held)}). Fix: choose another folder "
                            "or pass --overwrite to replace them")
TABLES_OPT = typer.Option(None, "--tables", help="NPR 9998 table file (TOML or CSV, schema npr9998-tables/1). Default: PROVISIONAL stand-ins.")
DECISION_OPT = typer.Option(None, "--decision-tables", help="Decision tables (bands, budgets, terms; TOML). Default: ILLUSTRATIVE.")
CATALOGUE_OPT = typer.Option(None, "--catalogue", help="Typology catalogue (TOML). Default: ILLUSTRATIVE.")
HRA_OPT = typer.Option(None, "--hra-config", help="HRA run config (TOML); when given, the LPR risk verdict is made with hra.building_lpr.")
REPORT_OPT = typer.Option(True, "--report/--no-report", help="Write a Markdown report with PNG figures per building.")


def _load_all(tables, decision_tables, catalogue):
    from npr9998.catalogue import load_catalogue
    from npr9998.tables import load_decision_tables, load_tables

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProvisionalTableWarning)
        t = load_tables(tables)
    if t.provisional:
        _err.print(
            f"[bold yellow]PROVISIONAL NPR 9998 tables[/] ({t.table_version}): results are NOT a normbesluit. "
            "Pass the tables of your NPR 9998 edition with --tables FILE.",
            soft_wrap=True,
        )
    return t, load_decision_tables(decision_tables), load_catalogue(catalogue)


def _hra_config(path: Optional[Path]):
    if path is None:
        return None
    try:
        import hra
    except ImportError as exc:
        raise RuntimeError(f"--hra-config needs the hra package ({exc}).") from None
    if not hasattr(hra, "load_config"):
        raise RuntimeError("this hra installation has no load_config(); upgrade hra.")
    try:
        return hra.load_config(path)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        raise NPRInputError(f"HRA config could not be loaded: {exc}", file=path, fix="correct the HRA config (see the hra documentation).") from None


def _summary(assessments, seconds: float, max_rows: int = 25) -> None:
    """Print the results; above ``max_rows`` buildings, counts plus the largest unity checks."""
    from collections import Counter

    shown = list(assessments)
    title = f"NPR 9998 results ({len(assessments)} building(s), {seconds:.1f} s)"
    if len(shown) > max_rows:
        counts = Counter((a.decision.verdict, a.decision.category or "-") for a in assessments)
        tc = Table(title=title)
        for col in ("verdict", "category", "buildings"):
            tc.add_column(col)
        for (v, c), k in sorted(counts.items()):
            tc.add_row(v, c, str(k))
        _out.print(tc)
        shown = sorted(shown, key=lambda a: -(a.decision.unity_check or 0.0))[:10]
        title = "largest unity checks"
    tab = Table(title=title)
    for col in ("building", "method", "UC", "verdict", "category", "budget [EUR]", "risk"):
        tab.add_column(col)
    for a in shown:
        d = a.decision
        budget = "-" if not d.category else f"{d.budget_low_eur:,.0f} - {d.budget_high_eur:,.0f}"
        risk = "-" if a.risk is None else f"{a.risk.lpr_mean_max:.2e} ({a.risk.classification})"
        style = "green" if d.voldoet else "red"
        tab.add_row(a.building_id, a.result.method, f"{d.unity_check:.2f}" if d.unity_check is not None else "-", f"[{style}]{d.verdict}[/]", d.category or "-", budget, risk)
    _out.print(tab)


@app.command()
def assess(
    building: Path = typer.Argument(..., help="Building file (TOML; schema in docs/npr9998.md)."),
    out: Path = OUT_OPT,
    tables: Optional[Path] = TABLES_OPT,
    decision_tables: Optional[Path] = DECISION_OPT,
    catalogue: Optional[Path] = CATALOGUE_OPT,
    hra_config: Optional[Path] = HRA_OPT,
    report: bool = REPORT_OPT,
    overwrite: bool = OVERWRITE_OPT,
) -> None:
    """Assess one building and write results.json, results.csv and reports/<id>/."""
    from npr9998.assess import assess_building, load_building
    from npr9998.report import write_building_report, write_results

    t0 = time.perf_counter()
    with cli_errors():
        _check_out(out, overwrite)
        t, dt, cat = _load_all(tables, decision_tables, catalogue)
        cfg = _hra_config(hra_config)
        spec = load_building(building)
        a = assess_building(spec, base_dir=building.parent, source=str(building), tables=t, decision_tables=dt, catalogue=cat, hra_config=cfg)
        json_path, csv_path = write_results([a], out, command=" ".join(["npr9998"] + sys.argv[1:]))
        if report:
            write_building_report(a, out / "reports")
    _summary([a], time.perf_counter() - t0)
    _out.print(f"wrote {json_path}, {csv_path}" + (f", {out / 'reports'}" if report else ""))


@app.command()
def batch(
    buildings: Path = typer.Argument(..., help="Batch CSV, one building per row (columns in docs/npr9998.md)."),
    out: Path = OUT_OPT,
    tables: Optional[Path] = TABLES_OPT,
    decision_tables: Optional[Path] = DECISION_OPT,
    catalogue: Optional[Path] = CATALOGUE_OPT,
    hra_config: Optional[Path] = HRA_OPT,
    report: bool = REPORT_OPT,
    keep_going: bool = typer.Option(False, "--keep-going", help="Record buildings that fail in errors.csv and go on (default: stop at the first)."),
    overwrite: bool = OVERWRITE_OPT,
) -> None:
    """Assess every building of a CSV file; write results.json, results.csv and reports/."""
    from npr9998.assess import assess_building, read_batch
    from npr9998.report import write_building_report, write_results

    t0 = time.perf_counter()
    assessments, errors = [], []
    with cli_errors():
        _check_out(out, overwrite)
        t, dt, cat = _load_all(tables, decision_tables, catalogue)
        cfg = _hra_config(hra_config)
        specs = read_batch(buildings)
        for row, spec in specs:
            try:
                a = assess_building(spec, base_dir=buildings.parent, source=str(buildings), row=row, tables=t, decision_tables=dt, catalogue=cat, hra_config=cfg)
            except NPRInputError as exc:
                if not keep_going:
                    raise
                errors.append((row, spec.building.id, str(exc)))
                continue
            assessments.append(a)
        json_path, csv_path = write_results(assessments, out, errors=errors, command=" ".join(["npr9998"] + sys.argv[1:]))
        if report:
            for a in assessments:
                write_building_report(a, out / "reports")
    _summary(assessments, time.perf_counter() - t0)
    _out.print(f"wrote {json_path}, {csv_path}" + (f", {out / 'reports'}" if report else ""))
    if errors:
        _err.print(f"[bold yellow]{len(errors)} building(s) not assessed[/]: see {out / 'errors.csv'}")
        raise typer.Exit(2)


@app.command("tables")
def tables_cmd(file: Optional[Path] = typer.Argument(None, help="Table file to check (default: the provisional set).")) -> None:
    """Validate an NPR 9998 table file and print its content."""
    from npr9998.tables import load_tables

    with cli_errors(), warnings.catch_warnings():
        warnings.simplefilter("ignore", ProvisionalTableWarning)
        t = load_tables(file)
    _out.print(f"edition: {t.edition}\ntable_version: {t.table_version}\nprovisional: {t.provisional}\nsource: {t.source}\nsha256: {t.sha256}\ndesign spectrum beta: {t.design_spectrum.beta}")
    tc = Table(title="consequence classes")
    for c in ("class", "return period [yr]", "importance factor"):
        tc.add_column(c)
    for k, v in t.consequence_classes.items():
        tc.add_row(k, f"{v.return_period_yr:g}", f"{v.importance_factor:g}")
    _out.print(tc)
    ts = Table(title="structural systems")
    for c in ("system", "q", "drift limit NC", "C_t", "ATC-40 type"):
        ts.add_column(c)
    for k, v in t.structural_systems.items():
        ts.add_row(k, f"{v.q:g}", f"{v.drift_limit_nc:g}", f"{v.c_t:g}", v.behaviour_type)
    _out.print(ts)
    if t.provisional:
        _err.print("[bold yellow]these are PROVISIONAL stand-in tables, not NPR 9998 values.[/]")


@app.command("site-spectrum")
def site_spectrum_cmd(
    hra_config: Path = typer.Argument(..., exists=True, dir_okay=False, help="HRA run configuration (TOML): source and ground-motion model."),
    sites: Path = typer.Option(..., "--sites", exists=True, dir_okay=False, help="CSV with id, x, y [m, RD New] (optional zone)."),
    return_periods: str = typer.Option("475,2475", "--return-periods", help="Return periods [yr], comma-separated."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write the table to this CSV file."),
) -> None:
    """Hazard at sites with the HRA model and the NPR 9998 elastic spectrum fitted to its uniform hazard spectrum."""
    import pandas as pd

    import hra
    from hra.cli.common import check_writable
    from hra.core.fileio import atomic_write
    from npr9998.site_spectrum import site_spectra

    with cli_errors():
        if csv is not None:
            check_writable(csv, overwrite=True)
        cfg = hra.load_config(hra_config)
        rps = [float(x) for x in return_periods.split(",") if x.strip()]
        df = site_spectra(cfg, pd.read_csv(sites, encoding="utf-8-sig"), rps)
    tab = Table(title="NPR 9998 elastic spectrum fitted to the uniform hazard spectrum (mean curve) [g, s]")
    cols = [("site", "site", "{}"), ("return_period_yr", "T_R [yr]", "{:g}"), ("pga_g", "PGA [g]", "{:.3f}"),
            ("ag_s_g", "a_g;S [g]", "{:.3f}"), ("p", "p", "{:.2f}"), ("t_b", "T_B [s]", "{:.2f}"),
            ("t_c", "T_C [s]", "{:.2f}"), ("t_d", "T_D [s]", "{:.2f}")]
    for _, title, _ in cols:
        tab.add_column(title)
    for _, row in df.iterrows():
        tab.add_row(*["-" if isinstance(row[k], float) and row[k] != row[k] else fmt.format(row[k]) for k, _, fmt in cols])
    _out.print(tab)
    if csv is not None:
        with cli_errors():
            atomic_write(csv, lambda tmp: df.to_csv(tmp, index=False), overwrite=True)
        _out.print(f"wrote {csv}")


if __name__ == "__main__":  # pragma: no cover
    app()
