"""The ``hra`` command line: a thin Typer app over the Python API (design.md §4, conventions §12).

The CLI only parses, calls :mod:`hra` and prints; every computation lives in the API.

Commands::

    hra demo   [--buildings N] [--seed S] [--realisations N|all] [--out PATH] [--workers N | --scheduler ADDR]
    hra run    CONFIG.toml [--out PATH] [--csv PATH] [--workers N | --scheduler ADDR] [--overwrite] [--realisations N|all]
    hra config schema [--format json|markdown]
    hra config check  CONFIG.toml [--read-inputs]
    hra profiles ... / hra plan ...          (mounted from hra.profiles_cli when it is importable)

Exit codes: 0 ok; 2 usage or input error (bad option, invalid config, bad input file, output not
writable: the message is printed in red, without a traceback); 1 runtime error (``-v`` shows the
traceback); 130 interrupted.

Progress: a rich bar on a terminal (the engine draws it when stderr is a TTY), plain log lines
otherwise (CI, cluster logs). ``--progress/--no-progress`` forces either.

Adding a command group (``hra models``, ``hra hazard``, ``hra inspect``, ...): write it in its own
module as a ``typer.Typer()`` (or a plain function for a single command) and add one line to
:data:`EXTENSIONS` below; it is mounted when the module imports, so the CLI keeps working while
the module does not exist yet. Reuse the shared options (``OutOpt``, ``WorkersOpt``, ...) and
wrap the body in ``with cli_errors():`` to get the exit-code convention.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer

log = logging.getLogger("hra")

#: The norm on the Local Personal Risk (Besluit versterking art. 3). [yr^-1]
NORM_LPR = 1e-5

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: click's exception classes as typer uses them (typer >= 0.2x vendors its own click): they carry
#: their own exit codes (usage errors: 2) and pass through :func:`cli_errors` untouched.
_CLICK_EXCEPTIONS = (typer.Exit, typer.Abort) + tuple(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

#: Global options of the current invocation (set by :func:`main`).
_STATE: dict[str, Any] = {"verbose": False}

app = typer.Typer(
    name="hra",
    help="Groningen seismic hazard and risk: Local Personal Risk (LPR) per building and year.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(help="Show the configuration schema and validate configuration files.", no_args_is_help=True)
app.add_typer(config_app, name="config")

#: Command groups and commands written in other modules: (module, attribute, name, kind).
#: kind "group" mounts a typer.Typer with app.add_typer, "command" registers a function.
#: A module that does not exist (yet) is skipped; one that fails to import is reported on stderr.
EXTENSIONS: list[tuple[str, str, str, str]] = [
    ("hra.profiles_cli", "profiles_app", "profiles", "group"),   # hra profiles update|show|...
    ("hra.profiles_cli", "plan_command", "plan", "command"),     # hra plan
    ("hra.models_cli", "models_app", "models", "group"),         # hra models check|fetch
    ("hra.hazard_cli", "hazard_app", "hazard", "group"),         # hra hazard ...
    ("hra.inspect_cli", "inspect_app", "inspect", "group"),        # hra inspect conditional ...
    ("hra.events_cli", "events_command", "events", "command"),     # hra events CONFIG (event-based)
]


# ------------------------------------------------------------------------------------------
# shared options (defined once, reused by every command)
# ------------------------------------------------------------------------------------------


def _parse_realisations(value: Optional[str]) -> Optional[int | str]:
    if value is None:
        return None
    text = str(value).strip().lower()
    if text == "all":
        return "all"
    try:
        n = int(text)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither an integer nor 'all'") from None
    if n < 1:
        raise typer.BadParameter(f"{n} must be at least 1 (or 'all' to enumerate the logic tree)")
    return n


OutOpt = Annotated[Optional[Path], typer.Option(
    "--out", "-o", help="Output store (.zarr or .nc); relative to the current directory.", show_default=False)]
CsvOpt = Annotated[Optional[Path], typer.Option(
    "--csv", help="Also write the per-building CSV summary here.", show_default=False)]
WorkersOpt = Annotated[Optional[int], typer.Option(
    "--workers", "-w", min=1, help="Worker processes of a local dask cluster (1: in-process).", show_default=False)]
SchedulerOpt = Annotated[Optional[str], typer.Option(
    "--scheduler", metavar="ADDRESS",
    help="dask.distributed scheduler address, e.g. tcp://host:8786 (excludes --workers).", show_default=False)]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
RealisationsOpt = Annotated[Optional[str], typer.Option(
    "--realisations", "-r", metavar="N|all", callback=_parse_realisations,
    help="Monte-Carlo realisations of the logic tree, or 'all' to enumerate it.", show_default=False)]
ProgressOpt = Annotated[Optional[bool], typer.Option(
    "--progress/--no-progress", help="Progress bar (default: on a terminal).", show_default=False)]
ConfigArg = Annotated[Path, typer.Argument(metavar="CONFIG.toml", help="Run configuration (TOML).", show_default=False)]


# ------------------------------------------------------------------------------------------
# logging, consoles, errors
# ------------------------------------------------------------------------------------------


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def setup_logging(level: int = logging.INFO) -> None:
    """INFO (or ``level``) log lines of hra, fragility and npr9998 to stderr, short format.

    On a terminal the lines go through rich so they scroll above the progress bar.
    """
    if sys.stderr.isatty():
        import rich
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=rich.get_console(), show_path=False, markup=False,
                                               log_time_format="%H:%M:%S")
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"))
    handler._hra_cli = True  # type: ignore[attr-defined]
    for name in ("hra", "fragility", "npr9998"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            if getattr(h, "_hra_cli", False):
                lg.removeHandler(h)
        lg.addHandler(handler)
        lg.setLevel(level)


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever ``sys.stderr`` is at the time of each record (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _error(message: str) -> None:
    _console(stderr=True).print(message, style="red", markup=False, soft_wrap=True)


def _is_user_error(exc: BaseException) -> bool:
    """Input/usage problems (exit 2): our error classes (ValueError subclasses), OutputError, missing files."""
    from pydantic import ValidationError

    try:
        from hra.outputs import OutputError
    except Exception:  # pragma: no cover - broken install
        OutputError = ()  # type: ignore[assignment]
    return isinstance(exc, (ValueError, ValidationError, OutputError, FileNotFoundError, NotADirectoryError,
                            IsADirectoryError, PermissionError))


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Map exceptions to the exit-code convention: 2 input/usage error, 1 runtime error."""
    try:
        yield
    except _CLICK_EXCEPTIONS:
        raise
    except KeyboardInterrupt:
        _error("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:  # noqa: BLE001 - the CLI boundary
        if _is_user_error(exc):
            _error(f"error: {exc}")
            log.debug("input error", exc_info=True)
            raise typer.Exit(EXIT_USAGE) from None
        verbose = bool(_STATE.get("verbose", False))
        if verbose:
            import traceback

            traceback.print_exc(file=sys.stderr)
        _error(f"runtime error: {type(exc).__name__}: {exc}" + ("" if verbose else "  (run `hra -v ...` for the traceback)"))
        raise typer.Exit(EXIT_RUNTIME) from None


def _quiet_library_warnings() -> None:
    """Hide warnings of libraries that say nothing to a user of the CLI (zarr v3 string dtypes)."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*does not have a Zarr V3 specification.*")
    warnings.filterwarnings("ignore", message=r"Consolidated metadata is currently not part.*")


def _version_callback(value: bool) -> None:
    if value:
        from hra.outputs import package_version

        typer.echo(f"hra (groningen-hra) {package_version()}")
        raise typer.Exit()


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


# ------------------------------------------------------------------------------------------
# helpers shared by the run commands
# ------------------------------------------------------------------------------------------


def _abspath(p: Path | None) -> Path | None:
    """A command-line path: relative to the current directory (not to the config file)."""
    return None if p is None else Path(os.path.abspath(os.path.expanduser(str(p))))


def _with_updates(cfg, **sections):
    """``cfg.with_updates`` with validation errors reported as a ConfigError naming the options."""
    from pydantic import ValidationError

    from hra.config import ConfigError, format_validation_error

    try:
        return cfg.with_updates(**sections)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "the command-line options")) from None


def _compute_updates(workers: int | None, scheduler: str | None) -> dict[str, Any]:
    if workers is not None and scheduler is not None:
        raise typer.BadParameter("they are mutually exclusive: give the number of local workers or the address "
                                 "of a running dask scheduler, not both", param_hint="'--workers' / '--scheduler'")
    if workers is not None:
        return {"workers": workers, "scheduler": "auto"}
    if scheduler is not None:
        return {"scheduler": scheduler}
    return {}


def check_writable(path: Path, overwrite: bool) -> None:
    """Fail early (OutputError) when ``path`` cannot be written: the parent must be a directory in
    which a file can actually be created (a probe; ``os.access`` says yes to root on read-only
    mounts), and an existing target needs ``overwrite``."""
    from hra.outputs import OutputError

    parent = path.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise OutputError(f"cannot write {path}: {parent} {what}; create the directory or choose another path")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} already exists; remove it, choose another path or pass --overwrite")
    try:
        fd, probe = tempfile.mkstemp(prefix=".hra-write-probe-", dir=parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: directory {parent} is not writable ({exc.strerror}); "
                          "choose a writable output path") from None
    os.close(fd)
    os.unlink(probe)


def _run_and_report(cfg, progress: bool | None) -> None:
    import hra

    for p in (cfg.resolve(cfg.output.path), cfg.resolve(cfg.output.csv)):
        if p is not None:
            check_writable(p, cfg.output.overwrite)
    if cfg.output.path is None and cfg.output.csv is None:
        log.warning("no output path configured: the results are only summarised here (use --out PATH)")
    t0 = time.perf_counter()
    ds = hra.run(cfg, progress=progress)
    wall = time.perf_counter() - t0
    print_summary(ds, wall_s=wall, outputs=[cfg.resolve(cfg.output.path), cfg.resolve(cfg.output.csv)])


# ------------------------------------------------------------------------------------------
# summary
# ------------------------------------------------------------------------------------------


def category_counts(ds, norm: float = NORM_LPR) -> list[dict[str, Any]]:
    """Buildings per risk category and year: mean > norm; P90 > norm with mean <= norm; neither.

    The last row ("any year") uses each building's highest mean and P90 over the years.
    """
    import numpy as np

    mean = np.asarray(ds["lpr_mean"].values)
    p90 = np.asarray(ds["lpr_p90"].values) if "lpr_p90" in ds else None
    rows = []
    labels = [str(int(y)) for y in ds["year"].values] + ["any year"]
    for i, label in enumerate(labels):
        m = mean[:, i] if i < mean.shape[1] else mean.max(axis=1)
        hi = m > norm
        row = {"year": label, "buildings": int(m.size), "mean": int(hi.sum())}
        if p90 is not None:
            q = p90[:, i] if i < p90.shape[1] else p90.max(axis=1)
            row["p90_only"] = int(((q > norm) & ~hi).sum())
            row["neither"] = int((~hi & ~(q > norm)).sum())
        else:
            row["p90_only"] = None
            row["neither"] = int((~hi).sum())
        rows.append(row)
    return rows


def print_summary(ds, wall_s: float | None = None, outputs: list | None = None, console=None, top: int = 10) -> None:
    """Risk categories per year, the highest mean LPRs and the run time, as rich tables on stdout."""
    import numpy as np
    from rich.table import Table

    console = console or _console()
    norm_value = float(ds.attrs.get("norm_lpr_per_year", NORM_LPR))
    norm = _sci(norm_value)
    prov = json.loads(ds.attrs.get("provenance", "{}"))
    years = [int(y) for y in ds["year"].values]
    n = ds.sizes["building"]

    t = Table(title=f"Buildings per risk category (norm {norm} per year)", title_justify="left")
    t.add_column("year")
    t.add_column(f"mean > {norm}", justify="right")
    t.add_column(f"P90 > {norm}\n(mean ≤ {norm})", justify="right")
    t.add_column("neither", justify="right")
    t.add_column("buildings", justify="right")
    rows = category_counts(ds, norm_value)
    for i, r in enumerate(rows):
        style = "bold" if i == 0 else ("italic" if r["year"] == "any year" else None)
        t.add_row(r["year"], f"{r['mean']:,}", "n/a" if r["p90_only"] is None else f"{r['p90_only']:,}",
                  f"{r['neither']:,}", f"{r['buildings']:,}", style=style, end_section=(i == len(rows) - 2))
    console.print(t)

    mean0 = ds["lpr_mean"].values[:, 0]
    order = np.argsort(-mean0, kind="stable")[:top]
    t2 = Table(title=f"Highest mean LPR in {years[0]} [per year]", title_justify="left")
    t2.add_column("#", justify="right")
    t2.add_column("building")
    has_mun = "municipality" in ds.coords and any(str(m) for m in ds["municipality"].values[order])
    if has_mun:
        t2.add_column("municipality")
    stats = ["lpr_mean"] + [v for v in ("lpr_p50", "lpr_p90") if v in ds]
    for s in stats:
        t2.add_column(s[4:].upper() if s != "lpr_mean" else "mean", justify="right")
    ids = ds["building_id"].values
    for rank, i in enumerate(order, 1):
        cells = [str(rank), str(ids[i])]
        if has_mun:
            cells.append(str(ds["municipality"].values[i]))
        for s in stats:
            v = float(ds[s].values[i, 0])
            cells.append(f"[red]{v:.2e}[/red]" if v > norm_value else f"{v:.2e}")
        t2.add_row(*cells)
    console.print(t2)

    tim = prov.get("timings_s", {})
    order_t = ["prepare_s", "tables_s", "buildings_s"]
    keys = [k for k in order_t if k in tim] + [k for k in tim if k not in order_t and k != "total_s"]
    parts = [f"{k[:-2]} {tim[k]:.1f} s" for k in keys]
    total = tim.get("total_s", wall_s)
    line = f"run time: {total:.1f} s" if total is not None else "run time: n/a"
    if parts:
        line += " (" + ", ".join(parts) + ")"
    if tim.get("buildings_s"):
        line += f"; {n / tim['buildings_s']:,.0f} buildings/s after the tables"
    console.print(line, highlight=False, soft_wrap=True)
    if prov:
        console.print(f"{n:,} buildings, years {years[0]}-{years[-1]}, {prov.get('n_realisations', '?')} "
                      f"{prov.get('realisations', '')} realisations, seed {prov.get('seed', '?')}",
                      highlight=False, soft_wrap=True)
    for p in outputs or []:
        if p is not None:
            console.print(f"wrote {p}", highlight=False, soft_wrap=True)


def _sci(x: float) -> str:
    """1e-05 -> '1e-5' (short scientific notation for labels)."""
    import re

    s = f"{x:g}"
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), s)


# ------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------


class DemoModel(str, enum.Enum):
    demo = "demo"
    groningen_v7 = "groningen-v7"
    groningen_v6 = "groningen-v6"


@app.command("demo")
def demo_command(
    buildings: Annotated[int, typer.Option("--buildings", "-n", min=1, help="Number of synthetic buildings.")] = 20_000,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the exposure and the logic-tree draws.")] = 1,
    realisations: Annotated[str, typer.Option(
        "--realisations", "-r", metavar="N|all", callback=_parse_realisations,
        help="Monte-Carlo realisations of the logic tree, or 'all'.")] = "1000",
    out: Annotated[Path, typer.Option("--out", "-o", help="Output store (.zarr or .nc); demo inputs and "
                                      "risk_summary.csv go into its directory.")] = Path("hra-demo/risk.zarr"),
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    progress: ProgressOpt = None,
    model: Annotated[DemoModel, typer.Option(
        "--model", "-m", help="demo: the illustrative demo models; groningen-v7 / groningen-v6: the public "
        "Groningen GMM and FCM (72 x 9 branches for V7) on the demo region (needs $HRA_MODEL_DIR or --model-dir).",
    )] = DemoModel.demo,
    model_dir: Annotated[Optional[Path], typer.Option(
        "--model-dir", help="Folder of the public Groningen model tables (convert/res; default: $HRA_MODEL_DIR); "
        "only with --model groningen-v7 / groningen-v6.", show_default=False)] = None,
) -> None:
    """Run the embedded demo region end to end (illustrative models, not for decisions).

    Writes the demo inputs to demo-inputs/ beside OUT (with a run.toml that `hra run` accepts), the risk Dataset to OUT and a per-building CSV summary risk_summary.csv beside it. With --model groningen-v7 the same region, source and Mmax branches run with the public GMM V7 and FCM V7 (buildings with real V6 site-response zones, V7 classes and wierden).
    """
    compute = _compute_updates(workers, scheduler)
    model_name = getattr(model, "value", model)
    if model_dir is not None and model_name == "demo":
        raise typer.BadParameter("only with --model groningen-v7 or groningen-v6 (the demo models need no "
                                 "model tables)", param_hint="'--model-dir'")
    with cli_errors():
        import hra
        from hra.outputs import OutputError

        if model_name != "demo":  # fail before writing anything when the model tables are not there
            from hra.api import demo_model_dir

            demo_model_dir(model_name, _abspath(model_dir))
        out_path = _abspath(out)
        if out_path.suffix not in (".zarr", ".nc"):
            raise typer.BadParameter(f"{out} must end in .zarr or .nc", param_hint="'--out'")
        try:
            out_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the output directory {out_path.parent}: {exc.strerror}; "
                              "choose another --out") from None
        csv_path = out_path.parent / "risk_summary.csv"
        for p in (out_path, csv_path):
            check_writable(p, overwrite=True)
        inputs = out_path.parent / "demo-inputs"
        log.info("writing demo inputs (%d buildings) to %s", buildings, inputs)
        cfg = hra.demo_config(n_buildings=buildings, seed=seed, directory=inputs, realisations=realisations,
                              output=out_path, model=model_name, model_dir=_abspath(model_dir))
        cfg = _with_updates(cfg, output={"csv": str(csv_path), "overwrite": True}, compute=compute)
        _run_and_report(cfg, progress)
        _console().print(f"demo inputs and run.toml in {inputs} (rerun: hra run {inputs / 'run.toml'} --overwrite)",
                         highlight=False, soft_wrap=True)


@app.command("run")
def run_command(
    config: ConfigArg,
    out: OutOpt = None,
    csv: CsvOpt = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    overwrite: OverwriteOpt = False,
    realisations: RealisationsOpt = None,
    progress: ProgressOpt = None,
) -> None:
    """Run a configuration: LPR mean and quantiles per building and year.

    The options override keys of the file (output path, csv and overwrite, run realisations, compute workers and scheduler); the file stays the record of the run.
    """
    compute = _compute_updates(workers, scheduler)
    with cli_errors():
        from hra.config import load_config

        cfg = load_config(config)
        output: dict[str, Any] = {}
        if out is not None:
            output["path"] = str(_abspath(out))
        if csv is not None:
            output["csv"] = str(_abspath(csv))
        if overwrite:
            output["overwrite"] = True
        updates: dict[str, dict[str, Any]] = {}
        if output:
            updates["output"] = output
        if compute:
            updates["compute"] = compute
        if realisations is not None:
            updates["run"] = {"realisations": realisations}
        if updates:
            cfg = _with_updates(cfg, **updates)
        _run_and_report(cfg, progress)


class SchemaFormat(str, enum.Enum):
    json = "json"
    markdown = "markdown"


@config_app.command("schema")
def config_schema_command(
    fmt: Annotated[SchemaFormat, typer.Option("--format", "-f", help="json: the JSON schema; markdown: "
                                              "the reference tables of the README.")] = SchemaFormat.json,
) -> None:
    """Print the JSON schema of the run configuration (every key, type, default and unit)."""
    with cli_errors():
        from hra.config import config_json_schema

        schema = config_json_schema()
        if fmt == SchemaFormat.json:
            typer.echo(json.dumps(schema, indent=2))
        else:
            typer.echo(schema_markdown(schema))


_INPUT_SECTIONS = ("source", "ground_motion", "exposure", "fragility")


def _input_paths(cfg) -> list[tuple[str, Path]]:
    """(key, resolved path) of every file or directory an input section refers to."""
    out: list[tuple[str, Path]] = []

    def walk(obj, prefix: str) -> None:
        from pydantic import BaseModel

        for name in type(obj).model_fields:
            value = getattr(obj, name)
            key = f"{prefix}.{name}"
            if isinstance(value, Path):
                out.append((key, cfg.resolve(value)))
            elif isinstance(value, BaseModel):
                walk(value, key)

    for section in _INPUT_SECTIONS:
        walk(getattr(cfg, section), section)
    return out


@config_app.command("check")
def config_check_command(
    config: ConfigArg,
    read_inputs: Annotated[bool, typer.Option("--read-inputs", help="Also read and validate the input files "
                                              "(rates, exposure, fragility, model tables).")] = False,
) -> None:
    """Validate a configuration file and print a short summary (exit 2 when invalid)."""
    with cli_errors():
        from rich.table import Table

        from hra.config import ConfigError, load_config

        cfg = load_config(config)
        missing = [(k, p) for k, p in _input_paths(cfg) if not p.exists()]
        if missing:
            lines = [f"invalid configuration in {config}:"]
            lines += [f"  - key [{k}]: {p} does not exist; fix: correct the path (relative paths are taken "
                      f"from the directory of {Path(config).name})" for k, p in missing]
            raise ConfigError("\n".join(lines))
        t = Table(title=f"{config}: valid", title_justify="left", show_header=False)
        t.add_column("key", style="bold")
        t.add_column("value")
        r = cfg.run
        t.add_row("years", f"{r.years[0]}-{r.years[-1]} ({len(r.years)})" if len(r.years) > 1 else str(r.years[0]))
        t.add_row("realisations", f"{r.realisations} (seed {r.seed})")
        t.add_row("quantiles", ", ".join(f"{q:g}" for q in r.quantiles))
        mm = cfg.source.magnitude.m_max
        t.add_row("source", f"{cfg.resolve(cfg.source.rates)}; m_min {cfg.source.m_min:g}, "
                  f"Mmax {', '.join(f'{b.value:g}' for b in mm)}")
        if getattr(cfg, "model", None):
            t.add_row("model preset", cfg.model)
        t.add_row("ground motion", cfg.ground_motion.model)
        t.add_row("exposure", str(cfg.resolve(cfg.exposure.buildings)))
        fr = cfg.fragility
        frag_model = getattr(fr, "model", None)
        t.add_row("fragility", str(frag_model) if frag_model else str(cfg.resolve(fr.curves)))
        outs = [str(cfg.resolve(p)) for p in (cfg.output.path, cfg.output.csv) if p is not None]
        t.add_row("output", (", ".join(outs) or "none (results only returned)")
                  + (" (overwrite)" if cfg.output.overwrite else ""))
        c = cfg.compute
        workers = f"{c.n_workers} worker(s)" + (" (the CPU cores)" if c.workers is None else "")
        t.add_row("compute", f"scheduler {c.scheduler}, {workers}, {c.chunk_buildings} buildings per task")
        if read_inputs:
            from hra.engine import prepare

            prep = prepare(cfg)
            t.add_row("buildings", f"{prep.buildings.n:,}")
            t.add_row("source cells", f"{prep.rates.x.size:,}, {len(prep.rates.branches)} branch(es)")
            t.add_row("sites", f"{len(prep.sites)} (zone, wierde) combinations")
            t.add_row("logic tree", f"{prep.tree.n_combinations:,} branch combinations")
        t.add_row("config sha256", cfg.sha256()[:16] + "...")
        _console().print(t)


# ------------------------------------------------------------------------------------------
# schema -> markdown (the config reference of the README)
# ------------------------------------------------------------------------------------------


def _deref(schema: dict, node: dict) -> dict:
    ref = node.get("$ref")
    if ref:
        return schema["$defs"][ref.rsplit("/", 1)[-1]]
    return node


def _type_str(schema: dict, node: dict) -> str:
    if "anyOf" in node:
        parts = [_type_str(schema, n) for n in node["anyOf"]]
        return " or ".join("none" if p == "null" else p for p in parts)
    if "const" in node:
        return json.dumps(node["const"])
    if "enum" in node:
        return " \\| ".join(json.dumps(v) for v in node["enum"])
    if "$ref" in node:
        d = _deref(schema, node)
        return "{" + ", ".join(d.get("properties", {})) + "}"
    t = node.get("type")
    if t == "array":
        return "list of " + _type_str(schema, node.get("items", {}))
    base = {"integer": "int", "number": "float", "string": "string", "boolean": "bool", "null": "null"}.get(t, str(t))
    if node.get("format") == "path":
        base = "path"
    lims = []
    for k, sym in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if k in node:
            lims.append(f"{sym} {node[k]:g}")
    return base + (" " + ", ".join(lims) if lims else "")


def _default_str(name: str, node: dict, required: set[str], factory: dict | None = None) -> str:
    if name in required:
        return "required"
    if "default" not in node:
        if factory and name in factory:
            return "`" + json.dumps(factory[name]) + "`"
        return ""
    d = node["default"]
    if d is None:
        return "none"
    return "`" + (json.dumps(d) if not isinstance(d, str) else json.dumps(d)) + "`"


def _factory_defaults(model=None) -> dict[str, dict[str, Any]]:
    """Defaults given by ``default_factory`` (absent from the JSON schema), by model title and key."""
    from pydantic import BaseModel

    from hra.config import Config

    out: dict[str, dict[str, Any]] = {}
    seen: set[type] = set()

    def walk(cls) -> None:
        if cls in seen:
            return
        seen.add(cls)
        for name, f in cls.model_fields.items():
            if f.default_factory is not None:
                try:
                    v = f.default_factory()
                    v = v.model_dump(mode="json") if isinstance(v, BaseModel) else \
                        [i.model_dump(mode="json") if isinstance(i, BaseModel) else i for i in v] \
                        if isinstance(v, list) else v
                    out.setdefault(cls.__name__, {})[name] = v
                except Exception:  # pragma: no cover - a factory that needs arguments
                    pass
            for t in _model_types(f.annotation):
                walk(t)

    walk(model or Config)
    return out


def _model_types(annotation) -> list[type]:
    import typing

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [t for a in typing.get_args(annotation) for t in _model_types(a)]


def schema_markdown(schema: dict) -> str:
    """Markdown tables (one per TOML section) of every key: type and range, default, description."""
    lines: list[str] = []
    factory = _factory_defaults()

    def table(title: str, d: dict, skip: tuple[str, ...] = ()) -> list[tuple[str, dict]]:
        nested: list[tuple[str, dict]] = []
        lines.extend([f"#### `{title}`", ""])
        if d.get("description"):
            lines.extend([d["description"].strip(), ""])
        lines.extend(["| key | type | default | description |", "|---|---|---|---|"])
        req = set(d.get("required", []))
        for name, node in d.get("properties", {}).items():
            if name in skip:
                continue
            target = _deref(schema, node)
            if "$ref" in node and "properties" in target and target.get("title", "").endswith("Section"):
                nested.append((f"{title.strip('[]')}.{name}", target))
                lines.append(f"| `{name}` | table `[{title.strip('[]')}.{name}]` | "
                             f"{'required' if name in req else ''} | see below |")
                continue
            desc = (node.get("description") or "").replace("|", "\\|").replace("\n", " ")
            dflt = _default_str(name, node, req, factory.get(d.get("title", "")))
            if dflt.startswith("`{") and "$ref" in node:
                dflt = "(all defaults)"
            lines.append(f"| `{name}` | {_type_str(schema, node)} | {dflt} | {desc} |")
        lines.append("")
        return nested

    def is_section(n: dict) -> bool:
        return ("$ref" in n or "discriminator" in n or "properties" in n
                or any(is_section(m) for m in n.get("anyOf", []) + n.get("oneOf", [])))

    top = {k: n for k, n in schema["properties"].items() if k not in ("base_dir", "source_file") and not is_section(n)}
    if top:  # top-level keys that are not sections (the model preset)
        lines.extend(["#### top-level keys", "", "| key | type | default | description |", "|---|---|---|---|"])
        for name, p in top.items():
            desc = (p.get("description") or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{name}` | {_type_str(schema, p)} | {_default_str(name, p, set(schema.get('required', [])))} "
                         f"| {desc} |")
        lines.append("")
    for section, node in schema["properties"].items():
        if section in ("base_dir", "source_file") or section in top:
            continue
        variants = node.get("oneOf") or node.get("anyOf")
        if variants and "discriminator" in node:
            key = node["discriminator"]["propertyName"]
            for v in variants:
                d = _deref(schema, v)
                val = d["properties"][key].get("const") or d["properties"][key].get("enum", ["?"])[0]
                title = f"[{section}] {key} = \"{val}\""
                lines.extend([f"#### `{title}`", ""])
                if d.get("description"):
                    lines.extend([d["description"].strip(), ""])
                lines.extend(["| key | type | default | description |", "|---|---|---|---|"])
                req = set(d.get("required", []))
                for name, p in d.get("properties", {}).items():
                    if name == key:
                        lines.append(f"| `{name}` | {json.dumps(val)} | required | Selects this model. |")
                        continue
                    desc = (p.get("description") or "").replace("|", "\\|").replace("\n", " ")
                    dflt = _default_str(name, p, req, factory.get(d.get("title", "")))
                    lines.append(f"| `{name}` | {_type_str(schema, p)} | {dflt} | {desc} |")
                lines.append("")
            continue
        pending = table(f"[{section}]", _deref(schema, node))
        while pending:
            title, d = pending.pop(0)
            pending.extend(table(f"[{title}]", d))
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------------------
# command groups of other modules
# ------------------------------------------------------------------------------------------


def _mount_extensions() -> None:
    for module, attr, name, kind in EXTENSIONS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the module exists but needs something missing
                print(f"hra: warning: `hra {name}` unavailable: {exc}", file=sys.stderr)
            continue  # else: not written yet
        except ImportError as exc:
            print(f"hra: warning: `hra {name}` unavailable: {exc}", file=sys.stderr)
            continue
        obj = getattr(mod, attr, None)
        if obj is None:
            continue  # the module does not define this command (yet)
        if kind == "group":
            app.add_typer(obj, name=name)
        else:
            app.command(name)(obj)


_mount_extensions()


if __name__ == "__main__":  # python -m hra.cli
    app()
