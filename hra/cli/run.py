"""`hra demo` and `hra run`: the risk run of a configuration (or of the embedded demo region)."""

from __future__ import annotations

import enum
import logging
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from hra.cli.common import (ConfigArg, CsvOpt, OutOpt, OverwriteOpt, ProcessesOpt, ProgressOpt, RealisationsOpt, SchedulerOpt,
                            WorkersOpt, _abspath, _compute_updates, _console, _parse_realisations, _with_updates, check_writable, cli_errors)
from hra.cli.summary import print_summary

log = logging.getLogger("hra")

def _run_and_report(cfg, progress: bool | None) -> None:
    import hra

    for p in (cfg.resolve(cfg.output.path), cfg.resolve(cfg.output.csv), cfg.resolve(cfg.output.gpkg)):
        if p is not None:
            check_writable(p, cfg.output.overwrite)
    if cfg.output.path is None and cfg.output.csv is None and cfg.output.gpkg is None:
        log.warning("no output path configured: the results are only summarised here (use --out PATH)")
    t0 = time.perf_counter()
    ds = hra.run(cfg, progress=progress)
    wall = time.perf_counter() - t0
    print_summary(ds, wall_s=wall, outputs=[cfg.resolve(cfg.output.path), cfg.resolve(cfg.output.csv),
                                                   cfg.resolve(cfg.output.gpkg)])



# ------------------------------------------------------------------------------------------
# commands
# ------------------------------------------------------------------------------------------


class DemoModel(str, enum.Enum):
    demo = "demo"
    groningen_v7 = "groningen-v7"
    groningen_v6 = "groningen-v6"


def demo_command(
    buildings: Annotated[int, typer.Option("--buildings", "-n", min=1, help="Number of synthetic buildings.")] = 20_000,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the exposure and the logic-tree draws.")] = 1,
    realisations: Annotated[str, typer.Option(
        "--realisations", "-r", metavar="N|all", callback=_parse_realisations,
        help="Monte-Carlo realisations of the logic tree, or 'all'.")] = "1000",
    out: Annotated[Path, typer.Option("--out", "-o", help="Output store (.zarr or .nc); demo inputs and "
                                      "risk_summary.csv go into its directory.")] = Path("hra-demo/risk.zarr"),
    workers: WorkersOpt = None,
    processes: ProcessesOpt = None,
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
    compute = _compute_updates(workers, scheduler, processes)
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


def run_command(
    config: ConfigArg,
    out: OutOpt = None,
    csv: CsvOpt = None,
    workers: WorkersOpt = None,
    processes: ProcessesOpt = None,
    scheduler: SchedulerOpt = None,
    overwrite: OverwriteOpt = False,
    realisations: RealisationsOpt = None,
    progress: ProgressOpt = None,
) -> None:
    """Run a configuration: LPR mean and quantiles per building and year.

    The options override keys of the file (output path, csv and overwrite, run realisations, compute workers, executor and scheduler); the file stays the record of the run.
    """
    compute = _compute_updates(workers, scheduler, processes)
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
