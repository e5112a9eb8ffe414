"""`hra tables build|info|clear`: the persistent store of conditional death tables.

See :mod:`hra.integration.tablestore` for what is stored, the keys and the atomic writes.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Annotated, Optional

import typer

from hra.cli.common import ConfigArg, ProgressOpt, WorkersOpt, _abspath, _compute_updates, _with_updates, cli_errors

tables_app = typer.Typer(help="The table store: conditional death tables computed once and reused by every run.",
                         no_args_is_help=True)

StoreOpt = Annotated[Optional[Path], typer.Option(
    "--store", help="Store folder (default: $HRA_TABLE_STORE, else the user cache directory).", show_default=False)]


def _store(path: Optional[Path]):
    from hra.integration.tablestore import TableStore, default_store_path

    root = _abspath(path) if path is not None else default_store_path()
    if root is None:
        raise ValueError("no table store: $HRA_TABLE_STORE is off; pass --store PATH")
    return TableStore(root)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@tables_app.command("build")
def build_command(
    config: ConfigArg,
    all_zones: Annotated[bool, typer.Option(
        "--all-zones", help="Every zone of the GMM (with and without wierde) x every typology of the fragility "
        "model, instead of the sites and typologies of the config's buildings.")] = False,
    store: StoreOpt = None,
    workers: WorkersOpt = None,
    progress: ProgressOpt = None,
) -> None:
    """Fill the table store for a config (what is already there is kept)."""
    import sys

    import hra
    from hra.integration import tablebuild, tablestore

    with cli_errors():
        cfg = hra.load_config(config)
        cfg = _with_updates(cfg, compute=_compute_updates(workers, None))
        st = _store(store) if store is not None else tablestore.store_for_config(cfg)
        if progress is None:
            progress = cfg.compute.progress if cfg.compute.progress is not None else sys.stderr.isatty()
        rep = tablebuild.build(cfg, all_zones=all_zones, store=st, progress=progress)
    typer.echo(f"table store {rep.store}: key {rep.key}, {rep.sites} sites, {rep.entries} (site, typology) entries, "
               f"{rep.computed} computed now, {rep.entries - rep.computed} already there ({rep.seconds:.1f} s)")


@tables_app.command("info")
def info_command(store: StoreOpt = None) -> None:
    """List the store's model keys (entries, size, models, options and grids) and its forecast tables."""
    from hra.integration import forecaststore

    with cli_errors():
        st = _store(store)
        sets = st.info()
        fsets = forecaststore.info(st.root)
    typer.echo(f"table store {st.root}")
    for s in sets:
        d = s.description
        gmm, fr, grids = d.get("gmm", {}), d.get("fragility", {}), d.get("grids", {})
        gm_cfg = dict(gmm.get("config", {}))
        name = gm_cfg.pop("model", None) or gmm.get("class", "?")
        opts = ", ".join(f"{k}={v}" for k, v in sorted(gm_cfg.items()))
        m = grids.get("magnitude_nodes", [0, 0.0, 0.0])
        r = grids.get("distance_nodes_km", [0, 0.0, 0.0])
        last = _dt.datetime.fromtimestamp(s.last_used).strftime("%Y-%m-%d %H:%M") if s.last_used else "-"
        tmp = f", {s.temporary} leftover temporary folder(s)" if s.temporary else ""
        fr_cfg = fr.get("config", {})
        fr_name = fr_cfg.get("model") or fr_cfg.get("curves") or fr.get("name", "?")
        typer.echo(f"\n{s.key}: {s.entries} entries, {_size(s.bytes)}, last used {last}{tmp}")
        typer.echo(f"  GMM        {name} ({opts or 'no options'}); {len(gmm.get('file_checksums', {}))} table(s) hashed")
        typer.echo(f"  fragility  {fr_name}, presence_inside {fr.get('presence_inside', '?')}, "
                   f"{len(fr.get('file_checksums', {}))} file(s) hashed")
        stride = grids.get("magnitude_table_stride", 1)
        held = (f" (magnitude_table_stride {stride}: entries hold the computed nodes, the others interpolated as read)"
                if stride != 1 else "")
        typer.echo(f"  grids      {m[0]} magnitude nodes {m[1]:.2f}-{m[2]:.2f}{held}; {r[0]} distance nodes "
                   f"{r[1]:.3g}-{r[2]:.3g} km")
        typer.echo(f"  version    table format {d.get('table_format_version', '?')}, hra {d.get('package_version', '?')}"
                   + (" - stale: this version never reads it (`hra tables clear --stale` removes it)" if s.stale else ""))
    for s in fsets:
        d = s.description
        last = _dt.datetime.fromtimestamp(s.last_used).strftime("%Y-%m-%d %H:%M") if s.last_used else "-"
        tmp = f", {s.temporary} leftover temporary file(s)" if s.temporary else ""
        basis = d.get("basis", {}).get("shape", ["?", "?", "?"])
        combos = d.get("combinations", {})
        files = ", ".join(f"{k} {v[:12]}" for k, v in d.get("forecast_files", {}).items()) or "-"
        typer.echo(f"\nforecast tables {s.key}: {s.entries} entries, {_size(s.bytes)}, last used {last}{tmp}")
        typer.echo(f"  of model   {d.get('model_key', '?')}")
        typer.echo(f"  forecast   magnitude basis of {basis[0]} branches x {basis[1]} functions; made from {files}")
        typer.echo(f"  tables     {combos.get('n', '?')} model combinations, q in {d.get('q_dtype', '?')}")
        typer.echo(f"  version    format {d.get('forecast_format_version', '?')}, hra {d.get('package_version', '?')}"
                   + (" - stale: this version never reads it (`hra tables clear --stale` removes it)" if s.stale else ""))
    stale = [s for s in sets + fsets if s.stale]
    typer.echo(f"\n{len(sets)} model key(s), {sum(s.entries for s in sets)} entries, {_size(sum(s.bytes for s in sets))}"
               + (f"; {len(fsets)} forecast key(s), {sum(s.entries for s in fsets)} entries, "
                  f"{_size(sum(s.bytes for s in fsets))}" if fsets else "")
               + (f"; {len(stale)} stale ({_size(sum(s.bytes for s in stale))})" if stale else ""))


@tables_app.command("clear")
def clear_command(
    store: StoreOpt = None,
    older_than: Annotated[Optional[float], typer.Option(
        "--older-than", metavar="DAYS", min=0.0,
        help="Only entries not used for DAYS days (default: all).", show_default=False)] = None,
    stale: Annotated[bool, typer.Option(
        "--stale", help="Only the model keys this version never reads: written by another table format or hra "
        "version (`hra tables info` marks them), e.g. after an upgrade.")] = False,
) -> None:
    """Remove entries (all, those unused for DAYS, or those of stale model keys), physical and forecast
    tables alike, and the leftovers of interrupted writers."""
    from hra.integration import forecaststore

    with cli_errors():
        st = _store(store)
        n, freed = st.clear(older_than, stale=stale)
        n_f, freed_f = forecaststore.clear(st.root, older_than, stale=stale)
        n, freed = n + n_f, freed + freed_f
    typer.echo(f"table store {st.root}: removed {n} entries, {_size(freed)} freed")
