"""Command line for risk profiles, the profile register, opt-outs and plans.

The main ``hra`` application mounts these as::

    app.add_typer(profiles_app, name="profiles")
    app.command("plan")(plan_command)

giving ``hra profiles update|show|export|adjust|inspection|attributes|parties|decision|optout ...``
and ``hra plan``. The commands only parse, call the Python API (:mod:`hra.policy.register`,
:mod:`hra.policy.optout`, :mod:`hra.policy.planning`) and print. Exit codes: 0 ok, 2 bad input (a
:class:`~hra.policy.profiles.ProfileError`, printed on stderr), 1 for ``hra plan --strict`` when the plan
is not feasible or not complete.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Optional

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from hra.cli.common import cli_errors
from hra.policy.profiles import PROFILE_ORDER, PRESETS, ProfileError, YearRange, load_rule

__all__ = ["plan_command", "profiles_app"]

profiles_app = typer.Typer(
    rich_markup_mode=None,
    help="Risk profiles (Besluit art. 4), the profile register without downgrades, and opt-outs (art. 12-14).",
    no_args_is_help=True,
    add_completion=False,
)
optout_app = typer.Typer(rich_markup_mode=None, help="Opt-out requests of owners (art. 12-14).", no_args_is_help=True)
profiles_app.add_typer(optout_app, name="optout")

RegisterOpt = Annotated[str, typer.Option("--register", "-r",
                                          help="Register: SQLAlchemy URL (sqlite:///register.db) or SQLite file path.")]


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _date(text: Optional[str], what: str) -> date:
    if text is None:
        return date.today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ProfileError(f"{what}: {text!r} is not a date; write it as YYYY-MM-DD") from None


def _year_range(text: Optional[str], what: str) -> Optional[YearRange]:
    if text is None:
        return None
    parts = text.replace(":", "-").split("-")
    try:
        if len(parts) == 1:
            first = last = int(parts[0])
        elif len(parts) == 2:
            first, last = int(parts[0]), int(parts[1])
        else:
            raise ValueError
        return YearRange(first=first, last=last)
    except ValueError as err:
        raise ProfileError(f"{what}: {text!r} is not a year range; write FIRST-LAST, e.g. 2025-2027 ({err})") from None


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise ProfileError(f"{what} {path} does not exist")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ProfileError(f"{what} {path}: cannot read it as CSV: {err}") from None


def _load_table(register: str, path: Path, what: str, load) -> int:
    """Read a CSV table and hand it to ``load(register, frame, where)`` inside the error convention."""
    from hra.policy.register import Register

    with cli_errors():
        df = _read_csv(path, what)
        with Register(register, create=False) as reg:
            return load(reg, df, f"{what} {path}")


# --------------------------------------------------------------------------------------------
# hra profiles ...
# --------------------------------------------------------------------------------------------


@profiles_app.command("update")
def update_command(
    risk: Annotated[Path, typer.Argument(help="Risk output of `hra run`: RISK.zarr directory or RISK.nc file.")],
    register: RegisterOpt,
    rule: Annotated[str, typer.Option(help=f"Profile rule: a preset ({', '.join(PRESETS)}) or a TOML rule file.")]
    = "besluit-2019",
    run_id: Annotated[Optional[str], typer.Option("--run-id", help="Run id; default: first year + config hash prefix.")]
    = None,
    short: Annotated[Optional[str], typer.Option(help="Short horizon FIRST-LAST (default: first 3 years).")] = None,
    long: Annotated[Optional[str], typer.Option(help="Long horizon FIRST-LAST (default: the years after).")] = None,
) -> None:
    """Annual update: compute profiles and append them to the register; a profile never drops (art. 4.5)."""
    from hra.policy.register import Register

    with cli_errors():
        r = load_rule(rule)
        s, lg = _year_range(short, "--short"), _year_range(long, "--long")
        if s is not None or lg is not None:
            r = r.with_horizons(s, lg)
        from hra.policy.profiles import open_risk

        ds = open_risk(risk)  # read and check the risk file first: a bad one creates no register
        with Register(register) as reg:
            res = reg.update(ds, r, run_id=run_id, source=str(risk))
    con = _console()
    if res.status == "unchanged":
        con.print(f"run {res.run_id} is already in the register with the same provenance: nothing changed")
        return
    table = Table(title=f"run {res.run_id}: {res.n_buildings} buildings ({res.n_new_buildings} new)")
    table.add_column("profile")
    table.add_column("computed", justify="right")
    table.add_column("applied", justify="right")
    for p in PROFILE_ORDER:
        table.add_row(p, str(res.computed[p]), str(res.applied[p]))
    con.print(table)
    con.print(f"kept by the ratchet (art. 4.5): {res.n_ratchet}; raised by adjustments: {res.n_adjusted}")
    if res.missing:
        con.print(f"{len(res.missing)} building(s) of the register are not in this run; their profile is kept")
    if res.reentered:
        con.print(f"re-entered the plan after a withdrawn opt-out: {', '.join(res.reentered)}")


@profiles_app.command("show")
def show_command(
    building_id: Annotated[str, typer.Argument(help="Building id.")],
    register: RegisterOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: building_id, computed, applied, history.")]
    = False,
) -> None:
    """Show the profile history of one building."""
    from hra.policy.register import Register

    with cli_errors():
        with Register(register, create=False) as reg:
            info = reg.show(building_id)
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False))
        return
    con = _console()
    con.print(f"building {info['building_id']}  municipality {info['municipality'] or '-'}  "
              f"computed {info['computed'] or '-'}  applied {info['applied'] or '-'}  "
              f"in plan: {'yes' if info['in_plan'] else 'no (opt-out)'}")
    table = Table(title="profile history")
    for c in ("run", "computed", "applied", "reason", "decided by"):
        table.add_column(c)
    for h in info["history"]:
        table.add_row(h["run"], h["computed"], h["applied"], h["reason"],
                      f"{h['decisive_statistic']} {h['decisive_value']:.3g} in {h['decisive_year']}")
    con.print(table)
    for a in info["adjustments"]:
        con.print(f"adjustment {a['id']}: {a['profile']} (art. {a['article']}) by {a['author']}: {a['reason']}")
    for o in info["optouts"]:
        con.print(f"opt-out {o['id']}: {o['status']} (requested {o['requested_on']}, window until {o['window_end']})")


@profiles_app.command("export")
def export_command(
    register: RegisterOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV file to write (atomically).")],
) -> None:
    """Export the current profile of every building to CSV (input of `hra plan`)."""
    from hra.policy.register import Register, atomic_write_csv

    with cli_errors():
        with Register(register, create=False) as reg:
            df = reg.export()
        atomic_write_csv(df, out)
    _console().print(f"wrote {len(df)} buildings to {out}")


@profiles_app.command("adjust")
def adjust_command(
    building_id: Annotated[str, typer.Argument(help="Building id.")],
    register: RegisterOpt,
    profile: Annotated[str, typer.Option(help=f"Profile to raise to ({', '.join(PROFILE_ORDER)}).")],
    reason: Annotated[str, typer.Option(help="Why (required).")],
    author: Annotated[str, typer.Option(help="Who decides (required).")],
    article: Annotated[str, typer.Option(help="Article: 4.4 or 4.8.")] = "4.4",
) -> None:
    """Raise the profile of a building with a reason and author (art. 4.4, 4.8)."""
    from hra.policy.register import Register

    with cli_errors():
        with Register(register, create=False) as reg:
            aid = reg.adjust(building_id, profile, reason=reason, author=author, article=article)
    _console().print(f"adjustment {aid}: building {building_id} raised to {profile}")


@profiles_app.command("inspection")
def inspection_command(
    building_id: Annotated[str, typer.Argument(help="Building id.")],
    register: RegisterOpt,
    by: Annotated[str, typer.Option("--by", help="Who asks for the inspection.")],
    on: Annotated[Optional[str], typer.Option(help="Date YYYY-MM-DD (default today).")] = None,
    reason: Annotated[str, typer.Option(help="Reason of the request.")] = "",
) -> None:
    """Record a request for an inspection (art. 4.6)."""
    from hra.policy.register import Register

    with cli_errors():
        with Register(register, create=False) as reg:
            rid = reg.request_inspection(building_id, requested_by=by, on=_date(on, "--on"), reason=reason)
    _console().print(f"inspection request {rid} recorded for building {building_id}")


@profiles_app.command("attributes")
def attributes_command(
    exposure: Annotated[Path, typer.Argument(help="CSV with building_id and municipality and/or connected_group.")],
    register: RegisterOpt,
) -> None:
    """Set municipality and structural connection group of buildings from an exposure CSV."""
    n = _load_table(register, exposure, "exposure table", lambda reg, df, where: reg.set_building_attributes(df, where=where))
    _console().print(f"updated {n} buildings")


@profiles_app.command("parties")
def parties_command(
    table: Annotated[Path, typer.Argument(help="CSV with building_id, role (owner/resident), name[, contact].")],
    register: RegisterOpt,
) -> None:
    """Load owners and residents (needed to notify parties of opt-outs, art. 12)."""
    n = _load_table(register, table, "parties table", lambda reg, df, where: reg.load_parties(df, where=where))
    _console().print(f"added {n} parties")


@profiles_app.command("decision")
def decision_command(
    building_id: Annotated[str, typer.Argument(help="Building id.")],
    register: RegisterOpt,
    kind: Annotated[str, typer.Option(help="normbesluit or versterkingsbesluit.")],
    on: Annotated[Optional[str], typer.Option(help="Date YYYY-MM-DD (default today).")] = None,
) -> None:
    """Record a normbesluit or versterkingsbesluit (an opt-out withdraws it, art. 13)."""
    from hra.policy.register import Register

    with cli_errors():
        with Register(register, create=False) as reg:
            did = reg.record_decision(building_id, kind, _date(on, "--on"))
    _console().print(f"decision {did} ({kind}) recorded for building {building_id}")


def _print_optout(info: object) -> None:
    con = _console()
    con.print(f"opt-out {info.id} of building {info.building_id}: {info.status}; withdrawal window "
              f"{info.requested_on} .. {info.window_end}; decision from {info.earliest_decision}")
    for r in info.notified.to_dict("records"):
        con.print(f"  notify {r['party_kind']}: {r['party_name']} ({r['reason']})")
    if info.withdrawn_decisions:
        con.print(f"  withdrawn decisions: {', '.join(map(str, info.withdrawn_decisions))}")


@optout_app.command("request")
def optout_request_command(
    building_id: Annotated[str, typer.Argument(help="Building id.")],
    register: RegisterOpt,
    owner: Annotated[str, typer.Option(help="Requesting owner.")],
    on: Annotated[Optional[str], typer.Option(help="Request date YYYY-MM-DD (default today).")] = None,
) -> None:
    """An owner asks not to strengthen the building (art. 12); lists the parties notified."""
    from hra.policy import optout
    from hra.policy.register import Register

    with cli_errors():
        with Register(register, create=False) as reg:
            info = optout.request_optout(reg, building_id, owner, _date(on, "--on"))
    _print_optout(info)


@optout_app.command("withdraw")
def optout_withdraw_command(
    optout_id: Annotated[int, typer.Argument(help="Opt-out request id.")],
    register: RegisterOpt,
    on: Annotated[Optional[str], typer.Option(help="Date YYYY-MM-DD (default today).")] = None,
) -> None:
    """The owner withdraws a request within the six-week window (art. 12)."""
    from hra.policy import optout
    from hra.policy.register import Register

    with cli_errors():
        with Register(register, create=False) as reg:
            info = optout.withdraw_optout(reg, optout_id, _date(on, "--on"))
    _print_optout(info)


@optout_app.command("decide")
def optout_decide_command(
    optout_id: Annotated[int, typer.Argument(help="Opt-out request id.")],
    register: RegisterOpt,
    by: Annotated[str, typer.Option("--by", help="Who decides.")],
    grant: Annotated[bool, typer.Option("--grant/--refuse", help="Grant or refuse the opt-out.")] = True,
    on: Annotated[Optional[str], typer.Option(help="Date YYYY-MM-DD (default today).")] = None,
) -> None:
    """Decide on a request after the window (art. 13); granting removes the building from the plan."""
    from hra.policy import optout
    from hra.policy.register import Register

    with cli_errors():
        with Register(register, create=False) as reg:
            info = optout.decide_optout(reg, optout_id, _date(on, "--on"), granted=grant, decided_by=by)
    _print_optout(info)


@optout_app.command("revoke")
def optout_revoke_command(
    optout_id: Annotated[int, typer.Argument(help="Opt-out id.")],
    register: RegisterOpt,
    on: Annotated[Optional[str], typer.Option(help="Date YYYY-MM-DD (default today).")] = None,
) -> None:
    """The owner withdraws a granted opt-out (art. 14): back in the plan at the next update."""
    from hra.policy import optout
    from hra.policy.register import Register

    with cli_errors():
        with Register(register, create=False) as reg:
            info = optout.revoke_optout(reg, optout_id, _date(on, "--on"))
    _print_optout(info)


# --------------------------------------------------------------------------------------------
# hra plan
# --------------------------------------------------------------------------------------------


def plan_command(
    profiles: Annotated[str, typer.Argument(help="Profile CSV (`hra profiles export`), register file (register.db) or register URL.")],
    capacities: Annotated[Path, typer.Option("--capacities", "-c", help="Capacities and settings: TOML or CSV.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("plan"),
    start_year: Annotated[Optional[int], typer.Option("--start-year", help="First plan year (overrides the file).")]
    = None,
    horizon: Annotated[Optional[int], typer.Option("--horizon", help="Number of plan years (overrides the file).")]
    = None,
    exposure: Annotated[Optional[Path], typer.Option(help="CSV building_id, municipality (if profiles lack it).")]
    = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet (needs pyarrow).")] = "csv",
    chart: Annotated[bool, typer.Option("--chart/--no-chart", help="Write plan.png.")] = True,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 if infeasible (art. 6.3) or incomplete.")]
    = False,
) -> None:
    """Plan the strengthening per municipality within yearly capacities (art. 5, 6)."""
    from hra.policy import planning

    with cli_errors():
        cfg = planning.load_plan_config(capacities, start_year=start_year, horizon_years=horizon)
        exp = _read_csv(exposure, "exposure table") if exposure is not None else None
        result = planning.make_plan(profiles, cfg, exposure=exp)
        written = planning.write_plan(result, out, fmt=fmt)
        if chart:
            written.append(planning.plot_plan(result, Path(out) / "plan.png"))
    con = _console()
    sched = result.schedule
    table = Table(title=f"plan {cfg.start_year}-{cfg.last_year}")
    for c in ("municipality", "buildings", "additions", "last uitvoering", "not scheduled"):
        table.add_column(c, justify="right" if c != "municipality" else "left")
    for mun, g in sched.groupby("municipality", sort=True):
        last = g["uitvoering"].max()
        table.add_row(str(mun), str(len(g)), str(int(g["addition"].sum())),
                      "-" if pd.isna(last) else str(int(last)), str(int((~g["scheduled"]).sum())))
    con.print(table)
    if result.feasibility is not None:
        over = result.feasibility[result.feasibility["overload"] > 0]
        if over.empty:
            con.print("feasible: no stage-year exceeds the global capacity (art. 6.3)")
        else:
            con.print(f"NOT feasible: {len(over)} stage-year(s) exceed the global capacity (art. 6.3):")
            for r in over.to_dict("records"):
                con.print(f"  {r['year']} {r['stage']}: planned {r['planned']}, capacity "
                          f"{int(r['global_capacity'])}, overload {r['overload']}")
    if result.unscheduled:
        con.print(f"{len(result.unscheduled)} building(s) do not fit in the horizon; see schedule (scheduled = False)")
    con.print("wrote " + ", ".join(str(p) for p in written))
    if strict and (not result.feasible or result.unscheduled):
        raise typer.Exit(code=1)
